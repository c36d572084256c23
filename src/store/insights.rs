//! Mentions, recently active users, the last-N-minutes view and top posters (seed 003's stretch
//! goals), each limited to what the caller may read.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::json;

use super::channels::dm_pair;
use super::ids::{check_id, parse_id};
use super::search::channel_filter;
use super::{keys, Store};
use crate::error::{Error, Result};
use crate::protocol::ChatEvent;

/// One page of mentions.
pub struct MentionPage {
    /// Newest first; mentions whose message is gone are left out.
    pub mentions: Vec<ChatEvent>,
    /// The `before` of the next page when there are older mentions; None at the end.
    pub next_before: Option<String>,
}

/// Mentions recorded per message at most.
const MAX_MENTIONS: usize = 20;

/// The usernames `@mentioned` in a text, lowercased, without repeats.
pub fn mentioned_names(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let before = rest[..at].chars().last();
        rest = &rest[at + 1..];
        // `a@b` is an address, not a mention.
        if before.is_some_and(|c| c.is_alphanumeric()) {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c))
            .collect::<String>()
            .trim_end_matches(['.', '-'])
            .to_lowercase();
        if (3..=32).contains(&name.len()) && !out.contains(&name) {
            out.push(name);
        }
        if out.len() == MAX_MENTIONS {
            break;
        }
    }
    out
}

/// A user active in a channel.
#[derive(Debug, Serialize)]
pub struct Active {
    pub username: String,
    pub last_active: i64,
}

/// A poster and their count.
#[derive(Debug, Serialize)]
pub struct Poster {
    pub username: String,
    pub count: u64,
}

impl Store {
    /// Records mentions of existing users who may read the channel, and tells them live.
    pub async fn record_mentions(&self, ev: &ChatEvent) -> Result<()> {
        let mut names: Vec<String> = mentioned_names(&ev.text)
            .into_iter()
            .filter(|n| *n != ev.username)
            .filter(|n| dm_pair(&ev.channel).is_none_or(|(a, b)| a == n || b == n))
            .collect();
        // Only people who may read the channel are told: a mention must not carry a private
        // channel's message to someone outside it.
        if dm_pair(&ev.channel).is_none() && !self.channel_exists(&ev.channel).await? {
            let mut readers = Vec::with_capacity(names.len());
            for n in names {
                if self.can_read(&n, &ev.channel).await? {
                    readers.push(n);
                }
            }
            names = readers;
        }
        if names.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let mut check = redis::pipe();
        for n in &names {
            check.sismember(keys::USERNAMES, n);
        }
        let exists: Vec<bool> = check.query_async(&mut conn).await?;
        let mut pipe = redis::pipe();
        let mut any = false;
        for (n, _) in names.iter().zip(exists).filter(|(_, e)| *e) {
            any = true;
            pipe.zadd(
                keys::mentions(n),
                keys::message_ref(&ev.channel, &ev.id),
                ev.created_at,
            )
            .ignore();
            let notice = json!({"username": n, "kind": "mention", "payload": ev});
            pipe.publish(keys::USER_EVENTS, notice.to_string()).ignore();
        }
        if any {
            let _: () = pipe.query_async(&mut conn).await?;
        }
        Ok(())
    }

