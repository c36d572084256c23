//! Node settings, layered with the `config` crate.
//!
//! Layers, later wins: the built-in `config/default.toml` (compiled in, so the binary runs from any
//! folder), `<dir>/default.toml` and `<dir>/<CHATNODE_ENV>.toml` when present (`<dir>` is
//! `CHATNODE_CONFIG_DIR` or `config`), then `CHATNODE__<SECTION>__<KEY>` environment variables.
//! Secrets never print: [`Secret`] masks itself in `Debug` and when serialized.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Serialize, Serializer};

/// The highest sample rate `voice.max_sample_rate` may allow (and the decoder ever accepts).
pub const MAX_SAMPLE_RATE: u32 = 384_000;

/// The defaults, compiled in.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// A value that must never appear in logs or printed settings.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "***" })
    }
}

/// Every setting of a node.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: Http,
    pub redis: Redis,
    pub ws: Ws,
    pub presence: Presence,
    pub history: History,
    pub auth: Auth,
    pub log: Log,
    pub shutdown: Shutdown,
    pub voice: Voice,
    pub limits: Limits,
    pub messages: Messages,
}

/// `[messages]`: what may be done to a message once posted.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Messages {
    /// How long after posting its author may edit a message, in seconds (0 = no limit).
    pub edit_window_secs: u64,
}

/// `[http]`: the listener.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    pub host: String,
    pub port: u16,
    pub cookie_secure: bool,
    pub max_json_bytes: usize,
    /// Compatibility: with `trusted_proxies` empty, true trusts proxies on loopback and private
    /// networks (see [`Http::proxies`]).
    pub trust_forwarded_for: bool,
    /// Proxies whose `X-Forwarded-For` is read (CIDR list; a TOML array or a comma-separated
    /// string in the environment).
    #[serde(deserialize_with = "cidr_list")]
    pub trusted_proxies: Vec<Cidr>,
    /// Port of a separate listener for `/metrics` (0 = served on `port`).
    pub metrics_port: u16,
    /// Origins besides the node's own whose pages may open `/ws` (`https://chat.example.com`; a
    /// TOML array or a comma-separated string in the environment). Kept lower-case, without a
    /// trailing slash.
    #[serde(deserialize_with = "origin_list")]
    pub allowed_origins: Vec<String>,
}

/// Loopback and private networks: where an ingress in front of the node usually sits.
const PRIVATE_NETWORKS: [&str; 6] = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::1/128",
    "fc00::/7",
];

impl Http {
    /// The proxies trusted to name the client in `X-Forwarded-For`: `trusted_proxies`, or, when
    /// that is empty and `trust_forwarded_for` is on, loopback and private networks.
    pub fn proxies(&self) -> Vec<Cidr> {
        if self.trusted_proxies.is_empty() && self.trust_forwarded_for {
            PRIVATE_NETWORKS
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect()
        } else {
            self.trusted_proxies.clone()
        }
    }
}

/// An IP network such as `10.0.0.0/8` or `fd00::/8`; a bare address is a network of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical_ip(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An address as the node counts it: IPv4-mapped IPv6 (`::ffff:1.2.3.4`) becomes IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or network"))?;
        let network = canonical_ip(network);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A CIDR list from a TOML array, or from one comma-separated string (an environment variable).
/// A list setting: a TOML array, or one comma-separated string (as environment variables give
/// it); blank items are dropped.
fn string_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    let items: Vec<String> = match Raw::deserialize(d)? {
        Raw::One(s) => s.split(',').map(str::to_string).collect(),
        Raw::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

fn cidr_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Cidr>, D::Error> {
    string_list(d)?
        .iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect()
}

fn origin_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    string_list(d)?
        .into_iter()
        .map(|s| {
            let origin = s.trim_end_matches('/').to_ascii_lowercase();
            let host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            match host {
                Some(h) if !h.is_empty() && !h.contains('/') => Ok(origin),
                _ => Err(serde::de::Error::custom(format!(
                    "{s:?} is not an origin such as https://chat.example.com"
                ))),
            }
        })
        .collect()
}

