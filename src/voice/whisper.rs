//! The local engine: OpenAI Whisper *base* converted for CTranslate2, run in-process through
//! `ct2rs` with int8 weights, in the language the settings name.
//!
//! Features are Whisper's own: 80 log-mel bins of a 400-point STFT every 160 samples at 16 kHz,
//! 30 s per chunk (zero-padded), clamped 8 below the chunk's peak and scaled to about [-1, 1].
//! The confidence is the geometric mean of the chosen tokens' probabilities (the exponent of
//! the length-normalized sequence score), averaged over the chunks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ct2rs::sys::{StorageView, Whisper, WhisperOptions};
use ct2rs::tokenizers::hf::Tokenizer as HfTokenizer;
use ct2rs::{ComputeType, Config, Device, Tokenizer};
use futures_util::future::{BoxFuture, FutureExt};
use mel_spec::mel::{log_mel_spectrogram, mel};
use mel_spec::stft::Spectrogram;
use ndarray::Array2;
use serde::Deserialize;

use super::engine::{Clip, Engine, EngineError, Transcript};
use crate::settings::Voice as VoiceSettings;

/// `preprocessor_config.json`, the values this engine uses.
#[derive(Debug, Clone, Deserialize)]
struct Preprocessor {
    feature_size: usize,
    hop_length: usize,
    n_fft: usize,
    n_samples: usize,
    nb_max_frames: usize,
    sampling_rate: usize,
}

/// Where to cut audio longer than one window: each cut falls at the quietest 20 ms of the last
/// 8 s before the window's end, so a word is not split between two chunks.
fn chunk_bounds(samples: &[f32], window: usize, rate: usize) -> Vec<(usize, usize)> {
    let frame = (rate / 50).max(1);
    let search = (8 * rate).min(window / 2);
    let mut bounds = Vec::new();
    let mut start = 0;
    while samples.len() - start > window {
        let end = start + window;
        let mut best = (f32::INFINITY, end);
        let mut at = end - search;
        while at + frame <= end {
            let energy: f32 = samples[at..at + frame].iter().map(|v| v * v).sum();
            if energy < best.0 {
                best = (energy, at + frame / 2);
            }
            at += frame;
        }
        bounds.push((start, best.1));
        start = best.1;
    }
    bounds.push((start, samples.len()));
    bounds
}

/// A loaded Whisper model.
pub struct LocalWhisper {
    model: Whisper,
    tokenizer: HfTokenizer,
    pre: Preprocessor,
    filters: Array2<f64>,
    language: String,
    beam_size: usize,
}

type Key = (PathBuf, usize, usize, String);

/// Models already loaded in this process (nodes started in one process share them).
fn loaded() -> &'static Mutex<HashMap<Key, Arc<LocalWhisper>>> {
    static MODELS: OnceLock<Mutex<HashMap<Key, Arc<LocalWhisper>>>> = OnceLock::new();
    MODELS.get_or_init(Default::default)
}

impl LocalWhisper {
    /// Loads the model of the settings, or the copy this process already has.
    pub fn shared(v: &VoiceSettings) -> Result<Arc<Self>, String> {
        let dir = PathBuf::from(&v.whisper_model_dir);
        let key = (
            dir.clone(),
            v.whisper_threads,
            v.whisper_beam_size,
            v.language.clone(),
        );
        let mut models = loaded()
            .lock()
            .map_err(|_| "model cache poisoned".to_string())?;
        if let Some(m) = models.get(&key) {
            return Ok(m.clone());
        }
        let m = Arc::new(Self::load(&dir, v)?);
        models.insert(key, m.clone());
        Ok(m)
    }

