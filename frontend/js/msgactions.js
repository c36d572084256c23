// What can be done to a message on screen: the menu on each message (Reply, React, Edit, Delete),
// the emoji picker, reaction chips, the inline editor, the quote of a reply and the thread panel.
// Changes go to the REST API; every other client learns them from the channel's events.

import { $, h, richText, toast, fmtFull } from './dom.js';
import { S, emit, on } from './state.js';
import { api, get, qs, enc } from './api.js';
import { render } from './format.js';

/** The picker's emoji. */
export const COMMON_EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢', '🙏', '👀'];

const me = () => S.me && S.me.username;
const path = (ch, id, rest = '') => `/api/channels/${enc(ch.name)}/messages/${enc(id)}${rest}`;
const itemOf = (id) => document.querySelector(`#message-list li[data-id="${CSS.escape(id)}"]`);

/** A message text with its formatting, links and mentions, as DOM nodes. */
export function formatted(text) {
  return render(text, h, (t) => richText(t, me()));
}

/** The quote above a reply: who and what it answers; a click goes to the original. */
export function quote(ch, ev) {
  const r = ev.reply_to;
  if (!r) return null;
  const body = r.deleted
    ? h('span', { class: 'excerpt' }, 'Deleted message')
    : [h('span', { class: 'who' }, r.username), ' ', h('span', { class: 'excerpt' }, r.excerpt || '')];
  return h('button', {
    type: 'button', class: 'quote', title: 'Go to the message replied to',
    onclick: () => emit('jump-to', { ch, id: r.id }),
  }, h('span', { class: 'sr-only' }, 'In reply to '), body);
}

/** "(edited)" after an edited message's text. */
export function editedMark(ev) {
  return ev.edited_at ? h('span', { class: 'edited', title: `Edited ${fmtFull(ev.edited_at)}` }, ' (edited)') : null;
}

/** Reaction chips (yours pressed; a click toggles) and the count of replies (opens the thread). */
export function chips(ch, ev) {
  const items = Object.entries(ev.reactions || {}).map(([emoji, r]) =>
    h('button', {
      type: 'button', class: r.me ? 'chip mine' : 'chip', 'aria-pressed': r.me ? 'true' : 'false',
      'aria-label': `${emoji} ${r.count}`, data: { key: `chip:${emoji}` },
      onclick: () => react(ch, ev, emoji, !r.me),
    }, h('span', { 'aria-hidden': 'true' }, emoji), h('span', { 'aria-hidden': 'true' }, ` ${r.count}`)));
  const n = ev.reply_count || 0;
  const replies = n ? h('button', { type: 'button', class: 'link replies', data: { key: 'replies' }, onclick: () => openThread(ch, ev) },
    `${n} ${n === 1 ? 'reply' : 'replies'}`) : null;
  if (!items.length && !replies) return null;
  return h('div', { class: 'reactions' }, items, replies);
}

// ---- menus ----------------------------------------------------------------------------------

let popup = null;

function closePopup({ refocus = false } = {}) {
  if (!popup) return;
  const { el, anchor } = popup;
  popup = null;
  el.remove();
  if (anchor) anchor.removeAttribute('aria-expanded');
  if (refocus && anchor && anchor.isConnected) anchor.focus();
}

/** A small menu of buttons by `anchor`: arrow keys move, Escape closes. */
function openPopup(anchor, label, items, cls = 'msg-menu') {
  closePopup();
  const el = h('div', { class: cls, role: 'menu', 'aria-label': label }, items);
  el.addEventListener('keydown', (e) => {
    const buttons = [...el.querySelectorAll('button')];
    const i = buttons.indexOf(document.activeElement);
    if (e.key === 'Escape') {
      e.preventDefault();
      closePopup({ refocus: true });
    } else if (['ArrowDown', 'ArrowRight', 'ArrowUp', 'ArrowLeft'].includes(e.key)) {
      e.preventDefault();
      const step = e.key === 'ArrowDown' || e.key === 'ArrowRight' ? 1 : buttons.length - 1;
      buttons[(i + step) % buttons.length].focus();
    }
  });
  (anchor.closest('.bubble') || anchor.parentElement).append(el);
  popup = { el, anchor };
  anchor.setAttribute('aria-expanded', 'true');
  el.querySelector('button').focus();
}

