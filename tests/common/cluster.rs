//! A local Redis Cluster for tests: six `redis-server` processes (three masters, three replicas,
//! `cluster-enabled yes`, a short `cluster-node-timeout`, RediSearch loaded on each) on free
//! ports, formed with `redis-cli --cluster create … --cluster-replicas 1`. Every process is
//! stopped by its PID when the cluster drops, also when a test fails.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chatnode::redis_server::{free_port, RedisOptions, RedisProcess};

use super::{TestRedis, SEARCH_V1};

/// Milliseconds after which an unreachable master is failed over.
pub const NODE_TIMEOUT_MS: u64 = 1500;

/// A running six-process cluster.
pub struct TestCluster {
    pub nodes: Vec<TestRedis>,
    /// Nodes started again after a kill, on their old port and folder (stopped by PID at drop).
    restarted: Vec<std::process::Child>,
    /// Each node's folder and cluster-bus port, by node port.
    places: Vec<(u16, PathBuf, u16)>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for child in &mut self.restarted {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `role` and slot facts of one cluster node, as `CLUSTER NODES` lists it.
#[derive(Clone, Debug)]
pub struct NodeLine {
    pub port: u16,
    pub master: bool,
    pub failed: bool,
    pub slots: Vec<(u16, u16)>,
}

impl TestCluster {
    /// Starts and forms the cluster; waits until every node reports `cluster_state:ok` and every
    /// replica is in sync with its master.
    pub async fn start() -> Self {
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        let mut places = Vec::new();
        for _ in 0..6 {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let bus = free_port().expect("a free port");
            let process = RedisProcess::start(&RedisOptions {
                binary: "redis-server".into(),
                data_dir: None,
                module_path: Some(PathBuf::from(SEARCH_V1)),
                extra_args: vec![
                    "--dir".into(),
                    dir.path().display().to_string(),
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    "nodes.conf".into(),
                    "--cluster-node-timeout".into(),
                    NODE_TIMEOUT_MS.to_string(),
                    "--cluster-port".into(),
                    bus.to_string(),
                    // A replica may be promoted however long its link was down (the test kills
                    // masters on purpose).
                    "--cluster-replica-validity-factor".into(),
                    "0".into(),
                ],
                startup_timeout: Duration::from_secs(10),
                password: None,
            })
            .await
            .expect("a cluster redis-server starts");
            places.push((process.port(), dir.path().to_path_buf(), bus));
            nodes.push(TestRedis { process });
            dirs.push(dir);
        }
        let mut create = std::process::Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.process.port()));
        }
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = tokio::task::spawn_blocking(move || create.output())
            .await
            .unwrap()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = TestCluster {
            nodes,
            restarted: Vec::new(),
            places,
            _dirs: dirs,
        };
        cluster.wait_ok(Duration::from_secs(30)).await;
        cluster
    }

    /// `redis://127.0.0.1:<port>` of every node, comma-separated (the nodes' `cluster_nodes`).
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.process.port()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node listening on `port`.
    pub fn node(&self, port: u16) -> &TestRedis {
        self.nodes
            .iter()
            .find(|n| n.process.port() == port)
            .expect("a node of this cluster")
    }

    /// A node still running (answering), to ask about the cluster.
    async fn live_node(&self) -> &TestRedis {
        for n in &self.nodes {
            if n.process.pid().is_some() && ping(n.process.port()).await {
                return n;
            }
        }
        panic!("no node of the cluster answers");
    }

    /// `CLUSTER NODES`, as seen by a live node.
    pub async fn node_lines(&self) -> Vec<NodeLine> {
        let text: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut self.live_node().await.conn().await)
            .await
            .unwrap();
        text.lines()
            .filter_map(|line| {
                let parts: Vec<&str> = line.split(' ').collect();
                let port: u16 = parts.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
                let flags = parts.get(2)?;
                let slots = parts[8.min(parts.len())..]
                    .iter()
                    .filter(|s| !s.starts_with('['))
                    .filter_map(|s| {
                        let mut ab = s.split('-');
                        let a: u16 = ab.next()?.parse().ok()?;
                        let b: u16 = ab.next().map(|b| b.parse().ok()).unwrap_or(Some(a))?;
                        Some((a, b))
                    })
                    .collect();
                Some(NodeLine {
                    port,
                    master: flags.contains("master"),
                    failed: flags.contains("fail"),
                    slots,
                })
            })
            .collect()
    }

    /// Ports of the masters serving slots, sorted.
    pub async fn master_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .node_lines()
            .await
            .into_iter()
            .filter(|n| n.master && !n.failed && !n.slots.is_empty())
            .map(|n| n.port)
            .collect();
        ports.sort();
        ports
    }

    /// The port of the master serving `key`'s slot.
    pub async fn master_of(&self, key: &str) -> u16 {
        self.serving(key).await.expect("a master serves every slot")
    }

    /// The port of the master serving `key`'s slot, if one that is not failed does.
    pub async fn serving(&self, key: &str) -> Option<u16> {
        let slot = chatnode::store::conn::slot_of(key);
        self.node_lines()
            .await
            .into_iter()
            .find(|n| n.master && !n.failed && n.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
            .map(|n| n.port)
    }

    /// Kills the node on `port` with SIGKILL (no AOF flush, no goodbye to its replica).
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.process.port() == port)
            .expect("a node of this cluster");
        if let Some(pid) = node.process.pid() {
            // SAFETY: the pid is our own child's.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }

    /// Starts a killed node again on its port, folder and `nodes.conf`: it rejoins the cluster
    /// (as a replica, if its slots were failed over meanwhile).
    pub fn restart(&mut self, port: u16) {
        let (_, dir, bus) = self
            .places
            .iter()
            .find(|(p, _, _)| *p == port)
            .cloned()
            .expect("a node of this cluster");
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .arg("--loadmodule")
            .arg(SEARCH_V1)
            .arg("--dir")
            .arg(&dir)
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .args(["--cluster-port", &bus.to_string()])
            .args(["--cluster-replica-validity-factor", "0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts again");
        self.restarted.push(child);
    }

    /// Waits until every live node says `cluster_state:ok`, every slot is served by a master
    /// that is not failed, and every live replica's link to its master is up.
    pub async fn wait_ok(&self, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            if self.is_ok().await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not become ok within {wait:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn is_ok(&self) -> bool {
        for n in &self.nodes {
            let port = n.process.port();
            if !ping(port).await {
                continue;
            }
            let Ok(mut conn) = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .unwrap()
                .get_multiplexed_async_connection()
                .await
            else {
                return false;
            };
            let info: String = match redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut conn)
                .await
            {
                Ok(i) => i,
                Err(_) => return false,
            };
            // Every node knows all six and sees every slot served (the nodes' gossip has settled).
            if !info.contains("cluster_state:ok")
                || !info.contains("cluster_known_nodes:6")
                || !info.contains("cluster_slots_ok:16384")
            {
                return false;
            }
            let repl: String = match redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut conn)
                .await
            {
                Ok(i) => i,
                Err(_) => return false,
            };
            if repl.contains("role:slave") && !repl.contains("master_link_status:up") {
                return false;
            }
        }
        let lines = self.node_lines().await;
        let served: u32 = lines
            .iter()
            .filter(|n| n.master && !n.failed)
            .flat_map(|n| n.slots.iter())
            .map(|&(a, b)| (b - a + 1) as u32)
            .sum();
        served == 16384
    }
}

/// Whether something answers PING on `port` within a second.
async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .ok()?
            .get_multiplexed_async_connection()
            .await
            .ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Some(_))
    )
}

