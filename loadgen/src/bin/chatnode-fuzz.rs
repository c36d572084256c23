//! `chatnode-fuzz`: sends random and mutated inputs to a running chatnode node and checks that
//! every one is answered in time with a documented error code (or a close code), that the node
//! neither dies nor grows, and that every post it acknowledged is stored.
//!
//! Inputs: WebSocket frames (every frame type with fields mutated, truncated and oversized JSON,
//! deep nesting, binary frames, invalid UTF-8), HTTP requests to every endpoint (mutated JSON
//! bodies, wrong content types, random bytes), and voice uploads (WAV, FLAC, Ogg, MP3 and WebM
//! headers, mutated). Frames of one socket are answered in order, so after each batch the
//! socket sends a marker (a frame of an unknown type) and waits for its answer: a marker not
//! answered within `--hang-secs` is a hang. Prints a JSON summary on stdout; exits 1 on any
//! crash, hang, internal error, undocumented code or lost post.
//!
//! Usage: chatnode-fuzz --url http://127.0.0.1:8080 [--inputs N] [--workers W] [--seed S]
//!        [--pid PID] [--hang-secs 5]

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use chatnode_protocol::ErrorCode;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

/// Frames per batch before a marker (below the server's 32 frames in flight per socket).
const BATCH: usize = 12;
const PASSWORD: &str = "fuzz-password-1";

struct Config {
    url: String,
    inputs: u64,
    workers: usize,
    seed: u64,
    pid: Option<u32>,
    hang: Duration,
    /// Only this kind of input: `ws`, `http` or `audio` (all when None).
    only: Option<String>,
}

