//! The partner simulator over real HTTP on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::Engine;
use qrhub::model::schema;
use qrhub::model::ErrorType;
use qrhub::simulator::{
    AdviceBehaviour, DefaultBehaviour, MessageKind, Outcome, PayBehaviour, Simulator,
    SimulatorHandle, SimulatorSettings,
};
use serde_json::{json, Value};

// ---------- helpers ----------

fn settings() -> SimulatorSettings {
    SimulatorSettings {
        listen: "127.0.0.1:0".parse().expect("a socket address"),
        partner_id: "wallet-sim".into(),
        partner_name: "Sim Wallet".into(),
        ..SimulatorSettings::default()
    }
}

async fn start(settings: SimulatorSettings) -> SimulatorHandle {
    Simulator::start(settings)
        .await
        .expect("the simulator starts")
}

fn client() -> reqwest::Client {
    // reqwest is built without a TLS provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("an HTTP client")
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn tran_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn payment(tran_id: &str) -> Value {
    json!({
        "id": uuid(),
        "time": "2024-05-03T13:04:04.123+02:00",
        "originator": {
            "institution": {"id": "inst-1", "name": "Retailer"},
            "terminalId": "T0000001",
            "merchant": {
                "merchantType": "5411",
                "merchantId": "M00000000000001",
                "merchantName": {"name": "Corner Shop", "city": "Cape Town", "region": "WC", "country": "ZA"}
            }
        },
        "client": {"id": "pos-1", "name": "POS One"},
        "thirdPartyIdentifiers": [
            {"institutionId": "qrhub", "transactionIdentifier": "hub-ref-1"}
        ],
        "partner": {"id": "wallet-sim", "name": "Sim Wallet"},
        "amounts": {"requestAmount": {"amount": 12345, "currency": "710"}},
        "tranId": tran_id,
        "partnerPaymentToken": "token-abc"
    })
}

fn confirmation(request_id: &str) -> Value {
    json!({
        "id": uuid(),
        "requestId": request_id,
        "time": "2024-05-03T13:05:00Z",
        "thirdPartyIdentifiers": []
    })
}

fn reversal(request_id: &str) -> Value {
    json!({
        "id": uuid(),
        "requestId": request_id,
        "time": "2024-05-03T13:05:00Z",
        "thirdPartyIdentifiers": [],
        "reversalReason": "TIMEOUT"
    })
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

/// POSTs `body` to `{base}{path}` as the hub; returns the status and the JSON body.
async fn post(base: &str, path: &str, body: &Value) -> (u16, Value) {
    let response = client()
        .post(format!("{base}{path}"))
        .basic_auth("qrhub", Some("pw"))
        .json(body)
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn pay(sim: &SimulatorHandle, body: &Value) -> (u16, Value) {
    post(&sim.base_url(), "/qr/v1/payments", body).await
}

fn assert_error_detail(v: &Value, id: &str, error_type: &str) {
    assert!(
        schema::check(v, &schema::ERROR_DETAIL).is_empty(),
        "not an ErrorDetail: {v}"
    );
    assert_eq!(v["id"], id);
    assert_eq!(v["errorType"], error_type);
    let message = v["errorMessage"].as_str().expect("a message");
    assert!(message.chars().count() <= 40, "{message}");
}

/// The scans a stub hub received: the Basic user and the body of each.
type Scans = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A tiny hub that accepts scans and keeps what it got.
struct StubHub {
    url: String,
    scans: Scans,
}

async fn stub_hub() -> StubHub {
    let scans: Scans = Arc::default();
    let kept = Arc::clone(&scans);
    let app = axum::Router::new().route(
        "/qr/v1/scans",
        axum::routing::post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let kept = Arc::clone(&kept);
            async move {
                let user = basic_user(&headers);
                kept.lock().expect("not poisoned").push((user, body.0));
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    StubHub {
        url: format!("http://{addr}"),
        scans,
    }
}

fn basic_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split_once(':')?.0.to_owned())
}

/// What the server writes back to one raw HTTP/1.1 request, until it closes the connection.
async fn raw_post(addr: std::net::SocketAddr, path: &str, body: &Value) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("a connection");
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection stays open");
    answer
}

// ---------- pay ----------

#[tokio::test]
async fn approve_answers_201_with_a_payment_response_built_from_the_request() {
    // Arrange
    let sim = start(settings()).await;
    let tran = tran_id();
    let request = payment(&tran);

    // Act
    let (status, body) = pay(&sim, &request).await;

    // Assert
    assert_eq!(status, 201);
    assert!(
        schema::check(&body, &schema::PAYMENT_RESPONSE).is_empty(),
        "{body}"
    );
    for echoed in [
        "id",
        "time",
        "originator",
        "client",
        "tranId",
        "partnerPaymentToken",
    ] {
        assert_eq!(body[echoed], request[echoed], "{echoed}");
    }
    assert_eq!(
        body["partner"],
        json!({"id": "wallet-sim", "name": "Sim Wallet"})
    );
    let tpis = body["thirdPartyIdentifiers"].as_array().expect("an array");
    assert_eq!(tpis.len(), 2);
    assert_eq!(tpis[0], request["thirdPartyIdentifiers"][0]);
    assert_eq!(tpis[1]["institutionId"], "wallet-sim");
    let own_ref = tpis[1]["transactionIdentifier"]
        .as_str()
        .expect("a reference");
    assert!(uuid::Uuid::parse_str(own_ref).is_ok());
    let requested = &request["amounts"]["requestAmount"];
    assert_eq!(body["amounts"]["requestAmount"], *requested);
    assert_eq!(body["amounts"]["approvedAmount"], *requested);
    assert_eq!(
        body["tenders"],
        json!([{"amount": requested, "tenderType": "WALLET"}])
    );

    let ledger = sim.ledger();
    assert_eq!(ledger.len(), 1);
    let entry = &ledger[0];
    assert_eq!(entry.kind, MessageKind::Pay);
    assert_eq!(entry.message, request);
    assert_eq!(entry.id.as_deref(), Some(id_of(&request).as_str()));
    assert_eq!(entry.tran_id.as_deref(), Some(tran.as_str()));
    assert_eq!(entry.username.as_deref(), Some("qrhub"));
    assert_eq!(
        (entry.outcome, entry.status),
        (Outcome::Answered, Some(201))
    );
    sim.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn an_approval_without_a_partner_names_the_simulator_and_a_trailing_slash_is_accepted() {
    let sim = start(settings()).await;
    let mut request = payment(&tran_id());
    if let Some(m) = request.as_object_mut() {
        m.remove("partner");
        m.remove("thirdPartyIdentifiers");
    }

    let (status, body) = post(&sim.base_url(), "/qr/v1/payments/", &request).await;

    assert_eq!(status, 201);
    assert_eq!(
        body["partner"],
        json!({"id": "wallet-sim", "name": "Sim Wallet"})
    );
    assert_eq!(
        body["thirdPartyIdentifiers"].as_array().map(Vec::len),
        Some(1)
    );
    sim.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn a_decline_answers_its_status_with_an_error_detail() {
    let sim = start(settings()).await;
    sim.script_pay(PayBehaviour::Decline {
        status: 402,
        error_type: ErrorType::InsufficientFunds,
    });
    let tran = tran_id();
    let request = payment(&tran);

    let (status, body) = pay(&sim, &request).await;

    assert_eq!(status, 402);
    assert_error_detail(&body, &id_of(&request), "INSUFFICIENT_FUNDS");
    assert_eq!(body["tranId"], tran.as_str());
    assert_eq!(sim.ledger()[0].status, Some(402));
    sim.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn the_configured_default_decline_applies_when_nothing_is_scripted() {
    let sim = start(SimulatorSettings {
        behaviour: DefaultBehaviour::Decline,
        ..settings()
    })
    .await;
    let request = payment(&tran_id());

    let (status, body) = pay(&sim, &request).await;

    assert_eq!(status, 400);
    assert_error_detail(&body, &id_of(&request), "DECLINED_BY_PARTNER");
    sim.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn scripted_behaviours_are_consumed_in_order_and_per_tran_id_first() {
    let sim = start(settings()).await;
    let keyed = tran_id();
    sim.script_pay(PayBehaviour::decline(ErrorType::DoNotHonor));
    sim.script_pay(PayBehaviour::ServerError(504));
    sim.script_pay_for(&keyed, PayBehaviour::decline(ErrorType::InvalidAccount));

    let first = pay(&sim, &payment(&tran_id())).await;
    let keyed_answer = pay(&sim, &payment(&keyed)).await;
    let second = pay(&sim, &payment(&keyed)).await;
    let then_default = pay(&sim, &payment(&tran_id())).await;

    assert_eq!(
        (first.0, first.1["errorType"].clone()),
        (400, json!("DO_NOT_HONOR"))
    );
    assert_eq!(
        (keyed_answer.0, keyed_answer.1["errorType"].clone()),
        (400, json!("INVALID_ACCOUNT"))
    );
    assert_eq!(
        (second.0, second.1["errorType"].clone()),
        (504, json!("UPSTREAM_UNAVAILABLE"))
    );
    assert_eq!(then_default.0, 201);
    sim.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn a_delay_takes_at_least_its_time_and_then_behaves_as_told() {
    let sim = start(settings()).await;
    let by = Duration::from_millis(300);
    sim.script_pay(PayBehaviour::delayed(by, PayBehaviour::ServerError(500)));

    let started = Instant::now();
    let (status, body) = pay(&sim, &payment(&tran_id())).await;

    assert!(started.elapsed() >= by);
    assert_eq!(status, 500);
    assert_eq!(body["errorType"], "GENERAL_ERROR");
    sim.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn the_configured_latency_comes_before_every_answer() {
    let latency = Duration::from_millis(200);
    let sim = start(SimulatorSettings {
        latency,
        ..settings()
    })
    .await;

    let started = Instant::now();
    let (status, _) = pay(&sim, &payment(&tran_id())).await;

    assert!(started.elapsed() >= latency);
    assert_eq!(status, 201);
    sim.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn a_dropped_connection_is_a_transport_error_not_a_status() {
    let sim = start(settings()).await;
    sim.script_pay(PayBehaviour::DropConnection);

    let result = client()
        .post(format!("{}/qr/v1/payments", sim.base_url()))
        .json(&payment(&tran_id()))
        .timeout(Duration::from_secs(10))
        .send()
        .await;

    match result {
        Ok(response) => panic!("expected a transport error, got {}", response.status()),
        Err(e) => assert!(
            !e.is_timeout(),
            "the connection should end, not time out: {e}"
        ),
    }
    let ledger = sim.ledger();
    assert_eq!(
        (ledger[0].outcome, ledger[0].status),
        (Outcome::Dropped, None)
    );

    // On the wire: the connection closes without a byte of response.
    sim.script_pay(PayBehaviour::DropConnection);
    let raw = raw_post(sim.addr(), "/qr/v1/payments", &payment(&tran_id())).await;
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));

    // The simulator carries on.
    assert_eq!(pay(&sim, &payment(&tran_id())).await.0, 201);
    sim.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn a_hang_does_not_answer_and_shutdown_ends_it() {
    let sim = start(settings()).await;
    sim.script_pay(PayBehaviour::Hang);
    sim.script_pay(PayBehaviour::Hang);
    let url = format!("{}/qr/v1/payments", sim.base_url());

    // A caller with a short timeout gets no answer.
    let short = client()
        .post(&url)
        .json(&payment(&tran_id()))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(
        short.as_ref().is_err_and(reqwest::Error::is_timeout),
        "{short:?}"
    );

    // A patient caller is let go when the simulator stops.
    let patient = tokio::spawn({
        let url = url.clone();
        async move { client().post(&url).json(&payment(&tran_id())).send().await }
    });
    let arrived = tokio::time::timeout(Duration::from_secs(10), async {
        while sim.ledger().len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(arrived.is_ok(), "the second request reaches the simulator");
    assert_eq!(sim.ledger()[1].outcome, Outcome::Pending);
    sim.shutdown().await.expect("a clean shutdown");
    let ended = tokio::time::timeout(Duration::from_secs(10), patient)
        .await
        .expect("the hanging request ends after shutdown")
        .expect("the task completes");
    assert!(ended.is_err(), "no status after a hang: {ended:?}");
}

// ---------- advices ----------

#[tokio::test]
async fn fail_times_fails_n_deliveries_of_an_advice_then_accepts_it() {
    let sim = start(settings()).await;
    let request = payment(&tran_id());
    assert_eq!(pay(&sim, &request).await.0, 201);
    sim.script_advice(AdviceBehaviour::fail_times(2));
    let advice = confirmation(&id_of(&request));
    let path = "/qr/v1/payments/confirmations";

    let mut statuses = Vec::new();
    let mut last = Value::Null;
    for _ in 0..3 {
        let (status, body) = post(&sim.base_url(), path, &advice).await;
        statuses.push(status);
        last = body;
    }

    assert_eq!(statuses, [500, 500, 202]);
    assert_eq!(last, advice, "202 echoes the advice");
    assert_eq!(sim.deliveries(&id_of(&advice)), 3);
    let counted = sim
        .ledger()
        .iter()
        .filter(|e| e.kind == MessageKind::Confirmation && e.id.as_deref() == Some(&id_of(&advice)))
        .count();
    assert_eq!(counted, 3);
    assert_eq!(
        sim.ledger()[1].request_id.as_deref(),
        Some(id_of(&request).as_str())
    );
    sim.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn a_reversal_of_an_unknown_payment_is_404_and_of_a_known_one_202() {
    let sim = start(settings()).await;
    let path = "/qr/v1/payments/reversals";
    let request = payment(&tran_id());
    assert_eq!(pay(&sim, &request).await.0, 201);

    let unknown = reversal(&uuid());
    let (status, body) = post(&sim.base_url(), path, &unknown).await;
    assert_eq!(status, 404);
    assert_error_detail(&body, &id_of(&unknown), "UNABLE_TO_LOCATE_RECORD");
    assert_eq!(body["originalId"], unknown["requestId"]);

    let known = reversal(&id_of(&request));
    let (status, body) = post(&sim.base_url(), &format!("{path}/"), &known).await;
    assert_eq!((status, body), (202, known));

    // Scripting overrides the default.
    sim.script_advice(AdviceBehaviour::Accept);
    let (status, _) = post(&sim.base_url(), path, &reversal(&uuid())).await;
    assert_eq!(status, 202);
    sim.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn advice_scripts_can_be_keyed_by_the_tran_id_of_the_payment() {
    let sim = start(settings()).await;
    let tran = tran_id();
    let request = payment(&tran);
    assert_eq!(pay(&sim, &request).await.0, 201);
    sim.script_advice_for(&tran, AdviceBehaviour::Status(503));

    let other = post(
        &sim.base_url(),
        "/qr/v1/payments/confirmations",
        &confirmation(&uuid()),
    )
    .await;
    let keyed = post(
        &sim.base_url(),
        "/qr/v1/payments/confirmations",
        &confirmation(&id_of(&request)),
    )
    .await;

    assert_eq!(other.0, 202);
    assert_eq!(keyed.0, 503);
    assert_eq!(keyed.1["errorType"], "UPSTREAM_UNAVAILABLE");
    sim.shutdown().await.expect("a clean shutdown");
}

// ---------- input and credentials ----------

#[tokio::test]
async fn malformed_or_invalid_bodies_get_400_format_error() {
    let sim = start(settings()).await;
    let url = format!("{}/qr/v1/payments", sim.base_url());

    let response = client()
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["errorType"], "FORMAT_ERROR");

    let mut missing_tran = payment(&tran_id());
    if let Some(m) = missing_tran.as_object_mut() {
        m.remove("tranId");
    }
    let (status, body) = pay(&sim, &missing_tran).await;
    assert_eq!(status, 400);
    assert_error_detail(&body, &id_of(&missing_tran), "FORMAT_ERROR");
    assert_eq!(body["detailMessage"]["formatErrors"][0]["field"], "tranId");

    let ledger = sim.ledger();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[0].message, json!("{not json"));
    assert!(ledger.iter().all(|e| e.status == Some(400)));
    sim.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn configured_credentials_are_enforced() {
    let sim = start(SimulatorSettings {
        username: Some("qrhub".into()),
        password: Some("pw".into()),
        ..settings()
    })
    .await;
    let url = format!("{}/qr/v1/payments", sim.base_url());

    let none = client()
        .post(&url)
        .json(&payment(&tran_id()))
        .send()
        .await
        .expect("an answer");
    let wrong = client()
        .post(&url)
        .basic_auth("qrhub", Some("guess"))
        .json(&payment(&tran_id()))
        .send()
        .await
        .expect("an answer");
    let (right, _) = pay(&sim, &payment(&tran_id())).await;

    for response in [&none, &wrong] {
        assert_eq!(response.status(), 401);
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(challenge.starts_with("Basic"), "{challenge}");
    }
    assert_eq!(right, 201);
    let users: Vec<_> = sim
        .ledger()
        .into_iter()
        .map(|e| (e.username, e.status))
        .collect();
    assert_eq!(
        users,
        [
            (None, Some(401)),
            (Some("qrhub".to_owned()), Some(401)),
            (Some("qrhub".to_owned()), Some(201))
        ]
    );
    sim.shutdown().await.expect("a clean shutdown");
}

// ---------- scans ----------

#[tokio::test]
async fn send_scan_reaches_the_hub_as_the_partner() {
    let hub = stub_hub().await;
    let sim = start(SimulatorSettings {
        hub_url: format!("{}/", hub.url),
        hub_username: Some("wallet-sim".into()),
        hub_password: Some("partner-pw".into()),
        ..settings()
    })
    .await;
    let tran = tran_id();

    let status = sim
        .send_scan(&tran, Some("tok-1"))
        .await
        .expect("the hub answers");

    assert_eq!(status, 202);
    let scans = hub.scans.lock().expect("not poisoned").clone();
    assert_eq!(scans.len(), 1);
    let (user, body) = &scans[0];
    assert_eq!(user.as_deref(), Some("wallet-sim"));
    assert!(
        schema::check(body, &schema::SCAN_NOTIFICATION).is_empty(),
        "{body}"
    );
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap_or_default()).is_ok());
    assert_eq!(
        body["partner"],
        json!({"id": "wallet-sim", "name": "Sim Wallet"})
    );
    assert_eq!(body["tranId"], tran.as_str());
    assert_eq!(body["partnerPaymentToken"], "tok-1");
    sim.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn send_scan_to_an_absent_hub_is_an_error() {
    // A port that was free a moment ago.
    let free = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("http://{}", free.local_addr().expect("an address"));
    drop(free);
    let sim = start(SimulatorSettings {
        hub_url: url,
        ..settings()
    })
    .await;

    assert!(sim.send_scan(&tran_id(), None).await.is_err());
    sim.shutdown().await.expect("a clean shutdown");
}

// ---------- control endpoints ----------

#[tokio::test]
async fn the_http_control_endpoints_script_read_and_reset() {
    let hub = stub_hub().await;
    let sim = start(SimulatorSettings {
        hub_url: hub.url.clone(),
        ..settings()
    })
    .await;
    let base = sim.base_url();
    let http = client();
    let keyed = tran_id();

    // Script a keyed decline and a shared server error.
    let r = http
        .post(format!("{base}/simulator/script/pay"))
        .json(&json!({"kind":"decline","status":400,"errorType":"INSUFFICIENT_FUNDS","tranId": keyed}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status(), 204);
    let r = http
        .post(format!("{base}/simulator/script/pay"))
        .json(&json!({"kind":"serverError","status":504}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status(), 204);
    let r = http
        .post(format!("{base}/simulator/script/pay"))
        .json(&json!({"kind":"explode"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status(), 400);
    let r = http
        .post(format!("{base}/simulator/script/advice"))
        .json(&json!({"kind":"failTimes","n":1}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status(), 204);

    let other = pay(&sim, &payment(&tran_id())).await;
    let request = payment(&keyed);
    let declined = pay(&sim, &request).await;
    let advice = confirmation(&id_of(&request));
    let failed = post(&base, "/qr/v1/payments/confirmations", &advice).await;
    let accepted = post(&base, "/qr/v1/payments/confirmations", &advice).await;
    assert_eq!(other.0, 504);
    assert_eq!(declined.1["errorType"], "INSUFFICIENT_FUNDS");
    assert_eq!((failed.0, accepted.0), (500, 202));

    // The ledger over HTTP.
    let ledger: Vec<Value> = http
        .get(format!("{base}/simulator/ledger"))
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("a JSON list");
    assert_eq!(ledger.len(), 4);
    assert_eq!(ledger[0]["kind"], "pay");
    assert_eq!(ledger[0]["status"], 504);
    assert_eq!(ledger[2]["kind"], "confirmation");
    assert_eq!(ledger[2]["requestId"], request["id"]);
    assert_eq!(ledger[3]["message"], advice);

    // A scan through the simulator.
    let scan: Value = http
        .post(format!("{base}/simulator/scan"))
        .json(&json!({"tranId": keyed, "partnerPaymentToken": "tok"}))
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("JSON");
    assert_eq!(scan["status"], 202);
    let scans = hub.scans.lock().expect("not poisoned").clone();
    assert_eq!(scans[0].1["id"], scan["id"]);
    assert_eq!(scans[0].0.as_deref(), Some("wallet-sim"));

    // Resets.
    let r = http
        .delete(format!("{base}/simulator/ledger"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status(), 204);
    assert!(sim.ledger().is_empty());
    sim.script_pay(PayBehaviour::Hang);
    let r = http
        .delete(format!("{base}/simulator/script"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status(), 204);
    assert_eq!(pay(&sim, &payment(&tran_id())).await.0, 201);
    sim.shutdown().await.expect("a clean shutdown");
}

// ---------- partners that behave like real ones ----------

/// A client that never follows redirects, as the hub's own does not.
fn no_redirects() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// POSTs a control command; returns its status.
async fn control(base: &str, path: &str, body: &Value) -> u16 {
    client()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .expect("an answer")
        .status()
        .as_u16()
}

/// POSTs `body` as the Basic user `user`; status, headers and raw body.
async fn post_as(base: &str, path: &str, user: &str, body: &Value) -> (u16, HeaderMap, String) {
    let response = no_redirects()
        .post(format!("{base}{path}"))
        .basic_auth(user, Some("pw"))
        .json(body)
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    (status, headers, text)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

#[tokio::test]
async fn any_status_with_retry_after_or_location_can_be_scripted_for_pay_and_advices() {
    let sim = start(settings()).await;
    let base = sim.base_url();
    for command in [
        json!({"kind":"respond","status":429,"retryAfter":"7"}),
        json!({"kind":"respond","status":307,"location":"http://elsewhere.example/qr/v1/payments"}),
        json!({"kind":"respond","status":418}),
        json!({"kind":"respond","status":202}),
        json!({"kind":"respond","status":502}),
    ] {
        assert_eq!(
            control(&base, "/simulator/script/pay", &command).await,
            204,
            "{command}"
        );
    }
    assert_eq!(
        control(
            &base,
            "/simulator/script/advice",
            &json!({"kind":"respond","status":503,"retryAfter":"1"})
        )
        .await,
        204
    );
    assert_eq!(
        control(
            &base,
            "/simulator/script/advice",
            &json!({"kind":"respond","status":301,"location":"/moved"})
        )
        .await,
        204
    );
    // A header value that cannot be sent is refused when scripted.
    assert_eq!(
        control(
            &base,
            "/simulator/script/pay",
            &json!({"kind":"respond","status":503,"retryAfter":"a\nb"})
        )
        .await,
        400
    );

    let request = payment(&tran_id());
    let id = id_of(&request);
    let (status, headers, body) = post_as(&base, "/qr/v1/payments", "qrhub", &request).await;
    assert_eq!((status, header(&headers, "retry-after")), (429, Some("7")));
    assert_error_detail(&json_of(&body), &id, "GENERAL_ERROR");

    let (status, headers, _) =
        post_as(&base, "/qr/v1/payments", "qrhub", &payment(&tran_id())).await;
    assert_eq!(
        (status, header(&headers, "location")),
        (307, Some("http://elsewhere.example/qr/v1/payments"))
    );

    let (status, _, body) = post_as(&base, "/qr/v1/payments", "qrhub", &payment(&tran_id())).await;
    assert_eq!(status, 418);
    assert_eq!(json_of(&body)["errorType"], "GENERAL_ERROR");

    // A scripted 2xx is an approval, with that status.
    let approved = payment(&tran_id());
    let (status, _, body) = post_as(&base, "/qr/v1/payments", "qrhub", &approved).await;
    assert_eq!(status, 202);
    let body = json_of(&body);
    assert!(
        schema::check(&body, &schema::PAYMENT_RESPONSE).is_empty(),
        "{body}"
    );
    assert_eq!(
        body["amounts"]["approvedAmount"],
        approved["amounts"]["requestAmount"]
    );

    let (status, _, body) = post_as(&base, "/qr/v1/payments", "qrhub", &payment(&tran_id())).await;
    assert_eq!(status, 502);
    assert_eq!(json_of(&body)["errorType"], "GENERAL_ERROR");

    let advice = confirmation(&id_of(&approved));
    let (status, headers, body) =
        post_as(&base, "/qr/v1/payments/confirmations", "qrhub", &advice).await;
    assert_eq!((status, header(&headers, "retry-after")), (503, Some("1")));
    assert_error_detail(&json_of(&body), &id_of(&advice), "UPSTREAM_UNAVAILABLE");
    let (status, headers, _) =
        post_as(&base, "/qr/v1/payments/confirmations", "qrhub", &advice).await;
    assert_eq!(
        (status, header(&headers, "location")),
        (301, Some("/moved"))
    );
    let (status, _, body) = post_as(&base, "/qr/v1/payments/confirmations", "qrhub", &advice).await;
    assert_eq!((status, json_of(&body)), (202, advice));

    let statuses: Vec<Option<u16>> = sim.ledger().iter().map(|e| e.status).collect();
    assert_eq!(statuses, [429, 307, 418, 202, 502, 503, 301, 202].map(Some));
    sim.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn lenient_partial_and_non_json_approvals_can_be_scripted() {
    let sim = start(settings()).await;
    let base = sim.base_url();
    for command in [
        json!({"kind":"lenientApprove"}),
        json!({"kind":"partialApprove","amount":100}),
        json!({"kind":"nonJsonApprove","status":200}),
    ] {
        assert_eq!(
            control(&base, "/simulator/script/pay", &command).await,
            204,
            "{command}"
        );
    }
    let mut request = payment(&tran_id());
    request["slipData"] = json!({"issuerReference": "REF12345"});

    // Lenient: a 200 whose JSON a real wallet would send, but not schema-exact.
    let (status, _, body) = post_as(&base, "/qr/v1/payments", "qrhub", &request).await;
    assert_eq!(status, 200);
    let lenient = json_of(&body);
    assert!(
        lenient.get("originator").is_none() && lenient.get("client").is_none(),
        "{lenient}"
    );
    assert_eq!(lenient["slipData"]["issuerReference"], "ref12345");
    assert!(
        lenient["partner"]["name"]
            .as_str()
            .is_some_and(|n| n.chars().count() > 40),
        "{lenient}"
    );
    assert!(lenient.get("vendorData").is_some(), "{lenient}");
    assert!(!schema::check(&lenient, &schema::PAYMENT_RESPONSE).is_empty());
    assert_eq!(
        lenient["amounts"]["approvedAmount"],
        request["amounts"]["requestAmount"]
    );

    // Partial: approved for another amount than asked.
    let (status, _, body) = post_as(&base, "/qr/v1/payments", "qrhub", &payment(&tran_id())).await;
    assert_eq!(status, 201);
    let partial = json_of(&body);
    assert!(
        schema::check(&partial, &schema::PAYMENT_RESPONSE).is_empty(),
        "{partial}"
    );
    assert_eq!(
        partial["amounts"]["approvedAmount"],
        json!({"amount": 100, "currency": "710"})
    );
    assert_eq!(partial["amounts"]["requestAmount"]["amount"], 12345);

    // A 2xx with a body that is not JSON.
    let (status, headers, body) =
        post_as(&base, "/qr/v1/payments", "qrhub", &payment(&tran_id())).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Value>(&body).is_err(), "{body}");
    assert!(header(&headers, "content-type").is_some_and(|c| !c.contains("json")));

    // The ledger says what each approval was for (over HTTP, as the chaos checker reads it).
    let ledger: Vec<Value> = client()
        .get(format!("{base}/simulator/ledger"))
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("a JSON list");
    let approved: Vec<&Value> = ledger.iter().map(|e| &e["approvedAmount"]).collect();
    assert_eq!(
        approved,
        [
            &json!({"amount": 12345, "currency": "710"}),
            &json!({"amount": 100, "currency": "710"}),
            &json!({"amount": 12345, "currency": "710"}),
        ]
    );
    sim.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn an_outage_answers_every_call_with_its_status_until_it_ends() {
    let sim = start(settings()).await;
    let base = sim.base_url();
    // Scripted behaviours wait: the outage comes first.
    sim.script_pay(PayBehaviour::decline(ErrorType::DoNotHonor));
    let outage = json!({"for":"10m","kind":"respond","status":503,"retryAfter":"120"});
    assert_eq!(control(&base, "/simulator/outage", &outage).await, 204);
    let request = payment(&tran_id());
    let (status, headers, body) = post_as(&base, "/qr/v1/payments", "qrhub", &request).await;
    assert_eq!(
        (status, header(&headers, "retry-after")),
        (503, Some("120"))
    );
    assert_error_detail(&json_of(&body), &id_of(&request), "UPSTREAM_UNAVAILABLE");
    let advice = reversal(&id_of(&request));
    let (status, _, _) = post_as(&base, "/qr/v1/payments/reversals", "qrhub", &advice).await;
    assert_eq!(status, 503);

    // Ended by hand.
    let r = client()
        .delete(format!("{base}/simulator/outage"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status(), 204);
    let (status, _, body) = post_as(&base, "/qr/v1/payments", "qrhub", &payment(&tran_id())).await;
    assert_eq!(
        (status, json_of(&body)["errorType"].clone()),
        (400, json!("DO_NOT_HONOR"))
    );

    // Ended by its time.
    let short = json!({"for":"300ms","kind":"respond","status":502});
    assert_eq!(control(&base, "/simulator/outage", &short).await, 204);
    assert_eq!(pay(&sim, &payment(&tran_id())).await.0, 502);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(pay(&sim, &payment(&tran_id())).await.0, 201);
    sim.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn a_refusing_outage_refuses_connections_then_serves_again_on_the_same_address() {
    let sim = start(settings()).await;
    let base = sim.base_url();
    // The control endpoints share the port, so this outage ends by its time.
    let outage = json!({"for":"2s","kind":"refuse"});
    assert_eq!(control(&base, "/simulator/outage", &outage).await, 204);
    // A new connection is refused: nothing was sent.
    let mut refused = false;
    for _ in 0..50 {
        match no_redirects()
            .post(format!("{base}/qr/v1/payments"))
            .json(&payment(&tran_id()))
            .send()
            .await
        {
            Err(e) if e.is_connect() => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(refused, "a connection was made during the outage");
    let mut served = None;
    for _ in 0..300 {
        if let Ok(r) = no_redirects()
            .post(format!("{base}/qr/v1/payments"))
            .basic_auth("qrhub", Some("pw"))
            .json(&payment(&tran_id()))
            .send()
            .await
        {
            served = Some(r.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(served, Some(201));
    sim.shutdown().await.expect("a clean shutdown");
}

fn strict_settings() -> SimulatorSettings {
    serde_json::from_value(json!({
        "listen": "127.0.0.1:0",
        "partner_id": "wallet-sim",
        "partner_name": "Sim Wallet",
        "strict": true
    }))
    .expect("strict is a setting")
}

#[tokio::test]
async fn strict_mode_refuses_and_counts_a_basic_user_other_than_client_id_and_schema_breaches() {
    let sim = start(strict_settings()).await;
    let base = sim.base_url();
    // The interface's rule: the Basic user is the client's id.
    let request = payment(&tran_id());
    let (status, _, body) = post_as(&base, "/qr/v1/payments", "qrhub", &request).await;
    assert_eq!(status, 400);
    assert_error_detail(&json_of(&body), &id_of(&request), "FORMAT_ERROR");
    let (status, _, _) = post_as(&base, "/qr/v1/payments", "pos-1", &payment(&tran_id())).await;
    assert_eq!(status, 201);
    // A message that breaks the published schema.
    let mut bad = confirmation(&id_of(&request));
    bad["time"] = json!("yesterday");
    let (status, _, body) = post_as(&base, "/qr/v1/payments/confirmations", "pos-1", &bad).await;
    assert_eq!(status, 400);
    assert_error_detail(&json_of(&body), &id_of(&bad), "FORMAT_ERROR");

    let violations: Vec<Value> = client()
        .get(format!("{base}/simulator/violations"))
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("a JSON list");
    assert_eq!(violations.len(), 2, "{violations:#?}");
    assert_eq!(violations[0]["rule"], "basicUser");
    assert_eq!(violations[0]["id"], request["id"]);
    assert_eq!(violations[1]["rule"], "schema");
    assert_eq!(violations[1]["kind"], "confirmation");
    sim.shutdown().await.expect("a clean shutdown");

    // Not strict: the same pay is approved and nothing is counted.
    let lax = start(settings()).await;
    assert_eq!(pay(&lax, &payment(&tran_id())).await.0, 201);
    let violations: Vec<Value> = client()
        .get(format!("{}/simulator/violations", lax.base_url()))
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("a JSON list");
    assert!(violations.is_empty());
    lax.shutdown().await.expect("a clean shutdown");
}
