//! Approvals nobody advises: a payment the partner APPROVED that its POS neither confirmed
//! nor reversed (typically a POS that went away after the scan) is listed in the back office
//! with its age and counted for alerting once past `unadvised.listed_after`; past
//! `unadvised.act_after` the client's policy applies (`nothing`, or `reverse`: the hub sends
//! its own reversal). Time moves by the hub's manual clock; the sweep runs on demand.
//!
//! The metrics recorder is process-wide, so the cases run one at a time ([`SERIAL`]).

use chrono::Duration as Span;
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

use crate::common::db::TestDb;
use crate::common::hub::{
    confirmation, pay_request, qr_request, reversal, Options, TestHub, OPERATOR, OPERATOR_PASSWORD,
    POS_PASSWORD,
};
use qrhub::clock::ManualClock;
use qrhub::domain::PaymentState;
use qrhub::simulator::MessageKind;
use qrhub::store::{event_kind, PaymentRecord};

static SERIAL: Mutex<()> = Mutex::const_new(());

fn options(clock: &ManualClock, pos_1_reverses: bool) -> Options {
    Options {
        clock: Some(Arc::new(clock.clone())),
        pos_1_extra: if pos_1_reverses {
            "unadvised_approvals = \"reverse\"".into()
        } else {
            String::new()
        },
        extra: "[unadvised]\nlisted_after = \"10m\"\nact_after = \"1h\"\n".into(),
        pay_deadline: Duration::from_secs(10),
        ..Options::default()
    }
}

