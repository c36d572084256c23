// Message actions in the page, across two nodes: formatting (and hostile text staying text),
// editing with ↑, reactions from the picker and the chips, replies with their quote and thread,
// deleting with confirmation, the menu by keyboard and by long press, at desktop and phone size.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, launchBrowser, person, shot, waitFor } from './harness.mjs';
import { signUp, send, seeMessage, openChannel, waitOnline } from './ui.mjs';

const PHONE = { viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true };

let cluster;
let browser;
let alice;
let bob;

before(async () => {
  cluster = await startCluster();
  browser = await launchBrowser();
}, { timeout: 90000 });

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (cluster) await cluster.stop();
}, { timeout: 60000 });

/** A REST call from the page, with its session cookie. */
function call(page, method, path, body) {
  return page.evaluate(async ({ method, path, body }) => {
    const r = await fetch(path, { method, headers: { 'Content-Type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
    return r.status;
  }, { method, path, body });
}

/** The `li` of the message whose text is `text`. */
const item = (page, text) => page.locator('#message-list li.msg', { has: page.locator('.text', { hasText: text }) }).last();

test('two people in one channel, on two nodes, one on a phone', { timeout: 90000 }, async () => {
  cluster.proxy.prefer(0);
  alice = await person(browser, cluster.url);
  await signUp(alice.page, { username: 'alice' });
  cluster.proxy.prefer(1);
  bob = await person(browser, cluster.url, PHONE);
  await signUp(bob.page, { username: 'bob' });
  assert.equal(await call(alice.page, 'POST', '/api/channels', { name: 'actions' }), 201);
  assert.equal(await call(bob.page, 'POST', '/api/channels/actions/join', {}), 204);
  for (const p of [alice.page, bob.page]) {
    await p.reload();
    await waitOnline(p);
    await openChannel(p, 'actions');
    await p.locator('#compose').waitFor();
  }
});

test('formatting renders as elements; hostile text stays text', { timeout: 60000 }, async () => {
  const a = alice.page;
  await send(a, 'helo **world** _now_ `x<y`');
  await seeMessage(bob.page, 'helo world now x<y');
  const li = item(a, 'helo world');
  assert.equal(await li.locator('.text strong').textContent(), 'world');
  assert.equal(await li.locator('.text em').textContent(), 'now');
  assert.equal(await li.locator('.text code').textContent(), 'x<y');

  const hostile = '<img src=x onerror="window.__pwned=1"> **<script>window.__pwned=2</script>** [x](javascript:window.__pwned=3) ```\n<b>block</b>\n``` https://example.com/a';
  await send(a, hostile);
  const h = item(bob.page, 'https://example.com/a');
  await h.waitFor();
  for (const page of [a, bob.page]) {
    const found = await page.evaluate(() => ({
      img: document.querySelectorAll('#message-list img').length,
      script: document.querySelectorAll('#message-list script').length,
      b: document.querySelectorAll('#message-list b').length,
      js: [...document.querySelectorAll('#message-list a')].filter((l) => !/^https?:/.test(l.href)).length,
      pwned: window.__pwned || null,
    }));
    assert.deepEqual(found, { img: 0, script: 0, b: 0, js: 0, pwned: null });
  }
  assert.equal(await h.locator('.code-block').textContent(), '<b>block</b>');
  assert.equal(await h.locator('strong').textContent(), '<script>window.__pwned=2</script>');
});

test('↑ in the empty box edits the last own message; everyone sees "(edited)"', { timeout: 60000 }, async () => {
  const a = alice.page;
  await send(a, 'wrld peace');
  await seeMessage(bob.page, 'wrld peace');
  await a.focus('#compose');
  await a.press('#compose', 'ArrowUp');
  const box = a.locator('#message-list .edit-box');
  await box.waitFor();
  assert.equal(await box.inputValue(), 'wrld peace');
  await box.fill('world peace');
  await box.press('Enter');
  await seeMessage(bob.page, 'world peace (edited)');
  await seeMessage(a, 'world peace (edited)');
  // Another person has no Edit or Delete on it.
  const theirs = item(bob.page, 'world peace');
  await bob.page.evaluate(() => document.activeElement && document.activeElement.blur());
  await theirs.locator('.more').click();
  const labels = await bob.page.locator('.msg-menu button').allTextContents();
  assert.deepEqual(labels, ['Reply', 'React']);
  await bob.page.keyboard.press('Escape');
  await bob.page.locator('.msg-menu').waitFor({ state: 'detached' });
});

test('reactions from the picker and the chips, yours highlighted', { timeout: 60000 }, async () => {
  const b = bob.page;
  const theirs = item(b, 'world peace');
  await theirs.locator('.more').click();
  await b.click('.msg-menu button:text("React")');
  await b.click('.msg-menu.picker button[aria-label="👍"]');
  const chipB = theirs.locator('.chip');
  await waitFor(async () => (await chipB.getAttribute('aria-pressed')) === 'true', { what: 'bob’s chip pressed' });
  const chipA = item(alice.page, 'world peace').locator('.chip');
  await waitFor(async () => (await chipA.count()) === 1 && (await chipA.textContent()).trim() === '👍 1', { what: 'the reaction at alice' });
  assert.equal(await chipA.getAttribute('aria-pressed'), 'false');
  await chipA.click();
  await waitFor(async () => (await chipA.textContent()).trim() === '👍 2' && (await chipA.getAttribute('aria-pressed')) === 'true', { what: 'alice’s own reaction' });
  await waitFor(async () => (await chipB.textContent()).trim() === '👍 2', { what: 'two at bob' });
  await chipA.click();
  await waitFor(async () => (await chipB.textContent()).trim() === '👍 1', { what: 'alice took hers back' });
});

test('a reply quotes the original, jumps to it, and the thread lists it', { timeout: 60000 }, async () => {
  const b = bob.page;
  await item(b, 'world peace').locator('.more').click();
  await b.click('.msg-menu button:text("Reply")');
  await b.locator('#reply-bar', { hasText: 'Replying to alice' }).waitFor();
  await send(b, 'agreed');
  await b.locator('#reply-bar').waitFor({ state: 'hidden' });
  const a = alice.page;
  const reply = item(a, 'agreed');
  await reply.waitFor();
  assert.match(await reply.locator('.quote').textContent(), /alice.*world peace/);
  await reply.locator('.quote').click();
  await a.locator('#message-list li.msg.flash', { hasText: 'world peace' }).waitFor();
  const count = item(a, 'world peace').locator('.replies');
  await waitFor(async () => (await count.count()) === 1 && (await count.textContent()) === '1 reply', { what: 'the reply count' });
  await count.click();
  await a.locator('#thread .thread-list li', { hasText: 'agreed' }).waitFor();
  await shot(a, 'actions-desktop-thread');
  await a.click('#thread button[aria-label="Close the thread"]');
  await a.locator('#thread').waitFor({ state: 'hidden' });
});

test('the menu works by keyboard; deleting asks first and leaves a tombstone everywhere', { timeout: 60000 }, async () => {
  const a = alice.page;
  const mine = item(a, 'https://example.com/a');
  const more = mine.locator('.more');
  await more.focus();
  await a.keyboard.press('Enter');
  const first = a.locator('.msg-menu button').first();
  assert.equal(await first.evaluate((el) => el === document.activeElement), true, 'the menu takes the focus');
  await a.keyboard.press('ArrowDown');
  assert.equal(await a.evaluate(() => document.activeElement.textContent), 'React');
  await a.keyboard.press('ArrowDown');
  await a.keyboard.press('ArrowDown');
  assert.equal(await a.evaluate(() => document.activeElement.textContent), 'Delete');
  // Dismissed once: nothing happens.
  a.once('dialog', (d) => d.dismiss());
  await a.keyboard.press('Enter');
  await seeMessage(bob.page, 'https://example.com/a', 5000).catch(() => {});
  assert.equal(await item(bob.page, 'https://example.com/a').count(), 1);
  a.once('dialog', (d) => d.accept());
  await more.click();
  await a.click('.msg-menu button:text("Delete")');
  for (const page of [a, bob.page]) {
    await waitFor(async () => (await page.locator('#message-list li.msg.deleted .tombstone').count()) === 1, { what: 'a tombstone' });
    assert.equal(await page.locator('#message-list li.msg', { hasText: 'example.com' }).count(), 0);
  }
});

test('a long press opens the menu on a phone; screenshots at both sizes', { timeout: 60000 }, async () => {
  const b = bob.page;
  const li = item(b, 'agreed');
  await li.dispatchEvent('touchstart');
  await b.locator('.msg-menu').waitFor();
  assert.deepEqual(await b.locator('.msg-menu button').allTextContents(), ['Reply', 'React', 'Edit', 'Delete']);
  await shot(b, 'actions-phone-menu');
  await b.keyboard.press('Escape');
  await shot(b, 'actions-phone');
  await shot(alice.page, 'actions-desktop');
  assert.deepEqual(alice.problems, []);
  assert.deepEqual(bob.problems, []);
});
