//! A client written to seed 004's document (and behaving like its React client) works unchanged.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Collects frames until one of `kind` arrives; returns it and records every frame's text.
async fn until(ws: &mut Ws, kind: &str, log: &mut Vec<String>) -> Value {
    loop {
        let v = ws.recv().await;
        log.push(v.to_string());
        if v["type"] == kind {
            return v;
        }
        assert_ne!(
            v["type"], "error",
            "unexpected error while waiting for {kind}: {v}"
        );
    }
}

/// Signs in the way the React client does: signIn, then at once `users` and `channelJoin`.
async fn sign_in_like_the_react_client(
    ws: &mut Ws,
    username: &str,
    password: &str,
    log: &mut Vec<String>,
) -> String {
    ws.send(json!({"type": "signIn", "signIn": {"username": username, "password": password}}))
        .await;
    ws.send(json!({"type": "users", "SSUID": "whatever", "userUUID": ""}))
        .await;
    ws.send(json!({"type": "channelJoin", "userUUID": "", "channelJoin": {"recipientUUID": ""}}))
        .await;
    let auth = until(ws, "authorized", log).await;
    let uuid = auth["authorized"]["userUUID"].as_str().unwrap().to_string();
    assert!(auth["authorized"]["accessKey"]
        .as_str()
        .is_some_and(|k| !k.is_empty()));
    let sys = until(ws, "sys", log).await;
    assert_eq!(sys["sys"]["type"], "signIn");
    assert_eq!(sys["sys"]["signIn"]["uuid"], uuid.as_str());
    assert_eq!(
        sys["sys"]["signIn"]["username"],
        username.to_lowercase().as_str()
    );
    let users = until(ws, "users", log).await;
    let list = users["users"]["users"].as_array().unwrap();
    assert!(users["users"]["total"].as_u64().unwrap() >= 1);
    assert_eq!(
        users["users"]["received"].as_u64().unwrap() as usize,
        list.len()
    );
    let me = list
        .iter()
        .find(|u| u["UUID"] == uuid.as_str())
        .expect("I am listed");
    assert_eq!(me["Username"], username.to_lowercase().as_str());
    assert!(me.get("OnLine").is_some());
    let join = until(ws, "channelJoin", log).await;
    assert_eq!(join["channelJoin"]["recipientUUID"], "");
    assert!(join["channelJoin"]["messages"].is_array());
    assert!(join["channelJoin"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["UUID"] == uuid.as_str()));
    uuid
}

