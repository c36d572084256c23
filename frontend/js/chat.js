// The message view: day separators, grouped messages, own messages set apart, join/leave lines,
// scrolling back through history, windows around a search hit, and the jump to the newest.

import { $, h, setText, richText, mentionsMe, fmtTime, fmtFull, fmtDay, fmtLength, dayKey, avatar, toast } from './dom.js';
import { S, on, emit, label, addEvents, resetEvents, reachLatest, idBefore } from './state.js';
import { get, qs, enc } from './api.js';
import { memberEventText } from './members.js';
import { formatted, quote, editedMark, chips, menuButton, showMenu, startEdit, isEditing, closeThread } from './msgactions.js';

const PAGE = 50;
const GROUP_MS = 5 * 60 * 1000;

const box = $('#messages');
const list = $('#message-list');
const pendingList = h('ol', { class: 'message-list pending-list', 'aria-label': 'Messages being sent' });
list.after(pendingList);
const older = $('#older');
const jump = $('#jump');
const typingLine = $('#typing');

let shown = null; // channel object on screen
let lastShown = null; // last event rendered in `list`
let pinned = true; // the view follows new messages
let newBelow = 0;

const meName = () => S.me && S.me.username;

function atBottom() {
  return box.scrollHeight - box.scrollTop - box.clientHeight < 60;
}

function scrollToBottom() {
  box.scrollTop = box.scrollHeight;
  pinned = true;
  newBelow = 0;
}

function timeEl(ms) {
  return h('time', { datetime: new Date(ms).toISOString(), title: fmtFull(ms) }, fmtTime(ms));
}

function dayItem(ms) {
  return h('li', { class: 'day' }, h('span', null, fmtDay(ms)));
}

function sameGroup(prev, ev) {
  return prev && prev.type === 'message' && prev.username === ev.username &&
    ev.created_at - prev.created_at < GROUP_MS && dayKey(prev.created_at) === dayKey(ev.created_at);
}

function eventItem(ev, prev) {
  if (ev.type === 'join' || ev.type === 'leave') {
    return h('li', { class: 'event', data: { id: ev.id } },
      h('span', { class: 'who' }, ev.username), ev.type === 'join' ? ' joined' : ' left', ' · ', timeEl(ev.created_at));
  }
  const memberLine = memberEventText(ev);
  if (memberLine) {
    return h('li', { class: 'event member-event', data: { id: ev.id, type: ev.type } }, memberLine, ' · ', timeEl(ev.created_at));
  }
  if (ev.type !== 'message') return null;
  if (ev.deleted) {
    return h('li', { class: 'msg deleted', data: { id: ev.id } },
      h('div', { class: 'bubble' }, h('p', { class: 'text tombstone' }, 'This message was deleted.'), chips(shown, ev)));
  }
  const own = ev.username === meName();
  const grouped = sameGroup(prev, ev) && !ev.reply_to;
  let cls = 'msg';
  if (own) cls += ' own';
  if (grouped) cls += ' grouped';
  if (!own && mentionsMe(ev.text, meName())) cls += ' mentions-me';
  const ch = shown;
  const li = h('li', { class: cls, data: { id: ev.id, user: ev.username } },
    own || grouped ? null : avatar(ev.username),
    h('div', { class: 'bubble' },
      h('div', { class: grouped ? 'meta sr-only' : 'meta' },
        h('a', { class: own ? 'who sr-only' : 'who', href: `#/u/${enc(ev.username)}` }, own ? 'You' : ev.username),
        ' ', timeEl(ev.created_at)),
      quote(ch, ev),
      ev.voice ? voiceBody(ev) : h('p', { class: 'text' }, formatted(ev.text), editedMark(ev)),
      chips(ch, ev),
      ch.member ? menuButton(ch, ev) : null));
  // A long press opens the menu on touch screens.
  let press = 0;
  const cancel = () => clearTimeout(press);
  li.addEventListener('touchstart', () => {
    cancel();
    press = setTimeout(() => {
      const more = li.querySelector('.more');
      if (more) showMenu(ch, ev, more);
    }, 500);
  }, { passive: true });
  for (const type of ['touchend', 'touchmove', 'touchcancel']) li.addEventListener(type, cancel, { passive: true });
  return li;
}