fn parse_args() -> Result<Config, String> {
    let mut cfg = Config {
        url: String::new(),
        inputs: 100_000,
        workers: 4,
        seed: 1,
        pid: None,
        hang: Duration::from_secs(5),
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--url" => cfg.url = val()?.trim_end_matches('/').to_string(),
            "--inputs" => cfg.inputs = val()?.parse().map_err(|e| format!("--inputs: {e}"))?,
            "--workers" => cfg.workers = val()?.parse().map_err(|e| format!("--workers: {e}"))?,
            "--seed" => cfg.seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--pid" => cfg.pid = Some(val()?.parse().map_err(|e| format!("--pid: {e}"))?),
            "--only" => cfg.only = Some(val()?),
            "--hang-secs" => {
                cfg.hang = Duration::from_secs(val()?.parse().map_err(|e| format!("{e}"))?)
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if cfg.url.is_empty() {
        return Err("--url is required".into());
    }
    cfg.workers = cfg.workers.max(1);
    Ok(cfg)
}

/// xorshift64*: fast, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Up to `max` random bytes.
    fn noise(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Examples of each finding kept in the summary.
const EXAMPLES: usize = 20;
/// Characters of one input kept in an example.
const INPUT_CHARS: usize = 600;

/// What a worker sent on its socket since the last marker was answered (the `auth` first, then
/// the batch), described for the summary. A socket answers its frames in order, so an answer
/// read before the marker answers one of these; the batch is the context of an `internal` or a
/// hang. `seed` and `batch` let a run with the same seed be stopped there.
#[derive(Default)]
struct Sent {
    seed: u64,
    batch: u64,
    /// Each frame as the summary shows it.
    frames: Vec<String>,
    /// Each text frame whole, to send again when isolating the one an `internal` answers.
    texts: Vec<Option<String>>,
}

impl Sent {
    fn push(&mut self, m: &Message) {
        self.frames.push(describe(m));
        self.texts.push(match m {
            Message::Text(t) => Some(t.clone()),
            _ => None,
        });
    }
    fn example(&self, answer: &str) -> Value {
        json!({
            "answer": answer,
            "socket_inputs": self.frames,
            "worker_seed": self.seed,
            "batch": self.batch,
        })
    }
}

/// Sends the text frames of a batch that got an `internal` answer again, one at a time, each
/// followed by a marker, on a fresh socket: the first one answered `internal` again is the input
/// that causes it (None when none does alone: it took the frames before it, or a state since
/// changed).
async fn isolate(w: &World, token: &str, sent: &Sent, hang: Duration) -> Option<usize> {
    let mut scratch = Tally::default();
    let mut socket: Option<Socket> = None;
    for (i, text) in sent.texts.iter().enumerate() {
        let Some(text) = text else { continue };
        if socket.is_none() {
            socket = connect(w, token).await.ok();
        }
        let ws = socket.as_mut()?;
        let marker = format!("fuzz-isolate-{}-{}-{i}", sent.seed, sent.batch);
        let before = scratch.internal;
        let sent_ok = ws.send(Message::Text(text.clone())).await.is_ok()
            && ws
                .send(Message::Text(json!({"type": marker}).to_string()))
                .await
                .is_ok();
        let none = Sent::default();
        if !sent_ok
            || until_marker(ws, &marker, hang, &none, &mut scratch)
                .await
                .is_err()
        {
            socket = None;
        }
        if scratch.internal > before {
            return Some(i);
        }
    }
    None
}

/// A WebSocket input as text for a summary: the frame itself (cut at [`INPUT_CHARS`]), or what
/// it was when it is not text.
fn describe(m: &Message) -> String {
    match m {
        Message::Text(t) => cut(t, INPUT_CHARS),
        Message::Binary(b) => format!("binary frame, {} bytes", b.len()),
        Message::Frame(f) => format!(
            "text frame with invalid UTF-8 ({} bytes): {}",
            f.payload().len(),
            cut(&String::from_utf8_lossy(f.payload()), INPUT_CHARS)
        ),
        other => format!("{other:?}"),
    }
}

/// An HTTP input as JSON for a summary: method, path, content type, token or not, the body
/// (as text, cut at [`INPUT_CHARS`]) and its length.
fn describe_request(r: &Request) -> Value {
    json!({
        "method": r.method.as_str(),
        "path": r.path,
        "content_type": r.content_type,
        "auth": r.auth,
        "body": cut(&String::from_utf8_lossy(&r.body), INPUT_CHARS),
        "body_bytes": r.body.len(),
    })
}

/// The first `n` characters of `s`, and how long it was when longer.
fn cut(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        s.to_string()
    } else {
        format!(
            "{}… ({count} characters)",
            s.chars().take(n).collect::<String>()
        )
    }
}

/// What every worker counts.
#[derive(Default)]
struct Tally {
    inputs: u64,
    ws_frames: u64,
    http_requests: u64,
    audio_uploads: u64,
    hangs: u64,
    /// What did not answer in time, with the inputs sent just before (see [`Sent`]).
    hang_examples: Vec<Value>,
    internal: u64,
    /// Every `internal` answer (and 5xx) with the input(s) that caused it (see [`Sent`]).
    internal_examples: Vec<Value>,
    undocumented: BTreeMap<String, u64>,
    ws_codes: BTreeMap<String, u64>,
    close_codes: BTreeMap<String, u64>,
    http_answers: BTreeMap<String, u64>,
    reconnects: u64,
    /// (channel, id) of every post the node acknowledged.
    acked: Vec<(String, String)>,
    /// A fuzzed frame or request ended the worker's session: it signs in again.
    signed_out: bool,
    sign_ins: u64,
}

impl Tally {
    fn code(&mut self, code: &str) {
        *self.ws_codes.entry(code.to_string()).or_default() += 1;
        if serde_json::from_value::<ErrorCode>(json!(code)).is_err() {
            *self.undocumented.entry(code.to_string()).or_default() += 1;
        }
        if code == "internal" {
            self.internal += 1;
        }
    }
    fn merge(&mut self, o: Tally) {
        self.inputs += o.inputs;
        self.ws_frames += o.ws_frames;
        self.http_requests += o.http_requests;
        self.audio_uploads += o.audio_uploads;
        self.reconnects += o.reconnects;
        self.sign_ins += o.sign_ins;
        for (k, v) in o.ws_codes {
            *self.ws_codes.entry(k).or_default() += v;
        }
        for (k, v) in o.close_codes {
            *self.close_codes.entry(k).or_default() += v;
        }
        for (k, v) in o.http_answers {
            *self.http_answers.entry(k).or_default() += v;
        }
        self.merge_findings(o.hangs, o.hang_examples, o.internal, o.internal_examples);
        for (k, v) in o.undocumented {
            *self.undocumented.entry(k).or_default() += v;
        }
        self.acked.extend(o.acked);
    }
    /// The findings of the warm-up count (and its posts are checked), though its inputs and
    /// answers are not counted: the memory baseline follows it.
    fn merge_warm_up(&mut self, o: Tally) {
        self.merge_findings(o.hangs, o.hang_examples, o.internal, o.internal_examples);
        for (k, v) in o.undocumented {
            *self.undocumented.entry(k).or_default() += v;
        }
        self.acked.extend(o.acked);
    }
    fn merge_findings(
        &mut self,
        hangs: u64,
        hang_ex: Vec<Value>,
        internal: u64,
        int_ex: Vec<Value>,
    ) {
        self.hangs += hangs;
        self.hang_examples.extend(hang_ex);
        self.hang_examples.truncate(EXAMPLES);
        self.internal += internal;
        self.internal_examples.extend(int_ex);
        self.internal_examples.truncate(EXAMPLES);
    }
}

/// Shared facts of the run: the users, their channel and DM.
#[derive(Clone)]
struct World {
    base: String,
    ws: String,
    token: String,
    other_token: String,
    other_uuid: String,
    channel: String,
    dm: String,
}

// ---------------------------------------------------------------------------------------------
// Inputs.

/// Well-formed stream IDs at the ends of the ID space, where Redis refuses exclusive ranges
/// (`(0-0` as an end, `(<largest>` as a start), also written with leading zeros or without `-seq`.
const EDGE_IDS: &[&str] = &[
    "0-0",
    "0",
    "00-000",
    "0-1",
    "18446744073709551615-18446744073709551615",
    "18446744073709551615",
    "18446744073709551615-0",
    "0-18446744073709551615",
];

/// A stream ID near the present, or (one in 20) one at the ends of the ID space.
fn some_id(rng: &mut Rng) -> String {
    if rng.chance(5) {
        return rng.pick(EDGE_IDS).to_string();
    }
    format!(
        "{}-{}",
        1_700_000_000_000u64 + rng.below(1 << 30) as u64,
        rng.below(4)
    )
}

/// One of every frame a client may send, well formed.
fn frame_templates(w: &World, token: &str, rng: &mut Rng) -> Vec<Value> {
    let ch = &w.channel;
    let id = some_id(rng);
    vec![
        json!({"type": "auth", "auth": {"token": token}}),
        json!({"type": "signIn", "signIn": {"username": "fuzz-a", "password": "wrong-password"}}),
        json!({"type": "signUp", "signUp": {"username": format!("f{}", rng.next() % 1_000_000), "password": "x"}}),
        json!({"type": "signOut"}),
        json!({"type": "users"}),
        json!({"type": "channelJoin", "channelJoin": {"recipientUUID": ""}}),
        json!({"type": "channelJoin", "channelJoin": {"recipientUUID": w.other_uuid}}),
        json!({"type": "channelLeave", "channelLeave": {"recipientUUID": w.other_uuid}}),
        json!({"type": "channelMessage", "channelMessage": {"recipientUUID": w.other_uuid, "message": "hi"}}),
        json!({"type": "subscribe", "subscribe": {"channels": [ch, "general", w.dm]}}),
        json!({"type": "unsubscribe", "unsubscribe": {"channels": [ch]}}),
        json!({"type": "resume", "resume": {"channels": {ch: id}}}),
        json!({"type": "post", "post": {"channel": ch, "text": "fuzz post", "client_id": format!("c{}", rng.next())}}),
        json!({"type": "history", "history": {"channel": ch, "limit": 5, "before": id}}),
        json!({"type": "history", "history": {"channel": ch, "limit": 5, "after": id}}),
        json!({"type": "read", "read": {"channel": ch, "last_id": id}}),
        json!({"type": "typing", "typing": {"channel": ch}}),
        json!({"type": "edit", "edit": {"channel": ch, "id": id, "text": "edited"}}),
        json!({"type": "delete", "delete": {"channel": ch, "id": id}}),
        json!({"type": "react", "react": {"channel": ch, "id": id, "emoji": "👍"}}),
        json!({"type": "unreact", "unreact": {"channel": ch, "id": id, "emoji": "👍"}}),
        json!({"type": "replies", "replies": {"channel": ch, "id": id}}),
    ]
}

/// A JSON value of any kind, sometimes large or deeply nested.
fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 7 } else { 10 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(rng.next() as i64),
        3 => json!((rng.next() as f64) / 7.0 - 1e15),
        4 => json!(random_text(rng, 40)),
        5 => json!(""),
        6 => json!(random_text(rng, 5000)),
        7 => Value::Array(
            (0..rng.below(6))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        8 => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(5) {
                m.insert(random_text(rng, 8), random_value(rng, depth + 1));
            }
            Value::Object(m)
        }
        _ => deep(rng.below(300) + 1),
    }
}