    /// Loads a model folder: model.bin, config.json, tokenizer.json, preprocessor_config.json.
    pub fn load(dir: &Path, v: &VoiceSettings) -> Result<Self, String> {
        let pre: Preprocessor = std::fs::read_to_string(dir.join("preprocessor_config.json"))
            .map_err(|e| format!("{}/preprocessor_config.json: {e}", dir.display()))
            .and_then(|t| {
                serde_json::from_str(&t).map_err(|e| format!("preprocessor_config.json: {e}"))
            })?;
        if pre.sampling_rate != super::audio::SPEECH_RATE as usize
            || pre.hop_length == 0
            || pre.n_samples / pre.hop_length != pre.nb_max_frames
        {
            return Err("preprocessor_config.json: unexpected feature-extractor values".into());
        }
        let config = Config {
            device: Device::CPU,
            compute_type: ComputeType::INT8,
            num_threads_per_replica: v.whisper_threads,
            ..Default::default()
        };
        let model = Whisper::new(dir, config).map_err(|e| format!("loading Whisper: {e}"))?;
        let tokenizer = HfTokenizer::new(dir).map_err(|e| format!("loading the tokenizer: {e}"))?;
        let filters = mel(
            pre.sampling_rate as f64,
            pre.n_fft,
            pre.feature_size,
            None,
            None,
            false,
            true,
        );
        Ok(LocalWhisper {
            model,
            tokenizer,
            pre,
            filters,
            language: v.language.clone(),
            beam_size: v.whisper_beam_size.max(1),
        })
    }

    /// Log-mel features of every 30 s chunk: `[chunks, mels, frames]`, row-major.
    fn features(&self, samples: &[f32]) -> (Vec<f32>, usize) {
        let p = &self.pre;
        let bounds = chunk_bounds(samples, p.n_samples, p.sampling_rate);
        let chunks = bounds.len();
        let mut out = Vec::with_capacity(chunks * p.feature_size * p.nb_max_frames);
        let silence = vec![0f32; p.hop_length];
        for &(start, end) in &bounds {
            let chunk = &samples[start..end];
            let mut stft = Spectrogram::new(p.n_fft, p.hop_length);
            // [frames][mels] first; the first frames before the window fills stay unset.
            let mut cols: Vec<Option<Vec<f64>>> = Vec::with_capacity(p.nb_max_frames);
            for i in 0..p.nb_max_frames {
                let from = i * p.hop_length;
                let hop = if from < chunk.len() {
                    &chunk[from..(from + p.hop_length).min(chunk.len())]
                } else {
                    &silence[..]
                };
                cols.push(stft.add(hop).map(|fft| {
                    log_mel_spectrogram(&fft, &self.filters)
                        .iter()
                        .copied()
                        .collect()
                }));
            }
            let peak = cols
                .iter()
                .flatten()
                .flat_map(|c| c.iter().copied())
                .fold(f64::NEG_INFINITY, f64::max);
            let floor = peak - 8.0;
            let norm = |x: f64| ((x.max(floor) + 4.0) / 4.0) as f32;
            let first = cols.iter().flatten().next().cloned().unwrap_or_default();
            for m in 0..p.feature_size {
                for col in &cols {
                    let v = match col {
                        Some(c) => c.get(m).copied().unwrap_or(floor),
                        None => first.get(m).copied().unwrap_or(floor),
                    };
                    out.push(norm(v));
                }
            }
        }
        (out, chunks)
    }

    /// Transcribes 16 kHz mono samples (blocking; seconds of CPU).
    pub fn run(&self, samples: &[f32]) -> Result<Transcript, String> {
        if samples.is_empty() {
            return Ok(Transcript {
                text: String::new(),
                confidence: None,
            });
        }
        let (mut feats, chunks) = self.features(samples);
        let shape = [chunks, self.pre.feature_size, self.pre.nb_max_frames];
        let view = StorageView::new(&shape, &mut feats, Device::CPU)
            .map_err(|e| format!("features: {e}"))?;
        let lang = format!("<|{}|>", self.language);
        let prompt = vec![
            "<|startoftranscript|>",
            lang.as_str(),
            "<|transcribe|>",
            "<|notimestamps|>",
        ];
        let options = WhisperOptions {
            beam_size: self.beam_size,
            return_scores: true,
            return_no_speech_prob: true,
            ..Default::default()
        };
        let results = self
            .model
            .generate(&view, &vec![prompt; chunks], &options)
            .map_err(|e| format!("whisper: {e}"))?;
        let mut texts = Vec::new();
        let mut confidences = Vec::new();
        for r in results {
            let Some(tokens) = r.sequences.into_iter().next() else {
                continue;
            };
            // Chunks of silence: Whisper says so itself, and its guesses there are noise.
            if r.no_speech_prob > 0.8 {
                continue;
            }
            let tokens: Vec<String> = tokens
                .into_iter()
                .filter(|t| !(t.starts_with("<|") && t.ends_with("|>")))
                .collect();
            let text = self
                .tokenizer
                .decode(tokens)
                .map_err(|e| format!("whisper tokens: {e}"))?;
            let text = text.trim().to_string();
            if text.is_empty() {
                continue;
            }
            if let Some(s) = r.scores.first() {
                confidences.push((*s as f64).exp().clamp(0.0, 1.0));
            }
            texts.push(text);
        }
        let confidence = (!confidences.is_empty())
            .then(|| confidences.iter().sum::<f64>() / confidences.len() as f64);
        Ok(Transcript {
            text: texts.join(" "),
            confidence,
        })
    }
}

