//! Retention, on both stores: timeline events and delivered advices past their keeping time
//! are purged in batches, recent ones stay, a pending advice is never purged, and payments
//! stay until their own (much longer) time is up. Time moves by the hub's manual clock; the
//! purge runs on demand (`[retention] enabled = false` keeps the background pass out of the
//! way).

use chrono::{DateTime, Duration as Span, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::common::db::TestDb;
use crate::common::hub::{confirmation, Options, TestHub};
use qrhub::clock::{Clock, ManualClock};
use qrhub::simulator::AdviceBehaviour;
use qrhub::store::{OutboxMessage, OutboxState};

fn options(clock: &ManualClock, retention: &str) -> Options {
    Options {
        clock: Some(Arc::new(clock.clone())),
        // Longer than any jump of the clock here: a pending advice stays PENDING.
        outbox_expiry: Duration::from_secs(1000 * 86_400),
        extra: format!(
            "[retention]\nenabled = false\nbatch_size = 2\npause = \"1ms\"\n{retention}\n"
        ),
        ..Options::default()
    }
}

/// A paid payment, confirmed; with `refused`, the partner answers 503 to its confirmation
/// for ever, so the advice stays PENDING.
async fn confirmed(hub: &TestHub, amount: i64, refused: bool) -> Value {
    let tran_id = hub.new_code(amount).await;
    let request = crate::common::hub::pay_request("pos-1", &tran_id, amount);
    let pay = hub.pay(request.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, body) = hub.scan("wallet-1", &tran_id, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "scan: {body}");
    let (status, answer) = pay.await.expect("pay finished");
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    if refused {
        hub.sim.script_advice_for(
            tran_id.clone(),
            AdviceBehaviour::FailTimes {
                n: 1_000_000,
                status: 503,
            },
        );
    }
    let advice = confirmation(request["id"].as_str().expect("id"));
    let (status, echo) = hub.pos("/qr/v1/payments/confirmations", &advice).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{echo}");
    request
}

/// Waits until the payment's one advice has had a try that ended as `done` says.
async fn advice_settles(
    hub: &TestHub,
    request: &Value,
    done: impl Fn(&OutboxMessage) -> bool,
) -> OutboxMessage {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = hub.outbox_of(request).await;
        if let [row] = rows.as_slice() {
            if done(row) {
                return row.clone();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the advice never settled: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn timeline_times(hub: &TestHub, request: &Value) -> Vec<DateTime<Utc>> {
    let payment = hub.stored(request).await;
    hub.hub
        .store
        .payment_timeline(payment.id, &payment.tran_id)
        .await
        .expect("timeline")
        .into_iter()
        .map(|e| e.at)
        .collect()
}

async fn old_events_and_delivered_advices_go_while_payments_and_pending_advices_stay(db: TestDb) {
    let start = Utc::now() - Span::days(100);
    let clock = ManualClock::new(start);
    let hub = TestHub::start(db, options(&clock, "events = \"90d\"\noutbox = \"30d\"")).await;
    // 100 days ago: one payment whose advice was delivered, one whose advice is still owed.
    let delivered = confirmed(&hub, 1000, false).await;
    advice_settles(&hub, &delivered, |r| r.state == OutboxState::Delivered).await;
    let owed = confirmed(&hub, 2000, true).await;
    advice_settles(&hub, &owed, |r| r.last_status == Some(503)).await;
    hub.hub.flush_events().await;
    assert!(!timeline_times(&hub, &delivered).await.is_empty());

    // 95 days later: a recent payment, delivered too.
    clock.set(start + Span::days(95));
    let recent = confirmed(&hub, 3000, false).await;
    advice_settles(&hub, &recent, |r| r.state == OutboxState::Delivered).await;
    hub.hub.flush_events().await;
    let recent_events = timeline_times(&hub, &recent).await;
    assert!(!recent_events.is_empty());

    let report = hub
        .hub
        .purge(&CancellationToken::new())
        .await
        .expect("purge");
    assert!(report.events >= 4, "several batches of 2: {report:?}");
    assert_eq!(report.outbox, 1, "{report:?}");
    assert_eq!(report.payments, 0, "{report:?}");

    // Events older than 90 days are gone; the recent payment's are all there.
    let cut = clock.now() - Span::days(90);
    assert!(timeline_times(&hub, &delivered).await.is_empty());
    assert!(timeline_times(&hub, &owed)
        .await
        .iter()
        .all(|at| *at >= cut));
    assert_eq!(timeline_times(&hub, &recent).await, recent_events);
    // The old delivered advice is gone; the owed one, as old, stays PENDING; the recent
    // delivered one stays.
    assert_eq!(hub.outbox_of(&delivered).await, Vec::new());
    let owed_rows = hub.outbox_of(&owed).await;
    assert_eq!(owed_rows.len(), 1);
    assert_eq!(owed_rows[0].state, OutboxState::Pending);
    assert_eq!(hub.outbox_of(&recent).await.len(), 1);
    // Every payment is kept, with its money.
    for (request, amount) in [(&delivered, 1000), (&owed, 2000), (&recent, 3000)] {
        let payment = hub.stored(request).await;
        assert_eq!(payment.settled_minor, Some(amount));
    }
    // A second pass finds nothing more.
    let again = hub
        .hub
        .purge(&CancellationToken::new())
        .await
        .expect("purge");
    assert_eq!((again.events, again.outbox, again.payments), (0, 0, 0));
    hub.stop().await;
}

async fn finished_payments_go_after_their_own_time_unless_an_advice_is_owed(db: TestDb) {
    let start = Utc::now() - Span::days(400);
    let clock = ManualClock::new(start);
    let hub = TestHub::start(db, options(&clock, "payments = \"365d\"")).await;
    let done = confirmed(&hub, 1000, false).await;
    advice_settles(&hub, &done, |r| r.state == OutboxState::Delivered).await;
    let owed = confirmed(&hub, 2000, true).await;
    advice_settles(&hub, &owed, |r| r.last_status == Some(503)).await;
    hub.hub.flush_events().await;
    clock.set(start + Span::days(380));
    let recent = confirmed(&hub, 3000, false).await;
    advice_settles(&hub, &recent, |r| r.state == OutboxState::Delivered).await;
    hub.hub.flush_events().await;

    let report = hub
        .hub
        .purge(&CancellationToken::new())
        .await
        .expect("purge");
    assert_eq!(report.payments, 1, "{report:?}");
    let store = &hub.hub.store;
    let gone = store
        .payment_by_message("pos-1", done["id"].as_str().expect("id"))
        .await
        .expect("store");
    assert_eq!(gone, None, "the finished payment past its time is deleted");
    for kept in [&owed, &recent] {
        let payment = hub.stored(kept).await;
        assert_eq!(hub.outbox_of(kept).await.len(), 1, "{payment:?}");
    }
    hub.stop().await;
}

both_stores!(
    old_events_and_delivered_advices_go_while_payments_and_pending_advices_stay,
    finished_payments_go_after_their_own_time_unless_an_advice_is_owed,
);
