//! Message actions: edits, deletes, reactions and replies, each an event in the channel's stream.
//!
//! Every action is one Lua script, like a post: a `client_id` seen before answers with the event
//! stored then, the target is checked (it exists, in this channel; the author's own for edits and
//! deletes; the reactor a member), the action is counted against the posting budget
//! ([`GUARD_LUA`]), its event (`edit`, `delete` or `reaction`, naming its `target`) is appended to
//! `channel:<c>`, the message's current state is changed and the event is published, all at once
//! or not at all. Replies are posts with a `reply_to`, stored by their own script.
//!
//! The stream keeps the events; the message hash keeps the current state (edited text and
//! `edited_at`), `reactions:`/`reactors:` the reactions, `replies:` each message's replies and
//! `tombstones:` the deleted messages of a channel. History pages ([`Store::history_for`]) read
//! the stream and lay the current state over it. A delete removes the text everywhere it is kept:
//! the message's stream entry and those of its edits and transcript (`XDEL`), its hash, search
//! entry, audio and reactions; only the tombstone (its ID) stays.
//!
//! Every script touches the keys of one channel only (its stream, room, message hashes and the
//! keys above), besides the guard's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

use super::channels::dm_pair;
use super::history::Page;
use super::ids::{check_id, parse_id};
use super::insights::event_from_hash;
use super::posting::{Guarded, Posted, GUARD_LUA};
use super::{keys, Store};
use crate::error::{Error, Result};
use crate::protocol::{ChatEvent, ReactionChange, ReactionCount, ReplyRef};

/// Distinct emoji one message may carry.
pub const MAX_DISTINCT_REACTIONS: usize = 20;
/// Longest emoji accepted, in UTF-8 bytes.
pub const MAX_EMOJI_BYTES: usize = 32;
/// Bytes of the replied-to text a reply quotes (cut back to a character boundary).
pub const EXCERPT_BYTES: usize = 100;

/// Cuts a text to `EXCERPT_BYTES` at a character boundary, as [`excerpt`] does; and a stream ID
/// as [`lex_id`] writes it.
const EXCERPT_LUA: &str = r#"
local function excerpt(t)
  if #t <= 100 then return t end
  local cut = 100
  while cut > 0 and string.byte(t, cut + 1) >= 128 and string.byte(t, cut + 1) < 192 do
    cut = cut - 1
  end
  return string.sub(t, 1, cut)
