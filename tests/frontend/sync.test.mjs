// The browser client's resume, gap filling and post tracking (frontend/js/sync.js), driven
// without a browser: a fake socket records the frames sent, a fake history endpoint answers
// pages as the node does (after= exclusive, oldest first, has_more), and the page's callbacks
// are recorded in the order they came.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sync, RESUME_BATCH, GAP_PAGES, GAP_PAGE_SIZE } from '../../frontend/js/sync.js';
import { newChannel, cmpId } from '../../frontend/js/state.js';

const msg = (channel, id, text = `m${id}`, username = 'bob') => ({ id, channel, type: 'message', username, text });

/** `count` messages by bob in a channel, IDs `first-0`, `first+1-0`, … */
function messages(channel, first, count) {
  return Array.from({ length: count }, (_, i) => msg(channel, `${first + i}-0`));
}

/**
 * A signed-in client (alice) with some channels, an open socket, and a history endpoint holding
 * `history[name]` (messages, oldest first). `log` holds frames sent, pages asked for and the
 * page's callbacks, in order.
 */
function world({ channels = [], history = {}, open = true, failPage = Infinity } = {}) {
  const log = [];
  const state = { channels: new Map(), me: { username: 'alice' }, users: new Set() };
  for (const c of channels) state.channels.set(c.name, newChannel(c));
  const w = { log, state, open, pagesAsked: 0 };
  w.sync = new Sync({
    state,
    send(type, payload) {
      if (!w.open) return false;
      log.push(['send', type, payload]);
      return true;
    },
    isOpen: () => w.open,
    async fetchPage(name, params) {
      log.push(['page', name, { ...params }]);
      w.pagesAsked += 1;
      if (w.pagesAsked > failPage) throw new Error('network down');
      const all = (history[name] || []).filter((e) => cmpId(e.id, params.after) > 0);
      return { messages: all.slice(0, params.limit), has_more: all.length > params.limit };
    },
    ui: {
      added: (ch, r) => log.push(['added', ch.name, r.appended.map((e) => e.id), r.inserted]),
      pendingChanged: (ch) => log.push(['pending', ch.name, ch.pending.map((p) => `${p.cid} ${p.state}`)]),
      message: (ch, ev, { quiet }) => log.push(['message', ch.name, ev.id, quiet]),
      reloaded: async (ch) => log.push(['reloaded', ch.name]),
      unreadChanged: () => log.push(['unread']),
    },
  });
  w.ch = (name) => state.channels.get(name);
  w.sent = (type) => log.filter((e) => e[0] === 'send' && (!type || e[1] === type)).map((e) => e[2]);
  w.take = () => log.splice(0);
  return w;
}

const lobby = { name: 'lobby', kind: 'public', last_message: msg('lobby', '1700-3') };

// ---- resuming ---------------------------------------------------------------------------------

test('resume asks for every channel from its cursor: the last message listed, or 0-0', () => {
  const w = world({ channels: [lobby, { name: 'random', kind: 'public' }] });
  w.sync.authorized();
  assert.deepEqual(w.sent(), [{ channels: { lobby: '1700-3', random: '0-0' } }]);
  assert.equal(w.ch('lobby').subscribed, false);
});

test('channels are resumed five at a time, the next five once all are subscribed', () => {
  assert.equal(RESUME_BATCH, 5);
  const names = Array.from({ length: 12 }, (_, i) => `c${i}`);
  const w = world({ channels: names.map((name) => ({ name })) });
  w.sync.authorized();
  assert.deepEqual(w.take(), [['send', 'resume', { channels: { c0: '0-0', c1: '0-0', c2: '0-0', c3: '0-0', c4: '0-0' } }]]);
  for (const name of ['c0', 'c1', 'c3', 'c4']) w.sync.subscribed({ channel: name });
  assert.deepEqual(w.sent(), [], 'c2 is still waiting');
  // A refusal answers the channel too.
  assert.equal(w.sync.error({ code: 'forbidden', message: 'not a member', payload: { channel: 'c2' } }), 'c2: not a member');
  assert.deepEqual(w.sent(), [{ channels: { c5: '0-0', c6: '0-0', c7: '0-0', c8: '0-0', c9: '0-0' } }]);
  assert.equal(w.ch('c2').subscribed, false);
  assert.equal(w.ch('c0').subscribed, true);
  w.take();
  for (const name of ['c5', 'c6', 'c7', 'c8', 'c9']) w.sync.subscribed({ channel: name });
  assert.deepEqual(w.sent(), [{ channels: { c10: '0-0', c11: '0-0' } }]);
});

