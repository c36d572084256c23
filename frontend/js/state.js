// What the client knows: who is signed in, their channels with the events loaded so far, who is
// online. Modules talk through a tiny event bus instead of importing each other in circles.

export const S = {
  me: null, // profile of the signed-in user
  channels: new Map(), // name -> channel (see newChannel)
  online: new Set(), // usernames online now
  users: new Set(), // usernames seen anywhere (for @ autocomplete)
  current: null, // name of the open channel, if the chat view is shown
  features: { search: false, mentions: false, admin: false }, // endpoints this node has
};

const subs = new Map();
export function on(event, fn) {
  if (!subs.has(event)) subs.set(event, new Set());
  subs.get(event).add(fn);
}
export function emit(event, arg) {
  for (const fn of subs.get(event) || []) fn(arg);
}

/** Stream IDs are `ms-seq`; compares two of them in stream order. */
export function cmpId(a, b) {
  const [am, as = '0'] = a.split('-');
  const [bm, bs = '0'] = b.split('-');
  return Number(am) - Number(bm) || Number(as) - Number(bs);
}

/** The stream ID just before `id`, for exclusive `after=` queries that include `id`. */
export function idBefore(id) {
  const [ms, seq = '0'] = id.split('-');
  return seq !== '0' ? `${ms}-${BigInt(seq) - 1n}` : `${Number(ms) - 1}-18446744073709551615`;
}

/** A channel as the client keeps it, from an entry of GET /api/channels. */
export function newChannel(summary) {
  const last = summary.last_message || null;
  return {
    name: summary.name,
    kind: ['dm', 'private', 'group'].includes(summary.kind) ? summary.kind : 'public',
    peer: summary.peer || null,
    title: summary.title || '',
    member: summary.member !== false,
    unread: summary.unread || 0,
    mentions: 0,
    last,
    // Newest ID the socket has delivered (or the list reported): `resume` starts here.
    cursor: last ? last.id : '0-0',
    events: [], // loaded events, oldest first, no gaps between them
    ids: new Set(),
    loaded: false,
    hasMore: true, // older events exist before events[0]
    atLatest: true, // events reach the newest; live events are appended
    buffer: [], // live events received while a window in the past is shown
    loading: false,
    gen: 0, // bumped when the loaded range is dropped; a page for an older gen is ignored
    readId: null, // newest ID marked read
    pending: [], // own posts not yet confirmed
    typing: new Map(), // username -> timer
  };
}

export function label(ch) {
  if (ch.kind === 'dm') return ch.peer || ch.name;
  if (ch.kind === 'group') return ch.title || 'Group conversation';
  return `#${ch.name}`;
}

/**
 * Adds events to a channel's loaded range, dropping ones already there. Returns the events that
 * were new and came after everything loaded (`appended`), and whether any went elsewhere.
 * `live`: the events came from the socket, so message actions among them are applied to the
 * messages they target (history pages bring messages in their current state already).
 */
export function addEvents(ch, evs, { live = false } = {}) {
  const appended = [];
  let inserted = false;
  for (const ev of evs) {
    if (ch.ids.has(ev.id)) continue;
    ch.ids.add(ev.id);
    if (ev.type === 'transcript') applyTranscript(ch, ev);
    else if (live && (ACTIONS.has(ev.type) || ev.reply_to)) applyAction(ch, ev, S.me && S.me.username);
    const n = ch.events.length;
    if (!n || cmpId(ev.id, ch.events[n - 1].id) > 0) {
      ch.events.push(ev);
      appended.push(ev);
    } else {
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cmpId(ch.events[mid].id, ev.id) < 0) lo = mid + 1;
        else hi = mid;
      }
      ch.events.splice(lo, 0, ev);
      inserted = true;
    }
  }
  return { appended, inserted };
}

