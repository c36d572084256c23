// Voice messages end to end: Chromium's fake microphone plays a sentence espeak-ng spoke, the page
// records it with MediaRecorder, turns it into 16 kHz mono WAV and uploads it through node A; the
// other person, on node B, gets the message at once with a player, and the transcript from the
// node's local Whisper engine appears in both pages live, stays after a reload, and is searchable.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCluster, launchBrowser, person, shot, waitFor } from './harness.mjs';
import { signUp, openChannel, go, messages, send, seeMessage } from './ui.mjs';

const SENTENCE = 'Please bring the blue umbrella to the railway station tomorrow morning.';
const WORDS = ['bring', 'blue', 'umbrella', 'railway', 'station', 'tomorrow', 'morning'];

let cluster;
let browser;
let tmp;
let alice;
let bob;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chatnode-voice-'));
  const wav = path.join(tmp, 'sentence.wav');
  // A second and a half of silence first: the fake microphone starts when the page opens it, a
  // moment before MediaRecorder starts, so no word is cut.
  execFileSync('espeak-ng', ['-m', '-w', wav, `<speak><break time="1500ms"/>${SENTENCE}</speak>`]);
  cluster = await startCluster();
  browser = await launchBrowser([
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${wav}%noloop`,
  ]);
}, { timeout: 90000 });

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (cluster) await cluster.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}, { timeout: 60000 });

/** The voice messages on a page: id, transcript text and state, audio URL. */
function voiceMessages(page) {
  return page.$$eval('#message-list li.msg', (els) => els.filter((e) => e.querySelector('audio')).map((e) => {
    const t = e.querySelector('.transcript');
    return {
      id: e.dataset.id,
      user: e.dataset.user,
      src: e.querySelector('audio').getAttribute('src'),
      state: ['pending', 'done', 'failed', 'unavailable'].find((s) => t.classList.contains(s)),
      text: t.textContent,
      length: e.querySelector('.voice-length').textContent,
    };
  }));
}

const wordsOf = (text) => new Set(text.toLowerCase().replace(/[^a-z' ]/g, ' ').split(/\s+/).filter(Boolean));

test('a transcriber is running on the nodes', { timeout: 30000 }, async () => {
  for (const node of cluster.nodes) {
    const ready = await waitFor(async () => {
      const r = await (await fetch(`${node.url}/readyz`)).json();
      return r.voice && r.voice.transcribers >= 1 && r.voice.state !== 'loading' ? r.voice : null;
    }, { ms: 20000, what: `node ${node.name} to report a live transcriber` });
    assert.notEqual(ready.state, 'unavailable', `node ${node.name}: ${ready.detail}`);
  }
});

test('record, send, play, and see the transcript arrive live on the other node', { timeout: 240000 }, async () => {
  cluster.proxy.prefer(0);
  alice = await person(browser, cluster.url, { permissions: ['microphone'] });
  await signUp(alice.page, { username: 'vera' });
  const a = alice.page;
  await go(a, '#/browse');
  await a.fill('#cc-name', 'voices');
  await a.click('#create-form button[type=submit]');
  await openChannel(a, 'voices');

  cluster.proxy.prefer(1);
  bob = await person(browser, cluster.url, { permissions: ['microphone'] });
  await signUp(bob.page, { username: 'walt' });
  const b = bob.page;
  await go(b, '#/browse');
  await b.locator('#browse-list li[data-channel=voices] button', { hasText: 'Join' }).click();
  await openChannel(b, 'voices');
  await a.locator('#message-list li.event', { hasText: 'walt joined' }).waitFor();

  // The recorder is not part of the first load: it comes with the first press of the button.
  const loaded = [];
  a.on('request', (r) => loaded.push(new URL(r.url()).pathname));
  await a.locator('#record').waitFor({ state: 'visible' });
  await a.click('#record');
  await a.locator('.rec-bar').waitFor();
  assert.ok(loaded.includes('/js/voice.js'), 'voice.js loads on the first press');
  assert.ok(await a.isHidden('#compose'), 'the text box gives way to the recording bar');
  // The sentence lasts about five seconds after the pause.
  await a.waitForFunction(() => {
    const [m, s] = document.querySelector('.rec-clock').textContent.split(':').map(Number);
    return m * 60 + s >= 7;
  }, null, { timeout: 20000 });
  await shot(a, 'voice-recording');
  const uploads = [];
  a.on('request', (r) => {
    if (r.method() === 'POST' && /\/api\/channels\/voices\/voice$/.test(r.url())) uploads.push(r);
  });
  await a.click('#rec-send');
  await a.locator('.rec-bar').waitFor({ state: 'detached', timeout: 30000 });
  await a.locator('#compose').waitFor({ state: 'visible' });

  assert.equal(uploads.length, 1);
  assert.equal(uploads[0].headers()['content-type'], 'audio/wav');

  // Both pages show the voice message with a player at once, the transcript still to come or
  // already there.
  const [mine] = await waitFor(async () => {
    const v = await voiceMessages(a);
    return v.length === 1 ? v : null;
  }, { what: 'the voice message in the sender\'s page' });
  const [theirs] = await waitFor(async () => {
    const v = await voiceMessages(b);
    return v.length === 1 ? v : null;
  }, { what: 'the voice message on the other node' });
  assert.equal(mine.id, theirs.id);

  // What went up (and what node B serves from Redis, as uploaded) is 16 kHz mono 16-bit WAV.
  const served = await b.evaluate(async (src) => {
    const r = await fetch(src);
    return { status: r.status, type: r.headers.get('content-type'), bytes: [...new Uint8Array(await r.arrayBuffer())] };
  }, theirs.src);
  assert.equal(served.status, 200);
  assert.equal(served.type, 'audio/wav');
  const body = Buffer.from(served.bytes);
  assert.equal(body.toString('ascii', 0, 4), 'RIFF');
  assert.equal(body.toString('ascii', 8, 12), 'WAVE');
  assert.equal(body.readUInt16LE(22), 1, 'mono');
  assert.equal(body.readUInt32LE(24), 16000, '16 kHz');
  assert.equal(body.readUInt16LE(34), 16, '16-bit');
  const seconds = body.readUInt32LE(40) / 32000;
  assert.ok(seconds >= 6 && seconds <= 12, `recorded ${seconds} s`);
  assert.equal(theirs.user, 'vera');
  assert.match(theirs.length, /^0:(0[5-9]|1[0-2])$/);
  assert.ok(['pending', 'done'].includes(theirs.state), `state ${theirs.state}`);
  if (theirs.state === 'pending') assert.equal(theirs.text, 'Transcribing…');
  await shot(b, 'voice-pending');

  // The audio plays in the other person's page, served by their node from Redis.
  const played = await b.evaluate(async (id) => {
    const audio = document.querySelector(`li[data-id="${id}"] audio`);
    audio.muted = true;
    await audio.play();
    await new Promise((resolve) => { setTimeout(resolve, 1500); });
    const r = { currentTime: audio.currentTime, duration: audio.duration, error: audio.error && audio.error.message };
    audio.pause();
    return r;
  }, theirs.id);
  assert.equal(played.error, null);
  assert.ok(played.currentTime > 0.5, `played to ${played.currentTime} s`);
  assert.ok(Math.abs(played.duration - seconds) < 0.1, `duration ${played.duration} s`);

  // The transcript replaces "Transcribing…" live in both pages.
  for (const page of [b, a]) {
    await page.waitForFunction((id) => {
      const t = document.querySelector(`li[data-id="${id}"] .transcript`);
      return t && !t.classList.contains('pending');
    }, theirs.id, { timeout: 180000 });
  }
  const [done] = await voiceMessages(b);
  assert.equal(done.state, 'done', `transcript: ${done.text}`);
  const heard = wordsOf(done.text);
  const missing = WORDS.filter((w) => !heard.has(w));
  assert.ok(missing.length <= 1, `transcript "${done.text}" misses ${missing.join(', ')}`);
  assert.equal((await voiceMessages(a))[0].text, done.text);
  console.log(`transcript: ${done.text}`);
  await shot(b, 'voice-transcript');

  // After a reload the history shows the transcript; search finds the message by its words.
  await b.reload();
  await openChannel(b, 'voices');
  const again = await waitFor(async () => (await voiceMessages(b))[0], { what: 'the voice message after a reload' });
  assert.equal(again.state, 'done');
  assert.equal(again.text, done.text);
  const hits = await b.evaluate(async () => (await (await fetch('/api/search/messages?q=umbrella')).json()));
  assert.ok(hits.messages.some((m) => m.id === theirs.id), JSON.stringify(hits));
  assert.deepEqual(alice.problems, []);
  assert.deepEqual(bob.problems, []);
});

test('a cancelled recording sends nothing', { timeout: 60000 }, async () => {
  const a = alice.page;
  const before = (await messages(a)).length;
  await a.click('#record');
  await a.locator('.rec-bar').waitFor();
  await a.waitForTimeout(1200);
  await a.click('#rec-cancel');
  await a.locator('.rec-bar').waitFor({ state: 'detached' });
  await a.locator('#compose').waitFor({ state: 'visible' });
  // A text message sent after the cancel is the marker: whatever the recording had sent would
  // show before it, on both pages and in the server's history.
  await send(a, 'after the cancel');
  await seeMessage(a, 'after the cancel');
  await seeMessage(bob.page, 'after the cancel');
  const now = await messages(a);
  assert.equal(now.length, before + 1);
  assert.equal(now[now.length - 1].text, 'after the cancel');
  assert.equal((await voiceMessages(bob.page)).length, 1);
  const page = await a.evaluate(async () => (await (await fetch('/api/channels/voices/messages?limit=50')).json()));
  assert.equal(page.messages.filter((m) => m.voice && m.type === 'message').length, 1);
  assert.equal(page.messages[page.messages.length - 1].text, 'after the cancel');
});