/** The transcript line of a voice message in its current state. */
function transcriptLine(ev) {
  const v = ev.voice;
  const state = v.state || 'pending';
  let body;
  if (state === 'done') body = ev.text ? richText(ev.text, meName()) : h('span', { class: 'muted' }, 'Nothing was said.');
  else if (state === 'pending') body = 'Transcribing…';
  else if (state === 'failed') body = `No transcript: ${v.error || 'transcription failed'}`;
  else body = 'No transcript (transcription is not running on this server).';
  return h('p', { class: `text transcript ${state}`, 'aria-live': state === 'pending' ? 'polite' : null }, body);
}

/** A voice message: a player (the audio loads when played) and the transcript below it. */
function voiceBody(ev) {
  const v = ev.voice;
  const length = fmtLength(v.duration_ms);
  return [
    h('div', { class: 'voice' },
      h('audio', { controls: true, preload: 'none', src: `/api/audio/${enc(v.audio)}`, 'aria-label': `Voice message, ${length}` }),
      h('span', { class: 'voice-length', title: 'Length' }, length)),
    transcriptLine(ev),
  ];
}

/** A voice message's transcript arrived: its line is redrawn where it is shown. */
export function voiceUpdated(ch, ev) {
  if (ch !== shown) return;
  const li = list.querySelector(`li[data-id="${CSS.escape(ev.id)}"]`);
  const old = li && li.querySelector('.transcript');
  if (!old) return;
  const follow = pinned;
  old.replaceWith(transcriptLine(ev));
  li.classList.toggle('mentions-me', ev.username !== meName() && mentionsMe(ev.text, meName()));
  if (follow) scrollToBottom();
}

function itemsFor(evs, prev) {
  const out = [];
  for (const ev of evs) {
    if (!prev || dayKey(prev.created_at) !== dayKey(ev.created_at)) out.push(dayItem(ev.created_at));
    const li = eventItem(ev, prev);
    if (li) {
      out.push(li);
      prev = ev;
    }
  }
  return { items: out, last: prev };
}

function renderAll() {
  const ch = shown;
  const { items, last } = itemsFor(ch.events, null);
  list.replaceChildren(...items);
  lastShown = last;
  renderPending(ch);
  renderOlder();
}

function renderOlder() {
  const ch = shown;
  if (ch.loading) setText(older, 'Loading…');
  else if (!ch.hasMore && ch.loaded) setText(older, ch.kind === 'dm' ? `This is the start of your conversation with ${ch.peer}.` : `This is the start of #${ch.name}.`);
  else setText(older, '');
}

export function renderPending(ch) {
  if (ch !== shown) return;
  const items = (ch.atLatest ? ch.pending : []).map((p) =>
    h('li', { class: `msg own pending ${p.state}`, data: { cid: p.cid } },
      h('div', { class: 'bubble' },
        h('p', { class: 'text' }, richText(p.text, meName())),
        h('p', { class: 'status' },
          p.state === 'failed' ? [
            `Not sent${p.error ? `: ${p.error}` : ''} `,
            h('button', { type: 'button', class: 'link', onclick: () => emit('retry-post', p) }, 'Retry'), ' ',
            h('button', { type: 'button', class: 'link', onclick: () => emit('discard-post', p) }, 'Discard'),
          ] : 'Sending…'))));
  pendingList.replaceChildren(...items);
  if (pinned) scrollToBottom();
}

function updateJump() {
  const show = shown && (!pinned || !shown.atLatest);
  jump.hidden = !show;
  setText(jump.firstChild, newBelow ? `${newBelow} new message${newBelow > 1 ? 's' : ''} ` : 'Jump to newest ');
}

