//! The partner side: `pay`, `confirmPayment` and `reversePayment` as a wallet answers them.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use serde_json::Value;

use super::answer::{self, Reply};
use super::auth;
use super::behaviour::{AdviceBehaviour, PayBehaviour};
use super::control;
use super::ledger::{Arrival, MessageKind};
use super::state::{lock, Shared};
use crate::model::schema::{self, Schema};
use crate::model::{ErrorDetail, ErrorType, PaymentConfirmation, PaymentRequest, PaymentReversal};

/// The simulator's routes: the partner's `/qr/v1` operations (each also with a trailing
/// slash) and the `/simulator` control endpoints.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    for (path, handler) in [
        ("/qr/v1/payments", post(pay)),
        ("/qr/v1/payments/confirmations", post(confirm)),
        ("/qr/v1/payments/reversals", post(reverse)),
        ("/qr/v1/qrCodes", post(not_a_partner_operation)),
        ("/qr/v1/scans", post(not_a_partner_operation)),
    ] {
        router = router
            .route(path, handler.clone())
            .route(&format!("{path}/"), handler);
    }
    router.merge(control::routes()).with_state(shared)
}

async fn pay(State(sim): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (seq, received) = receive(&sim, MessageKind::Pay, &headers, &body);
    let reply = match received {
        Ok(value) => answer_pay(&sim, value).await,
        Err(reply) => reply,
    };
    finish(&sim, seq, reply)
}

async fn confirm(State(sim): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    advice(sim, MessageKind::Confirmation, headers, body).await
}

async fn reverse(State(sim): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    advice(sim, MessageKind::Reversal, headers, body).await
}

async fn advice(sim: Arc<Shared>, kind: MessageKind, headers: HeaderMap, body: Bytes) -> Response {
    let (seq, received) = receive(&sim, kind, &headers, &body);
    let reply = match received {
        Ok(value) => answer_advice(&sim, kind, value).await,
        Err(reply) => reply,
    };
    finish(&sim, seq, reply)
}

/// A partner creates no QR codes and takes no scans.
async fn not_a_partner_operation() -> Response {
    Reply::error(
        501,
        ErrorDetail::new(
            "unknown",
            ErrorType::FunctionNotSupported,
            "Not a partner operation",
        ),
    )
    .into_response()
}

/// Records the message in the ledger, then checks credentials and that the body is JSON.
fn receive(
    sim: &Shared,
    kind: MessageKind,
    headers: &HeaderMap,
    body: &Bytes,
) -> (u64, Result<Value, Reply>) {
    let credentials = auth::credentials(headers);
    let parsed = serde_json::from_slice::<Value>(body);
    let message = match &parsed {
        Ok(v) => v.clone(),
        Err(_) => Value::String(String::from_utf8_lossy(body).into_owned()),
    };
    let seq = lock(&sim.ledger).record(Arrival {
        kind,
        message,
        username: credentials.as_ref().map(|c| c.username.clone()),
        received_at: Utc::now(),
    });
    if !auth::permits(&sim.settings, credentials.as_ref()) {
        let id = parsed.as_ref().ok().map_or("unknown", message_id);
        let detail = ErrorDetail::new(id, ErrorType::GeneralError, "Authentication required");
        return (seq, Err(Reply::Unauthorised(json_of(&detail))));
    }
    let result = parsed.map_err(|e| {
        Reply::error(
            400,
            ErrorDetail::new("unknown", ErrorType::FormatError, "Malformed JSON")
                .with_format_errors(&[crate::model::FormatError {
                    field: "body".into(),
                    msg: e.to_string(),
                    value: String::new(),
                }]),
        )
    });
    (seq, result)
}

fn finish(sim: &Shared, seq: u64, reply: Reply) -> Response {
    lock(&sim.ledger).finish(seq, reply.status());
    reply.into_response()
}

fn message_id(v: &Value) -> &str {
    v.get("id").and_then(Value::as_str).unwrap_or("unknown")
}

fn json_of(detail: &ErrorDetail) -> Value {
    serde_json::to_value(detail).unwrap_or(Value::Null)
}