/// `[redis]`: where the data lives.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Redis {
    /// Empty means: start an embedded redis-server.
    #[serde(serialize_with = "serialize_masked_url")]
    pub url: String,
    /// Redis Cluster seed addresses, comma-separated `redis://` / `rediss://` URLs; non-empty =
    /// cluster mode (`url` is then not used).
    pub cluster_nodes: String,
    pub password: Secret,
    /// Kept so older configuration files load; commands share one multiplexed connection (per
    /// master in cluster mode), so there is no pool to size.
    pub pool_size: usize,
    /// Replicas that must have a post before it is answered `posted` (`WAIT n`); 0 = answer as
    /// soon as the master stored it.
    pub ack_replicas: u32,
    /// Milliseconds the posting path waits for `ack_replicas` replicas.
    pub ack_timeout_ms: u64,
    /// One Redis: send the posts waiting at once in one script call (`store::batch`).
    pub batch_posts: bool,
    /// Seconds between health-check `PING`s on each pub/sub connection; one not answered within
    /// as long makes the node reconnect (and every room catch up).
    pub pubsub_health_secs: u64,
    pub data_dir: PathBuf,
    pub module_path: PathBuf,
    pub server_binary: String,
    pub startup_timeout_secs: u64,
    /// PEM file of the CA certificates a `rediss://` server is verified against; empty = the
    /// public roots built in.
    pub tls_ca_file: PathBuf,
}

impl Redis {
    /// The cluster seed URLs (`cluster_nodes` split at commas); empty = one Redis.
    pub fn cluster_seeds(&self) -> Vec<String> {
        self.cluster_nodes
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Whether this node talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        !self.cluster_seeds().is_empty()
    }
}

/// `[ws]`: WebSocket sessions.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ws {
    pub heartbeat_interval_secs: u64,
    pub max_frame_bytes: usize,
    pub max_message_chars: usize,
    pub outbound_queue: usize,
    /// Bytes of text frames queued for one socket before it counts as too slow.
    pub outbound_queue_bytes: usize,
    pub rate_limit_messages: u32,
    pub rate_limit_window_secs: u64,
    /// Posts of a user's budget a node takes from Redis at a time and spends without asking
    /// again (0 = an eighth of `rate_limit_messages`, 1 to 16; 1 = every post counted alone).
    pub post_budget_lease: u32,
    /// Seconds a post's `client_id` is remembered, so a re-sent post is stored only once.
    pub post_dedupe_secs: u64,
    /// Frames one socket may have queued or being handled; more are answered `busy`.
    pub max_inflight_per_socket: usize,
    /// Posts of one socket sent one after another that may be on their way to Redis at once
    /// (stored in the order sent, answered in that order; 1 = one at a time).
    pub post_pipeline: usize,
    /// Posts (WebSocket, REST and voice) the node may have queued or being stored at once; more
    /// are answered `busy` (REST: 503).
    pub max_inflight_per_node: usize,
    /// Milliseconds a post may wait behind its socket's earlier frames; then it is answered
    /// `busy` instead of stored. Also the base of the wait every `busy` names (`retry_after_ms`),
    /// which grows with the share of posts the node refused in the last second (at most 20×).
    pub post_queue_timeout_ms: u64,
}

/// `[presence]`: online status.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Presence {
    pub ttl_secs: u64,
    pub refresh_interval_secs: u64,
}

/// `[history]`: message history pages and stream length.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    pub page_size: usize,
    pub max_page_size: usize,
    pub stream_maxlen: u64,
    /// Days messages are kept, fractions allowed (0 = for ever); older ones are removed with
    /// their hash, search entry, mentions and audio.
    pub retention_days: f64,
    /// Seconds between retention sweeps (one node sweeps at a time).
    pub retention_interval_secs: u64,
}

/// `[auth]`: password hashing, sessions and login throttling.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    pub session_ttl_secs: u64,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub max_failed_logins: u32,
    pub failed_login_window_secs: u64,
    /// Password hashes and verifications running at once on this node; each holds
    /// `argon2_memory_kib` of memory while it runs.
    pub argon2_concurrency: usize,
    /// Milliseconds a sign-in waits for a hashing slot before it is answered 503 `busy`.
    pub argon2_wait_ms: u64,
    /// Usernames of the global administrators (a TOML array or a comma-separated string in the
    /// environment): the admin API, and owner's rights in every channel.
    #[serde(deserialize_with = "string_list")]
    pub admins: Vec<String>,
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub level: String,
}

