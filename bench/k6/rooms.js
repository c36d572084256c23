// The rooms scenario of chatnode, driven by k6 instead of chatnode-loadgen, so that no figure
// rests on chatnode's own tool alone. Every member of ROOMS rooms of MEMBERS signs in over REST,
// opens /ws?token=…, subscribes to its room and, once all are in, the members together post
// RATE messages per second for DURATION seconds. Each text carries its send time, so every
// receiver measures send → receive from the text itself.
//
//   k6 run -e URL=http://127.0.0.1:8080 -e ROOMS=20 -e MEMBERS=100 -e RATE=1000 \
//       -e DURATION=30 bench/k6/rooms.js
//
// Environment (all optional): URL (node or proxy, http:// or https://), ROOMS, MEMBERS, RATE
// (messages/s, all rooms together), DURATION (s of sending), DRAIN (s the sockets stay open after
// sending), RAMP (sockets opened per second), START_DELAY (s from the end of set-up to the
// first post; default: the ramp's length plus 10 s), MESSAGE_BYTES, PASSWORD, PREFIX (user and room names), SUMMARY (path of a JSON summary).
// docs/LOADGEN.md describes the figures.

import http from 'k6/http';
import exec from 'k6/execution';
import { WebSocket } from 'k6/experimental/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';
import { Counter, Trend } from 'k6/metrics';
import { sleep } from 'k6';

const URL = (__ENV.URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const WS_URL = URL.replace(/^http/, 'ws');
const ROOMS = int('ROOMS', 20);
const MEMBERS = int('MEMBERS', 100);
const RATE = Number(__ENV.RATE || 1000);
const DURATION = Number(__ENV.DURATION || 30);
const DRAIN = Number(__ENV.DRAIN || 10);
const RAMP = Number(__ENV.RAMP || 500);
const MESSAGE_BYTES = int('MESSAGE_BYTES', 64);
const PASSWORD = __ENV.PASSWORD || 'k6-bench-password';
const PREFIX = __ENV.PREFIX || 'k6';
const SOCKETS = ROOMS * MEMBERS;
const START_DELAY = Number(__ENV.START_DELAY || Math.ceil(SOCKETS / RAMP) + 10);
// Each text starts with this tag and the run's id: other traffic in the rooms is not counted.
const TAG = 'k6';

const userName = (i) => `${PREFIX}-user-${i}`;
function roomName(r) {
  return `${PREFIX}-room-${r}`;
}

function int(name, fallback) {
  const v = parseInt(__ENV[name] || '', 10);
  return Number.isNaN(v) ? fallback : v;
}

const deliveryMs = new Trend('chat_delivery_ms', true);
const ackMs = new Trend('chat_ack_ms', true);
const postsSent = new Counter('chat_posts_sent');
const postsAcked = new Counter('chat_posts_acked');
const busyAnswers = new Counter('chat_busy_answers');
const postsRefused = new Counter('chat_posts_refused');
const postErrors = new Counter('chat_post_errors');
const deliveries = new Counter('chat_deliveries');
const duplicates = new Counter('chat_duplicates');
const socketsReady = new Counter('chat_sockets_ready');
const socketFailures = new Counter('chat_socket_failures');

// Per-room counts of acknowledged posts and subscribed members (loss is counted per room).
// k6 reports a tagged count only for a metric with a threshold on it.
const thresholds = {};
for (let r = 0; r < ROOMS; r++) {
  thresholds[`chat_posts_acked{room:${roomName(r)}}`] = ['count>=0'];
  thresholds[`chat_sockets_ready{room:${roomName(r)}}`] = ['count>=0'];
}

export const options = {
  setupTimeout: '600s',
  thresholds,
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'p(99.9)', 'max', 'count'],
  scenarios: {
    rooms: {
      executor: 'per-vu-iterations',
      vus: SOCKETS,
      iterations: 1,
      maxDuration: `${Math.ceil(START_DELAY + DURATION + DRAIN + 120)}s`,
    },
  },
};

const json = { headers: { 'Content-Type': 'application/json' } };
const auth = (token) => ({ headers: { Authorization: `Bearer ${token}` } });

// A session token: register, or sign in when the name is taken (runs can repeat).
function tokenOf(res, name) {
  if (res.status === 200 || res.status === 201) return res.json('token');
  throw new Error(`sign-in of ${name}: HTTP ${res.status} ${res.body}`);
}

