//! `chatnode migrate` on real data written the older way: a database filled by seed 003's loader
//! (its exact commands), and one written by chatnode before every key carried its channel's or
//! user's hash tag (the keys exactly as that version wrote them: `message:<id>`, `members:<c>`,
//! `memberships:<u>`, `active:<c>`, `mentions:<u>` of bare IDs, `sessions:<u>` and
//! `session:<hash>`, `audio:<a>` and `audioinfo:<a>`, `ids:last`, search entries by
//! `FT.ADDHASH`). After it, nothing is lost, nothing of the older layout is left, a second run
//! changes nothing, and a node serves it all.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use chatnode::store::migrate::Migrated;
use chatnode::store::{setup, Store};
use common::*;
use serde_json::Value;

/// Every key, sorted.
async fn all_keys(redis: &TestRedis) -> Vec<String> {
    redis.keys("*").await
}

/// Keys of the older layout still there (untagged names of the kinds `migrate` converts).
async fn old_keys(redis: &TestRedis) -> Vec<String> {
    all_keys(redis)
        .await
        .into_iter()
        .filter(|k| !k.contains('{'))
        .filter(|k| {
            [
                "message:",
                "members:",
                "memberships:",
                "mentions:",
                "active:",
                "sessions:",
                "audio:",
                "audioinfo:",
            ]
            .iter()
            .any(|p| k.starts_with(p))
                || k == "ids:last"
                || k == "online"
        })
        .collect()
}

async fn store_for(redis: &TestRedis) -> Store {
    let store = Store::connect(&redis.url(), Arc::new(settings(&redis.url())))
        .await
        .unwrap();
    setup::prepare(&store).await.unwrap();
    store
}

#[tokio::test]
async fn a_seed_003_database_is_migrated_and_served_on_redisearch_1() {
    seed_003_database_is_migrated_and_served(TestRedis::start().await).await;
}

#[tokio::test]
async fn a_seed_003_database_is_migrated_and_served_on_redisearch_2() {
    seed_003_database_is_migrated_and_served(TestRedis::start_search2().await).await;
}

async fn seed_003_database_is_migrated_and_served(redis: TestRedis) {
    seed_003_loader(&redis).await;
    let before: Vec<String> = redis.keys("message:*").await;
    assert!(
        before.len() >= 6,
        "the loader wrote its messages: {before:?}"
    );
    let store = store_for(&redis).await;
    let done = store.migrate().await.unwrap();
    assert_eq!(done.messages as usize, before.len(), "{done:?}");
    assert_eq!(done.left, 0);
    assert_eq!(old_keys(&redis).await, Vec::<String>::new());
    // Every message is where the new layout names it, with the loader's fields.
    let mut conn = redis.conn().await;
    for key in &before {
        let id = key.strip_prefix("message:").unwrap();
        let found: Vec<String> = redis.keys(&format!("message:{{channel:*}}:{id}")).await;
        assert_eq!(found.len(), 1, "{key} → {found:?}");
        let h: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&found[0])
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            found[0],
            format!("message:{{channel:{}}}:{id}", h["channel"])
        );
        assert!(
            !h["message"].is_empty() && !h["username"].is_empty(),
            "{h:?}"
        );
    }
    assert_eq!(
        store.migrate().await.unwrap(),
        Migrated::default(),
        "a second run finds nothing"
    );

    // A node serves it: seed 003's documented queries and history texts.
    let n = node(settings(&redis.url()));
    let base = n.http_url();
    let t = register(&base, "viewer").await;
    let (s, v) = get(
        &base,
        "/api/search/messages?channel=cricket,tech&username=wasim",
        &t,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["total"], 2, "{v}");
    let (s, v) = get(&base, "/api/channels/cricket/messages?limit=100", &t).await;
    assert_eq!(s, 200, "{v}");
    let msgs = v["messages"].as_array().unwrap();
    assert!(!msgs.is_empty());
    assert!(
        msgs.iter()
            .all(|m| !m["text"].as_str().unwrap().is_empty() && m["channel"] == "cricket"),
        "{v}"
    );
}

/// What chatnode wrote before this layout, key by key.
struct OldData {
    /// (channel, id, text) of the text messages.
    messages: Vec<(String, String, String)>,
    voice_id: String,
    audio_id: String,
    old_token: String,
}

