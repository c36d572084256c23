// What a person does in chatnode's page, as small steps the scenarios share.

import assert from 'node:assert/strict';

export const PASSWORD = 'correct horse 42';

/** Signs up through the form, checking the live availability note on the way. */
export async function signUp(page, { username, password = PASSWORD, firstname, lastname, city, country, hobbies, location = false }) {
  await page.goto('/');
  await page.locator('#auth').waitFor();
  await page.click('#tab-signup');
  await page.fill('#su-username', username);
  await page.locator('#su-username-status', { hasText: 'is available' }).waitFor();
  await page.fill('#su-password', password);
  if (firstname || lastname || city || country || hobbies || location) {
    await page.click('details.more summary');
    if (firstname) await page.fill('#su-firstname', firstname);
    if (lastname) await page.fill('#su-lastname', lastname);
    if (city) await page.fill('#su-city', city);
    if (country) await page.fill('#su-country', country);
    if (hobbies) await page.fill('#su-hobbies', hobbies);
    if (location) await page.check('#su-location');
  }
  await page.click('#signup-form button[type=submit]');
  await page.locator('#app').waitFor();
  assert.equal(await page.textContent('#me-name'), username);
  await waitOnline(page);
}

export async function signIn(page, username, password = PASSWORD) {
  await page.fill('#si-username', username);
  await page.fill('#si-password', password);
  await page.click('#signin-form button[type=submit]');
}

/** The socket is connected and signed in (the banner is gone or says so). */
export async function waitOnline(page, timeout = 15000) {
  await page.waitForFunction(() => document.querySelector('#conn').dataset.state === 'online', null, { timeout });
}

export async function send(page, text) {
  await page.fill('#compose', text);
  await page.press('#compose', 'Enter');
}

/** The messages on screen: id, sender, text, own, and whether they mention the reader. */
export function messages(page) {
  return page.$$eval('#message-list li.msg', (els) => els.map((e) => ({
    id: e.dataset.id,
    user: e.dataset.user,
    text: e.querySelector('.text').textContent,
    own: e.classList.contains('own'),
    mentionsMe: e.classList.contains('mentions-me'),
  })));
}

/** Waits until a message with exactly this text is on screen (confirmed, not pending). */
export async function seeMessage(page, text, timeout = 15000) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll('#message-list li.msg .text')].some((e) => e.textContent === t),
    text,
    { timeout },
  );
}

export async function openChannel(page, name) {
  await page.evaluate((n) => { location.hash = `#/c/${encodeURIComponent(n)}`; }, name);
  await page.waitForFunction((n) => {
    const view = document.querySelector('#chat-view');
    return !view.hidden && view.dataset.channel === n;
  }, name);
}

export async function go(page, hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
}
