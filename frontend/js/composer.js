// The message box: Enter sends, Shift+Enter adds a line, typing pings (at most one every 3 s),
// and `@` suggests usernames (arrow keys, Enter or Tab to pick, Escape to close).

import { $, h, avatar, debounce } from './dom.js';
import { S, on, emit } from './state.js';
import { get, qs } from './api.js';

const form = $('#composer');
const ta = $('#compose');
const menu = $('#mention-menu');

let options = [];
let active = 0;
let lastTyping = 0;
let lookupFor = '';

function autosize() {
  ta.style.height = 'auto';
  ta.style.height = `${Math.min(ta.scrollHeight, 180)}px`;
}

// The message being replied to, shown above the box until sent or cancelled.
const replyBar = h('div', { id: 'reply-bar', class: 'reply-bar', hidden: true });
form.prepend(replyBar);
let replyCh = null;

function renderReply() {
  const r = replyCh && replyCh.replyTo;
  replyBar.hidden = !r;
  if (replyBar.hidden) return replyBar.replaceChildren();
  replyBar.replaceChildren(
    h('span', { class: 'reply-label' }, 'Replying to ', h('strong', null, r.username), ': ', h('span', { class: 'excerpt' }, r.excerpt)),
    h('button', { type: 'button', class: 'icon', 'aria-label': 'Cancel the reply', onclick: () => { replyCh.replyTo = null; renderReply(); ta.focus(); } }, '✕'));
}

on('reply-to', ({ ch, ev }) => {
  if (replyCh && replyCh !== ch) replyCh.replyTo = null;
  replyCh = ch;
  ch.replyTo = { id: ev.id, username: ev.username, excerpt: ev.text.length > 100 ? ev.text.slice(0, 100) : ev.text };
  renderReply();
  ta.focus();
});
on('reply-changed', renderReply);

function send() {
  const text = ta.value;
  if (!text.trim()) return;
  emit('send', text);
  renderReply();
  ta.value = '';
  lastTyping = 0;
  autosize();
  closeMenu();
}

/** The `@prefix` right before the caret, if any. */
function mentionAtCaret() {
  const before = ta.value.slice(0, ta.selectionStart);
  const m = before.match(/(^|[\s(])@([a-z0-9_.-]{0,32})$/i);
  return m ? { prefix: m[2].toLowerCase(), start: before.length - m[2].length - 1 } : null;
}

function candidates(prefix) {
  const me = S.me && S.me.username;
  const names = new Set([...S.online, ...S.users]);
  for (const ch of S.channels.values()) if (ch.peer) names.add(ch.peer);
  names.delete(me);
  return [...names]
    .filter((n) => n.startsWith(prefix))
    .sort((a, b) => (S.online.has(b) - S.online.has(a)) || a.localeCompare(b))
    .slice(0, 6);
}

// People found by first or last name join the list a moment later.
const lookup = debounce(async (prefix) => {
  if (prefix.length < 2) return;
  lookupFor = prefix;
  try {
    const r = await get(qs('/api/users', { q: prefix, limit: 10 }));
    for (const u of r.users || []) S.users.add(u.username);
  } catch { /* the local list is enough */ }
  const m = mentionAtCaret();
  if (m && m.prefix === lookupFor && document.activeElement === ta) suggest();
}, 250);

function suggest() {
  const m = mentionAtCaret();
  if (!m) return closeMenu();
  options = candidates(m.prefix);
  if (m.prefix.length >= 2 && m.prefix !== lookupFor) lookup(m.prefix);
  if (!options.length) return closeMenu();
  active = Math.min(active, options.length - 1);
  menu.replaceChildren(...options.map((name, i) =>
    h('li', {
      role: 'option', id: `mm-${i}`, 'aria-selected': i === active ? 'true' : 'false', class: 'mention-opt',
      onmousedown: (e) => { e.preventDefault(); pick(name); },
    }, avatar(name, 'avatar sm'), h('span', null, name), S.online.has(name) ? h('span', { class: 'dot online', title: 'online' }) : null)));
  menu.hidden = false;
  ta.setAttribute('aria-activedescendant', `mm-${active}`);
}

function closeMenu() {
  menu.hidden = true;
  options = [];
  active = 0;
  ta.removeAttribute('aria-activedescendant');
}

function pick(name) {
  const m = mentionAtCaret();
  if (!m) return closeMenu();
  const after = ta.value.slice(ta.selectionStart);
  const head = `${ta.value.slice(0, m.start)}@${name} `;
  ta.value = head + after.replace(/^\s/, '');
  ta.setSelectionRange(head.length, head.length);
  closeMenu();
  autosize();
  ta.focus();
}

ta.addEventListener('keydown', (e) => {
  if (!menu.hidden && options.length) {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      active = (active + (e.key === 'ArrowDown' ? 1 : options.length - 1)) % options.length;
      suggest();
      return;
    }
    if ((e.key === 'Enter' && !e.shiftKey) || e.key === 'Tab') {
      e.preventDefault();
      pick(options[active]);
      return;
    }
    if (e.key === 'Escape') {
      e.preventDefault();
      closeMenu();
      return;
    }
  }
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  } else if (e.key === 'ArrowUp' && !ta.value && !e.shiftKey) {
    e.preventDefault();
    emit('edit-last');
  } else if (e.key === 'Escape' && replyCh && replyCh.replyTo) {
    replyCh.replyTo = null;
    renderReply();
  }
});

ta.addEventListener('input', () => {
  autosize();
  suggest();
  const now = Date.now();
  if (ta.value.trim() && now - lastTyping > 3000) {
    lastTyping = now;
    emit('typing');
  }
});
ta.addEventListener('click', suggest);
ta.addEventListener('blur', () => setTimeout(closeMenu, 100));
form.addEventListener('submit', (e) => {
  e.preventDefault();
  send();
  ta.focus();
});

// Voice messages: the recorder loads on the first press of the microphone button.
const recordBtn = $('#record');
const voice = () => import('./voice.js');
let voiceLoaded = null;
recordBtn.hidden = !(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder && window.OfflineAudioContext);
recordBtn.addEventListener('click', async () => {
  if (!S.current) return;
  voiceLoaded = await voice();
  voiceLoaded.start(S.current);
});
on('voice-off', () => {
  recordBtn.hidden = true;
});

/** Keeps a half-typed message with its channel when switching to another. */
export function switchDraft(from, to) {
  if (voiceLoaded && voiceLoaded.recording()) voiceLoaded.cancel();
  if (from) from.draft = ta.value;
  ta.value = (to && to.draft) || '';
  replyCh = to && to.replyTo ? to : null;
  renderReply();
  lastTyping = 0;
  autosize();
  closeMenu();
}
