// Message formatting (frontend/js/format.js): bold, italic, code, fenced blocks; everything else,
// hostile input included, stays text.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse, plain } from '../../frontend/js/format.js';

const text = (t) => ({ t: 'text', text: t });

test('bold, italic, code and fenced blocks', () => {
  assert.deepEqual(parse('a **b** c'), [text('a '), { t: 'b', children: [text('b')] }, text(' c')]);
  assert.deepEqual(parse('_it_ and `x*y`'), [{ t: 'i', children: [text('it')] }, text(' and '), { t: 'code', text: 'x*y' }]);
  assert.deepEqual(parse('**bold _both_**'), [{ t: 'b', children: [text('bold '), { t: 'i', children: [text('both')] }] }]);
  assert.deepEqual(parse('see\n```js\nlet a = **1**;\n```\nok'), [text('see\n'), { t: 'pre', text: 'let a = **1**;' }, text('\nok')]);
});

test('markers without a partner, inside words or around spaces stay text', () => {
  for (const s of ['snake_case_name', '2 * 3 ** 4', '** not bold **', 'a ` b', '_open', 'x_y_', '```unclosed', '__init__']) {
    assert.equal(plain(parse(s)), s, s);
    assert.ok(parse(s).every((t) => t.t === 'text'), s);
  }
});

test('hostile input is only ever text tokens', () => {
  const hostile = [
    '<img src=x onerror=alert(1)>',
    '**<script>alert(1)</script>**',
    '`<b>` _<i onmouseover=x>_',
    '[click](javascript:alert(1))',
    '```\n</code></pre><script>x</script>\n```',
    '**'.repeat(5000),
    '_'.repeat(5000) + 'a',
  ];
  for (const s of hostile) {
    const tokens = parse(s);
    const walk = (ts) => ts.every((t) => ['text', 'code', 'pre', 'b', 'i'].includes(t.t) && (t.children ? walk(t.children) : typeof t.text === 'string'));
    assert.ok(walk(tokens), s.slice(0, 40));
  }
  // What a tag looks like is kept as characters, not turned into anything.
  assert.deepEqual(parse('<img src=x onerror=alert(1)>'), [text('<img src=x onerror=alert(1)>')]);
  assert.deepEqual(parse('**<script>alert(1)</script>**'), [{ t: 'b', children: [text('<script>alert(1)</script>')] }]);
});

test('nesting is bounded', () => {
  const deep = '**_'.repeat(50) + 'x' + '_**'.repeat(50);
  let depth = 0;
  const measure = (ts, d) => ts.forEach((t) => { depth = Math.max(depth, d); if (t.children) measure(t.children, d + 1); });
  measure(parse(deep), 0);
  assert.ok(depth <= 3, `depth ${depth}`);
});