fn deep(n: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..n {
        v = json!([v]);
    }
    v
}

/// Text with ASCII, control characters, markup, query syntax and non-ASCII.
fn random_text(rng: &mut Rng, max: usize) -> String {
    const PIECES: &[&str] = &[
        "a", "Z", "9", " ", "\n", "\t", "\u{0}", "\u{1b}", "\"", "\\", "<script>", "@", "|", "*",
        "{", "}", "dm:", ":", "-", "0-0", "é", "日本", "😀", "\u{202e}", "%00", "'; --", "$(",
        "..",
    ];
    let n = rng.below(max + 1);
    let mut s = String::new();
    while s.len() < n {
        let piece = PIECES[rng.below(PIECES.len())];
        s.push_str(piece);
    }
    s
}

/// Every byte but ASCII letters and digits as `%XX`, for a query string.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Changes one thing in a JSON object: a value, a key, the type, or removes or adds a field.
fn mutate(v: &mut Value, rng: &mut Rng) {
    let Some(obj) = v.as_object_mut() else {
        *v = random_value(rng, 0);
        return;
    };
    let keys: Vec<String> = obj.keys().cloned().collect();
    match rng.below(6) {
        0 if !keys.is_empty() => {
            let k = rng.pick(&keys).clone();
            match obj.get_mut(&k) {
                Some(inner @ Value::Object(_)) if rng.chance(70) => mutate(inner, rng),
                Some(slot) => *slot = random_value(rng, 0),
                None => {}
            }
        }
        1 if !keys.is_empty() => {
            let k = rng.pick(&keys).clone();
            obj.remove(&k);
        }
        2 => {
            obj.insert(random_text(rng, 10), random_value(rng, 0));
        }
        3 => {
            obj.insert("type".into(), random_value(rng, 0));
        }
        4 if !keys.is_empty() => {
            let k = rng.pick(&keys).clone();
            if let Some(val) = obj.remove(&k) {
                obj.insert(format!("{k}{}", random_text(rng, 3)), val);
            }
        }
        _ => {
            for k in keys {
                if let Some(inner @ Value::Object(_)) = obj.get_mut(&k) {
                    mutate(inner, rng);
                }
            }
        }
    }
}

/// One fuzzed WebSocket message.
fn ws_input(w: &World, token: &str, rng: &mut Rng) -> Message {
    let templates = frame_templates(w, token, rng);
    let mut frame = rng.pick(&templates).clone();
    match rng.below(100) {
        // Valid frames, as they are.
        0..=14 => Message::Text(frame.to_string()),
        // One or more mutations.
        15..=64 => {
            for _ in 0..=rng.below(3) {
                mutate(&mut frame, rng);
            }
            Message::Text(frame.to_string())
        }
        // Truncated JSON.
        65..=74 => {
            let t = frame.to_string();
            let cut = rng.below(t.len());
            let cut = (0..=cut)
                .rev()
                .find(|i| t.is_char_boundary(*i))
                .unwrap_or(0);
            Message::Text(t[..cut].to_string())
        }
        // Random text, sometimes JSON-looking.
        75..=82 => Message::Text(random_text(rng, 200)),
        // Deep nesting, alone or inside a frame.
        83..=87 => {
            let depth = rng.below(5000) + 100;
            if rng.chance(50) {
                Message::Text(format!("{}{}", "[".repeat(depth), "]".repeat(depth)))
            } else {
                Message::Text(format!(
                    r#"{{"type":"post","post":{{"channel":"{}","text":{}1{}}}}}"#,
                    w.channel,
                    "[".repeat(depth),
                    "]".repeat(depth)
                ))
            }
        }
        // Binary frames.
        88..=92 => Message::Binary(rng.noise(2048)),
        // Invalid UTF-8 in a text frame.
        93..=96 => {
            let mut b = frame.to_string().into_bytes();
            let at = rng.below(b.len());
            b[at] = 0xC3;
            if at + 1 < b.len() {
                b[at + 1] = 0x28;
            }
            Message::Frame(Frame::message(b, OpCode::Data(Data::Text), true))
        }
        // Oversized (beyond the 64 KiB frame limit) or just below it.
        _ => {
            let n = if rng.chance(50) { 70_000 } else { 60_000 };
            Message::Text(format!(
                r#"{{"type":"post","post":{{"channel":"{}","text":"{}"}}}}"#,
                w.channel,
                "x".repeat(n)
            ))
        }
    }
}

