// The sidebar: public channels and DMs with unread badges and online dots; on phones it slides in
// over the content.

import { $, $$, h, avatar, setText, icon } from './dom.js';
import { S, on, label } from './state.js';
import { enc } from './api.js';

const channelList = $('#channel-list');
const dmList = $('#dm-list');
const app = $('#app');

function badge(ch) {
  if (!ch.unread) return null;
  const n = ch.unread > 99 ? '99+' : String(ch.unread);
  return h('span', { class: ch.mentions || ch.kind === 'dm' ? 'badge strong' : 'badge' },
    h('span', { 'aria-hidden': 'true' }, n), h('span', { class: 'sr-only' }, `, ${ch.unread} unread`));
}

function item(ch) {
  const current = S.current === ch.name;
  const dm = ch.kind === 'dm';
  const online = dm && S.online.has(ch.peer);
  return h('li', null,
    h('a', {
      href: `#/c/${enc(ch.name)}`,
      class: `chan${ch.unread ? ' unread' : ''}`,
      'aria-current': current ? 'page' : null,
      data: { channel: ch.name },
    },
    chanIcon(ch, online),
    h('span', { class: 'chan-name' }, dm ? ch.peer : label(ch).replace(/^#/, '')),
    ch.kind === 'private' ? h('span', { class: 'sr-only' }, ', private') : null,
    dm ? h('span', { class: 'sr-only' }, online ? ', online' : ', offline') : null,
    badge(ch)));
}

/** A DM's avatar with its online dot, a lock for a private channel, people for a group, `#`. */
function chanIcon(ch, online) {
  if (ch.kind === 'dm') {
    return h('span', { class: 'dm-avatar' }, avatar(ch.peer, 'avatar sm'), h('span', { class: `dot ${online ? 'online' : 'offline'}`, title: online ? 'online' : 'offline' }));
  }
  if (ch.kind === 'private') return h('span', { class: 'hash lock', title: 'private' }, icon('lock'));
  if (ch.kind === 'group') return h('span', { class: 'hash group' }, icon('group'));
  return h('span', { class: 'hash', 'aria-hidden': 'true' }, '#');
}

export function renderSidebar() {
  const chans = [...S.channels.values()].filter((c) => c.member);
  const pub = chans.filter((c) => c.kind === 'public' || c.kind === 'private').sort((a, b) => a.name.localeCompare(b.name));
  const dms = chans.filter((c) => c.kind === 'dm' || c.kind === 'group')
    .sort((a, b) => ((b.last && b.last.created_at) || 0) - ((a.last && a.last.created_at) || 0) || a.name.localeCompare(b.name));
  channelList.replaceChildren(...pub.map(item));
  dmList.replaceChildren(...dms.map(item));
  if (!pub.length) channelList.append(h('li', { class: 'muted small empty' }, 'No channels yet'));
  if (!dms.length) dmList.append(h('li', { class: 'muted small empty' }, 'No conversations yet'));
  for (const a of $$('.side-nav a')) {
    a.setAttribute('aria-current', location.hash.startsWith(a.getAttribute('href')) ? 'page' : 'false');
  }
}

export function setMe(profile) {
  setText($('#me-name'), profile.username);
  const old = $('#me-avatar');
  const a = avatar(profile.username, 'avatar');
  a.id = 'me-avatar';
  old.replaceWith(a);
}

// Phone layout: the sidebar is a drawer.
export function openNav() {
  app.classList.add('nav-open');
  $('#scrim').hidden = false;
  const first = $('#sidebar a, #sidebar button:not([hidden])');
  if (first) first.focus();
}

export function closeNav() {
  if (!app.classList.contains('nav-open')) return;
  app.classList.remove('nav-open');
  $('#scrim').hidden = true;
}

document.addEventListener('click', (e) => {
  if (e.target.closest('.menu-btn')) openNav();
});
$('#close-sidebar').addEventListener('click', closeNav);
$('#scrim').addEventListener('click', closeNav);
$('#sidebar').addEventListener('click', (e) => {
  if (e.target.closest('a')) closeNav();
});
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') closeNav();
  // Alt+Up / Alt+Down: previous / next conversation.
  if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
    const links = $$('#sidebar .chan');
    if (!links.length) return;
    const i = links.findIndex((a) => a.getAttribute('aria-current') === 'page');
    const next = links[(i + (e.key === 'ArrowDown' ? 1 : links.length - 1) + (i < 0 && e.key === 'ArrowUp' ? 1 : 0)) % links.length];
    e.preventDefault();
    location.hash = next.getAttribute('href');
  }
});

on('unread-changed', renderSidebar);
on('presence', renderSidebar);
