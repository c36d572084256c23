//! The embedded Redis has a password: made per data folder (kept in `redis-password`, readable
//! by its owner only), given to the server on its standard input (never on its command line),
//! and the same after a restart. The real binary, its real redis-server child.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn start_binary(data: &std::path::Path) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatnode"))
        .arg("serve")
        .env("CHATNODE__HTTP__PORT", "0")
        .env("CHATNODE__REDIS__URL", "")
        .env("CHATNODE__REDIS__DATA_DIR", data)
        .env("CHATNODE__SHUTDOWN__GRACE_SECS", "5")
        .env("CHATNODE__LOG__LEVEL", "info")
        .env_remove("CHATNODE__REDIS__PASSWORD")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("chatnode listening on") {
                let _ = tx.send(line.rsplit("http://").next().unwrap().trim().to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the node listens");
    (child, addr)
}

/// The embedded redis-server's command line (its only child).
fn redis_cmdline(node_pid: u32) -> Vec<String> {
    let children = std::fs::read_to_string(format!("/proc/{node_pid}/task/{node_pid}/children"))
        .unwrap_or_default();
    let pid: u32 = children
        .split_whitespace()
        .next()
        .expect("a redis-server child")
        .parse()
        .unwrap();
    std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

async fn ping(url: &str) -> Result<String, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(|e| e.to_string())
}

fn stop(mut child: std::process::Child) {
    // SAFETY: the pid is our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "the node stops cleanly: {status:?}");
}

#[tokio::test]
async fn the_embedded_redis_needs_the_password_kept_in_its_data_folder() {
    let data = tempfile::tempdir().unwrap();
    let (child, addr) = start_binary(data.path());
    let file = data.path().join("redis-password");
    let password = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_eq!(password.len(), 64, "256 random bits, hex");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let cmdline = redis_cmdline(child.id());
    // Redis shows `redis-server 127.0.0.1:<port>` as its title.
    let port = cmdline
        .iter()
        .find_map(|a| {
            a.split_whitespace()
                .find_map(|w| w.strip_prefix("127.0.0.1:"))
        })
        .unwrap_or_else(|| panic!("the port in {cmdline:?}"))
        .to_string();
    assert!(
        !cmdline.iter().any(|a| a.contains(&password)),
        "the password is not on the command line: {cmdline:?}"
    );
    let err = ping(&format!("redis://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(err.contains("NOAUTH"), "{err}");
    assert_eq!(
        ping(&format!("redis://:{password}@127.0.0.1:{port}/"))
            .await
            .unwrap(),
        "PONG"
    );
    // The node itself uses it.
    let base = format!("http://{addr}");
    assert_eq!(readyz(&base).await["redis"], "ok");
    register(&base, "kept").await;
    stop(child);

    // Restarted on the same folder: the same password, the same data.
    let (child, addr) = start_binary(data.path());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        password,
        "the password is made once per data folder"
    );
    let (status, v) = get(&format!("http://{addr}"), "/api/usernames/kept", "").await;
    assert_eq!(status, 200);
    assert_eq!(v["available"], false);
    assert_eq!(readyz(&format!("http://{addr}")).await["redis"], "ok");
    stop(child);

    // Another folder, another password.
    let other = tempfile::tempdir().unwrap();
    let (child, addr) = start_binary(other.path());
    assert_eq!(readyz(&format!("http://{addr}")).await["redis"], "ok");
    let second = std::fs::read_to_string(other.path().join("redis-password")).unwrap();
    assert_ne!(second.trim(), password);
    stop(child);
}