test('after a 1013 close (read too slowly) channels are resumed one at a time', () => {
  const w = world({ channels: [{ name: 'a' }, { name: 'b' }, { name: 'c' }] });
  w.sync.socketDown(1006);
  w.sync.authorized();
  assert.deepEqual(w.take().map((e) => Object.keys(e[2].channels)), [['a', 'b', 'c']]);
  w.sync.socketDown(1013);
  w.sync.socketUp();
  w.sync.authorized();
  assert.deepEqual(w.sent(), [{ channels: { a: '0-0' } }]);
  w.sync.subscribed({ channel: 'a' });
  assert.deepEqual(w.sent(), [{ channels: { a: '0-0' } }, { channels: { b: '0-0' } }]);
  w.sync.subscribed({ channel: 'c' }); // not asked for yet: changes nothing
  assert.equal(w.sent().length, 2);
  w.sync.subscribed({ channel: 'b' });
  assert.deepEqual(w.sent().slice(2), [{ channels: { c: '0-0' } }]);
});

test('nothing is sent while the socket is closed; a channel is queued once', () => {
  const w = world({ channels: [lobby], open: false });
  w.sync.follow([w.ch('lobby')]);
  w.sync.follow([w.ch('lobby')]);
  assert.deepEqual(w.log, []);
  assert.deepEqual(w.sync.resumeQueue, ['lobby']);
  w.open = true;
  w.sync.authorized();
  assert.deepEqual(w.sent(), [{ channels: { lobby: '1700-3' } }]);
  // Followed again while its resume is waiting: not asked for twice.
  w.sync.follow([w.ch('lobby')]);
  assert.deepEqual(w.sync.resumeQueue, []);
  assert.equal(w.sent().length, 1);
});

test('a channel added while a resume is waiting goes in the next one', () => {
  const w = world({ channels: [lobby] });
  w.sync.authorized();
  w.state.channels.set('dm:alice:bob', newChannel({ name: 'dm:alice:bob', kind: 'dm', peer: 'bob', last_message: msg('dm:alice:bob', '1690-0') }));
  w.sync.follow([w.ch('dm:alice:bob')]);
  assert.equal(w.sent().length, 1);
  w.sync.subscribed({ channel: 'lobby', last_id: '1700-3' });
  assert.deepEqual(w.sent(), [{ channels: { lobby: '1700-3' } }, { channels: { 'dm:alice:bob': '1690-0' } }]);
});

test('the cursor only moves forward: live events, replays and subscribed.last_id', () => {
  const w = world({ channels: [lobby] });
  const ch = w.ch('lobby');
  w.sync.event(msg('lobby', '1700-10'));
  assert.equal(ch.cursor, '1700-10');
  assert.equal(ch.last.id, '1700-10');
  w.sync.event(msg('lobby', '1700-9')); // numerically older, though '1700-9' > '1700-10' as text
  assert.equal(ch.cursor, '1700-10');
  assert.equal(ch.last.id, '1700-10');
  w.sync.subscribed({ channel: 'lobby', last_id: '1699-0' });
  assert.equal(ch.cursor, '1700-10');
  w.sync.subscribed({ channel: 'lobby', last_id: '1800-0' });
  assert.equal(ch.cursor, '1800-0');
  assert.equal(ch.last.id, '1700-10', 'last is the newest event seen, not the subscribed ID');
  // The next reconnect resumes from there.
  w.take();
  w.sync.socketDown(1001);
  w.sync.socketUp();
  w.sync.authorized();
  assert.deepEqual(w.sent(), [{ channels: { lobby: '1800-0' } }]);
});

