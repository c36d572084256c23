//! Accounts, sessions, profiles and the user directory, on real Redis.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn register_login_me_and_errors() {
    let redis = TestRedis::start().await;
    let node = node(settings(&redis.url()));
    let base = node.http_url();
    let c = http();
    let res = c
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"username": "Ada.L", "password": "analytical", "firstname": "Ada", "city": "London"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let cookie = res
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("chatnode_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["user"]["username"], "ada.l", "stored lowercase");
    assert!(v["user"].get("password_hash").is_none());
    let token = v["token"].as_str().unwrap();
    let (random, user) = token.split_once('.').unwrap();
    assert_eq!(random.len(), 43, "256-bit token, base64url: {token}");
    assert_eq!(user, "ada.l", "the token names its user: {token}");

    // The cookie alone authenticates.
    let me: Value = c
        .get(format!("{base}/api/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["firstname"], "Ada");

    for (body, code, status) in [
        (
            json!({"username": "ADA.l", "password": "analytical"}),
            "username_taken",
            409,
        ),
        (
            json!({"username": "a", "password": "analytical"}),
            "invalid_username",
            400,
        ),
        (
            json!({"username": "has space", "password": "analytical"}),
            "invalid_username",
            400,
        ),
        (
            json!({"username": "shorty", "password": "short"}),
            "weak_password",
            400,
        ),
        (
            json!({"username": "extra", "password": "analytical", "admin": true}),
            "invalid_body",
            400,
        ),
        (
            json!({"username": "typed", "password": 12345678}),
            "invalid_body",
            400,
        ),
        (
            json!({"username": "geo", "password": "analytical", "location": {"lat": 91, "lon": 0}}),
            "invalid_body",
            400,
        ),
    ] {
        let res = http()
            .post(format!("{base}/api/auth/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), status, "{body}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{body}");
    }

    let res = http()
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": "ADA.L", "password": "analytical"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    for body in [
        json!({"username": "ada.l", "password": "wrong-password"}),
        json!({"username": "nobody", "password": "analytical"}),
    ] {
        let res = http()
            .post(format!("{base}/api/auth/login"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_credentials");
        assert_eq!(
            v["error"]["message"], "wrong username or password",
            "same answer for both"
        );
    }

    let (s, v) = get(&base, "/api/usernames/ada.l", &token).await;
    assert_eq!((s, v["available"].clone()), (200, json!(false)));
    let (s, v) = get(&base, "/api/usernames/Free_Name", &token).await;
    assert_eq!(
        (s, v["available"].clone(), v["username"].clone()),
        (200, json!(true), json!("free_name"))
    );
    let (s, v) = get(&base, "/api/usernames/x", &token).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (400, json!("invalid_username"))
    );

    let (s, v) = get(&base, "/api/users/ada.l", &token).await;
    assert_eq!(s, 200);
    assert_eq!(v["city"], "London");
    assert!(v.get("password_hash").is_none());
    let (s, v) = get(&base, "/api/users/ghost", &token).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (404, json!("user_not_found"))
    );
    let (s, _) = get(&base, "/api/me", "not-a-token").await;
    assert_eq!(s, 401);

    let (s, v) = send(
        Method::PATCH,
        &base,
        "/api/me",
        &token,
        json!({"city": "Paris", "hobbies": ["Maths", "poetry"]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["city"], "Paris");
    assert_eq!(v["hobbies"], json!(["maths", "poetry"]));
    let (s, v) = send(
        Method::PATCH,
        &base,
        "/api/me",
        &token,
        json!({"password_hash": "x"}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (400, json!("invalid_body"))
    );
}

#[tokio::test]
async fn logout_and_password_change_revoke_tokens_on_every_node() {
    let redis = TestRedis::start().await;
    let a = node(settings(&redis.url()));
    let b = node(settings(&redis.url()));
    let t1 = register(&a.http_url(), "revoker").await;
    let (s, _) = get(&b.http_url(), "/api/me", &t1).await;
    assert_eq!(s, 200, "a token works on every node");
    let (s, _) = post(&a.http_url(), "/api/auth/logout", &t1, json!({})).await;
    assert_eq!(s, 204);
    let (s, _) = get(&b.http_url(), "/api/me", &t1).await;
    assert_eq!(s, 401, "logged out on node a, refused on node b");

    let (_, keep) = login(&a.http_url(), "revoker", "password123").await;
    let (_, other) = login(&b.http_url(), "revoker", "password123").await;
    let (keep, other) = (keep.unwrap(), other.unwrap());
    // A socket signed in with the other token is closed when that session ends.
    let mut ws = Ws::signed_in(&b, &other).await;
    let (s, v) = send(
        Method::PUT,
        &a.http_url(),
        "/api/me/password",
        &keep,
        json!({"current": "wrong-one", "new": "brand-new-pw"}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (401, json!("invalid_credentials"))
    );
    let (s, _) = send(
        Method::PUT,
        &a.http_url(),
        "/api/me/password",
        &keep,
        json!({"current": "password123", "new": "brand-new-pw"}),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        get(&b.http_url(), "/api/me", &other).await.0,
        401,
        "other sessions end"
    );
    assert_eq!(
        get(&b.http_url(), "/api/me", &keep).await.0,
        200,
        "the changing session stays"
    );
    assert!(
        ws.recv_close(Duration::from_secs(10)).await.is_some(),
        "its socket closes"
    );
    assert_eq!(login(&a.http_url(), "revoker", "password123").await.0, 401);
    assert_eq!(login(&a.http_url(), "revoker", "brand-new-pw").await.0, 200);
}

#[tokio::test]
async fn concurrent_registrations_of_one_name_have_one_winner() {
    let redis = TestRedis::start().await;
    let node = node(settings(&redis.url()));
    let base = node.http_url();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            http()
                .post(format!("{base}/api/auth/register"))
                .json(&json!({"username": "racer", "password": format!("password-{i}")}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 7, "{codes:?}");
}

#[tokio::test]
async fn failed_logins_are_throttled() {
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.auth.max_failed_logins = 3;
    let node = node(s);
    let base = node.http_url();
    register(&base, "target").await;
    for _ in 0..3 {
        let res = http()
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"username": "target", "password": "guess-guess"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let res = http()
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": "target", "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429, "even the right password waits");
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 300);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "too_many_attempts");
}

#[tokio::test]
async fn user_search_by_name_city_country_hobby_and_distance() {
    let redis = TestRedis::start().await;
    let node = node(settings(&redis.url()));
    let base = node.http_url();
    let t = register_with(&base, json!({"username": "simon", "password": "password123", "firstname": "Simon", "lastname": "Prickett", "city": "Nottingham", "country": "England", "hobbies": ["cricket", "redis"], "location": {"lat": 52.95, "lon": -1.15}})).await;
    register_with(&base, json!({"username": "ada", "password": "password123", "firstname": "Ada", "lastname": "Lovelace", "city": "Ravenshead", "country": "England", "hobbies": ["maths"], "location": {"lat": 53.08, "lon": -1.17}})).await;
    register_with(&base, json!({"username": "wasim", "password": "password123", "firstname": "Wasim", "lastname": "Akram", "city": "Lahore", "country": "Pakistan", "hobbies": ["cricket"], "location": {"lat": 31.55, "lon": 74.34}})).await;
    register_with(&base, json!({"username": "woz", "password": "password123", "firstname": "Steve", "lastname": "Wozniak", "city": "Cupertino", "country": "United States"})).await;

    let names = |v: &Value| {
        let mut n: Vec<String> = v["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    let (s, v) = get(&base, "/api/users?country=england", &t).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(names(&v), ["ada", "simon"]);
    assert_eq!(v["total"], 2);
    let (_, v) = get(&base, "/api/users?city=NOTTINGHAM", &t).await;
    assert_eq!(names(&v), ["simon"], "tags are case-insensitive");
    let (_, v) = get(&base, "/api/users?country=United%20States", &t).await;
    assert_eq!(names(&v), ["woz"], "spaces in tags are escaped");
    let (_, v) = get(&base, "/api/users?hobby=cricket", &t).await;
    assert_eq!(names(&v), ["simon", "wasim"]);
    let (_, v) = get(&base, "/api/users?q=Simon", &t).await;
    assert_eq!(names(&v), ["simon"]);
    let (_, v) = get(&base, "/api/users?q=wozn", &t).await;
    assert_eq!(names(&v), ["woz"], "prefix of a last name");
    let (_, v) = get(&base, "/api/users?near=52.95,-1.15&radius_km=30", &t).await;
    assert_eq!(names(&v), ["ada", "simon"]);
    let (_, v) = get(&base, "/api/users?near=52.95,-1.15&radius_km=5", &t).await;
    assert_eq!(names(&v), ["simon"]);
    let (_, v) = get(&base, "/api/users?limit=2&offset=0", &t).await;
    assert_eq!(v["total"], 4);
    assert_eq!(v["users"].as_array().unwrap().len(), 2);
    for hostile in [
        "%40city%3A%7BLahore%7D",
        "*",
        "%22%27%28%29",
        "-",
        "a%7Cb",
        "%7D%7B%40",
        "~%25",
    ] {
        let (s, v) = get(&base, &format!("/api/users?q={hostile}"), &t).await;
        assert_eq!(s, 200, "{hostile}: {v}");
        assert_eq!(v["total"], 0, "{hostile} must not widen the search: {v}");
        let (s, v) = get(&base, &format!("/api/users?city={hostile}"), &t).await;
        assert_eq!(s, 200, "{hostile}: {v}");
        assert_eq!(
            (v["total"].clone(), v["users"].clone()),
            (json!(0), json!([])),
            "city={hostile} matches no city: {v}"
        );
    }
    let (s, v) = get(&base, "/api/users?near=abc", &t).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (400, json!("invalid_body"))
    );
    // No answer carries a password hash.
    let (_, v) = get(&base, "/api/users?limit=10", &t).await;
    let users = v["users"].as_array().unwrap();
    assert_eq!(users.len(), 4, "{v}");
    for u in users {
        assert!(u.get("password_hash").is_none(), "{u}");
        assert!(!u.to_string().contains("argon2"), "{u}");
    }
}

#[tokio::test]
async fn user_search_without_module_is_503_and_the_rest_works() {
    let redis = TestRedis::start_plain().await;
    let node = node(settings(&redis.url()));
    let base = node.http_url();
    let t = register(&base, "plainuser").await;
    let (s, v) = get(&base, "/api/users?q=x", &t).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (503, json!("search_unavailable"))
    );
    assert_eq!(get(&base, "/api/me", &t).await.0, 200);
}

/// Every value of a key, read by its type, with hash fields, set members and stream fields
/// included, as raw bytes. A DUMP payload is LZF-compressed, so a secret in it could be split:
/// only the search module's own index types, which cannot be read otherwise, are DUMPed, with
/// `rdbcompression` turned off first.
async fn key_contents(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<u8> {
    let kind: String = redis::cmd("TYPE").arg(key).query_async(conn).await.unwrap();
    let read = match kind.as_str() {
        "string" => redis::cmd("GET").arg(key).clone(),
        "hash" => redis::cmd("HGETALL").arg(key).clone(),
        "list" => redis::cmd("LRANGE").arg(key).arg(0).arg(-1).clone(),
        "set" => redis::cmd("SMEMBERS").arg(key).clone(),
        "zset" => redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .clone(),
        "stream" => redis::cmd("XRANGE").arg(key).arg("-").arg("+").clone(),
        _ => redis::cmd("DUMP").arg(key).clone(),
    };
    let value: redis::Value = read.query_async(conn).await.unwrap();
    let mut bytes = Vec::new();
    flatten(&value, &mut bytes);
    bytes
}

/// Appends every string in a reply, each followed by a newline.
fn flatten(value: &redis::Value, out: &mut Vec<u8>) {
    use redis::Value as V;
    match value {
        V::BulkString(b) => out.extend_from_slice(b),
        V::SimpleString(s) => out.extend_from_slice(s.as_bytes()),
        V::VerbatimString { text, .. } => out.extend_from_slice(text.as_bytes()),
        V::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        V::Double(d) => out.extend_from_slice(d.to_string().as_bytes()),
        V::Array(items) | V::Set(items) => items.iter().for_each(|v| flatten(v, out)),
        V::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        _ => {}
    }
    out.push(b'\n');
}

#[tokio::test]
async fn no_secret_is_stored_or_logged_in_clear() {
    let log = CapturedLog::start();
    let redis = TestRedis::start().await;
    let node = node(settings(&redis.url()));
    let base = node.http_url();
    // The secrets go through every way in: sign-up and sign-in over HTTP and over the socket,
    // a wrong password, a password change, and a token in a socket's URL.
    let password = "Sup3r-Secret-Passw0rd";
    let new_password = "An0ther-Secret-Phrase";
    let token = register_with(
        &base,
        json!({"username": "secretive", "password": password}),
    )
    .await;
    let (status, login_token) = login(&base, "secretive", password).await;
    assert_eq!(status, 200);
    let login_token = login_token.unwrap();
    assert_eq!(login(&base, "secretive", new_password).await.0, 401);
    let mut ws = Ws::signed_in(&node, &token).await;
    ws.send(json!({"type": "signIn", "signIn": {"username": "secretive", "password": password}}))
        .await;
    let socket_key = ws.recv_type("authorized").await["authorized"]["accessKey"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = send(
        Method::PUT,
        &base,
        "/api/me/password",
        &login_token,
        json!({"current": password, "new": new_password}),
    )
    .await;
    assert_eq!(status, 204);
    let secrets = [
        password,
        new_password,
        token.as_str(),
        login_token.as_str(),
        socket_key.as_str(),
    ];

    let mut conn = redis.conn().await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("rdbcompression")
        .arg("no")
        .query_async(&mut conn)
        .await
        .unwrap();
    let keys = redis.keys("*").await;
    assert!(keys.iter().any(|k| k == "user:secretive"), "{keys:?}");
    for key in keys {
        let contents = key_contents(&mut conn, &key).await;
        let text = String::from_utf8_lossy(&contents);
        for secret in secrets {
            assert!(
                !key.contains(secret) && !text.contains(secret),
                "a secret is stored in {key}"
            );
        }
    }
    let hash: String = redis::cmd("HGET")
        .arg("user:secretive")
        .arg("password_hash")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");

    // The node's log, at every level, names none of them either.
    let lines = log.lines();
    assert!(
        lines.iter().any(|l| l.contains("chatnode")),
        "the node's log was captured: {lines:?}"
    );
    for line in &lines {
        for secret in secrets {
            assert!(!line.contains(secret), "a secret is logged: {line}");
        }
    }
}

#[tokio::test]
async fn a_small_pool_never_waits_on_itself() {
    // Each request once held a pooled connection while asking for another; with every
    // connection held that way at once, the node hung for good.
    let redis = TestRedis::start().await;
    let mut s = settings(&redis.url());
    s.redis.pool_size = 2;
    let node = node(s);
    let base = node.http_url();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let t = register(&base, &format!("pooled{i}")).await;
            let (s, _) = post(&base, "/api/channels/general/join", &t, json!({})).await;
            assert_eq!(s, 204);
            let (s, _) = post(&base, "/api/channels/general/leave", &t, json!({})).await;
            assert_eq!(s, 204);
        }));
    }
    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("no request hangs");
    let res = http().get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}
