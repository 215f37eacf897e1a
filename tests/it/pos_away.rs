//! A POS that goes away while its `pay` is held (its connection closes, or its HTTP/2 stream
//! is reset) never leaves a customer charged for nothing: before a scan claims the payment,
//! the hub ends it, nothing reaches the partner, and a later scan is refused. A scan that
//! claimed the payment first carries on as before. (Two instances: `tests/it/instances.rs`.)

use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

use crate::common::db::TestDb;
use crate::common::hub::{pay_request, reversal, Options, RawPay, TestHub, POS_PASSWORD};
use qrhub::domain::PaymentState;
use qrhub::simulator::{MessageKind, PayBehaviour};
use qrhub::store::{event_kind, PaymentRecord};

/// A scan window of 14 s: nothing in these tests ends by the window's end.
fn options() -> Options {
    Options {
        pay_deadline: Duration::from_secs(15),
        partner_timeout: Duration::from_secs(1),
        ..Options::default()
    }
}

async fn stored(hub: &TestHub, request: &Value) -> PaymentRecord {
    let id = request["id"].as_str().expect("id");
    hub.hub
        .store
        .payment_by_message("pos-1", id)
        .await
        .expect("store")
        .expect("the payment is stored")
}

/// Waits up to `within` for the payment to reach one of `states`; returns the last seen.
async fn settle(
    hub: &TestHub,
    request: &Value,
    states: &[PaymentState],
    within: Duration,
) -> PaymentRecord {
    let deadline = tokio::time::Instant::now() + within;
    let id = request["id"].as_str().expect("id");
    loop {
        let payment = hub
            .hub
            .store
            .payment_by_message("pos-1", id)
            .await
            .expect("store");
        match payment {
            Some(p) if states.contains(&p.state) || tokio::time::Instant::now() >= deadline => {
                return p
            }
            None if tokio::time::Instant::now() >= deadline => panic!("{id} never stored"),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

fn pays_for(hub: &TestHub, tran_id: &str) -> usize {
    hub.sim
        .ledger()
        .iter()
        .filter(|e| e.kind == MessageKind::Pay && e.tran_id.as_deref() == Some(tran_id))
        .count()
}

/// What every abandoned payment must look like: the scan refused 400 saying the POS went
/// away, the partner never asked, the payment ended with the POS's leaving on its
/// timeline, and a POS reversal of it answered 202.
async fn assert_abandoned(hub: &TestHub, request: &Value, tran_id: &str) {
    // The hub learns of the hang-up asynchronously: give it a moment, then scan regardless,
    // so that a hub that never learns shows itself by the scan's answer.
    let hung_up = std::time::Instant::now();
    let payment = settle(
        hub,
        request,
        &[PaymentState::Expired],
        Duration::from_secs(2),
    )
    .await;
    eprintln!(
        "hang-up seen in the store as {} after {:?}",
        payment.state,
        hung_up.elapsed()
    );
    let (status, detail) = hub.scan("wallet-1", tran_id, None).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the scan must be refused: {detail}"
    );
    assert_eq!(detail["errorType"], "UNABLE_TO_LOCATE_RECORD", "{detail}");
    assert!(
        detail["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("POS went away")),
        "{detail}"
    );
    // A forward would have gone out at once: give it time to show itself.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pays_for(hub, tran_id), 0, "no pay may reach the partner");
    assert_eq!(payment.state, PaymentState::Expired);
    let payment = stored(hub, request).await;
    assert_eq!(payment.state, PaymentState::Expired);
    assert_eq!(payment.partner_id, None);
    let timeline = hub
        .hub
        .store
        .payment_timeline(payment.id, tran_id)
        .await
        .expect("timeline");
    assert!(
        timeline
            .iter()
            .any(|e| e.kind == event_kind::POS_GONE && e.payment_id == Some(payment.id)),
        "{timeline:#?}"
    );
    let (status, echo) = hub
        .pos(
            "/qr/v1/payments/reversals",
            &reversal(request["id"].as_str().expect("id"), "CANCELLED"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{echo}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        hub.sim
            .ledger()
            .iter()
            .all(|e| e.tran_id.as_deref() != Some(tran_id)
                && e.request_id.as_deref()
                    != Some(payment.partner_message_id.as_deref().unwrap_or("-"))),
        "nothing about it reaches the partner: {:#?}",
        hub.sim.ledger()
    );
}

/// HTTP/1: the POS closes its connection while the pay is held, then the customer scans.
async fn a_pos_that_hangs_up_before_a_scan_is_never_charged(db: TestDb) {
    let hub = TestHub::start(db, options()).await;
    let tran_id = hub.new_code(1500).await;
    let request = pay_request("pos-1", &tran_id, 1500);
    RawPay::send(&hub.url, &request)
        .await
        .hang_up_after(Duration::from_millis(300))
        .await;
    assert_abandoned(&hub, &request, &tran_id).await;
    hub.stop().await;
}

/// HTTP/2: the POS resets its stream (the connection stays open for other requests).
async fn a_pos_that_resets_its_http2_stream_is_never_charged(db: TestDb) {
    let hub = TestHub::start(db, options()).await;
    let tran_id = hub.new_code(1500).await;
    let request = pay_request("pos-1", &tran_id, 1500);
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let pay = h2
        .post(format!("{}/qr/v1/payments", hub.url))
        .basic_auth("pos-1", Some(POS_PASSWORD))
        .json(&request)
        .send();
    // Dropping the request's future resets its stream.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), pay)
            .await
            .is_err(),
        "the pay must be held"
    );
    assert_abandoned(&hub, &request, &tran_id).await;
    // The connection itself is still good.
    let (status, _) = hub.scan("wallet-1", &hub.new_code(100).await, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a code with no pay yet");
    hub.stop().await;
}

/// A POS that sends `pay` and waits is paid exactly as before.
async fn a_pos_that_waits_is_paid(db: TestDb) {
    let hub = TestHub::start(db, options()).await;
    let tran_id = hub.new_code(1500).await;
    let request = pay_request("pos-1", &tran_id, 1500);
    let held = hub.pay(request.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = hub.scan("wallet-1", &tran_id, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, answer) = held.await.expect("task");
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["tranId"], tran_id.as_str());
    assert_eq!(pays_for(&hub, &tran_id), 1);
    let payment = stored(&hub, &request).await;
    assert_eq!(payment.state, PaymentState::Approved);
    let timeline = hub
        .hub
        .store
        .payment_timeline(payment.id, &tran_id)
        .await
        .expect("timeline");
    assert!(timeline.iter().all(|e| e.kind != event_kind::POS_GONE));
    hub.stop().await;
}

/// The scan claims the payment, then the POS hangs up while the partner has it: the flow
/// carries on (the payment is sent and approved; the POS owes the advice).
async fn a_scan_that_won_first_carries_on(db: TestDb) {
    let hub = TestHub::start(db, options()).await;
    let tran_id = hub.new_code(1500).await;
    let request = pay_request("pos-1", &tran_id, 1500);
    hub.sim.script_pay_for(
        &tran_id,
        PayBehaviour::Delay {
            by: Duration::from_millis(300),
            then: Box::new(PayBehaviour::Approve),
        },
    );
    let pay = RawPay::send(&hub.url, &request).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = hub.scan("wallet-1", &tran_id, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    pay.hang_up();
    let payment = settle(
        &hub,
        &request,
        &[PaymentState::Approved],
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(payment.state, PaymentState::Approved);
    assert_eq!(pays_for(&hub, &tran_id), 1);
    hub.stop().await;
}

/// The POS hangs up at the very moment the customer scans, many times: whichever wins, the
/// outcome is whole. Scan accepted: the partner got the pay and the payment was not ended;
/// scan refused: the partner got nothing and the payment ended as abandoned.
async fn a_hang_up_racing_a_scan_has_one_winner(db: TestDb) {
    let hub = TestHub::start(db, options()).await;
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..12 {
        let tran_id = hub.new_code(700).await;
        let request = pay_request("pos-1", &tran_id, 700);
        let pay = RawPay::send(&hub.url, &request).await;
        settle(
            &hub,
            &request,
            &[PaymentState::WaitingForScan],
            Duration::from_secs(2),
        )
        .await;
        pay.hang_up();
        let (status, body) = hub.scan("wallet-1", &tran_id, None).await;
        let payment = settle(
            &hub,
            &request,
            &[PaymentState::Approved, PaymentState::Expired],
            Duration::from_secs(2),
        )
        .await;
        // A forward would have reached the partner by now.
        tokio::time::sleep(Duration::from_millis(100)).await;
        match status {
            StatusCode::ACCEPTED => {
                accepted += 1;
                assert_eq!(payment.state, PaymentState::Approved, "{tran_id}");
                assert_eq!(pays_for(&hub, &tran_id), 1, "{tran_id}");
            }
            StatusCode::BAD_REQUEST => {
                refused += 1;
                assert_eq!(body["errorType"], "UNABLE_TO_LOCATE_RECORD", "{body}");
                assert_eq!(payment.state, PaymentState::Expired, "{tran_id}");
                assert_eq!(pays_for(&hub, &tran_id), 0, "{tran_id}");
            }
            other => panic!("scan answered {other}: {body}"),
        }
    }
    eprintln!("hang-up vs scan: {accepted} scans won, {refused} hang-ups won");
    // The POS hung up before each scan was sent: a hub that never lets the hang-up win is
    // not noticing it.
    assert!(refused > 0, "no hang-up won against {accepted} scans");
    hub.stop().await;
}

/// The POS hangs up while its payment is still being stored: the insert runs to its end,
/// and the payment is then ended like any other abandoned one. The insert is held back by
/// a transaction of the test's own that has taken the pay's message id in
/// `payment_message` and not committed (PostgreSQL makes the pay's insert wait for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_pos_that_hangs_up_while_its_pay_is_stored_is_never_charged() {
    let db = TestDb::postgres().await;
    let url = db.url.clone();
    let hub = TestHub::start(db, options()).await;
    let tran_id = hub.new_code(1500).await;
    let request = pay_request("pos-1", &tran_id, 1500);
    let mut blocker = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    sqlx::query("BEGIN")
        .execute(&mut blocker)
        .await
        .expect("begin");
    sqlx::query("INSERT INTO payment_message (client_id, message_id) VALUES ('pos-1', $1)")
        .bind(request["id"].as_str().expect("id"))
        .execute(&mut blocker)
        .await
        .expect("take the key");
    RawPay::send(&hub.url, &request)
        .await
        .hang_up_after(Duration::from_millis(300))
        .await;
    // The POS is gone and its pay's insert still waits; let it through.
    tokio::time::sleep(Duration::from_millis(200)).await;
    sqlx::query("ROLLBACK")
        .execute(&mut blocker)
        .await
        .expect("rollback");
    assert_abandoned(&hub, &request, &tran_id).await;
    hub.stop().await;
}

both_stores!(
    a_pos_that_hangs_up_before_a_scan_is_never_charged,
    a_pos_that_resets_its_http2_stream_is_never_charged,
    a_pos_that_waits_is_paid,
    a_scan_that_won_first_carries_on,
    a_hang_up_racing_a_scan_has_one_winner,
);
