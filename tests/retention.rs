//! History retention: messages older than `history.retention_days` go with everything kept for
//! them (stream entry, message hash, search entry, mentions, voice audio), newer ones stay whole,
//! and nodes sweep one at a time. Real Redis with RediSearch 1.x (documents added by hand, so
//! removed by hand), real nodes.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chatnode::store::{keys, Store};
use common::*;
use serde_json::Value;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn upload_voice(base: &str, token: &str) -> Value {
    let res = http()
        .post(format!("{base}/api/channels/lobby/voice"))
        .bearer_auth(token)
        .header("Content-Type", "audio/wav")
        .body(silence_wav(8_000, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    res.json::<Value>().await.unwrap()["message"].clone()
}

async fn search_ids(base: &str, token: &str, q: &str) -> Vec<String> {
    let (status, v) = get(base, &format!("/api/search/messages?q={q}"), token).await;
    assert_eq!(status, 200, "{v}");
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

async fn exists(redis: &TestRedis, key: &str) -> bool {
    let n: i64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    n == 1
}

/// Documents in the message index (`FT.INFO` num_docs).
async fn indexed(redis: &TestRedis) -> u64 {
    let info: Vec<redis::Value> = redis::cmd("FT.INFO")
        .arg("idx:messages")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let at = info
        .iter()
        .position(|v| {
            matches!(v, redis::Value::BulkString(b) if b == b"num_docs")
                || matches!(v, redis::Value::SimpleString(s) if s == "num_docs")
        })
        .expect("num_docs in FT.INFO");
    match &info[at + 1] {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).parse().unwrap(),
        redis::Value::SimpleString(s) => s.parse().unwrap(),
        redis::Value::Int(n) => *n as u64,
        other => panic!("num_docs {other:?}"),
    }
}

#[tokio::test]
async fn old_messages_go_with_their_hash_search_entry_mentions_and_audio() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.voice.engine = "none".into();
    let a = node(s.clone());
    let base = a.http_url();
    let (alice, bob) = channel_with_member(&a, &a, "lobby", "alice", "bob").await;
    let old = post_message(&base, &alice, "lobby", "zebra @bob old news").await;
    let old_voice = upload_voice(&base, &alice).await;
    let audio = old_voice["voice"]["audio"].as_str().unwrap().to_string();
    let (status, dm) = post(
        &base,
        "/api/dms",
        &alice,
        serde_json::json!({"username": "bob"}),
    )
    .await;
    assert_eq!(status, 200);
    let dm = dm["channel"].as_str().unwrap().to_string();
    let old_dm = post_message(&base, &alice, &dm, "zebra @bob in private").await;
    assert_eq!(search_ids(&base, &bob, "zebra").await.len(), 2);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cutoff = now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let new = post_message(&base, &alice, "lobby", "zebra @bob fresh news").await;
    let new_voice = upload_voice(&base, &alice).await;
    let new_audio = new_voice["voice"]["audio"].as_str().unwrap().to_string();

    assert_eq!(indexed(&redis).await, 5);
    let store = Store::connect(&redis.url(), Arc::new(s)).await.unwrap();
    let swept = store.sweep_before(cutoff).await.unwrap();
    // RediSearch 1.x keeps a document added by hand until it is deleted from the index.
    assert_eq!(indexed(&redis).await, 2);
    // lobby: two joins, a message, a voice message; the DM: a message.
    assert_eq!(
        (swept.entries, swept.messages, swept.audio),
        (5, 3, 1),
        "{swept:?}"
    );

    for (channel, id) in [
        ("lobby", &old["id"]),
        ("lobby", &old_voice["id"]),
        (dm.as_str(), &old_dm["id"]),
    ] {
        let id = id.as_str().unwrap();
        assert!(!exists(&redis, &keys::message(channel, id)).await, "{id}");
    }
    assert!(!exists(&redis, &keys::audio("lobby", &audio)).await);
    assert!(!exists(&redis, &keys::audio_info("lobby", &audio)).await);
    assert!(!exists(&redis, &keys::audio_channel(&audio)).await);
    let lobby: Vec<String> = redis
        .stream("lobby")
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        lobby,
        [
            new["id"].as_str().unwrap(),
            new_voice["id"].as_str().unwrap()
        ]
    );
    assert!(redis.stream(&dm).await.is_empty());
    // Search and mentions find only what is left.
    assert_eq!(
        search_ids(&base, &bob, "zebra").await,
        [new["id"].as_str().unwrap()]
    );
    let (_, mentions) = get(&base, "/api/mentions", &bob).await;
    let ids: Vec<&str> = mentions["mentions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [new["id"].as_str().unwrap()]);
    let left: Vec<String> = redis::cmd("ZRANGE")
        .arg(keys::mentions("bob"))
        .arg(0)
        .arg(-1)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    assert_eq!(
        left,
        [keys::message_ref("lobby", new["id"].as_str().unwrap())]
    );
    // What is newer is whole: hash, audio, history.
    assert!(exists(&redis, &keys::message("lobby", new["id"].as_str().unwrap())).await);
    assert!(exists(&redis, &keys::audio("lobby", &new_audio)).await);
    let (_, page) = get(&base, "/api/channels/lobby/messages", &alice).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 2, "{page}");
    // A second sweep finds nothing more.
    let again = store.sweep_before(cutoff).await.unwrap();
    assert_eq!(again.entries, 0);
}

