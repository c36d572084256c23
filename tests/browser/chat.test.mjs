// Two people, two browser contexts, two chatnode nodes on one Redis behind one address: signing
// up, channels, chatting both ways, DMs, presence, mentions, the directory, search, hostile text,
// history, profiles, signing out, and screenshots at phone and desktop sizes.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, launchBrowser, person, shot, waitFor } from './harness.mjs';
import { PASSWORD, signUp, signIn, waitOnline, send, messages, seeMessage, openChannel, go } from './ui.mjs';

const bulkTexts = (n) => Array.from({ length: n }, (_, i) => (i === 2 ? 'bulk 3 marmalade' : `bulk ${i + 1}`));
const LISBON = { latitude: 38.72, longitude: -9.14 };
const NEAR_LISBON = { latitude: 38.75, longitude: -9.16 };
const PORTO = { latitude: 41.15, longitude: -8.61 };

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

test('first load is small and served with a Content-Security-Policy', { timeout: 60000 }, async () => {
  const { context, page } = await person(browser, cluster.url);
  const sizes = [];
  page.on('requestfinished', async (req) => {
    const s = await req.sizes().catch(() => null);
    if (s) sizes.push({ url: req.url(), bytes: s.responseBodySize + s.responseHeadersSize });
  });
  const res = await page.goto('/');
  await page.locator('#auth').waitFor();
  await page.waitForLoadState('networkidle');
  const csp = res.headers()['content-security-policy'] || '';
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  const total = sizes.reduce((n, s) => n + s.bytes, 0);
  console.log(`first load, signed out: ${sizes.length} requests, ${(total / 1024).toFixed(1)} KiB transferred`);
  assert.ok(total < 100 * 1024, `first load is ${total} bytes`);
  await context.close();
});

test('two people sign up; the username is checked as it is typed', { timeout: 90000 }, async () => {
  alice = await person(browser, cluster.url, { geolocation: LISBON, permissions: ['geolocation', 'notifications'] });
  // Alice's page talks to node A, Bob's (below) to node B, both through the one proxy address.
  cluster.proxy.prefer(0);
  await signUp(alice.page, {
    username: 'alice', firstname: 'Alice', lastname: 'Liddell', city: 'Lisbon', country: 'Portugal', hobbies: 'chess, climbing', location: true,
  });

  cluster.proxy.prefer(1);
  bob = await person(browser, cluster.url, { geolocation: NEAR_LISBON, permissions: ['geolocation'] });
  const p = bob.page;
  await p.goto('/');
  await p.click('#tab-signup');
  await p.fill('#su-username', 'al');
  await p.locator('#su-username-status', { hasText: 'At least 3 characters' }).waitFor();
  await p.fill('#su-username', 'Alice');
  await p.locator('#su-username-status', { hasText: 'is taken' }).waitFor();
  assert.equal(await p.getAttribute('#su-username', 'aria-invalid'), 'true');
  await p.fill('#su-username', 'bad name!');
  await p.locator('#su-username-status', { hasText: 'Use only' }).waitFor();
  await p.fill('#su-password', 'short');
  await p.click('#signup-form button[type=submit]');
  await p.locator('#su-password-status', { hasText: 'at least 8' }).waitFor();
  assert.ok(await p.isVisible('#auth'), 'still on the form');
  await signUp(p, { username: 'bob', firstname: 'Bob', city: 'Porto', country: 'Portugal', hobbies: 'surfing' });

  await waitFor(async () => (await cluster.nodes[0].sockets()) === 1 && (await cluster.nodes[1].sockets()) === 1,
    { what: 'one socket on each node' });
});

