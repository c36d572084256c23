// The socket to /ws: connects, reconnects with backoff when the connection drops (close 1001 when
// a node stops, 1013 when this client was too slow, or any network failure), and reports each
// frame. Resuming where the client left off is the caller's job (it knows the last IDs seen).

const MAX_DELAY = 10000;

export class Live {
  /**
   * handlers: authorized(payload), frame(type, payload), state(name, info),
   * unauthenticated() when the socket opened but the session was not accepted.
   */
  constructor(handlers) {
    this.h = handlers;
    this.ws = null;
    this.attempt = 0;
    this.timer = 0;
    this.stopped = true;
    this.authed = false;
    this.state = 'idle';
    window.addEventListener('online', () => this.now());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') this.now();
    });
  }

  start() {
    this.stopped = false;
    this.attempt = 0;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    this.authed = false;
    if (ws) ws.close(1000, 'bye');
    this.set('idle');
  }

  /** Retry at once if waiting for the next attempt. */
  now() {
    if (!this.stopped && !this.ws && this.state === 'reconnecting') {
      clearTimeout(this.timer);
      this.connect();
    }
  }

  get open() {
    return !!(this.ws && this.authed && this.ws.readyState === WebSocket.OPEN);
  }

  /** Sends a frame when connected and signed in; false otherwise. */
  send(type, payload) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify({ type, [type]: payload }));
    return true;
  }

  set(state, info = {}) {
    this.state = state;
    this.h.state(state, info);
  }

  connect() {
    clearTimeout(this.timer);
    const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this.retry(0);
      return;
    }
    this.ws = ws;
    this.authed = false;
    this.set(this.attempt ? 'reconnecting' : 'connecting', { attempt: this.attempt });
    let authWait = 0;
    ws.onmessage = (e) => {
      if (this.ws !== ws) return;
      let f;
      try {
        f = JSON.parse(e.data);
      } catch {
        return;
      }
      const type = f && f.type;
      if (typeof type !== 'string') return;
      const payload = f[type] ?? {};
      if (type === 'ready') {
        // The cookie signs the socket in at the upgrade; `authorized` follows at once if valid.
        authWait = setTimeout(() => {
          if (this.ws === ws && !this.authed) this.h.unauthenticated();
        }, 2500);
      } else if (type === 'authorized') {
        clearTimeout(authWait);
        this.authed = true;
        this.attempt = 0;
        this.set('online');
        this.h.authorized(payload);
      } else {
        this.h.frame(type, payload);
      }
    };
    ws.onclose = (e) => {
      clearTimeout(authWait);
      if (this.ws !== ws) return;
      this.ws = null;
      const wasAuthed = this.authed;
      this.authed = false;
      if (this.stopped) return;
      // 1008: the session was ended elsewhere (signed out, password changed).
      if (e.code === 1008 && wasAuthed) {
        this.h.unauthenticated();
      }
      this.retry(e.code);
    };
  }

  retry(code) {
    this.attempt += 1;
    // A stopping node (1001) asks for a quick reconnect elsewhere; otherwise back off.
    const base = code === 1001 && this.attempt === 1 ? 250 : Math.min(MAX_DELAY, 500 * 2 ** (this.attempt - 1));
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.set('reconnecting', { attempt: this.attempt, at: Date.now() + delay, code });
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
