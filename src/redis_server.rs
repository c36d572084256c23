//! A `redis-server` child process: the node's embedded Redis, and the test harness's Redis.
//!
//! The child gets a parent-death signal, so it never outlives the node even when the node is
//! killed; a clean stop sends SIGTERM so Redis flushes its append-only file first.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// How to start a `redis-server`.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// Program to run (`redis-server`, or another Redis-compatible server).
    pub binary: String,
    /// Folder for the append-only file; `None` runs without persistence.
    pub data_dir: Option<PathBuf>,
    /// Module to load when the file exists (RediSearch).
    pub module_path: Option<PathBuf>,
    /// Extra `--name value` arguments.
    pub extra_args: Vec<String>,
    /// How long to wait for the first PING to answer.
    pub startup_timeout: Duration,
    /// Password clients must give (`requirepass`); handed to the server on its standard input,
    /// so it never shows in the process list.
    pub password: Option<String>,
}

/// The name of the file in the embedded Redis's data folder that holds its password.
pub const PASSWORD_FILE: &str = "redis-password";

/// The options of a node's embedded Redis: its data folder, the search module, and a password:
/// `redis.password` when set, else the one kept in `<data_dir>/redis-password`, made (random,
/// 256 bits, readable by the owner only) the first time a data folder is used.
pub fn embedded_options(settings: &crate::Settings) -> Result<RedisOptions, String> {
    let r = &settings.redis;
    let password = if r.password.expose().is_empty() {
        data_dir_password(&r.data_dir)?
    } else {
        r.password.expose().to_string()
    };
    if !plain_password(&password) {
        return Err(
            "the embedded Redis's password (redis.password) must have no spaces, quotes or backslashes"
                .into(),
        );
    }
    Ok(RedisOptions {
        binary: r.server_binary.clone(),
        data_dir: Some(r.data_dir.clone()),
        module_path: Some(r.module_path.clone()),
        extra_args: Vec::new(),
        startup_timeout: Duration::from_secs(r.startup_timeout_secs),
        password: Some(password),
    })
}

/// The password kept in `dir`, made when there is none yet.
pub fn data_dir_password(dir: &Path) -> Result<String, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(PASSWORD_FILE);
    let made = {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut f) => {
            f.write_all(format!("{made}\n").as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(made)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let pw = text.trim().to_string();
            if !plain_password(&pw) {
                return Err(format!(
                    "{} must hold one password without spaces, quotes or backslashes",
                    path.display()
                ));
            }
            Ok(pw)
        }
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

/// A running `redis-server` child.
pub struct RedisProcess {
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    /// Whether the module was asked to load.
    pub module_loaded: bool,
}

/// A free TCP port on loopback (bound, read, released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The one line shown when `redis-server` cannot be found.
pub const INSTALL_HINT: &str = "redis-server was not found: install it with `sudo apt-get install -y redis-server redis-redisearch`, or set CHATNODE__REDIS__URL to a running Redis";

impl RedisProcess {
    /// Starts the server on a free loopback port and waits until it answers PING.
    pub async fn start(opts: &RedisOptions) -> Result<Self, String> {
        // A port taken between probing and binding makes the child exit; try a few ports.
        let mut last_err = String::new();
        for _ in 0..5 {
            match Self::start_once(opts).await {
                Ok(p) => return Ok(p),
                Err(e) if e.starts_with("redis-server was not found") => return Err(e),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    async fn start_once(opts: &RedisOptions) -> Result<Self, String> {
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let mut cmd = Command::new(&opts.binary);
        if opts.password.is_some() {
            // `-` first: read configuration from standard input (the password), then the options.
            cmd.arg("-");
        }
        cmd.arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--daemonize", "no", "--save", ""])
            .args(["--protected-mode", "yes", "--loglevel", "warning"]);
        match &opts.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let dir = std::fs::canonicalize(dir)
                    .map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
                cmd.arg("--dir").arg(&dir).args([
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "everysec",
                ]);
            }
            None => {
                cmd.args(["--appendonly", "no"]);
            }
        }
        let module_loaded = match &opts.module_path {
            Some(m) if Path::new(m).exists() => {
                cmd.arg("--loadmodule").arg(m);
                true
            }
            _ => false,
        };
        cmd.args(&opts.extra_args);
        cmd.stdin(if opts.password.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to signal this child when
        // the parent thread exits, so a killed node never leaves an orphan Redis behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                INSTALL_HINT.to_string()
            } else {
                format!("cannot start {}: {e}", opts.binary)
            }
        })?;
        if let (Some(pw), Some(mut stdin)) = (&opts.password, child.stdin.take()) {
            use tokio::io::AsyncWriteExt;
            let config = format!("requirepass \"{pw}\"\n");
            // Closed when dropped: Redis reads its configuration to the end before it starts.
            let _ = stdin.write_all(config.as_bytes()).await;
        }
        let deadline = Instant::now() + opts.startup_timeout;
        let url = url_of(port, opts.password.as_deref());
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    use tokio::io::AsyncReadExt;
                    let _ = err.read_to_string(&mut stderr).await;
                }
                return Err(format!(
                    "{} exited ({status}): {}",
                    opts.binary,
                    stderr.trim()
                ));
            }
            if ping(&url).await {
                return Ok(RedisProcess {
                    child: Some(child),
                    port,
                    password: opts.password.clone(),
                    module_loaded,
                });
            }
            if Instant::now() > deadline {
                let _ = child.start_kill();
                return Err(format!(
                    "{} did not answer within {:?}",
                    opts.binary, opts.startup_timeout
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL to reach it (with its password, when it has one).
    pub fn url(&self) -> String {
        url_of(self.port, self.password.as_deref())
    }

    /// The child's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// Stops the server with SIGTERM (Redis flushes its AOF), then SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            // SAFETY: the pid belongs to our own child, which has not been reaped yet.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }

    /// Stops the server from synchronous code (drop paths, test cleanup).
    pub fn stop_blocking(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                // SAFETY: as in `stop`.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGTERM);
                }
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.start_kill();
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.stop_blocking();
    }
}

fn url_of(port: u16, password: Option<&str>) -> String {
    let url = format!("redis://127.0.0.1:{port}/");
    crate::store::url_with_password(&url, password.unwrap_or(""))
}

/// Whether a password can be written into a `requirepass "…"` line as it is.
fn plain_password(pw: &str) -> bool {
    !pw.is_empty()
        && !pw
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
}

async fn ping(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(Ok(mut conn)) = tokio::time::timeout(
        Duration::from_millis(500),
        client.get_multiplexed_async_connection(),
    )
    .await
    else {
        return false;
    };
    matches!(
        redis::cmd("PING").query_async::<String>(&mut conn).await,
        Ok(ref s) if s == "PONG"
    )
}
