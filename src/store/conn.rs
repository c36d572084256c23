//! One connection type for one Redis and for Redis Cluster, and what the node knows of a
//! cluster's shape.
//!
//! Every command of the node goes through a [`Conn`]: a multiplexed connection that pipelines
//! every concurrent command (one Redis: a reconnecting `ConnectionManager`; a cluster: redis-rs's
//! `ClusterConnection`, which keeps one multiplexed connection per node, routes each command by
//! its key's hash slot and follows `MOVED`/`ASK` and failovers). Both implement
//! `redis::aio::ConnectionLike`, so `query_async(&mut conn)` and `invoke_async(&mut conn)` read
//! the same in both modes. What ordinary routing cannot express has a method of its own:
//! [`Conn::query_on_key`] (a command that must reach the master of a given key, such as `WAIT`
//! after a write) and [`Conn::query_on_master`] (a command for one master named by address:
//! `SCAN`, `INFO`, `FT.CREATE` of that master's index).

use std::sync::Arc;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Value};

/// A command connection: cheap to clone, shared by every task of the node.
#[derive(Clone)]
pub enum Conn {
    /// One Redis, through the reconnecting manager.
    Single(SingleConn),
    /// One Redis, a connection of its own (blocking reads, one master of a cluster).
    Direct(MultiplexedConnection),
    /// A Redis Cluster: routed by hash slot.
    Cluster(ClusterConnection),
}

/// Replies in a row that did not come in time before the shared connection is taken for dead.
const TIMEOUTS_BEFORE_RECONNECT: u32 = 3;

/// The shared connection to one Redis: a `ConnectionManager` (which reconnects when the
/// connection drops) that is also replaced when it stops answering: a connection silently dead
/// (half-open TCP: no FIN, no RST) never drops, and its every command would time out forever.
/// After [`TIMEOUTS_BEFORE_RECONNECT`] timeouts in a row it is replaced by a new one. TCP
/// keepalive is on as well.
#[derive(Clone)]
pub struct SingleConn {
    inner: Arc<SingleInner>,
}

struct SingleInner {
    client: redis::Client,
    config: redis::aio::ConnectionManagerConfig,
    current: std::sync::RwLock<ConnectionManager>,
    timeouts: std::sync::atomic::AtomicU32,
}

impl SingleConn {
    /// A lazily connecting manager of `client`.
    pub fn new(
        client: redis::Client,
        config: redis::aio::ConnectionManagerConfig,
    ) -> RedisResult<Self> {
        let info = client.get_connection_info().clone();
        let info = info.set_tcp_settings(keepalive_settings());
        let client = redis::Client::open(info)?;
        let current = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        Ok(SingleConn {
            inner: Arc::new(SingleInner {
                client,
                config,
                current: std::sync::RwLock::new(current),
                timeouts: Default::default(),
            }),
        })
    }

