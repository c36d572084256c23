// chatnode's browser client: signs in, keeps the channel list, follows every channel live over
// /ws, and resumes from the last IDs seen after any reconnect, so nothing is missed or doubled.

import { $, $$, h, setText, toast, mentionsMe } from './dom.js';
import { S, on, emit, cmpId, newChannel, addEvents, resetEvents, label } from './state.js';
import { get, post, qs, enc } from './api.js';
import { Live } from './live.js';
import * as chat from './chat.js';
import { switchDraft } from './composer.js';
import { renderSidebar, setMe, closeNav } from './sidebar.js';
import { updateTitle, updateNotifyButton, notify } from './notify.js';

const live = new Live({ authorized, frame, state: showConnection, unauthenticated });
const ownIds = new Set(); // IDs the node confirmed for this client's posts
let inflight = []; // posts sent on this socket, awaiting `posted` or `error`, oldest first
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
  if (fresh.length) follow(fresh);
  renderSidebar();
  updateTitle();
}

// Resuming many channels at once can replay more than the node queues for one socket (it then
// closes with 1013), so channels are resumed a few at a time: the next few once the last are in.
const RESUME_BATCH = 5;
let resumeQueue = [];
let resumeWaiting = new Set();
let resumeBatch = RESUME_BATCH;

/** Asks the socket for the live events of channels, from their cursors on. */
function follow(chans) {
  for (const ch of chans) {
    ch.subscribed = false;
    if (!resumeQueue.includes(ch.name) && !resumeWaiting.has(ch.name)) resumeQueue.push(ch.name);
  }
  resumeNext();
}

function resumeNext() {
  if (!live.open || resumeWaiting.size) return;
  const channels = {};
  for (const name of resumeQueue.splice(0, resumeBatch)) {
    const ch = S.channels.get(name);
    if (!ch) continue;
    channels[name] = ch.cursor;
    resumeWaiting.add(name);
  }
  if (resumeWaiting.size) live.send('resume', { channels });
}

function resumed(name) {
  if (resumeWaiting.delete(name) && !resumeWaiting.size) resumeNext();
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
    follow([ch]);
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
  inflight = [];
  resumeQueue = [];
  resumeWaiting = new Set();
  follow([...S.channels.values()]);
  loadOnline();
  refreshChannels();
}

function frame(type, p) {
  switch (type) {
    case 'message': return onEvent(p);
    case 'subscribed': return onSubscribed(p);
    case 'posted': return onPosted(p);
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
    case 'channel_added': return refreshChannels(); // a DM was opened with us: list and follow it
    case 'error': return onError(p);
    default: return undefined;
  }
}

function onEvent(ev, { quiet = false } = {}) {
  const ch = S.channels.get(ev.channel);
  if (!ch || !ev.id) return;
  if (cmpId(ev.id, ch.cursor) > 0) {
    ch.cursor = ev.id;
    ch.last = ev;
  }
  S.users.add(ev.username);
  const me = S.me.username;
  const fresh = !ch.ids.has(ev.id) && !ownIds.has(ev.id);
  if (ev.type === 'message' && ev.username === me && fresh) ackEcho(ch, ev);
  if (ch.atLatest) {
    const r = addEvents(ch, [ev]);
    if (r.appended.length || r.inserted) chat.eventsAdded(ch, r);
  } else {
    ch.buffer.push(ev);
  }
  if (!fresh || ev.type !== 'message' || ev.username === me) return;
  const mention = mentionsMe(ev.text, me);
  ch.unread += 1;
  if (mention) ch.mentions += 1;
  chat.markRead(); // clears it again when the reader is looking at the newest messages
  emit('unread-changed');
  if (!quiet && (mention || ch.kind === 'dm')) {
    notify(ev.id, mention ? `${ev.username} mentioned you in ${label(ch)}` : ev.username, ev.text || (ev.voice ? 'Voice message' : ''), () => {
      location.hash = `#/c/${enc(ch.name)}`;
    });
  }
  if (ch.kind === 'dm') renderSidebar();
}

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

/** One of this client's posts came back as a live event before (or without) its `posted`. */
function ackEcho(ch, ev) {
  const i = ch.pending.findIndex((p) => p.state === 'sent' && p.text === ev.text);
  if (i < 0) return;
  const [p] = ch.pending.splice(i, 1);
  inflight = inflight.filter((x) => x !== p);
  chat.renderPending(ch);
}

function onSubscribed(p) {
  resumed(p.channel);
  const ch = S.channels.get(p.channel);
  if (!ch) return;
  ch.subscribed = true;
  if (p.last_id && cmpId(p.last_id, ch.cursor) > 0) ch.cursor = p.last_id;
  if (p.gap) fillGap(ch, p.gap).then(() => flushPending(ch));
  else flushPending(ch);
}