/// An HTTP request: method, path, body, content type, whether to send the token.
struct Request {
    method: reqwest::Method,
    path: String,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    auth: bool,
}

fn http_input(w: &World, rng: &mut Rng) -> Request {
    use reqwest::Method as M;
    let ch = w.channel.clone();
    let u = format!("f{}", rng.next() % 100_000);
    let id = some_id(rng);
    // A search value: a stopword, one letter, or random text (control characters, query
    // syntax), percent-encoded.
    let word = if rng.chance(50) {
        rng.pick(&["the", "a", "of", "x", "", "*", "-", "\u{0}"])
            .to_string()
    } else {
        random_text(rng, 20)
    };
    let word = percent_encode(&word);
    let endpoints: Vec<(M, String, Value, bool)> = vec![
        (
            M::POST,
            "/api/auth/register".into(),
            json!({"username": u, "password": "short"}),
            false,
        ),
        (
            M::POST,
            "/api/auth/login".into(),
            json!({"username": "fuzz-a", "password": "wrong-one"}),
            false,
        ),
        (M::POST, "/api/auth/logout".into(), json!({}), false),
        (M::GET, format!("/api/usernames/{u}"), Value::Null, false),
        (M::GET, "/api/me".into(), Value::Null, true),
        (
            M::PATCH,
            "/api/me".into(),
            json!({"city": "Leeds", "hobbies": ["go"]}),
            true,
        ),
        (
            M::PUT,
            "/api/me/password".into(),
            json!({"current": "not-it-at-all", "new": "another-password"}),
            true,
        ),
        (
            M::GET,
            "/api/users?q=ann|bob&limit=5".into(),
            Value::Null,
            true,
        ),
        (
            M::GET,
            "/api/users?near=53.8,-1.5&radius_km=10".into(),
            Value::Null,
            true,
        ),
        (M::GET, format!("/api/users?q={word}"), Value::Null, true),
        (M::GET, format!("/api/users?city={word}"), Value::Null, true),
        (
            M::GET,
            format!("/api/users?hobby={word}&country={word}"),
            Value::Null,
            true,
        ),
        (
            M::GET,
            format!("/api/search/messages?q=fuzz&username={word}"),
            Value::Null,
            true,
        ),
        (M::GET, format!("/api/search?q={word}"), Value::Null, true),
        (
            M::GET,
            format!("/api/mentions?before={id}"),
            Value::Null,
            true,
        ),
        (M::GET, "/api/users/online".into(), Value::Null, true),
        (M::GET, "/api/users/fuzz-b".into(), Value::Null, true),
        (M::GET, "/api/channels".into(), Value::Null, true),
        (M::GET, "/api/channels?all=true".into(), Value::Null, true),
        (
            M::POST,
            "/api/channels".into(),
            json!({"name": format!("x{}", rng.next() % 1000)}),
            true,
        ),
        (M::POST, format!("/api/channels/{ch}/join"), json!({}), true),
        (
            M::GET,
            format!("/api/channels/{ch}/messages?limit=3"),
            Value::Null,
            true,
        ),
        (
            M::POST,
            format!("/api/channels/{ch}/messages"),
            json!({"text": "rest fuzz", "client_id": format!("r{}", rng.next())}),
            true,
        ),
        (
            M::GET,
            format!("/api/channels/{ch}/messages?limit=3&before={id}"),
            Value::Null,
            true,
        ),
        (
            M::GET,
            format!("/api/channels/{ch}/messages?limit=3&after={id}"),
            Value::Null,
            true,
        ),
        (
            M::POST,
            format!("/api/channels/{ch}/read"),
            json!({"last_id": "1-0"}),
            true,
        ),
        (
            M::POST,
            format!("/api/channels/{ch}/read"),
            json!({"last_id": id}),
            true,
        ),
        (
            M::POST,
            "/api/dms".into(),
            json!({"username": "fuzz-b"}),
            true,
        ),
        (
            M::GET,
            "/api/search/messages?q=fuzz&limit=3".into(),
            Value::Null,
            true,
        ),
        (M::GET, "/api/search?q=fuzz".into(), Value::Null, true),
        (M::GET, "/api/mentions?limit=3".into(), Value::Null, true),
        (
            M::GET,
            format!("/api/channels/{ch}/active"),
            Value::Null,
            true,
        ),
        (M::GET, "/api/messages/recent".into(), Value::Null, true),
        (M::GET, "/api/stats/top-posters".into(), Value::Null, true),
        (
            M::GET,
            format!("/api/audio/{}", random_text(rng, 20)),
            Value::Null,
            true,
        ),
        (
            M::PATCH,
            format!("/api/channels/{ch}/messages/{id}"),
            json!({"text": "edited"}),
            true,
        ),
        (
            M::DELETE,
            format!("/api/channels/{ch}/messages/{id}"),
            Value::Null,
            true,
        ),
        (M::GET, format!("/api/channels/{ch}"), Value::Null, true),
        (
            M::PATCH,
            format!("/api/channels/{ch}"),
            json!({"topic": "fuzz topic"}),
            true,
        ),
        (
            M::DELETE,
            format!("/api/channels/x{}", rng.next() % 1000),
            Value::Null,
            true,
        ),
        (
            M::GET,
            format!("/api/channels/{ch}/members"),
            Value::Null,
            true,
        ),
        (
            M::POST,
            format!("/api/channels/{ch}/members"),
            json!({"username": "fuzz-b"}),
            true,
        ),
        (
            M::GET,
            format!("/api/channels/{ch}/bans"),
            Value::Null,
            true,
        ),
        (
            M::POST,
            format!("/api/channels/{ch}/bans"),
            json!({"username": u}),
            true,
        ),
        (
            M::POST,
            format!("/api/channels/{ch}/mutes"),
            json!({"username": u}),
            true,
        ),
        (
            M::POST,
            format!("/api/admin/users/{u}/disable"),
            json!({}),
            true,
        ),
        (M::GET, "/api/admin/overview".into(), Value::Null, true),
        (M::GET, "/healthz".into(), Value::Null, false),
        (M::GET, "/readyz".into(), Value::Null, false),
        (
            M::GET,
            format!("/{}", random_text(rng, 30)),
            Value::Null,
            false,
        ),
    ];
    let (method, mut path, mut body, auth) = rng.pick(&endpoints).clone();
    let mut content_type = Some("application/json");
    match rng.below(10) {
        0..=1 => {}
        2..=5 => mutate(&mut body, rng),
        6 => body = random_value(rng, 0),
        7 => {
            content_type = *rng.pick(&[
                None,
                Some("text/plain"),
                Some("application/x-www-form-urlencoded"),
            ])
        }
        8 => {
            // Query string mutated: random text appended (percent-encoded by the URL parser).
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(&random_text(rng, 30));
        }
        _ => {}
    }
    let mut bytes = if body.is_null() && rng.chance(70) {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    if rng.chance(5) {
        bytes = rng.noise(4096);
    } else if rng.chance(3) {
        let cut = rng.below(bytes.len() + 1);
        bytes.truncate(cut);
    } else if rng.chance(2) {
        bytes = format!("{{\"text\":\"{}\"}}", "y".repeat(70_000)).into_bytes();
    }
    Request {
        method,
        path,
        body: bytes,
        content_type,
        auth: auth || rng.chance(10),
    }
}

/// A voice upload: a header of some format, mutated, with the content type it claims.
fn audio_input(w: &World, rng: &mut Rng) -> Request {
    let mut body = match rng.below(6) {
        0 | 1 => wav(rng),
        2 => {
            // fLaC, a STREAMINFO block, then noise.
            let mut b = b"fLaC\x80\x00\x00\x22".to_vec();
            b.extend_from_slice(&[0x10, 0x00, 0x10, 0x00]);
            b.extend_from_slice(&rng.bytes(6));
            b.extend_from_slice(&[0x0A, 0xC4, 0x42, 0xF0]);
            b.extend_from_slice(&[rng.bytes(20), rng.noise(4000)].concat());
            b
        }
        3 => {
            // An Ogg page with a Vorbis identification header.
            let mut b = b"OggS\x00\x02".to_vec();
            b.extend_from_slice(&[0; 8]);
            b.extend_from_slice(&rng.bytes(12));
            b.extend_from_slice(&[1, 30, 1]);
            b.extend_from_slice(b"vorbis");
            b.extend_from_slice(&[0, 0, 0, 0, 1]);
            b.extend_from_slice(&0xBB80u32.to_le_bytes());
            b.extend_from_slice(&[rng.bytes(4), rng.noise(4000)].concat());
            b
        }
        4 => {
            // ID3 then MPEG frames.
            let mut b = b"ID3\x04\x00\x00\x00\x00\x00\x00".to_vec();
            for _ in 0..rng.below(40) + 1 {
                b.extend_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
                b.extend_from_slice(&rng.bytes(413));
            }
            b
        }
        _ => {
            // EBML (WebM/Matroska).
            let mut b = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01];
            b.extend_from_slice(b"\x42\x82\x84webm");
            b.extend_from_slice(&rng.noise(2000));
            b
        }
    };
    // Mutate a few bytes, mostly in the header.
    for _ in 0..rng.below(6) {
        if body.is_empty() {
            break;
        }
        let at = if rng.chance(70) {
            rng.below(body.len().min(64))
        } else {
            rng.below(body.len())
        };
        body[at] = rng.next() as u8;
    }
    if rng.chance(10) {
        let cut = rng.below(body.len() + 1);
        body.truncate(cut);
    }
    let content_type = *rng.pick(&[
        Some("audio/wav"),
        Some("audio/flac"),
        Some("audio/ogg"),
        Some("audio/mpeg"),
        Some("audio/webm"),
        Some("application/octet-stream"),
        None,
        Some("audio/ogg; codecs=opus"),
    ]);
    Request {
        method: reqwest::Method::POST,
        path: format!("/api/channels/{}/voice", w.channel),
        body,
        content_type,
        auth: true,
    }
}

