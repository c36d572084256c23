//! How the node's [`Error`] answers over HTTP: its status, a `Retry-After` header when the client
//! is told to wait, and the body `{"error":{"code","message"}}` with the error's stable code.
//!
//! This is the only place an error meets actix-web; the store and the voice engines return
//! [`Error`] without knowing the transport. It must never change a code or a status: clients
//! switch on both.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::error::Error;

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::InvalidBody(_)
            | Error::InvalidUsername(_)
            | Error::WeakPassword
            | Error::InvalidChannelName
            | Error::InvalidMessage(_)
            | Error::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            Error::InvalidCredentials | Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_)
            | Error::Muted { .. }
            | Error::Banned { .. }
            | Error::AccountDisabled => StatusCode::FORBIDDEN,
            Error::UserNotFound
            | Error::ChannelNotFound
            | Error::MessageNotFound
            | Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::UsernameTaken | Error::ChannelExists => StatusCode::CONFLICT,
            Error::TooManyAttempts { .. }
            | Error::RateLimited
            | Error::TooManyPosts { .. }
            | Error::Limited { .. }
            | Error::SlowMode { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::SearchUnavailable
            | Error::Unavailable(_)
            | Error::Busy { .. }
            | Error::UnknownOutcome
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
        | Error::Limited { retry_after, .. }
        | Error::Busy { retry_after }
        | Error::SlowMode { retry_after } = self
        {
            res.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        if matches!(self, Error::UnknownOutcome) {
            res.insert_header((header::RETRY_AFTER, "1"));
        }
        res.json(json!({"error": {"code": self.code(), "message": self.public_message()}}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_outcome_is_a_503_to_retry_with_the_same_client_id() {
        let res = Error::UnknownOutcome.error_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "1");
        assert_eq!(Error::UnknownOutcome.code().as_str(), "unknown_outcome");
    }
}
