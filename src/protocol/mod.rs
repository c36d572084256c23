//! Every client⇄server frame, as plain serde types; no I/O here.
//!
//! Frames share one envelope: `{"type": T, T: payload}`. Two families live side by side:
//! seed 004's frames (`signIn`, `channelJoin`, `channelMessage`, …), kept exactly as that
//! document and its React client use them, and chatnode's own (`subscribe`, `post`, `resume`, …).
//! docs/PROTOCOL.md describes each with examples.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A frame a client sent, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// 004: sign in, creating the user when missing.
    SignIn(Credentials),
    /// 004: register, then sign in.
    SignUp(Credentials),
    /// 004: sign out of this socket.
    SignOut,
    /// 004: join the public General channel (empty) or the DM with that user's UUID.
    ChannelJoin { recipient_uuid: String },
    /// 004: leave that channel.
    ChannelLeave { recipient_uuid: String },
    /// 004: post into the joined channel.
    ChannelMessage {
        recipient_uuid: String,
        message: String,
    },
    /// 004: list users with their online state.
    Users,
    /// chatnode: authenticate this socket with a session token.
    Auth { token: String },
    /// chatnode: receive live events of these channels.
    Subscribe { channels: Vec<String> },
    /// chatnode: stop receiving them.
    Unsubscribe { channels: Vec<String> },
    /// chatnode: after a reconnect, replay what was missed after these IDs, then go live.
    Resume { channels: BTreeMap<String, String> },
    /// chatnode: post into a channel by name.
    Post {
        channel: String,
        text: String,
        client_id: Option<String>,
    },
    /// chatnode: one page of history.
    History {
        channel: String,
        before: Option<String>,
        after: Option<String>,
        limit: Option<usize>,
    },
    /// chatnode: everything up to `last_id` has been read.
    Read { channel: String, last_id: String },
    /// chatnode: the user is typing in a channel (ephemeral).
    Typing { channel: String },
}

/// `signIn` / `signUp` payload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    pub code: &'static str,
    pub message: String,
}

