// The member panel's rules and wording (frontend/js/members.js), under Node alone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memberEventText, actionsFor, mayInvite, refusalText, byChannel, untilText } from '../../frontend/js/members.js';

test('member events read as sentences; other events are not theirs', () => {
  assert.equal(memberEventText({ type: 'member_added', username: 'bob', text: 'ann' }), 'ann added bob');
  assert.equal(memberEventText({ type: 'member_added', username: 'ann', text: 'ann' }), 'ann joined');
  assert.equal(memberEventText({ type: 'member_removed', username: 'bob', text: 'kicked' }), 'bob was removed');
  assert.equal(memberEventText({ type: 'member_removed', username: 'bob', text: 'banned' }), 'bob was banned');
  assert.equal(memberEventText({ type: 'member_removed', username: 'bob', text: 'left' }), 'bob left');
  assert.equal(memberEventText({ type: 'role_changed', username: 'bob', text: 'moderator' }), 'bob is now a moderator');
  assert.equal(memberEventText({ type: 'role_changed', username: 'bob', text: 'member' }), 'bob is no longer a moderator');
  assert.equal(
    memberEventText({ type: 'channel_updated', username: 'ann', text: '{"topic":"launch","slow_mode_secs":"30"}' }),
    'ann set the topic: launch, turned on slow mode (one post per 30 s)',
  );
  assert.equal(memberEventText({ type: 'channel_updated', username: 'ann', text: 'not json' }), 'ann changed the settings');
  assert.equal(memberEventText({ type: 'message', username: 'ann', text: 'hi' }), null);
});

test('only a higher role acts on a member, and only the owner sets roles', () => {
  const owner = { me: 'ann', myRole: 'owner', kind: 'private' };
  const mod = { me: 'bob', myRole: 'moderator', kind: 'private' };
  const member = { me: 'cat', myRole: 'member', kind: 'private' };
  assert.deepEqual(actionsFor(owner, { username: 'bob', role: 'moderator' }), ['kick', 'ban', 'mute', 'demote']);
  assert.deepEqual(actionsFor(owner, { username: 'cat', role: 'member' }), ['kick', 'ban', 'mute', 'promote']);
  assert.deepEqual(actionsFor(owner, { username: 'ann', role: 'owner' }), [], 'not on oneself');
  assert.deepEqual(actionsFor(mod, { username: 'cat', role: 'member' }), ['kick', 'ban', 'mute']);
  assert.deepEqual(actionsFor(mod, { username: 'ann', role: 'owner' }), []);
  assert.deepEqual(actionsFor(mod, { username: 'dan', role: 'moderator' }), []);
  assert.deepEqual(actionsFor(member, { username: 'dan', role: 'member' }), []);
  assert.deepEqual(actionsFor({ me: 'root', myRole: 'member', admin: true, kind: 'public' }, { username: 'ann', role: 'owner' }), ['kick', 'ban', 'mute']);
  assert.deepEqual(actionsFor({ me: 'ann', myRole: 'owner', kind: 'dm' }, { username: 'bob', role: 'member' }), []);
  assert.equal(mayInvite('member', 'group'), true);
  assert.equal(mayInvite('member', 'private'), false);
  assert.equal(mayInvite('moderator', 'public'), true);
});

test('refused posts are explained; other errors are left alone', () => {
  assert.match(refusalText('muted', 'x'), /muted you/);
  assert.equal(refusalText('slow_mode', 'post again in 3 s'), 'This channel is in slow mode. post again in 3 s');
  assert.match(refusalText('banned'), /banned/);
  assert.equal(refusalText('forbidden', 'no'), null);
  assert.equal(untilText(0), 'until a moderator lifts it');
  assert.match(untilText(Date.UTC(2030, 0, 2, 3, 4)), /^until /);
});

test('recent messages group by channel, the liveliest first', () => {
  const got = byChannel([
    { channel: 'a', created_at: 5, id: '5-0' },
    { channel: 'b', created_at: 9, id: '9-0' },
    { channel: 'a', created_at: 1, id: '1-0' },
  ]);
  assert.deepEqual(got.map(([c, l]) => [c, l.map((m) => m.id)]), [['b', ['9-0']], ['a', ['1-0', '5-0']]]);
  assert.deepEqual(byChannel([]), []);
});
