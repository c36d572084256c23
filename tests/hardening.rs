//! Abuse and edge cases of accounts and the HTTP surface, on real Redis: login throttles that
//! hold under races and forged headers without locking the owner out, password hashing that
//! stays within its memory, revocation that reaches every session, and small HTTP guarantees.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use redis::AsyncCommands;
use reqwest::Method;
use serde_json::{json, Value};

/// POST /api/auth/login, optionally with an X-Forwarded-For header; returns the status and body.
async fn login_from(base: &str, user: &str, password: &str, xff: Option<&str>) -> (u16, Value) {
    let mut req = http()
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": user, "password": password}));
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn parallel_wrong_passwords_for_one_user_are_judged_at_most_the_limit() {
    let redis = TestRedis::start().await;
    let s = settings(&redis.url());
    let limit = s.auth.max_failed_logins as usize;
    let node = node(s);
    let base = node.http_url();
    register(&base, "target").await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let base = base.clone();
            tokio::spawn(async move {
                login_from(&base, "target", &format!("wrong-guess-{i}"), None)
                    .await
                    .0
            })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    let judged = codes.iter().filter(|c| **c == 401).count();
    let refused = codes.iter().filter(|c| **c == 429).count();
    assert_eq!(judged + refused, 200, "only 401 or 429: {codes:?}");
    assert!(
        judged <= limit,
        "{judged} passwords checked against a limit of {limit}"
    );
}

/// Resident memory of this process (the node runs in it), in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

#[tokio::test]
async fn parallel_logins_stay_within_the_argon2_memory_budget() {
    const MIB: u64 = 1 << 20;
    // Room for 120 open connections, their buffers and the allocator's own slack.
    const MARGIN: u64 = 48 * MIB;
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    // The production cost, and no throttle in the way: every request is a full verification.
    let defaults = chatnode::Settings::defaults().auth;
    s.auth.argon2_memory_kib = defaults.argon2_memory_kib;
    s.auth.argon2_iterations = defaults.argon2_iterations;
    s.auth.max_failed_logins = 100_000;
    let budget = s.auth.argon2_concurrency as u64 * s.auth.argon2_memory_kib as u64 * 1024;
    let node = node(s);
    let base = node.http_url();
    // Warm up: the dummy hash, the thread pools and the connection pool exist before measuring.
    for _ in 0..2 {
        assert_eq!(
            login_from(&base, "warm-up", "password123", None).await.0,
            401
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_bytes();
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let tasks: Vec<_> = (0..120)
        .map(|i| {
            let base = base.clone();
            tokio::spawn(async move {
                let res = http()
                    .post(format!("{base}/api/auth/login"))
                    .json(&json!({"username": format!("nobody-{i}"), "password": "password123"}))
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let retry = res.headers().get("retry-after").cloned();
                let body: Value = res.json().await.unwrap_or(Value::Null);
                (status, retry, body)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);
    let growth = peak.saturating_sub(before);
    let busy = answers.iter().filter(|(s, _, _)| *s == 503).count();
    eprintln!(
        "RSS before {} MiB, peak +{} MiB, {busy} of 120 answered 503 busy",
        before / MIB,
        growth / MIB
    );
    assert!(
        growth <= budget + MARGIN,
        "RSS grew by {} MiB during the burst; budget {} MiB + margin {} MiB",
        growth / MIB,
        budget / MIB,
        MARGIN / MIB
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_bytes().saturating_sub(before);
    eprintln!("RSS half a second after the burst: +{} MiB", after / MIB);
    assert!(
        after <= MARGIN,
        "RSS stayed {} MiB above where it was before the burst",
        after / MIB
    );
    for (status, retry, body) in &answers {
        match status {
            401 => assert_eq!(body["error"]["code"], "invalid_credentials"),
            503 => {
                assert_eq!(body["error"]["code"], "busy", "{body}");
                assert!(retry.is_some(), "503 busy carries Retry-After");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
}

#[tokio::test]
async fn a_forged_first_forwarded_address_does_not_dodge_the_address_limit() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.auth.max_failed_logins = 3;
    // Compatibility: trust X-Forwarded-For from proxies on loopback and private networks.
    s.http.trust_forwarded_for = true;
    let node = node(s);
    let base = node.http_url();
    let mut codes = Vec::new();
    for i in 0..6 {
        // The client writes the first value; the proxy appends the address it saw.
        let forged = if i % 2 == 0 {
            format!("198.51.100.{i}, 203.0.113.9")
        } else {
            format!("not-an-address-{i}, 203.0.113.9")
        };
        let (status, _) =
            login_from(&base, &format!("someone-{i}"), "password123", Some(&forged)).await;
        codes.push(status);
    }
    assert_eq!(codes, [401, 401, 401, 429, 429, 429]);
    let mut conn = redis.conn().await;
    let counted: Option<u32> = conn.get("loginfail:addr:203.0.113.9").await.unwrap();
    assert_eq!(
        counted,
        Some(3),
        "failures count against the proxy-seen address"
    );
}

#[tokio::test]
async fn only_listed_proxies_name_the_client() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let behind_proxy = node(s);
    let mut s = settings(&redis.url());
    s.http.trust_forwarded_for = false;
    let direct = node(s);
    let conn = redis.conn().await;
    let counted = |addr: &'static str| {
        let key = format!("loginfail:addr:{addr}");
        let mut conn = conn.clone();
        async move { conn.get::<_, Option<u32>>(key).await.unwrap().unwrap_or(0) }
    };
    let base = behind_proxy.http_url();
    login_from(
        &base,
        "user-one",
        "password123",
        Some("198.51.100.1, 203.0.113.50"),
    )
    .await;
    assert_eq!(
        counted("203.0.113.50").await,
        1,
        "right-most untrusted entry"
    );
    assert_eq!(counted("198.51.100.1").await, 0);
    login_from(
        &base,
        "user-two",
        "password123",
        Some("203.0.113.50, bogus"),
    )
    .await;
    assert_eq!(
        counted("127.0.0.1").await,
        1,
        "not an address: the peer is counted"
    );
    login_from(
        &base,
        "user-three",
        "password123",
        Some("::ffff:203.0.113.50"),
    )
    .await;
    assert_eq!(counted("203.0.113.50").await, 2, "IPv4-mapped IPv6 is IPv4");
    let base = direct.http_url();
    login_from(&base, "user-four", "password123", Some("203.0.113.60")).await;
    assert_eq!(
        counted("203.0.113.60").await,
        0,
        "no trusted proxy: the header is ignored"
    );
    assert_eq!(counted("127.0.0.1").await, 2);
}

#[tokio::test]
async fn the_owner_signs_in_while_a_guesser_is_locked_out() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.auth.max_failed_logins = 5;
    s.http.trust_forwarded_for = true;
    let node = node(s);
    let base = node.http_url();
    register(&base, "owner").await;
    let attacker = Some("198.51.100.66");
    for _ in 0..5 {
        assert_eq!(
            login_from(&base, "owner", "guess-guess", attacker).await.0,
            401
        );
    }
    let (status, body) = login_from(&base, "owner", "guess-guess", attacker).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (429, &json!("too_many_attempts"))
    );
    // The owner, from an address that never failed, gets in with the right password.
    let (status, body) = login_from(&base, "owner", "password123", Some("203.0.113.20")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["token"].is_string());
    // A guesser from a fresh address gets one judged try; then the lock holds for it too.
    let other = Some("198.51.100.77");
    assert_eq!(
        login_from(&base, "owner", "guess-again", other).await.0,
        401
    );
    assert_eq!(login_from(&base, "owner", "guess-more", other).await.0, 429);
    assert_eq!(
        login_from(&base, "owner", "password123", attacker).await.0,
        429
    );
}

/// `sessions:{user:<u>}` does not collect the hashes of sessions that expired by themselves: a
/// sign-in drops them.
#[tokio::test]
async fn the_session_index_drops_the_hashes_of_expired_sessions() {
    let redis = TestRedis::start().await;
    let node = node(settings(&redis.url()));
    let base = node.http_url();
    let first = register(&base, "coming-back").await;
    let mut tokens = vec![first];
    for _ in 0..3 {
        let (status, body) = login_from(&base, "coming-back", "password123", None).await;
        assert_eq!(status, 200, "{body}");
        tokens.push(body["token"].as_str().unwrap().to_string());
    }
    let mut conn = redis.conn().await;
    let index = "sessions:{user:coming-back}";
    let hashes: Vec<String> = conn.smembers(index).await.unwrap();
    assert_eq!(hashes.len(), 4, "{hashes:?}");
    // Three of them expire (their keys go, as a TTL would take them).
    for h in &hashes[..3] {
        let _: () = conn
            .del(format!("session:{{user:coming-back}}:{h}"))
            .await
            .unwrap();
    }
    let (status, body) = login_from(&base, "coming-back", "password123", None).await;
    assert_eq!(status, 200, "{body}");
    let mut left: Vec<String> = conn.smembers(index).await.unwrap();
    left.sort();
    let newest = body["token"].as_str().unwrap();
    let mut live = vec![
        hashes[3].clone(),
        chatnode::store::sessions::token_hash(newest),
    ];
    live.sort();
    assert_eq!(left, live, "only the live sessions stay in the index");
    // The one older session left alive still works, the expired ones do not.
    let mut working = 0;
    for t in &tokens {
        if get(&base, "/api/me", t).await.0 == 200 {
            working += 1;
        }
    }
    assert_eq!(working, 1);
    assert_eq!(get(&base, "/api/me", newest).await.0, 200);
}

#[tokio::test]
async fn a_password_change_ends_sessions_older_than_their_index() {
    let redis = TestRedis::start().await;
    let node = node(settings(&redis.url()));
    let base = node.http_url();
    let keep = register(&base, "forgetful").await;
    let (status, body) = login_from(&base, "forgetful", "password123", None).await;
    assert_eq!(status, 200);
    let old = body["token"].as_str().unwrap().to_string();
    let mut live = Ws::connect(&node, Some(&old)).await;
    live.recv_type("authorized").await;
    // The index of the user's sessions expires (its TTL is not slid by use) or is lost.
    let mut conn = redis.conn().await;
    let _: () = conn.del("sessions:{user:forgetful}").await.unwrap();
    let (status, _) = send(
        Method::PUT,
        &base,
        "/api/me/password",
        &keep,
        json!({"current": "password123", "new": "a-new-password"}),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(get(&base, "/api/me", &old).await.0, 401, "HTTP refuses it");
    assert!(
        live.recv_close(Duration::from_secs(10)).await.is_some(),
        "its open socket closes"
    );
    let mut fresh = Ws::connect(&node, None).await;
    fresh
        .send(json!({"type": "auth", "auth": {"token": old}}))
        .await;
    let v = fresh.recv_type("error").await;
    assert_eq!(v["error"]["code"], "unauthorized", "a socket refuses it");
    assert_eq!(
        get(&base, "/api/me", &keep).await.0,
        200,
        "the changing one stays"
    );
}

#[tokio::test]
async fn head_of_the_root_answers_like_get_without_a_body() {
    let redis = TestRedis::start().await;
    let node = node(settings(&redis.url()));
    let base = node.http_url();
    let got = http().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(got.status(), 200);
    let get_type = got.headers()["content-type"].clone();
    let get_len = got.bytes().await.unwrap().len();
    let head = http().head(format!("{base}/")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], get_type);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        get_len.to_string()
    );
    assert!(head.headers().contains_key("content-security-policy"));
    assert!(head.bytes().await.unwrap().is_empty(), "no body");
}

#[tokio::test]
async fn metrics_can_move_to_a_listener_of_their_own() {
    let redis = TestRedis::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = settings(&redis.url());
    s.http.metrics_port = port;
    let separate = node(s);
    let res = http()
        .get(format!("{}/metrics", separate.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "the main port no longer serves /metrics");
    let text = metrics_text(&format!("http://127.0.0.1:{port}")).await;
    assert!(
        text.contains("# TYPE chatnode_ws_connections gauge"),
        "{text}"
    );
    let res = http()
        .get(format!("http://127.0.0.1:{port}/api/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "the metrics port serves nothing else");
    let shared = node(settings(&redis.url()));
    let text = metrics_text(&shared.http_url()).await;
    assert!(
        text.contains("# TYPE chatnode_ws_connections gauge"),
        "port 0: on the main port"
    );
}

/// Opens /ws with a token and, optionally, an `Origin` header: `Ok` when the upgrade succeeds,
/// else the HTTP status it was refused with.
async fn upgrade_from(
    node: &chatnode::NodeHandle,
    token: &str,
    origin: Option<&str>,
) -> Result<(), u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("{}?token={token}", node.ws_url())
        .into_client_request()
        .unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(e) => panic!("the upgrade failed otherwise: {e}"),
    }
}

#[tokio::test]
async fn a_socket_opens_only_from_its_own_origin_a_listed_one_or_none() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.http.allowed_origins = vec!["https://chat.example.com".into()];
    let node = node(s);
    let base = node.http_url();
    let token = register(&base, "olga").await;
    // Not a browser: no Origin at all.
    assert_eq!(upgrade_from(&node, &token, None).await, Ok(()));
    // The node's own page, and a listed one (case and a trailing slash do not matter).
    assert_eq!(upgrade_from(&node, &token, Some(&base)).await, Ok(()));
    assert_eq!(
        upgrade_from(&node, &token, Some("https://Chat.Example.com/")).await,
        Ok(())
    );
    // Another site, another port of the same host, the listed host over plain http.
    for origin in [
        "https://evil.example",
        "http://127.0.0.1:1",
        "http://chat.example.com",
        "null",
    ] {
        assert_eq!(
            upgrade_from(&node, &token, Some(origin)).await,
            Err(403),
            "{origin}"
        );
    }
    // The refusals touched nothing: a socket from the node's own page signs in and posts.
    create_channel(&base, &token, "origins").await;
    let mut ws = Ws::subscribed(&node, &token, &["origins"]).await;
    ws.send(json!({"type": "post", "post": {"channel": "origins", "text": "still here"}}))
        .await;
    let posted = ws.recv_type("posted").await;
    assert_eq!(posted["posted"]["channel"], "origins");
}

/// A client that stops reading and asks for page after page of long messages: each page is
/// hundreds of KiB, far fewer than the queue's 1,024 frames. The node takes pages while the
/// socket's queue is under `ws.outbound_queue_bytes`, then closes it with 1013; it never holds
/// the dozens of MiB asked for.
#[tokio::test]
async fn a_client_that_stops_reading_is_closed_by_the_byte_bound_of_its_queue() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.ws.rate_limit_messages = 10_000;
    s.ws.max_inflight_per_socket = 1_000;
    let frames_bound = s.ws.outbound_queue;
    let n = node(s);
    let base = n.http_url();
    let token = register(&base, "pager").await;
    create_channel(&base, &token, "archive").await;
    let text = "\u{1}".repeat(4000); // escaped as \u0001: 24,000 bytes a message
    for _ in 0..50 {
        let (status, _) = post(
            &base,
            "/api/channels/archive/messages",
            &token,
            json!({"text": text}),
        )
        .await;
        assert_eq!(status, 201);
    }
    let mut ws = Ws::connect_with_receive_buffer(&n, &token, 16 * 1024).await;
    ws.recv_type("authorized").await;
    // About 1.2 MB a page; 200 pages would be 240 MB, in 200 frames.
    let pages = 200;
    assert!(pages < frames_bound);
    for _ in 0..pages {
        ws.send(json!({"type": "history", "history": {"channel": "archive", "limit": 50}}))
            .await;
    }
    let mut closed_by_bytes = 0;
    for _ in 0..100 {
        closed_by_bytes = metric(&base, "chatnode_slow_client_closes_bytes_total").await;
        if closed_by_bytes > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        closed_by_bytes, 1,
        "the socket was not closed for its bytes"
    );
    let mut received = 0;
    let code = loop {
        match ws.inner.next().await {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(_))) => received += 1,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(c))) => {
                break c.map(|c| u16::from(c.code))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("the socket failed: {e}"),
            None => break None,
        }
    };
    assert_eq!(code, Some(1013));
    assert!(
        received < pages / 4,
        "{received} of {pages} pages were sent"
    );
    // The owner is unaffected: a new socket reads the channel.
    let mut again = Ws::subscribed(&n, &token, &["archive"]).await;
    again
        .send(json!({"type": "history", "history": {"channel": "archive", "limit": 1}}))
        .await;
    let page = again.recv_type("history").await;
    assert_eq!(page["history"]["messages"].as_array().unwrap().len(), 1);
}

