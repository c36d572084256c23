//! A socket's outbound frames: a burst reaches the client whole and in order, in no more socket
//! writes than frames and no fewer than its bytes need. Real Redis, a real node, a real socket.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn a_burst_arrives_whole_and_in_order_in_at_most_one_write_per_frame() {
    let redis = TestRedis::start().await;
    // One user posts the whole burst, beyond the default posting budget.
    let mut s = settings(&redis.url());
    s.ws.rate_limit_messages = 1000;
    // The replay below is about 330 KB: more than half the default byte bound would make it a
    // gap to page, so the queue gets room for it.
    s.ws.outbound_queue_bytes = 4 << 20;
    let a = node(s);
    let base = a.http_url();
    let token = register(&base, "burst").await;
    assert_eq!(
        post(&base, "/api/channels", &token, json!({"name": "firehose"}))
            .await
            .0,
        201
    );
    // 300 messages in both length forms a frame of this size can take (7-bit and 16-bit).
    let mut texts = Vec::new();
    for i in 0..300 {
        let pad = match i % 3 {
            0 => 10,
            1 => 200,
            _ => 1000,
        };
        let text = format!("m{i:03} {}", "é".repeat(pad));
        let (s, _) = post(
            &base,
            "/api/channels/firehose/messages",
            &token,
            json!({"text": text}),
        )
        .await;
        assert_eq!(s, 201);
        texts.push(text);
    }
    let mut ws = Ws::signed_in(&a, &token).await;
    let frames0 = metric(&base, "chatnode_frames_out_total").await;
    let writes0 = metric(&base, "chatnode_socket_writes_total").await;
    // The whole channel replayed at once: 300 frames pushed in one go.
    ws.send(json!({"type": "resume", "resume": {"channels": {"firehose": "0-0"}}}))
        .await;
    let mut got = Vec::new();
    while got.len() < 300 {
        let m = ws.recv_message("firehose").await;
        if m["type"] == "message" {
            got.push(m["text"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(got, texts, "every frame whole, in stream order");
    ws.recv_type("subscribed").await;
    let frames = metric(&base, "chatnode_frames_out_total").await - frames0;
    let writes = metric(&base, "chatnode_socket_writes_total").await - writes0;
    assert!((301..=310).contains(&frames), "{frames} frames");
    // A write carries at most one 64 KiB chunk and the frame that crosses its end, so the
    // burst's bytes need a least number of writes, and no write goes out empty, so there are at
    // most as many writes as frames. How many frames share a write between those bounds depends
    // on how busy the machine is (the writer may catch up with the replay after every frame: 6,
    // 99, 179 and 303 writes for 303 frames were seen here); the load generator measures the
    // ratio under load.
    let text_bytes: usize = texts.iter().map(String::len).sum();
    let least = text_bytes.div_ceil(64 * 1024 + 4 * 1024) as u64;
    assert!(
        (least..=frames).contains(&writes),
        "{frames} frames went out in {writes} writes (at least {least})"
    );
}
