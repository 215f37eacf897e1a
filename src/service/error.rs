use crate::model::{ErrorDetail, ErrorType};
use crate::store::StoreError;

/// What a refusal tells the caller, in the service's terms; `api` answers each with its HTTP
/// status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request is wrong, or not allowed in the payment's present state (400).
    BadRequest,
    /// What the request names is not known to the hub (404).
    NotFound,
    /// The partner did not answer in time: the payment's outcome is not known yet (504).
    OutcomeUnknown,
    /// The partner could not be reached, or did not process the request (503).
    PartnerUnavailable,
}

impl RefusalKind {
    /// The status the interface declares for this refusal, as a number: `api` answers with
    /// it, and the timeline records it as what the caller was told.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::NotFound => 404,
            Self::OutcomeUnknown => 504,
            Self::PartnerUnavailable => 503,
        }
    }
}

/// How the hub's work on a request can end other than with its success answer.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A final answer for the caller: what kind of refusal, with its ErrorDetail.
    #[error("refused ({}): {:?}", kind.status(), detail.error_type)]
    Refused {
        kind: RefusalKind,
        detail: Box<ErrorDetail>,
    },
    /// Something broke inside the hub (database down, a bug); the caller gets a 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl HubError {
    pub fn refuse(kind: RefusalKind, detail: ErrorDetail) -> Self {
        Self::Refused {
            kind,
            detail: Box::new(detail),
        }
    }

    pub fn bad_request(id: &str, error_type: ErrorType, message: &str) -> Self {
        Self::refuse(
            RefusalKind::BadRequest,
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
