//! Mutes and slow mode, and the account switch of administrators.
//!
//! A mute (`mutes:{channel:<c>}`) and slow mode (the channel's `slow_mode_secs` setting, each
//! user's last post in `slowpost:{channel:<c>}`) are checked inside the posting script, in the
//! channel's slot, after the guard's membership and repeated-`client_id` checks (a re-sent post
//! answers with its first ID, not a wait) ([`MODERATION_LUA`]). A post refused by either writes
//! nothing, and its place in the user's budget is given back.

use std::collections::HashMap;

use redis::AsyncCommands;
use serde::Serialize;
use serde_json::json;

use super::users::now_ms;
use super::{keys, Store};
use crate::error::{Error, Result};

/// Runs in the posting script after the guard (membership, a repeated `client_id`), for posts
/// only (ARGV[1] `1`; ARGV[2] the poster): a muted member's post is refused with
/// `{'muted', until}` (an expired mute is dropped); in slow mode (KEYS[7]'s `slow_mode_secs`) a
/// member who is not a moderator or owner (KEYS[8]) posts once per interval, too soon is
/// `{'slow', ms to wait}`. KEYS[5] is the channel's mutes, KEYS[6] each member's last post.
pub(crate) const MODERATION_LUA: &str = r#"
if ARGV[1] == '1' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local m = redis.call('HGET', KEYS[5], ARGV[2])
  if m then
    local until_ms = tonumber(m) or 0
    if until_ms == 0 or until_ms > now then return {'muted', tostring(until_ms)} end
    redis.call('HDEL', KEYS[5], ARGV[2])
  end
  local secs = tonumber(redis.call('HGET', KEYS[7], 'slow_mode_secs') or '0') or 0
  if secs > 0 and not redis.call('HGET', KEYS[8], ARGV[2]) then
    local last = tonumber(redis.call('HGET', KEYS[6], ARGV[2]) or '0') or 0
    if now - last < secs * 1000 then return {'slow', tostring(secs * 1000 - (now - last))} end
    redis.call('HSET', KEYS[6], ARGV[2], now)
  end
end
"#;

/// The channel keys [`MODERATION_LUA`] reads, in the order the posting script declares them
/// after the guard's four (KEYS[5] to KEYS[8]).
pub(crate) fn posting_keys(channel: &str) -> [String; 4] {
    [
        keys::mutes(channel),
        keys::slow_posts(channel),
        keys::channel_info(channel),
        keys::roles(channel),
    ]
}

/// The error of a posting script's `muted` or `slow` answer, `None` for any other.
pub(crate) fn refusal(tag: &str, value: &str) -> Option<Error> {
    match tag {
        "muted" => Some(Error::Muted {
            until: value.parse().unwrap_or(0),
        }),
        "slow" => {
            let ms: u64 = value.parse().unwrap_or(1000);
            Some(Error::SlowMode {
                retry_after: ms.div_ceil(1000).max(1),
            })
        }
        _ => None,
    }
}

/// Slow mode's longest interval: an hour.
pub const MAX_SLOW_MODE_SECS: u64 = 3600;

/// What the admin overview shows.
#[derive(Debug, Serialize)]
pub struct Overview {
    pub users: u64,
    pub disabled_users: u64,
    pub public_channels: u64,
    pub private_channels: u64,
    /// Node id → open sockets, as each node last wrote it (every presence tick).
    pub nodes: Vec<NodeSockets>,
    pub redis_used_memory_bytes: u64,
    pub redis_used_memory_human: String,
}

/// One node's sockets.
#[derive(Debug, Serialize)]
pub struct NodeSockets {
    pub node: String,
    pub sockets: u64,
    /// Unix ms of the node's last report.
    pub reported_at: i64,
}

impl Store {
    /// `actor` mutes `username` in a channel until `until` (unix ms, 0 = no end).
    pub async fn mute(&self, actor: &str, channel: &str, username: &str, until: i64) -> Result<()> {
        let s = self.require_moderator(actor, channel).await?;
        let target = self.standing(username, channel).await?;
        if !target.member {
            return Err(Error::NotFound("not a member of that channel".into()));
        }
        if target.rank() >= s.rank() {
            return Err(Error::Forbidden(
                "a member of the same or a higher role cannot be muted".into(),
            ));
        }
        let mut conn = self.shared();
        let _: i64 = conn.hset(keys::mutes(channel), username, until).await?;
        Ok(())
    }

    /// Lifts a mute.
    pub async fn unmute(&self, actor: &str, channel: &str, username: &str) -> Result<bool> {
        self.require_moderator(actor, channel).await?;
        let mut conn = self.shared();
        let n: i64 = conn.hdel(keys::mutes(channel), username).await?;
        Ok(n == 1)
    }

