//! The real-time core across nodes: rooms, DMs, history, unread, presence, the bridge, resume,
//! slow clients and bad input, on real Redis and real sockets.

mod common;

use std::time::Duration;

use common::cluster::Backend;
use common::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn two_nodes_chat_in_a_channel_in_stream_order() {
    two_nodes_chat_on(Backend::one().await).await;
}

#[tokio::test]
async fn two_nodes_chat_in_a_channel_in_stream_order_on_a_cluster() {
    two_nodes_chat_on(Backend::cluster().await).await;
}

async fn two_nodes_chat_on(backend: Backend) {
    let ChannelOnTwoNodes {
        a,
        b,
        owner: ta,
        member: tb,
    } = two_nodes_one_channel(backend.settings(), "lobby", "alice", "bob").await;

    let mut wa = Ws::connect(&a, Some(&ta)).await;
    let mut wb = Ws::connect(&b, Some(&tb)).await;
    subscribe(&mut wa, &["lobby"]).await;
    subscribe(&mut wb, &["lobby"]).await;

    // Alice posts on her socket while Bob posts over HTTP on the other node.
    let bob_base = b.http_url();
    let tb2 = tb.clone();
    let bob = tokio::spawn(async move {
        for i in 0..15 {
            let (s, _) = post(
                &bob_base,
                "/api/channels/lobby/messages",
                &tb2,
                json!({"text": format!("bob {i}")}),
            )
            .await;
            assert_eq!(s, 201);
        }
    });
    for i in 0..15 {
        wa.send(json!({"type": "post", "post": {"channel": "lobby", "text": format!("alice {i}"), "client_id": format!("c{i}")}})).await;
    }
    bob.await.unwrap();
    let mut seen_a = Vec::new();
    let mut posted = 0;
    while seen_a.len() < 30 {
        let v = wa.recv().await;
        match v["type"].as_str().unwrap() {
            "message" => seen_a.push(v["message"].clone()),
            "posted" => posted += 1,
            "typing" | "presence" => {}
            other => panic!("unexpected {other}: {v}"),
        }
    }
    let mut seen_b = Vec::new();
    while seen_b.len() < 30 {
        seen_b.push(wb.recv_message("lobby").await);
    }
    let ids = |v: &[Value]| {
        v.iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&seen_a), ids(&seen_b), "both members see one order");
    let page: Value = get(&a.http_url(), "/api/channels/lobby/messages?limit=100", &ta)
        .await
        .1;
    let stored: Vec<String> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "message")
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stored, ids(&seen_a), "live order is the stream order");
    // Each sender's messages arrive whole and in the order sent.
    let texts: Vec<&str> = seen_b.iter().map(|m| m["text"].as_str().unwrap()).collect();
    for sender in ["alice", "bob"] {
        let theirs: Vec<&str> = texts
            .iter()
            .copied()
            .filter(|t| t.starts_with(sender))
            .collect();
        let sent: Vec<String> = (0..15).map(|i| format!("{sender} {i}")).collect();
        assert_eq!(theirs, sent, "{sender}'s messages keep their order");
    }
    // Drain Alice's remaining `posted` acknowledgements.
    while posted < 15 {
        if wa.recv_type("posted").await["type"] == "posted" {
            posted += 1;
        }
    }
}

