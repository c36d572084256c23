// A channel's loaded range as the browser client keeps it (frontend/js/state.js): events in
// stream order, each once, live events buffered while a window in the past is shown.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newChannel, addEvents, findEvent, resetEvents, reachLatest, on } from '../../frontend/js/state.js';

const msg = (id, text = `m${id}`, username = 'bob') => ({ id, channel: 'lobby', type: 'message', username, text });
const ids = (ch) => ch.events.map((e) => e.id);

test('a new channel starts from the last message the list reported, or 0-0', () => {
  const ch = newChannel({ name: 'lobby', kind: 'public', unread: 2, last_message: msg('1700-4') });
  assert.equal(ch.cursor, '1700-4');
  assert.equal(ch.unread, 2);
  assert.equal(ch.member, true);
  assert.deepEqual(ch.pending, []);
  assert.equal(ch.atLatest, true);
  const empty = newChannel({ name: 'dm:alice:bob', kind: 'dm', peer: 'bob', member: false });
  assert.equal(empty.cursor, '0-0');
  assert.equal(empty.last, null);
  assert.equal(empty.kind, 'dm');
  assert.equal(empty.member, false);
});

test('events in order are appended', () => {
  const ch = newChannel({ name: 'lobby' });
  const r = addEvents(ch, [msg('1-0'), msg('1-1'), msg('2-0')]);
  assert.deepEqual(r.appended.map((e) => e.id), ['1-0', '1-1', '2-0']);
  assert.equal(r.inserted, false);
  assert.deepEqual(ids(ch), ['1-0', '1-1', '2-0']);
});

test('an event seen twice is kept once, in one call and across calls', () => {
  const ch = newChannel({ name: 'lobby' });
  addEvents(ch, [msg('1-0'), msg('2-0'), msg('1-0')]);
  const r = addEvents(ch, [msg('2-0', 'a different copy'), msg('1-0')]);
  assert.deepEqual(r, { appended: [], inserted: false });
  assert.deepEqual(ids(ch), ['1-0', '2-0']);
  assert.equal(ch.events[1].text, 'm2-0');
  assert.deepEqual([...ch.ids], ['1-0', '2-0']);
});

test('an event older than the newest is inserted in its place, in numeric order', () => {
  const ch = newChannel({ name: 'lobby' });
  addEvents(ch, [msg('9-0'), msg('100-0')]);
  const r = addEvents(ch, [msg('10-0'), msg('9-10'), msg('9-2'), msg('101-0')]);
  assert.deepEqual(r.appended.map((e) => e.id), ['101-0']);
  assert.equal(r.inserted, true);
  assert.deepEqual(ids(ch), ['9-0', '9-2', '9-10', '10-0', '100-0', '101-0']);
});

test('a page of older history goes before what is loaded', () => {
  const ch = newChannel({ name: 'lobby' });
  addEvents(ch, [msg('50-0'), msg('51-0')]);
  const r = addEvents(ch, [msg('10-0'), msg('20-0'), msg('30-0')]);
  assert.deepEqual(r, { appended: [], inserted: true });
  assert.deepEqual(ids(ch), ['10-0', '20-0', '30-0', '50-0', '51-0']);
});

test('findEvent finds a loaded event by ID and answers null otherwise', () => {
  const ch = newChannel({ name: 'lobby' });
  addEvents(ch, [msg('9-0'), msg('10-0'), msg('10-1'), msg('11-0')]);
  assert.equal(findEvent(ch, '10-0').text, 'm10-0');
  assert.equal(findEvent(ch, '10-1').text, 'm10-1');
  assert.equal(findEvent(ch, '9-0').text, 'm9-0');
  assert.equal(findEvent(ch, '11-0').text, 'm11-0');
  assert.equal(findEvent(ch, '10-2'), null);
  assert.equal(findEvent(newChannel({ name: 'x' }), '1-0'), null);
});

test('a transcript event completes the voice message it names', () => {
  const ch = newChannel({ name: 'lobby' });
  const voice = { id: '5-0', channel: 'lobby', type: 'message', username: 'bob', text: '', voice: { duration_ms: 1500, state: 'pending' } };
  addEvents(ch, [voice]);
  const updated = [];
  on('voice-updated', ({ ch: c, ev }) => updated.push([c.name, ev.id]));
  const r = addEvents(ch, [{ id: '6-0', channel: 'lobby', type: 'transcript', username: 'bob', text: 'hello there', voice: { message_id: '5-0', state: 'done' } }]);
  assert.deepEqual(r.appended.map((e) => e.id), ['6-0']);
  assert.equal(voice.text, 'hello there');
  assert.deepEqual(voice.voice, { duration_ms: 1500, state: 'done' });
  assert.deepEqual(updated, [['lobby', '5-0']]);
  // For a message that is not loaded, nothing changes (a later page shows its current state).
  addEvents(ch, [{ id: '7-0', channel: 'lobby', type: 'transcript', text: 'other', voice: { message_id: '1-0', state: 'done' } }]);
  assert.deepEqual(updated, [['lobby', '5-0']]);
});

test('resetEvents drops the loaded range and makes older pages stale', () => {
  const ch = newChannel({ name: 'lobby' });
  addEvents(ch, [msg('1-0'), msg('2-0')]);
  ch.hasMore = false;
  ch.buffer.push(msg('3-0'));
  const gen = ch.gen;
  resetEvents(ch);
  assert.equal(ch.gen, gen + 1);
  assert.deepEqual(ch.events, []);
  assert.equal(ch.ids.size, 0);
  assert.equal(ch.hasMore, true);
  assert.deepEqual(ch.buffer, []);
  // The same event can be loaded again afterwards.
  assert.deepEqual(addEvents(ch, [msg('1-0')]).appended.map((e) => e.id), ['1-0']);
});

test('reaching the newest adds what was buffered meanwhile, once and in order', () => {
  const ch = newChannel({ name: 'lobby' });
  ch.atLatest = false;
  addEvents(ch, [msg('1-0'), msg('2-0')]);
  ch.buffer.push(msg('4-0'), msg('2-0'), msg('3-0'));
  const r = reachLatest(ch);
  assert.equal(ch.atLatest, true);
  assert.deepEqual(ch.buffer, []);
  assert.deepEqual(r.appended.map((e) => e.id), ['4-0']);
  assert.equal(r.inserted, true);
  assert.deepEqual(ids(ch), ['1-0', '2-0', '3-0', '4-0']);
});