#[tokio::test]
async fn seed_004_client_end_to_end_across_two_nodes() {
    let redis = TestRedis::start().await;
    let a = node(settings(&redis.url()));
    let b = node(settings(&redis.url()));
    let mut log = Vec::new();

    let mut alice = Ws::connect(&a, None).await;
    let alice_uuid =
        sign_in_like_the_react_client(&mut alice, "Alice", "alice-password", &mut log).await;
    alice.send(json!({"type": "channelMessage", "userUUID": "forged", "channelMessage": {"recipientUUID": "", "message": "hello everyone"}})).await;
    let echo = until(&mut alice, "channelMessage", &mut log).await;
    let m = &echo["channelMessage"];
    assert_eq!(m["Message"], "hello everyone");
    assert_eq!(
        m["SenderUUID"],
        alice_uuid.as_str(),
        "identity comes from the connection"
    );
    assert_eq!(m["Sender"]["UUID"], alice_uuid.as_str());
    assert_eq!(m["Sender"]["Username"], "alice");
    assert_eq!(m["RecipientUUID"], "");
    let created = m["CreatedAt"].as_str().unwrap();
    assert!(
        created.len() == 24 && created.ends_with('Z') && &created[10..11] == "T",
        "{created}"
    );

    // Bob signs in on the other node (created on first sign-in) and sees the history.
    let mut bob = Ws::connect(&b, None).await;
    let mut bob_log = Vec::new();
    bob.send(json!({"type": "signIn", "signIn": {"username": "bob", "password": "bob-password"}}))
        .await;
    let bob_uuid = until(&mut bob, "authorized", &mut bob_log).await["authorized"]["userUUID"]
        .as_str()
        .unwrap()
        .to_string();
    bob.send(json!({"type": "channelJoin", "channelJoin": {"recipientUUID": ""}}))
        .await;
    let join = until(&mut bob, "channelJoin", &mut bob_log).await;
    let history = join["channelJoin"]["messages"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["Message"], "hello everyone");
    bob.send(json!({"type": "channelMessage", "channelMessage": {"recipientUUID": "", "message": "hi alice"}})).await;
    assert_eq!(
        until(&mut alice, "channelMessage", &mut log).await["channelMessage"]["Message"],
        "hi alice"
    );
    assert_eq!(
        until(&mut bob, "channelMessage", &mut bob_log).await["channelMessage"]["Message"],
        "hi alice"
    );

    // Private channel: each side files the message under the other's UUID.
    alice
        .send(json!({"type": "channelJoin", "channelJoin": {"recipientUUID": bob_uuid}}))
        .await;
    let j = until(&mut alice, "channelJoin", &mut log).await;
    assert_eq!(j["channelJoin"]["recipientUUID"], bob_uuid.as_str());
    assert_eq!(
        j["channelJoin"]["messages"],
        json!([]),
        "a new private channel is empty"
    );
    bob.send(json!({"type": "channelJoin", "channelJoin": {"recipientUUID": alice_uuid}}))
        .await;
    until(&mut bob, "channelJoin", &mut bob_log).await;
    alice.send(json!({"type": "channelMessage", "channelMessage": {"recipientUUID": bob_uuid, "message": "psst"}})).await;
    let at_alice = until(&mut alice, "channelMessage", &mut log).await;
    let at_bob = until(&mut bob, "channelMessage", &mut bob_log).await;
    assert_eq!(at_alice["channelMessage"]["Message"], "psst");
    assert_eq!(at_bob["channelMessage"]["Message"], "psst");
    assert_eq!(
        at_alice["channelMessage"]["RecipientUUID"],
        bob_uuid.as_str()
    );
    assert_eq!(
        at_bob["channelMessage"]["RecipientUUID"],
        alice_uuid.as_str()
    );
    assert_eq!(at_bob["channelMessage"]["SenderUUID"], alice_uuid.as_str());
    // Alice joined the private channel, so she left General: Bob's public message skips her.
    bob.send(json!({"type": "channelJoin", "channelJoin": {"recipientUUID": ""}}))
        .await;
    until(&mut bob, "channelJoin", &mut bob_log).await;
    bob.send(json!({"type": "channelMessage", "channelMessage": {"recipientUUID": "", "message": "public again"}})).await;
    until(&mut bob, "channelMessage", &mut bob_log).await;
    // Bob then writes to Alice privately: she gets that, and nothing of General before it.
    bob.send(json!({"type": "channelMessage", "channelMessage": {"recipientUUID": alice_uuid, "message": "marker"}})).await;
    let text_is = |text: &'static str| {
        move |v: &Value| v["type"] == "channelMessage" && v["channelMessage"]["Message"] == text
    };
    let skipped = alice
        .read_to_marker(text_is("marker"), text_is("public again"))
        .await;
    log.extend(skipped.iter().map(Value::to_string));

    // A wrong password is an error whose text the client can show.
    let mut intruder = Ws::connect(&a, None).await;
    intruder.send(json!({"type": "signIn", "signIn": {"username": "alice", "password": "not-hers-at-all"}})).await;
    let e = intruder.recv_type("error").await;
    assert_eq!(e["error"]["code"], "invalid_credentials");
    assert!(e["error"]["message"].is_string() && e["error"]["error"] == e["error"]["message"]);
    // A third user cannot post into their private channel by naming a UUID.
    let mut carol = Ws::connect(&a, None).await;
    let mut carol_log = Vec::new();
    carol.send(json!({"type": "signUp", "signUp": {"username": "carol", "password": "carol-password"}})).await;
    until(&mut carol, "authorized", &mut carol_log).await;
    carol.send(json!({"type": "signUp", "signUp": {"username": "carol", "password": "carol-password"}})).await;
    assert_eq!(
        carol.recv_type("error").await["error"]["code"],
        "username_taken"
    );
    carol.send(json!({"type": "channelMessage", "channelMessage": {"recipientUUID": bob_uuid, "message": "to bob"}})).await;
    // That lands in carol's own DM with bob (once the node has handled it), never alice's.
    let texts = |entries: Vec<(String, HashMap<String, String>)>| {
        entries
            .into_iter()
            .filter(|(_, f)| f["type"] == "message")
            .map(|(_, f)| (f["username"].clone(), f["message"].clone()))
            .collect::<Vec<_>>()
    };
    let carols = eventually(Duration::from_secs(10), || async {
        let t = texts(redis.stream("dm:bob:carol").await);
        (!t.is_empty()).then_some(t)
    })
    .await
    .expect("carol's message is stored");
    assert_eq!(carols, [("carol".to_string(), "to bob".to_string())]);
    assert_eq!(
        texts(redis.stream("dm:alice:bob").await),
        [
            ("alice".to_string(), "psst".to_string()),
            ("bob".to_string(), "marker".to_string())
        ],
        "alice and bob's channel holds their own messages only"
    );

    alice
        .send(json!({"type": "signOut", "userUUID": alice_uuid}))
        .await;
    let out = until(&mut alice, "signOut", &mut log).await;
    assert_eq!(out["signOut"]["uuid"], alice_uuid.as_str());
    alice.send(json!({"type": "users"})).await;
    assert_eq!(
        alice.recv_type("error").await["error"]["code"],
        "unauthorized"
    );

    for text in log.iter().chain(bob_log.iter()).chain(carol_log.iter()) {
        assert!(
            !text.contains("alice-password") && !text.contains("bob-password"),
            "{text}"
        );
        assert!(
            !text.contains("argon2") && !text.to_lowercase().contains("\"password\""),
            "{text}"
        );
    }
}

#[tokio::test]
async fn channel_join_answers_the_last_ten_messages() {
    let redis = TestRedis::start().await;
    let n = node(settings(&redis.url()));
    let mut log = Vec::new();
    let mut first = Ws::connect(&n, None).await;
    sign_in_like_the_react_client(&mut first, "first", "first-password", &mut log).await;
    for i in 0..12 {
        first.send(json!({"type": "channelMessage", "channelMessage": {"recipientUUID": "", "message": format!("m{i}")}})).await;
        until(&mut first, "channelMessage", &mut log).await;
    }
    let mut late = Ws::connect(&n, None).await;
    late.send(
        json!({"type": "signIn", "signIn": {"username": "late", "password": "late-password"}}),
    )
    .await;
    late.recv_type("authorized").await;
    late.send(json!({"type": "channelJoin", "channelJoin": {"recipientUUID": ""}}))
        .await;
    let join = late.recv_type("channelJoin").await;
    let texts: Vec<&str> = join["channelJoin"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Message"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        (2..12).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "ten messages, oldest first, joins skipped"
    );
}
