//! Audio in: which formats a voice message may have, decoding them in pure Rust (symphonia), and
//! turning them into what speech engines take (16 kHz mono `f32`, or a 16-bit WAV of it).
//!
//! The `Content-Type` of an upload names the format; `application/octet-stream` (or none) is
//! sniffed from the first bytes. The decoded codec must match the named format, so random bytes
//! that happen to contain an MP3 sync word are not taken for audio when they claim to be WAV.

use std::f64::consts::PI;
use std::io::Cursor;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{
    CodecType, DecoderOptions, CODEC_TYPE_AAC, CODEC_TYPE_FLAC, CODEC_TYPE_MP3, CODEC_TYPE_NULL,
    CODEC_TYPE_OPUS, CODEC_TYPE_VORBIS,
};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// The sample rate speech engines take.
pub const SPEECH_RATE: u32 = 16_000;

/// What the node accepts, as an error message names it.
pub const ACCEPTED: &str = "WAV (audio/wav), FLAC (audio/flac), MP3 (audio/mpeg), \
Ogg Vorbis (audio/ogg) and AAC/M4A (audio/aac, audio/mp4)";

/// A format a voice message may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Wav,
    Flac,
    Mp3,
    OggVorbis,
    /// AAC in ADTS frames.
    Aac,
    /// AAC in an MP4 container (`.m4a`).
    M4a,
}

impl Format {
    /// The `Content-Type` the audio is served with.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Wav => "audio/wav",
            Format::Flac => "audio/flac",
            Format::Mp3 => "audio/mpeg",
            Format::OggVorbis => "audio/ogg",
            Format::Aac => "audio/aac",
            Format::M4a => "audio/mp4",
        }
    }

    /// A short name for messages.
    pub fn label(self) -> &'static str {
        match self {
            Format::Wav => "WAV",
            Format::Flac => "FLAC",
            Format::Mp3 => "MP3",
            Format::OggVorbis => "Ogg Vorbis",
            Format::Aac => "AAC",
            Format::M4a => "M4A",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Wav => "wav",
            Format::Flac => "flac",
            Format::Mp3 => "mp3",
            Format::OggVorbis => "ogg",
            Format::Aac => "aac",
            Format::M4a => "m4a",
        }
    }

    fn codec_fits(self, codec: CodecType) -> bool {
        match self {
            // The WAV reader yields only PCM and ADPCM; anything else came from another reader.
            Format::Wav => ![
                CODEC_TYPE_NULL,
                CODEC_TYPE_FLAC,
                CODEC_TYPE_MP3,
                CODEC_TYPE_VORBIS,
                CODEC_TYPE_AAC,
                CODEC_TYPE_OPUS,
            ]
            .contains(&codec),
            Format::Flac => codec == CODEC_TYPE_FLAC,
            Format::Mp3 => codec == CODEC_TYPE_MP3,
            Format::OggVorbis => codec == CODEC_TYPE_VORBIS,
            Format::Aac | Format::M4a => codec == CODEC_TYPE_AAC,
        }
    }

    /// The stored form of the format (`audio/mp4` → M4a), for reading audio back.
    pub fn from_stored(mime: &str) -> Option<Format> {
        [
            Format::Wav,
            Format::Flac,
            Format::Mp3,
            Format::OggVorbis,
            Format::Aac,
            Format::M4a,
        ]
        .into_iter()
        .find(|f| f.mime() == mime)
    }
}

/// Why audio was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioError {
    /// 415: unknown, unsupported or undecodable; the text says why and what works.
    Unsupported(String),
    /// 413: longer than allowed.
    TooLong { seconds: f64, max_seconds: u64 },
}

impl std::fmt::Display for AudioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AudioError::Unsupported(why) => f.write_str(why),
            AudioError::TooLong {
                seconds,
                max_seconds,
            } => write!(
                f,
                "voice messages are at most {max_seconds} s; this one is {seconds:.1} s"
            ),
        }
    }
}

fn unsupported(why: impl std::fmt::Display) -> AudioError {
    AudioError::Unsupported(format!("{why}; voice messages may be {ACCEPTED}"))
}

