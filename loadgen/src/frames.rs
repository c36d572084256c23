//! The chat frames the load generator writes and reads, through the server's own frame types
//! (`chatnode-protocol`), and the text format of its own messages. Everything the tool knows
//! about the wire is here, so that a change of a frame is a change of this file alone.
//!
//! Writing goes through [`chatnode_protocol::Inbound`]. Reading has one hot path: a worker sees
//! 100,000s of `message` frames per second, so those are read with one borrowed serde pass and no
//! allocation ([`MessagePeek`]), a view of [`chatnode_protocol::ChatEvent`] that the tests hold
//! against frames the protocol crate serializes. Every other frame (one per post at most) is read
//! whole as a [`chatnode_protocol::Outbound`]. A payload only counts when `type` names it: key
//! order and look-alike text inside a message cannot fool the reader.

use std::borrow::Cow;

use chatnode_protocol::{ErrorAbout, ErrorCode, ErrorFrame, Inbound, Outbound};
use serde::Deserialize;

/// First word of every message text the tool sends: `lg1 <run> <sender> <seq> <sent µs> x…`.
pub const TAG: &str = "lg1";

/// How long to wait before re-sending a post refused as `busy` without a `retry_after_ms`.
pub const DEFAULT_RETRY_AFTER_MS: u64 = 100;

/// What a frame from the node means to the tool.
#[derive(Debug, PartialEq)]
pub enum Received<'a> {
    /// A `message` event whose text is one of the tool's own posts (of this run or another).
    Delivery(Delivery<'a>),
    /// `posted`: the sequence number of the acknowledged post, read from its `client_id`.
    Posted(Option<u64>),
    /// `error` with code `busy`: the node did not take the post now; send it again later.
    Busy {
        /// The refused post's sequence number, read from its `client_id`.
        seq: Option<u64>,
        retry_after_ms: u64,
    },
    /// Any other `error`.
    Error {
        code: String,
        /// The failed post's sequence number, when the error names one of the tool's posts.
        seq: Option<u64>,
    },
    Authorized,
    Subscribed,
    /// Anything else: other events, other people's messages, frames it cannot read.
    Other,
}

/// The stamp the sender wrote into a message text.
#[derive(Debug, PartialEq)]
pub struct Delivery<'a> {
    pub run: &'a str,
    pub sender: u32,
    pub seq: u64,
    /// The sender's clock when it first sent the post (unix µs).
    pub sent_us: u64,
}

/// The two keys of every frame the hot path needs: `type`, and the payload of a `message`.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    message: Option<MessagePeek<'a>>,
}

/// The fields of [`chatnode_protocol::ChatEvent`] the tool reads, borrowed from the frame. serde
/// borrows a `Cow` only when it is the field's own type (inside an `Option` it would copy), hence
/// the defaults.
#[derive(Deserialize)]
struct MessagePeek<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Cow<'a, str>,
}

/// Reads one text frame from the node.
pub fn parse(frame: &str) -> Received<'_> {
    let Ok(peek) = serde_json::from_str::<Peek>(frame) else {
        return Received::Other;
    };
    match &*peek.kind {
        "message" => peek
            .message
            .and_then(delivery)
            .map_or(Received::Other, Received::Delivery),
        "posted" | "error" | "authorized" | "subscribed" => {
            match serde_json::from_str::<Outbound>(frame) {
                Ok(full) => answer(full),
                // An error the tool cannot read whole still answers a post.
                Err(_) if peek.kind == "error" => Received::Error {
                    code: "error".into(),
                    seq: None,
                },
                Err(_) => Received::Other,
            }
        }
        _ => Received::Other,
    }
}

/// What an answer frame of the node says about the tool's socket or posts.
fn answer(frame: Outbound) -> Received<'static> {
    match frame {
        Outbound::Posted(p) => Received::Posted(p.client_id.as_deref().and_then(seq_of_client_id)),
        Outbound::Error(e) => error(e),
        Outbound::Authorized(_) => Received::Authorized,
        Outbound::Subscribed(_) => Received::Subscribed,
        _ => Received::Other,
    }
}

