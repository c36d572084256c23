//! Channels and their messages (seed 003's layout): the `channels` set of public channels, one
//! stream `channel:<name>` per channel as the source of truth, a `message:<id>` hash per message,
//! members and memberships sets, last-seen IDs in `user:<u>`, and DMs named `dm:<a>:<b>`.
//!
//! Posting is one Lua script, so a message is written, indexed and published in one step or not
//! at all, and pub/sub order equals stream order. Its stream ID comes from the generator of
//! [`super::ids`], so it is unique across channels and its `message:<id>` hash is its own.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::AsyncCommands;
use serde::Serialize;

use super::ids::ADD_ENTRY_LUA;
use super::{keys, Store};
use crate::error::{Error, Result};
use crate::protocol::ChatEvent;

/// The public channel seed 004's clients join with an empty recipient.
pub const GENERAL: &str = "general";

/// Public channel or private chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Public,
    Dm,
}

/// A channel as the caller's list shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ChannelSummary {
    pub name: String,
    pub kind: Kind,
    pub unread: u64,
    pub last_message: Option<ChatEvent>,
    /// For a DM: the other person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

/// One page of history.
#[derive(Clone, Debug, Serialize)]
pub struct Page {
    pub messages: Vec<ChatEvent>,
    pub has_more: bool,
}

/// Largest unread count reported exactly; above it the count is capped.
pub const UNREAD_CAP: usize = 1000;

/// Checks a public channel name: 1-64 of `[a-z0-9_-]`.
pub fn validate_channel_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        // RediSearch 1.x cannot search a tag that is a stopword, so such names are refused.
        && !crate::store::search::STOPWORDS.contains(&name);
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidChannelName)
    }
}

/// The DM channel of two users: `dm:<a>:<b>` with the names sorted.
pub fn dm_name(a: &str, b: &str) -> String {
    if a <= b {
        format!("dm:{a}:{b}")
    } else {
        format!("dm:{b}:{a}")
    }
}

/// The two users of a DM channel name.
pub fn dm_pair(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("dm:")?;
    rest.split_once(':')
}

/// Parses a stream ID `ms-seq` into a comparable pair.
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Whether `a` comes after `b` in stream order (unparsable IDs count as earliest).
pub fn id_after(a: &str, b: &str) -> bool {
    parse_id(a).unwrap_or((0, 0)) > parse_id(b).unwrap_or((0, 0))
}

/// Validates a client-supplied stream ID.
pub fn check_id(id: &str) -> Result<()> {
    if id.len() <= 41 && parse_id(id).is_some() {
        Ok(())
    } else {
        Err(Error::body("stream IDs look like 1631623305083-0"))
    }
}

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

const POST_LUA: &str = r#"
-- KEYS[1] stream channel:<c>, KEYS[2] pub/sub subject room:<c>, KEYS[3] activity zset active:<c>,
--   KEYS[4] the stream ID generator, then the guard's two keys
-- ARGV: channel, type, username, text, uuid, maxlen (0 = none), addhash (1 = FT.ADDHASH),
--       message-hash prefix, index name, then the guard's three values
local id, ms = add_entry(KEYS[4], KEYS[1], tonumber(ARGV[6]) or 0,
  {'type', ARGV[2], 'username', ARGV[3], 'message', ARGV[4], 'uuid', ARGV[5]},
  ARGV[2] == 'message' and ARGV[8] or nil)
if ARGV[2] == 'message' or ARGV[2] == 'join' then
  redis.call('ZADD', KEYS[3], ms, ARGV[3])
  -- Keep the most recent 1000 people per channel.
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -1001)
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