/// The format a `Content-Type` names. `Ok(None)`: sniff the bytes (`application/octet-stream` or
/// no type). Opus, WebM and anything else are refused with a message naming what works.
pub fn format_from_content_type(content_type: Option<&str>) -> Result<Option<Format>, AudioError> {
    let Some(ct) = content_type.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let lower = ct.to_ascii_lowercase();
    let (essence, params) = lower.split_once(';').unwrap_or((lower.as_str(), ""));
    let essence = essence.trim();
    if params.contains("opus") {
        return Err(unsupported("Opus audio is not supported"));
    }
    Ok(Some(match essence {
        "audio/wav" | "audio/wave" | "audio/x-wav" | "audio/vnd.wave" | "audio/x-pn-wav" => {
            Format::Wav
        }
        "audio/flac" | "audio/x-flac" => Format::Flac,
        "audio/mpeg" | "audio/mp3" | "audio/mpeg3" | "audio/x-mpeg" | "audio/x-mp3" => Format::Mp3,
        "audio/ogg" | "audio/vorbis" | "audio/x-vorbis" | "application/ogg" | "audio/x-ogg" => {
            Format::OggVorbis
        }
        "audio/aac" | "audio/x-aac" | "audio/aacp" => Format::Aac,
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" | "audio/mp4a-latm" => Format::M4a,
        "application/octet-stream" => return Ok(None),
        "audio/opus" | "audio/webm" | "video/webm" | "audio/x-matroska" => {
            return Err(unsupported(format!("{essence} is not supported")))
        }
        other => {
            return Err(unsupported(format!(
                "`{other}` is not an accepted audio type"
            )))
        }
    }))
}

/// The format of a body by its first bytes.
pub fn sniff(bytes: &[u8]) -> Result<Format, AudioError> {
    let at = |i: usize, m: &[u8]| bytes.len() >= i + m.len() && &bytes[i..i + m.len()] == m;
    if at(0, b"RIFF") && at(8, b"WAVE") {
        return Ok(Format::Wav);
    }
    if at(0, b"fLaC") {
        return Ok(Format::Flac);
    }
    if at(0, b"OggS") {
        if bytes.windows(8).take(512).any(|w| w == b"OpusHead") {
            return Err(unsupported("Opus audio is not supported"));
        }
        return Ok(Format::OggVorbis);
    }
    if at(4, b"ftyp") {
        return Ok(Format::M4a);
    }
    if at(0, b"ID3") {
        return Ok(Format::Mp3);
    }
    if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        return Err(unsupported("WebM/Matroska audio is not supported"));
    }
    if bytes.len() >= 2 && bytes[0] == 0xFF {
        // ADTS: 1111 1111 1111 x00x; MPEG audio layer III: 1111 1111 111x x01x.
        if bytes[1] & 0xF6 == 0xF0 {
            return Ok(Format::Aac);
        }
        if bytes[1] & 0xE0 == 0xE0 && (bytes[1] >> 1) & 0x3 == 0x1 {
            return Ok(Format::Mp3);
        }
    }
    Err(unsupported("the body is not audio in a known format"))
}

/// Decoded audio, mixed down to one channel.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub format: Format,
    /// Mono samples in [-1, 1] at `rate`.
    pub samples: Vec<f32>,
    pub rate: u32,
    pub channels: usize,
}

impl Decoded {
    /// Length in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        if self.rate == 0 {
            return 0;
        }
        self.samples.len() as u64 * 1000 / self.rate as u64
    }

    /// The samples at 16 kHz, as speech engines take them.
    pub fn speech_samples(&self) -> Vec<f32> {
        resample(&self.samples, self.rate, SPEECH_RATE)
    }
}

/// The highest sample rate [`decode`] takes (stored audio was checked against the node's own,
/// lower, `voice.max_sample_rate` when it was uploaded).
pub const MAX_DECODE_RATE: u32 = crate::settings::MAX_SAMPLE_RATE;

/// Decodes a whole body as `format` (or the sniffed format when `None`). Audio longer than
/// `max_seconds` is refused as soon as decoding passes that length.
pub fn decode(
    bytes: &[u8],
    format: Option<Format>,
    max_seconds: u64,
) -> Result<Decoded, AudioError> {
    let r = run(bytes, format, max_seconds, MAX_DECODE_RATE, true)?;
    Ok(Decoded {
        format: r.format,
        samples: r.samples,
        rate: r.rate,
        channels: r.channels,
    })
}

