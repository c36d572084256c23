//! Frames a client sends: [`Inbound`], read by [`decode`] and written by its `Serialize`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope;
use crate::error::ErrorCode;

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
        /// The ID of a message of the same channel this one answers.
        reply_to: Option<String>,
    },
    /// chatnode: change the text of one's own message.
    Edit {
        channel: String,
        id: String,
        text: String,
        client_id: Option<String>,
    },
    /// chatnode: delete one's own message, leaving a tombstone.
    Delete {
        channel: String,
        id: String,
        client_id: Option<String>,
    },
    /// chatnode: add (`react`) or take back (`unreact`) an emoji reaction.
    React {
        channel: String,
        id: String,
        emoji: String,
        client_id: Option<String>,
        add: bool,
    },
    /// chatnode: one page of a message's replies.
    Replies {
        channel: String,
        id: String,
        before: Option<String>,
        after: Option<String>,
        limit: Option<usize>,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    pub code: ErrorCode,
    pub message: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

fn bad(code: ErrorCode, message: impl Into<String>) -> DecodeError {
    DecodeError {
        code,
        message: message.into(),
    }
}

// Payloads as they sit in a frame. They borrow when a frame is written (no copies per frame) and
// own what they read.

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Recipient<'a> {
    #[serde(rename = "recipientUUID", default)]
    recipient_uuid: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
struct ChannelMessagePayload<'a> {
    #[serde(rename = "recipientUUID", default)]
    recipient_uuid: Cow<'a, str>,
    message: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthPayload<'a> {
    token: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelsPayload<'a> {
    channels: Cow<'a, [String]>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResumePayload<'a> {
    channels: Cow<'a, BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostPayload<'a> {
    channel: Cow<'a, str>,
    text: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply_to: Option<Cow<'a, str>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EditPayload<'a> {
    channel: Cow<'a, str>,
    id: Cow<'a, str>,
    text: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<Cow<'a, str>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeletePayload<'a> {
    channel: Cow<'a, str>,
    id: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<Cow<'a, str>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReactPayload<'a> {
    channel: Cow<'a, str>,
    id: Cow<'a, str>,
    emoji: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<Cow<'a, str>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepliesPayload<'a> {
    channel: Cow<'a, str>,
    id: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<usize>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryPayload<'a> {
    channel: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<usize>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadPayload<'a> {
    channel: Cow<'a, str>,
    last_id: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypingPayload<'a> {
    channel: Cow<'a, str>,
}

/// Decodes one text frame. Fields outside the payload (`userUUID`, `SUUID`, …) are ignored:
/// the connection, not the frame, says who the user is.
pub fn decode(text: &str) -> Result<Inbound, DecodeError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| bad(ErrorCode::InvalidJson, format!("not JSON: {e}")))?;
    decode_value(value)
}

/// Decodes one frame already parsed as JSON.
pub fn decode_value(value: Value) -> Result<Inbound, DecodeError> {
    let (kind, payload) =
        envelope::open(value).map_err(|e| bad(ErrorCode::InvalidFrame, e.to_string()))?;
    Ok(match kind.as_str() {
        "signIn" => Inbound::SignIn(take(&kind, payload)?),
        "signUp" => Inbound::SignUp(take(&kind, payload)?),
        "signOut" => Inbound::SignOut,
        "users" => Inbound::Users,
        "channelJoin" => Inbound::ChannelJoin {
            recipient_uuid: recipient(&kind, payload)?,
        },
        "channelLeave" => Inbound::ChannelLeave {
            recipient_uuid: recipient(&kind, payload)?,
        },
        "channelMessage" => {
            let p: ChannelMessagePayload = take(&kind, payload)?;
            Inbound::ChannelMessage {
                recipient_uuid: p.recipient_uuid.into_owned(),
                message: p.message.into_owned(),
            }
        }
        "auth" => Inbound::Auth {
            token: take::<AuthPayload>(&kind, payload)?.token.into_owned(),
        },
        "subscribe" => Inbound::Subscribe {
            channels: take::<ChannelsPayload>(&kind, payload)?
                .channels
                .into_owned(),
        },
        "unsubscribe" => Inbound::Unsubscribe {
            channels: take::<ChannelsPayload>(&kind, payload)?
                .channels
                .into_owned(),
        },
        "resume" => Inbound::Resume {
            channels: take::<ResumePayload>(&kind, payload)?.channels.into_owned(),
        },
        "post" => {
            let p: PostPayload = take(&kind, payload)?;
            Inbound::Post {
                channel: p.channel.into_owned(),
                text: p.text.into_owned(),
                client_id: p.client_id.map(Cow::into_owned),
                reply_to: p.reply_to.map(Cow::into_owned),
            }
        }
        "edit" => {
            let p: EditPayload = take(&kind, payload)?;
            Inbound::Edit {
                channel: p.channel.into_owned(),
                id: p.id.into_owned(),
                text: p.text.into_owned(),
                client_id: p.client_id.map(Cow::into_owned),
            }
        }
        "delete" => {
            let p: DeletePayload = take(&kind, payload)?;
            Inbound::Delete {
                channel: p.channel.into_owned(),
                id: p.id.into_owned(),
                client_id: p.client_id.map(Cow::into_owned),
            }
        }
        "react" | "unreact" => {
            let p: ReactPayload = take(&kind, payload)?;
            Inbound::React {
                channel: p.channel.into_owned(),
                id: p.id.into_owned(),
                emoji: p.emoji.into_owned(),
                client_id: p.client_id.map(Cow::into_owned),
                add: kind == "react",
            }
        }
        "replies" => {
            let p: RepliesPayload = take(&kind, payload)?;
            Inbound::Replies {
                channel: p.channel.into_owned(),
                id: p.id.into_owned(),
                before: p.before.map(Cow::into_owned),
                after: p.after.map(Cow::into_owned),
                limit: p.limit,
            }
        }
        "history" => {
            let p: HistoryPayload = take(&kind, payload)?;
            Inbound::History {
                channel: p.channel.into_owned(),
                before: p.before.map(Cow::into_owned),
                after: p.after.map(Cow::into_owned),
                limit: p.limit,
            }
        }
        "read" => {
            let p: ReadPayload = take(&kind, payload)?;
            Inbound::Read {
                channel: p.channel.into_owned(),
                last_id: p.last_id.into_owned(),
            }
        }
        "typing" => Inbound::Typing {
            channel: take::<TypingPayload>(&kind, payload)?.channel.into_owned(),
        },
        other => {
            return Err(bad(
                ErrorCode::UnknownType,
                format!("unknown frame type `{other}`"),
            ))
        }
    })
}

/// A payload the frame cannot do without.
fn take<T: DeserializeOwned>(kind: &str, v: Value) -> Result<T, DecodeError> {
    if v.is_null() {
        return Err(bad(
            ErrorCode::InvalidFrame,
            format!("`{kind}` frame needs a `{kind}` object"),
        ));
    }
    serde_json::from_value(v).map_err(|e| bad(ErrorCode::InvalidFrame, format!("`{kind}`: {e}")))
}

/// `channelJoin` / `channelLeave`: a missing payload means the public channel.
fn recipient(kind: &str, v: Value) -> Result<String, DecodeError> {
    if v.is_null() {
        return Ok(String::new());
    }
    Ok(take::<Recipient>(kind, v)?.recipient_uuid.into_owned())
}

impl Inbound {
    /// The frame's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Inbound::SignIn(_) => "signIn",
            Inbound::SignUp(_) => "signUp",
            Inbound::SignOut => "signOut",
            Inbound::ChannelJoin { .. } => "channelJoin",
            Inbound::ChannelLeave { .. } => "channelLeave",
            Inbound::ChannelMessage { .. } => "channelMessage",
            Inbound::Users => "users",
            Inbound::Auth { .. } => "auth",
            Inbound::Subscribe { .. } => "subscribe",
            Inbound::Unsubscribe { .. } => "unsubscribe",
            Inbound::Resume { .. } => "resume",
            Inbound::Post { .. } => "post",
            Inbound::Edit { .. } => "edit",
            Inbound::Delete { .. } => "delete",
            Inbound::React { add: true, .. } => "react",
            Inbound::React { add: false, .. } => "unreact",
            Inbound::Replies { .. } => "replies",
            Inbound::History { .. } => "history",
            Inbound::Read { .. } => "read",
            Inbound::Typing { .. } => "typing",
        }
    }

    /// The frame as JSON text, as a client sends it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a frame always serializes")
    }
}

impl Serialize for Inbound {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = self.kind();
        match self {
            Inbound::SignIn(c) | Inbound::SignUp(c) => envelope::serialize(s, kind, Some(c)),
            Inbound::SignOut | Inbound::Users => envelope::serialize::<_, ()>(s, kind, None),
            Inbound::ChannelJoin { recipient_uuid } | Inbound::ChannelLeave { recipient_uuid } => {
                let p = Recipient {
                    recipient_uuid: b(recipient_uuid),
                };
                envelope::serialize(s, kind, Some(&p))
            }
            Inbound::ChannelMessage {
                recipient_uuid,
                message,
            } => {
                let p = ChannelMessagePayload {
                    recipient_uuid: b(recipient_uuid),
                    message: b(message),
                };
                envelope::serialize(s, kind, Some(&p))
            }
            Inbound::Auth { token } => {
                envelope::serialize(s, kind, Some(&AuthPayload { token: b(token) }))
            }
            Inbound::Subscribe { channels } | Inbound::Unsubscribe { channels } => {
                let p = ChannelsPayload {
                    channels: Cow::Borrowed(channels),
                };
                envelope::serialize(s, kind, Some(&p))
            }
            Inbound::Resume { channels } => {
                let p = ResumePayload {
                    channels: Cow::Borrowed(channels),
                };
                envelope::serialize(s, kind, Some(&p))
            }
            Inbound::Post {
                channel,
                text,
                client_id,
                reply_to,
            } => {
                let p = PostPayload {
                    channel: b(channel),
                    text: b(text),
                    client_id: bo(client_id),
                    reply_to: bo(reply_to),
                };
                envelope::serialize(s, kind, Some(&p))
            }
            Inbound::Edit {
                channel,
                id,
                text,
                client_id,
            } => {
                let p = EditPayload {
                    channel: b(channel),
                    id: b(id),
                    text: b(text),
                    client_id: bo(client_id),
                };
                envelope::serialize(s, kind, Some(&p))
            }
            Inbound::Delete {
                channel,
                id,
                client_id,
            } => {
                let p = DeletePayload {
                    channel: b(channel),
                    id: b(id),
                    client_id: bo(client_id),
                };
                envelope::serialize(s, kind, Some(&p))
            }
            Inbound::React {
                channel,
                id,
                emoji,
                client_id,
                ..
            } => {
                let p = ReactPayload {
                    channel: b(channel),
                    id: b(id),
                    emoji: b(emoji),
                    client_id: bo(client_id),
                };
                envelope::serialize(s, kind, Some(&p))
            }
            Inbound::Replies {
                channel,
                id,
                before,
                after,
                limit,
            } => {
                let p = RepliesPayload {
                    channel: b(channel),
                    id: b(id),
                    before: bo(before),
                    after: bo(after),
                    limit: *limit,
                };
                envelope::serialize(s, kind, Some(&p))
            }
            Inbound::History {
                channel,
                before,
                after,
                limit,
            } => {
                let p = HistoryPayload {
                    channel: b(channel),
                    before: bo(before),
                    after: bo(after),
                    limit: *limit,
                };
                envelope::serialize(s, kind, Some(&p))
            }
            Inbound::Read { channel, last_id } => {
                let p = ReadPayload {
                    channel: b(channel),
                    last_id: b(last_id),
                };
                envelope::serialize(s, kind, Some(&p))
            }
            Inbound::Typing { channel } => {
                let p = TypingPayload {
                    channel: b(channel),
                };
                envelope::serialize(s, kind, Some(&p))
            }
        }
    }
}

