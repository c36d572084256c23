//! One stored event of a channel (a message, a join, a leave, a transcript), as chatnode's
//! frames and the REST API carry it.
//!
//! The derived serialization (fields in declaration order) is what the REST API answers; inside
//! a socket frame an event is written with its keys in byte order instead ([`InFrame`]), as the
//! socket has always sent it.

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// One stored event of a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatEvent {
    /// Stream ID: the event's place in the channel, and its time.
    pub id: String,
    pub channel: String,
    /// `message`, `join`, `leave`, `transcript`.
    #[serde(rename = "type")]
    pub kind: String,
    pub username: String,
    /// Message text (empty for join and leave).
    pub text: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Sender's UUID, when known (seed 004 addresses users by UUID).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uuid: String,
    /// Voice messages and their `transcript` events only: audio, length, transcript state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<VoiceInfo>,
}

/// What a voice message carries besides its text: on `message` events with audio and on the
/// `transcript` events that complete them. Absent on every other event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VoiceInfo {
    /// Audio ID: `GET /api/audio/{audio}` plays it.
    pub audio: String,
    /// `Content-Type` the audio is served with.
    #[serde(default)]
    pub content_type: String,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub bytes: u64,
    /// `pending`, `done`, `failed` or `unavailable`.
    pub state: String,
    /// 0..1, when the engine gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The engine that made the transcript (`whisper-base`, `deepgram`, `openai:<model>`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub engine: String,
    /// Why the transcript failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// On a `transcript` event: the ID of the voice message it completes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message_id: String,
}

/// An event as a socket frame writes it: the same fields, keys in byte order.
pub struct InFrame<'a>(pub &'a ChatEvent);

impl Serialize for InFrame<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ev = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("channel", &ev.channel)?;
        map.serialize_entry("created_at", &ev.created_at)?;
        map.serialize_entry("id", &ev.id)?;
        map.serialize_entry("text", &ev.text)?;
        map.serialize_entry("type", &ev.kind)?;
        map.serialize_entry("username", &ev.username)?;
        if !ev.uuid.is_empty() {
            map.serialize_entry("uuid", &ev.uuid)?;
        }
        if let Some(voice) = &ev.voice {
            map.serialize_entry("voice", &VoiceInFrame(voice))?;
        }
        map.end()
    }
}

/// A voice block as a socket frame writes it: keys in byte order.
struct VoiceInFrame<'a>(&'a VoiceInfo);

impl Serialize for VoiceInFrame<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("audio", &v.audio)?;
        map.serialize_entry("bytes", &v.bytes)?;
        if let Some(confidence) = v.confidence {
            map.serialize_entry("confidence", &confidence)?;
        }
        map.serialize_entry("content_type", &v.content_type)?;
        map.serialize_entry("duration_ms", &v.duration_ms)?;
        if !v.engine.is_empty() {
            map.serialize_entry("engine", &v.engine)?;
        }
        if !v.error.is_empty() {
            map.serialize_entry("error", &v.error)?;
        }
        if !v.message_id.is_empty() {
            map.serialize_entry("message_id", &v.message_id)?;
        }
        map.serialize_entry("state", &v.state)?;
        map.end()
    }
}

/// Writes a list of events as a socket frame does (for `serialize_with`).
pub(crate) fn serialize_list<S: Serializer>(
    events: &[ChatEvent],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(events.iter().map(InFrame))
}
