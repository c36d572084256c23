// Seed 003's insight screens: the last five minutes across every channel the reader may read,
// and the top posters (everywhere public, or in one channel). Text enters the page as text.

import { h, setText, pane, avatar, fmtTime, richText } from './dom.js';
import { S, label } from './state.js';
import { get, qs, enc } from './api.js';
import { byChannel } from './members.js';

const rStatus = h('p', { id: 'recent-status', class: 'muted', role: 'status' });
const rList = h('div', { id: 'recent-list', class: 'stack' });
const rAgain = h('button', { type: 'button', class: 'ghost small', id: 'recent-refresh' }, 'Refresh');
pane('recent', 'Last 5 minutes').append(h('p', { class: 'row' }, 'Messages of the last five minutes in your channels.', rAgain), rStatus, rList);

const tChannel = h('select', { id: 'top-channel', 'aria-label': 'Where' });
const tStatus = h('p', { id: 'top-status', class: 'muted', role: 'status' });
const tList = h('ol', { id: 'top-list', class: 'cards top' });
pane('top', 'Top posters').append(h('p', { class: 'row' }, h('label', { for: 'top-channel' }, 'In'), tChannel), tStatus, tList);

function nameOf(channel) {
  const ch = S.channels.get(channel);
  return ch ? label(ch) : `#${channel}`;
}

export async function showRecent() {
  setText(rStatus, 'Loading…');
  try {
    const r = await get(qs('/api/messages/recent', { minutes: 5 }));
    const groups = byChannel(r.messages.filter((m) => m.type === 'message'));
    rList.replaceChildren(...groups.map(([channel, list]) => h('section', { class: 'card recent-group', data: { channel } },
      h('h2', null, h('a', { href: `#/c/${enc(channel)}` }, nameOf(channel)), ' ',
        h('span', { class: 'muted small' }, `${list.length} message${list.length === 1 ? '' : 's'}`)),
      h('ol', { class: 'recent-msgs' }, list.map((m) => h('li', { data: { id: m.id } },
        h('span', { class: 'muted small' }, fmtTime(m.created_at)), ' ',
        h('strong', null, m.username), ' ',
        h('span', { class: 'text' }, m.voice && !m.text ? 'Voice message' : richText(m.text, S.me.username))))))));
    setText(rStatus, groups.length ? '' : 'Nothing in the last five minutes.');
  } catch (e) {
    setText(rStatus, `Could not load them: ${e.message}`);
  }
}

rAgain.addEventListener('click', showRecent);

export async function showTop() {
  const keep = tChannel.value;
  const readable = [...S.channels.values()].filter((c) => c.member).sort((a, b) => a.name.localeCompare(b.name));
  tChannel.replaceChildren(h('option', { value: '' }, 'All public channels'),
    ...readable.map((c) => h('option', { value: c.name, selected: c.name === keep }, label(c))));
  setText(tStatus, 'Loading…');
  try {
    const r = await get(qs('/api/stats/top-posters', { channel: tChannel.value, limit: 10 }));
    const max = Math.max(1, ...r.posters.map((p) => p.count));
    tList.replaceChildren(...r.posters.map((p) => h('li', { class: 'card poster', data: { user: p.username } },
      avatar(p.username),
      h('div', { class: 'person-main' },
        h('p', { class: 'person-name' }, h('a', { href: `#/u/${enc(p.username)}` }, p.username)),
        bar(p.count / max)),
      h('span', { class: 'count' }, `${p.count} message${p.count === 1 ? '' : 's'}`))));
    setText(tStatus, r.posters.length ? '' : 'No messages yet.');
  } catch (e) {
    setText(tStatus, e.code === 'search_unavailable' ? 'Top posters need the search module, which this server does not have.' : `Could not load them: ${e.message}`);
  }
}

tChannel.addEventListener('change', showTop);

/** A bar of `share` (0..1) of the width; set through the CSSOM, which the page's policy allows. */
function bar(share) {
  const fill = h('span');
  fill.style.width = `${Math.round(share * 100)}%`;
  return h('div', { class: 'bar', 'aria-hidden': 'true' }, fill);
}
