//! Remote engines: Deepgram's `POST /v1/listen` and any OpenAI-compatible
//! `POST /v1/audio/transcriptions` (OpenAI itself, whisper.cpp's server, faster-whisper servers).
//!
//! Both are sent the clip as a 16 kHz mono 16-bit WAV. Keys go only into the request header and
//! never into a log line or an error text.

use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use serde_json::Value;

use super::audio::{wav_bytes, SPEECH_RATE};
use super::engine::{Clip, Engine, EngineError, Transcript};
use crate::settings::Voice as VoiceSettings;

fn client(timeout_secs: u64) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout_secs))
        .connect_timeout(Duration::from_secs(timeout_secs.min(10)))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

fn base(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

/// A request that did not reach an answer.
fn transport_error(engine: &str, e: reqwest::Error) -> EngineError {
    let what = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        // Without the URL: it may carry query parameters, never worth logging.
        e.without_url().to_string()
    };
    EngineError::Retry(format!("{engine}: {what}"))
}

/// An answer that is not a success: 408, 429 and 5xx are worth retrying, other 4xx are not.
fn status_error(engine: &str, status: reqwest::StatusCode, body: &str) -> EngineError {
    let detail = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            [
                v.pointer("/error/message"),
                v.pointer("/err_msg"),
                v.pointer("/message"),
                v.pointer("/error"),
            ]
            .into_iter()
            .flatten()
            .find_map(|m| m.as_str().map(str::to_string))
        })
        .unwrap_or_else(|| body.chars().take(200).collect());
    let detail: String = detail.chars().take(200).collect();
    let msg = format!("{engine} answered {}: {detail}", status.as_u16());
    if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
        EngineError::Retry(msg)
    } else {
        EngineError::Fatal(msg)
    }
}

/// Deepgram pre-recorded transcription.
pub struct Deepgram {
    http: reqwest::Client,
    url: String,
    key: String,
    model: String,
    language: String,
}

impl Deepgram {
    pub fn new(v: &VoiceSettings) -> Result<Self, String> {
        if v.deepgram_key.expose().is_empty() {
            return Err("voice.deepgram_key is empty".into());
        }
        Ok(Deepgram {
            http: client(v.request_timeout_secs)?,
            url: base(&v.deepgram_url),
            key: v.deepgram_key.expose().to_string(),
            model: v.deepgram_model.clone(),
            language: v.language.clone(),
        })
    }

    async fn run(&self, clip: &Clip) -> Result<Transcript, EngineError> {
        let mut query = vec![("smart_format", "true"), ("punctuate", "true")];
        if !self.model.is_empty() {
            query.push(("model", &self.model));
        }
        if !self.language.is_empty() {
            query.push(("language", &self.language));
        }
        let res = self
            .http
            .post(format!("{}/v1/listen", self.url))
            .query(&query)
            .header("Authorization", format!("Token {}", self.key))
            .header("Content-Type", "audio/wav")
            .body(wav_bytes(&clip.samples, SPEECH_RATE))
            .send()
            .await
            .map_err(|e| transport_error("deepgram", e))?;
        let status = res.status();
        let body = res
            .text()
            .await
            .map_err(|e| transport_error("deepgram", e))?;
        if !status.is_success() {
            return Err(status_error("deepgram", status, &body));
        }
        let v: Value = serde_json::from_str(&body)
            .map_err(|_| EngineError::Retry("deepgram: the answer is not JSON".into()))?;
        let alt = v
            .pointer("/results/channels/0/alternatives/0")
            .ok_or_else(|| EngineError::Retry("deepgram: the answer has no alternatives".into()))?;
        Ok(Transcript {
            text: alt["transcript"].as_str().unwrap_or("").trim().to_string(),
            confidence: alt["confidence"].as_f64().map(|c| c.clamp(0.0, 1.0)),
        })
    }
}

impl Engine for Deepgram {
    fn name(&self) -> String {
        "deepgram".into()
    }
    fn transcribe<'a>(&'a self, clip: &'a Clip) -> BoxFuture<'a, Result<Transcript, EngineError>> {
        self.run(clip).boxed()
    }
}

/// An OpenAI-compatible transcription endpoint.
pub struct OpenAi {
    http: reqwest::Client,
    url: String,
    key: String,
    model: String,
    language: String,
}

impl OpenAi {
    pub fn new(v: &VoiceSettings) -> Result<Self, String> {
        Ok(OpenAi {
            http: client(v.request_timeout_secs)?,
            url: base(&v.openai_url),
            key: v.openai_key.expose().to_string(),
            model: v.openai_model.clone(),
            language: v.language.clone(),
        })
    }

    async fn run(&self, clip: &Clip) -> Result<Transcript, EngineError> {
        let file = reqwest::multipart::Part::bytes(wav_bytes(&clip.samples, SPEECH_RATE))
            .file_name("voice.wav")
            .mime_str("audio/wav")
            .map_err(|e| EngineError::Fatal(format!("openai: {e}")))?;
        let mut form = reqwest::multipart::Form::new()
            .part("file", file)
            .text("model", self.model.clone())
            .text("response_format", "json");
        if !self.language.is_empty() {
            form = form.text("language", self.language.clone());
        }
        let mut req = self
            .http
            .post(format!("{}/v1/audio/transcriptions", self.url))
            .multipart(form);
        if !self.key.is_empty() {
            req = req.bearer_auth(&self.key);
        }
        let res = req.send().await.map_err(|e| transport_error("openai", e))?;
        let status = res.status();
        let body = res.text().await.map_err(|e| transport_error("openai", e))?;
        if !status.is_success() {
            return Err(status_error("openai", status, &body));
        }
        let v: Value = serde_json::from_str(&body)
            .map_err(|_| EngineError::Retry("openai: the answer is not JSON".into()))?;
        let text = v["text"]
            .as_str()
            .ok_or_else(|| EngineError::Retry("openai: the answer has no text".into()))?;
        // Servers that add segments with average log-probabilities give a confidence too.
        let confidence = v["segments"].as_array().and_then(|segs| {
            let lp: Vec<f64> = segs
                .iter()
                .filter_map(|s| s["avg_logprob"].as_f64())
                .collect();
            (!lp.is_empty()).then(|| {
                (lp.iter().sum::<f64>() / lp.len() as f64)
                    .exp()
                    .clamp(0.0, 1.0)
            })
        });
        Ok(Transcript {
            text: text.trim().to_string(),
            confidence,
        })
    }
}

impl Engine for OpenAi {
    fn name(&self) -> String {
        format!("openai:{}", self.model)
    }
    fn transcribe<'a>(&'a self, clip: &'a Clip) -> BoxFuture<'a, Result<Transcript, EngineError>> {
        self.run(clip).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes() {
        let s = |c| reqwest::StatusCode::from_u16(c).unwrap();
        assert!(matches!(
            status_error("deepgram", s(401), r#"{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials."}"#),
            EngineError::Fatal(m) if m.contains("Invalid credentials")
        ));
        assert!(matches!(
            status_error("openai", s(429), r#"{"error":{"message":"Rate limit reached"}}"#),
            EngineError::Retry(m) if m.contains("Rate limit")
        ));
        assert!(matches!(
            status_error("openai", s(503), "<html>busy</html>"),
            EngineError::Retry(_)
        ));
    }
}