/// `[shutdown]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {
    pub grace_secs: u64,
}

/// `[voice]`: voice messages, their limits and the transcription engine.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Voice {
    pub enabled: bool,
    pub max_seconds: u64,
    pub max_bytes: usize,
    /// Highest sample rate an upload may have (read from its header before decoding).
    pub max_sample_rate: u32,
    /// Audio bytes one user may upload per UTC day (0 = no quota).
    pub daily_quota_bytes: u64,
    /// Days a voice message's audio is kept (0 = for as long as its message).
    pub retention_days: u64,
    /// Uploads this node decodes at once; more are answered 503 `busy`.
    pub max_concurrent_decodes: usize,
    pub engine: String,
    pub transcriber: bool,
    pub language: String,
    pub whisper_model_dir: String,
    pub whisper_threads: usize,
    pub whisper_beam_size: usize,
    pub deepgram_url: String,
    pub deepgram_key: Secret,
    pub deepgram_model: String,
    pub openai_url: String,
    pub openai_key: Secret,
    pub openai_model: String,
    pub request_timeout_secs: u64,
    pub max_attempts: u32,
    pub claim_after_secs: u64,
    pub poll_ms: u64,
}

/// `[limits]`: what one user may cost the node and Redis per minute (every node counts together).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Public channels one user may create per hour.
    pub channel_creates_per_hour: u32,
    /// Public channels one user may create in all.
    pub max_channels_per_user: u32,
    /// Joins and leaves of public channels one user may make per minute.
    pub joins_per_minute: u32,
    /// `typing` frames one user may send per minute; more are dropped.
    pub typing_per_minute: u32,
    /// Read markers (`read` frames, `POST .../read`) one user may set per minute.
    pub reads_per_minute: u32,
}

/// A setting that could not be read or is out of range; names the key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid value for `{key}`: {why}")]
    Invalid { key: &'static str, why: String },
}

fn serialize_masked_url<S: Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&mask_url_password(url))
}

/// Replaces the password of a `redis://user:pass@host` URL with `***`.
pub fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}://{}:***{}",
            &url[..scheme_end],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

impl Settings {
    /// Loads the settings from the default folder and the process environment.
    pub fn load() -> Result<Self, SettingsError> {
        let dir = std::env::var("CHATNODE_CONFIG_DIR").unwrap_or_else(|_| "config".into());
        let env = std::env::var("CHATNODE_ENV").ok();
        Self::load_from(
            Path::new(&dir),
            env.as_deref(),
            Environment::with_prefix("CHATNODE"),
        )
    }

