//! One error type for the whole node, with stable snake_case codes.
//!
//! Over HTTP an error answers with its status and `{"error":{"code","message"}}`; on a socket it
//! becomes an `error` frame with the same code. Internal causes are logged, never sent.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

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
    #[error("slow down: too many messages")]
    RateLimited,
    #[error("slow down: too many messages; try again in {retry_after} s")]
    TooManyPosts { retry_after: u64 },
    #[error("search needs the RediSearch module, which this Redis does not have")]
    SearchUnavailable,
    #[error("{0}")]
    Unavailable(String),
    #[error("the server is busy; try again in {retry_after} s")]
    Busy { retry_after: u64 },
    #[error("{0}")]
    AudioTooLarge(String),
    #[error("{0}")]
    UnsupportedAudio(String),
    #[error("Redis is unavailable")]
    RedisUnavailable(#[source] redis::RedisError),
    #[error("internal error")]
    Internal(String),
}

impl Error {
    /// The stable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidBody(_) => "invalid_body",
            Error::InvalidUsername(_) => "invalid_username",
            Error::WeakPassword => "weak_password",
            Error::UsernameTaken => "username_taken",
            Error::InvalidCredentials => "invalid_credentials",
            Error::TooManyAttempts { .. } => "too_many_attempts",
            Error::Unauthorized => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::UserNotFound => "user_not_found",
            Error::ChannelNotFound => "channel_not_found",
            Error::NotFound(_) => "not_found",
            Error::ChannelExists => "channel_exists",
            Error::InvalidChannelName => "invalid_channel_name",
            Error::InvalidMessage(_) => "invalid_message",
            Error::RateLimited | Error::TooManyPosts { .. } => "rate_limited",
            Error::SearchUnavailable => "search_unavailable",
            Error::Unavailable(_) => "unavailable",
            Error::Busy { .. } => "busy",
            Error::AudioTooLarge(_) => "audio_too_large",
            Error::UnsupportedAudio(_) => "unsupported_audio",
            Error::RedisUnavailable(_) => "redis_unavailable",
            Error::Internal(_) => "internal",
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
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
        {
            Error::RedisUnavailable(e)
        } else {
            Error::Internal(format!("redis: {e}"))
        }
    }
}

impl From<deadpool_redis::PoolError> for Error {
    fn from(e: deadpool_redis::PoolError) -> Self {
        match e {
            deadpool_redis::PoolError::Backend(e) => e.into(),
            other => Error::Internal(format!("redis pool: {other}")),
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::InvalidBody(_)
            | Error::InvalidUsername(_)
            | Error::WeakPassword
            | Error::InvalidChannelName
            | Error::InvalidMessage(_) => StatusCode::BAD_REQUEST,
            Error::InvalidCredentials | Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::UserNotFound | Error::ChannelNotFound | Error::NotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Error::UsernameTaken | Error::ChannelExists => StatusCode::CONFLICT,
            Error::TooManyAttempts { .. } | Error::RateLimited | Error::TooManyPosts { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Error::SearchUnavailable
            | Error::Unavailable(_)
            | Error::Busy { .. }
            | Error::RedisUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::AudioTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedAudio(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if matches!(self, Error::Internal(_) | Error::RedisUnavailable(_)) {
            log::error!("request failed: {self:?}");
        }
        let mut res = HttpResponse::build(self.status_code());
        if let Error::TooManyAttempts { retry_after }
        | Error::TooManyPosts { retry_after }
        | Error::Busy { retry_after } = self
        {
            res.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        res.json(json!({"error": {"code": self.code(), "message": self.public_message()}}))
    }
}

/// Result with the node's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
