//! Voice messages in Redis: the audio (`audio:<id>`, binary-safe, with `audioinfo:<id>`), the
//! message posted with it, the `voice:jobs` stream and its consumer group, live transcribers,
//! and storing a transcript exactly once.
//!
//! Posting is one Lua script: audio, audio info, stream entry, message hash, search index,
//! activity, the live event and the job are written together or not at all. Finishing is one
//! too: it writes only while the message's transcript is still `pending`, and acknowledges the
//! job in the same step, so a job that two transcribers both finished counts once.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;

use super::channels::{parse_id, Guarded, Posted, GUARD_LUA};
use super::ids::ADD_ENTRY_LUA;
use super::{keys, Store};
use crate::error::{Error, Result};
use crate::protocol::ChatEvent;
use crate::voice::{fields, info_from_fields, state, VoiceInfo};

/// Runs after [`GUARD_LUA`], which answers repeated client_ids and counts the user's budget.
const POST_VOICE_LUA: &str = r#"
-- KEYS: 1 stream channel:<c>, 2 subject room:<c>, 3 activity active:<c>, 4 audio:<a>,
--       5 audioinfo:<a>, 6 voice:jobs, 7 the stream ID generator, then the guard's two keys
-- ARGV: 1 channel, 2 username, 3 uuid, 4 audio id, 5 audio bytes, 6 content type,
--       7 duration ms, 8 size, 9 transcript state, 10 maxlen, 11 addhash, 12 hash prefix,
--       13 index name, then the guard's three values
local id, ms = add_entry(KEYS[7], KEYS[1], tonumber(ARGV[10]) or 0,
  {'type', 'message', 'username', ARGV[2], 'message', '', 'uuid', ARGV[3], 'audio', ARGV[4],
    'audio_type', ARGV[6], 'duration_ms', ARGV[7], 'audio_bytes', ARGV[8],
    'transcript_state', ARGV[9]},
  ARGV[12])
redis.call('ZADD', KEYS[3], ms, ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -1001)
local key = ARGV[12] .. id
redis.call('HSET', key, 'channel', ARGV[1], 'username', ARGV[2], 'message', '',
  'created_at', ms, 'uuid', ARGV[3], 'type', 'message', 'audio', ARGV[4],
  'audio_type', ARGV[6], 'duration_ms', ARGV[7], 'audio_bytes', ARGV[8],
  'transcript_state', ARGV[9])
if ARGV[11] == '1' then
  pcall(redis.call, 'FT.ADDHASH', ARGV[13], key, '1.0', 'REPLACE')
end
redis.call('SET', KEYS[4], ARGV[5])
redis.call('HSET', KEYS[5], 'channel', ARGV[1], 'message', id, 'type', ARGV[6],
  'bytes', ARGV[8], 'duration_ms', ARGV[7], 'username', ARGV[2], 'created_at', ms)
if ARGV[9] == 'pending' then
  redis.call('XADD', KEYS[6], '*', 'message', id, 'channel', ARGV[1], 'audio', ARGV[4],
    'attempt', '0')
end
redis.call('PUBLISH', KEYS[2], cjson.encode({id = id, channel = ARGV[1], type = 'message',
  username = ARGV[2], text = '', created_at = ms, uuid = ARGV[3],
  voice = {audio = ARGV[4], content_type = ARGV[6], duration_ms = tonumber(ARGV[7]),
    bytes = tonumber(ARGV[8]), state = ARGV[9]}}))
remember(id)
return {'ok', id}
"#;

static POST_VOICE_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(&format!("{GUARD_LUA}{ADD_ENTRY_LUA}{POST_VOICE_LUA}")));

static FINISH_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(&format!("{ADD_ENTRY_LUA}{FINISH_LUA}")));

const FINISH_LUA: &str = r#"
-- KEYS: 1 message:<id>, 2 stream channel:<c>, 3 subject room:<c>, 4 voice:jobs,
--       5 the stream ID generator
-- ARGV: 1 message id, 2 job id, 3 group, 4 state (done|failed), 5 text, 6 confidence ('' = none),
--       7 engine, 8 error, 9 maxlen, 10 addhash, 11 index name, 12 channel
local function ack()
  redis.call('XACK', KEYS[4], ARGV[3], ARGV[2])
  redis.call('XDEL', KEYS[4], ARGV[2])
end
if redis.call('HGET', KEYS[1], 'transcript_state') ~= 'pending' then
  ack()
  return false
end
local h = redis.call('HMGET', KEYS[1], 'username', 'uuid', 'audio', 'audio_type', 'duration_ms',
  'audio_bytes')
