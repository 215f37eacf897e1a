//! Several hub processes on one PostgreSQL: a pay held by one is matched by a scan that
//! reaches another, any instance answers any advice, and the instances share the outbox
//! without delivering an advice twice. SQLite refuses a second instance.

mod common;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

use common::db::TestDb;
use common::hub::{
    config_toml, confirmation, new_id, now, pay_request, qr_request, start_simulator, Options,
    PARTNER_PASSWORD, POS_PASSWORD,
};
use common::process::{free_port, write_config, HubProcess};
use qrhub::simulator::{AdviceBehaviour, MessageKind};

async fn post(
    http: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let r = http
        .post(url)
        .basic_auth(user, Some(password))
        .json(body)
        .send()
        .await
        .expect("answer");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn new_code(http: &reqwest::Client, hub: &str) -> String {
    let (status, body) = post(
        http,
        &format!("{hub}/qr/v1/qrCodes"),
        "pos-1",
        POS_PASSWORD,
        &qr_request("pos-1", 500),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["tranId"].as_str().expect("tranId").to_owned()
}

async fn scan(http: &reqwest::Client, hub: &str, tran_id: &str) -> StatusCode {
    let body = json!({"id": new_id(), "time": now(), "partner": {"id": "wallet-1", "name": "W"}, "tranId": tran_id});
    post(
        http,
        &format!("{hub}/qr/v1/scans"),
        "wallet-1",
        PARTNER_PASSWORD,
        &body,
    )
    .await
    .0
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
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    let hub_a = HubProcess::start(&write_config(dir.path(), "a.toml", &toml, port_a), &a).await;
    let hub_b = HubProcess::start(&write_config(dir.path(), "b.toml", &toml, port_b), &b).await;
    let http = reqwest::Client::new();

    // A pay held by A, its scan sent to B.
    let tran_id = new_code(&http, &a).await;
    let request = pay_request("pos-1", &tran_id, 500);
    let started = Instant::now();
    let held = tokio::spawn({
        let (http, url, body) = (http.clone(), a.clone(), request.clone());
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
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(scan(&http, &b, &tran_id).await, StatusCode::ACCEPTED);
    let (status, answer) = held.await.expect("pay");
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "matched by a wake-up, not the window's end"
    );

    // An early scan at B waits for a pay that arrives at A.
    let tran_id = new_code(&http, &b).await;
    let early = tokio::spawn({
        let (http, url, t) = (http.clone(), b.clone(), tran_id.clone());
        async move { scan(&http, &url, &t).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let (status, answer) = post(
        &http,
        &format!("{a}/qr/v1/payments"),
        "pos-1",
        POS_PASSWORD,
        &pay_request("pos-1", &tran_id, 500),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(early.await.expect("scan"), StatusCode::ACCEPTED);
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "the early scan was woken by the pay"
    );

    // Either instance answers any advice, and a repeat at the other answers the same.
    let advice = confirmation(request["id"].as_str().expect("id"));
    let (status, echo_b) = post(
        &http,
        &format!("{b}/qr/v1/payments/confirmations"),
        "pos-1",
        POS_PASSWORD,
        &advice,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{echo_b}");
    let (status, echo_a) = post(
        &http,
        &format!("{a}/qr/v1/payments/confirmations"),
        "pos-1",
        POS_PASSWORD,
        &advice,
    )
    .await;
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
        let tran_id = new_code(&http, holder).await;
        let request = pay_request("pos-1", &tran_id, 100 + i);
        let held = tokio::spawn({
            let (http, url, body) = (http.clone(), holder.clone(), request.clone());
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
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(scan(&http, scanner, &tran_id).await, StatusCode::ACCEPTED);
        assert_eq!(held.await.expect("pay").0, StatusCode::CREATED);
        let (status, _) = post(
            &http,
            &format!("{scanner}/qr/v1/payments/confirmations"),
            "pos-1",
            POS_PASSWORD,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_a_second_instance() {
    let db = TestDb::sqlite().await;
    let sim = start_simulator().await;
    let toml = config_toml(&db.url, &sim.base_url(), &Options::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let first_url = format!("http://127.0.0.1:{port}");
    let first =
        HubProcess::start(&write_config(dir.path(), "a.toml", &toml, port), &first_url).await;
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
