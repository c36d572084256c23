//! Push back instead of queueing: a socket whose post is slow still answers pings; posts over the per-socket or per-node bound, or waiting too long, are answered
//! `busy` (REST: 503 with Retry-After) and never stored; answers keep their order. Redis is made
//! slow with `CLIENT PAUSE … WRITE`, which holds every write (so every post) until it ends. The
//! pauses are short, well under the 500 ms the node waits for any Redis reply, so a held post is
//! still stored once the pause ends, also on a busy machine.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Holds every write command on `redis` for `ms` milliseconds.
async fn pause_writes(redis: &TestRedis, ms: u64) {
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(ms)
        .arg("WRITE")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
}

/// The texts of the messages stored in `channel`, in stream order.
async fn stored_texts(redis: &TestRedis, channel: &str) -> Vec<String> {
    let entries: Vec<(String, HashMap<String, String>)> = redis.stream(channel).await;
    entries
        .into_iter()
        .filter(|(_, f)| f["type"] == "message")
        .map(|(_, f)| f["message"].clone())
        .collect()
}

fn post(channel: &str, text: &str, client_id: &str) -> Value {
    json!({"type": "post", "post": {"channel": channel, "text": text, "client_id": client_id}})
}

/// A node on `redis` whose settings `tune` adjusts, and alice's token, a member of `lobby`.
async fn node_with_lobby(
    redis: &TestRedis,
    tune: impl FnOnce(&mut chatnode::Settings),
) -> (chatnode::NodeHandle, String) {
    let mut s = settings(&redis.url());
    tune(&mut s);
    let node = node(s);
    let token = register(&node.http_url(), "alice").await;
    create_channel(&node.http_url(), &token, "lobby").await;
    (node, token)
}

/// The next `posted` or `error` frame (live events such as `presence` are skipped).
async fn next_answer(ws: &mut Ws) -> Value {
    loop {
        let v = ws.recv().await;
        if v["type"] == "posted" || v["type"] == "error" {
            return v;
        }
    }
}

/// Reads frames until a `posted` or `error` answer naming `client_id` arrives.
async fn answer_to(ws: &mut Ws, client_id: &str) -> Value {
    loop {
        let v = ws.recv().await;
        let named = v["posted"]["client_id"] == client_id
            || v["error"]["payload"]["client_id"] == client_id;
        if named {
            return v;
        }
    }
}

#[tokio::test]
async fn a_socket_whose_post_is_slow_still_answers_pings() {
    let redis = TestRedis::start().await;
    let (node, token) = node_with_lobby(&redis, |_| {}).await;
    let mut ws = Ws::signed_in(&node, &token).await;

    pause_writes(&redis, 150).await;
    ws.send(post("lobby", "slow", "p-1")).await;
    ws.send_raw(Message::Ping(b"are you there".to_vec())).await;

    // While the post waits on Redis, the node answers the client's ping.
    loop {
        match ws.inner.next().await {
            Some(Ok(Message::Pong(p))) if p == b"are you there" => break,
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_ne!(v["type"], "posted", "the ping waited for the post's answer");
            }
            Some(Ok(_)) => {}
            other => panic!("the socket ended while the post waited: {other:?}"),
        }
    }

    // After the pause the post is answered and stored once.
    let answer = answer_to(&mut ws, "p-1").await;
    assert_eq!(answer["type"], "posted", "{answer}");
    assert_eq!(stored_texts(&redis, "lobby").await, ["slow"]);
}

#[tokio::test]
async fn posts_over_the_socket_bound_are_answered_busy_and_not_stored() {
    let redis = TestRedis::start().await;
    let (node, token) = node_with_lobby(&redis, |s| {
        s.ws.max_inflight_per_socket = 2;
        // Long enough that the queued post is not refused for waiting.
        s.ws.post_queue_timeout_ms = 60_000;
    })
    .await;
    let mut ws = Ws::signed_in(&node, &token).await;

    pause_writes(&redis, 150).await;
    for n in 1..=5 {
        ws.send(post("lobby", &format!("b-{n}"), &format!("b-{n}")))
            .await;
    }
    // The first is being stored and the second waits behind it: the rest are refused at once,
    // before either is answered.
    for n in 3..=5 {
        let v = next_answer(&mut ws).await;
        assert_eq!(v["type"], "error", "{v}");
        let e = &v["error"];
        assert_eq!(e["code"], "busy", "{v}");
        assert_eq!(
            e["payload"],
            json!({"channel": "lobby", "client_id": format!("b-{n}")})
        );
        // The base wait, spread by ±25 % (nothing was refused in the node's last second).
        let wait = e["retry_after_ms"].as_u64().unwrap();
        assert!((45_000..=75_000).contains(&wait), "{v}");
        assert_eq!(e["error"], e["message"]);
    }
    for n in 1..=2 {
        let v = next_answer(&mut ws).await;
        assert_eq!(v["type"], "posted", "{v}");
        assert_eq!(v["posted"]["client_id"], format!("b-{n}"));
    }
    assert_eq!(stored_texts(&redis, "lobby").await, ["b-1", "b-2"]);
}