    /// One page of the messages mentioning a user, newest first by stream ID (then channel),
    /// strictly before `before`: a page's `next_before` (`<channel>/<id>`, exact, also among
    /// mentions of the same millisecond or the same ID in two channels), a mention's ID (before
    /// that ID) or bare unix ms (before that millisecond).
    ///
    /// The sorted set scores mentions by millisecond and orders equal scores by the member's
    /// bytes, not by stream ID, so a page is cut only at whole milliseconds: the one of the
    /// cursor and the last one read are fetched complete, then sorted by ID.
    pub async fn mentions(
        &self,
        username: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<MentionPage> {
        // (ms, seq) and, for an exact cursor, the channel: later channels of the same ID come
        // first.
        let (cursor, cursor_channel) = match before {
            Some(b) => match keys::parse_message_ref(b) {
                Some((c, id)) => {
                    check_id(id)?;
                    (parse_id(id), Some(c.to_string()))
                }
                None => {
                    check_id(b)?;
                    (parse_id(b), None)
                }
            },
            None => (None, None),
        };
        let before_cursor = |p: (u64, u64), channel: &str| match cursor {
            None => true,
            Some(c) => {
                p < c || (p == c && cursor_channel.as_deref().is_some_and(|cc| channel < cc))
            }
        };
        let limit = limit.max(1);
        let key = keys::mentions(username);
        let (same_ms, older_than) = match cursor {
            Some((ms, _)) => (ms.to_string(), format!("({ms}")),
            None => ("+inf".to_string(), "+inf".to_string()),
        };
        let mut conn = self.conn().await?;
        // The cursor's millisecond whole, and the next `limit + 1` older mentions.
        let (tied, older): (Vec<String>, Vec<(String, f64)>) = redis::pipe()
            .cmd("ZRANGEBYSCORE")
            .arg(&key)
            .arg(&same_ms)
            .arg(&same_ms)
            .cmd("ZREVRANGEBYSCORE")
            .arg(&key)
            .arg(&older_than)
            .arg("-inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(limit + 1)
            .query_async(&mut conn)
            .await?;
        // When the read stopped inside a millisecond, that millisecond is read whole.
        let cut = (older.len() > limit)
            .then(|| older.last().map(|(_, score)| *score as i64))
            .flatten();
        // Members are `<channel>/<id>` (a bare `<id>` in the older layout), ordered by the ID.
        let mut ids: Vec<(u64, u64, String, String)> = Vec::with_capacity(older.len() + tied.len());
        let mut push = |member: String| {
            let (channel, id) = keys::parse_message_ref(&member).unwrap_or(("", member.as_str()));
            if let Some(p) = parse_id(id).filter(|p| before_cursor(*p, channel)) {
                ids.push((p.0, p.1, channel.to_string(), member));
            }
        };
        tied.into_iter().for_each(&mut push);
        older
            .into_iter()
            .filter(|(_, score)| Some(*score as i64) != cut)
            .for_each(|(id, _)| push(id));
        if let Some(ms) = cut {
            let whole: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(&key)
                .arg(ms)
                .arg(ms)
                .query_async(&mut conn)
                .await?;
            whole.into_iter().for_each(&mut push);
        }
        drop(conn);
        ids.sort_unstable_by(|a, b| (b.0, b.1, &b.2).cmp(&(a.0, a.1, &a.2)));
        ids.dedup_by(|a, b| a.3 == b.3);
        let more = ids.len() > limit;
        ids.truncate(limit);
        let next_before = if more {
            ids.last().map(|(_, _, _, member)| member.clone())
        } else {
            None
        };
        let ids: Vec<String> = ids.into_iter().map(|(_, _, _, member)| member).collect();
        Ok(MentionPage {
            mentions: self.messages_by_ref(&ids).await?,
            next_before,
        })
    }

    /// Messages by their [`keys::message_ref`] (`<channel>/<id>`, or a bare `<id>` of the older
    /// layout), missing ones skipped, in the order given.
    pub async fn messages_by_ref(&self, refs: &[String]) -> Result<Vec<ChatEvent>> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        let mut ids = Vec::with_capacity(refs.len());
        for r in refs {
            match keys::parse_message_ref(r) {
                Some((channel, id)) => {
                    pipe.hgetall(keys::message(channel, id))
                        .hgetall(keys::legacy::message(id));
                    ids.push(id);
                }
                None => {
                    pipe.hgetall(keys::legacy::message(r))
                        .hgetall(keys::legacy::message(r));
                    ids.push(r.as_str());
                }
            }
        }
        let got: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        let mut it = got.into_iter();
        let mut out = Vec::with_capacity(refs.len());
        for (r, id) in refs.iter().zip(ids) {
            let (Some(new), Some(old)) = (it.next(), it.next()) else {
                break;
            };
            let channel = keys::parse_message_ref(r).map(|(c, _)| c);
            let h = if !new.is_empty() {
                new
            } else if channel.is_none_or(|c| old.get("channel").is_none_or(|oc| oc == c)) {
                old
            } else {
                continue;
            };
            if !h.is_empty() {
                out.push(event_from_hash(id, &h));
            }
        }
        Ok(out)
    }

    /// Users who posted or joined within the last `minutes`, most recent first.
    pub async fn active_users(&self, channel: &str, minutes: u64) -> Result<Vec<Active>> {
        let mut conn = self.conn().await?;
        let since = crate::store::users::now_ms() - (minutes as i64) * 60_000;
        let raw: Vec<(String, f64)> = redis::cmd("ZREVRANGEBYSCORE")
            .arg(keys::activity(channel))
            .arg("+inf")
            .arg(since)
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(200)
            .query_async(&mut conn)
            .await?;
        Ok(raw
            .into_iter()
            .map(|(username, score)| Active {
                username,
                last_active: score as i64,
            })
            .collect())
    }

    /// Messages of the last `minutes` in each channel (stream IDs are times: XRANGE by time).
    pub async fn recent(
        &self,
        channels: &[String],
        minutes: u64,
        per_channel: usize,
    ) -> Result<Vec<ChatEvent>> {
        let since = crate::store::users::now_ms() - (minutes as i64) * 60_000;
        let mut out = Vec::new();
        for c in channels {
            // Newest first from the end, so a busy channel keeps its latest messages.
            let mut events = self.range_rev(c, "+", per_channel).await?;
            // Edited text, not the first; deleted messages are no longer in the stream.
            self.current_state("", c, &mut events).await?;
            out.extend(
                events
                    .into_iter()
                    .filter(|e| e.kind == "message" && e.created_at >= since),
            );
        }
        out.sort_by_key(|e| parse_id(&e.id).unwrap_or((0, 0)));
        Ok(out)
    }

    /// Top posters over `channels` through FT.AGGREGATE … GROUPBY @username REDUCE COUNT.
    pub async fn top_posters(&self, channels: &[String], limit: usize) -> Result<Vec<Poster>> {
        if self.search.is_none() {
            return Err(Error::SearchUnavailable);
        }
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        let filter = channel_filter(channels);
        if self.is_cluster() {
            let counts = self
                .count_by_sharded(keys::messages_index(), &filter, "username", limit)
                .await?;
            return Ok(counts
                .into_iter()
                .map(|(username, count)| Poster { username, count })
                .collect());
        }
        let mut conn = self.conn().await?;
        let v: redis::RedisResult<redis::Value> = redis::cmd("FT.AGGREGATE")
            .arg(keys::messages_index())
            .arg(&filter)
            .arg(&[
                "GROUPBY",
                "1",
                "@username",
                "REDUCE",
                "COUNT",
                "0",
                "AS",
                "count",
            ])
            .arg(&["SORTBY", "2", "@count", "DESC", "LIMIT", "0"])
            .arg(limit)
            .query_async(&mut conn)
            .await;
        let v = match v {
            Ok(v) => v,
            // RediSearch 1.2's answer when no message of these channels is indexed.
            Err(e) if e.to_string().contains("QueryParseCtx") => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        // The reply is shaped like a search answer with no keys: a count, then field lists.
        let redis::Value::Array(items) = v else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in items.into_iter().skip(1) {
            let f: HashMap<String, String> = super::flatten_pairs(row).into_iter().collect();
            if let (Some(u), Some(c)) = (f.get("username"), f.get("count")) {
                out.push(Poster {
                    username: u.clone(),
                    count: c.parse::<f64>().unwrap_or(0.0) as u64,
                });
            }
        }
        Ok(out)
    }
}

/// A message hash as an event.
pub fn event_from_hash(id: &str, h: &HashMap<String, String>) -> ChatEvent {
    let get = |k: &str| h.get(k).cloned().unwrap_or_default();
    ChatEvent {
        id: id.to_string(),
        channel: get("channel"),
        kind: h.get("type").cloned().unwrap_or_else(|| "message".into()),
        username: get("username"),
        text: get("message"),
        created_at: parse_id(id).map(|(ms, _)| ms as i64).unwrap_or(0),
        uuid: get("uuid"),
        voice: super::voice::info_from_fields(h),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mentions_but_not_addresses() {
        assert_eq!(
            mentioned_names("hi @Ada and @simon, mail me@host.com"),
            ["ada", "simon"]
        );
        assert_eq!(mentioned_names("@ada @ada @ab"), ["ada"]);
        assert_eq!(mentioned_names("end @wasim."), ["wasim"]);
        assert!(mentioned_names("no mentions").is_empty());
    }
}
