// The browser tests' world: a real redis-server, real chatnode nodes (target/debug/chatnode), a
// small TCP proxy that gives both nodes one address and fails over between them, and Debian's
// Chromium driven by playwright-core. Every process started here is stopped when the test process
// ends, also when a test fails or the run is interrupted.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const BIN = process.env.CHATNODE_BIN || path.join(ROOT, 'target/debug/chatnode');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const SEARCH_MODULE = '/usr/lib/redis/modules/redisearch.so';
export const SHOTS = path.join(ROOT, 'target/screenshots');
const LOGS = path.join(ROOT, 'target/browser-logs');

const children = new Set();
function killAll() {
  for (const child of children) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch { /* already gone */ }
  }
  children.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

/** Resolves with `value` of `fn()` once truthy; rejects after `ms`. */
export async function waitFor(fn, { ms = 15000, every = 100, what = 'condition' } = {}) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(every);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function logFile(name) {
  fs.mkdirSync(LOGS, { recursive: true });
  return fs.openSync(path.join(LOGS, `${name}.log`), 'w');
}

/** Starts a child process that is killed with the test process; `exited` resolves with its code. */
function start(name, cmd, args, opts = {}) {
  const fd = logFile(name);
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], ...opts });
  fs.closeSync(fd);
  children.add(child);
  child.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve(code ?? signal);
    });
    child.on('error', (e) => {
      children.delete(child);
      resolve(`spawn failed: ${e.message}`);
    });
  });
  return child;
}

/** Stops a child by its PID: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild(child, graceMs = 8000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return child && child.exited;
  try {
    process.kill(child.pid, 'SIGTERM');
  } catch { /* gone */ }
  const t = setTimeout(() => {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch { /* gone */ }
  }, graceMs);
  const code = await child.exited;
  clearTimeout(t);
  return code;
}

function redisPing(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    s.setTimeout(1000, () => s.destroy());
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      buf += d;
      if (buf.includes('\r\n')) {
        s.destroy();
        resolve(buf.startsWith('+PONG'));
      }
    });
    s.on('error', () => resolve(false));
    s.on('close', () => resolve(false));
  });
}

export async function startRedis() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatnode-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  if (fs.existsSync(SEARCH_MODULE)) args.push('--loadmodule', SEARCH_MODULE);
  const proc = start(`redis-${port}`, 'redis-server', args);
  await waitFor(() => redisPing(port), { ms: 10000, what: 'redis-server to answer PING' });
  return {
    port,
    url: `redis://127.0.0.1:${port}/`,
    proc,
    async stop() {
      await stopChild(proc, 3000);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startNode(name, redisUrl) {
  if (!fs.existsSync(BIN)) throw new Error(`${BIN} is missing: run cargo build first`);
  const port = await freePort();
  const proc = start(`node-${name}`, BIN, ['serve'], {
    cwd: ROOT,
    env: {
      ...process.env,
      CHATNODE__HTTP__HOST: '127.0.0.1',
      CHATNODE__HTTP__PORT: String(port),
      CHATNODE__REDIS__URL: redisUrl,
      CHATNODE__AUTH__ARGON2_MEMORY_KIB: '1024',
      CHATNODE__AUTH__ARGON2_ITERATIONS: '1',
      CHATNODE__WS__HEARTBEAT_INTERVAL_SECS: '5',
      // The scenarios post hundreds of messages as one person in a few seconds (history, failover):
      // far above the per-user posting budget a real person gets.
      CHATNODE__WS__RATE_LIMIT_MESSAGES: '100000',
      CHATNODE__SHUTDOWN__GRACE_SECS: '3',
      CHATNODE__LOG__LEVEL: 'info',
    },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    if (proc.exitCode !== null) throw new Error(`node ${name} exited with ${proc.exitCode}; see target/browser-logs/node-${name}.log`);
    const r = await fetch(`${url}/readyz`);
    return r.ok;
  }, { ms: 30000, what: `node ${name} to be ready` });
  return {
    name,
    port,
    url,
    proc,
    /** Open sockets on this node, from its metrics. */
    async sockets() {
      const text = await (await fetch(`${url}/metrics`)).text();
      const m = text.match(/^chatnode_ws_connections(?:\{[^}]*\})? (\d+)/m);
      return m ? Number(m[1]) : NaN;
    },
    stop: () => stopChild(proc),
  };
}

/**
 * One address for several nodes: each connection goes to the preferred node, or to the next one
 * that accepts when it does not. `hold(true)` turns new connections away (as during an outage).
 */
export async function startProxy(nodes) {
  let preferred = 0;
  let held = false;
  const sockets = new Set();
  const track = (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  };
  const server = net.createServer((client) => {
    track(client);
    client.on('error', () => {});
    if (held) {
      client.destroy();
      return;
    }
    client.pause();
    const order = nodes.map((_, i) => (preferred + i) % nodes.length);
    const attempt = (k) => {
      if (k >= order.length || client.destroyed) {
        client.destroy();
        return;
      }
      const up = net.connect(nodes[order[k]].port, '127.0.0.1');
      track(up);
      up.once('error', () => attempt(k + 1));
      up.once('connect', () => {
        up.removeAllListeners('error');
        up.on('error', () => client.destroy());
        client.on('close', () => up.destroy());
        up.on('close', () => client.destroy());
        client.pipe(up);
        up.pipe(client);
        client.resume();
      });
    };
    attempt(0);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    prefer(i) {
      preferred = i;
    },
    hold(on) {
      held = on;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Redis, two nodes on it, and one proxy address in front of both. */
export async function startCluster() {
  const redis = await startRedis();
  const a = await startNode('a', redis.url);
  const b = await startNode('b', redis.url);
  const proxy = await startProxy([a, b]);
  return {
    redis,
    nodes: [a, b],
    proxy,
    url: proxy.url,
    async stop() {
      await proxy.close();
      await Promise.all([a.stop(), b.stop()]);
      await redis.stop();
    },
  };
}

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export function launchBrowser(extraArgs = []) {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  // playwright-core gives every launch a fresh, temporary user-data directory.
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs], timeout: 30000 });
}

/**
 * A person: their own browser context (cookies, storage) and page, with the page's errors kept
 * so a test can assert there were none.
 */
export async function person(browser, baseURL, options = {}) {
  const context = await browser.newContext({ baseURL, viewport: { width: 1280, height: 800 }, ...options });
  context.setDefaultTimeout(15000);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content.Security.Policy|Refused to/i.test(m.text())) problems.push(`csp: ${m.text()}`);
  });
  return { context, page, problems };
}

export async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}