test('create and join a channel, then chat both ways across the two nodes', { timeout: 90000 }, async () => {
  const a = alice.page;
  const b = bob.page;
  await go(a, '#/browse');
  await a.fill('#cc-name', 'lobby');
  await a.click('#create-form button[type=submit]');
  await openChannel(a, 'lobby');
  assert.equal(await a.textContent('#chat-title'), '#lobby');

  await go(b, '#/browse');
  await b.locator('#browse-list li[data-channel=lobby] button', { hasText: 'Join' }).click();
  await openChannel(b, 'lobby');
  await b.locator('#channel-list a[data-channel=lobby]').waitFor();
  await a.locator('#message-list li.event', { hasText: 'bob joined' }).waitFor();

  await send(a, 'Hello Bob! 👋');
  await seeMessage(b, 'Hello Bob! 👋');
  await b.fill('#compose', 'Hi Al');
  await a.locator('#typing', { hasText: 'bob is typing' }).waitFor();
  await b.fill('#compose', '');
  await b.type('#compose', 'Hi Alice, line one');
  await b.press('#compose', 'Shift+Enter');
  await b.type('#compose', 'and line two');
  await b.press('#compose', 'Enter');
  await seeMessage(a, 'Hi Alice, line one\nand line two');

  const seenByAlice = await messages(a);
  assert.deepEqual(seenByAlice.map((m) => [m.user, m.own]), [['alice', true], ['bob', false]]);
  const seenByBob = await messages(b);
  assert.deepEqual(seenByBob.map((m) => m.text), seenByAlice.map((m) => m.text));
  assert.deepEqual(seenByBob.map((m) => m.id), seenByAlice.map((m) => m.id), 'same IDs, same order');
  assert.equal(await a.locator('#message-list li.day').first().textContent(), 'Today');
  assert.equal(await b.inputValue('#compose'), '', 'the box is empty after sending');
});

test('a DM from the directory, with each other shown online', { timeout: 90000 }, async () => {
  const a = alice.page;
  const b = bob.page;
  await go(a, '#/people');
  await a.fill('#pf-q', 'bob');
  await a.click('#people-form button[type=submit]');
  const card = a.locator('#people-results li[data-user=bob]');
  await card.locator('.presence', { hasText: 'online' }).waitFor();
  await card.locator('button', { hasText: 'Message' }).click();
  await openChannel(a, 'dm:alice:bob');
  assert.equal(await a.textContent('#chat-title'), 'bob');
  await a.locator('#chat-sub', { hasText: 'Online' }).waitFor();
  await send(a, 'psst, Bob');

  // Bob's list learns of the new conversation, with an unread badge and Alice's online dot.
  const dm = b.locator('#dm-list a[data-channel="dm:alice:bob"]');
  await dm.waitFor({ timeout: 20000 });
  await dm.locator('.badge').waitFor();
  await dm.locator('.dot.online').waitFor();
  await dm.click();
  await openChannel(b, 'dm:alice:bob');
  await seeMessage(b, 'psst, Bob');
  await waitFor(async () => (await dm.locator('.badge').count()) === 0, { what: 'the badge to clear' });
  await send(b, 'what is up?');
  await seeMessage(a, 'what is up?');
  await a.locator('#dm-list a[data-channel="dm:alice:bob"] .dot.online').waitFor();
});

