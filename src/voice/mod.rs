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

use std::sync::RwLock;

use serde::Serialize;

pub use engine::{Clip, Engine, EngineError, Transcript};

/// What a voice message carries besides its text (a protocol type: events carry it).
pub use chatnode_protocol::VoiceInfo;

/// How a voice message is stored belongs to the store; these names are kept here for callers.
pub use crate::store::voice::{fields, info_from_fields, state};

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
    use std::collections::HashMap;

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
