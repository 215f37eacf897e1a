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
use super::behaviour::{AdviceBehaviour, OutageAnswer, PayBehaviour};
use super::control;
use super::ledger::{Arrival, MessageKind};
use super::state::{lock, Shared};
use super::strict::{self, Rule, Violation};
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
    let id = received
        .as_ref()
        .ok()
        .map(|r| message_id(&r.value).to_owned());
    let validated = received.and_then(|r| validate_pay(&sim, seq, r));
    let (reply, approved) = match (sim.outage_answer(), validated) {
        (Some(outage), _) => (outage_reply(&outage, id.as_deref()), None),
        (None, Ok(req)) => answer_pay(&sim, req).await,
        (None, Err(reply)) => (reply, None),
    };
    finish(&sim, seq, reply, approved)
}

async fn confirm(State(sim): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    advice(sim, MessageKind::Confirmation, headers, body).await
}

async fn reverse(State(sim): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    advice(sim, MessageKind::Reversal, headers, body).await
}

async fn advice(sim: Arc<Shared>, kind: MessageKind, headers: HeaderMap, body: Bytes) -> Response {
    let (seq, received) = receive(&sim, kind, &headers, &body);
    let id = received
        .as_ref()
        .ok()
        .map(|r| message_id(&r.value).to_owned());
    let validated = received.and_then(|r| validate_advice(&sim, seq, kind, r.value));
    let reply = match (sim.outage_answer(), validated) {
        (Some(outage), _) => outage_reply(&outage, id.as_deref()),
        (None, Ok(advice)) => answer_advice(&sim, kind, advice).await,
        (None, Err(reply)) => reply,
    };
    finish(&sim, seq, reply, None)
}

