//! Secrets never reach a log line or an answer: with every event of the process captured
//! (the hub, the in-process partner simulator and the libraries, down to TRACE), whole flows
//! run, including wrong, unknown and malformed credentials, calls to a partner with the hub's
//! Basic credentials, and the configuration itself printed; then no password, no
//! Authorization value, no base64 credentials and no argon2 hash may appear anywhere in the
//! logs or in any response body.

use base64::Engine;
use reqwest::header::AUTHORIZATION;
use serde_json::Value;
use std::time::Duration;

use crate::common::db::TestDb;
use crate::common::hub::{
    confirmation, new_id, now, pay_request, qr_request, reversal, Options, TestHub,
    PARTNER_PASSWORD, POS_PASSWORD, SIM_PASSWORD, SIM_USER,
};
use crate::common::logs;
use qrhub::config::Settings;
use qrhub::credentials::Credentials;
use qrhub::simulator::MessageKind;

const WRONG_PASSWORD: &str = "Wr0ng-but-close-pos-1-s3cret";
const GHOST_PASSWORD: &str = "gh0st-passw0rd-never-valid";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", b64(&format!("{user}:{password}")))
}

/// Every request's answer body, to be searched with the logs.
#[derive(Default)]
struct Bodies(Vec<String>);

impl Bodies {
    async fn send(
        &mut self,
        hub: &TestHub,
        path: &str,
        authorization: Option<&str>,
        body: &Value,
    ) -> (u16, Value) {
        let mut request = hub.http.post(format!("{}{path}", hub.url)).json(body);
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let response = request.send().await.expect("the hub answers");
        let status = response.status().as_u16();
        let mut text = format!("{:?}\n", response.headers());
        let body = response.text().await.expect("a body");
        text.push_str(&body);
        self.0.push(text);
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}

async fn secrets_stay_out_of_logs_and_answers(db: TestDb) {
    let logs = logs::capture("trace");
    let hub = TestHub::start(db, Options::default()).await;
    let mut bodies = Bodies::default();
    let pos = basic("pos-1", POS_PASSWORD);
    let wallet = basic("wallet-1", PARTNER_PASSWORD);

    // Refused callers: a wrong password, an unknown user, a partner's credentials on a POS
    // operation, headers that are not Basic but carry the password anyway.
    let refused = [
        basic("pos-1", WRONG_PASSWORD),
        basic("ghost", GHOST_PASSWORD),
        wallet.clone(),
        format!("pos-1:{POS_PASSWORD}"),
        format!("Bearer {}", b64(&format!("pos-1:{POS_PASSWORD}"))),
        format!("Basic {}", b64(POS_PASSWORD)),
    ];
    for authorization in &refused {
        let (status, body) = bodies
            .send(
                &hub,
                "/qr/v1/qrCodes",
                Some(authorization),
                &qr_request("pos-1", 100),
            )
            .await;
        assert_eq!(status, 401, "{body}");
    }

    // A whole payment: the hub calls the partner with its own Basic credentials for the pay,
    // the confirmation and a reversal (from the outbox).
    for advice in ["confirm", "reverse"] {
        let (status, code) = bodies
            .send(
                &hub,
                "/qr/v1/qrCodes",
                Some(&pos),
                &qr_request("pos-1", 2500),
            )
            .await;
        assert_eq!(status, 201, "{code}");
        let tran_id = code["tranId"].as_str().expect("tranId").to_owned();
        let pay = pay_request("pos-1", &tran_id, 2500);
        let request_id = pay["id"].as_str().expect("id").to_owned();
        let held = {
            let http = hub.http.clone();
            let url = format!("{}/qr/v1/payments", hub.url);
            let pos = pos.clone();
            tokio::spawn(async move {
                let response = http
                    .post(url)
                    .header(AUTHORIZATION, pos)
                    .json(&pay)
                    .send()
                    .await
                    .expect("the hub answers");
                (
                    response.status().as_u16(),
                    response.text().await.expect("a body"),
                )
            })
        };
        let scan = serde_json::json!({
            "id": new_id(),
            "time": now(),
            "partner": {"id": "wallet-1", "name": "Wallet wallet-1"},
            "tranId": tran_id,
            "partnerPaymentToken": format!("token-{tran_id}"),
        });
        let (status, body) = bodies
            .send(&hub, "/qr/v1/scans", Some(&wallet), &scan)
            .await;
        assert_eq!(status, 202, "{body}");
        let (status, text) = held.await.expect("the pay task");
        assert_eq!(status, 201, "{text}");
        bodies.0.push(text);
        let (path, body) = if advice == "confirm" {
            ("/qr/v1/payments/confirmations", confirmation(&request_id))
        } else {
            (
                "/qr/v1/payments/reversals",
                reversal(&request_id, "CANCELLED"),
            )
        };
        let (status, body) = bodies.send(&hub, path, Some(&pos), &body).await;
        assert_eq!(status, 202, "{body}");
    }
    // A scan as someone else, with a valid password: refused on its merits.
    let (status, body) = bodies
        .send(
            &hub,
            "/qr/v1/scans",
            Some(&basic("wallet-2", PARTNER_PASSWORD)),
            &serde_json::json!({
                "id": new_id(), "time": now(),
                "partner": {"id": "wallet-1", "name": "x"},
                "tranId": "0".repeat(32), "partnerPaymentToken": "t",
            }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    hub.wait_for_ledger(Duration::from_secs(5), |ledger| {
        let count = |kind| ledger.iter().filter(|e| e.kind == kind).count();
        (
            count(MessageKind::Pay),
            count(MessageKind::Confirmation),
            count(MessageKind::Reversal),
        ) == (2, 1, 1)
    })
    .await;
    // The partner did receive the hub's credentials, so they were really in play.
    assert!(hub
        .sim
        .ledger()
        .iter()
        .all(|e| e.username.as_deref() == Some(SIM_USER)));

    // What the process knows about itself, printed as a careless log line would: the
    // settings (partner passwords, hashes), the hub, the verified-credentials table.
    let settings = hub.hub.settings();
    let hashes: Vec<String> = settings
        .clients
        .iter()
        .map(|c| c.password_hash.as_str().to_owned())
        .chain(
            settings
                .partners
                .iter()
                .map(|p| p.password_hash.as_str().to_owned()),
        )
        .chain(
            settings
                .operators
                .iter()
                .map(|o| o.password_hash.as_str().to_owned()),
        )
        .collect();
    let credentials = Credentials::new(
        &[("pos-1".to_owned(), hashes[0].clone())],
        &[("wallet-1".to_owned(), hashes[hashes.len() - 1].clone())],
    );
    assert!(credentials.verify("pos-1", POS_PASSWORD).await.is_some());
    tracing::info!(?settings, "settings");
    tracing::info!(hub = ?hub.hub, "hub");
    tracing::info!(?credentials, "credentials");
    // A configuration error about a credential names the key, not the value.
    let bad = qrhub_config_with_plain_password();
    let error = Settings::from_toml(&bad).expect_err("a password is not a hash");
    tracing::error!(%error, ?error, "configuration refused");
    bodies.0.push(error.to_string());

    // Let the last advices' delivery logs land, then stop (shutdown logs too).
    tokio::time::sleep(Duration::from_millis(200)).await;
    hub.stop().await;

    let logs = logs.text();
    assert!(
        logs.contains("settings") && logs.contains("pos-1"),
        "the capture works"
    );
    let mut secrets: Vec<(String, String)> = Vec::new();
    let mut add = |what: &str, value: String| secrets.push((what.to_owned(), value));
    for (what, password) in [
        ("the POS password", POS_PASSWORD),
        ("the partner password", PARTNER_PASSWORD),
        ("the hub's password toward partners", SIM_PASSWORD),
        ("a wrong password", WRONG_PASSWORD),
        ("an unknown user's password", GHOST_PASSWORD),
    ] {
        add(what, password.to_owned());
        add(&format!("{what}, base64"), b64(password));
    }
    for (user, password) in [
        ("pos-1", POS_PASSWORD),
        ("wallet-1", PARTNER_PASSWORD),
        ("wallet-2", PARTNER_PASSWORD),
        ("pos-1", WRONG_PASSWORD),
        ("ghost", GHOST_PASSWORD),
        (SIM_USER, SIM_PASSWORD),
    ] {
        add("base64 credentials", b64(&format!("{user}:{password}")));
    }
    for value in &refused {
        add("an Authorization value", value.clone());
    }
    for hash in &hashes {
        add("an argon2 hash", hash.clone());
        // The digest part alone, and the salt.
        let mut parts = hash.rsplit('$');
        add(
            "an argon2 digest",
            parts.next().unwrap_or_default().to_owned(),
        );
        add(
            "an argon2 salt",
            parts.next().unwrap_or_default().to_owned(),
        );
    }
    add("an argon2 PHC prefix", "$argon2".to_owned());
    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        assert!(secret.len() >= 7, "{what} is long enough to search for");
        if let Some(at) = logs.find(secret.as_str()) {
            let start = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
            leaks.push(format!("{what} in the logs: {}", &logs[start..end]));
        }
        for body in &bodies.0 {
            if body.contains(secret.as_str()) {
                leaks.push(format!("{what} in an answer: {body}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leaks ({} bytes of logs searched):\n{}",
        leaks.len(),
        logs.len(),
        leaks.join("\n")
    );
}

fn qrhub_config_with_plain_password() -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[database]
url = "sqlite://data/x.db"
[hub]
institution_id = "qrhub"
qr_provider_id = "za.co.qrhub"
[[clients]]
id = "pos-1"
password_hash = "{POS_PASSWORD}"
"#
    )
}

const PAN: &str = "4111111111111111";
const MASKED_PAN: &str = "411111******1111";
const OTHER_PAN: &str = "5500005555555559";

/// Everything the store holds, as text: every row of every table on PostgreSQL, the database
/// file and its write-ahead log on SQLite.
async fn everything_stored(db_url: &str) -> String {
    if let Some(path) = db_url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-journal"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                all.extend(bytes);
            }
        }
        return String::from_utf8_lossy(&all).into_owned();
    }
    let pool = sqlx::PgPool::connect(db_url).await.expect("connect");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .fetch_all(&pool)
            .await
            .expect("tables");
    let mut all = String::new();
    for table in tables {
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT CAST(t AS text) FROM \"{table}\" t"))
                .fetch_all(&pool)
                .await
                .expect("rows");
        all.push_str(&rows.join("\n"));
    }
    pool.close().await;
    all
}

