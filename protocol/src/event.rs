//! One stored event of a channel (a message, a join, a leave, a transcript), as chatnode's
//! frames and the REST API carry it.
//!
//! The derived serialization (fields in declaration order) is what the REST API answers; inside
//! a socket frame an event is written with its keys in byte order instead ([`InFrame`]), as the
//! socket has always sent it.

use std::collections::BTreeMap;

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// One stored event of a channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatEvent {
    /// Stream ID: the event's place in the channel, and its time.
    pub id: String,
    pub channel: String,
    /// `message`, `join`, `leave`, `transcript`, and the message actions `edit`, `delete` and
    /// `reaction`.
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
    /// `edit`, `delete`, `reaction`: the ID of the message acted on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// A message as it now is: when its text was last edited; an `edit` event: when it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    /// A deleted message's tombstone: no text, no audio, its place kept.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    /// A `reaction` event: what changed. (Not named after its type: a frame's payload is.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reacted: Option<ReactionChange>,
    /// A message as `history` returns it: each emoji's count, and whether the reader gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reactions: Option<BTreeMap<String, ReactionCount>>,
    /// A reply: the message it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ReplyRef>,
    /// A message as `history` returns it: how many replies it has.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reply_count: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a `reaction` event changed: `username` added (or took back) `emoji`, which the message
/// now has `count` times. Fields in byte order, as frames write them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionChange {
    /// True when given, false when taken back.
    pub added: bool,
    pub count: u64,
    pub emoji: String,
}

/// One emoji of a message's reaction summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionCount {
    pub count: u64,
    /// Whether the reader is among those who gave it.
    pub me: bool,
}

/// The message a reply answers: its ID, author and the start of its text (empty once it is
/// deleted, and then `deleted` is true).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyRef {
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    #[serde(default)]
    pub excerpt: String,
    pub id: String,
    #[serde(default)]
    pub username: String,
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
        if ev.deleted {
            map.serialize_entry("deleted", &true)?;
        }
        if let Some(at) = ev.edited_at {
            map.serialize_entry("edited_at", &at)?;
        }
        map.serialize_entry("id", &ev.id)?;
        if let Some(r) = &ev.reacted {
            map.serialize_entry("reacted", r)?;
        }
        if let Some(r) = &ev.reactions {
            map.serialize_entry("reactions", r)?;
        }
        if ev.reply_count > 0 {
            map.serialize_entry("reply_count", &ev.reply_count)?;
        }
        if let Some(r) = &ev.reply_to {
            map.serialize_entry("reply_to", r)?;
        }
        if !ev.target.is_empty() {
            map.serialize_entry("target", &ev.target)?;
        }
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

/// Writes one event as a socket frame does (for `serialize_with`).
pub(crate) fn serialize_one<S: Serializer>(
    ev: &ChatEvent,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    InFrame(ev).serialize(serializer)
}
