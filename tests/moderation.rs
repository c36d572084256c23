//! Private channels, group conversations, members, roles and moderation, and the admin API, on
//! real Redis and two real nodes. Privacy is tested the way an attacker would try it: a signed-in
//! outsider, a kicked and a banned member try every REST endpoint and every socket frame against
//! a private channel and a group conversation, on both nodes.

mod common;

use std::time::{Duration, Instant};

use chatnode::store::keys;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// How soon a removal must reach a socket on the other node.
const LIVE: Duration = Duration::from_secs(1);

fn voice_off(url: &str) -> chatnode::settings::Settings {
    let mut s = settings(url);
    s.voice.engine = "none".into();
    s.voice.transcriber = false;
    s.auth.admins = vec!["root".into()];
    s
}

async fn patch(base: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    send(Method::PATCH, base, path, token, body).await
}

async fn delete(base: &str, path: &str, token: &str) -> (u16, Value) {
    send(Method::DELETE, base, path, token, json!({})).await
}

async fn put(base: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    send(Method::PUT, base, path, token, body).await
}

/// Uploads a voice message.
async fn upload_voice(base: &str, channel: &str, token: &str) -> (u16, Value) {
    let res = http()
        .post(format!("{base}/api/channels/{channel}/voice"))
        .bearer_auth(token)
        .header("Content-Type", "audio/wav")
        .body(silence_wav(16_000, 1))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Creates a private channel as `token`'s user.
async fn create_private(base: &str, token: &str, name: &str) {
    let (s, v) = post(
        base,
        "/api/channels",
        token,
        json!({"name": name, "private": true, "topic": "hush"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["kind"], "private");
}

async fn add_member(base: &str, token: &str, channel: &str, who: &str) {
    let (s, v) = post(
        base,
        &format!("/api/channels/{channel}/members"),
        token,
        json!({"username": who}),
    )
    .await;
    assert_eq!(s, 201, "add {who} to {channel}: {v}");
}

/// Asserts a REST answer is exactly what a channel that does not exist gets.
fn assert_not_found(what: &str, (status, body): (u16, Value)) {
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("channel_not_found")),
        "{what}: {body}"
    );
}

/// Every channel-scoped REST request an outsider might try, by method, path and body.
fn channel_requests(c: &str) -> Vec<(Method, String, Value)> {
    let p = |s: &str| format!("/api/channels/{c}{s}");
    vec![
        (Method::GET, p(""), json!(null)),
        (Method::PATCH, p(""), json!({"topic": "mine now"})),
        (Method::PATCH, p(""), json!({"private": false})),
        (Method::DELETE, p(""), json!({})),
        (Method::GET, p("/members"), json!(null)),
        (Method::POST, p("/members"), json!({"username": "eve"})),
        (Method::DELETE, p("/members/bob"), json!({})),
        (Method::DELETE, p("/members/eve"), json!({})),
        (Method::PUT, p("/members/bob"), json!({"role": "member"})),
        (Method::GET, p("/bans"), json!(null)),
        (Method::POST, p("/bans"), json!({"username": "bob"})),
        (Method::DELETE, p("/bans/eve"), json!({})),
        (Method::POST, p("/mutes"), json!({"username": "bob"})),
        (Method::DELETE, p("/mutes/eve"), json!({})),
        (Method::GET, p("/messages"), json!(null)),
        (Method::GET, p("/messages?after=0-0"), json!(null)),
        (Method::POST, p("/messages"), json!({"text": "sneak"})),
        (Method::POST, p("/join"), json!({})),
        (Method::POST, p("/leave"), json!({})),
        (Method::POST, p("/read"), json!({"last_id": "0-0"})),
        (Method::GET, p("/active"), json!(null)),
        (
            Method::GET,
            format!("/api/messages/recent?channels={c}"),
            json!(null),
        ),
        (
            Method::GET,
            format!("/api/stats/top-posters?channel={c}"),
            json!(null),
        ),
        (
            Method::GET,
            format!("/api/search/messages?q=eagle&channel={c}"),
            json!(null),
        ),
    ]
}

/// `token` tries everything against `channel` on `base`: each answer must be the one a
/// channel that does not exist gets, and nothing may be written to its stream.
async fn outsider_gets_nothing(
    redis: &TestRedis,
    base: &str,
    token: &str,
    channel: &str,
    secret: &str,
) {
    let before = redis.xlen(&format!("channel:{channel}")).await;
    for (method, path, body) in channel_requests(channel) {
        let got = if body.is_null() {
            get(base, &path, token).await
        } else {
            send(method.clone(), base, &path, token, body.clone()).await
        };
        // The same request against a channel that never existed answers the same.
        let ghost = path.replace(channel, "no-such-channel-x");
        let ghost = if body.is_null() {
            get(base, &ghost, token).await
        } else {
            send(method.clone(), base, &ghost, token, body.clone()).await
        };
        assert!(
            !got.1.to_string().contains(secret),
            "{method} {path} leaked: {}",
            got.1
        );
        assert_eq!(got.0, ghost.0, "{method} {path}: {} vs {}", got.1, ghost.1);
        assert_not_found(&format!("{method} {path}"), got);
    }
    let (s, v) = upload_voice(base, channel, token).await;
    assert_not_found("voice upload", (s, v));
    // Lists, searches, mentions and insights: not a name, message or count of it.
    for path in [
        "/api/channels".to_string(),
        "/api/channels?all=true".to_string(),
        "/api/search/messages?q=eagle".to_string(),
        "/api/search?q=eagle".to_string(),
        "/api/mentions".to_string(),
        "/api/messages/recent?minutes=60".to_string(),
        "/api/stats/top-posters".to_string(),
    ] {
        let (s, v) = get(base, &path, token).await;
        assert!(s == 200 || s == 503, "{path}: {s} {v}");
        let text = v.to_string();
        assert!(!text.contains(channel), "{path} names the channel: {text}");
        assert!(!text.contains(secret), "{path} leaks a message: {text}");
        if path.starts_with("/api/search/messages") && s == 200 {
            assert_eq!(v["total"], 0, "{path} counts hidden messages: {v}");
        }
    }
    assert_eq!(
        redis.xlen(&format!("channel:{channel}")).await,
        before,
        "nothing written"
    );
}

/// On a socket: every frame against `channel` answers `channel_not_found` (the DM's rule aside),
/// and no event of it arrives before a marker posted after the channel's own messages.
async fn outsider_socket_gets_nothing(
    node: &chatnode::NodeHandle,
    token: &str,
    channel: &str,
    old_id: &str,
    marker: (&str, &str, &str),
    base_for_marker: &str,
) {
    let (marker_channel, marker_token, marker_text) = marker;
    let mut ws = Ws::subscribed(node, token, &[marker_channel]).await;
    let frames = [
        json!({"type": "subscribe", "subscribe": {"channels": [channel]}}),
        json!({"type": "resume", "resume": {"channels": {channel: old_id}}}),
        json!({"type": "resume", "resume": {"channels": {channel: "0-0"}}}),
        json!({"type": "history", "history": {"channel": channel}}),
        json!({"type": "history", "history": {"channel": channel, "after": "0-0"}}),
        json!({"type": "post", "post": {"channel": channel, "text": "sneak"}}),
        json!({"type": "read", "read": {"channel": channel, "last_id": old_id}}),
        json!({"type": "typing", "typing": {"channel": channel}}),
    ];
    for f in frames {
        ws.send(f.clone()).await;
        let e = ws.recv_type("error").await;
        assert_eq!(e["error"]["code"], "channel_not_found", "{f} -> {e}");
    }
    post_message(base_for_marker, marker_token, marker_channel, marker_text).await;
    let got = ws
        .read_to_marker(message_with(marker_channel, marker_text), |v| {
            v.to_string().contains(&format!("\"{channel}\"")) && v["type"] != "error"
        })
        .await;
    assert!(
        got.iter().all(|v| v["type"] != "message"),
        "only the marker's channel may speak: {got:?}"
    );
}

#[tokio::test]
async fn a_private_channel_and_a_group_are_invisible_to_outsiders_on_both_nodes() {
    let redis = TestRedis::start().await;
    let a = node(voice_off(&redis.url()));
    let b = node(voice_off(&redis.url()));
    let (ua, ub) = (a.http_url(), b.http_url());
    let ann = register(&ua, "ann").await;
    let bob = register(&ub, "bob").await;
    let cat = register(&ub, "cat").await;
    let eve = register(&ub, "eve").await;
    create_channel(&ua, &ann, "lobby").await;
    for t in [&bob, &cat, &eve] {
        join(&ub, t, "lobby").await;
    }

    create_private(&ua, &ann, "secret").await;
    add_member(&ua, &ann, "secret", "bob").await;
    let first = post_message(&ub, &bob, "secret", "the eagle lands at dawn, @eve").await;
    let old_id = first["id"].as_str().unwrap().to_string();
    let (s, v) = upload_voice(&ua, "secret", &ann).await;
    assert_eq!(s, 202, "{v}");
    let audio = v["message"]["voice"]["audio"].as_str().unwrap().to_string();

    let (s, v) = post(
        &ua,
        "/api/dms",
        &ann,
        json!({"usernames": ["bob", "cat"], "title": "trio"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let group = v["channel"].as_str().unwrap().to_string();
    assert!(group.starts_with("group:"), "{group}");
    post_message(&ub, &cat, &group, "eagle plans for the trio, @eve").await;

    // Members read both, on both nodes.
    for (base, t) in [(&ua, &ann), (&ub, &bob)] {
        let (s, v) = get(base, "/api/channels/secret/messages", t).await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = get(base, &format!("/api/channels/{group}/members"), t).await;
        assert_eq!(s, 200);
        let names: Vec<&str> = v["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["username"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["ann", "bob", "cat"]);
    }
    let (s, v) = get(&ua, "/api/channels/secret/members", &ann).await;
    assert_eq!(s, 200);
    assert_eq!(v["members"][0]["role"], "owner");
    assert_eq!(v["members"][1]["role"], "member");
    assert!(v["members"][1]["joined_at"].as_i64().unwrap() > 0);

    // Eve, signed in but outside both, on both nodes: REST and socket.
    for base in [&ua, &ub] {
        outsider_gets_nothing(&redis, base, &eve, "secret", "eagle").await;
        outsider_gets_nothing(&redis, base, &eve, &group, "eagle").await;
        let (s, v) = get(base, &format!("/api/audio/{audio}"), &eve).await;
        assert_not_found("audio", (s, v));
    }
    for n in [&a, &b] {
        outsider_socket_gets_nothing(n, &eve, "secret", &old_id, ("lobby", &ann, "marker 1"), &ua)
            .await;
        outsider_socket_gets_nothing(n, &eve, &group, &old_id, ("lobby", &ann, "marker 2"), &ua)
            .await;
    }
    // The mention in a channel Eve cannot read was never recorded for her.
    let (_, v) = get(&ua, "/api/mentions", &eve).await;
    assert_eq!(v["mentions"], json!([]), "{v}");
    let mut conn = redis.conn().await;
    let n: u64 = redis::cmd("ZCARD")
        .arg(keys::mentions("eve"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);

    // A private name is taken for everyone (the one thing an outsider can learn: that a name
    // is taken), and a private channel cannot be joined by name.
    let (s, _) = post(&ub, "/api/channels", &eve, json!({"name": "secret"})).await;
    assert_eq!(s, 409);

    // A seed 004 socket of Eve's sees nothing of either.
    let mut w4 = Ws::connect(&b, None).await;
    w4.send(json!({"type": "signIn", "signIn": {"username": "eve", "password": "password123"}}))
        .await;
    w4.recv_type("authorized").await;
    w4.send(json!({"type": "channelJoin", "userUUID": "", "channelJoin": {"recipientUUID": ""}}))
        .await;
    w4.recv_type("channelJoin").await;
    post_message(&ub, &bob, "secret", "eagle again").await;
    post_message(&ub, &bob, &group, "eagle in the group").await;
    join(&ua, &ann, "general").await;
    post_message(&ua, &ann, "general", "seed marker").await;
    let got = w4
        .read_to_marker(
            |v| v["type"] == "channelMessage" && v["channelMessage"]["Message"] == "seed marker",
            |v| v.to_string().contains("eagle"),
        )
        .await;
    assert!(got.iter().all(|v| v["type"] != "channelMessage"), "{got:?}");
}

#[tokio::test]
async fn kicked_and_banned_members_lose_the_channel_live_on_the_other_node_and_cannot_resume() {
    let redis = TestRedis::start().await;
    let a = node(voice_off(&redis.url()));
    let b = node(voice_off(&redis.url()));
    let (ua, ub) = (a.http_url(), b.http_url());
    let ann = register(&ua, "ann").await;
    let bob = register(&ub, "bob").await;
    let cat = register(&ub, "cat").await;
    create_channel(&ua, &ann, "lobby").await;
    join(&ub, &bob, "lobby").await;
    join(&ub, &cat, "lobby").await;
    create_private(&ua, &ann, "secret").await;
    add_member(&ua, &ann, "secret", "bob").await;
    add_member(&ua, &ann, "secret", "cat").await;
    let first = post_message(&ua, &ann, "secret", "before the kick").await;
    let old_id = first["id"].as_str().unwrap().to_string();

    // Bob has two sockets on node b: one subscribed to the channel, one not.
    let mut wb = Ws::subscribed(&b, &bob, &["secret", "lobby"]).await;
    let mut wb2 = Ws::subscribed(&b, &bob, &["lobby"]).await;
    // And one on node a, which has no room of the channel: told by the per-user notice.
    let mut wb3 = Ws::signed_in(&a, &bob).await;
    let mut wc = Ws::subscribed(&b, &cat, &["secret", "lobby"]).await;

    // Kick, from node a.
    let started = Instant::now();
    let (s, v) = delete(&ua, "/api/channels/secret/members/bob", &ann).await;
    assert_eq!(s, 204, "{v}");
    let ev = wb.recv_message("secret").await;
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["username"].as_str(),
            ev["text"].as_str()
        ),
        (Some("member_removed"), Some("bob"), Some("kicked"))
    );
    let removed = wb.recv_type("channel_removed").await;
    eprintln!(
        "kick on node a -> channel_removed on node b: {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < LIVE, "{:?}", started.elapsed());
    assert_eq!(
        removed["channel_removed"],
        json!({"channel": "secret", "reason": "kicked"})
    );
    let removed = wb2.recv_type("channel_removed").await;
    assert_eq!(removed["channel_removed"]["channel"], "secret");
    let removed = wb3.recv_type("channel_removed").await;
    assert_eq!(
        removed["channel_removed"],
        json!({"channel": "secret", "reason": "kicked"})
    );
    assert!(started.elapsed() < LIVE, "{:?}", started.elapsed());
    assert!(
        wb3.try_recv(Duration::from_millis(300))
            .await
            .is_none_or(|v| v["type"] != "channel_removed"),
        "told once"
    );
    // Cat saw Bob go.
    let ev = wc.recv_message("secret").await;
    assert_eq!(ev["type"], "member_removed");

    // After the kick: nothing more reaches Bob, and resuming from before it is refused.
    post_message(&ua, &ann, "secret", "after the kick").await;
    post_message(&ua, &ann, "lobby", "kick marker").await;
    wb.read_to_marker(
        message_with("lobby", "kick marker"),
        any_message_of("secret"),
    )
    .await;
    wb.send(json!({"type": "resume", "resume": {"channels": {"secret": old_id}}}))
        .await;
    assert_eq!(
        wb.recv_type("error").await["error"]["code"],
        "channel_not_found"
    );
    assert_not_found(
        "history after kick",
        get(&ub, "/api/channels/secret/messages", &bob).await,
    );
    outsider_gets_nothing(&redis, &ub, &bob, "secret", "after the kick").await;
    let (_, v) = get(&ub, "/api/channels", &bob).await;
    assert!(!v.to_string().contains("secret"), "{v}");

    // Ban Cat for a minute, from node a: removed at once on node b.
    let (s, v) = post(
        &ua,
        "/api/channels/secret/bans",
        &ann,
        json!({"username": "cat", "duration_secs": 60, "reason": "spam"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let mut ev = wc.recv_message("secret").await;
    while ev["type"] == "message" {
        ev = wc.recv_message("secret").await;
    }
    assert_eq!(
        (ev["type"].as_str(), ev["text"].as_str()),
        (Some("member_removed"), Some("banned"))
    );
    assert_eq!(
        wc.recv_type("channel_removed").await["channel_removed"]["reason"],
        "banned"
    );
    outsider_gets_nothing(&redis, &ua, &cat, "secret", "after the kick").await;
    outsider_socket_gets_nothing(
        &a,
        &cat,
        "secret",
        &old_id,
        ("lobby", &ann, "ban marker"),
        &ua,
    )
    .await;
    // Cannot be added back while the ban holds; can once it is lifted.
    let (s, v) = post(
        &ua,
        "/api/channels/secret/members",
        &ann,
        json!({"username": "cat"}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (403, json!("banned")),
        "{v}"
    );
    let (_, v) = get(&ua, "/api/channels/secret/bans", &ann).await;
    assert_eq!(v["bans"][0]["username"], "cat");
    assert_eq!(v["bans"][0]["reason"], "spam");
    let (s, _) = delete(&ua, "/api/channels/secret/bans/cat", &ann).await;
    assert_eq!(s, 204);
    add_member(&ua, &ann, "secret", "cat").await;

    // A public channel's ban: no history, no join, no subscribe.
    let (s, v) = post(
        &ua,
        "/api/channels/lobby/bans",
        &ann,
        json!({"username": "bob"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        wb.recv_type("channel_removed").await["channel_removed"]["channel"],
        "lobby"
    );
    let (s, v) = post(&ub, "/api/channels/lobby/join", &bob, json!({})).await;
    assert_eq!((s, v["error"]["code"].clone()), (403, json!("banned")));
    let (s, v) = get(&ub, "/api/channels/lobby/messages", &bob).await;
    assert_eq!((s, v["error"]["code"].clone()), (403, json!("banned")));
    wb.send(json!({"type": "subscribe", "subscribe": {"channels": ["lobby"]}}))
        .await;
    assert_eq!(wb.recv_type("error").await["error"]["code"], "banned");
}

#[tokio::test]
async fn roles_mutes_and_slow_mode_hold_on_every_node() {
    let redis = TestRedis::start().await;
    let a = node(voice_off(&redis.url()));
    let b = node(voice_off(&redis.url()));
    let (ua, ub) = (a.http_url(), b.http_url());
    let ann = register(&ua, "ann").await;
    let bob = register(&ub, "bob").await;
    let cat = register(&ub, "cat").await;
    create_private(&ua, &ann, "team").await;
    add_member(&ua, &ann, "team", "bob").await;
    add_member(&ua, &ann, "team", "cat").await;
    let mut wc = Ws::subscribed(&b, &cat, &["team"]).await;

    // A member cannot moderate.
    let (s, v) = delete(&ub, "/api/channels/team/members/cat", &bob).await;
    assert_eq!((s, v["error"]["code"].clone()), (403, json!("forbidden")));
    let (s, _) = put(
        &ub,
        "/api/channels/team/members/cat",
        &bob,
        json!({"role": "moderator"}),
    )
    .await;
    assert_eq!(s, 403);
    // The owner promotes Bob; Cat's socket on node b sees it.
    let (s, v) = put(
        &ua,
        "/api/channels/team/members/bob",
        &ann,
        json!({"role": "moderator"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let ev = wc.recv_message("team").await;
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["username"].as_str(),
            ev["text"].as_str()
        ),
        (Some("role_changed"), Some("bob"), Some("moderator"))
    );
    let (s, _) = put(
        &ua,
        "/api/channels/team/members/bob",
        &ann,
        json!({"role": "owner"}),
    )
    .await;
    assert_eq!(s, 400);
    // The moderator cannot remove the owner.
    let (s, _) = delete(&ub, "/api/channels/team/members/ann", &bob).await;
    assert_eq!(s, 403);

    // Bob mutes Cat: her posts are refused on both nodes, by REST and socket.
    let (s, v) = post(
        &ub,
        "/api/channels/team/mutes",
        &bob,
        json!({"username": "cat", "duration_secs": 600}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let before = redis.xlen("channel:team").await;
    for base in [&ua, &ub] {
        let (s, v) = post(
            base,
            "/api/channels/team/messages",
            &cat,
            json!({"text": "hi"}),
        )
        .await;
        assert_eq!(
            (s, v["error"]["code"].clone()),
            (403, json!("muted")),
            "{v}"
        );
    }
    wc.send(json!({"type": "post", "post": {"channel": "team", "text": "hi", "client_id": "m1"}}))
        .await;
    assert_eq!(wc.recv_type("error").await["error"]["code"], "muted");
    let (s, v) = upload_voice(&ua, "team", &cat).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (403, json!("muted")),
        "{v}"
    );
    assert_eq!(
        redis.xlen("channel:team").await,
        before,
        "a muted post writes nothing"
    );
    // Nor react (a reaction is a say in the channel too); the post to react to is Ann's.
    let target = post_message(&ua, &ann, "team", "react to this").await;
    let react = format!(
        "/api/channels/team/messages/{}/reactions/%F0%9F%91%8D",
        target["id"].as_str().unwrap()
    );
    let (s, v) = send(Method::PUT, &ub, &react, &cat, json!(null)).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (403, json!("muted")),
        "{v}"
    );
    let (_, v) = get(&ub, "/api/channels/team", &cat).await;
    assert!(v["muted_until"].as_i64().unwrap() > 0, "{v}");
    let (s, _) = delete(&ua, "/api/channels/team/mutes/cat", &ann).await;
    assert_eq!(s, 204);
    post_message(&ub, &cat, "team", "unmuted").await;

    // Slow mode: one post per 2 s for members; the moderator is exempt.
    let (s, v) = patch(
        &ua,
        "/api/channels/team",
        &ann,
        json!({"slow_mode_secs": 2}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["slow_mode_secs"], 2);
    loop {
        let ev = wc.recv_message("team").await;
        if ev["type"] == "channel_updated" {
            assert_eq!(ev["username"], "ann");
            assert_eq!(
                serde_json::from_str::<Value>(ev["text"].as_str().unwrap()).unwrap(),
                json!({"slow_mode_secs": "2"})
            );
            break;
        }
    }
    post_message(&ua, &cat, "team", "slow one").await;
    let res = http()
        .post(format!("{ub}/api/channels/team/messages"))
        .bearer_auth(&cat)
        .json(&json!({"text": "slow two"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().get("retry-after").is_some());
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "slow_mode");
    post_message(&ub, &bob, "team", "mod one").await;
    post_message(&ub, &bob, "team", "mod two").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    post_message(&ub, &cat, "team", "slow two").await;
    let (s, _) = patch(
        &ub,
        "/api/channels/team",
        &cat,
        json!({"slow_mode_secs": 0}),
    )
    .await;
    assert_eq!(s, 403, "members cannot change slow mode");
    let (s, _) = patch(
        &ua,
        "/api/channels/team",
        &ann,
        json!({"slow_mode_secs": 99999}),
    )
    .await;
    assert_eq!(s, 400);

    // Making it public opens it to everyone; making it private again needs confirming.
    let eve = register(&ua, "eve").await;
    let (s, v) = patch(&ua, "/api/channels/team", &ann, json!({"private": false})).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = get(&ua, "/api/channels/team/messages", &eve).await;
    assert_eq!(s, 200);
    let mut we = Ws::subscribed(&b, &eve, &["team"]).await;
    let (s, v) = patch(&ua, "/api/channels/team", &ann, json!({"private": true})).await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = patch(
        &ua,
        "/api/channels/team",
        &ann,
        json!({"private": true, "confirm": true}),
    )
    .await;
    assert_eq!(s, 200);
    // Eve was reading it as a public channel: her socket on the other node loses it at once,
    // and nothing posted after reaches her.
    let removed = we.recv_type("channel_removed").await;
    assert_eq!(
        removed["channel_removed"],
        json!({"channel": "team", "reason": "not_member"})
    );
    post_message(&ua, &ann, "team", "private again").await;
    join(&ub, &eve, "general").await;
    join(&ua, &ann, "general").await;
    subscribe(&mut we, &["general"]).await;
    post_message(&ua, &ann, "general", "privacy marker").await;
    we.read_to_marker(
        message_with("general", "privacy marker"),
        any_message_of("team"),
    )
    .await;
    assert_not_found(
        "after making it private again",
        get(&ub, "/api/channels/team/messages", &eve).await,
    );
}

#[tokio::test]
async fn groups_are_created_with_usernames_and_grow() {
    let redis = TestRedis::start().await;
    let a = node(voice_off(&redis.url()));
    let b = node(voice_off(&redis.url()));
    let (ua, ub) = (a.http_url(), b.http_url());
    let ann = register(&ua, "ann").await;
    let bob = register(&ub, "bob").await;
    let _cat = register(&ub, "cat").await;
    let dan = register(&ub, "dan").await;
    let eve = register(&ub, "eve").await;
    let mut wb = Ws::signed_in(&b, &bob).await;

    // The two-person form keeps working.
    let (s, v) = post(&ua, "/api/dms", &ann, json!({"username": "bob"})).await;
    assert_eq!((s, v["channel"].clone()), (200, json!("dm:ann:bob")));
    let added = wb.recv_type("channel_added").await;
    assert_eq!(added["channel_added"]["kind"], "dm");
    // Bad groups.
    for body in [
        json!({"usernames": ["bob"]}),
        json!({"usernames": ["bob", "ann"]}),
        json!({"usernames": []}),
        json!({"usernames": ["bob", "cat"], "username": "dan"}),
    ] {
        let (s, v) = post(&ua, "/api/dms", &ann, body.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].clone()),
            (400, json!("invalid_body")),
            "{body}: {v}"
        );
    }
    let (s, _) = post(
        &ua,
        "/api/dms",
        &ann,
        json!({"usernames": ["bob", "nobody-here"]}),
    )
    .await;
    assert_eq!(s, 404);
    let (s, v) = post(
        &ua,
        "/api/dms",
        &ann,
        json!({"usernames": ["bob", "cat"], "title": "Plans"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let group = v["channel"].as_str().unwrap().to_string();
    // Bob's socket on the other node hears of it live.
    let added = wb.recv_type("channel_added").await;
    assert_eq!(
        added["channel_added"],
        json!({"channel": group, "kind": "group", "title": "Plans"})
    );
    let (_, v) = get(&ub, "/api/channels", &bob).await;
    let mine = v
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == group.as_str())
        .cloned();
    assert_eq!(mine.unwrap()["kind"], "group");
    let early = post_message(&ub, &bob, &group, "before dan").await;

    // Any member adds someone; the newcomer reads earlier history too.
    add_member(&ub, &bob, &group, "dan").await;
    let (s, v) = get(&ub, &format!("/api/channels/{group}/messages"), &dan).await;
    assert_eq!(s, 200);
    assert!(
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == early["id"]),
        "{v}"
    );
    // An outsider cannot add themselves or anyone.
    let (s, _) = post(
        &ub,
        &format!("/api/channels/{group}/members"),
        &eve,
        json!({"username": "eve"}),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = post(&ub, &format!("/api/channels/{group}/join"), &eve, json!({})).await;
    assert_eq!(s, 404);
    // Members page by name.
    let path = format!("/api/channels/{group}/members?limit=2");
    let (s, v) = get(&ua, &path, &ann).await;
    assert_eq!(s, 200, "{v}");
    let first: Vec<&str> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["username"].as_str().unwrap())
        .collect();
    assert_eq!(
        (first, v["next_after"].as_str()),
        (vec!["ann", "bob"], Some("bob"))
    );
    let (_, v) = get(&ua, &format!("{path}&after=bob"), &ann).await;
    let rest: Vec<&str> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["username"].as_str().unwrap())
        .collect();
    assert_eq!(
        (rest, v["next_after"].clone()),
        (vec!["cat", "dan"], Value::Null)
    );
    // Dan leaves on his own.
    let (s, _) = delete(&ub, &format!("/api/channels/{group}/members/dan"), &dan).await;
    assert_eq!(s, 204);
    assert_not_found(
        "after leaving",
        get(&ub, &format!("/api/channels/{group}/messages"), &dan).await,
    );
    // Having left, Dan is an outsider to it everywhere, on both nodes, REST and socket.
    for base in [&ua, &ub] {
        outsider_gets_nothing(&redis, base, &dan, &group, "before dan").await;
    }
    let early_id = early["id"].as_str().unwrap().to_string();
    create_channel(&ua, &ann, "hall").await;
    join(&ub, &dan, "hall").await;
    for n in [&a, &b] {
        outsider_socket_gets_nothing(
            n,
            &dan,
            &group,
            &early_id,
            ("hall", &ann, "hall marker"),
            &ua,
        )
        .await;
    }
    let (_, v) = get(&ua, &format!("/api/channels/{group}"), &ann).await;
    assert_eq!(
        (
            v["kind"].as_str(),
            v["title"].as_str(),
            v["members"].as_u64()
        ),
        (Some("group"), Some("Plans"), Some(3))
    );
}

#[tokio::test]
async fn deleting_a_channel_removes_its_data_and_tells_members_live() {
    let redis = TestRedis::start().await;
    let a = node(voice_off(&redis.url()));
    let b = node(voice_off(&redis.url()));
    let (ua, ub) = (a.http_url(), b.http_url());
    let ann = register(&ua, "ann").await;
    let bob = register(&ub, "bob").await;
    create_private(&ua, &ann, "doomed").await;
    add_member(&ua, &ann, "doomed", "bob").await;
    let m = post_message(&ub, &bob, "doomed", "soon gone").await;
    let mut wb = Ws::subscribed(&b, &bob, &["doomed"]).await;
    let mut wb2 = Ws::signed_in(&b, &bob).await;
    let mut wa = Ws::subscribed(&a, &ann, &["doomed"]).await;

    let (s, _) = delete(&ub, "/api/channels/doomed", &bob).await;
    assert_eq!(s, 403, "a member cannot delete it");
    let started = Instant::now();
    let (s, v) = delete(&ua, "/api/channels/doomed", &ann).await;
    assert_eq!(s, 204, "{v}");
    for ws in [&mut wb, &mut wb2, &mut wa] {
        let removed = ws.recv_type("channel_removed").await;
        assert_eq!(
            removed["channel_removed"],
            json!({"channel": "doomed", "reason": "channel_deleted"})
        );
    }
    eprintln!(
        "channel deletion -> channel_removed on both nodes: {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < LIVE);
    assert!(
        wb.try_recv(Duration::from_millis(300)).await.is_none(),
        "told once"
    );
    let id = m["id"].as_str().unwrap();
    let left = eventually(Duration::from_secs(5), || async {
        let keys = redis.keys("*doomed*").await;
        let msg = redis.keys(&keys::message("doomed", id)).await;
        (keys.is_empty() && msg.is_empty()).then_some(())
    })
    .await;
    assert!(
        left.is_some(),
        "left behind: {:?}",
        redis.keys("*doomed*").await
    );
    let mut conn = redis.conn().await;
    let mine: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys::memberships("bob"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!mine.contains(&"doomed".to_string()));
    assert_not_found(
        "deleted",
        get(&ua, "/api/channels/doomed/messages", &ann).await,
    );
    // The name is free again.
    create_private(&ub, &bob, "doomed").await;
}

#[tokio::test]
async fn an_admin_disables_an_account_everywhere_at_once() {
    let redis = TestRedis::start().await;
    let a = node(voice_off(&redis.url()));
    let b = node(voice_off(&redis.url()));
    let (ua, ub) = (a.http_url(), b.http_url());
    let root = register(&ua, "root").await;
    let bob = register(&ub, "bob").await;
    let mut wa = Ws::signed_in(&a, &bob).await;
    let mut wb = Ws::signed_in(&b, &bob).await;

    let (s, v) = post(&ub, "/api/admin/users/root/disable", &bob, json!({})).await;
    assert_eq!((s, v["error"]["code"].clone()), (403, json!("forbidden")));
    let (s, _) = get(&ub, "/api/admin/overview", &bob).await;
    assert_eq!(s, 403);

    let started = Instant::now();
    let (s, v) = post(&ua, "/api/admin/users/bob/disable", &root, json!({})).await;
    assert_eq!(s, 200, "{v}");
    for ws in [&mut wa, &mut wb] {
        assert_eq!(ws.recv_close(LIVE).await, Some(1008));
    }
    eprintln!("disable -> 1008 on both nodes: {:?}", started.elapsed());
    assert!(started.elapsed() < LIVE);
    let (s, _) = get(&ub, "/api/me", &bob).await;
    assert_eq!(s, 401);
    let res = http()
        .post(format!("{ub}/api/auth/login"))
        .json(&json!({"username": "bob", "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "account_disabled");
    // A session made while the account was being disabled (a sign-in racing with it) is
    // refused on use.
    let store =
        chatnode::store::Store::connect(&redis.url(), std::sync::Arc::new(voice_off(&redis.url())))
            .await
            .unwrap();
    let raced = store.create_session("bob").await.unwrap();
    for base in [&ua, &ub] {
        let (s, _) = get(base, "/api/me", &raced).await;
        assert_eq!(s, 401, "a disabled account's session");
    }
    // A wrong password says only that.
    let (s, _) = login(&ub, "bob", "wrong-password").await;
    assert_eq!(s, 401);

    let (_, v) = get(&ua, "/api/admin/overview", &root).await;
    assert_eq!(v["users"], 2, "{v}");
    assert_eq!(v["disabled_users"], 1);
    assert!(v["redis"]["used_memory_bytes"].as_u64().unwrap() > 0);
    assert!(v["this_node_sockets"].is_u64());

    let (s, _) = post(&ua, "/api/admin/users/bob/enable", &root, json!({})).await;
    assert_eq!(s, 200);
    let (s, t) = login(&ub, "bob", "password123").await;
    assert_eq!(s, 200);
    let (s, _) = get(&ub, "/api/me", &t.unwrap()).await;
    assert_eq!(s, 200);
    let (s, _) = post(
        &ua,
        "/api/admin/users/nobody-here/disable",
        &root,
        json!({}),
    )
    .await;
    assert_eq!(s, 404);
}

/// Every moderation write path on a Redis in cluster mode (one server owning every slot, which
/// refuses any script or multi-key command over two slots): each script touches one slot.
#[tokio::test]
async fn moderation_write_paths_touch_one_slot_per_script() {
    let (redis, _dir) = TestRedis::start_cluster_node().await;
    let n = node(voice_off(&redis.url()));
    let u = n.http_url();
    let root = register(&u, "root").await;
    let ann = register(&u, "ann").await;
    let bob = register(&u, "bob").await;
    let _cat = register(&u, "cat").await;
    create_private(&u, &ann, "ops").await;
    add_member(&u, &ann, "ops", "bob").await;
    let mut wb = Ws::subscribed(&n, &bob, &["ops"]).await;
    let (s, v) = put(
        &u,
        "/api/channels/ops/members/bob",
        &ann,
        json!({"role": "moderator"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = patch(
        &u,
        "/api/channels/ops",
        &ann,
        json!({"topic": "t", "slow_mode_secs": 1}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    add_member(&u, &bob, "ops", "cat").await;
    let cat = login(&u, "cat", "password123").await.1.unwrap();
    post_message(&u, &cat, "ops", "one").await;
    let (s, v) = post(
        &u,
        "/api/channels/ops/messages",
        &cat,
        json!({"text": "two"}),
    )
    .await;
    assert_eq!((s, v["error"]["code"].clone()), (429, json!("slow_mode")));
    let (s, v) = post(
        &u,
        "/api/channels/ops/mutes",
        &bob,
        json!({"username": "cat"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, v) = post(
        &u,
        "/api/channels/ops/messages",
        &cat,
        json!({"text": "three"}),
    )
    .await;
    assert_eq!((s, v["error"]["code"].clone()), (403, json!("muted")));
    let (s, v) = post(
        &u,
        "/api/channels/ops/bans",
        &bob,
        json!({"username": "cat", "duration_secs": 60}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, _) = delete(&u, "/api/channels/ops/bans/cat", &ann).await;
    assert_eq!(s, 204);
    let (s, v) = post(&u, "/api/dms", &ann, json!({"usernames": ["bob", "cat"]})).await;
    assert_eq!(s, 201, "{v}");
    let (s, _) = patch(&u, "/api/channels/ops", &ann, json!({"private": false})).await;
    assert_eq!(s, 200);
    let (s, _) = patch(
        &u,
        "/api/channels/ops",
        &ann,
        json!({"private": true, "confirm": true}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = delete(&u, "/api/channels/ops", &ann).await;
    assert_eq!(s, 204, "{v}");
    assert_eq!(
        wb.recv_type("channel_removed").await["channel_removed"]["reason"],
        "channel_deleted"
    );
    assert!(redis.keys("*{channel:ops}*").await.is_empty());
    let (s, v) = post(&u, "/api/admin/users/bob/disable", &root, json!({})).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = post(&u, "/api/admin/users/bob/enable", &root, json!({})).await;
    assert_eq!(s, 200);
    let (s, v) = get(&u, "/api/admin/overview", &root).await;
    assert_eq!(s, 200, "{v}");
}

/// The same rules on a Redis Cluster (three masters, three replicas): an outsider gets
/// `channel_not_found` on both nodes, a kick and a ban reach the other node's socket at once,
/// a disabled account's sockets close with 1008, and a deleted channel is gone.
#[tokio::test]
async fn privacy_and_removals_hold_on_a_cluster() {
    let backend = common::cluster::Backend::cluster().await;
    let mut s = backend.settings();
    s.voice.engine = "none".into();
    s.voice.transcriber = false;
    s.auth.admins = vec!["root".into()];
    let a = node(s.clone());
    let b = node(s);
    let (ua, ub) = (a.http_url(), b.http_url());
    let root = register(&ua, "root").await;
    let ann = register(&ua, "ann").await;
    let bob = register(&ub, "bob").await;
    let cat = register(&ub, "cat").await;
    let eve = register(&ub, "eve").await;
    create_private(&ua, &ann, "secret").await;
    add_member(&ua, &ann, "secret", "bob").await;
    add_member(&ua, &ann, "secret", "cat").await;
    let first = post_message(&ub, &bob, "secret", "the eagle lands").await;
    let old_id = first["id"].as_str().unwrap().to_string();

    for base in [&ua, &ub] {
        for path in [
            "/api/channels/secret",
            "/api/channels/secret/messages",
            "/api/channels/secret/members",
            "/api/channels/secret/active",
        ] {
            assert_not_found(path, get(base, path, &eve).await);
        }
        let (s, v) = get(base, "/api/search/messages?q=eagle", &eve).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["total"], 0, "{v}");
        let (_, v) = get(base, "/api/channels", &eve).await;
        assert!(!v.to_string().contains("secret"), "{v}");
    }
    let mut we = Ws::signed_in(&b, &eve).await;
    we.send(json!({"type": "resume", "resume": {"channels": {"secret": old_id}}}))
        .await;
    assert_eq!(
        we.recv_type("error").await["error"]["code"],
        "channel_not_found"
    );

    // Kick and ban from node a; Bob's and Cat's sockets on node b lose the channel at once.
    let mut wb = Ws::subscribed(&b, &bob, &["secret"]).await;
    let mut wc = Ws::subscribed(&b, &cat, &["secret"]).await;
    let started = Instant::now();
    let (s, _) = delete(&ua, "/api/channels/secret/members/bob", &ann).await;
    assert_eq!(s, 204);
    assert_eq!(
        wb.recv_type("channel_removed").await["channel_removed"]["reason"],
        "kicked"
    );
    assert!(started.elapsed() < LIVE, "{:?}", started.elapsed());
    let (s, _) = post(
        &ua,
        "/api/channels/secret/bans",
        &ann,
        json!({"username": "cat"}),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(
        wc.recv_type("channel_removed").await["channel_removed"]["reason"],
        "banned"
    );
    wb.send(json!({"type": "resume", "resume": {"channels": {"secret": old_id}}}))
        .await;
    assert_eq!(
        wb.recv_type("error").await["error"]["code"],
        "channel_not_found"
    );

    // Disable Bob: his socket on node b closes with 1008.
    let (s, _) = post(&ua, "/api/admin/users/bob/disable", &root, json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(wb.recv_close(LIVE).await, Some(1008));

    // Delete the channel: Ann's socket on node a is told, and it is gone for her too.
    let mut wa = Ws::subscribed(&a, &ann, &["secret"]).await;
    let (s, _) = delete(&ua, "/api/channels/secret", &ann).await;
    assert_eq!(s, 204);
    assert_eq!(
        wa.recv_type("channel_removed").await["channel_removed"]["reason"],
        "channel_deleted"
    );
    assert_not_found(
        "deleted",
        get(&ua, "/api/channels/secret/messages", &ann).await,
    );
}