end
local function lex_id(id)
  local m, s = string.match(id, '^(%d+)-(%d+)$')
  return string.rep('0', 13 - #m) .. m .. '-' .. string.rep('0', 10 - #s) .. s
end
"#;

// Every script below runs after the guard ([`GUARD_LUA`]: KEYS 1-4 the stream, room, activity
// and members of the channel, ARGV 1-5 its values, the client_id key last), so its own KEYS
// start at 5 and its ARGV at 6. Every key is in the channel's slot.

const EDIT_LUA: &str = r#"
-- KEYS 5 the target's message hash. ARGV 6 channel, 7 uuid, 8 target ID, 9 new text,
--   10 edit window in ms (0 = none)
local h = redis.call('HMGET', KEYS[5], 'channel', 'username', 'type', 'audio')
if h[1] ~= ARGV[6] or (h[3] and h[3] ~= 'message') then return {'not_found', ''} end
if h[2] ~= ARGV[2] then return {'forbidden', ''} end
if h[4] and h[4] ~= '' then return {'voice', ''} end
local window = tonumber(ARGV[10])
if window > 0 then
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  if now_ms - tonumber(string.match(ARGV[8], '^(%d+)')) > window then
    return {'too_late', ''}
  end
end
local id, ms = append({'type', 'edit', 'username', ARGV[2], 'message', ARGV[9], 'uuid', ARGV[7],
  'target', ARGV[8]})
local edits = redis.call('HGET', KEYS[5], 'edit_events')
redis.call('HSET', KEYS[5], 'message', ARGV[9], 'edited_at', ms,
  'edit_events', edits and (edits .. ' ' .. id) or id)
redis.call('SPUBLISH', KEYS[2], cjson.encode({id = id, channel = ARGV[6], type = 'edit',
  username = ARGV[2], text = ARGV[9], created_at = ms, uuid = ARGV[7], target = ARGV[8]}))
remember(id)
return {'ok', id}
"#;

const DELETE_LUA: &str = r#"
-- KEYS 5 the target's message hash, 6 its reactions, 7 its reactors, 8 tombstones, 9 the
--   replies of the message it answers, 10 its audio, 11 its audio info (9-11 unused when ARGV
--   says there is none). ARGV 6 channel, 7 uuid, 8 target ID, 9 target ID as text-sortable,
--   10 its audio ID as read before ('' = none), 11 the ID it answers as read before ('' = none)
local h = redis.call('HMGET', KEYS[5], 'channel', 'username', 'type', 'audio', 'reply_to',
  'edit_events', 'transcript_event')
if h[1] ~= ARGV[6] or (h[3] and h[3] ~= 'message') then return {'not_found', ''} end
if h[2] ~= ARGV[2] then return {'forbidden', ''} end
if (h[4] or '') ~= ARGV[10] or (h[5] or '') ~= ARGV[11] then return {'changed', ''} end
local id, ms = append({'type', 'delete', 'username', ARGV[2], 'uuid', ARGV[7], 'target', ARGV[8]})
-- The message's text is in its own entry, its edits' and its transcript's: all go.
local gone = {ARGV[8]}
for e in string.gmatch(h[6] or '', '%S+') do gone[#gone + 1] = e end
if h[7] then gone[#gone + 1] = h[7] end
redis.call('XDEL', KEYS[1], unpack(gone))
redis.call('DEL', KEYS[5], KEYS[6], KEYS[7])
if ARGV[10] ~= '' then redis.call('DEL', KEYS[10], KEYS[11]) end
if ARGV[11] ~= '' then redis.call('ZREM', KEYS[9], ARGV[9]) end
redis.call('ZADD', KEYS[8], 0, ARGV[9])
redis.call('SPUBLISH', KEYS[2], cjson.encode({id = id, channel = ARGV[6], type = 'delete',
  username = ARGV[2], text = '', created_at = ms, uuid = ARGV[7], target = ARGV[8]}))
remember(id)
return {'ok', id}
"#;

const REACT_LUA: &str = r#"
-- KEYS 5 the target's message hash, 6 its reactions, 7 its reactors. ARGV 6 channel, 7 uuid,
--   8 target ID, 9 emoji, 10 '1' add / '0' take back, 11 distinct emoji allowed
local h = redis.call('HMGET', KEYS[5], 'channel', 'type')
if h[1] ~= ARGV[6] or (h[2] and h[2] ~= 'message') then return {'not_found', ''} end
local who = ARGV[9] .. '\n' .. ARGV[2]
local add = ARGV[10] == '1'
if (redis.call('SISMEMBER', KEYS[7], who) == 1) == add then return {'same', ''} end
if add and redis.call('HEXISTS', KEYS[6], ARGV[9]) == 0
    and redis.call('HLEN', KEYS[6]) >= tonumber(ARGV[11]) then
  return {'too_many', ''}
end
local count
if add then
  redis.call('SADD', KEYS[7], who)
  count = redis.call('HINCRBY', KEYS[6], ARGV[9], 1)
else
  redis.call('SREM', KEYS[7], who)
  count = redis.call('HINCRBY', KEYS[6], ARGV[9], -1)
  if count <= 0 then
    redis.call('HDEL', KEYS[6], ARGV[9])
    count = 0
  end
end
local id, ms = append({'type', 'reaction', 'username', ARGV[2], 'uuid', ARGV[7],
  'target', ARGV[8], 'emoji', ARGV[9], 'added', ARGV[10], 'count', tostring(count)})
redis.call('SPUBLISH', KEYS[2], cjson.encode({id = id, channel = ARGV[6], type = 'reaction',
  username = ARGV[2], text = '', created_at = ms, uuid = ARGV[7], target = ARGV[8],
  reacted = {added = add, count = count, emoji = ARGV[9]}}))
remember(id)
return {'ok', id}
"#;

const REPLY_LUA: &str = r#"
-- KEYS 5 the message answered, 6 its replies. ARGV 6 channel, 7 text, 8 uuid,
--   9 message-hash key prefix, 10 the ID answered
local p = redis.call('HMGET', KEYS[5], 'channel', 'username', 'message', 'type')
if p[1] ~= ARGV[6] or (p[4] and p[4] ~= 'message') then return {'not_found', ''} end
local id, ms = append({'type', 'message', 'username', ARGV[2], 'message', ARGV[7],
  'uuid', ARGV[8], 'reply_to', ARGV[10], 'reply_user', p[2] or ''})
if redis.call('ZADD', KEYS[3], ms, ARGV[2]) == 1 then
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -1001)
end
redis.call('HSET', ARGV[9] .. id, 'channel', ARGV[6], 'username', ARGV[2], 'message', ARGV[7],
  'created_at', ms, 'uuid', ARGV[8], 'type', 'message', 'reply_to', ARGV[10],
  'reply_user', p[2] or '')
redis.call('ZADD', KEYS[6], 0, lex_id(id))
redis.call('SPUBLISH', KEYS[2], cjson.encode({id = id, channel = ARGV[6], type = 'message',
  username = ARGV[2], text = ARGV[7], created_at = ms, uuid = ARGV[8],
  reply_to = {id = ARGV[10], username = p[2] or '', excerpt = excerpt(p[3] or '')}}))
remember(id)
return {'ok', id}
"#;

/// Removes a document from a RediSearch 1.x index: KEYS[1] the index, ARGV[1] the hash's key.
const FT_DEL_LUA: &str = "return redis.pcall('FT.DEL', KEYS[1], ARGV[1])";
static FT_DEL_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(FT_DEL_LUA));

fn script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{GUARD_LUA}{EXCERPT_LUA}{body}"))
}

