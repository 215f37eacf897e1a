//! Whole payments through real HTTP: a POS, the hub on a fresh database, and the partner
//! simulator scripted per test. Each flow runs on PostgreSQL and on SQLite.

use reqwest::StatusCode;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

use crate::common::db::TestDb;
use crate::common::hub::{
    confirmation, new_id, pay_request, reversal, Options, TestHub, POS_PASSWORD,
};
use qrhub::clock::{Clock, ManualClock};
use qrhub::domain::PaymentState;
use qrhub::model::ErrorType;
use qrhub::simulator::{AdviceBehaviour, LedgerEntry, MessageKind, PayBehaviour};
use qrhub::store::OutboxState;

const WAIT: Duration = Duration::from_secs(5);

fn of_kind(ledger: &[LedgerEntry], kind: MessageKind) -> Vec<&LedgerEntry> {
    ledger.iter().filter(|e| e.kind == kind).collect()
}

async fn payment_state(hub: &TestHub, request: &Value) -> PaymentState {
    hub.stored(request).await.state
}

async fn happy_path_end_to_end(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let (request, status, answer) = hub.paid(15000).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        answer["id"], request["id"],
        "the POS sees its own message id"
    );
    assert_eq!(answer["tranId"], request["tranId"]);
    assert_eq!(answer["partner"]["id"], "wallet-1");
    assert_eq!(answer["client"], request["client"]);
    assert_eq!(answer["amounts"]["approvedAmount"]["amount"], 15000);
    let ids: Vec<&str> = answer["thirdPartyIdentifiers"]
        .as_array()
        .expect("identifiers")
        .iter()
        .map(|t| t["institutionId"].as_str().unwrap_or_default())
        .collect();
    assert!(
        ids.contains(&"1"),
        "the POS's own identifier is kept: {ids:?}"
    );
    assert!(
        ids.contains(&crate::common::hub::HUB_INSTITUTION),
        "the hub's identifier is added: {ids:?}"
    );
    assert!(
        ids.contains(&"wallet-1"),
        "the partner's identifier is relayed: {ids:?}"
    );

    // The partner got exactly one pay, with the hub's own id and the scan's token.
    let ledger = hub.sim.ledger();
    let pays = of_kind(&ledger, MessageKind::Pay);
    assert_eq!(pays.len(), 1, "{ledger:#?}");
    let sent = &pays[0].message;
    assert_ne!(
        sent["id"], request["id"],
        "the hub mints its own message id"
    );
    assert_eq!(sent["tranId"], request["tranId"]);
    assert_eq!(sent["partner"]["id"], "wallet-1");
    assert_eq!(
        sent["partnerPaymentToken"],
        format!("token-{}", request["tranId"].as_str().expect("tranId"))
    );
    assert_eq!(sent["amounts"]["requestAmount"]["amount"], 15000);
    assert_eq!(pays[0].username.as_deref(), Some("qrhub"));
    let partner_pay_id = sent["id"].as_str().expect("id").to_owned();

    // Confirmation: 202 echo at once, then exactly one delivery to the partner.
    let advice = confirmation(request["id"].as_str().expect("id"));
    let (status, echo) = hub.pos("/qr/v1/payments/confirmations", &advice).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{echo}");
    assert_eq!(echo["id"], advice["id"]);
    assert_eq!(echo["requestId"], advice["requestId"]);
    // The POS's store-and-forward repeats it: the same answer, nothing new queued.
    let (status, again) = hub.pos("/qr/v1/payments/confirmations", &advice).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again, echo);
    hub.wait_for_ledger(WAIT, |l| of_kind(l, MessageKind::Confirmation).len() == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ledger = hub.sim.ledger();
    let confirmations = of_kind(&ledger, MessageKind::Confirmation);
    assert_eq!(confirmations.len(), 1, "delivered once: {ledger:#?}");
    assert_eq!(
        confirmations[0].message["requestId"],
        partner_pay_id.as_str()
    );
    assert_eq!(confirmations[0].message["tranId"], request["tranId"]);
    assert_eq!(payment_state(&hub, &request).await, PaymentState::Confirmed);
    hub.stop().await;
}

