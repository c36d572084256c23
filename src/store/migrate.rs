//! `chatnode migrate`: converts the keys of the older layout (seed 003's loader, chatnode before
//! every key carried its channel's or user's hash tag) into the layout of [`super::keys`], in
//! place, losing nothing.
//!
//! Every step writes the new key before it deletes the old one, and skips what is already
//! converted, so the command can be stopped at any point and run again (it finds the old keys
//! by `SCAN`, and a database with none left is a no-op). No step is a multi-key command or a
//! script: each old key and its new name may be in different slots.
//!
//! Converted: `message:<id>` hashes (by their `channel` field), `mentions:<u>` (members become
//! `<channel>/<id>`), `members:<c>`, `memberships:<u>`, `active:<c>`, `sessions:<u>`,
//! `audio:<a>` with `audioinfo:<a>` (plus the `audiochannel:<a>` pointer), the single `online`
//! set (each entry into its user's bucket, `ZADD GT`); `ids:last` is removed. Mentions go
//! first, as they read the old message hashes to learn each message's channel. Left as they are: streams and user hashes (their names did not change), sessions of
//! old tokens (`session:<hash>`, served until they expire) and short-lived counters and markers
//! (`postrate:`, `postonce:`, `loginfail:`, `presence:`), which expire by themselves.

use std::collections::HashMap;

use serde::Serialize;

use super::{keys, Store};
use crate::error::Result;

/// What one run converted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Migrated {
    pub messages: u64,
    pub mentions: u64,
    pub members: u64,
    pub memberships: u64,
    pub activity: u64,
    pub sessions: u64,
    pub audio: u64,
    /// Entries of the single `online` set moved into the user's bucket.
    pub online: u64,
    /// Old keys left where they are because they cannot be placed (a message hash without a
    /// channel, an audio without its info).
    pub left: u64,
}

/// Old keys read per `SCAN` step.
const BATCH: usize = 500;

/// Whether a key is of the older layout (no hash tag).
fn untagged(key: &str) -> bool {
    !key.contains('{')
}

/// A name that can go into a hash tag or a message reference.
fn placeable(name: &str) -> bool {
    !name.is_empty() && !name.contains(['{', '}', '/'])
}

impl Store {
    /// Converts every key of the older layout; see the module's notes. Safe to run again.
    pub async fn migrate(&self) -> Result<Migrated> {
        let mut done = Migrated::default();
        self.each_old_key(
            "mentions:*",
            |s, key, done| Box::pin(s.migrate_mentions(key, done)),
            &mut done,
        )
        .await?;
        for (pattern, kind) in [
            ("members:*", SetKind::Members),
            ("memberships:*", SetKind::Memberships),
            ("sessions:*", SetKind::Sessions),
        ] {
            self.each_old_key(
                pattern,
                move |s, key, done| Box::pin(s.migrate_set(key, kind, done)),
                &mut done,
            )
            .await?;
        }
        self.each_old_key(
            "active:*",
            |s, key, done| Box::pin(s.migrate_activity(key, done)),
            &mut done,
        )
        .await?;
        self.each_old_key(
            "audioinfo:*",
            |s, key, done| Box::pin(s.migrate_audio(key, done)),
            &mut done,
        )
        .await?;
        self.migrate_messages(&mut done).await?;
        done.online = self.migrate_online().await?;
        let mut conn = self.conn().await?;
        let _: i64 = redis::cmd("DEL")
            .arg(keys::legacy::STREAM_IDS)
            .query_async(&mut conn)
            .await?;
        Ok(done)
    }

    /// Calls `f` for every untagged key matching `pattern`.
    async fn each_old_key<F>(&self, pattern: &str, f: F, done: &mut Migrated) -> Result<()>
    where
        F: for<'a> Fn(
            &'a Store,
            String,
            &'a mut Migrated,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + 'a>>,
    {
        let mut cursor: u64 = 0;
        loop {
            let mut conn = self.conn().await?;
            let (next, batch): (u64, Vec<String>) = super::scan_step(cursor, pattern, BATCH, "")
                .query_async(&mut conn)
                .await?;
            drop(conn);
            for key in batch.into_iter().filter(|k| untagged(k)) {
                f(self, key, done).await?;
            }
            cursor = next;
            if cursor == 0 {
                return Ok(());
            }
        }
    }