test('a mention is suggested, highlighted, badged and notified', { timeout: 60000 }, async () => {
  const a = alice.page;
  const b = bob.page;
  // Alice looks elsewhere (the DM) and her window is in the background.
  await a.evaluate(() => {
    window.shown = [];
    class Spy {
      static permission = 'granted';
      static requestPermission() { return Promise.resolve('granted'); }
      constructor(title, opts) { window.shown.push({ title, body: opts && opts.body }); }
      close() {}
    }
    window.Notification = Spy;
    document.hasFocus = () => false;
  });
  await openChannel(b, 'lobby');
  await b.fill('#compose', '');
  await b.type('#compose', 'look @al');
  await b.locator('#mention-menu li', { hasText: 'alice' }).waitFor();
  await b.press('#compose', 'Tab');
  assert.equal(await b.inputValue('#compose'), 'look @alice ');
  await b.type('#compose', 'can you review this?');
  await b.press('#compose', 'Enter');

  const lobby = a.locator('#channel-list a[data-channel=lobby]');
  await lobby.locator('.badge.strong').waitFor();
  await waitFor(async () => /^\(\d+\) /.test(await a.title()), { what: 'a title badge' });
  const shown = await waitFor(() => a.evaluate(() => window.shown.length && window.shown), { what: 'a notification' });
  assert.match(shown[0].title, /bob mentioned you/);
  assert.equal(shown[0].body, 'look @alice can you review this?');

  await openChannel(a, 'lobby');
  await seeMessage(a, 'look @alice can you review this?');
  const mine = a.locator('#message-list li.msg.mentions-me');
  assert.equal(await mine.count(), 1);
  assert.equal(await mine.locator('.mention.me').textContent(), '@alice');
  await waitFor(async () => !/^\(/.test(await a.title()), { what: 'the title badge to clear' });
  await a.evaluate(() => { delete document.hasFocus; });
});

test('text that looks like HTML or script shows as text', { timeout: 60000 }, async () => {
  const a = alice.page;
  const b = bob.page;
  const hostile = [
    '<img src=x onerror="window.__pwned=1">',
    '<script>window.__pwned=2</script>',
    '"><svg onload=window.__pwned=3><b>bold?</b>',
    '[x](javascript:window.__pwned=4) javascript:alert(5) see https://example.com/a?b=1&c=<i>2</i>',
    '&lt;entity&gt; &amp; `code` {{template}} ${x}',
  ];
  for (const t of hostile) await send(b, t);
  // Backticks are formatting (inline code): the text shows without them.
  for (const t of hostile) await seeMessage(a, t.replaceAll('`', ''));
  const list = a.locator('#message-list');
  assert.equal(await list.locator('.text code', { hasText: 'code' }).count(), 1);
  for (const tag of ['img', 'script', 'svg', 'b', 'i', 'iframe']) {
    assert.equal(await list.locator(tag).count(), 0, `no <${tag}> from message text`);
  }
  assert.equal(await a.evaluate(() => window.__pwned), undefined);
  assert.equal(await list.locator('a[href^="javascript"]').count(), 0);
  const link = list.locator('a[href^="https://example.com/a"]');
  assert.equal(await link.count(), 1);
  assert.equal(await link.getAttribute('rel'), 'noopener noreferrer');
  assert.equal(await link.getAttribute('target'), '_blank');
});

test('the directory finds people by name, city, country, hobby and distance', { timeout: 60000 }, async () => {
  const b = bob.page;
  await go(b, '#/people');
  const search = async (fields) => {
    for (const id of ['pf-q', 'pf-city', 'pf-country', 'pf-hobby']) await b.fill(`#${id}`, fields[id] || '');
    await b.selectOption('#pf-radius', fields.radius || '');
    await b.click('#people-form button[type=submit]');
    await b.waitForFunction(() => !/…$/.test(document.querySelector('#people-status').textContent));
    return b.$$eval('#people-results > li', (els) => els.map((e) => e.dataset.user).sort());
  };
  assert.deepEqual(await search({ 'pf-city': 'lisbon' }), ['alice']);
  assert.deepEqual(await search({ 'pf-hobby': 'chess' }), ['alice']);
  assert.deepEqual(await search({ 'pf-country': 'Portugal' }), ['alice', 'bob']);
  assert.deepEqual(await search({ 'pf-q': 'Alice' }), ['alice']);
  assert.deepEqual(await search({ 'pf-q': 'Liddell', 'pf-city': 'Lisbon' }), ['alice']);
  assert.deepEqual(await search({ radius: '10' }), ['alice'], 'Alice is a few km from Bob');
  await bob.context.setGeolocation(PORTO);
  assert.deepEqual(await search({ radius: '10' }), []);
  assert.match(await b.textContent('#people-status'), /Nobody/);
  assert.deepEqual(await search({ radius: '1000' }), ['alice']);
  await bob.context.setGeolocation(NEAR_LISBON);
});

test('one\'s own profile can be edited, and others see it', { timeout: 60000 }, async () => {
  const a = alice.page;
  await go(a, '#/me');
  await a.waitForFunction(() => document.querySelector('#pr-city').value === 'Lisbon');
  assert.equal(await a.inputValue('#pr-hobbies'), 'chess, climbing');
  assert.match(await a.textContent('#pr-location'), /38\.72/);
  await a.fill('#pr-city', 'Sintra');
  await a.fill('#pr-hobbies', 'chess, climbing, reading');
  await a.click('#profile-form button[type=submit]');
  await a.locator('#pr-saved', { hasText: 'Saved' }).waitFor();
  await a.locator('#profile-card', { hasText: 'Sintra, Portugal' }).waitFor();

  const b = bob.page;
  await go(b, '#/u/alice');
  await b.locator('#profile-card', { hasText: 'Sintra, Portugal' }).waitFor();
  assert.equal(await b.locator('#profile-card .chips li').count(), 3);
  assert.ok(await b.isHidden('#profile-form'), 'no edit form on someone else\'s profile');
  await b.locator('#profile-card button', { hasText: 'Message alice' }).click();
  await openChannel(b, 'dm:alice:bob');
});

test('message search opens the message in its channel', { timeout: 60000 }, async () => {
  const a = alice.page;
  const status = await a.evaluate(async () => (await fetch('/api/search/messages?q=review')).status);
  assert.equal(status, 200, 'the node serves message search');
  await a.locator('#nav-search').waitFor();
  await a.click('#nav-search');
  await a.fill('#sq', 'review');
  await a.click('#search-form button[type=submit]');
  const hit = a.locator('#search-results .result', { hasText: 'can you review this?' });
  await hit.waitFor();
  assert.equal(await hit.locator('mark').first().textContent(), 'review');
  await hit.click();
  await openChannel(a, 'lobby');
  await a.locator('#message-list li.msg.flash', { hasText: 'can you review this?' }).waitFor();
});

test('mentions are listed', { timeout: 60000 }, async () => {
  const a = alice.page;
  const status = await a.evaluate(async () => (await fetch('/api/mentions')).status);
  assert.equal(status, 200, 'the node keeps mentions');
  await a.click('#nav-mentions');
  await a.locator('#mentions-results .result', { hasText: 'can you review this?' }).waitFor();

  // More than one page (30): "Older mentions" pages back exactly, nothing skipped or doubled,
  // also when many mentions share a millisecond.
  const n = 40;
  await bob.page.evaluate(async (count) => {
    const post = (path, body) => fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    if ((await post('/api/channels', { name: 'pings' })).status !== 201) throw new Error('create pings');
    await Promise.all(Array.from({ length: count }, (_, i) => post('/api/channels/pings/messages', { text: `ping ${i + 1} @alice` })
      .then((r) => { if (!r.ok) throw new Error(`ping ${i + 1}: ${r.status}`); })));
  }, n);
  await go(a, '#/c/lobby');
  await a.click('#nav-mentions');
  const results = a.locator('#mentions-results .result');
  await waitFor(async () => (await results.count()) >= 30, { what: 'a page of mentions' });
  assert.equal(await results.count(), 30);
  const more = a.locator('#mentions-more');
  while (await more.isVisible()) {
    const before = await results.count();
    await more.click();
    await waitFor(async () => (await results.count()) > before || !(await more.isVisible()), { what: 'older mentions' });
  }
  const texts = await results.allTextContents();
  for (let i = 1; i <= n; i += 1) {
    assert.equal(texts.filter((t) => t.includes(`ping ${i} @alice`)).length, 1, `ping ${i} listed once`);
  }
  assert.equal(texts.filter((t) => t.includes('can you review this?')).length, 1);
});

test('history scrolls back to the beginning, and "jump to newest" comes back', { timeout: 90000 }, async () => {
  const a = alice.page;
  const b = bob.page;
  await go(a, '#/browse');
  await a.fill('#cc-name', 'history');
  await a.click('#create-form button[type=submit]');
  await openChannel(a, 'history');
  const n = 130;
  await a.evaluate(async (count) => {
    for (let i = 1; i <= count; i += 1) {
      const r = await fetch('/api/channels/history/messages', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ text: i === 3 ? 'bulk 3 marmalade' : `bulk ${i}` }),
      });
      if (!r.ok) throw new Error(`post ${i}: ${r.status}`);
    }
  }, n);
  await seeMessage(a, `bulk ${n}`);

  // Bob previews the channel without joining: newest page first, then back in time.
  await openChannel(b, 'history');
  await seeMessage(b, `bulk ${n}`);
  assert.ok(await b.isVisible('#join-bar'));
  assert.ok(await b.isHidden('#composer'));
  let shown = await messages(b);
  assert.ok(shown.length < n, `only a page at first (${shown.length})`);
  await waitFor(async () => {
    await b.evaluate(() => { document.querySelector('#messages').scrollTop = 0; });
    return (await b.textContent('#older')).includes('start of #history');
  }, { ms: 30000, every: 300, what: 'the beginning of #history' });
  shown = await messages(b);
  assert.deepEqual(shown.map((m) => m.text), bulkTexts(n));
  assert.equal(new Set(shown.map((m) => m.id)).size, n, 'no message twice');

  await b.locator('#jump').waitFor();
  await b.click('#jump');
  await b.waitForFunction(() => {
    const box = document.querySelector('#messages');
    return box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  });
  await waitFor(async () => b.isHidden('#jump'), { what: 'the jump button to go' });
  await b.click('#join-channel');
  await b.locator('#composer').waitFor();
  await b.locator('#channel-list a[data-channel=history]').waitFor();
  await a.locator('#message-list li.event', { hasText: 'bob joined' }).waitFor();

  // And leaves again.
  b.once('dialog', (dialog) => dialog.accept());
  await b.click('#leave-channel');
  await waitFor(async () => (await b.locator('#channel-list a[data-channel=history]').count()) === 0, { what: 'history to leave the sidebar' });
  await a.locator('#message-list li.event', { hasText: 'bob left' }).waitFor();
});