function signInAll(names) {
  const tokens = [];
  const batch = 50;
  for (let i = 0; i < names.length; i += batch) {
    const chunk = names.slice(i, i + batch);
    const body = (n) => JSON.stringify({ username: n, password: PASSWORD });
    const reg = http.batch(chunk.map((n) => ['POST', `${URL}/api/auth/register`, body(n), json]));
    const retry = [];
    reg.forEach((res, j) => {
      if (res.status === 409) retry.push(j);
      else tokens[i + j] = tokenOf(res, chunk[j]);
    });
    const login = http.batch(
      retry.map((j) => ['POST', `${URL}/api/auth/login`, body(chunk[j]), json]));
    login.forEach((res, k) => { tokens[i + retry[k]] = tokenOf(res, chunk[retry[k]]); });
  }
  return tokens;
}

// Users, rooms and memberships; the run's id and the time of the first post.
export function setup() {
  const [admin] = signInAll([`${PREFIX}-admin`]);
  for (let r = 0; r < ROOMS; r++) {
    const res = http.post(`${URL}/api/channels`, JSON.stringify({ name: roomName(r) }),
      { headers: { ...json.headers, ...auth(admin).headers } });
    if (res.status !== 201 && res.status !== 409) {
      throw new Error(`room ${roomName(r)}: HTTP ${res.status} ${res.body}`);
    }
  }
  const names = [];
  for (let i = 0; i < SOCKETS; i++) names.push(userName(i));
  const tokens = signInAll(names);
  for (let i = 0; i < SOCKETS; i += 50) {
    const joins = [];
    for (let j = i; j < Math.min(i + 50, SOCKETS); j++) {
      joins.push(['POST', `${URL}/api/channels/${roomName(j % ROOMS)}/join`, null, auth(tokens[j])]);
    }
    http.batch(joins).forEach((res) => {
      if (res.status !== 204 && res.status !== 200) {
        throw new Error(`join: HTTP ${res.status} ${res.body}`);
      }
    });
  }
  const run = Math.random().toString(36).slice(2, 8);
  return { tokens, run, startMs: Date.now() + START_DELAY * 1000 };
}

// One member: a socket from open to close.
export default function (data) {
  const i = exec.vu.idInTest - 1;
  const room = roomName(i % ROOMS);
  const periodMs = (SOCKETS / RATE) * 1000;
  const offsetMs = (i / RATE) * 1000;
  const endMs = data.startMs + DURATION * 1000;
  const closeMs = endMs + DRAIN * 1000;
  const waiting = new Map(); // client_id → first send time (ms), posts without an answer
  const seen = new Set(); // `sender.seq` of this run received on this socket
  let seq = 0;
  let ready = false;
  let timer = null;
  const tags = { room };

  // Sockets open at RAMP per second, as chatnode-loadgen's do: not all at one instant.
  sleep(i / RAMP);
  const ws = new WebSocket(`${WS_URL}/ws?token=${data.tokens[i]}`);

  const frame = (id, sentMs, n) => {
    let text = `${TAG} ${data.run} ${i} ${n} ${sentMs} `;
    text += 'x'.repeat(Math.max(0, MESSAGE_BYTES - text.length));
    return JSON.stringify({ type: 'post', post: { channel: room, text, client_id: id } });
  };
  const texts = new Map(); // client_id → frame, for a re-send after `busy`
  const refused = new Set(); // client_ids refused at least once

  const sendNext = () => {
    const due = data.startMs + offsetMs + seq * periodMs;
    if (due >= endMs) return;
    const now = Date.now();
    if (due <= now) {
      const id = `${data.run}.${i}.${seq}`;
      const f = frame(id, now, seq);
      waiting.set(id, now);
      texts.set(id, f);
      ws.send(f);
      postsSent.add(1);
      seq += 1;
    }
    timer = setTimeout(sendNext, Math.max(0, data.startMs + offsetMs + seq * periodMs - Date.now()));
  };

  ws.onmessage = (e) => {
    const f = JSON.parse(e.data);
    switch (f.type) {
      case 'authorized':
        ws.send(JSON.stringify({ type: 'subscribe', subscribe: { channels: [room] } }));
        break;
      case 'subscribed':
        if (!ready) {
          ready = true;
          socketsReady.add(1, tags);
          timer = setTimeout(sendNext, Math.max(0, data.startMs + offsetMs - Date.now()));
        }
        break;
      case 'message': {
        const m = f.message;
        if (m.type !== 'message') break;
        const w = m.text.split(' ');
        if (w[0] !== TAG || w[1] !== data.run) break;
        const key = `${w[2]}.${w[3]}`;
        if (seen.has(key)) { duplicates.add(1); break; }
        seen.add(key);
        deliveries.add(1);
        deliveryMs.add(Date.now() - Number(w[4]));
        break;
      }
      case 'posted': {
        const id = f.posted.client_id;
        if (waiting.has(id)) {
          ackMs.add(Date.now() - waiting.get(id));
          waiting.delete(id);
          texts.delete(id);
          postsAcked.add(1, tags);
        }
        break;
      }
      case 'error': {
        const err = f.error;
        const id = err.payload && err.payload.client_id;
        if (!ready) { socketFailures.add(1, { reason: err.code }); ws.close(); break; }
        if (err.code === 'busy' && texts.has(id)) {
          // Same post, same client_id, after the wait the node asks for.
          busyAnswers.add(1);
          if (!refused.has(id)) postsRefused.add(1);
          refused.add(id);
          const again = texts.get(id);
          setTimeout(() => { if (Date.now() < closeMs) ws.send(again); }, err.retry_after_ms || 100);
        } else {
          postErrors.add(1, { code: err.code });
          if (id) { waiting.delete(id); texts.delete(id); }
        }
        break;
      }
    }
  };
  ws.onerror = (e) => {
    if (ready) return;
    socketFailures.add(1);
    if (i % 100 === 0) console.warn(`socket ${i}: ${e.error}`);
  };
  ws.onclose = () => { if (timer) clearTimeout(timer); };
  setTimeout(() => ws.close(), Math.max(0, closeMs - Date.now()));
}