static EDIT_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| script(EDIT_LUA));
static DELETE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| script(DELETE_LUA));
static REACT_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| script(REACT_LUA));
static REPLY_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| script(REPLY_LUA));

/// A stream ID as a text that sorts like the ID (`0001631623305083-0000000000`): members of
/// `replies:` and `tombstones:`, paged with `ZRANGEBYLEX`.
pub fn lex_id(id: &str) -> Option<String> {
    let (ms, seq) = parse_id(id)?;
    Some(format!("{ms:013}-{seq:010}"))
}

/// The stream ID of a [`lex_id`].
fn from_lex_id(lex: &str) -> Option<String> {
    let (ms, seq) = parse_id(lex)?;
    Some(format!("{ms}-{seq}"))
}

/// The start of a text a reply quotes: at most [`EXCERPT_BYTES`], cut at a character boundary.
pub fn excerpt(text: &str) -> &str {
    if text.len() <= EXCERPT_BYTES {
        return text;
    }
    let mut cut = EXCERPT_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// Whether `c` can stand alone as an emoji (or start one).
fn emoji_base(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF
        | 0x2600..=0x27BF
        | 0x2300..=0x23FF
        | 0x2B00..=0x2BFF
        | 0x2190..=0x21FF
        | 0x25A0..=0x25FF
        | 0x2900..=0x297F
        | 0x3030 | 0x303D | 0x3297 | 0x3299
        | 0x00A9 | 0x00AE | 0x203C | 0x2049 | 0x2122 | 0x2139 | 0x24C2)
}

/// Whether `c` may follow within one emoji: variation selectors, skin tones, keycap, tags.
fn emoji_modifier(c: char) -> bool {
    matches!(c as u32, 0xFE0E | 0xFE0F | 0x1F3FB..=0x1F3FF | 0x20E3 | 0xE0020..=0xE007F)
}

fn regional_indicator(c: char) -> bool {
    matches!(c as u32, 0x1F1E6..=0x1F1FF)
}

/// Checks that a reaction is one emoji: a flag (two regional indicators), a keycap (`1️⃣`), or
/// emoji joined by zero-width joiners, each with its modifiers; at most [`MAX_EMOJI_BYTES`].
pub fn validate_emoji(emoji: &str) -> Result<()> {
    let bad = || {
        Err(Error::InvalidMessage(
            "a reaction is one emoji (at most 32 bytes)".into(),
        ))
    };
    if emoji.is_empty() || emoji.len() > MAX_EMOJI_BYTES {
        return bad();
    }
    let chars: Vec<char> = emoji.chars().collect();
    if chars.len() == 2 && chars.iter().all(|c| regional_indicator(*c)) {
        return Ok(());
    }
    for part in emoji.split('\u{200D}') {
        let mut it = part.chars();
        let Some(first) = it.next() else {
            return bad();
        };
        let rest: Vec<char> = it.collect();
        let keycap = (first.is_ascii_digit() || first == '#' || first == '*')
            && rest.last() == Some(&'\u{20E3}');
        if !(emoji_base(first) && !regional_indicator(first) || keycap) {
            return bad();
        }
        if !rest.iter().all(|c| emoji_modifier(*c)) {
            return bad();
        }
    }
    Ok(())
}

/// Checks a message text as posting does: not blank, at most `ws.max_message_chars`.
fn check_text(store: &Store, text: &str) -> Result<()> {
    let max = store.settings.ws.max_message_chars;
    if text.trim().is_empty() {
        return Err(Error::InvalidMessage("a message needs some text".into()));
    }
    if text.chars().count() > max {
        return Err(Error::InvalidMessage(format!(
            "messages are at most {max} characters"
        )));
    }
    Ok(())
}