fn error(e: ErrorFrame) -> Received<'static> {
    let seq = match &e.payload {
        Some(ErrorAbout::Post {
            client_id: Some(id),
            ..
        }) => seq_of_client_id(id),
        _ => None,
    };
    match e.code {
        ErrorCode::Busy => Received::Busy {
            seq,
            retry_after_ms: e.retry_after_ms.unwrap_or(DEFAULT_RETRY_AFTER_MS),
        },
        code => Received::Error {
            code: code.as_str().to_string(),
            seq,
        },
    }
}

/// The stamp of one of the tool's messages. Its texts never need JSON escapes, so a text that
/// had them (an owned copy) is someone else's.
fn delivery(ev: MessagePeek<'_>) -> Option<Delivery<'_>> {
    if ev.kind != "message" {
        return None;
    }
    let Cow::Borrowed(text) = ev.text else {
        return None;
    };
    let mut f = text.strip_prefix(TAG)?.strip_prefix(' ')?.split(' ');
    Some(Delivery {
        run: f.next()?,
        sender: f.next()?.parse().ok()?,
        seq: f.next()?.parse().ok()?,
        sent_us: f.next()?.parse().ok()?,
    })
}

/// The text of a post: the stamp, padded with `x` to `bytes`.
pub fn message_text(run: &str, sender: usize, seq: u64, sent_us: u64, bytes: usize) -> String {
    let mut text = format!("{TAG} {run} {sender} {seq} {sent_us} ");
    while text.len() < bytes {
        text.push('x');
    }
    text
}

/// The `client_id` of a post: `<run>.<sender>.<seq>`. The node stores a post once per user,
/// channel and client_id, so sockets sharing a user, and later runs, need ids of their own.
pub fn client_id(run: &str, sender: usize, seq: u64) -> String {
    format!("{run}.{sender}.{seq}")
}

/// The sequence number at the end of a [`client_id`].
fn seq_of_client_id(id: &str) -> Option<u64> {
    id.rsplit('.').next()?.parse().ok()
}

/// A `post` frame.
pub fn post(channel: &str, text: String, client_id: String) -> String {
    Inbound::Post {
        channel: channel.to_string(),
        text,
        client_id: Some(client_id),
        reply_to: None,
    }
    .to_json()
}

/// A `subscribe` frame for one channel.
pub fn subscribe(channel: &str) -> String {
    Inbound::Subscribe {
        channels: vec![channel.to_string()],
    }
    .to_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatnode_protocol::outbound::{message_json, Authorized, Posted, Subscribed};
    use chatnode_protocol::ChatEvent;
    use serde_json::Value;

    // Frames as docs/PROTOCOL.md shows them.
    const AUTHORIZED: &str = r#"{"type": "authorized", "authorized": {"userUUID": "4aaa907a-8ad1-41c8-8996-c173d11d319f", "username": "carol"}}"#;
    const SUBSCRIBED: &str = r#"{"type": "subscribed", "subscribed": {"channel": "lobby", "last_id": "1795434142223-0", "replayed": 0, "resumed": false}}"#;
    const MESSAGE: &str = r#"{"type": "message", "message": {"id": "1795434153618-0", "channel": "lobby", "type": "message", "username": "dave", "text": "hi all", "created_at": 1795434153618, "uuid": "8108ea69-3a4d-457c-904c-3ee932134e12"}}"#;
    const JOIN: &str = r#"{"type": "message", "message": {"id": "1795434142193-0", "channel": "lobby", "type": "join", "username": "dave", "text": "", "created_at": 1795434142193, "uuid": "8108ea69-3a4d-457c-904c-3ee932134e12"}}"#;
    const POSTED: &str = r#"{"type": "posted", "posted": {"client_id": "c-1", "id": "1795434153618-0", "channel": "lobby", "created_at": 1795434153618}}"#;
    const ERROR: &str = r#"{"type": "error", "error": {"code": "forbidden", "error": "join the channel before posting",
 "message": "join the channel before posting", "payload": null}}"#;
    const MENTION: &str = r#"{"type": "mention", "mention": {"id": "1795434160215-0", "channel": "lobby", "type": "message", "username": "carol", "text": "@dave have a look", "created_at": 1795434160215, "uuid": "4aaa907a-8ad1-41c8-8996-c173d11d319f"}}"#;
    const POST: &str =
        r#"{"type": "post", "post": {"channel": "lobby", "text": "hi all", "client_id": "c-1"}}"#;
    const SUBSCRIBE: &str =
        r#"{"type": "subscribe", "subscribe": {"channels": ["lobby", "dm:carol:dave"]}}"#;

    /// An event of the tool's own kind, as the server stores it.
    fn event(kind: &str, text: &str) -> ChatEvent {
        ChatEvent {
            id: "1795434153618-0".into(),
            channel: "lg-room-0".into(),
            kind: kind.into(),
            username: "lg-user-7".into(),
            text: text.into(),
            created_at: 1_795_434_153_618,
            uuid: "8108ea69-3a4d-457c-904c-3ee932134e12".into(),
            voice: None,
            ..Default::default()
        }
    }

    fn posted(client_id: Option<&str>) -> String {
        Outbound::Posted(Posted {
            channel: "lg-room-0".into(),
            client_id: client_id.map(String::from),
            created_at: 1,
            id: "1-0".into(),
        })
        .to_json()
    }

    fn refused(code: ErrorCode, client_id: Option<&str>, retry_after_ms: Option<u64>) -> String {
        let about = ErrorAbout::Post {
            channel: "lg-room-0".into(),
            client_id: client_id.map(String::from),
        };
        let mut e = ErrorFrame::new(code, "the server is busy", Some(about));
        e.retry_after_ms = retry_after_ms;
        Outbound::Error(e).to_json()
    }

    #[test]
    fn reads_the_documented_frames() {
        assert_eq!(parse(AUTHORIZED), Received::Authorized);
        assert_eq!(parse(SUBSCRIBED), Received::Subscribed);
        assert_eq!(
            parse(ERROR),
            Received::Error {
                code: "forbidden".into(),
                seq: None
            }
        );
        assert_eq!(
            parse(POSTED),
            Received::Posted(None),
            "c-1 carries no sequence"
        );
        // Other people's messages, joins and mentions are not deliveries of the tool.
        for other in [MESSAGE, JOIN, MENTION, POST, SUBSCRIBE] {
            assert_eq!(parse(other), Received::Other, "{other}");
        }
    }

    #[test]
    fn reads_message_frames_the_protocol_crate_writes() {
        let text = message_text("ab12", 12, 3, 1000, 64);
        let ev = event("message", &text);
        let want = Received::Delivery(Delivery {
            run: "ab12",
            sender: 12,
            seq: 3,
            sent_us: 1000,
        });
        // Both ways the server writes a `message` frame: the room's fan-out and the enum.
        let fan_out = message_json(&ev);
        assert_eq!(parse(&fan_out), want);
        let whole = Outbound::Message(ev.clone()).to_json();
        assert_eq!(whole, fan_out);
        // The fast path reads what the full frame type reads.
        match serde_json::from_str::<Outbound>(&whole).unwrap() {
            Outbound::Message(back) => assert_eq!(back.text, text),
            other => panic!("{other:?}"),
        }
        // A mention, a join or a voice message with the same text is no delivery.
        assert_eq!(
            parse(&Outbound::Mention(ev.clone()).to_json()),
            Received::Other
        );
        assert_eq!(parse(&message_json(&event("join", &text))), Received::Other);
        // Someone else's text, or one with escapes, is no delivery either.
        assert_eq!(
            parse(&message_json(&event("message", "hi all"))),
            Received::Other
        );
        let quoted = message_json(&event("message", "lg1 ab 12 3 1000 \"quoted\""));
        assert_eq!(parse(&quoted), Received::Other);
    }

    #[test]
    fn reads_answers_the_protocol_crate_writes() {
        let id = client_id("ab12", 12, 3);
        assert_eq!(parse(&posted(Some(&id))), Received::Posted(Some(3)));
        assert_eq!(parse(&posted(None)), Received::Posted(None));
        let authorized = Outbound::Authorized(Authorized {
            access_key: None,
            user_uuid: "u".into(),
            username: "lg-user-1".into(),
        });
        assert_eq!(parse(&authorized.to_json()), Received::Authorized);
        let subscribed = Outbound::Subscribed(Subscribed {
            channel: "lg-room-0".into(),
            gap: None,
            last_id: "0-0".into(),
            replayed: 0,
            resumed: false,
        });
        assert_eq!(parse(&subscribed.to_json()), Received::Subscribed);
        assert_eq!(
            parse(&refused(ErrorCode::RateLimited, Some(&id), None)),
            Received::Error {
                code: "rate_limited".into(),
                seq: Some(3)
            }
        );
    }

    #[test]
    fn reads_busy_with_its_post_and_wait() {
        let id = client_id("ab12", 12, 41);
        let frame = refused(ErrorCode::Busy, Some(&id), Some(250));
        assert!(frame.contains(r#""retry_after_ms":250"#), "{frame}");
        assert_eq!(
            parse(&frame),
            Received::Busy {
                seq: Some(41),
                retry_after_ms: 250
            }
        );
        // As the issue shows it, keys in any order.
        let documented = r#"{"type":"error","error":{"code":"busy","error":"busy","message":"busy","payload":{"channel":"c","client_id":"x.1.7"},"retry_after_ms":30}}"#;
        assert_eq!(
            parse(documented),
            Received::Busy {
                seq: Some(7),
                retry_after_ms: 30
            }
        );
        // Without a wait, a short default one.
        assert_eq!(
            parse(&refused(ErrorCode::Busy, None, None)),
            Received::Busy {
                seq: None,
                retry_after_ms: DEFAULT_RETRY_AFTER_MS
            }
        );
        // Other errors carry no wait at all.
        let other = refused(ErrorCode::Forbidden, Some(&id), None);
        assert!(!other.contains("retry_after_ms"), "{other}");
    }

    #[test]
    fn key_order_and_look_alike_text_do_not_matter() {
        // The node writes keys sorted (`type` last); the documents write `type` first.
        let sorted = r#"{"message":{"channel":"r","created_at":1,"id":"1-0","text":"lg1 ab 12 3 1000 xxx","type":"message","username":"u","uuid":"x"},"type":"message"}"#;
        assert!(matches!(parse(sorted), Received::Delivery(d) if d.seq == 3));
        // Someone's message quoting frames is still just a message.
        let quoting = message_json(&event("message", r#""type":"posted" "type":"error" lg1"#));
        assert_eq!(parse(&quoting), Received::Other);
        assert_eq!(parse("not json"), Received::Other);
        assert_eq!(
            parse(r#"{"type":"error","error":{}}"#),
            Received::Error {
                code: "error".into(),
                seq: None
            }
        );
    }

    #[test]
    fn writes_frames_the_protocol_crate_reads() {
        let text = message_text("ab", 5, 9, 123, 64);
        let p = post("lg-room-0", text.clone(), client_id("ab", 5, 9));
        assert_eq!(
            chatnode_protocol::decode(&p).unwrap(),
            Inbound::Post {
                channel: "lg-room-0".into(),
                text,
                client_id: Some("ab.5.9".into()),
                reply_to: None,
            }
        );
        let v: Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["post"]["text"].as_str().unwrap().len(), 64);
        let s = subscribe("lg-room-3");
        assert_eq!(
            chatnode_protocol::decode(&s).unwrap(),
            Inbound::Subscribe {
                channels: vec!["lg-room-3".into()]
            }
        );
        // The documented frames, read the same way.
        assert!(chatnode_protocol::decode(POST).is_ok());
        assert!(chatnode_protocol::decode(SUBSCRIBE).is_ok());
    }

    #[test]
    fn a_sent_post_reads_back_as_its_delivery() {
        let text = message_text("run1", 7, 42, 99, 80);
        let p: Value =
            serde_json::from_str(&post("r", text.clone(), client_id("run1", 7, 42))).unwrap();
        // The node's `message` frame carries the posted text unchanged.
        let echoed = message_json(&event("message", p["post"]["text"].as_str().unwrap()));
        assert_eq!(
            parse(&echoed),
            Received::Delivery(Delivery {
                run: "run1",
                sender: 7,
                seq: 42,
                sent_us: 99
            })
        );
    }
}
