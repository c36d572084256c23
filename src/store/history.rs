//! Reading a channel back from its stream: ranges, history pages before or after an ID, every
//! event after an ID (a resuming socket's catch-up), and the newest ID. Entries written by seed
//! 003's loader carry only their type, so their text comes from the message's hash
//! (`message:{channel:<c>}:<id>`, or `message:<id>` of the older layout); voice messages get
//! their current transcript state.
//!
//! Read only: it must never write, and it does not decide who may read; callers check that first
//! ([`Store::require_read`]).

use std::collections::HashMap;

use serde::Serialize;

use super::ids::{after_bound, before_bound, parse_id};
use super::{keys, Store};
use crate::error::{Error, Result};
use crate::protocol::ChatEvent;

/// One page of history.
#[derive(Clone, Debug, Serialize)]
pub struct Page {
    pub messages: Vec<ChatEvent>,
    pub has_more: bool,
}

impl Store {
    /// One stored event read back from the stream (None once trimmed away).
    pub(crate) async fn stored_event(&self, channel: &str, id: &str) -> Result<Option<ChatEvent>> {
        Ok(self.range(channel, id, id, 1).await?.pop())
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
        let Some(mut from) = after_bound(id)? else {
            return Ok(all);
        };
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
        // Nothing follows the largest stream ID and nothing precedes `0-0`: such a page is empty
        // (Redis refuses the range).
        let empty = || Page {
            messages: Vec::new(),
            has_more: false,
        };
        if let Some(after) = after {
            let Some(start) = after_bound(after)? else {
                return Ok(empty());
            };
            let mut messages = self.range(channel, &start, "+", limit + 1).await?;
            let has_more = messages.len() > limit;
            messages.truncate(limit);
            return Ok(Page { messages, has_more });
        }
        let end = match before {
            Some(b) => match before_bound(b)? {
                Some(end) => end,
                None => return Ok(empty()),
            },
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

    /// Message hashes by channel and ID, in the order given (empty where there is none): the
    /// hash of the tagged layout, else the older layout's `message:<id>`. One pipelined read.
    pub(crate) async fn message_hashes(
        &self,
        refs: &[(String, String)],
    ) -> Result<Vec<HashMap<String, String>>> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        for (channel, id) in refs {
            pipe.hgetall(keys::message(channel, id))
                .hgetall(keys::legacy::message(id));
        }
        let got: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        let mut out = Vec::with_capacity(refs.len());
        let mut it = got.into_iter();
        while let (Some(new), Some(old)) = (it.next(), it.next()) {
            // An old hash of the same ID in another channel is not this message's.
            let old_here = refs
                .get(out.len())
                .is_some_and(|(c, _)| old.get("channel").is_none_or(|oc| oc == c));
            out.push(if !new.is_empty() || !old_here {
                new
            } else {
                old
            });
        }
        Ok(out)
    }

    /// Turns XRANGE entries into events; entries written by seed 003's loader carry only
    /// `type`, so their text comes from the message's hash (one pipelined read).
    pub(super) async fn events_from_entries(
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
            let refs: Vec<(String, String)> = missing
                .iter()
                .map(|id| (channel.to_string(), (*id).clone()))
                .collect();
            let got = self.message_hashes(&refs).await?;
            for ((_, id), h) in refs.into_iter().zip(got) {
                hashes.insert(id, h);
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
                    voice: super::voice::info_from_fields(&f),
                    id,
                    ..super::actions::action_fields(&f)
                }
            })
            .collect();
        self.refresh_voice(&mut events).await?;
        Ok(events)
    }
}

fn merge(mut a: HashMap<String, String>, b: HashMap<String, String>) -> HashMap<String, String> {
    for (k, v) in b {
        a.entry(k).or_insert(v);
    }
    a
}
