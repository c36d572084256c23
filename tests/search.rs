//! Search and insights on RediSearch 1.x (Debian's module) and 2.x (Valkey + the 2.10 module):
//! seed 003's loader database served as it is, its documented queries, hostile input, privacy,
//! mentions across nodes, activity, recent messages and top posters.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn usernames(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

async fn seed_003_queries_through_the_api(redis: TestRedis, expect: &str) {
    seed_003_loader(&redis).await;
    let n = node(settings(&redis.url()));
    let base = n.http_url();
    let v = readyz(&base).await;
    assert!(v["search"].as_str().unwrap().starts_with(expect), "{v}");
    // The loader's hashes are indexed by the start-up backfill (RediSearch 1.x), which runs in
    // the background: search finds them once it is done.
    let done = eventually(Duration::from_secs(10), || async {
        (readyz(&base).await["search_backfill"] == "done").then_some(())
    })
    .await;
    assert!(done.is_some(), "the backfill ends");
    let t = register(&base, "viewer").await;

    let (s, v) = get(
        &base,
        "/api/search/messages?channel=cricket,tech&username=wasim",
        &t,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["total"], 2, "{v}");
    let (_, v) = get(&base, "/api/users?country=england", &t).await;
    assert_eq!(usernames(&v), ["ada", "simon"]);
    let (_, v) = get(&base, "/api/users?q=Simon%7CWasim", &t).await;
    assert_eq!(
        usernames(&v),
        ["simon", "wasim"],
        "first name Simon or Wasim"
    );
    let (_, v) = get(&base, "/api/users?q=Simon&city=Nottingham", &t).await;
    assert_eq!(usernames(&v), ["simon"], "seed 003's own check");
    let (_, v) = get(&base, "/api/search/messages?q=match", &t).await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["messages"][0]["id"], "1631623305083-0");
    assert_eq!(v["messages"][0]["username"], "wasim");
    let (_, v) = get(&base, "/api/search/messages?q=sunny", &t).await;
    assert_eq!(
        v["messages"][0]["text"],
        "Warm and sunny here in California today, what's it like where you are?"
    );
    let (_, v) = get(&base, "/api/search?q=wasim", &t).await;
    assert_eq!(usernames(&v), ["wasim"]);

    // The loader's streams hold only `type`; history comes from the message hashes.
    let (_, page) = get(&base, "/api/channels/cricket/messages", &t).await;
    let texts: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "Did you see the test match this weekend?",
            "Yes, some incredible batting there.",
            "Fantastic catch to win the game too."
        ]
    );
    let (_, top) = get(&base, "/api/stats/top-posters?channel=cricket", &t).await;
    assert_eq!(top["posters"].as_array().unwrap().len(), 3, "{top}");
    let (_, top) = get(&base, "/api/stats/top-posters", &t).await;
    assert_eq!(
        top["posters"][0],
        json!({"username": "wasim", "count": 2}),
        "{top}"
    );

    // New messages are searchable too.
    join(&base, &t, "tech").await;
    post_message(&base, &t, "tech", "Valkey keyspace tricks").await;
    let found = eventually(Duration::from_secs(5), || async {
        let (_, v) = get(&base, "/api/search/messages?q=keyspace", &t).await;
        (v["total"] == 1).then_some(v)
    })
    .await;
    assert!(found.is_some(), "a new message is found");

    for hostile in [
        "%40channel%3A%7Bcricket%7D",
        "*",
        "%22%27%28%29",
        "-match",
        "match%7C%7C",
        "%7D%7B",
        "~%25",
        "%5C",
    ] {
        let (s, v) = get(&base, &format!("/api/search/messages?q={hostile}"), &t).await;
        assert_eq!(s, 200, "{hostile}: {v}");
        assert!(
            v["total"].as_u64().unwrap() <= 1,
            "{hostile} must not widen the search: {v}"
        );
    }
    // Values the module's query parser refuses (RediSearch 1.x: a stopword or a one-letter word
    // as a whole tag value, a NUL anywhere) find nothing: never `500 internal`.
    for hostile in [
        "/api/users?city=the",
        "/api/users?city=a",
        "/api/users?country=a",
        "/api/users?hobby=the",
        "/api/users?q=a%00b",
        "/api/users?city=a%00b",
        "/api/search?q=a%00b",
        "/api/search/messages?q=match&username=the",
        "/api/search/messages?q=match&username=a",
        "/api/search/messages?q=match&username=a%00b",
        "/api/search/messages?q=ma%00tch",
        // Found by the fuzzer: RediSearch 1.x answers these with an error text that is not
        // UTF-8, which the Redis client cannot read (and the connection is lost with it).
        "/api/users?hobby=dm%3A%2D%40%00%40%7D%24%28%24%28dm%3A%40dm%3A&country=dm%3A%2D%40%00%40%7D%24%28%24%28dm%3A%40dm%3A",
        "/api/search?q=%E6%97%A5%E6%9C%AC%2D%24%28%00%E6%97%A5%E6%9C%AC",
    ] {
        let (s, v) = get(&base, hostile, &t).await;
        assert_eq!(s, 200, "{hostile}: {v}");
        // `/api/search` answers users and messages, the others a page with its `total`.
        let found = v["total"].as_u64().unwrap_or_else(|| {
            (v["users"].as_array().unwrap().len() + v["messages"].as_array().unwrap().len()) as u64
        });
        assert!(found <= 1, "{hostile} must not widen the search: {v}");
    }
    // And search goes on as before.
    let (s, v) = get(&base, "/api/search/messages?q=match", &t).await;
    assert_eq!((s, v["total"].clone()), (200, json!(1)), "{v}");
}