test('a search hit far back opens a window of history that scrolls forward to the newest', { timeout: 90000 }, async () => {
  const a = alice.page;
  const status = await a.evaluate(async () => (await fetch('/api/search/messages?q=marmalade')).status);
  assert.equal(status, 200, 'the node serves message search');
  // A fresh page: only the newest page of #history would be loaded.
  await go(a, '#/search');
  await a.reload();
  await a.locator('#search-view').waitFor();
  await a.fill('#sq', 'marmalade');
  await a.click('#search-form button[type=submit]');
  await a.locator('#search-results .result', { hasText: 'bulk 3 marmalade' }).click();
  await openChannel(a, 'history');
  await a.locator('#message-list li.msg.flash', { hasText: 'bulk 3 marmalade' }).waitFor();
  await a.locator('#jump').waitFor();
  let shown = await messages(a);
  assert.ok(shown.length < 130 && shown[0].text === 'bulk 1', `a window around the hit (${shown.length})`);

  // A message arrives live while the window is far from the newest.
  const session = (await alice.context.cookies()).find((k) => k.name === 'chatnode_session');
  const r = await fetch(`${cluster.nodes[1].url}/api/channels/history/messages`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${session.value}` },
    body: JSON.stringify({ text: 'while reading old news' }),
  });
  assert.equal(r.status, 201);
  await waitFor(async () => {
    await a.evaluate(() => { const box = document.querySelector('#messages'); box.scrollTop = box.scrollHeight; });
    return a.isHidden('#jump');
  }, { ms: 30000, every: 300, what: 'scrolling forward to the newest' });
  await seeMessage(a, 'while reading old news');
  shown = await messages(a);
  assert.deepEqual(shown.map((m) => m.text), [...bulkTexts(130), 'while reading old news']);
  assert.equal(new Set(shown.map((m) => m.id)).size, shown.length);
});

test('first load of a signed-in person stays under 100 KB', { timeout: 60000 }, async () => {
  const again = await person(browser, cluster.url);
  await again.context.addCookies(await alice.context.cookies());
  const sizes = [];
  again.page.on('requestfinished', async (req) => {
    const s = await req.sizes().catch(() => null);
    if (s) sizes.push({ path: new URL(req.url()).pathname, bytes: s.responseBodySize + s.responseHeadersSize });
  });
  await again.page.goto('/#/c/lobby');
  await seeMessage(again.page, 'Hello Bob! 👋');
  await again.page.waitForLoadState('networkidle');
  const sum = (list) => list.reduce((n, s) => n + s.bytes, 0);
  const assets = sizes.filter((s) => !s.path.startsWith('/api/'));
  const kib = (n) => (n / 1024).toFixed(1);
  console.log(`first load, signed in: ${assets.length} files, ${kib(sum(assets))} KiB; with API answers ${sizes.length} requests, ${kib(sum(sizes))} KiB`);
  assert.ok(sum(assets) < 100 * 1024, `the client is ${sum(assets)} bytes`);
  await again.context.close();
});

test('screenshots at phone and desktop sizes', { timeout: 90000 }, async () => {
  const a = alice.page;
  await openChannel(a, 'lobby');
  await a.setViewportSize({ width: 1280, height: 800 });
  await shot(a, 'desktop-chat');
  await a.emulateMedia({ colorScheme: 'dark' });
  await shot(a, 'desktop-chat-dark');
  await a.emulateMedia({ colorScheme: 'light' });
  await go(a, '#/people');
  await a.click('#people-form button[type=submit]');
  await a.locator('#people-results li').first().waitFor();
  await shot(a, 'desktop-people');
  await go(a, '#/me');
  await a.locator('#profile-card h2').waitFor();
  await shot(a, 'desktop-profile');
  await go(a, '#/browse');
  await a.locator('#browse-list li').first().waitFor();
  await shot(a, 'desktop-browse');

  await a.setViewportSize({ width: 375, height: 812 });
  await openChannel(a, 'lobby');
  await shot(a, 'phone-chat');
  assert.ok(await a.isHidden('#sidebar'), 'the sidebar is a drawer on phones');
  await a.click('#chat-view .menu-btn');
  await a.locator('#sidebar').waitFor();
  await a.waitForTimeout(300);
  await shot(a, 'phone-sidebar');
  await a.keyboard.press('Escape');
  await openChannel(a, 'dm:alice:bob');
  await shot(a, 'phone-dm');
  await go(a, '#/people');
  await a.locator('#people-results li').first().waitFor();
  await shot(a, 'phone-people');
  const overflow = await a.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling at 375 px (${overflow})`);
  await a.setViewportSize({ width: 1280, height: 800 });

  const visitor = await person(browser, cluster.url, { viewport: { width: 375, height: 812 } });
  await visitor.page.goto('/');
  await visitor.page.locator('#auth').waitFor();
  await shot(visitor.page, 'phone-signin');
  await visitor.page.click('#tab-signup');
  await visitor.page.fill('#su-username', 'bob');
  await visitor.page.locator('#su-username-status', { hasText: 'taken' }).waitFor();
  await visitor.page.setViewportSize({ width: 1280, height: 800 });
  await shot(visitor.page, 'desktop-signup');
  await visitor.context.close();
});

