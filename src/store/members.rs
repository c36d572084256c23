//! Private channels, group conversations, members and roles.
//!
//! Who may read a channel is decided by one key: the channel's members set
//! (`members:<c>`) for private channels and group conversations, the `channels` set of public
//! channels (less the banned) for public ones. The user's `memberships:<u>` set is only an index
//! for listing. A member change is therefore two writes in two hash slots, ordered so that a crash
//! between them never grants access: a grant writes the user's index first and the channel's
//! members set last; a removal takes the user out of the members set first (in the same script
//! that writes the `member_removed` event), then out of their index. A stale index entry grants
//! nothing: every list checks the members set.
//!
//! Every change of the members set, of a role or of the settings is one script on the channel's
//! slot (its members, joined times, roles, bans, settings and stream), which appends the event
//! (`member_added`, `member_removed`, `role_changed`, `channel_updated`) to the channel's stream
//! and publishes it to the channel's rooms, so a removal and the events after it reach every node
//! in stream order.
//!
//! Earlier history is visible to someone added later: the members chose to add them, and
//! clipping every read path (history, resume, search, recent, top posters, unread) at a join time
//! would be one more check in each, each a chance to disagree.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::AsyncCommands;
use serde::Serialize;
use serde_json::json;

use super::channels::{dm_pair, validate_channel_name, Kind};
use super::users::now_ms;
use super::{keys, Store};
use crate::error::{Error, Result};

/// A member's role in one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Moderator,
    Owner,
}

impl Role {
    /// `member`, `moderator` or `owner`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "member" => Some(Role::Member),
            "moderator" => Some(Role::Moderator),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Moderator => "moderator",
            Role::Owner => "owner",
        }
    }
}

/// Why a member left a channel, as `member_removed` and `channel_removed` carry it.
pub const LEFT: &str = "left";
pub const KICKED: &str = "kicked";
pub const BANNED: &str = "banned";
pub const CHANNEL_DELETED: &str = "channel_deleted";

/// What a user is in a channel, read in one round trip: all a permission check needs.
#[derive(Clone, Debug)]
pub struct Standing {
    /// `None`: no such channel.
    pub kind: Option<Kind>,
    pub member: bool,
    pub role: Role,
    /// An active ban: until (unix ms, 0 = no end).
    pub banned_until: Option<i64>,
    /// A global administrator (`auth.admins`).
    pub admin: bool,
}

impl Standing {
    /// Whether the user may read the channel: a public one unless banned, any other only as a
    /// member.
    pub fn readable(&self) -> bool {
        match self.kind {
            None => false,
            Some(Kind::Public) => self.banned_until.is_none(),
            Some(_) => self.member,
        }
    }

    /// The error a reader who may not read gets: a private channel or group conversation is
    /// `channel_not_found`, exactly as a channel that does not exist, so names do not leak.
    pub fn read_error(&self) -> Error {
        match (self.kind, self.banned_until) {
            (Some(Kind::Dm), _) => Error::Forbidden("that private chat is not yours".into()),
            (Some(Kind::Public), Some(until)) => Error::Banned { until },
            _ => Error::ChannelNotFound,
        }
    }

    /// The error a non-member's post, typing or reaction gets.
    pub fn member_error(&self) -> Error {
        match (self.kind, self.banned_until) {
            (Some(Kind::Dm), _) => Error::Forbidden("that private chat is not yours".into()),
            (Some(Kind::Public), Some(until)) => Error::Banned { until },
            (Some(Kind::Public), None) => {
                Error::Forbidden("join the channel before posting".into())
            }
            _ => Error::ChannelNotFound,
        }
    }

    /// How much the user may do here: admin 4, owner 3, moderator 2, member 1, outsider 0.
    pub fn rank(&self) -> u8 {
        if self.admin {
            4
        } else if !self.member {
            0
        } else {
            match self.role {
                Role::Owner => 3,
                Role::Moderator => 2,
                Role::Member => 1,
            }
        }
    }

    /// Moderators, owners and admins may remove, ban and mute members and delete any message.
    pub fn can_moderate(&self) -> bool {
        self.readable_or_admin() && self.rank() >= 2
    }

    fn readable_or_admin(&self) -> bool {
        self.admin || self.readable()
    }

    /// Whether the user may see the channel's settings to change them: a reader, or an
    /// administrator of a channel that exists.
    pub fn manageable(&self) -> bool {
        self.readable() || (self.admin && self.kind.is_some())
    }
}