/// What an upload needs to know of its audio: the format and the length in milliseconds.
/// Decodes the whole body to check it, but keeps no samples, so its memory does not grow with
/// the audio's length. Refused before any decoding: a sample rate above `max_rate` (415), and a
/// header that declares more than `max_seconds` (413).
pub fn measure(
    bytes: &[u8],
    format: Option<Format>,
    max_seconds: u64,
    max_rate: u32,
) -> Result<(Format, u64), AudioError> {
    let d = run(bytes, format, max_seconds, max_rate, false)?;
    Ok((d.format, d.frames * 1000 / u64::from(d.rate.max(1))))
}

/// What [`run`] decoded: the samples only when asked to keep them.
struct Run {
    format: Format,
    samples: Vec<f32>,
    frames: u64,
    rate: u32,
    channels: usize,
}

/// The most channels an upload may have (each is decoded before being mixed down).
pub const MAX_CHANNELS: usize = 8;

/// Sample rate and channel count from a WAV's `fmt ` chunk, read before the decoder sees the file
/// (the decoder panics on a rate of 0, and sizes its buffers by the channel count).
pub fn wav_header(bytes: &[u8]) -> Option<(u32, u16)> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12usize;
    while at.checked_add(8)? <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?) as usize;
        if id == b"fmt " {
            let body = bytes.get(at + 8..at + 8 + 8)?;
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            return Some((rate, channels));
        }
        at = at.checked_add(8)?.checked_add(size + (size & 1))?;
    }
    None
}

fn check_shape(rate: u32, channels: usize, max_rate: u32) -> Result<(), AudioError> {
    if !(1000..=max_rate).contains(&rate) {
        return Err(unsupported(format!(
            "its sample rate is {rate} Hz; voice messages may have 1000 to {max_rate} Hz"
        )));
    }
    if !(1..=MAX_CHANNELS).contains(&channels) {
        return Err(unsupported(format!(
            "it has {channels} channels; voice messages may have 1 to {MAX_CHANNELS}"
        )));
    }
    Ok(())
}

fn run(
    bytes: &[u8],
    format: Option<Format>,
    max_seconds: u64,
    max_rate: u32,
    keep: bool,
) -> Result<Run, AudioError> {
    let format = match format {
        Some(f) => f,
        None => sniff(bytes)?,
    };
    // Whatever the type claims: the decoders probe the bytes, and would read a WAV header.
    if let Some((rate, channels)) = wav_header(bytes) {
        check_shape(rate, channels as usize, max_rate)?;
    }
    // The decoders are third-party code fed hostile bytes: a panic in one is a refused upload,
    // not a failed request.
    let label = format.label();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_decoder(bytes, format, max_seconds, max_rate, keep)
    }))
    .unwrap_or_else(|_| {
        Err(unsupported(format!(
            "the body could not be decoded as {label}: the decoder gave up on it"
        )))
    })
}

