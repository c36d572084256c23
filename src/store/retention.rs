//! History retention (`history.retention_days`): messages older than that are removed with
//! everything kept for them — the stream entry, the message hash, its search index entry
//! (RediSearch 1.x keeps documents added with `FT.ADDHASH` until `FT.DEL`; 2.x drops them with the
//! hash), the `mentions:{user:<u>}` entries, its reactions and reply list, and a voice message's
//! audio.
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
        if !super::take_lock(&mut conn, keys::RETENTION_LOCK, node_id, lock_ms).await? {
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

    /// The keys of every channel stream (public channels and private chats), on every master.
    async fn channel_streams(&self) -> Result<Vec<String>> {
        let topology = self.topology();
        let mut conn = self.conn().await?;
        let mut out = Vec::new();
        for master in &topology.masters {
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = conn
                    .query_on_master(
                        &super::scan_step(cursor, &keys::channel("*"), 1000, "stream"),
                        master,
                    )
                    .await?;
                out.extend(batch);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
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
        // A message's hash holds what its entry may lack (seed 003's loader wrote bare entries);
        // a hash of the older layout (`message:<id>`) counts when it is this channel's.
        let mut read = redis::pipe();
        for (id, _) in &entries {
            read.hgetall(keys::message(channel, id))
                .hgetall(keys::legacy::message(id));
        }
        let hashes: Vec<HashMap<String, String>> = read.query_async(&mut conn).await?;
        let delist = self.search.is_some_and(|v| v.needs_addhash());
        let mut pipe = redis::pipe();
        for ((id, fields), pair) in entries.iter().zip(hashes.chunks(2)) {
            let (new, old) = (&pair[0], &pair[1]);
            let old_here = !old.is_empty() && old.get("channel").is_none_or(|c| c == channel);
            let hash = if !new.is_empty() {
                Some(new)
            } else {
                old_here.then_some(old)
            };
            let field = |k: &str| {
                fields
                    .get(k)
                    .or_else(|| hash.and_then(|h| h.get(k)))
                    .filter(|v| !v.is_empty())
            };
            if let Some(text) = field("message") {
                for name in mentioned_names(text) {
                    pipe.zrem(keys::mentions(&name), keys::message_ref(channel, id))
                        .ignore()
                        .zrem(keys::mentions(&name), id)
                        .ignore()
                        .zrem(keys::legacy::mentions(&name), id)
                        .ignore();
                }
            }
            if let Some(audio) = field(super::voice::fields::AUDIO) {
                if fields.get("type").is_none_or(|t| t == "message") {
                    pipe.del(keys::audio(channel, audio))
                        .ignore()
                        .del(keys::audio_info(channel, audio))
                        .ignore()
                        .del(keys::audio_channel(audio))
                        .ignore()
                        .del(keys::legacy::audio(audio))
                        .ignore()
                        .del(keys::legacy::audio_info(audio))
                        .ignore();
                    total.audio += 1;
                }
            }
            let mut drop_hash = |key: String| {
                if delist {
                    let index = self.index_for(keys::messages_index(), &key);
                    pipe.cmd("FT.DEL").arg(index).arg(&key).ignore();
                }
                pipe.del(key).ignore();
            };
            if !new.is_empty() {
                drop_hash(keys::message(channel, id));
            }
            if old_here {
                drop_hash(keys::legacy::message(id));
            }
            if hash.is_some() {
                total.messages += 1;
            }
            pipe.del(keys::reactions(channel, id))
                .ignore()
                .del(keys::reactors(channel, id))
                .ignore()
                .del(keys::replies(channel, id))
                .ignore();
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
