//! The Redis data layer: every read and write of chatnode's data goes through here.
//!
//! Handlers and actors call these functions; none of them builds a Redis key or command itself.

pub mod channels;
pub mod history;
pub mod ids;
pub mod insights;
pub mod keys;
pub mod limits;
pub mod posting;
pub mod retention;
pub mod search;
pub mod sessions;
pub mod setup;
pub mod transcription;
pub mod unread;
pub mod users;
pub mod voice;

use std::path::Path;
use std::sync::Arc;

use deadpool_redis::{Pool, PoolConfig, Runtime};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::Result;
use crate::settings::Settings;

/// Which RediSearch the Redis has, detected once at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchVersion {
    /// Module version as Redis reports it, e.g. 10200 for 1.2.0.
    pub raw: i64,
}

impl SearchVersion {
    /// Major version: 1 has no `ON HASH PREFIX`, 2 and later do.
    pub fn major(self) -> i64 {
        self.raw / 10000
    }
    /// Whether documents must be added by hand with `FT.ADDHASH`.
    pub fn needs_addhash(self) -> bool {
        self.major() < 2
    }
    /// `redisearch 1.2` and the like.
    pub fn label(self) -> String {
        format!("redisearch {}.{}", self.raw / 10000, (self.raw / 100) % 100)
    }
}

/// Shared handle to Redis: the command pool, the shared connection of the posting path, a client
/// for dedicated connections, and facts.
#[derive(Clone)]
pub struct Store {
    pub pool: Pool,
    /// One multiplexed connection every node task shares for short commands on the hot path
    /// (posts above all): concurrent commands are pipelined on it, with no pool checkout and no
    /// recycle check (`UNWATCH` + `PING`) per command. Reconnects by itself when the connection
    /// drops. Never for blocking reads or long scripts: they would hold up everyone's replies.
    pub shared: ConnectionManager,
    pub client: redis::Client,
    pub search: Option<SearchVersion>,
    pub settings: Arc<Settings>,
    /// Whether the RediSearch 1.x backfill of older hashes has finished.
    pub backfill_done: Arc<std::sync::atomic::AtomicBool>,
}

/// Puts `password` into a redis URL that has none.
pub(crate) fn url_with_password(url: &str, password: &str) -> String {
    if password.is_empty() {
        return url.to_string();
    }
    let Some(i) = url.find("://") else {
        return url.to_string();
    };
    let (scheme, rest) = url.split_at(i + 3);
    let host_part = rest.split('/').next().unwrap_or("");
    if host_part.contains('@') {
        return url.to_string();
    }
    let encoded: String = password
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{scheme}:{encoded}@{rest}")
}

/// What went wrong, with the cause that clients are never shown (the start-up log needs it:
/// a refused TLS certificate, a wrong password).
fn cause(e: &crate::error::Error) -> String {
    use crate::error::Error;
    match e {
        Error::RedisUnavailable(source) => source.to_string(),
        Error::Internal(detail) => detail.clone(),
        other => other.to_string(),
    }
}

/// The client of a Redis URL. `rediss://` verifies the server against the CA certificates of
/// `ca_file` (PEM) when one is named, else against the public roots built into chatnode
/// (webpki-roots); a `#insecure` URL skips verification.
fn client_for(url: &str, ca_file: &Path) -> Result<redis::Client, String> {
    if ca_file.as_os_str().is_empty() {
        return redis::Client::open(url).map_err(|e| format!("redis.url: {e}"));
    }
    let pem = std::fs::read(ca_file)
        .map_err(|e| format!("redis.tls_ca_file: cannot read {}: {e}", ca_file.display()))?;
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(format!(
            "redis.tls_ca_file: {} holds no PEM certificate",
            ca_file.display()
        ));
    }
    let certs = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    };
    redis::Client::build_with_tls(url, certs).map_err(|e| format!("redis.tls_ca_file: {e}"))
}

