//! Posting: the Lua script that writes an event (a message, a join, a leave) to its channel's
//! stream `channel:<c>`, a message's `message:{channel:<c>}:<id>` hash and the channel's
//! activity, and publishes it, all in one step or not at all, so pub/sub order equals stream
//! order. Every key it touches is in the channel's slot (see [`super::keys`]); its stream ID is
//! Redis's own (`XADD … *`), unique within the channel.
//!
//! On one Redis the same script adds a message's hash to the search index where RediSearch 1.x
//! needs that by hand (`FT.ADDHASH`, the index named in ARGV), so a post is one round trip; on a
//! cluster the index's own command follows the script, routed by the index's name
//! ([`Store::index_message`]). Before it, in the user's slot, the user's posting budget
//! (`postrate:{user:<u>}`), spent from this node's lease of it ([`super::budget`]: a round trip
//! only when the lease is used up); after it, the post's mentions (`mentions:{user:<m>}` of each
//! person mentioned). The budget cannot be decided inside the channel's script (it is in the
//! user's slot), and a post refused by it must leave nothing behind, so it is spent first and
//! given back when the script then stores nothing (a repeated `client_id`, a non-member). The
//! channel script also answers a repeated `client_id` (`postonce:{channel:<c>}:…`) and refuses
//! non-members, so the voice upload's script shares that part ([`GUARD_LUA`]).
//!
//! It must never write any part of a post outside the script (the index entry and mentions are
//! derived from the stored hash and rebuilt from it), nor run the script before the post has
//! been checked (text, membership): a post refused for either leaves nothing behind.

use std::sync::LazyLock;

use super::channels::dm_pair;
use super::ids::parse_id;
use super::moderation::MODERATION_LUA;
use super::{keys, Store};
use crate::error::{Error, Result};
use crate::protocol::ChatEvent;

