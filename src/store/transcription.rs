//! The transcription queue in Redis: the `voice:jobs` stream and its consumer group, the live
//! transcribers (heartbeats in `voice:transcribers`), taking over jobs of a node that died, and
//! storing a transcript exactly once.
//!
//! Finishing is one Lua script: it writes only while the message's transcript is still
//! `pending`, and acknowledges the job in the same step, so a job that two transcribers both
//! finished counts once. Nothing here may write a transcript outside that script.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::AsyncCommands;

use super::voice::{fields, state};
use super::{keys, Store};
use crate::error::{Error, Result};

static FINISH_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(FINISH_LUA));

/// Stores a transcript, in the channel's slot; the job is acknowledged after it (`voice:jobs`
/// is a key of its own): a job whose acknowledgement was lost is taken again, finds the message
/// no longer pending and is only acknowledged.
const FINISH_LUA: &str = r#"
-- KEYS: 1 the message hash, 2 stream channel:<c>, 3 subject room:{channel:<c>}
-- ARGV: 1 message id, 2 state (done|failed), 3 text, 4 confidence ('' = none), 5 engine,
--       6 error, 7 maxlen, 8 channel
if redis.call('HGET', KEYS[1], 'transcript_state') ~= 'pending' then
  return false
end
local h = redis.call('HMGET', KEYS[1], 'username', 'uuid', 'audio', 'audio_type', 'duration_ms',
  'audio_bytes')
