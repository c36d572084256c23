// Roles, member events and moderation refusals as the page words them. Pure functions, no DOM:
// the unit tests (tests/frontend/members.test.mjs) run them under Node.

export const RANK = { member: 1, moderator: 2, owner: 3 };

/** The line a member event shows in the conversation, or null for other events. */
export function memberEventText(ev) {
  switch (ev.type) {
    case 'member_added':
      return ev.text && ev.text !== ev.username ? `${ev.text} added ${ev.username}` : `${ev.username} joined`;
    case 'member_removed':
      if (ev.text === 'kicked') return `${ev.username} was removed`;
      if (ev.text === 'banned') return `${ev.username} was banned`;
      return `${ev.username} left`;
    case 'role_changed':
      return ev.text === 'member' ? `${ev.username} is no longer a moderator` : `${ev.username} is now a ${ev.text}`;
    case 'channel_updated': {
      let changes = {};
      try { changes = JSON.parse(ev.text) || {}; } catch { /* an unreadable change still shows */ }
      const parts = [];
      if ('topic' in changes) parts.push(changes.topic ? `set the topic: ${changes.topic}` : 'cleared the topic');
      if ('title' in changes) parts.push(changes.title ? `renamed it ${changes.title}` : 'cleared the title');
      if ('slow_mode_secs' in changes) {
        const s = Number(changes.slow_mode_secs) || 0;
        parts.push(s ? `turned on slow mode (one post per ${s} s)` : 'turned off slow mode');
      }
      if ('kind' in changes) parts.push(changes.kind === 'private' ? 'made it private' : 'made it public');
      return `${ev.username} ${parts.join(', ') || 'changed the settings'}`;
    }
    default:
      return null;
  }
}

/**
 * What `me` (with role `myRole`, admin or not) may do to `target` ({username, role}) in a channel
 * of `kind`: a list of `kick`, `ban`, `mute`, `promote`, `demote`.
 */
export function actionsFor({ me, myRole, admin = false, kind }, target) {
  if (!target || target.username === me || kind === 'dm') return [];
  const mine = admin ? 4 : RANK[myRole] || 0;
  const theirs = RANK[target.role] || 1;
  const out = [];
  if (mine >= 2 && theirs < mine) out.push('kick', 'ban', 'mute');
  if (mine >= 3 && target.role !== 'owner') out.push(target.role === 'moderator' ? 'demote' : 'promote');
  return out;
}

/** Whether a role may add people: moderators and owners, anyone in a group conversation. */
export function mayInvite(myRole, kind, admin = false) {
  return admin || kind === 'group' ? true : (RANK[myRole] || 0) >= 2;
}

/** A time in unix ms as the page says it: `until 14:05, 2 Dec` (or no end for 0). */
export function untilText(until) {
  if (!until) return 'until a moderator lifts it';
  const d = new Date(until);
  return `until ${d.toLocaleString(undefined, { hour: '2-digit', minute: '2-digit', day: 'numeric', month: 'short' })}`;
}

/** The composer's explanation of a refused post, or null when the code is not a moderation one. */
export function refusalText(code, message) {
  switch (code) {
    case 'muted': return 'A moderator muted you in this channel: you can read it, but not post for now.';
    case 'slow_mode': return `This channel is in slow mode. ${message || ''}`.trim();
    case 'banned': return 'You are banned from this channel.';
    default: return null;
  }
}

/** Messages grouped by channel, the channel with the newest message first, each oldest first. */
export function byChannel(messages) {
  const groups = new Map();
  for (const m of messages) {
    if (!groups.has(m.channel)) groups.set(m.channel, []);
    groups.get(m.channel).push(m);
  }
  const newest = (list) => Math.max(...list.map((m) => m.created_at));
  return [...groups.entries()]
    .map(([channel, list]) => [channel, [...list].sort((a, b) => a.created_at - b.created_at)])
    .sort((a, b) => newest(b[1]) - newest(a[1]) || a[0].localeCompare(b[0]));
}

/** Seconds for the ban and mute choices the member panel offers. */
export const DURATIONS = [
  ['10 minutes', 600],
  ['1 hour', 3600],
  ['1 day', 86400],
  ['1 week', 604800],
  ['No end', 0],
];