/// What an action's stream entry adds to its event: the target, the reaction, the message a
/// reply answers (its excerpt is filled in by [`Store::history_for`], not kept in the stream).
pub(crate) fn action_fields(f: &HashMap<String, String>) -> ChatEvent {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let reacted = f.get("emoji").map(|emoji| ReactionChange {
        added: f.get("added").is_some_and(|a| a == "1"),
        count: f.get("count").and_then(|c| c.parse().ok()).unwrap_or(0),
        emoji: emoji.clone(),
    });
    let reply_to = f
        .get("reply_to")
        .filter(|r| !r.is_empty())
        .map(|id| ReplyRef {
            id: id.clone(),
            username: get("reply_user"),
            ..Default::default()
        });
    ChatEvent {
        target: get("target"),
        reacted,
        reply_to,
        ..Default::default()
    }
}

/// What an action did.
#[derive(Clone, Debug)]
pub struct Acted {
    /// The action's event ID; None when nothing changed (a reaction given twice).
    pub event_id: Option<String>,
    /// The message as it now is, seen by the one who acted (a tombstone once deleted).
    pub message: ChatEvent,
    /// Done before under the same client_id: nothing done now.
    pub duplicate: bool,
}

/// What an action's script did, once the guard is through.
enum Outcome {
    Done(Guarded),
    Same,
    Refused(String),
}

fn outcome(g: Guarded) -> Outcome {
    match g {
        Guarded::Refused(tag) if tag == "same" => Outcome::Same,
        Guarded::Refused(tag) => Outcome::Refused(tag),
        Guarded::NotMember => Outcome::Refused("not_member".into()),
        other => Outcome::Done(other),
    }
}

impl Store {
    /// Why an action a script refused was refused.
    async fn refusal(&self, channel: &str, why: &str) -> Error {
        match why {
            "not_found" => Error::MessageNotFound,
            "forbidden" => Error::Forbidden("only its author may change a message".into()),
            "voice" => Error::InvalidMessage("a voice message's text cannot be edited".into()),
            "too_late" => Error::Forbidden(format!(
                "messages may be edited for {} s after posting",
                self.settings.messages.edit_window_secs
            )),
            "too_many" => Error::InvalidMessage(format!(
                "a message has at most {MAX_DISTINCT_REACTIONS} different reactions"
            )),
            "not_member" => match dm_pair(channel) {
                Some(_) => Error::Forbidden("that private chat is not yours".into()),
                None => match self.channel_exists(channel).await {
                    Ok(true) => Error::Forbidden("join the channel first".into()),
                    Ok(false) => Error::ChannelNotFound,
                    Err(e) => e,
                },
            },
            other => Error::Internal(format!("action script answered {other}")),
        }
    }

    /// Changes the text of `username`'s message `id` in `channel`: an `edit` event, the new
    /// text in its hash and search entry. Only its author may, within `messages.edit_window_secs`.
    pub async fn edit_message(
        &self,
        username: &str,
        uuid: &str,
        channel: &str,
        id: &str,
        text: &str,
        client_id: Option<&str>,
    ) -> Result<Acted> {
        check_id(id).map_err(|_| Error::MessageNotFound)?;
        check_text(self, text)?;
        let guard = self.post_guard(username, channel, client_id);
        let maxlen = self.settings.history.stream_maxlen;
        let mut inv = guard.start(&EDIT_SCRIPT, channel, false, maxlen);
        inv.key(keys::message(channel, id))
            .arg(channel)
            .arg(uuid)
            .arg(id)
            .arg(text)
            .arg(self.settings.messages.edit_window_secs.saturating_mul(1000));
        guard.finish(&mut inv);
        let done = self.run_guarded(&guard, inv).await?;
        if matches!(done, Guarded::Stored(_)) {
            // The search index reads the hash: it now finds the new text, not the old.
            self.index_message(channel, id).await;
        }
        self.acted(username, channel, id, outcome(done)).await
    }