/// A partner that puts the customer's full card number in its approval, and a POS that sends
/// one in its confirmation's tenders... the number is found nowhere afterwards: not in the
/// database, not in the logs, not in what the POS gets (masked there too), and a string with a
/// NUL character (which PostgreSQL cannot store) is refused as a format error.
async fn card_numbers_are_masked_everywhere(db: TestDb) {
    let logs = logs::capture("trace");
    let partner = crate::common::partner::ScriptedPartner::start().await;
    let db_url = db.url.clone();
    let hub = TestHub::start(
        db,
        Options {
            partner_url: Some(partner.url.clone()),
            ..Options::default()
        },
    )
    .await;
    let tran_id = hub.new_code(1000).await;
    let request = pay_request("pos-1", &tran_id, 1000);
    let approval = serde_json::json!({
        "amounts": {"approvedAmount": {"amount": 1000, "currency": "710"}},
        "tenders": [{"tenderType": "CREDIT_CARD", "cardNumber": PAN,
                     "amount": {"amount": 1000, "currency": "710"}}],
    });
    partner.script(
        crate::common::partner::PAY,
        [crate::common::partner::Canned::with_body(
            201,
            approval.to_string(),
        )],
    );
    let held = hub.pay(request.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, _) = hub.scan("wallet-1", &tran_id, None).await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED);
    let (status, answer) = held.await.expect("pay");
    assert_eq!(status, reqwest::StatusCode::CREATED, "{answer}");
    assert_eq!(answer["tenders"][0]["cardNumber"], MASKED_PAN, "{answer}");

    // A POS that sends a card number of its own (a format error echoes what it refused).
    let mut bad = pay_request("pos-1", &hub.new_code(500).await, 500);
    bad["tenders"] = serde_json::json!([{"tenderType": "CREDIT_CARD", "cardNumber": PAN,
                                         "amount": {"amount": "x", "currency": "710"}}]);
    let (status, refused) = hub.pos("/qr/v1/payments", &bad).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{refused}");
    assert!(!refused.to_string().contains(PAN), "{refused}");

    // NUL in a string: a format error naming the field, not a 500.
    let mut nul = pay_request("pos-1", &hub.new_code(500).await, 500);
    nul["id"] = serde_json::json!(format!("{}\u{0}", new_id()));
    nul["originator"]["operatorId"] = serde_json::json!("op\u{0}1");
    let (status, refused) = hub.pos("/qr/v1/payments", &nul).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["errorType"], "FORMAT_ERROR", "{refused}");

    // Careless senders: a POS that writes the card number as a JSON number; a partner that
    // names it otherwise and writes it into free text; a partner that refuses the
    // confirmation with the number in a plain-text body (kept as the open item's error).
    let tran_id = hub.new_code(700).await;
    let mut numeric = pay_request("pos-1", &tran_id, 700);
    numeric["tenders"] = serde_json::json!([{"tenderType": "CREDIT_CARD",
        "cardNumber": 5500005555555559u64, "amount": {"amount": 700, "currency": "710"}}]);
    let careless = serde_json::json!({
        "amounts": {"approvedAmount": {"amount": 700, "currency": "710"}},
        "PAN": OTHER_PAN,
        "slipData": {"messageLines": ["Card 5500 0055 5555 5559 approved"]},
    });
    partner.script(
        crate::common::partner::PAY,
        [crate::common::partner::Canned::with_body(
            201,
            careless.to_string(),
        )],
    );
    partner.script(
        crate::common::partner::CONFIRM,
        [crate::common::partner::Canned::with_body(
            400,
            format!("refused card {OTHER_PAN}"),
        )],
    );
    let held = hub.pay(numeric.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, _) = hub.scan("wallet-1", &tran_id, None).await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED);
    let (status, answer) = held.await.expect("pay");
    assert_eq!(status, reqwest::StatusCode::CREATED, "{answer}");
    assert!(
        !answer.to_string().contains("5500 0055 5555 5559"),
        "{answer}"
    );
    let numeric_id = numeric["id"].as_str().unwrap_or_default();
    let (status, _) = hub
        .pos(
            "/qr/v1/payments/confirmations",
            &crate::common::hub::confirmation(numeric_id),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while !hub
        .outbox_of(&numeric)
        .await
        .iter()
        .any(|row| row.state == qrhub::store::OutboxState::Failed)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refusal is an open item"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Everything the hub wrote is flushed to the store with the next event batch.
    hub.hub.flush_events().await;
    let stored = everything_stored(&db_url).await;
    for (full, grouped) in [(OTHER_PAN, "5500 0055 5555 5559"), (PAN, PAN)] {
        assert!(!stored.contains(full), "{full} is in the database");
        assert!(!stored.contains(grouped), "{grouped} is in the database");
        assert!(!logs.text().contains(full), "{full} is in the logs");
    }
    assert!(stored.contains(MASKED_PAN), "the masked number is kept");
    assert!(
        !stored.contains(PAN),
        "a full card number is in the database"
    );
    assert!(
        !logs.text().contains(PAN),
        "a full card number is in the logs"
    );
    hub.stop().await;
}

both_stores!(
    secrets_stay_out_of_logs_and_answers,
    card_numbers_are_masked_everywhere
);