    /// Loads the layers from `dir`, the environment file `env`, and `environment`.
    pub fn load_from(
        dir: &Path,
        env: Option<&str>,
        environment: Environment,
    ) -> Result<Self, SettingsError> {
        let mut builder = Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .add_source(File::from(dir.join("default.toml")).required(false));
        if let Some(env) = env.filter(|e| !e.is_empty()) {
            builder =
                builder.add_source(File::from(dir.join(format!("{env}.toml"))).required(true));
        }
        let settings: Settings = builder
            .add_source(
                environment
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The compiled-in defaults alone (tests start from these).
    pub fn defaults() -> Self {
        let settings: Settings = Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("the built-in default.toml is valid");
        settings
    }

    /// Checks ranges that types alone cannot express.
    pub fn validate(&self) -> Result<(), SettingsError> {
        fn invalid(key: &'static str, why: impl Into<String>) -> Result<(), SettingsError> {
            Err(SettingsError::Invalid {
                key,
                why: why.into(),
            })
        }
        if self.http.host.trim().is_empty() {
            return invalid("http.host", "must not be empty");
        }
        if !(self.redis.url.is_empty()
            || self.redis.url.starts_with("redis://")
            || self.redis.url.starts_with("rediss://"))
        {
            return invalid(
                "redis.url",
                "must start with redis:// or rediss:// (or be empty for the embedded Redis)",
            );
        }
        let seeds = self.redis.cluster_seeds();
        if let Some(bad) = seeds
            .iter()
            .find(|u| !(u.starts_with("redis://") || u.starts_with("rediss://")))
        {
            return invalid(
                "redis.cluster_nodes",
                format!(
                    "`{}` must start with redis:// or rediss://",
                    mask_url_password(bad)
                ),
            );
        }
        if !self.redis.tls_ca_file.as_os_str().is_empty()
            && !self.redis.url.starts_with("rediss://")
            && !seeds.iter().any(|u| u.starts_with("rediss://"))
        {
            return invalid(
                "redis.tls_ca_file",
                "needs a rediss:// redis.url or redis.cluster_nodes",
            );
        }
        if self.redis.pubsub_health_secs == 0 {
            return invalid("redis.pubsub_health_secs", "must be at least 1");
        }
        if self.redis.ack_replicas > 0 && self.redis.ack_timeout_ms == 0 {
            return invalid(
                "redis.ack_timeout_ms",
                "must be at least 1 with ack_replicas",
            );
        }
        if self.http.metrics_port != 0 && self.http.metrics_port == self.http.port {
            return invalid(
                "http.metrics_port",
                "must differ from http.port (0 = share it)",
            );
        }
        if self.redis.pool_size == 0 {
            return invalid("redis.pool_size", "must be at least 1");
        }
        if self.ws.heartbeat_interval_secs == 0 {
            return invalid("ws.heartbeat_interval_secs", "must be at least 1");
        }
        if self.ws.max_frame_bytes < 1024 {
            return invalid("ws.max_frame_bytes", "must be at least 1024");
        }
        if self.ws.max_message_chars == 0 {
            return invalid("ws.max_message_chars", "must be at least 1");
        }
        if self.ws.outbound_queue_bytes < 64 * 1024 {
            return invalid("ws.outbound_queue_bytes", "must be at least 65536");
        }
        if self.ws.outbound_queue < 8 {
            return invalid("ws.outbound_queue", "must be at least 8");
        }
        if self.ws.rate_limit_window_secs == 0 {
            return invalid("ws.rate_limit_window_secs", "must be at least 1");
        }
        if self.ws.post_dedupe_secs == 0 {
            return invalid("ws.post_dedupe_secs", "must be at least 1");
        }
        if self.ws.max_inflight_per_socket == 0 {
            return invalid("ws.max_inflight_per_socket", "must be at least 1");
        }
        if self.ws.post_pipeline == 0 {
            return invalid("ws.post_pipeline", "must be at least 1");
        }
        if self.ws.max_inflight_per_node == 0 {
            return invalid("ws.max_inflight_per_node", "must be at least 1");
        }
        if self.ws.post_queue_timeout_ms < 10 {
            return invalid("ws.post_queue_timeout_ms", "must be at least 10");
        }
        if self.presence.ttl_secs == 0 {
            return invalid("presence.ttl_secs", "must be at least 1");
        }
        if self.presence.refresh_interval_secs == 0
            || self.presence.refresh_interval_secs >= self.presence.ttl_secs
        {
            return invalid(
                "presence.refresh_interval_secs",
                "must be at least 1 and less than presence.ttl_secs",
            );
        }
        if self.history.page_size == 0 || self.history.page_size > self.history.max_page_size {
            return invalid(
                "history.page_size",
                "must be between 1 and history.max_page_size",
            );
        }
        let h = &self.history;
        if !(h.retention_days.is_finite() && (0.0..=36_500.0).contains(&h.retention_days)) {
            return invalid(
                "history.retention_days",
                "must be between 0 and 36500 (0 = keep)",
            );
        }
        if !(1..=86_400).contains(&h.retention_interval_secs) {
            return invalid(
                "history.retention_interval_secs",
                "must be between 1 and 86400",
            );
        }
        if self.auth.session_ttl_secs < 60 {
            return invalid("auth.session_ttl_secs", "must be at least 60");
        }
        if self.auth.argon2_memory_kib < 8 * self.auth.argon2_parallelism.max(1) {
            return invalid("auth.argon2_memory_kib", "must be at least 8 KiB per lane");
        }
        if self.auth.argon2_iterations == 0 {
            return invalid("auth.argon2_iterations", "must be at least 1");
        }
        if self.auth.argon2_parallelism == 0 {
            return invalid("auth.argon2_parallelism", "must be at least 1");
        }
        if self.auth.max_failed_logins == 0 {
            return invalid("auth.max_failed_logins", "must be at least 1");
        }
        if !(1..=64).contains(&self.auth.argon2_concurrency) {
            return invalid("auth.argon2_concurrency", "must be between 1 and 64");
        }
        if !(1..=60_000).contains(&self.auth.argon2_wait_ms) {
            return invalid("auth.argon2_wait_ms", "must be between 1 and 60000");
        }
        let v = &self.voice;
        if v.max_seconds == 0 || v.max_seconds > 600 {
            return invalid("voice.max_seconds", "must be between 1 and 600");
        }
        if v.max_bytes < 1024 || v.max_bytes > 64 << 20 {
            return invalid("voice.max_bytes", "must be between 1024 and 67108864");
        }
        if !(8_000..=MAX_SAMPLE_RATE).contains(&v.max_sample_rate) {
            return invalid("voice.max_sample_rate", "must be between 8000 and 384000");
        }
        if v.retention_days > 36_500 {
            return invalid("voice.retention_days", "must be at most 36500 (0 = keep)");
        }
        if !(1..=64).contains(&v.max_concurrent_decodes) {
            return invalid("voice.max_concurrent_decodes", "must be between 1 and 64");
        }
        if !["auto", "whisper", "deepgram", "openai", "none"].contains(&v.engine.as_str()) {
            return invalid(
                "voice.engine",
                "must be one of auto, whisper, deepgram, openai, none",
            );
        }
        if !(v.language.is_empty()
            || (2..=3).contains(&v.language.len())
                && v.language.bytes().all(|b| b.is_ascii_lowercase()))
        {
            return invalid("voice.language", "must be a language code such as en");
        }
        if v.engine == "whisper" && v.language.is_empty() {
            return invalid("voice.language", "Whisper needs a language such as en");
        }
        if v.whisper_beam_size == 0 || v.whisper_beam_size > 10 {
            return invalid("voice.whisper_beam_size", "must be between 1 and 10");
        }
        if v.engine == "deepgram" && v.deepgram_key.expose().is_empty() {
            return invalid(
                "voice.deepgram_key",
                "must be set when voice.engine = deepgram",
            );
        }
        for (key, url) in [
            ("voice.deepgram_url", &v.deepgram_url),
            ("voice.openai_url", &v.openai_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return invalid(key, "must start with http:// or https://");
            }
        }
        if v.engine == "openai" && v.openai_model.trim().is_empty() {
            return invalid("voice.openai_model", "must name a model");
        }
        if v.request_timeout_secs == 0 {
            return invalid("voice.request_timeout_secs", "must be at least 1");
        }
        if v.max_attempts == 0 || v.max_attempts > 20 {
            return invalid("voice.max_attempts", "must be between 1 and 20");
        }
        if v.claim_after_secs == 0 {
            return invalid("voice.claim_after_secs", "must be at least 1");
        }
        if !(100..=30_000).contains(&v.poll_ms) {
            return invalid("voice.poll_ms", "must be between 100 and 30000");
        }
        let l = &self.limits;
        for (key, v) in [
            (
                "limits.channel_creates_per_hour",
                l.channel_creates_per_hour,
            ),
            ("limits.max_channels_per_user", l.max_channels_per_user),
            ("limits.joins_per_minute", l.joins_per_minute),
            ("limits.typing_per_minute", l.typing_per_minute),
            ("limits.reads_per_minute", l.reads_per_minute),
        ] {
            if v == 0 {
                return invalid(key, "must be at least 1");
            }
        }
        if !["error", "warn", "info", "debug", "trace", "off"].contains(&self.log.level.as_str()) {
            return invalid(
                "log.level",
                "must be one of error, warn, info, debug, trace, off",
            );
        }
        Ok(())
    }

    /// The effective settings as TOML-like text, secrets masked.
    pub fn to_pretty_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
