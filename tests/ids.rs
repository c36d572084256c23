//! A message is named by its channel and its stream ID (Redis's own, unique within the channel):
//! its `message:{channel:<c>}:<id>` hash, its search entry and its mentions belong to exactly
//! one stream entry, however many channels are written in the same millisecond (and so share
//! IDs), on however many nodes, and whatever IDs an older database already holds.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const USERS: usize = 8;
const CHANNELS: usize = 8;
const POSTS_PER_SOCKET: usize = 40;

fn parse_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').expect("ms-seq");
    (ms.parse().unwrap(), seq.parse().unwrap())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The hash of message `id` of `channel`.
async fn message_hash(redis: &TestRedis, channel: &str, id: &str) -> HashMap<String, String> {
    hash_at(redis, &format!("message:{{channel:{channel}}}:{id}")).await
}

async fn hash_at(redis: &TestRedis, key: &str) -> HashMap<String, String> {
    let mut conn = redis.conn().await;
    redis::cmd("HGETALL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

async fn count_keys(redis: &TestRedis, pattern: &str) -> usize {
    let mut conn = redis.conn().await;
    let mut cursor: u64 = 0;
    let mut n = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        n += batch.len();
        cursor = next;
        if cursor == 0 {
            return n;
        }
    }
}

/// Sends all of a socket's posts at once, then collects their `posted` answers:
/// (channel, text, id) in the order sent.
async fn post_burst(mut ws: Ws, posts: Vec<(String, String)>) -> Vec<(String, String, String)> {
    for (i, (channel, text)) in posts.iter().enumerate() {
        ws.send(json!({"type": "post", "post": {"channel": channel, "text": text, "client_id": format!("b-{i}")}}))
            .await;
    }
    let mut ids: HashMap<String, String> = HashMap::new();
    while ids.len() < posts.len() {
        let v = ws.recv().await;
        assert_ne!(v["type"], "error", "a post was refused: {v}");
        assert_ne!(v["type"], "__close", "socket closed: {v}");
        if v["type"] == "posted" {
            let p = &v["posted"];
            ids.insert(
                p["client_id"].as_str().unwrap().to_string(),
                p["id"].as_str().unwrap().to_string(),
            );
        }
    }
    posts
        .into_iter()
        .enumerate()
        .map(|(i, (c, t))| {
            let id = ids.remove(&format!("b-{i}")).unwrap();
            (c, t, id)
        })
        .collect()
}

/// Eight users on two nodes post to eight channels at once, each message mentioning someone.
/// Many posts land in the same millisecond; each must keep its own hash, search entry and
/// mention.
async fn concurrent_posts_keep_every_message(redis: TestRedis) {
    let mut s = settings(&redis.url());
    s.ws.rate_limit_messages = 100_000;
    // Every socket sends its whole burst before reading an answer: admit it all at once, and
    // let the last post of a burst wait behind the 39 before it (each takes its round trips to
    // Redis in turn; on a busy machine that can pass the default 250 ms).
    s.ws.max_inflight_per_socket = 10_000;
    s.ws.post_queue_timeout_ms = 30_000;
    let a = node(s.clone());
    let b = node(s);
    let base = a.http_url();
    let channels: Vec<String> = (0..CHANNELS).map(|c| format!("room{c}")).collect();
    let mut tokens = Vec::new();
    for u in 0..USERS {
        let t = register(&base, &format!("user{u}")).await;
        tokens.push(t);
    }
    for c in &channels {
        create_channel(&base, &tokens[0], c).await;
    }
    for t in &tokens[1..] {
        for c in &channels {
            join(&base, t, c).await;
        }
    }

    let mut sockets = Vec::new();
    for (u, t) in tokens.iter().enumerate() {
        let n = if u % 2 == 0 { &a } else { &b };
        sockets.push(Ws::connect(n, Some(t)).await);
    }
    let mut tasks = Vec::new();
    for (u, ws) in sockets.into_iter().enumerate() {
        let posts: Vec<(String, String)> = (0..POSTS_PER_SOCKET)
            .map(|j| {
                let c = channels[(u + j) % CHANNELS].clone();
                let text = format!("ping from user{u} number {j} for @user{}", (u + 1) % USERS);
                (c, text)
            })
            .collect();
        tasks.push(tokio::spawn(post_burst(ws, posts)));
    }
    let mut posted = Vec::new();
    for t in tasks {
        posted.extend(t.await.unwrap());
    }
    let total = USERS * POSTS_PER_SOCKET;
    assert_eq!(posted.len(), total);

    // Every post has its own ID within its channel.
    let distinct: HashSet<(&str, &str)> = posted
        .iter()
        .map(|(c, _, id)| (c.as_str(), id.as_str()))
        .collect();
    assert_eq!(distinct.len(), total, "two posts of a channel share an ID");

    // Each stream entry's hash is that entry's message, in that channel.
    let mut per_channel: HashMap<String, usize> = HashMap::new();
    let mut all_ids = HashSet::new();
    for c in &channels {
        for (id, f) in redis.stream(c).await {
            assert!(all_ids.insert((c.clone(), id.clone())));
            if f.get("type").map(String::as_str) != Some("message") {
                continue;
            }
            let h = message_hash(&redis, c, &id).await;
            assert_eq!(h.get("channel"), Some(c), "message:{id} of {c}: {h:?}");
            assert_eq!(h.get("message"), f.get("message"), "message:{id}: {h:?}");
            assert_eq!(h.get("username"), f.get("username"), "message:{id}: {h:?}");
            *per_channel.entry(c.clone()).or_default() += 1;
        }
    }
    for (c, text, id) in &posted {
        let h = message_hash(&redis, c, id).await;
        assert_eq!(h.get("channel"), Some(c), "message:{id}");
        assert_eq!(h.get("message"), Some(text), "message:{id}");
    }
    assert_eq!(count_keys(&redis, "message:*").await, total);

    // Each user was mentioned by one other user's forty posts.
    let mut conn = redis.conn().await;
    for u in 0..USERS {
        let n: usize = redis::cmd("ZCARD")
            .arg(format!("mentions:{{user:user{u}}}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, POSTS_PER_SOCKET, "mentions of user{u}");
    }
    let (st, v) = get(&base, "/api/mentions?limit=100", &tokens[3]).await;
    assert_eq!(st, 200, "{v}");
    let mentions = v["mentions"].as_array().unwrap();
    assert_eq!(mentions.len(), POSTS_PER_SOCKET, "{v}");
    assert!(mentions
        .iter()
        .all(|m| m["username"] == "user2" && m["text"].as_str().unwrap().ends_with("@user3")));

    // Search finds each channel's messages in that channel.
    for c in &channels {
        let want = per_channel[c];
        let path = format!("/api/search/messages?q=ping&channel={c}&limit=1");
        let got = eventually(Duration::from_secs(10), || async {
            let (st, v) = get(&base, &path, &tokens[0]).await;
            (st == 200 && v["total"] == want).then_some(())
        })
        .await;
        let (_, v) = get(&base, &path, &tokens[0]).await;
        assert!(got.is_some(), "search in {c}: want {want}, got {v}");
    }
}

#[tokio::test]
async fn concurrent_posts_to_many_channels_keep_every_message_on_redisearch_1() {
    concurrent_posts_keep_every_message(TestRedis::start().await).await;
}

#[tokio::test]
async fn concurrent_posts_to_many_channels_keep_every_message_on_redisearch_2() {
    concurrent_posts_keep_every_message(TestRedis::start_search2().await).await;
}

/// Writes a seed 003-style message (stream entry with only `type`, plus its hash) at `id`.
async fn old_message(redis: &TestRedis, channel: &str, id: &str, username: &str, text: &str) {
    let mut conn = redis.conn().await;
    let _: () = redis::pipe()
        .cmd("SADD")
        .arg("channels")
        .arg(channel)
        .ignore()
        .cmd("XADD")
        .arg(format!("channel:{channel}"))
        .arg(id)
        .arg("type")
        .arg("message")
        .ignore()
        .cmd("HSET")
        .arg(format!("message:{id}"))
        .arg("channel")
        .arg(channel)
        .arg("username")
        .arg(username)
        .arg("message")
        .arg(text)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// A database written the older way by a clock running an hour ahead (two channels' stream tops
/// in the same future millisecond, `behind` one step below `ahead`, whose member writes there
/// first, and a stream whose newest entry was deleted): every kind of write still succeeds, goes
/// past every ID already in its channel, and overwrites no message, not even the older
/// `message:<id>` of another channel that has the same ID as a new post.
async fn ids_pass_every_stream_top_and_never_overwrite_an_older_message(redis: TestRedis) {
    let f = now_ms() + 3_600_000;
    old_message(
        &redis,
        "ahead",
        &format!("{f}-5"),
        "old",
        "kept from before",
    )
    .await;
    old_message(
        &redis,
        "behind",
        &format!("{f}-4"),
        "old",
        "also from before",
    )
    .await;
    // A stream whose newest entry was deleted: Redis still refuses IDs up to the deleted one.
    let g = f + 1000;
    old_message(&redis, "trimmed", &format!("{g}-0"), "old", "deleted").await;
    let mut conn = redis.conn().await;
    let _: i64 = redis::cmd("XDEL")
        .arg("channel:trimmed")
        .arg(format!("{g}-0"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(format!("message:{g}-0"))
        .query_async(&mut conn)
        .await
        .unwrap();

    let mut s = settings(&redis.url());
    s.voice.engine = "none".into();
    let n = node(s.clone());
    let base = n.http_url();
    let t = register(&base, "writer").await;
    // The writer was a member of `behind` already, so its first write is a post there.
    let _: () = redis::pipe()
        .sadd("members:{channel:behind}", "writer")
        .sadd("memberships:{user:writer}", "behind")
        .query_async(&mut conn)
        .await
        .unwrap();

    let mut tops: HashMap<String, (u64, u64)> = HashMap::from([
        ("ahead".to_string(), (f, 5)),
        ("behind".to_string(), (f, 4)),
    ]);
    let mut check_new = |channel: &str, id: &str, what: &str| {
        let top = tops.get(channel).copied().unwrap_or((0, 0));
        assert!(
            parse_id(id) > top,
            "{what}: {id} is not after every ID already in {channel}"
        );
        tops.insert(channel.to_string(), parse_id(id));
    };
    let mut written: Vec<(String, String, String)> = Vec::new();
    for (c, text) in [
        ("behind", "first new post"),
        ("ahead", "second new post"),
        ("behind", "third new post"),
    ] {
        if c == "ahead" {
            join(&base, &t, "ahead").await;
        }
        let (st, v) = post(
            &base,
            &format!("/api/channels/{c}/messages"),
            &t,
            json!({"text": text}),
        )
        .await;
        assert_eq!(st, 201, "{v}");
        let id = v["message"]["id"].as_str().unwrap().to_string();
        check_new(c, &id, text);
        written.push((c.to_string(), text.to_string(), id));
    }
    // Joins (a new channel's creation), voice messages and posts after a deleted top.
    create_channel(&base, &t, "third").await;
    let (join_id, join_fields) = redis.stream("third").await.pop().unwrap();
    assert_eq!(join_fields["type"], "join");
    check_new("third", &join_id, "join");
    let res = http()
        .post(format!("{base}/api/channels/third/voice"))
        .bearer_auth(&t)
        .header("Content-Type", "audio/wav")
        .body(silence_wav(8_000, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let v: Value = res.json().await.unwrap();
    let voice_id = v["message"]["id"].as_str().unwrap().to_string();
    check_new("third", &voice_id, "voice message");
    join(&base, &t, "trimmed").await;
    let (st, v) = post(
        &base,
        "/api/channels/trimmed/messages",
        &t,
        json!({"text": "after a deleted entry"}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let id = v["message"]["id"].as_str().unwrap().to_string();
    assert!(parse_id(&id) > (g, 0), "{id}");
    written.push(("trimmed".into(), "after a deleted entry".into(), id));

    // A transcript event, written when a transcriber finishes a job.
    let store = chatnode::store::Store::connect(&redis.url(), Arc::new(s))
        .await
        .unwrap();
    store.ensure_voice_group().await.unwrap();
    let pending = store
        .post_voice(
            "writer",
            "",
            "third",
            &silence_wav(8_000, 1),
            "audio/wav",
            1000,
            "pending",
            None,
        )
        .await
        .unwrap();
    let mut tconn = store.transcriber_conn(100).await.unwrap();
    let job = store
        .next_job(&mut tconn, "tester", 100)
        .await
        .unwrap()
        .expect("the pending voice message's job");
    assert_eq!(job.message, pending.event.id);
    let transcript = store
        .finish_job(
            &job,
            &chatnode::store::transcription::Outcome::Done {
                text: "hello".into(),
                confidence: None,
                engine: "test".into(),
            },
        )
        .await
        .unwrap()
        .expect("the transcript event");
    assert!(parse_id(&transcript) > parse_id(&pending.event.id));
    assert!(parse_id(&pending.event.id) > parse_id(&voice_id));

    // Nothing was overwritten: the old messages and every new one are where they were written.
    let h = hash_at(&redis, &format!("message:{f}-5")).await;
    assert_eq!(h["channel"], "ahead");
    assert_eq!(h["message"], "kept from before");
    let h = hash_at(&redis, &format!("message:{f}-4")).await;
    assert_eq!(h["channel"], "behind");
    assert_eq!(h["message"], "also from before");
    assert_eq!(
        written[0].2,
        format!("{f}-5"),
        "behind's first post takes the ID ahead's older message has"
    );
    for (c, text, id) in &written {
        let h = message_hash(&redis, c, id).await;
        assert_eq!(h.get("channel"), Some(c), "message:{id}: {h:?}");
        assert_eq!(h.get("message"), Some(text), "message:{id}: {h:?}");
    }
    // History shows each channel its own messages.
    let (st, v) = get(&base, "/api/channels/behind/messages?limit=10", &t).await;
    assert_eq!(st, 200);
    let texts: Vec<&str> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "message")
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["also from before", "first new post", "third new post"]
    );
}

#[tokio::test]
async fn ids_pass_stream_tops_ahead_and_overwrite_nothing_on_redis() {
    ids_pass_every_stream_top_and_never_overwrite_an_older_message(TestRedis::start().await).await;
}

#[tokio::test]
async fn ids_pass_stream_tops_ahead_and_overwrite_nothing_on_valkey() {
    ids_pass_every_stream_top_and_never_overwrite_an_older_message(
        TestRedis::start_search2().await,
    )
    .await;
}
