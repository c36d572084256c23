//! A connection whose buffers were given back still carries everything. chatnode's actix-http
//! (vendor/actix-http) releases a connection's read buffer once it has decoded every byte read
//! and its write buffer once it has flushed it, so an idle socket holds neither; the next read
//! or write allocates them again. Real Redis, a real node, real sockets.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

/// A text of `chars` characters of three bytes each, so that its frame needs more than one
/// 8 KiB buffer (the size the dispatcher reads into).
fn wide_text(tag: &str, chars: usize) -> String {
    format!("{tag} {}", "€".repeat(chars))
}

#[tokio::test]
async fn an_idle_socket_still_reads_and_writes_small_and_large_frames() {
    let redis = TestRedis::start().await;
    let a = node(settings(&redis.url()));
    let (ta, tb) = channel_with_member(&a, &a, "quiet", "anna", "ben").await;
    let mut wa = Ws::subscribed(&a, &ta, &["quiet"]).await;
    let mut wb = Ws::subscribed(&a, &tb, &["quiet"]).await;

    // Idle past a heartbeat (5 s in the tests' settings): pings went out and pongs came in
    // through buffers that were released after each of them.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let small = "after a quiet spell".to_string();
    // 3,990 characters of 3 bytes: a frame of about 12 KiB each way.
    let large = wide_text("large", 3990);
    for (i, text) in [&small, &large, &small].into_iter().enumerate() {
        wa.send(json!({"type": "post", "post": {"channel": "quiet", "text": text, "client_id": format!("c{i}")}}))
            .await;
        let got = wb.recv_message("quiet").await;
        assert_eq!(got["text"].as_str(), Some(text.as_str()), "frame {i} whole");
    }
    // The sender still gets its own answers.
    let posted = wa.recv_type("posted").await;
    assert!(posted.to_string().contains("c0"), "{posted}");
}

#[tokio::test]
async fn a_burst_larger_than_the_buffers_arrives_whole_after_idle() {
    let redis = TestRedis::start().await;
    // One user posts them all, beyond the default posting budget.
    let mut s = settings(&redis.url());
    s.ws.rate_limit_messages = 1000;
    let a = node(s);
    let base = a.http_url();
    let token = register(&base, "reader").await;
    create_channel(&base, &token, "archive").await;
    // 40 messages of about 6 KiB: a replay of some 240 KiB, written in many flushes.
    let texts: Vec<String> = (0..40)
        .map(|i| wide_text(&format!("m{i:02}"), 2000))
        .collect();
    for text in &texts {
        post_message(&base, &token, "archive", text).await;
    }
    let mut ws = Ws::signed_in(&a, &token).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ws.send(json!({"type": "resume", "resume": {"channels": {"archive": "0-0"}}}))
        .await;
    let mut got = Vec::new();
    while got.len() < texts.len() {
        let m = ws.recv_message("archive").await;
        // The channel's own notices (its creation) come first; the posts are of type message.
        if m["type"] == "message" {
            got.push(m["text"].as_str().unwrap().to_string());
        }
    }
    let wrong = got.iter().zip(&texts).position(|(g, t)| g != t);
    assert_eq!(wrong, None, "every frame whole, in order");
}

#[tokio::test]
async fn plain_http_requests_reuse_one_connection_with_large_bodies() {
    let redis = TestRedis::start().await;
    let a = node(settings(&redis.url()));
    let base = a.http_url();
    let token = register(&base, "keeper").await;
    create_channel(&base, &token, "pages").await;
    // One client, one kept-alive connection: bodies larger than a buffer both ways, then small
    // ones, each request after the previous one's buffers were released.
    let client = http();
    let large = wide_text("large", 3990);
    for (i, text) in [large.as_str(), "small", large.as_str()]
        .into_iter()
        .enumerate()
    {
        let res = client
            .post(format!("{base}/api/channels/pages/messages"))
            .bearer_auth(&token)
            .json(&json!({"text": text}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "post {i}");
    }
    let res = client
        .get(format!("{base}/api/channels/pages/messages?limit=3"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(
        body.len() > 2 * large.len(),
        "history page carries both large texts"
    );
    assert_eq!(body.matches("small").count(), 1, "{body}");
}
