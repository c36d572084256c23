// The user directory (name, city, country, hobby, nearby) and profiles, one's own editable.

import { $, h, avatar, setText, toast, pane, field } from './dom.js';
import { S, emit } from './state.js';
import { api, get, post, qs, enc } from './api.js';
import { locate, splitHobbies } from './geo.js';

const radius = h('select', { id: 'pf-radius', name: 'radius' },
  h('option', { value: '' }, 'Anywhere'),
  [10, 50, 250, 1000].map((km) => h('option', { value: km }, `Within ${km} km of me`)));
const form = h('form', { id: 'people-form', class: 'filters', role: 'search', 'aria-label': 'Find people' },
  field('pf-q', 'Name', { type: 'search', placeholder: 'Name or username' }),
  field('pf-city', 'City'),
  field('pf-country', 'Country'),
  field('pf-hobby', 'Hobby'),
  h('div', { class: 'field' }, h('label', { for: 'pf-radius' }, 'Nearby'), radius),
  h('div', { class: 'actions' }, h('button', { class: 'primary', type: 'submit' }, 'Search')));
const status = h('p', { id: 'people-status', class: 'muted', role: 'status' });
const results = h('ul', { id: 'people-results', class: 'cards' });

// A group conversation: pick 2 to 9 people with their checkboxes, give it a title, start it.
const picked = new Set();
const pickedText = h('p', { id: 'group-picked', class: 'small' });
const groupTitle = h('input', { id: 'group-title', maxlength: 200, placeholder: 'Title (optional)' });
const groupStart = h('button', { type: 'submit', class: 'primary small', id: 'group-start' }, 'Start group');
const groupForm = h('form', { id: 'group-form', class: 'card group-bar', hidden: true },
  h('div', { class: 'person-main' }, pickedText,
    h('label', { class: 'sr-only', for: 'group-title' }, 'Group title'), groupTitle),
  groupStart);
pane('people', 'People').append(form, groupForm, status, results);

function renderPicked() {
  groupForm.hidden = picked.size === 0;
  setText(pickedText, `Group with ${[...picked].join(', ')}${picked.size < 2 ? ' (pick at least 2)' : ''}`);
  groupStart.disabled = picked.size < 2 || picked.size > 9;
}

groupForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    const r = await post('/api/dms', { usernames: [...picked], title: groupTitle.value.trim() });
    picked.clear();
    groupForm.reset();
    renderPicked();
    for (const box of results.querySelectorAll('input.pick')) box.checked = false;
    emit('open-channel', r.channel);
  } catch (ex) {
    toast(`Could not start the group: ${ex.message}`, 'error');
  }
});

function fullName(u) {
  return [u.firstname, u.lastname].filter(Boolean).join(' ');
}

function place(u) {
  return [u.city, u.country].filter(Boolean).join(', ');
}

async function startDm(username) {
  try {
    const r = await post('/api/dms', { username });
    emit('open-channel', r.channel);
  } catch (e) {
    toast(`Could not start a conversation: ${e.message}`, 'error');
  }
}

// Live presence frames only cover people who share a channel or a DM with us: the directory and
// profiles, which show anyone, read who is online now along with the people they show.
async function refreshOnline() {
  try {
    S.online = new Set((await get('/api/users/online')).map((u) => u.username));
    emit('presence');
  } catch { /* the dots keep what the presence frames said */ }
}

function onlineDot(username) {
  const on = S.online.has(username);
  return h('span', { class: `presence ${on ? 'is-online' : ''}` }, h('span', { class: `dot ${on ? 'online' : 'offline'}`, 'aria-hidden': 'true' }), on ? 'online' : 'offline');
}

function card(u) {
  const me = S.me && u.username === S.me.username;
  const name = fullName(u);
  return h('li', { class: 'card person', data: { user: u.username } },
    avatar(u.username, 'avatar lg'),
    h('div', { class: 'person-main' },
      h('p', { class: 'person-name' }, h('a', { href: `#/u/${enc(u.username)}` }, name || u.username), me ? ' (you)' : ''),
      h('p', { class: 'muted small' }, `@${u.username}`, ' · ', onlineDot(u.username)),
      place(u) ? h('p', { class: 'small' }, place(u)) : null,
      u.hobbies && u.hobbies.length ? h('ul', { class: 'chips', 'aria-label': 'Hobbies' }, u.hobbies.map((x) => h('li', null, x))) : null),
    me ? null : h('label', { class: 'check small pick-label' },
      h('input', {
        type: 'checkbox',
        class: 'pick',
        checked: picked.has(u.username),
        'aria-label': `Pick ${u.username} for a group`,
        onchange: (e) => {
          if (e.target.checked) picked.add(u.username);
          else picked.delete(u.username);
          renderPicked();
        },
      }), ' Group'),
    me ? null : h('button', { type: 'button', class: 'ghost small', onclick: () => startDm(u.username), 'aria-label': `Message ${u.username}` }, 'Message'));
}

export async function searchPeople() {
  const f = new FormData(form);
  const params = { q: f.get('q'), city: f.get('city'), country: f.get('country'), hobby: f.get('hobby'), limit: 50 };
  const km = f.get('radius');
  setText(status, 'Searching…');
  try {
    if (km) {
      setText(status, 'Finding your location…');
      const at = await locate();
      params.near = `${at.lat},${at.lon}`;
      params.radius_km = km;
    }
    const [r] = await Promise.all([get(qs('/api/users', params)), refreshOnline()]);
    for (const u of r.users) S.users.add(u.username);
    results.replaceChildren(...r.users.map(card));
    setText(status, r.total ? `${r.total} ${r.total === 1 ? 'person' : 'people'} found` : 'Nobody matches that search.');
  } catch (e) {
    results.replaceChildren();
    setText(status, e.code === 'search_unavailable' ? 'The directory is unavailable on this server.' : `Search failed: ${e.message}`);
  }
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  searchPeople();
});