/// A 16-bit PCM WAV of noise with a header that may lie (rate, channels, sizes).
fn wav(rng: &mut Rng) -> Vec<u8> {
    let rate: u32 = *rng.pick(&[8_000, 16_000, 44_100, 48_000, 96_000, 384_000, 0, u32::MAX]);
    let channels: u16 = *rng.pick(&[1, 2, 0, 6, 65_535]);
    let data = rng.noise(16_000);
    let declared: u32 = if rng.chance(20) {
        rng.next() as u32
    } else {
        data.len() as u32
    };
    let mut b = Vec::with_capacity(44 + data.len());
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&declared.wrapping_add(36).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&rate.wrapping_mul(2).to_le_bytes());
    b.extend_from_slice(&channels.wrapping_mul(2).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&declared.to_le_bytes());
    b.extend_from_slice(&data);
    b
}

// ---------------------------------------------------------------------------------------------
// Running.

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(w: &World, token: &str) -> Result<Socket, String> {
    let url = format!("{}?token={token}", w.ws);
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    Ok(ws)
}

/// Reads answers until the marker's; None when the socket closed (with its code). An `internal`
/// answer is kept with what was `sent` on the socket before it.
async fn until_marker(
    ws: &mut Socket,
    marker: &str,
    hang: Duration,
    sent: &Sent,
    t: &mut Tally,
) -> Result<(), Option<String>> {
    let deadline = Instant::now() + hang;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = match tokio::time::timeout(left, ws.next()).await {
            Err(_) => return Err(Some(format!("no answer to {marker} within {hang:?}"))),
            Ok(None) => return Err(None),
            Ok(Some(Err(e))) => {
                *t.close_codes
                    .entry(format!("error: {}", short(&e.to_string())))
                    .or_default() += 1;
                return Err(None);
            }
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(text) => {
                let v: Value = match serde_json::from_str(&text) {
                    Ok(v) => v,
                    Err(_) => {
                        t.internal += 1;
                        if t.internal_examples.len() < EXAMPLES {
                            t.internal_examples.push(
                                sent.example(&format!("not JSON from the node: {}", short(&text))),
                            );
                        }
                        continue;
                    }
                };
                match v["type"].as_str() {
                    Some("error") => {
                        let code = v["error"]["code"].as_str().unwrap_or("(none)").to_string();
                        let message = v["error"]["message"].as_str().unwrap_or("");
                        if code == "unknown_type" && message.contains(marker) {
                            return Ok(());
                        }
                        t.code(&code);
                        if code == "internal" && t.internal_examples.len() < EXAMPLES {
                            t.internal_examples.push(sent.example(&text));
                        }
                    }
                    Some("signOut") => t.signed_out = true,
                    Some("posted") => {
                        if let (Some(c), Some(id)) =
                            (v["posted"]["channel"].as_str(), v["posted"]["id"].as_str())
                        {
                            t.acked.push((c.to_string(), id.to_string()));
                        }
                    }
                    _ => {}
                }
            }
            Message::Close(c) => {
                let code = c
                    .map(|c| u16::from(c.code).to_string())
                    .unwrap_or_else(|| "none".into());
                *t.close_codes.entry(code).or_default() += 1;
                return Err(None);
            }
            _ => {}
        }
    }
}