#[tokio::test]
async fn a_post_waiting_too_long_behind_a_slow_one_is_answered_busy_and_not_stored() {
    let redis = TestRedis::start().await;
    let (node, token) = node_with_lobby(&redis, |s| {
        s.ws.post_queue_timeout_ms = 10;
        // One at a time: the second post waits in the socket's queue.
        s.ws.post_pipeline = 1;
    })
    .await;
    let mut ws = Ws::signed_in(&node, &token).await;

    pause_writes(&redis, 150).await;
    ws.send(post("lobby", "first", "q-1")).await;
    ws.send(post("lobby", "second", "q-2")).await;
    let refused = next_answer(&mut ws).await;
    assert_eq!(refused["error"]["code"], "busy", "{refused}");
    assert_eq!(refused["error"]["payload"]["client_id"], "q-2");
    let wait = refused["error"]["retry_after_ms"].as_u64().unwrap();
    assert!((7..=13).contains(&wait), "{refused}");
    let answer = answer_to(&mut ws, "q-1").await;
    assert_eq!(answer["type"], "posted", "{answer}");
    assert_eq!(stored_texts(&redis, "lobby").await, ["first"]);

    // Sent again with the same client_id, it is stored now.
    ws.send(post("lobby", "second", "q-2")).await;
    assert_eq!(answer_to(&mut ws, "q-2").await["type"], "posted");
    assert_eq!(stored_texts(&redis, "lobby").await, ["first", "second"]);
}