    /// `mentions:<u>` → `mentions:{user:<u>}`, each bare `<id>` named `<channel>/<id>` from the
    /// message's old hash (kept bare when that hash is gone).
    async fn migrate_mentions(&self, key: String, done: &mut Migrated) -> Result<()> {
        let Some(user) = key.strip_prefix("mentions:").filter(|u| placeable(u)) else {
            done.left += 1;
            return Ok(());
        };
        let mut conn = self.conn().await?;
        let old: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        if !old.is_empty() {
            let mut pipe = redis::pipe();
            for (member, _) in &old {
                pipe.hget(keys::legacy::message(member), "channel");
            }
            let channels: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
            let mut add = redis::cmd("ZADD");
            add.arg(keys::mentions(user));
            for ((member, score), channel) in old.iter().zip(channels) {
                let member = match channel.filter(|c| placeable(c)) {
                    Some(c) if keys::parse_message_ref(member).is_none() => {
                        keys::message_ref(&c, member)
                    }
                    _ => member.clone(),
                };
                add.arg(*score).arg(member);
            }
            let _: i64 = add.query_async(&mut conn).await?;
        }
        let _: i64 = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
        done.mentions += 1;
        Ok(())
    }

    /// A set of the older layout into its new name (merged with what is there), keeping the
    /// longer expiry.
    async fn migrate_set(&self, key: String, kind: SetKind, done: &mut Migrated) -> Result<()> {
        let (prefix, new_key): (&str, fn(&str) -> String) = match kind {
            SetKind::Members => ("members:", keys::members),
            SetKind::Memberships => ("memberships:", keys::memberships),
            SetKind::Sessions => ("sessions:", keys::user_sessions),
        };
        let Some(name) = key.strip_prefix(prefix).filter(|n| placeable(n)) else {
            done.left += 1;
            return Ok(());
        };
        let new = new_key(name);
        let mut conn = self.conn().await?;
        let (members, ttl, new_ttl): (Vec<String>, i64, i64) = redis::pipe()
            .smembers(&key)
            .ttl(&key)
            .ttl(&new)
            .query_async(&mut conn)
            .await?;
        if !members.is_empty() {
            let _: i64 = redis::cmd("SADD")
                .arg(&new)
                .arg(&members)
                .query_async(&mut conn)
                .await?;
            // -1: no expiry (kept); -2: the new key did not exist before.
            if ttl > 0 && (new_ttl == -2 || (new_ttl > 0 && ttl > new_ttl)) {
                let _: i64 = redis::cmd("EXPIRE")
                    .arg(&new)
                    .arg(ttl)
                    .query_async(&mut conn)
                    .await?;
            }
        }
        let _: i64 = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
        match kind {
            SetKind::Members => done.members += 1,
            SetKind::Memberships => done.memberships += 1,
            SetKind::Sessions => done.sessions += 1,
        }
        Ok(())
    }

    /// `active:<c>` → `active:{channel:<c>}`, keeping each person's latest time.
    async fn migrate_activity(&self, key: String, done: &mut Migrated) -> Result<()> {
        let Some(channel) = key.strip_prefix("active:").filter(|c| placeable(c)) else {
            done.left += 1;
            return Ok(());
        };
        let mut conn = self.conn().await?;
        let old: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        if !old.is_empty() {
            let mut add = redis::cmd("ZADD");
            add.arg(keys::activity(channel)).arg("GT");
            for (member, score) in &old {
                add.arg(*score).arg(member);
            }
            let _: i64 = add.query_async(&mut conn).await?;
        }
        let _: i64 = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
        done.activity += 1;
        Ok(())
    }

