//! Several hub processes on one PostgreSQL: a pay held by one is matched by a scan that
//! reaches another, any instance answers any advice, and the instances share the outbox
//! without delivering an advice twice. SQLite refuses a second instance.

use reqwest::StatusCode;
use std::time::{Duration, Instant};

use crate::common::db::TestDb;
use crate::common::hub::{
    config_toml, confirmation, pay_request, reversal, start_simulator, Client, Options, RawPay,
};
use crate::common::process::{free_port, write_config, HubProcess};
use qrhub::domain::PaymentState;
use qrhub::simulator::{AdviceBehaviour, MessageKind};
use qrhub::store::SharedStore;

/// A pay held by `holder` and scanned at `scanner`; returns the pay request.
async fn pay_across(holder: &Client, scanner: &Client, amount: i64) -> serde_json::Value {
    let tran_id = holder.new_code(amount).await;
    let request = pay_request("pos-1", &tran_id, amount);
    let held = holder.spawn_pay(&request);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(scanner.scan(&tran_id).await, StatusCode::ACCEPTED);
    let (status, answer) = held.await.expect("task").expect("answer");
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_one_postgres() {
    let db = TestDb::postgres().await;
    let sim = start_simulator().await;
    // A long scan window: a match that waited for the window's end instead of a wake-up
    // would take 14 s, which the checks below tell apart from a wake-up with a wide margin.
    let options = Options {
        pay_deadline: Duration::from_secs(15),
        partner_timeout: Duration::from_secs(1),
        early_scan_grace: Duration::from_secs(10),
        ..Options::default()
    };
    let toml = config_toml(&db.url, &sim.base_url(), &options);
    let dir = tempfile::tempdir().expect("tempdir");
    let (port_a, port_b) = (free_port(), free_port());
    let (a, b) = (
        Client::new(format!("http://127.0.0.1:{port_a}")),
        Client::new(format!("http://127.0.0.1:{port_b}")),
    );
    let hub_a = HubProcess::start(&write_config(dir.path(), "a.toml", &toml, port_a), &a.url).await;
    let hub_b = HubProcess::start(&write_config(dir.path(), "b.toml", &toml, port_b), &b.url).await;

    // A pay held by A, its scan sent to B.
    let started = Instant::now();
    let first = pay_across(&a, &b, 500).await;
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "matched by a wake-up, not the window's end"
    );

    // An early scan at B waits for a pay that arrives at A.
    let tran_id = b.new_code(500).await;
    let early = tokio::spawn({
        let (b, t) = (b.clone(), tran_id.clone());
        async move { b.scan(&t).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let (status, answer) = a
        .pos("/qr/v1/payments", &pay_request("pos-1", &tran_id, 500))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(early.await.expect("scan"), StatusCode::ACCEPTED);
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "the early scan was woken by the pay"
    );

    // Either instance answers any advice, and a repeat at the other answers the same.
    let advice = confirmation(first["id"].as_str().expect("id"));
    let (status, echo_b) = b.pos("/qr/v1/payments/confirmations", &advice).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{echo_b}");
    let (status, echo_a) = a.pos("/qr/v1/payments/confirmations", &advice).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(echo_a, echo_b);

    // Many advices through both instances, delivered by both workers, each exactly once.
    sim.script_advice(AdviceBehaviour::Delay {
        by: Duration::from_millis(30),
        then: Box::new(AdviceBehaviour::Accept),
    });
    let mut confirmed = 1;
    for i in 0..24 {
        let (holder, scanner) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let request = pay_across(holder, scanner, 100 + i).await;
        let (status, _) = scanner
            .pos(
                "/qr/v1/payments/confirmations",
                &confirmation(request["id"].as_str().expect("id")),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        confirmed += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let delivered = sim
            .ledger()
            .iter()
            .filter(|e| e.kind == MessageKind::Confirmation)
            .count();
        if delivered >= confirmed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {delivered} of {confirmed} confirmations delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give a doubled delivery the time to show itself, then count per advice id.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ledger = sim.ledger();
    let confirmations: Vec<_> = ledger
        .iter()
        .filter(|e| e.kind == MessageKind::Confirmation)
        .collect();
    assert_eq!(confirmations.len(), confirmed, "no advice delivered twice");
    for c in &confirmations {
        let id = c.id.as_deref().expect("advice id");
        assert_eq!(sim.deliveries(id), 1, "{id} delivered more than once");
    }
    // One pay per payment: the confirmed ones and the early-scan one.
    assert_eq!(
        ledger.iter().filter(|e| e.kind == MessageKind::Pay).count(),
        confirmed + 1
    );

    drop(hub_a);
    drop(hub_b);
    let _ = sim.shutdown().await;
    db.cleanup().await;
}

/// The state of pos-1's payment `message_id`, once it is one of `states` (or after 2 s).
async fn state_once(
    store: &SharedStore,
    message_id: &str,
    states: &[PaymentState],
) -> PaymentState {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let payment = store
            .payment_by_message("pos-1", message_id)
            .await
            .expect("store");
        match payment {
            Some(p) if states.contains(&p.state) || Instant::now() >= deadline => return p.state,
            None if Instant::now() >= deadline => panic!("{message_id} never stored"),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// A pay held by A whose POS hangs up is not sent when the scan reaches B; and when the
/// hang-up and the scan race, across the two instances exactly one wins, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pos_gone_at_one_instance_is_not_charged_by_a_scan_at_another() {
    let db = TestDb::postgres().await;
    let sim = start_simulator().await;
    let options = Options {
        pay_deadline: Duration::from_secs(15),
        partner_timeout: Duration::from_secs(1),
        ..Options::default()
    };
    let toml = config_toml(&db.url, &sim.base_url(), &options);
    let dir = tempfile::tempdir().expect("tempdir");
    let (port_a, port_b) = (free_port(), free_port());
    let (a, b) = (
        Client::new(format!("http://127.0.0.1:{port_a}")),
        Client::new(format!("http://127.0.0.1:{port_b}")),
    );
    let hub_a = HubProcess::start(&write_config(dir.path(), "a.toml", &toml, port_a), &a.url).await;
    let hub_b = HubProcess::start(&write_config(dir.path(), "b.toml", &toml, port_b), &b.url).await;
    let store = qrhub::store::connect(&db.url, 2).await.expect("store");
    let pays_for = |tran_id: &str| {
        sim.ledger()
            .iter()
            .filter(|e| e.kind == MessageKind::Pay && e.tran_id.as_deref() == Some(tran_id))
            .count()
    };

    let tran_id = a.new_code(900).await;
    let request = pay_request("pos-1", &tran_id, 900);
    let id = request["id"].as_str().expect("id").to_owned();
    RawPay::send(&a.url, &request)
        .await
        .hang_up_after(Duration::from_millis(300))
        .await;
    // Scanned whether or not A noticed: a hub that did not shows itself by the answer.
    let seen = state_once(&store, &id, &[PaymentState::Expired]).await;
    assert_eq!(
        b.scan(&tran_id).await,
        StatusCode::BAD_REQUEST,
        "the scan at B is refused"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pays_for(&tran_id), 0, "no pay may reach the partner");
    assert_eq!(seen, PaymentState::Expired);

    let (mut scans_won, mut hang_ups_won) = (0, 0);
    for _ in 0..10 {
        let tran_id = a.new_code(300).await;
        let request = pay_request("pos-1", &tran_id, 300);
        let id = request["id"].as_str().expect("id").to_owned();
        let pay = RawPay::send(&a.url, &request).await;
        state_once(&store, &id, &[PaymentState::WaitingForScan]).await;
        pay.hang_up();
        let status = b.scan(&tran_id).await;
        let state = state_once(
            &store,
            &id,
            &[PaymentState::Approved, PaymentState::Expired],
        )
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        match status {
            StatusCode::ACCEPTED => {
                scans_won += 1;
                assert_eq!(state, PaymentState::Approved, "{tran_id}");
                assert_eq!(pays_for(&tran_id), 1, "{tran_id}");
            }
            StatusCode::BAD_REQUEST => {
                hang_ups_won += 1;
                assert_eq!(state, PaymentState::Expired, "{tran_id}");
                assert_eq!(pays_for(&tran_id), 0, "{tran_id}");
            }
            other => panic!("scan answered {other}"),
        }
    }
    eprintln!(
        "across instances, hang-up vs scan: {scans_won} scans won, {hang_ups_won} hang-ups won"
    );
    // Each POS hung up before its scan was sent: some hang-ups must win.
    assert!(hang_ups_won > 0, "no hang-up won against {scans_won} scans");

    drop(hub_a);
    drop(hub_b);
    let _ = sim.shutdown().await;
    db.cleanup().await;
}

/// An instance decides a POS's advice from the payment as its own forwarder answered it, with
/// no read back; a change another instance made since is found by the advice's
/// compare-and-set, and the advice is decided again from the store, never applied over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_advice_finds_what_another_instance_changed_after_the_answer() {
    let db = TestDb::postgres().await;
    let sim = start_simulator().await;
    let options = Options {
        pay_deadline: Duration::from_secs(15),
        partner_timeout: Duration::from_secs(1),
        ..Options::default()
    };
    let toml = config_toml(&db.url, &sim.base_url(), &options);
    let dir = tempfile::tempdir().expect("tempdir");
    let (port_a, port_b) = (free_port(), free_port());
    let (a, b) = (
        Client::new(format!("http://127.0.0.1:{port_a}")),
        Client::new(format!("http://127.0.0.1:{port_b}")),
    );
    let hub_a = HubProcess::start(&write_config(dir.path(), "a.toml", &toml, port_a), &a.url).await;
    let hub_b = HubProcess::start(&write_config(dir.path(), "b.toml", &toml, port_b), &b.url).await;
    let store = qrhub::store::connect(&db.url, 2).await.expect("store");

    // Held, scanned and answered at A: A remembers the approval.
    let request = pay_across(&a, &a, 700).await;
    let id = request["id"].as_str().expect("id").to_owned();
    // The POS reverses it through B, then (a confused POS) confirms it through A.
    let (status, answer) = b
        .pos("/qr/v1/payments/reversals", &reversal(&id, "CANCELLED"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let (status, answer) = a
        .pos("/qr/v1/payments/confirmations", &confirmation(&id))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "ACCOUNT_ALREADY_SETTLED", "{answer}");
    assert_eq!(
        state_once(&store, &id, &[PaymentState::Reversed]).await,
        PaymentState::Reversed
    );

    // Confirmed through B; then another confirmation, over the approved amount, through A,
    // which remembers the approval: a refusal decided from memory would say
    // INVALID_AMOUNT, where the store says the payment is confirmed (absorbed, 202).
    let request = pay_across(&a, &a, 600).await;
    let id = request["id"].as_str().expect("id").to_owned();
    let (status, answer) = b
        .pos("/qr/v1/payments/confirmations", &confirmation(&id))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let mut over = confirmation(&id);
    over["amounts"] = serde_json::json!({"approvedAmount": {"amount": 900, "currency": "710"}});
    let (status, answer) = a.pos("/qr/v1/payments/confirmations", &over).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");

    // And the common case still confirms at the answering instance, once.
    let request = pay_across(&a, &a, 800).await;
    let id = request["id"].as_str().expect("id").to_owned();
    let (status, answer) = a
        .pos("/qr/v1/payments/confirmations", &confirmation(&id))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        state_once(&store, &id, &[PaymentState::Confirmed]).await,
        PaymentState::Confirmed
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ledger = sim.ledger();
    assert_eq!(
        ledger
            .iter()
            .filter(|e| e.kind == MessageKind::Confirmation)
            .count(),
        2,
        "only the confirmed payments' first confirmations reach the partner"
    );
    assert_eq!(
        ledger
            .iter()
            .filter(|e| e.kind == MessageKind::Reversal)
            .count(),
        1
    );

    drop(hub_a);
    drop(hub_b);
    let _ = sim.shutdown().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_a_second_instance() {
    let db = TestDb::sqlite().await;
    let sim = start_simulator().await;
    let toml = config_toml(&db.url, &sim.base_url(), &Options::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let first = HubProcess::start(
        &write_config(dir.path(), "a.toml", &toml, port),
        &format!("http://127.0.0.1:{port}"),
    )
    .await;
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_qrhub"))
        .args(["serve", "--config"])
        .arg(write_config(dir.path(), "b.toml", &toml, free_port()))
        .output()
        .expect("the second hub runs");
    assert!(
        !second.status.success(),
        "a second instance on one SQLite file must not start"
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("SQLite supports one instance"), "{stderr}");
    drop(first);
    let _ = sim.shutdown().await;
    db.cleanup().await;
}

/// A payment whose insert asks for a wake-up on `key`.
fn waking_payment(key: &str) -> qrhub::store::NewPayment {
    let tran_id = uuid::Uuid::new_v4().simple().to_string();
    qrhub::store::NewPayment {
        id: uuid::Uuid::new_v4(),
        client_id: "pos-1".into(),
        message_id: uuid::Uuid::new_v4().to_string(),
        tran_id: tran_id.clone(),
        amount_minor: 100,
        currency: "710".into(),
        request: serde_json::json!({"tranId": tran_id}),
        created_at: chrono::Utc::now(),
        scan_deadline: chrono::Utc::now() + chrono::Duration::seconds(30),
        events: Vec::new(),
        wake: Some(key.to_owned()),
    }
}

/// The next notification within `wait`, if any.
async fn next_notification(
    listener: &mut sqlx::postgres::PgListener,
    wait: Duration,
) -> Option<String> {
    tokio::time::timeout(wait, listener.recv())
        .await
        .ok()
        .and_then(Result::ok)
        .map(|n| n.payload().to_owned())
}

/// A hub alone on its database sends no NOTIFY with its changes (each would cost a turn at
/// PostgreSQL's notification lock); once another instance listens, it does again, at once
/// for one that says hello and within a second for any other listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_alone_sends_no_wake_ups() {
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let _own = store.announcements().await.expect("listen");
    // A spy that listens without looking like a hub: its last statement is not the LISTEN.
    let mut spy = sqlx::postgres::PgListener::connect(&db.url)
        .await
        .expect("spy");
    spy.listen("qrhub_wake").await.expect("spy listens");
    sqlx::query("SELECT 1")
        .execute(&mut spy)
        .await
        .expect("spy hides");
    // The spy may have been seen while it listened visibly: two looks later it is not.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    while next_notification(&mut spy, Duration::from_millis(100))
        .await
        .is_some()
    {}
    store
        .insert_payment(&waking_payment("alone"))
        .await
        .expect("insert");
    store.announce("alone-too").await.expect("announce");
    assert_eq!(
        next_notification(&mut spy, Duration::from_millis(500)).await,
        None,
        "a hub alone announced a wake-up"
    );

    // Another hub says hello: the next change is announced at once.
    let other = db.store().await;
    let _other_listens = other.announcements().await.expect("listen");
    assert_eq!(
        next_notification(&mut spy, Duration::from_secs(2))
            .await
            .as_deref(),
        Some("hello")
    );
    // The spy and the first hub hear the hello on their own connections; the first hub may
    // take a moment longer than the spy (a loaded machine), so its changes are tried until
    // one is announced, for at most a few seconds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut announced = None;
    for n in 0.. {
        let key = format!("together-{n}");
        store
            .insert_payment(&waking_payment(&key))
            .await
            .expect("insert");
        announced = next_notification(&mut spy, Duration::from_millis(250)).await;
        if announced.is_some() || tokio::time::Instant::now() > deadline {
            break;
        }
    }
    assert!(
        announced
            .as_deref()
            .is_some_and(|k| k.starts_with("together-")),
        "a hub that was told of another never announced again: {announced:?}"
    );
    db.cleanup().await;
}
