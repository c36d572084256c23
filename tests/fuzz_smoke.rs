//! 100,000 random and mutated inputs (WebSocket frames, HTTP requests to every endpoint, voice
//! uploads with mutated headers) from `chatnode-fuzz` against a node process of the build under
//! test: the node must not crash, hang (every input answered within 5 s) or grow, must answer
//! only documented error codes and never `internal`, and must have stored every post it
//! acknowledged. `bench/fuzz.sh` is the long run (10 million inputs).
//!
//! The fuzzer is a binary of the loadgen package, found next to this test's own executable like
//! chatnode-loadgen (tests/loadgen_smoke.rs); `--test fuzz_smoke` alone does not build it.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn fuzz_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CHATNODE_FUZZ") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test executable in target/<profile>/deps");
    let bin = dir.join(format!("chatnode-fuzz{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p chatnode-loadgen` (same profile), or run \
         the tests without `--test`",
        bin.display()
    );
    bin
}

/// The node as its own process (its memory is measured alone), limits raised so that inputs
/// reach the code behind them, as bench/fuzz.sh runs it.
fn start_node(redis_url: &str) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let conf = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatnode"))
        .arg("serve")
        .env("CHATNODE_CONFIG_DIR", conf.path())
        .env("CHATNODE__HTTP__PORT", "0")
        .env("CHATNODE__REDIS__URL", redis_url)
        .env("CHATNODE__AUTH__ARGON2_MEMORY_KIB", "64")
        .env("CHATNODE__AUTH__ARGON2_ITERATIONS", "1")
        .env("CHATNODE__AUTH__MAX_FAILED_LOGINS", "1000000000")
        .env("CHATNODE__WS__RATE_LIMIT_MESSAGES", "1000000")
        .env("CHATNODE__VOICE__DAILY_QUOTA_BYTES", "0")
        .env("CHATNODE__VOICE__ENGINE", "none")
        .env("CHATNODE__LIMITS__READS_PER_MINUTE", "1000000000")
        .env("CHATNODE__LIMITS__TYPING_PER_MINUTE", "1000000000")
        .env("CHATNODE__LIMITS__JOINS_PER_MINUTE", "1000000000")
        .env("CHATNODE__LIMITS__CHANNEL_CREATES_PER_HOUR", "1000000000")
        .env("CHATNODE__LIMITS__MAX_CHANNELS_PER_USER", "1000000000")
        .env("CHATNODE__LOG__LEVEL", "info")
        .env("RUST_BACKTRACE", "0")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end, so the node never blocks on a full pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("chatnode listening on") {
                let _ = tx.send(line.rsplit("http://").next().unwrap().trim().to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the node listens");
    std::mem::forget(conf);
    (child, format!("http://{addr}"))
}

#[tokio::test]
async fn a_hundred_thousand_fuzzed_inputs_crash_hang_grow_and_lose_nothing() {
    let redis = TestRedis::start().await;
    let (mut node, base) = start_node(&redis.url());
    let pid = node.id();
    let bin = fuzz_binary();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["--url", &base, "--inputs", "100000", "--workers", "4"])
            .args(["--seed", "7", "--pid", &pid.to_string()])
            .output()
            .expect("chatnode-fuzz runs")
    })
    .await
    .unwrap();
    let _ = node.kill();
    let _ = node.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("a JSON summary ({e}); stderr: {stderr}"));
    println!("{summary:#}");
    assert_eq!(summary["inputs"], 100_000);
    assert_eq!(summary["crashes"], 0, "{summary:#}");
    assert_eq!(summary["hangs"], 0, "{summary:#}");
    assert_eq!(summary["internal_errors"], 0, "{summary:#}");
    assert_eq!(
        summary["undocumented_codes"],
        serde_json::json!({}),
        "{summary:#}"
    );
    assert_eq!(
        summary["posts_missing"],
        serde_json::json!([]),
        "{summary:#}"
    );
    assert!(summary["posts_acknowledged"].as_u64().unwrap() > 0);
    // Every kind of input was sent and answered (frames go in batches of 12, so most are frames).
    for key in ["ws_frames", "http_requests", "audio_uploads"] {
        assert!(summary[key].as_u64().unwrap() > 300, "{key}: {summary:#}");
    }
    for code in ["invalid_json", "invalid_frame", "binary_unsupported"] {
        assert!(
            summary["ws_error_codes"][code].as_u64().unwrap_or(0) > 0,
            "{code}"
        );
    }
    assert!(
        summary["close_codes"]["1009"].as_u64().unwrap_or(0) > 0,
        "oversized frames"
    );
    // Memory after a warm-up of 5,000 inputs, then after the rest: no growth beyond 32 MiB.
    let before = summary["rss_kib_before"].as_u64().unwrap();
    let after = summary["rss_kib_after"].as_u64().unwrap();
    assert!(
        after <= before + 32 * 1024,
        "RSS {before} KiB -> {after} KiB: {summary:#}"
    );
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
}