test('socket up and down: no channel counts as subscribed until it is answered again', () => {
  const w = world({ channels: [lobby, { name: 'random' }] });
  w.sync.authorized();
  w.sync.subscribed({ channel: 'lobby' });
  w.sync.subscribed({ channel: 'random' });
  assert.equal(w.ch('lobby').subscribed, true);
  w.sync.socketDown(1006);
  assert.deepEqual([w.ch('lobby').subscribed, w.ch('random').subscribed], [false, false]);
  w.sync.subscribed({ channel: 'lobby' });
  w.sync.socketUp();
  assert.equal(w.ch('lobby').subscribed, false);
});

// ---- events -----------------------------------------------------------------------------------

test('an event delivered twice is shown and counted once', () => {
  const w = world({ channels: [lobby] });
  w.sync.event(msg('lobby', '1701-0', 'hi'));
  w.sync.event(msg('lobby', '1701-0', 'hi'));
  w.sync.event(msg('lobby', '1702-0', 'again'));
  assert.deepEqual(w.log, [
    ['added', 'lobby', ['1701-0'], false],
    ['message', 'lobby', '1701-0', false],
    ['added', 'lobby', ['1702-0'], false],
    ['message', 'lobby', '1702-0', false],
  ]);
  assert.deepEqual(w.ch('lobby').events.map((e) => e.id), ['1701-0', '1702-0']);
  assert.deepEqual([...w.state.users], ['bob']);
});

test('an event out of order is inserted in stream order', () => {
  const w = world({ channels: [lobby] });
  for (const id of ['1710-0', '1705-2', '1705-10', '1720-0']) w.sync.event(msg('lobby', id));
  assert.deepEqual(w.ch('lobby').events.map((e) => e.id), ['1705-2', '1705-10', '1710-0', '1720-0']);
  assert.deepEqual(w.log.filter((e) => e[0] === 'added'), [
    ['added', 'lobby', ['1710-0'], false],
    ['added', 'lobby', [], true],
    ['added', 'lobby', [], true],
    ['added', 'lobby', ['1720-0'], false],
  ]);
  assert.equal(w.ch('lobby').cursor, '1720-0');
});

test('own messages, other event types and unknown channels raise no message notice', () => {
  const w = world({ channels: [lobby] });
  w.sync.event(msg('lobby', '1701-0', 'mine', 'alice'));
  w.sync.event({ id: '1702-0', channel: 'lobby', type: 'join', username: 'carol' });
  w.sync.event(msg('elsewhere', '1703-0'));
  w.sync.event({ channel: 'lobby', type: 'message', username: 'bob', text: 'no id' });
  assert.deepEqual(w.log, [
    ['added', 'lobby', ['1701-0'], false],
    ['added', 'lobby', ['1702-0'], false],
  ]);
  assert.equal(w.ch('lobby').cursor, '1702-0');
});

test('while a window in the past is shown, live events wait in the buffer', () => {
  const w = world({ channels: [lobby] });
  const ch = w.ch('lobby');
  ch.atLatest = false;
  w.sync.event(msg('lobby', '1801-0'));
  assert.deepEqual(ch.events, []);
  assert.deepEqual(ch.buffer.map((e) => e.id), ['1801-0']);
  assert.equal(ch.cursor, '1801-0');
  assert.deepEqual(w.log, [['message', 'lobby', '1801-0', false]]);
});

// ---- posting ----------------------------------------------------------------------------------

/** A world whose lobby is subscribed on an open socket. */
function subscribedWorld(opts) {
  const w = world({ channels: [lobby], ...opts });
  w.sync.authorized();
  w.sync.subscribed({ channel: 'lobby', last_id: '1700-3' });
  w.take();
  return w;
}