/// What both posting scripts (this one and the voice upload's) do before writing anything, all
/// in the channel's slot. KEYS: 1 the stream `channel:<c>`, 2 the pub/sub subject
/// `room:{channel:<c>}`, 3 `active:{channel:<c>}`, 4 `members:{channel:<c>}`, then the script's
/// own keys, and last the `client_id` key when ARGV[3] is `1`. ARGV: 1 `1` = refuse a
/// non-member, 2 username, 3 whether a client_id key is given, 4 how long it is kept (s),
/// 5 stream maxlen (0 = none), then the script's own values.
///
/// A post by a non-member answers `not_member`, a `client_id` seen before `duplicate` with the ID
/// stored then; nothing is written for either. Defines `append(fields)` (XADD with `*`, trimmed
/// to about maxlen, returning the ID and its millisecond) and `remember(id)`.
pub(crate) const GUARD_LUA: &str = r#"
local once_key = nil
if ARGV[3] == '1' then once_key = KEYS[#KEYS] end
if ARGV[1] == '1' and redis.call('SISMEMBER', KEYS[4], ARGV[2]) == 0 then
  return {'not_member', ''}
end
if once_key then
  local first = redis.call('GET', once_key)
  if first then return {'duplicate', first} end
end
local function remember(id)
  if once_key then redis.call('SET', once_key, id, 'EX', ARGV[4]) end
end
local function append(fields)
  local args = {KEYS[1]}
  local maxlen = tonumber(ARGV[5]) or 0
  if maxlen > 0 then
    args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = maxlen
  end
  args[#args + 1] = '*'
  for _, v in ipairs(fields) do args[#args + 1] = v end
  local id = redis.call('XADD', unpack(args))
  return id, tonumber(string.match(id, '^(%d+)'))
end
"#;

const POST_LUA: &str = r#"
-- KEYS after the guard's four: 5-8 the mutes, slow mode and roles keys of `store::moderation`
-- ARGV after the guard's five: 6 channel, 7 type, 8 text, 9 uuid, 10 message-hash key prefix,
-- 11 the search index to add a message's hash to by FT.ADDHASH (RediSearch 1.x; '' = none)
local id, ms = append({'type', ARGV[7], 'username', ARGV[2], 'message', ARGV[8], 'uuid', ARGV[9]})
if ARGV[7] == 'message' or ARGV[7] == 'join' then
  -- Keep the most recent 1000 people per channel; only a newcomer can take it past that.
  if redis.call('ZADD', KEYS[3], ms, ARGV[2]) == 1 then
    redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -1001)
  end
end
if ARGV[7] == 'message' then
  redis.call('HSET', ARGV[10] .. id, 'channel', ARGV[6], 'username', ARGV[2],
    'message', ARGV[8], 'created_at', ms, 'uuid', ARGV[9], 'type', ARGV[7])
end
local indexed = nil
if ARGV[7] == 'message' and ARGV[11] ~= '' then
  -- The master's own index, named in ARGV: the module reads the hash just written. A failure
  -- (an index gone meanwhile) leaves the post stored and is answered third.
  local r = redis.pcall('FT.ADDHASH', ARGV[11], ARGV[10] .. id, '1.0', 'REPLACE')
  if type(r) == 'table' and r.err then indexed = r.err end
end
redis.call('SPUBLISH', KEYS[2], cjson.encode({id = id, channel = ARGV[6], type = ARGV[7],
  username = ARGV[2], text = ARGV[8], created_at = ms, uuid = ARGV[9]}))
remember(id)
if indexed then return {'ok', id, indexed} end
return {'ok', id}
"#;

/// The posting script's text: the guard, mutes and slow mode, then the post.
pub(crate) fn post_lua() -> String {
    format!("{GUARD_LUA}{MODERATION_LUA}{POST_LUA}")
}

static POST_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(&post_lua()));

/// Gives back a post counted in Redis (alone or in a lease, see [`super::budget`]) that stored
/// nothing. A counter that expired meanwhile is left alone (DECR would recreate
/// it without a TTL).
const GIVE_BACK_LUA: &str = r#"
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
return 1
"#;

/// `FT.ADDHASH` of one hash (RediSearch 1.x), from a script. KEYS[1] the index, ARGV[1] the
/// hash's key (read by the module on the same Redis), further ARGV appended (`REPLACE`). Sent as a plain command,
/// RediSearch 1.x hands FT.ADDHASH to its thread pool and blocks the connection it came on until
/// the document is indexed: on the node's one pipelined connection that held every command
/// behind it, at about 120 µs of wall time and Redis CPU per document (measured with 30,000
/// documents); inside a script it runs at once, at about 15 µs (DESIGN.md).
const ADDHASH_LUA: &str =
    "return redis.pcall('FT.ADDHASH', KEYS[1], ARGV[1], '1.0', unpack(ARGV, 2))";
pub(crate) static ADDHASH_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(ADDHASH_LUA));

static GIVE_BACK_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(GIVE_BACK_LUA));

/// A post's turn among the posts one socket sends one after another, which may be on their way
/// at once (`ws.post_pipeline`): a post waits until the one before it has been handed to Redis
/// (or failed, or stored), so they are stored in the order sent. Set for a post's task with
/// [`POST_TURN`]`.scope`; a post without one (REST, voice, a frame alone) goes at once.
pub struct PostTurn {
    /// Fired (or dropped) when the post before has been handed on.
    pub after: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Fired when this post has been handed on; dropped with the post otherwise.
    pub handed_on: tokio::sync::oneshot::Sender<()>,
}

tokio::task_local! {
    /// The turn of the post this task makes ([`PostTurn`]).
    pub static POST_TURN: std::cell::RefCell<Option<PostTurn>>;
}

/// Takes this task's post turn, after waiting for the post before it.
async fn take_turn() -> Option<tokio::sync::oneshot::Sender<()>> {
    let turn = POST_TURN
        .try_with(|t| t.borrow_mut().take())
        .ok()
        .flatten()?;
    if let Some(after) = turn.after {
        // Handed on, or gone without being stored: either way this post may go.
        let _ = after.await;
    }
    Some(turn.handed_on)
}

/// How one post is guarded: the user's budget and its `client_id`.
pub(crate) struct PostGuard {
    username: String,
    rate_key: String,
    once_key: Option<String>,
    /// -1: not counted.
    limit: i64,
    /// Posts of the budget leased at a time ([`super::budget`]).
    lease: u32,
    window_ms: u64,
    once_secs: u64,
}

impl PostGuard {
    /// Neither counted nor deduplicated (joins and leaves).
    fn none(username: &str) -> Self {
        PostGuard {
            username: username.to_string(),
            rate_key: String::new(),
            once_key: None,
            limit: -1,
            lease: 1,
            window_ms: 0,
            once_secs: 0,
        }
    }

