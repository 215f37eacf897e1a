//! A hub process killed with SIGKILL in the middle of its work, then started again: every
//! payment still reaches a correct end, and nothing owed to the partner is lost.

mod common;

use reqwest::StatusCode;
use std::time::Duration;

use common::db::TestDb;
use common::hub::{
    config_toml, confirmation, new_id, now, pay_request, qr_request, start_simulator, Options,
    PARTNER_PASSWORD, POS_PASSWORD,
};
use common::process::{free_port, HubProcess};
use qrhub::domain::PaymentState;
use qrhub::simulator::{AdviceBehaviour, MessageKind, PayBehaviour};
use qrhub::store::OutboxState;

async fn post(
    http: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
    body: &serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let r = http
        .post(url)
        .basic_auth(user, Some(password))
        .json(body)
        .send()
        .await
        .expect("answer");
    let status = r.status();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

async fn a_killed_hub_recovers_every_payment(db: TestDb) {
    let sim = start_simulator().await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let options = Options {
        pay_deadline: Duration::from_millis(2500),
        partner_timeout: Duration::from_millis(1000),
        ..Options::default()
    };
    let toml = config_toml(&db.url, &sim.base_url(), &options).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("qrhub.toml");
    std::fs::write(&config, toml).expect("config written");
    let http = reqwest::Client::new();
    let hub = HubProcess::start(&config, &url).await;

    let code = |amount| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let (status, body) = post(
                &http,
                &format!("{url}/qr/v1/qrCodes"),
                "pos-1",
                POS_PASSWORD,
                &qr_request("pos-1", amount),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["tranId"].as_str().expect("tranId").to_owned()
        }
    };
    let scan = |tran_id: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let body = serde_json::json!({"id": new_id(), "time": now(),
                "partner": {"id": "wallet-1", "name": "W"}, "tranId": tran_id});
            post(
                &http,
                &format!("{url}/qr/v1/scans"),
                "wallet-1",
                PARTNER_PASSWORD,
                &body,
            )
            .await
            .0
        }
    };

    // C: approved, its confirmation accepted but not yet delivered (the partner fails it).
    let tran_c = code(300).await;
    let pay_c = pay_request("pos-1", &tran_c, 300);
    let held = tokio::spawn({
        let (http, url, body) = (http.clone(), url.clone(), pay_c.clone());
        async move {
            post(
                &http,
                &format!("{url}/qr/v1/payments"),
                "pos-1",
                POS_PASSWORD,
                &body,
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(scan(tran_c.clone()).await, StatusCode::ACCEPTED);
    assert_eq!(held.await.expect("pay").0, StatusCode::CREATED);
    sim.script_advice(AdviceBehaviour::FailTimes {
        n: 1_000_000,
        status: 500,
    });
    let (status, _) = post(
        &http,
        &format!("{url}/qr/v1/payments/confirmations"),
        "pos-1",
        POS_PASSWORD,
        &confirmation(pay_c["id"].as_str().expect("id")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // A: with the partner, which never answers, when the hub dies.
    sim.script_pay(PayBehaviour::Hang);
    let tran_a = code(100).await;
    let pay_a = pay_request("pos-1", &tran_a, 100);
    let held_a = tokio::spawn({
        let (http, url, body) = (http.clone(), url.clone(), pay_a.clone());
        async move {
            http.post(format!("{url}/qr/v1/payments"))
                .basic_auth("pos-1", Some(POS_PASSWORD))
                .json(&body)
                .send()
                .await
                .map(|r| r.status())
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(scan(tran_a.clone()).await, StatusCode::ACCEPTED);

    // B: waiting for a scan when the hub dies.
    let tran_b = code(200).await;
    let pay_b = pay_request("pos-1", &tran_b, 200);
    let held_b = tokio::spawn({
        let (http, url, body) = (http.clone(), url.clone(), pay_b.clone());
        async move {
            http.post(format!("{url}/qr/v1/payments"))
                .basic_auth("pos-1", Some(POS_PASSWORD))
                .json(&body)
                .send()
                .await
                .map(|r| r.status())
        }
    });
    // Wait until B is stored and waiting, and A's pay has reached the partner; then kill.
    let store = db.store().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store
        .payment_by_message("pos-1", pay_b["id"].as_str().expect("id"))
        .await
        .expect("store")
        .is_none()
    {
        assert!(tokio::time::Instant::now() < deadline, "B was never stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !sim
        .ledger()
        .iter()
        .any(|e| e.kind == MessageKind::Pay && e.tran_id.as_deref() == Some(tran_a.as_str()))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A's pay never reached the partner"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hub.kill();
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
    let hub = HubProcess::start(&config, &url).await;

    // A: the outcome is unknown, so the partner gets the hub's reversal for the pay it saw.
    let pay_id_a = sim
        .ledger()
        .iter()
        .find(|e| e.kind == MessageKind::Pay && e.tran_id.as_deref() == Some(tran_a.as_str()))
        .and_then(|e| e.id.clone())
        .expect("A's pay");
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
            .payment_by_message("pos-1", pay_b["id"].as_str().expect("id"))
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
    let a = store
        .payment_by_message("pos-1", pay_a["id"].as_str().expect("id"))
        .await
        .expect("store")
        .expect("A");
    assert_eq!(a.state, PaymentState::Unknown);
    let c = store
        .payment_by_message("pos-1", pay_c["id"].as_str().expect("id"))
        .await
        .expect("store")
        .expect("C");
    assert_eq!(c.state, PaymentState::Confirmed);
    for p in [&a, &c] {
        let rows = store.outbox_for_payment(p.id).await.expect("store");
        assert_eq!(rows.len(), 1, "exactly one advice owed: {rows:?}");
        assert_eq!(rows[0].state, OutboxState::Delivered);
    }
    // The POS, told nothing about A, reverses it: absorbed, nothing more to the partner.
    let reversal = common::hub::reversal(pay_a["id"].as_str().expect("id"), "TIMEOUT");
    let (status, _) = post(
        &http,
        &format!("{url}/qr/v1/payments/reversals"),
        "pos-1",
        POS_PASSWORD,
        &reversal,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reversals = sim
        .ledger()
        .iter()
        .filter(|e| e.kind == MessageKind::Reversal)
        .count();
    assert_eq!(reversals, 1);
    // The partner was asked to pay exactly twice (A and C); B never.
    assert_eq!(
        sim.ledger()
            .iter()
            .filter(|e| e.kind == MessageKind::Pay)
            .count(),
        2
    );
    hub.kill();
    let _ = sim.shutdown().await;
    db.cleanup().await;
}

both_stores!(a_killed_hub_recovers_every_payment);
