//! Voice messages: audio formats, speech-to-text engines behind one trait, and the transcriber
//! actor that takes jobs from the `voice:jobs` stream on any node.
//!
//! An upload is stored and posted at once (`src/http/voice.rs`, `src/store/voice.rs`) with the
//! transcript `pending`, or `unavailable` when no transcriber runs anywhere. A transcriber
//! finishes the job with one Lua script that updates the message hash, appends a `transcript`
//! event to the channel stream, publishes it and acknowledges the job, so a result is stored
//! exactly once even when two transcribers worked on the same job. docs/VOICE.md has the rest.

pub mod audio;
pub mod engine;
pub mod remote;
pub mod transcriber;
#[cfg(feature = "whisper")]
pub mod whisper;

use std::collections::HashMap;
use std::sync::RwLock;

use serde::Serialize;

pub use engine::{Clip, Engine, EngineError, Transcript};

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

/// What a voice message carries besides its text (a protocol type: events carry it).
pub use chatnode_protocol::VoiceInfo;

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

/// The voice side of a node, as `/readyz` reports it.
#[derive(Debug, Default)]
pub struct Status {
    inner: RwLock<StatusInfo>,
}

/// A snapshot of [`Status`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusInfo {
    /// The configured engine: `whisper-base`, `deepgram`, `openai:<model>` or `none`.
    pub engine: String,
    /// `ready`, `loading`, `unavailable` or `disabled`.
    pub state: String,
    /// Why the engine is not ready, when it is not.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Whether this node runs a transcriber.
    pub transcriber: bool,
}

impl Status {
    pub fn new(info: StatusInfo) -> Self {
        Status {
            inner: RwLock::new(info),
        }
    }
    pub fn get(&self) -> StatusInfo {
        self.inner.read().map(|g| g.clone()).unwrap_or_default()
    }
    pub fn set(&self, f: impl FnOnce(&mut StatusInfo)) {
        if let Ok(mut g) = self.inner.write() {
            f(&mut g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_fields_round_trip() {
        let f: HashMap<String, String> = [
            ("audio", "a1"),
            ("audio_type", "audio/wav"),
            ("duration_ms", "2300"),
            ("audio_bytes", "73644"),
            ("transcript_state", "done"),
            ("confidence", "0.91"),
            ("engine", "whisper-base"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let v = info_from_fields(&f).unwrap();
        assert_eq!(v.duration_ms, 2300);
        assert_eq!(v.confidence, Some(0.91));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["state"], "done");
        assert!(json.get("error").is_none());
        assert!(info_from_fields(&HashMap::new()).is_none());
    }
}