/// `value` as a `T`, or the 400 FORMAT_ERROR that says why not.
fn typed<T: serde::de::DeserializeOwned>(value: &Value, schema: &Schema) -> Result<T, Reply> {
    let id = message_id(value);
    let problems = schema::check(value, schema);
    if !problems.is_empty() {
        let detail = ErrorDetail::new(id, ErrorType::FormatError, "Invalid message")
            .with_format_errors(&problems);
        return Err(Reply::error(400, detail));
    }
    serde_json::from_value(value.clone()).map_err(|e| {
        let detail = ErrorDetail::new(id, ErrorType::FormatError, "Invalid message")
            .with_format_errors(&[crate::model::FormatError {
                field: "body".into(),
                msg: e.to_string(),
                value: String::new(),
            }]);
        Reply::error(400, detail)
    })
}

async fn answer_pay(sim: &Shared, value: Value) -> Reply {
    let req: PaymentRequest = match typed(&value, &schema::PAYMENT_REQUEST) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    lock(&sim.payments).insert(req.id.clone(), req.tran_id.clone());
    let scripted = lock(&sim.script).next_pay(&req.tran_id);
    let mut behaviour = scripted.unwrap_or_else(|| sim.settings.behaviour.pay_behaviour());
    if !sim.pause(sim.settings.latency).await {
        return Reply::Drop;
    }
    loop {
        behaviour = match behaviour {
            PayBehaviour::Delay { by, then } => {
                if !sim.pause(by).await {
                    return Reply::Drop;
                }
                *then
            }
            PayBehaviour::Approve => {
                return Reply::json(201, answer::approve(&req, &sim.settings.institution()))
            }
            PayBehaviour::Decline { status, error_type } => {
                return Reply::error(status, answer::decline(&req, error_type))
            }
            PayBehaviour::ServerError(status) => {
                let detail = ErrorDetail::new(
                    &req.id,
                    answer::error_type_for(status),
                    "Simulated server error",
                )
                .with_tran_id(&req.tran_id);
                return Reply::error(status, detail);
            }
            PayBehaviour::Hang => {
                sim.shutdown.cancelled().await;
                return Reply::Drop;
            }
            PayBehaviour::DropConnection => return Reply::Drop,
        }
    }
}

async fn answer_advice(sim: &Shared, kind: MessageKind, value: Value) -> Reply {
    let parsed = match kind {
        MessageKind::Reversal => typed::<PaymentReversal>(&value, &schema::PAYMENT_REVERSAL)
            .map(|r| (r.id, r.request_id, r.tran_id)),
        _ => typed::<PaymentConfirmation>(&value, &schema::PAYMENT_CONFIRMATION)
            .map(|c| (c.id, c.request_id, c.tran_id)),
    };
    let (id, request_id, tran_id) = match parsed {
        Ok(fields) => fields,
        Err(reply) => return reply,
    };
    let paid_tran_id = lock(&sim.payments).get(&request_id).cloned();
    let unknown = paid_tran_id.is_none();
    let tran_id = tran_id.or(paid_tran_id);
    let scripted = lock(&sim.script).next_advice(&id, tran_id.as_deref());
    let mut behaviour = scripted.unwrap_or(match kind {
        MessageKind::Reversal if unknown => AdviceBehaviour::NotFound,
        _ => AdviceBehaviour::Accept,
    });
    if !sim.pause(sim.settings.latency).await {
        return Reply::Drop;
    }
    let failure = |status: u16, error_type: ErrorType, message: &str| {
        let mut detail = ErrorDetail::new(&id, error_type, message).with_original_id(&request_id);
        detail.tran_id = tran_id.clone();
        Reply::error(status, detail)
    };
    loop {
        behaviour = match behaviour {
            AdviceBehaviour::Delay { by, then } => {
                if !sim.pause(by).await {
                    return Reply::Drop;
                }
                *then
            }
            AdviceBehaviour::FailTimes { n, status } => {
                lock(&sim.script).start_failing(&id, n, status)
            }
            AdviceBehaviour::Accept => return Reply::Json(202, value),
            AdviceBehaviour::NotFound => {
                return failure(404, ErrorType::UnableToLocateRecord, "Payment not found")
            }
            AdviceBehaviour::Status(status) if (200..300).contains(&status) => {
                return Reply::Json(status, value)
            }
            AdviceBehaviour::Status(status) => {
                return failure(status, answer::error_type_for(status), "Simulated failure")
            }
            AdviceBehaviour::Hang => {
                sim.shutdown.cancelled().await;
                return Reply::Drop;
            }
            AdviceBehaviour::DropConnection => return Reply::Drop,
        }
    }
}