fn run_decoder(
    bytes: &[u8],
    format: Format,
    max_seconds: u64,
    max_rate: u32,
    keep: bool,
) -> Result<Run, AudioError> {
    let label = format.label();
    let cant =
        |why: String| unsupported(format!("the body could not be decoded as {label}: {why}"));
    let mut hint = Hint::new();
    hint.with_extension(format.extension())
        .mime_type(format.mime());
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes.to_vec())), Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| cant(e.to_string()))?;
    let mut reader = probed.format;
    let track = reader
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| cant("no audio track".into()))?;
    let params = track.codec_params.clone();
    let track_id = track.id;
    if params.codec == CODEC_TYPE_OPUS {
        return Err(unsupported("Opus audio is not supported"));
    }
    if !format.codec_fits(params.codec) {
        return Err(cant("the content is another format".into()));
    }
    let rate = params
        .sample_rate
        .filter(|r| (1000..=MAX_DECODE_RATE).contains(r))
        .ok_or_else(|| cant("no usable sample rate".into()))?;
    if rate > max_rate {
        return Err(unsupported(format!(
            "its sample rate is {rate} Hz; voice messages may have at most {max_rate} Hz"
        )));
    }
    if let Some(ch) = params.channels {
        check_shape(rate, ch.count(), max_rate)?;
    }
    let limit_frames = (max_seconds + 1) * rate as u64;
    if let Some(n) = params.n_frames {
        // A header that promises more than the limit (and is not a streaming placeholder).
        if n > limit_frames && n < u32::MAX as u64 / 2 && bytes.len() as u64 >= n / 64 {
            return Err(AudioError::TooLong {
                seconds: n as f64 / rate as f64,
                max_seconds,
            });
        }
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| cant(e.to_string()))?;
    let mut samples: Vec<f32> = Vec::new();
    let mut frames = 0u64;
    let mut channels = params.channels.map(|c| c.count()).unwrap_or(0);
    let (mut good, mut bad) = (0usize, 0usize);
    let mut buf: Option<SampleBuffer<f32>> = None;
    loop {
        let packet = match reader.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(SymError::DecodeError(_)) => {
                bad += 1;
                if bad > 64 {
                    break;
                }
                continue;
            }
            Err(e) => return Err(cant(e.to_string())),
        };
        if packet.track_id() != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(decoded) => {
                good += 1;
                let spec = *decoded.spec();
                let n_ch = spec.channels.count().max(1);
                if n_ch > MAX_CHANNELS {
                    return Err(cant(format!("it has {n_ch} channels")));
                }
                channels = n_ch;
                let needed = decoded.capacity() as u64;
                if buf
                    .as_ref()
                    .is_none_or(|b| (b.capacity() as u64) < needed * n_ch as u64)
                {
                    buf = Some(SampleBuffer::<f32>::new(needed, spec));
                }
                let b = buf.as_mut().expect("set above");
                b.copy_interleaved_ref(decoded);
                frames += (b.samples().len() / n_ch) as u64;
                if keep {
                    for frame in b.samples().chunks(n_ch) {
                        let sum: f32 = frame.iter().sum();
                        samples.push((sum / n_ch as f32).clamp(-1.0, 1.0));
                    }
                }
                if frames > limit_frames {
                    return Err(AudioError::TooLong {
                        seconds: frames as f64 / rate as f64,
                        max_seconds,
                    });
                }
            }
            Err(SymError::DecodeError(_)) => bad += 1,
            Err(SymError::IoError(_)) => break,
            Err(e) => return Err(cant(e.to_string())),
        }
    }
    if good == 0 || frames == 0 {
        return Err(cant("no audio in it".into()));
    }
    if bad > good {
        return Err(cant("most of it is damaged".into()));
    }
    if let Some(n) = params.n_frames {
        let got = frames;
        // Fewer frames than the header promised: the file was cut short. Encoded formats may
        // differ from their headers by a few packets of priming and padding.
        if n < u32::MAX as u64 / 2 && got + got / 50 + 8192 < n {
            return Err(cant(format!(
                "it is truncated ({:.2} s of {:.2} s)",
                got as f64 / rate as f64,
                n as f64 / rate as f64
            )));
        }
    }
    let seconds = frames as f64 / rate as f64;
    if seconds > max_seconds as f64 {
        return Err(AudioError::TooLong {
            seconds,
            max_seconds,
        });
    }
    Ok(Run {
        format,
        samples,
        frames,
        rate,
        channels,
    })
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Band-limited resampling with a Hann-windowed sinc, one precomputed filter per phase.
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() || from == 0 || to == 0 {
        return input.to_vec();
    }
    let g = gcd(from as u64, to as u64);
    let (up, down) = ((to as u64 / g) as usize, (from as u64 / g) as usize);
    // Cutoff as a fraction of the input's Nyquist frequency, a little under the output's.
    let cutoff = (to as f64 / from as f64).min(1.0) * 0.94;
    let half = (12.0 / cutoff).ceil() as usize;
    let taps = 2 * half;
    let mut table = vec![0f32; up * taps];
    for p in 0..up {
        let frac = p as f64 / up as f64;
        let row = &mut table[p * taps..(p + 1) * taps];
        let mut sum = 0.0;
        for (j, slot) in row.iter_mut().enumerate() {
            // Input sample index (base + j + 1 - half) sits at distance x from the output time.
            let x = frac - (j as f64 + 1.0 - half as f64);
            let arg = x * cutoff;
            let sinc = if arg.abs() < 1e-12 {
                1.0
            } else {
                (PI * arg).sin() / (PI * arg)
            };
            let w = if x.abs() >= half as f64 {
                0.0
            } else {
                0.5 + 0.5 * (PI * x / half as f64).cos()
            };
            let h = sinc * w;
            *slot = h as f32;
            sum += h;
        }
        if sum.abs() > 1e-12 {
            for slot in row.iter_mut() {
                *slot /= sum as f32;
            }
        }
    }
    let out_len = (input.len() as u64 * up as u64 / down as u64) as usize;
    let mut out = Vec::with_capacity(out_len);
    let n_in = input.len() as i64;
    for n in 0..out_len {
        let pos = n as u64 * down as u64;
        let base = (pos / up as u64) as i64;
        let phase = (pos % up as u64) as usize;
        let row = &table[phase * taps..(phase + 1) * taps];
        let start = base + 1 - half as i64;
        let mut acc = 0f32;
        if start >= 0 && start + taps as i64 <= n_in {
            let s = &input[start as usize..start as usize + taps];
            for (a, b) in row.iter().zip(s) {
                acc += a * b;
            }
        } else {
            for (j, c) in row.iter().enumerate() {
                let k = start + j as i64;
                if (0..n_in).contains(&k) {
                    acc += c * input[k as usize];
                }
            }
        }
        out.push(acc);
    }
    out
}

