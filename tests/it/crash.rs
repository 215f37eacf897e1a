//! A hub process killed with SIGKILL in the middle of its work, then started again: every
//! payment still reaches a correct end, and nothing owed to the partner is lost.

use reqwest::StatusCode;
use std::time::Duration;

use crate::common::db::TestDb;
use crate::common::hub::{
    config_toml, confirmation, pay_request, qr_request, reversal, start_simulator, Client, Options,
};
use crate::common::process::{free_port, write_config, HubProcess};
use qrhub::domain::PaymentState;
use qrhub::simulator::{AdviceBehaviour, MessageKind, PayBehaviour};
use qrhub::store::OutboxState;

async fn a_killed_hub_recovers_every_payment(db: TestDb) {
    let sim = start_simulator().await;
    let port = free_port();
    let hub = Client::new(format!("http://127.0.0.1:{port}"));
    let options = Options {
        pay_deadline: Duration::from_millis(2500),
        partner_timeout: Duration::from_millis(1000),
        ..Options::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "qrhub.toml",
        &config_toml(&db.url, &sim.base_url(), &options),
        port,
    );
    let process = HubProcess::start(&config, &hub.url).await;
    let store = db.store().await;
    let id = |request: &serde_json::Value| request["id"].as_str().expect("id").to_owned();

    // C: approved, its confirmation accepted but not yet delivered (the partner fails it).
    let tran_c = hub.new_code(300).await;
    let pay_c = pay_request("pos-1", &tran_c, 300);
    let held_c = hub.spawn_pay(&pay_c);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(hub.scan(&tran_c).await, StatusCode::ACCEPTED);
    assert_eq!(
        held_c.await.expect("task").expect("answer").0,
        StatusCode::CREATED
    );
    sim.script_advice(AdviceBehaviour::FailTimes {
        n: 1_000_000,
        status: 500,
    });
    let (status, _) = hub
        .pos("/qr/v1/payments/confirmations", &confirmation(&id(&pay_c)))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // A: with the partner, which never answers, when the hub dies.
    sim.script_pay(PayBehaviour::Hang);
    let tran_a = hub.new_code(100).await;
    let pay_a = pay_request("pos-1", &tran_a, 100);
    let held_a = hub.spawn_pay(&pay_a);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(hub.scan(&tran_a).await, StatusCode::ACCEPTED);

    // B: waiting for a scan when the hub dies.
    let tran_b = hub.new_code(200).await;
    let pay_b = pay_request("pos-1", &tran_b, 200);
    let held_b = hub.spawn_pay(&pay_b);

    // Kill once B is stored and A's pay has reached the partner.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let a_at_partner = || {
        sim.ledger()
            .iter()
            .find(|e| e.kind == MessageKind::Pay && e.tran_id.as_deref() == Some(tran_a.as_str()))
            .and_then(|e| e.id.clone())
    };
    while a_at_partner().is_none()
        || store
            .payment_by_message("pos-1", &id(&pay_b))
            .await
            .expect("store")
            .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A never reached the partner or B was never stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    process.kill();
    assert!(
        held_a.await.expect("task").is_err(),
        "the POS lost its connection"
    );
    assert!(
        held_b.await.expect("task").is_err(),
        "the POS lost its connection"
    );

    // Start again; the partner now accepts advices.
    sim.clear_script();
    let process = HubProcess::start(&config, &hub.url).await;

    // A's outcome is unknown: the partner gets the hub's reversal of the pay it saw. B ends
    // expired, and C's confirmation is delivered.
    let pay_id_a = a_at_partner().expect("A's pay");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let ledger = sim.ledger();
        let reversed_a = ledger.iter().any(|e| {
            e.kind == MessageKind::Reversal && e.request_id.as_deref() == Some(pay_id_a.as_str())
        });
        let confirmed_c = ledger
            .iter()
            .any(|e| e.kind == MessageKind::Confirmation && e.status == Some(202));
        let b = store
            .payment_by_message("pos-1", &id(&pay_b))
            .await
            .expect("store")
            .expect("B stored");
        if reversed_a && confirmed_c && b.state == PaymentState::Expired {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not recovered: reversal A {reversed_a}, confirmation C {confirmed_c}, B {}",
            b.state
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let payment = |request: &serde_json::Value| {
        let (store, message_id) = (store.clone(), id(request));
        async move {
            store
                .payment_by_message("pos-1", &message_id)
                .await
                .expect("store")
                .expect("stored")
        }
    };
    let a = payment(&pay_a).await;
    assert_eq!(a.state, PaymentState::Unknown);
    let c = payment(&pay_c).await;
    assert_eq!(c.state, PaymentState::Confirmed);
    // The partner has both; each delivery's outcome is recorded a moment after the
    // partner answered it (with other deliveries that ended about then).
    for p in [&a, &c] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let rows = store.outbox_for_payment(p.id).await.expect("store");
            assert_eq!(rows.len(), 1, "exactly one advice owed: {rows:?}");
            if rows[0].state == OutboxState::Delivered {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "delivered but not recorded: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The POS, which never got A's answer, reverses it: absorbed, nothing more is sent.
    let (status, _) = hub
        .pos(
            "/qr/v1/payments/reversals",
            &reversal(&id(&pay_a), "TIMEOUT"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ledger = sim.ledger();
    assert_eq!(
        ledger
            .iter()
            .filter(|e| e.kind == MessageKind::Reversal)
            .count(),
        1
    );
    // The partner was asked to pay exactly twice (A and C); B never.
    assert_eq!(
        ledger.iter().filter(|e| e.kind == MessageKind::Pay).count(),
        2
    );
    process.kill();
    let _ = sim.shutdown().await;
    db.cleanup().await;
}

both_stores!(a_killed_hub_recovers_every_payment);

/// SQLite's writer answers a write only once the batch it shares a commit with is durable:
/// a hub killed while many writes are in flight, batched together, has lost none of those
/// it answered. (SIGKILL leaves what was written in the operating system's cache; it tests
/// the order of commit and answer, not the fsync, which `sqlite_durability` covers.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hub_killed_during_batched_commits_keeps_every_answered_write() {
    use std::sync::{Arc, Mutex};

    let db = TestDb::sqlite().await;
    let sim = start_simulator().await;
    let port = free_port();
    let hub = Client::new(format!("http://127.0.0.1:{port}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "qrhub.toml",
        &config_toml(&db.url, &sim.base_url(), &Options::default()),
        port,
    );
    let answered: Arc<Mutex<Vec<String>>> = Arc::default();
    for round in 0..3 {
        let process = HubProcess::start(&config, &hub.url).await;
        let lanes: Vec<_> = (0..32)
            .map(|_| {
                let (hub, answered) = (hub.clone(), Arc::clone(&answered));
                tokio::spawn(async move {
                    // Codes until the hub is gone: each 201 is a write the hub answered for.
                    while let Ok((status, body)) = hub
                        .try_pos("/qr/v1/qrCodes", &qr_request("pos-1", 100))
                        .await
                    {
                        assert_eq!(status, StatusCode::CREATED, "{body}");
                        let tran = body["tranId"].as_str().expect("tranId").to_owned();
                        answered.lock().expect("lock").push(tran);
                    }
                })
            })
            .collect();
        // Killed in the middle of the load, at a moment that differs from round to round.
        tokio::time::sleep(Duration::from_millis(700 + 130 * round)).await;
        process.kill();
        for lane in lanes {
            lane.await.expect("lane");
        }
    }
    let answered = answered.lock().expect("lock").clone();
    assert!(
        answered.len() > 100,
        "only {} codes answered",
        answered.len()
    );
    let store = db.store().await;
    let mut lost = Vec::new();
    for tran in &answered {
        if store.qr_code(tran).await.expect("store").is_none() {
            lost.push(tran.clone());
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} answered codes lost: {lost:?}",
        lost.len(),
        answered.len()
    );
    drop(store);
    let _ = sim.shutdown().await;
    db.cleanup().await;
}