local fields = {'transcript_state', ARGV[4], 'engine', ARGV[7]}
if ARGV[4] == 'done' then
  fields[#fields + 1] = 'message'; fields[#fields + 1] = ARGV[5]
  if ARGV[6] ~= '' then
    fields[#fields + 1] = 'confidence'; fields[#fields + 1] = ARGV[6]
  end
else
  fields[#fields + 1] = 'transcript_error'; fields[#fields + 1] = ARGV[8]
end
redis.call('HSET', KEYS[1], unpack(fields))
if ARGV[10] == '1' then
  pcall(redis.call, 'FT.ADDHASH', ARGV[11], KEYS[1], '1.0', 'REPLACE')
end
local fields = {'type', 'transcript', 'username', h[1] or '', 'message', ARGV[5],
  'uuid', h[2] or '', 'ref', ARGV[1], 'audio', h[3] or '', 'audio_type', h[4] or '',
  'duration_ms', h[5] or '0', 'audio_bytes', h[6] or '0', 'transcript_state', ARGV[4],
  'engine', ARGV[7]}
if ARGV[6] ~= '' then fields[#fields + 1] = 'confidence'; fields[#fields + 1] = ARGV[6] end
if ARGV[8] ~= '' then fields[#fields + 1] = 'transcript_error'; fields[#fields + 1] = ARGV[8] end
local id, ms = add_entry(KEYS[5], KEYS[2], tonumber(ARGV[9]) or 0, fields, nil)
local voice = {audio = h[3] or '', content_type = h[4] or '', duration_ms = tonumber(h[5] or '0'),
  bytes = tonumber(h[6] or '0'), state = ARGV[4], engine = ARGV[7], message_id = ARGV[1]}
if ARGV[6] ~= '' then voice.confidence = tonumber(ARGV[6]) end
if ARGV[8] ~= '' then voice.error = ARGV[8] end
redis.call('PUBLISH', KEYS[3], cjson.encode({id = id, channel = ARGV[12], type = 'transcript',
  username = h[1] or '', text = ARGV[5], created_at = ms, uuid = h[2] or '', voice = voice}))
ack()
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

/// Where a voice message's audio is, and who may hear it.
#[derive(Debug, Clone)]
pub struct AudioInfo {
    pub channel: String,
    pub message: String,
    pub content_type: String,
    pub bytes: u64,
}

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
    /// Posts a voice message with its audio; queues its transcription when `transcript_state`
    /// is `pending`. The caller has checked membership and decoded the audio. Counted against
    /// the user's posting budget; with a non-empty `client_id` stored at most once, as
    /// [`Store::post_message_once`].
    #[allow(clippy::too_many_arguments)]
    pub async fn post_voice(
        &self,
        username: &str,
        uuid: &str,
        channel: &str,
        audio: &[u8],
        content_type: &str,
        duration_ms: u64,
        transcript_state: &str,
        client_id: Option<&str>,
    ) -> Result<Posted> {
        let audio_id = uuid::Uuid::new_v4().simple().to_string();
        let addhash = self.search.is_some_and(|v| v.needs_addhash());
        let mut inv = POST_VOICE_SCRIPT.key(keys::channel(channel));
        inv.key(keys::room_events(channel))
            .key(keys::activity(channel))
            .key(keys::audio(&audio_id))
            .key(keys::audio_info(&audio_id))
            .key(keys::VOICE_JOBS)
            .key(keys::STREAM_IDS)
            .arg(channel)
            .arg(username)
            .arg(uuid)
            .arg(&audio_id)
            .arg(audio)
            .arg(content_type)
            .arg(duration_ms)
            .arg(audio.len())
            .arg(transcript_state)
            .arg(self.settings.history.stream_maxlen)
            .arg(if addhash { "1" } else { "0" })
            .arg(keys::MESSAGE_PREFIX)
            .arg(keys::IDX_MESSAGES);
        self.post_guard(username, channel, client_id)
            .apply(&mut inv);
        let mut conn = self.conn().await?;
        let reply: (String, String) = inv.invoke_async(&mut conn).await?;
        drop(conn);
        let (id, duplicate) = match Guarded::from_reply(reply)? {
            Guarded::Stored(id) => (id, false),
            Guarded::Duplicate(id) => (id, true),
        };
        let created_at = parse_id(&id).map(|(ms, _)| ms as i64).unwrap_or(0);
        let event = ChatEvent {
            id,
            channel: channel.to_string(),
            kind: "message".into(),
            username: username.to_string(),
            text: String::new(),
            created_at,
            uuid: uuid.to_string(),
            voice: Some(VoiceInfo {
                audio: audio_id,
                content_type: content_type.to_string(),
                duration_ms,
                bytes: audio.len() as u64,
                state: transcript_state.to_string(),
                ..Default::default()
            }),
        };
        if !duplicate {
            return Ok(Posted {
                event,
                duplicate: false,
            });
        }
        // Sent before: the message as stored then (its transcript may have arrived meanwhile).
        let event = self
            .stored_event(channel, &event.id)
            .await?
            .unwrap_or(event);
        Ok(Posted {
            event,
            duplicate: true,
        })
    }

    /// The channel, message and type of an audio ID.
    pub async fn audio_info(&self, audio_id: &str) -> Result<Option<AudioInfo>> {
        let mut conn = self.conn().await?;
        let h: HashMap<String, String> = conn.hgetall(keys::audio_info(audio_id)).await?;
        let Some(channel) = h.get("channel").cloned() else {
            return Ok(None);
        };
        Ok(Some(AudioInfo {
            channel,
            message: h.get("message").cloned().unwrap_or_default(),
            content_type: h
                .get("type")
                .cloned()
                .unwrap_or_else(|| "application/octet-stream".into()),
            bytes: h.get("bytes").and_then(|b| b.parse().ok()).unwrap_or(0),
        }))
    }

    /// Bytes `start..=end` of an audio (GETRANGE).
    pub async fn audio_range(&self, audio_id: &str, start: u64, end: u64) -> Result<Vec<u8>> {
        let mut conn = self.conn().await?;
        let v: Vec<u8> = redis::cmd("GETRANGE")
            .arg(keys::audio(audio_id))
            .arg(start)
            .arg(end)
            .query_async(&mut conn)
            .await?;
        Ok(v)
    }

    /// The whole audio, if it exists.
    pub async fn audio_bytes(&self, audio_id: &str) -> Result<Option<Vec<u8>>> {
        let mut conn = self.conn().await?;
        Ok(conn.get(keys::audio(audio_id)).await?)
    }

    /// Transcribers whose heartbeat has not expired, anywhere.
    pub async fn live_transcribers(&self) -> Result<u64> {
        let mut conn = self.conn().await?;
        let now = now_ms();
        let n: u64 = conn.zcount(keys::VOICE_TRANSCRIBERS, now, "+inf").await?;
        Ok(n)
    }

    /// Voice messages read from the stream carry the state they were posted with; their
    /// hashes have the current one (and the transcript as text). Overlays those.
    pub async fn refresh_voice(&self, events: &mut [ChatEvent]) -> Result<()> {
        let idx: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.kind == "message" && e.voice.as_ref().is_some_and(|v| v.state == state::PENDING)
            })
            .map(|(i, _)| i)
            .collect();
        if idx.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        for &i in &idx {
            pipe.hgetall(keys::message(&events[i].id));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        for (i, h) in idx.into_iter().zip(hashes) {
            if let Some(v) = info_from_fields(&h) {
                if v.state == state::DONE {
                    events[i].text = h.get("message").cloned().unwrap_or_default();
                }
                events[i].voice = Some(v);
            }
        }
        Ok(())
    }

    /// The current transcript state of a voice message (None: no such message).
    pub async fn transcript_state(&self, message_id: &str) -> Result<Option<String>> {
        let mut conn = self.conn().await?;
        Ok(conn.hget(keys::message(message_id), fields::STATE).await?)
    }

    /// A connection for a transcriber: its blocking reads outlast the pool's reply timeout.
    pub async fn transcriber_conn(&self, read_block_ms: u64) -> Result<MultiplexedConnection> {
        let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(Some(
            std::time::Duration::from_millis(read_block_ms + 5_000),
        ));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await?)
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
        conn: &mut MultiplexedConnection,
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
        let addhash = self.search.is_some_and(|v| v.needs_addhash());
        let mut conn = self.conn().await?;
        let id: Option<String> = FINISH_SCRIPT
            .key(keys::message(&job.message))
            .key(keys::channel(&job.channel))
            .key(keys::room_events(&job.channel))
            .key(keys::VOICE_JOBS)
            .key(keys::STREAM_IDS)
            .arg(&job.message)
            .arg(&job.id)
            .arg(keys::VOICE_GROUP)
            .arg(state)
            .arg(text)
            .arg(confidence)
            .arg(engine)
            .arg(error)
            .arg(self.settings.history.stream_maxlen)
            .arg(if addhash { "1" } else { "0" })
            .arg(keys::IDX_MESSAGES)
            .arg(&job.channel)
            .invoke_async(&mut conn)
            .await?;
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