/// What an outage answers every call: its status with an ErrorDetail, or (refusing) the
/// connection dropped, for a request on a connection opened before the outage began.
fn outage_reply(outage: &OutageAnswer, id: Option<&str>) -> Reply {
    match outage {
        OutageAnswer::Refuse => Reply::Drop,
        OutageAnswer::Respond(r) => {
            let detail = ErrorDetail::new(
                id.unwrap_or("unknown"),
                answer::error_type_for(r.status),
                "Simulated outage",
            );
            Reply::respond(r, json_of(&detail))
        }
    }
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

/// A message that passed the first checks: JSON, and credentials if configured.
struct Received {
    value: Value,
    /// The Basic user presented, for strict mode's rule.
    username: Option<String>,
}

/// Records the message in the ledger, then checks credentials and that the body is JSON.
fn receive(
    sim: &Shared,
    kind: MessageKind,
    headers: &HeaderMap,
    body: &Bytes,
) -> (u64, Result<Received, Reply>) {
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
    let username = credentials.map(|c| c.username);
    let result = parsed
        .map(|value| Received { value, username })
        .map_err(|e| {
            record_violation(sim, seq, kind, None, Rule::Schema, format!("not JSON: {e}"));
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

/// Notes the answer in the ledger (with the amount approved, for a 2xx) and sends it.
fn finish(sim: &Shared, seq: u64, reply: Reply, approved: Option<Value>) -> Response {
    let status = reply.status();
    let approved = approved.filter(|_| status.is_some_and(|s| (200..300).contains(&s)));
    lock(&sim.ledger).finish(seq, status, approved);
    reply.into_response()
}

/// In strict mode, keeps a breach for the tests and the chaos checker to count.
fn record_violation(
    sim: &Shared,
    seq: u64,
    kind: MessageKind,
    id: Option<&str>,
    rule: Rule,
    detail: String,
) {
    if sim.settings.strict {
        tracing::warn!(seq, ?kind, ?id, ?rule, %detail, "simulator: strict mode violation");
        lock(&sim.violations).push(Violation {
            seq,
            kind,
            id: id.map(str::to_owned),
            rule,
            detail,
        });
    }
}

fn message_id(v: &Value) -> &str {
    v.get("id").and_then(Value::as_str).unwrap_or("unknown")
}

fn json_of(detail: &ErrorDetail) -> Value {
    serde_json::to_value(detail).unwrap_or(Value::Null)
}

/// `value` as a `T`, or the 400 FORMAT_ERROR that says why not (recorded in strict mode).
fn typed<T: serde::de::DeserializeOwned>(
    sim: &Shared,
    seq: u64,
    kind: MessageKind,
    value: &Value,
    schema: &Schema,
) -> Result<T, Reply> {
    let id = message_id(value);
    let problems = schema::check(value, schema);
    if !problems.is_empty() {
        let detail = strict::describe(&problems);
        record_violation(sim, seq, kind, Some(id), Rule::Schema, detail);
        let detail = ErrorDetail::new(id, ErrorType::FormatError, "Invalid message")
            .with_format_errors(&problems);
        return Err(Reply::error(400, detail));
    }
    serde::Deserialize::deserialize(value).map_err(|e| {
        record_violation(sim, seq, kind, Some(id), Rule::Schema, e.to_string());
        let detail = ErrorDetail::new(id, ErrorType::FormatError, "Invalid message")
            .with_format_errors(&[crate::model::FormatError {
                field: "body".into(),
                msg: e.to_string(),
                value: String::new(),
            }]);
        Reply::error(400, detail)
    })
}

/// The checks a `pay` passes before it is answered: the schema, and in strict mode the
/// Basic-user rule.
fn validate_pay(sim: &Shared, seq: u64, received: Received) -> Result<PaymentRequest, Reply> {
    let value = &received.value;
    let req: PaymentRequest = typed(sim, seq, MessageKind::Pay, value, &schema::PAYMENT_REQUEST)?;
    if sim.settings.strict {
        if let Some(detail) = strict::basic_user_breach(received.username.as_deref(), value) {
            record_violation(
                sim,
                seq,
                MessageKind::Pay,
                Some(&req.id),
                Rule::BasicUser,
                detail.clone(),
            );
            let error = ErrorDetail::new(
                &req.id,
                ErrorType::FormatError,
                "Basic user is not client.id",
            )
            .with_tran_id(&req.tran_id)
            .with_format_errors(&[crate::model::FormatError {
                field: "client.id".into(),
                msg: detail,
                value: req.client.id.clone(),
            }]);
            return Err(Reply::error(400, error));
        }
    }
    Ok(req)
}

/// The answer to a valid `pay`, and the amount it approves when it is an approval.
async fn answer_pay(sim: &Shared, req: PaymentRequest) -> (Reply, Option<Value>) {
    lock(&sim.payments).insert(req.id.clone(), req.tran_id.clone());
    let scripted = lock(&sim.script).next_pay(&req.tran_id);
    let mut behaviour = scripted.unwrap_or_else(|| sim.settings.behaviour.pay_behaviour());
    if !sim.pause(sim.settings.latency).await {
        return (Reply::Drop, None);
    }
    let me = sim.settings.institution();
    let requested = req
        .amounts
        .request_amount
        .as_ref()
        .and_then(|a| serde_json::to_value(a).ok());
    let server_error = |status: u16| {
        ErrorDetail::new(
            &req.id,
            answer::error_type_for(status),
            "Simulated server error",
        )
        .with_tran_id(&req.tran_id)
    };
    loop {
        behaviour = match behaviour {
            PayBehaviour::Delay { by, then } => {
                if !sim.pause(by).await {
                    return (Reply::Drop, None);
                }
                *then
            }
            PayBehaviour::Approve => {
                return (Reply::json(201, answer::approve(&req, &me)), requested)
            }
            PayBehaviour::Decline { status, error_type } => {
                return (
                    Reply::error(status, answer::decline(&req, error_type)),
                    None,
                )
            }
            PayBehaviour::ServerError(status) => {
                return (Reply::error(status, server_error(status)), None);
            }
            PayBehaviour::Hang => {
                sim.shutdown.cancelled().await;
                return (Reply::Drop, None);
            }
            PayBehaviour::DropConnection => return (Reply::Drop, None),
            PayBehaviour::Respond(r) if (200..300).contains(&r.status) => {
                let body = serde_json::to_value(answer::approve(&req, &me)).unwrap_or(Value::Null);
                return (Reply::respond(&r, body), requested);
            }
            PayBehaviour::Respond(r) => {
                return (Reply::respond(&r, json_of(&server_error(r.status))), None)
            }
            PayBehaviour::LenientApprove { status } => {
                return (Reply::Json(status, answer::lenient(&req, &me)), requested)
            }
            PayBehaviour::PartialApprove { amount } => {
                let amount = amount.unwrap_or_else(|| answer::half_of(&req));
                let response = answer::approve_amount(&req, &me, amount);
                let approved = response
                    .amounts
                    .approved_amount
                    .as_ref()
                    .and_then(|a| serde_json::to_value(a).ok());
                return (Reply::json(201, response), approved);
            }
            PayBehaviour::NonJsonApprove { status } => {
                return (Reply::Text(status, answer::NON_JSON_BODY), requested)
            }
        }
    }
}

/// A valid advice: its id, requestId, tranId, and the body (echoed on success).
struct Advice {
    id: String,
    request_id: String,
    tran_id: Option<String>,
    value: Value,
}

fn validate_advice(
    sim: &Shared,
    seq: u64,
    kind: MessageKind,
    value: Value,
) -> Result<Advice, Reply> {
    let (id, request_id, tran_id) = match kind {
        MessageKind::Reversal => {
            typed::<PaymentReversal>(sim, seq, kind, &value, &schema::PAYMENT_REVERSAL)
                .map(|r| (r.id, r.request_id, r.tran_id))?
        }
        _ => typed::<PaymentConfirmation>(sim, seq, kind, &value, &schema::PAYMENT_CONFIRMATION)
            .map(|c| (c.id, c.request_id, c.tran_id))?,
    };
    Ok(Advice {
        id,
        request_id,
        tran_id,
        value,
    })
}

async fn answer_advice(sim: &Shared, kind: MessageKind, advice: Advice) -> Reply {
    let Advice {
        id,
        request_id,
        tran_id,
        value,
    } = advice;
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
            AdviceBehaviour::Respond(r) if (200..300).contains(&r.status) => {
                return Reply::respond(&r, value)
            }
            AdviceBehaviour::Respond(r) => {
                let mut detail =
                    ErrorDetail::new(&id, answer::error_type_for(r.status), "Simulated failure")
                        .with_original_id(&request_id);
                detail.tran_id = tran_id.clone();
                return Reply::respond(&r, json_of(&detail));
            }
        }
    }
}
