//! Voice messages in Redis: the audio (`audio:{channel:<c>}:<a>`, binary-safe, with
//! `audioinfo:{channel:<c>}:<a>`, and `audiochannel:<a>` naming its channel), the
//! message posted with it, and reading both back (audio ranges for playback, a message's current
//! transcript state overlaid on what its stream entry says).
//!
//! Posting is one Lua script in the channel's slot: audio, audio info, stream entry, message
//! hash, activity and the live event are written together or not at all; the search entry and
//! the transcription job (keys of their own) follow it. The
//! jobs themselves, and the transcripts, are [`super::transcription`]'s. Like text posts, a voice
//! post must never write outside its script.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::AsyncCommands;

use super::ids::parse_id;
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

/// Field names in message hashes and in stream entries.
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

/// Runs after [`GUARD_LUA`], which answers repeated client_ids; every key is in the channel's
/// slot. The transcription job is queued after it (`voice:jobs` is a key of its own).
const POST_VOICE_LUA: &str = r#"
-- KEYS after the guard's four: 5 audio:{channel:<c>}:<a>, 6 audioinfo:{channel:<c>}:<a>
-- ARGV after the guard's five: 6 channel, 7 uuid, 8 audio id, 9 audio bytes, 10 content type,
--   11 duration ms, 12 size, 13 transcript state, 14 message-hash key prefix, 15 seconds the
--   audio is kept (0 = no expiry)
local id, ms = append({'type', 'message', 'username', ARGV[2], 'message', '', 'uuid', ARGV[7],
  'audio', ARGV[8], 'audio_type', ARGV[10], 'duration_ms', ARGV[11], 'audio_bytes', ARGV[12],
  'transcript_state', ARGV[13]})
redis.call('ZADD', KEYS[3], ms, ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -1001)
redis.call('HSET', ARGV[14] .. id, 'channel', ARGV[6], 'username', ARGV[2], 'message', '',
  'created_at', ms, 'uuid', ARGV[7], 'type', 'message', 'audio', ARGV[8],
  'audio_type', ARGV[10], 'duration_ms', ARGV[11], 'audio_bytes', ARGV[12],
  'transcript_state', ARGV[13])
redis.call('SET', KEYS[5], ARGV[9])
redis.call('HSET', KEYS[6], 'channel', ARGV[6], 'message', id, 'type', ARGV[10],
  'bytes', ARGV[12], 'duration_ms', ARGV[11], 'username', ARGV[2], 'created_at', ms)
if tonumber(ARGV[15]) > 0 then
  redis.call('EXPIRE', KEYS[5], ARGV[15])
  redis.call('EXPIRE', KEYS[6], ARGV[15])
end
redis.call('SPUBLISH', KEYS[2], cjson.encode({id = id, channel = ARGV[6], type = 'message',
  username = ARGV[2], text = '', created_at = ms, uuid = ARGV[7],
  voice = {audio = ARGV[8], content_type = ARGV[10], duration_ms = tonumber(ARGV[11]),
    bytes = tonumber(ARGV[12]), state = ARGV[13]}}))
remember(id)
return {'ok', id}
"#;

static POST_VOICE_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(&format!("{GUARD_LUA}{POST_VOICE_LUA}")));

/// Where a voice message's audio is, and who may hear it.
#[derive(Debug, Clone)]
pub struct AudioInfo {
    pub channel: String,
    pub message: String,
    pub content_type: String,
    pub bytes: u64,
    /// The key holding the audio bytes.
    pub key: String,
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
        let guard = self.post_guard(username, channel, client_id);
        // The pointer from the audio ID to its channel comes first: a refused post leaves only
        // it, pointing at no audio.
        // It expires with the audio (`voice.retention_days`).
        let keep_secs = self.settings.voice.retention_days.saturating_mul(86_400);
        let mut conn = self.shared();
        let mut set = redis::cmd("SET");
        set.arg(keys::audio_channel(&audio_id)).arg(channel);
        if keep_secs > 0 {
            set.arg("EX").arg(keep_secs);
        }
        let _: () = set.query_async(&mut conn).await?;
        let mut inv = guard.start(
            &POST_VOICE_SCRIPT,
            channel,
            false,
            self.settings.history.stream_maxlen,
        );
        inv.key(keys::audio(channel, &audio_id))
            .key(keys::audio_info(channel, &audio_id))
            .arg(channel)
            .arg(uuid)
            .arg(&audio_id)
            .arg(audio)
            .arg(content_type)
            .arg(duration_ms)
            .arg(audio.len())
            .arg(transcript_state)
            .arg(keys::message(channel, ""))
            .arg(keep_secs);
        guard.finish(&mut inv);
        let (id, duplicate) = match self.run_guarded(&guard, inv).await? {
            Guarded::Stored(id) => (id, false),
            Guarded::Duplicate(id) => (id, true),
            Guarded::NotMember => {
                return Err(crate::error::Error::Forbidden(
                    "join the channel before posting".into(),
                ))
            }
            Guarded::Refused(tag) => {
                return Err(crate::error::Error::Internal(format!(
                    "voice script answered {tag}"
                )))
            }
        };
        if !duplicate {
            self.index_message(channel, &id).await;
            if transcript_state == state::PENDING {
                self.queue_transcription(channel, &id, &audio_id).await?;
            }
        }
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
            ..Default::default()
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

    /// The channel, message and type of an audio ID, and where its bytes are (the older
    /// layout's `audioinfo:<a>` too).
    pub async fn audio_info(&self, audio_id: &str) -> Result<Option<AudioInfo>> {
        let mut conn = self.conn().await?;
        let (channel, old): (Option<String>, HashMap<String, String>) = redis::pipe()
            .get(keys::audio_channel(audio_id))
            .hgetall(keys::legacy::audio_info(audio_id))
            .query_async(&mut conn)
            .await?;
        let (h, key) = match channel {
            Some(c) => (
                conn.hgetall(keys::audio_info(&c, audio_id)).await?,
                keys::audio(&c, audio_id),
            ),
            None => (old, keys::legacy::audio(audio_id)),
        };
        let h: HashMap<String, String> = h;
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
            key,
        }))
    }

    /// Bytes `start..=end` of an audio (GETRANGE).
    pub async fn audio_range(&self, audio: &AudioInfo, start: u64, end: u64) -> Result<Vec<u8>> {
        let mut conn = self.conn().await?;
        let v: Vec<u8> = redis::cmd("GETRANGE")
            .arg(&audio.key)
            .arg(start)
            .arg(end)
            .query_async(&mut conn)
            .await?;
        Ok(v)
    }

    /// The whole audio, if it exists.
    pub async fn audio_bytes(&self, audio: &AudioInfo) -> Result<Option<Vec<u8>>> {
        let mut conn = self.conn().await?;
        Ok(conn.get(&audio.key).await?)
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
        let refs: Vec<(String, String)> = idx
            .iter()
            .map(|&i| (events[i].channel.clone(), events[i].id.clone()))
            .collect();
        let hashes = self.message_hashes(&refs).await?;
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
