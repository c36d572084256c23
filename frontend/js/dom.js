// DOM helpers. Every piece of user text enters the page as a text node: nothing here (or
// anywhere in the client) assigns innerHTML.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

/** Builds an element: h('a', {href, class: 'x', onclick}, 'text', childNode, [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'data') for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = dv;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function setText(el, text) {
  el.textContent = text ?? '';
  return el;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const MENTION_RE = /(^|[^a-z0-9_.@-])@([a-z0-9_.-]{3,32})/gi;

/** Text with http(s) links and @mentions as elements; everything else as text nodes. */
export function richText(text, me) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    let url = m[0];
    // Trailing punctuation belongs to the sentence, not the link.
    const trail = url.match(/[.,;:!?)\]}]+$/);
    if (trail) url = url.slice(0, -trail[0].length);
    if (m.index > last) out.push(...mentions(text.slice(last, m.index), me));
    out.push(link(url));
    last = m.index + url.length;
  }
  if (last < text.length) out.push(...mentions(text.slice(last), me));
  return out;
}

function link(url) {
  let ok = false;
  try {
    const u = new URL(url);
    ok = u.protocol === 'http:' || u.protocol === 'https:';
  } catch { /* not a URL: stays text */ }
  if (!ok) return document.createTextNode(url);
  return h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, url);
}

function mentions(text, me) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(MENTION_RE)) {
    const start = m.index + m[1].length;
    let name = m[2].replace(/[.-]+$/, '');
    if (name.length < 3) continue;
    if (start > last) out.push(document.createTextNode(text.slice(last, start)));
    const mine = me && name.toLowerCase() === me;
    out.push(h('span', { class: mine ? 'mention me' : 'mention' }, '@' + name));
    last = start + 1 + name.length;
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}

/** Whether a text mentions `me` (same rule as the highlighting). */
export function mentionsMe(text, me) {
  if (!me) return false;
  for (const m of text.matchAll(MENTION_RE)) {
    if (m[2].replace(/[.-]+$/, '').toLowerCase() === me) return true;
  }
  return false;
}

// Times and days.
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export const fmtTime = (ms) => timeFmt.format(ms);

/** A length of time as `0:07` or `1:30`. */
export function fmtLength(ms) {
  const s = Math.max(0, Math.floor((ms || 0) / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}
export const fmtFull = (ms) => fullFmt.format(ms);
export const dayKey = (ms) => new Date(ms).toDateString();

export function fmtDay(ms) {
  const d = new Date(ms);
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (d.toDateString() === today.toDateString()) return 'Today';
  if (d.toDateString() === yesterday.toDateString()) return 'Yesterday';
  return dayFmt.format(d);
}

/** A small coloured circle with a user's initial; the colour comes from the name. */
export function avatar(name, cls = 'avatar') {
  let hash = 0;
  for (const c of name) hash = (hash * 31 + c.codePointAt(0)) >>> 0;
  return h('span', { class: `${cls} hue${hash % 8}`, 'aria-hidden': 'true' }, (name[0] || '?').toUpperCase());
}

/** A short notice at the bottom of the screen. */
export function toast(text, kind = 'info') {
  const box = $('#toasts');
  const t = h('p', { class: `toast ${kind}` }, text);
  box.append(t);
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => t.remove(), kind === 'error' ? 7000 : 4000);
}

export function debounce(fn, ms) {
  let t = 0;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

/** A side panel (people, profile, …) built on first use: returns its body. */
export function pane(name, title) {
  const body = h('div', { class: 'pane-body' });
  $('#main').append(h('section', { id: `${name}-view`, class: 'view pane', 'aria-labelledby': `${name}-title`, hidden: true },
    h('header', { class: 'view-head' },
      h('button', { type: 'button', class: 'icon menu-btn mobile-only', 'aria-label': 'Open menu' }, '☰'),
      h('h1', { id: `${name}-title` }, title)),
    body));
  return body;
}

/** A labelled form field; `note` is a hint under it, tied to the control. */
export function field(id, text, attrs = {}, note = '') {
  const { tag = 'input', ...rest } = attrs;
  return h('div', { class: 'field' },
    h('label', { for: id }, text),
    h(tag, { id, name: id.replace(/^[a-z]+-/, ''), 'aria-describedby': note ? `${id}-note` : null, ...rest }),
    note ? h('p', { id: `${id}-note`, class: 'field-note' }, note) : null);
}

const ICONS = {
  // A padlock: private channels.
  lock: 'M7 10V7a5 5 0 0 1 10 0v3h1a1 1 0 0 1 1 1v9a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1v-9a1 1 0 0 1 1-1h1zm2 0h6V7a3 3 0 0 0-6 0v3z',
  // Two people: group conversations.
  group: 'M9 11a4 4 0 1 1 0-8 4 4 0 0 1 0 8zm7.5 0a3 3 0 1 1 0-6 3 3 0 0 1 0 6zM1 20c0-3.9 3.6-6 8-6s8 2.1 8 6v1H1v-1zm17.5 1v-1c0-2-0.8-3.6-2.2-4.7 3.5.2 6.7 1.8 6.7 4.7v1h-4.5z',
};

/** A small inline SVG icon (`lock`, `group`), decorative: screen readers get the text beside it. */
export function icon(name) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '14');
  svg.setAttribute('height', '14');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', `icon-${name}`);
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('fill', 'currentColor');
  path.setAttribute('d', ICONS[name]);
  svg.append(path);
  return svg;
}