/// One member as `GET /api/channels/{name}/members` lists them.
#[derive(Clone, Debug, Serialize)]
pub struct MemberInfo {
    pub username: String,
    pub role: Role,
    pub online: bool,
    /// Unix ms; 0 when unknown (members from before roles existed).
    pub joined_at: i64,
}

/// A channel's settings as members see them.
#[derive(Clone, Debug, Serialize)]
pub struct ChannelInfo {
    pub name: String,
    pub kind: Kind,
    pub private: bool,
    pub title: String,
    pub topic: String,
    pub owner: String,
    pub created_at: i64,
    pub slow_mode_secs: u64,
    pub members: u64,
    /// The caller's role (`member` for a reader who is not one of them).
    pub role: Role,
}

/// A ban as moderators list it.
#[derive(Clone, Debug, Serialize)]
pub struct Ban {
    pub username: String,
    /// Unix ms; 0 = no end.
    pub until: i64,
    pub reason: String,
}

/// The one script of a channel's slot that changes its members, roles and settings and writes
/// the matching event to its stream (see the module's notes).
const MEMBERSHIP_LUA: &str = r#"
-- KEYS (all in the channel's slot): 1 members, 2 joined, 3 roles, 4 bans, 5 info,
--   6 stream channel:<c>, 7 room subject
-- ARGV: 1 op, 2 channel, 3 username, 4 arg, 5 stream maxlen, 6 extra
local op, channel, user, arg = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local maxlen = tonumber(ARGV[5]) or 0
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function event(kind, who, text)
  local args = {KEYS[6]}
  if maxlen > 0 then
    args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = maxlen
  end
  for _, v in ipairs({'*', 'type', kind, 'username', who, 'message', text, 'uuid', ''}) do
    args[#args + 1] = v
  end
  local id = redis.call('XADD', unpack(args))
  local ms = tonumber(string.match(id, '^(%d+)'))
  redis.call('SPUBLISH', KEYS[7], cjson.encode({id = id, channel = channel, type = kind,
    username = who, text = text, created_at = ms, uuid = ''}))
  return id
end
if op == 'add' then
  -- arg: who added them ('' for themselves); ARGV[6]: a role to give, or ''
  local ban = redis.call('HGET', KEYS[4], user)
  if ban then
    local until_ms = tonumber(string.match(ban, '^(%d+)')) or 0
    if until_ms == 0 or until_ms > now_ms then return {'banned', tostring(until_ms)} end
    redis.call('HDEL', KEYS[4], user)
  end
  if redis.call('SADD', KEYS[1], user) == 0 then return {'exists', ''} end
  redis.call('HSET', KEYS[2], user, now_ms)
  if ARGV[6] ~= '' then redis.call('HSET', KEYS[3], user, ARGV[6]) end
  return {'ok', event('member_added', user, arg)}
elseif op == 'remove' then
  -- arg: the reason; ARGV[6]: a ban to record ('<until>|<reason>'), or ''
  if ARGV[6] ~= '' then redis.call('HSET', KEYS[4], user, ARGV[6]) end
  if redis.call('SREM', KEYS[1], user) == 0 then return {'absent', ''} end
  redis.call('HDEL', KEYS[2], user)
  redis.call('HDEL', KEYS[3], user)
  return {'ok', event('member_removed', user, arg)}
elseif op == 'role' then
  if redis.call('SISMEMBER', KEYS[1], user) == 0 then return {'absent', ''} end
  if arg == 'member' then redis.call('HDEL', KEYS[3], user)
  else redis.call('HSET', KEYS[3], user, arg) end
  return {'ok', event('role_changed', user, arg)}
elseif op == 'create' then
  -- arg: the kind; ARGV[6]: {"title", "topic"}; user: the owner
  if redis.call('HSETNX', KEYS[5], 'kind', arg) == 0 then return {'exists', ''} end
  local f = cjson.decode(ARGV[6])
  redis.call('HSET', KEYS[5], 'owner', user, 'created_at', now_ms,
    'title', f.title or '', 'topic', f.topic or '', 'slow_mode_secs', 0)
  redis.call('SADD', KEYS[1], user)
  redis.call('HSET', KEYS[2], user, now_ms)
  redis.call('HSET', KEYS[3], user, 'owner')
  return {'ok', event('member_added', user, user)}
elseif op == 'update' then
  -- ARGV[6]: the settings changed, a JSON object of strings; user: who changed them
  local f = cjson.decode(ARGV[6])
  for k, v in pairs(f) do
    if v == '' and k == 'kind' then redis.call('HDEL', KEYS[5], k)
    else redis.call('HSET', KEYS[5], k, v) end
  end
  return {'ok', event('channel_updated', user, ARGV[6])}
end
return {'unknown_op', op}
"#;

static MEMBERSHIP_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(MEMBERSHIP_LUA));

/// Deletes a channel's keys of its slot, moving the stream aside (the node then deletes its
/// messages' hashes), and tells its rooms on every node; answers the former members.
const DELETE_LUA: &str = r#"
-- KEYS: 1 members, 2 joined, 3 roles, 4 bans, 5 info, 6 mutes, 7 slow posts, 8 activity,
--   9 stream, 10 the stream's new name, 11 room subject
local members = redis.call('SMEMBERS', KEYS[1])
for i = 1, 8 do redis.call('DEL', KEYS[i]) end
if redis.call('EXISTS', KEYS[9]) == 1 then redis.call('RENAME', KEYS[9], KEYS[10]) end
redis.call('SPUBLISH', KEYS[11], cjson.encode({channel_removed = ARGV[1], reason = ARGV[2]}))
return members
"#;

static DELETE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(DELETE_LUA));