    /// `audioinfo:<a>` and `audio:<a>` into the channel's slot, and the `audiochannel:<a>`
    /// pointer playback URLs need.
    async fn migrate_audio(&self, key: String, done: &mut Migrated) -> Result<()> {
        let Some(audio_id) = key.strip_prefix("audioinfo:") else {
            return Ok(());
        };
        let mut conn = self.conn().await?;
        let (info, bytes): (HashMap<String, String>, Option<Vec<u8>>) = redis::pipe()
            .hgetall(&key)
            .get(keys::legacy::audio(audio_id))
            .query_async(&mut conn)
            .await?;
        let Some(channel) = info.get("channel").filter(|c| placeable(c)).cloned() else {
            done.left += 1;
            return Ok(());
        };
        let mut pipe = redis::pipe();
        if let Some(bytes) = bytes {
            pipe.cmd("SET")
                .arg(keys::audio(&channel, audio_id))
                .arg(bytes)
                .arg("NX")
                .ignore();
        }
        let fields: Vec<(&String, &String)> = info.iter().collect();
        // Written whole or not at all: an info hash already there is a finished earlier run's.
        let new_info = keys::audio_info(&channel, audio_id);
        let exists: bool = redis::cmd("EXISTS")
            .arg(&new_info)
            .query_async(&mut conn)
            .await?;
        if !exists {
            pipe.hset_multiple(&new_info, &fields).ignore();
        }
        pipe.set(keys::audio_channel(audio_id), &channel).ignore();
        let _: () = pipe.query_async(&mut conn).await?;
        let _: () = redis::pipe()
            .del(keys::legacy::audio(audio_id))
            .ignore()
            .del(&key)
            .ignore()
            .query_async(&mut conn)
            .await?;
        done.audio += 1;
        Ok(())
    }

    /// `message:<id>` → `message:{channel:<c>}:<id>`, re-indexed on RediSearch 1.x (the old
    /// document removed from the index); a batch per `SCAN` step.
    async fn migrate_messages(&self, done: &mut Migrated) -> Result<()> {
        let addhash = self.search.is_some_and(|v| v.needs_addhash());
        let index = keys::messages_index();
        let mut cursor: u64 = 0;
        loop {
            let mut conn = self.conn().await?;
            let (next, batch): (u64, Vec<String>) =
                super::scan_step(cursor, "message:*", BATCH, "hash")
                    .query_async(&mut conn)
                    .await?;
            let old: Vec<String> = batch.into_iter().filter(|k| untagged(k)).collect();
            if !old.is_empty() {
                let mut read = redis::pipe();
                for key in &old {
                    read.hgetall(key);
                }
                let hashes: Vec<HashMap<String, String>> = read.query_async(&mut conn).await?;
                let mut targets = Vec::new();
                for (key, h) in old.iter().zip(hashes) {
                    let id = keys::id_of_message_key(key);
                    match h.get("channel").filter(|c| placeable(c)) {
                        Some(c) if !h.is_empty() => {
                            targets.push((key.clone(), keys::message(c, id), h))
                        }
                        _ => done.left += 1,
                    }
                }
                let mut exists = redis::pipe();
                for (_, new, _) in &targets {
                    exists.exists(new);
                }
                let there: Vec<bool> = exists.query_async(&mut conn).await?;
                let mut write = redis::pipe();
                for ((_, new, h), there) in targets.iter().zip(&there) {
                    if !there {
                        let fields: Vec<(&String, &String)> = h.iter().collect();
                        write.hset_multiple(new, &fields).ignore();
                    }
                    if addhash {
                        write
                            .cmd("FT.ADDHASH")
                            .arg(index)
                            .arg(new)
                            .arg("1.0")
                            .arg("REPLACE")
                            .ignore();
                    }
                }
                if !targets.is_empty() {
                    let _: Vec<redis::RedisResult<redis::Value>> =
                        write.ignore_errors().query_async(&mut conn).await?;
                    let mut remove = redis::pipe();
                    for (old_key, _, _) in &targets {
                        if addhash {
                            remove.cmd("FT.DEL").arg(index).arg(old_key);
                        }
                        remove.cmd("DEL").arg(old_key);
                    }
                    let _: Vec<redis::RedisResult<redis::Value>> =
                        remove.ignore_errors().query_async(&mut conn).await?;
                    done.messages += targets.len() as u64;
                }
            }
            cursor = next;
            if cursor == 0 {
                return Ok(());
            }
        }
    }
}

/// The sets of the older layout.
#[derive(Clone, Copy)]
enum SetKind {
    Members,
    Memberships,
    Sessions,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_untagged_keys_are_old() {
        assert!(untagged("members:general"));
        assert!(!untagged("members:{channel:general}"));
        assert!(placeable("dm:amy:zed"));
        assert!(!placeable("a/b"));
        assert!(!placeable(""));
    }
}
