//! Frames the server sends: [`Outbound`] and its payloads.
//!
//! Payload fields are declared in byte order: frames have always been sent with sorted keys, and
//! clients that compare frames as text keep working.

use serde::de::{Deserializer, Error as _};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope;
use crate::error::ErrorFrame;
use crate::event::{self, ChatEvent, InFrame};
use crate::seed004;

/// A frame the server sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// First frame of every socket.
    Ready(Ready),
    /// The socket is signed in (upgrade token, `auth`, `signIn`, `signUp`).
    Authorized(Authorized),
    /// Anything that failed; the socket stays open.
    Error(ErrorFrame),
    /// Answer to `signOut` (both families).
    SignOut(SignedOut),
    /// 004: `signIn` for the signing-in socket, and everyone's online / offline.
    Sys(seed004::Sys),
    /// 004: answer to `users`.
    Users(UserList),
    /// 004: answer to `channelJoin`, with recent messages and members.
    ChannelJoin(ChannelJoined),
    /// 004: a message of the joined channel.
    ChannelMessage(seed004::Message),
    /// 004: answer to `channelLeave`.
    ChannelLeave(ChannelLeft),
    /// chatnode: a channel of `subscribe` / `resume` is live.
    Subscribed(Subscribed),
    /// chatnode: answer to `unsubscribe`.
    Unsubscribed(Unsubscribed),
    /// chatnode: an event of a subscribed channel, live or replayed.
    Message(ChatEvent),
    /// chatnode: answer to `post`.
    Posted(Posted),
    /// chatnode: answer to `history`.
    History(HistoryPage),
    /// chatnode: answer to `read`.
    Unread(Unread),
    /// chatnode: another member is typing.
    Typing(Typing),
    /// chatnode: a user who shares a channel came online or went offline.
    Presence(Presence),
    /// chatnode: a message mentioning this socket's user.
    Mention(ChatEvent),
    /// chatnode: a private chat with this socket's user was opened, or the user was added to a
    /// channel.
    ChannelAdded(ChannelAdded),
    /// chatnode: this socket's user left or lost a channel (removed, banned, the channel
    /// deleted); nothing of it is delivered any more.
    ChannelRemoved(ChannelRemoved),
    /// chatnode: answer to `edit`, `delete`, `react` and `unreact`.
    Updated(Updated),
    /// chatnode: answer to `replies`.
    Replies(RepliesPage),
}

/// `updated`: what an `edit`, `delete`, `react` or `unreact` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Updated {
    pub channel: String,
    /// As the frame said it; `null` when it had none.
    pub client_id: Option<String>,
    /// The stream ID of the action's event; `null` when nothing changed (a reaction given twice).
    pub event_id: Option<String>,
    /// The message as it now is (a tombstone once deleted), its reactions seen by this user.
    #[serde(serialize_with = "event::serialize_one")]
    pub message: ChatEvent,
}

/// `replies`: one page of the replies to a message, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepliesPage {
    pub channel: String,
    /// More replies exist in the paging direction.
    pub has_more: bool,
    /// The message replied to.
    pub id: String,
    #[serde(serialize_with = "event::serialize_list")]
    pub messages: Vec<ChatEvent>,
}

/// `ready`: the socket is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// A fresh random id of this socket; never read back.
    #[serde(rename = "sessionUUID")]
    pub session_uuid: String,
}

/// `authorized`: who the socket is signed in as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorized {
    /// A new session token: only in the answer to `signIn` / `signUp`.
    #[serde(rename = "accessKey", default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    #[serde(rename = "userUUID")]
    pub user_uuid: String,
    pub username: String,
}

/// `signOut`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedOut {
    pub uuid: String,
}

/// `users`' answer: at most 1000 users, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserList {
    /// Users listed.
    pub received: usize,
    /// Users there are.
    pub total: usize,
    pub users: Vec<seed004::User>,
}

/// `channelJoin`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelJoined {
    /// The channel's last messages, oldest first.
    pub messages: Vec<seed004::Message>,
    /// As the request said it.
    #[serde(rename = "recipientUUID")]
    pub recipient_uuid: String,
    /// The channel's members.
    pub users: Vec<seed004::User>,
}

/// `channelLeave`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelLeft {
    #[serde(rename = "recipientUUID")]
    pub recipient_uuid: String,
}

/// `subscribed`: a channel is live from `last_id` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribed {
    pub channel: String,
    /// Too much was missed to replay: the client pages it with `history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<Gap>,
    /// The channel's position: every event after it is delivered.
    pub last_id: String,
    /// Events replayed before this frame.
    pub replayed: usize,
    /// Answers `resume` (true) or `subscribe` (false).
    pub resumed: bool,
}

/// What a resume did not replay: events after `after` up to `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gap {
    pub after: String,
    pub until: String,
}

/// `unsubscribed`: the list as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unsubscribed {
    pub channels: Vec<String>,
}

/// `posted`: where a post was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Posted {
    pub channel: String,
    /// As the post said it; `null` when it had none.
    pub client_id: Option<String>,
    pub created_at: i64,
    pub id: String,
}

/// `history`: one page, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryPage {
    pub channel: String,
    /// More events exist in the paging direction.
    pub has_more: bool,
    #[serde(serialize_with = "event::serialize_list")]
    pub messages: Vec<ChatEvent>,
}

