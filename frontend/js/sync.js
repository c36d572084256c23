// Keeping the client's copy of each channel whole across reconnects, with no DOM access: the
// cursor per channel and `resume` a few channels at a time, events seen twice dropped, a
// `subscribed.gap` paged through history, and own posts matched to their `posted` answers (or
// their echo) and sent again after a reconnect when the node never answered them.
//
// The socket, the history endpoint and the page are handed in (see `Sync`), so Node's test
// runner drives this module directly (tests/frontend/).

import { cmpId, addEvents, resetEvents } from './state.js';

/** Channels asked for in one `resume` frame; the next few go once all of these are subscribed. */
export const RESUME_BATCH = 5;
/** History pages read to fill one gap before the channel is loaded afresh instead. */
export const GAP_PAGES = 10;
/** Events asked for per history page while filling a gap. */
export const GAP_PAGE_SIZE = 200;

/**
 * What `Sync` tells the page; each defaults to doing nothing.
 * - `added(ch, r)`: events were added to a channel's loaded range (`r` is addEvents' answer).
 * - `pendingChanged(ch)`: a channel's own pending posts changed (sent, confirmed, failed).
 * - `message(ch, ev, {quiet})`: a message from someone else arrived for the first time
 *   (`quiet`: it was replayed or paged, so no notice).
 * - `reloaded(ch)` (awaited): a gap too long to page was dropped; the channel starts again at
 *   its newest page.
 * - `unreadChanged()`: unread counts may have changed.
 */
const QUIET_UI = {
  added() {},
  pendingChanged() {},
  message() {},
  async reloaded() {},
  unreadChanged() {},
};

/**
 * The live state of every followed channel. `state` is `{channels, me, users}` (the app's `S`):
 * channels by name as `newChannel` makes them, the signed-in profile, the usernames seen.
 * `send(type, payload)` sends a frame and answers false when the socket is not open; `isOpen()`
 * says whether it is; `fetchPage(name, {after, limit})` answers `GET /api/channels/{name}/messages`.
 */
export class Sync {
  constructor({ state, send, isOpen, fetchPage, ui = {} }) {
    this.state = state;
    this.send = send;
    this.isOpen = isOpen;
    this.fetchPage = fetchPage;
    this.ui = { ...QUIET_UI, ...ui };
    this.ownIds = new Set(); // IDs the node confirmed for this client's posts
    this.inflight = []; // posts sent on this socket, awaiting `posted` or `error`, oldest first
    // Resuming many channels at once can replay more than the node queues for one socket (it
    // then closes with 1013), so channels are resumed a few at a time.
    this.resumeQueue = [];
    this.resumeWaiting = new Set();
    this.resumeBatch = RESUME_BATCH;
  }

  // ---- the socket ---------------------------------------------------------------------------

  /** The socket is up again: no channel is subscribed on it yet. */
  socketUp() {
    for (const ch of this.state.channels.values()) ch.subscribed = false;
  }

  /** The socket dropped (`code` is its close code, if any): nothing is subscribed or in flight. */
  socketDown(code) {
    // Closed for reading too slowly (1013): resume one channel at a time from now on.
    if (code === 1013) this.resumeBatch = 1;
    for (const ch of this.state.channels.values()) ch.subscribed = false;
    this.inflight = [];
  }

  /** The socket signed in: every channel is resumed from its cursor. */
  authorized() {
    this.inflight = [];
    this.resumeQueue = [];
    this.resumeWaiting = new Set();
    this.follow([...this.state.channels.values()]);
  }

  // ---- resuming -----------------------------------------------------------------------------

  /** Asks the socket for the live events of channels, from their cursors on. */
  follow(chans) {
    for (const ch of chans) {
      ch.subscribed = false;
      if (!this.resumeQueue.includes(ch.name) && !this.resumeWaiting.has(ch.name)) this.resumeQueue.push(ch.name);
    }
    this.resumeNext();
  }

  /** Sends the next `resume` frame, unless one is still waiting for its `subscribed`s. */
  resumeNext() {
    if (!this.isOpen() || this.resumeWaiting.size) return;
    const channels = {};
    for (const name of this.resumeQueue.splice(0, this.resumeBatch)) {
      const ch = this.state.channels.get(name);
      if (!ch) continue;
      channels[name] = ch.cursor;
      this.resumeWaiting.add(name);
    }
    if (this.resumeWaiting.size) this.send('resume', { channels });
  }

  /** A channel of the last `resume` was answered (subscribed or refused). */
  resumed(name) {
    if (this.resumeWaiting.delete(name) && !this.resumeWaiting.size) this.resumeNext();
  }

  /**
   * A `subscribed` answer: the cursor moves up to `last_id`, a gap is paged, and the channel's
   * pending posts go out. Answers the promise of the gap's filling, if there is one.
   */
  subscribed(p) {
    this.resumed(p.channel);
    const ch = this.state.channels.get(p.channel);
    if (!ch) return undefined;
    ch.subscribed = true;
    if (p.last_id && cmpId(p.last_id, ch.cursor) > 0) ch.cursor = p.last_id;
    if (p.gap) return this.fillGap(ch, p.gap).then(() => this.flushPending(ch));
    this.flushPending(ch);
    return undefined;
  }