fn short(s: &str) -> String {
    s.chars().take(160).collect()
}

async fn send_request(
    client: &reqwest::Client,
    w: &World,
    token: &str,
    r: Request,
    hang: Duration,
    t: &mut Tally,
) {
    let input = describe_request(&r);
    let mut req = client
        .request(r.method.clone(), format!("{}{}", w.base, r.path))
        .timeout(hang);
    if let Some(ct) = r.content_type {
        req = req.header("Content-Type", ct);
    }
    if r.auth {
        req = req.bearer_auth(token);
    }
    if !r.body.is_empty() {
        req = req.body(r.body);
    }
    let res = match req.send().await {
        Ok(res) => res,
        Err(e) if e.is_timeout() => {
            t.hangs += 1;
            t.hang_examples
                .push(json!({"answer": "no answer in time", "request": input}));
            return;
        }
        Err(e) => {
            *t.http_answers
                .entry(format!("failed: {}", short(&e.to_string())))
                .or_default() += 1;
            return;
        }
    };
    let status = res.status().as_u16();
    if status == 401 && r.auth {
        // The session was ended (a fuzzed signOut of this worker's socket): sign in again.
        t.signed_out = true;
    }
    let body = match tokio::time::timeout(hang, res.bytes()).await {
        Ok(Ok(b)) => b,
        _ => {
            t.hangs += 1;
            t.hang_examples
                .push(json!({"answer": format!("{status}, body not in time"), "request": input}));
            return;
        }
    };
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let code = v["error"]["code"].as_str().map(str::to_string);
    let key = match &code {
        Some(c) => format!("{status} {c}"),
        None => status.to_string(),
    };
    *t.http_answers.entry(key).or_default() += 1;
    if let Some(c) = &code {
        if serde_json::from_value::<ErrorCode>(json!(c)).is_err() {
            *t.undocumented.entry(c.clone()).or_default() += 1;
        }
    }
    // 503s with a documented code are answers (busy, Redis slow to answer on a loaded machine,
    // no search module); any other 5xx is a finding.
    let documented_503 = status == 503
        && matches!(
            code.as_deref(),
            Some(
                "busy"
                    | "unavailable"
                    | "search_unavailable"
                    | "redis_unavailable"
                    | "unknown_outcome"
            )
        );
    if status >= 500 && !documented_503 {
        t.internal += 1;
        if t.internal_examples.len() < EXAMPLES {
            t.internal_examples.push(json!({
                "answer": format!("{status} {}", short(&String::from_utf8_lossy(&body))),
                "request": input,
            }));
        }
    }
    if status >= 400 && status != 404 && code.is_none() && !r.path.starts_with("/api/audio") {
        *t.undocumented
            .entry(format!("{status} without a code"))
            .or_default() += 1;
    }
    if r.method == reqwest::Method::POST && r.path.ends_with("/messages") && status == 201 {
        if let (Some(c), Some(id)) = (
            v["message"]["channel"].as_str(),
            v["message"]["id"].as_str(),
        ) {
            t.acked.push((c.to_string(), id.to_string()));
        }
    }
}

