//! Each outbound frame serializes to exactly the bytes chatnode sent before its frames were
//! typed: the server used to build them as `serde_json::Value`s (`envelope(kind, json!{…})`),
//! which write object keys sorted. `old` below is that code, kept as the reference.

use chatnode_protocol::outbound::{
    self, Authorized, ChannelAdded, ChannelJoined, ChannelKind, ChannelLeft, Gap, HistoryPage,
    Posted, Presence, Ready, SignedOut, Subscribed, Typing, Unread, Unsubscribed, UserList,
};
use chatnode_protocol::seed004::{self, SignedIn, Sys};
use chatnode_protocol::{ChatEvent, ErrorAbout, ErrorCode, ErrorFrame, Outbound, VoiceInfo};
use serde_json::{json, Value};

/// The frame builders as the server had them.
mod old {
    use super::*;

    pub fn envelope(kind: &str, payload: Value) -> String {
        let mut obj = serde_json::Map::with_capacity(2);
        obj.insert("type".into(), Value::String(kind.into()));
        obj.insert(kind.into(), payload);
        Value::Object(obj).to_string()
    }

    pub fn error_frame(code: &str, message: &str, payload: Value) -> String {
        envelope(
            "error",
            json!({"code": code, "error": message, "message": message, "payload": payload}),
        )
    }

    pub fn user(uuid: &str, username: &str, online: bool) -> Value {
        json!({"UUID": uuid, "Username": username, "OnLine": online})
    }

    pub fn message(ev: &ChatEvent, recipient_uuid: &str) -> Value {
        let text = match &ev.voice {
            Some(v) if ev.text.is_empty() => {
                format!("(voice message, {} s)", v.duration_ms.div_ceil(1000))
            }
            _ => ev.text.clone(),
        };
        json!({
            "UUID": format!("{}/{}", ev.channel, ev.id),
            "SenderUUID": ev.uuid,
            "Sender": {"UUID": ev.uuid, "Username": ev.username},
            "RecipientUUID": recipient_uuid,
            "Message": text,
            "CreatedAt": chatnode_protocol::rfc3339(ev.created_at),
            "id": ev.id,
        })
    }
}

fn event(text: &str, voice: Option<VoiceInfo>, uuid: &str) -> ChatEvent {
    ChatEvent {
        id: "1795434153618-0".into(),
        channel: "lobby".into(),
        kind: "message".into(),
        username: "dave".into(),
        text: text.into(),
        created_at: 1_795_434_153_618,
        uuid: uuid.into(),
        voice,
        ..Default::default()
    }
}

fn events() -> Vec<ChatEvent> {
    let full = VoiceInfo {
        audio: "a1".into(),
        content_type: "audio/ogg".into(),
        duration_ms: 2500,
        bytes: 4096,
        state: "done".into(),
        confidence: Some(0.87),
        engine: "whisper-base".into(),
        error: "e".into(),
        message_id: "1-0".into(),
    };
    let bare = VoiceInfo {
        audio: "a2".into(),
        state: "pending".into(),
        ..Default::default()
    };
    vec![
        event("hi \"all\" \u{e9}", None, "8108ea69"),
        event("", None, ""),
        event("said", Some(full), "u"),
        event("", Some(bare), "u"),
    ]
}

#[track_caller]
fn same(new: Outbound, old: String) {
    assert_eq!(new.to_json(), old);
    // And it reads back as the same frame.
    assert_eq!(serde_json::from_str::<Outbound>(&old).unwrap(), new);
}

#[test]
fn chatnode_frames_are_byte_for_byte_the_old_ones() {
    for ev in events() {
        let old_message = old::envelope("message", json!(ev));
        assert_eq!(outbound::message_json(&ev), old_message);
        same(Outbound::Message(ev.clone()), old_message);
        same(
            Outbound::Mention(ev.clone()),
            old::envelope("mention", json!(ev)),
        );
    }
    same(
        Outbound::History(HistoryPage {
            channel: "lobby".into(),
            has_more: true,
            messages: events(),
        }),
        old::envelope(
            "history",
            json!({"channel": "lobby", "messages": events(), "has_more": true}),
        ),
    );
    for client_id in [Some("c-1".to_string()), None] {
        same(
            Outbound::Posted(Posted {
                channel: "lobby".into(),
                client_id: client_id.clone(),
                created_at: 17,
                id: "17-0".into(),
            }),
            old::envelope(
                "posted",
                json!({"client_id": client_id, "id": "17-0", "channel": "lobby", "created_at": 17}),
            ),
        );
    }
    let mut subscribed = Subscribed {
        channel: "lobby".into(),
        gap: None,
        last_id: "9-0".into(),
        replayed: 3,
        resumed: true,
    };
    let mut old_subscribed =
        json!({"channel": "lobby", "last_id": "9-0", "replayed": 3, "resumed": true});
    same(
        Outbound::Subscribed(subscribed.clone()),
        old::envelope("subscribed", old_subscribed.clone()),
    );
    subscribed.gap = Some(Gap {
        after: "1-0".into(),
        until: "9-0".into(),
    });
    old_subscribed["gap"] = json!({"after": "1-0", "until": "9-0"});
    same(
        Outbound::Subscribed(subscribed),
        old::envelope("subscribed", old_subscribed),
    );
    same(
        Outbound::Unsubscribed(Unsubscribed {
            channels: vec!["b".into(), "a".into()],
        }),
        old::envelope("unsubscribed", json!({"channels": ["b", "a"]})),
    );
    same(
        Outbound::Unread(Unread {
            channel: "lobby".into(),
            count: 4,
        }),
        old::envelope("unread", json!({"channel": "lobby", "count": 4})),
    );
    same(
        Outbound::Typing(Typing {
            channel: "lobby".into(),
            username: "carol".into(),
        }),
        old::envelope("typing", json!({"channel": "lobby", "username": "carol"})),
    );
    same(
        Outbound::Presence(Presence {
            online: true,
            username: "dave".into(),
        }),
        old::envelope("presence", json!({"username": "dave", "online": true})),
    );
    same(
        Outbound::ChannelAdded(ChannelAdded {
            channel: "dm:alice:bob".into(),
            kind: ChannelKind::Dm,
            peer: "alice".into(),
            title: String::new(),
        }),
        old::envelope(
            "channel_added",
            json!({"channel": "dm:alice:bob", "kind": "dm", "peer": "alice"}),
        ),
    );
}