document.addEventListener('click', (e) => {
  if (popup && !popup.el.contains(e.target) && e.target !== popup.anchor) closePopup();
});

/** The "⋯" button of a message: its menu. Reachable by Tab, shown on hover and focus. */
export function menuButton(ch, ev) {
  return h('button', {
    type: 'button', class: 'more', 'aria-label': 'Message actions', 'aria-haspopup': 'menu', data: { key: 'more' },
    onclick: (e) => {
      e.stopPropagation();
      showMenu(ch, ev, e.currentTarget);
    },
  }, '⋯');
}

/** The menu of one message: Reply, React, Edit and Delete (the last two for your own). */
export function showMenu(ch, ev, anchor) {
  const own = ev.username === me();
  const item = (label, fn) => h('button', {
    type: 'button', role: 'menuitem',
    onclick: (e) => {
      e.stopPropagation();
      closePopup();
      fn();
    },
  }, label);
  openPopup(anchor, 'Message actions', [
    item('Reply', () => emit('reply-to', { ch, ev })),
    item('React', () => showPicker(ch, ev, anchor)),
    own && !ev.voice ? item('Edit', () => startEdit(ch, ev)) : null,
    own ? item('Delete', () => remove(ch, ev)) : null,
  ]);
}

/** The emoji picker for one message. */
export function showPicker(ch, ev, anchor) {
  openPopup(anchor, 'React with', COMMON_EMOJI.map((emoji) => {
    const mine = Boolean(ev.reactions && ev.reactions[emoji] && ev.reactions[emoji].me);
    return h('button', {
      type: 'button', role: 'menuitemcheckbox', 'aria-checked': mine ? 'true' : 'false', 'aria-label': emoji,
      onclick: (e) => {
        e.stopPropagation();
        closePopup();
        react(ch, ev, emoji, !mine);
      },
    }, emoji);
  }), 'msg-menu picker');
}

// ---- the actions --------------------------------------------------------------------------

/** Gives (`add`) or takes back a reaction; the answer is the message's reactions as they now are. */
export async function react(ch, ev, emoji, add) {
  try {
    const summary = await api(add ? 'PUT' : 'DELETE', path(ch, ev.id, `/reactions/${enc(emoji)}`));
    if (summary && Object.keys(summary).length) ev.reactions = summary;
    else delete ev.reactions;
    emit('message-updated', { ch, ev });
  } catch (e) {
    toast(`Could not react: ${e.message}`, 'error');
  }
}

/** Deletes your message after asking. */
async function remove(ch, ev) {
  if (!window.confirm('Delete this message? Everyone will see that it was deleted.')) return;
  try {
    await api('DELETE', path(ch, ev.id));
    ev.deleted = true;
    ev.text = '';
    delete ev.reactions;
    delete ev.voice;
    delete ev.edited_at;
    emit('message-updated', { ch, ev });
  } catch (e) {
    toast(`Could not delete: ${e.message}`, 'error');
  }
}

let editing = null;

/** Whether a message is being edited (redrawing the list would throw the edit away). */
export const isEditing = () => editing !== null && editing.isConnected;

