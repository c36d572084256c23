// chatnode's browser client: signs in, keeps the channel list, follows every channel live over
// /ws, and resumes from the last IDs seen after any reconnect, so nothing is missed or doubled
// (the bookkeeping for that is in sync.js; this module puts its results on the page).

import { $, $$, h, setText, toast, mentionsMe } from './dom.js';
import { S, on, emit, newChannel, addEvents, label } from './state.js';
import { get, post, qs, enc } from './api.js';
import { Live } from './live.js';
import { Sync } from './sync.js';
import * as chat from './chat.js';
import { switchDraft } from './composer.js';
import { renderSidebar, setMe, closeNav } from './sidebar.js';
import { updateTitle, updateNotifyButton, notify } from './notify.js';
import { refusalText } from './members.js';

const live = new Live({ authorized, frame, state: showConnection, unauthenticated });
const sync = new Sync({
  state: S,
  send: (type, payload) => live.send(type, payload),
  isOpen: () => live.open,
  fetchPage: (name, params) => get(qs(`/api/channels/${enc(name)}/messages`, params)),
  ui: {
    added: (ch, r) => chat.eventsAdded(ch, r),
    pendingChanged: (ch) => chat.renderPending(ch),
    message: arrived,
    reloaded,
    unreadChanged: () => emit('unread-changed'),
  },
});
let pollTimer = 0;
let unseenMentions = 0;

// ---- signing in and out -------------------------------------------------------------------

// Panels load on first use, so the first page load stays small.
const people = () => import('./people.js');
const browse = () => import('./browse.js');

/** Back to the sign-in screen: a fresh page, so nothing of the last user stays in memory. */
function showAuth() {
  live.stop();
  clearTimeout(pollTimer);
  S.me = null;
  location.replace('/');
}

/** Starts the app for a signed-in user (from main.js, or after signing in). */
export async function signedIn(me) {
  S.me = me;
  S.users.add(me.username);
  setMe(me);
  $('#auth').hidden = true;
  $('#app').hidden = false;
  // The admin page only for administrators: the overview answers 403 to everyone else.
  checks.admin = get('/api/admin/overview').then(() => true, () => false).then((ok) => {
    S.features.admin = ok;
    $('#nav-admin').hidden = !ok;
    return ok;
  });
  for (const [feature, path] of [['search', '/api/search/messages?q=chatnode&limit=1'], ['mentions', '/api/mentions?limit=1']]) {
    checks[feature] = has(path).then((ok) => {
      S.features[feature] = ok;
      $(`#nav-${feature}`).hidden = !ok;
      return ok;
    });
  }
  await refreshChannels();
  live.start();
  route();
  poll();
  updateNotifyButton();
  loadOnline();
  get(qs('/api/users', { limit: 100 })).then((r) => r.users.forEach((u) => S.users.add(u.username))).catch(() => {});
}

/** Panels that need an endpoint the node may not have: feature -> Promise<boolean>. */
const checks = {};

async function unauthenticated() {
  try {
    await get('/api/me');
  } catch (e) {
    if (e.status === 401) showAuth();
  }
}

$('#sign-out').addEventListener('click', async () => {
  try {
    await post('/api/auth/logout');
  } catch { /* signed out either way */ }
  showAuth();
});

// ---- channels -----------------------------------------------------------------------------

/** Fetches the channel list; follows new channels (e.g. a DM someone else opened). */
// Channel list requests overlap (sign-in, reconnect, polling, joins): an answer older than one
// already applied is dropped, or it would undo a join made meanwhile.
let listAsked = 0;
let listApplied = 0;

async function refreshChannels() {
  const n = ++listAsked;
  let list;
  try {
    list = await get('/api/channels');
  } catch (e) {
    if (e.status === 401) showAuth();
    return;
  }
  if (n < listApplied) return;
  listApplied = n;
  const fresh = [];
  const seen = new Set();
  for (const s of list) {
    seen.add(s.name);
    const ch = S.channels.get(s.name);
    if (!ch) {
      const c = newChannel(s);
      S.channels.set(s.name, c);
      fresh.push(c);
    } else if (!ch.member) {
      ch.member = true;
      if (S.current === ch.name) chat.updateHeader();
    }
    if (s.peer) S.users.add(s.peer);
  }
  for (const ch of S.channels.values()) {
    if (ch.member && !seen.has(ch.name)) {
      ch.member = false;
      if (S.current === ch.name) chat.updateHeader();
    }
  }
  if (fresh.length) sync.follow(fresh);
  renderSidebar();
  updateTitle();
}