    fn current(&self) -> ConnectionManager {
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Counts timeouts in a row; replaces the connection after too many.
    fn observe<T>(&self, result: &RedisResult<T>) {
        use std::sync::atomic::Ordering::SeqCst;
        match result {
            Err(e) if e.is_timeout() => {
                if self.inner.timeouts.fetch_add(1, SeqCst) + 1 >= TIMEOUTS_BEFORE_RECONNECT {
                    self.inner.timeouts.store(0, SeqCst);
                    match ConnectionManager::new_lazy_with_config(
                        self.inner.client.clone(),
                        self.inner.config.clone(),
                    ) {
                        Ok(fresh) => {
                            log::warn!(
                                "redis: {TIMEOUTS_BEFORE_RECONNECT} replies in a row timed out; \
                                 replacing the connection"
                            );
                            *self
                                .inner
                                .current
                                .write()
                                .unwrap_or_else(|e| e.into_inner()) = fresh;
                        }
                        Err(e) => log::warn!("redis: cannot replace the connection: {e}"),
                    }
                }
            }
            _ => self.inner.timeouts.store(0, SeqCst),
        }
    }
}

/// TCP settings of every Redis connection: keepalive for connections that may sit idle (probes
/// after 10 s idle, every 5 s, 3 tries), and no Nagle delay (redis-rs leaves Nagle's algorithm
/// on by default): on the shared connection many posts' commands are in flight at once, and a
/// small command written while an earlier one is unacknowledged must not wait for an ACK.
pub fn keepalive_settings() -> redis::io::tcp::TcpSettings {
    let keepalive = redis::io::tcp::socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(10))
        .with_interval(std::time::Duration::from_secs(5))
        .with_retries(3);
    redis::io::tcp::TcpSettings::default()
        .set_keepalive(keepalive)
        .set_nodelay(true)
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(s) => {
                let mut c = s.current();
                let s = s.clone();
                Box::pin(async move {
                    let r = c.req_packed_command(cmd).await;
                    s.observe(&r);
                    r
                })
            }
            Conn::Direct(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(s) => {
                let mut c = s.current();
                let s = s.clone();
                Box::pin(async move {
                    let r = c.req_packed_commands(pipeline, offset, count).await;
                    s.observe(&r);
                    r
                })
            }
            Conn::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => {
                let mut c = c.clone();
                Box::pin(async move {
                    match c.req_packed_commands(pipeline, offset, count).await {
                        Err(e) if is_client_cross_slot(&e) && !pipeline.is_transaction() => {
                            cross_slot_one_by_one(&mut c, pipeline).await
                        }
                        other => other,
                    }
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(s) => s.current().get_db(),
            Conn::Direct(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Whether the cluster client refused a pipeline before sending it because its commands name
/// keys of several slots.
fn is_client_cross_slot(e: &redis::RedisError) -> bool {
    e.to_string().contains("crossed slots in pipeline")
}

/// A plain pipeline (no `MULTI`) whose commands live in several slots, on a cluster: each
/// command on its own, in order (one round trip each; such pipelines are short). Atomicity was
/// never promised for a plain pipeline, so nothing is lost but the batching.
async fn cross_slot_one_by_one(
    c: &mut ClusterConnection,
    pipeline: &Pipeline,
) -> RedisResult<Vec<Value>> {
    let mut out = Vec::new();
    for cmd in pipeline.cmd_iter() {
        match c.req_packed_command(cmd).await {
            Ok(v) => out.push(v),
            // A server's refusal of one command is that command's answer, as in a pipeline.
            Err(e) if matches!(e.kind(), redis::ErrorKind::Server(_)) => {
                let text = e.to_string();
                match e
                    .into_server_errors()
                    .and_then(|errs| errs.first().cloned())
                {
                    Some((_, err)) => out.push(Value::ServerError(err)),
                    None => {
                        return Err(redis::RedisError::from((
                            redis::ErrorKind::Client,
                            "pipeline command failed",
                            text,
                        )))
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

impl Conn {
    /// Runs `cmd` on the master that owns `key`'s hash slot (on one Redis: on it). For commands
    /// whose own routing would go elsewhere: `WAIT` (which the cluster client would send to
    /// every master) after a write to `key`.
    pub async fn query_on_key<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        key: &str,
    ) -> RedisResult<T> {
        match self {
            Conn::Cluster(c) => {
                let route = Route::with_key(key.as_bytes(), SlotAddr::Master);
                let v = c
                    .route_command(
                        cmd.clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                Ok(redis::from_redis_value(v)?)
            }
            other => cmd.query_async(other).await,
        }
    }

    /// Runs `cmd` on one master, by address (on one Redis: on it).
    pub async fn query_on_master<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        master: &Master,
    ) -> RedisResult<T> {
        match self {
            Conn::Cluster(c) => {
                let v = c
                    .route_command(
                        cmd.clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: master.host.clone(),
                            port: master.port,
                        }),
                    )
                    .await?;
                Ok(redis::from_redis_value(v)?)
            }
            other => cmd.query_async(other).await,
        }
    }
}

/// Number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC16 (XMODEM), the checksum Redis Cluster maps keys to slots with.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The hash slot of a key: of its hash tag (`{…}`, the first non-empty one) when it has one.
pub fn slot_of(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match bytes.iter().position(|&b| b == b'{') {
        Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    crc16(hashed) % SLOTS
}

/// One master of the cluster (on one Redis: that Redis) and the slot ranges it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Master {
    pub host: String,
    pub port: u16,
    /// Inclusive slot ranges, sorted.
    pub slots: Vec<(u16, u16)>,
}

impl Master {
    /// Whether this master serves `slot`.
    pub fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The masters of the cluster as last read (`CLUSTER SLOTS`), sorted by address; one Redis is one
/// master serving every slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub masters: Vec<Master>,
}

impl Topology {
    /// One Redis at `host:port`.
    pub fn single(host: &str, port: u16) -> Self {
        Topology {
            masters: vec![Master {
                host: host.to_string(),
                port,
                slots: vec![(0, SLOTS - 1)],
            }],
        }
    }

    /// The index (in `masters`) of the master serving `key`.
    pub fn master_of_key(&self, key: &str) -> Option<usize> {
        let slot = slot_of(key);
        self.masters.iter().position(|m| m.serves(slot))
    }

    /// Parses a `CLUSTER SLOTS` answer.
    pub fn from_cluster_slots(v: &Value) -> Option<Topology> {
        let Value::Array(ranges) = v else {
            return None;
        };
        let mut masters: Vec<Master> = Vec::new();
        for range in ranges {
            let Value::Array(parts) = range else { continue };
            let (Some(Value::Int(a)), Some(Value::Int(b)), Some(Value::Array(node))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                continue;
            };
            let host = match node.first() {
                Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
                Some(Value::SimpleString(h)) => h.clone(),
                _ => continue,
            };
            let Some(Value::Int(port)) = node.get(1) else {
                continue;
            };
            let (port, a, b) = (*port as u16, *a as u16, *b as u16);
            match masters
                .iter_mut()
                .find(|m| m.host == host && m.port == port)
            {
                Some(m) => m.slots.push((a, b)),
                None => masters.push(Master {
                    host,
                    port,
                    slots: vec![(a, b)],
                }),
            }
        }
        if masters.is_empty() {
            return None;
        }
        for m in &mut masters {
            m.slots.sort();
        }
        masters.sort_by(|x, y| (x.host.as_str(), x.port).cmp(&(y.host.as_str(), y.port)));
        Some(Topology { masters })
    }

    /// The name of an index of `base` whose key lives on master `i`: `base` itself on one Redis,
    /// else `base:{m<k>}` with the smallest `k` whose hash slot that master serves. Each master
    /// holds the index of the documents it stores (RediSearch indexes only local keys).
    pub fn index_on(&self, base: &str, i: usize) -> String {
        if self.masters.len() == 1 && self.masters[0].slots == [(0, SLOTS - 1)] {
            return base.to_string();
        }
        let master = &self.masters[i];
        (0u32..)
            .map(|k| format!("{base}:{{m{k}}}"))
            .find(|name| master.serves(slot_of(name)))
            .expect("every master serves some slot")
    }

    /// The index of `base` that a document stored at `key` belongs in.
    pub fn index_for_key(&self, base: &str, key: &str) -> String {
        match self.master_of_key(key) {
            Some(i) => self.index_on(base, i),
            None => base.to_string(),
        }
    }

    /// Every index of `base`, one per master, in `masters` order.
    pub fn indexes(&self, base: &str) -> Vec<String> {
        (0..self.masters.len())
            .map(|i| self.index_on(base, i))
            .collect()
    }
}

/// What the node knows of a cluster: the connection template of the seeds (password and TLS) and
/// the topology as last read.
pub struct ClusterState {
    /// Connection info of the first seed; other nodes are reached with its settings.
    pub template: redis::ConnectionInfo,
    pub topology: std::sync::RwLock<Arc<Topology>>,
}

/// `info` with its address replaced by `host:port` (same TLS mode and parameters).
pub fn info_at(info: &redis::ConnectionInfo, host: &str, port: u16) -> redis::ConnectionInfo {
    use redis::ConnectionAddr;
    let addr = match info.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host.to_string(), port),
    };
    info.clone().set_addr(addr)
}

/// `host` and `port` of a connection info (`None` for a Unix socket).
pub fn host_port(info: &redis::ConnectionInfo) -> Option<(String, u16)> {
    use redis::ConnectionAddr;
    match info.addr() {
        ConnectionAddr::Tcp(h, p)
        | ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => Some((h.clone(), *p)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from CLUSTER KEYSLOT.
        assert_eq!(slot_of("foo"), 12182);
        assert_eq!(slot_of("{user1000}.following"), slot_of("user1000"));
        assert_eq!(slot_of("channel:General"), slot_of("{channel:General}:x"));
        assert_eq!(slot_of("a{}b"), crc16(b"a{}b") % SLOTS);
    }

    #[test]
    fn index_names_land_on_their_master() {
        let t = Topology {
            masters: vec![
                Master {
                    host: "a".into(),
                    port: 1,
                    slots: vec![(0, 5460)],
                },
                Master {
                    host: "b".into(),
                    port: 1,
                    slots: vec![(5461, 10922)],
                },
                Master {
                    host: "c".into(),
                    port: 1,
                    slots: vec![(10923, 16383)],
                },
            ],
        };
        let names = t.indexes("idx:messages");
        assert_eq!(names.len(), 3);
        for (i, n) in names.iter().enumerate() {
            assert!(t.masters[i].serves(slot_of(n)), "{n}");
            assert!(n.starts_with("idx:messages:{m"));
        }
        assert_eq!(
            Topology::single("h", 1).indexes("idx:messages"),
            vec!["idx:messages"]
        );
    }
}
