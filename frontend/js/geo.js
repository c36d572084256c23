// The device's position, for "people nearby" and for sharing one's own location.

/** Resolves to { lat, lon } rounded to about a kilometre. */
export function locate() {
  return new Promise((resolve, reject) => {
    if (!navigator.geolocation) {
      reject(new Error('this browser cannot share a location'));
      return;
    }
    navigator.geolocation.getCurrentPosition(
      (p) => resolve({ lat: Math.round(p.coords.latitude * 100) / 100, lon: Math.round(p.coords.longitude * 100) / 100 }),
      (e) => reject(new Error(e.code === 1 ? 'location permission was denied' : 'your location is unavailable')),
      { timeout: 10000, maximumAge: 0 },
    );
  });
}

/** "chess, climbing" -> ["chess", "climbing"] */
export const splitHobbies = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);
