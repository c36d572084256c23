//! What survives a quiet failure: `redis.ack_replicas` (a post answered `posted` is on a replica
//! too), and a revocation published while a node's pub/sub connection was silently dead.

mod common;

use std::time::{Duration, Instant};

use common::proxy::FreezableProxy;
use common::*;
use serde_json::{json, Value};

/// Sends a `post` frame and returns the answer to it (`posted` or `error`).
async fn ws_post(ws: &mut Ws, channel: &str, text: &str, client_id: &str) -> Value {
    ws.send(
        json!({"type": "post", "post": {"channel": channel, "text": text, "client_id": client_id}}),
    )
    .await;
    loop {
        let v = ws.recv().await;
        if v["type"] == "posted" || v["type"] == "error" {
            return v;
        }
        assert_ne!(v["type"], "__close", "socket closed: {v}");
    }
}

/// Sends SIGSTOP or SIGCONT to our own child.
fn signal(redis: &TestRedis, sig: libc::c_int) {
    let pid = redis.process.pid().expect("running") as libc::pid_t;
    // SAFETY: the pid is our own child's.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// With `ack_replicas = 1` a post is answered `posted` only once the replica has it; with the
/// replica unable to answer, the post is answered `unknown_outcome` (it is on the master) and the
/// re-send with the same `client_id` once the replica is back is `posted` with the same ID,
/// stored once.
#[tokio::test]
async fn ack_replicas_answers_posted_only_once_the_replica_has_the_post() {
    let master = TestRedis::start().await;
    let replica = TestRedis::start_with(
        Some(SEARCH_V1.into()),
        vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            master.process.port().to_string(),
        ],
    )
    .await;
    let synced = eventually(Duration::from_secs(10), || async {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut replica.conn().await)
            .await
            .ok()?;
        info.contains("master_link_status:up").then_some(())
    })
    .await;
    assert!(synced.is_some(), "the replica syncs");
    let mut s = settings(&master.url());
    s.redis.ack_replicas = 1;
    s.redis.ack_timeout_ms = 200;
    s.ws.rate_limit_messages = 10_000;
    let n = node(s);
    let t = register(&n.http_url(), "durable").await;
    join(&n.http_url(), &t, "general").await;
    let mut ws = Ws::connect(&n, Some(&t)).await;

    for i in 0..20 {
        let v = ws_post(&mut ws, "general", &format!("m{i}"), &format!("c-{i}")).await;
        assert_eq!(v["type"], "posted", "{v}");
        // Answered posted: the replica has it already.
        let on_replica: u64 = replica.xlen("channel:general").await;
        assert_eq!(on_replica, master.xlen("channel:general").await);
    }

    // Many posts at once share their WAITs (one in flight per master): every answer is still
    // given only once the replica has that post.
    let posts = (0..60).map(|i| {
        let (base, t) = (n.http_url(), t.clone());
        async move {
            let (status, v) = post(
                &base,
                "/api/channels/general/messages",
                &t,
                json!({"text": format!("burst {i}")}),
            )
            .await;
            assert_eq!(status, 201, "{v}");
            v["message"]["id"].as_str().unwrap().to_string()
        }
    });
    let ids = futures_util::future::join_all(posts).await;
    let mut conn = replica.conn().await;
    for id in &ids {
        let found: Vec<(String, std::collections::HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg("channel:general")
            .arg(id)
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{id} is on the replica once answered");
    }
    let before = master.xlen("channel:general").await;
    signal(&replica, libc::SIGSTOP);
    let started = Instant::now();
    let v = ws_post(&mut ws, "general", "unconfirmed", "c-x").await;
    signal(&replica, libc::SIGCONT);
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["code"], "unknown_outcome", "{v}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let stored = master.xlen("channel:general").await;
    assert_eq!(stored, before + 1, "the master stored it");

    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        let v = ws_post(&mut ws, "general", "unconfirmed", "c-x").await;
        if v["type"] == "posted" {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "posted once the replica answers again: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        master.xlen("channel:general").await,
        before + 1,
        "stored once"
    );
    let entries = master.stream("general").await;
    assert_eq!(again["posted"]["id"], entries.last().unwrap().0.as_str());
    assert_eq!(replica.xlen("channel:general").await, before + 1);
}

/// A signed-in socket on a node whose pub/sub connection went silent (half-open TCP) is closed
/// when its session is revoked on another node: the revocation published meanwhile is never
/// heard, but the health check replaces the connection and the node looks every socket's
/// session up again.
#[tokio::test]
async fn a_revocation_published_while_the_bridge_was_silently_dead_still_closes_the_socket() {
    let redis = TestRedis::start().await;
    let proxy = FreezableProxy::start(redis.process.port()).await;
    let mut s = settings(&proxy.url());
    s.redis.pubsub_health_secs = 1;
    let a = node(s);
    let b = node(settings(&redis.url()));
    let t = register(&b.http_url(), "quietly").await;
    let mut ws = Ws::signed_in(&a, &t).await;
    // A second session that stays valid: it must not be closed.
    let (_, other) = login(&b.http_url(), "quietly", "password123").await;
    let other = other.unwrap();
    let mut ws_other = Ws::signed_in(&a, &other).await;

    proxy.freeze_open_connections();
    let (status, _) = post(&b.http_url(), "/api/auth/logout", &t, json!({})).await;
    assert_eq!(status, 204);
    let closed = ws.recv_close(Duration::from_secs(10)).await;
    assert_eq!(closed, Some(1008), "closed as signed out");
    assert_eq!(ws_other.recv_close(Duration::from_secs(2)).await, None);
}
