//! The Redis data layer: every read and write of chatnode's data goes through here.
//!
//! Handlers and actors call these functions; none of them builds a Redis key or command itself.

pub mod actions;
pub mod batch;
pub mod budget;
pub mod channels;
pub mod conn;
pub mod history;
pub mod ids;
pub mod insights;
pub mod keys;
pub mod limits;
pub mod members;
pub mod migrate;
pub mod moderation;
pub mod online;
pub mod posting;
pub mod rehome;
pub mod replicas;
pub mod retention;
pub mod search;
pub mod sessions;
pub mod setup;
pub mod shards;
pub mod transcription;
pub mod unread;
pub mod users;
pub mod voice;

use std::path::Path;
use std::sync::Arc;

use redis::aio::ConnectionManagerConfig;

pub use conn::{ClusterState, Conn, Master, Topology};

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

/// Shared handle to Redis: the shared command connection, a client for dedicated connections, the
/// cluster's shape when there is one, and facts.
#[derive(Clone)]
pub struct Store {
    /// One multiplexed connection (on a cluster: one per master, routed by slot) every node task
    /// shares for its commands: concurrent commands are pipelined on it, with no pool checkout
    /// and no recycle check (`UNWATCH` + `PING`) per command. Reconnects by itself when the
    /// connection drops. Never for blocking reads: they would hold up everyone's replies
    /// ([`Store::dedicated`] makes a connection of its own for those).
    pub shared: Conn,
    /// One Redis: its client. A cluster: the client of the first seed (for nothing but its
    /// connection settings; [`Store::master_client`] reaches each master).
    pub client: redis::Client,
    /// A cluster: its client and its shape as last read. `None` on one Redis.
    pub cluster: Option<Arc<ClusterState>>,
    /// The `WAIT`s of `redis.ack_replicas`, shared by the posts of each master.
    ack_groups: Arc<replicas::AckGroups>,
    /// This node's leases of users' posting budgets ([`budget`]).
    pub(crate) leases: Arc<budget::Leases>,
    /// One Redis: the batcher every post of this node goes through ([`batch`]); `None` on a
    /// cluster, or with `redis.batch_posts` off.
    pub(crate) batcher: Option<batch::Batcher>,
    cluster_client: Option<redis::cluster::ClusterClient>,
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

/// The cluster client of `seeds`: the same reply timeout (500 ms) and connect timeout (1 s) as
/// the single connection, and few, short retries, so a command meeting a failover fails within
/// a few seconds (the client re-sends with its `client_id`) instead of waiting through the
/// default sixteen.
fn cluster_client_for(
    seeds: &[redis::ConnectionInfo],
    ca_file: &Path,
    response_timeout: std::time::Duration,
) -> Result<redis::cluster::ClusterClient, String> {
    let mut builder = redis::cluster::ClusterClientBuilder::new(seeds.to_vec())
        .connection_timeout(std::time::Duration::from_secs(1))
        .response_timeout(response_timeout)
        .retries(4)
        .min_retry_wait(100)
        .max_retry_wait(1000);
    if !ca_file.as_os_str().is_empty() {
        let pem = std::fs::read(ca_file)
            .map_err(|e| format!("redis.tls_ca_file: cannot read {}: {e}", ca_file.display()))?;
        builder = builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        });
    }
    builder
        .build()
        .map_err(|e| format!("redis.cluster_nodes: {e}"))
}

