//! History retention (`history.retention_days`): messages older than that are removed with
//! everything kept for them — the stream entry, the `message:<id>` hash, its search index entry
//! (RediSearch 1.x keeps documents added with `FT.ADDHASH` until `FT.DEL`; 2.x drops them with the
//! hash), the `mentions:<user>` entries and a voice message's audio.
//!
//! Every node runs the sweep on an interval; a lock in Redis (`retention:lock`, with an expiry)
//! lets one node at a time do the work. Each batch removes what hangs off the entries first and
//! the entries last, so a sweep cut short (a node killed) leaves entries the next sweep finds
//! again: every step is safe to repeat.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::insights::mentioned_names;
use super::{keys, Store};
use crate::error::Result;

/// Entries handled per batch.
const BATCH: usize = 200;

/// Deletes the lock only when this node still holds it.
const UNLOCK_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

static UNLOCK_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(UNLOCK_LUA));

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Stream entries (messages, joins, leaves, transcripts).
    pub entries: u64,
    /// Message hashes.
    pub messages: u64,
    /// Voice audios.
    pub audio: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Store {
    /// Runs one sweep if retention is on and no other node is sweeping; None when it did not run.
    pub async fn sweep_retention(&self, node_id: &str) -> Result<Option<Swept>> {
        let days = self.settings.history.retention_days;
        if days <= 0.0 {
            return Ok(None);
        }
        let keep_ms = (days * 86_400_000.0) as u64;
        let cutoff = now_ms().saturating_sub(keep_ms);
        let lock_ms = self
            .settings
            .history
            .retention_interval_secs
            .saturating_mul(2000)
            .max(60_000);
        let mut conn = self.shared();
        let got: Option<String> = redis::cmd("SET")
            .arg(keys::RETENTION_LOCK)
            .arg(node_id)
            .arg("NX")
            .arg("PX")
            .arg(lock_ms)
            .query_async(&mut conn)
            .await?;
        if got.is_none() {
            return Ok(None);
        }
        let swept = self.sweep_before(cutoff).await;
        let _: i64 = UNLOCK_SCRIPT
            .key(keys::RETENTION_LOCK)
            .arg(node_id)
            .invoke_async(&mut conn)
            .await?;
        swept.map(Some)
    }

    /// Removes every channel's entries older than `cutoff_ms`, with what hangs off them.
    pub async fn sweep_before(&self, cutoff_ms: u64) -> Result<Swept> {
        let mut total = Swept::default();
        for stream in self.channel_streams().await? {
            let Some(channel) = stream.strip_prefix("channel:") else {
                continue;
            };
            loop {
                let n = self.sweep_batch(channel, cutoff_ms, &mut total).await?;
                if n < BATCH {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// The keys of every channel stream (public channels and private chats).
    async fn channel_streams(&self) -> Result<Vec<String>> {
        let mut conn = self.conn().await?;
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(keys::channel("*"))
                .arg("COUNT")
                .arg(1000)
                .arg("TYPE")
                .arg("stream")
                .query_async(&mut conn)
                .await?;
            out.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Removes up to [`BATCH`] of a channel's entries older than the cutoff; how many it read.
    async fn sweep_batch(&self, channel: &str, cutoff_ms: u64, total: &mut Swept) -> Result<usize> {
        let mut conn = self.conn().await?;
        let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(keys::channel(channel))
            .arg("-")
            .arg(format!("({cutoff_ms}-0"))
            .arg("COUNT")
            .arg(BATCH)
            .query_async(&mut conn)
            .await?;
        if entries.is_empty() {
            return Ok(0);
        }
        // A message's hash holds what its entry may lack (seed 003's loader wrote bare entries).
        let messages: Vec<&String> = entries
            .iter()
            .filter(|(_, f)| f.get("type").is_none_or(|t| t == "message"))
            .map(|(id, _)| id)
            .collect();
        let mut read = redis::pipe();
        for id in &messages {
            read.hgetall(keys::message(id));
        }
        let hashes: Vec<HashMap<String, String>> = if messages.is_empty() {
            Vec::new()
        } else {
            read.query_async(&mut conn).await?
        };
        let by_id: HashMap<&String, &HashMap<String, String>> =
            messages.iter().copied().zip(hashes.iter()).collect();
        let delist = self.search.is_some_and(|v| v.needs_addhash());
        let mut pipe = redis::pipe();
        for (id, fields) in &entries {
            let hash = by_id.get(id);
            let field = |k: &str| {
                fields
                    .get(k)
                    .or_else(|| hash.and_then(|h| h.get(k)))
                    .filter(|v| !v.is_empty())
            };
            if let Some(text) = field("message") {
                for name in mentioned_names(text) {
                    pipe.zrem(keys::mentions(&name), id).ignore();
                }
            }
            if let Some(audio) = field(super::voice::fields::AUDIO) {
                if fields.get("type").is_none_or(|t| t == "message") {
                    pipe.del(&[keys::audio(audio), keys::audio_info(audio)])
                        .ignore();
                    total.audio += 1;
                }
            }
            if hash.is_some_and(|h| !h.is_empty()) {
                if delist {
                    pipe.cmd("FT.DEL")
                        .arg(keys::IDX_MESSAGES)
                        .arg(keys::message(id))
                        .ignore();
                }
                pipe.del(keys::message(id)).ignore();
                total.messages += 1;
            }
        }
        let mut xdel = redis::cmd("XDEL");
        xdel.arg(keys::channel(channel));
        for (id, _) in &entries {
            xdel.arg(id);
        }
        pipe.add_command(xdel).ignore();
        let _: () = pipe.query_async(&mut conn).await?;
        total.entries += entries.len() as u64;
        Ok(entries.len())
    }
}

/// Sweeps on `history.retention_interval_secs`, the first time soon after start.
pub fn spawn_sweeper(store: Store) {
    if store.settings.history.retention_days <= 0.0 {
        return;
    }
    let node_id = uuid::Uuid::new_v4().simple().to_string();
    let every = Duration::from_secs(store.settings.history.retention_interval_secs);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match store.sweep_retention(&node_id).await {
                Ok(Some(s)) if s.entries > 0 => log::info!(
                    "retention: removed {} entries, {} messages, {} audios",
                    s.entries,
                    s.messages,
                    s.audio
                ),
                Ok(_) => {}
                Err(e) => log::warn!("retention sweep: {e}"),
            }
        }
    });
}