export function updateHeader() {
  const ch = shown;
  if (!ch) return;
  setText($('#chat-title'), label(ch));
  $('#chat-view').dataset.channel = ch.name;
  let sub = '';
  if (ch.kind === 'dm') sub = S.online.has(ch.peer) ? 'Online' : 'Offline';
  else if (ch.kind === 'private') sub = 'Private channel';
  else if (ch.kind === 'group') sub = 'Group conversation';
  else if (!ch.member) sub = 'Public channel · not joined';
  else sub = 'Public channel';
  setText($('#chat-sub'), sub);
  $('#chat-sub').classList.toggle('is-online', ch.kind === 'dm' && S.online.has(ch.peer));
  $('#leave-channel').hidden = !(ch.kind !== 'dm' && ch.member);
  $('#channel-info').setAttribute('href', `#/info/${enc(ch.name)}`);
  $('#channel-info').hidden = ch.kind === 'dm';
  const notice = $('#compose-notice');
  if (notice.dataset.channel !== ch.name) notice.hidden = true;
  $('#join-bar').hidden = ch.member;
  $('#composer').hidden = !ch.member;
  $('#compose').placeholder = `Message ${label(ch)}`;
}

/** Shows a channel; loads its newest page the first time. */
export function show(ch, { focus = true } = {}) {
  const changed = shown !== ch;
  if (changed) closeThread();
  shown = ch;
  if (changed) {
    pinned = true;
    newBelow = 0;
    renderTyping(ch);
  }
  updateHeader();
  renderAll();
  if (changed || pinned) scrollToBottom();
  updateJump();
  if (!ch.loaded) loadNewest(ch);
  else fill(ch);
  markRead();
  if (focus && ch.member && window.matchMedia('(min-width: 721px)').matches) $('#compose').focus();
}

export function hide() {
  shown = null;
  closeThread();
}

export const current = () => shown;

/** One page of a channel's history, or null when the loaded range was replaced meanwhile. */
async function page(ch, params) {
  const gen = ch.gen;
  const p = await get(qs(`/api/channels/${enc(ch.name)}/messages`, { limit: PAGE, ...params }));
  if (gen !== ch.gen) return null;
  for (const ev of p.messages) S.users.add(ev.username);
  return p;
}

async function loadNewest(ch) {
  if (ch.loading) return;
  if (!ch.atLatest) {
    // A window in the past was shown: start over at the newest.
    resetEvents(ch);
    ch.atLatest = true;
  }
  ch.loading = true;
  if (ch === shown) renderOlder();
  const gen = ch.gen;
  try {
    const p = await page(ch, {});
    if (!p) return;
    // Live events that came while the page was on its way are kept: the union has no gap.
    addEvents(ch, p.messages);
    ch.hasMore = p.has_more;
    ch.loaded = true;
  } catch (e) {
    toast(`Could not load ${label(ch)}: ${e.message}`, 'error');
  } finally {
    if (gen === ch.gen) ch.loading = false;
  }
  if (ch === shown && gen === ch.gen) {
    renderAll();
    scrollToBottom();
    updateJump();
    fill(ch);
    markRead();
  }
}

/** Loads older pages until the view can scroll (or the beginning is reached). */
function fill(ch) {
  if (ch === shown && ch.loaded && ch.hasMore && !ch.loading && box.scrollHeight <= box.clientHeight + 40) loadOlder(ch);
}

async function loadOlder(ch) {
  if (ch.loading || !ch.hasMore || !ch.events.length) return;
  if (Date.now() - (ch.failedAt || 0) < 5000) return; // after an error, wait before asking again
  ch.loading = true;
  renderOlder();
  const gen = ch.gen;
  let p = null;
  try {
    p = await page(ch, { before: ch.events[0].id });
    if (p) {
      addEvents(ch, p.messages);
      ch.hasMore = p.has_more;
    }
  } catch (e) {
    ch.failedAt = Date.now();
    toast(`Could not load earlier messages: ${e.message}`, 'error');
  } finally {
    if (gen === ch.gen) ch.loading = false;
  }
  if (ch !== shown || gen !== ch.gen) return;
  // Keep the message under the reader's eyes where it was.
  const fromBottom = box.scrollHeight - box.scrollTop;
  renderAll();
  box.scrollTop = box.scrollHeight - fromBottom;
  fill(ch);
}