    /// A guarded script's invocation with the guard's leading keys and values ([`GUARD_LUA`]);
    /// the script's own keys and values follow, then [`PostGuard::finish`].
    pub(crate) fn start<'a>(
        &self,
        script: &'a redis::Script,
        channel: &str,
        check_member: bool,
        maxlen: u64,
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        let (keys, args) = self.leading(channel, check_member, maxlen);
        for k in keys {
            inv.key(k);
        }
        for a in args {
            inv.arg(a);
        }
        inv
    }

    /// The guard's leading keys and values ([`GUARD_LUA`]).
    fn leading(
        &self,
        channel: &str,
        check_member: bool,
        maxlen: u64,
    ) -> (Vec<String>, Vec<String>) {
        let keys = vec![
            keys::channel(channel),
            keys::room_events(channel),
            keys::activity(channel),
            keys::members(channel),
        ];
        let args = vec![
            if check_member { "1" } else { "0" }.to_string(),
            self.username.clone(),
            if self.once_key.is_some() { "1" } else { "0" }.to_string(),
            self.once_secs.to_string(),
            maxlen.to_string(),
        ];
        (keys, args)
    }

    /// Adds the `client_id` key, last.
    pub(crate) fn finish(&self, inv: &mut redis::ScriptInvocation<'_>) {
        if let Some(k) = &self.once_key {
            inv.key(k);
        }
    }
}

/// What a guarded script did.
pub(crate) enum Guarded {
    /// Stored now, with this stream ID.
    Stored(String),
    /// Stored before under the same client_id, with this stream ID; nothing written now.
    Duplicate(String),
    /// Refused: the poster is not a member; nothing written.
    NotMember,
    /// Refused by the script's own check, with its reason (the message actions' scripts:
    /// `not_found`, `forbidden`, …); nothing written.
    Refused(String),
}

