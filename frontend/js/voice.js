// Voice messages: records with MediaRecorder, turns the recording into 16 kHz mono 16-bit WAV with
// the Web Audio API (so the node needs no codec for what any browser records), and uploads it to
// POST /api/channels/{name}/voice. Loaded on the first press of the microphone button.

import { $, h, setText, toast, fmtLength } from './dom.js';
import { emit } from './state.js';
import { ApiError, enc } from './api.js';

const RATE = 16000;
const MAX_MS = 60000; // the node's default voice.max_seconds
const MAX_BYTES = 2 * 1024 * 1024; // the node's default voice.max_bytes

let rec = null; // the recording under way: { channel, recorder, stream, chunks, started, timer, bar, clock }

export const recording = () => !!rec && !rec.sending;

/** Starts recording for a channel; the composer turns into a bar with the time, Cancel and Send. */
export async function start(channel) {
  if (rec) return;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
  } catch (e) {
    toast(e && e.name === 'NotAllowedError' ? 'Microphone access was refused.' : 'No microphone could be opened.', 'error');
    return;
  }
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  recorder.addEventListener('dataavailable', (e) => {
    if (e.data && e.data.size) chunks.push(e.data);
  });
  const clock = h('span', { class: 'rec-clock', role: 'timer', 'aria-live': 'off' }, '0:00');
  const bar = h('div', { class: 'rec-bar', role: 'group', 'aria-label': 'Recording a voice message' },
    h('span', { class: 'rec-dot', 'aria-hidden': 'true' }),
    h('span', { class: 'rec-label' }, 'Recording'), ' ', clock,
    h('span', { class: 'rec-space' }),
    h('button', { type: 'button', class: 'ghost small', id: 'rec-cancel', onclick: cancel }, 'Cancel'),
    h('button', { type: 'button', class: 'primary', id: 'rec-send', onclick: () => finish() }, 'Send voice message'));
  bar.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      cancel();
    }
  });
  const form = $('#composer');
  form.classList.add('recording');
  form.append(bar);
  rec = { channel, recorder, stream, chunks, started: Date.now(), bar, clock, timer: 0 };
  rec.timer = setInterval(() => {
    const ms = Date.now() - rec.started;
    setText(clock, fmtLength(ms));
    if (ms >= MAX_MS - 250) finish();
  }, 250);
  recorder.start(1000);
  $('#rec-send').focus();
}

function teardown() {
  const r = rec;
  rec = null;
  if (!r) return null;
  clearInterval(r.timer);
  r.bar.remove();
  $('#composer').classList.remove('recording');
  return r;
}

function release(r) {
  for (const t of r.stream.getTracks()) t.stop();
}

/** Drops the recording (Cancel, Escape, or switching to another conversation). */
export function cancel() {
  if (!recording()) return;
  const r = teardown();
  if (!r) return;
  if (r.recorder.state !== 'inactive') r.recorder.stop();
  release(r);
  $('#compose').focus();
}

/** Stops recording, converts and uploads. */
async function finish() {
  const r = rec;
  if (!r || r.sending) return;
  r.sending = true;
  clearInterval(r.timer);
  setText(r.bar.querySelector('.rec-label'), 'Sending');
  for (const b of r.bar.querySelectorAll('button')) b.disabled = true;
  const stopped = new Promise((resolve) => r.recorder.addEventListener('stop', resolve, { once: true }));
  if (r.recorder.state !== 'inactive') r.recorder.stop();
  await stopped;
  release(r);
  try {
    const recorded = new Blob(r.chunks, { type: r.recorder.mimeType || 'audio/webm' });
    const wav = await toWav(recorded);
    if (wav.size > MAX_BYTES) throw new ApiError(413, 'audio_too_large', 'the recording is too long');
    const message = await upload(r.channel, wav);
    emit('voice-sent', message);
  } catch (e) {
    toast(`Voice message not sent: ${e.message || e}`, 'error');
  } finally {
    teardown();
    $('#compose').focus();
  }
}

/** Decodes what MediaRecorder made and renders it as 16 kHz mono WAV. */
export async function toWav(blob) {
  const bytes = await blob.arrayBuffer();
  const ctx = new AudioContext();
  let decoded;
  try {
    decoded = await ctx.decodeAudioData(bytes);
  } finally {
    ctx.close();
  }
  const frames = Math.max(1, Math.ceil(decoded.duration * RATE));
  // An offline context at 16 kHz with one channel resamples and downmixes in one pass.
  const off = new OfflineAudioContext(1, frames, RATE);
  const src = off.createBufferSource();
  src.buffer = decoded;
  src.connect(off.destination);
  src.start();
  const out = await off.startRendering();
  return encodeWav(out.getChannelData(0), RATE);
}

/** 16-bit PCM WAV from samples in -1..1. */
export function encodeWav(samples, rate) {
  const buf = new ArrayBuffer(44 + samples.length * 2);
  const v = new DataView(buf);
  const ascii = (at, s) => {
    for (let i = 0; i < s.length; i += 1) v.setUint8(at + i, s.charCodeAt(i));
  };
  ascii(0, 'RIFF');
  v.setUint32(4, 36 + samples.length * 2, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  v.setUint32(16, 16, true); // fmt chunk size
  v.setUint16(20, 1, true); // PCM
  v.setUint16(22, 1, true); // mono
  v.setUint32(24, rate, true);
  v.setUint32(28, rate * 2, true); // bytes per second
  v.setUint16(32, 2, true); // block align
  v.setUint16(34, 16, true); // bits per sample
  ascii(36, 'data');
  v.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i += 1) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    v.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([buf], { type: 'audio/wav' });
}

async function upload(channel, wav) {
  let res;
  try {
    res = await fetch(`/api/channels/${enc(channel)}/voice`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'audio/wav', Accept: 'application/json' },
      body: wav,
    });
  } catch {
    throw new ApiError(0, 'network', 'cannot reach the server');
  }
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const e = data && data.error;
    if (res.status === 503) emit('voice-off');
    throw new ApiError(res.status, e && e.code, e && e.message);
  }
  return data.message;
}
