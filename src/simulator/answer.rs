//! The answers the simulator gives: approvals, ErrorDetails, and aborted connections.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::behaviour::Respond;
use crate::model::{
    Amounts, ErrorDetail, ErrorType, Institution, LedgerAmount, PaymentRequest, PaymentResponse,
    Tender, TenderType, ThirdPartyIdentifier,
};

/// The body of a scripted 2xx that is not JSON, as a misconfigured gateway or a wallet's
/// "OK" page sends it.
pub(crate) const NON_JSON_BODY: &str = "APPROVED";

/// One answer, before it becomes a response; the ledger records its status.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A JSON body with this status.
    Json(u16, Value),
    /// A JSON body with this status and extra headers (`Retry-After`, `Location`).
    JsonWith(u16, Value, Vec<(HeaderName, HeaderValue)>),
    /// A `text/plain` body with this status.
    Text(u16, &'static str),
    /// 401 with `WWW-Authenticate: Basic` and this body.
    Unauthorised(Value),
    /// No response: the connection is aborted.
    Drop,
}

impl Reply {
    pub(crate) fn json(status: u16, body: impl serde::Serialize) -> Self {
        match serde_json::to_value(body) {
            Ok(v) => Self::Json(status, v),
            Err(e) => Self::Json(500, serde_json::json!({ "error": e.to_string() })),
        }
    }

    pub(crate) fn error(status: u16, detail: ErrorDetail) -> Self {
        Self::json(status, detail)
    }

    /// `body` with the status and headers of `r`.
    pub(crate) fn respond(r: &Respond, body: Value) -> Self {
        let mut headers = Vec::new();
        for (name, value) in [
            (header::RETRY_AFTER, &r.retry_after),
            (header::LOCATION, &r.location),
        ] {
            if let Some(v) = value {
                // Checked when scripted over HTTP; one built in process that cannot be sent
                // is left out rather than failing the answer.
                match HeaderValue::from_str(v) {
                    Ok(v) => headers.push((name, v)),
                    Err(_) => {
                        tracing::warn!(header = %name, value = %v, "simulator: unsendable header left out")
                    }
                }
            }
        }
        Self::JsonWith(r.status, body, headers)
    }

    /// The status the caller will see; `None` when the connection is dropped.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Self::Json(s, _) | Self::JsonWith(s, _, _) | Self::Text(s, _) => {
                Some(status_code(*s).as_u16())
            }
            Self::Unauthorised(_) => Some(401),
            Self::Drop => None,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Self::Json(s, body) => (status_code(s), axum::Json(body)).into_response(),
            Self::JsonWith(s, body, headers) => {
                let mut response = (status_code(s), axum::Json(body)).into_response();
                response.headers_mut().extend(headers);
                response
            }
            Self::Text(s, body) => (
                status_code(s),
                [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
                body,
            )
                .into_response(),
            Self::Unauthorised(body) => (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"qrhub-simulator\""),
                )],
                axum::Json(body),
            )
                .into_response(),
            Self::Drop => aborted(),
        }
    }
}

/// `s` as a status code; 500 for a number that is not one.
fn status_code(s: u16) -> StatusCode {
    StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A response whose body fails before its first byte: hyper then closes the connection
/// without writing the head it has buffered, so the caller sees the connection end with no
/// response, a transport error rather than a status.
fn aborted() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "simulated connection loss",
        ))
    });
    let mut response = Response::new(Body::from_stream(failing));
    *response.status_mut() = StatusCode::CREATED;
    response
}

/// The error type that goes with a scripted failure status.
pub(crate) fn error_type_for(status: u16) -> ErrorType {
    match status {
        404 => ErrorType::UnableToLocateRecord,
        501 => ErrorType::FunctionNotSupported,
        503 | 504 => ErrorType::UpstreamUnavailable,
        _ => ErrorType::GeneralError,
    }
}

/// The 201 answer to `req`: the request echoed, the simulator's own third-party identifier
/// appended, and the whole requested amount approved and paid from a wallet.
pub(crate) fn approve(req: &PaymentRequest, me: &Institution) -> PaymentResponse {
    let mut third_party_identifiers = req.third_party_identifiers.clone();
    third_party_identifiers.push(ThirdPartyIdentifier {
        institution_id: me.id.clone(),
        transaction_identifier: Some(uuid::Uuid::new_v4().to_string()),
    });
    let approved = req.amounts.request_amount.clone();
    let tenders = approved.clone().map(|amount| {
        vec![Tender {
            account_type: None,
            amount,
            card_number: None,
            reference: None,
            tender_type: TenderType::Wallet,
        }]
    });
    PaymentResponse {
        id: req.id.clone(),
        time: req.time,
        originator: req.originator.clone(),
        client: req.client.clone(),
        settlement_entity: req.settlement_entity.clone(),
        receiver: req.receiver.clone(),
        third_party_identifiers,
        slip_data: req.slip_data.clone(),
        basket_ref: req.basket_ref.clone(),
        tran_type: req.tran_type,
        src_acc_type: req.src_acc_type,
        dest_acc_type: req.dest_acc_type,
        stan: req.stan.clone(),
        rrn: req.rrn.clone(),
        partner: req.partner.clone().unwrap_or_else(|| me.clone()),
        tenders,
        amounts: Amounts {
            approved_amount: approved,
            ..req.amounts.clone()
        },
        tran_id: req.tran_id.clone(),
        partner_payment_token: req.partner_payment_token.clone(),
    }
}

