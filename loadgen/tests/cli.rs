//! The command line of the built binary: help, usage errors, and a whole run (coordinator and
//! worker processes) against an address where no node listens. The run with a node is
//! tests/loadgen_smoke.rs of the server package, which finds this binary next to its own
//! test executable: these tests make `cargo test` build it.

use std::process::{Command, Output};

use serde_json::Value;

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chatnode-loadgen"))
        .args(args)
        .output()
        .expect("chatnode-loadgen runs")
}

#[test]
fn help_lists_the_options_and_exits_0() {
    let out = loadgen(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--url",
        "--sockets",
        "--rooms",
        "--rate",
        "--svg",
        "--fail-on-loss",
    ] {
        assert!(help.contains(flag), "help lacks {flag}:\n{help}");
    }
}

#[test]
fn a_bad_command_line_exits_64() {
    for args in [&["--bogus"][..], &["--sockets", "many"], &["--rate", "5"]] {
        let out = loadgen(args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: no summary");
        assert!(!out.stderr.is_empty(), "{args:?}: says why");
    }
}

#[test]
fn a_run_without_a_node_counts_every_socket_as_failed() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = loadgen(&[
        "--url",
        &url,
        "--sockets",
        "3",
        "--duration",
        "0",
        "--drain",
        "0",
        "--source-addrs",
        "none",
        "--quiet",
        "--fail-on-loss",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("a JSON summary on stdout");
    assert_eq!(v["tool"], "chatnode-loadgen");
    assert_eq!(v["connects"]["attempted"], 3, "{}", v["connects"]);
    assert_eq!(v["connects"]["failed"], 3, "{}", v["connects"]);
    let reasons = v["connects"]["failure_reasons"].as_object().unwrap();
    assert!(
        reasons.keys().all(|r| r.contains("http connect")),
        "{reasons:?}"
    );
    assert_eq!(v["ok"], false);
    assert!(v["server"]["before"]["nodes"][0]["error"].is_string());
}