#[tokio::test]
async fn seed_003_database_on_redisearch_1() {
    seed_003_queries_through_the_api(TestRedis::start().await, "redisearch 1.").await;
}

#[tokio::test]
async fn seed_003_database_on_redisearch_2() {
    seed_003_queries_through_the_api(TestRedis::start_search2().await, "redisearch 2.").await;
}

async fn privacy_mentions_and_insights(redis: TestRedis) {
    privacy_mentions_and_insights_on(common::cluster::Backend::One(redis)).await;
}

async fn privacy_mentions_and_insights_on(backend: common::cluster::Backend) {
    let a = node(backend.settings());
    let b = node(backend.settings());
    let ta = register(&a.http_url(), "amy").await;
    let tb = register(&b.http_url(), "ben").await;
    let tc = register(&a.http_url(), "cat").await;
    let (_, dm) = post(&a.http_url(), "/api/dms", &ta, json!({"username": "ben"})).await;
    let dm = dm["channel"].as_str().unwrap().to_string();
    post(
        &a.http_url(),
        &format!("/api/channels/{dm}/messages"),
        &ta,
        json!({"text": "secret plans for @cat"}),
    )
    .await;
    for t in [&ta, &tb, &tc] {
        join(&a.http_url(), t, "general").await;
    }
    let mut wb = Ws::signed_in(&b, &tb).await;
    post_message(
        &a.http_url(),
        &ta,
        "general",
        "public plans, @Ben take a look",
    )
    .await;
    let m = wb.recv_type("mention").await;
    assert_eq!(m["mention"]["channel"], "general");
    assert_eq!(m["mention"]["username"], "amy");
    let (_, list) = get(&b.http_url(), "/api/mentions", &tb).await;
    assert_eq!(list["mentions"].as_array().unwrap().len(), 1);
    let (_, list) = get(&a.http_url(), "/api/mentions", &tc).await;
    assert_eq!(
        list["mentions"],
        json!([]),
        "a DM cat is not in does not mention cat"
    );

    let search = |base: String, t: String, q: &'static str| async move {
        get(&base, &format!("/api/search/messages?q={q}"), &t).await
    };
    let found = eventually(Duration::from_secs(5), || {
        let (base, t) = (a.http_url(), ta.clone());
        async move {
            let (_, v) = search(base, t, "plans").await;
            (v["total"] == 2).then_some(())
        }
    })
    .await;
    assert!(found.is_some(), "amy finds both");
    let (_, v) = search(a.http_url(), tc.clone(), "plans").await;
    assert_eq!(v["total"], 1, "cat finds only the public one: {v}");
    assert_eq!(v["messages"][0]["channel"], "general");
    let (_, v) = search(a.http_url(), tc.clone(), "secret").await;
    assert_eq!(v["total"], 0, "not found, not counted");
    let (s, _) = get(
        &a.http_url(),
        &format!("/api/search/messages?q=secret&channel={dm}"),
        &tc,
    )
    .await;
    assert_eq!(s, 403);
    let (_, v) = get(&a.http_url(), "/api/search?q=secret", &tc).await;
    assert_eq!(v["messages"], json!([]));
    for path in [
        format!("/api/channels/{dm}/active"),
        format!("/api/messages/recent?channels={dm}"),
        format!("/api/stats/top-posters?channel={dm}"),
    ] {
        assert_eq!(get(&a.http_url(), &path, &tc).await.0, 403, "{path}");
        assert_eq!(get(&a.http_url(), &path, &ta).await.0, 200, "{path}");
    }

    let (_, act) = get(&a.http_url(), "/api/channels/general/active?minutes=5", &tc).await;
    let names: Vec<&str> = act["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "amy", "the last poster first: {names:?}");
    assert!(
        names.contains(&"ben") && names.contains(&"cat"),
        "joins count as activity"
    );
    let (_, recent) = get(
        &a.http_url(),
        "/api/messages/recent?minutes=5&channels=general",
        &tc,
    )
    .await;
    assert_eq!(recent["messages"].as_array().unwrap().len(), 1);
    let (_, recent) = get(&a.http_url(), "/api/messages/recent?minutes=5", &ta).await;
    assert_eq!(
        recent["messages"].as_array().unwrap().len(),
        2,
        "amy's channels, DM included"
    );
    let (_, top) = get(&a.http_url(), "/api/stats/top-posters", &tc).await;
    assert_eq!(
        top["posters"],
        json!([{"username": "amy", "count": 1}]),
        "DMs are not counted"
    );
}