/// Members one page lists at most.
pub const MAX_MEMBERS_PAGE: usize = 200;
/// Other people a group conversation is created with: 2 to 9.
pub const GROUP_OTHERS: std::ops::RangeInclusive<usize> = 2..=9;

impl Store {
    /// Whether `username` is a global administrator (`auth.admins`).
    pub fn is_admin(&self, username: &str) -> bool {
        self.settings
            .auth
            .admins
            .iter()
            .any(|a| a.eq_ignore_ascii_case(username))
    }

    /// The kind of a channel, `None` when there is no such channel.
    pub async fn channel_kind(&self, channel: &str) -> Result<Option<Kind>> {
        if dm_pair(channel).is_some() {
            let mut conn = self.shared();
            let n: u64 = conn.scard(keys::members(channel)).await?;
            return Ok((n > 0).then_some(Kind::Dm));
        }
        let mut conn = self.shared();
        let (public, kind): (bool, Option<String>) = redis::pipe()
            .sismember(keys::CHANNELS, channel)
            .hget(keys::channel_info(channel), "kind")
            .query_async(&mut conn)
            .await?;
        Ok(kind_of(public, kind.as_deref()))
    }

    /// What `username` is in `channel`, in one round trip.
    pub async fn standing(&self, username: &str, channel: &str) -> Result<Standing> {
        let admin = self.is_admin(username);
        let mut conn = self.shared();
        if let Some((a, b)) = dm_pair(channel) {
            let mut member = false;
            if a == username || b == username {
                member = conn.sismember(keys::members(channel), username).await?;
            }
            return Ok(Standing {
                kind: Some(Kind::Dm),
                member,
                role: Role::Member,
                banned_until: None,
                admin,
            });
        }
        let (public, kind, member, role, ban): (
            bool,
            Option<String>,
            bool,
            Option<String>,
            Option<String>,
        ) = redis::pipe()
            .sismember(keys::CHANNELS, channel)
            .hget(keys::channel_info(channel), "kind")
            .sismember(keys::members(channel), username)
            .hget(keys::roles(channel), username)
            .hget(keys::bans(channel), username)
            .query_async(&mut conn)
            .await?;
        Ok(Standing {
            kind: kind_of(public, kind.as_deref()),
            member,
            role: role
                .as_deref()
                .and_then(Role::parse)
                .unwrap_or(Role::Member),
            banned_until: ban.as_deref().and_then(active_ban),
            admin,
        })
    }

    /// The hook for moderating actions elsewhere (deleting someone else's message): whether
    /// `username` is a moderator or owner of `channel`, or an administrator.
    pub async fn can_moderate(&self, channel: &str, username: &str) -> Result<bool> {
        Ok(self.standing(username, channel).await?.can_moderate())
    }

    /// A standing that may read the channel, or the error a reader who may not gets.
    pub async fn require_readable(&self, username: &str, channel: &str) -> Result<Standing> {
        let s = self.standing(username, channel).await?;
        if s.readable() {
            Ok(s)
        } else {
            Err(s.read_error())
        }
    }

