// Stream IDs as the browser client compares them (frontend/js/state.js): `ms-seq`, compared as
// two numbers, never as strings.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cmpId, idBefore } from '../../frontend/js/state.js';

const sign = (a, b) => Math.sign(cmpId(a, b));

test('IDs compare by milliseconds first, then by sequence', () => {
  assert.equal(sign('1700000000000-0', '1700000000001-0'), -1);
  assert.equal(sign('1700000000001-0', '1700000000000-99'), 1);
  assert.equal(sign('1700000000000-3', '1700000000000-2'), 1);
  assert.equal(sign('1700000000000-2', '1700000000000-3'), -1);
  assert.equal(sign('1700000000000-2', '1700000000000-2'), 0);
});

test('IDs compare as numbers where strings would order them wrongly', () => {
  // As strings, '9-0' > '10-0' and '5-9' > '5-10'.
  assert.equal(sign('10-0', '9-0'), 1);
  assert.equal(sign('9-0', '10-0'), -1);
  assert.equal(sign('5-10', '5-9'), 1);
  assert.equal(sign('999-1', '1000-0'), -1);
});

test('an ID without a sequence is sequence 0, and 0-0 comes before every ID', () => {
  assert.equal(sign('5', '5-0'), 0);
  assert.equal(sign('5', '5-1'), -1);
  assert.equal(sign('0-0', '0-1'), -1);
  assert.equal(sign('0-0', '1-0'), -1);
  assert.equal(sign('0-0', '0-0'), 0);
});

test('sorting with cmpId gives stream order', () => {
  const ids = ['10-0', '9-1', '9-10', '100-0', '9-2', '1-0'];
  assert.deepEqual([...ids].sort(cmpId), ['1-0', '9-1', '9-2', '9-10', '10-0', '100-0']);
});

test('idBefore is the ID just before, for exclusive after= queries that include the ID', () => {
  assert.equal(idBefore('1700000000000-3'), '1700000000000-2');
  assert.equal(idBefore('1700000000000-1'), '1700000000000-0');
  assert.equal(idBefore('1700000000000-0'), '1699999999999-18446744073709551615');
  assert.equal(idBefore('1700000000000'), '1699999999999-18446744073709551615');
  // The sequence is a u64: computed exactly, beyond what a JavaScript number holds.
  assert.equal(idBefore('5-18446744073709551615'), '5-18446744073709551614');
});

test('idBefore sorts before its ID and after everything earlier', () => {
  for (const id of ['1700000000000-0', '1700000000000-7', '10-0']) {
    assert.equal(sign(idBefore(id), id), -1, id);
  }
  assert.equal(sign(idBefore('10-0'), '9-1000000'), 1);
});
