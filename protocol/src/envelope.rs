//! The envelope every frame shares: `{"type": T, T: payload}`, or `{"type": T}` for frames with
//! no payload (`users`, `signOut` from a client).

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;

/// The key naming a frame.
pub const TYPE: &str = "type";

/// Writes `{"type": kind, kind: payload}` with the two keys in byte order, as chatnode has always
/// sent them (a sorted JSON object): `{"message":…,"type":"message"}` but
/// `{"type":"unread","unread":…}`.
pub fn serialize<S, P>(serializer: S, kind: &str, payload: Option<&P>) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    P: Serialize + ?Sized,
{
    let mut map = serializer.serialize_map(Some(1 + usize::from(payload.is_some())))?;
    match payload {
        None => map.serialize_entry(TYPE, kind)?,
        Some(p) if kind < TYPE => {
            map.serialize_entry(kind, p)?;
            map.serialize_entry(TYPE, kind)?;
        }
        Some(p) => {
            map.serialize_entry(TYPE, kind)?;
            map.serialize_entry(kind, p)?;
        }
    }
    map.end()
}

/// Why a JSON value is not an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAFrame {
    /// Not a JSON object.
    NotAnObject,
    /// No `type` key.
    NoType,
    /// `type` is not a string.
    TypeNotAString,
}

impl std::fmt::Display for NotAFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotAFrame::NotAnObject => "a frame is a JSON object",
            NotAFrame::NoType => "a frame needs a `type`",
            NotAFrame::TypeNotAString => "`type` must be a string",
        })
    }
}

/// Takes a frame apart: its `type` and its payload (`Null` when absent). Other top-level keys
/// (`userUUID`, `SUUID`, …) are dropped: the connection, not the frame, says who the user is.
pub fn open(value: Value) -> Result<(String, Value), NotAFrame> {
    let Value::Object(mut obj) = value else {
        return Err(NotAFrame::NotAnObject);
    };
    let kind = match obj.get(TYPE) {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(NotAFrame::TypeNotAString),
        None => return Err(NotAFrame::NoType),
    };
    let payload = obj.remove(&kind).unwrap_or(Value::Null);
    Ok((kind, payload))
}
