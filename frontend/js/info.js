// A channel's info panel: its topic and settings, its members with online dots and roles, who was
// active lately, inviting people, and the moderation actions the reader's role allows (remove,
// ban for a while, mute, promote). Every name and text enters the page as text.

import { h, setText, pane, avatar, toast, fmtTime, icon } from './dom.js';
import { S, emit, label } from './state.js';
import { get, post, api, qs, enc } from './api.js';
import { actionsFor, mayInvite, untilText, DURATIONS } from './members.js';

const head = h('div', { id: 'info-head', class: 'stack' });
const status = h('p', { id: 'info-status', class: 'muted', role: 'status' });
const settings = h('form', { id: 'info-settings', class: 'stack', hidden: true });
const inviteInput = h('input', { id: 'invite-name', list: 'invite-options', autocapitalize: 'none', spellcheck: 'false', placeholder: 'username', 'aria-describedby': 'invite-note' });
const inviteOptions = h('datalist', { id: 'invite-options' });
const invite = h('form', { id: 'invite-form', class: 'stack', hidden: true },
  h('h2', null, 'Add people'),
  h('div', { class: 'field' },
    h('label', { for: 'invite-name' }, 'Username'),
    h('div', { class: 'row' }, inviteInput, h('button', { class: 'primary', type: 'submit' }, 'Add')),
    h('p', { id: 'invite-note', class: 'field-note' }, 'Type a few letters to search.')),
  inviteOptions);
const sanction = h('select', { id: 'sanction-length', 'aria-label': 'How long a ban or mute lasts' },
  DURATIONS.map(([text, secs]) => h('option', { value: secs, selected: secs === 3600 }, text)));
const members = h('ul', { id: 'member-list', class: 'cards' });
const active = h('ul', { id: 'active-list', class: 'chips' });
const danger = h('div', { id: 'info-danger', class: 'row' });

pane('info', 'Channel info').append(head, status,
  h('h2', null, 'Members'),
  h('p', { class: 'row small' }, h('label', { for: 'sanction-length' }, 'Bans and mutes last'), sanction),
  members,
  h('h2', null, 'Active in the last hour'), active,
  invite, settings, danger);

let shown = null; // the channel whose panel is open
let info = null; // its settings, as GET /api/channels/{name} answered

const isAdmin = () => !!S.features.admin;

/** Opens the panel of `name`. */
export async function showInfo(name) {
  shown = name;
  setText(status, 'Loading…');
  head.replaceChildren();
  members.replaceChildren();
  active.replaceChildren();
  danger.replaceChildren();
  settings.hidden = true;
  invite.hidden = true;
  try {
    info = await get(`/api/channels/${enc(name)}`);
  } catch (e) {
    setText(status, e.code === 'channel_not_found' ? 'There is no such channel, or you are not in it.' : `Could not load it: ${e.message}`);
    return;
  }
  if (shown !== name) return;
  renderHead();
  setText(status, '');
  await Promise.all([loadMembers(), loadActive()]);
}

function kindText(kind) {
  return { public: 'Public channel', private: 'Private channel', group: 'Group conversation', dm: 'Direct message' }[kind] || kind;
}

function renderHead() {
  const ch = S.channels.get(info.name);
  head.replaceChildren(...[
    h('p', { class: 'info-title' },
      info.private ? icon('lock') : null,
      h('strong', null, ch ? label(ch) : info.name)),
    h('p', { class: 'muted small' }, `${kindText(info.kind)} · ${info.members} member${info.members === 1 ? '' : 's'}`,
      info.owner ? ` · owner ${info.owner}` : '', ` · you: ${info.role}`),
    h('p', { id: 'info-topic' }, info.topic ? info.topic : h('span', { class: 'muted' }, 'No topic')),
    info.slow_mode_secs ? h('p', { class: 'small' }, `Slow mode: one post per ${info.slow_mode_secs} s.`) : null,
    info.muted_until !== null && info.muted_until !== undefined
      ? h('p', { class: 'notice', role: 'note' }, `You are muted here ${untilText(info.muted_until)}.`) : null,
    h('p', null, h('a', { class: 'button ghost small', href: `#/c/${enc(info.name)}` }, 'Back to the conversation')),
  ].filter(Boolean));
  const mod = isAdmin() || info.role === 'owner' || info.role === 'moderator' || info.kind === 'group';
  if (mod && info.kind !== 'dm') renderSettings();
  invite.hidden = !(info.kind !== 'dm' && mayInvite(info.role, info.kind, isAdmin()) && (info.kind !== 'public' || info.role !== 'member'));
  const owner = isAdmin() || info.role === 'owner';
  danger.replaceChildren(...[
    info.kind !== 'dm' ? h('button', { type: 'button', class: 'ghost small', id: 'info-leave', onclick: leave }, 'Leave') : null,
    owner && info.kind !== 'dm' ? h('button', { type: 'button', class: 'danger small', id: 'info-delete', onclick: remove }, 'Delete channel') : null,
  ].filter(Boolean));
}

function renderSettings() {
  const topic = h('input', { id: 'set-topic', value: info.topic, maxlength: 200 });
  const slow = h('input', { id: 'set-slow', type: 'number', min: 0, max: 3600, value: info.slow_mode_secs });
  const canSlow = isAdmin() || info.role === 'owner' || info.role === 'moderator';
  settings.replaceChildren(...[
    h('h2', null, 'Settings'),
    h('div', { class: 'field' }, h('label', { for: 'set-topic' }, 'Topic'), topic),
    canSlow ? h('div', { class: 'field' }, h('label', { for: 'set-slow' }, 'Slow mode (seconds between posts, 0 = off)'), slow) : null,
    h('button', { type: 'submit', class: 'primary small' }, 'Save'),
  ].filter(Boolean));
  settings.hidden = false;
  settings.onsubmit = async (e) => {
    e.preventDefault();
    const body = { topic: topic.value };
    if (canSlow) body.slow_mode_secs = Number(slow.value) || 0;
    try {
      info = { ...info, ...(await api('PATCH', `/api/channels/${enc(info.name)}`, body)) };
      renderHead();
      toast('Saved.');
    } catch (ex) {
      toast(`Could not save: ${ex.message}`, 'error');
    }
  };
}

