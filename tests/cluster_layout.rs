//! The key layout on a Redis in cluster mode: ONE `redis-server --cluster-enabled yes` owning
//! every slot. Such a server refuses any script or multi-key command whose keys are in two hash
//! slots (`CROSSSLOT`), so every write path run here through the store API and a real node
//! (posting, budgets and client_ids, mentions, voice and transcription, DMs, joins and leaves,
//! sessions and revocation, login throttling, presence, search indexing) proves that it touches
//! one slot per script. The older layout's posting script, which declared the channel's stream
//! with the global ID generator `ids:last`, is refused by the same server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chatnode::error::Error;
use chatnode::store::search::MessageQuery;
use chatnode::store::transcription::Outcome;
use chatnode::store::users::ProfileUpdate;
use chatnode::store::{keys, setup, Store};
use common::*;
use serde_json::json;

#[tokio::test]
async fn the_fixture_refuses_keys_of_two_slots() {
    let (redis, _dir) = TestRedis::start_cluster_node().await;
    let mut conn = redis.conn().await;
    // As the older posting script did: the stream and the global ID generator together.
    let r: redis::RedisResult<i64> = redis::cmd("EVAL")
        .arg("redis.call('SET', KEYS[2], '1-0') return 1")
        .arg(2)
        .arg("channel:general")
        .arg("ids:last")
        .query_async(&mut conn)
        .await;
    let e = r.expect_err("a script over two slots is refused");
    assert!(e.to_string().contains("same slot"), "{e}");
    let r: redis::RedisResult<()> = redis::cmd("SUNIONSTORE")
        .arg("members:general")
        .arg("memberships:amy")
        .query_async(&mut conn)
        .await;
    assert!(r.unwrap_err().to_string().contains("same slot"));
    // The layout's keys of one channel are one slot.
    let n: i64 = redis::cmd("EVAL")
        .arg("redis.call('SADD', KEYS[2], 'amy') return redis.call('EXISTS', KEYS[1])")
        .arg(2)
        .arg(keys::channel("general"))
        .arg(keys::members("general"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn every_write_path_touches_one_slot_per_script() {
    let (redis, _dir) = TestRedis::start_cluster_node().await;
    let mut s = settings(&redis.url());
    s.ws.rate_limit_messages = 6;
    s.voice.engine = "none".into();
    let store = Store::connect(&redis.url(), Arc::new(s.clone()))
        .await
        .unwrap();
    setup::prepare(&store).await.unwrap();

    // Accounts, sessions, login throttling.
    let amy = chatnode::accounts::register(&store, "amy", "password123", ProfileUpdate::default())
        .await
        .unwrap();
    let zed =
        chatnode::accounts::register(&store, "zed.q", "password123", ProfileUpdate::default())
            .await
            .unwrap();
    assert_eq!(
        store.resolve_session(&amy.token).await.unwrap().as_deref(),
        Some("amy")
    );
    let wrong = chatnode::accounts::login(&store, "amy", "wrong-password", "203.0.113.9").await;
    assert!(
        matches!(wrong, Err(Error::InvalidCredentials)),
        "{:?}",
        wrong.err()
    );
    let second = chatnode::accounts::login(&store, "amy", "password123", "203.0.113.9")
        .await
        .unwrap();
    store
        .revoke_other_sessions(
            "amy",
            Some(&chatnode::store::sessions::token_hash(&second.token)),
        )
        .await
        .unwrap();
    assert_eq!(store.resolve_session(&amy.token).await.unwrap(), None);
    assert_eq!(
        store
            .resolve_session(&second.token)
            .await
            .unwrap()
            .as_deref(),
        Some("amy")
    );
    store.revoke_session(&second.token).await.unwrap();
    assert_eq!(store.resolve_session(&second.token).await.unwrap(), None);

    // Channels: create, join, leave, DMs.
    store.create_channel("lobby").await.unwrap();
    assert!(store.join_channel("amy", "", "lobby").await.unwrap());
    assert!(store.join_channel("zed.q", "", "lobby").await.unwrap());
    assert!(store.leave_channel("zed.q", "", "lobby").await.unwrap());
    assert!(!store.is_member("zed.q", "lobby").await.unwrap());
    assert!(store.join_channel("zed.q", "", "lobby").await.unwrap());
    let dm = store.open_dm("amy", "zed.q").await.unwrap();
    assert_eq!(
        store.memberships("zed.q").await.unwrap(),
        [dm.clone(), "lobby".into()]
    );

    // Posts: a client_id stored once, mentions, a DM, the budget.
    let first = store
        .post_message_once("amy", "", "lobby", "hello @zed.q, searchable", Some("c-1"))
        .await
        .unwrap();
    let again = store
        .post_message_once("amy", "", "lobby", "hello @zed.q, searchable", Some("c-1"))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.event.id, first.event.id);
    let in_dm = store
        .post_message("zed.q", "", &dm, "a private word")
        .await
        .unwrap();
    let mentions = store.mentions("zed.q", None, 10).await.unwrap();
    assert_eq!(mentions.mentions.len(), 1);
    assert_eq!(mentions.mentions[0].id, first.event.id);
    assert_eq!(mentions.mentions[0].channel, "lobby");
    let refused = store
        .post_message("zed.q", "", "general", "not a member")
        .await;
    assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");

    // Voice: audio, message, job, transcript.
    store.ensure_voice_group().await.unwrap();
    let wav = silence_wav(8_000, 1);
    let voice = store
        .post_voice(
            "amy",
            "",
            "lobby",
            &wav,
            "audio/wav",
            1000,
            "pending",
            Some("v-1"),
        )
        .await
        .unwrap();
    let audio_id = voice.event.voice.as_ref().unwrap().audio.clone();
    let info = store.audio_info(&audio_id).await.unwrap().unwrap();
    assert_eq!(info.channel, "lobby");
    assert_eq!(info.message, voice.event.id);
    assert_eq!(store.audio_range(&info, 0, 3).await.unwrap(), b"RIFF");
    let mut tconn = store.transcriber_conn(100).await.unwrap();
    let job = store
        .next_job(&mut tconn, "tester", 100)
        .await
        .unwrap()
        .expect("the voice message's job");
    assert_eq!(
        (job.channel.as_str(), job.message.as_str()),
        ("lobby", voice.event.id.as_str())
    );
    let done = Outcome::Done {
        text: "spoken searchable words".into(),
        confidence: Some(0.9),
        engine: "test".into(),
    };
    assert!(store.finish_job(&job, &done).await.unwrap().is_some());
    assert!(
        store.finish_job(&job, &done).await.unwrap().is_none(),
        "once"
    );
    assert_eq!(
        store
            .transcript_state("lobby", &voice.event.id)
            .await
            .unwrap()
            .as_deref(),
        Some("done")
    );

    // Search finds the text post and the transcript (indexed after their scripts), not the DM
    // for someone outside it.
    let q = MessageQuery {
        q: Some("searchable".into()),
        limit: 10,
        ..Default::default()
    };
    let found = store.search_messages("amy", &q).await.unwrap();
    let mut ids: Vec<&str> = found.messages.iter().map(|m| m.id.as_str()).collect();
    ids.sort();
    let mut want = vec![first.event.id.as_str(), voice.event.id.as_str()];
    want.sort();
    assert_eq!(ids, want, "{found:?}");
    let private = MessageQuery {
        q: Some("private".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        store
            .search_messages("zed.q", &private)
            .await
            .unwrap()
            .total,
        1
    );
    chatnode::accounts::register(&store, "outsider", "password123", ProfileUpdate::default())
        .await
        .unwrap();
    assert_eq!(
        store
            .search_messages("outsider", &private)
            .await
            .unwrap()
            .total,
        0
    );
    assert_eq!(in_dm.channel, dm);

    // The budget: 6 per window; amy has stored 2 posts (the repeat cost nothing).
    for i in 0..4 {
        store
            .post_message("amy", "", "lobby", &format!("filler {i}"))
            .await
            .unwrap();
    }
    let limited = store.post_message("amy", "", "lobby", "one too many").await;
    assert!(
        matches!(limited, Err(Error::TooManyPosts { .. })),
        "{limited:?}"
    );
    let resent = store
        .post_message_once("amy", "", "lobby", "hello @zed.q, searchable", Some("c-1"))
        .await
        .unwrap();
    assert!(resent.duplicate, "a re-sent post is answered, not refused");

    // History reads it all back.
    let page = store.history("lobby", None, None, 50).await.unwrap();
    let texts: Vec<&str> = page
        .messages
        .iter()
        .filter(|m| m.kind == "message")
        .map(|m| m.text.as_str())
        .collect();
    assert_eq!(texts.len(), 6, "{texts:?}");
    assert_eq!(texts[1], "spoken searchable words");

    // A node on the same server: sign-in, presence, a live post over the socket, sign-out.
    let log = CapturedLog::start();
    s.presence.refresh_interval_secs = 1;
    let n = node(s);
    let base = n.http_url();
    let t = register(&base, "walker").await;
    join(&base, &t, "lobby").await;
    let mut ws = Ws::subscribed(&n, &zed.token, &["lobby"]).await;
    let mut walker = Ws::subscribed(&n, &t, &["lobby"]).await;
    // Presence announcements of the others, until walker's.
    loop {
        let p = ws.recv_type("presence").await;
        if p["presence"]["username"] == "walker" {
            assert_eq!(p["presence"]["online"], true, "{p}");
            break;
        }
    }
    walker
        .send(json!({"type": "post", "post": {"channel": "lobby", "text": "live", "client_id": "w-1"}}))
        .await;
    assert_eq!(
        walker.recv_type("posted").await["posted"]["client_id"],
        "w-1"
    );
    ws.recv_message("lobby").await;
    drop(walker);
    loop {
        let p = ws.recv_type("presence").await;
        if p["presence"]["username"] == "walker" {
            assert_eq!(p["presence"]["online"], false, "walker goes offline: {p}");
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let slot_errors: Vec<String> = log
        .lines()
        .into_iter()
        .filter(|l| l.contains("CROSSSLOT") || l.contains("slot"))
        .collect();
    assert!(slot_errors.is_empty(), "{slot_errors:?}");
}
