//! Who hears of whose presence, across nodes: people who share a channel or a DM, not everyone;
//! seed 004 sockets still hear of every user. Real Redis, real nodes, real sockets.

mod common;

use common::cluster::Backend;
use common::*;
use serde_json::{json, Value};

/// Waits for this socket's presence frame about `username`, skipping others; returns `online`.
async fn presence_of(ws: &mut Ws, username: &str) -> bool {
    loop {
        let v = ws.recv_type("presence").await;
        if v["presence"]["username"] == username {
            return v["presence"]["online"].as_bool().unwrap();
        }
    }
}

/// Connects a chatnode-family socket and waits until it has seen its own user come online, so
/// from then on it hears of everyone it shares a channel with.
async fn online(node: &chatnode::NodeHandle, token: &str, username: &str) -> Ws {
    let mut ws = Ws::connect(node, Some(token)).await;
    ws.recv_type("authorized").await;
    assert!(presence_of(&mut ws, username).await);
    ws
}

#[tokio::test]
async fn presence_reaches_people_who_share_a_channel_or_a_dm_and_nobody_else() {
    presence_reaches_sharers_on(Backend::one().await).await;
}

#[tokio::test]
async fn presence_reaches_people_who_share_a_channel_or_a_dm_and_nobody_else_on_a_cluster() {
    presence_reaches_sharers_on(Backend::cluster().await).await;
}

async fn presence_reaches_sharers_on(backend: Backend) {
    let a = node(backend.settings());
    let b = node(backend.settings());
    let (ua, ub) = (a.http_url(), b.http_url());
    let alice = register(&ua, "alice").await;
    let bob = register(&ub, "bob").await;
    let carol = register(&ua, "carol").await;
    let dave = register(&ub, "dave").await;
    create_channel(&ua, &alice, "porch").await;
    join(&ub, &bob, "porch").await;

    // Alice and Carol (who shares nothing with them) watch on node a.
    // Erin shares a channel with Carol alone; her coming online later is Carol's marker.
    let erin = register(&ub, "erin").await;
    create_channel(&ua, &carol, "nook").await;
    join(&ub, &erin, "nook").await;
    let mut wa = online(&a, &alice, "alice").await;
    let mut wc = online(&a, &carol, "carol").await;

    // Bob, a member of Alice's channel, comes online on node b: Alice hears of it.
    let mut wb = online(&b, &bob, "bob").await;
    assert!(presence_of(&mut wa, "bob").await);

    // Dave opens a DM with Alice while she is connected, then comes online: she hears of it.
    assert_eq!(
        post(&ub, "/api/dms", &dave, json!({"username": "alice"}))
            .await
            .0,
        200
    );
    let wd = online(&b, &dave, "dave").await;
    assert!(presence_of(&mut wa, "dave").await);

    // Bob and Dave go offline: Alice hears of both.
    drop(wb.inner.close(None).await);
    drop(wd);
    let mut gone = vec![];
    while gone.len() < 2 {
        let v = wa.recv_type("presence").await;
        assert_eq!(v["presence"]["online"], false, "{v}");
        gone.push(v["presence"]["username"].as_str().unwrap().to_string());
    }
    gone.sort();
    assert_eq!(gone, ["bob", "dave"]);

    // Carol shares nothing with them: none of it reached her (Alice's online preceded hers)
    // before Erin, who shares a channel with her, came online after it all.
    let _we = online(&b, &erin, "erin").await;
    let erin_online = |v: &Value| v["presence"] == json!({"username": "erin", "online": true});
    wc.read_to_marker(erin_online, |v| v["type"] == "presence")
        .await;
    // But she can always read who is online.
    let (_, list) = get(&ua, "/api/users/online", &carol).await;
    assert!(list.to_string().contains("\"alice\""), "{list}");

    // A member list says who of them is online (one read per online bucket holding any).
    create_channel(&ua, &alice, "yard").await;
    for (base, t) in [(&ub, &bob), (&ua, &carol), (&ub, &dave), (&ub, &erin)] {
        join(base, t, "yard").await;
    }
    let (status, v) = get(&ua, "/api/channels/yard/members", &alice).await;
    assert_eq!(status, 200, "{v}");
    let flags: Vec<(&str, bool)> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["username"].as_str().unwrap(), m["online"] == true))
        .collect();
    assert_eq!(
        flags,
        [
            ("alice", true),
            ("bob", false),
            ("carol", true),
            ("dave", false),
            ("erin", true)
        ],
        "{v}"
    );
}

#[tokio::test]
async fn seed_004_sockets_hear_of_every_user_online_and_offline() {
    let redis = TestRedis::start().await;
    let a = node(settings(&redis.url()));
    let b = node(settings(&redis.url()));
    // A seed 004 client signs in with frames, sharing no channel with anyone yet.
    let mut old = Ws::connect(&a, None).await;
    old.send(
        json!({"type": "signIn", "signIn": {"username": "olga", "password": "olga-password"}}),
    )
    .await;
    old.recv_type("authorized").await;
    // A chatnode user on the other node, in no channel at all.
    let token = register(&b.http_url(), "nick").await;
    let (_, me) = get(&b.http_url(), "/api/me", &token).await;
    let nick_uuid = me["uuid"].as_str().unwrap().to_string();
    let ws = online(&b, &token, "nick").await;

    let sys = |v: &Value, kind: &str| v["type"] == "sys" && v["sys"]["type"] == kind;
    let on = loop {
        let v = old.recv().await;
        if sys(&v, "online") && v["sys"]["online"]["Username"] == "nick" {
            break v;
        }
    };
    assert_eq!(
        on["sys"]["online"],
        json!({"UUID": nick_uuid, "Username": "nick", "OnLine": true})
    );
    drop(ws);
    let off = loop {
        let v = old.recv().await;
        if sys(&v, "offline") && v["sys"]["offline"]["Username"] == "nick" {
            break v;
        }
    };
    assert_eq!(
        off["sys"]["offline"],
        json!({"UUID": nick_uuid, "Username": "nick", "OnLine": false})
    );
}