function trend(m) {
  if (!m) return null;
  const v = m.values;
  const r = (x) => (x === undefined ? null : Math.round(x * 100) / 100);
  return { count: v.count, mean: r(v.avg), p50: r(v.med), p90: r(v['p(90)']), p99: r(v['p(99)']),
    p999: r(v['p(99.9)']), max: r(v.max) };
}

// The figures chatnode-loadgen also prints, as JSON (SUMMARY) and one line on stdout.
export function handleSummary(data) {
  const count = (name) => (data.metrics[name] ? data.metrics[name].values.count : 0);
  const acked = count('chat_posts_acked');
  // Every acknowledged post reaches every subscribed member of its room, its sender included.
  let expected = 0;
  for (let r = 0; r < ROOMS; r++) {
    const tag = `{room:${roomName(r)}}`;
    expected += count(`chat_posts_acked${tag}`) * count(`chat_sockets_ready${tag}`);
  }
  const received = count('chat_deliveries');
  const summary = {
    tool: 'k6',
    config: { url: URL, rooms: ROOMS, members_per_room: MEMBERS, sockets: SOCKETS,
      rate_per_sec: RATE, duration_secs: DURATION, message_bytes: MESSAGE_BYTES, ramp_per_sec: RAMP },
    connects: { succeeded: count('chat_sockets_ready'), failed: count('chat_socket_failures') },
    messages: { sent: count('chat_posts_sent'), acked, refused: count('chat_posts_refused'),
      busy: count('chat_busy_answers'), errors: count('chat_post_errors'),
      in_per_sec: Math.round(acked / DURATION) },
    deliveries: { expected, received, lost: Math.max(0, expected - received),
      duplicated: count('chat_duplicates'), out_per_sec: Math.round(received / DURATION) },
    latency_ms: trend(data.metrics.chat_delivery_ms),
    ack_latency_ms: trend(data.metrics.chat_ack_ms),
  };
  const l = summary.latency_ms || {};
  const line = `k6: connects ${summary.connects.succeeded}/${SOCKETS} · sent ${summary.messages.sent}`
    + ` acked ${acked} refused ${summary.messages.refused} · deliveries ${received}/${expected}`
    + ` lost ${summary.deliveries.lost} dup ${summary.deliveries.duplicated}`
    + ` · p50 ${l.p50} p99 ${l.p99} p99.9 ${l.p999} max ${l.max} ms\n`;
  const out = { stdout: line };
  if (__ENV.SUMMARY) out[__ENV.SUMMARY] = JSON.stringify(summary, null, 2) + '\n';
  return out;
}
