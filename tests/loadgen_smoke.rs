//! A small run of chatnode-loadgen against a node in this process: a few hundred sockets in rooms,
//! a few seconds of posts. It fails on any failed connect, lost, duplicated or reordered
//! delivery, and on a summary that lacks its stable keys; it asserts no timing.
//!
//! The tool is its own package (loadgen/), so Cargo gives this test no `CARGO_BIN_EXE_` path for
//! it: [`loadgen_binary`] finds it in the same target directory. `cargo test` and `cargo nextest
//! run` at the top build it with the rest (its own tests need it); `--test loadgen_smoke` alone
//! does not, hence the message.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::Value;

/// `chatnode-loadgen` of the build under test: `$CHATNODE_LOADGEN` if set, else the binary next
/// to this test's own (`target/<profile>/deps/loadgen_smoke-…` → `target/<profile>/`).
fn loadgen_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CHATNODE_LOADGEN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test executable in target/<profile>/deps");
    let bin = dir.join(format!("chatnode-loadgen{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p chatnode-loadgen` (same profile), or run \
         the tests without `--test`, e.g. `cargo nextest run -E 'test(loadgen_smoke)'`",
        bin.display()
    );
    bin
}

/// Runs chatnode-loadgen with `args` and returns its JSON summary; fails on a non-zero exit.
async fn run_loadgen(args: Vec<String>) -> Value {
    let bin = loadgen_binary();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(&args)
            .output()
            .expect("chatnode-loadgen runs")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    serde_json::from_slice(&out.stdout).expect("a JSON summary on stdout")
}

#[tokio::test]
async fn loadgen_smoke_run_loses_and_duplicates_nothing() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    // Room for the loadgen's concurrent sign-ups next to the node's own Redis use.
    s.redis.pool_size = 32;
    s.ws.rate_limit_messages = 1000;
    let node = node(s);
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("run.svg");
    let args: Vec<String> = [
        "--url",
        &node.http_url(),
        "--sockets",
        "300",
        "--ramp",
        "300",
        "--rooms",
        "6",
        "--members",
        "50",
        "--rate",
        "150",
        "--duration",
        "3",
        "--drain",
        "30",
        "--workers",
        "2",
        "--setup-concurrency",
        "4",
        "--connect-timeout",
        "30",
        "--label",
        "smoke",
        "--quiet",
        "--svg",
        svg.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let v = run_loadgen(args).await;

    for key in [
        "config",
        "connects",
        "disconnects",
        "messages",
        "deliveries",
        "latency_ms",
        "ack_latency_ms",
        "answer_latency_ms",
        "timeseries",
        "server",
        "ok",
    ] {
        assert!(v.get(key).is_some(), "summary lacks `{key}`: {v}");
    }
    for q in ["p50", "p90", "p99", "p999", "max"] {
        assert!(v["latency_ms"][q].is_number(), "latency_ms.{q}");
    }
    assert_eq!(v["connects"]["attempted"], 300, "{}", v["connects"]);
    assert_eq!(v["connects"]["succeeded"], 300, "{}", v["connects"]);
    assert_eq!(v["connects"]["failed"], 0, "{}", v["connects"]);
    assert_eq!(v["disconnects"]["total"], 0, "{}", v["disconnects"]);

    let m = &v["messages"];
    let sent = m["sent"].as_u64().unwrap();
    assert!(sent > 0, "nothing was sent: {m}");
    assert_eq!(m["acked"].as_u64(), Some(sent), "{m}");

    let d = &v["deliveries"];
    // Every acknowledged post reaches each of its room's 50 members, the sender included.
    assert_eq!(d["expected"].as_u64(), Some(sent * 50), "{d}");
    assert_eq!(d["received"], d["expected"], "{d}");
    assert_eq!(d["lost"], 0, "{d}");
    assert_eq!(d["duplicated"], 0, "{d}");
    assert_eq!(d["out_of_order"], 0, "{d}");
    assert_eq!(v["latency_ms"]["count"], d["received"]);
    assert_eq!(v["ok"], true, "{v}");

    // The node counted the same posts.
    let after = &v["server"]["after"]["nodes"][0]["metrics"];
    assert_eq!(
        after["chatnode_messages_posted_total"].as_f64(),
        Some(sent as f64),
        "{after}"
    );
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg") && picture.contains("p99"));
    node.stop();
}

/// A node that takes one post at a time answers the rest `busy`: the load generator counts the
/// refusals, re-sends each refused post with its `client_id` after `retry_after_ms`, and in the
/// end every post is acknowledged, stored once and delivered once.
#[tokio::test]
async fn loadgen_counts_busy_refusals_and_resends_them_until_stored() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.redis.pool_size = 32;
    s.ws.rate_limit_messages = 100_000;
    s.ws.max_inflight_per_node = 1;
    let node = node(s);
    let args: Vec<String> = [
        "--url",
        &node.http_url(),
        "--sockets",
        "40",
        "--ramp",
        "200",
        "--rooms",
        "4",
        "--members",
        "10",
        "--rate",
        "800",
        "--duration",
        "2",
        "--drain",
        "60",
        "--workers",
        "1",
        "--setup-concurrency",
        "4",
        "--connect-timeout",
        "30",
        "--label",
        "busy",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let v = run_loadgen(args).await;
    let m = &v["messages"];
    let sent = m["sent"].as_u64().unwrap();
    assert!(sent > 0, "nothing was sent: {m}");
    assert!(m["busy"].as_u64().unwrap() > 0, "no post was refused: {m}");
    assert!(m["refused"].as_u64().unwrap() > 0, "{m}");
    assert!(
        m["resent"].as_u64().unwrap() >= m["refused"].as_u64().unwrap(),
        "{m}"
    );
    assert_eq!(m["acked"].as_u64(), Some(sent), "{m}");
    // Every try got an answer, and each answer was timed: one per `posted`, one per `busy`.
    assert_eq!(
        v["answer_latency_ms"]["count"].as_u64(),
        Some(sent + m["busy"].as_u64().unwrap()),
        "{}",
        v["answer_latency_ms"]
    );
    let d = &v["deliveries"];
    assert_eq!(d["expected"].as_u64(), Some(sent * 10), "{d}");
    assert_eq!(d["received"], d["expected"], "{d}");
    assert_eq!(d["lost"], 0, "{d}");
    assert_eq!(d["duplicated"], 0, "{d}");
    // Stored once each, whatever the re-sends.
    let after = &v["server"]["after"]["nodes"][0]["metrics"];
    assert_eq!(
        after["chatnode_messages_posted_total"].as_f64(),
        Some(sent as f64),
        "{after}"
    );
    node.stop();
}