#[tokio::test]
async fn direct_messages_are_private() {
    let redis = TestRedis::start().await;
    let a = node(settings(&redis.url()));
    let b = node(settings(&redis.url()));
    let ta = register(&a.http_url(), "amy").await;
    let tb = register(&b.http_url(), "ben").await;
    let tc = register(&a.http_url(), "cat").await;
    let (s, v) = post(&a.http_url(), "/api/dms", &ta, json!({"username": "Ben"})).await;
    assert_eq!(s, 200);
    let dm = v["channel"].as_str().unwrap().to_string();
    assert_eq!(dm, "dm:amy:ben");
    let (_, v2) = post(&b.http_url(), "/api/dms", &tb, json!({"username": "amy"})).await;
    assert_eq!(v2["channel"], dm.as_str(), "one channel per pair");
    assert_eq!(
        post(&a.http_url(), "/api/dms", &ta, json!({"username": "ghost"}))
            .await
            .0,
        404
    );

    let mut wa = Ws::connect(&a, Some(&ta)).await;
    let mut wb = Ws::connect(&b, Some(&tb)).await;
    subscribe(&mut wa, &[&dm]).await;
    subscribe(&mut wb, &[&dm]).await;
    wa.send(json!({"type": "post", "post": {"channel": dm, "text": "just us"}}))
        .await;
    assert_eq!(wb.recv_message(&dm).await["text"], "just us");
    let (s, _) = post(
        &b.http_url(),
        &format!("/api/channels/{dm}/messages"),
        &tb,
        json!({"text": "indeed"}),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(wa.recv_message(&dm).await["text"], "just us");
    assert_eq!(wa.recv_message(&dm).await["text"], "indeed");

    // Cat can neither read nor write nor listen.
    let mut conn = redis.conn().await;
    let before: u64 = redis::cmd("XLEN")
        .arg(format!("channel:{dm}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let (s, v) = get(&a.http_url(), &format!("/api/channels/{dm}/messages"), &tc).await;
    assert_eq!((s, v["error"]["code"].clone()), (403, json!("forbidden")));
    let (s, _) = post(
        &a.http_url(),
        &format!("/api/channels/{dm}/messages"),
        &tc,
        json!({"text": "sneak"}),
    )
    .await;
    assert_eq!(s, 403);
    // Cat's socket listens to a channel she may read, where the marker will come.
    join(&a.http_url(), &tc, "general").await;
    join(&a.http_url(), &ta, "general").await;
    let mut wc = Ws::subscribed(&a, &tc, &["general"]).await;
    wc.send(json!({"type": "subscribe", "subscribe": {"channels": [dm]}}))
        .await;
    let e = wc.recv_type("error").await;
    assert_eq!(e["error"]["code"], "forbidden");
    wc.send(json!({"type": "post", "post": {"channel": dm, "text": "sneak"}}))
        .await;
    assert_eq!(wc.recv_type("error").await["error"]["code"], "forbidden");
    wc.send(json!({"type": "history", "history": {"channel": dm}}))
        .await;
    assert_eq!(wc.recv_type("error").await["error"]["code"], "forbidden");
    wc.send(json!({"type": "resume", "resume": {"channels": {dm.clone(): "0-0"}}}))
        .await;
    assert_eq!(wc.recv_type("error").await["error"]["code"], "forbidden");
    let after: u64 = redis::cmd("XLEN")
        .arg(format!("channel:{dm}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(before, after, "nothing written");
    // And the pair's channel list shows the DM with its peer.
    let (_, list) = get(&b.http_url(), "/api/channels", &tb).await;
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == dm.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["kind"], "dm");
    assert_eq!(entry["peer"], "amy");
    // After the refused subscribe and resume, the pair talks on: Ben hears it, Cat hears
    // nothing of it before the marker Amy posts to general next.
    wa.send(json!({"type": "post", "post": {"channel": dm, "text": "after the refusals"}}))
        .await;
    wb.read_to_marker(message_with(&dm, "after the refusals"), |_| false)
        .await;
    post_message(&a.http_url(), &ta, "general", "marker").await;
    let dm_frame = |v: &Value| {
        v["type"] != "error"
            && (v.to_string().contains(&dm) || v.to_string().contains("after the refusals"))
    };
    wc.read_to_marker(message_with("general", "marker"), dm_frame)
        .await;
}

#[tokio::test]
async fn history_pages_unread_and_channel_rules() {
    let redis = TestRedis::start().await;
    let n = node(settings(&redis.url()));
    let base = n.http_url();
    let t = register(&base, "writer").await;
    let r = register(&base, "reader").await;
    create_channel(&base, &t, "news").await;
    assert_eq!(
        post(&base, "/api/channels", &t, json!({"name": "news"}))
            .await
            .1["error"]["code"],
        "channel_exists"
    );
    assert_eq!(
        post(&base, "/api/channels", &t, json!({"name": "Bad Name"}))
            .await
            .1["error"]["code"],
        "invalid_channel_name"
    );
    assert_eq!(
        post(&base, "/api/channels/nowhere/join", &t, json!({}))
            .await
            .0,
        404
    );
    join(&base, &r, "news").await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let (s, v) = post(
            &base,
            "/api/channels/news/messages",
            &t,
            json!({"text": format!("n{i}")}),
        )
        .await;
        assert_eq!(s, 201);
        ids.push(v["message"]["id"].as_str().unwrap().to_string());
    }
    let (_, page) = get(&base, "/api/channels/news/messages?limit=10", &r).await;
    let texts = |p: &Value| {
        p["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        texts(&page),
        (15..25).map(|i| format!("n{i}")).collect::<Vec<_>>(),
        "newest page, oldest first"
    );
    assert_eq!(page["has_more"], true);
    let oldest = page["messages"][0]["id"].as_str().unwrap().to_string();
    let (_, page2) = get(
        &base,
        &format!("/api/channels/news/messages?limit=10&before={oldest}"),
        &r,
    )
    .await;
    assert_eq!(
        texts(&page2),
        (5..15).map(|i| format!("n{i}")).collect::<Vec<_>>()
    );
    let (_, after) = get(
        &base,
        &format!("/api/channels/news/messages?after={}&limit=3", ids[20]),
        &r,
    )
    .await;
    assert_eq!(texts(&after), ["n21", "n22", "n23"]);
    assert_eq!(after["has_more"], true);
    let (s, _) = get(&base, "/api/channels/news/messages?before=garbage", &r).await;
    assert_eq!(s, 400);

    let unread = |list: &Value| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "news")
            .unwrap()["unread"]
            .as_u64()
            .unwrap()
    };
    let (_, list) = get(&base, "/api/channels", &r).await;
    assert_eq!(unread(&list), 25);
    assert_eq!(
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "news")
            .unwrap()["last_message"]["text"],
        "n24"
    );
    assert_eq!(
        post(
            &base,
            "/api/channels/news/read",
            &r,
            json!({"last_id": ids[19]})
        )
        .await
        .0,
        204
    );
    assert_eq!(unread(&get(&base, "/api/channels", &r).await.1), 5);
    // Read markers never move backwards.
    assert_eq!(
        post(
            &base,
            "/api/channels/news/read",
            &r,
            json!({"last_id": ids[2]})
        )
        .await
        .0,
        204
    );
    assert_eq!(unread(&get(&base, "/api/channels", &r).await.1), 5);
    let (_, list) = get(&base, "/api/channels", &t).await;
    assert_eq!(unread(&list), 0, "one's own messages are not unread");
    // Seed 003 keeps the marker in the user hash.
    let mut conn = redis.conn().await;
    let seen: String = redis::cmd("HGET")
        .arg("user:reader")
        .arg("channel:news")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(seen, ids[19]);

    assert_eq!(
        post(&base, "/api/channels/news/leave", &r, json!({}))
            .await
            .0,
        204
    );
    let (s, v) = post(
        &base,
        "/api/channels/news/messages",
        &r,
        json!({"text": "after leaving"}),
    )
    .await;
    assert_eq!((s, v["error"]["code"].clone()), (403, json!("forbidden")));
    let (_, all) = get(&base, "/api/channels?all=true", &r).await;
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"news") && names.contains(&"general"),
        "{names:?}"
    );
    let (_, page) = get(&base, "/api/channels/news/messages?limit=2", &r).await;
    assert_eq!(page["messages"][1]["type"], "leave");
    assert_eq!(page["messages"][1]["username"], "reader");
}