async fn worker(w: World, n: u64, seed: u64, hang: Duration, only: Option<String>) -> Tally {
    let mut t = Tally::default();
    let mut rng = Rng::new(seed);
    let client = reqwest::Client::new();
    let mut ws: Option<Socket> = None;
    let mut marker_n = 0u64;
    let mut token = w.token.clone();
    while t.inputs < n {
        let kind = match only.as_deref() {
            Some("ws") => 0,
            Some("http") => 80,
            Some("audio") => 99,
            _ => rng.below(100),
        };
        if t.signed_out {
            t.signed_out = false;
            ws = None;
            match sign_in(&client, &w.base, "fuzz-a").await {
                Ok((fresh, _)) => {
                    token = fresh;
                    t.sign_ins += 1;
                }
                Err(e) => {
                    t.hangs += 1;
                    t.hang_examples
                        .push(json!({"answer": format!("signing in again: {e}")}));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    t.signed_out = true;
                    continue;
                }
            }
        }
        match kind {
            0..=74 => {
                let socket = match ws.as_mut() {
                    Some(s) => s,
                    None => match connect(&w, &token).await {
                        Ok(s) => {
                            t.reconnects += 1;
                            ws.insert(s)
                        }
                        Err(e) => {
                            t.hangs += 1;
                            t.hang_examples.push(json!({"answer": e}));
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    },
                };
                let mut sent_ok = true;
                marker_n += 1;
                let mut sent = Sent {
                    seed,
                    batch: marker_n,
                    frames: Vec::with_capacity(BATCH + 1),
                    texts: Vec::with_capacity(BATCH + 1),
                };
                // Signed in again first: a fuzzed signOut or auth may have signed it out.
                let auth = json!({"type": "auth", "auth": {"token": "(the worker's token)"}});
                sent.frames.push(auth.to_string());
                let auth = json!({"type": "auth", "auth": {"token": token}}).to_string();
                sent.texts.push(Some(auth.clone()));
                if socket.send(Message::Text(auth)).await.is_err() {
                    sent_ok = false;
                }
                for _ in 0..BATCH {
                    if !sent_ok || t.inputs >= n {
                        break;
                    }
                    let m = ws_input(&w, &token, &mut rng);
                    t.inputs += 1;
                    t.ws_frames += 1;
                    sent.push(&m);
                    if socket.send(m).await.is_err() {
                        sent_ok = false;
                    }
                }
                let marker = format!("fuzz-marker-{seed}-{marker_n}");
                if sent_ok {
                    let frame = json!({"type": marker}).to_string();
                    sent_ok = socket.send(Message::Text(frame)).await.is_ok();
                }
                let examples_before = t.internal_examples.len();
                match until_marker(socket, &marker, hang, &sent, &mut t).await {
                    Ok(()) => {}
                    Err(Some(hang_text)) => {
                        t.hangs += 1;
                        t.hang_examples.push(sent.example(&hang_text));
                        ws = None;
                    }
                    Err(None) => ws = None,
                }
                // A new example: which of the batch's frames causes it, sent again alone.
                if t.internal_examples.len() > examples_before {
                    let found = isolate(&w, &token, &sent, hang).await;
                    if let Some(example) = t.internal_examples.last_mut() {
                        example["reproduced_by"] = match found {
                            Some(i) => json!(sent.frames[i]),
                            None => Value::Null,
                        };
                    }
                }
                let _ = sent_ok;
            }
            75..=94 => {
                let r = http_input(&w, &mut rng);
                t.inputs += 1;
                t.http_requests += 1;
                send_request(&client, &w, &token, r, hang, &mut t).await;
            }
            _ => {
                let r = audio_input(&w, &mut rng);
                t.inputs += 1;
                t.audio_uploads += 1;
                send_request(&client, &w, &token, r, hang, &mut t).await;
            }
        }
    }
    t
}

// ---------------------------------------------------------------------------------------------
// Set-up, checks, summary.

async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    name: &str,
) -> Result<(String, String), String> {
    let body = json!({"username": name, "password": PASSWORD});
    let mut res = client
        .post(format!("{base}/api/auth/register"))
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if res.status().as_u16() == 409 {
        res = client
            .post(format!("{base}/api/auth/login"))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
    }
    let status = res.status();
    let v: Value = res.json().await.map_err(|e| e.to_string())?;
    let token = v["token"]
        .as_str()
        .ok_or(format!("sign-in of {name}: {status} {v}"))?;
    let uuid = v["user"]["uuid"].as_str().unwrap_or("").to_string();
    Ok((token.to_string(), uuid))
}