async function loadNewer(ch) {
  if (ch.loading || ch.atLatest || !ch.events.length) return;
  if (Date.now() - (ch.failedAt || 0) < 5000) return;
  ch.loading = true;
  const gen = ch.gen;
  try {
    const p = await page(ch, { after: ch.events[ch.events.length - 1].id });
    if (!p) return;
    let { inserted, appended } = addEvents(ch, p.messages);
    if (!p.has_more) {
      // Caught up: what arrived live meanwhile follows.
      const b = reachLatest(ch);
      inserted = inserted || b.inserted;
      appended = appended.concat(b.appended);
    }
    if (ch === shown) {
      if (inserted) renderAll();
      else append(ch, appended);
      renderPending(ch);
      markRead();
    }
  } catch (e) {
    ch.failedAt = Date.now();
    toast(`Could not load newer messages: ${e.message}`, 'error');
  } finally {
    if (gen === ch.gen) ch.loading = false;
  }
  updateJump();
}

function append(ch, evs) {
  if (!evs.length) return;
  const follow = pinned;
  const { items, last } = itemsFor(evs, lastShown);
  list.append(...items);
  lastShown = last;
  if (follow) scrollToBottom();
  else newBelow += evs.filter((e) => e.type === 'message').length;
  updateJump();
}

/** New events were added to a channel (live or replayed). */
export function eventsAdded(ch, { appended, inserted }) {
  if (ch !== shown) return;
  if (inserted) {
    const fromBottom = box.scrollHeight - box.scrollTop;
    renderAll();
    if (pinned) scrollToBottom();
    else box.scrollTop = box.scrollHeight - fromBottom;
  } else {
    append(ch, appended);
  }
  for (const ev of appended) clearTyping(ch, ev.username);
  markRead();
}

/** Opens a channel at one message (e.g. from search), loading the history around it. */
export async function showAt(ch, id) {
  if (!ch.ids.has(id)) {
    // Drop the loaded range; live events wait in the buffer until paging forward reaches them.
    resetEvents(ch);
    const gen = ch.gen;
    ch.atLatest = false;
    ch.hasMore = false;
    ch.loaded = true;
    ch.loading = true;
    show(ch, { focus: false });
    let failed = false;
    try {
      const [before, after] = await Promise.all([
        page(ch, { before: id, limit: 20 }),
        page(ch, { after: idBefore(id), limit: 30 }),
      ]);
      if (!before || !after) return;
      addEvents(ch, before.messages);
      addEvents(ch, after.messages);
      ch.hasMore = before.has_more;
      if (!after.has_more) reachLatest(ch);
    } catch (e) {
      if (gen !== ch.gen) return;
      toast(`Could not open that message: ${e.message}`, 'error');
      failed = true;
    } finally {
      if (gen === ch.gen) ch.loading = false;
    }
    if (failed) {
      ch.loaded = false;
      ch.atLatest = true;
      if (ch === shown) show(ch);
      return;
    }
    if (ch !== shown) return;
    renderAll();
  } else {
    show(ch, { focus: false });
  }
  const li = list.querySelector(`li[data-id="${CSS.escape(id)}"]`);
  if (li) {
    pinned = false;
    li.scrollIntoView({ block: 'center' });
    li.classList.add('flash');
    li.tabIndex = -1;
    li.focus({ preventScroll: true });
    setTimeout(() => li.classList.remove('flash'), 2500);
  }
  updateJump();
}