fn bad(code: &'static str, message: impl Into<String>) -> DecodeError {
    DecodeError {
        code,
        message: message.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recipient {
    #[serde(rename = "recipientUUID", default)]
    recipient_uuid: String,
}

#[derive(Deserialize)]
struct ChannelMessagePayload {
    #[serde(rename = "recipientUUID", default)]
    recipient_uuid: String,
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthPayload {
    token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelsPayload {
    channels: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResumePayload {
    channels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostPayload {
    channel: String,
    text: String,
    #[serde(default)]
    client_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryPayload {
    channel: String,
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadPayload {
    channel: String,
    last_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TypingPayload {
    channel: String,
}

/// Decodes one text frame. Fields outside the payload (`userUUID`, `SUUID`, …) are ignored:
/// the connection, not the frame, says who the user is.
pub fn decode(text: &str) -> Result<Inbound, DecodeError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| bad("invalid_json", format!("not JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(bad("invalid_frame", "a frame is a JSON object"));
    };
    let kind = match obj.get("type") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad("invalid_frame", "`type` must be a string")),
        None => return Err(bad("invalid_frame", "a frame needs a `type`")),
    };
    let payload = obj.remove(&kind).unwrap_or(Value::Null);
    fn take<T: serde::de::DeserializeOwned>(kind: &str, v: Value) -> Result<T, DecodeError> {
        if v.is_null() {
            return Err(bad(
                "invalid_frame",
                format!("`{kind}` frame needs a `{kind}` object"),
            ));
        }
        serde_json::from_value(v).map_err(|e| bad("invalid_frame", format!("`{kind}`: {e}")))
    }
    Ok(match kind.as_str() {
        "signIn" => Inbound::SignIn(take(&kind, payload)?),
        "signUp" => Inbound::SignUp(take(&kind, payload)?),
        "signOut" => Inbound::SignOut,
        "users" => Inbound::Users,
        "channelJoin" => {
            let r: Recipient = if payload.is_null() {
                Recipient {
                    recipient_uuid: String::new(),
                }
            } else {
                take(&kind, payload)?
            };
            Inbound::ChannelJoin {
                recipient_uuid: r.recipient_uuid,
            }
        }
        "channelLeave" => {
            let r: Recipient = if payload.is_null() {
                Recipient {
                    recipient_uuid: String::new(),
                }
            } else {
                take(&kind, payload)?
            };
            Inbound::ChannelLeave {
                recipient_uuid: r.recipient_uuid,
            }
        }
        "channelMessage" => {
            let p: ChannelMessagePayload = take(&kind, payload)?;
            Inbound::ChannelMessage {
                recipient_uuid: p.recipient_uuid,
                message: p.message,
            }
        }
        "auth" => Inbound::Auth {
            token: take::<AuthPayload>(&kind, payload)?.token,
        },
        "subscribe" => Inbound::Subscribe {
            channels: take::<ChannelsPayload>(&kind, payload)?.channels,
        },
        "unsubscribe" => Inbound::Unsubscribe {
            channels: take::<ChannelsPayload>(&kind, payload)?.channels,
        },
        "resume" => Inbound::Resume {
            channels: take::<ResumePayload>(&kind, payload)?.channels,
        },
        "post" => {
            let p: PostPayload = take(&kind, payload)?;
            Inbound::Post {
                channel: p.channel,
                text: p.text,
                client_id: p.client_id,
            }
        }
        "history" => {
            let p: HistoryPayload = take(&kind, payload)?;
            Inbound::History {
                channel: p.channel,
                before: p.before,
                after: p.after,
                limit: p.limit,
            }
        }
        "read" => {
            let p: ReadPayload = take(&kind, payload)?;
            Inbound::Read {
                channel: p.channel,
                last_id: p.last_id,
            }
        }
        "typing" => Inbound::Typing {
            channel: take::<TypingPayload>(&kind, payload)?.channel,
        },
        other => return Err(bad("unknown_type", format!("unknown frame type `{other}`"))),
    })
}

/// Wraps a payload in the envelope: `{"type": kind, kind: payload}`.
pub fn envelope(kind: &str, payload: Value) -> String {
    let mut obj = serde_json::Map::with_capacity(2);
    obj.insert("type".into(), Value::String(kind.into()));
    obj.insert(kind.into(), payload);
    Value::Object(obj).to_string()
}

/// An `error` frame: seed 004 names the text `error`, its client reads `message`; both are sent.
pub fn error_frame(code: &str, message: &str, payload: Value) -> String {
    envelope(
        "error",
        json!({"code": code, "error": message, "message": message, "payload": payload}),
    )
}

/// One stored event of a channel (a message, a join, a leave, …) as chatnode frames carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatEvent {
    /// Stream ID: the event's place in the channel, and its time.
    pub id: String,
    pub channel: String,
    /// `message`, `join`, `leave`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub username: String,
    /// Message text (empty for join and leave).
    pub text: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Sender's UUID, when known (seed 004 addresses users by UUID).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uuid: String,
    /// Voice messages and their `transcript` events only: audio, length, transcript state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<crate::voice::VoiceInfo>,
}

/// RFC 3339 UTC time of unix milliseconds, as seed 004's `CreatedAt`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Seed 004's user object.
pub fn legacy_user(uuid: &str, username: &str, online: bool) -> Value {
    json!({"UUID": uuid, "Username": username, "OnLine": online})
}

/// The text seed 004's clients show: a voice message without its transcript yet says what it is.
fn legacy_text(ev: &ChatEvent) -> String {
    match &ev.voice {
        Some(v) if ev.text.is_empty() => {
            format!("(voice message, {} s)", v.duration_ms.div_ceil(1000))
        }
        _ => ev.text.clone(),
    }
}

/// Seed 004's message object, with `RecipientUUID` as the receiving client files it: the other
/// party's UUID for a DM, empty for the public channel.
pub fn legacy_message(ev: &ChatEvent, recipient_uuid: &str) -> Value {
    json!({
        "UUID": ev.id,
        "SenderUUID": ev.uuid,
        "Sender": {"UUID": ev.uuid, "Username": ev.username},
        "RecipientUUID": recipient_uuid,
        "Message": legacy_text(ev),
        "CreatedAt": rfc3339(ev.created_at),
        "id": ev.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_seed_004_frames_ignoring_claimed_identity() {
        let f = decode(r#"{"type":"signIn","signIn":{"username":"a","password":"b"}}"#).unwrap();
        assert_eq!(
            f,
            Inbound::SignIn(Credentials {
                username: "a".into(),
                password: "b".into()
            })
        );
        let f = decode(r#"{"type":"users","SSUID":"x","userUUID":"forged"}"#).unwrap();
        assert_eq!(f, Inbound::Users);
        let f =
            decode(r#"{"type":"channelJoin","userUUID":"","channelJoin":{"recipientUUID":""}}"#)
                .unwrap();
        assert_eq!(
            f,
            Inbound::ChannelJoin {
                recipient_uuid: String::new()
            }
        );
        let f = decode(
            r#"{"type":"channelMessage","channelMessage":{"recipientUUID":"u","message":"hi"}}"#,
        )
        .unwrap();
        assert_eq!(
            f,
            Inbound::ChannelMessage {
                recipient_uuid: "u".into(),
                message: "hi".into()
            }
        );
    }

    #[test]
    fn rejects_bad_frames_with_codes() {
        assert_eq!(decode("{").unwrap_err().code, "invalid_json");
        assert_eq!(decode("[]").unwrap_err().code, "invalid_frame");
        assert_eq!(
            decode(r#"{"type":"nope"}"#).unwrap_err().code,
            "unknown_type"
        );
        assert_eq!(
            decode(r#"{"type":"post","post":{"channel":1,"text":"x"}}"#)
                .unwrap_err()
                .code,
            "invalid_frame"
        );
        assert_eq!(
            decode(r#"{"type":"post"}"#).unwrap_err().code,
            "invalid_frame"
        );
        assert_eq!(decode(r#"{"type":3}"#).unwrap_err().code, "invalid_frame");
    }

    #[test]
    fn formats_times_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_631_623_305_083), "2021-09-14T12:41:45.083Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn error_frames_carry_both_text_fields() {
        let v: Value = serde_json::from_str(&error_frame("forbidden", "no", Value::Null)).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["error"], "no");
        assert_eq!(v["error"]["message"], "no");
        assert_eq!(v["error"]["code"], "forbidden");
    }
}