/** The loaded event with this ID, or null (events are in ID order). */
export function findEvent(ch, id) {
  let lo = 0;
  let hi = ch.events.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const c = cmpId(ch.events[mid].id, id);
    if (c === 0) return ch.events[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return null;
}

/**
 * A `transcript` event completes a voice message: its text becomes the transcript and its state
 * the final one. Returns the updated message, or null when that message is not loaded (a page
 * that loads it later shows its current state anyway).
 */
export function applyTranscript(ch, ev) {
  const target = ev.voice && ev.voice.message_id ? findEvent(ch, ev.voice.message_id) : null;
  if (!target || !target.voice) return null;
  const voice = { ...ev.voice };
  delete voice.message_id;
  target.text = ev.text || '';
  target.voice = { ...target.voice, ...voice };
  emit('voice-updated', { ch, ev: target });
  return target;
}

/** Event types that change an earlier message, named by their `target`. */
export const ACTIONS = new Set(['edit', 'delete', 'reaction']);

/** The start of a text a reply quotes (the server cuts at 100 bytes; this at 100 characters). */
export const excerpt = (text) => (text.length > 100 ? text.slice(0, 100) : text);

/**
 * Applies a message action (an `edit`, `delete` or `reaction` event, or a reply) to the loaded
 * message it targets, as the server applied it: returns that message, or null when it is not
 * loaded (a page that loads it later brings its current state). `me` decides a reaction's `me`.
 */
export function applyAction(ch, ev, me) {
  if (ev.type === 'message') {
    const parent = ev.reply_to ? findEvent(ch, ev.reply_to.id) : null;
    if (!parent || parent.deleted) return null;
    parent.reply_count = (parent.reply_count || 0) + 1;
    // A replayed reply names the message it answers but carries no quote: the loaded one gives it.
    if (!ev.reply_to.excerpt) ev.reply_to = { ...ev.reply_to, excerpt: excerpt(parent.text) };
    emit('message-updated', { ch, ev: parent });
    return parent;
  }
  const target = ev.target ? findEvent(ch, ev.target) : null;
  if (!target || target.type !== 'message' || target.deleted) return null;
  if (ev.type === 'edit') {
    target.text = ev.text;
    target.edited_at = ev.created_at;
  } else if (ev.type === 'delete') {
    target.deleted = true;
    target.text = '';
    delete target.voice;
    delete target.reactions;
    delete target.edited_at;
  } else if (ev.type === 'reaction' && ev.reacted) {
    const { emoji, count, added } = ev.reacted;
    const r = { ...(target.reactions || {}) };
    const mine = ev.username === me ? added : Boolean(r[emoji] && r[emoji].me);
    if (count > 0) r[emoji] = { count, me: mine };
    else delete r[emoji];
    if (Object.keys(r).length) target.reactions = r;
    else delete target.reactions;
  } else {
    return null;
  }
  // Replies quote the current text, or say the message is gone.
  if (ev.type !== 'reaction') {
    for (const e of ch.events) {
      if (e.reply_to && e.reply_to.id === target.id) {
        e.reply_to = target.deleted
          ? { id: target.id, username: e.reply_to.username, excerpt: '', deleted: true }
          : { ...e.reply_to, excerpt: excerpt(target.text) };
      }
    }
  }
  emit('message-updated', { ch, ev: target });
  return target;
}

/** Forgets the loaded range (e.g. before showing another window of history). */
export function resetEvents(ch) {
  // Pages asked for before this are for the old range: their answers are dropped.
  ch.gen = (ch.gen || 0) + 1;
  ch.events = [];
  ch.ids = new Set();
  ch.hasMore = true;
  ch.buffer = [];
}

/**
 * The loaded range reached the newest event: from now on live events are appended. Those that
 * arrived meanwhile were buffered, so nothing falls between the last page and the live stream.
 */
export function reachLatest(ch) {
  ch.atLatest = true;
  const r = addEvents(ch, ch.buffer, { live: true });
  ch.buffer = [];
  return r;
}