async function jumpToNewest() {
  const ch = shown;
  if (!ch) return;
  if (!ch.atLatest) {
    ch.loaded = false;
    await loadNewest(ch);
  } else {
    scrollToBottom();
    updateJump();
    markRead();
  }
  $('#compose').focus();
}

/** Marks the open channel read up to its newest event when the reader can see it. */
export function markRead() {
  const ch = shown;
  if (!ch || !ch.atLatest || !ch.events.length || document.visibilityState !== 'visible' || !pinned) return;
  if (S.current !== ch.name) return;
  const last = ch.events[ch.events.length - 1].id;
  const changed = ch.unread || ch.mentions;
  if (ch.readId !== last) {
    ch.readId = last;
    emit('read', { channel: ch.name, last_id: last });
  }
  if (changed) {
    ch.unread = 0;
    ch.mentions = 0;
    emit('unread-changed');
  }
}

// Typing indicator.
export function typing(ch, username) {
  if (username === meName()) return;
  clearTimeout(ch.typing.get(username));
  ch.typing.set(username, setTimeout(() => clearTyping(ch, username), 6000));
  renderTyping(ch);
}

function clearTyping(ch, username) {
  if (!ch.typing.has(username)) return;
  clearTimeout(ch.typing.get(username));
  ch.typing.delete(username);
  renderTyping(ch);
}

function renderTyping(ch) {
  if (ch !== shown) return;
  const names = [...ch.typing.keys()];
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = 'Several people are typing…';
  setText(typingLine, text);
}

box.addEventListener('scroll', () => {
  const ch = shown;
  if (!ch) return;
  pinned = atBottom();
  if (pinned) newBelow = 0;
  if (box.scrollTop < 300) loadOlder(ch);
  if (pinned && !ch.atLatest) loadNewer(ch);
  updateJump();
  if (pinned) markRead();
}, { passive: true });

new ResizeObserver(() => {
  if (shown && pinned) box.scrollTop = box.scrollHeight;
}).observe(box);

document.addEventListener('visibilitychange', markRead);
on('voice-updated', ({ ch, ev }) => voiceUpdated(ch, ev));

// A message changed (edited, deleted, reacted to, replied to): the list is drawn again, keeping
// the reader's place and the focus, once for all the changes of one turn of the event loop.
let redraw = false;
on('message-updated', ({ ch }) => {
  if (ch !== shown || redraw) return;
  redraw = true;
  queueMicrotask(() => {
    redraw = false;
    if (!shown || isEditing()) return;
    const active = document.activeElement;
    const activeLi = active && list.contains(active) ? active.closest('li') : null;
    const focus = activeLi && { id: activeLi.dataset.id, key: active.dataset.key };
    const fromBottom = box.scrollHeight - box.scrollTop;
    renderAll();
    if (pinned) scrollToBottom();
    else box.scrollTop = box.scrollHeight - fromBottom;
    if (focus) {
      const li = list.querySelector(`li[data-id="${CSS.escape(focus.id)}"]`);
      const el = li && (focus.key ? li.querySelector(`[data-key="${CSS.escape(focus.key)}"]`) : null);
      if (el) el.focus();
      else if (li) (li.querySelector('.more') || li).focus();
    }
  });
});
on('jump-to', ({ ch, id }) => showAt(ch, id));
// ↑ in an empty message box edits your last message.
on('edit-last', () => {
  const ch = shown;
  if (!ch) return;
  const mine = ch.events.filter((e) => e.type === 'message' && e.username === meName() && !e.deleted && !e.voice);
  const last = mine[mine.length - 1];
  if (!last) return;
  const li = list.querySelector(`li[data-id="${CSS.escape(last.id)}"]`);
  if (li) li.scrollIntoView({ block: 'nearest' });
  startEdit(ch, last);
});
jump.addEventListener('click', jumpToNewest);
box.addEventListener('keydown', (e) => {
  if (e.key === 'End' && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    jumpToNewest();
  }
});