impl Guarded {
    /// Reads a guarded script's `{tag, value}` answer.
    fn from_reply((tag, value): (String, String)) -> Result<Self> {
        match tag.as_str() {
            "ok" => Ok(Guarded::Stored(value)),
            "duplicate" => Ok(Guarded::Duplicate(value)),
            "not_member" => Ok(Guarded::NotMember),
            _ => Ok(Guarded::Refused(tag)),
        }
    }
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
            username: username.to_string(),
            rate_key: keys::post_rate(username),
            once_key: client_id
                .filter(|c| !c.is_empty())
                .map(|c| keys::post_once(username, channel, c)),
            limit: i64::from(ws.rate_limit_messages),
            lease: super::budget::lease_size(ws.post_budget_lease, ws.rate_limit_messages),
            window_ms: ws.rate_limit_window_secs.saturating_mul(1000),
            once_secs: ws.post_dedupe_secs,
        }
    }

    /// Runs a guarded channel script on the shared connection after spending the user's budget
    /// (when the post is counted), and gives the budget back when the script stored nothing.
    /// A spent budget answers `TooManyPosts`, unless the `client_id` was stored before: a
    /// re-sent post is answered as a duplicate, never refused.
    pub(crate) async fn run_guarded(
        &self,
        guard: &PostGuard,
        inv: redis::ScriptInvocation<'_>,
    ) -> Result<Guarded> {
        let call = async move {
            let mut conn = self.shared();
            let reply: Vec<String> = inv.invoke_async(&mut conn).await.map_err(write_outcome)?;
            Ok(reply)
        };
        self.run_guarded_with(guard, call).await
    }

    /// [`Store::run_guarded`] with the script's call given as a future (not polled before the
    /// budget is spent), answering the script's reply or the error of its call.
    async fn run_guarded_with(
        &self,
        guard: &PostGuard,
        call: impl std::future::Future<Output = Result<Vec<String>>>,
    ) -> Result<Guarded> {
        let mut conn = self.shared();
        let counted = guard.limit >= 0;
        // Posts of the same user wait for one another's lease request, then spend from it.
        let asking = match counted && !self.leases.take(&guard.rate_key) {
            true => Some(self.leases.asking(&guard.rate_key).await),
            false => None,
        };
        if asking.is_some() && !self.leases.take(&guard.rate_key) {
            // A budget step that timed out stored nothing, but the client is told as for the
            // posting script (`unknown_outcome`): either way the right move is to re-send with
            // the same client_id, which stores the post at most once.
            let (granted, pttl): (i64, i64) = super::budget::LEASE_SCRIPT
                .key(&guard.rate_key)
                .arg(guard.window_ms)
                .arg(guard.lease)
                .arg(guard.limit)
                .invoke_async(&mut conn)
                .await
                .map_err(write_outcome)?;
            if granted <= 0 {
                if let Some(once) = &guard.once_key {
                    let first: Option<String> =
                        redis::cmd("GET").arg(once).query_async(&mut conn).await?;
                    if let Some(id) = first {
                        return Ok(Guarded::Duplicate(id));
                    }
                }
                let ms = u64::try_from(pttl).unwrap_or(1000);
                return Err(Error::TooManyPosts {
                    retry_after: ms.div_ceil(1000).max(1),
                });
            }
            let window_left = std::time::Duration::from_millis(u64::try_from(pttl).unwrap_or(0));
            self.leases.keep(
                &guard.rate_key,
                u32::try_from(granted).unwrap_or(1),
                window_left,
            );
        }
        drop(asking);
        let reply = call.await?;
        let mut reply = reply.into_iter();
        let (tag, value) = (
            reply.next().unwrap_or_default(),
            reply.next().unwrap_or_default(),
        );
        if let Some(why) = reply.next() {
            // The posting script stored the post but could not index it (the start-up backfill
            // indexes every message hash not yet indexed).
            log::warn!("indexing {value} in {}: {why}", guard.username);
        }
        let reply = (tag, value);
        // Muted, or too soon in slow mode: nothing stored, the budget given back.
        if let Some(refused) = super::moderation::refusal(&reply.0, &reply.1) {
            if counted {
                self.give_back_budget(guard).await;
            }
            return Err(refused);
        }
        let guarded = Guarded::from_reply(reply)?;
        if counted && !matches!(guarded, Guarded::Stored(_)) {
            self.give_back_budget(guard).await;
        }
        Ok(guarded)
    }

    /// Gives back one post of the budget in Redis, lease or not, so that no node keeps a share
    /// another could use (errors are logged: the window ends them anyway). Posts that store
    /// nothing are few (repeats, non-members, mutes): the round trip is theirs alone.
    async fn give_back_budget(&self, guard: &PostGuard) {
        let mut conn = self.shared();
        let r: redis::RedisResult<i64> = GIVE_BACK_SCRIPT
            .key(&guard.rate_key)
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = r {
            log::warn!("giving back a post of {}: {e}", guard.username);
        }
    }

    /// Adds a stored message's hash to the search index where RediSearch 1.x needs it by hand
    /// (`FT.ADDHASH` through [`ADDHASH_LUA`], in the index's own slot): for the messages the
    /// posting script does not index itself (voice messages, replies, edits, and every post on a
    /// cluster). A failure is
    /// logged: the start-up backfill indexes every message hash not yet indexed.
    pub(crate) async fn index_message(&self, channel: &str, id: &str) {
        if !self.search.is_some_and(|v| v.needs_addhash()) {
            return;
        }
        let key = keys::message(channel, id);
        let conn = self.shared();
        let add = |index: String| {
            let mut conn = conn.clone();
            let key = key.clone();
            async move {
                ADDHASH_SCRIPT
                    .key(index)
                    .arg(&key)
                    .arg("REPLACE")
                    .invoke_async::<redis::Value>(&mut conn)
                    .await
            }
        };
        let mut r = add(self.index_for(keys::messages_index(), &key)).await;
        // The hash is not on the master this node took for its slot's: the slots moved (a
        // reshard) since the node last read them. Read them again, and add it where it is.
        if let Err(e) = &r {
            if self.is_cluster() && e.to_string().contains("not load document") {
                if let Err(e) = self.refresh_topology().await {
                    log::warn!("indexing {key}: reading the slots: {e}");
                }
                r = add(self.index_for(keys::messages_index(), &key)).await;
            }
        }
        if let Err(e) = r {
            log::warn!("indexing {key}: {e}");
        }
    }

    /// The index the posting script adds a message of `channel` to (`FT.ADDHASH`, RediSearch
    /// 1.x), or `""` when Redis indexes by itself, has no search, or is a cluster. On a cluster
    /// the script would reach the index by a name that is not among its keys, so nothing routes
    /// it: while the slot of the index's name moves between masters (a reshard), the module
    /// would write the index's term keys on a master that no longer holds that slot, and the
    /// move then fails on keys that exist on both (`BUSYKEY`; seen in the reshard test). There
    /// [`Store::index_message`] indexes the post after the script, routed by the index's name.
    fn posting_index(&self, channel: &str) -> String {
        if !self.search.is_some_and(|v| v.needs_addhash()) || self.is_cluster() {
            return String::new();
        }
        self.index_for(keys::messages_index(), &keys::message(channel, ""))
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
            .append_guarded(channel, kind, text, uuid, &PostGuard::none(username), false)
            .await?
        {
            Guarded::Stored(id) | Guarded::Duplicate(id) => id,
            Guarded::NotMember | Guarded::Refused(_) => {
                return Err(Error::Internal("event script refused a member".into()))
            }
        };
        Ok(event_of(channel, kind, username, text, uuid, id))
    }

    /// Runs the posting script (after the budget): stores and publishes the event unless
    /// `check_member` finds `username` is not a member of `channel`, or the guard says it was
    /// stored before or the budget is spent.
    #[allow(clippy::too_many_arguments)]
    async fn append_guarded(
        &self,
        channel: &str,
        kind: &str,
        text: &str,
        uuid: &str,
        guard: &PostGuard,
        check_member: bool,
    ) -> Result<Guarded> {
        let (mut keys, mut args) =
            guard.leading(channel, check_member, self.settings.history.stream_maxlen);
        // Mutes and slow mode (KEYS[5] to KEYS[8], `store::moderation`).
        keys.extend(super::moderation::posting_keys(channel));
        args.extend([
            channel.to_string(),
            kind.to_string(),
            text.to_string(),
            uuid.to_string(),
            keys::message(channel, ""),
            self.posting_index(channel),
        ]);
        keys.extend(guard.once_key.iter().cloned());
        // After the socket's post before this one is on its way, before the budget.
        let turn = take_turn().await;
        let call = async move {
            let reply = match &self.batcher {
                Some(batcher) => {
                    let answer = batcher.submit(keys, args);
                    // Queued in order: the socket's next post may go (without a batcher the
                    // turn ends with the reply, when `turn` is dropped).
                    if let Some(t) = turn {
                        let _ = t.send(());
                    }
                    let reply = answer.await.map_err(write_outcome)?;
                    if reply.first().is_some_and(|t| t == "error") {
                        let why = reply.get(1).cloned().unwrap_or_default();
                        return Err(Error::Internal(format!("posting script: {why}")));
                    }
                    reply
                }
                None => {
                    let mut inv = POST_SCRIPT.prepare_invoke();
                    for k in &keys {
                        inv.key(k);
                    }
                    for a in &args {
                        inv.arg(a);
                    }
                    let mut conn = self.shared();
                    let reply: Vec<String> =
                        inv.invoke_async(&mut conn).await.map_err(write_outcome)?;
                    drop(turn);
                    reply
                }
            };
            // On a cluster the script does not index (see `posting_index`): the index's own
            // command, routed to the master of the index's slot, does.
            if kind == "message" && self.is_cluster() && reply.first().is_some_and(|t| t == "ok") {
                if let Some(id) = reply.get(1) {
                    self.index_message(channel, id).await;
                }
            }
            Ok(reply)
        };
        let guarded = self.run_guarded_with(guard, call).await?;
        if !matches!(guarded, Guarded::NotMember) {
            self.await_replicas(&keys::channel(channel)).await?;
        }
        Ok(guarded)
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
            .append_guarded(channel, "message", text, uuid, &guard, true)
            .await?
        {
            Guarded::NotMember => Err(self.not_member_error(channel).await?),
            Guarded::Refused(tag) => Err(Error::Internal(format!("post script answered {tag}"))),
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
}

/// A post as stored: the event, and whether it had been stored before under its client_id.
#[derive(Clone, Debug)]
pub struct Posted {
    pub event: ChatEvent,
    pub duplicate: bool,
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
        ..Default::default()
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