async fn write_old_chatnode_data(redis: &TestRedis, base: &str) -> OldData {
    // The users themselves (user:<u>, usernames, uuid:<uuid>) are named as before.
    register(base, "amy").await;
    register(base, "bob").await;
    let mut conn = redis.conn().await;
    // An hour ago, so that the activity is recent.
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 3_600_000;
    let dm = "dm:amy:bob";
    let mut messages = Vec::new();
    let mut pipe = redis::pipe();
    pipe.sadd("channels", "lobby").ignore();
    pipe.sadd("members:lobby", &["amy", "bob"]).ignore();
    pipe.sadd(format!("members:{dm}"), &["amy", "bob"]).ignore();
    pipe.sadd("memberships:amy", &["lobby", dm]).ignore();
    pipe.sadd("memberships:bob", &["lobby", dm]).ignore();
    let posts = [
        ("lobby", "amy", "hello @bob, the old layout"),
        ("lobby", "bob", "old layout reply"),
        (dm, "amy", "old layout secret"),
    ];
    for (i, (c, u, text)) in posts.iter().enumerate() {
        let id = format!("{}-0", ms + i as u64);
        pipe.cmd("XADD")
            .arg(format!("channel:{c}"))
            .arg(&id)
            .arg(&[
                "type", "message", "username", u, "message", text, "uuid", "",
            ])
            .ignore();
        pipe.hset_multiple(
            format!("message:{id}"),
            &[
                ("channel", *c),
                ("username", *u),
                ("message", *text),
                ("created_at", &(ms + i as u64).to_string()),
                ("uuid", ""),
                ("type", "message"),
            ],
        )
        .ignore();
        pipe.cmd("FT.ADDHASH")
            .arg("idx:messages")
            .arg(format!("message:{id}"))
            .arg("1.0")
            .arg("REPLACE")
            .ignore();
        pipe.zadd(format!("active:{c}"), *u, ms + i as u64).ignore();
        messages.push((c.to_string(), id, text.to_string()));
    }
    pipe.zadd("mentions:bob", &messages[0].1, ms).ignore();
    // A voice message whose transcript arrived.
    let voice_id = format!("{}-0", ms + 10);
    let audio_id = "0123456789abcdef0123456789abcdef".to_string();
    let wav = silence_wav(8_000, 1);
    let size = wav.len().to_string();
    pipe.set(format!("audio:{audio_id}"), &wav).ignore();
    pipe.hset_multiple(
        format!("audioinfo:{audio_id}"),
        &[
            ("channel", "lobby"),
            ("message", voice_id.as_str()),
            ("type", "audio/wav"),
            ("bytes", size.as_str()),
            ("duration_ms", "1000"),
            ("username", "amy"),
            ("created_at", &(ms + 10).to_string()),
        ],
    )
    .ignore();
    let voice_fields = [
        ("type", "message"),
        ("username", "amy"),
        ("message", "spoken in the old layout"),
        ("uuid", ""),
        ("audio", audio_id.as_str()),
        ("audio_type", "audio/wav"),
        ("duration_ms", "1000"),
        ("audio_bytes", size.as_str()),
        ("transcript_state", "done"),
    ];
    pipe.cmd("XADD")
        .arg("channel:lobby")
        .arg(&voice_id)
        .arg(
            voice_fields
                .iter()
                .map(|(k, v)| match *k {
                    // The stream entry says what was posted: no text yet, pending.
                    "message" => (*k, ""),
                    "transcript_state" => (*k, "pending"),
                    _ => (*k, *v),
                })
                .collect::<Vec<_>>(),
        )
        .ignore();
    let mut hash: Vec<(&str, &str)> = voice_fields.to_vec();
    hash.push(("channel", "lobby"));
    let created = (ms + 10).to_string();
    hash.push(("created_at", &created));
    pipe.hset_multiple(format!("message:{voice_id}"), &hash)
        .ignore();
    pipe.cmd("FT.ADDHASH")
        .arg("idx:messages")
        .arg(format!("message:{voice_id}"))
        .arg("1.0")
        .arg("REPLACE")
        .ignore();
    pipe.set("ids:last", &voice_id).ignore();
    // The single online set of the older layout: amy online for another hour.
    pipe.zadd("online", "amy", ms + 2 * 3_600_000).ignore();
    // A session of the older token form, listed in the older index.
    let old_token = "oldFormTokenWithoutAnyDot_0123456789abcdefghij".to_string();
    let hash_hex = chatnode::store::sessions::token_hash(&old_token);
    pipe.cmd("SET")
        .arg(format!("session:{hash_hex}"))
        .arg("amy 0")
        .arg("EX")
        .arg(3600)
        .ignore();
    pipe.sadd("sessions:amy", &hash_hex).ignore();
    pipe.expire("sessions:amy", 3600).ignore();
    let _: () = pipe.query_async(&mut conn).await.unwrap();
    OldData {
        messages,
        voice_id,
        audio_id,
        old_token,
    }
}

