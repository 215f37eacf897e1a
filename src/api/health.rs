use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

use crate::service::Hub;

/// The process is up.
pub(super) async fn live() -> Json<Value> {
    Json(json!({"status": "up"}))
}

/// The hub can serve: its database answers.
pub(super) async fn ready(State(hub): State<Arc<Hub>>) -> (StatusCode, Json<Value>) {
    match hub.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "database": "unreachable"})),
            )
        }
    }
}