    /// A standing of a member (who may post and type), or the right error.
    pub async fn require_member(&self, username: &str, channel: &str) -> Result<Standing> {
        let s = self.standing(username, channel).await?;
        if s.member && s.readable() {
            Ok(s)
        } else {
            Err(s.member_error())
        }
    }

    /// A standing that may moderate: a non-reader gets `channel_not_found` (or the DM's
    /// `forbidden`), a reader without the rank `forbidden`.
    async fn require_rank(&self, username: &str, channel: &str, rank: u8) -> Result<Standing> {
        let s = self.standing(username, channel).await?;
        if !s.manageable() {
            return Err(s.read_error());
        }
        if s.kind == Some(Kind::Dm) {
            return Err(Error::Forbidden(
                "a two-person chat has no moderators".into(),
            ));
        }
        if s.rank() < rank {
            return Err(Error::Forbidden(
                "only the channel's moderators and owner may do that".into(),
            ));
        }
        Ok(s)
    }

    /// Runs the membership script for one operation.
    async fn membership(
        &self,
        op: &str,
        channel: &str,
        username: &str,
        arg: &str,
        extra: &str,
    ) -> Result<(String, String)> {
        let mut inv = MEMBERSHIP_SCRIPT.key(keys::members(channel));
        inv.key(keys::joined(channel))
            .key(keys::roles(channel))
            .key(keys::bans(channel))
            .key(keys::channel_info(channel))
            .key(keys::channel(channel))
            .key(keys::room_events(channel))
            .arg(op)
            .arg(channel)
            .arg(username)
            .arg(arg)
            .arg(self.settings.history.stream_maxlen)
            .arg(extra);
        let mut conn = self.shared();
        Ok(inv.invoke_async(&mut conn).await?)
    }

    /// Tells one user's sockets on every node of a channel added or removed.
    async fn notify(&self, username: &str, kind: &str, payload: serde_json::Value) -> Result<()> {
        let notice = json!({"username": username, "kind": kind, "payload": payload});
        self.publish(keys::USER_EVENTS, &notice.to_string()).await
    }

    /// Creates a private channel (`kind` private) or group conversation (`kind` group) owned by
    /// `owner`. A name is unique across public and private channels.
    pub async fn create_private(
        &self,
        owner: &str,
        channel: &str,
        kind: Kind,
        title: &str,
        topic: &str,
    ) -> Result<()> {
        let kind_name = match kind {
            Kind::Private => {
                validate_channel_name(channel)?;
                "private"
            }
            Kind::Group => "group",
            _ => return Err(Error::Internal("create_private of a public kind".into())),
        };
        if self.channel_exists(channel).await? {
            return Err(Error::ChannelExists);
        }
        // The owner's index first, the grant (the script) last.
        let mut conn = self.shared();
        let _: i64 = conn.sadd(keys::memberships(owner), channel).await?;
        let fields = json!({"title": title, "topic": topic}).to_string();
        let (tag, _) = self
            .membership("create", channel, owner, kind_name, &fields)
            .await?;
        if tag == "exists" {
            // Someone else's channel of that name: the index entry made above goes again.
            if !conn.sismember(keys::members(channel), owner).await? {
                let _: i64 = conn.srem(keys::memberships(owner), channel).await?;
            }
            return Err(Error::ChannelExists);
        }
        let _: i64 = conn.sadd(keys::PRIVATE_CHANNELS, channel).await?;
        // A public channel of that name made at the same moment: the later of the two gives way.
        if self.channel_exists(channel).await? {
            let _: i64 = conn.srem(keys::PRIVATE_CHANNELS, channel).await?;
            self.delete_channel_data(channel, CHANNEL_DELETED).await?;
            return Err(Error::ChannelExists);
        }
        self.notify(
            owner,
            "channel_added",
            json!({"channel": channel, "kind": kind, "title": title}),
        )
        .await
    }

