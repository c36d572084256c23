//! The chat frames the load generator writes and reads (docs/PROTOCOL.md), and the text format of
//! its own messages. Everything the tool knows about the wire is here, so that a change of a
//! frame is a change of this file alone.
//!
//! Reading is the hot path (a worker sees 100,000s of frames per second): one borrowed serde pass
//! over the envelope, no allocation for a delivery. The payload sits under a key named like the
//! frame's `type`, so each payload key gets its own small type, and a payload only counts when
//! `type` names it: key order and look-alike text inside a message cannot fool it.

use std::borrow::Cow;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

/// First word of every message text the tool sends: `lg1 <run> <sender> <seq> <sent µs> x…`.
pub const TAG: &str = "lg1";

/// What a frame from the node means to the tool.
#[derive(Debug, PartialEq)]
pub enum Inbound<'a> {
    /// A `message` event whose text is one of the tool's own posts (of this run or another).
    Delivery(Delivery<'a>),
    /// `posted`: the sequence number of the acknowledged post, read from its `client_id`.
    Posted(Option<u64>),
    /// `error`, with its code.
    Error(String),
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
    /// The sender's clock when it sent the post (unix µs).
    pub sent_us: u64,
}

/// The envelope of a frame from the node: `type` and the payloads the tool reads.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    message: Option<Event<'a>>,
    #[serde(borrow)]
    posted: Option<Posted<'a>>,
    #[serde(borrow)]
    error: Option<ErrorBody<'a>>,
}

/// The event object of a `message` frame (only what the tool reads). serde borrows a `Cow` only
/// when it is the field's own type (inside an `Option` it would copy), hence the defaults.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Cow<'a, str>,
}

/// The payload of `posted` (copied: one per post, not one per delivery).
#[derive(Deserialize)]
struct Posted<'a> {
    #[serde(borrow)]
    client_id: Option<Cow<'a, str>>,
}

/// The payload of `error`.
#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
}

/// Reads one text frame from the node.
pub fn parse(frame: &str) -> Inbound<'_> {
    let Ok(env) = serde_json::from_str::<Envelope>(frame) else {
        return Inbound::Other;
    };
    match &*env.kind {
        "message" => env
            .message
            .and_then(delivery)
            .map_or(Inbound::Other, Inbound::Delivery),
        "posted" => Inbound::Posted(
            env.posted
                .and_then(|p| p.client_id)
                .and_then(|id| seq_of_client_id(&id)),
        ),
        "error" => Inbound::Error(
            env.error
                .and_then(|e| e.code)
                .map_or_else(|| "error".to_string(), Cow::into_owned),
        ),
        "authorized" => Inbound::Authorized,
        "subscribed" => Inbound::Subscribed,
        _ => Inbound::Other,
    }
}

/// The stamp of one of the tool's messages. Its texts never need JSON escapes, so a text that
/// had them (an owned copy) is someone else's.
fn delivery(ev: Event<'_>) -> Option<Delivery<'_>> {
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

/// Any frame to the node: `{"type": kind, kind: payload}`.
struct Outbound<'a, P>(&'a str, P);

impl<P: Serialize> Serialize for Outbound<'_, P> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("type", self.0)?;
        map.serialize_entry(self.0, &self.1)?;
        map.end()
    }
}

fn to_frame<P: Serialize>(kind: &str, payload: P) -> String {
    serde_json::to_string(&Outbound(kind, payload)).expect("frames serialize")
}

/// A `post` frame.
pub fn post(channel: &str, text: &str, client_id: &str) -> String {
    #[derive(Serialize)]
    struct Post<'a> {
        channel: &'a str,
        text: &'a str,
        client_id: &'a str,
    }
    to_frame(
        "post",
        Post {
            channel,
            text,
            client_id,
        },
    )
}

