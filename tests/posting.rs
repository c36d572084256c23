//! Posting on real Redis and real nodes: one posting budget per user shared by sockets, REST
//! posts and voice uploads on every node, and `client_id` deduplication of re-sent posts.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// A voice upload; returns status, the Retry-After header and the JSON body.
async fn upload(base: &str, path: &str, token: &str, wav: Vec<u8>) -> (u16, Option<u64>, Value) {
    let res = http()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .header("Content-Type", "audio/wav")
        .body(wav)
        .send()
        .await
        .unwrap();
    answer(res).await
}

/// A REST text post; returns status, the Retry-After header and the JSON body.
async fn post_text(
    base: &str,
    channel: &str,
    token: &str,
    body: Value,
) -> (u16, Option<u64>, Value) {
    let res = http()
        .post(format!("{base}/api/channels/{channel}/messages"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    answer(res).await
}

async fn answer(res: reqwest::Response) -> (u16, Option<u64>, Value) {
    let status = res.status().as_u16();
    let retry = res.headers().get("retry-after").map(|v| {
        v.to_str()
            .unwrap()
            .parse()
            .expect("Retry-After is whole seconds")
    });
    let text = res.text().await.unwrap();
    (
        status,
        retry,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Sends a `post` frame and returns the answer to it (`posted` or `error`).
async fn ws_post(ws: &mut Ws, channel: &str, text: &str, client_id: Option<&str>) -> Value {
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

#[tokio::test]
async fn sockets_rest_and_voice_on_every_node_share_one_posting_budget() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.ws.rate_limit_messages = 5;
    s.ws.rate_limit_window_secs = 60;
    s.voice.engine = "none".into();
    let a = node(s.clone());
    let b = node(s);
    let (ba, bb) = (a.http_url(), b.http_url());
    let t = register(&ba, "chatty").await;
    let other = register(&ba, "calm").await;
    for tok in [&t, &other] {
        join(&ba, tok, "general").await;
    }
    let before = redis.xlen("channel:general").await;

    // Five posts, spread over REST on node A, a socket on node B and a voice upload on A.
    for i in 0..2 {
        let (status, _, v) =
            post_text(&ba, "general", &t, json!({"text": format!("rest {i}")})).await;
        assert_eq!(status, 201, "{v}");
    }
    let mut ws = Ws::connect(&b, Some(&t)).await;
    for i in 0..2 {
        let v = ws_post(&mut ws, "general", &format!("socket {i}"), None).await;
        assert_eq!(v["type"], "posted", "{v}");
    }
    let (status, _, v) = upload(
        &ba,
        "/api/channels/general/voice",
        &t,
        silence_wav(8_000, 1),
    )
    .await;
    assert_eq!(status, 202, "{v}");

    // The budget is spent everywhere: REST on either node, voice, and the socket.
    for base in [&ba, &bb] {
        let (status, retry, v) = post_text(base, "general", &t, json!({"text": "one more"})).await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (429, Some("rate_limited")),
            "{v}"
        );
        let retry = retry.expect("a 429 says when to retry");
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("try again in"));
    }
    let (status, retry, v) = upload(
        &bb,
        "/api/channels/general/voice",
        &t,
        silence_wav(8_000, 1),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    assert!(retry.is_some());
    let v = ws_post(&mut ws, "general", "socket again", Some("c-9")).await;
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["code"], "rate_limited");
    assert_eq!(v["error"]["payload"]["client_id"], "c-9");

    // Nothing refused was stored, and other users post as before.
    assert_eq!(redis.xlen("channel:general").await, before + 5);
    let (status, _, _) = post_text(&bb, "general", &other, json!({"text": "still fine"})).await;
    assert_eq!(status, 201);
    assert_eq!(redis.xlen("channel:general").await, before + 6);
}

/// The count of `user`'s posting budget in Redis.
async fn budget_count(redis: &TestRedis, user: &str) -> i64 {
    let mut conn = redis.conn().await;
    let n: Option<i64> = redis::cmd("GET")
        .arg(chatnode::store::keys::post_rate(user))
        .query_async(&mut conn)
        .await
        .unwrap();
    n.unwrap_or(0)
}

#[tokio::test]
async fn leased_budgets_hold_the_limit_across_nodes() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.ws.rate_limit_messages = 24;
    s.ws.rate_limit_window_secs = 60;
    s.ws.post_budget_lease = 4;
    let a = node(s.clone());
    let b = node(s);
    let (ba, bb) = (a.http_url(), b.http_url());
    let t = register(&ba, "leaser").await;
    let other = register(&ba, "owner").await;
    join(&ba, &t, "general").await;
    create_channel(&ba, &other, "closed").await;
    let before = redis.xlen("channel:general").await;
    let post = |base: String, text: String| {
        let t = t.clone();
        async move {
            post_text(&base, "general", &t, json!({ "text": text }))
                .await
                .0
        }
    };

    // Ten posts on node A take three leases of four: Redis counts twelve, A holds two.
    for i in 0..10 {
        assert_eq!(post(ba.clone(), format!("a {i}")).await, 201);
    }
    assert_eq!(budget_count(&redis, "leaser").await, 12);
    // A post that stores nothing (not a member there) gives its share back to Redis.
    let (status, _, v) = post_text(&ba, "closed", &t, json!({"text": "not mine"})).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(budget_count(&redis, "leaser").await, 11);

    // Node B leases the rest of the window's budget (the last lease only in part), and no more.
    for i in 0..13 {
        assert_eq!(
            post(bb.clone(), format!("b {i}")).await,
            201,
            "post {i} on B"
        );
    }
    assert_eq!(budget_count(&redis, "leaser").await, 24);
    assert_eq!(post(bb.clone(), "b over".into()).await, 429);
    // A still spends the one it holds, then is refused too.
    assert_eq!(post(ba.clone(), "a 10".into()).await, 201);
    assert_eq!(post(ba.clone(), "a over".into()).await, 429);
    assert_eq!(budget_count(&redis, "leaser").await, 24);
    assert_eq!(redis.xlen("channel:general").await, before + 24);
    // Another user's budget is their own.
    let (status, _, _) = post_text(&bb, "closed", &other, json!({"text": "fine"})).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn the_posting_budget_comes_back_after_the_window() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.ws.rate_limit_messages = 1;
    s.ws.rate_limit_window_secs = 2;
    let a = node(s);
    let base = a.http_url();
    let t = register(&base, "patient").await;
    join(&base, &t, "general").await;
    let (status, _, _) = post_text(&base, "general", &t, json!({"text": "first"})).await;
    assert_eq!(status, 201);
    let (status, retry, _) = post_text(&base, "general", &t, json!({"text": "second"})).await;
    assert_eq!(status, 429);
    let retry = retry.unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    tokio::time::sleep(Duration::from_secs(retry) + Duration::from_millis(100)).await;
    let (status, _, v) = post_text(&base, "general", &t, json!({"text": "second"})).await;
    assert_eq!(status, 201, "{v}");
}

#[tokio::test]
async fn a_resent_client_id_is_stored_once_across_nodes_and_paths() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.ws.rate_limit_messages = 3;
    s.ws.rate_limit_window_secs = 60;
    let a = node(s.clone());
    let b = node(s);
    let (ba, bb) = (a.http_url(), b.http_url());
    let t = register(&ba, "resender").await;
    let tm = register(&ba, "mentioned").await;
    for tok in [&t, &tm] {
        join(&ba, tok, "general").await;
    }
    create_channel(&ba, &t, "elsewhere").await;
    let mut watcher = Ws::subscribed(&b, &tm, &["general"]).await;
    let before = redis.xlen("channel:general").await;

    // The first post, then the same client_id again on this socket, after a reconnect to the
    // other node, and over REST on both nodes: every answer names the first message.
    let mut ws = Ws::connect(&a, Some(&t)).await;
    let first = ws_post(&mut ws, "general", "hello @mentioned", Some("c-1")).await;
    assert_eq!(first["type"], "posted", "{first}");
    let id = first["posted"]["id"].as_str().unwrap().to_string();
    let again = ws_post(&mut ws, "general", "hello @mentioned", Some("c-1")).await;
    assert_eq!(again, first);
    drop(ws);
    let mut ws = Ws::connect(&b, Some(&t)).await;
    let after_reconnect = ws_post(&mut ws, "general", "hello @mentioned", Some("c-1")).await;
    assert_eq!(after_reconnect, first);
    for base in [&ba, &bb] {
        let (status, _, v) = post_text(
            base,
            "general",
            &t,
            json!({"text": "hello @mentioned", "client_id": "c-1"}),
        )
        .await;
        assert_eq!(status, 200, "a repeat is not created again: {v}");
        assert_eq!(v["message"]["id"], id.as_str());
        assert_eq!(v["message"]["created_at"], first["posted"]["created_at"]);
        assert_eq!(v["message"]["text"], "hello @mentioned");
    }
    assert_eq!(redis.xlen("channel:general").await, before + 1);
    let mut conn = redis.conn().await;
    let mentions: u64 = redis::cmd("ZCARD")
        .arg("mentions:{user:mentioned}")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(mentions, 1, "mentioned once");
    // Subscribers saw the message once, and the mentioned user one mention, before a marker
    // the mentioned user posts after all the repeats.
    let (status, _, _) = post_text(&ba, "general", &tm, json!({"text": "marker"})).await;
    assert_eq!(status, 201);
    let mut seen: Vec<(Value, Value)> = watcher
        .read_to_marker(message_with("general", "marker"), |_| false)
        .await
        .into_iter()
        .filter(|v| v["type"] == "message" || v["type"] == "mention")
        .map(|v| {
            let kind = v["type"].as_str().unwrap().to_string();
            (json!(kind), v[&kind]["id"].clone())
        })
        .collect();
    seen.sort_by_key(|(t, _)| t.to_string());
    assert_eq!(
        seen,
        vec![(json!("mention"), json!(id)), (json!("message"), json!(id))]
    );

    // Repeats cost no budget (3 per window): two new posts still go through, a third does not.
    // The same client_id in another channel, or without one, is a new post.
    let v = ws_post(&mut ws, "elsewhere", "hello @mentioned", Some("c-1")).await;
    assert_eq!(v["type"], "posted", "{v}");
    assert_ne!(v["posted"]["id"], id.as_str());
    let (status, _, _) = post_text(&bb, "general", &t, json!({"text": "hello @mentioned"})).await;
    assert_eq!(status, 201);
    let v = ws_post(&mut ws, "general", "hello @mentioned", Some("c-2")).await;
    assert_eq!(v["error"]["code"], "rate_limited", "{v}");
    // A refused post leaves no client_id behind.
    let mut conn = redis.conn().await;
    let kept: Vec<String> = redis::cmd("KEYS")
        .arg("postonce:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept.len(), 2, "{kept:?}");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&kept[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((86_000..=86_400).contains(&ttl), "kept a day: {ttl}");

    // Another user's identical client_id is theirs alone.
    let (status, _, v) = post_text(
        &ba,
        "general",
        &tm,
        json!({"text": "hello", "client_id": "c-1"}),
    )
    .await;
    assert_eq!(status, 201);
    assert_ne!(v["message"]["id"], id.as_str());
}

#[tokio::test]
async fn a_resent_voice_upload_is_stored_once() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.voice.engine = "none".into();
    let a = node(s.clone());
    let b = node(s);
    let t = register(&a.http_url(), "speaker").await;
    join(&a.http_url(), &t, "general").await;
    let before = redis.xlen("channel:general").await;
    let path = "/api/channels/general/voice?client_id=v-1";
    let (status, _, first) = upload(&a.http_url(), path, &t, silence_wav(8_000, 1)).await;
    assert_eq!(status, 202, "{first}");
    let (status, _, again) = upload(&b.http_url(), path, &t, silence_wav(8_000, 1)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["message"]["id"], first["message"]["id"]);
    assert_eq!(
        again["message"]["voice"]["audio"],
        first["message"]["voice"]["audio"]
    );
    assert_eq!(redis.xlen("channel:general").await, before + 1);
    let audio = redis.keys("audio:*").await;
    assert_eq!(audio.len(), 1, "one copy of the audio");
    let (status, _, v) = upload(
        &a.http_url(),
        "/api/channels/general/voice?clientid=v-1",
        &t,
        silence_wav(8_000, 1),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    assert_eq!(redis.xlen("channel:general").await, before + 1);
}

/// Posts share one multiplexed Redis connection: when Redis drops every client connection, a
/// post in flight may fail with a retryable error, but the connection is made again and posting
/// goes on, with nothing stored twice.
#[tokio::test]
async fn posting_goes_on_after_redis_drops_every_connection() {
    let redis = TestRedis::start().await;
    let a = node(settings(&redis.url()));
    let base = a.http_url();
    let t = register(&base, "steady").await;
    join(&base, &t, "general").await;
    let mut ws = Ws::connect(&a, Some(&t)).await;
    let v = ws_post(&mut ws, "general", "before", Some("c-before")).await;
    assert_eq!(v["type"], "posted", "{v}");

    let mut admin = redis.conn().await;
    for round in 0..2 {
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .arg("SKIPME")
            .arg("yes")
            .query_async(&mut admin)
            .await
            .unwrap();
        assert!(killed >= 1, "the node's connections were dropped");
        // Each client_id is re-sent until it is answered with `posted`.
        for (i, (text, client_id)) in [("after 1", "c-1"), ("after 2", "c-2")].iter().enumerate() {
            let client_id = format!("{client_id}-{i}-{round}");
            let mut tries = 0;
            loop {
                let v = ws_post(&mut ws, "general", text, Some(&client_id)).await;
                if v["type"] == "posted" {
                    break;
                }
                tries += 1;
                assert!(tries < 20, "posting is wedged: {v}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let texts: Vec<String> = redis
        .stream("general")
        .await
        .into_iter()
        .filter(|(_, f)| f.get("type").map(String::as_str) == Some("message"))
        .map(|(_, f)| f["message"].clone())
        .collect();
    assert_eq!(
        texts,
        ["before", "after 1", "after 2", "after 1", "after 2"]
    );
}

/// Many posts at once, with the batcher on (`redis.batch_posts`) and off: every post is answered
/// on its own in the same way (stored once, a re-sent client_id a duplicate of the same ID, a
/// non-member refused, a post whose script fails in Redis answered with an error while the rest
/// of its batch is stored), and with batching the posts share far fewer script calls.
#[tokio::test]
async fn posts_sent_at_once_are_stored_and_answered_each_on_its_own() {
    use chatnode::error::Error;
    use chatnode::store::Store;
    use std::sync::Arc;

    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.ws.rate_limit_messages = 10_000;
    let a = node(s.clone());
    let base = a.http_url();
    let posters = ["ann", "bob", "cat", "dan"];
    let owner = register(&base, "owner").await;
    create_channel(&base, &owner, "broken").await;
    for p in posters {
        let t = register(&base, p).await;
        join(&base, &t, "general").await;
        join(&base, &t, "broken").await;
    }
    register(&base, "outsider").await;
    // One channel whose members set is not a set: its posts fail inside the script (WRONGTYPE).
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("SET")
        .arg(chatnode::store::keys::members("broken"))
        .arg("not a set")
        .query_async(&mut conn)
        .await
        .unwrap();

    for batch_posts in [true, false] {
        let mut s = s.clone();
        s.redis.batch_posts = batch_posts;
        let store = Store::connect(&redis.url(), Arc::new(s)).await.unwrap();
        let before = redis.xlen("channel:general").await;
        let broken_before = redis.xlen("channel:broken").await;
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut conn)
            .await
            .unwrap();
        let round = if batch_posts { "on" } else { "off" };
        // 200 posts by members (each client_id twice), 20 by a non-member, 20 that fail.
        let mut jobs = Vec::new();
        for i in 0..200 {
            let user = posters[i % posters.len()];
            let cid = format!("{round}-{i}");
            for _ in 0..2 {
                let (store, cid) = (&store, cid.clone());
                jobs.push(Box::pin(async move {
                    let r = store
                        .post_message_once(user, "", "general", &format!("{round} {i}"), Some(&cid))
                        .await;
                    ("general", cid, r)
                })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>);
            }
        }
        for i in 0..20 {
            let store = &store;
            jobs.push(Box::pin(async move {
                let r = store
                    .post_message_once("outsider", "", "general", "let me in", None)
                    .await;
                ("outsider", i.to_string(), r)
            }));
            jobs.push(Box::pin(async move {
                let r = store
                    .post_message_once(posters[i % 4], "", "broken", "into the void", None)
                    .await;
                ("broken", i.to_string(), r)
            }));
        }
        let answers = futures_util::future::join_all(jobs).await;

        let mut by_cid: std::collections::HashMap<String, Vec<(String, bool)>> = Default::default();
        for (kind, cid, r) in answers {
            match kind {
                "general" => {
                    let posted = r.unwrap_or_else(|e| panic!("batching {round}: {cid}: {e}"));
                    by_cid
                        .entry(cid)
                        .or_default()
                        .push((posted.event.id, posted.duplicate));
                }
                "outsider" => assert!(
                    matches!(r, Err(Error::Forbidden(_))),
                    "batching {round}: a non-member's post: {:?}",
                    r.map(|p| p.event.id)
                ),
                _ => assert!(
                    matches!(r, Err(Error::Internal(_))),
                    "batching {round}: a post whose script fails: {:?}",
                    r.map(|p| p.event.id)
                ),
            }
        }
        assert_eq!(by_cid.len(), 200);
        let mut ids = std::collections::HashSet::new();
        for (cid, answers) in &by_cid {
            assert_eq!(answers.len(), 2);
            assert_eq!(answers[0].0, answers[1].0, "{cid}: one ID for both sends");
            assert_eq!(
                answers.iter().filter(|(_, dup)| !dup).count(),
                1,
                "{cid}: stored by exactly one of its sends"
            );
            assert!(ids.insert(answers[0].0.clone()), "{cid}: an ID of its own");
        }
        assert_eq!(redis.xlen("channel:general").await, before + 200);
        assert_eq!(redis.xlen("channel:broken").await, broken_before);
        // 440 posts reach the posting script; 220 of them (duplicates, non-members) give their
        // budget back, a script call each, and the posters lease their budgets ~40 times.
        let calls = evalsha_calls(&redis).await;
        if batch_posts {
            assert!(calls <= 550, "440 posts at once took {calls} script calls");
        } else {
            assert!(
                calls >= 660,
                "unbatched, 440 posts took {calls} script calls"
            );
        }
    }
    // Each round, ann's 105 posts stored 50 and gave back the 50 duplicates' share (the 5 that
    // failed keep theirs): her posts sent at once shared their leases (one of 16 at a time)
    // instead of each taking one.
    let spent = budget_count(&redis, "ann").await;
    assert!(spent <= 2 * (55 + 16), "ann's budget counts {spent}");
}