/**
 * Posts queued while offline, and posts whose fate the last socket never told (they were not in
 * the replay just received, so they were not stored), go out now.
 */
function flushPending(ch) {
  if (ch.gapping) return;
  for (const post of ch.pending) if (post.state !== 'failed') sendPost(ch, post);
}

/**
 * Too much was missed for the node to replay: `subscribed.gap` names the range, read here page by
 * page as if it had been replayed. If it is very long, the channel is loaded afresh instead.
 */
async function fillGap(ch, gap) {
  ch.gapping = true;
  const path = `/api/channels/${enc(ch.name)}/messages`;
  const got = [];
  let after = gap.after;
  let complete = false;
  try {
    for (let i = 0; i < 10 && !complete; i += 1) {
      const page = await get(qs(path, { after, limit: 200 }));
      for (const ev of page.messages) {
        if (cmpId(ev.id, gap.until) > 0) complete = true;
        else got.push(ev);
      }
      if (!page.has_more || !page.messages.length) complete = true;
      else after = page.messages[page.messages.length - 1].id;
    }
  } catch { /* treated as too long */ }
  ch.gapping = false;
  for (const ev of got) onEvent(ev, { quiet: true });
  if (!complete) {
    resetEvents(ch);
    ch.loaded = false;
    ch.atLatest = true;
    for (const post of ch.pending) {
      if (post.state === 'sent') {
        post.state = 'failed';
        post.error = 'the connection dropped before it was confirmed; check before retrying';
      }
    }
    if (S.current === ch.name) chat.show(ch, { focus: false });
    const summary = (await get('/api/channels').catch(() => [])).find((c) => c.name === ch.name);
    if (summary) ch.unread = summary.unread;
  }
  chat.renderPending(ch);
  emit('unread-changed');
}

function onPosted(p) {
  const ch = S.channels.get(p.channel);
  inflight = inflight.filter((x) => x.cid !== p.client_id);
  ownIds.add(p.id);
  if (!ch) return;
  const i = ch.pending.findIndex((x) => x.cid === p.client_id);
  if (i < 0) return;
  const [post] = ch.pending.splice(i, 1);
  if (ch.atLatest) {
    const ev = { id: p.id, channel: ch.name, type: 'message', username: S.me.username, text: post.text, created_at: p.created_at };
    const r = addEvents(ch, [ev]);
    chat.eventsAdded(ch, r);
  }
  chat.renderPending(ch);
}

function onError(p) {
  const payload = p.payload || {};
  if (payload.channel) {
    resumed(payload.channel);
    const ch = S.channels.get(payload.channel);
    if (ch) ch.subscribed = false;
    toast(`${payload.channel}: ${p.message}`, 'error');
    return;
  }
  // Answers come in the order frames were sent: an error with no channel named is the answer to
  // the oldest post still waiting, if any.
  const post = inflight.shift();
  if (post) {
    post.state = 'failed';
    post.error = p.message;
    const ch = S.channels.get(post.channel);
    if (ch) chat.renderPending(ch);
  } else if (p.code !== 'forbidden') {
    toast(p.message || 'Something went wrong', 'error');
  }
}

// ---- sending ------------------------------------------------------------------------------

function sendPost(ch, p) {
  if (!ch.subscribed || !live.send('post', { channel: ch.name, text: p.text, client_id: p.cid })) return;
  p.state = 'sent';
  inflight.push(p);
}

on('send', (text) => {
  const ch = S.current && S.channels.get(S.current);
  if (!ch || !ch.member) return;
  const p = { cid: crypto.randomUUID(), channel: ch.name, text, state: 'queued' };
  ch.pending.push(p);
  if (!ch.atLatest) {
    ch.loaded = false;
    chat.show(ch);
  } else {
    chat.renderPending(ch);
  }
  sendPost(ch, p);
});

// The node answered a voice upload with the stored message: shown now, even before (or without)
// its live event.
on('voice-sent', (message) => {
  if (!message || !message.id) return;
  ownIds.add(message.id);
  onEvent(message, { quiet: true });
});

on('retry-post', (p) => {
  const ch = S.channels.get(p.channel);
  if (!ch) return;
  p.state = 'queued';
  p.error = '';
  chat.renderPending(ch);
  sendPost(ch, p);
});

on('discard-post', (p) => {
  const ch = S.channels.get(p.channel);
  if (!ch) return;
  ch.pending = ch.pending.filter((x) => x !== p);
  chat.renderPending(ch);
});

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
    for (const ch of S.channels.values()) ch.subscribed = false;
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
  // Closed for reading too slowly (1013): resume one channel at a time from now on.
  if (info.code === 1013) resumeBatch = 1;
  for (const ch of S.channels.values()) ch.subscribed = false;
  inflight = [];
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
