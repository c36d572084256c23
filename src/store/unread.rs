//! Read positions and unread counts: the last-seen stream ID of each channel, kept as a field of
//! `user:<u>`, and the caller's channel list with each channel's unread count and last message.
//!
//! A read position must never move backwards (a late or stale `read` from another tab is ignored),
//! and a user's own messages and join/leave events never count as unread.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::AsyncCommands;
use serde::Serialize;

use super::channels::{dm_pair, Kind};
use super::ids::{after_bound, canonical_id, id_after};
use super::{keys, Store};
use crate::error::Result;
use crate::protocol::ChatEvent;

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
    /// For a group conversation or private channel: its title, when it has one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title: String,
}

/// Largest unread count reported exactly; above it the count is capped.
pub const UNREAD_CAP: usize = 1000;

/// Counts the entries of a channel stream (KEYS[1]) from ARGV[1] (`-` or `(<id>`; empty: none
/// can follow, 0), at most ARGV[3], that are messages by someone other than ARGV[2]. One key: the
/// channel's slot.
const UNREAD_LUA: &str = r#"
if ARGV[1] == '' then return 0 end
local n = 0
for _, e in ipairs(redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[3])) do
  local f, kind, user = e[2], nil, nil
  for i = 1, #f, 2 do
    if f[i] == 'type' then kind = f[i + 1] elseif f[i] == 'username' then user = f[i + 1] end
  end
  if (kind == nil or kind == 'message') and user ~= ARGV[2] then n = n + 1 end
end
return n
"#;

static UNREAD_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(UNREAD_LUA));

/// Where counting starts: after the last-seen ID, or from the beginning when there is none or it
/// is no stream ID (an older database's); empty when no ID can follow it (the largest there is),
/// which the script counts as 0. Only a canonical `(<ms>-<seq>` reaches Redis, which refuses an
/// exclusive range past the end.
fn unread_start(seen: Option<&str>) -> String {
    match seen.map(after_bound) {
        Some(Ok(Some(start))) => start,
        Some(Ok(None)) => String::new(),
        None | Some(Err(_)) => "-".into(),
    }
}

impl Store {
    /// Records that the user has read up to `last_id` (never moves backwards).
    pub async fn mark_read(&self, username: &str, channel: &str, last_id: &str) -> Result<()> {
        // Kept as Redis writes IDs, whatever form of it the client sent.
        let last_id = &canonical_id(last_id)?;
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

    /// Unread count of a channel for a user: entries after their last-seen ID (capped). Counted
    /// in Redis: the entries are not sent to the node, only the count.
    pub async fn unread(&self, username: &str, channel: &str) -> Result<u64> {
        let mut conn = self.shared();
        let seen: Option<String> = conn
            .hget(keys::user(username), keys::last_seen_field(channel))
            .await?;
        let n: u64 = UNREAD_SCRIPT
            .key(keys::channel(channel))
            .arg(unread_start(seen.as_deref()))
            .arg(username)
            .arg(UNREAD_CAP)
            .invoke_async(&mut conn)
            .await?;
        Ok(n)
    }

    /// The caller's channels with unread counts and last message: every channel's count and
    /// newest entry in one pipelined round trip (the counting in Redis); the membership check of
    /// each channel (`listed`) is its own.
    pub async fn channel_summaries(&self, username: &str) -> Result<Vec<ChannelSummary>> {
        // The index is checked against each channel's members: it grants nothing by itself.
        let channels = self.memberships(username).await?;
        let listed = self.listed(username, channels).await?;
        if listed.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let profile: HashMap<String, String> = conn.hgetall(keys::user(username)).await?;
        let mut pipe = redis::pipe();
        pipe.load_script(&UNREAD_SCRIPT).ignore();
        let mut invocations = Vec::with_capacity(listed.len());
        for (name, _) in &listed {
            let seen = profile
                .get(&keys::last_seen_field(name))
                .map(String::as_str);
            let mut inv = UNREAD_SCRIPT.key(keys::channel(name));
            inv.arg(unread_start(seen)).arg(username).arg(UNREAD_CAP);
            invocations.push(inv);
        }
        for ((name, _), inv) in listed.iter().zip(&invocations) {
            pipe.cmd("XREVRANGE")
                .arg(keys::channel(name))
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .invoke_script(inv);
        }
        let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        drop(conn);
        let mut replies = replies.into_iter();
        let mut out = Vec::with_capacity(listed.len());
        for (name, kind) in listed {
            let (Some(last), Some(unread)) = (replies.next(), replies.next()) else {
                return Err(crate::error::Error::Internal(
                    "channel list: fewer replies than asked".into(),
                ));
            };
            let last = self.events_from_entries(&name, last).await?.pop();
            let unread: u64 = redis::FromRedisValue::from_redis_value(unread)
                .map_err(|e| crate::error::Error::Internal(format!("unread count: {e}")))?;
            let peer = dm_pair(&name).map(|(a, b)| if a == username { b } else { a }.to_string());
            let title = match kind {
                Kind::Private | Kind::Group => self.channel_title(&name).await?,
                _ => String::new(),
            };
            out.push(ChannelSummary {
                title,
                kind,
                name,
                unread,
                last_message: last,
                peer,
            });
        }
        Ok(out)
    }
}
