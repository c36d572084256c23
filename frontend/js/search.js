// Message search (GET /api/search/messages) and the list of one's mentions (GET /api/mentions),
// loaded when a panel is first opened. Each panel is offered only when the node has its endpoint;
// each result opens the message in its channel.

import { h, setText, fmtFull, pane } from './dom.js';
import { S, emit, label } from './state.js';
import { get, qs } from './api.js';

const channelSelect = h('select', { id: 'sq-channel', name: 'channel' });
const input = h('input', { id: 'sq', name: 'q', type: 'search', placeholder: 'Words to find' });
const form = h('form', { id: 'search-form', class: 'row', role: 'search', 'aria-label': 'Search messages' },
  h('label', { for: 'sq', class: 'sr-only' }, 'Search messages'), input,
  h('label', { for: 'sq-channel', class: 'sr-only' }, 'In channel'), channelSelect,
  h('button', { class: 'primary', type: 'submit' }, 'Search'));
const status = h('p', { id: 'search-status', class: 'muted', role: 'status' });
const results = h('ul', { id: 'search-results', class: 'results' });
const more = h('button', { type: 'button', id: 'search-more', class: 'ghost', hidden: true }, 'More results');
pane('search', 'Search messages').append(form, status, results, more);
const LIMIT = 20;
let last = null; // { q, channel, offset, total }

/** The text with each searched word wrapped in <mark>, built from text nodes. */
function highlight(text, q) {
  const words = q.toLowerCase().split(/[^\p{L}\p{N}_]+/u).filter((w) => w.length > 1);
  if (!words.length) return [text];
  const re = new RegExp(`(${words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})`, 'giu');
  return text.split(re).map((part, i) => (i % 2 ? h('mark', null, part) : part));
}

function result(m, q = '') {
  const ch = S.channels.get(m.channel);
  const where = ch ? label(ch) : m.channel.startsWith('dm:') ? 'direct message' : `#${m.channel}`;
  return h('li', null,
    h('button', { type: 'button', class: 'result', onclick: () => emit('open-message', { channel: m.channel, id: m.id }) },
      h('span', { class: 'result-meta' }, h('strong', null, m.username), ` in ${where} · `, h('time', { datetime: new Date(m.created_at).toISOString() }, fmtFull(m.created_at))),
      h('span', { class: 'result-text' }, highlight(m.text.length > 300 ? `${m.text.slice(0, 300)}…` : m.text, q))));
}

async function run(offset) {
  const f = new FormData(form);
  const q = String(f.get('q') || '').trim();
  const channel = String(f.get('channel') || '');
  if (!q) {
    setText(status, 'Type a word to search for.');
    return;
  }
  setText(status, 'Searching…');
  try {
    const r = await get(qs('/api/search/messages', { q, channel, limit: LIMIT, offset }));
    const items = r.messages.map((m) => result(m, q));
    if (offset) results.append(...items);
    else results.replaceChildren(...items);
    last = { q, channel, offset: offset + r.messages.length, total: r.total };
    setText(status, r.total ? `${r.total} message${r.total === 1 ? '' : 's'} found` : 'No messages match.');
    more.hidden = last.offset >= r.total || !r.messages.length;
  } catch (e) {
    setText(status, e.code === 'search_unavailable' ? 'Message search is unavailable on this server.' : `Search failed: ${e.message}`);
    more.hidden = true;
  }
}

/** Fills the channel filter with the channels the user is in. */
export function prepareSearch() {
  const sel = channelSelect;
  const keep = sel.value;
  const chans = [...S.channels.values()].filter((c) => c.member).sort((a, b) => label(a).localeCompare(label(b)));
  sel.replaceChildren(h('option', { value: '' }, 'All channels'), ...chans.map((c) => h('option', { value: c.name }, label(c))));
  sel.value = keep;
  input.focus();
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  run(0);
});
more.addEventListener('click', () => last && run(last.offset));

// Mentions, newest first, paged by time.
const mStatus = h('p', { id: 'mentions-status', class: 'muted', role: 'status' });
const mList = h('ul', { id: 'mentions-results', class: 'results' });
const mMore = h('button', { type: 'button', id: 'mentions-more', class: 'ghost', hidden: true }, 'Older mentions');
pane('mentions', 'Mentions').append(mStatus, mList, mMore);
let oldest = null;

export async function showMentions(older = false) {
  if (!older) oldest = null;
  setText(mStatus, 'Loading…');
  try {
    const r = await get(qs('/api/mentions', { limit: 30, before: older ? oldest : '' }));
    const items = r.mentions.map((m) => result(m));
    if (older) mList.append(...items);
    else mList.replaceChildren(...items);
    // `next_before` pages exactly (mentions sharing a millisecond are neither skipped nor repeated);
    // null when there are no older mentions.
    oldest = r.next_before ?? null;
    setText(mStatus, mList.children.length ? '' : 'Nobody has mentioned you yet.');
    mMore.hidden = !oldest;
  } catch (e) {
    setText(mStatus, `Could not load mentions: ${e.message}`);
  }
}

mMore.addEventListener('click', () => showMentions(true));
