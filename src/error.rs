//! One error type for the whole node, with stable snake_case codes.
//!
//! Over HTTP an error answers with its status and `{"error":{"code","message"}}` (the mapping is
//! in `http::error`); on a socket it becomes an `error` frame with the same code. Internal causes
//! are logged, never sent. This module knows no transport: it must never import the web
//! framework, so the store and the voice engines can use it without one.

use crate::protocol::ErrorCode;

/// Everything a request or a frame can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidBody(String),
    #[error("{0}")]
    InvalidUsername(String),
    #[error("password must be 8 to 1024 characters")]
    WeakPassword,
    #[error("that username is taken")]
    UsernameTaken,
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("too many failed sign-in attempts; try again in {retry_after} s")]
    TooManyAttempts { retry_after: u64 },
    #[error("sign in first")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("no such user")]
    UserNotFound,
    #[error("no such channel")]
    ChannelNotFound,
    #[error("no such message in that channel")]
    MessageNotFound,
    #[error("{0}")]
    NotFound(String),
    #[error("a channel with that name exists")]
    ChannelExists,
    #[error(
        "channel names are 1-64 characters of a-z, 0-9, _ and -, and not a common word such as `the`"
    )]
    InvalidChannelName,
    #[error("{0}")]
    InvalidMessage(String),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("slow down: too many messages")]
    RateLimited,
    #[error("slow down: too many messages; try again in {retry_after} s")]
    TooManyPosts { retry_after: u64 },
    /// Any other limit on what one user may do in a while (channels created, voice bytes per
    /// day, joins); the text names the limit.
    #[error("{message}; try again in {retry_after} s")]
    Limited { message: String, retry_after: u64 },
    #[error("search needs the RediSearch module, which this Redis does not have")]
    SearchUnavailable,
    #[error("{0}")]
    Unavailable(String),
    #[error("the server is busy; try again in {retry_after} s")]
    Busy { retry_after: u64 },
    /// Redis did not answer a write in time, or the connection dropped while it was sent: it may
    /// have been done. Sending it again with the same `client_id` is safe.
    #[error("the post may or may not have been stored: send it again with the same client_id")]
    UnknownOutcome,
    #[error("{0}")]
    AudioTooLarge(String),
    #[error("{0}")]
    UnsupportedAudio(String),
    /// Muted in the channel until unix ms `until` (0: until a moderator lifts it).
    #[error("{}", muted_text(*until))]
    Muted { until: i64 },
    #[error("this channel is in slow mode; post again in {retry_after} s")]
    SlowMode { retry_after: u64 },
    /// Banned from the channel until unix ms `until` (0: until a moderator lifts it).
    #[error("{}", banned_text(*until))]
    Banned { until: i64 },
    #[error("this account is disabled")]
    AccountDisabled,
    #[error("Redis is unavailable")]
    RedisUnavailable(#[source] redis::RedisError),
    #[error("internal error")]
    Internal(String),
}

impl Error {
    /// The stable code clients switch on.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidBody(_) => ErrorCode::InvalidBody,
            Error::InvalidUsername(_) => ErrorCode::InvalidUsername,
            Error::WeakPassword => ErrorCode::WeakPassword,
            Error::UsernameTaken => ErrorCode::UsernameTaken,
            Error::InvalidCredentials => ErrorCode::InvalidCredentials,
            Error::TooManyAttempts { .. } => ErrorCode::TooManyAttempts,
            Error::Unauthorized => ErrorCode::Unauthorized,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::UserNotFound => ErrorCode::UserNotFound,
            Error::ChannelNotFound => ErrorCode::ChannelNotFound,
            Error::MessageNotFound => ErrorCode::MessageNotFound,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::ChannelExists => ErrorCode::ChannelExists,
            Error::InvalidChannelName => ErrorCode::InvalidChannelName,
            Error::InvalidMessage(_) => ErrorCode::InvalidMessage,
            Error::InvalidQuery(_) => ErrorCode::InvalidQuery,
            Error::RateLimited | Error::TooManyPosts { .. } | Error::Limited { .. } => {
                ErrorCode::RateLimited
            }
            Error::SearchUnavailable => ErrorCode::SearchUnavailable,
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::Busy { .. } => ErrorCode::Busy,
            Error::UnknownOutcome => ErrorCode::UnknownOutcome,
            Error::AudioTooLarge(_) => ErrorCode::AudioTooLarge,
            Error::UnsupportedAudio(_) => ErrorCode::UnsupportedAudio,
            Error::RedisUnavailable(_) => ErrorCode::RedisUnavailable,
            Error::Muted { .. } => ErrorCode::Muted,
            Error::SlowMode { .. } => ErrorCode::SlowMode,
            Error::Banned { .. } => ErrorCode::Banned,
            Error::AccountDisabled => ErrorCode::AccountDisabled,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The client-facing text: internal causes stay in the log.
    pub fn public_message(&self) -> String {
        self.to_string()
    }

    /// A 400 `invalid_body` with a reason.
    pub fn body(why: impl Into<String>) -> Self {
        Error::InvalidBody(why.into())
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        // A cluster's refusals (`TRYAGAIN` while a slot is being moved, `MOVED`/`ASK` still
        // unsettled, `CLUSTERDOWN`) come before the command runs, and only once the cluster
        // client's retries are spent: nothing was done, and a later try succeeds.
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.is_cluster_error()
        {
            Error::RedisUnavailable(e)
        } else {
            Error::Internal(format!("redis: {e}"))
        }
    }
}

/// The text of a mute: until when, as unix ms, or open-ended.
fn muted_text(until: i64) -> String {
    if until > 0 {
        format!("you are muted in this channel until {until} (unix ms)")
    } else {
        "you are muted in this channel".into()
    }
}

/// The text of a ban: until when, as unix ms, or open-ended.
fn banned_text(until: i64) -> String {
    if until > 0 {
        format!("you are banned from this channel until {until} (unix ms)")
    } else {
        "you are banned from this channel".into()
    }
}

/// Result with the node's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(reply: &[u8]) -> redis::RedisError {
        redis::parse_redis_value(reply)
            .unwrap()
            .extract_error()
            .unwrap_err()
    }

    #[test]
    fn a_clusters_refusals_are_redis_unavailable_and_other_errors_internal() {
        for reply in [
            &b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"[..],
            b"-CLUSTERDOWN The cluster is down\r\n",
            b"-MOVED 3999 127.0.0.1:6381\r\n",
            b"-ASK 3999 127.0.0.1:6381\r\n",
        ] {
            let e = Error::from(server_error(reply));
            assert_eq!(e.code(), ErrorCode::RedisUnavailable, "{e:?}");
        }
        let e = Error::from(server_error(b"-ERR unknown command\r\n"));
        assert_eq!(e.code(), ErrorCode::Internal);
    }
}
