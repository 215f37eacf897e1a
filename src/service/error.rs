use axum::http::StatusCode;

use crate::model::{ErrorDetail, ErrorType};
use crate::store::StoreError;

/// How the hub's work on a request can end other than with its success answer.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A final answer for the caller: a status with its ErrorDetail.
    #[error("refused with {status}: {:?}", detail.error_type)]
    Refused {
        status: StatusCode,
        detail: Box<ErrorDetail>,
    },
    /// Something broke inside the hub (database down, a bug); the caller gets a 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl HubError {
    pub fn refuse(status: StatusCode, detail: ErrorDetail) -> Self {
        Self::Refused {
            status,
            detail: Box::new(detail),
        }
    }

    pub fn bad_request(id: &str, error_type: ErrorType, message: &str) -> Self {
        Self::refuse(
            StatusCode::BAD_REQUEST,
            ErrorDetail::new(id, error_type, message),
        )
    }
}

impl From<StoreError> for HubError {
    fn from(e: StoreError) -> Self {
        Self::Internal(anyhow::Error::new(e))
    }
}

pub type HubResult<T> = Result<T, HubError>;