async function loadMembers() {
  const name = shown;
  let all = [];
  let after = '';
  try {
    do {
      const page = await get(qs(`/api/channels/${enc(name)}/members`, { limit: 200, after }));
      all = all.concat(page.members);
      after = page.next_after || '';
    } while (after && all.length < 1000);
  } catch (e) {
    setText(status, `Could not list the members: ${e.message}`);
    return;
  }
  if (shown !== name) return;
  for (const m of all) {
    S.users.add(m.username);
    if (m.online) S.online.add(m.username);
  }
  members.replaceChildren(...all.map(memberCard));
}

function memberCard(m) {
  const me = S.me.username;
  const on = S.online.has(m.username) || m.online;
  const acts = actionsFor({ me, myRole: info.role, admin: isAdmin(), kind: info.kind }, m);
  const act = (kind, text) => h('button', {
    type: 'button',
    class: kind === 'ban' || kind === 'kick' ? 'danger small' : 'ghost small',
    'aria-label': `${text} ${m.username}`,
    onclick: () => moderate(kind, m.username),
  }, text);
  const texts = { kick: 'Remove', ban: 'Ban', mute: 'Mute', promote: 'Make moderator', demote: 'Make member' };
  return h('li', { class: 'card person member', data: { user: m.username, role: m.role } },
    h('span', { class: 'dm-avatar' }, avatar(m.username, 'avatar'), h('span', { class: `dot ${on ? 'online' : 'offline'}`, title: on ? 'online' : 'offline' })),
    h('div', { class: 'person-main' },
      h('p', { class: 'person-name' }, h('a', { href: `#/u/${enc(m.username)}` }, m.username), m.username === me ? ' (you)' : ''),
      h('p', { class: 'muted small' },
        m.role !== 'member' ? h('span', { class: `role ${m.role}` }, m.role) : 'member',
        ' · ', on ? 'online' : 'offline',
        m.joined_at ? ` · joined ${new Date(m.joined_at).toLocaleDateString()}` : '')),
    acts.length ? h('span', { class: 'row member-actions' }, acts.map((a) => act(a, texts[a]))) : null);
}

async function loadActive() {
  const name = shown;
  try {
    const r = await get(qs(`/api/channels/${enc(name)}/active`, { minutes: 60 }));
    if (shown !== name) return;
    active.replaceChildren(...(r.users.length
      ? r.users.map((u) => h('li', null, u.username, ' ', h('span', { class: 'muted' }, fmtTime(u.last_active))))
      : [h('li', { class: 'muted' }, 'Nobody')]));
  } catch { /* the list stays empty */ }
}

async function moderate(kind, username) {
  const c = enc(info.name);
  const secs = Number(sanction.value);
  const forWhat = secs ? { duration_secs: secs } : {};
  try {
    if (kind === 'kick') {
      if (!window.confirm(`Remove ${username} from ${info.name}?`)) return;
      await api('DELETE', `/api/channels/${c}/members/${enc(username)}`);
    } else if (kind === 'ban') {
      if (!window.confirm(`Ban ${username} from ${info.name}?`)) return;
      await post(`/api/channels/${c}/bans`, { username, ...forWhat });
    } else if (kind === 'mute') {
      await post(`/api/channels/${c}/mutes`, { username, ...forWhat });
      toast(`${username} is muted.`);
    } else {
      await api('PUT', `/api/channels/${c}/members/${enc(username)}`, { role: kind === 'promote' ? 'moderator' : 'member' });
    }
  } catch (e) {
    toast(e.message, 'error');
  }
  showInfo(info.name);
}

async function leave() {
  if (!window.confirm(`Leave ${info.name}?`)) return;
  try {
    await api('DELETE', `/api/channels/${enc(info.name)}/members/${enc(S.me.username)}`);
    emit('channel-gone', { channel: info.name, reason: 'left' });
  } catch (e) {
    toast(`Could not leave: ${e.message}`, 'error');
  }
}

async function remove() {
  if (!window.confirm(`Delete ${info.name} and everything in it, for everyone?`)) return;
  try {
    await api('DELETE', `/api/channels/${enc(info.name)}`);
  } catch (e) {
    toast(`Could not delete it: ${e.message}`, 'error');
  }
}

let searchTimer = 0;
inviteInput.addEventListener('input', () => {
  clearTimeout(searchTimer);
  const q = inviteInput.value.trim();
  if (q.length < 2) return;
  searchTimer = setTimeout(async () => {
    try {
      const r = await get(qs('/api/users', { q, limit: 10 }));
      inviteOptions.replaceChildren(...r.users.map((u) => h('option', { value: u.username })));
    } catch { /* typing on works without suggestions */ }
  }, 200);
});

invite.addEventListener('submit', async (e) => {
  e.preventDefault();
  const username = inviteInput.value.trim().toLowerCase();
  if (!username) return;
  try {
    const r = await post(`/api/channels/${enc(info.name)}/members`, { username });
    toast(r.added ? `${username} was added.` : `${username} is a member already.`);
    invite.reset();
    showInfo(info.name);
  } catch (ex) {
    toast(ex.code === 'user_not_found' ? `There is no user ${username}.` : ex.message, 'error');
  }
});