async fn setup(base: &str, seed: u64) -> Result<World, String> {
    let client = reqwest::Client::new();
    let (token, _) = sign_in(&client, base, "fuzz-a").await?;
    let (other_token, other_uuid) = sign_in(&client, base, "fuzz-b").await?;
    // One channel for every run (fuzzed requests spend the user's channel-creation budget);
    // `general`, which always exists, when it could not be made.
    let mut channel = "fuzz".to_string();
    let _ = seed;
    let _ = client
        .post(format!("{base}/api/channels"))
        .bearer_auth(&token)
        .json(&json!({"name": channel}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let join = |channel: String| {
        let (client, token) = (client.clone(), token.clone());
        async move {
            client
                .post(format!("{base}/api/channels/{channel}/join"))
                .bearer_auth(&token)
                .json(&json!({}))
                .send()
                .await
                .map_err(|e| e.to_string())
        }
    };
    let mut joined = join(channel.clone()).await?;
    if joined.status().as_u16() == 404 {
        channel = "general".into();
        joined = join(channel.clone()).await?;
    }
    if joined.status().as_u16() != 204 {
        return Err(format!("join {channel}: {}", joined.status()));
    }
    let dm: Value = client
        .post(format!("{base}/api/dms"))
        .bearer_auth(&token)
        .json(&json!({"username": "fuzz-b"}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let other_uuid = if other_uuid.is_empty() {
        let me: Value = client
            .get(format!("{base}/api/me"))
            .bearer_auth(&other_token)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        me["uuid"].as_str().unwrap_or("").to_string()
    } else {
        other_uuid
    };
    Ok(World {
        ws: format!("{}/ws", base.replacen("http", "ws", 1)),
        base: base.to_string(),
        token,
        other_token,
        other_uuid,
        channel,
        dm: dm["channel"]
            .as_str()
            .unwrap_or("dm:fuzz-a:fuzz-b")
            .to_string(),
    })
}

/// The acknowledged posts that the channel's history does not have.
async fn missing_posts(w: &World, acked: &[(String, String)]) -> Result<Vec<String>, String> {
    let client = reqwest::Client::new();
    let mut missing = Vec::new();
    let channels: HashSet<&String> = acked.iter().map(|(c, _)| c).collect();
    for ch in channels {
        let mut stored = HashSet::new();
        let mut after = "0-0".to_string();
        loop {
            let v: Value = client
                .get(format!(
                    "{}/api/channels/{ch}/messages?limit=200&after={after}",
                    w.base
                ))
                .bearer_auth(&w.other_token)
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            let page = v["messages"].as_array().cloned().unwrap_or_default();
            for m in &page {
                if let Some(id) = m["id"].as_str() {
                    stored.insert(id.to_string());
                    after = id.to_string();
                }
            }
            if !v["has_more"].as_bool().unwrap_or(false) || page.is_empty() {
                break;
            }
        }
        for (c, id) in acked {
            if c == ch && !stored.contains(id) {
                missing.push(format!("{c} {id}"));
            }
        }
    }
    Ok(missing)
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

async fn alive(w: &World, pid: Option<u32>) -> bool {
    if let Some(pid) = pid {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return false;
        }
    }
    matches!(
        reqwest::Client::new()
            .get(format!("{}/healthz", w.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await,
        Ok(r) if r.status().is_success()
    )
}

async fn run(cfg: Config) -> Result<bool, String> {
    let w = setup(&cfg.url, cfg.seed).await?;
    // A warm-up (a twentieth, at most 20,000) before the memory baseline: first allocations of
    // pools, buffers and caches are not growth.
    let warm = (cfg.inputs / 20).min(20_000);
    let warm_up = worker(
        w.clone(),
        warm,
        cfg.seed ^ 0xABCD,
        cfg.hang,
        cfg.only.clone(),
    )
    .await;
    let rss_before = rss_kib(cfg.pid);
    let started = Instant::now();
    let per = cfg.inputs / cfg.workers as u64;
    let mut tasks = Vec::new();
    for i in 0..cfg.workers {
        let n = if i == 0 {
            cfg.inputs - per * (cfg.workers as u64 - 1)
        } else {
            per
        };
        let w = w.clone();
        let seed = cfg.seed.wrapping_mul(1000).wrapping_add(i as u64);
        tasks.push(tokio::spawn(worker(w, n, seed, cfg.hang, cfg.only.clone())));
    }
    let mut total = Tally::default();
    total.merge_warm_up(warm_up);
    for task in tasks {
        total.merge(task.await.map_err(|e| e.to_string())?);
    }
    let seconds = started.elapsed().as_secs_f64();
    let alive = alive(&w, cfg.pid).await;
    let rss_after = rss_kib(cfg.pid);
    let missing = if alive {
        missing_posts(&w, &total.acked).await?
    } else {
        Vec::new()
    };
    let crashes = u64::from(!alive);
    let ok = crashes == 0
        && total.hangs == 0
        && total.internal == 0
        && total.undocumented.is_empty()
        && missing.is_empty();
    let summary = json!({
        "ok": ok,
        "inputs": total.inputs,
        "ws_frames": total.ws_frames,
        "http_requests": total.http_requests,
        "audio_uploads": total.audio_uploads,
        "seconds": (seconds * 10.0).round() / 10.0,
        "inputs_per_second": (total.inputs as f64 / seconds).round(),
        "crashes": crashes,
        "hangs": total.hangs,
        "hang_examples": total.hang_examples,
        "internal_errors": total.internal,
        "internal_examples": total.internal_examples,
        "undocumented_codes": total.undocumented,
        "ws_error_codes": total.ws_codes,
        "close_codes": total.close_codes,
        "http_answers": total.http_answers,
        "socket_reconnects": total.reconnects,
        "sign_ins_after_sign_out": total.sign_ins,
        "posts_acknowledged": total.acked.len(),
        "posts_missing": missing,
        "rss_kib_before": rss_before,
        "rss_kib_after": rss_after,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    Ok(ok)
}

fn main() {
    let cfg = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chatnode-fuzz: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match rt.block_on(run(cfg)) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("chatnode-fuzz: {e}");
            std::process::exit(2);
        }
    }
}
