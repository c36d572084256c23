//! Seed 004's objects, as that document and its React client use them: users, messages, and
//! the `sys` frame's notices. Fields are declared in byte order, the order they are sent in.

use serde::de::{Deserializer, Error as _};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope;
use crate::event::ChatEvent;

/// Seed 004's user object: no password, no access key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    #[serde(rename = "OnLine")]
    pub online: bool,
    #[serde(rename = "UUID")]
    pub uuid: String,
    #[serde(rename = "Username")]
    pub username: String,
}

impl User {
    pub fn new(uuid: &str, username: &str, online: bool) -> Self {
        User {
            online,
            uuid: uuid.into(),
            username: username.into(),
        }
    }
}

/// Seed 004's message object (`channelMessage`, and the `messages` of `channelJoin`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// RFC 3339 UTC with milliseconds.
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    #[serde(rename = "Message")]
    pub message: String,
    /// The receiver files the message under this: the other party's UUID for a DM, empty for
    /// the public channel.
    #[serde(rename = "RecipientUUID")]
    pub recipient_uuid: String,
    #[serde(rename = "Sender")]
    pub sender: Sender,
    #[serde(rename = "SenderUUID")]
    pub sender_uuid: String,
    /// The message named across channels: `<channel>/<stream id>` (stream IDs are unique
    /// within a channel only).
    #[serde(rename = "UUID")]
    pub uuid: String,
    /// The stream ID again, for clients that dedupe by `id`.
    pub id: String,
}

/// A message's sender (no `OnLine`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    #[serde(rename = "UUID")]
    pub uuid: String,
    #[serde(rename = "Username")]
    pub username: String,
}

impl Message {
    /// A stored event as a seed 004 client receives it, filed under `recipient_uuid`.
    pub fn from_event(ev: &ChatEvent, recipient_uuid: &str) -> Self {
        Message {
            created_at: rfc3339(ev.created_at),
            message: text(ev),
            recipient_uuid: recipient_uuid.into(),
            sender: Sender {
                uuid: ev.uuid.clone(),
                username: ev.username.clone(),
            },
            sender_uuid: ev.uuid.clone(),
            uuid: format!("{}/{}", ev.channel, ev.id),
            id: ev.id.clone(),
        }
    }
}

/// The text seed 004's clients show: a voice message without its transcript yet says what it is.
fn text(ev: &ChatEvent) -> String {
    match &ev.voice {
        Some(v) if ev.text.is_empty() => {
            format!("(voice message, {} s)", v.duration_ms.div_ceil(1000))
        }
        _ => ev.text.clone(),
    }
}

/// The `sys` frame's payload: itself an envelope (`{"type": "online", "online": {…}}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sys {
    /// To the signing-in socket only: who it is now.
    SignIn(SignedIn),
    /// A user came online (first session on any node).
    Online(User),
    /// A user went offline (last session ended).
    Offline(User),
}

/// `sys` signIn's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedIn {
    pub username: String,
    pub uuid: String,
}

impl Sys {
    /// The inner `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Sys::SignIn(_) => "signIn",
            Sys::Online(_) => "online",
            Sys::Offline(_) => "offline",
        }
    }
}

impl Serialize for Sys {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Sys::SignIn(p) => envelope::serialize(serializer, self.kind(), Some(p)),
            Sys::Online(u) | Sys::Offline(u) => {
                envelope::serialize(serializer, self.kind(), Some(u))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Sys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (kind, payload) = envelope::open(Value::deserialize(deserializer)?)
            .map_err(|e| D::Error::custom(format!("sys: {e}")))?;
        let user = |p: Value| serde_json::from_value::<User>(p).map_err(D::Error::custom);
        match kind.as_str() {
            "signIn" => serde_json::from_value(payload)
                .map(Sys::SignIn)
                .map_err(D::Error::custom),
            "online" => user(payload).map(Sys::Online),
            "offline" => user(payload).map(Sys::Offline),
            other => Err(D::Error::custom(format!("unknown sys type `{other}`"))),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_631_623_305_083), "2021-09-14T12:41:45.083Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