function poll() {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(async () => {
    if (live.open) await refreshChannels();
    if (S.me) poll();
  }, document.visibilityState === 'visible' ? 30000 : 60000);
}

async function loadOnline() {
  try {
    const users = await get('/api/users/online');
    S.online = new Set(users.map((u) => u.username));
    for (const u of users) S.users.add(u.username);
    emit('presence');
  } catch { /* presence frames keep it current */ }
}

on('joined', async (name) => {
  await refreshChannels();
  const ch = S.channels.get(name);
  if (ch) {
    ch.member = true;
    if (S.current === name) chat.show(ch);
  }
  location.hash = `#/c/${enc(name)}`;
});

on('open-channel', async (name) => {
  if (!S.channels.has(name)) await refreshChannels();
  location.hash = `#/c/${enc(name)}`;
});

on('open-message', async ({ channel, id }) => {
  if (!S.channels.has(channel)) await refreshChannels();
  const ch = S.channels.get(channel) || await preview(channel);
  if (!ch) return;
  history.replaceState(null, '', `#/c/${enc(channel)}`);
  showView('chat');
  enterChannel(ch);
  chat.showAt(ch, id);
});

$('#leave-channel').addEventListener('click', async () => {
  const ch = chat.current();
  if (!ch || !window.confirm(`Leave #${ch.name}?`)) return;
  try {
    await post(`/api/channels/${enc(ch.name)}/leave`);
    live.send('unsubscribe', { channels: [ch.name] });
    S.channels.delete(ch.name);
    renderSidebar();
    location.hash = '';
  } catch (e) {
    toast(`Could not leave: ${e.message}`, 'error');
  }
});

$('#join-channel').addEventListener('click', async () => {
  const ch = chat.current();
  if (ch) (await browse()).join(ch.name);
});

/**
 * A channel the list does not hold: a public one the user is not in (read-only, followed live
 * until they move on), or one of their DMs that the list has not brought yet.
 */
async function preview(name) {
  try {
    const page = await get(qs(`/api/channels/${enc(name)}/messages`, { limit: 50 }));
    // Joined (or listed) while the page was on its way: that channel object stays.
    if (S.channels.has(name)) return S.channels.get(name);
    // A DM readable here is one of ours whose summary the channel list has not brought yet.
    const pair = name.startsWith('dm:') ? name.split(':').slice(1) : null;
    const peer = pair ? pair.find((u) => u !== S.me.username) || S.me.username : null;
    const ch = newChannel({ name, kind: pair ? 'dm' : 'public', peer, member: !!pair, last_message: page.messages[page.messages.length - 1] });
    addEvents(ch, page.messages);
    ch.loaded = true;
    ch.hasMore = page.has_more;
    S.channels.set(name, ch);
    sync.follow([ch]);
    return ch;
  } catch (e) {
    toast(e.code === 'channel_not_found' ? `There is no channel #${name}.` : `Could not open #${name}: ${e.message}`, 'error');
    return null;
  }
}

function dropPreviews(keep) {
  for (const ch of [...S.channels.values()]) {
    if (!ch.member && ch.name !== keep && !ch.pending.length) {
      live.send('unsubscribe', { channels: [ch.name] });
      S.channels.delete(ch.name);
    }
  }
}

/** Whether this node has an endpoint: without it the node answers 404 (or search is off). */
async function has(path) {
  try {
    await get(path);
    return true;
  } catch (e) {
    return !(e.status === 404 || e.status === 0 || e.code === 'search_unavailable');
  }
}

// ---- live frames --------------------------------------------------------------------------

function authorized() {
  sync.authorized();
  loadOnline();
  refreshChannels();
}

function frame(type, p) {
  switch (type) {
    case 'message': return sync.event(p);
    case 'subscribed': return sync.subscribed(p);
    case 'posted': return sync.posted(p);
    case 'unread': {
      const ch = S.channels.get(p.channel);
      if (ch && S.current !== ch.name) {
        ch.unread = p.count;
        emit('unread-changed');
      }
      return undefined;
    }
    case 'typing': {
      const ch = S.channels.get(p.channel);
      if (ch) chat.typing(ch, p.username);
      return undefined;
    }
    case 'presence':
      if (p.online) S.online.add(p.username);
      else S.online.delete(p.username);
      emit('presence');
      chat.updateHeader();
      return undefined;
    case 'mention':
      return onMention(p);
    case 'channel_added': return refreshChannels(); // a DM, group or channel we were added to
    case 'channel_removed': return emit('channel-gone', p);
    case 'error': return onError(p);
    default: return undefined;
  }
}