    /// Until when `username` is muted in `channel` (unix ms, 0 = no end), `None` if not.
    pub async fn muted_until(&self, channel: &str, username: &str) -> Result<Option<i64>> {
        let mut conn = self.shared();
        let v: Option<i64> = conn.hget(keys::mutes(channel), username).await?;
        Ok(v.filter(|u| *u == 0 || *u > now_ms()))
    }

    /// A standing of a moderator, owner or admin of a (non-DM) channel, or the right error.
    pub async fn require_moderator(
        &self,
        actor: &str,
        channel: &str,
    ) -> Result<super::members::Standing> {
        let s = self.standing(actor, channel).await?;
        if !s.manageable() {
            return Err(s.read_error());
        }
        if !s.can_moderate() || s.kind == Some(super::channels::Kind::Dm) {
            return Err(Error::Forbidden(
                "only the channel's moderators and owner may do that".into(),
            ));
        }
        Ok(s)
    }

    /// Disables (`true`) or enables an account. Disabling ends every session of the user and
    /// closes their sockets on every node with 1008; sign-in is refused until it is enabled.
    pub async fn set_disabled(&self, username: &str, disabled: bool) -> Result<()> {
        let mut conn = self.shared();
        if !conn.sismember(keys::USERNAMES, username).await? {
            return Err(Error::UserNotFound);
        }
        if !disabled {
            let _: () = redis::pipe()
                .hdel(keys::user(username), keys::USER_DISABLED_FIELD)
                .srem(keys::DISABLED_USERS, username)
                .query_async(&mut conn)
                .await?;
            return Ok(());
        }
        // The flag first: a sign-in racing with this finds it (`authenticate` reads it on every
        // use), then every session ends and every socket closes.
        let _: () = redis::pipe()
            .hset(keys::user(username), keys::USER_DISABLED_FIELD, "1")
            .sadd(keys::DISABLED_USERS, username)
            .query_async(&mut conn)
            .await?;
        self.revoke_other_sessions(username, None).await?;
        let notice = json!({"username": username, "kind": "revoked", "reason": "account disabled"});
        self.publish(keys::USER_EVENTS, &notice.to_string()).await
    }

    /// Whether an administrator disabled the account.
    pub async fn is_disabled(&self, username: &str) -> Result<bool> {
        let mut conn = self.shared();
        Ok(conn
            .hexists(keys::user(username), keys::USER_DISABLED_FIELD)
            .await?)
    }

    /// Records this node's open sockets for the admin overview.
    pub async fn report_sockets(&self, node: &str, sockets: u64) -> Result<()> {
        let mut conn = self.shared();
        let _: i64 = conn
            .hset(keys::NODE_SOCKETS, node, format!("{sockets} {}", now_ms()))
            .await?;
        Ok(())
    }

    /// Users, channels, sockets per node (those that reported within `fresh_ms`) and Redis
    /// memory.
    pub async fn overview(&self, fresh_ms: i64) -> Result<Overview> {
        let mut conn = self.conn().await?;
        let (users, disabled, public, private, nodes): (
            u64,
            u64,
            u64,
            u64,
            HashMap<String, String>,
        ) = redis::pipe()
            .scard(keys::USERNAMES)
            .scard(keys::DISABLED_USERS)
            .scard(keys::CHANNELS)
            .scard(keys::PRIVATE_CHANNELS)
            .hgetall(keys::NODE_SOCKETS)
            .query_async(&mut conn)
            .await?;
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let now = now_ms();
        let mut nodes: Vec<NodeSockets> = nodes
            .into_iter()
            .filter_map(|(node, v)| {
                let (sockets, at) = v.split_once(' ')?;
                let reported_at: i64 = at.parse().ok()?;
                (now - reported_at <= fresh_ms).then(|| NodeSockets {
                    node,
                    sockets: sockets.parse().unwrap_or(0),
                    reported_at,
                })
            })
            .collect();
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(Overview {
            users,
            disabled_users: disabled,
            public_channels: public,
            private_channels: private,
            nodes,
            redis_used_memory_bytes: field("used_memory").parse().unwrap_or(0),
            redis_used_memory_human: field("used_memory_human"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_become_errors() {
        assert!(matches!(
            refusal("muted", "0"),
            Some(Error::Muted { until: 0 })
        ));
        assert!(matches!(
            refusal("slow", "1500"),
            Some(Error::SlowMode { retry_after: 2 })
        ));
        assert!(refusal("ok", "1-0").is_none());
    }
}