test('a post is sent with its client_id and confirmed by posted', () => {
  const w = subscribedWorld();
  const ch = w.ch('lobby');
  const p = w.sync.queue(ch, 'hello', 'cid-1');
  assert.deepEqual(p, { cid: 'cid-1', channel: 'lobby', text: 'hello', state: 'queued' });
  w.sync.sendPost(ch, p);
  assert.equal(p.state, 'sent');
  assert.deepEqual(w.sync.inflight, [p]);
  w.sync.posted({ channel: 'lobby', client_id: 'cid-1', id: '1705-0', created_at: '2024-05-01T10:00:00Z' });
  assert.deepEqual(ch.pending, []);
  assert.deepEqual(w.sync.inflight, []);
  assert.deepEqual(ch.events, [{ id: '1705-0', channel: 'lobby', type: 'message', username: 'alice', text: 'hello', created_at: '2024-05-01T10:00:00Z' }]);
  // Its echo is already there: not added again, not counted as a message from someone else.
  w.sync.event(msg('lobby', '1705-0', 'hello', 'alice'));
  assert.equal(ch.events.length, 1);
  assert.equal(ch.cursor, '1705-0');
  assert.deepEqual(w.log, [
    ['send', 'post', { channel: 'lobby', text: 'hello', client_id: 'cid-1' }],
    ['added', 'lobby', ['1705-0'], false],
    ['pending', 'lobby', []],
  ]);
});