/// A 16-bit PCM WAV of mono samples (what remote engines are sent).
pub fn wav_bytes(samples: &[f32], rate: u32) -> Vec<u8> {
    let data_len = samples.len() * 2;
    let mut out = Vec::with_capacity(44 + data_len);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((36 + data_len) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data_len as u32).to_le_bytes());
    for s in samples {
        out.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, secs: f64, hz: f64) -> Vec<f32> {
        (0..(rate as f64 * secs) as usize)
            .map(|i| (2.0 * PI * hz * i as f64 / rate as f64).sin() as f32 * 0.5)
            .collect()
    }

    fn stereo_wav(rate: u32, samples: &[f32]) -> Vec<u8> {
        let data_len = samples.len() * 4;
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&((36 + data_len) as u32).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * 4).to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data_len as u32).to_le_bytes());
        for s in samples {
            let v = ((s * 32767.0) as i16).to_le_bytes();
            out.extend_from_slice(&v);
            out.extend_from_slice(&v);
        }
        out
    }

    #[test]
    fn content_types_name_formats() {
        assert_eq!(
            format_from_content_type(Some("audio/wav")).unwrap(),
            Some(Format::Wav)
        );
        assert_eq!(
            format_from_content_type(Some("Audio/X-WAV; rate=16000")).unwrap(),
            Some(Format::Wav)
        );
        assert_eq!(
            format_from_content_type(Some("audio/mp4")).unwrap(),
            Some(Format::M4a)
        );
        assert_eq!(
            format_from_content_type(Some("application/octet-stream")).unwrap(),
            None
        );
        assert_eq!(format_from_content_type(None).unwrap(), None);
        let e = format_from_content_type(Some("audio/ogg; codecs=opus")).unwrap_err();
        assert!(e.to_string().contains("Opus"));
        assert!(e.to_string().contains("WAV"));
        assert!(format_from_content_type(Some("text/plain")).is_err());
        assert!(format_from_content_type(Some("audio/webm")).is_err());
    }

    #[test]
    fn sniffs_magic_bytes() {
        assert_eq!(sniff(&stereo_wav(8000, &[0.0; 10])).unwrap(), Format::Wav);
        assert_eq!(sniff(b"fLaC\0\0\0\x22").unwrap(), Format::Flac);
        assert_eq!(sniff(b"ID3\x04\0").unwrap(), Format::Mp3);
        assert_eq!(sniff(&[0xFF, 0xFB, 0x90, 0x64]).unwrap(), Format::Mp3);
        assert_eq!(sniff(&[0xFF, 0xF1, 0x50, 0x80]).unwrap(), Format::Aac);
        assert_eq!(sniff(b"\0\0\0\x20ftypM4A ").unwrap(), Format::M4a);
        assert!(sniff(b"OggS\0\x02........OpusHead").is_err());
        assert!(sniff(b"hello, this is text").is_err());
    }

    #[test]
    fn decodes_stereo_wav_to_mono_and_resamples() {
        let wav = stereo_wav(44_100, &tone(44_100, 1.0, 440.0));
        let d = decode(&wav, Some(Format::Wav), 60).unwrap();
        assert_eq!(d.rate, 44_100);
        assert_eq!(d.channels, 2);
        assert_eq!(d.duration_ms(), 1000);
        let s = d.speech_samples();
        assert_eq!(s.len(), 16_000);
        // A 440 Hz tone keeps its level through the resampler.
        let rms = (s[1000..15000].iter().map(|v| v * v).sum::<f32>() / 14000.0).sqrt();
        assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.02, "rms {rms}");
    }

    #[test]
    fn resampler_removes_what_the_output_cannot_carry() {
        // 12 kHz is above 16 kHz's Nyquist: it must not alias into the output.
        let s = resample(&tone(48_000, 0.5, 12_000.0), 48_000, SPEECH_RATE);
        let rms = (s[500..7500].iter().map(|v| v * v).sum::<f32>() / 7000.0).sqrt();
        assert!(rms < 0.01, "rms {rms}");
        // Upsampling keeps length and level.
        let up = resample(&tone(8_000, 0.5, 300.0), 8_000, SPEECH_RATE);
        assert_eq!(up.len(), 8_000);
    }

    #[test]
    fn refuses_truncated_long_and_foreign_audio() {
        let wav = stereo_wav(16_000, &tone(16_000, 2.0, 300.0));
        let cut = &wav[..wav.len() / 2];
        match decode(cut, Some(Format::Wav), 60) {
            Err(AudioError::Unsupported(m)) => assert!(m.contains("truncated"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(&wav, Some(Format::Wav), 1),
            Err(AudioError::TooLong { .. })
        ));
        assert!(matches!(
            decode(&wav[..20], Some(Format::Wav), 60),
            Err(AudioError::Unsupported(_))
        ));
        assert!(matches!(
            decode(&wav, Some(Format::Flac), 60),
            Err(AudioError::Unsupported(_))
        ));
        let noise: Vec<u8> = (0..50_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for f in [Some(Format::Wav), Some(Format::Mp3), None] {
            assert!(decode(&noise, f, 60).is_err(), "{f:?}");
        }
    }

    #[test]
    fn measuring_checks_like_decoding_and_refuses_high_rates_from_the_header() {
        let wav = stereo_wav(44_100, &tone(44_100, 1.5, 440.0));
        assert_eq!(
            measure(&wav, Some(Format::Wav), 60, 48_000).unwrap(),
            (Format::Wav, 1500)
        );
        // 384 kHz is refused by its header: no sample of it is decoded.
        let high = stereo_wav(384_000, &[0.0; 64]);
        match measure(&high, Some(Format::Wav), 60, 48_000) {
            Err(AudioError::Unsupported(m)) => assert!(m.contains("384000 Hz"), "{m}"),
            other => panic!("{other:?}"),
        }
        // A header declaring more than the limit is refused before decoding as well.
        let mut long = stereo_wav(8_000, &tone(8_000, 0.1, 300.0));
        let frames: u32 = 8_000 * 120;
        long[4..8].copy_from_slice(&(36 + frames * 4).to_le_bytes());
        long[40..44].copy_from_slice(&(frames * 4).to_le_bytes());
        long.resize(44 + (frames as usize * 4) / 32, 0);
        assert!(matches!(
            measure(&long, Some(Format::Wav), 60, 48_000),
            Err(AudioError::TooLong { .. })
        ));
        let cut = &wav[..wav.len() / 2];
        assert!(measure(cut, Some(Format::Wav), 60, 48_000).is_err());
    }

    #[test]
    fn wav_round_trip() {
        let t = tone(SPEECH_RATE, 0.25, 200.0);
        let d = decode(&wav_bytes(&t, SPEECH_RATE), None, 60).unwrap();
        assert_eq!(d.samples.len(), t.len());
        assert!((d.samples[100] - t[100]).abs() < 1e-3);
    }
}