static POST_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(&format!("{GUARD_LUA}{ADD_ENTRY_LUA}{POST_LUA}")));

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
    /// Whether a public channel exists.
    pub async fn channel_exists(&self, name: &str) -> Result<bool> {
        let mut conn = self.conn().await?;
        Ok(conn.sismember(keys::CHANNELS, name).await?)
    }

    /// Every public channel, sorted.
    pub async fn public_channels(&self) -> Result<Vec<String>> {
        let mut conn = self.conn().await?;
        let mut v: Vec<String> = conn.smembers(keys::CHANNELS).await?;
        v.sort();
        Ok(v)
    }

    /// Creates a public channel; `ChannelExists` when taken.
    pub async fn create_channel(&self, name: &str) -> Result<()> {
        validate_channel_name(name)?;
        let mut conn = self.conn().await?;
        let added: i64 = conn.sadd(keys::CHANNELS, name).await?;
        if added == 0 {
            return Err(Error::ChannelExists);
        }
        Ok(())
    }

    /// Makes sure the General channel exists (seed 004's public room).
    pub async fn ensure_channel(&self, name: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: i64 = conn.sadd(keys::CHANNELS, name).await?;
        Ok(())
    }

    /// Whether a user may read a channel: any public channel, or a DM they are part of.
    pub async fn can_read(&self, username: &str, channel: &str) -> Result<bool> {
        if dm_pair(channel).is_some() {
            return self.in_dm(username, channel).await;
        }
        self.channel_exists(channel).await
    }

    /// Whether `username` is one of the two people of an opened DM. Only `open_dm` writes a
    /// DM's members, so a name made up by a client (`dm:me:nobody`) is never readable.
    async fn in_dm(&self, username: &str, channel: &str) -> Result<bool> {
        let Some((a, b)) = dm_pair(channel) else {
            return Ok(false);
        };
        if a != username && b != username {
            return Ok(false);
        }
        let mut conn = self.conn().await?;
        Ok(conn.sismember(keys::members(channel), username).await?)
    }

    /// Whether a user is a member (may post).
    pub async fn is_member(&self, username: &str, channel: &str) -> Result<bool> {
        if dm_pair(channel).is_some() {
            return self.in_dm(username, channel).await;
        }
        let mut conn = self.conn().await?;
        Ok(conn.sismember(keys::members(channel), username).await?)
    }

    /// Readability check that answers with the right error.
    pub async fn require_read(&self, username: &str, channel: &str) -> Result<()> {
        if dm_pair(channel).is_some() {
            return if self.can_read(username, channel).await? {
                Ok(())
            } else {
                Err(Error::Forbidden("that private chat is not yours".into()))
            };
        }
        if self.channel_exists(channel).await? {
            Ok(())
        } else {
            Err(Error::ChannelNotFound)
        }
    }

    /// Joins a public channel; records a `join` event when the user was not a member.
    pub async fn join_channel(&self, username: &str, uuid: &str, channel: &str) -> Result<bool> {
        if dm_pair(channel).is_some() {
            return Err(Error::Forbidden("private chats cannot be joined".into()));
        }
        if !self.channel_exists(channel).await? {
            return Err(Error::ChannelNotFound);
        }
        let mut conn = self.conn().await?;
        let (added, _): (i64, i64) = redis::pipe()
            .sadd(keys::members(channel), username)
            .sadd(keys::memberships(username), channel)
            .query_async(&mut conn)
            .await?;
        drop(conn);
        if added == 1 {
            self.append_event(channel, "join", username, "", uuid)
                .await?;
        }
        Ok(added == 1)
    }

    /// Leaves a public channel; records a `leave` event when the user was a member.
    pub async fn leave_channel(&self, username: &str, uuid: &str, channel: &str) -> Result<bool> {
        if dm_pair(channel).is_some() {
            return Err(Error::Forbidden("private chats cannot be left".into()));
        }
        if !self.channel_exists(channel).await? {
            return Err(Error::ChannelNotFound);
        }
        let mut conn = self.conn().await?;
        let (removed, _): (i64, i64) = redis::pipe()
            .srem(keys::members(channel), username)
            .srem(keys::memberships(username), channel)
            .query_async(&mut conn)
            .await?;
        drop(conn);
        if removed == 1 {
            self.append_event(channel, "leave", username, "", uuid)
                .await?;
        }
        Ok(removed == 1)
    }

    /// The DM between two users if it was opened, without opening it.
    pub async fn existing_dm(&self, me: &str, other: &str) -> Result<Option<String>> {
        let name = dm_name(me, other);
        Ok(self.in_dm(me, &name).await?.then_some(name))
    }

    /// Opens (idempotently) the DM between two users and returns its name.
    pub async fn open_dm(&self, me: &str, other: &str) -> Result<String> {
        if me == other {
            return Err(Error::body("a private chat needs another user"));
        }
        let mut conn = self.conn().await?;
        let exists: bool = conn.exists(keys::user(other)).await?;
        if !exists {
            return Err(Error::UserNotFound);
        }
        let name = dm_name(me, other);
        let (added, _, _): (i64, i64, i64) = redis::pipe()
            .sadd(keys::members(&name), &[me, other])
            .sadd(keys::memberships(me), &name)
            .sadd(keys::memberships(other), &name)
            .query_async(&mut conn)
            .await?;
        if added > 0 {
            // Both people's sockets, on any node, learn of the new private chat.
            let mut pipe = redis::pipe();
            for (user, peer) in [(me, other), (other, me)] {
                let notice = serde_json::json!({
                    "username": user,
                    "kind": "channel_added",
                    "payload": {"channel": name, "kind": Kind::Dm, "peer": peer},
                });
                pipe.publish(keys::USER_EVENTS, notice.to_string()).ignore();
            }
            let _: () = pipe.query_async(&mut conn).await?;
        }
        Ok(name)
    }

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
            .append_guarded(channel, kind, username, text, uuid, &PostGuard::none())
            .await?
        {
            Guarded::Stored(id) | Guarded::Duplicate(id) => id,
        };
        Ok(event_of(channel, kind, username, text, uuid, id))
    }

    /// Runs the posting script: stores, indexes and publishes the event unless the guard says
    /// it was stored before or the budget is spent.
    async fn append_guarded(
        &self,
        channel: &str,
        kind: &str,
        username: &str,
        text: &str,
        uuid: &str,
        guard: &PostGuard,
    ) -> Result<Guarded> {
        let addhash = self.search.is_some_and(|v| v.needs_addhash());
        let mut inv = POST_SCRIPT.key(keys::channel(channel));
        inv.key(keys::room_events(channel))
            .key(keys::activity(channel))
            .key(keys::STREAM_IDS)
            .arg(channel)
            .arg(kind)
            .arg(username)
            .arg(text)
            .arg(uuid)
            .arg(self.settings.history.stream_maxlen)
            .arg(if addhash { "1" } else { "0" })
            .arg(keys::MESSAGE_PREFIX)
            .arg(keys::IDX_MESSAGES);
        guard.apply(&mut inv);
        let mut conn = self.conn().await?;
        let reply: (String, String) = inv.invoke_async(&mut conn).await?;
        Guarded::from_reply(reply)
    }

    /// One stored event read back from the stream (None once trimmed away).
    pub(crate) async fn stored_event(&self, channel: &str, id: &str) -> Result<Option<ChatEvent>> {
        Ok(self.range(channel, id, id, 1).await?.pop())
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
        if !self.is_member(username, channel).await? {
            return Err(if dm_pair(channel).is_some() {
                Error::Forbidden("that private chat is not yours".into())
            } else if self.channel_exists(channel).await? {
                Error::Forbidden("join the channel before posting".into())
            } else {
                Error::ChannelNotFound
            });
        }
        let guard = self.post_guard(username, channel, client_id);
        match self
            .append_guarded(channel, "message", username, text, uuid, &guard)
            .await?
        {
            Guarded::Stored(id) => {
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
            Guarded::Duplicate(id) => {
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

    /// Reads stream entries in `[start, end]` (inclusive; `(id` exclusive), oldest first.
    pub async fn range(
        &self,
        channel: &str,
        start: &str,
        end: &str,
        count: usize,
    ) -> Result<Vec<ChatEvent>> {
        let mut conn = self.conn().await?;
        let raw: redis::Value = redis::cmd("XRANGE")
            .arg(keys::channel(channel))
            .arg(start)
            .arg(end)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        drop(conn);
        self.events_from_entries(channel, raw).await
    }

    /// Reads up to `count` entries before `end` (exclusive `(id` or `+`), returned oldest first.
    pub async fn range_rev(
        &self,
        channel: &str,
        end: &str,
        count: usize,
    ) -> Result<Vec<ChatEvent>> {
        let mut conn = self.conn().await?;
        let raw: redis::Value = redis::cmd("XREVRANGE")
            .arg(keys::channel(channel))
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        drop(conn);
        let mut v = self.events_from_entries(channel, raw).await?;
        v.reverse();
        Ok(v)
    }

    /// Every event after `id` (exclusive), oldest first, read in batches.
    pub async fn read_after(&self, channel: &str, id: &str) -> Result<Vec<ChatEvent>> {
        const BATCH: usize = 500;
        let mut all = Vec::new();
        let mut from = format!("({id}");
        loop {
            let batch = self.range(channel, &from, "+", BATCH).await?;
            let done = batch.len() < BATCH;
            if let Some(last) = batch.last() {
                from = format!("({}", last.id);
            }
            all.extend(batch);
            if done {
                return Ok(all);
            }
        }
    }

    /// A history page: before/after an ID, or the newest.
    pub async fn history(
        &self,
        channel: &str,
        before: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page> {
        let limit = limit.clamp(1, self.settings.history.max_page_size);
        if let Some(after) = after {
            check_id(after)?;
            let mut messages = self
                .range(channel, &format!("({after}"), "+", limit + 1)
                .await?;
            let has_more = messages.len() > limit;
            messages.truncate(limit);
            return Ok(Page { messages, has_more });
        }
        let end = match before {
            Some(b) => {
                check_id(b)?;
                format!("({b}")
            }
            None => "+".to_string(),
        };
        let mut messages = self.range_rev(channel, &end, limit + 1).await?;
        let has_more = messages.len() > limit;
        if has_more {
            messages.remove(0);
        }
        Ok(Page { messages, has_more })
    }

    /// The newest entry ID of a channel, if any.
    pub async fn last_id(&self, channel: &str) -> Result<Option<String>> {
        let mut conn = self.conn().await?;
        let raw: Vec<(String, HashMap<String, String>)> = redis::cmd("XREVRANGE")
            .arg(keys::channel(channel))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        Ok(raw.into_iter().next().map(|(id, _)| id))
    }

    /// Turns XRANGE entries into events; entries written by seed 003's loader carry only
    /// `type`, so their text comes from the `message:<id>` hash (one pipelined read).
    async fn events_from_entries(
        &self,
        channel: &str,
        raw: redis::Value,
    ) -> Result<Vec<ChatEvent>> {
        let entries: Vec<(String, HashMap<String, String>)> =
            redis::FromRedisValue::from_redis_value(raw)
                .map_err(|e| Error::Internal(format!("stream entry: {e}")))?;
        let missing: Vec<&String> = entries
            .iter()
            .filter(|(_, f)| !f.contains_key("username"))
            .map(|(id, _)| id)
            .collect();
        let mut hashes: HashMap<String, HashMap<String, String>> = HashMap::new();
        if !missing.is_empty() {
            let mut conn = self.conn().await?;
            let mut pipe = redis::pipe();
            for id in &missing {
                pipe.hgetall(keys::message(id));
            }
            let got: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
            for (id, h) in missing.into_iter().zip(got) {
                hashes.insert(id.clone(), h);
            }
        }
        let mut events: Vec<ChatEvent> = entries
            .into_iter()
            .map(|(id, f)| {
                let f = hashes.remove(&id).map(|h| merge(f.clone(), h)).unwrap_or(f);
                let get = |k: &str| f.get(k).cloned().unwrap_or_default();
                ChatEvent {
                    created_at: parse_id(&id).map(|(ms, _)| ms as i64).unwrap_or(0),
                    channel: channel.to_string(),
                    kind: f.get("type").cloned().unwrap_or_else(|| "message".into()),
                    username: get("username"),
                    text: get("message"),
                    uuid: get("uuid"),
                    voice: crate::voice::info_from_fields(&f),
                    id,
                }
            })
            .collect();
        self.refresh_voice(&mut events).await?;
        Ok(events)
    }

    /// The channels a user belongs to.
    pub async fn memberships(&self, username: &str) -> Result<Vec<String>> {
        let mut conn = self.conn().await?;
        let mut v: Vec<String> = conn.smembers(keys::memberships(username)).await?;
        v.sort();
        Ok(v)
    }

    /// Members of a channel.
    pub async fn members(&self, channel: &str) -> Result<Vec<String>> {
        let mut conn = self.conn().await?;
        let mut v: Vec<String> = conn.smembers(keys::members(channel)).await?;
        v.sort();
        Ok(v)
    }

    /// Records that the user has read up to `last_id` (never moves backwards).
    pub async fn mark_read(&self, username: &str, channel: &str, last_id: &str) -> Result<()> {
        check_id(last_id)?;
        let mut conn = self.conn().await?;
        let current: Option<String> = conn
            .hget(keys::user(username), keys::last_seen_field(channel))
            .await?;
        if current.as_deref().is_none_or(|c| id_after(last_id, c)) {
            let _: () = conn
                .hset(
                    keys::user(username),
                    keys::last_seen_field(channel),
                    last_id,
                )
                .await?;
        }
        Ok(())
    }

    /// Unread count of a channel for a user: entries after their last-seen ID (capped).
    pub async fn unread(&self, username: &str, channel: &str) -> Result<u64> {
        let mut conn = self.conn().await?;
        let seen: Option<String> = conn
            .hget(keys::user(username), keys::last_seen_field(channel))
            .await?;
        let start = seen.map(|s| format!("({s}")).unwrap_or_else(|| "-".into());
        let ids: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(keys::channel(channel))
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(UNREAD_CAP)
            .query_async(&mut conn)
            .await?;
        Ok(ids
            .iter()
            .filter(|(_, f)| {
                f.get("type").is_none_or(|t| t == "message")
                    && f.get("username").is_none_or(|u| u != username)
            })
            .count() as u64)
    }

    /// The caller's channels with unread counts and last message.
    pub async fn channel_summaries(&self, username: &str) -> Result<Vec<ChannelSummary>> {
        let mut out = Vec::new();
        for name in self.memberships(username).await? {
            let last = self.range_rev(&name, "+", 1).await?.pop();
            let unread = self.unread(username, &name).await?;
            let peer = dm_pair(&name).map(|(a, b)| if a == username { b } else { a }.to_string());
            out.push(ChannelSummary {
                kind: if peer.is_some() {
                    Kind::Dm
                } else {
                    Kind::Public
                },
                name,
                unread,
                last_message: last,
                peer,
            });
        }
        Ok(out)
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

fn merge(mut a: HashMap<String, String>, b: HashMap<String, String>) -> HashMap<String, String> {
    for (k, v) in b {
        a.entry(k).or_insert(v);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names() {
        assert!(validate_channel_name("general").is_ok());
        assert!(validate_channel_name("a-b_9").is_ok());
        assert!(validate_channel_name("").is_err());
        assert!(validate_channel_name("Caps").is_err());
        assert!(validate_channel_name("dm:a:b").is_err());
        assert!(validate_channel_name("the").is_err(), "a stopword");
        assert!(validate_channel_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn dm_names_are_sorted_pairs() {
        assert_eq!(dm_name("zed", "amy"), "dm:amy:zed");
        assert_eq!(dm_pair("dm:amy:zed"), Some(("amy", "zed")));
        assert_eq!(dm_pair("general"), None);
    }

    #[test]
    fn ids_compare_numerically() {
        assert!(id_after("10-0", "9-5"));
        assert!(id_after("10-10", "10-9"));
        assert!(!id_after("10-1", "10-1"));
        assert!(check_id("1631623305083-0").is_ok());
        assert!(check_id("abc").is_err());
    }
}
