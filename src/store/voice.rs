//! Voice messages in Redis: the audio (`audio:<id>`, binary-safe, with `audioinfo:<id>`), the
//! message posted with it, and reading both back (audio ranges for playback, a message's current
//! transcript state overlaid on what its stream entry says).
//!
//! Posting is one Lua script: audio, audio info, stream entry, message hash, search index,
//! activity, the live event and the transcription job are written together or not at all. The
//! jobs themselves, and the transcripts, are [`super::transcription`]'s. Like text posts, a voice
//! post must never write outside its script.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::AsyncCommands;

use super::ids::{parse_id, ADD_ENTRY_LUA};
use super::posting::{Guarded, Posted, GUARD_LUA};
use super::{keys, Store};
use crate::error::Result;
use crate::protocol::ChatEvent;
use crate::protocol::VoiceInfo;

/// Transcript states, as the message hash and the `voice.state` field carry them.
pub mod state {
    /// Queued or being transcribed.
    pub const PENDING: &str = "pending";
    /// Transcribed: the message text is the transcript.
    pub const DONE: &str = "done";
    /// Given up after the allowed tries; `error` says why.
    pub const FAILED: &str = "failed";
    /// No transcriber was running when the message was sent.
    pub const UNAVAILABLE: &str = "unavailable";
}

/// Field names in `message:<id>` hashes and in stream entries.
pub mod fields {
    pub const AUDIO: &str = "audio";
    pub const AUDIO_TYPE: &str = "audio_type";
    pub const DURATION_MS: &str = "duration_ms";
    pub const AUDIO_BYTES: &str = "audio_bytes";
    pub const STATE: &str = "transcript_state";
    pub const CONFIDENCE: &str = "confidence";
    pub const ENGINE: &str = "engine";
    pub const ERROR: &str = "transcript_error";
    /// On `transcript` stream entries: the voice message's ID.
    pub const REF: &str = "ref";
}

/// The voice details of a hash or stream entry, if it is a voice message or a transcript.
pub fn info_from_fields(f: &HashMap<String, String>) -> Option<VoiceInfo> {
    let audio = f.get(fields::AUDIO).filter(|a| !a.is_empty())?;
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let num = |k: &str| f.get(k).and_then(|v| v.parse::<f64>().ok());
    Some(VoiceInfo {
        audio: audio.clone(),
        content_type: get(fields::AUDIO_TYPE),
        duration_ms: num(fields::DURATION_MS).unwrap_or(0.0) as u64,
        bytes: num(fields::AUDIO_BYTES).unwrap_or(0.0) as u64,
        state: f
            .get(fields::STATE)
            .cloned()
            .unwrap_or_else(|| state::PENDING.into()),
        confidence: num(fields::CONFIDENCE),
        engine: get(fields::ENGINE),
        error: get(fields::ERROR),
        message_id: get(fields::REF),
    })
}

/// Runs after [`GUARD_LUA`], which answers repeated client_ids and counts the user's budget.
const POST_VOICE_LUA: &str = r#"
-- KEYS: 1 stream channel:<c>, 2 subject room:<c>, 3 activity active:<c>, 4 audio:<a>,
--       5 audioinfo:<a>, 6 voice:jobs, 7 the stream ID generator, then the guard's two keys
-- ARGV: 1 channel, 2 username, 3 uuid, 4 audio id, 5 audio bytes, 6 content type,
--       7 duration ms, 8 size, 9 transcript state, 10 maxlen, 11 addhash, 12 hash prefix,
--       13 index name, 14 seconds the audio is kept (0 = no expiry), then the guard's three values
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
if tonumber(ARGV[14]) > 0 then
  redis.call('EXPIRE', KEYS[4], ARGV[14])
  redis.call('EXPIRE', KEYS[5], ARGV[14])
end
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

/// Where a voice message's audio is, and who may hear it.
#[derive(Debug, Clone)]
pub struct AudioInfo {
    pub channel: String,
    pub message: String,
    pub content_type: String,
    pub bytes: u64,
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
            .arg(keys::IDX_MESSAGES)
            .arg(self.settings.voice.retention_days.saturating_mul(86_400));
        self.post_guard(username, channel, client_id)
            .apply(&mut inv);
        let mut conn = self.conn().await?;
        let reply: (String, String) = inv
            .invoke_async(&mut conn)
            .await
            .map_err(super::posting::write_outcome)?;
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
}
