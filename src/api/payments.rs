use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use std::sync::Arc;

use super::{answer, ensure_enabled, ApiError, Body, PosClient};
use crate::model::{
    Operation, PaymentConfirmation, PaymentRequest, PaymentResponse, PaymentReversal,
};
use crate::service::{Advice, Hub};

/// pay → held until the payment is matched and the partner answers (201 relayed), the
/// partner declines (its status relayed), or the scan window closes (400 NO_SCAN_RECEIVED).
pub(super) async fn pay(
    State(hub): State<Arc<Hub>>,
    PosClient(client): PosClient,
    // Boxed: a held pay keeps this future, arguments included, for its whole hold, and the
    // request inline is most of a KiB.
    body: Body<Box<PaymentRequest>>,
) -> Result<(StatusCode, Json<PaymentResponse>), ApiError> {
    let request = body.value;
    ensure_enabled(&hub, Operation::Pay, &request.id)?;
    if request.client.id != client {
        return Err(ApiError::format_field(
            &request.id,
            "client.id",
            "must be the authenticated user",
            &request.client.id,
        ));
    }
    let id = request.id.clone();
    let response = hub
        .pay(&client, request, body.raw)
        .await
        .map_err(|e| answer(&id, e))?;
    Ok((StatusCode::CREATED, Json(response)))
}

/// confirmPayment → 202 with the advice echoed.
pub(super) async fn confirm(
    State(hub): State<Arc<Hub>>,
    PosClient(client): PosClient,
    body: Body<PaymentConfirmation>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let id = body.value.id.clone();
    ensure_enabled(&hub, Operation::ConfirmPayment, &id)?;
    let echo = echo_of(&body.value, &id)?;
    advise(&hub, &client, Advice::Confirmation(body.value), echo, &id).await
}

/// reversePayment → 202 with the advice echoed.
pub(super) async fn reverse(
    State(hub): State<Arc<Hub>>,
    PosClient(client): PosClient,
    body: Body<PaymentReversal>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let id = body.value.id.clone();
    ensure_enabled(&hub, Operation::ReversePayment, &id)?;
    let echo = echo_of(&body.value, &id)?;
    advise(&hub, &client, Advice::Reversal(body.value), echo, &id).await
}

async fn advise(
    hub: &Arc<Hub>,
    client: &str,
    advice: Advice,
    raw: serde_json::Value,
    id: &str,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let echo = hub
        .advise(client, advice, raw)
        .await
        .map_err(|e| answer(id, e))?;
    Ok((StatusCode::ACCEPTED, Json(echo)))
}

/// The 202 echo: the advice in the interface's own form (unknown fields dropped, absent
/// fields omitted, times with milliseconds), which is also what is stored for repeats.
fn echo_of<T: serde::Serialize>(advice: &T, id: &str) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(advice).map_err(|e| ApiError::internal(id, &anyhow::Error::new(e)))
}