    /// Deletes `username`'s message `id` in `channel`: a `delete` event; the message's text
    /// (its stream entries, hash and search entry), audio and reactions are removed and a
    /// tombstone keeps its place. Only its author may.
    pub async fn delete_message(
        &self,
        username: &str,
        uuid: &str,
        channel: &str,
        id: &str,
        client_id: Option<&str>,
    ) -> Result<Acted> {
        check_id(id).map_err(|_| Error::MessageNotFound)?;
        let lex = lex_id(id).ok_or(Error::MessageNotFound)?;
        let hash = keys::message(channel, id);
        // The keys the script removes besides the hash depend on what the hash says; the script
        // checks it still says so.
        for _ in 0..3 {
            let (audio, parent): (Option<String>, Option<String>) = redis::cmd("HMGET")
                .arg(&hash)
                .arg("audio")
                .arg("reply_to")
                .query_async(&mut self.shared())
                .await?;
            let audio = audio.unwrap_or_default();
            let parent = parent.unwrap_or_default();
            let guard = self.post_guard(username, channel, client_id);
            let maxlen = self.settings.history.stream_maxlen;
            let mut inv = guard.start(&DELETE_SCRIPT, channel, false, maxlen);
            inv.key(&hash)
                .key(keys::reactions(channel, id))
                .key(keys::reactors(channel, id))
                .key(keys::tombstones(channel))
                .key(keys::replies(channel, &parent))
                .key(keys::audio(channel, &audio))
                .key(keys::audio_info(channel, &audio))
                .arg(channel)
                .arg(uuid)
                .arg(id)
                .arg(&lex)
                .arg(&audio)
                .arg(&parent);
            guard.finish(&mut inv);
            let done = self.run_guarded(&guard, inv).await?;
            if matches!(&done, Guarded::Refused(t) if t == "changed") {
                continue;
            }
            if matches!(done, Guarded::Stored(_)) {
                self.unindex_message(&hash, &audio).await;
            }
            return self.acted(username, channel, id, outcome(done)).await;
        }
        Err(Error::Internal(
            "message changed while being deleted".into(),
        ))
    }

    /// After a delete, what lives outside the channel's slot: the search document (RediSearch
    /// 1.x; 2.x drops it with the hash) and the audio's channel pointer. Failures are logged:
    /// the document points to a hash that is gone, and search skips such hits.
    async fn unindex_message(&self, hash: &str, audio: &str) {
        let mut conn = self.shared();
        if self.search.is_some_and(|v| v.needs_addhash()) {
            // Keyed by the index (named into a slot of the hash's master on a cluster), as
            // `FT.ADDHASH` is sent, so it reaches the index that holds the document.
            let r: redis::RedisResult<redis::Value> = FT_DEL_SCRIPT
                .key(self.index_for(keys::messages_index(), hash))
                .arg(hash)
                .invoke_async(&mut conn)
                .await;
            if let Err(e) = r {
                log::warn!("removing {hash} from search: {e}");
            }
        }
        if !audio.is_empty() {
            let r: redis::RedisResult<i64> = redis::cmd("DEL")
                .arg(keys::audio_channel(audio))
                .query_async(&mut conn)
                .await;
            if let Err(e) = r {
                log::warn!("removing audio {audio}: {e}");
            }
        }
    }

    /// Adds (`add`) or takes back `username`'s reaction `emoji` on message `id`: a `reaction`
    /// event unless nothing changes. Needs membership of the channel; at most
    /// [`MAX_DISTINCT_REACTIONS`] distinct emoji per message.
    #[allow(clippy::too_many_arguments)]
    pub async fn react(
        &self,
        username: &str,
        uuid: &str,
        channel: &str,
        id: &str,
        emoji: &str,
        add: bool,
        client_id: Option<&str>,
    ) -> Result<Acted> {
        check_id(id).map_err(|_| Error::MessageNotFound)?;
        validate_emoji(emoji)?;
        // A muted member may take a reaction back, not give one (`store::moderation`).
        // Said only to a member: to anyone else the channel answers as it always does.
        if add {
            if let Some(until) = self.muted_until(channel, username).await? {
                self.require_member(username, channel).await?;
                return Err(Error::Muted { until });
            }
        }
        let guard = self.post_guard(username, channel, client_id);
        let maxlen = self.settings.history.stream_maxlen;
        let mut inv = guard.start(&REACT_SCRIPT, channel, true, maxlen);
        inv.key(keys::message(channel, id))
            .key(keys::reactions(channel, id))
            .key(keys::reactors(channel, id))
            .arg(channel)
            .arg(uuid)
            .arg(id)
            .arg(emoji)
            .arg(if add { "1" } else { "0" })
            .arg(MAX_DISTINCT_REACTIONS);
        guard.finish(&mut inv);
        let done = self.run_guarded(&guard, inv).await?;
        self.acted(username, channel, id, outcome(done)).await
    }

