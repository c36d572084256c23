//! Channels and who is in them: the `channels` set of public channels (seed 003), the
//! `members:{channel:<c>}` and `memberships:{user:<u>}` sets, and private chats (DMs) named
//! `dm:<a>:<b>`. A channel's members are in its slot, a user's channels in theirs: every change
//! is two single-slot writes, ordered so that a failure between them never grants access.
//!
//! Who may read a channel and who may post to it is decided here. This module never writes a
//! channel's stream itself: a join or a leave is recorded through [`super::posting`], messages are
//! read back through [`super::history`].

use redis::AsyncCommands;
use serde::Serialize;

use super::{keys, Store};
use crate::error::{Error, Result};

/// The public channel seed 004's clients join with an empty recipient.
pub const GENERAL: &str = "general";

/// Public channel or private chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Public,
    /// A private channel: readable by its members only.
    Private,
    Dm,
    /// A group conversation (`group:<id>`): a private chat of up to ten people.
    Group,
}

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

impl Store {
    /// Whether a public channel exists.
    pub async fn channel_exists(&self, name: &str) -> Result<bool> {
        let mut conn = self.shared();
        Ok(conn.sismember(keys::CHANNELS, name).await?)
    }

    /// Every public channel, sorted.
    pub async fn public_channels(&self) -> Result<Vec<String>> {
        let mut conn = self.conn().await?;
        let mut v: Vec<String> = conn.smembers(keys::CHANNELS).await?;
        v.sort();
        Ok(v)
    }

    /// Creates a public channel; `ChannelExists` when taken (by a private channel too).
    pub async fn create_channel(&self, name: &str) -> Result<()> {
        validate_channel_name(name)?;
        let mut conn = self.conn().await?;
        let added: i64 = conn.sadd(keys::CHANNELS, name).await?;
        if added == 0 {
            return Err(Error::ChannelExists);
        }
        // A private channel of that name: this one gives way.
        let private: bool = conn.hexists(keys::channel_info(name), "kind").await?;
        if private {
            let _: i64 = conn.srem(keys::CHANNELS, name).await?;
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

    /// Whether a user may read a channel: a public channel they are not banned from, or a DM,
    /// group conversation or private channel they are a member of ([`super::members`]).
    pub async fn can_read(&self, username: &str, channel: &str) -> Result<bool> {
        Ok(self.standing(username, channel).await?.readable())
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
        let mut conn = self.shared();
        Ok(conn.sismember(keys::members(channel), username).await?)
    }

    /// Whether a user is a member (may post).
    pub async fn is_member(&self, username: &str, channel: &str) -> Result<bool> {
        if dm_pair(channel).is_some() {
            return self.in_dm(username, channel).await;
        }
        let mut conn = self.shared();
        Ok(conn.sismember(keys::members(channel), username).await?)
    }

    /// Readability check that answers with the right error: `channel_not_found` for a private
    /// channel or group conversation the user is not in, exactly as for one that does not exist.
    pub async fn require_read(&self, username: &str, channel: &str) -> Result<()> {
        self.require_readable(username, channel).await.map(|_| ())
    }

    /// Joins a public channel; records a `join` event when the user was not a member. A private
    /// channel or group conversation cannot be joined: its members add people. A banned user
    /// gets `banned`.
    pub async fn join_channel(&self, username: &str, uuid: &str, channel: &str) -> Result<bool> {
        if dm_pair(channel).is_some() {
            return Err(Error::Forbidden("private chats cannot be joined".into()));
        }
        let standing = self.standing(username, channel).await?;
        match standing.kind {
            Some(Kind::Public) => {}
            // A member of a private channel is in it already; anyone else learns nothing.
            Some(_) if standing.member => return Ok(false),
            _ => return Err(Error::ChannelNotFound),
        }
        if let Some(until) = standing.banned_until {
            return Err(Error::Banned { until });
        }
        // Two writes in two slots: the user's list first, the channel's members (what lets one
        // post) last, so a failure between them never lets anyone post who has not joined.
        let mut conn = self.conn().await?;
        let _: i64 = conn.sadd(keys::memberships(username), channel).await?;
        let added: i64 = conn.sadd(keys::members(channel), username).await?;
        drop(conn);
        // A ban written between the check and the join wins: the join is undone.
        if let Some(until) = self.standing(username, channel).await?.banned_until {
            self.remove_member(channel, username, super::members::BANNED, None)
                .await?;
            return Err(Error::Banned { until });
        }
        if added == 1 {
            self.append_event(channel, "join", username, "", uuid)
                .await?;
        }
        Ok(added == 1)
    }

    /// Leaves a public channel; records a `leave` event when the user was a member. Leaving a
    /// private channel or group conversation is a `member_removed` event (reason `left`).
    pub async fn leave_channel(&self, username: &str, uuid: &str, channel: &str) -> Result<bool> {
        if dm_pair(channel).is_some() {
            return Err(Error::Forbidden("private chats cannot be left".into()));
        }
        match self.standing(username, channel).await? {
            s if s.kind == Some(Kind::Public) => {}
            s if s.member => {
                return self
                    .remove_member(channel, username, super::members::LEFT, None)
                    .await
            }
            _ => return Err(Error::ChannelNotFound),
        }
        // The right to post goes first, the user's list after (the order of a join, reversed).
        let mut conn = self.conn().await?;
        let removed: i64 = conn.srem(keys::members(channel), username).await?;
        let _: i64 = conn.srem(keys::memberships(username), channel).await?;
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
        // Each person's list first (two slots), the DM's members (what lets one read and post)
        // last, so a failure between them never opens a chat that is not in both lists.
        let _: () = redis::pipe()
            .sadd(keys::memberships(me), &name)
            .ignore()
            .sadd(keys::memberships(other), &name)
            .ignore()
            .query_async(&mut conn)
            .await?;
        let added: i64 = conn.sadd(keys::members(&name), &[me, other]).await?;
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
}