#[tokio::test]
async fn privacy_mentions_and_insights_on_redisearch_1() {
    privacy_mentions_and_insights(TestRedis::start().await).await;
}

/// The same on three masters: each holds the index of its own messages, search asks them all.
#[tokio::test]
async fn privacy_mentions_and_insights_on_a_cluster() {
    privacy_mentions_and_insights_on(common::cluster::Backend::cluster().await).await;
}

#[tokio::test]
async fn privacy_mentions_and_insights_on_redisearch_2() {
    privacy_mentions_and_insights(TestRedis::start_search2().await).await;
}

#[tokio::test]
async fn search_without_the_module_answers_503() {
    let redis = TestRedis::start_plain().await;
    let n = node(settings(&redis.url()));
    let t = register(&n.http_url(), "plain").await;
    for path in [
        "/api/search/messages?q=x",
        "/api/search?q=x",
        "/api/stats/top-posters",
    ] {
        let (s, v) = get(&n.http_url(), path, &t).await;
        assert_eq!(
            (s, v["error"]["code"].clone()),
            (503, json!("search_unavailable")),
            "{path}"
        );
    }
    assert_eq!(
        get(&n.http_url(), "/api/messages/recent", &t).await.0,
        200,
        "the rest works"
    );
}

#[tokio::test]
async fn load_demo_is_idempotent_and_searchable() {
    let redis = TestRedis::start().await;
    let bin = env!("CARGO_BIN_EXE_chatnode");
    for round in 0..2 {
        let out = std::process::Command::new(bin)
            .arg("load-demo")
            .env("CHATNODE__REDIS__URL", redis.url())
            .env("CHATNODE__AUTH__ARGON2_MEMORY_KIB", "1024")
            .env("CHATNODE__AUTH__ARGON2_ITERATIONS", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        if round == 0 {
            assert!(text.contains("10 new users, 6 new messages"), "{text}");
        } else {
            assert!(text.contains("0 new users, 0 new messages"), "{text}");
        }
    }
    let n = node(settings(&redis.url()));
    let (status, t) = login(&n.http_url(), "pablo", "password123").await;
    assert_eq!(status, 200);
    let t = t.unwrap();
    let (_, v) = get(
        &n.http_url(),
        "/api/search/messages?channel=cricket,tech&username=wasim",
        &t,
    )
    .await;
    assert_eq!(v["total"], 2, "{v}");
    let (_, page) = get(&n.http_url(), "/api/channels/cricket/messages", &t).await;
    assert_eq!(page["messages"][0]["id"], "1631623305083-0");
}
