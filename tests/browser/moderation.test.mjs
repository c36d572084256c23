// Private channels, groups, the member panel with moderation, seed 003's insight screens and the
// admin page, in Chromium against two chatnode nodes on one Redis: Ann (an administrator) on node
// A, Bob on node B. Screenshots at desktop and phone size go to target/screenshots.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, launchBrowser, person, shot } from './harness.mjs';
import { signUp, send, seeMessage, openChannel, go } from './ui.mjs';

let cluster;
let browser;
let ann;
let bob;

const HOSTILE = '<img src=x onerror="window.pwned=1">';

before(async () => {
  process.env.CHATNODE__AUTH__ADMINS = 'ann';
  cluster = await startCluster();
  browser = await launchBrowser();
  // Two more people, over REST, to fill a group.
  for (const username of ['cat', 'dan']) {
    const r = await fetch(`${cluster.url}/api/auth/register`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username, password: 'correct horse 42' }),
    });
    assert.equal(r.status, 201);
  }
}, { timeout: 90000 });

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (cluster) await cluster.stop();
}, { timeout: 60000 });

/** The sidebar's channel links by name. */
const sidebarNames = (page) => page.$$eval('#sidebar .chan', (els) => els.map((e) => e.dataset.channel));

test('a private channel: created with the dialog, members added from the info panel, live on the other node', { timeout: 120000 }, async () => {
  ann = await person(browser, cluster.url);
  cluster.proxy.prefer(0);
  await signUp(ann.page, { username: 'ann' });
  cluster.proxy.prefer(1);
  bob = await person(browser, cluster.url);
  await signUp(bob.page, { username: 'bob' });
  const a = ann.page;
  const b = bob.page;

  await go(a, '#/browse');
  await a.fill('#cc-name', 'launch');
  await a.fill('#cc-topic', HOSTILE);
  await a.check('#cc-private');
  await shot(a, 'moderation-create-desktop');
  await a.click('#create-form button[type=submit]');
  await a.waitForFunction(() => document.querySelector('#chat-view').dataset.channel === 'launch');
  assert.equal(await a.textContent('#chat-sub'), 'Private channel');
  assert.equal(await a.locator('#sidebar .chan[data-channel=launch] .lock svg.icon-lock').count(), 1);
  assert.ok(!(await sidebarNames(b)).includes('launch'), 'Bob does not see it');

  // The info panel: topic as text, the owner listed, Bob added by name.
  await a.click('#channel-info');
  await a.locator('#info-view:not([hidden]) #member-list li[data-user=ann]').waitFor();
  assert.equal(await a.textContent('#info-topic'), HOSTILE);
  assert.equal(await a.$$eval('#info-view img', (els) => els.length), 0);
  assert.equal(await a.getAttribute('#member-list li[data-user=ann]', 'data-role'), 'owner');
  await a.fill('#invite-name', 'bob');
  await a.click('#invite-form button[type=submit]');
  await a.locator('#member-list li[data-user=bob]').waitFor();
  await shot(a, 'moderation-info-desktop');

  // Bob's page, on the other node, lists it at once, with its lock.
  await b.locator('#sidebar .chan[data-channel=launch] .lock svg').waitFor({ timeout: 10000 });
  await openChannel(b, 'launch');
  await send(b, 'hello from bob');
  await openChannel(a, 'launch');
  await seeMessage(a, 'hello from bob');
  // The member event reads as a sentence in the conversation.
  await a.locator('#message-list li.member-event', { hasText: 'ann added bob' }).waitFor();
  assert.equal(await a.evaluate(() => window.pwned), undefined);
});

test('mute explains the composer; removal takes the channel away on the other node at once', { timeout: 90000 }, async () => {
  const a = ann.page;
  const b = bob.page;
  await go(a, '#/info/launch');
  await a.locator('#member-list li[data-user=bob] .member-actions').waitFor();
  await a.click('button[aria-label="Mute bob"]');
  await a.locator('.toast', { hasText: 'bob is muted' }).waitFor();
  await send(b, 'am I muted?');
  await b.locator('#compose-notice:not([hidden])', { hasText: 'muted you' }).waitFor();
  await shot(b, 'moderation-muted-desktop');

  a.once('dialog', (d) => d.accept());
  await a.click('button[aria-label="Remove bob"]');
  const started = Date.now();
  await b.waitForFunction(() => !document.querySelector('#sidebar .chan[data-channel=launch]'), null, { timeout: 5000 });
  const took = Date.now() - started;
  console.log(`removal reached the other node's page in ${took} ms`);
  await b.locator('.toast', { hasText: 'You were removed from #launch' }).waitFor();
  assert.ok(await b.isHidden('#chat-view') || (await b.getAttribute('#chat-view', 'data-channel')) !== 'launch');
  await openChannel(a, 'launch');
  await a.locator('#message-list li.member-event', { hasText: 'bob was removed' }).waitFor();
  // Back on his page, the channel is not there to open.
  await b.evaluate(() => { location.hash = '#/c/launch'; });
  await b.locator('.toast', { hasText: 'There is no channel #launch' }).waitFor();
});

