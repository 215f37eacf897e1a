//! Changes without a restart: a hub process re-reads its configuration file on SIGHUP (the
//! real signal, sent with `kill -HUP`) and puts its clients, partners, operators and fee
//! schedules in force; an invalid file keeps the configuration in force.

use reqwest::StatusCode;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

use crate::common::db::TestDb;
use crate::common::hub::{
    config_toml, confirmation, pay_request, qr_request, start_simulator, Client, Options,
    POS_PASSWORD,
};
use crate::common::process::{free_port, write_config, HubProcess};
use qrhub::simulator::{MessageKind, SimulatorHandle};
use qrhub::store::OutboxState;

/// A hub process, its configuration file, and the partner simulator it calls.
struct Reloadable {
    _dir: tempfile::TempDir,
    path: PathBuf,
    port: u16,
    /// The configuration it started with.
    toml: String,
    hub: Client,
    sim: SimulatorHandle,
    process: HubProcess,
    db: TestDb,
}

impl Reloadable {
    async fn start(options: Options) -> Self {
        let db = TestDb::postgres().await;
        let sim = start_simulator().await;
        let port = free_port();
        let hub = Client::new(format!("http://127.0.0.1:{port}"));
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = config_toml(&db.url, &sim.base_url(), &options);
        let path = write_config(dir.path(), "qrhub.toml", &toml, port);
        let process = HubProcess::start(&path, &hub.url).await;
        Self {
            _dir: dir,
            path,
            port,
            toml,
            hub,
            sim,
            process,
            db,
        }
    }

    /// Replaces the configuration file (the hub reads it on the next SIGHUP).
    fn write(&self, toml: &str) {
        let dir = self.path.parent().expect("a directory");
        write_config(dir, "qrhub.toml", toml, self.port);
    }

    /// Sends the hub process SIGHUP, as an operator's `kill -HUP` or `systemctl reload`.
    fn hangup(&self) {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.process.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -HUP failed");
    }

    /// The value of an unlabelled series on the hub's `/metrics` (0 when absent).
    async fn metric(&self, name: &str) -> f64 {
        let text = self
            .hub
            .http
            .get(format!("{}/metrics", self.hub.url))
            .send()
            .await
            .expect("the hub answers")
            .text()
            .await
            .expect("a body");
        text.lines()
            .find_map(|line| {
                let (series, value) = line.split_once(' ')?;
                (series == name).then(|| value.trim().parse::<f64>().ok())?
            })
            .unwrap_or(0.0)
    }

