//! Real partners, not the simulator: a partner on a random port answers exactly what each
//! test scripts (maintenance-window 503s, a gateway's 429 and 502, redirects, careless
//! approvals, other amounts, oversized bodies) and records what the hub sent. What the hub
//! answers the POS is judged by Electrum's published schema. Every flow runs on PostgreSQL
//! and on SQLite.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

use crate::common::db::TestDb;
use crate::common::hub::{
    confirmation, pay_request, qr_request, reversal, Options, TestHub, HUB_INSTITUTION, OPERATOR,
    OPERATOR_PASSWORD, SIM_USER,
};
use crate::common::partner::{Canned, ScriptedPartner, CONFIRM, PARTNER_INSTITUTION, PAY, REVERSE};
use crate::common::published;
use qrhub::domain::PaymentState;
use qrhub::store::{OutboxMessage, OutboxState};

const WAIT: Duration = Duration::from_secs(8);

async fn start(db: TestDb, partner: &ScriptedPartner, options: Options) -> TestHub {
    TestHub::start(
        db,
        Options {
            partner_url: Some(partner.url.clone()),
            ..options
        },
    )
    .await
}

/// Waits until the payment's only outbox row is in `state`.
async fn wait_row(hub: &TestHub, request: &Value, state: OutboxState) -> OutboxMessage {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows = hub.outbox_of(request).await;
        if rows.len() == 1 && rows[0].state == state {
            return rows[0].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox never reached {state:?}: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn admin(hub: &TestHub, method: reqwest::Method, path: &str) -> (StatusCode, Value) {
    let response = hub
        .http
        .request(method, format!("{}{path}", hub.url))
        .basic_auth(OPERATOR, Some(OPERATOR_PASSWORD))
        .send()
        .await
        .expect("the hub answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The partner answers `pay` 500 (outcome unknown): the hub queues its reversal. The partner
/// is in a maintenance window and answers it 503 once; the reversal must still arrive.
async fn a_reversal_answered_503_in_a_maintenance_window_still_arrives(db: TestDb) {
    let partner = ScriptedPartner::start().await;
    let hub = start(db, &partner, Options::default()).await;
    partner.script(PAY, [Canned::status(500)]);
    partner.script(REVERSE, [Canned::status(503).header("retry-after", "0")]);
    let (request, status, answer) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{answer}");
    published::assert_valid("ErrorDetail", &answer);

    let tries = partner.wait_for(REVERSE, 2, WAIT).await;
    assert_eq!(
        tries[0].body["id"], tries[1].body["id"],
        "the same advice id"
    );
    let row = wait_row(&hub, &request, OutboxState::Delivered).await;
    assert_eq!(row.last_status, Some(202));

    // The POS's own reversal that follows is absorbed: the hub's is the one the partner has.
    let (status, _) = hub
        .pos(
            "/qr/v1/payments/reversals",
            &reversal(request["id"].as_str().expect("id"), "TIMEOUT"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(hub.stored(&request).await.state, PaymentState::Reversed);
    hub.stop().await;
}

/// A confirmation answered 429 with `Retry-After`, then 502 by the partner's gateway, is
/// delivered on the third try, no sooner than the partner asked.
async fn a_confirmation_throttled_or_lost_at_the_gateway_is_retried(db: TestDb) {
    let partner = ScriptedPartner::start().await;
    let hub = start(
        db,
        &partner,
        Options {
            max_backoff: Duration::from_secs(5),
            ..Options::default()
        },
    )
    .await;
    partner.script(
        CONFIRM,
        [
            Canned::status(429).header("retry-after", "1"),
            Canned::with_body(502, "<html>Bad Gateway</html>"),
        ],
    );
    let (request, status, answer) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, _) = hub
        .pos(
            "/qr/v1/payments/confirmations",
            &confirmation(request["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let tries = partner.wait_for(CONFIRM, 3, WAIT).await;
    let waited = tries[1].at.duration_since(tries[0].at);
    assert!(
        waited >= Duration::from_millis(900),
        "Retry-After: 1 not honoured: retried after {waited:?}"
    );
    assert!(tries.iter().all(|t| t.body["id"] == tries[0].body["id"]));
    wait_row(&hub, &request, OutboxState::Delivered).await;
    hub.stop().await;
}

/// The hub's own credentials refused (401, 403) is no verdict on the advice: it is kept and
/// retried, and counted for an alert; a 404 to a confirmation is a refusal (an open item).
async fn refused_credentials_are_retried_and_a_404_confirmation_is_refused(db: TestDb) {
    let partner = ScriptedPartner::start().await;
    let hub = start(db, &partner, Options::default()).await;
    partner.script(CONFIRM, [Canned::status(401), Canned::status(403)]);
    let (request, status, _) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = hub
        .pos(
            "/qr/v1/payments/confirmations",
            &confirmation(request["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    partner.wait_for(CONFIRM, 3, WAIT).await;
    wait_row(&hub, &request, OutboxState::Delivered).await;
    let metrics = hub
        .http
        .get(format!("{}/metrics", hub.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    // At least these two (the recorder is shared by every test in this process).
    let refused = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("qrhub_partner_credentials_refused_total{partner=\"wallet-1\"} ")?
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0);
    assert!(refused >= 2.0, "{metrics}");

    partner.script(CONFIRM, [Canned::status(404)]);
    let (request, status, _) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = hub
        .pos(
            "/qr/v1/payments/confirmations",
            &confirmation(request["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let row = wait_row(&hub, &request, OutboxState::Failed).await;
    assert_eq!(row.last_status, Some(404));
    hub.stop().await;
}

/// A redirect is never followed: the advice is tried again at the partner's own address
/// (never re-sent as a GET without its body), and a redirected `pay` is a final 503 with
/// nothing to reverse.
async fn redirects_are_never_followed(db: TestDb) {
    let partner = ScriptedPartner::start().await;
    let hub = start(db, &partner, Options::default()).await;
    let moved = |status| Canned::status(status).header("location", "/somewhere-else");
    partner.script(CONFIRM, [moved(301), moved(308)]);
    let (request, status, _) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = hub
        .pos(
            "/qr/v1/payments/confirmations",
            &confirmation(request["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    partner.wait_for(CONFIRM, 3, WAIT).await;
    wait_row(&hub, &request, OutboxState::Delivered).await;

    // "Go elsewhere" (301, 307, 308) is answered instead of processing: nothing to reverse.
    partner.script(PAY, [moved(307)]);
    let (request, status, answer) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    published::assert_valid("ErrorDetail", &answer);
    assert_eq!(answer["errorType"], "UPSTREAM_UNAVAILABLE");
    assert_eq!(answer["providerErrorCode"], "307");
    assert_eq!(hub.stored(&request).await.state, PaymentState::Declined);
    assert!(
        hub.outbox_of(&request).await.is_empty(),
        "nothing to reverse"
    );
    // 303 (and 302) are how Post/Redirect/Get answers after processing: unknown, reversed.
    partner.script(PAY, [moved(303)]);
    let (request, status, answer) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{answer}");
    assert_eq!(hub.stored(&request).await.state, PaymentState::Unknown);
    partner.wait_for(REVERSE, 1, WAIT).await;

    let others: Vec<_> = partner
        .received()
        .into_iter()
        .filter(|r| r.method != reqwest::Method::POST || r.path == "/somewhere-else")
        .collect();
    assert!(others.is_empty(), "a redirect was followed: {others:#?}");
    hub.stop().await;
}

/// A 2xx is an approval, whatever its body: the POS gets a 201 whose body is valid under the
/// published PaymentResponse, the sale is not reversed, and each repair is on the timeline.
async fn a_careless_approval_is_relayed_valid_and_not_reversed(db: TestDb) {
    let partner = ScriptedPartner::start().await;
    let hub = start(db, &partner, Options::default()).await;
    let careless = json!({
        "id": "not-the-request-id",
        "time": "2026-12-02T10:00:00Z",
        "partner": {"id": "wallet-1", "name": "A wallet whose registered trading name is long"},
        "slipData": {"issuerReference": "ab12cd"},
        "amounts": {"approvedAmount": {"amount": 1000, "currency": "710"}},
        "vendorExtension": {"loyaltyPoints": 12},
        "tranId": "whatever"
    });
    partner.script(PAY, [Canned::with_body(201, careless.to_string())]);
    let (request, status, answer) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    published::assert_valid("PaymentResponse", &answer);
    assert_eq!(answer["id"], request["id"]);
    assert_eq!(answer["tranId"], request["tranId"]);
    assert_eq!(answer["originator"], request["originator"]);
    assert_eq!(answer["client"], request["client"]);
    // A reference that does not fit is dropped, never changed.
    assert!(
        answer["slipData"].get("issuerReference").is_none(),
        "{answer}"
    );
    // What was approved is stated, not left to be read as zero.
    assert_eq!(
        answer["amounts"]["approvedAmount"],
        json!({"amount": 1000, "currency": "710"})
    );
    assert!(
        answer["partner"]["name"]
            .as_str()
            .expect("name")
            .chars()
            .count()
            <= 40
    );
    assert!(answer.get("vendorExtension").is_none());
    let payment = hub.stored(&request).await;
    assert_eq!(payment.state, PaymentState::Approved);
    assert!(hub.outbox_of(&request).await.is_empty(), "not reversed");
    let events = hub
        .hub
        .store
        .payment_timeline(payment.id, &payment.tran_id)
        .await
        .expect("store");
    let answered = events
        .iter()
        .find(|e| e.kind == "PAY_RESPONSE")
        .expect("the answer is on the timeline");
    for repair in [
        "unknown_dropped vendorExtension",
        "invalid_dropped slipData.issuerReference",
        "trimmed partner.name",
        "filled_from_request originator",
    ] {
        assert!(
            answered.outcome.contains(repair),
            "{repair} not in {}",
            answered.outcome
        );
    }

    // No body at all: the status approves what was asked, and the answer says so.
    partner.script(PAY, [Canned::with_body(204, "")]);
    let (request, status, answer) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    published::assert_valid("PaymentResponse", &answer);
    assert_eq!(
        answer["amounts"]["approvedAmount"],
        request["amounts"]["requestAmount"]
    );
    assert_eq!(hub.stored(&request).await.state, PaymentState::Approved);

    // A body that is no payment response (a gateway's page, an envelope, an ErrorDetail
    // sent with 200) may not come from the partner's payment at all: unknown, reversed.
    let reversals = partner.received_at(REVERSE).len();
    let odd = [
        "OK".to_owned(),
        "<html><body>Welcome to the network</body></html>".to_owned(),
        json!({"status": "OK", "data": {"amounts": {"approvedAmount": {"amount": 600}}}})
            .to_string(),
        json!({"errorType": "INSUFFICIENT_FUNDS", "errorMessage": "No"}).to_string(),
        json!({"amounts": "1000"}).to_string(),
    ];
    for (n, body) in odd.iter().enumerate() {
        partner.script(PAY, [Canned::with_body(200, body.clone())]);
        let (request, status, answer) = hub.paid(1000).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}: {answer}");
        assert_eq!(hub.stored(&request).await.state, PaymentState::Unknown);
        partner.wait_for(REVERSE, reversals + n + 1, WAIT).await;
    }
    hub.stop().await;
}

/// An approval for another amount is not relayed: the hub reverses it at the partner and
/// declines the POS with INVALID_AMOUNT.
async fn an_approval_for_another_amount_is_reversed_and_declined(db: TestDb) {
    let partner = ScriptedPartner::start().await;
    let hub = start(db, &partner, Options::default()).await;
    for approved in [json!(900), json!(1000.5)] {
        partner.script(
            PAY,
            [Canned::with_body(
                201,
                json!({"amounts": {"approvedAmount": {"amount": approved, "currency": "710"}}})
                    .to_string(),
            )],
        );
        let before = partner.received_at(REVERSE).len();
        let (request, status, answer) = hub.paid(1000).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        published::assert_valid("ErrorDetail", &answer);
        assert_eq!(answer["errorType"], "INVALID_AMOUNT");
        let reversals = partner.wait_for(REVERSE, before + 1, WAIT).await;
        let sent = &reversals[before].body;
        published::assert_valid("PaymentReversal", sent);
        assert_eq!(sent["reversalReason"], "CANCELLED");
        // Money may be at the partner until its reversal lands: the code stays taken.
        assert_eq!(hub.stored(&request).await.state, PaymentState::Unknown);
        let again = pay_request("pos-1", request["tranId"].as_str().expect("tranId"), 1000);
        let (status, answer) = hub.pos("/qr/v1/payments", &again).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["errorType"], "DUPLICATE_RECORD");
    }
    hub.stop().await;
}

/// The hub is the sender of what it sends a partner: the Basic user equals `client.id`, the
/// retailer stays in `originator`, every identifier is carried both ways, and what the
/// partner receives is valid under the published schema.
async fn the_hub_calls_partners_as_their_client(db: TestDb) {
    let partner = ScriptedPartner::start().await;
    let hub = start(db, &partner, Options::default()).await;
    let (request, status, answer) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let sent = partner.received_at(PAY).remove(0);
    published::assert_valid("PaymentRequest", &sent.body);
    assert_eq!(sent.user.as_deref(), Some(SIM_USER));
    assert_eq!(sent.body["client"]["id"], SIM_USER);
    assert_eq!(sent.body["originator"], request["originator"]);
    let ids = |v: &Value| -> Vec<String> {
        v["thirdPartyIdentifiers"]
            .as_array()
            .expect("identifiers")
            .iter()
            .map(|i| i["institutionId"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    for id in ids(&request) {
        assert!(ids(&sent.body).contains(&id), "{id} not sent");
        assert!(ids(&answer).contains(&id), "{id} not answered");
    }
    assert!(ids(&answer).contains(&HUB_INSTITUTION.to_owned()));
    assert!(
        !ids(&sent.body).contains(&SIM_USER.to_owned()),
        "client id is no identifier"
    );
    // The partner's own identifier comes back to the POS and goes into advices.
    assert!(
        ids(&answer).contains(&PARTNER_INSTITUTION.to_owned()),
        "{answer}"
    );
    // The POS gets its own client back.
    assert_eq!(answer["client"], request["client"]);
    let (status, _) = hub
        .pos(
            "/qr/v1/payments/confirmations",
            &confirmation(request["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let confirmed = partner.wait_for(CONFIRM, 1, WAIT).await.remove(0);
    published::assert_valid("PaymentConfirmation", &confirmed.body);
    for id in ids(&request)
        .into_iter()
        .chain([HUB_INSTITUTION.to_owned(), PARTNER_INSTITUTION.to_owned()])
    {
        assert!(
            ids(&confirmed.body).contains(&id),
            "{id} not in the confirmation"
        );
    }

    // The hub's own reversal carries them too, and is sent as the hub.
    partner.script(PAY, [Canned::status(504)]);
    let (request, status, _) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let reversal = partner.wait_for(REVERSE, 1, WAIT).await.remove(0);
    assert_eq!(reversal.user.as_deref(), Some(SIM_USER));
    published::assert_valid("PaymentReversal", &reversal.body);
    for id in ids(&request) {
        assert!(
            ids(&reversal.body).contains(&id),
            "{id} not in the reversal"
        );
    }
    hub.stop().await;
}

/// What the partner answers `pay` reaches the POS only as a status the interface declares
/// for it (400, 503, 504), with the partner's status in providerErrorCode.
async fn partner_statuses_reach_the_pos_as_declared_ones(db: TestDb) {
    let partner = ScriptedPartner::start().await;
    let hub = start(db, &partner, Options::default()).await;
    let long = "A partner message much longer than forty characters, as partners write";
    let detail =
        |kind: &str| json!({"id": "e1", "errorType": kind, "errorMessage": long}).to_string();
    let cases = [
        (
            Canned::with_body(400, detail("INSUFFICIENT_FUNDS")),
            400,
            false,
        ),
        // About the hub's message, not the POS's request: a decline by the partner.
        (Canned::with_body(400, detail("FORMAT_ERROR")), 400, false),
        (Canned::status(401), 503, false),
        (Canned::status(403), 503, false),
        // Usually a wrong route, not a verdict on the payment.
        (
            Canned::with_body(404, detail("UNABLE_TO_LOCATE_RECORD")),
            503,
            false,
        ),
        (Canned::status(409), 400, false),
        (Canned::with_body(422, "unprocessable"), 400, false),
        (Canned::status(429).header("retry-after", "5"), 503, false),
        (Canned::status(501), 503, false),
        (Canned::status(503), 503, false),
        (
            Canned::with_body(502, "<html>bad gateway</html>"),
            504,
            true,
        ),
        (Canned::status(520), 504, true),
    ];
    for (canned, expected, reversed) in cases {
        let partner_status = canned.status;
        partner.script(PAY, [canned]);
        let (request, status, answer) = hub.paid(1000).await;
        assert_eq!(
            status.as_u16(),
            expected,
            "partner {partner_status}: {answer}"
        );
        published::assert_valid("ErrorDetail", &answer);
        assert!(
            answer["errorMessage"]
                .as_str()
                .expect("message")
                .chars()
                .count()
                <= 40
        );
        if !reversed {
            assert_eq!(answer["providerErrorCode"], partner_status.to_string());
        }
        assert_eq!(
            !hub.outbox_of(&request).await.is_empty(),
            reversed,
            "partner {partner_status}"
        );
    }
    hub.stop().await;
}

/// A reversal the partner refuses is an operator's open item: listed, counted, and
/// retryable; retried once the partner is fixed, it arrives.
async fn a_refused_reversal_is_an_open_item_an_operator_can_retry(db: TestDb) {
    let partner = ScriptedPartner::start().await;
    let hub = start(db, &partner, Options::default()).await;
    partner.script(PAY, [Canned::status(500)]);
    partner.script(
        REVERSE,
        [Canned::with_body(422, r#"{"why":"unknown payment"}"#)],
    );
    let (request, status, _) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let row = wait_row(&hub, &request, OutboxState::Failed).await;
    assert_eq!(row.last_status, Some(422));
    let payment = hub.stored(&request).await;
    let (status, detail) = admin(
        &hub,
        reqwest::Method::GET,
        &format!("/admin/v1/payments/{}", payment.id),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["openItems"], 1, "the payment shows it is unresolved");

    let (status, list) = admin(&hub, reqwest::Method::GET, "/admin/v1/outbox?state=FAILED").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let listed = list["outbox"].as_array().expect("a list");
    assert!(
        listed.iter().any(|r| r["id"] == row.id.to_string()
            && r["lastError"]
                .as_str()
                .unwrap_or_default()
                .contains("unknown payment")),
        "{list:#}"
    );
    let (status, summary) = admin(&hub, reqwest::Method::GET, "/admin/v1/summary").await;
    assert_eq!(status, StatusCode::OK);
    assert!(summary["outbox"]
        .as_array()
        .expect("outbox counts")
        .iter()
        .any(|c| c["state"] == "FAILED" && c["count"] == 1));

    let (status, retried) = admin(
        &hub,
        reqwest::Method::POST,
        &format!("/admin/v1/outbox/{}/retry", row.id),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    partner.wait_for(REVERSE, 2, WAIT).await;
    wait_row(&hub, &request, OutboxState::Delivered).await;
    hub.stop().await;
}

/// A partner that answers with a huge body gets no more than the configured bytes read
/// (default 1 MiB): for `pay` that is an unknown outcome (reversed), even if the body would
/// have been a valid approval.
async fn an_oversized_answer_is_not_read_whole(db: TestDb) {
    let partner = ScriptedPartner::start().await;
    let hub = start(db, &partner, Options::default()).await;
    partner.script(PAY, [Canned::status(201).padded(2 * 1024 * 1024)]);
    let (request, status, answer) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{answer}");
    assert_eq!(hub.stored(&request).await.state, PaymentState::Unknown);
    partner.wait_for(REVERSE, 1, WAIT).await;
    hub.stop().await;
}

/// A code's amount and rules bind what is paid: a pay for another amount or currency is
/// refused INVALID_AMOUNT unless the code allows part or over payment; a partner's partial
/// approval stands where the code allows it; a code takes one approved payment.
async fn payments_must_fit_their_code(db: TestDb) {
    let partner = ScriptedPartner::start().await;
    let hub = start(db, &partner, Options::default()).await;
    code_rules(&hub, &partner).await;
    hub.stop().await;
}

async fn code_rules(hub: &TestHub, partner: &ScriptedPartner) {
    let code = |properties: Value| async move {
        let mut request = qr_request("pos-1", 1000);
        request["qrProperties"] = properties;
        let (status, body) = hub.pos("/qr/v1/qrCodes", &request).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["tranId"].as_str().expect("tranId").to_owned()
    };
    let strict = code(json!({})).await;
    for (amount, currency) in [(900, "710"), (1100, "710"), (1000, "840")] {
        let mut request = pay_request("pos-1", &strict, amount);
        request["amounts"]["requestAmount"]["currency"] = json!(currency);
        let (status, answer) = hub.pos("/qr/v1/payments", &request).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{amount} {currency}: {answer}"
        );
        published::assert_valid("ErrorDetail", &answer);
        assert_eq!(answer["errorType"], "INVALID_AMOUNT");
    }
    assert!(partner.received_at(PAY).is_empty(), "nothing was sent");

    // A scan naming another amount than its code's is refused, and claims nothing.
    let request = pay_request("pos-1", &strict, 1000);
    let held = hub.pay(request.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let scan = json!({
        "id": crate::common::hub::new_id(),
        "time": crate::common::hub::now(),
        "partner": {"id": "wallet-1", "name": "Wallet wallet-1"},
        "tranId": strict,
        "amounts": {"requestAmount": {"amount": 1, "currency": "710"}},
    });
    let (status, answer) = hub
        .post_as(
            "wallet-1",
            crate::common::hub::PARTNER_PASSWORD,
            "/qr/v1/scans",
            &scan,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "INVALID_AMOUNT");
    assert_eq!(
        hub.stored(&request).await.state,
        PaymentState::WaitingForScan
    );
    // The right amount claims it.
    let mut right = scan.clone();
    right["id"] = json!(crate::common::hub::new_id());
    right["amounts"]["requestAmount"]["amount"] = json!(1000);
    let (status, answer) = hub
        .post_as(
            "wallet-1",
            crate::common::hub::PARTNER_PASSWORD,
            "/qr/v1/scans",
            &right,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let (status, answer) = held.await.expect("pay");
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    // Part payment allowed: a smaller pay is taken, and so is a partial approval.
    let part = code(json!({"partPaymentAllowed": true})).await;
    let request = pay_request("pos-1", &part, 1000);
    partner.script(
        PAY,
        [Canned::with_body(
            201,
            json!({"amounts": {"approvedAmount": {"amount": 600, "currency": "710"}}}).to_string(),
        )],
    );
    let held = hub.pay(request.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        hub.scan("wallet-1", &part, None).await.0,
        StatusCode::ACCEPTED
    );
    let (status, answer) = held.await.expect("pay");
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    published::assert_valid("PaymentResponse", &answer);
    assert_eq!(answer["amounts"]["approvedAmount"]["amount"], 600);
    assert!(hub.outbox_of(&request).await.is_empty(), "not reversed");

    // Its confirmation may settle at most the 600 approved, in the same currency.
    for (amount, currency) in [(1000, "710"), (600, "840")] {
        let mut advice = confirmation(request["id"].as_str().expect("id"));
        advice["amounts"] = json!({"approvedAmount": {"amount": amount, "currency": currency}});
        let (status, refused) = hub.pos("/qr/v1/payments/confirmations", &advice).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert_eq!(refused["errorType"], "INVALID_AMOUNT");
    }
    let mut advice = confirmation(request["id"].as_str().expect("id"));
    advice["amounts"] = json!({"approvedAmount": {"amount": 600, "currency": "710"}});
    let (status, _) = hub.pos("/qr/v1/payments/confirmations", &advice).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(hub.stored(&request).await.state, PaymentState::Confirmed);

    // One approved payment per code: another pay for it is refused.
    let again = pay_request("pos-1", &part, 400);
    let (status, answer) = hub.pos("/qr/v1/payments", &again).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "DUPLICATE_RECORD");
}

/// NUL characters (`\u0000`) in a partner's answer, which PostgreSQL cannot keep in text or
/// `jsonb`: an approval is still an approval, stored, relayed valid and on the timeline; a
/// decline still a decline; and the timeline events written in the same batch as theirs,
/// other payments' among them, are all kept.
async fn nul_characters_in_an_answer_break_nothing(db: TestDb) {
    let partner = ScriptedPartner::start().await;
    let hub = start(db, &partner, Options::default()).await;
    let approval = json!({
        "partner": {"id": "wallet-1", "name": "A\u{0}wallet"},
        "slipData": {"issuerReference": "ab\u{0}12", "messageLines": ["thank\u{0}you"]},
        "amounts": {"approvedAmount": {"amount": 1000, "currency": "710"}},
        "partnerRef\u{0}": "x"
    });
    partner.script(PAY, [Canned::with_body(201, approval.to_string())]);
    let (request, status, answer) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    published::assert_valid("PaymentResponse", &answer);
    assert!(!answer.to_string().contains("\\u0000"), "{answer}");
    let approved = hub.stored(&request).await;
    assert_eq!(approved.state, PaymentState::Approved);

    let decline = json!({"errorType": "DECLINED", "errorMessage": "no\u{0}pe"});
    partner.script(PAY, [Canned::with_body(400, decline.to_string())]);
    let (declined_request, status, answer) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    published::assert_valid("ErrorDetail", &answer);
    let declined = hub.stored(&declined_request).await;
    assert_eq!(declined.state, PaymentState::Declined);

    hub.hub.flush_events().await;
    for payment in [&approved, &declined] {
        let events = hub
            .hub
            .store
            .payment_timeline(payment.id, &payment.tran_id)
            .await
            .expect("the timeline reads");
        let found: Vec<String> = events
            .iter()
            .map(|e| format!("{} {}", e.kind, e.direction.as_str()))
            .collect();
        // The partner's answer rides in the state change; the answer to the POS is written
        // by the batch writer, beside other payments' events.
        for wanted in ["PAY IN", "PAY OUT", "PAY_RESPONSE IN", "PAY_RESPONSE OUT"] {
            assert!(
                found.iter().any(|f| f == wanted),
                "{wanted} missing from {found:?}"
            );
        }
    }
    hub.stop().await;
}

both_stores!(
    nul_characters_in_an_answer_break_nothing,
    payments_must_fit_their_code,
    refused_credentials_are_retried_and_a_404_confirmation_is_refused,
    a_reversal_answered_503_in_a_maintenance_window_still_arrives,
    a_confirmation_throttled_or_lost_at_the_gateway_is_retried,
    redirects_are_never_followed,
    a_careless_approval_is_relayed_valid_and_not_reversed,
    an_approval_for_another_amount_is_reversed_and_declined,
    the_hub_calls_partners_as_their_client,
    partner_statuses_reach_the_pos_as_declared_ones,
    a_refused_reversal_is_an_open_item_an_operator_can_retry,
    an_oversized_answer_is_not_read_whole,
);