fn b(v: &str) -> Cow<'_, str> {
    Cow::Borrowed(v)
}

fn bo(v: &Option<String>) -> Option<Cow<'_, str>> {
    v.as_deref().map(Cow::Borrowed)
}

impl<'de> Deserialize<'de> for Inbound {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        decode_value(Value::deserialize(deserializer)?).map_err(D::Error::custom)
    }
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
        let code = |t: &str| decode(t).unwrap_err().code;
        assert_eq!(code("{"), ErrorCode::InvalidJson);
        assert_eq!(code("[]"), ErrorCode::InvalidFrame);
        assert_eq!(code(r#"{"type":"nope"}"#), ErrorCode::UnknownType);
        assert_eq!(
            code(r#"{"type":"post","post":{"channel":1,"text":"x"}}"#),
            ErrorCode::InvalidFrame
        );
        assert_eq!(code(r#"{"type":"post"}"#), ErrorCode::InvalidFrame);
        assert_eq!(code(r#"{"type":3}"#), ErrorCode::InvalidFrame);
    }

    #[test]
    fn encodes_what_it_decodes() {
        let frames = [
            r#"{"type":"users"}"#,
            r#"{"signOut":null,"type":"signOut"}"#,
            r#"{"channelJoin":{"recipientUUID":""},"type":"channelJoin"}"#,
            r#"{"post":{"channel":"lobby","text":"hi","client_id":"c-1"},"type":"post"}"#,
            r#"{"post":{"channel":"lobby","text":"hi"},"type":"post"}"#,
            r#"{"post":{"channel":"lobby","text":"hi","reply_to":"5-0"},"type":"post"}"#,
            r#"{"edit":{"channel":"lobby","id":"5-0","text":"fixed","client_id":"e"},"type":"edit"}"#,
            r#"{"delete":{"channel":"lobby","id":"5-0"},"type":"delete"}"#,
            r#"{"react":{"channel":"lobby","id":"5-0","emoji":"👍"},"type":"react"}"#,
            r#"{"type":"unreact","unreact":{"channel":"lobby","id":"5-0","emoji":"👍"}}"#,
            r#"{"replies":{"channel":"lobby","id":"5-0","limit":5},"type":"replies"}"#,
            r#"{"history":{"channel":"lobby","after":"1-0","limit":5},"type":"history"}"#,
            r#"{"resume":{"channels":{"a":"1-0","b":"0-0"}},"type":"resume"}"#,
        ];
        for text in frames {
            let frame = decode(text).unwrap();
            assert_eq!(decode(&frame.to_json()).unwrap(), frame, "{text}");
        }
        assert_eq!(Inbound::SignOut.to_json(), r#"{"type":"signOut"}"#);
    }
}
