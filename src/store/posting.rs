//! Posting: the one Lua script that writes an event (a message, a join, a leave) to its channel's
//! stream `channel:<c>`, a message's `message:<id>` hash, the search index and the channel's
//! activity, and publishes it, all in one step or not at all, so pub/sub order equals stream
//! order. Its stream ID comes from the generator of [`super::ids`], so it is unique across
//! channels and its `message:<id>` hash is its own. Also the guard every post runs first (the
//! user's posting budget, a repeated `client_id`), which the voice upload's script shares.
//!
//! It must never write any part of a post outside the script, nor run the script before the post
//! has been checked (text, membership): a post refused for either leaves nothing behind.

use std::sync::LazyLock;

use super::channels::dm_pair;
use super::ids::{parse_id, ADD_ENTRY_LUA};
use super::moderation::{MUTE_LUA, SLOW_LUA};
use super::{keys, Store};
use crate::error::{Error, Result};
use crate::protocol::ChatEvent;

/// What both posting scripts (this one and the voice upload's) do before writing anything: a
/// `client_id` seen before answers with the ID stored for it then, and the post is counted
/// against the user's budget. The scripts' last two KEYS are the budget counter and the
/// client_id key (`''` for none); their last three ARGV the budget (-1 = none), its window in
/// ms, and how long a client_id is kept in seconds. The script calls `remember(id)` once stored.
pub(crate) const GUARD_LUA: &str = r#"
local rate_key, once_key = KEYS[#KEYS - 1], KEYS[#KEYS]
local limit = tonumber(ARGV[#ARGV - 2])
if once_key ~= '' then
  local first = redis.call('GET', once_key)
  if first then return {'duplicate', first} end
end
if limit >= 0 then
  local n = redis.call('INCR', rate_key)
  if n == 1 or redis.call('PTTL', rate_key) < 0 then
    redis.call('PEXPIRE', rate_key, ARGV[#ARGV - 1])
  end
  if n > limit then return {'limited', tostring(redis.call('PTTL', rate_key))} end
end
local function remember(id)
  if once_key ~= '' then redis.call('SET', once_key, id, 'EX', ARGV[#ARGV]) end
end
"#;

/// Runs first in the posting script, before the guard: a post by someone who is not a member
/// of the channel (`KEYS[5]`, its members set; `''` for a join or a leave, which are not checked)
/// is refused with nothing written and nothing counted. In the script, so that a post costs one
/// round trip to Redis, not one for the check and one for the write.
const MEMBER_LUA: &str = r#"
if KEYS[5] ~= '' and redis.call('SISMEMBER', KEYS[5], ARGV[3]) == 0 then
  return {'not_member', ''}
end
"#;

const POST_LUA: &str = r#"
-- KEYS[1] stream channel:<c>, KEYS[2] pub/sub subject room:<c>, KEYS[3] activity zset active:<c>,
--   KEYS[4] the stream ID generator, KEYS[5] members:<c> (or ''), KEYS[6..9] the mutes, slow
--   mode and roles keys of `store::moderation`, then the guard's two keys
-- ARGV: channel, type, username, text, uuid, maxlen (0 = none), addhash (1 = FT.ADDHASH),
--       message-hash prefix, index name, then the guard's three values
local id, ms = add_entry(KEYS[4], KEYS[1], tonumber(ARGV[6]) or 0,
  {'type', ARGV[2], 'username', ARGV[3], 'message', ARGV[4], 'uuid', ARGV[5]},
  ARGV[2] == 'message' and ARGV[8] or nil)
if ARGV[2] == 'message' or ARGV[2] == 'join' then
  -- Keep the most recent 1000 people per channel; only a newcomer can take it past that.
  if redis.call('ZADD', KEYS[3], ms, ARGV[3]) == 1 then
    redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -1001)
  end
end
if ARGV[2] == 'message' then
  local key = ARGV[8] .. id
  redis.call('HSET', key, 'channel', ARGV[1], 'username', ARGV[3], 'message', ARGV[4],
    'created_at', ms, 'uuid', ARGV[5], 'type', ARGV[2])
  if ARGV[7] == '1' then
    pcall(redis.call, 'FT.ADDHASH', ARGV[9], key, '1.0', 'REPLACE')
  end
end
redis.call('PUBLISH', KEYS[2], cjson.encode({id = id, channel = ARGV[1], type = ARGV[2],
  username = ARGV[3], text = ARGV[4], created_at = ms, uuid = ARGV[5]}))
remember(id)
return {'ok', id}
"#;

static POST_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{MEMBER_LUA}{MUTE_LUA}{GUARD_LUA}{SLOW_LUA}{ADD_ENTRY_LUA}{POST_LUA}"
    ))
});

/// The guard's keys and values for one post ([`GUARD_LUA`]).
pub(crate) struct PostGuard {
    rate_key: String,
    once_key: String,
    /// -1: not counted.
    limit: i64,
    window_ms: u64,
    once_secs: u64,
}

impl PostGuard {
    /// Neither counted nor deduplicated (joins and leaves).
    fn none() -> Self {
        PostGuard {
            rate_key: String::new(),
            once_key: String::new(),
            limit: -1,
            window_ms: 0,
            once_secs: 0,
        }
    }

    /// Appends the guard's keys and values after the script's own.
    pub(crate) fn apply(&self, inv: &mut redis::ScriptInvocation<'_>) {
        inv.key(&self.rate_key)
            .key(&self.once_key)
            .arg(self.limit)
            .arg(self.window_ms)
            .arg(self.once_secs);
    }
}

/// What a guarded script did.
pub(crate) enum Guarded {
    /// Stored now, with this stream ID.
    Stored(String),
    /// Stored before under the same client_id, with this stream ID; nothing written now.
    Duplicate(String),
}

impl Guarded {
    /// Reads a guarded script's `{tag, value}` answer.
    pub(crate) fn from_reply((tag, value): (String, String)) -> Result<Self> {
        match tag.as_str() {
            "ok" => Ok(Guarded::Stored(value)),
            "duplicate" => Ok(Guarded::Duplicate(value)),
            "limited" => {
                let ms: u64 = value.parse().unwrap_or(1000);
                Err(Error::TooManyPosts {
                    retry_after: ms.div_ceil(1000).max(1),
                })
            }
            other => Err(Error::Internal(format!("post script answered {other}"))),
        }
    }
}

/// A post as stored: the event, and whether it had been stored before under its client_id.
#[derive(Clone, Debug)]
pub struct Posted {
    pub event: ChatEvent,
    pub duplicate: bool,
}

impl Store {
    /// The guard of a post by `username`: counted against the user's posting budget
    /// (`ws.rate_limit_messages` per `ws.rate_limit_window_secs`, shared by every socket, REST
    /// and voice post on every node) and, with a non-empty `client_id`, stored at most once.
    pub(crate) fn post_guard(
        &self,
        username: &str,
        channel: &str,
        client_id: Option<&str>,
    ) -> PostGuard {
        let ws = &self.settings.ws;
        PostGuard {
            rate_key: keys::post_rate(username),
            once_key: client_id
                .filter(|c| !c.is_empty())
                .map(|c| keys::post_once(username, channel, c))
                .unwrap_or_default(),
            limit: i64::from(ws.rate_limit_messages),
            window_ms: ws.rate_limit_window_secs.saturating_mul(1000),
            once_secs: ws.post_dedupe_secs,
        }
    }

    /// Records an event that is not a post (join, leave) and publishes it.
    pub async fn append_event(
        &self,
        channel: &str,
        kind: &str,
        username: &str,
        text: &str,
        uuid: &str,
    ) -> Result<ChatEvent> {
        let id = match self
            .append_guarded(
                channel,
                kind,
                username,
                text,
                uuid,
                &PostGuard::none(),
                false,
            )
            .await?
        {
            Some(Guarded::Stored(id) | Guarded::Duplicate(id)) => id,
            None => return Err(Error::Internal("event script refused a member".into())),
        };
        Ok(event_of(channel, kind, username, text, uuid, id))
    }

    /// Runs the posting script on the shared connection, one round trip: stores, indexes and
    /// publishes the event unless `check_member` finds `username` is not a member of `channel`
    /// (`None`), or the guard says it was stored before or the budget is spent.
    #[allow(clippy::too_many_arguments)]
    async fn append_guarded(
        &self,
        channel: &str,
        kind: &str,
        username: &str,
        text: &str,
        uuid: &str,
        guard: &PostGuard,
        check_member: bool,
    ) -> Result<Option<Guarded>> {
        let addhash = self.search.is_some_and(|v| v.needs_addhash());
        let members = if check_member {
            keys::members(channel)
        } else {
            String::new()
        };
        let mut inv = POST_SCRIPT.key(keys::channel(channel));
        inv.key(keys::room_events(channel))
            .key(keys::activity(channel))
            .key(keys::STREAM_IDS)
            .key(members);
        // Mutes and slow mode (KEYS[6] to KEYS[9], `store::moderation`).
        for key in super::moderation::posting_keys(channel) {
            inv.key(key);
        }
        inv.arg(channel)
            .arg(kind)
            .arg(username)
            .arg(text)
            .arg(uuid)
            .arg(self.settings.history.stream_maxlen)
            .arg(if addhash { "1" } else { "0" })
            .arg(keys::MESSAGE_PREFIX)
            .arg(keys::IDX_MESSAGES);
        guard.apply(&mut inv);
        let mut conn = self.shared();
        let reply: (String, String) = inv.invoke_async(&mut conn).await.map_err(write_outcome)?;
        if reply.0 == "not_member" {
            return Ok(None);
        }
        if let Some(refused) = super::moderation::refusal(&reply.0, &reply.1) {
            return Err(refused);
        }
        Guarded::from_reply(reply).map(Some)
    }

    /// Why a post to `channel` by someone who is not a member of it is refused.
    async fn not_member_error(&self, channel: &str) -> Result<Error> {
        Ok(match dm_pair(channel) {
            Some(_) => Error::Forbidden("that private chat is not yours".into()),
            None if self.channel_exists(channel).await? => {
                Error::Forbidden("join the channel before posting".into())
            }
            None => Error::ChannelNotFound,
        })
    }

    /// Posts a message after checking membership and length; nothing is written on error.
    pub async fn post_message(
        &self,
        username: &str,
        uuid: &str,
        channel: &str,
        text: &str,
    ) -> Result<ChatEvent> {
        Ok(self
            .post_message_once(username, uuid, channel, text, None)
            .await?
            .event)
    }

    /// Posts a message as [`Store::post_message`] does; with a non-empty `client_id`, a post
    /// the same user made to the same channel with the same client_id within
    /// `ws.post_dedupe_secs` stores nothing and answers with the event stored then.
    pub async fn post_message_once(
        &self,
        username: &str,
        uuid: &str,
        channel: &str,
        text: &str,
        client_id: Option<&str>,
    ) -> Result<Posted> {
        let max = self.settings.ws.max_message_chars;
        if text.trim().is_empty() {
            return Err(Error::InvalidMessage("a message needs some text".into()));
        }
        if text.chars().count() > max {
            return Err(Error::InvalidMessage(format!(
                "messages are at most {max} characters"
            )));
        }
        // Only its two people may post to a DM; whether it was opened the script checks.
        if dm_pair(channel).is_some_and(|(a, b)| a != username && b != username) {
            return Err(self.not_member_error(channel).await?);
        }
        let guard = self.post_guard(username, channel, client_id);
        match self
            .append_guarded(channel, "message", username, text, uuid, &guard, true)
            .await?
        {
            None => Err(self.not_member_error(channel).await?),
            Some(Guarded::Stored(id)) => {
                let ev = event_of(channel, "message", username, text, uuid, id);
                if text.contains('@') {
                    if let Err(e) = self.record_mentions(&ev).await {
                        log::warn!("mentions of {}: {e}", ev.id);
                    }
                }
                Ok(Posted {
                    event: ev,
                    duplicate: false,
                })
            }
            Some(Guarded::Duplicate(id)) => {
                let event = match self.stored_event(channel, &id).await? {
                    Some(ev) => ev,
                    None => event_of(channel, "message", username, text, uuid, id),
                };
                Ok(Posted {
                    event,
                    duplicate: true,
                })
            }
        }
    }
}

/// The event a posting script stored under `id`.
fn event_of(
    channel: &str,
    kind: &str,
    username: &str,
    text: &str,
    uuid: &str,
    id: String,
) -> ChatEvent {
    let created_at = parse_id(&id).map(|(ms, _)| ms as i64).unwrap_or(0);
    ChatEvent {
        id,
        channel: channel.to_string(),
        kind: kind.to_string(),
        username: username.to_string(),
        text: text.to_string(),
        created_at,
        uuid: uuid.to_string(),
        voice: None,
    }
}

/// The error of a posting script's call. A reply that timed out, or a connection that dropped
/// once the call was sent, leaves the post maybe stored: the client is told so (`unknown_outcome`)
/// and re-sends with the same `client_id`, which stores it at most once. A refused connection
/// means nothing was sent.
pub(crate) fn write_outcome(e: redis::RedisError) -> Error {
    if e.is_timeout() || e.is_connection_dropped() {
        Error::UnknownOutcome
    } else {
        e.into()
    }
}