impl Store {
    /// Connects to the Redis of the settings (`url`, or the cluster of `redis.cluster_nodes` when
    /// it is set) and detects the search module.
    pub async fn connect(url: &str, settings: Arc<Settings>) -> Result<Self, String> {
        let seeds = settings.redis.cluster_seeds();
        let password = settings.redis.password.expose().to_string();
        let ca = settings.redis.tls_ca_file.clone();
        let (shared, client, cluster, cluster_client) = if seeds.is_empty() {
            let url = url_with_password(url, &password);
            let client = client_for(&url, &ca)?;
            let shared = conn::SingleConn::new(client.clone(), shared_config())
                .map_err(|e| format!("redis shared connection: {e}"))?;
            (Conn::Single(shared), client, None, None)
        } else {
            let clients = seeds
                .iter()
                .map(|s| client_for(&url_with_password(s, &password), &ca))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.replace("redis.url", "redis.cluster_nodes"))?;
            let infos: Vec<redis::ConnectionInfo> = clients
                .iter()
                .map(|c| c.get_connection_info().clone())
                .collect();
            let cluster_client =
                cluster_client_for(&infos, &ca, std::time::Duration::from_millis(500))?;
            let connection = cluster_client
                .get_async_connection()
                .await
                .map_err(|e| format!("cannot reach the Redis Cluster: {e}"))?;
            let state = Arc::new(ClusterState {
                template: infos[0].clone(),
                topology: std::sync::RwLock::new(Arc::new(Topology {
                    masters: Vec::new(),
                })),
            });
            (
                Conn::Cluster(connection),
                clients[0].clone(),
                Some(state),
                Some(cluster_client),
            )
        };
        let mut store = Store {
            shared,
            client,
            cluster,
            cluster_client,
            search: None,
            settings,
            backfill_done: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            ack_groups: Default::default(),
            leases: Default::default(),
            batcher: None,
        };
        if store.cluster.is_none()
            && store.settings.redis.batch_posts
            && !store.cluster_enabled_server().await
        {
            store.batcher = Some(batch::Batcher::spawn(store.shared()));
        }
        if store.cluster.is_some() {
            store
                .refresh_topology()
                .await
                .map_err(|e| format!("cannot read the cluster's slots: {}", cause(&e)))?;
        }
        store.search = store
            .detect_search()
            .await
            .map_err(|e| format!("cannot reach Redis: {}", cause(&e)))?;
        Ok(store)
    }

    /// The shared command connection ([`Store::shared`]); cloning it is cheap.
    pub async fn conn(&self) -> Result<Conn> {
        Ok(self.shared.clone())
    }

    /// Whether the one Redis of `redis.url` runs with `cluster-enabled yes` (a cluster of one
    /// server, addressed as one Redis): it refuses a script whose keys are in two slots, so posts
    /// are not batched there ([`batch`]).
    async fn cluster_enabled_server(&self) -> bool {
        let mut conn = self.shared();
        let info: redis::RedisResult<String> = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut conn)
            .await;
        info.is_ok_and(|i| i.contains("cluster_enabled:1"))
    }

    /// The shared command connection, without the `Result` of [`Store::conn`].
    pub fn shared(&self) -> Conn {
        self.shared.clone()
    }

    /// A connection of its own, for commands that block or wait long (their replies may take
    /// `response_timeout`): on a cluster a cluster connection of its own.
    pub async fn dedicated(&self, response_timeout: std::time::Duration) -> Result<Conn> {
        match &self.cluster_client {
            None => {
                let cfg = redis::AsyncConnectionConfig::new()
                    .set_response_timeout(Some(response_timeout));
                Ok(Conn::Direct(
                    self.client
                        .get_multiplexed_async_connection_with_config(&cfg)
                        .await?,
                ))
            }
            Some(_) => {
                let Some(state) = &self.cluster else {
                    return Err(crate::error::Error::Internal("no cluster state".into()));
                };
                let seeds = vec![state.template.clone()];
                let client =
                    cluster_client_for(&seeds, &self.settings.redis.tls_ca_file, response_timeout)
                        .map_err(crate::error::Error::Internal)?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// Whether this node talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// `"single"` or `"cluster"`.
    pub fn mode(&self) -> &'static str {
        if self.is_cluster() {
            "cluster"
        } else {
            "single"
        }
    }

    /// The masters as last read (one Redis: itself).
    pub fn topology(&self) -> Arc<Topology> {
        match &self.cluster {
            Some(state) => state
                .topology
                .read()
                .map(|t| t.clone())
                .unwrap_or_else(|e| e.into_inner().clone()),
            None => {
                let (host, port) = conn::host_port(self.client.get_connection_info())
                    .unwrap_or_else(|| ("localhost".into(), 6379));
                Arc::new(Topology::single(&host, port))
            }
        }
    }

    /// Reads the cluster's slots again (`CLUSTER SLOTS`); answers whether they changed. One Redis:
    /// nothing to read.
    pub async fn refresh_topology(&self) -> Result<bool> {
        let Some(state) = &self.cluster else {
            return Ok(false);
        };
        let mut conn = self.shared();
        let v: redis::Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await?;
        let Some(fresh) = Topology::from_cluster_slots(&v) else {
            return Err(crate::error::Error::Internal(
                "CLUSTER SLOTS answered no slots".into(),
            ));
        };
        let fresh = Arc::new(fresh);
        let old = {
            let mut current = state.topology.write().unwrap_or_else(|e| e.into_inner());
            if **current == *fresh {
                return Ok(false);
            }
            std::mem::replace(&mut *current, fresh.clone())
        };
        if self.search.is_some() {
            // Slots that changed master take their search entries along (store::rehome).
            let store = self.clone();
            tokio::spawn(async move {
                match store.after_slots_moved(old, fresh).await {
                    Ok(0) => {}
                    Ok(n) => log::info!("search: {n} entries re-homed after the slots moved"),
                    Err(e) => log::warn!("search after the slots moved: {e}"),
                }
            });
        }
        Ok(true)
    }

    /// A client of one master, with the node's password and TLS settings (one Redis: its client).
    pub fn master_client(&self, master: &Master) -> Result<redis::Client> {
        match &self.cluster {
            None => Ok(self.client.clone()),
            Some(state) => Ok(redis::Client::open(conn::info_at(
                &state.template,
                &master.host,
                master.port,
            ))?),
        }
    }

    /// Reads `MODULE LIST` and finds RediSearch (`ft` in 1.x, `search` in 2.x).
    async fn detect_search(&self) -> Result<Option<SearchVersion>> {
        let mut conn = self.conn().await?;
        // On a cluster every master loads the same modules; the first is asked.
        let topology = self.topology();
        let cmd = redis::cmd("MODULE").arg("LIST").to_owned();
        let modules: Vec<redis::Value> = match topology.masters.first() {
            Some(m) if self.is_cluster() => conn.query_on_master(&cmd, m).await?,
            _ => cmd.query_async(&mut conn).await?,
        };
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

    /// PING, for readiness (on a cluster: every master answers).
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: redis::Value = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

/// Takes the run-once lock `key` for `holder` for `ms` milliseconds (`SET NX PX`); false when
/// another holds it.
pub(crate) async fn take_lock(conn: &mut Conn, key: &str, holder: &str, ms: u64) -> Result<bool> {
    let got: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(holder)
        .arg("NX")
        .arg("PX")
        .arg(ms)
        .query_async(conn)
        .await?;
    Ok(got.is_some())
}

/// One step of `SCAN cursor MATCH pattern COUNT count [TYPE kind]` (`kind` empty: every type).
pub(crate) fn scan_step(cursor: u64, pattern: &str, count: usize, kind: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count);
    if !kind.is_empty() {
        cmd.arg("TYPE").arg(kind);
    }
    cmd
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
    /// PUBLISH on a pub/sub subject; a room's subject is a shard channel (`SPUBLISH`, on a
    /// cluster sent to the master of its slot), as the posting scripts publish it.
    pub async fn publish(&self, subject: &str, payload: &str) -> Result<()> {
        let mut conn = self.shared();
        let command = if keys::room_from_events(subject).is_some() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let _: i64 = redis::cmd(command)
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