/// The 201 answer to `req`, approved for `amount` of the requested currency instead of what
/// was asked.
pub(crate) fn approve_amount(
    req: &PaymentRequest,
    me: &Institution,
    amount: i64,
) -> PaymentResponse {
    let mut response = approve(req, me);
    let currency = req
        .amounts
        .request_amount
        .as_ref()
        .map_or_else(|| "710".to_owned(), |a| a.currency.clone());
    let approved = LedgerAmount {
        amount,
        currency,
        ledger_indicator: None,
    };
    if let Some(tenders) = response.tenders.as_mut() {
        for t in tenders {
            t.amount = approved.clone();
        }
    }
    response.amounts.approved_amount = Some(approved);
    response
}

/// Half the requested amount (at least 1): the default of a scripted partial approval.
pub(crate) fn half_of(req: &PaymentRequest) -> i64 {
    let requested = req.amounts.request_amount.as_ref().map_or(2, |a| a.amount);
    (requested / 2).max(1)
}

/// A name longer than the interface's 40 characters, as wallets register them.
const LONG_PARTNER_NAME: &str = "Simulated Wallet Payments Proprietary Limited (South Africa)";

/// An approval of `req` as real wallets send it: valid JSON, the whole amount approved, but
/// not schema-exact. No `originator` or `client` echoed, `slipData.issuerReference` in lower
/// case, the partner's name over 40 characters, and fields of the wallet's own.
pub(crate) fn lenient(req: &PaymentRequest, me: &Institution) -> Value {
    let mut body = serde_json::to_value(approve(req, me)).unwrap_or(Value::Null);
    if let Some(map) = body.as_object_mut() {
        map.remove("originator");
        map.remove("client");
        map.insert(
            "partner".into(),
            serde_json::json!({"id": me.id, "name": LONG_PARTNER_NAME}),
        );
        let reference = req
            .slip_data
            .as_ref()
            .and_then(|s| s.get("issuerReference"))
            .and_then(Value::as_str)
            .unwrap_or("WLT0001")
            .to_lowercase();
        let slip = map
            .entry("slipData")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(slip) = slip.as_object_mut() {
            slip.insert("issuerReference".into(), Value::String(reference));
        }
        map.insert(
            "vendorData".into(),
            serde_json::json!({"walletTxn": uuid::Uuid::new_v4().to_string(), "loyaltyPoints": 12}),
        );
        map.insert("responseCode".into(), Value::String("00".into()));
    }
    body
}

/// The ErrorDetail of a scripted decline of `req`.
pub(crate) fn decline(req: &PaymentRequest, error_type: ErrorType) -> ErrorDetail {
    let name = serde_json::to_value(error_type)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    ErrorDetail::new(&req.id, error_type, format!("Simulated {name}")).with_tran_id(&req.tran_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decline_message_fits_in_40_characters() {
        let req: PaymentRequest = serde_json::from_value(serde_json::json!({
            "id": "p1", "time": "2024-01-01T00:00:00Z",
            "originator": {"institution": {"id": "i", "name": "n"}, "terminalId": "t",
                "merchant": {"merchantType": "5411", "merchantId": "m",
                    "merchantName": {"name": "n", "city": "c", "region": "r", "country": "ZA"}}},
            "client": {"id": "pos-1", "name": "POS"},
            "amounts": {"requestAmount": {"amount": 100, "currency": "710"}},
            "tranId": "t1"
        }))
        .expect("a valid request");
        for t in [
            ErrorType::DeclinedByPartner,
            ErrorType::TransactionNotSupported,
        ] {
            let d = decline(&req, t);
            assert!(d.error_message.chars().count() <= 40, "{}", d.error_message);
            assert_eq!(d.tran_id.as_deref(), Some("t1"));
        }
        let me = Institution {
            id: "wallet-1".into(),
            name: "W".into(),
        };
        let r = approve(&req, &me);
        assert_eq!(r.partner, me);
        assert_eq!(r.amounts.approved_amount, req.amounts.request_amount);
        assert_eq!(r.third_party_identifiers.len(), 1);
    }

    #[test]
    fn an_impossible_status_becomes_500() {
        assert_eq!(Reply::Json(42, Value::Null).status(), Some(500));
        assert_eq!(Reply::Drop.status(), None);
    }
}
