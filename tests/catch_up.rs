//! A room's catch-up after its node's pub/sub connection comes back starts from the oldest
//! position any member still needs: a member that resumed (with a replay) while the connection
//! was down must not move the room past events the other members never received.
//!
//! The connection is held down with an ACL that refuses SUBSCRIBE (the bridge's reconnects fail
//! until it is lifted), on a real Redis with real nodes.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

async fn acl(redis: &TestRedis, rules: &[&str]) {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER").arg("default");
    for r in rules {
        cmd.arg(*r);
    }
    let _: () = cmd.query_async(&mut redis.conn().await).await.unwrap();
}

/// Whether any client is subscribed to `lobby`'s subject.
async fn lobby_subscribers(redis: &TestRedis) -> i64 {
    let subject = chatnode::store::keys::room_events("lobby");
    let mut n = 0;
    for kind in ["NUMSUB", "SHARDNUMSUB"] {
        let v: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg(kind)
            .arg(&subject)
            .query_async(&mut redis.conn().await)
            .await
            .unwrap();
        n += v.first().map_or(0, |(_, n)| *n);
    }
    n
}

#[tokio::test]
async fn a_resume_during_a_pubsub_outage_does_not_make_other_members_miss_events() {
    let redis = TestRedis::start_plain().await;
    let a = node(settings(&redis.url()));
    let b = node(settings(&redis.url()));
    let (alice, bob) = channel_with_member(&b, &a, "lobby", "alice", "bob").await;
    let carol = register(&a.http_url(), "carol").await;
    join(&a.http_url(), &carol, "lobby").await;

    // Bob is live in the room on node a; carol's socket on node a will resume later.
    let mut bob_ws = Ws::subscribed(&a, &bob, &["lobby"]).await;
    let before = post_message(&b.http_url(), &alice, "lobby", "before").await;
    bob_ws
        .read_to_marker(message_with("lobby", "before"), |_| false)
        .await;

    // Node a's pub/sub connection goes and cannot come back: SUBSCRIBE is refused.
    acl(&redis, &["-subscribe", "-psubscribe", "-ssubscribe"]).await;
    assert!(kill_pubsub_clients(&mut redis.conn().await).await >= 1);
    assert_eq!(lobby_subscribers(&redis).await, 0);

    // Posted on node b meanwhile: stored, but node a hears nothing of them live.
    let m1 = post_message(&b.http_url(), &alice, "lobby", "missed one").await;
    let m2 = post_message(&b.http_url(), &alice, "lobby", "missed two").await;
    assert!(bob_ws.try_recv(Duration::from_millis(300)).await.is_none());

    // Carol resumes on node a after `before`: she gets both from the stream.
    let mut carol_ws = Ws::connect(&a, Some(&carol)).await;
    carol_ws
        .send(json!({"type": "resume", "resume": {"channels": {"lobby": before["id"]}}}))
        .await;
    let got = carol_ws
        .read_to_marker(|v| v["type"] == "subscribed", |_| false)
        .await;
    let replayed: Vec<&Value> = got
        .iter()
        .filter(|v| v["type"] == "message")
        .map(|v| &v["message"]["id"])
        .collect();
    assert_eq!(replayed, [&m1["id"], &m2["id"]]);

    // The connection comes back; the room catches up.
    acl(&redis, &["+subscribe", "+psubscribe", "+ssubscribe"]).await;
    let back = eventually(Duration::from_secs(15), || async {
        (lobby_subscribers(&redis).await >= 1).then_some(())
    })
    .await;
    assert!(back.is_some(), "node a subscribed again");
    let after = post_message(&b.http_url(), &alice, "lobby", "after").await;

    // Bob gets what he missed, in order, then what followed; nothing twice.
    let bob_got = bob_ws
        .read_to_marker(message_with("lobby", "after"), |_| false)
        .await;
    let ids: Vec<&Value> = bob_got
        .iter()
        .filter(|v| v["type"] == "message")
        .map(|v| &v["message"]["id"])
        .collect();
    assert_eq!(
        ids,
        [&m1["id"], &m2["id"]],
        "bob missed events: {bob_got:?}"
    );
    // Carol gets only what is new to her.
    let carol_got = carol_ws
        .read_to_marker(message_with("lobby", "after"), |_| false)
        .await;
    assert!(
        carol_got.iter().all(|v| v["type"] != "message"),
        "carol got events twice: {carol_got:?}"
    );
    assert!(after["id"].is_string());
}
