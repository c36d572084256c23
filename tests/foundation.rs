//! Health, readiness, the embedded Redis, settings layering, and graceful shutdown.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn healthz_and_readyz_follow_redis() {
    let mut redis = TestRedis::start().await;
    let node = node(settings(&redis.url()));
    let base = node.http_url();
    let res = http().get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = http().get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["redis"], "ok");
    assert_eq!(v["redis_mode"], "single");
    assert_eq!(v["redis_masters"], 1);
    assert_eq!(v["search"], "redisearch 1.2");

    redis.process.stop(Duration::from_secs(5)).await;
    let res = http().get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["redis"], "down");
    // Liveness does not depend on Redis.
    let res = http().get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // The API answers with a stable code, not a hang or a panic.
    let res = http()
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"username": "nobody", "password": "whatever1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "redis_unavailable");
}

#[tokio::test]
async fn readyz_reports_missing_search_module() {
    let redis = TestRedis::start_plain().await;
    let node = node(settings(&redis.url()));
    let v = readyz(&node.http_url()).await;
    assert_eq!(v["search"], "unavailable");
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let redis = TestRedis::start().await;
    let node = node(settings(&redis.url()));
    let _ = http()
        .get(format!("{}/healthz", node.http_url()))
        .send()
        .await
        .unwrap();
    let text = metrics_text(&node.http_url()).await;
    assert!(text.contains("# TYPE chatnode_ws_connections gauge"));
    assert!(text.contains("process_resident_memory_bytes"));
    let ok_line = text
        .lines()
        .find(|l| l.starts_with("chatnode_http_requests_total{class=\"2xx\"}"))
        .expect("2xx counter");
    let n: u64 = ok_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1, "{ok_line}");
}

#[tokio::test]
async fn unknown_api_paths_and_bad_json_get_error_bodies() {
    let redis = TestRedis::start().await;
    let node = node(settings(&redis.url()));
    let base = node.http_url();
    let (status, v) = get(&base, "/api/nope", "x").await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], "not_found");
    let res = http()
        .post(format!("{base}/api/auth/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_body");
}

/// The path of the built `chatnode` binary.
fn binary() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_chatnode"))
}

fn wait_for_line(child: &mut std::process::Child, needle: &str) -> String {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let needle = needle.to_string();
    std::thread::spawn(move || {
        let mut found = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !found && line.contains(&needle) {
                found = true;
                let _ = tx.send(line.clone());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the node logs that it listens")
}

fn listen_addr(line: &str) -> String {
    line.rsplit("http://").next().unwrap().trim().to_string()
}

fn pids_of_children(pid: u32) -> Vec<u32> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn start_binary(data: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(binary())
        .arg("serve")
        .env("CHATNODE__HTTP__PORT", "0")
        .env("CHATNODE__REDIS__URL", "")
        .env("CHATNODE__REDIS__DATA_DIR", data)
        .env("CHATNODE__SHUTDOWN__GRACE_SECS", "5")
        .env("CHATNODE__LOG__LEVEL", "info")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = wait_for_line(&mut child, "chatnode listening on");
    (child, listen_addr(&line))
}

fn sigterm(child: &std::process::Child) {
    // SAFETY: the pid is our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

#[tokio::test]
async fn embedded_redis_persists_across_restarts_and_leaves_no_orphan() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_binary(data.path());
    let redis_pids = pids_of_children(child.id());
    assert_eq!(redis_pids.len(), 1, "one embedded redis-server child");
    let base = format!("http://{addr}");
    let v = readyz(&base).await;
    assert_eq!(v["redis"], "ok");
    register(&base, "persisted").await;
    // AOF with appendfsync everysec: a clean stop flushes it.
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    assert!(
        !alive(redis_pids[0]),
        "embedded redis stopped with the node"
    );

    let (mut child, addr) = start_binary(data.path());
    let res = http()
        .get(format!("http://{addr}/api/usernames/persisted"))
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["available"], false, "the user survived the restart");
    let redis_pids = pids_of_children(child.id());
    // A node that dies without cleanup still takes its Redis with it.
    child.kill().unwrap();
    child.wait().unwrap();
    let gone = eventually(Duration::from_secs(10), || async {
        (!alive(redis_pids[0])).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "no orphan redis-server after the node was killed"
    );
}

#[tokio::test]
async fn sigterm_closes_sockets_with_1001() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_binary(data.path());
    let mut ws = Ws::connect_url(&format!("ws://{addr}/ws")).await;
    sigterm(&child);
    assert_eq!(ws.recv_close(Duration::from_secs(10)).await, Some(1001));
    assert!(child.wait().unwrap().success());
}

#[test]
fn check_config_masks_secrets_and_names_bad_keys() {
    let out = Command::new(binary())
        .arg("check-config")
        .env("CHATNODE__REDIS__URL", "redis://:hunter22@example:6379/0")
        .env("CHATNODE__REDIS__PASSWORD", "topsecret")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("hunter22") && !text.contains("topsecret"),
        "{text}"
    );
    assert!(text.contains("redis://:***@example:6379/0"));

    let out = Command::new(binary())
        .arg("check-config")
        .env("CHATNODE__HTTP__PORT", "not-a-port")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http.port"), "{err}");

    let out = Command::new(binary())
        .arg("check-config")
        .env("CHATNODE__PRESENCE__TTL_SECS", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("presence.ttl_secs"));
}

#[test]
fn settings_layer_file_then_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("staging.toml"),
        "[http]\nport = 9001\nhost = \"0.0.0.0\"\n[log]\nlevel = \"debug\"\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .arg("check-config")
        .env("CHATNODE_CONFIG_DIR", dir.path())
        .env("CHATNODE_ENV", "staging")
        .env("CHATNODE__HTTP__PORT", "9002")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["http"]["port"], 9002, "environment wins over the file");
    assert_eq!(
        v["http"]["host"], "0.0.0.0",
        "the file wins over the defaults"
    );
    assert_eq!(v["log"]["level"], "debug");
    assert_eq!(v["presence"]["ttl_secs"], 60, "defaults fill the rest");

    let out = Command::new(binary())
        .arg("check-config")
        .env("CHATNODE_CONFIG_DIR", dir.path())
        .env("CHATNODE_ENV", "missing")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a named environment file must exist");
}
