// Stopping the node a person is on: their page says it is reconnecting, comes back through the
// same address on the other node, and shows every message sent meanwhile exactly once, theirs too.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, launchBrowser, person, shot, waitFor } from './harness.mjs';
import { signUp, waitOnline, send, messages, seeMessage, openChannel, go } from './ui.mjs';

let cluster;
let browser;

before(async () => {
  cluster = await startCluster();
  browser = await launchBrowser();
}, { timeout: 90000 });

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (cluster) await cluster.stop();
}, { timeout: 60000 });

// More events than one `resume` replays (512): the rest comes back as a gap to page.
const BULK = 600;
const texts = async (page) => (await messages(page)).map((m) => m.text);

test('a node stops: reconnecting shown, resumed on the other node, nothing lost or doubled', { timeout: 120000 }, async () => {
  const [nodeA, nodeB] = cluster.nodes;
  const { proxy } = cluster;

  proxy.prefer(0);
  const carol = await person(browser, cluster.url);
  const c = carol.page;
  await signUp(c, { username: 'carol' });
  await go(c, '#/browse');
  await c.fill('#cc-name', 'ops');
  await c.click('#create-form button[type=submit]');
  await openChannel(c, 'ops');

  proxy.prefer(1);
  const dave = await person(browser, cluster.url);
  const d = dave.page;
  await signUp(d, { username: 'dave' });
  await go(d, '#/browse');
  await d.locator('#browse-list li[data-channel=ops] button', { hasText: 'Join' }).click();
  await openChannel(d, 'ops');
  await waitFor(async () => (await nodeA.sockets()) === 1 && (await nodeB.sockets()) === 1,
    { what: 'Carol on node A and Dave on node B' });

  await send(c, 'before 1');
  await seeMessage(d, 'before 1');
  await send(d, 'before 2');
  await seeMessage(c, 'before 2');

  // Watch Carol's connection banner from here on.
  await c.evaluate(() => {
    const conn = document.querySelector('#conn');
    window.connStates = [conn.dataset.state];
    new MutationObserver(() => window.connStates.push(conn.dataset.state))
      .observe(conn, { attributes: true, attributeFilter: ['data-state'] });
  });

  // New connections are turned away for a moment, so the outage is long enough to act in; her
  // page will try node A first again, and the proxy must fail over to B.
  let gaps = 0;
  c.on('websocket', (ws) => ws.on('framereceived', ({ payload }) => {
    if (typeof payload === 'string' && payload.includes('"subscribed"') && payload.includes('"gap"')) gaps += 1;
  }));
  proxy.prefer(0);
  proxy.hold(true);
  process.kill(nodeA.proc.pid, 'SIGTERM');
  await c.waitForFunction(() => document.querySelector('#conn').dataset.state === 'reconnecting');
  assert.ok(await c.isVisible('#conn'), 'the reconnecting banner is visible');
  assert.match(await c.textContent('#conn'), /Reconnecting/);
  await shot(c, 'desktop-reconnecting');

  // Meanwhile Dave (still connected to node B) talks, more than a node replays in one resume,
  // and Carol writes while offline.
  for (const t of ['during 1', 'during 2', 'during 3']) await send(d, t);
  await seeMessage(d, 'during 3');
  // (Straight to node B with Dave's session: the proxy is turning new connections away.)
  const session = (await dave.context.cookies()).find((k) => k.name === 'chatnode_session');
  for (let i = 1; i <= BULK; i += 1) {
    const r = await fetch(`${nodeB.url}/api/channels/ops/messages`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${session.value}` },
      body: JSON.stringify({ text: `bulk ${i}` }),
    });
    assert.equal(r.status, 201, `post ${i}`);
  }
  await send(c, 'carol while offline');
  await c.locator('.pending-list li', { hasText: 'carol while offline' }).waitFor();
  assert.match(await c.textContent('.pending-list li'), /Sending/);

  assert.equal(await waitFor(() => nodeA.proc.exitCode !== null && String(nodeA.proc.exitCode), { ms: 20000, what: 'node A to exit' }), '0');
  proxy.hold(false);

  await waitOnline(c, 30000);
  await seeMessage(c, `bulk ${BULK}`, 30000);
  await seeMessage(d, 'carol while offline');
  await waitFor(async () => (await c.locator('.pending-list li').count()) === 0, { what: 'the pending post to settle' });
  await waitFor(async () => (await nodeB.sockets()) === 2, { what: 'both on node B' });

  // Still live both ways after the move.
  await send(c, 'after');
  await seeMessage(d, 'after');
  await send(d, 'after too');
  await seeMessage(c, 'after too');

  const bulk = Array.from({ length: BULK }, (_, i) => `bulk ${i + 1}`);
  const expected = ['before 1', 'before 2', 'during 1', 'during 2', 'during 3', ...bulk, 'carol while offline', 'after', 'after too'];
  assert.deepEqual(await texts(c), expected);
  assert.deepEqual(await texts(d), expected);
  const ids = (await messages(c)).map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, 'no ID twice');
  assert.deepEqual((await messages(d)).map((m) => m.id), ids, 'both see the same messages in the same order');

  assert.equal(gaps, 1, 'the resume came back with a gap (more missed than one replay holds), which the page read itself');
  const states = await c.evaluate(() => window.connStates);
  assert.ok(states.includes('reconnecting'), `went through reconnecting: ${states}`);
  assert.equal(states[states.length - 1], 'online');

  // What the node stored agrees: a reload shows the newest page, and scrolling back the rest,
  // once each.
  await c.reload();
  await openChannel(c, 'ops');
  await seeMessage(c, 'after too');
  await waitFor(async () => {
    await c.evaluate(() => { document.querySelector('#messages').scrollTop = 0; });
    return (await c.textContent('#older')).includes('start of #ops');
  }, { ms: 30000, every: 300, what: 'the beginning of #ops' });
  assert.deepEqual(await texts(c), expected);
  assert.deepEqual(carol.problems, []);
  assert.deepEqual(dave.problems, []);
});