/// The engine. The model loads on the first clip (a node that never gets a voice message never
/// spends the memory), once per process, and runs on a blocking thread per clip.
pub struct WhisperEngine {
    settings: VoiceSettings,
    model: Mutex<Option<Arc<LocalWhisper>>>,
}

impl WhisperEngine {
    /// Checks the model folder without loading it.
    pub fn new(v: &VoiceSettings) -> Result<Self, String> {
        let dir = Path::new(&v.whisper_model_dir);
        for f in [
            "model.bin",
            "config.json",
            "tokenizer.json",
            "preprocessor_config.json",
        ] {
            if !dir.join(f).is_file() {
                return Err(format!(
                    "no Whisper model in {} ({f} is missing; run scripts/fetch-whisper-model.sh)",
                    dir.display()
                ));
            }
        }
        Ok(WhisperEngine {
            settings: v.clone(),
            model: Mutex::new(None),
        })
    }
}

impl Engine for WhisperEngine {
    fn name(&self) -> String {
        "whisper-base".into()
    }

    fn transcribe<'a>(&'a self, clip: &'a Clip) -> BoxFuture<'a, Result<Transcript, EngineError>> {
        let samples = clip.samples.clone();
        async move {
            // Seconds of CPU: a blocking thread keeps the node's async threads free.
            let model = self.model_async().await?;
            tokio::task::spawn_blocking(move || model.run(&samples))
                .await
                .map_err(|e| EngineError::Retry(format!("whisper thread: {e}")))?
                .map_err(EngineError::Retry)
        }
        .boxed()
    }
}

impl WhisperEngine {
    async fn model_async(&self) -> Result<Arc<LocalWhisper>, EngineError> {
        if let Some(m) = self.model.lock().ok().and_then(|s| s.clone()) {
            return Ok(m);
        }
        let settings = self.settings.clone();
        let loaded = tokio::task::spawn_blocking(move || LocalWhisper::shared(&settings))
            .await
            .map_err(|e| EngineError::Retry(format!("loading Whisper: {e}")))?
            .map_err(EngineError::Fatal)?;
        if let Ok(mut slot) = self.model.lock() {
            *slot = Some(loaded.clone());
        }
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::chunk_bounds;

    #[test]
    fn long_audio_is_cut_at_its_quietest_point() {
        let rate = 16_000;
        // 45 s of sound with a pause at 26-27 s.
        let mut s = vec![0.5f32; 45 * rate];
        for v in &mut s[26 * rate..27 * rate] {
            *v = 0.0;
        }
        let b = chunk_bounds(&s, 30 * rate, rate);
        assert_eq!(b.len(), 2);
        assert!(b[0].1 > 26 * rate && b[0].1 < 27 * rate, "{b:?}");
        assert_eq!(b[1], (b[0].1, 45 * rate));
        assert_eq!(chunk_bounds(&s[..rate], 30 * rate, rate), vec![(0, rate)]);
        assert_eq!(chunk_bounds(&[], 30 * rate, rate), vec![(0, 0)]);
    }
}
