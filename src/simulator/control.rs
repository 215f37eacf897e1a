//! `/simulator/...`: scripting, ledger and scans over HTTP, for the CLI and the load
//! generator in another process. No credentials: bind the simulator to a private address.
//!
//! | request | effect | answer |
//! |---|---|---|
//! | `GET /simulator/ledger` | | 200, the ledger (a JSON list of entries, oldest first) |
//! | `DELETE /simulator/ledger` | empties the ledger (the simulator still knows the payments it saw) | 204 |
//! | `POST /simulator/script/pay` | queues a pay behaviour; a `"tranId"` member keys it to that tranId | 204, or 400 `{"error"}` |
//! | `POST /simulator/script/advice` | the same for confirmations and reversals | 204, or 400 |
//! | `DELETE /simulator/script` | forgets every scripted behaviour and FailTimes state | 204 |
//! | `POST /simulator/scan` `{"tranId","partnerPaymentToken"?}` | sends a scan to the hub | 200 `{"id","status","body"?}` with the hub's status, or 502 `{"error"}` |
//! | `POST /simulator/outage` `{"for":"2m","kind":"respond","status":503,"retryAfter":"120"}` or `{"for":"30s","kind":"refuse"}` | starts an outage (replacing one under way) | 204, or 400 |
//! | `DELETE /simulator/outage` | ends the outage under way | 204 |
//! | `GET /simulator/violations` | | 200, the strict-mode violations (a JSON list, oldest first) |
//! | `DELETE /simulator/violations` | forgets them | 204 |
//!
//! A refusing outage closes the port these endpoints share: end it in process
//! (`SimulatorHandle::end_outage`) or let it run out.
//!
//! For example `{"kind":"decline","status":400,"errorType":"INSUFFICIENT_FUNDS","tranId":"9f…"}`
//! (the behaviours are described in [`super::behaviour`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::behaviour::{AdviceBehaviour, Outage, PayBehaviour};
use super::scan;
use super::state::{lock, ActiveOutage, Shared};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/simulator/ledger", get(ledger).delete(clear_ledger))
        .route("/simulator/script/pay", post(script_pay))
        .route("/simulator/script/advice", post(script_advice))
        .route("/simulator/script", delete(clear_script))
        .route("/simulator/scan", post(send_scan))
        .route("/simulator/outage", post(start_outage).delete(end_outage))
        .route(
            "/simulator/violations",
            get(violations).delete(clear_violations),
        )
}

async fn start_outage(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Outage>(&body) {
        Ok(outage) => {
            sim.outage
                .send_replace(Some(ActiveOutage::starting_now(outage)));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => bad_request(&e.to_string()),
    }
}

async fn end_outage(State(sim): State<Arc<Shared>>) -> StatusCode {
    sim.outage.send_replace(None);
    StatusCode::NO_CONTENT
}

async fn violations(State(sim): State<Arc<Shared>>) -> Response {
    let all = lock(&sim.violations).clone();
    Json(all).into_response()
}

async fn clear_violations(State(sim): State<Arc<Shared>>) -> StatusCode {
    lock(&sim.violations).clear();
    StatusCode::NO_CONTENT
}

async fn ledger(State(sim): State<Arc<Shared>>) -> Response {
    let entries = lock(&sim.ledger).snapshot();
    Json(entries).into_response()
}

async fn clear_ledger(State(sim): State<Arc<Shared>>) -> StatusCode {
    lock(&sim.ledger).clear();
    StatusCode::NO_CONTENT
}

async fn clear_script(State(sim): State<Arc<Shared>>) -> StatusCode {
    lock(&sim.script).clear();
    StatusCode::NO_CONTENT
}

async fn script_pay(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match behaviour::<PayBehaviour>(&body) {
        Ok((tran_id, b)) => {
            lock(&sim.script).push_pay(tran_id, b);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => bad_request(&e),
    }
}

async fn script_advice(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match behaviour::<AdviceBehaviour>(&body) {
        Ok((tran_id, b)) => {
            lock(&sim.script).push_advice(tran_id, b);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => bad_request(&e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScanCommand {
    tran_id: String,
    #[serde(default)]
    partner_payment_token: Option<String>,
}

async fn send_scan(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let command: ScanCommand = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return bad_request(&e.to_string()),
    };
    match scan::send(
        &sim,
        &command.tran_id,
        command.partner_payment_token.as_deref(),
    )
    .await
    {
        Ok(outcome) => {
            let mut answer = json!({ "id": outcome.id, "status": outcome.status });
            if let (Some(body), Some(map)) = (outcome.body, answer.as_object_mut()) {
                map.insert("body".into(), body);
            }
            Json(answer).into_response()
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "error": format!("{e:#}") })),
        )
            .into_response(),
    }
}

/// A behaviour from a JSON object, with its optional `tranId` member taken out first.
fn behaviour<B: DeserializeOwned>(body: &[u8]) -> Result<(Option<String>, B), String> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let tran_id = match value.as_object_mut().and_then(|m| m.remove("tranId")) {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t),
        Some(_) => return Err("tranId must be a string".into()),
    };
    let b = serde_json::from_value(value).map_err(|e| e.to_string())?;
    Ok((tran_id, b))
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}
