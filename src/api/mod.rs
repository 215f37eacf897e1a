//! The HTTP surface: the five operations of the interface under `/qr/v1` (each also with a
//! trailing slash, as clients before v1.4.0 sent), the QR image extension, and health.
//! Handlers authenticate, check the body, call the [`Hub`], and shape the answer.

mod admin;
mod error;
mod extract;
mod guards;
mod health;
mod limits;
mod payments;
mod qr_codes;
mod scans;
mod timeout;
pub(crate) use timeout::RequestTimeoutLayer;

pub(crate) use error::ApiError;
pub(crate) use extract::{request_id, Body, PartnerCaller, PosClient, REQUEST_ID};
pub(crate) use guards::plain_request_id;
pub(crate) use limits::{LoginThrottle, RateLimits};

use axum::extract::FromRef;
use axum::http::StatusCode;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use std::sync::Arc;

use crate::credentials::Credentials;
use crate::model::Operation;
use crate::service::{Hub, HubError, RefusalKind};

#[derive(Clone, Debug)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub credentials: Credentials,
    /// Per-caller request budgets, checked right after authentication.
    pub limits: RateLimits,
    /// Failed logins per client address, checked before a password costs argon2.
    pub logins: LoginThrottle,
}

/// The address a connection came from, put on each of its requests by the server loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub std::net::SocketAddr);

impl FromRef<AppState> for Arc<Hub> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.hub)
    }
}

pub(crate) fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for (operation, route) in [
        (Operation::CreateQrCode, post(qr_codes::create)),
        (Operation::Pay, post(payments::pay)),
        (Operation::NotifyScan, post(scans::notify)),
        (Operation::ConfirmPayment, post(payments::confirm)),
        (Operation::ReversePayment, post(payments::reverse)),
    ] {
        router = with_trailing_slash(router, operation.path(), route);
    }
    router
        .route("/qr/v1/qrCodes/{tran_id}/image", get(qr_codes::image))
        .route("/openapi.json", get(crate::openapi::serve))
        .merge(
            admin::router()
                .layer(axum::middleware::from_fn(guards::not_cached))
                .layer(axum::middleware::from_fn(guards::same_site_changes)),
        )
        .fallback(guards::not_found)
        .method_not_allowed_fallback(guards::method_not_allowed)
        .with_state(state)
}

/// The health checks (`/health/live`, `/health/ready`), which go with `/metrics` on the
/// operations listener when `server.operations_listen` is set, beside the interface if not.
pub(crate) fn operations_router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .with_state(hub)
}

fn with_trailing_slash(
    router: Router<AppState>,
    path: &str,
    route: MethodRouter<AppState>,
) -> Router<AppState> {
    router
        .route(path, route.clone())
        .route(&format!("{path}/"), route)
}

/// Turns the hub's refusals into answers; internal failures become an opaque 500.
pub(crate) fn answer(id: &str, error: HubError) -> ApiError {
    match error {
        HubError::Refused { kind, detail } => ApiError {
            status: status_of(kind),
            detail,
            challenge: false,
            retry_after: None,
        },
        HubError::Internal(e) => ApiError::internal(id, &e),
    }
}

/// A refusal's HTTP status: the number the interface declares for its kind
/// ([`RefusalKind::status`], which the timeline records too), as axum's type.
pub(crate) fn status_of(kind: RefusalKind) -> StatusCode {
    StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// 501 for an operation switched off in the configuration.
pub(crate) fn ensure_enabled(hub: &Hub, operation: Operation, id: &str) -> Result<(), ApiError> {
    if hub
        .settings()
        .server
        .disabled_operations
        .contains(&operation)
    {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            crate::model::ErrorDetail::new(
                id,
                crate::model::ErrorType::FunctionNotSupported,
                "Operation not supported",
            ),
        ));
    }
    Ok(())
}