    /// The answer to an action: the message as it now is, or why it was refused.
    async fn acted(
        &self,
        viewer: &str,
        channel: &str,
        id: &str,
        outcome: Outcome,
    ) -> Result<Acted> {
        let (event_id, duplicate) = match outcome {
            Outcome::Done(Guarded::Stored(e)) => (Some(e), false),
            Outcome::Done(Guarded::Duplicate(e)) => (Some(e), true),
            Outcome::Done(_) => return Err(Error::Internal("action script answered".into())),
            Outcome::Same => (None, false),
            Outcome::Refused(why) => return Err(self.refusal(channel, &why).await),
        };
        Ok(Acted {
            event_id,
            message: self.message_now(viewer, channel, id).await?,
            duplicate,
        })
    }

    /// Posts `text` as a reply to message `reply_to` of the same channel, as
    /// [`Store::post_message_once`] posts a message: the stored message and its event carry
    /// `reply_to`, and the message answered lists it among its replies.
    pub async fn post_reply_once(
        &self,
        username: &str,
        uuid: &str,
        channel: &str,
        text: &str,
        reply_to: &str,
        client_id: Option<&str>,
    ) -> Result<Posted> {
        check_text(self, text)?;
        check_id(reply_to).map_err(|_| Error::MessageNotFound)?;
        if dm_pair(channel).is_some_and(|(a, b)| a != username && b != username) {
            return Err(self.refusal(channel, "not_member").await);
        }
        let guard = self.post_guard(username, channel, client_id);
        let maxlen = self.settings.history.stream_maxlen;
        let mut inv = guard.start(&REPLY_SCRIPT, channel, true, maxlen);
        inv.key(keys::message(channel, reply_to))
            .key(keys::replies(channel, reply_to))
            .arg(channel)
            .arg(text)
            .arg(uuid)
            .arg(keys::message(channel, ""))
            .arg(reply_to);
        guard.finish(&mut inv);
        let (id, duplicate) = match outcome(self.run_guarded(&guard, inv).await?) {
            Outcome::Done(Guarded::Stored(id)) => {
                self.index_message(channel, &id).await;
                (id, false)
            }
            Outcome::Done(Guarded::Duplicate(id)) => (id, true),
            Outcome::Done(_) | Outcome::Same => {
                return Err(Error::Internal(
                    "reply script answered nothing stored".into(),
                ))
            }
            Outcome::Refused(why) => return Err(self.refusal(channel, &why).await),
        };
        let event = self.message_now(username, channel, &id).await?;
        if !duplicate && text.contains('@') {
            if let Err(e) = self.record_mentions(&event).await {
                log::warn!("mentions of {}: {e}", event.id);
            }
        }
        Ok(Posted { event, duplicate })
    }

    /// Message `id` of `channel` as it now is, seen by `viewer`: a tombstone once deleted;
    /// `message_not_found` when there is no such message there.
    pub async fn message_now(&self, viewer: &str, channel: &str, id: &str) -> Result<ChatEvent> {
        let lex = lex_id(id).ok_or(Error::MessageNotFound)?;
        let (hash, tomb): (HashMap<String, String>, Option<f64>) = redis::pipe()
            .hgetall(keys::message(channel, id))
            .zscore(keys::tombstones(channel), &lex)
            .query_async(&mut self.shared())
            .await?;
        let mut events = if hash.get("channel").is_some_and(|c| c == channel) {
            let mut ev = event_from_hash(id, &hash);
            ev.channel = channel.to_string();
            vec![ev]
        } else if tomb.is_some() {
            vec![tombstone(channel, id)]
        } else {
            return Err(Error::MessageNotFound);
        };
        self.refresh_voice(&mut events).await?;
        self.current_state(viewer, channel, &mut events).await?;
        Ok(events.pop().expect("one event"))
    }