/// An `internal` answer always leaves its cause in the node's log, at error level and once: a
/// `500` over REST and an `error` frame with `internal` on a socket alike (the client is told
/// only "internal error"). Redis is made to refuse the command history pages read (an ACL
/// without XREVRANGE), as it refuses a command it cannot run.
#[tokio::test]
async fn an_internal_error_logs_its_cause_once_over_rest_and_over_a_socket() {
    let log = CapturedLog::start();
    let redis = TestRedis::start().await;
    let n = node(settings(&redis.url()));
    let base = n.http_url();
    let t = register(&base, "logged").await;
    create_channel(&base, &t, "logs").await;
    let mut ws = Ws::signed_in(&n, &t).await;
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "default", "-xrevrange"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let causes = || {
        log.lines()
            .into_iter()
            .filter(|l| l.contains("xrevrange"))
            .collect::<Vec<_>>()
    };

    let (s, v) = get(&base, "/api/channels/logs/messages", &t).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (500, json!("internal")),
        "{v}"
    );
    assert!(
        !v.to_string().contains("xrevrange"),
        "the cause stays in the log: {v}"
    );
    let lines = causes();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("ERROR "), "{lines:?}");

    ws.send(json!({"type": "history", "history": {"channel": "logs"}}))
        .await;
    let e = ws.recv_type("error").await;
    assert_eq!(e["error"]["code"], "internal", "{e}");
    assert!(!e.to_string().contains("xrevrange"), "{e}");
    let lines = causes();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[1].starts_with("ERROR ") && lines[1].contains("`history` frame failed"),
        "{lines:?}"
    );

    // Once Redis runs the command again, so do both.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "default", "+xrevrange"])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(get(&base, "/api/channels/logs/messages", &t).await.0, 200);
    ws.send(json!({"type": "history", "history": {"channel": "logs"}}))
        .await;
    assert_eq!(ws.recv_type("history").await["type"], "history");
    assert_eq!(causes().len(), 2);
}
