//! The `error` frame and the codes it carries.

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Every code an `error` frame (or an HTTP error body) can carry: stable, snake_case, for
/// clients to switch on. docs/PROTOCOL.md §7 says when each is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON.
    InvalidJson,
    /// Not an object; `type` missing or not a string; payload missing, mistyped or with unknown
    /// fields.
    InvalidFrame,
    /// No frame of that `type`.
    UnknownType,
    /// A binary or continuation frame: frames are single JSON text frames.
    BinaryUnsupported,
    /// A malformed value (a stream ID, too many channels, yourself as recipient, …).
    InvalidBody,
    InvalidUsername,
    WeakPassword,
    UsernameTaken,
    InvalidCredentials,
    TooManyAttempts,
    /// Not signed in, or the token is invalid or expired.
    Unauthorized,
    Forbidden,
    UserNotFound,
    ChannelNotFound,
    /// No message of that ID in that channel (never stored, deleted, or another channel's).
    MessageNotFound,
    NotFound,
    ChannelExists,
    InvalidChannelName,
    InvalidMessage,
    /// A search query beyond the documented limits (e.g. too many `|` alternatives).
    InvalidQuery,
    RateLimited,
    SearchUnavailable,
    Unavailable,
    /// The node is at a limit of concurrent work; retry after the time it names.
    Busy,
    /// A post was sent to Redis but its answer never came: it may be stored. Send it again with
    /// the same `client_id`.
    UnknownOutcome,
    AudioTooLarge,
    UnsupportedAudio,
    RedisUnavailable,
    /// Muted in that channel by a moderator: no posts until the time the message names.
    Muted,
    /// The channel's slow mode: one post per interval; retry after the time it names.
    SlowMode,
    /// Banned from that channel: it cannot be joined until the ban ends.
    Banned,
    /// The account was disabled by an administrator: sign-in is refused.
    AccountDisabled,
    /// An unexpected server error; details are logged, never sent.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidFrame => "invalid_frame",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BinaryUnsupported => "binary_unsupported",
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::InvalidUsername => "invalid_username",
            ErrorCode::WeakPassword => "weak_password",
            ErrorCode::UsernameTaken => "username_taken",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::UserNotFound => "user_not_found",
            ErrorCode::ChannelNotFound => "channel_not_found",
            ErrorCode::MessageNotFound => "message_not_found",
            ErrorCode::NotFound => "not_found",
            ErrorCode::ChannelExists => "channel_exists",
            ErrorCode::InvalidChannelName => "invalid_channel_name",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::SearchUnavailable => "search_unavailable",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Busy => "busy",
            ErrorCode::UnknownOutcome => "unknown_outcome",
            ErrorCode::AudioTooLarge => "audio_too_large",
            ErrorCode::UnsupportedAudio => "unsupported_audio",
            ErrorCode::RedisUnavailable => "redis_unavailable",
            ErrorCode::Muted => "muted",
            ErrorCode::SlowMode => "slow_mode",
            ErrorCode::Banned => "banned",
            ErrorCode::AccountDisabled => "account_disabled",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` frame's payload. Seed 004 names the text `error`, its client reads `message`:
/// both are sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFrame {
    pub code: ErrorCode,
    pub error: String,
    pub message: String,
    /// What failed, when the frame named several things or may be one of many (`null` else).
    pub payload: Option<ErrorAbout>,
    /// For `busy` only: milliseconds to wait before sending the refused frame again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorFrame {
    /// An error with its text in both fields.
    pub fn new(code: ErrorCode, text: impl Into<String>, about: Option<ErrorAbout>) -> Self {
        let text = text.into();
        ErrorFrame {
            code,
            error: text.clone(),
            message: text,
            payload: about,
            retry_after_ms: None,
        }
    }

    /// A `busy` refusal: nothing was done, and the same frame may be sent again after
    /// `retry_after_ms`.
    pub fn busy(text: impl Into<String>, about: Option<ErrorAbout>, retry_after_ms: u64) -> Self {
        ErrorFrame {
            retry_after_ms: Some(retry_after_ms),
            ..ErrorFrame::new(ErrorCode::Busy, text, about)
        }
    }
}

/// What an error answers, when that is not simply the frame sent before it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ErrorAbout {
    /// One channel of a `subscribe` / `resume` failed.
    Channel { channel: String },
    /// A `post` failed: its channel and `client_id` (`null` when it had none).
    Post {
        channel: String,
        client_id: Option<String>,
    },
}

impl<'de> Deserialize<'de> for ErrorAbout {
    /// `client_id` (even `null`) says it is a post's.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut obj = Map::deserialize(deserializer)?;
        let channel = match obj.remove("channel") {
            Some(Value::String(c)) => c,
            _ => return Err(D::Error::custom("error payload needs a string `channel`")),
        };
        let about = match obj.remove("client_id") {
            None => ErrorAbout::Channel { channel },
            Some(Value::Null) => ErrorAbout::Post {
                channel,
                client_id: None,
            },
            Some(Value::String(id)) => ErrorAbout::Post {
                channel,
                client_id: Some(id),
            },
            Some(_) => return Err(D::Error::custom("`client_id` is a string or null")),
        };
        match obj.keys().next() {
            Some(k) => Err(D::Error::custom(format!(
                "unknown error payload field `{k}`"
            ))),
            None => Ok(about),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outbound;

    #[test]
    fn a_busy_frame_names_its_post_and_when_to_retry() {
        let about = ErrorAbout::Post {
            channel: "c".into(),
            client_id: Some("x".into()),
        };
        let frame = Outbound::Error(ErrorFrame::busy("wait", Some(about), 250));
        assert_eq!(
            frame.to_json(),
            r#"{"error":{"code":"busy","error":"wait","message":"wait","payload":{"channel":"c","client_id":"x"},"retry_after_ms":250},"type":"error"}"#
        );
    }

    #[test]
    fn only_busy_carries_retry_after_ms() {
        let frame = Outbound::Error(ErrorFrame::new(ErrorCode::RateLimited, "slow", None));
        assert!(!frame.to_json().contains("retry_after_ms"));
    }

    #[test]
    fn only_a_frame_with_a_wait_carries_retry_after_ms() {
        let mut e = ErrorFrame::new(ErrorCode::Forbidden, "no", None);
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(
            text,
            r#"{"code":"forbidden","error":"no","message":"no","payload":null}"#
        );
        e.code = ErrorCode::Busy;
        e.retry_after_ms = Some(40);
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.ends_with(r#","retry_after_ms":40}"#), "{text}");
        assert_eq!(serde_json::from_str::<ErrorFrame>(&text).unwrap(), e);
    }
}
