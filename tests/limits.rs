//! Cost amplifiers, each bounded: channel creation (per hour and in all), join/leave toggling,
//! `typing` (one frame becomes one per member), `read` (counts up to 1000 entries), `|`
//! alternatives of a user search, and `GET /api/channels` (round trips to Redis independent of
//! the number of channels). Real Redis, real nodes; the round trips are counted by a TCP relay
//! between the node and Redis.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn post_with_retry(base: &str, path: &str, token: &str) -> (u16, Value, String) {
    let res = http()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|h| h.to_str().unwrap().to_string())
        .unwrap_or_default();
    let v = res.json().await.unwrap_or(Value::Null);
    (status, v, retry)
}

async fn create(base: &str, token: &str, name: &str) -> (u16, Value, String) {
    let res = http()
        .post(format!("{base}/api/channels"))
        .bearer_auth(token)
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|h| h.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, res.json().await.unwrap_or(Value::Null), retry)
}

#[tokio::test]
async fn channel_creation_is_limited_per_hour_and_in_all_across_nodes() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.limits.channel_creates_per_hour = 3;
    s.limits.max_channels_per_user = 4;
    let a = node(s.clone());
    s.limits.channel_creates_per_hour = 100;
    let b = node(s);
    let t = register(&a.http_url(), "maker").await;
    let other = register(&a.http_url(), "other").await;
    create_channel(&a.http_url(), &other, "taken").await;
    // A taken name counts against the hour, not against the total.
    let (status, v, _) = create(&a.http_url(), &t, "taken").await;
    assert_eq!(status, 409, "{v}");
    for name in ["c1", "c2"] {
        let (status, v, _) = create(&a.http_url(), &t, name).await;
        assert_eq!(status, 201, "{v}");
    }
    let (status, v, retry) = create(&a.http_url(), &t, "c3").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    let wait: u64 = retry.parse().unwrap();
    assert!((1..=3600).contains(&wait), "Retry-After {wait}");
    // On a node with a higher hourly limit, the total (4, shared by every node) still holds.
    for name in ["c3", "c4"] {
        let (status, v, _) = create(&b.http_url(), &t, name).await;
        assert_eq!(status, 201, "{v}");
    }
    let (status, v, _) = create(&b.http_url(), &t, "c5").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 4"));
    let mut all: Vec<String> = redis::cmd("SMEMBERS")
        .arg("channels")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    all.sort();
    assert_eq!(all, ["c1", "c2", "c3", "c4", "general", "taken"]);
    // Another user is not affected.
    let (status, _, _) = create(&a.http_url(), &other, "theirs").await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn join_and_leave_toggling_is_limited_and_writes_nothing_beyond_it() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.limits.joins_per_minute = 4;
    let a = node(s);
    let owner = register(&a.http_url(), "owner").await;
    create_channel(&a.http_url(), &owner, "lobby").await;
    let t = register(&a.http_url(), "toggler").await;
    let base = a.http_url();
    let before = redis.xlen("channel:lobby").await;
    for (i, what) in ["join", "leave", "join", "leave"].iter().enumerate() {
        let (status, v, _) =
            post_with_retry(&base, &format!("/api/channels/lobby/{what}"), &t).await;
        assert_eq!(status, 204, "{i} {what}: {v}");
    }
    let (status, v, retry) = post_with_retry(&base, "/api/channels/lobby/join", &t).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    let wait: u64 = retry.parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(redis.xlen("channel:lobby").await, before + 4);
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(chatnode::store::keys::members("lobby"))
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    assert_eq!(members, ["owner"]);
}

#[tokio::test]
async fn typing_beyond_the_budget_is_dropped() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.limits.typing_per_minute = 3;
    let a = node(s);
    let (typist, watcher) = channel_with_member(&a, &a, "lobby", "typist", "watcher").await;
    let mut wt = Ws::subscribed(&a, &typist, &["lobby"]).await;
    let mut ww = Ws::subscribed(&a, &watcher, &["lobby"]).await;
    for _ in 0..8 {
        wt.send(json!({"type": "typing", "typing": {"channel": "lobby"}}))
            .await;
    }
    // Frames of one socket are handled in order: after this post's ack every typing was handled.
    wt.send(json!({"type": "post", "post": {"channel": "lobby", "text": "marker"}}))
        .await;
    let frames = ww
        .read_to_marker(message_with("lobby", "marker"), |_| false)
        .await;
    let typing = frames.iter().filter(|v| v["type"] == "typing").count();
    assert_eq!(typing, 3, "{frames:?}");
    // The typist was not sent errors for the dropped ones.
    let own = wt
        .read_to_marker(|v| v["type"] == "posted", |v| v["type"] == "error")
        .await;
    assert!(own.iter().all(|v| v["type"] != "error"));
}

#[tokio::test]
async fn read_markers_beyond_the_budget_are_refused_on_socket_and_rest() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.limits.reads_per_minute = 4;
    let a = node(s);
    let (owner, reader) = channel_with_member(&a, &a, "lobby", "owner", "reader").await;
    let m1 = post_message(&a.http_url(), &owner, "lobby", "one").await;
    let m2 = post_message(&a.http_url(), &owner, "lobby", "two").await;
    let mut ws = Ws::signed_in(&a, &reader).await;
    for id in [&m1["id"], &m1["id"], &m2["id"]] {
        ws.send(json!({"type": "read", "read": {"channel": "lobby", "last_id": id}}))
            .await;
        let v = ws.recv_type("unread").await;
        assert_eq!(v["unread"]["channel"], "lobby");
    }
    let (status, _, _) = send_read(&a.http_url(), &reader, &m2["id"]).await;
    assert_eq!(status, 204);
    // Fifth in the minute: refused on either path, nothing read.
    ws.send(json!({"type": "read", "read": {"channel": "lobby", "last_id": m2["id"]}}))
        .await;
    let v = ws.recv().await;
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["code"], "rate_limited", "{v}");
    let (status, v, retry) = send_read(&a.http_url(), &reader, &m2["id"]).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    assert!(!retry.is_empty());
}