    /// Makes `owner` the owner of a public channel they just created.
    pub async fn set_public_owner(&self, channel: &str, owner: &str) -> Result<()> {
        let mut conn = self.shared();
        let _: () = redis::pipe()
            .hset(keys::roles(channel), owner, "owner")
            .hset_nx(keys::channel_info(channel), "owner", owner)
            .hset_nx(keys::channel_info(channel), "created_at", now_ms())
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Creates a group conversation of `me` and `others` (2 to 9 other existing users) and
    /// answers its name, `group:<random>`.
    pub async fn create_group(&self, me: &str, others: &[String], title: &str) -> Result<String> {
        let mut others: Vec<String> = others.iter().filter(|o| *o != me).cloned().collect();
        others.sort();
        others.dedup();
        if !GROUP_OTHERS.contains(&others.len()) {
            return Err(Error::body(
                "a group conversation has 2 to 9 people besides you",
            ));
        }
        check_title(title)?;
        let mut conn = self.shared();
        let mut pipe = redis::pipe();
        for o in &others {
            pipe.sismember(keys::USERNAMES, o);
        }
        let exist: Vec<bool> = pipe.query_async(&mut conn).await?;
        if exist.iter().any(|e| !e) {
            return Err(Error::UserNotFound);
        }
        let name = format!("group:{}", uuid::Uuid::new_v4().simple());
        self.create_private(me, &name, Kind::Group, title, "")
            .await?;
        for o in &others {
            self.add_member(&name, o, me).await?;
        }
        Ok(name)
    }

    /// Adds `username` to a channel (`by` added them; empty when they joined themselves).
    /// `Banned` while a ban holds; `false` when they were a member already.
    pub async fn add_member(&self, channel: &str, username: &str, by: &str) -> Result<bool> {
        // The user's index first, the grant (the script) last.
        let mut conn = self.shared();
        let indexed: i64 = conn.sadd(keys::memberships(username), channel).await?;
        let (tag, value) = self.membership("add", channel, username, by, "").await?;
        match tag.as_str() {
            "ok" => {}
            "exists" => return Ok(false),
            "banned" => {
                if indexed == 1 {
                    let _: i64 = conn.srem(keys::memberships(username), channel).await?;
                }
                return Err(Error::Banned {
                    until: value.parse().unwrap_or(0),
                });
            }
            other => return Err(Error::Internal(format!("membership script: {other}"))),
        }
        let kind = self.channel_kind(channel).await?.unwrap_or(Kind::Private);
        let title: Option<String> = conn.hget(keys::channel_info(channel), "title").await?;
        self.notify(
            username,
            "channel_added",
            json!({"channel": channel, "kind": kind, "title": title.unwrap_or_default()}),
        )
        .await?;
        Ok(true)
    }

    /// Takes `username` out of a channel for `reason`, recording a ban first when one is given
    /// (`<until>|<reason>`). `false` when they were not a member.
    pub async fn remove_member(
        &self,
        channel: &str,
        username: &str,
        reason: &str,
        ban: Option<&str>,
    ) -> Result<bool> {
        // The revocation (the script) first, the user's index after.
        let (tag, _) = self
            .membership("remove", channel, username, reason, ban.unwrap_or(""))
            .await?;
        let mut conn = self.shared();
        let _: i64 = conn.srem(keys::memberships(username), channel).await?;
        if tag != "ok" {
            return Ok(false);
        }
        self.notify(
            username,
            "channel_removed",
            json!({"channel": channel, "reason": reason}),
        )
        .await?;
        Ok(true)
    }

    /// `actor` adds `username` to a channel: owners and moderators of public and private
    /// channels, any member of a group conversation.
    pub async fn invite(&self, actor: &str, channel: &str, username: &str) -> Result<bool> {
        let s = self.standing(actor, channel).await?;
        let needed = if s.kind == Some(Kind::Group) { 1 } else { 2 };
        self.require_rank(actor, channel, needed).await?;
        let mut conn = self.shared();
        if !conn.sismember(keys::USERNAMES, username).await? {
            return Err(Error::UserNotFound);
        }
        self.add_member(channel, username, actor).await
    }

    /// `actor` removes `username`: themselves (leaving), or someone they outrank as a
    /// moderator, owner or administrator (kicking).
    pub async fn kick(&self, actor: &str, channel: &str, username: &str) -> Result<()> {
        if actor == username {
            let s = self.require_member(actor, channel).await?;
            if s.kind == Some(Kind::Dm) {
                return Err(Error::Forbidden("private chats cannot be left".into()));
            }
            self.remove_member(channel, username, LEFT, None).await?;
            return Ok(());
        }
        let s = self.require_rank(actor, channel, 2).await?;
        let target = self.standing(username, channel).await?;
        if !target.member {
            return Err(Error::NotFound("not a member of that channel".into()));
        }
        if target.rank() >= s.rank() {
            return Err(Error::Forbidden(
                "a member of the same or a higher role cannot be removed".into(),
            ));
        }
        self.remove_member(channel, username, KICKED, None).await?;
        Ok(())
    }

    /// The owner (or an administrator) sets a member's role: `moderator` or `member`.
    pub async fn set_role(
        &self,
        actor: &str,
        channel: &str,
        username: &str,
        role: Role,
    ) -> Result<()> {
        self.require_rank(actor, channel, 3).await?;
        if role == Role::Owner {
            return Err(Error::body(
                "a channel has one owner; roles are moderator or member",
            ));
        }
        let target = self.standing(username, channel).await?;
        if !target.member {
            return Err(Error::NotFound("not a member of that channel".into()));
        }
        if target.role == Role::Owner {
            return Err(Error::Forbidden("the owner's role cannot change".into()));
        }
        self.membership("role", channel, username, role.as_str(), "")
            .await?;
        Ok(())
    }

    /// `actor` bans `username` until `until` (unix ms, 0 = no end): removed now, and cannot
    /// join or be added until it ends or a moderator lifts it.
    pub async fn ban(
        &self,
        actor: &str,
        channel: &str,
        username: &str,
        until: i64,
        reason: &str,
    ) -> Result<()> {
        let s = self.require_rank(actor, channel, 2).await?;
        check_reason(reason)?;
        let mut conn = self.shared();
        if !conn.sismember(keys::USERNAMES, username).await? {
            return Err(Error::UserNotFound);
        }
        let target = self.standing(username, channel).await?;
        if actor == username || (target.member && target.rank() >= s.rank()) || target.admin {
            return Err(Error::Forbidden(
                "a member of the same or a higher role cannot be banned".into(),
            ));
        }
        let ban = format!("{until}|{reason}");
        self.remove_member(channel, username, BANNED, Some(&ban))
            .await?;
        Ok(())
    }

    /// Lifts a ban.
    pub async fn unban(&self, actor: &str, channel: &str, username: &str) -> Result<bool> {
        self.require_rank(actor, channel, 2).await?;
        let mut conn = self.shared();
        let n: i64 = conn.hdel(keys::bans(channel), username).await?;
        Ok(n == 1)
    }

    /// The channel's bans still in force (moderators only).
    pub async fn bans(&self, actor: &str, channel: &str) -> Result<Vec<Ban>> {
        self.require_rank(actor, channel, 2).await?;
        let mut conn = self.shared();
        let all: HashMap<String, String> = conn.hgetall(keys::bans(channel)).await?;
        let mut out: Vec<Ban> = all
            .into_iter()
            .filter(|(_, v)| active_ban(v).is_some())
            .map(|(username, v)| {
                let (until, reason) = v.split_once('|').unwrap_or((&v, ""));
                Ban {
                    username,
                    until: until.parse().unwrap_or(0),
                    reason: reason.to_string(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(out)
    }

    /// One page of a channel's members, by name after `after`, for someone who may read it.
    pub async fn member_page(
        &self,
        reader: &str,
        channel: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<MemberInfo>, Option<String>)> {
        self.require_readable(reader, channel).await?;
        let limit = limit.clamp(1, MAX_MEMBERS_PAGE);
        let mut names = self.members(channel).await?;
        if let Some(a) = after {
            names.retain(|n| n.as_str() > a);
        }
        let more = names.len() > limit;
        names.truncate(limit);
        if names.is_empty() {
            return Ok((Vec::new(), None));
        }
        let mut conn = self.shared();
        let (roles, joined): (Vec<Option<String>>, Vec<Option<i64>>) = redis::pipe()
            .cmd("HMGET")
            .arg(keys::roles(channel))
            .arg(&names)
            .cmd("HMGET")
            .arg(keys::joined(channel))
            .arg(&names)
            .query_async(&mut conn)
            .await?;
        let online = self.online_expiries(&names).await?;
        let now = now_ms() as f64;
        let next = more.then(|| names.last().cloned()).flatten();
        let page = names
            .into_iter()
            .enumerate()
            .map(|(i, username)| MemberInfo {
                role: roles[i]
                    .as_deref()
                    .and_then(Role::parse)
                    .unwrap_or(Role::Member),
                online: online[i].is_some_and(|exp| exp >= now),
                joined_at: joined[i].unwrap_or(0),
                username,
            })
            .collect();
        Ok((page, next))
    }

    /// A channel's settings, for someone who may read it.
    pub async fn channel_info(&self, reader: &str, channel: &str) -> Result<ChannelInfo> {
        let s = self.require_readable(reader, channel).await?;
        let kind = s.kind.unwrap_or(Kind::Public);
        let mut conn = self.shared();
        let (info, members): (HashMap<String, String>, u64) = redis::pipe()
            .hgetall(keys::channel_info(channel))
            .scard(keys::members(channel))
            .query_async(&mut conn)
            .await?;
        let get = |k: &str| info.get(k).cloned().unwrap_or_default();
        Ok(ChannelInfo {
            name: channel.to_string(),
            private: kind != Kind::Public,
            kind,
            title: get("title"),
            topic: get("topic"),
            owner: get("owner"),
            created_at: get("created_at").parse().unwrap_or(0),
            slow_mode_secs: get("slow_mode_secs").parse().unwrap_or(0),
            members,
            role: if s.member { s.role } else { Role::Member },
        })
    }

    /// Changes a channel's settings; `changes` maps setting → new value (already checked by
    /// the caller). Writes one `channel_updated` event.
    pub async fn update_channel(
        &self,
        actor: &str,
        channel: &str,
        changes: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        let fields = serde_json::Value::Object(changes.clone()).to_string();
        self.membership("update", channel, actor, "", &fields)
            .await?;
        Ok(())
    }

    /// Makes a private channel public (`to_public`) or a public one private, in the order that
    /// never opens a channel before its settings say so: private → public writes the setting,
    /// then adds it to the public list; public → private takes it off the list first.
    pub async fn set_visibility(&self, actor: &str, channel: &str, to_public: bool) -> Result<()> {
        let mut conn = self.shared();
        let mut changes = serde_json::Map::new();
        if to_public {
            changes.insert("kind".into(), json!(""));
            self.update_channel(actor, channel, &changes).await?;
            let _: () = redis::pipe()
                .sadd(keys::CHANNELS, channel)
                .srem(keys::PRIVATE_CHANNELS, channel)
                .query_async(&mut conn)
                .await?;
        } else {
            let _: () = redis::pipe()
                .srem(keys::CHANNELS, channel)
                .sadd(keys::PRIVATE_CHANNELS, channel)
                .query_async(&mut conn)
                .await?;
            changes.insert("kind".into(), json!("private"));
            self.update_channel(actor, channel, &changes).await?;
        }
        Ok(())
    }

    /// Deletes a channel (its owner or an administrator).
    pub async fn delete_channel(&self, actor: &str, channel: &str) -> Result<()> {
        let s = self.require_rank(actor, channel, 3).await?;
        if s.kind == Some(Kind::Dm) {
            return Err(Error::Forbidden("private chats cannot be deleted".into()));
        }
        if channel == super::channels::GENERAL {
            return Err(Error::Forbidden(
                "general is everyone's channel (seed 004's public room) and stays".into(),
            ));
        }
        self.delete_channel_data(channel, CHANNEL_DELETED).await
    }

    /// Removes everything of a channel: first nobody may read it (out of the public list, its
    /// members and settings gone, its rooms told), then its messages' hashes and search entries,
    /// then the members' indexes, each member told.
    async fn delete_channel_data(&self, channel: &str, reason: &str) -> Result<()> {
        let mut conn = self.shared();
        let _: () = redis::pipe()
            .srem(keys::CHANNELS, channel)
            .srem(keys::PRIVATE_CHANNELS, channel)
            .query_async(&mut conn)
            .await?;
        let aside = keys::deleted_stream(channel, now_ms());
        let members: Vec<String> = DELETE_SCRIPT
            .key(keys::members(channel))
            .key(keys::joined(channel))
            .key(keys::roles(channel))
            .key(keys::bans(channel))
            .key(keys::channel_info(channel))
            .key(keys::mutes(channel))
            .key(keys::slow_posts(channel))
            .key(keys::activity(channel))
            .key(keys::channel(channel))
            .key(&aside)
            .key(keys::room_events(channel))
            .arg(channel)
            .arg(reason)
            .invoke_async(&mut conn)
            .await?;
        self.delete_messages_of(channel, &aside).await?;
        for m in &members {
            let _: i64 = conn.srem(keys::memberships(m), channel).await?;
            self.notify(
                m,
                "channel_removed",
                json!({"channel": channel, "reason": reason}),
            )
            .await?;
        }
        Ok(())
    }

    /// Deletes the message hashes (and RediSearch 1.x entries) of a stream moved aside, then the
    /// stream, 500 entries at a time.
    async fn delete_messages_of(&self, channel: &str, stream: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let addhash = self.search.is_some_and(|v| v.needs_addhash());
        let mut start = "-".to_string();
        loop {
            let ids: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
                .arg(stream)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await?;
            let Some((last, _)) = ids.last() else { break };
            start = format!("({last}");
            // A hash of the older layout (`message:<id>`) is this channel's only if it says so.
            let mut owners = redis::pipe();
            for (id, _) in &ids {
                owners.hget(keys::legacy::message(id), "channel");
            }
            let owners: Vec<Option<String>> = owners.query_async(&mut conn).await?;
            let mut pipe = redis::pipe();
            for ((id, _), owner) in ids.iter().zip(owners) {
                let mut doomed = vec![keys::message(channel, id)];
                if owner.as_deref() == Some(channel) {
                    doomed.push(keys::legacy::message(id));
                }
                for key in doomed {
                    if addhash {
                        pipe.cmd("FT.DEL")
                            .arg(keys::messages_index())
                            .arg(&key)
                            .ignore();
                    }
                    pipe.del(&key).ignore();
                }
            }
            // A message the index never held answers an error; that is fine here.
            let _: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
            if ids.len() < 500 {
                break;
            }
        }
        let _: i64 = conn.del(stream).await?;
        Ok(())
    }

    /// A channel's title (empty when it has none).
    pub async fn channel_title(&self, channel: &str) -> Result<String> {
        let mut conn = self.shared();
        let t: Option<String> = conn.hget(keys::channel_info(channel), "title").await?;
        Ok(t.unwrap_or_default())
    }

    /// Whether the user's channel list should show a channel of their index: DMs they are one
    /// of, public channels, and private ones whose members set holds them.
    pub async fn listed(
        &self,
        username: &str,
        channels: Vec<String>,
    ) -> Result<Vec<(String, Kind)>> {
        let mut out = Vec::with_capacity(channels.len());
        for c in channels {
            let s = self.standing(username, &c).await?;
            if let Some(kind) = s.kind.filter(|_| s.member && s.readable()) {
                out.push((c, kind));
            }
        }
        Ok(out)
    }
}

/// A channel's kind from whether it is in the public list and its `kind` setting.
fn kind_of(public: bool, kind: Option<&str>) -> Option<Kind> {
    if public {
        return Some(Kind::Public);
    }
    match kind {
        Some("private") => Some(Kind::Private),
        Some("group") => Some(Kind::Group),
        _ => None,
    }
}

/// The end of a ban still in force (`<until>|<reason>`, until 0 = no end), `None` once over.
fn active_ban(value: &str) -> Option<i64> {
    let until: i64 = value.split('|').next()?.parse().ok()?;
    (until == 0 || until > now_ms()).then_some(until)
}

/// A title or topic: at most 200 characters, no control characters.
pub fn check_title(text: &str) -> Result<()> {
    if text.chars().count() > 200 || text.chars().any(char::is_control) {
        return Err(Error::body(
            "titles and topics are at most 200 characters, without control characters",
        ));
    }
    Ok(())
}

/// A ban's reason: at most 200 characters.
fn check_reason(text: &str) -> Result<()> {
    if text.chars().count() > 200 {
        return Err(Error::body("a reason is at most 200 characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_bans() {
        assert_eq!(kind_of(true, Some("private")), Some(Kind::Public));
        assert_eq!(kind_of(false, Some("group")), Some(Kind::Group));
        assert_eq!(kind_of(false, None), None);
        assert_eq!(active_ban("0|spam"), Some(0));
        assert_eq!(active_ban("1|old"), None);
        let later = now_ms() + 60_000;
        assert_eq!(active_ban(&format!("{later}|x")), Some(later));
    }

    #[test]
    fn ranks_order_roles() {
        let s = |member, role, admin| Standing {
            kind: Some(Kind::Private),
            member,
            role,
            banned_until: None,
            admin,
        };
        assert!(s(true, Role::Moderator, false).can_moderate());
        assert!(!s(true, Role::Member, false).can_moderate());
        assert!(!s(false, Role::Owner, false).can_moderate());
        assert!(s(false, Role::Member, true).can_moderate());
        assert!(s(true, Role::Owner, false).rank() > s(true, Role::Moderator, false).rank());
        assert!(matches!(
            s(false, Role::Member, false).read_error(),
            Error::ChannelNotFound
        ));
    }
}