async fn s1_no_scan_is_final_and_the_partner_is_never_asked(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let tran_id = hub.new_code(1000).await;
    let request = pay_request("pos-1", &tran_id, 1000);
    let started = std::time::Instant::now();
    let (status, answer) = hub.pos("/qr/v1/payments", &request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "NO_SCAN_RECEIVED");
    assert_eq!(answer["tranId"], tran_id.as_str());
    assert_eq!(answer["id"], request["id"]);
    // Answered within the hub's deadline, before the POS would give up.
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert!(of_kind(&hub.sim.ledger(), MessageKind::Pay).is_empty());
    assert_eq!(payment_state(&hub, &request).await, PaymentState::Expired);

    // S2: the scan arrives after the window closed: declined, and still no pay is sent.
    let (status, answer) = hub.scan("wallet-1", &tran_id, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "UNABLE_TO_LOCATE_RECORD");
    assert!(of_kind(&hub.sim.ledger(), MessageKind::Pay).is_empty());
    hub.stop().await;
}

async fn s3_an_early_scan_waits_for_its_pay_within_the_grace(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let tran_id = hub.new_code(1000).await;
    let client = hub.clone_client();
    let t = tran_id.clone();
    let scan = {
        let partner = crate::common::hub::PARTNER_PASSWORD;
        let url = hub.url.clone();
        let http = hub.http.clone();
        tokio::spawn(async move {
            let body = serde_json::json!({"id": new_id(), "time": crate::common::hub::now(),
                "partner": {"id": "wallet-1", "name": "W"}, "tranId": t});
            http.post(format!("{url}/qr/v1/scans"))
                .basic_auth("wallet-1", Some(partner))
                .json(&body)
                .send()
                .await
                .expect("answer")
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (status, answer) = client
        .pos("/qr/v1/payments", &pay_request("pos-1", &tran_id, 1000))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(scan.await.expect("scan"), StatusCode::ACCEPTED);
    hub.stop().await;
}

async fn p4_an_orphan_scan_is_declined_and_not_buffered(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let tran_id = hub.new_code(1000).await;
    let (status, answer) = hub.scan("wallet-1", &tran_id, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "UNABLE_TO_LOCATE_RECORD");
    // The pay that comes later is not matched by that scan: it times out (S1).
    let (status, answer) = hub
        .pos("/qr/v1/payments", &pay_request("pos-1", &tran_id, 1000))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "NO_SCAN_RECEIVED");
    // A scan for a code the hub never issued.
    let (status, answer) = hub
        .scan("wallet-1", "0123456789abcdef0123456789abcdef", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["errorType"], "INVALID_TRAN_ID");
    hub.stop().await;
}

async fn s4_a_reversal_before_its_pay_is_remembered(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let tran_id = hub.new_code(1000).await;
    let request = pay_request("pos-1", &tran_id, 1000);
    let advice = reversal(request["id"].as_str().expect("id"), "TIMEOUT");
    let (status, answer) = hub.pos("/qr/v1/payments/reversals", &advice).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["errorType"], "UNABLE_TO_LOCATE_RECORD");
    assert_eq!(answer["id"], advice["id"]);
    assert_eq!(answer["originalId"], request["id"]);
    // Repeated by the POS's store-and-forward: the same answer.
    let (status, _) = hub.pos("/qr/v1/payments/reversals", &advice).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The pay that arrives late is refused.
    let (status, answer) = hub.pos("/qr/v1/payments", &request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "ACCOUNT_ALREADY_SETTLED");
    // A confirmation of a payment the hub never saw fails.
    let (status, answer) = hub
        .pos("/qr/v1/payments/confirmations", &confirmation(&new_id()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["errorType"], "UNABLE_TO_LOCATE_RECORD");
    hub.stop().await;
}

async fn s5_a_pos_reversal_of_an_approved_payment_reaches_the_partner(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let (request, status, _) = hub.paid(2000).await;
    assert_eq!(status, StatusCode::CREATED);
    let partner_pay_id = of_kind(&hub.sim.ledger(), MessageKind::Pay)[0].message["id"].clone();
    let advice = reversal(request["id"].as_str().expect("id"), "TIMEOUT");
    let (status, echo) = hub.pos("/qr/v1/payments/reversals", &advice).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{echo}");
    assert_eq!(echo["reversalReason"], "TIMEOUT");
    hub.wait_for_ledger(WAIT, |l| of_kind(l, MessageKind::Reversal).len() == 1)
        .await;
    let ledger = hub.sim.ledger();
    let sent = &of_kind(&ledger, MessageKind::Reversal)[0].message;
    assert_eq!(sent["requestId"], partner_pay_id);
    assert_eq!(sent["reversalReason"], "TIMEOUT");
    // Confirm after reverse is refused.
    let (status, answer) = hub
        .pos(
            "/qr/v1/payments/confirmations",
            &confirmation(request["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "ACCOUNT_ALREADY_SETTLED");
    assert_eq!(payment_state(&hub, &request).await, PaymentState::Reversed);
    hub.stop().await;
}

async fn s6_a_void_is_a_cancelled_reversal_with_its_amount(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let (request, status, _) = hub.paid(2000).await;
    assert_eq!(status, StatusCode::CREATED);
    let mut advice = reversal(request["id"].as_str().expect("id"), "CANCELLED");
    advice["amounts"] = serde_json::json!({"approvedAmount": {"amount": 0, "currency": "710"}});
    let (status, _) = hub.pos("/qr/v1/payments/reversals", &advice).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    hub.wait_for_ledger(WAIT, |l| of_kind(l, MessageKind::Reversal).len() == 1)
        .await;
    let ledger = hub.sim.ledger();
    let sent = &of_kind(&ledger, MessageKind::Reversal)[0].message;
    assert_eq!(sent["reversalReason"], "CANCELLED");
    assert_eq!(sent["amounts"]["approvedAmount"]["amount"], 0);
    hub.stop().await;
}

async fn partial_confirmation_amounts_are_carried_through(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let (request, status, _) = hub.paid(5000).await;
    assert_eq!(status, StatusCode::CREATED);
    let mut advice = confirmation(request["id"].as_str().expect("id"));
    advice["amounts"] = serde_json::json!({"approvedAmount": {"amount": 4200, "currency": "710"}});
    let (status, _) = hub.pos("/qr/v1/payments/confirmations", &advice).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    hub.wait_for_ledger(WAIT, |l| of_kind(l, MessageKind::Confirmation).len() == 1)
        .await;
    let ledger = hub.sim.ledger();
    let sent = &of_kind(&ledger, MessageKind::Confirmation)[0].message;
    assert_eq!(sent["amounts"]["approvedAmount"]["amount"], 4200);
    hub.stop().await;
}

/// P2 and its kin: whenever the partner's outcome is unknown, the hub's own reversal reaches
/// the partner, the POS gets 504, and the POS's own later reversal is absorbed.
async fn p2_unknown_partner_outcomes_are_reversed_by_the_hub(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    for behaviour in [
        PayBehaviour::Hang,
        PayBehaviour::ServerError(500),
        PayBehaviour::ServerError(504),
        PayBehaviour::DropConnection,
    ] {
        hub.sim.clear_ledger();
        hub.sim.script_pay(behaviour.clone());
        let (request, status, answer) = hub.paid(3000).await;
        assert_eq!(
            status,
            StatusCode::GATEWAY_TIMEOUT,
            "{behaviour:?}: {answer}"
        );
        assert_eq!(answer["errorType"], "UPSTREAM_UNAVAILABLE");
        hub.wait_for_ledger(WAIT, |l| of_kind(l, MessageKind::Reversal).len() == 1)
            .await;
        let ledger = hub.sim.ledger();
        let pay_id = of_kind(&ledger, MessageKind::Pay)[0].message["id"].clone();
        let sent = &of_kind(&ledger, MessageKind::Reversal)[0].message;
        assert_eq!(sent["requestId"], pay_id, "{behaviour:?}");
        assert_eq!(sent["reversalReason"], "TIMEOUT");
        // The POS, told "unknown", reverses too: 202, and nothing more goes to the partner.
        let (status, _) = hub
            .pos(
                "/qr/v1/payments/reversals",
                &reversal(request["id"].as_str().expect("id"), "TIMEOUT"),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        // And it can never be confirmed.
        let (status, answer) = hub
            .pos(
                "/qr/v1/payments/confirmations",
                &confirmation(request["id"].as_str().expect("id")),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(of_kind(&hub.sim.ledger(), MessageKind::Reversal).len(), 1);
        assert_eq!(payment_state(&hub, &request).await, PaymentState::Reversed);
    }
    hub.stop().await;
}

async fn a_partner_decline_is_relayed_and_nothing_is_reversed(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    hub.sim.script_pay(PayBehaviour::Decline {
        status: 400,
        error_type: ErrorType::InsufficientFunds,
    });
    let (request, status, answer) = hub.paid(3000).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "INSUFFICIENT_FUNDS");
    assert_eq!(answer["id"], request["id"]);
    assert_eq!(answer["tranId"], request["tranId"]);
    let (status, _) = hub
        .pos(
            "/qr/v1/payments/reversals",
            &reversal(request["id"].as_str().expect("id"), "CANCELLED"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(of_kind(&hub.sim.ledger(), MessageKind::Reversal).is_empty());
    assert_eq!(payment_state(&hub, &request).await, PaymentState::Declined);
    hub.stop().await;
}

async fn an_unreachable_partner_is_503_with_nothing_to_reverse(db: TestDb) {
    // A port nobody listens on: bind one, then free it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let hub = TestHub::start(
        db,
        Options {
            partner_url: Some(url),
            ..Options::default()
        },
    )
    .await;
    let (request, status, answer) = hub.paid(3000).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["errorType"], "UPSTREAM_UNAVAILABLE");
    assert_eq!(payment_state(&hub, &request).await, PaymentState::Declined);
    assert!(hub.outbox_of(&request).await.is_empty());
    hub.stop().await;
}

/// The scan window's end and a scan race: exactly one of them wins, never both.
async fn a_scan_racing_the_window_end_has_exactly_one_outcome(db: TestDb) {
    let hub = TestHub::start(
        db,
        Options {
            pay_deadline: Duration::from_millis(1200),
            partner_timeout: Duration::from_millis(1000),
            early_scan_grace: Duration::from_millis(0),
            ..Options::default()
        },
    )
    .await;
    let (mut matched, mut expired) = (0, 0);
    for i in 0..16u64 {
        let tran_id = hub.new_code(100).await;
        let pay = hub.pay(pay_request("pos-1", &tran_id, 100));
        // The window is 200 ms; scans land from well before to just after its end.
        tokio::time::sleep(Duration::from_millis(140 + i * 8)).await;
        let (scan_status, _) = hub.scan("wallet-1", &tran_id, None).await;
        let (pay_status, pay_answer) = pay.await.expect("pay");
        match (scan_status, pay_status) {
            (StatusCode::ACCEPTED, StatusCode::CREATED) => matched += 1,
            (StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST) => {
                assert_eq!(pay_answer["errorType"], "NO_SCAN_RECEIVED");
                expired += 1
            }
            other => panic!("scan and window end both won or both lost: {other:?} {pay_answer}"),
        }
    }
    assert_eq!(matched + expired, 16);
    assert_eq!(
        of_kind(&hub.sim.ledger(), MessageKind::Pay).len(),
        matched,
        "the partner was asked exactly for the matched payments"
    );
    hub.stop().await;
}

async fn duplicates_never_cause_a_second_side_effect(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let tran_id = hub.new_code(1000).await;
    let request = pay_request("pos-1", &tran_id, 1000);
    let first = hub.pay(request.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The same pay again while the first waits.
    let (status, answer) = hub.pos("/qr/v1/payments", &request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "DUPLICATE_RECORD");
    assert_eq!(answer["id"], request["id"]);
    // Another pay for the same tranId while the first is live.
    let (status, answer) = hub
        .pos("/qr/v1/payments", &pay_request("pos-1", &tran_id, 1000))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "DUPLICATE_RECORD");
    let scan_id = new_id();
    let (status, _) = hub.scan("wallet-1", &tran_id, Some(&scan_id)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The same scan again: idempotent.
    let (status, _) = hub.scan("wallet-1", &tran_id, Some(&scan_id)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Another scan of the claimed code, by another partner or with another id.
    let (status, answer) = hub.scan("wallet-2", &tran_id, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["errorType"], "DUPLICATE_RECORD");
    let (status, _) = hub.scan("wallet-1", &tran_id, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = first.await.expect("pay");
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(of_kind(&hub.sim.ledger(), MessageKind::Pay).len(), 1);
    // The partner reuses that scan id for another code: refused, and that pay still waits
    // for a scan of its own.
    let other_tran = hub.new_code(1000).await;
    let second = hub.pay(pay_request("pos-1", &other_tran, 1000));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, answer) = hub.scan("wallet-1", &other_tran, Some(&scan_id)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "DUPLICATE_RECORD");
    let (status, _) = hub.scan("wallet-1", &other_tran, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(second.await.expect("pay").0, StatusCode::CREATED);
    assert_eq!(of_kind(&hub.sim.ledger(), MessageKind::Pay).len(), 2);
    hub.stop().await;
}

async fn advices_in_any_order_and_from_the_wrong_client(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let (request, status, _) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::CREATED);
    let request_id = request["id"].as_str().expect("id");

    // Another client's advice is answered as if the payment did not exist.
    let (status, answer) = hub
        .post_as(
            "pos-2",
            POS_PASSWORD,
            "/qr/v1/payments/reversals",
            &reversal(request_id, "CANCELLED"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, _) = hub
        .post_as(
            "pos-2",
            POS_PASSWORD,
            "/qr/v1/payments/confirmations",
            &confirmation(request_id),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Confirm, then a reversal: the reversal is refused; the confirmation's repeat is not.
    let confirm = confirmation(request_id);
    assert_eq!(
        hub.pos("/qr/v1/payments/confirmations", &confirm).await.0,
        StatusCode::ACCEPTED
    );
    let (status, answer) = hub
        .pos(
            "/qr/v1/payments/reversals",
            &reversal(request_id, "CANCELLED"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "ACCOUNT_ALREADY_SETTLED");
    assert_eq!(answer["originalId"], request_id);
    assert_eq!(
        hub.pos("/qr/v1/payments/confirmations", &confirm).await.0,
        StatusCode::ACCEPTED
    );
    // The advice id reused for a different advice is a duplicate record.
    let mut reused = reversal(request_id, "CANCELLED");
    reused["id"] = confirm["id"].clone();
    let (status, answer) = hub.pos("/qr/v1/payments/reversals", &reused).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["errorType"], "DUPLICATE_RECORD");
    hub.stop().await;
}

async fn advice_delivery_retries_with_the_same_id_until_the_partner_has_it(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let (request, status, _) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::CREATED);
    hub.sim
        .script_advice(AdviceBehaviour::FailTimes { n: 3, status: 500 });
    let (status, _) = hub
        .pos(
            "/qr/v1/payments/confirmations",
            &confirmation(request["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    hub.wait_for_ledger(WAIT, |l| of_kind(l, MessageKind::Confirmation).len() >= 4)
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let ledger = hub.sim.ledger();
    let deliveries = of_kind(&ledger, MessageKind::Confirmation);
    assert_eq!(deliveries.len(), 4, "three failures, then one success");
    assert!(
        deliveries.iter().all(|d| d.id == deliveries[0].id),
        "the same id every time"
    );
    let rows = hub.outbox_of(&request).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, OutboxState::Delivered);
    assert_eq!(rows[0].attempts, 4);
    hub.stop().await;
}

async fn a_final_refusal_ends_the_delivery(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let (request, status, _) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::CREATED);
    hub.sim.script_advice(AdviceBehaviour::Status(400));
    let (status, _) = hub
        .pos(
            "/qr/v1/payments/confirmations",
            &confirmation(request["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    hub.wait_for_ledger(WAIT, |l| of_kind(l, MessageKind::Confirmation).len() == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        of_kind(&hub.sim.ledger(), MessageKind::Confirmation).len(),
        1
    );
    let rows = hub.outbox_of(&request).await;
    assert_eq!(rows[0].state, OutboxState::Failed);
    assert_eq!(rows[0].last_status, Some(400));
    hub.stop().await;
}

async fn undeliverable_advices_are_dead_lettered_at_their_expiry(db: TestDb) {
    let hub = TestHub::start(
        db,
        Options {
            outbox_expiry: Duration::from_millis(600),
            ..Options::default()
        },
    )
    .await;
    let (request, status, _) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::CREATED);
    hub.sim.script_advice(AdviceBehaviour::FailTimes {
        n: 10_000,
        status: 500,
    });
    let (status, _) = hub
        .pos(
            "/qr/v1/payments/confirmations",
            &confirmation(request["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows = hub.outbox_of(&request).await;
        if rows[0].state == OutboxState::Dead {
            assert!(rows[0].attempts >= 2, "it was tried before it died");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = hub
        .hub
        .store
        .outbox_by_state(OutboxState::Dead, 10)
        .await
        .expect("store");
    assert_eq!(dead.len(), 1, "listed for operators");
    hub.stop().await;
}

/// The instance whose scan claimed a payment died before sending it: the instance holding
/// the pay sends it when the scan window closes, exactly once.
async fn a_claimed_payment_left_unsent_is_sent_by_its_holder(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let tran_id = hub.new_code(700).await;
    let pay = hub.pay(pay_request("pos-1", &tran_id, 700));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A claim as a scan handler makes it, with nobody left to forward.
    let claimed = hub
        .hub
        .store
        .claim_for_scan(&qrhub::store::ScanClaim {
            tran_id: tran_id.clone(),
            partner_id: "wallet-1".into(),
            scan_message_id: new_id(),
            partner_payment_token: None,
            partner_message_id: new_id(),
            at: chrono::Utc::now(),
            // MATCHED, as an instance that decides before sending claims it.
            to: qrhub::domain::PaymentState::Matched,
            events: Vec::new(),
        })
        .await
        .expect("store");
    assert!(matches!(
        claimed,
        qrhub::store::ScanClaimOutcome::Claimed(_)
    ));
    let (status, answer) = pay.await.expect("pay");
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(of_kind(&hub.sim.ledger(), MessageKind::Pay).len(), 1);
    hub.stop().await;
}

/// The ids the hub mints (tranIds, payments, the advices it owes partners) carry the hub's
/// clock's millisecond, so they sort in the order it minted them: its indexes then take each
/// new entry beside the last one instead of in a random page (`service/ids.rs`).
async fn ids_the_hub_mints_sort_in_the_order_it_minted_them(db: TestDb) {
    let clock = ManualClock::new(chrono::Utc::now());
    let hub = TestHub::start(
        db,
        Options {
            clock: Some(Arc::new(clock.clone())),
            ..Options::default()
        },
    )
    .await;
    let (mut tran_ids, mut payment_ids, mut outbox_ids) = (Vec::new(), Vec::new(), Vec::new());
    // The millisecond an id says it was minted in.
    let minted_in = |id: uuid::Uuid| {
        let (seconds, nanos) = id.get_timestamp().expect("a time-ordered id").to_unix();
        seconds * 1000 + u64::from(nanos) / 1_000_000
    };
    for _ in 0..6 {
        clock.advance(chrono::Duration::milliseconds(2));
        let now = u64::try_from(clock.now().timestamp_millis()).expect("after 1970");
        let (request, status, answer) = hub.paid(15000).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let confirm = confirmation(request["id"].as_str().expect("id"));
        let (status, echo) = hub.pos("/qr/v1/payments/confirmations", &confirm).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{echo}");
        let stored = hub.stored(&request).await;
        tran_ids.push(stored.tran_id);
        payment_ids.push(stored.id);
        let advices = hub.outbox_of(&request).await;
        assert_eq!(advices.len(), 1, "one confirmation owed");
        outbox_ids.push(advices[0].id);
        let tran_id = uuid::Uuid::parse_str(tran_ids.last().expect("pushed")).expect("a uuid");
        for id in [tran_id, stored.id, advices[0].id] {
            assert_eq!(minted_in(id), now, "{id} minted by the hub's clock");
        }
    }
    let ordered = |what: &str, ascending: bool| assert!(ascending, "{what} out of order");
    ordered("tranIds", tran_ids.windows(2).all(|w| w[0] < w[1]));
    ordered("payment ids", payment_ids.windows(2).all(|w| w[0] < w[1]));
    ordered("outbox ids", outbox_ids.windows(2).all(|w| w[0] < w[1]));
    hub.stop().await;
}

both_stores!(
    a_claimed_payment_left_unsent_is_sent_by_its_holder,
    ids_the_hub_mints_sort_in_the_order_it_minted_them,
    happy_path_end_to_end,
    s1_no_scan_is_final_and_the_partner_is_never_asked,
    s3_an_early_scan_waits_for_its_pay_within_the_grace,
    p4_an_orphan_scan_is_declined_and_not_buffered,
    s4_a_reversal_before_its_pay_is_remembered,
    s5_a_pos_reversal_of_an_approved_payment_reaches_the_partner,
    s6_a_void_is_a_cancelled_reversal_with_its_amount,
    partial_confirmation_amounts_are_carried_through,
    p2_unknown_partner_outcomes_are_reversed_by_the_hub,
    a_partner_decline_is_relayed_and_nothing_is_reversed,
    an_unreachable_partner_is_503_with_nothing_to_reverse,
    a_scan_racing_the_window_end_has_exactly_one_outcome,
    duplicates_never_cause_a_second_side_effect,
    advices_in_any_order_and_from_the_wrong_client,
    advice_delivery_retries_with_the_same_id_until_the_partner_has_it,
    a_final_refusal_ends_the_delivery,
    undeliverable_advices_are_dead_lettered_at_their_expiry,
);
