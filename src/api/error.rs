//! The one error type handlers return: a status with an ErrorDetail body, never a bare 500.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::model::{ErrorDetail, ErrorType, FormatError};

#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub detail: Box<ErrorDetail>,
    /// Sent as `WWW-Authenticate` (401 only).
    pub challenge: bool,
    /// Sent as `Retry-After`, in whole seconds rounded up (429 and 503).
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, detail: ErrorDetail) -> Self {
        Self {
            status,
            detail: Box::new(detail),
            challenge: false,
            retry_after: None,
        }
    }

    pub(crate) fn format(id: impl Into<String>, errors: &[FormatError]) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorDetail::format_error(id, errors),
        )
    }

    /// A single-field format problem (e.g. the Basic-auth user is not `client.id`).
    pub(crate) fn format_field(id: &str, field: &str, msg: &str, value: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorDetail::format_field(id, field, msg, value),
        )
    }

    pub(crate) fn unauthorized(id: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            detail: Box::new(ErrorDetail::new(
                id,
                ErrorType::FormatError,
                "Authentication required",
            )),
            challenge: true,
            retry_after: None,
        }
    }

    /// 429: the caller spent its request budget; `wait` is how long until one more fits.
    pub(crate) fn rate_limited(id: impl Into<String>, wait: std::time::Duration) -> Self {
        Self {
            retry_after: Some(wait),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorDetail::new(id, ErrorType::GeneralError, "Rate limit exceeded"),
            )
        }
    }

    /// 429: too many failed logins from the caller's address; `wait` until its window ends.
    pub(crate) fn login_throttled(id: impl Into<String>, wait: std::time::Duration) -> Self {
        Self {
            retry_after: Some(wait),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorDetail::new(id, ErrorType::GeneralError, "Too many failed logins"),
            )
        }
    }

    /// 503: every password-check slot is taken and its queue full; try again in a second.
    pub(crate) fn logins_busy(id: impl Into<String>) -> Self {
        Self {
            retry_after: Some(std::time::Duration::from_secs(1)),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorDetail::new(id, ErrorType::GeneralError, "Too many logins at once"),
            )
        }
    }

    /// An unexpected failure: logged here once with its cause chain; the caller learns only
    /// that it happened.
    pub(crate) fn internal(id: impl Into<String>, error: &anyhow::Error) -> Self {
        tracing::error!(error.cause_chain = ?error, error.message = %error, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorDetail::new(id, ErrorType::GeneralError, "Internal error"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(*self.detail)).into_response();
        if self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"qrhub\", charset=\"UTF-8\""),
            );
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The body was refused unread, so hyper closes the connection after this answer.
            // Saying so keeps a keep-alive client from sending its next request into a
            // connection that is closing (it got `IncompleteMessage` back, seen in a test
            // under load); HTTP/2 drops the header, and its streams are not affected.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(wait) = self.retry_after {
            // At least one second: "Retry-After: 0" would invite an immediate retry.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}