test('a post gets a random UUID as client_id by default', () => {
  const w = subscribedWorld();
  const a = w.sync.queue(w.ch('lobby'), 'one');
  const b = w.sync.queue(w.ch('lobby'), 'two');
  assert.match(a.cid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.notEqual(a.cid, b.cid);
});

test('posted while a window in the past is shown: confirmed, and its event comes with the live stream', () => {
  const w = subscribedWorld();
  const ch = w.ch('lobby');
  const p = w.sync.queue(ch, 'hello', 'cid-1');
  w.sync.sendPost(ch, p);
  ch.atLatest = false;
  w.sync.posted({ channel: 'lobby', client_id: 'cid-1', id: '1705-0', created_at: 't' });
  assert.deepEqual(ch.pending, []);
  assert.deepEqual(ch.events, []);
  assert.ok(w.sync.ownIds.has('1705-0'));
  w.sync.event(msg('lobby', '1705-0', 'hello', 'alice'));
  assert.deepEqual(ch.buffer.map((e) => e.id), ['1705-0']);
});

test('the echo arriving before posted confirms the post (matched by text), shown once', () => {
  const w = subscribedWorld();
  const ch = w.ch('lobby');
  const p = w.sync.queue(ch, 'hello', 'cid-1');
  const other = w.sync.queue(ch, 'second', 'cid-2');
  w.sync.sendPost(ch, p);
  w.sync.sendPost(ch, other);
  w.take();
  w.sync.event(msg('lobby', '1705-0', 'hello', 'alice'));
  assert.deepEqual(ch.pending, [other]);
  assert.deepEqual(w.sync.inflight, [other]);
  w.sync.posted({ channel: 'lobby', client_id: 'cid-1', id: '1705-0', created_at: 't' });
  assert.deepEqual(ch.events.map((e) => e.id), ['1705-0']);
  assert.deepEqual(w.log, [
    ['pending', 'lobby', ['cid-2 sent']],
    ['added', 'lobby', ['1705-0'], false],
  ]);
});

test('a post written while offline waits, and goes out after the channel is subscribed', () => {
  const w = world({ channels: [lobby], open: false });
  const ch = w.ch('lobby');
  const p = w.sync.queue(ch, 'written offline', 'cid-1');
  w.sync.sendPost(ch, p);
  assert.equal(p.state, 'queued');
  w.open = true;
  w.sync.socketUp();
  w.sync.authorized();
  w.sync.sendPost(ch, p); // subscribed not yet answered: still waits
  assert.equal(p.state, 'queued');
  w.sync.subscribed({ channel: 'lobby', last_id: '1700-3' });
  assert.equal(p.state, 'sent');
  assert.deepEqual(w.log, [
    ['send', 'resume', { channels: { lobby: '1700-3' } }],
    ['send', 'post', { channel: 'lobby', text: 'written offline', client_id: 'cid-1' }],
  ]);
});

test('a post in flight when the socket dropped is sent again with the same client_id', () => {
  const w = subscribedWorld();
  const ch = w.ch('lobby');
  const p = w.sync.queue(ch, 'in flight', 'cid-1');
  w.sync.sendPost(ch, p);
  w.sync.socketDown(1006);
  assert.deepEqual(w.sync.inflight, []);
  assert.equal(p.state, 'sent');
  w.sync.socketUp();
  w.sync.authorized();
  w.sync.event(msg('lobby', '1704-0', 'from bob')); // replayed, not this post
  w.sync.subscribed({ channel: 'lobby', last_id: '1704-0' });
  assert.deepEqual(w.sent(), [
    { channel: 'lobby', text: 'in flight', client_id: 'cid-1' },
    { channels: { lobby: '1700-3' } },
    { channel: 'lobby', text: 'in flight', client_id: 'cid-1' },
  ]);
  assert.deepEqual(w.sync.inflight, [p]);
  w.sync.posted({ channel: 'lobby', client_id: 'cid-1', id: '1705-0', created_at: 't' });
  assert.deepEqual(ch.pending, []);
  assert.deepEqual(w.sync.inflight, []);
  assert.deepEqual(ch.events.map((e) => e.id), ['1704-0', '1705-0']);
});

test('a post in flight that the replay brought back is not sent again', () => {
  const w = subscribedWorld();
  const ch = w.ch('lobby');
  const p = w.sync.queue(ch, 'in flight', 'cid-1');
  w.sync.sendPost(ch, p);
  w.sync.socketDown(1001);
  w.sync.socketUp();
  w.sync.authorized();
  w.sync.event(msg('lobby', '1705-0', 'in flight', 'alice'));
  w.sync.subscribed({ channel: 'lobby', last_id: '1705-0' });
  assert.deepEqual(w.sent('post'), [{ channel: 'lobby', text: 'in flight', client_id: 'cid-1' }]);
  assert.deepEqual(ch.pending, []);
  assert.deepEqual(ch.events.map((e) => e.id), ['1705-0']);
});

test('an error naming no channel fails the oldest post waiting', () => {
  const w = subscribedWorld();
  const ch = w.ch('lobby');
  const a = w.sync.queue(ch, 'first', 'cid-1');
  const b = w.sync.queue(ch, 'second', 'cid-2');
  w.sync.sendPost(ch, a);
  w.sync.sendPost(ch, b);
  w.take();
  assert.equal(w.sync.error({ code: 'rate_limited', message: 'slow down' }), null);
  assert.deepEqual([a.state, a.error], ['failed', 'slow down']);
  assert.equal(b.state, 'sent');
  assert.deepEqual(w.sync.inflight, [b]);
  assert.deepEqual(w.log, [['pending', 'lobby', ['cid-1 failed', 'cid-2 sent']]]);
  // A failed post is not sent again on the next subscribed; the others are.
  w.sync.subscribed({ channel: 'lobby' });
  assert.deepEqual(w.sent('post'), [{ channel: 'lobby', text: 'second', client_id: 'cid-2' }]);
});

test('an error with no post waiting is shown, except forbidden', () => {
  const w = subscribedWorld();
  assert.equal(w.sync.error({ code: 'bad_frame', message: 'unknown frame' }), 'unknown frame');
  assert.equal(w.sync.error({ code: 'internal' }), 'Something went wrong');
  assert.equal(w.sync.error({ code: 'forbidden', message: 'not allowed' }), null);
  assert.deepEqual(w.log, []);
});

test('retry sends a failed post again with its client_id; discard drops it', () => {
  const w = subscribedWorld();
  const ch = w.ch('lobby');
  const a = w.sync.queue(ch, 'first', 'cid-1');
  const b = w.sync.queue(ch, 'second', 'cid-2');
  for (const p of [a, b]) {
    w.sync.sendPost(ch, p);
    w.sync.error({ code: 'rate_limited', message: 'slow down' });
  }
  w.take();
  w.sync.retry(a);
  assert.deepEqual([a.state, a.error], ['sent', '']);
  w.sync.discard(b);
  assert.deepEqual(ch.pending, [a]);
  assert.deepEqual(w.log, [
    ['pending', 'lobby', ['cid-1 queued', 'cid-2 failed']],
    ['send', 'post', { channel: 'lobby', text: 'first', client_id: 'cid-1' }],
    ['pending', 'lobby', ['cid-1 sent']],
  ]);
});

test('a voice message the upload answered is shown once, before or without its live event', () => {
  const w = subscribedWorld();
  const voice = { id: '1706-0', channel: 'lobby', type: 'message', username: 'alice', text: '', voice: { duration_ms: 900, state: 'pending' } };
  w.sync.voiceSent(voice);
  w.sync.voiceSent(null);
  w.sync.event({ ...voice });
  assert.deepEqual(w.ch('lobby').events.map((e) => e.id), ['1706-0']);
  assert.ok(w.sync.ownIds.has('1706-0'));
  assert.deepEqual(w.log, [['added', 'lobby', ['1706-0'], false]]);
});

// ---- gaps -------------------------------------------------------------------------------------

test('a gap is paged from history up to its end, as if replayed, before pending posts go out', async () => {
  assert.deepEqual([GAP_PAGES, GAP_PAGE_SIZE], [10, 200]);
  // 450 messages after the cursor; the gap ends at the 350th, the replay covers the rest.
  const w = world({ channels: [lobby], history: { lobby: messages('lobby', 1701, 450) } });
  const ch = w.ch('lobby');
  w.sync.authorized();
  const p = w.sync.queue(ch, 'waiting', 'cid-1');
  w.take();
  const done = w.sync.subscribed({ channel: 'lobby', last_id: '2150-0', gap: { after: '1700-3', until: '2050-0' } });
  assert.equal(ch.gapping, true);
  assert.equal(p.state, 'queued', 'not sent while the gap is read');
  await done;
  const log = w.take();
  assert.deepEqual(log.filter((e) => e[0] === 'page'), [
    ['page', 'lobby', { after: '1700-3', limit: 200 }],
    ['page', 'lobby', { after: '1900-0', limit: 200 }],
  ]);
  const got = log.filter((e) => e[0] === 'message');
  assert.equal(got.length, 350);
  assert.deepEqual(got[0], ['message', 'lobby', '1701-0', true]);
  assert.deepEqual(got[349], ['message', 'lobby', '2050-0', true]);
  assert.deepEqual(ch.events.map((e) => e.id), messages('lobby', 1701, 350).map((e) => e.id));
  assert.equal(ch.cursor, '2150-0');
  assert.equal(ch.gapping, false);
  assert.deepEqual(log.slice(-3), [
    ['pending', 'lobby', ['cid-1 queued']],
    ['unread'],
    ['send', 'post', { channel: 'lobby', text: 'waiting', client_id: 'cid-1' }],
  ]);
  assert.equal(p.state, 'sent');
});

test('a second subscribed while a gap is read sends nothing until the gap is filled', async () => {
  const w = world({ channels: [lobby], history: { lobby: messages('lobby', 1701, 3) } });
  const ch = w.ch('lobby');
  w.sync.authorized();
  const p = w.sync.queue(ch, 'waiting', 'cid-1');
  w.take();
  const done = w.sync.subscribed({ channel: 'lobby', gap: { after: '1700-3', until: '1703-0' } });
  w.sync.subscribed({ channel: 'lobby' });
  assert.equal(p.state, 'queued');
  assert.deepEqual(w.sent(), []);
  await done;
  assert.deepEqual(w.sent('post'), [{ channel: 'lobby', text: 'waiting', client_id: 'cid-1' }]);
  assert.deepEqual(ch.events.map((e) => e.id), ['1701-0', '1702-0', '1703-0']);
});

test('a gap ends at the end of history when its last page has no more', async () => {
  const w = world({ channels: [lobby], history: { lobby: messages('lobby', 1701, 30) } });
  w.sync.authorized();
  w.take();
  await w.sync.subscribed({ channel: 'lobby', gap: { after: '1700-3', until: '9999-0' } });
  const log = w.take();
  assert.deepEqual(log.filter((e) => e[0] === 'page'), [['page', 'lobby', { after: '1700-3', limit: 200 }]]);
  assert.equal(w.ch('lobby').events.length, 30);
  assert.equal(w.ch('lobby').cursor, '1730-0');
  assert.ok(!log.some((e) => e[0] === 'reloaded'));
});

test('events already seen in a gap are not counted again', async () => {
  const w = world({ channels: [lobby], history: { lobby: messages('lobby', 1701, 5) } });
  w.sync.authorized();
  w.sync.event(msg('lobby', '1703-0'));
  w.take();
  await w.sync.subscribed({ channel: 'lobby', gap: { after: '1700-3', until: '1705-0' } });
  assert.deepEqual(w.take().filter((e) => e[0] === 'message').map((e) => e[2]), ['1701-0', '1702-0', '1704-0', '1705-0']);
  assert.deepEqual(w.ch('lobby').events.map((e) => e.id), ['1701-0', '1702-0', '1703-0', '1704-0', '1705-0']);
});

test('a gap longer than ten pages: the channel reloads from its newest page, posts in flight fail', async () => {
  const w = world({ channels: [lobby], history: { lobby: messages('lobby', 1701, 2500) } });
  const ch = w.ch('lobby');
  w.sync.authorized();
  w.sync.subscribed({ channel: 'lobby' });
  const sent = w.sync.queue(ch, 'was in flight', 'cid-1');
  w.sync.sendPost(ch, sent);
  w.sync.socketDown(1006);
  const queued = w.sync.queue(ch, 'written offline', 'cid-2');
  w.sync.socketUp();
  w.sync.authorized();
  w.take();
  const gen = ch.gen;
  await w.sync.subscribed({ channel: 'lobby', last_id: '4200-0', gap: { after: '1700-3', until: '4200-0' } });
  const log = w.take();
  const pages = log.filter((e) => e[0] === 'page').map((e) => e[2].after);
  assert.deepEqual(pages, ['1700-3', '1900-0', '2100-0', '2300-0', '2500-0', '2700-0', '2900-0', '3100-0', '3300-0', '3500-0']);
  // What was read is dropped with the loaded range; the channel starts over at the newest.
  assert.deepEqual(ch.events, []);
  assert.equal(ch.ids.size, 0);
  assert.equal(ch.gen, gen + 1);
  assert.equal(ch.loaded, false);
  assert.equal(ch.atLatest, true);
  assert.equal(ch.cursor, '4200-0'); // from subscribed.last_id; the pages reached 3700-0
  assert.deepEqual([sent.state, sent.error], ['failed', 'the connection dropped before it was confirmed; check before retrying']);
  assert.deepEqual(log.slice(-4), [
    ['reloaded', 'lobby'],
    ['pending', 'lobby', ['cid-1 failed', 'cid-2 queued']],
    ['unread'],
    ['send', 'post', { channel: 'lobby', text: 'written offline', client_id: 'cid-2' }],
  ]);
  assert.equal(queued.state, 'sent');
});

test('a history page that fails counts as a gap too long', async () => {
  const w = world({ channels: [lobby], history: { lobby: messages('lobby', 1701, 500) }, failPage: 1 });
  const ch = w.ch('lobby');
  w.sync.authorized();
  w.take();
  await w.sync.subscribed({ channel: 'lobby', gap: { after: '1700-3', until: '2200-0' } });
  const log = w.take();
  assert.deepEqual(log.filter((e) => e[0] === 'page').length, 2);
  assert.equal(log.filter((e) => e[0] === 'message').length, 200, 'the first page was applied');
  assert.deepEqual(log.slice(-3), [['reloaded', 'lobby'], ['pending', 'lobby', []], ['unread']]);
  assert.deepEqual(ch.events, []);
  assert.equal(ch.cursor, '1900-0');
  assert.equal(ch.gapping, false);
});