#[tokio::test]
async fn a_database_of_the_older_chatnode_is_migrated_losing_nothing() {
    let redis = TestRedis::start().await;
    let n = node(settings(&redis.url()));
    let base = n.http_url();
    let old = write_old_chatnode_data(&redis, &base).await;
    // An earlier run stopped after writing one message's new hash but before deleting its old
    // one: the new one is kept as it is, the old one goes.
    let (c0, id0, text0) = old.messages[0].clone();
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("HSET")
        .arg(format!("message:{{channel:{c0}}}:{id0}"))
        .arg(&[
            "channel", &c0, "username", "amy", "message", &text0, "type", "message",
        ])
        .query_async(&mut conn)
        .await
        .unwrap();

    let store = store_for(&redis).await;
    let done = store.migrate().await.unwrap();
    assert_eq!(
        done,
        Migrated {
            messages: 4,
            mentions: 1,
            members: 2,
            memberships: 2,
            activity: 2,
            sessions: 1,
            audio: 1,
            online: 1,
            left: 0,
        }
    );
    assert_eq!(old_keys(&redis).await, Vec::<String>::new());
    // amy's entry is in her bucket, with its expiry.
    let score: Option<u64> = redis::cmd("ZSCORE")
        .arg(chatnode::store::keys::online("amy"))
        .arg("amy")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        score,
        Some(
            old.messages[0]
                .1
                .trim_end_matches("-0")
                .parse::<u64>()
                .unwrap()
                + 2 * 3_600_000
        )
    );
    assert_eq!(store.migrate().await.unwrap(), Migrated::default());

    // The old token still signs amy in; bob signs in anew.
    let (s, v) = get(&base, "/api/me", &old.old_token).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["username"], "amy");
    let (s, bob) = login(&base, "bob", "password123").await;
    assert_eq!(s, 200);
    let bob = bob.unwrap();

    // amy's migrated online entry is read (from her bucket) as before.
    let (s, v) = get(&base, "/api/users/online", &bob).await;
    assert_eq!(s, 200, "{v}");
    let online: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(online, ["amy"], "{v}");

    // Memberships: both channels listed, and bob may post to the lobby.
    let (s, v) = get(&base, "/api/channels", &bob).await;
    assert_eq!(s, 200, "{v}");
    let mut names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["dm:amy:bob", "lobby"], "{v}");
    let posted = post_message(&base, &bob, "lobby", "after the migration").await;
    assert_eq!(posted["channel"], "lobby", "{posted}");

    // History, the DM, the mention, search (each message once), activity, the audio.
    let (_, v) = get(&base, "/api/channels/dm:amy:bob/messages", &old.old_token).await;
    let texts: Vec<&str> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["old layout secret"], "{v}");
    let (_, v) = get(&base, "/api/mentions", &bob).await;
    let m = &v["mentions"].as_array().unwrap()[0];
    assert_eq!(
        (m["id"].as_str(), m["channel"].as_str()),
        (Some(id0.as_str()), Some("lobby"))
    );
    assert_eq!(m["text"], text0.as_str());
    let (_, v) = get(&base, "/api/search/messages?q=layout&limit=50", &bob).await;
    let mut found: Vec<&str> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "hello @bob, the old layout",
            "old layout reply",
            "old layout secret",
            "spoken in the old layout"
        ],
        "{v}"
    );
    assert_eq!(v["total"], 4, "{v}");
    let (_, v) = get(&base, "/api/channels/lobby/active?minutes=120", &bob).await;
    let active: Vec<&str> = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert!(active.contains(&"amy"), "{v}");
    let res = http()
        .get(format!("{base}/api/audio/{}", old.audio_id))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().to_vec(), silence_wav(8_000, 1));
    let (_, v) = get(&base, "/api/channels/lobby/messages", &bob).await;
    let voice = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == old.voice_id.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(voice["voice"]["audio"], old.audio_id.as_str(), "{v}");
    assert_eq!(voice["voice"]["state"], "done", "{v}");
    assert_eq!(voice["text"], "spoken in the old layout", "{v}");
}