/// How the shared connection behaves: the same reply timeout (500 ms) and connect timeout (1 s)
/// as the pool's connections, and a short reconnect: a dropped connection is replaced at once,
/// and while Redis is away a command fails after one retried connect (at most about two
/// seconds) instead of waiting through the default six-step backoff.
fn shared_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_millis(500)))
        .set_connection_timeout(Some(std::time::Duration::from_secs(1)))
        .set_number_of_retries(1)
        .set_max_delay(std::time::Duration::from_millis(200))
}

impl Store {
    /// Connects to `url` and detects the search module.
    pub async fn connect(url: &str, settings: Arc<Settings>) -> Result<Self, String> {
        let url = url_with_password(url, settings.redis.password.expose());
        let client = client_for(&url, &settings.redis.tls_ca_file)?;
        // The pool's connections are made from the client's connection info, TLS roots included.
        let manager = deadpool_redis::Manager::new(client.get_connection_info().clone())
            .map_err(|e| format!("redis.url: {e}"))?;
        let pool = Pool::builder(manager)
            .config(PoolConfig::new(settings.redis.pool_size))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| format!("redis pool: {e}"))?;
        let shared = ConnectionManager::new_lazy_with_config(client.clone(), shared_config())
            .map_err(|e| format!("redis shared connection: {e}"))?;
        let mut store = Store {
            pool,
            shared,
            client,
            search: None,
            settings,
            backfill_done: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        store.search = store
            .detect_search()
            .await
            .map_err(|e| format!("cannot reach Redis: {}", cause(&e)))?;
        Ok(store)
    }

    /// A pooled connection.
    pub async fn conn(&self) -> Result<deadpool_redis::Connection> {
        Ok(self.pool.get().await?)
    }

    /// The shared multiplexed connection ([`Store::shared`]); cloning it is cheap.
    pub fn shared(&self) -> ConnectionManager {
        self.shared.clone()
    }

    /// Reads `MODULE LIST` and finds RediSearch (`ft` in 1.x, `search` in 2.x).
    async fn detect_search(&self) -> Result<Option<SearchVersion>> {
        let mut conn = self.conn().await?;
        let modules: Vec<redis::Value> = redis::cmd("MODULE")
            .arg("LIST")
            .query_async(&mut conn)
            .await?;
        for module in modules {
            let fields = flatten_pairs(module);
            let name = fields
                .iter()
                .find(|(k, _)| k == "name")
                .map(|(_, v)| v.as_str());
            if matches!(name, Some("ft") | Some("search")) {
                let raw = fields
                    .iter()
                    .find(|(k, _)| k == "ver")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                return Ok(Some(SearchVersion { raw }));
            }
        }
        Ok(None)
    }

    /// PING, for readiness.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

/// Turns a RESP2 array or RESP3 map of name/value pairs into strings.
pub fn flatten_pairs(v: redis::Value) -> Vec<(String, String)> {
    use redis::Value;
    fn text(v: &Value) -> String {
        match v {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Double(d) => d.to_string(),
            _ => String::new(),
        }
    }
    match v {
        Value::Array(items) => items
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (text(&c[0]), text(&c[1])))
            .collect(),
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), text(v))).collect(),
        _ => Vec::new(),
    }
}

impl Store {
    /// PUBLISH on a pub/sub subject.
    pub async fn publish(&self, subject: &str, payload: &str) -> Result<()> {
        let mut conn = self.shared();
        let _: i64 = redis::cmd("PUBLISH")
            .arg(subject)
            .arg(payload)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_goes_into_url_once() {
        assert_eq!(
            url_with_password("redis://h:6379/0", "p@ss"),
            "redis://:p%40ss@h:6379/0"
        );
        assert_eq!(
            url_with_password("redis://:x@h:6379", "p"),
            "redis://:x@h:6379"
        );
        assert_eq!(url_with_password("redis://h", ""), "redis://h");
    }

    #[test]
    fn search_labels() {
        let v = SearchVersion { raw: 10200 };
        assert_eq!(v.label(), "redisearch 1.2");
        assert!(v.needs_addhash());
        assert!(!SearchVersion { raw: 21005 }.needs_addhash());
    }
}
