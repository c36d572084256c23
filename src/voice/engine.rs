//! The speech-to-text engine trait, and choosing an engine from the settings.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::settings::Voice as VoiceSettings;

/// Audio ready for an engine: 16 kHz mono samples.
#[derive(Debug, Clone)]
pub struct Clip {
    pub samples: Vec<f32>,
}

impl Clip {
    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / super::audio::SPEECH_RATE as u64
    }
}

/// What an engine heard.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub text: String,
    /// 0..1, when the engine gives one.
    pub confidence: Option<f64>,
}

/// Why an engine gave no transcript.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineError {
    /// Worth another try later (timeouts, 429, 5xx, connection failures).
    Retry(String),
    /// Trying again will not help (refused audio, bad key, bad request).
    Fatal(String),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Retry(m) | EngineError::Fatal(m) => f.write_str(m),
        }
    }
}

/// A speech-to-text engine.
pub trait Engine: Send + Sync {
    /// Its name as messages record it: `whisper-base`, `deepgram`, `openai:<model>`.
    fn name(&self) -> String;
    /// Transcribes one clip.
    fn transcribe<'a>(&'a self, clip: &'a Clip) -> BoxFuture<'a, Result<Transcript, EngineError>>;
}

/// The engine the settings ask for, or why there is none (`Err` carries the `/readyz` detail).
/// This only checks: the local model loads on its first clip.
pub fn from_settings(v: &VoiceSettings) -> Result<Arc<dyn Engine>, String> {
    match v.engine.as_str() {
        "none" => Err("no engine configured (voice.engine = none)".into()),
        "deepgram" => Ok(Arc::new(super::remote::Deepgram::new(v)?)),
        "openai" => Ok(Arc::new(super::remote::OpenAi::new(v)?)),
        "whisper" | "auto" => local(v),
        other => Err(format!("unknown voice.engine `{other}`")),
    }
}

/// The name `from_settings` would give, without loading anything.
pub fn configured_name(v: &VoiceSettings) -> String {
    match v.engine.as_str() {
        "deepgram" => "deepgram".into(),
        "openai" => format!("openai:{}", v.openai_model),
        "none" => "none".into(),
        _ => "whisper-base".into(),
    }
}

#[cfg(feature = "whisper")]
fn local(v: &VoiceSettings) -> Result<Arc<dyn Engine>, String> {
    Ok(Arc::new(super::whisper::WhisperEngine::new(v)?))
}

#[cfg(not(feature = "whisper"))]
fn local(_: &VoiceSettings) -> Result<Arc<dyn Engine>, String> {
    Err("this build has no local Whisper (build with --features whisper)".into())
}