/** A message from someone else, seen for the first time: unread counts, badges, notices. */
function arrived(ch, ev, { quiet }) {
  const me = S.me.username;
  const mention = mentionsMe(ev.text, me);
  ch.unread += 1;
  if (mention) ch.mentions += 1;
  chat.markRead(); // clears it again when the reader is looking at the newest messages
  emit('unread-changed');
  if (!quiet && (mention || ch.kind === 'dm' || ch.kind === 'group')) {
    notify(ev.id, mention ? `${ev.username} mentioned you in ${label(ch)}` : ev.username, ev.text || (ev.voice ? 'Voice message' : ''), () => {
      location.hash = `#/c/${enc(ch.name)}`;
    });
  }
  if (ch.kind === 'dm' || ch.kind === 'group') renderSidebar();
}

/**
 * The user is no longer in a channel (left, removed, banned, or it was deleted; told live on
 * every node): it leaves the list and the screen, and nothing of it is kept.
 */
on('channel-gone', ({ channel, reason }) => {
  const ch = S.channels.get(channel);
  if (!ch) return;
  live.send('unsubscribe', { channels: [channel] });
  S.channels.delete(channel);
  const why = {
    kicked: 'You were removed from', banned: 'You were banned from', channel_deleted: 'This channel was deleted:',
  }[reason];
  if (why) toast(`${why} ${label(ch)}`, 'error');
  renderSidebar();
  updateTitle();
  if (S.current === channel || location.hash.startsWith(`#/info/${enc(channel)}`)) location.hash = '';
});

/** A `mention` notice: someone @mentioned this user, maybe in a channel they do not follow. */
function onMention(ev) {
  if (!ev || !ev.id) return;
  if (!S.channels.get(ev.channel)) {
    unseenMentions += 1;
    renderMentionBadge();
  }
  notify(ev.id, `${ev.username} mentioned you`, ev.text || '', () => emit('open-message', { channel: ev.channel, id: ev.id }));
}

function renderMentionBadge() {
  const nav = $('#nav-mentions');
  const old = nav.querySelector('.badge');
  if (old) old.remove();
  if (unseenMentions) nav.append(h('span', { class: 'badge strong' }, String(unseenMentions)));
}

/**
 * A gap too long to page was dropped (sync.js): the channel shows its newest page again, and its
 * unread count comes from the channel list.
 */
async function reloaded(ch) {
  if (S.current === ch.name) chat.show(ch, { focus: false });
  const summary = (await get('/api/channels').catch(() => [])).find((c) => c.name === ch.name);
  if (summary) ch.unread = summary.unread;
}

function onError(p) {
  const text = sync.error(p);
  // Muted, slow mode, banned: explained above the composer, where the post was refused.
  const why = refusalText(p.code, p.message);
  const ch = S.current && S.channels.get(S.current);
  if (why && ch) {
    const notice = $('#compose-notice');
    notice.dataset.channel = ch.name;
    setText(notice, why);
    notice.hidden = false;
    return;
  }
  if (text) toast(text, 'error');
}

// ---- sending ------------------------------------------------------------------------------

on('send', (text) => {
  const ch = S.current && S.channels.get(S.current);
  if (!ch || !ch.member) return;
  $('#compose-notice').hidden = true;
  const p = sync.queue(ch, text, undefined, ch.replyTo || null);
  ch.replyTo = null;
  if (!ch.atLatest) {
    ch.loaded = false;
    chat.show(ch);
  } else {
    chat.renderPending(ch);
  }
  sync.sendPost(ch, p);
});

// The node answered a voice upload with the stored message: shown now, even before (or without)
// its live event.
on('voice-sent', (message) => sync.voiceSent(message));

on('retry-post', (p) => sync.retry(p));

on('discard-post', (p) => sync.discard(p));

on('typing', () => {
  const ch = S.current && S.channels.get(S.current);
  if (ch && ch.member) live.send('typing', { channel: ch.name });
});

on('read', ({ channel, last_id: lastId }) => {
  if (!live.send('read', { channel, last_id: lastId })) {
    post(`/api/channels/${enc(channel)}/read`, { last_id: lastId }).catch(() => {});
  }
});

