//! Access control, as a table: every operation × every kind of caller → the status and
//! errorType the hub answers (DESIGN.md §3 and §9). A POS sees and advises only its own
//! payments, and another client's payment answers exactly as an unknown one; a partner scans
//! only as itself; the wrong role, missing or bad credentials are 401 with a Basic challenge.
//! Then the per-caller rate limits.

use base64::Engine;
use reqwest::header::{HeaderMap, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use serde_json::{json, Value};
use std::time::Duration;

use crate::common::db::TestDb;
use crate::common::hub::{
    confirmation, new_id, now, pay_request, qr_request, reversal, Options, TestHub,
    PARTNER_PASSWORD, POS_PASSWORD,
};
use qrhub::simulator::MessageKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    CreateQrCode,
    Pay,
    NotifyScan,
    ConfirmPayment,
    ReversePayment,
    QrImage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// pos-1, whose codes and payments these are.
    RightPos,
    /// pos-2, with its own valid credentials.
    OtherPos,
    /// wallet-1 (on a scan: scanning as itself).
    Partner,
    /// wallet-2 (on a scan: claiming to be wallet-1 in the body).
    OtherPartner,
    NoCredentials,
    /// The operation's rightful user with a wrong password.
    BadPassword,
    UnknownUser,
    /// Authorization headers that are not Basic user:password (each one tried).
    Malformed,
}

use Op::*;
use Who::*;

const FORMAT_ERROR: Option<&str> = Some("FORMAT_ERROR");
const INVALID_TRAN_ID: Option<&str> = Some("INVALID_TRAN_ID");
const NOT_FOUND: Option<&str> = Some("UNABLE_TO_LOCATE_RECORD");
/// An expected answer: the status and the ErrorDetail's errorType (none on success).
type Expected = (u16, Option<&'static str>);
/// 401 answers carry an ErrorDetail too.
const UNAUTHORIZED: Expected = (401, FORMAT_ERROR);

/// The contract. Within an operation the other POS goes before the right one, so that the
/// right one's success afterwards shows the other's attempt changed nothing.
#[rustfmt::skip]
const TABLE: &[(Op, Who, Expected)] = &[
    (CreateQrCode,   OtherPos,      (400, FORMAT_ERROR)),   // client.id is pos-1, not pos-2
    (CreateQrCode,   RightPos,      (201, None)),
    (CreateQrCode,   Partner,       UNAUTHORIZED),
    (CreateQrCode,   OtherPartner,  UNAUTHORIZED),
    (CreateQrCode,   NoCredentials, UNAUTHORIZED),
    (CreateQrCode,   BadPassword,   UNAUTHORIZED),
    (CreateQrCode,   UnknownUser,   UNAUTHORIZED),
    (CreateQrCode,   Malformed,     UNAUTHORIZED),

    (Pay,            OtherPos,      (400, INVALID_TRAN_ID)), // pos-2 pays pos-1's tranId
    (Pay,            RightPos,      (201, None)),            // held, scanned, approved
    (Pay,            Partner,       UNAUTHORIZED),
    (Pay,            OtherPartner,  UNAUTHORIZED),
    (Pay,            NoCredentials, UNAUTHORIZED),
    (Pay,            BadPassword,   UNAUTHORIZED),
    (Pay,            UnknownUser,   UNAUTHORIZED),
    (Pay,            Malformed,     UNAUTHORIZED),

    (NotifyScan,     OtherPartner,  (400, FORMAT_ERROR)),   // wallet-2 scanning as wallet-1
    (NotifyScan,     Partner,       (202, None)),
    (NotifyScan,     RightPos,      UNAUTHORIZED),
    (NotifyScan,     OtherPos,      UNAUTHORIZED),
    (NotifyScan,     NoCredentials, UNAUTHORIZED),
    (NotifyScan,     BadPassword,   UNAUTHORIZED),
    (NotifyScan,     UnknownUser,   UNAUTHORIZED),
    (NotifyScan,     Malformed,     UNAUTHORIZED),

    (ConfirmPayment, OtherPos,      (404, NOT_FOUND)),
    (ConfirmPayment, RightPos,      (202, None)),
    (ConfirmPayment, Partner,       UNAUTHORIZED),
    (ConfirmPayment, OtherPartner,  UNAUTHORIZED),
    (ConfirmPayment, NoCredentials, UNAUTHORIZED),
    (ConfirmPayment, BadPassword,   UNAUTHORIZED),
    (ConfirmPayment, UnknownUser,   UNAUTHORIZED),
    (ConfirmPayment, Malformed,     UNAUTHORIZED),

    (ReversePayment, OtherPos,      (404, NOT_FOUND)),
    (ReversePayment, RightPos,      (202, None)),
    (ReversePayment, Partner,       UNAUTHORIZED),
    (ReversePayment, OtherPartner,  UNAUTHORIZED),
    (ReversePayment, NoCredentials, UNAUTHORIZED),
    (ReversePayment, BadPassword,   UNAUTHORIZED),
    (ReversePayment, UnknownUser,   UNAUTHORIZED),
    (ReversePayment, Malformed,     UNAUTHORIZED),

    (QrImage,        OtherPos,      (404, NOT_FOUND)),
    (QrImage,        RightPos,      (200, None)),
    (QrImage,        Partner,       UNAUTHORIZED),
    (QrImage,        OtherPartner,  UNAUTHORIZED),
    (QrImage,        NoCredentials, UNAUTHORIZED),
    (QrImage,        BadPassword,   UNAUTHORIZED),
    (QrImage,        UnknownUser,   UNAUTHORIZED),
    (QrImage,        Malformed,     UNAUTHORIZED),
];

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// Authorization values that are not `Basic base64(user:password)`.
fn malformed_headers() -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    vec![
        "Basic !!!not-base64!!!".into(),
        format!("Bearer {}", b64(&format!("pos-1:{POS_PASSWORD}"))),
        format!("Basic {}", b64("pos-1")), // no colon
        format!("pos-1:{POS_PASSWORD}"),   // not encoded, no scheme
        "Basic".into(),
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe, b':', 0x80])
        ),
    ]
}

