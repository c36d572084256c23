//! Paging `GET /api/mentions` on real Redis and real nodes: exact pages when many mentions share
//! one millisecond, through posts and through the mention recorder itself.

mod common;

use std::sync::Arc;

use chatnode::protocol::ChatEvent;
use chatnode::store::Store;
use common::*;
use serde_json::{json, Value};

/// Every mention of the caller, paged with `limit`, following `next_before`; also checks that
/// paging with the last mention's `id` gives the same pages.
async fn all_pages(base: &str, token: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut before: Option<String> = None;
    for _ in 0..1000 {
        let path = match &before {
            Some(b) => format!("/api/mentions?limit={limit}&before={b}"),
            None => format!("/api/mentions?limit={limit}"),
        };
        let (status, v) = get(base, &path, token).await;
        assert_eq!(status, 200, "{v}");
        let page: Vec<String> = v["mentions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        assert!(page.len() <= limit);
        ids.extend(page.iter().cloned());
        // A mention is named by its channel and ID (IDs are unique within a channel).
        let last = v["mentions"].as_array().unwrap().last().map(|m| {
            format!(
                "{}/{}",
                m["channel"].as_str().unwrap(),
                m["id"].as_str().unwrap()
            )
        });
        match v["next_before"].as_str() {
            Some(next) => {
                assert_eq!(page.len(), limit, "only a full page has a next one");
                assert_eq!(Some(next), last.as_deref());
                before = Some(next.to_string());
            }
            None => return ids,
        }
    }
    panic!("paging never ended: {ids:?}");
}

fn id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap();
    (ms.parse().unwrap(), seq.parse().unwrap())
}

/// IDs sorted newest first, as the pages should list them.
fn newest_first(mut ids: Vec<String>) -> Vec<String> {
    ids.sort_by_key(|id| std::cmp::Reverse(id_key(id)));
    ids
}

#[tokio::test]
async fn forty_mentions_in_one_millisecond_page_exactly() {
    let redis = TestRedis::start().await;
    let s = settings(&redis.url());
    let n = node(s.clone());
    let base = n.http_url();
    let author = register(&base, "shouter").await;
    let tm = register(&base, "listener").await;
    for t in [&author, &tm] {
        join(&base, t, "general").await;
    }
    // Mentions posted before and after, through the real post path.
    let mut expected = Vec::new();
    let (status, v) = post(
        &base,
        "/api/channels/general/messages",
        &author,
        json!({"text": "early @listener"}),
    )
    .await;
    assert_eq!(status, 201);
    let early_ms = v["message"]["created_at"].as_i64().unwrap();
    expected.push(v["message"]["id"].as_str().unwrap().to_string());

    // Forty messages of one millisecond (IDs 0 to 39, as one stream gives within a
    // millisecond), stored as seed 003's loader stores messages, each recorded by chatnode's
    // mention recorder: forty equal scores, whose member order (…-1, …-10, …-11, …, …-2, …)
    // differs from ID order.
    let ms: i64 = early_ms + 1;
    let store = Store::connect(&redis.url(), Arc::new(s)).await.unwrap();
    let mut conn = redis.conn().await;
    for seq in 0..40 {
        let id = format!("{ms}-{seq}");
        let text = format!("tied {seq} @listener");
        let _: () = redis::cmd("HSET")
            .arg(format!("message:{id}"))
            .arg("channel")
            .arg("general")
            .arg("username")
            .arg("shouter")
            .arg("message")
            .arg(&text)
            .arg("type")
            .arg("message")
            .arg("created_at")
            .arg(ms)
            .query_async(&mut conn)
            .await
            .unwrap();
        let ev = ChatEvent {
            id: id.clone(),
            channel: "general".into(),
            kind: "message".into(),
            username: "shouter".into(),
            text,
            created_at: ms,
            uuid: String::new(),
            voice: None,
            ..Default::default()
        };
        store.record_mentions(&ev).await.unwrap();
        expected.push(id);
    }
    let scores: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg("mentions:{user:listener}")
        .arg(ms)
        .arg(ms)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(scores.len(), 40, "forty mentions share the millisecond");
    // The next post lands in a later millisecond.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, v) = post(
        &base,
        "/api/channels/general/messages",
        &author,
        json!({"text": "late @listener"}),
    )
    .await;
    assert_eq!(status, 201);
    expected.push(v["message"]["id"].as_str().unwrap().to_string());
    let expected = newest_first(expected);
    assert_eq!(expected.len(), 42);

    // Every page size, including ones that cut the millisecond anywhere.
    for limit in [1, 3, 7, 10, 39, 40, 41, 100] {
        assert_eq!(
            all_pages(&base, &tm, limit).await,
            expected,
            "pages of {limit}"
        );
    }
    // A page starting inside the millisecond.
    let (_, v) = get(&base, &format!("/api/mentions?limit=5&before={ms}-12"), &tm).await;
    let ids: Vec<&str> = v["mentions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (7..12).rev().map(|s| format!("{ms}-{s}")).collect();
    assert_eq!(ids, want);
    assert_eq!(v["mentions"][0]["text"], "tied 11 @listener");
    // Unix ms still works as a cursor: everything before that millisecond.
    let (_, v) = get(&base, &format!("/api/mentions?before={ms}"), &tm).await;
    assert_eq!(v["mentions"].as_array().unwrap().len(), 1);
    assert_eq!(v["mentions"][0]["text"], "early @listener");
    assert_eq!(v["next_before"], Value::Null);
    // Bad cursors are refused, an empty one is ignored.
    for bad in ["soon", "12-x", "-5"] {
        let (status, v) = get(&base, &format!("/api/mentions?before={bad}"), &tm).await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (400, Some("invalid_body")),
            "{bad}"
        );
    }
    let (status, v) = get(&base, "/api/mentions?before=&limit=2", &tm).await;
    assert_eq!(status, 200);
    assert_eq!(v["mentions"][0]["id"], expected[0].as_str());
}

#[tokio::test]
async fn mentions_posted_at_once_from_many_sockets_page_exactly() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.ws.rate_limit_messages = 1000;
    let a = node(s.clone());
    let b = node(s);
    let tm = register(&a.http_url(), "popular").await;
    join(&a.http_url(), &tm, "general").await;
    // Four authors on two nodes post at the same time, so mentions crowd into few milliseconds.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let n = if w % 2 == 0 { &a } else { &b };
        let t = register(&n.http_url(), &format!("fan{w}")).await;
        join(&n.http_url(), &t, "general").await;
        let mut ws = Ws::connect(n, Some(&t)).await;
        tasks.push(tokio::spawn(async move {
            for i in 0..15 {
                ws.send(json!({"type": "post", "post": {"channel": "general", "text": format!("@popular {w}.{i}")}}))
                    .await;
            }
            let mut ids = Vec::new();
            while ids.len() < 15 {
                let v = ws.recv().await;
                assert_ne!(v["type"], "error", "{v}");
                if v["type"] == "posted" {
                    ids.push(v["posted"]["id"].as_str().unwrap().to_string());
                }
            }
            ids
        }));
    }
    let mut expected = Vec::new();
    for t in tasks {
        expected.extend(t.await.unwrap());
    }
    let expected = newest_first(expected);
    assert_eq!(expected.len(), 60);
    for limit in [1, 4, 7, 60, 100] {
        assert_eq!(
            all_pages(&a.http_url(), &tm, limit).await,
            expected,
            "pages of {limit}"
        );
    }
}
