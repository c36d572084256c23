//! Message actions (edit, delete, reactions, replies) across two nodes on real Redis: live
//! delivery, resume and history converging on one state, who may do what, and what a delete
//! leaves in Redis.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::cluster::Backend;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

fn test_settings(redis: &TestRedis) -> chatnode::settings::Settings {
    let mut s = settings(&redis.url());
    // Voice posts are stored without a transcriber (no speech engine needed here).
    s.voice.transcriber = false;
    s
}

/// What a client knows of a channel after applying events in order: message ID → state.
#[derive(Debug, Default, Clone, PartialEq)]
struct Msg {
    text: String,
    deleted: bool,
    reactions: BTreeMap<String, u64>,
    reply_to: Option<String>,
}

/// Applies events as a client would: messages in, then edits, deletes and reactions on them.
/// A message already known in its current state (from history) is taken as it is.
fn apply(state: &mut BTreeMap<String, Msg>, events: &[Value]) {
    for e in events {
        let id = e["id"].as_str().unwrap().to_string();
        let target = e["target"].as_str().unwrap_or_default().to_string();
        match e["type"].as_str().unwrap() {
            "message" => {
                let reactions = e["reactions"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v["count"].as_u64().unwrap()))
                            .collect()
                    })
                    .unwrap_or_default();
                state.insert(
                    id,
                    Msg {
                        text: e["text"].as_str().unwrap().to_string(),
                        deleted: e["deleted"] == true,
                        reactions,
                        reply_to: e["reply_to"]["id"].as_str().map(str::to_string),
                    },
                );
            }
            "edit" => {
                if let Some(m) = state.get_mut(&target) {
                    m.text = e["text"].as_str().unwrap().to_string();
                }
            }
            "delete" => {
                let m = state.entry(target).or_default();
                m.deleted = true;
                m.text.clear();
                m.reactions.clear();
            }
            "reaction" => {
                if let Some(m) = state.get_mut(&target).filter(|m| !m.deleted) {
                    let r = &e["reacted"];
                    let emoji = r["emoji"].as_str().unwrap().to_string();
                    let count = r["count"].as_u64().unwrap();
                    if count == 0 {
                        m.reactions.remove(&emoji);
                    } else {
                        m.reactions.insert(emoji, count);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The next event of type `kind` on a socket (other frames skipped).
async fn next_event(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let v = ws.recv_type("message").await;
        if v["message"]["type"] == kind {
            return v["message"].clone();
        }
    }
}

fn path(channel: &str, rest: &str) -> String {
    format!("/api/channels/{channel}/messages{rest}")
}

/// Percent-encodes an emoji for a URL path.
fn enc(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test]
async fn actions_reach_the_other_node_live_and_resume_and_history_converge() {
    actions_live_on(Backend::one().await).await;
}

#[tokio::test]
async fn actions_reach_the_other_node_live_and_resume_and_history_converge_on_a_cluster() {
    actions_live_on(Backend::cluster().await).await;
}

async fn actions_live_on(backend: Backend) {
    let mut s = backend.settings();
    s.voice.transcriber = false;
    let ChannelOnTwoNodes {
        a,
        b,
        owner: ta,
        member: tb,
    } = two_nodes_one_channel(s, "lobby", "alice", "bob").await;
    let (base_a, base_b) = (a.http_url(), b.http_url());

    // Bob listens on node B; his position before anything is posted.
    let mut wb = Ws::signed_in(&b, &tb).await;
    wb.send(json!({"type": "subscribe", "subscribe": {"channels": ["lobby"]}}))
        .await;
    let start = wb.recv_type("subscribed").await["subscribed"]["last_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut live = Vec::new();

    // Alice, on node A, posts two messages over her socket.
    let mut wa = Ws::subscribed(&a, &ta, &["lobby"]).await;
    wa.send(json!({"type": "post", "post": {"channel": "lobby", "text": "helo wrld", "client_id": "p1"}}))
        .await;
    let m1 = wa.recv_type("posted").await["posted"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    wa.send(json!({"type": "post", "post": {"channel": "lobby", "text": "oops, wrong room"}}))
        .await;
    let m2 = wa.recv_type("posted").await["posted"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    live.push(next_event(&mut wb, "message").await);
    live.push(next_event(&mut wb, "message").await);

    // An edit over the socket: answered with the message as it now is, delivered on node B.
    wa.send(json!({"type": "edit", "edit": {"channel": "lobby", "id": m1, "text": "hello world", "client_id": "e1"}}))
        .await;
    let up = wa.recv_type("updated").await["updated"].clone();
    assert_eq!(up["client_id"], "e1");
    assert_eq!(up["message"]["id"], m1.as_str());
    assert_eq!(up["message"]["text"], "hello world");
    assert!(up["message"]["edited_at"].as_i64().unwrap() > 0);
    let edit = next_event(&mut wb, "edit").await;
    assert_eq!(edit["target"], m1.as_str());
    assert_eq!(edit["text"], "hello world");
    assert_eq!(edit["username"], "alice");
    live.push(edit);

    // Bob replies over REST on node B; Alice gets it live on node A with the quote.
    let (s, v) = post(
        &base_b,
        &path("lobby", ""),
        &tb,
        json!({"text": "welcome!", "reply_to": m1}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["message"]["reply_to"]["id"], m1.as_str());
    let reply_id = v["message"]["id"].as_str().unwrap().to_string();
    let got = loop {
        let m = wa.recv_message("lobby").await;
        if m["id"] == reply_id.as_str() {
            break m;
        }
    };
    assert_eq!(got["reply_to"]["id"], m1.as_str());
    assert_eq!(got["reply_to"]["username"], "alice");
    assert_eq!(got["reply_to"]["excerpt"], "hello world");
    live.push(next_event(&mut wb, "message").await);

    // A reaction over REST on node A reaches Bob on node B.
    let (s, v) = send(
        Method::PUT,
        &base_a,
        &path("lobby", &format!("/{m1}/reactions/{}", enc("👍"))),
        &ta,
        json!(null),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"👍": {"count": 1, "me": true}}));
    let r = next_event(&mut wb, "reaction").await;
    assert_eq!(r["target"], m1.as_str());
    assert_eq!(
        r["reacted"],
        json!({"added": true, "count": 1, "emoji": "👍"})
    );
    live.push(r);

    // A delete over the socket reaches Bob too.
    wa.send(json!({"type": "delete", "delete": {"channel": "lobby", "id": m2}}))
        .await;
    let up = wa.recv_type("updated").await["updated"].clone();
    assert_eq!(up["message"]["deleted"], true);
    assert_eq!(up["message"]["text"], "");
    let d = next_event(&mut wb, "delete").await;
    assert_eq!(d["target"], m2.as_str());
    live.push(d);

    let mut from_live = BTreeMap::new();
    apply(&mut from_live, &live);

    // A socket on node B that resumes from before all of it converges to the same state.
    let mut wr = Ws::signed_in(&b, &tb).await;
    wr.send(json!({"type": "resume", "resume": {"channels": {"lobby": start}}}))
        .await;
    let replayed = wr
        .read_to_marker(|v| v["type"] == "subscribed", |v| v["type"] == "error")
        .await;
    let replayed: Vec<Value> = replayed
        .into_iter()
        .filter(|v| v["type"] == "message")
        .map(|v| v["message"].clone())
        .collect();
    assert!(
        replayed.iter().all(|e| e["id"] != m2.as_str()),
        "the deleted message is not replayed: {replayed:?}"
    );
    let mut from_resume = BTreeMap::new();
    apply(&mut from_resume, &replayed);

    // History (current state plus the action events) gives the same state again.
    let (s, page) = get(&base_b, &path("lobby", "?limit=50"), &tb).await;
    assert_eq!(s, 200);
    let events = page["messages"].as_array().unwrap().clone();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for k in ["edit", "delete", "reaction"] {
        assert!(
            kinds.contains(&k),
            "history carries the {k} event: {kinds:?}"
        );
    }
    let first = events.iter().find(|e| e["id"] == m1.as_str()).unwrap();
    assert_eq!(
        first["text"], "hello world",
        "history shows the edited text"
    );
    assert!(first["edited_at"].as_i64().is_some());
    assert_eq!(first["reactions"], json!({"👍": {"count": 1, "me": false}}));
    assert_eq!(first["reply_count"], 1);
    let tomb = events.iter().find(|e| e["id"] == m2.as_str()).unwrap();
    assert_eq!(tomb["deleted"], true);
    assert_eq!(tomb["text"], "");
    let reply = events
        .iter()
        .find(|e| e["id"] == reply_id.as_str())
        .unwrap();
    assert_eq!(reply["reply_to"]["excerpt"], "hello world");
    let mut from_history = BTreeMap::new();
    apply(&mut from_history, &events);

    let mut from_current_only = BTreeMap::new();
    apply(
        &mut from_current_only,
        &events
            .iter()
            .filter(|e| e["type"] == "message")
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert_eq!(from_live[&m1].text, "hello world");
    assert_eq!(from_live[&m1].reactions["👍"], 1);
    assert!(from_live[&m2].deleted);
    assert_eq!(from_resume, from_live, "resume converges with live");
    assert_eq!(from_history, from_live, "history with its events converges");
    assert_eq!(
        from_current_only, from_live,
        "history's current state alone too"
    );

    // The thread lists the reply.
    let (s, thread) = get(&base_a, &path("lobby", &format!("/{m1}/replies")), &ta).await;
    assert_eq!(s, 200, "{thread}");
    let ids: Vec<&str> = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [reply_id.as_str()]);
    wa.send(json!({"type": "replies", "replies": {"channel": "lobby", "id": m1}}))
        .await;
    let r = wa.recv_type("replies").await["replies"].clone();
    assert_eq!(r["messages"][0]["id"], reply_id.as_str());
    assert_eq!(r["has_more"], false);
}

#[tokio::test]
async fn only_the_author_changes_a_message_and_ids_belong_to_their_channel() {
    let redis = TestRedis::start().await;
    let ChannelOnTwoNodes {
        a,
        b,
        owner: ta,
        member: tb,
    } = two_nodes_one_channel(test_settings(&redis), "lobby", "alice", "bob").await;
    let (base_a, base_b) = (a.http_url(), b.http_url());
    create_channel(&base_a, &ta, "other").await;
    let m = post_message(&base_a, &ta, "lobby", "mine").await;
    let id = m["id"].as_str().unwrap();
    let stream_len = redis.xlen("channel:lobby").await;

    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or_default().to_string();
    let (s, v) = send(
        Method::PATCH,
        &base_b,
        &path("lobby", &format!("/{id}")),
        &tb,
        json!({"text": "not yours"}),
    )
    .await;
    assert_eq!((s, code(&v).as_str()), (403, "forbidden"), "{v}");
    let (s, v) = send(
        Method::DELETE,
        &base_b,
        &path("lobby", &format!("/{id}")),
        &tb,
        json!(null),
    )
    .await;
    assert_eq!((s, code(&v).as_str()), (403, "forbidden"), "{v}");
    let mut wb = Ws::signed_in(&b, &tb).await;
    wb.send(json!({"type": "edit", "edit": {"channel": "lobby", "id": id, "text": "x", "client_id": "c"}}))
        .await;
    let e = wb.recv_type("error").await["error"].clone();
    assert_eq!(e["code"], "forbidden");
    assert_eq!(e["payload"], json!({"channel": "lobby", "client_id": "c"}));
    wb.send(json!({"type": "delete", "delete": {"channel": "lobby", "id": id}}))
        .await;
    assert_eq!(wb.recv_type("error").await["error"]["code"], "forbidden");

    // Unknown IDs, malformed IDs and another channel's IDs are not found there.
    for (channel, target) in [
        ("lobby", "1-0"),
        ("lobby", "abc"),
        ("other", id),
        ("nochannel", id),
    ] {
        let (s, v) = send(
            Method::PATCH,
            &base_a,
            &path(channel, &format!("/{target}")),
            &ta,
            json!({"text": "x"}),
        )
        .await;
        assert_eq!(
            (s, code(&v).as_str()),
            (404, "message_not_found"),
            "{channel}/{target}: {v}"
        );
        let (s, v) = send(
            Method::DELETE,
            &base_a,
            &path(channel, &format!("/{target}")),
            &ta,
            json!(null),
        )
        .await;
        assert_eq!((s, code(&v).as_str()), (404, "message_not_found"), "{v}");
    }
    let (s, v) = send(
        Method::PUT,
        &base_a,
        &path("other", &format!("/{id}/reactions/{}", enc("👍"))),
        &ta,
        json!(null),
    )
    .await;
    assert_eq!((s, code(&v).as_str()), (404, "message_not_found"), "{v}");
    let (s, v) = post(
        &base_a,
        &path("other", ""),
        &ta,
        json!({"text": "re", "reply_to": id}),
    )
    .await;
    assert_eq!((s, code(&v).as_str()), (404, "message_not_found"), "{v}");
    // Same text rules as posting.
    let (s, v) = send(
        Method::PATCH,
        &base_a,
        &path("lobby", &format!("/{id}")),
        &ta,
        json!({"text": "   "}),
    )
    .await;
    assert_eq!((s, code(&v).as_str()), (400, "invalid_message"), "{v}");
    assert_eq!(
        redis.xlen("channel:lobby").await,
        stream_len,
        "refused actions store nothing"
    );

    // The author's edit, sent twice with one client_id, is stored once.
    for _ in 0..2 {
        let (s, v) = send(
            Method::PATCH,
            &base_a,
            &path("lobby", &format!("/{id}")),
            &ta,
            json!({"text": "mine, edited", "client_id": "edit-1"}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["message"]["text"], "mine, edited");
    }
    let edits = redis
        .stream("lobby")
        .await
        .into_iter()
        .filter(|(_, f)| f.get("type").map(String::as_str) == Some("edit"))
        .count();
    assert_eq!(edits, 1, "one edit event for one client_id");
}

#[tokio::test]
async fn an_edit_window_and_the_posting_budget_bound_actions() {
    let redis = TestRedis::start().await;
    let mut s = test_settings(&redis);
    s.messages.edit_window_secs = 1;
    s.ws.rate_limit_messages = 4;
    s.ws.rate_limit_window_secs = 60;
    let n = node(s);
    let base = n.http_url();
    let t = register(&base, "alice").await;
    create_channel(&base, &t, "lobby").await;
    let m = post_message(&base, &t, "lobby", "one").await;
    let id = m["id"].as_str().unwrap();
    // Two posts so far (create's join is not counted): one more edit, then the window closes.
    let (s, v) = send(
        Method::PATCH,
        &base,
        &path("lobby", &format!("/{id}")),
        &t,
        json!({"text": "two"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (s, v) = send(
        Method::PATCH,
        &base,
        &path("lobby", &format!("/{id}")),
        &t,
        json!({"text": "three"}),
    )
    .await;
    assert_eq!(s, 403, "past the edit window: {v}");
    // Reactions count against the same budget as posts: 1 post + 1 edit + 2 reactions = 4.
    for e in ["👍", "🎉"] {
        let (s, v) = send(
            Method::PUT,
            &base,
            &path("lobby", &format!("/{id}/reactions/{}", enc(e))),
            &t,
            json!(null),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    let (s, v) = send(
        Method::PUT,
        &base,
        &path("lobby", &format!("/{id}/reactions/{}", enc("❤️"))),
        &t,
        json!(null),
    )
    .await;
    assert_eq!(s, 429, "the budget is spent: {v}");
    assert_eq!(v["error"]["code"], "rate_limited");
}

#[tokio::test]
async fn reactions_are_single_emoji_once_per_user_and_twenty_at_most() {
    let redis = TestRedis::start().await;
    let ChannelOnTwoNodes {
        a,
        b,
        owner: ta,
        member: tb,
    } = two_nodes_one_channel(test_settings(&redis), "lobby", "alice", "bob").await;
    let (base_a, base_b) = (a.http_url(), b.http_url());
    let tc = register(&base_a, "carol").await;
    let m = post_message(&base_a, &ta, "lobby", "react to me").await;
    let id = m["id"].as_str().unwrap().to_string();
    let react = |method: Method, base: String, token: String, emoji: &str| {
        let p = path("lobby", &format!("/{id}/reactions/{}", enc(emoji)));
        async move { send(method, &base, &p, &token, json!(null)).await }
    };

    for bad in ["a", "👍👍", "<b>", "👍 "] {
        let (s, v) = react(Method::PUT, base_a.clone(), ta.clone(), bad).await;
        assert_eq!(s, 400, "{bad:?}: {v}");
        assert_eq!(v["error"]["code"], "invalid_message");
    }
    // Not a member: may read the public channel but not react in it.
    let (s, v) = react(Method::PUT, base_a.clone(), tc.clone(), "👍").await;
    assert_eq!(s, 403, "{v}");

    let (s, v) = react(Method::PUT, base_a.clone(), ta.clone(), "👍").await;
    assert_eq!((s, v["👍"]["count"].as_u64()), (200, Some(1)));
    let len = redis.xlen("channel:lobby").await;
    let (s, v) = react(Method::PUT, base_a.clone(), ta.clone(), "👍").await;
    assert_eq!(
        (s, v["👍"]["count"].as_u64()),
        (200, Some(1)),
        "once per user"
    );
    assert_eq!(
        redis.xlen("channel:lobby").await,
        len,
        "no event for no change"
    );
    let (_, v) = react(Method::PUT, base_b.clone(), tb.clone(), "👍").await;
    assert_eq!(v["👍"], json!({"count": 2, "me": true}));
    let (_, v) = react(Method::DELETE, base_a.clone(), ta.clone(), "👍").await;
    assert_eq!(v["👍"], json!({"count": 1, "me": false}));

    // Twenty distinct emoji fit; a twenty-first does not, but another user's existing one does.
    let emoji: Vec<String> = (0..19)
        .map(|i| char::from_u32(0x1F600 + i).unwrap().to_string())
        .collect();
    for e in &emoji {
        let (s, v) = react(Method::PUT, base_a.clone(), ta.clone(), e).await;
        assert_eq!(s, 200, "{e}: {v}");
    }
    let (s, v) = react(Method::PUT, base_a.clone(), ta.clone(), "🎉").await;
    assert_eq!(s, 400, "a twenty-first emoji: {v}");
    let (s, v) = react(Method::PUT, base_b.clone(), tb.clone(), &emoji[0]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v.as_object().unwrap().len(), 20);
}

#[tokio::test]
async fn a_deleted_message_leaves_no_text_audio_or_search_entry_in_redis() {
    deleted_message_leaves_nothing(TestRedis::start().await).await;
}

#[tokio::test]
async fn a_deleted_message_leaves_nothing_with_redisearch_2() {
    deleted_message_leaves_nothing(TestRedis::start_search2().await).await;
}

async fn deleted_message_leaves_nothing(redis: TestRedis) {
    let ChannelOnTwoNodes {
        a,
        b: _b,
        owner: ta,
        member: tb,
    } = two_nodes_one_channel(test_settings(&redis), "lobby", "alice", "bob").await;
    let base = a.http_url();
    let m = post_message(&base, &ta, "lobby", "zanzibar @bob secret").await;
    let id = m["id"].as_str().unwrap().to_string();
    let (s, _) = send(
        Method::PATCH,
        &base,
        &path("lobby", &format!("/{id}")),
        &ta,
        json!({"text": "quixotic @bob secret"}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = post(
        &base,
        &path("lobby", ""),
        &tb,
        json!({"text": "a reply", "reply_to": id}),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = send(
        Method::PUT,
        &base,
        &path("lobby", &format!("/{id}/reactions/{}", enc("👍"))),
        &tb,
        json!(null),
    )
    .await;
    assert_eq!(s, 200);

    // Search finds the edited text, not the old one.
    let search = |q: &str| {
        let (base, tb, q) = (base.clone(), tb.clone(), q.to_string());
        async move {
            let (s, v) = get(&base, &format!("/api/search/messages?q={q}"), &tb).await;
            assert_eq!(s, 200, "{v}");
            v["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search("quixotic").await, vec![id.clone()]);
    assert!(
        search("zanzibar").await.is_empty(),
        "the old text is not found"
    );
    let (_, mentions) = get(&base, "/api/mentions", &tb).await;
    assert_eq!(mentions["mentions"].as_array().unwrap().len(), 1);

    // A voice message: its audio is removed with it.
    let up = http()
        .post(format!("{base}/api/channels/lobby/voice"))
        .bearer_auth(&ta)
        .header("Content-Type", "audio/wav")
        .body(silence_wav(16000, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 202);
    let voice: Value = up.json().await.unwrap();
    let voice_id = voice["message"]["id"].as_str().unwrap().to_string();
    assert_eq!(redis.keys("audio:*").await.len(), 1);

    let (unread_before, _) = unread_of(&base, &tb, "lobby").await;
    for target in [&id, &voice_id] {
        let (s, v) = send(
            Method::DELETE,
            &base,
            &path("lobby", &format!("/{target}")),
            &ta,
            json!(null),
        )
        .await;
        assert_eq!(s, 204, "{v}");
    }
    // Deleting again: it is gone.
    let (s, _) = send(
        Method::DELETE,
        &base,
        &path("lobby", &format!("/{id}")),
        &ta,
        json!(null),
    )
    .await;
    assert_eq!(s, 404);

    // Nothing in Redis holds the text any more: every key's every value is scanned.
    let mut conn = redis.conn().await;
    for key in redis.keys("*").await {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let dump: String = match kind.as_str() {
            "string" => redis::cmd("GET")
                .arg(&key)
                .query_async::<Option<Vec<u8>>>(&mut conn)
                .await
                .unwrap()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            "hash" => format!(
                "{:?}",
                redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async::<Vec<String>>(&mut conn)
                    .await
                    .unwrap()
            ),
            "set" => format!(
                "{:?}",
                redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async::<Vec<String>>(&mut conn)
                    .await
                    .unwrap()
            ),
            "zset" => format!(
                "{:?}",
                redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async::<Vec<String>>(&mut conn)
                    .await
                    .unwrap()
            ),
            "stream" => format!(
                "{:?}",
                redis::cmd("XRANGE")
                    .arg(&key)
                    .arg("-")
                    .arg("+")
                    .query_async::<Vec<(String, Vec<String>)>>(&mut conn)
                    .await
                    .unwrap()
            ),
            _ => String::new(),
        };
        for word in ["zanzibar", "quixotic", "secret"] {
            assert!(!dump.contains(word), "{key} ({kind}) still holds `{word}`");
            // RediSearch 1.x keeps one key per indexed word (`ft:<index>/<word>`) until its
            // garbage collector empties it; it refers to no live document and holds no text.
            assert!(
                !key.contains(word) || key.starts_with("ft:idx:messages/"),
                "a key is named after `{word}`: {key}"
            );
        }
    }
    assert!(redis.keys(&format!("message:*{id}")).await.is_empty());
    assert!(redis.keys("audio:*").await.is_empty(), "the audio is gone");
    assert!(redis.keys("audioinfo:*").await.is_empty());
    assert!(redis.keys("reactors:*").await.is_empty());
    assert!(search("quixotic").await.is_empty(), "no search entry");

    // Mentions and unread counts ignore the deleted message and the action events.
    let (_, mentions) = get(&base, "/api/mentions", &tb).await;
    assert!(mentions["mentions"].as_array().unwrap().is_empty());
    let (unread_after, _) = unread_of(&base, &tb, "lobby").await;
    assert_eq!(
        unread_after,
        unread_before - 2,
        "two deleted, no action counted"
    );

    // History keeps each place with a tombstone; the thread still opens.
    let (_, page) = get(&base, &path("lobby", ""), &tb).await;
    let tombs: Vec<&Value> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["deleted"] == true)
        .collect();
    assert_eq!(tombs.len(), 2, "{page}");
    assert!(tombs
        .iter()
        .all(|t| t["text"] == "" && t.get("voice").is_none()));
    let reply = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["text"] == "a reply")
        .unwrap();
    assert_eq!(reply["reply_to"]["deleted"], true);
    assert_eq!(reply["reply_to"]["excerpt"], "");
    let (s, thread) = get(&base, &path("lobby", &format!("/{id}/replies")), &tb).await;
    assert_eq!(s, 200, "{thread}");
    assert_eq!(thread["messages"].as_array().unwrap().len(), 1);
}

/// The unread count of `channel` in the user's channel list.
async fn unread_of(base: &str, token: &str, channel: &str) -> (u64, Value) {
    let (_, list) = get(base, "/api/channels", token).await;
    let c = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == channel)
        .unwrap()
        .clone();
    (c["unread"].as_u64().unwrap(), c)
}

#[tokio::test]
async fn seed_004_sockets_get_messages_but_no_action_events() {
    let redis = TestRedis::start().await;
    let n = node(test_settings(&redis));
    let base = n.http_url();
    let t = register(&base, "alice").await;
    join(&base, &t, "general").await;
    let mut old = Ws::connect(&n, None).await;
    old.send(json!({"type": "signIn", "signIn": {"username": "olga", "password": "password123"}}))
        .await;
    old.recv_type("authorized").await;
    old.send(json!({"type": "channelJoin", "channelJoin": {"recipientUUID": ""}}))
        .await;
    old.recv_type("channelJoin").await;

    let m = post_message(&base, &t, "general", "first").await;
    let id = m["id"].as_str().unwrap();
    let got = old.recv_type("channelMessage").await;
    assert_eq!(got["channelMessage"]["Message"], "first");
    send(
        Method::PATCH,
        &base,
        &path("general", &format!("/{id}")),
        &t,
        json!({"text": "first, edited"}),
    )
    .await;
    send(
        Method::PUT,
        &base,
        &path("general", &format!("/{id}/reactions/{}", enc("👍"))),
        &t,
        json!(null),
    )
    .await;
    post_message(&base, &t, "general", "marker").await;
    let before = old
        .read_to_marker(
            |v| v["type"] == "channelMessage" && v["channelMessage"]["Message"] == "marker",
            |v| v["type"] == "channelMessage" || v["type"] == "message",
        )
        .await;
    assert!(
        before.iter().all(|v| v["type"] != "error"),
        "nothing but the marker: {before:?}"
    );
}

/// On a Redis in cluster mode (one server owning every slot), which refuses any script whose
/// keys are in two hash slots, every action runs: each script touches its channel's slot only.
#[tokio::test]
async fn every_action_touches_one_slot_per_script() {
    use chatnode::store::{setup, Store};
    use std::sync::Arc;

    let (redis, _dir) = TestRedis::start_cluster_node().await;
    let s = test_settings(&redis);
    let store = Store::connect(&redis.url(), Arc::new(s)).await.unwrap();
    setup::prepare(&store).await.unwrap();
    let none = chatnode::store::users::ProfileUpdate::default();
    chatnode::accounts::register(&store, "amy", "password123", none.clone())
        .await
        .unwrap();
    chatnode::accounts::register(&store, "zed", "password123", none)
        .await
        .unwrap();
    store.create_channel("lobby").await.unwrap();
    store.join_channel("amy", "", "lobby").await.unwrap();
    store.join_channel("zed", "", "lobby").await.unwrap();

    let m = store
        .post_message_once("amy", "", "lobby", "first words", Some("p"))
        .await
        .unwrap()
        .event;
    let edited = store
        .edit_message("amy", "", "lobby", &m.id, "second words", Some("e"))
        .await
        .unwrap();
    assert_eq!(edited.message.text, "second words");
    let r = store
        .react("zed", "", "lobby", &m.id, "👍", true, None)
        .await
        .unwrap();
    assert_eq!(r.message.reactions.unwrap()["👍"].count, 1);
    let reply = store
        .post_reply_once("zed", "", "lobby", "a reply", &m.id, Some("r"))
        .await
        .unwrap()
        .event;
    assert_eq!(reply.reply_to.as_ref().unwrap().excerpt, "second words");
    let r = store
        .react("zed", "", "lobby", &m.id, "👍", false, None)
        .await
        .unwrap();
    assert!(r.message.reactions.is_none());
    let replies = store
        .replies("amy", "lobby", &m.id, None, None, 10)
        .await
        .unwrap();
    assert_eq!(replies.messages.len(), 1);
    store
        .delete_message("zed", "", "lobby", &reply.id, None)
        .await
        .unwrap();
    let gone = store
        .delete_message("amy", "", "lobby", &m.id, Some("d"))
        .await
        .unwrap();
    assert!(gone.message.deleted);
    let page = store
        .history_for("amy", "lobby", None, None, 50)
        .await
        .unwrap();
    let tombs = page.messages.iter().filter(|e| e.deleted).count();
    assert_eq!(tombs, 2, "{:?}", page.messages);
}