/** Edits your message in place: Enter saves, Shift+Enter adds a line, Escape cancels. */
export function startEdit(ch, ev) {
  const li = itemOf(ev.id);
  const p = li && li.querySelector('.text');
  if (!p) return;
  const ta = h('textarea', { class: 'edit-box', rows: 2, maxlength: 4000, 'aria-label': 'Edit message', 'aria-describedby': 'edit-hint' });
  ta.value = ev.text;
  const done = () => {
    editing = null;
    form.replaceWith(p);
    emit('message-updated', { ch, ev });
    const more = li.querySelector('.more');
    if (more) more.focus();
  };
  const save = async () => {
    const text = ta.value;
    if (!text.trim() || text === ev.text) return done();
    ta.disabled = true;
    try {
      const r = await api('PATCH', path(ch, ev.id), { text });
      ev.text = r.message.text;
      ev.edited_at = r.message.edited_at;
    } catch (e) {
      toast(`Could not edit: ${e.message}`, 'error');
    }
    done();
  };
  const form = h('form', { class: 'edit-form', onsubmit: (e) => { e.preventDefault(); save(); } },
    ta,
    h('p', { id: 'edit-hint', class: 'edit-hint' }, 'Enter saves · Escape cancels'),
    h('div', { class: 'edit-actions' },
      h('button', { type: 'button', class: 'ghost small', onclick: done }, 'Cancel'),
      h('button', { type: 'submit', class: 'primary small' }, 'Save')));
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      save();
    } else if (e.key === 'Escape') {
      e.preventDefault();
      done();
    }
  });
  p.replaceWith(form);
  editing = form;
  ta.focus();
  ta.setSelectionRange(ta.value.length, ta.value.length);
}

// ---- the thread panel ---------------------------------------------------------------------

let thread = null; // { ch, ev } shown in the panel

function threadLine(m) {
  if (m.deleted) return h('p', { class: 'text tombstone' }, 'This message was deleted.');
  return [
    h('p', { class: 'thread-meta' }, h('strong', null, m.username), ' ', h('time', null, fmtFull(m.created_at))),
    h('p', { class: 'text' }, m.voice && !m.text ? '(voice message)' : formatted(m.text), editedMark(m)),
  ];
}

/** Opens the thread of a message: it, then its replies, and a button to reply. */
export async function openThread(ch, ev) {
  let panel = $('#thread');
  if (!panel) {
    panel = h('aside', { id: 'thread', class: 'thread', 'aria-labelledby': 'thread-title' });
    $('#chat-view').append(panel);
  }
  thread = { ch, ev };
  const list = h('ol', { class: 'thread-list', 'aria-label': 'Replies' }, h('li', { class: 'muted' }, 'Loading…'));
  panel.replaceChildren(
    h('header', { class: 'thread-head' },
      h('h2', { id: 'thread-title', tabindex: '-1' }, 'Thread'),
      h('button', { type: 'button', class: 'icon', 'aria-label': 'Close the thread', onclick: closeThread }, '✕')),
    h('div', { class: 'thread-original' }, threadLine(ev)),
    list,
    ev.deleted ? null : h('button', { type: 'button', class: 'primary small', onclick: () => emit('reply-to', { ch, ev }) }, 'Reply'));
  panel.hidden = false;
  $('#chat-view').classList.add('with-thread');
  panel.querySelector('h2').focus();
  try {
    const r = await get(qs(path(ch, ev.id, '/replies'), { limit: 100 }));
    if (!thread || thread.ev !== ev) return;
    list.replaceChildren(...r.messages.map((m) => h('li', { data: { id: m.id } }, threadLine(m))));
    if (!r.messages.length) list.append(h('li', { class: 'muted' }, 'No replies yet.'));
  } catch (e) {
    list.replaceChildren(h('li', { class: 'muted' }, `Could not load the replies: ${e.message}`));
  }
}

export function closeThread() {
  thread = null;
  const panel = $('#thread');
  if (panel) panel.hidden = true;
  $('#chat-view').classList.remove('with-thread');
}

// A thread that is open follows its message: new replies, edits, the delete.
on('message-updated', ({ ch, ev }) => {
  if (thread && thread.ch === ch && thread.ev.id === ev.id) openThread(ch, ev);
});