    /// A history page as [`Store::history`] reads it, with each message in its current state
    /// for `viewer` and the tombstones of deleted messages in their places. The action events
    /// stay in the page, so a client may apply them or not and reach the same state.
    pub async fn history_for(
        &self,
        viewer: &str,
        channel: &str,
        before: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page> {
        let mut page = self.history(channel, before, after, limit).await?;
        // The ID range this page covers, so that each tombstone shows on exactly one page.
        let first = page.messages.first().map(|e| e.id.as_str());
        let last = page.messages.last().map(|e| e.id.as_str());
        let lex = |id: &str| lex_id(id).unwrap_or_default();
        let (lo, hi) = match (after, before) {
            (Some(a), _) => (
                format!("({}", lex(a)),
                match (page.has_more, last) {
                    (true, Some(l)) => format!("[{}", lex(l)),
                    _ => "+".into(),
                },
            ),
            (None, b) => (
                match (page.has_more, first) {
                    (true, Some(f)) => format!("[{}", lex(f)),
                    _ => "-".into(),
                },
                b.map(|b| format!("({}", lex(b)))
                    .unwrap_or_else(|| "+".into()),
            ),
        };
        let cap = self.settings.history.max_page_size;
        let tombs: Vec<String> = redis::cmd("ZRANGEBYLEX")
            .arg(keys::tombstones(channel))
            .arg(&lo)
            .arg(&hi)
            .arg("LIMIT")
            .arg(0)
            .arg(cap)
            .query_async(&mut self.shared())
            .await?;
        if !tombs.is_empty() {
            page.messages.extend(
                tombs
                    .iter()
                    .filter_map(|t| from_lex_id(t))
                    .map(|id| tombstone(channel, &id)),
            );
            page.messages
                .sort_by_key(|e| parse_id(&e.id).unwrap_or((0, 0)));
        }
        self.current_state(viewer, channel, &mut page.messages)
            .await?;
        Ok(page)
    }

    /// One page of the replies to message `id`, oldest first, as history pages: the newest
    /// `limit`, or those before or after a reply's ID. Deleted replies leave the thread.
    pub async fn replies(
        &self,
        viewer: &str,
        channel: &str,
        id: &str,
        before: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page> {
        // The message itself must be there (or a tombstone): otherwise it is not found.
        self.message_now(viewer, channel, id).await?;
        let limit = limit.clamp(1, self.settings.history.max_page_size);
        let bound = |id: &str| -> Result<String> {
            check_id(id)?;
            Ok(format!("({}", lex_id(id).unwrap_or_default()))
        };
        let key = keys::replies(channel, id);
        let mut ids: Vec<String> = if let Some(a) = after {
            redis::cmd("ZRANGEBYLEX")
                .arg(&key)
                .arg(bound(a)?)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(limit + 1)
                .query_async(&mut self.shared())
                .await?
        } else {
            let hi = match before {
                Some(b) => bound(b)?,
                None => "+".into(),
            };
            let mut v: Vec<String> = redis::cmd("ZREVRANGEBYLEX")
                .arg(&key)
                .arg(hi)
                .arg("-")
                .arg("LIMIT")
                .arg(0)
                .arg(limit + 1)
                .query_async(&mut self.shared())
                .await?;
            v.reverse();
            v
        };
        let has_more = ids.len() > limit;
        if has_more {
            if after.is_some() {
                ids.truncate(limit);
            } else {
                ids.remove(0);
            }
        }
        let refs: Vec<String> = ids
            .iter()
            .filter_map(|l| from_lex_id(l))
            .map(|id| keys::message_ref(channel, &id))
            .collect();
        let mut messages = self.messages_by_ref(&refs).await?;
        messages.retain(|m| m.channel == channel);
        self.refresh_voice(&mut messages).await?;
        self.current_state(viewer, channel, &mut messages).await?;
        Ok(Page { messages, has_more })
    }

    /// Lays the current state over the messages among `events` (action events and other kinds
    /// stay as they are): the edited text and `edited_at`, reactions as `viewer` sees them,
    /// `reply_count`, and for replies the author and excerpt of the message answered. Two
    /// pipelined reads.
    pub(crate) async fn current_state(
        &self,
        viewer: &str,
        channel: &str,
        events: &mut [ChatEvent],
    ) -> Result<()> {
        let idx: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == "message")
            .map(|(i, _)| i)
            .collect();
        if idx.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for &i in &idx {
            let id = &events[i].id;
            pipe.cmd("HMGET")
                .arg(keys::message(channel, id))
                .arg(&["message", "edited_at", "reply_to", "reply_user"])
                .smembers(keys::reactors(channel, id))
                .zcard(keys::replies(channel, id));
        }
        type State = (Vec<Option<String>>, Vec<String>, u64);
        let raw: Vec<redis::Value> = pipe.query_async(&mut self.shared()).await?;
        fn read<T: redis::FromRedisValue>(v: redis::Value) -> Result<T> {
            T::from_redis_value(v).map_err(|e| Error::Internal(format!("message state: {e}")))
        }
        let mut raw = raw.into_iter();
        let mut states: Vec<State> = Vec::with_capacity(idx.len());
        while let (Some(h), Some(r), Some(n)) = (raw.next(), raw.next(), raw.next()) {
            states.push((read(h)?, read(r)?, read(n)?));
        }
        let mut parents: Vec<String> = Vec::new();
        for (&i, (h, reactors, replies)) in idx.iter().zip(states) {
            let ev = &mut events[i];
            ev.reply_count = replies;
            if ev.deleted {
                continue;
            }
            let field = |k: usize| h.get(k).cloned().flatten().filter(|v| !v.is_empty());
            if let Some(at) = field(1).and_then(|a| a.parse().ok()) {
                ev.edited_at = Some(at);
                ev.text = field(0).unwrap_or_default();
            }
            if let Some(parent) = field(2) {
                parents.push(parent.clone());
                ev.reply_to = Some(ReplyRef {
                    id: parent,
                    username: field(3).unwrap_or_default(),
                    ..Default::default()
                });
            }
            ev.reactions = summary(&reactors, viewer);
        }
        if parents.is_empty() {
            return Ok(());
        }
        let parents: Vec<String> = parents
            .into_iter()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut pipe = redis::pipe();
        for p in &parents {
            pipe.cmd("HMGET")
                .arg(keys::message(channel, p))
                .arg(&["channel", "message"]);
        }
        let got: Vec<(Option<String>, Option<String>)> =
            pipe.query_async(&mut self.shared()).await?;
        let texts: HashMap<&str, Option<String>> = parents
            .iter()
            .zip(got)
            .map(|(p, (c, text))| {
                let here = c.as_deref() == Some(channel);
                (p.as_str(), here.then(|| text.unwrap_or_default()))
            })
            .collect();
        for ev in events.iter_mut() {
            if let Some(r) = ev.reply_to.as_mut() {
                match texts.get(r.id.as_str()) {
                    Some(Some(text)) => r.excerpt = excerpt(text).to_string(),
                    Some(None) => r.deleted = true,
                    None => {}
                }
            }
        }
        Ok(())
    }
}

/// A deleted message's tombstone.
fn tombstone(channel: &str, id: &str) -> ChatEvent {
    ChatEvent {
        id: id.to_string(),
        channel: channel.to_string(),
        kind: "message".into(),
        created_at: parse_id(id).map(|(ms, _)| ms as i64).unwrap_or(0),
        deleted: true,
        ..Default::default()
    }
}

/// A message's reactions as `viewer` sees them, from its `reactors:` members; None without any.
fn summary(reactors: &[String], viewer: &str) -> Option<BTreeMap<String, ReactionCount>> {
    let mut out: BTreeMap<String, ReactionCount> = BTreeMap::new();
    for r in reactors {
        let Some((emoji, user)) = r.split_once('\n') else {
            continue;
        };
        let entry = out.entry(emoji.to_string()).or_default();
        entry.count += 1;
        entry.me |= user == viewer;
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_are_single_and_short() {
        for ok in [
            "👍",
            "❤️",
            "👍🏽",
            "👩‍💻",
            "🇫🇷",
            "1️⃣",
            "#️⃣",
            "🏳️‍🌈",
            "👨‍👩‍👧‍👦",
            "✅",
            "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
        ] {
            assert!(validate_emoji(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "1",
            "👍👍",
            "👍 ",
            " ",
            "<b>",
            "🇫",
            "🇫🇷🇫🇷",
            "\u{200D}",
            "👍\u{200D}",
            "x\u{FE0F}",
            "\u{FE0F}",
            "ok👍",
        ] {
            assert!(validate_emoji(bad).is_err(), "{bad:?}");
        }
        assert!(validate_emoji(&"👍".repeat(9)).is_err(), "over 32 bytes");
    }

    #[test]
    fn excerpts_cut_at_character_boundaries() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(80);
        let e = excerpt(&long);
        assert!(e.len() <= EXCERPT_BYTES && e.len() >= EXCERPT_BYTES - 1);
        assert!(e.chars().all(|c| c == 'é'));
    }

    #[test]
    fn lex_ids_sort_as_ids() {
        let a = lex_id("1631623305083-9").unwrap();
        let b = lex_id("1631623305083-10").unwrap();
        assert!(a < b);
        assert_eq!(from_lex_id(&b).unwrap(), "1631623305083-10");
        assert!(lex_id("x").is_none());
    }

    #[test]
    fn summaries_count_and_mark_the_viewer() {
        let r = vec!["👍\nann".to_string(), "👍\nbob".into(), "🎉\nbob".into()];
        let s = summary(&r, "ann").unwrap();
        assert_eq!(s["👍"], ReactionCount { count: 2, me: true });
        assert_eq!(
            s["🎉"],
            ReactionCount {
                count: 1,
                me: false
            }
        );
        assert!(summary(&[], "ann").is_none());
    }
}