/// A payment by `client` the partner approved; returns the POS's pay request.
async fn approved(hub: &TestHub, client: &str) -> Value {
    let (status, code) = hub
        .post_as(
            client,
            POS_PASSWORD,
            "/qr/v1/qrCodes",
            &qr_request(client, 2500),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{code}");
    let tran_id = code["tranId"].as_str().expect("tranId").to_owned();
    let request = pay_request(client, &tran_id, 2500);
    let held = {
        let (http, url, client, request) = (
            hub.http.clone(),
            hub.url.clone(),
            client.to_owned(),
            request.clone(),
        );
        tokio::spawn(async move {
            http.post(format!("{url}/qr/v1/payments"))
                .basic_auth(&client, Some(POS_PASSWORD))
                .json(&request)
                .send()
                .await
                .expect("the hub answers")
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = hub.scan("wallet-1", &tran_id, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(held.await.expect("task"), StatusCode::CREATED);
    request
}

async fn stored(hub: &TestHub, client: &str, request: &Value) -> PaymentRecord {
    hub.hub
        .store
        .payment_by_message(client, request["id"].as_str().expect("id"))
        .await
        .expect("store")
        .expect("stored")
}

async fn advise(hub: &TestHub, client: &str, path: &str, advice: &Value) -> (StatusCode, Value) {
    hub.post_as(client, POS_PASSWORD, path, advice).await
}

async fn unadvised(hub: &TestHub) -> Value {
    let response = hub
        .http
        .get(format!("{}/admin/v1/unadvised", hub.url))
        .basic_auth(OPERATOR, Some(OPERATOR_PASSWORD))
        .send()
        .await
        .expect("the hub answers");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("JSON")
}

fn listed_ids(list: &Value) -> Vec<String> {
    list["payments"]
        .as_array()
        .expect("payments")
        .iter()
        .map(|p| p["id"].as_str().expect("id").to_owned())
        .collect()
}

/// One sample of `/metrics` (no labels); a counter never incremented is not there yet: 0.
async fn metric(hub: &TestHub, name: &str) -> f64 {
    let text = hub
        .http
        .get(format!("{}/metrics", hub.url))
        .send()
        .await
        .expect("the hub answers")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// A gauge once it holds what `ok` wants: the hub's own sweeper runs beside the test's, and
/// a pass it started before the test moved the clock can overwrite the gauge after the
/// test's sweep set it, so the test sweeps and reads again for a while.
async fn gauge(hub: &TestHub, name: &str, ok: impl Fn(f64) -> bool) -> f64 {
    for _ in 0..50 {
        sweep(hub).await;
        let value = metric(hub, name).await;
        if ok(value) {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    metric(hub, name).await
}

async fn sweep(hub: &TestHub) {
    hub.hub.sweep().await.expect("sweep");
}

/// With the default policy, approvals nobody advised are listed and counted, never touched.
async fn approvals_nobody_advises_are_listed_and_counted(db: TestDb) {
    let _serial = SERIAL.lock().await;
    let clock = ManualClock::new(chrono::Utc::now());
    let hub = TestHub::start(db, options(&clock, false)).await;
    let confirmed = approved(&hub, "pos-1").await;
    let reversed = approved(&hub, "pos-1").await;
    let forgotten = approved(&hub, "pos-1").await;
    clock.advance(Span::seconds(1));
    let forgotten_too = approved(&hub, "pos-2").await;
    let id_of = |r: &Value| r["id"].as_str().expect("id").to_owned();
    let (status, _) = advise(
        &hub,
        "pos-1",
        "/qr/v1/payments/confirmations",
        &confirmation(&id_of(&confirmed)),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = advise(
        &hub,
        "pos-1",
        "/qr/v1/payments/reversals",
        &reversal(&id_of(&reversed), "CANCELLED"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    sweep(&hub).await;
    let list = unadvised(&hub).await;
    assert_eq!(list["count"], 0, "too young to list: {list}");
    assert_eq!(
        gauge(&hub, "qrhub_unadvised_approvals", |v| v == 0.0).await,
        0.0
    );

    clock.advance(Span::minutes(11));
    sweep(&hub).await;
    let list = unadvised(&hub).await;
    let forgotten_id = stored(&hub, "pos-1", &forgotten).await.id.to_string();
    let forgotten_too_id = stored(&hub, "pos-2", &forgotten_too).await.id.to_string();
    assert_eq!(
        listed_ids(&list),
        vec![forgotten_id.clone(), forgotten_too_id],
        "{list}"
    );
    assert_eq!(list["count"], 2);
    assert_eq!(list["listedAfterSeconds"], 600);
    let first = &list["payments"][0];
    assert!(first["ageSeconds"].as_i64().expect("age") >= 660, "{first}");
    assert_eq!(first["policy"], "nothing");
    assert!(first.get("reverseAt").is_none(), "{first}");
    assert_eq!(first["state"], "APPROVED");
    assert_eq!(
        gauge(&hub, "qrhub_unadvised_approvals", |v| v == 2.0).await,
        2.0
    );
    let oldest = "qrhub_unadvised_approval_oldest_age_seconds";
    assert!(gauge(&hub, oldest, |v| v >= 660.0).await >= 660.0);

    // Long past the horizon: policy `nothing` leaves them to the POS.
    clock.advance(Span::hours(2));
    sweep(&hub).await;
    assert_eq!(
        stored(&hub, "pos-1", &forgotten).await.state,
        PaymentState::Approved
    );
    assert_eq!(
        stored(&hub, "pos-2", &forgotten_too).await.state,
        PaymentState::Approved
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reversals = hub
        .sim
        .ledger()
        .iter()
        .filter(|e| e.kind == MessageKind::Reversal)
        .count();
    assert_eq!(
        reversals, 1,
        "only the POS's own reversal reached the partner"
    );

    // The POS's late advice takes it off the list.
    let (status, _) = advise(
        &hub,
        "pos-1",
        "/qr/v1/payments/confirmations",
        &confirmation(&id_of(&forgotten)),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    sweep(&hub).await;
    assert_eq!(unadvised(&hub).await["count"], 1);
    assert_eq!(
        gauge(&hub, "qrhub_unadvised_approvals", |v| v == 1.0).await,
        1.0
    );
    hub.stop().await;
}

/// A client whose policy is `reverse` has its approvals nobody advised reversed by the hub
/// once past `act_after`; other clients' are left alone.
async fn a_client_that_asks_for_it_gets_unadvised_approvals_reversed(db: TestDb) {
    let _serial = SERIAL.lock().await;
    let clock = ManualClock::new(chrono::Utc::now());
    let hub = TestHub::start(db, options(&clock, true)).await;
    let forgotten = approved(&hub, "pos-1").await;
    clock.advance(Span::seconds(1));
    let other_client = approved(&hub, "pos-2").await;
    let confirmed = approved(&hub, "pos-1").await;
    let id_of = |r: &Value| r["id"].as_str().expect("id").to_owned();
    let (status, _) = advise(
        &hub,
        "pos-1",
        "/qr/v1/payments/confirmations",
        &confirmation(&id_of(&confirmed)),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    clock.advance(Span::minutes(11));
    sweep(&hub).await;
    let list = unadvised(&hub).await;
    let payment = stored(&hub, "pos-1", &forgotten).await;
    let first = &list["payments"][0];
    assert_eq!(first["id"], payment.id.to_string(), "{list}");
    assert_eq!(first["policy"], "reverse");
    assert!(first["reverseAt"].is_string(), "{first}");
    assert_eq!(
        payment.state,
        PaymentState::Approved,
        "listed, not yet reversed"
    );

    let reversed_before = metric(&hub, "qrhub_unadvised_reversals_total").await;
    clock.advance(Span::minutes(50));
    sweep(&hub).await;
    let payment = stored(&hub, "pos-1", &forgotten).await;
    assert_eq!(payment.state, PaymentState::Reversed);
    let partner_saw = payment
        .partner_message_id
        .clone()
        .expect("partner message id");
    hub.wait_for_ledger(Duration::from_secs(5), |ledger| {
        ledger.iter().any(|e| {
            e.kind == MessageKind::Reversal
                && e.request_id.as_deref() == Some(partner_saw.as_str())
                && e.message["reversalReason"] == "TIMEOUT"
        })
    })
    .await;
    assert_eq!(
        stored(&hub, "pos-2", &other_client).await.state,
        PaymentState::Approved
    );
    assert_eq!(
        stored(&hub, "pos-1", &confirmed).await.state,
        PaymentState::Confirmed
    );
    assert_eq!(
        metric(&hub, "qrhub_unadvised_reversals_total").await - reversed_before,
        1.0
    );
    let timeline = hub
        .hub
        .store
        .payment_timeline(payment.id, &payment.tran_id)
        .await
        .expect("timeline");
    assert!(
        timeline
            .iter()
            .any(|e| e.kind == event_kind::UNADVISED_REVERSAL),
        "{timeline:#?}"
    );
    // Off the list; the POS's late advices meet a settled payment.
    assert_eq!(
        listed_ids(&unadvised(&hub).await),
        vec![stored(&hub, "pos-2", &other_client).await.id.to_string()]
    );
    let (status, detail) = advise(
        &hub,
        "pos-1",
        "/qr/v1/payments/confirmations",
        &confirmation(&id_of(&forgotten)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{detail}");
    assert_eq!(detail["errorType"], "ACCOUNT_ALREADY_SETTLED");
    let (status, _) = advise(
        &hub,
        "pos-1",
        "/qr/v1/payments/reversals",
        &reversal(&id_of(&forgotten), "CANCELLED"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // One reversal reached the partner for it, whatever sweeps ran.
    sweep(&hub).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = hub
        .sim
        .ledger()
        .iter()
        .filter(|e| {
            e.kind == MessageKind::Reversal && e.request_id.as_deref() == Some(partner_saw.as_str())
        })
        .count();
    assert_eq!(sent, 1);
    hub.stop().await;
}

both_stores!(
    approvals_nobody_advises_are_listed_and_counted,
    a_client_that_asks_for_it_gets_unadvised_approvals_reversed,
);
