//! The bodies a POS and a partner send: the same shapes as the README's curl walk-through.

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn originator(lane: usize) -> Value {
    json!({
        "institution": {"id": "1", "name": "Load Retail"},
        "terminalId": format!("T{:07}", lane % 10_000_000),
        "merchant": {
            "merchantType": "5411",
            "merchantId": "000000000012345",
            "merchantName": {"name": "LOAD STORE", "city": "CAPE TOWN", "region": "WC", "country": "ZA"}
        }
    })
}

fn client(pos_user: &str) -> Value {
    json!({"id": pos_user, "name": "Load Retail"})
}

pub(crate) fn qr_request(pos_user: &str, lane: usize, amount: i64) -> Value {
    json!({
        "id": new_id(),
        "time": now(),
        "originator": originator(lane),
        "client": client(pos_user),
        "amounts": {"requestAmount": {"amount": amount, "currency": "710"}},
    })
}

pub(crate) fn pay_request(
    id: &str,
    pos_user: &str,
    lane: usize,
    tran_id: &str,
    amount: i64,
) -> Value {
    json!({
        "id": id,
        "time": now(),
        "originator": originator(lane),
        "client": client(pos_user),
        "amounts": {"requestAmount": {"amount": amount, "currency": "710"}},
        "tranId": tran_id,
    })
}

pub(crate) fn scan(partner_id: &str, partner_name: &str, tran_id: &str) -> Value {
    json!({
        "id": new_id(),
        "time": now(),
        "partner": {"id": partner_id, "name": partner_name},
        "tranId": tran_id,
        "partnerPaymentToken": format!("token-{tran_id}"),
    })
}

pub(crate) fn confirmation(request_id: &str) -> Value {
    json!({"id": new_id(), "requestId": request_id, "time": now()})
}

pub(crate) fn reversal(request_id: &str) -> Value {
    json!({"id": new_id(), "requestId": request_id, "time": now(), "reversalReason": "CANCELLED"})
}