#[tokio::test]
async fn nodes_sweep_on_their_own_one_at_a_time() {
    let redis = TestRedis::start().await;
    let a = node(settings(&redis.url()));
    let (alice, _) = channel_with_member(&a, &a, "lobby", "alice", "bob").await;
    let old = post_message(&a.http_url(), &alice, "lobby", "soon gone").await;
    // Two nodes keeping 2 s, sweeping every second.
    let mut s = settings(&redis.url());
    s.history.retention_days = 2.0 / 86_400.0;
    s.history.retention_interval_secs = 1;
    let _b = node(s.clone());
    let _c = node(s.clone());
    let id = old["id"].as_str().unwrap().to_string();
    let gone = eventually(Duration::from_secs(10), || {
        let key = keys::message("lobby", &id);
        let redis = &redis;
        async move { (!exists(redis, &key).await).then_some(()) }
    })
    .await;
    assert!(gone.is_some(), "the old message was removed");
    assert!(redis.stream("lobby").await.is_empty());
    // The lock: while one node holds it another's sweep does nothing.
    let store = Store::connect(&redis.url(), Arc::new(s)).await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("retention:lock")
        .arg("another-node")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let later = post_message(&a.http_url(), &alice, "lobby", "kept while locked").await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(store.sweep_retention("me").await.unwrap(), None);
    let key = keys::message("lobby", later["id"].as_str().unwrap());
    assert!(
        exists(&redis, &key).await,
        "no sweep while another node holds the lock"
    );
    let _: () = redis::cmd("DEL")
        .arg("retention:lock")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let swept = eventually(Duration::from_secs(10), || {
        let (redis, key) = (&redis, key.clone());
        async move { (!exists(redis, &key).await).then_some(()) }
    })
    .await;
    assert!(swept.is_some(), "swept once the lock was free");
}

async fn used_memory(redis: &TestRedis) -> i64 {
    common::info_line(redis, "memory", "used_memory:")
        .await
        .unwrap()
        .parse()
        .unwrap()
}

/// The figures of docs/DEPLOY.md ("Redis memory"): run with `--ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn measure_redis_memory_per_message_and_per_user() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.ws.rate_limit_messages = 1_000_000;
    let a = node(s);
    let base = a.http_url();
    let owner = register(&base, "owner").await;
    create_channel(&base, &owner, "lobby").await;
    let before = used_memory(&redis).await;
    const USERS: i64 = 300;
    for i in 0..USERS {
        register(&base, &format!("user{i:04}")).await;
    }
    let per_user = (used_memory(&redis).await - before) / USERS;
    const MESSAGES: i64 = 3000;
    let text = "x".repeat(90);
    let before = used_memory(&redis).await;
    for i in 0..MESSAGES {
        post_message(
            &base,
            &owner,
            "lobby",
            &format!("{text} word{} {i}", i % 500),
        )
        .await;
    }
    let per_message = (used_memory(&redis).await - before) / MESSAGES;
    println!("per user (signed up, one session): {per_user} bytes");
    println!("per 100-character message (stream entry, hash, search entry): {per_message} bytes");
    const MORE: i64 = 1000;
    let before = used_memory(&redis).await;
    for i in 0..MORE {
        post_message(&base, &owner, "lobby", &format!("{text} @user0001 {i}")).await;
    }
    let with_mention = (used_memory(&redis).await - before) / MORE;
    println!("per 100-character message with a mention: {with_mention} bytes");
    let long = "y".repeat(990);
    let before = used_memory(&redis).await;
    for i in 0..MORE {
        post_message(&base, &owner, "lobby", &format!("{long} {i}")).await;
    }
    let per_long = (used_memory(&redis).await - before) / MORE;
    println!("per 1000-character message: {per_long} bytes");
    let before = used_memory(&redis).await;
    for i in 0..USERS {
        let t = login(&base, &format!("user{i:04}"), "password123")
            .await
            .1
            .unwrap();
        join(&base, &t, "lobby").await;
    }
    let per_join = (used_memory(&redis).await - before) / USERS;
    println!("per further session and join (membership, join entry): {per_join} bytes");
    let before = used_memory(&redis).await;
    for _ in 0..USERS {
        login(&base, "owner", "password123").await.1.unwrap();
    }
    let per_session = (used_memory(&redis).await - before) / USERS;
    println!("per further session: {per_session} bytes");
}