on('unread-changed', updateTitle);

// ---- connection banner ----------------------------------------------------------------------

const conn = $('#conn');
let connTimer = 0;
let wasDown = false;

function showConnection(state, info) {
  clearInterval(connTimer);
  conn.dataset.state = state;
  if (state === 'online') {
    sync.socketUp();
    if (wasDown) {
      conn.hidden = false;
      conn.replaceChildren(h('span', null, 'Connected again.'));
      connTimer = setTimeout(() => { if (conn.dataset.state === 'online') conn.hidden = true; }, 2500);
    } else {
      conn.hidden = true;
    }
    wasDown = false;
    return;
  }
  if (state === 'idle') {
    conn.hidden = true;
    return;
  }
  if (state === 'connecting') {
    conn.hidden = false;
    conn.replaceChildren(h('span', null, 'Connecting…'));
    return;
  }
  wasDown = true;
  sync.socketDown(info.code);
  conn.hidden = false;
  const text = h('span');
  const tick = () => {
    const secs = info.at ? Math.ceil((info.at - Date.now()) / 1000) : 0;
    setText(text, secs > 0 ? `Connection lost. Reconnecting in ${secs} s…` : 'Connection lost. Reconnecting…');
  };
  tick();
  conn.replaceChildren(text, ' ', h('button', { type: 'button', class: 'link', onclick: () => live.now() }, 'Retry now'));
  connTimer = setInterval(tick, 1000);
}

// ---- views and routes ---------------------------------------------------------------------

function showView(name) {
  for (const v of $$('#main > .view')) v.hidden = v.id !== `${name}-view`;
  if (name !== 'chat') {
    const prev = S.current && S.channels.get(S.current);
    switchDraft(prev, null);
    S.current = null;
    chat.hide();
  }
  closeNav();
}

function enterChannel(ch) {
  const prev = S.current && S.channels.get(S.current);
  if (prev !== ch) switchDraft(prev, ch);
  S.current = ch.name;
}

async function route() {
  if (!S.me) return;
  const hash = decodeURIComponent(location.hash.replace(/^#\/?/, ''));
  const [kind, ...rest] = hash.split('/');
  const arg = rest.join('/');
  dropPreviews(kind === 'c' ? arg : null);
  if (kind === 'c' && arg) {
    if (!S.channels.has(arg) && arg.startsWith('dm:')) await refreshChannels();
    const ch = S.channels.get(arg) || (await preview(arg));
    if (!ch) {
      location.hash = '#/browse';
      return;
    }
    showView('chat');
    enterChannel(ch);
    chat.show(ch);
  } else if (kind === 'people') {
    const m = await people();
    showView('people');
    if (!$('#people-results').children.length) m.searchPeople();
    $('#pf-q').focus();
  } else if (kind === 'me' || (kind === 'u' && arg)) {
    const m = await people();
    showView('profile');
    m.showProfile(kind === 'u' ? arg : null);
  } else if (kind === 'info' && arg) {
    const m = await import('./info.js');
    showView('info');
    m.showInfo(arg);
  } else if (kind === 'recent') {
    const m = await import('./insights.js');
    showView('recent');
    m.showRecent();
  } else if (kind === 'top') {
    const m = await import('./insights.js');
    showView('top');
    m.showTop();
  } else if (kind === 'admin' && await checks.admin) {
    const m = await import('./admin.js');
    showView('admin');
    m.showAdmin();
  } else if (kind === 'browse') {
    const m = await browse();
    showView('browse');
    m.loadBrowse();
  } else if (kind === 'search' && await checks.search) {
    const m = await import('./search.js');
    showView('search');
    m.prepareSearch();
  } else if (kind === 'mentions' && await checks.mentions) {
    const m = await import('./search.js');
    showView('mentions');
    unseenMentions = 0;
    renderMentionBadge();
    m.showMentions();
  } else {
    const first = [...S.channels.values()].filter((c) => c.member)
      .sort((a, b) => (a.kind === 'public' ? 0 : 1) - (b.kind === 'public' ? 0 : 1) || a.name.localeCompare(b.name))[0];
    if (first) {
      history.replaceState(null, '', `#/c/${enc(first.name)}`);
      route();
      return;
    }
    showView('empty');
  }
  renderSidebar();
  updateTitle();
  for (const el of $$('.view:not([hidden]) h1')) el.tabIndex = -1;
}

window.addEventListener('hashchange', route);