/// The largest stream ID there is: `<u64::MAX>-<u64::MAX>`.
const LARGEST_ID: &str = "18446744073709551615-18446744073709551615";

/// Stream IDs at the ends of the ID space are well formed (`0-0`, the largest ID, and the same
/// written with leading zeros or a `+`): nothing is older than `0-0` and nothing newer than the
/// largest ID, so such pages are empty, a read marker there counts nothing unread and a resume
/// from there replays nothing. Redis itself refuses an exclusive range past either end; none of
/// that may come back as `internal`, and the socket goes on. A read marker Redis cannot read
/// (an older database's) counts from the channel's start.
#[tokio::test]
async fn stream_ids_at_the_ends_of_the_id_space_get_answers_not_internal_errors() {
    let redis = TestRedis::start().await;
    let n = node(settings(&redis.url()));
    let base = n.http_url();
    let t = register(&base, "edge").await;
    let r = register(&base, "edgereader").await;
    create_channel(&base, &t, "ends").await;
    join(&base, &r, "ends").await;
    post_message(&base, &t, "ends", "the only message").await;

    for query in [
        "before=0-0",
        "before=00-000",
        "before=0",
        &format!("after={LARGEST_ID}"),
        "before=%2B0-%2B0",
    ] {
        let (s, page) = get(&base, &format!("/api/channels/ends/messages?{query}"), &r).await;
        assert_eq!(s, 200, "{query}: {page}");
        assert_eq!(page["messages"], json!([]), "{query}: {page}");
        assert_eq!(page["has_more"], false, "{query}: {page}");
    }
    // The other way round they are the whole channel.
    let (s, page) = get(
        &base,
        &format!("/api/channels/ends/messages?before={LARGEST_ID}"),
        &r,
    )
    .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(
        page["messages"].as_array().unwrap().last().unwrap()["text"],
        "the only message"
    );

    // A read marker at the largest ID: kept, nothing unread, and the channel list still answers.
    let unread = |list: &Value| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "ends")
            .map(|c| c["unread"].clone())
    };
    let (s, v) = post(
        &base,
        "/api/channels/ends/read",
        &r,
        json!({"last_id": LARGEST_ID}),
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let (s, list) = get(&base, "/api/channels", &r).await;
    assert_eq!((s, unread(&list)), (200, Some(json!(0))), "{list}");
    // A marker that is no stream ID at all (written by something older): counted from the start.
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("HSET")
        .arg("user:edge")
        .arg("channel:ends")
        .arg("not-an-id")
        .query_async(&mut conn)
        .await
        .unwrap();
    let other = post_message(&base, &r, "ends", "from the reader").await;
    let (s, list) = get(&base, "/api/channels", &t).await;
    assert_eq!((s, unread(&list)), (200, Some(json!(1))), "{list}");

    // The same over a socket, answered in order, without an error frame; then it still posts.
    let mut ws = Ws::signed_in(&n, &r).await;
    for (frame, kind) in [
        (
            json!({"type": "history", "history": {"channel": "ends", "before": "0-0"}}),
            "history",
        ),
        (
            json!({"type": "history", "history": {"channel": "ends", "after": LARGEST_ID}}),
            "history",
        ),
        (
            json!({"type": "read", "read": {"channel": "ends", "last_id": LARGEST_ID}}),
            "unread",
        ),
        (
            json!({"type": "resume", "resume": {"channels": {"ends": LARGEST_ID}}}),
            "subscribed",
        ),
    ] {
        ws.send(frame.clone()).await;
        let v = loop {
            let v = ws.recv().await;
            if v["type"] != "presence" {
                break v;
            }
        };
        assert_eq!(v["type"], kind, "{frame} answered {v}");
        match kind {
            "history" => assert_eq!(v["history"]["messages"], json!([]), "{v}"),
            "unread" => assert_eq!(v["unread"]["count"], 0, "{v}"),
            _ => {
                assert_eq!(v["subscribed"]["replayed"], 0, "{v}");
                assert_eq!(v["subscribed"]["last_id"], other["id"], "{v}");
            }
        }
    }
    ws.send(json!({"type": "post", "post": {"channel": "ends", "text": "still here", "client_id": "c1"}}))
        .await;
    let posted = ws.recv_type("posted").await;
    assert_eq!(posted["posted"]["client_id"], "c1");
}

