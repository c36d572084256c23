//! Read positions and unread counts: the last-seen stream ID of each channel, kept as a field of
//! `user:<u>`, and the caller's channel list with each channel's unread count and last message.
//!
//! A read position must never move backwards (a late or stale `read` from another tab is ignored),
//! and a user's own messages and join/leave events never count as unread.

use std::collections::HashMap;

use redis::AsyncCommands;
use serde::Serialize;

use super::channels::{dm_pair, Kind};
use super::ids::{check_id, id_after};
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

impl Store {
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
        // The index is checked against each channel's members: it grants nothing by itself.
        let channels = self.memberships(username).await?;
        for (name, kind) in self.listed(username, channels).await? {
            let last = self.range_rev(&name, "+", 1).await?.pop();
            let unread = self.unread(username, &name).await?;
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