/// `unread`: messages by others after the read marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unread {
    pub channel: String,
    pub count: u64,
}

/// `typing`: someone is typing in a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Typing {
    pub channel: String,
    pub username: String,
}

/// `presence`: a user came online or went offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Presence {
    pub online: bool,
    pub username: String,
}

/// `channel_added`: a private chat was opened with this user, or the user was added to a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelAdded {
    pub channel: String,
    pub kind: ChannelKind,
    /// For a DM: the other person, from the receiver's side (absent otherwise).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer: String,
    /// For a group conversation or private channel: its title, when it has one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
}

/// `channel_removed`: the user is no longer in a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRemoved {
    pub channel: String,
    /// `left`, `kicked`, `banned`, `channel_deleted`.
    pub reason: String,
}

/// Public channel, private channel, two-person DM or group conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Public,
    Private,
    Dm,
    Group,
}

impl Outbound {
    /// The frame's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Outbound::Ready(_) => "ready",
            Outbound::Authorized(_) => "authorized",
            Outbound::Error(_) => "error",
            Outbound::SignOut(_) => "signOut",
            Outbound::Sys(_) => "sys",
            Outbound::Users(_) => "users",
            Outbound::ChannelJoin(_) => "channelJoin",
            Outbound::ChannelMessage(_) => "channelMessage",
            Outbound::ChannelLeave(_) => "channelLeave",
            Outbound::Subscribed(_) => "subscribed",
            Outbound::Unsubscribed(_) => "unsubscribed",
            Outbound::Message(_) => "message",
            Outbound::Posted(_) => "posted",
            Outbound::History(_) => "history",
            Outbound::Unread(_) => "unread",
            Outbound::Typing(_) => "typing",
            Outbound::Presence(_) => "presence",
            Outbound::Mention(_) => "mention",
            Outbound::ChannelAdded(_) => "channel_added",
            Outbound::ChannelRemoved(_) => "channel_removed",
            Outbound::Updated(_) => "updated",
            Outbound::Replies(_) => "replies",
        }
    }

    /// The frame as JSON text, as the server sends it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a frame always serializes")
    }
}

/// A `message` frame of an event, without copying it: what a room sends each subscriber.
pub fn message_json(ev: &ChatEvent) -> String {
    let mut out = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::new(&mut out);
    envelope::serialize(&mut serializer, "message", Some(&InFrame(ev)))
        .expect("a frame always serializes");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

impl Serialize for Outbound {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = self.kind();
        match self {
            Outbound::Ready(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::Authorized(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::Error(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::SignOut(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::Sys(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::Users(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::ChannelJoin(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::ChannelMessage(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::ChannelLeave(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::Subscribed(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::Unsubscribed(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::Message(ev) | Outbound::Mention(ev) => {
                envelope::serialize(s, kind, Some(&InFrame(ev)))
            }
            Outbound::Posted(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::History(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::Unread(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::Typing(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::Presence(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::ChannelAdded(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::ChannelRemoved(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::Updated(p) => envelope::serialize(s, kind, Some(p)),
            Outbound::Replies(p) => envelope::serialize(s, kind, Some(p)),
        }
    }
}

impl<'de> Deserialize<'de> for Outbound {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (kind, payload) =
            envelope::open(Value::deserialize(deserializer)?).map_err(D::Error::custom)?;
        Outbound::from_parts(&kind, payload).map_err(D::Error::custom)
    }
}

impl Outbound {
    /// A frame from its `type` and payload.
    pub fn from_parts(kind: &str, payload: Value) -> Result<Self, serde_json::Error> {
        use serde_json::from_value as read;
        Ok(match kind {
            "ready" => Outbound::Ready(read(payload)?),
            "authorized" => Outbound::Authorized(read(payload)?),
            "error" => Outbound::Error(read(payload)?),
            "signOut" => Outbound::SignOut(read(payload)?),
            "sys" => Outbound::Sys(read(payload)?),
            "users" => Outbound::Users(read(payload)?),
            "channelJoin" => Outbound::ChannelJoin(read(payload)?),
            "channelMessage" => Outbound::ChannelMessage(read(payload)?),
            "channelLeave" => Outbound::ChannelLeave(read(payload)?),
            "subscribed" => Outbound::Subscribed(read(payload)?),
            "unsubscribed" => Outbound::Unsubscribed(read(payload)?),
            "message" => Outbound::Message(read(payload)?),
            "posted" => Outbound::Posted(read(payload)?),
            "history" => Outbound::History(read(payload)?),
            "unread" => Outbound::Unread(read(payload)?),
            "typing" => Outbound::Typing(read(payload)?),
            "presence" => Outbound::Presence(read(payload)?),
            "mention" => Outbound::Mention(read(payload)?),
            "channel_added" => Outbound::ChannelAdded(read(payload)?),
            "channel_removed" => Outbound::ChannelRemoved(read(payload)?),
            "updated" => Outbound::Updated(read(payload)?),
            "replies" => Outbound::Replies(read(payload)?),
            other => {
                return Err(serde_json::Error::custom(format!(
                    "unknown frame type `{other}`"
                )))
            }
        })
    }
}