  /**
   * Too much was missed for the node to replay: `gap` names the range, read here page by page as
   * if it had been replayed. If it is very long, the channel is loaded afresh instead.
   */
  async fillGap(ch, gap) {
    ch.gapping = true;
    const got = [];
    let after = gap.after;
    let complete = false;
    try {
      for (let i = 0; i < GAP_PAGES && !complete; i += 1) {
        const page = await this.fetchPage(ch.name, { after, limit: GAP_PAGE_SIZE });
        for (const ev of page.messages) {
          if (cmpId(ev.id, gap.until) > 0) complete = true;
          else got.push(ev);
        }
        if (!page.has_more || !page.messages.length) complete = true;
        else after = page.messages[page.messages.length - 1].id;
      }
    } catch { /* treated as too long */ }
    ch.gapping = false;
    for (const ev of got) this.event(ev, { quiet: true });
    if (!complete) {
      resetEvents(ch);
      ch.loaded = false;
      ch.atLatest = true;
      for (const post of ch.pending) {
        if (post.state === 'sent') {
          post.state = 'failed';
          post.error = 'the connection dropped before it was confirmed; check before retrying';
        }
      }
      await this.ui.reloaded(ch);
    }
    this.ui.pendingChanged(ch);
    this.ui.unreadChanged();
  }

  // ---- events -------------------------------------------------------------------------------

  /**
   * A live (or replayed, or gap-filling) event: moves the channel's cursor, adds it once to the
   * loaded range (or the buffer while a window in the past is shown), and reports a message from
   * someone else that was not seen before.
   */
  event(ev, { quiet = false } = {}) {
    const ch = this.state.channels.get(ev.channel);
    if (!ch || !ev.id) return;
    if (cmpId(ev.id, ch.cursor) > 0) {
      ch.cursor = ev.id;
      ch.last = ev;
    }
    this.state.users.add(ev.username);
    const me = this.state.me.username;
    const fresh = !ch.ids.has(ev.id) && !this.ownIds.has(ev.id);
    if (ev.type === 'message' && ev.username === me && fresh) this.ackEcho(ch, ev);
    if (ch.atLatest) {
      const r = addEvents(ch, [ev], { live: true });
      if (r.appended.length || r.inserted) this.ui.added(ch, r);
    } else {
      ch.buffer.push(ev);
    }
    if (!fresh || ev.type !== 'message' || ev.username === me) return;
    this.ui.message(ch, ev, { quiet });
  }

  /** One of this client's posts came back as a live event before (or without) its `posted`. */
  ackEcho(ch, ev) {
    const i = ch.pending.findIndex((p) => p.state === 'sent' && p.text === ev.text);
    if (i < 0) return;
    const [p] = ch.pending.splice(i, 1);
    this.inflight = this.inflight.filter((x) => x !== p);
    this.ui.pendingChanged(ch);
  }

  /** The node answered a voice upload with the stored message: shown now, even before its event. */
  voiceSent(message) {
    if (!message || !message.id) return;
    this.ownIds.add(message.id);
    this.event(message, { quiet: true });
  }

  // ---- posting ------------------------------------------------------------------------------

  /** A new post of `text` in a channel, pending until confirmed (not sent yet: see `sendPost`). */
  queue(ch, text, cid = crypto.randomUUID(), replyTo = null) {
    const p = { cid, channel: ch.name, text, state: 'queued' };
    if (replyTo) p.replyTo = replyTo;
    ch.pending.push(p);
    return p;
  }

  /** Sends a post when its channel is subscribed on an open socket; it waits otherwise. */
  sendPost(ch, p) {
    const frame = { channel: ch.name, text: p.text, client_id: p.cid };
    if (p.replyTo) frame.reply_to = p.replyTo.id;
    if (!ch.subscribed || !this.send('post', frame)) return;
    p.state = 'sent';
    this.inflight.push(p);
  }

  /**
   * Posts queued while offline, and posts whose fate the last socket never told (they were not in
   * the replay just received, so they were not stored), go out now with their `client_id`.
   */
  flushPending(ch) {
    if (ch.gapping) return;
    for (const post of ch.pending) if (post.state !== 'failed') this.sendPost(ch, post);
  }

  /** A failed post is sent again. */
  retry(p) {
    const ch = this.state.channels.get(p.channel);
    if (!ch) return;
    p.state = 'queued';
    p.error = '';
    this.ui.pendingChanged(ch);
    this.sendPost(ch, p);
  }

  /** A failed post is dropped. */
  discard(p) {
    const ch = this.state.channels.get(p.channel);
    if (!ch) return;
    ch.pending = ch.pending.filter((x) => x !== p);
    this.ui.pendingChanged(ch);
  }

  /** A `posted` answer: the post with that `client_id` becomes a message in its channel. */
  posted(p) {
    const ch = this.state.channels.get(p.channel);
    this.inflight = this.inflight.filter((x) => x.cid !== p.client_id);
    this.ownIds.add(p.id);
    if (!ch) return;
    const i = ch.pending.findIndex((x) => x.cid === p.client_id);
    if (i < 0) return;
    const [post] = ch.pending.splice(i, 1);
    if (ch.atLatest) {
      const ev = { id: p.id, channel: ch.name, type: 'message', username: this.state.me.username, text: post.text, created_at: p.created_at };
      if (post.replyTo) ev.reply_to = post.replyTo;
      const r = addEvents(ch, [ev], { live: true });
      this.ui.added(ch, r);
    }
    this.ui.pendingChanged(ch);
  }

  /**
   * An `error` frame. One naming a channel refused that channel's subscription; one naming none
   * answers the oldest post still waiting (frames are answered in order), which fails. Answers
   * the text to show the person, or null when a failed post shows it.
   */
  error(p) {
    const payload = p.payload || {};
    if (payload.channel) {
      this.resumed(payload.channel);
      const ch = this.state.channels.get(payload.channel);
      if (ch) ch.subscribed = false;
      return `${payload.channel}: ${p.message}`;
    }
    const post = this.inflight.shift();
    if (post) {
      post.state = 'failed';
      post.error = p.message;
      const ch = this.state.channels.get(post.channel);
      if (ch) this.ui.pendingChanged(ch);
      return null;
    }
    return p.code !== 'forbidden' ? p.message || 'Something went wrong' : null;
  }
}