async fn send_read(base: &str, token: &str, id: &Value) -> (u16, Value, String) {
    let res = http()
        .post(format!("{base}/api/channels/lobby/read"))
        .bearer_auth(token)
        .json(&json!({"last_id": id}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|h| h.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, res.json().await.unwrap_or(Value::Null), retry)
}

#[tokio::test]
async fn unread_counts_are_counted_in_redis_and_stay_correct() {
    let redis = TestRedis::start().await;
    let a = node(settings(&redis.url()));
    let (owner, reader) = channel_with_member(&a, &a, "lobby", "owner", "reader").await;
    let mut first = Value::Null;
    for i in 0..5 {
        let m = post_message(&a.http_url(), &owner, "lobby", &format!("m{i}")).await;
        if i == 1 {
            first = m["id"].clone();
        }
    }
    post_message(&a.http_url(), &reader, "lobby", "mine").await;
    let (_, list) = get(&a.http_url(), "/api/channels", &reader).await;
    assert_eq!(list[0]["unread"], 5, "{list}");
    assert_eq!(list[0]["last_message"]["text"], "mine");
    let mut ws = Ws::signed_in(&a, &reader).await;
    ws.send(json!({"type": "read", "read": {"channel": "lobby", "last_id": first}}))
        .await;
    let v = ws.recv_type("unread").await;
    assert_eq!(
        v["unread"]["count"], 3,
        "own messages and joins are not unread"
    );
}

#[tokio::test]
async fn user_search_alternatives_are_capped() {
    let redis = TestRedis::start().await;
    let a = node(settings(&redis.url()));
    let t = register(&a.http_url(), "searcher").await;
    let five = "ann|bob|cat|dan|eve";
    let (status, v) = get(&a.http_url(), &format!("/api/users?q={five}"), &t).await;
    assert_eq!(status, 200, "{v}");
    let six = "ann|bob|cat|dan|eve|fay";
    let (status, v) = get(&a.http_url(), &format!("/api/users?q={six}"), &t).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_query")),
        "{v}"
    );
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 5"));
    // Empty alternatives do not count.
    let (status, _) = get(&a.http_url(), "/api/users?q=ann||||||bob", &t).await;
    assert_eq!(status, 200);
    let (status, v) = get(&a.http_url(), &format!("/api/search?q={six}"), &t).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_query")),
        "{v}"
    );
}

/// A TCP relay in front of Redis that counts round trips: each time a client sends after the
/// server has answered (or for the first time) on a connection is one.
struct Relay {
    port: u16,
    trips: Arc<AtomicUsize>,
}

impl Relay {
    /// Runs on a thread of its own: the node under test may block the test's runtime.
    fn start(upstream: String) -> Relay {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let trips = Arc::new(AtomicUsize::new(0));
        let counter = trips.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(relay(std_listener, upstream, counter));
        });
        Relay { port, trips }
    }
}

async fn relay(std_listener: std::net::TcpListener, upstream: String, counter: Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
    {
        {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                // True while the server has answered since the client last sent.
                let answered = Arc::new(AtomicBool::new(true));
                let (a1, a2, trips) = (answered.clone(), answered, counter.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        if a1.swap(false, Ordering::SeqCst) {
                            trips.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = sr.read(&mut buf).await {
                        if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        a2.store(true, Ordering::SeqCst);
                    }
                });
            }
        }
    }
}

#[tokio::test]
async fn the_channel_list_takes_at_most_one_round_trip_per_channel() {
    let redis = TestRedis::start().await;
    let upstream = redis
        .url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_string();
    let upstream = upstream.split('/').next().unwrap().to_string();
    let relay = Relay::start(upstream);
    let mut s = settings(&format!("redis://127.0.0.1:{}", relay.port));
    s.limits.channel_creates_per_hour = 100;
    s.limits.max_channels_per_user = 100;
    s.ws.rate_limit_messages = 1000;
    let a = node(s);
    let t = register(&a.http_url(), "many").await;
    let mut trips = Vec::new();
    let mut made = 0;
    for n in [3, 40] {
        while made < n {
            create_channel(&a.http_url(), &t, &format!("ch{made}")).await;
            post_message(&a.http_url(), &t, &format!("ch{made}"), "hello").await;
            made += 1;
        }
        // Fewest of three tries: background work (presence) may add a trip to one of them.
        let mut fewest = usize::MAX;
        for _ in 0..3 {
            let before = relay.trips.load(Ordering::SeqCst);
            let (status, list) = get(&a.http_url(), "/api/channels", &t).await;
            let used = relay.trips.load(Ordering::SeqCst) - before;
            assert_eq!(status, 200);
            assert_eq!(list.as_array().unwrap().len(), n);
            assert_eq!(list[0]["last_message"]["text"], "hello");
            fewest = fewest.min(used);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        trips.push(fewest);
    }
    // Three per channel before (newest entry, read marker, unread entries); now the counts and
    // newest entries of all channels come in one pipeline, and what grows with the number of
    // channels is the membership check alone: at most one more round trip per channel.
    assert!(
        trips[1] <= trips[0] + (40 - 3) + 2,
        "round trips for 3 and for 40 channels: {trips:?}"
    );
}