/// The Authorization values `who` sends for `op` (several for [`Who::Malformed`]; `None` for
/// no header at all).
fn authorizations(op: Op, who: Who) -> Vec<Option<String>> {
    let rightful = if op == NotifyScan {
        ("wallet-1", PARTNER_PASSWORD)
    } else {
        ("pos-1", POS_PASSWORD)
    };
    match who {
        RightPos => vec![Some(basic("pos-1", POS_PASSWORD))],
        OtherPos => vec![Some(basic("pos-2", POS_PASSWORD))],
        Partner => vec![Some(basic("wallet-1", PARTNER_PASSWORD))],
        OtherPartner => vec![Some(basic("wallet-2", PARTNER_PASSWORD))],
        NoCredentials => vec![None],
        BadPassword => vec![Some(basic(rightful.0, "not-the-password"))],
        UnknownUser => vec![Some(basic("pos-9", rightful.1))],
        Malformed => malformed_headers().into_iter().map(Some).collect(),
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn error_type(&self) -> Option<&str> {
        self.body.get("errorType").and_then(Value::as_str)
    }

    /// The answer with what the request itself chose taken out (message ids, the request an
    /// advice refers to, the tranId asked for, the request id header, the date): what is
    /// left is what the hub revealed.
    fn revealed(&self) -> (u16, Vec<(String, String)>, Value) {
        let mut body = self.body.clone();
        if let Some(map) = body.as_object_mut() {
            for key in ["id", "originalId", "tranId"] {
                map.remove(key);
            }
        }
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id"))
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_owned()))
            .collect();
        headers.sort();
        (self.status, headers, body)
    }
}

