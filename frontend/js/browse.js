// Browsing, creating and joining public channels.

import { h, setText, pane, icon } from './dom.js';
import { emit } from './state.js';
import { get, post, enc } from './api.js';

const nameInput = h('input', { id: 'cc-name', name: 'name', maxlength: 64, autocapitalize: 'none', spellcheck: 'false', placeholder: 'e.g. book-club', 'aria-describedby': 'cc-note' });
const err = h('p', { id: 'cc-error', class: 'form-error', role: 'alert' });
const topicInput = h('input', { id: 'cc-topic', name: 'topic', maxlength: 200, placeholder: 'What it is for (optional)' });
const privateBox = h('input', { id: 'cc-private', name: 'private', type: 'checkbox', 'aria-describedby': 'cc-private-note' });
const form = h('form', { id: 'create-form', class: 'stack' },
  h('h2', null, 'Create a channel'),
  h('div', { class: 'field' },
    h('label', { for: 'cc-name' }, 'Name'),
    h('div', { class: 'row' }, nameInput, h('button', { class: 'primary', type: 'submit' }, 'Create')),
    h('p', { id: 'cc-note', class: 'field-note' }, 'Lowercase letters, digits, - and _.')),
  h('div', { class: 'field' }, h('label', { for: 'cc-topic' }, 'Topic'), topicInput),
  h('label', { class: 'check' }, privateBox, ' ', icon('lock'), ' Private'),
  h('p', { id: 'cc-private-note', class: 'field-note' }, 'A private channel is invisible to everyone you do not add to it.'),
  err);
const status = h('p', { id: 'browse-status', class: 'muted', role: 'status' });
const list = h('ul', { id: 'browse-list', class: 'cards' });
pane('browse', 'Channels').append(form, h('h2', null, 'All public channels'), status, list);
const NAME_RE = /^[a-z0-9_-]{1,64}$/;

export async function loadBrowse() {
  setText(status, 'Loading…');
  try {
    const all = await get('/api/channels?all=true');
    list.replaceChildren(...all.map((c) =>
      h('li', { class: 'card chan-card', data: { channel: c.name } },
        h('span', { class: 'hash big', 'aria-hidden': 'true' }, '#'),
        h('div', { class: 'person-main' },
          h('p', { class: 'person-name' }, c.name),
          h('p', { class: 'muted small' }, c.member ? 'You are a member' : 'Public channel')),
        c.member
          ? h('a', { class: 'button ghost small', href: `#/c/${enc(c.name)}` }, 'Open')
          : h('span', { class: 'row' },
            h('a', { class: 'button ghost small', href: `#/c/${enc(c.name)}`, 'aria-label': `Preview #${c.name}` }, 'Preview'),
            h('button', { type: 'button', class: 'primary small', 'aria-label': `Join #${c.name}`, onclick: () => join(c.name) }, 'Join')))));
    setText(status, all.length ? `${all.length} channel${all.length === 1 ? '' : 's'}` : 'No channels yet: create the first one.');
  } catch (e) {
    setText(status, `Could not list channels: ${e.message}`);
  }
}

export async function join(name) {
  try {
    await post(`/api/channels/${enc(name)}/join`);
    emit('joined', name);
  } catch (e) {
    setText(status, `Could not join #${name}: ${e.message}`);
  }
}

nameInput.addEventListener('input', () => {
  const v = nameInput.value.trim();
  const bad = v && !NAME_RE.test(v);
  setText(err, bad ? 'Use lowercase letters, digits, - and _ (at most 64).' : '');
  if (bad) nameInput.setAttribute('aria-invalid', 'true');
  else nameInput.removeAttribute('aria-invalid');
});

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = nameInput.value.trim();
  if (!NAME_RE.test(name)) {
    setText(err, 'Use lowercase letters, digits, - and _ (at most 64).');
    nameInput.focus();
    return;
  }
  try {
    await post('/api/channels', { name, private: privateBox.checked, topic: topicInput.value.trim() });
    form.reset();
    setText(err, '');
    emit('joined', name);
  } catch (ex) {
    setText(err, ex.code === 'channel_exists' ? `#${name} already exists: join it from the list below.` : ex.message);
  }
});