test('a group conversation started from People with several picked', { timeout: 60000 }, async () => {
  const a = ann.page;
  await go(a, '#/people');
  await a.locator('#people-results li[data-user=cat]').waitFor();
  await a.check('#people-results li[data-user=bob] input.pick');
  await a.check('#people-results li[data-user=cat] input.pick');
  await a.fill('#group-title', 'Trio');
  await shot(a, 'moderation-group-pick-desktop');
  await a.click('#group-start');
  await a.waitForFunction(() => (document.querySelector('#chat-view').dataset.channel || '').startsWith('group:'));
  assert.equal(await a.textContent('#chat-title'), 'Trio');
  await send(a, 'trio hello');
  await seeMessage(a, 'trio hello');
  const b = bob.page;
  await b.locator('#dm-list .chan .chan-name', { hasText: 'Trio' }).waitFor({ timeout: 10000 });
});

test('insight screens and the admin page, at desktop and phone size', { timeout: 60000 }, async () => {
  const a = ann.page;
  await go(a, '#/recent');
  await a.locator('#recent-list .recent-group').first().waitFor();
  const groups = await a.$$eval('#recent-list .recent-group', (els) => els.map((e) => e.dataset.channel));
  assert.ok(groups.includes('launch'), `${groups}`);
  assert.ok(await a.locator('#recent-list', { hasText: 'hello from bob' }).count());
  await shot(a, 'moderation-recent-desktop');

  await go(a, '#/top');
  await a.locator('#top-status', { hasText: /No messages yet|^$/ }).waitFor();
  await a.selectOption('#top-channel', 'launch');
  await a.locator('#top-list li[data-user=bob]').waitFor();
  await shot(a, 'moderation-top-desktop');

  await go(a, '#/admin');
  await a.locator('#admin-stats dt', { hasText: 'Users' }).waitFor();
  assert.match(await a.textContent('#admin-stats'), /Redis memory/);
  await shot(a, 'moderation-admin-desktop');
  assert.equal(await bob.page.isHidden('#nav-admin'), true, 'Bob is no administrator');

  await a.setViewportSize({ width: 375, height: 812 });
  for (const [hash, ready, name] of [
    ['#/info/launch', '#member-list li[data-user=ann]', 'moderation-info-phone'],
    ['#/recent', '#recent-list .recent-group', 'moderation-recent-phone'],
    ['#/top', '#top-list li.poster', 'moderation-top-phone'],
    ['#/admin', '#admin-stats dt', 'moderation-admin-phone'],
    ['#/browse', '#create-form #cc-private', 'moderation-create-phone'],
    ['#/people', '#people-results li', 'moderation-people-phone'],
  ]) {
    await go(a, hash);
    await a.locator(ready).first().waitFor();
    await shot(a, name);
  }
  await a.setViewportSize({ width: 1280, height: 800 });
});

test('an administrator disables an account: the page is signed out at once', { timeout: 60000 }, async () => {
  const a = ann.page;
  const b = bob.page;
  await go(a, '#/admin');
  await a.fill('#admin-user', 'dan');
  a.once('dialog', (d) => d.accept());
  await a.click('#admin-form button[value=disable]');
  await a.locator('.toast', { hasText: 'dan is disabled' }).waitFor();
  assert.deepEqual(ann.problems, []);
  assert.deepEqual(bob.problems, []);
  // Bob disabled: his page goes back to the sign-in screen.
  await a.fill('#admin-user', 'bob');
  a.once('dialog', (d) => d.accept());
  await a.click('#admin-form button[value=disable]');
  await b.locator('#auth:not([hidden])').waitFor({ timeout: 10000 });
});