async fn send(
    hub: &TestHub,
    method: reqwest::Method,
    path: &str,
    authorization: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let mut request = hub.http.request(method, format!("{}{path}", hub.url));
    if let Some(value) = authorization {
        request = request.header(AUTHORIZATION, value);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("the hub answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    let body = if text.is_empty()
        || headers
            .get("content-type")
            .is_some_and(|t| t != "application/json")
    {
        Value::String(text)
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn scan_body(partner: &str, tran_id: &str) -> Value {
    json!({
        "id": new_id(),
        "time": now(),
        "partner": {"id": partner, "name": format!("Wallet {partner}")},
        "tranId": tran_id,
        "partnerPaymentToken": format!("token-{tran_id}"),
    })
}

fn unknown_tran_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A pay by pos-1 for `tran_id`, held, then scanned by wallet-1: (the pay's answer, the
/// scan's answer).
async fn paid_and_scanned(hub: &TestHub, pay: Value, tran_id: &str) -> (Answer, Answer) {
    let held = {
        let http = hub.http.clone();
        let url = format!("{}/qr/v1/payments", hub.url);
        let authorization = basic("pos-1", POS_PASSWORD);
        tokio::spawn(async move {
            let response = http
                .post(url)
                .header(AUTHORIZATION, authorization)
                .json(&pay)
                .send()
                .await
                .expect("the hub answers");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body: Value = response.json().await.expect("JSON");
            Answer {
                status,
                headers,
                body,
            }
        })
    };
    // A scan that arrives before the pay waits for it (early_scan_grace).
    let scan = send(
        hub,
        reqwest::Method::POST,
        "/qr/v1/scans",
        Some(&basic("wallet-1", PARTNER_PASSWORD)),
        Some(&scan_body("wallet-1", tran_id)),
    )
    .await;
    let paid = held.await.expect("the pay task");
    (paid, scan)
}

/// An approved payment of pos-1: the pay's request id.
async fn approved_payment(hub: &TestHub) -> String {
    let tran_id = hub.new_code(1500).await;
    let pay = pay_request("pos-1", &tran_id, 1500);
    let request_id = pay["id"].as_str().expect("id").to_owned();
    let (paid, scan) = paid_and_scanned(hub, pay, &tran_id).await;
    assert_eq!((paid.status, scan.status), (201, 202), "{paid:?} {scan:?}");
    request_id
}

/// What the table's rows act on: pos-1's codes and payments.
struct Fixture {
    /// Not paid yet: the pay rows' target.
    pay_code: String,
    /// The image rows' and the scan refusals' code.
    image_code: String,
    /// Approved payments (request ids) to confirm and to reverse.
    to_confirm: String,
    to_reverse: String,
}

/// Performs `op` as `who` with one Authorization value; for the rows that must be
/// indistinguishable from an unknown record, also the same request for an unknown one.
async fn perform(
    hub: &TestHub,
    fx: &Fixture,
    op: Op,
    who: Who,
    authorization: Option<&str>,
) -> (Answer, Option<Answer>) {
    use reqwest::Method;
    let post = |path: &'static str, body: Value| async move {
        send(hub, Method::POST, path, authorization, Some(&body)).await
    };
    match op {
        CreateQrCode => (
            post("/qr/v1/qrCodes", qr_request("pos-1", 1000)).await,
            None,
        ),
        Pay if who == RightPos => {
            let pay = pay_request("pos-1", &fx.pay_code, 1000);
            let (paid, scan) = paid_and_scanned(hub, pay, &fx.pay_code).await;
            assert_eq!(scan.status, 202, "{scan:?}");
            (paid, None)
        }
        Pay if who == OtherPos => {
            let theirs = post("/qr/v1/payments", pay_request("pos-2", &fx.pay_code, 1000)).await;
            let unknown = post(
                "/qr/v1/payments",
                pay_request("pos-2", &unknown_tran_id(), 1000),
            )
            .await;
            (theirs, Some(unknown))
        }
        Pay => (
            post("/qr/v1/payments", pay_request("pos-1", &fx.pay_code, 1000)).await,
            None,
        ),
        NotifyScan if who == Partner => {
            let tran_id = hub.new_code(700).await;
            let (paid, scan) =
                paid_and_scanned(hub, pay_request("pos-1", &tran_id, 700), &tran_id).await;
            assert_eq!(paid.status, 201, "{paid:?}");
            (scan, None)
        }
        NotifyScan => (
            post("/qr/v1/scans", scan_body("wallet-1", &fx.image_code)).await,
            None,
        ),
        ConfirmPayment => {
            let answer = post(
                "/qr/v1/payments/confirmations",
                confirmation(&fx.to_confirm),
            )
            .await;
            let unknown = if who == OtherPos {
                Some(post("/qr/v1/payments/confirmations", confirmation(&new_id())).await)
            } else {
                None
            };
            (answer, unknown)
        }
        ReversePayment => {
            let answer = post(
                "/qr/v1/payments/reversals",
                reversal(&fx.to_reverse, "CANCELLED"),
            )
            .await;
            let unknown = if who == OtherPos {
                Some(
                    post(
                        "/qr/v1/payments/reversals",
                        reversal(&new_id(), "CANCELLED"),
                    )
                    .await,
                )
            } else {
                None
            };
            (answer, unknown)
        }
        QrImage => {
            let image = |tran_id: String| async move {
                let path = format!("/qr/v1/qrCodes/{tran_id}/image");
                send(hub, Method::GET, &path, authorization, None).await
            };
            let answer = image(fx.image_code.clone()).await;
            let unknown = if who == OtherPos {
                Some(image(unknown_tran_id()).await)
            } else {
                None
            };
            (answer, unknown)
        }
    }
}

async fn every_operation_by_every_caller(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let fx = Fixture {
        pay_code: hub.new_code(1000).await,
        image_code: hub.new_code(1000).await,
        to_confirm: approved_payment(&hub).await,
        to_reverse: approved_payment(&hub).await,
    };
    let mut failures = Vec::new();
    // Every 401 of an operation must look the same: a wrong role, a wrong password and an
    // unknown user are not told apart.
    let mut refusals: Vec<(Op, Who, Answer)> = Vec::new();
    let mut compared_with_unknown = Vec::new();
    for &(op, who, (status, error_type)) in TABLE {
        for authorization in authorizations(op, who) {
            let (answer, unknown) = perform(&hub, &fx, op, who, authorization.as_deref()).await;
            let row = format!("{op:?} by {who:?} ({authorization:?})");
            if answer.status != status || answer.error_type() != error_type {
                failures.push(format!(
                    "{row}: expected {status} {error_type:?}, got {} {}",
                    answer.status, answer.body
                ));
                continue;
            }
            if op == QrImage && status == 200 {
                let kind = answer
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok());
                if kind != Some("image/svg+xml") {
                    failures.push(format!("{row}: image served as {kind:?}"));
                }
            }
            if status == 401 {
                let challenge = answer
                    .headers
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                if !challenge.starts_with("Basic ") {
                    failures.push(format!("{row}: 401 without a Basic challenge"));
                }
                refusals.push((op, who, answer));
            } else if let Some(unknown) = unknown {
                // Someone else's record answers exactly as one that does not exist.
                compared_with_unknown.push(op);
                if answer.revealed() != unknown.revealed() {
                    failures.push(format!(
                        "{row}: another client's record is told apart from an unknown one:\n  \
                         theirs:  {:?}\n  unknown: {:?}",
                        answer.revealed(),
                        unknown.revealed()
                    ));
                }
            }
        }
    }
    for op in [
        CreateQrCode,
        Pay,
        NotifyScan,
        ConfirmPayment,
        ReversePayment,
        QrImage,
    ] {
        let mut answers = refusals.iter().filter(|(o, _, _)| *o == op);
        let Some((_, first_who, first)) = answers.next() else {
            failures.push(format!("{op:?}: no 401 rows ran"));
            continue;
        };
        for (_, who, answer) in answers {
            if answer.revealed() != first.revealed() {
                failures.push(format!(
                    "{op:?}: the 401 for {who:?} differs from the one for {first_who:?}: {:?} vs {:?}",
                    answer.revealed(),
                    first.revealed()
                ));
            }
        }
    }
    assert_eq!(
        compared_with_unknown,
        [Pay, ConfirmPayment, ReversePayment, QrImage],
        "every lookup of another client's record is compared with an unknown one"
    );
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Nothing the refused callers sent reached the partner: exactly the four payments of
    // pos-1 (two fixtures, the pay row, the scan row), one confirmation, one reversal.
    hub.wait_for_ledger(Duration::from_secs(5), |ledger| {
        let count = |kind| ledger.iter().filter(|e| e.kind == kind).count();
        (
            count(MessageKind::Pay),
            count(MessageKind::Confirmation),
            count(MessageKind::Reversal),
        ) == (4, 1, 1)
    })
    .await;
    hub.stop().await;
}

/// `[rate_limit] requests_per_second = 2, burst = 3`: a caller's fourth quick request gets
/// 429 with Retry-After; other callers are unaffected; after the wait it passes again.
async fn rate_limits_are_per_caller(db: TestDb) {
    let hub = TestHub::start(
        db,
        Options {
            extra: "[rate_limit]\nrequests_per_second = 2\nburst = 3\n".into(),
            ..Options::default()
        },
    )
    .await;
    let create = |user: &'static str, password: &'static str| {
        let hub = &hub;
        async move {
            let authorization = basic(user, password);
            send(
                hub,
                reqwest::Method::POST,
                "/qr/v1/qrCodes",
                Some(&authorization),
                Some(&qr_request(user, 1000)),
            )
            .await
        }
    };
    // Failed authentications do not spend pos-1's budget: the limit is per identity, and
    // only the holder of the password can use it up.
    for _ in 0..5 {
        assert_eq!(create("pos-1", "wrong").await.status, 401);
    }
    for i in 0..3 {
        let answer = create("pos-1", POS_PASSWORD).await;
        assert_eq!(answer.status, 201, "request {i}: {answer:?}");
    }
    let limited = create("pos-1", POS_PASSWORD).await;
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(limited.error_type(), Some("GENERAL_ERROR"), "{limited:?}");
    assert_eq!(
        limited.body["errorMessage"], "Rate limit exceeded",
        "{limited:?}"
    );
    let retry_after: u64 = limited
        .headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After in seconds: {limited:?}"));
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");

    // pos-2 has its own budget.
    for i in 0..3 {
        let answer = create("pos-2", POS_PASSWORD).await;
        assert_eq!(answer.status, 201, "pos-2 request {i}: {answer:?}");
    }
    // Partners too: wallet-1's scans of unknown codes are refused on their merits, until its
    // budget runs out.
    for i in 0..4 {
        let answer = send(
            &hub,
            reqwest::Method::POST,
            "/qr/v1/scans",
            Some(&basic("wallet-1", PARTNER_PASSWORD)),
            Some(&scan_body("wallet-1", &unknown_tran_id())),
        )
        .await;
        let expected = if i < 3 { 400 } else { 429 };
        assert_eq!(answer.status, expected, "wallet-1 scan {i}: {answer:?}");
    }

    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let again = create("pos-1", POS_PASSWORD).await;
    assert_eq!(again.status, 201, "after Retry-After: {again:?}");
    hub.stop().await;
}

both_stores!(every_operation_by_every_caller, rate_limits_are_per_caller);