local fields = {'transcript_state', ARGV[2], 'engine', ARGV[5]}
if ARGV[2] == 'done' then
  fields[#fields + 1] = 'message'; fields[#fields + 1] = ARGV[3]
  if ARGV[4] ~= '' then
    fields[#fields + 1] = 'confidence'; fields[#fields + 1] = ARGV[4]
  end
else
  fields[#fields + 1] = 'transcript_error'; fields[#fields + 1] = ARGV[6]
end
redis.call('HSET', KEYS[1], unpack(fields))
local entry = {KEYS[2]}
local maxlen = tonumber(ARGV[7]) or 0
if maxlen > 0 then
  entry[#entry + 1] = 'MAXLEN'; entry[#entry + 1] = '~'; entry[#entry + 1] = maxlen
end
for _, v in ipairs({'*', 'type', 'transcript', 'username', h[1] or '', 'message', ARGV[3],
  'uuid', h[2] or '', 'ref', ARGV[1], 'audio', h[3] or '', 'audio_type', h[4] or '',
  'duration_ms', h[5] or '0', 'audio_bytes', h[6] or '0', 'transcript_state', ARGV[2],
  'engine', ARGV[5]}) do
  entry[#entry + 1] = v
end
if ARGV[4] ~= '' then entry[#entry + 1] = 'confidence'; entry[#entry + 1] = ARGV[4] end
if ARGV[6] ~= '' then entry[#entry + 1] = 'transcript_error'; entry[#entry + 1] = ARGV[6] end
local id = redis.call('XADD', unpack(entry))
local ms = tonumber(string.match(id, '^(%d+)'))
-- A delete of the message removes this entry too (it holds the text).
redis.call('HSET', KEYS[1], 'transcript_event', id)
local voice = {audio = h[3] or '', content_type = h[4] or '', duration_ms = tonumber(h[5] or '0'),
  bytes = tonumber(h[6] or '0'), state = ARGV[2], engine = ARGV[5], message_id = ARGV[1]}
if ARGV[4] ~= '' then voice.confidence = tonumber(ARGV[4]) end
if ARGV[6] ~= '' then voice.error = ARGV[6] end
redis.call('SPUBLISH', KEYS[3], cjson.encode({id = id, channel = ARGV[8], type = 'transcript',
  username = h[1] or '', text = ARGV[3], created_at = ms, uuid = h[2] or '', voice = voice}))
return id
"#;

const REQUEUE_LUA: &str = r#"
-- KEYS: 1 voice:jobs. ARGV: 1 group, 2 job id, 3 message id, 4 channel, 5 audio, 6 attempt,
--       7 last error
redis.call('XADD', KEYS[1], '*', 'message', ARGV[3], 'channel', ARGV[4], 'audio', ARGV[5],
  'attempt', ARGV[6], 'error', ARGV[7])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"#;

/// One transcription job as the stream holds it.
#[derive(Debug, Clone)]
pub struct Job {
    /// Stream ID in `voice:jobs`.
    pub id: String,
    /// The voice message's ID.
    pub message: String,
    pub channel: String,
    pub audio: String,
    /// Tries already made before this one (re-queued jobs count up).
    pub attempt: u32,
    /// The last try's error, if any.
    pub last_error: String,
}

/// How a job ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Done {
        text: String,
        confidence: Option<f64>,
        engine: String,
    },
    Failed {
        error: String,
        engine: String,
    },
}

/// A stream entry: ID and fields.
type Entry = (String, HashMap<String, String>);

fn job_from_entry(id: String, f: HashMap<String, String>) -> Job {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    Job {
        message: get("message"),
        channel: get("channel"),
        audio: get("audio"),
        attempt: f.get("attempt").and_then(|a| a.parse().ok()).unwrap_or(0),
        last_error: get("error"),
        id,
    }
}

impl Store {
    /// Transcribers whose heartbeat has not expired, anywhere.
    pub async fn live_transcribers(&self) -> Result<u64> {
        let mut conn = self.conn().await?;
        let now = now_ms();
        let n: u64 = conn.zcount(keys::VOICE_TRANSCRIBERS, now, "+inf").await?;
        Ok(n)
    }

    /// The current transcript state of a voice message (None: no such message).
    pub async fn transcript_state(
        &self,
        channel: &str,
        message_id: &str,
    ) -> Result<Option<String>> {
        let key = self.voice_message_key(channel, message_id).await?;
        let mut conn = self.conn().await?;
        Ok(conn.hget(key, fields::STATE).await?)
    }

    /// The hash of a voice message: `message:{channel:<c>}:<id>`, or the older layout's
    /// `message:<id>` where only that exists (its transcript is then stored there; on one Redis
    /// only, as that key is in another slot; `chatnode migrate` moves it).
    async fn voice_message_key(&self, channel: &str, id: &str) -> Result<String> {
        let key = keys::message(channel, id);
        let mut conn = self.conn().await?;
        let (new, old): (bool, bool) = redis::pipe()
            .exists(&key)
            .exists(keys::legacy::message(id))
            .query_async(&mut conn)
            .await?;
        Ok(if !new && old {
            keys::legacy::message(id)
        } else {
            key
        })
    }

    /// Queues the transcription of a stored voice message (after its posting script).
    pub(crate) async fn queue_transcription(
        &self,
        channel: &str,
        message_id: &str,
        audio_id: &str,
    ) -> Result<()> {
        let mut conn = self.shared();
        let _: String = redis::cmd("XADD")
            .arg(keys::VOICE_JOBS)
            .arg("*")
            .arg(&[
                ("message", message_id),
                ("channel", channel),
                ("audio", audio_id),
                ("attempt", "0"),
            ])
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// A connection for a transcriber: its blocking reads outlast the pool's reply timeout.
    pub async fn transcriber_conn(&self, read_block_ms: u64) -> Result<super::Conn> {
        self.dedicated(std::time::Duration::from_millis(read_block_ms + 5_000))
            .await
    }

    /// Creates the consumer group (and the stream) unless it exists.
    pub async fn ensure_voice_group(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(keys::VOICE_JOBS)
            .arg(keys::VOICE_GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Marks a transcriber live until `ttl_ms` from now (and drops expired ones).
    pub async fn transcriber_heartbeat(&self, consumer: &str, ttl_ms: u64) -> Result<()> {
        let mut conn = self.conn().await?;
        let now = now_ms();
        let _: () = redis::pipe()
            .zadd(keys::VOICE_TRANSCRIBERS, consumer, now + ttl_ms)
            .zrembyscore(keys::VOICE_TRANSCRIBERS, "-inf", now)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// A transcriber that stops says so.
    pub async fn transcriber_gone(&self, consumer: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: i64 = conn.zrem(keys::VOICE_TRANSCRIBERS, consumer).await?;
        Ok(())
    }

    /// The next new job for `consumer`, waiting up to `block_ms`.
    pub async fn next_job(
        &self,
        conn: &mut super::Conn,
        consumer: &str,
        block_ms: u64,
    ) -> Result<Option<Job>> {
        let reply: Option<Vec<(String, Vec<Entry>)>> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(keys::VOICE_GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(keys::VOICE_JOBS)
            .arg(">")
            .query_async(conn)
            .await?;
        Ok(reply
            .into_iter()
            .flatten()
            .flat_map(|(_, entries)| entries)
            .next()
            .map(|(id, f)| job_from_entry(id, f)))
    }

    /// A job another consumer took more than `min_idle_ms` ago and never finished (its node
    /// died), now taken by `consumer`; with how often it has been delivered.
    pub async fn claim_stale_job(
        &self,
        consumer: &str,
        min_idle_ms: u64,
    ) -> Result<Option<(Job, u64)>> {
        let mut conn = self.conn().await?;
        let reply: redis::Value = redis::cmd("XAUTOCLAIM")
            .arg(keys::VOICE_JOBS)
            .arg(keys::VOICE_GROUP)
            .arg(consumer)
            .arg(min_idle_ms)
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        let redis::Value::Array(parts) = reply else {
            return Ok(None);
        };
        let Some(entries) = parts.into_iter().nth(1) else {
            return Ok(None);
        };
        let entries: Vec<Option<(String, HashMap<String, String>)>> =
            redis::FromRedisValue::from_redis_value(entries)
                .map_err(|e| Error::Internal(format!("XAUTOCLAIM reply: {e}")))?;
        let Some((id, f)) = entries.into_iter().flatten().next() else {
            return Ok(None);
        };
        // XPENDING's delivery count includes this claim.
        let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(keys::VOICE_JOBS)
            .arg(keys::VOICE_GROUP)
            .arg(&id)
            .arg(&id)
            .arg(1)
            .query_async(&mut conn)
            .await?;
        let deliveries = pending.first().map(|p| p.3).unwrap_or(1);
        Ok(Some((job_from_entry(id, f), deliveries)))
    }

    /// Stores a job's outcome, appends and publishes the `transcript` event, and acknowledges
    /// the job, in one step. `None` when the message was no longer pending (already finished
    /// by another transcriber, or deleted): the job is acknowledged and nothing else happens.
    pub async fn finish_job(&self, job: &Job, outcome: &Outcome) -> Result<Option<String>> {
        let (state, text, confidence, engine, error) = match outcome {
            Outcome::Done {
                text,
                confidence,
                engine,
            } => (
                state::DONE,
                text.as_str(),
                confidence.map(|c| format!("{c:.4}")).unwrap_or_default(),
                engine.as_str(),
                "",
            ),
            Outcome::Failed { error, engine } => (
                state::FAILED,
                "",
                String::new(),
                engine.as_str(),
                error.as_str(),
            ),
        };
        let key = self.voice_message_key(&job.channel, &job.message).await?;
        let mut conn = self.conn().await?;
        let id: Option<String> = FINISH_SCRIPT
            .key(&key)
            .key(keys::channel(&job.channel))
            .key(keys::room_events(&job.channel))
            .arg(&job.message)
            .arg(state)
            .arg(text)
            .arg(confidence)
            .arg(engine)
            .arg(error)
            .arg(self.settings.history.stream_maxlen)
            .arg(&job.channel)
            .invoke_async(&mut conn)
            .await?;
        let _: () = redis::pipe()
            .cmd("XACK")
            .arg(keys::VOICE_JOBS)
            .arg(keys::VOICE_GROUP)
            .arg(&job.id)
            .ignore()
            .cmd("XDEL")
            .arg(keys::VOICE_JOBS)
            .arg(&job.id)
            .ignore()
            .query_async(&mut conn)
            .await?;
        drop(conn);
        if id.is_some() {
            self.index_hash(keys::messages_index(), &key).await;
        }
        Ok(id)
    }

    /// Puts a job back at the end of the queue for another try, acknowledging this delivery.
    pub async fn requeue_job(&self, job: &Job, attempt: u32, error: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: i64 = redis::Script::new(REQUEUE_LUA)
            .key(keys::VOICE_JOBS)
            .arg(keys::VOICE_GROUP)
            .arg(&job.id)
            .arg(&job.message)
            .arg(&job.channel)
            .arg(&job.audio)
            .arg(attempt)
            .arg(error)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