test('keyboard: every visible control is labelled, focus leaves the message box visibly, Alt+Down changes conversation', { timeout: 30000 }, async () => {
  const a = alice.page;
  await openChannel(a, 'lobby');
  const unlabelled = await a.evaluate(() => [...document.querySelectorAll('input, select, textarea, button, a[href]')]
    .filter((el) => el.offsetParent !== null)
    .filter((el) => {
      const name = el.getAttribute('aria-label') || (el.labels && el.labels.length && el.labels[0].textContent) || el.textContent;
      return !(name && name.trim()) && el.getAttribute('aria-hidden') !== 'true';
    })
    .map((el) => el.outerHTML.slice(0, 80)));
  assert.deepEqual(unlabelled, []);
  await a.focus('#compose');
  await a.keyboard.press('Shift+Tab');
  const focused = await a.evaluate(() => {
    const el = document.activeElement;
    return el && el !== document.body && el.id !== 'compose' && getComputedStyle(el).outlineStyle;
  });
  assert.ok(focused && focused !== 'none', `focus moves off the message box to a visibly focused control (${focused})`);
  // Alt+Down moves to the next conversation in the sidebar.
  const before = await a.getAttribute('#chat-view', 'data-channel');
  await a.keyboard.press('Alt+ArrowDown');
  await a.waitForFunction((b) => document.querySelector('#chat-view').dataset.channel !== b, before);
});

test('sign out, a wrong password, and back in', { timeout: 60000 }, async () => {
  const a = alice.page;
  await a.click('#sign-out');
  await a.locator('#auth').waitFor();
  await a.reload();
  await a.locator('#auth').waitFor();
  await signIn(a, 'alice', 'not the password');
  await a.locator('#si-error', { hasText: 'Wrong username or password' }).waitFor();
  await signIn(a, 'alice', PASSWORD);
  await a.locator('#app').waitFor();
  await waitOnline(a);
  await openChannel(a, 'lobby');
  await seeMessage(a, 'Hello Bob! 👋');
});

test('alice and bob met no uncaught script error and no Content-Security-Policy refusal', () => {
  assert.deepEqual(alice.problems, []);
  assert.deepEqual(bob.problems, []);
});