#[tokio::test]
async fn presence_is_seen_across_nodes_and_dead_nodes_go_offline() {
    presence_across_nodes_on(Backend::one().await).await;
}

#[tokio::test]
async fn presence_is_seen_across_nodes_and_dead_nodes_go_offline_on_a_cluster() {
    presence_across_nodes_on(Backend::cluster().await).await;
}

async fn presence_across_nodes_on(backend: Backend) {
    let mut s = backend.settings();
    s.presence.ttl_secs = 3;
    s.presence.refresh_interval_secs = 1;
    // Presence goes to people who share a channel (tests/presence.rs): these two do.
    let ChannelOnTwoNodes {
        a,
        b,
        owner: ta,
        member: tb,
    } = two_nodes_one_channel(s, "street", "watcher", "walker").await;
    let mut wa = Ws::signed_in(&a, &ta).await;
    let _wb = Ws::signed_in(&b, &tb).await;
    loop {
        let v = wa.recv_type("presence").await;
        if v["presence"]["username"] == "walker" {
            assert_eq!(v["presence"]["online"], true);
            break;
        }
    }
    // Each node writes its own users' presence: node A may still be writing the watcher's when
    // the walker's transition arrives from node B, so the list is read until both are in it.
    let mut names: Vec<String> = Vec::new();
    for _ in 0..50 {
        let (_, online) = get(&a.http_url(), "/api/users/online", &ta).await;
        names = online
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_string())
            .collect();
        if names.iter().any(|n| n == "walker") && names.iter().any(|n| n == "watcher") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        names.iter().any(|n| n == "walker") && names.iter().any(|n| n == "watcher"),
        "{names:?}"
    );
    let mut conn = backend.conn_for("presence:{user:walker}").await;
    let ttl: i64 = redis::cmd("TTL")
        .arg("presence:{user:walker}")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 3, "SETEX with the configured TTL: {ttl}");
    // Refreshed by the tracker: still there after more than one TTL.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let exists: bool = redis::cmd("EXISTS")
        .arg("presence:{user:walker}")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(exists, "refreshed while connected");
    // The walker's online entry is in their bucket, and only there.
    let bucket = chatnode::store::keys::online("walker");
    let score: Option<i64> = redis::cmd("ZSCORE")
        .arg(&bucket)
        .arg("walker")
        .query_async(&mut backend.conn_for(&bucket).await)
        .await
        .unwrap();
    assert!(score.is_some(), "walker is in {bucket}");
    let single: bool = redis::cmd("EXISTS")
        .arg("online")
        .query_async(&mut backend.conn_for("online").await)
        .await
        .unwrap();
    assert!(!single, "no single online set is written");

    // Node b dies without cleanup: its user is announced offline once the key expires.
    b.kill();
    let v = loop {
        let v = wa.recv_type("presence").await;
        if v["presence"]["username"] == "walker" {
            break v;
        }
    };
    assert_eq!(v["presence"]["online"], false);
    let (_, online) = get(&a.http_url(), "/api/users/online", &ta).await;
    assert!(!online.to_string().contains("walker"));
    // The sweep took the walker out of their bucket.
    let score: Option<i64> = redis::cmd("ZSCORE")
        .arg(&bucket)
        .arg("walker")
        .query_async(&mut backend.conn_for(&bucket).await)
        .await
        .unwrap();
    assert_eq!(score, None);
}

#[tokio::test]
async fn bridge_reconnect_loses_and_doubles_nothing() {
    bridge_reconnect_on(Backend::one().await).await;
}

#[tokio::test]
async fn bridge_reconnect_loses_and_doubles_nothing_on_a_cluster() {
    bridge_reconnect_on(Backend::cluster().await).await;
}