/// Settings for a test node on the cluster of `seeds`.
pub fn cluster_settings(seeds: &str) -> chatnode::Settings {
    let mut s = super::settings("");
    s.redis.cluster_nodes = seeds.to_string();
    s
}

/// Where a test's nodes keep their data: one redis-server, or the six-process cluster. Tests of
/// the multi-node paths run on both.
pub enum Backend {
    One(TestRedis),
    Cluster(TestCluster),
}

impl Backend {
    /// One redis-server with RediSearch 1.x.
    pub async fn one() -> Self {
        Backend::One(TestRedis::start().await)
    }

    /// Three masters and three replicas, RediSearch 1.x on each.
    pub async fn cluster() -> Self {
        Backend::Cluster(TestCluster::start().await)
    }

    /// Test-node settings for this backend.
    pub fn settings(&self) -> chatnode::Settings {
        match self {
            Backend::One(r) => super::settings(&r.url()),
            Backend::Cluster(c) => cluster_settings(&c.seeds()),
        }
    }

    /// A plain connection to the Redis that holds `key` (one Redis: it; a cluster: the master
    /// serving the key's slot), for reading a key as the nodes left it.
    pub async fn conn_for(&self, key: &str) -> redis::aio::MultiplexedConnection {
        match self {
            Backend::One(r) => r.conn().await,
            Backend::Cluster(c) => c.node(c.master_of(key).await).conn().await,
        }
    }

    /// The length of the stream at `key`, read where it lives.
    pub async fn xlen(&self, key: &str) -> u64 {
        redis::cmd("XLEN")
            .arg(key)
            .query_async(&mut self.conn_for(key).await)
            .await
            .unwrap()
    }

    /// Every entry of a channel's stream: ID and fields, read where it lives.
    pub async fn stream(
        &self,
        channel: &str,
    ) -> Vec<(String, std::collections::HashMap<String, String>)> {
        let key = format!("channel:{channel}");
        redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut self.conn_for(&key).await)
            .await
            .unwrap()
    }

    /// Drops every pub/sub connection (the nodes' bridges) on every master; how many.
    pub async fn kill_pubsub_clients(&self) -> i64 {
        match self {
            Backend::One(r) => super::kill_pubsub_clients(&mut r.conn().await).await,
            Backend::Cluster(c) => {
                let mut n = 0;
                for port in c.master_ports().await {
                    n += super::kill_pubsub_clients(&mut c.node(port).conn().await).await;
                }
                n
            }
        }
    }
}