#[tokio::test]
async fn posts_over_the_node_bound_are_refused_over_rest_with_503_and_not_stored() {
    let redis = TestRedis::start().await;
    let (node, token) = node_with_lobby(&redis, |s| s.ws.max_inflight_per_node = 1).await;
    let base = node.http_url();
    let mut ws = Ws::signed_in(&node, &token).await;
    // A client with its connection open already, so the REST post goes out at once.
    let client = http();
    client.get(format!("{base}/healthz")).send().await.unwrap();

    // Longer: the REST post must reach the node while the socket's post is held.
    pause_writes(&redis, 300).await;
    ws.send(post("lobby", "held", "n-1")).await;
    // The node's one place is taken: a second post on the socket is refused at once.
    ws.send(post("lobby", "refused", "n-2")).await;
    let v = next_answer(&mut ws).await;
    assert_eq!(v["error"]["code"], "busy", "{v}");
    assert_eq!(v["error"]["payload"]["client_id"], "n-2");

    let res = client
        .post(format!("{base}/api/channels/lobby/messages"))
        .bearer_auth(&token)
        .json(&json!({"text": "over rest", "client_id": "n-3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let retry_after = res.headers()["retry-after"].to_str().unwrap().to_string();
    assert!(retry_after.parse::<u64>().unwrap() >= 1, "{retry_after}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "busy", "{body}");

    // The held post is answered (`posted`, unless a loaded machine made the node give up on
    // Redis first); the refused ones are never stored.
    let held = answer_to(&mut ws, "n-1").await;
    let stored = stored_texts(&redis, "lobby").await;
    if held["type"] == "posted" {
        assert_eq!(stored, ["held"]);
    }
    assert!(
        !stored.iter().any(|t| t == "refused" || t == "over rest"),
        "{stored:?}"
    );
    // Its place given back, the node takes posts again.
    post_message(&base, &token, "lobby", "after").await;
    assert_eq!(stored_texts(&redis, "lobby").await.last().unwrap(), "after");
}

#[tokio::test]
async fn answers_come_in_the_order_the_frames_were_sent() {
    let redis = TestRedis::start().await;
    let (node, token) = node_with_lobby(&redis, |_| {}).await;
    let mut ws = Ws::signed_in(&node, &token).await;

    // A burst of posts, with a post to a missing channel and a frame that is not JSON among
    // them: each answer comes in its frame's place.
    let mut expected = Vec::new();
    for n in 0..20 {
        let id = format!("d-{n}");
        match n {
            7 => {
                ws.send(post("nowhere", "lost", &id)).await;
                expected.push(format!("error channel_not_found {id}"));
            }
            13 => {
                ws.send_raw(Message::Text("{not json".into())).await;
                expected.push("error invalid_json ".to_string());
            }
            _ => {
                ws.send(post("lobby", &id, &id)).await;
                expected.push(format!("posted {id}"));
            }
        }
    }
    let mut answers = Vec::new();
    while answers.len() < expected.len() {
        let v = next_answer(&mut ws).await;
        match v["type"].as_str() {
            Some("posted") => answers.push(format!(
                "posted {}",
                v["posted"]["client_id"].as_str().unwrap()
            )),
            Some("error") => answers.push(format!(
                "error {} {}",
                v["error"]["code"].as_str().unwrap(),
                v["error"]["payload"]["client_id"].as_str().unwrap_or("")
            )),
            _ => {}
        }
    }
    assert_eq!(answers, expected);
    let stored = stored_texts(&redis, "lobby").await;
    let sent: Vec<_> = (0..20)
        .filter(|n| *n != 7 && *n != 13)
        .map(|n| format!("d-{n}"))
        .collect();
    assert_eq!(stored, sent);
}

/// Redis holds a post longer than the node waits for its answer (500 ms): the post may or may not
/// be stored, and the client is told exactly that (`unknown_outcome`), not a plain error that
/// invites a re-send without its `client_id`. Re-sent with the same `client_id` once Redis is
/// back, it is stored once. (Over REST the same error answers 503 with `Retry-After`; a REST
/// request cannot be held here the same way, since signing it in already writes.)
#[tokio::test]
async fn a_post_whose_answer_timed_out_is_unknown_and_stored_once_when_resent() {
    let redis = TestRedis::start().await;
    let n = node(settings(&redis.url()));
    let base = n.http_url();
    let token = register(&base, "tortoise").await;
    create_channel(&base, &token, "slow").await;
    let mut ws = Ws::subscribed(&n, &token, &["slow"]).await;

    pause_writes(&redis, 1500).await;
    ws.send(post("slow", "held", "ws-1")).await;
    let answer = ws.recv_type("error").await;
    assert_eq!(answer["error"]["code"], "unknown_outcome", "{answer}");
    assert_eq!(answer["error"]["payload"]["client_id"], "ws-1", "{answer}");

    // Redis is back; whether the held post was stored or not, re-sending it stores it once.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    ws.send(post("slow", "held", "ws-1")).await;
    let posted = ws.recv_type("posted").await;
    assert_eq!(posted["posted"]["client_id"], "ws-1");
    assert_eq!(stored_texts(&redis, "slow").await, ["held"]);
}

/// Over REST the `Idempotency-Key` header is the post's `client_id`: the same key again answers
/// the stored message (200) and stores nothing; a key that disagrees with the body's `client_id`
/// is refused, not guessed at.
#[tokio::test]
async fn an_idempotency_key_makes_a_rest_post_safe_to_resend() {
    let redis = TestRedis::start().await;
    let n = node(settings(&redis.url()));
    let base = n.http_url();
    let token = register(&base, "hare").await;
    create_channel(&base, &token, "fast").await;
    let send_with_key = |key: &'static str, body: Value| {
        let (base, token) = (base.clone(), token.clone());
        async move {
            let res = http()
                .post(format!("{base}/api/channels/fast/messages"))
                .bearer_auth(&token)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let (first, a) = send_with_key("k-1", json!({"text": "once"})).await;
    assert_eq!(first, 201, "{a}");
    let (second, b) = send_with_key("k-1", json!({"text": "once"})).await;
    assert_eq!(second, 200, "{b}");
    assert_eq!(a["message"]["id"], b["message"]["id"]);
    let (clash, c) = send_with_key("k-2", json!({"text": "which", "client_id": "k-3"})).await;
    assert_eq!(clash, 400, "{c}");
    assert_eq!(c["error"]["code"], "invalid_body");
    assert_eq!(stored_texts(&redis, "fast").await, ["once"]);
}

/// A socket's posts sent one after another are on their way to Redis together (up to
/// `ws.post_pipeline`): ten posts sent while Redis holds its writes reach it in a few batches,
/// not one script call each as with a pipeline of 1, and either way they are stored and answered
/// in the order sent.
#[tokio::test]
async fn a_sockets_posts_travel_together_and_stay_in_the_order_sent() {
    for depth in [8, 1] {
        let redis = TestRedis::start().await;
        let (node, token) = node_with_lobby(&redis, |s| {
            s.ws.post_pipeline = depth;
            s.ws.rate_limit_messages = 1000;
            s.ws.post_queue_timeout_ms = 60_000;
        })
        .await;
        let mut ws = Ws::signed_in(&node, &token).await;
        // A first post takes a lease of alice's budget, so the next ones need no round trip
        // of their own for it.
        ws.send(post("lobby", "warm", "w")).await;
        assert_eq!(answer_to(&mut ws, "w").await["type"], "posted");
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut redis.conn().await)
            .await
            .unwrap();

        pause_writes(&redis, 300).await;
        let sent: Vec<String> = (0..10).map(|n| format!("t-{n}")).collect();
        for id in &sent {
            ws.send(post("lobby", id, id)).await;
        }
        let mut answered = Vec::new();
        while answered.len() < sent.len() {
            let v = next_answer(&mut ws).await;
            assert_eq!(v["type"], "posted", "pipeline {depth}: {v}");
            answered.push(v["posted"]["client_id"].as_str().unwrap().to_string());
        }
        assert_eq!(
            answered, sent,
            "pipeline {depth}: answered in the order sent"
        );
        let stored = stored_texts(&redis, "lobby").await;
        assert_eq!(
            stored[1..],
            sent[..],
            "pipeline {depth}: stored in the order sent"
        );
        let calls = evalsha_calls(&redis).await;
        if depth == 1 {
            assert!(
                calls >= 10,
                "one at a time, 10 posts took {calls} script calls"
            );
        } else {
            assert!(
                calls <= 7,
                "10 posts on their way together took {calls} script calls"
            );
        }
    }
}
