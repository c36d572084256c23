//! One error type for the whole node, with stable snake_case codes.
//!
//! Over HTTP an error answers with its status and `{"error":{"code","message"}}`; on a socket it
//! becomes an `error` frame with the same code. Internal causes are logged, never sent.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

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
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::ChannelExists => ErrorCode::ChannelExists,
            Error::InvalidChannelName => ErrorCode::InvalidChannelName,
            Error::InvalidMessage(_) => ErrorCode::InvalidMessage,
            Error::RateLimited | Error::TooManyPosts { .. } => ErrorCode::RateLimited,
            Error::SearchUnavailable => ErrorCode::SearchUnavailable,
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::AudioTooLarge(_) => ErrorCode::AudioTooLarge,
            Error::UnsupportedAudio(_) => ErrorCode::UnsupportedAudio,
            Error::RedisUnavailable(_) => ErrorCode::RedisUnavailable,
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
            Error::SearchUnavailable | Error::Unavailable(_) | Error::RedisUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
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
        if let Error::TooManyAttempts { retry_after } | Error::TooManyPosts { retry_after } = self {
            res.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        res.json(json!({"error": {"code": self.code(), "message": self.public_message()}}))
    }
}

/// Result with the node's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