/// A `subscribe` frame for one channel.
pub fn subscribe(channel: &str) -> String {
    #[derive(Serialize)]
    struct Subscribe<'a> {
        channels: [&'a str; 1],
    }
    to_frame(
        "subscribe",
        Subscribe {
            channels: [channel],
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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

    /// The documented frame with the text and client_id of one of the tool's posts.
    fn ours(doc: &str, text: &str, client_id: &str) -> String {
        let mut v: Value = serde_json::from_str(doc).unwrap();
        let kind = v["type"].as_str().unwrap().to_string();
        if v[&kind].get("text").is_some() {
            v[&kind]["text"] = json!(text);
        }
        if v[&kind].get("client_id").is_some() {
            v[&kind]["client_id"] = json!(client_id);
        }
        v.to_string()
    }

    #[test]
    fn reads_the_documented_frames() {
        assert_eq!(parse(AUTHORIZED), Inbound::Authorized);
        assert_eq!(parse(SUBSCRIBED), Inbound::Subscribed);
        assert_eq!(parse(ERROR), Inbound::Error("forbidden".into()));
        assert_eq!(
            parse(POSTED),
            Inbound::Posted(None),
            "c-1 carries no sequence"
        );
        // Other people's messages, joins and mentions are not deliveries of the tool.
        for other in [MESSAGE, JOIN, MENTION, POST, SUBSCRIBE] {
            assert_eq!(parse(other), Inbound::Other, "{other}");
        }
    }

    #[test]
    fn reads_its_own_posts_and_their_acknowledgements() {
        let text = message_text("ab12", 12, 3, 1000, 64);
        let id = client_id("ab12", 12, 3);
        assert_eq!(
            parse(&ours(MESSAGE, &text, &id)),
            Inbound::Delivery(Delivery {
                run: "ab12",
                sender: 12,
                seq: 3,
                sent_us: 1000
            })
        );
        assert_eq!(parse(&ours(POSTED, &text, &id)), Inbound::Posted(Some(3)));
        // A mention or a join with the same text is no delivery.
        assert_eq!(parse(&ours(MENTION, &text, &id)), Inbound::Other);
        assert_eq!(parse(&ours(JOIN, &text, &id)), Inbound::Other);
    }

    #[test]
    fn key_order_and_look_alike_text_do_not_matter() {
        // The node writes keys sorted (`type` last); the documents write `type` first.
        let sorted = r#"{"message":{"channel":"r","created_at":1,"id":"1-0","text":"lg1 ab 12 3 1000 xxx","type":"message","username":"u","uuid":"x"},"type":"message"}"#;
        assert!(matches!(parse(sorted), Inbound::Delivery(d) if d.seq == 3));
        // Someone's message quoting frames is still just a message.
        let quoting = ours(MESSAGE, r#""type":"posted" "type":"error" lg1"#, "");
        assert_eq!(parse(&quoting), Inbound::Other);
        let escaped = ours(MESSAGE, "lg1 ab 12 3 1000 \"quoted\"", "");
        assert_eq!(parse(&escaped), Inbound::Other);
        assert_eq!(parse("not json"), Inbound::Other);
        assert_eq!(
            parse(r#"{"type":"error","error":{}}"#),
            Inbound::Error("error".into())
        );
    }

    #[test]
    fn writes_frames_of_the_documented_shape() {
        let shape = |f: &str| {
            let mut v: Value = serde_json::from_str(f).unwrap();
            let kind = v["type"].as_str().unwrap().to_string();
            for field in v[&kind].as_object_mut().unwrap().values_mut() {
                *field = match field {
                    Value::Array(_) => json!([]),
                    _ => Value::Null,
                };
            }
            v
        };
        let p = post(
            "lg-room-0",
            &message_text("ab", 5, 9, 123, 64),
            &client_id("ab", 5, 9),
        );
        assert_eq!(shape(&p), shape(POST));
        assert!(p.starts_with(r#"{"type":"post","#), "{p}");
        let v: Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["post"]["text"].as_str().unwrap().len(), 64);
        assert_eq!(v["post"]["client_id"], "ab.5.9");
        let s = subscribe("lg-room-3");
        assert_eq!(shape(&s), shape(SUBSCRIBE));
        assert_eq!(
            serde_json::from_str::<Value>(&s).unwrap()["subscribe"]["channels"],
            json!(["lg-room-3"])
        );
    }

    #[test]
    fn a_sent_post_reads_back_as_its_delivery() {
        let text = message_text("run1", 7, 42, 99, 80);
        let p: Value = serde_json::from_str(&post("r", &text, &client_id("run1", 7, 42))).unwrap();
        // The node's `message` frame carries the posted text unchanged.
        let echoed = json!({"type": "message", "message": {
            "id": "1-0", "channel": "r", "type": "message", "username": "u",
            "text": p["post"]["text"], "created_at": 1, "uuid": "x"}});
        assert_eq!(
            parse(&echoed.to_string()),
            Inbound::Delivery(Delivery {
                run: "run1",
                sender: 7,
                seq: 42,
                sent_us: 99
            })
        );
    }
}