#[test]
fn connection_frames_are_byte_for_byte_the_old_ones() {
    same(
        Outbound::Ready(Ready {
            session_uuid: "s-1".into(),
        }),
        old::envelope("ready", json!({"sessionUUID": "s-1"})),
    );
    same(
        Outbound::Authorized(Authorized {
            access_key: None,
            user_uuid: "u-1".into(),
            username: "carol".into(),
        }),
        old::envelope(
            "authorized",
            json!({"userUUID": "u-1", "username": "carol"}),
        ),
    );
    same(
        Outbound::Authorized(Authorized {
            access_key: Some("k".into()),
            user_uuid: "u-1".into(),
            username: "carol".into(),
        }),
        old::envelope(
            "authorized",
            json!({"userUUID": "u-1", "accessKey": "k", "username": "carol"}),
        ),
    );
    same(
        Outbound::SignOut(SignedOut { uuid: "u-1".into() }),
        old::envelope("signOut", json!({"uuid": "u-1"})),
    );
    let errors = [
        (None, Value::Null),
        (
            Some(ErrorAbout::Channel {
                channel: "dm:a:b".into(),
            }),
            json!({"channel": "dm:a:b"}),
        ),
        (
            Some(ErrorAbout::Post {
                channel: "lobby".into(),
                client_id: Some("c-1".into()),
            }),
            json!({"channel": "lobby", "client_id": "c-1"}),
        ),
        (
            Some(ErrorAbout::Post {
                channel: "lobby".into(),
                client_id: None,
            }),
            json!({"channel": "lobby", "client_id": null}),
        ),
    ];
    for (about, old_payload) in errors {
        same(
            Outbound::Error(ErrorFrame::new(
                ErrorCode::RateLimited,
                "slow \"down\"",
                about,
            )),
            old::error_frame("rate_limited", "slow \"down\"", old_payload),
        );
    }
}

#[test]
fn seed_004_frames_are_byte_for_byte_the_old_ones() {
    for ev in events() {
        for peer in ["", "605f4cec"] {
            let message = seed004::Message::from_event(&ev, peer);
            let old_frame = old::envelope("channelMessage", old::message(&ev, peer));
            same(Outbound::ChannelMessage(message), old_frame);
        }
    }
    let users = vec![
        seed004::User::new("u-1", "alice", true),
        seed004::User::new("u-2", "bob", false),
    ];
    let old_users = vec![
        old::user("u-1", "alice", true),
        old::user("u-2", "bob", false),
    ];
    same(
        Outbound::Users(UserList {
            received: 2,
            total: 5,
            users: users.clone(),
        }),
        old::envelope(
            "users",
            json!({"total": 5, "received": 2, "users": old_users}),
        ),
    );
    let evs = events();
    same(
        Outbound::ChannelJoin(ChannelJoined {
            messages: evs
                .iter()
                .map(|e| seed004::Message::from_event(e, "p"))
                .collect(),
            recipient_uuid: "p".into(),
            users,
        }),
        old::envelope(
            "channelJoin",
            json!({
                "recipientUUID": "p",
                "messages": evs.iter().map(|e| old::message(e, "p")).collect::<Vec<_>>(),
                "users": old_users,
            }),
        ),
    );
    same(
        Outbound::ChannelLeave(ChannelLeft {
            recipient_uuid: "p".into(),
        }),
        old::envelope("channelLeave", json!({"recipientUUID": "p"})),
    );
    same(
        Outbound::Sys(Sys::SignIn(SignedIn {
            username: "alice".into(),
            uuid: "u-1".into(),
        })),
        old::envelope(
            "sys",
            json!({"type": "signIn", "signIn": {"uuid": "u-1", "username": "alice"}}),
        ),
    );
    for online in [true, false] {
        let kind = if online { "online" } else { "offline" };
        let user = seed004::User::new("u-1", "alice", online);
        let sys = if online {
            Sys::Online(user)
        } else {
            Sys::Offline(user)
        };
        same(
            Outbound::Sys(sys),
            old::envelope(
                "sys",
                json!({"type": kind, kind: old::user("u-1", "alice", online)}),
            ),
        );
    }
}