async fn bridge_reconnect_on(backend: Backend) {
    let backend = std::sync::Arc::new(backend);
    // One user posts faster than the default posting budget allows.
    let mut s = backend.settings();
    s.ws.rate_limit_messages = 10_000;
    let ChannelOnTwoNodes {
        a,
        b,
        owner: ta,
        member: tb,
    } = two_nodes_one_channel(s, "stream", "sender", "listener").await;
    let mut wb = Ws::subscribed(&b, &tb, &["stream"]).await;
    let base = a.http_url();
    let total = 120;
    let ta2 = ta.clone();
    let sender = tokio::spawn(async move {
        let ta = ta2;
        for i in 0..total {
            let (s, _) = post(
                &base,
                "/api/channels/stream/messages",
                &ta,
                json!({"text": format!("{i}")}),
            )
            .await;
            assert_eq!(s, 201);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let on = backend.clone();
    let killer = tokio::spawn(async move {
        let mut killed = 0;
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            killed += on.kill_pubsub_clients().await;
        }
        killed
    });
    let mut got = Vec::new();
    while got.len() < total {
        let m = wb.recv_message("stream").await;
        got.push(m["text"].as_str().unwrap().parse::<usize>().unwrap());
    }
    sender.await.unwrap();
    assert!(
        killer.await.unwrap() >= 3,
        "pub/sub connections were killed"
    );
    assert_eq!(
        got,
        (0..total).collect::<Vec<_>>(),
        "every message once, in order"
    );
    // No duplicate arrives before a last message posted after them all.
    post_message(&a.http_url(), &ta, "stream", "end").await;
    wb.read_to_marker(message_with("stream", "end"), any_message_of("stream"))
        .await;
    let metrics = metrics_text(&b.http_url()).await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("chatnode_bridge_reconnects_total"))
        .unwrap();
    assert!(
        line.rsplit(' ').next().unwrap().parse::<u64>().unwrap() >= 1,
        "{line}"
    );
}

#[tokio::test]
async fn resume_replays_exactly_what_was_missed() {
    resume_on(Backend::one().await).await;
}

#[tokio::test]
async fn resume_replays_exactly_what_was_missed_on_a_cluster() {
    resume_on(Backend::cluster().await).await;
}

async fn resume_on(backend: Backend) {
    // The poster's node is `b` here, the roamer's first node `a`.
    let ChannelOnTwoNodes {
        a: b,
        b: a,
        owner: tb,
        member: ta,
    } = two_nodes_one_channel(backend.settings(), "resumable", "poster", "roamer").await;
    let mut ws = Ws::subscribed(&a, &ta, &["resumable"]).await;
    for i in 0..3 {
        post(
            &b.http_url(),
            "/api/channels/resumable/messages",
            &tb,
            json!({"text": format!("seen {i}")}),
        )
        .await;
    }
    let mut last = String::new();
    for _ in 0..3 {
        last = ws.recv_message("resumable").await["id"]
            .as_str()
            .unwrap()
            .to_string();
    }
    drop(ws);
    for i in 0..4 {
        post(
            &b.http_url(),
            "/api/channels/resumable/messages",
            &tb,
            json!({"text": format!("missed {i}")}),
        )
        .await;
    }
    // Reconnect to the other node and resume.
    let mut ws = Ws::connect(&b, Some(&ta)).await;
    ws.send(json!({"type": "resume", "resume": {"channels": {"resumable": last}}}))
        .await;
    let mut replayed = Vec::new();
    loop {
        let v = ws.recv().await;
        match v["type"].as_str().unwrap() {
            "message" => replayed.push(v["message"]["text"].as_str().unwrap().to_string()),
            "subscribed" => {
                assert_eq!(v["subscribed"]["replayed"], 4);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(replayed, ["missed 0", "missed 1", "missed 2", "missed 3"]);
    post_message(&a.http_url(), &tb, "resumable", "live").await;
    post_message(&a.http_url(), &tb, "resumable", "end").await;
    // Only the live message comes between: nothing replayed twice.
    let between: Vec<Value> = ws
        .read_to_marker(message_with("resumable", "end"), |_| false)
        .await
        .into_iter()
        .filter(|v| v["type"] == "message")
        .map(|v| v["message"]["text"].clone())
        .collect();
    assert_eq!(between, [json!("live")]);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_with_1013() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.ws.outbound_queue = 16;
    // One user floods the channel, far beyond the default posting budget.
    s.ws.rate_limit_messages = 10_000;
    // Large messages fill the kernel's socket buffers quickly.
    s.ws.max_message_chars = 60_000;
    let n = node(s);
    let base = n.http_url();
    let tslow = register(&base, "sloth").await;
    let tfast = register(&base, "hare").await;
    post(&base, "/api/channels", &tfast, json!({"name": "flood"})).await;
    post(&base, "/api/channels/flood/join", &tslow, json!({})).await;
    // The slow client's receive buffer is fixed, so what can pile up on its side is known.
    let client_buffer = 128 * 1024;
    let mut slow = Ws::connect_with_receive_buffer(&n, &tslow, client_buffer).await;
    subscribe(&mut slow, &["flood"]).await;
    // The slow client reads nothing from here on.
    let text = "x".repeat(60_000);
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (base, t, text) = (base.clone(), tfast.clone(), text.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..150 {
                let (s, _) = post(
                    &base,
                    "/api/channels/flood/messages",
                    &t,
                    json!({"text": text}),
                )
                .await;
                assert_eq!(s, 201, "worker {w}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let metrics = metrics_text(&base).await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("chatnode_slow_client_closes_total"))
        .unwrap();
    assert_eq!(line, "chatnode_slow_client_closes_total 1", "{line}");
    let mut received = 0;
    let code = loop {
        match slow.inner.next_frame().await {
            Some(Message::Text(_)) => received += 1,
            Some(Message::Close(c)) => break c.map(|c| u16::from(c.code)),
            Some(_) => {}
            None => break None,
        }
    };
    assert_eq!(code, Some(1013));
    // What reached the client before the close is the session's queue and what the socket
    // buffers hold (the server's send buffer at its largest, the client's fixed receive
    // buffer, which the kernel doubles): far fewer than the 600 posted.
    let in_buffers = (tcp_buffer_max("tcp_wmem") + 2 * client_buffer as usize) / 60_000;
    let bound = 16 + in_buffers + 1;
    assert!(
        received <= bound,
        "the queue was cut short: {received} frames arrived, at most {bound} fit"
    );
    let gauge = metrics
        .lines()
        .find(|l| l.starts_with("chatnode_ws_connections "))
        .unwrap();
    assert_eq!(gauge, "chatnode_ws_connections 0", "the session is gone");
}

/// The largest size a TCP socket buffer (`tcp_rmem` or `tcp_wmem`) grows to, in bytes.
fn tcp_buffer_max(name: &str) -> usize {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .unwrap()
}

trait NextFrame {
    async fn next_frame(&mut self) -> Option<Message>;
}

impl<S> NextFrame for tokio_tungstenite::WebSocketStream<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    async fn next_frame(&mut self) -> Option<Message> {
        use futures_util::StreamExt;
        match tokio::time::timeout(Duration::from_secs(10), self.next()).await {
            Ok(Some(Ok(m))) => Some(m),
            _ => None,
        }
    }
}

#[tokio::test]
async fn bad_input_gets_error_frames_and_the_socket_stays_and_others_post_on() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.ws.rate_limit_messages = 5;
    let n = node(s);
    let base = n.http_url();
    let t = register(&base, "fuzzer").await;
    let mut ws = Ws::connect(&n, None).await;
    ws.send(json!({"type": "post", "post": {"channel": "general", "text": "hi"}}))
        .await;
    assert_eq!(ws.recv_type("error").await["error"]["code"], "unauthorized");
    ws.send(json!({"type": "auth", "auth": {"token": t}})).await;
    ws.recv_type("authorized").await;
    for (frame, code) in [
        (Message::Text("{oops".into()), "invalid_json"),
        (Message::Text("[1,2]".into()), "invalid_frame"),
        (Message::Text(r#"{"type":"launch"}"#.into()), "unknown_type"),
        (
            Message::Text(r#"{"type":"post","post":{"channel":"general"}}"#.into()),
            "invalid_frame",
        ),
        (
            Message::Text(r#"{"type":"post","post":{"channel":5,"text":"x"}}"#.into()),
            "invalid_frame",
        ),
        (Message::Binary(vec![1, 2, 3]), "binary_unsupported"),
        (
            Message::Text(
                json!({"type":"post","post":{"channel":"general","text":"y".repeat(4001)}})
                    .to_string(),
            ),
            "invalid_message",
        ),
        (
            Message::Text(
                r#"{"type":"post","post":{"channel":"general","text":"not a member"}}"#.into(),
            ),
            "forbidden",
        ),
        (
            Message::Text(r#"{"type":"post","post":{"channel":"nowhere","text":"x"}}"#.into()),
            "channel_not_found",
        ),
        (
            Message::Text(
                r#"{"type":"resume","resume":{"channels":{"general":"garbage"}}}"#.into(),
            ),
            "invalid_body",
        ),
    ] {
        ws.send_raw(frame).await;
        let e = ws.recv_type("error").await;
        assert_eq!(e["error"]["code"], code, "{e}");
        assert!(e["error"]["message"].is_string() && e["error"]["error"].is_string());
    }
    let mut conn = redis.conn().await;
    let len: u64 = redis::cmd("XLEN")
        .arg("channel:general")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 0, "nothing written by refused posts");
    // The socket still works.
    post(&base, "/api/channels/general/join", &t, json!({})).await;
    subscribe(&mut ws, &["general"]).await;
    // Rate limit, on a fresh socket: 5 posts per window; the 6th is refused.
    drop(ws);
    let mut ws = Ws::connect(&n, Some(&t)).await;
    for i in 0..6 {
        ws.send(json!({"type": "post", "post": {"channel": "general", "text": format!("r{i}")}}))
            .await;
    }
    let mut posted = 0;
    let mut limited = 0;
    while posted + limited < 6 {
        let v = ws.recv().await;
        match v["type"].as_str().unwrap() {
            "posted" => posted += 1,
            "error" => {
                assert_eq!(v["error"]["code"], "rate_limited");
                limited += 1
            }
            _ => {}
        }
    }
    assert_eq!((posted, limited), (5, 1));
    // A frame over the limit closes with 1009.
    ws.send_raw(Message::Text("z".repeat(70 * 1024))).await;
    assert_eq!(ws.recv_close(Duration::from_secs(10)).await, Some(1009));
    // Another user signs in and posts as usual.
    let bystander = register(&base, "bystander").await;
    join(&base, &bystander, "general").await;
    let mut other = Ws::signed_in(&n, &bystander).await;
    other
        .send(json!({"type": "post", "post": {"channel": "general", "text": "all fine"}}))
        .await;
    assert_eq!(other.recv_type("posted").await["type"], "posted");
    assert_eq!(
        post_message(&base, &bystander, "general", "still fine").await["text"],
        "still fine"
    );
}

#[tokio::test]
async fn typing_is_relayed_to_other_members_only() {
    let redis = TestRedis::start().await;
    let a = node(settings(&redis.url()));
    let b = node(settings(&redis.url()));
    let ta = register(&a.http_url(), "typist").await;
    let tb = register(&b.http_url(), "reader2").await;
    join(&a.http_url(), &ta, "general").await;
    join(&b.http_url(), &tb, "general").await;
    let mut wa = Ws::connect(&a, Some(&ta)).await;
    let mut wb = Ws::connect(&b, Some(&tb)).await;
    subscribe(&mut wa, &["general"]).await;
    subscribe(&mut wb, &["general"]).await;
    // Outsiders on either node, members of their own channel only.
    let mut outsiders = Vec::new();
    for (n, name) in [(&a, "outsider1"), (&b, "outsider2")] {
        let t = register(&n.http_url(), name).await;
        create_channel(&n.http_url(), &t, name).await;
        let ws = Ws::subscribed(n, &t, &[name]).await;
        outsiders.push((ws, t, n.http_url(), name));
    }
    wa.send(json!({"type": "typing", "typing": {"channel": "general"}}))
        .await;
    let v = wb.recv_type("typing").await;
    assert_eq!(
        v["typing"],
        json!({"channel": "general", "username": "typist"})
    );
    let mut conn = redis.conn().await;
    let len: u64 = redis::cmd("XLEN")
        .arg("channel:general")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 2, "only the two joins are stored; typing is ephemeral");
    // Markers after the typing: neither the typist (no echo) nor an outsider hears of it first.
    let is_typing = |v: &Value| v["type"] == "typing";
    post_message(&b.http_url(), &tb, "general", "marker").await;
    wa.read_to_marker(message_with("general", "marker"), is_typing)
        .await;
    for (mut ws, t, base, name) in outsiders {
        post_message(&base, &t, name, "marker").await;
        ws.read_to_marker(message_with(name, "marker"), is_typing)
            .await;
    }
}

#[tokio::test]
async fn made_up_dm_names_are_refused() {
    let redis = TestRedis::start().await;
    let n = node(settings(&redis.url()));
    let base = n.http_url();
    let t = register(&base, "dave").await;
    register(&base, "carol").await;
    for name in [
        "dm:dave:zzz",
        "dm:dave:carol",
        "dm:carol:dave",
        "dm:dave:x:y",
    ] {
        let (s, v) = post(
            &base,
            &format!("/api/channels/{name}/messages"),
            &t,
            json!({"text": "hi"}),
        )
        .await;
        assert_eq!(s, 403, "{name}: {v}");
        assert_eq!(
            get(&base, &format!("/api/channels/{name}/messages"), &t)
                .await
                .0,
            403,
            "{name}"
        );
    }
    let mut conn = redis.conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("channel:dm:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.is_empty(), "nothing written: {keys:?}");
    // Once opened, the canonical name works.
    let (_, v) = post(&base, "/api/dms", &t, json!({"username": "carol"})).await;
    assert_eq!(v["channel"], "dm:carol:dave");
    assert_eq!(
        post(
            &base,
            "/api/channels/dm:carol:dave/messages",
            &t,
            json!({"text": "hi"})
        )
        .await
        .0,
        201
    );
    assert_eq!(
        post(&base, "/api/channels/nowhere/leave", &t, json!({}))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn socket_sign_out_ends_the_session_everywhere_and_a_new_user_starts_clean() {
    let redis = TestRedis::start().await;
    let a = node(settings(&redis.url()));
    let b = node(settings(&redis.url()));
    let t = register(&a.http_url(), "leaver").await;
    let t2 = register(&a.http_url(), "second").await;
    create_channel(&a.http_url(), &t, "mine").await;
    join(&a.http_url(), &t2, "general").await;
    let mut one = Ws::signed_in(&a, &t).await;
    let mut two = Ws::signed_in(&b, &t).await;
    subscribe(&mut one, &["mine"]).await;
    one.send(json!({"type": "signOut"})).await;
    one.recv_type("signOut").await;
    assert_eq!(
        two.recv_close(Duration::from_secs(10)).await,
        Some(1008),
        "the other socket of that session closes"
    );
    assert_eq!(get(&a.http_url(), "/api/me", &t).await.0, 401);
    // The same socket signs in as someone else: the previous user's rooms are gone.
    one.send(json!({"type": "auth", "auth": {"token": t2}}))
        .await;
    one.recv_type("authorized").await;
    subscribe(&mut one, &["general"]).await;
    let t3 = register(&a.http_url(), "third").await;
    join(&a.http_url(), &t3, "mine").await;
    join(&a.http_url(), &t3, "general").await;
    post_message(&a.http_url(), &t3, "mine", "for members").await;
    // The new user hears the marker in their own channel, and nothing of the old subscriptions
    // before it.
    post_message(&a.http_url(), &t3, "general", "marker").await;
    one.read_to_marker(message_with("general", "marker"), any_message_of("mine"))
        .await;
}

#[tokio::test]
async fn a_long_gap_is_handed_to_history_instead_of_flooding_the_queue() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.ws.outbound_queue = 16;
    let n = node(s);
    let base = n.http_url();
    let t = register(&base, "gappy").await;
    post(&base, "/api/channels", &t, json!({"name": "busy"})).await;
    let (_, first) = post(
        &base,
        "/api/channels/busy/messages",
        &t,
        json!({"text": "start"}),
    )
    .await;
    let since = first["message"]["id"].as_str().unwrap().to_string();
    for i in 0..20 {
        post(
            &base,
            "/api/channels/busy/messages",
            &t,
            json!({"text": format!("m{i}")}),
        )
        .await;
    }
    let mut ws = Ws::connect(&n, Some(&t)).await;
    ws.send(json!({"type": "resume", "resume": {"channels": {"busy": since}}}))
        .await;
    let sub = ws.recv_type("subscribed").await["subscribed"].clone();
    assert_eq!(sub["replayed"], 0);
    assert_eq!(sub["gap"]["after"], since.as_str());
    let until = sub["gap"]["until"].as_str().unwrap().to_string();
    // The client pages the gap with history frames.
    let mut got = Vec::new();
    let mut after = since.clone();
    loop {
        ws.send(
            json!({"type": "history", "history": {"channel": "busy", "after": after, "limit": 8}}),
        )
        .await;
        let h = ws.recv_type("history").await["history"].clone();
        for m in h["messages"].as_array().unwrap() {
            got.push(m["text"].as_str().unwrap().to_string());
            after = m["id"].as_str().unwrap().to_string();
        }
        if after == until || h["has_more"] == false {
            break;
        }
    }
    assert_eq!(got, (0..20).map(|i| format!("m{i}")).collect::<Vec<_>>());
    post(
        &base,
        "/api/channels/busy/messages",
        &t,
        json!({"text": "live"}),
    )
    .await;
    assert_eq!(ws.recv_message("busy").await["text"], "live");
}

#[tokio::test]
async fn opening_a_dm_tells_both_people_and_post_errors_name_the_post() {
    let redis = TestRedis::start().await;
    let a = node(settings(&redis.url()));
    let b = node(settings(&redis.url()));
    let ta = register(&a.http_url(), "opener").await;
    let tb = register(&b.http_url(), "invitee").await;
    let mut wb = Ws::signed_in(&b, &tb).await;
    let (_, v) = post(
        &a.http_url(),
        "/api/dms",
        &ta,
        json!({"username": "invitee"}),
    )
    .await;
    let added = wb.recv_type("channel_added").await;
    assert_eq!(
        added["channel_added"],
        json!({"channel": v["channel"], "kind": "dm", "peer": "opener"})
    );
    // Opening it again announces nothing new.
    post(
        &a.http_url(),
        "/api/dms",
        &ta,
        json!({"username": "invitee"}),
    )
    .await;
    // A third person's new DM with the invitee is the marker: nothing came before it.
    let tc = register(&a.http_url(), "third").await;
    let (_, third) = post(
        &a.http_url(),
        "/api/dms",
        &tc,
        json!({"username": "invitee"}),
    )
    .await;
    let added_for = |channel: Value| move |f: &Value| f["channel_added"]["channel"] == channel;
    wb.read_to_marker(
        added_for(third["channel"].clone()),
        added_for(v["channel"].clone()),
    )
    .await;
    wb.send(
        json!({"type": "post", "post": {"channel": "nowhere", "text": "x", "client_id": "c-42"}}),
    )
    .await;
    let e = wb.recv_type("error").await;
    assert_eq!(
        e["error"]["payload"],
        json!({"channel": "nowhere", "client_id": "c-42"})
    );
    // Compressed answers when asked for.
    let res = reqwest::Client::new()
        .get(format!("{}/", a.http_url()))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()
            .get("content-encoding")
            .map(|h| h.to_str().unwrap()),
        Some("gzip")
    );
}