// Profiles.
const profileCard = h('div', { id: 'profile-card', class: 'profile-card' });
const profileForm = h('form', { id: 'profile-form', class: 'stack', hidden: true },
  h('h2', null, 'Edit your profile'),
  h('div', { class: 'grid2' },
    field('pr-firstname', 'First name', { maxlength: 100, autocomplete: 'given-name' }),
    field('pr-lastname', 'Last name', { maxlength: 100, autocomplete: 'family-name' }),
    field('pr-city', 'City', { maxlength: 100 }),
    field('pr-country', 'Country', { maxlength: 100 })),
  field('pr-hobbies', 'Hobbies', {}, 'Separate with commas.'),
  h('div', { class: 'row' },
    h('button', { type: 'button', id: 'pr-locate', class: 'ghost' }, 'Update my location'),
    h('span', { id: 'pr-location', class: 'muted small' })),
  h('p', { id: 'pr-error', class: 'form-error', role: 'alert' }),
  h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit' }, 'Save profile'), h('span', { id: 'pr-saved', class: 'muted small', role: 'status' })));
const passwordForm = h('form', { id: 'password-form', class: 'stack', hidden: true },
  h('h2', null, 'Change password'),
  h('input', { id: 'pw-username', class: 'sr-only', autocomplete: 'username', tabindex: -1, 'aria-hidden': 'true', readonly: true }),
  h('div', { class: 'grid2' },
    field('pw-current', 'Current password', { type: 'password', autocomplete: 'current-password', required: true }),
    field('pw-new', 'New password', { type: 'password', autocomplete: 'new-password', minlength: 8, required: true })),
  h('p', { id: 'pw-error', class: 'form-error', role: 'alert' }),
  h('div', { class: 'row' }, h('button', { class: 'ghost', type: 'submit' }, 'Change password'), h('span', { id: 'pw-saved', class: 'muted small', role: 'status' })));
pane('profile', 'Profile').append(profileCard, profileForm, passwordForm);

function profileView(u) {
  const me = S.me && u.username === S.me.username;
  const since = u.created_at ? new Date(u.created_at).toLocaleDateString(undefined, { year: 'numeric', month: 'long' }) : '';
  profileCard.replaceChildren(
    avatar(u.username, 'avatar xl'),
    h('div', null,
      h('h2', null, fullName(u) || u.username),
      h('p', { class: 'muted' }, `@${u.username}`, ' · ', onlineDot(u.username)),
      place(u) ? h('p', null, place(u)) : null,
      u.hobbies.length ? h('ul', { class: 'chips', 'aria-label': 'Hobbies' }, u.hobbies.map((x) => h('li', null, x))) : null,
      since ? h('p', { class: 'muted small' }, `Member since ${since}`) : null,
      me ? null : h('button', { type: 'button', class: 'primary', onclick: () => startDm(u.username) }, `Message ${u.username}`)));
}

function fillForm(u) {
  for (const k of ['firstname', 'lastname', 'city', 'country']) profileForm.elements[k].value = u[k] || '';
  profileForm.elements.hobbies.value = (u.hobbies || []).join(', ');
  $('#pw-username').value = u.username;
  setText($('#pr-location'), u.location ? `Location set (${u.location.lat}, ${u.location.lon})` : 'No location shared');
}

export async function showProfile(username) {
  const me = !username || (S.me && username === S.me.username);
  profileForm.hidden = !me;
  passwordForm.hidden = !me;
  setText($('#profile-title'), me ? 'Your profile' : 'Profile');
  setText($('#pr-saved'), '');
  setText($('#pr-error'), '');
  profileCard.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  try {
    const [u] = await Promise.all([me ? get('/api/me') : get(`/api/users/${enc(username)}`), refreshOnline()]);
    if (me) {
      S.me = u;
      fillForm(u);
    }
    profileView(u);
  } catch (e) {
    profileCard.replaceChildren(h('p', { class: 'form-error' }, e.code === 'user_not_found' ? 'No such user.' : e.message));
  }
}

async function saveProfile(update) {
  setText($('#pr-error'), '');
  setText($('#pr-saved'), 'Saving…');
  try {
    S.me = await api('PATCH', '/api/me', update);
    fillForm(S.me);
    profileView(S.me);
    setText($('#pr-saved'), 'Saved.');
  } catch (e) {
    setText($('#pr-saved'), '');
    setText($('#pr-error'), e.message);
  }
}

profileForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const el = profileForm.elements;
  saveProfile({
    firstname: el.firstname.value.trim(),
    lastname: el.lastname.value.trim(),
    city: el.city.value.trim(),
    country: el.country.value.trim(),
    hobbies: splitHobbies(el.hobbies.value),
  });
});

$('#pr-locate').addEventListener('click', async () => {
  try {
    saveProfile({ location: await locate() });
  } catch (e) {
    setText($('#pr-error'), `Could not update your location: ${e.message}`);
  }
});

passwordForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const current = $('#pw-current').value;
  const next = $('#pw-new').value;
  setText($('#pw-error'), '');
  if (next.length < 8) {
    setText($('#pw-error'), 'The new password needs at least 8 characters.');
    return;
  }
  try {
    await api('PUT', '/api/me/password', { current, new: next });
    passwordForm.reset();
    setText($('#pw-saved'), 'Password changed.');
  } catch (err) {
    setText($('#pw-error'), err.code === 'invalid_credentials' ? 'The current password is wrong.' : err.message);
  }
});