    /// Waits until `name` reaches `at_least` (the reload has run).
    async fn wait_metric(&self, name: &str, at_least: f64) {
        for _ in 0..200 {
            if self.metric(name).await >= at_least {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{name} never reached {at_least}");
    }

    async fn post_as(&self, user: &str, password: &str, path: &str, body: &Value) -> StatusCode {
        self.hub
            .http
            .post(format!("{}{path}", self.hub.url))
            .basic_auth(user, Some(password))
            .json(body)
            .send()
            .await
            .expect("the hub answers")
            .status()
    }

    async fn stop(self) {
        drop(self.process);
        let _ = self.sim.shutdown().await;
        self.db.cleanup().await;
    }
}

/// `toml` with a third POS client, `pos-3`, whose password is `password`.
fn with_client(toml: &str, id: &str, password: &str) -> String {
    let hash = qrhub::credentials::hash_password(password).expect("hash");
    format!("{toml}\n[[clients]]\nid = \"{id}\"\npassword_hash = \"{hash}\"\n")
}

/// `toml` with caller `id`'s password hash (the first after its id) replaced by one of
/// `password`.
fn with_password(toml: &str, id: &str, password: &str) -> String {
    let hash = qrhub::credentials::hash_password(password).expect("hash");
    let start = toml
        .find(&format!("id = \"{id}\"\n"))
        .expect("the caller is configured");
    let key = "password_hash = \"";
    let hash_start = start + toml[start..].find(key).expect("a hash") + key.len();
    let hash_end = hash_start + toml[hash_start..].find('"').expect("a closing quote");
    format!("{}{hash}{}", &toml[..hash_start], &toml[hash_end..])
}

/// `toml` without partner `id`'s `[[partners]]` table.
fn without_partner(toml: &str, id: &str) -> String {
    let start = toml
        .find(&format!("[[partners]]\nid = \"{id}\""))
        .expect("the partner is configured");
    let end = toml[start + 1..]
        .find("\n[[")
        .map_or(toml.len(), |i| start + 1 + i + 1);
    format!("{}{}", &toml[..start], &toml[end..])
}

const RELOADS: &str = "qrhub_config_reloads_total";
const FAILURES: &str = "qrhub_config_reload_failures_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sighup_adds_a_client_whose_next_request_succeeds() {
    let hub = Reloadable::start(Options::default()).await;
    let code = |client: &str| qr_request(client, 500);
    assert_eq!(
        hub.post_as("pos-3", "pos-3-new", "/qr/v1/qrCodes", &code("pos-3"))
            .await,
        StatusCode::UNAUTHORIZED,
        "not configured yet"
    );
    let last_before = hub
        .metric("qrhub_config_last_reload_success_timestamp_seconds")
        .await;
    assert!(last_before > 0.0, "the start counts as the last load");

    hub.write(&with_client(&hub.toml, "pos-3", "pos-3-new"));
    hub.hangup();
    hub.wait_metric(RELOADS, 1.0).await;

    assert_eq!(
        hub.post_as("pos-3", "pos-3-new", "/qr/v1/qrCodes", &code("pos-3"))
            .await,
        StatusCode::CREATED,
        "the new client's first request"
    );
    assert_eq!(hub.metric(FAILURES).await, 0.0);
    assert!(
        hub.metric("qrhub_config_last_reload_success_timestamp_seconds")
            .await
            >= last_before
    );
    // The clients already there carry on.
    assert_eq!(
        hub.post_as("pos-1", POS_PASSWORD, "/qr/v1/qrCodes", &code("pos-1"))
            .await,
        StatusCode::CREATED
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_password_rotated_while_a_pay_is_held_does_not_fail_the_pay() {
    let hub = Reloadable::start(Options {
        pay_deadline: Duration::from_secs(15),
        ..Options::default()
    })
    .await;
    let tran_id = hub.hub.new_code(700).await;
    let request = pay_request("pos-1", &tran_id, 700);
    let held = hub.hub.spawn_pay(&request);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished(), "the pay is held, waiting for its scan");

    hub.write(&with_password(&hub.toml, "pos-1", "pos-1-rotated"));
    hub.hangup();
    hub.wait_metric(RELOADS, 1.0).await;

    let code = qr_request("pos-1", 100);
    assert_eq!(
        hub.post_as("pos-1", POS_PASSWORD, "/qr/v1/qrCodes", &code)
            .await,
        StatusCode::UNAUTHORIZED,
        "the old password stops working"
    );
    assert_eq!(
        hub.post_as("pos-1", "pos-1-rotated", "/qr/v1/qrCodes", &code)
            .await,
        StatusCode::CREATED,
        "the new one works"
    );
    assert!(!held.is_finished(), "the held pay is still held");
    assert_eq!(hub.hub.scan(&tran_id).await, StatusCode::ACCEPTED);
    let (status, answer) = held.await.expect("task").expect("the pay is answered");
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    // Its advice comes with the new password.
    let request_id = request["id"].as_str().expect("id");
    assert_eq!(
        hub.post_as(
            "pos-1",
            "pos-1-rotated",
            "/qr/v1/payments/confirmations",
            &confirmation(request_id)
        )
        .await,
        StatusCode::ACCEPTED
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invalid_file_keeps_the_configuration_in_force() {
    let hub = Reloadable::start(Options::default()).await;
    let code = |client: &str| qr_request(client, 500);
    // A file that adds pos-3 but also names a partner nobody configured in a fee schedule.
    let invalid = format!(
        "{}\n[[fees]]\npartner = \"nobody\"\ncurrency = \"710\"\npercent_bps = 100\n",
        with_client(&hub.toml, "pos-3", "pos-3-new")
    );
    hub.write(&invalid);
    hub.hangup();
    hub.wait_metric(FAILURES, 1.0).await;
    assert_eq!(hub.metric(RELOADS).await, 0.0);
    assert_eq!(
        hub.post_as("pos-3", "pos-3-new", "/qr/v1/qrCodes", &code("pos-3"))
            .await,
        StatusCode::UNAUTHORIZED,
        "nothing of the invalid file is in force"
    );
    // Nor of a file that is not TOML at all.
    hub.write(&format!("{}\n[[clients]\n", hub.toml));
    hub.hangup();
    hub.wait_metric(FAILURES, 2.0).await;
    assert_eq!(
        hub.post_as("pos-1", POS_PASSWORD, "/qr/v1/qrCodes", &code("pos-1"))
            .await,
        StatusCode::CREATED,
        "the configuration in force serves on"
    );
    // Mended, the next SIGHUP applies it.
    hub.write(&with_client(&hub.toml, "pos-3", "pos-3-new"));
    hub.hangup();
    hub.wait_metric(RELOADS, 1.0).await;
    assert_eq!(
        hub.post_as("pos-3", "pos-3-new", "/qr/v1/qrCodes", &code("pos-3"))
            .await,
        StatusCode::CREATED
    );
    hub.stop().await;
}

/// A partner removed while it owes an advice: the advice stays queued (not refused: the
/// partner never saw it), visible with why, and goes out when the partner is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_advice_for_a_removed_partner_waits_until_it_is_back() {
    let hub = Reloadable::start(Options::default()).await;
    let tran_id = hub.hub.new_code(900).await;
    let request = pay_request("pos-1", &tran_id, 900);
    let held = hub.hub.spawn_pay(&request);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(hub.hub.scan(&tran_id).await, StatusCode::ACCEPTED);
    assert_eq!(
        held.await.expect("task").expect("answer").0,
        StatusCode::CREATED
    );

    hub.write(&without_partner(&hub.toml, "wallet-1"));
    hub.hangup();
    hub.wait_metric(RELOADS, 1.0).await;
    // The removed partner can no longer scan.
    let other = hub.hub.new_code(100).await;
    assert_eq!(hub.hub.scan(&other).await, StatusCode::UNAUTHORIZED);

    let request_id = request["id"].as_str().expect("id");
    let (status, _) = hub
        .hub
        .pos("/qr/v1/payments/confirmations", &confirmation(request_id))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let store = hub.db.store().await;
    let payment = store
        .payment_by_message("pos-1", request_id)
        .await
        .expect("store")
        .expect("stored");
    // Tried and kept, several times over (the test's max backoff is 200 ms).
    let mut waiting = None;
    for _ in 0..100 {
        let rows = store.outbox_for_payment(payment.id).await.expect("store");
        assert_eq!(rows.len(), 1, "{rows:?}");
        if rows[0].attempts >= 3 {
            waiting = Some(rows[0].clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let row = waiting.expect("the advice was tried again and again");
    assert_eq!(row.state, OutboxState::Pending, "{row:?}");
    assert!(
        row.last_error
            .as_deref()
            .is_some_and(|e| e.contains("not configured")),
        "{row:?}"
    );
    assert!(!hub
        .sim
        .ledger()
        .iter()
        .any(|e| e.kind == MessageKind::Confirmation));

    // The partner is configured again: the advice goes out.
    hub.write(&hub.toml);
    hub.hangup();
    hub.wait_metric(RELOADS, 2.0).await;
    let mut delivered = false;
    for _ in 0..100 {
        let rows = store.outbox_for_payment(payment.id).await.expect("store");
        if rows[0].state == OutboxState::Delivered {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered, "the advice reached the partner once it was back");
    assert!(hub
        .sim
        .ledger()
        .iter()
        .any(|e| e.kind == MessageKind::Confirmation));
    drop(store);
    hub.stop().await;
}

/// The published-password check runs on a reload as at start: a hub beyond loopback with
/// passwords of its own refuses a file that adds a published one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_that_would_publish_a_password_beyond_loopback_is_refused() {
    let db = TestDb::postgres().await;
    let sim = start_simulator().await;
    let port = free_port();
    let own = |toml: &str| {
        let mut toml = with_password(toml, "pos-1", "pos-1-own-password");
        toml = with_password(&toml, "pos-2", "pos-2-own-password");
        toml = with_password(&toml, "ops", "ops-own-password");
        for partner in ["wallet-1", "wallet-2"] {
            toml = with_password(&toml, partner, "wallet-own-password");
        }
        toml
    };
    let toml = own(&config_toml(&db.url, &sim.base_url(), &Options::default())).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"0.0.0.0:{port}\""),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("qrhub.toml");
    std::fs::write(&path, &toml).expect("written");
    let url = format!("http://127.0.0.1:{port}");
    let process = HubProcess::start(&path, &url).await;
    let hub = Reloadable {
        _dir: dir,
        path,
        port,
        toml: toml.clone(),
        hub: Client::new(url),
        sim,
        process,
        db,
    };
    // pos-3 with the password the README publishes for pos-1.
    let published = format!(
        "{toml}\n[[clients]]\nid = \"pos-3\"\npassword_hash = \"{}\"\n",
        qrhub::credentials::hash_password(POS_PASSWORD).expect("hash")
    );
    std::fs::write(&hub.path, &published).expect("written");
    hub.hangup();
    hub.wait_metric(FAILURES, 1.0).await;
    assert_eq!(hub.metric(RELOADS).await, 0.0);
    assert_eq!(
        hub.post_as(
            "pos-3",
            POS_PASSWORD,
            "/qr/v1/qrCodes",
            &qr_request("pos-3", 100)
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    hub.stop().await;
}
