// Message actions as the browser client applies them (frontend/js/state.js): edits, deletes,
// reactions and replies change the loaded message they target, only when they come live, and a
// client that applies them reaches the state a history page reports.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { S, newChannel, addEvents, findEvent, on } from '../../frontend/js/state.js';

S.me = { username: 'ann' };
const msg = (id, text, username = 'bob', extra = {}) => ({ id, channel: 'lobby', type: 'message', username, text, created_at: Number(id.split('-')[0]), ...extra });
const act = (id, type, target, extra = {}) => ({ id, channel: 'lobby', type, username: 'bob', text: '', created_at: Number(id.split('-')[0]), target, ...extra });
const react = (id, username, emoji, added, count) => ({ ...act(id, 'reaction', '1-0'), username, reacted: { emoji, added, count } });

test('live actions change the message they target, and say so', () => {
  const ch = newChannel({ name: 'lobby' });
  addEvents(ch, [msg('1-0', 'helo'), msg('2-0', 're', 'ann', { reply_to: { id: '1-0', username: 'bob', excerpt: 'helo' } })]);
  const updated = [];
  on('message-updated', ({ ev }) => updated.push(ev.id));
  addEvents(ch, [act('3-0', 'edit', '1-0', { text: 'hello' })], { live: true });
  const m = findEvent(ch, '1-0');
  assert.equal(m.text, 'hello');
  assert.equal(m.edited_at, 3);
  assert.equal(findEvent(ch, '2-0').reply_to.excerpt, 'hello', 'replies quote the new text');
  addEvents(ch, [react('4-0', 'ann', '👍', true, 1), react('5-0', 'bob', '👍', true, 2)], { live: true });
  assert.deepEqual(m.reactions, { '👍': { count: 2, me: true } });
  addEvents(ch, [react('6-0', 'ann', '👍', false, 1)], { live: true });
  assert.deepEqual(m.reactions, { '👍': { count: 1, me: false } });
  addEvents(ch, [react('7-0', 'bob', '👍', false, 0)], { live: true });
  assert.equal(m.reactions, undefined);
  addEvents(ch, [msg('8-0', 'another reply', 'ann', { reply_to: { id: '1-0', username: 'bob', excerpt: 'hello' } })], { live: true });
  assert.equal(m.reply_count, 1);
  addEvents(ch, [act('9-0', 'delete', '1-0')], { live: true });
  assert.equal(m.deleted, true);
  assert.equal(m.text, '');
  assert.deepEqual(findEvent(ch, '2-0').reply_to, { id: '1-0', username: 'bob', excerpt: '', deleted: true });
  // A deleted message takes no more actions.
  addEvents(ch, [act('10-0', 'edit', '1-0', { text: 'back' })], { live: true });
  assert.equal(m.text, '');
  assert.deepEqual(updated, ['1-0', '1-0', '1-0', '1-0', '1-0', '1-0', '1-0']);
});

test('actions in a history page are not applied again: the page is the current state', () => {
  const ch = newChannel({ name: 'lobby' });
  // As GET …/messages answers: the message as it now is, then the events that made it so.
  addEvents(ch, [
    msg('1-0', 'hello', 'bob', { edited_at: 3, reactions: { '👍': { count: 2, me: true } } }),
    act('3-0', 'edit', '1-0', { text: 'hello' }),
    react('4-0', 'ann', '👍', true, 1),
  ]);
  const m = findEvent(ch, '1-0');
  assert.deepEqual(m.reactions, { '👍': { count: 2, me: true } }, 'an older count does not win');
});

test('a client applying events and one reading the current state agree', () => {
  const events = [
    msg('1-0', 'one'), msg('2-0', 'two', 'ann'),
    act('3-0', 'edit', '1-0', { text: 'one!' }),
    react('4-0', 'ann', '🎉', true, 1),
    act('5-0', 'delete', '2-0'),
  ];
  const live = newChannel({ name: 'lobby' });
  addEvents(live, events, { live: true });
  const page = newChannel({ name: 'lobby' });
  addEvents(page, [
    msg('1-0', 'one!', 'bob', { edited_at: 3, reactions: { '🎉': { count: 1, me: true } } }),
    { ...msg('2-0', '', ''), deleted: true },
    ...events.slice(2),
  ]);
  const view = (ch) => ch.events.filter((e) => e.type === 'message').map((e) => [e.id, e.text, !!e.deleted, JSON.stringify(e.reactions || {})]);
  assert.deepEqual(view(live), view(page));
});
