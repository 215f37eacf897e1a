//! A real hub on a random port, on a fresh database, with a real partner simulator, for
//! tests that talk HTTP to it exactly as a POS and a partner would.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use qrhub::app::App;
use qrhub::clock::SystemClock;
use qrhub::config::Settings;
use qrhub::service::Hub;
use qrhub::simulator::{Simulator, SimulatorHandle, SimulatorSettings};

use super::db::TestDb;

/// The demo hashes of `config/default.toml`: every test client's password is `pos-1-secret`,
/// every test partner's `wallet-1-secret`.
pub const POS_PASSWORD: &str = "pos-1-secret";
pub const PARTNER_PASSWORD: &str = "wallet-1-secret";
const POS_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$u+0poWW1tJttUmYHmAaNFA$74ABwh7BNcelMD/yRAe9k0ABnc8OYnm5NXPjjlCfLFE";
const PARTNER_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$KnVYlCJxFFqIi9/4vct9hg$BT1La5hCFiOO6j7g0gsW6PxWl9ZsuJHmKZzq+CwW9kM";
/// The back-office operator of every test hub: `ops` / `ops-secret`.
pub const OPERATOR: &str = "ops";
pub const OPERATOR_PASSWORD: &str = "ops-secret";
const OPERATOR_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$6nzUfvDiTBV6YoXiWlWR7w$gq8rR5vKp3YS8zzAa0aVwnDO1sJXGD1p2+M/inIWFsk";
/// What the hub presents to the simulator.
pub const SIM_USER: &str = "qrhub";
/// The hub's institution id in the identifiers it adds: not the same as [`SIM_USER`], so a
/// test can tell the hub's client id toward a partner from its institution.
pub const HUB_INSTITUTION: &str = "hub-institution";
pub const SIM_PASSWORD: &str = "hub-to-partner";

/// Short windows so that time-dependent flows finish in a second or two.
#[derive(Debug, Clone)]
pub struct Options {
    pub pay_deadline: Duration,
    pub partner_timeout: Duration,
    pub early_scan_grace: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub outbox_expiry: Duration,
    /// More TOML appended to the configuration (e.g. `[server]` keys are not allowed twice,
    /// so this is for whole sections the defaults here do not write).
    pub extra: String,
    pub disabled_operations: Vec<String>,
    /// Where the hub thinks the partners are (default: the simulator).
    pub partner_url: Option<String>,
    /// More keys of client `pos-1` (e.g. `unadvised_approvals = "reverse"`).
    pub pos_1_extra: String,
    /// The hub's clock (default: the system's).
    pub clock: Option<qrhub::clock::SharedClock>,
    /// More TOML at the end of a partner's `[[partners]]` table, by partner id (e.g. its
    /// `[partners.qr_template]`).
    pub partner_extra: Vec<(String, String)>,
    /// More keys of the `[server]` section (one per line).
    pub server: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            pay_deadline: Duration::from_millis(2500),
            partner_timeout: Duration::from_millis(1000),
            early_scan_grace: Duration::from_millis(500),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            outbox_expiry: Duration::from_secs(3600),
            extra: String::new(),
            disabled_operations: Vec::new(),
            partner_url: None,
            pos_1_extra: String::new(),
            clock: None,
            partner_extra: Vec::new(),
            server: String::new(),
        }
    }
}

pub fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The configuration a test hub runs with: clients pos-1 and pos-2, partners wallet-1 and
/// wallet-2, both served by the one simulator at `partner_url`.
pub fn config_toml(database_url: &str, partner_url: &str, o: &Options) -> String {
    let disabled: Vec<String> = o
        .disabled_operations
        .iter()
        .map(|s| format!("{s:?}"))
        .collect();
    let partner = |id: &str| {
        let extra: Vec<&str> = o
            .partner_extra
            .iter()
            .filter(|(partner, _)| partner == id)
            .map(|(_, toml)| toml.as_str())
            .collect();
        format!(
            r#"
[[partners]]
id = "{id}"
name = "Wallet {id}"
password_hash = "{PARTNER_HASH}"
base_url = "{partner_url}"
username = "{SIM_USER}"
password = "{SIM_PASSWORD}"
timeout = "{timeout}"
{extra}
"#,
            timeout = ms(o.partner_timeout),
            extra = extra.join("\n"),
        )
    };
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_grace = "3s"
disabled_operations = [{disabled}]
{server}
[database]
url = "{database_url}"
max_connections = 8
[hub]
institution_id = "{HUB_INSTITUTION}"
qr_provider_id = "za.co.qrhub"
[timing]
pos_timeout = "{pos_timeout}"
pay_deadline = "{pay_deadline}"
early_scan_grace = "{grace}"
[outbox]
concurrency = 4
poll_interval = "50ms"
initial_backoff = "{initial}"
max_backoff = "{max}"
expiry = "{expiry}"
[log]
format = "pretty"
filter = "warn"
[[clients]]
id = "pos-1"
password_hash = "{POS_HASH}"
{pos_1_extra}
[[clients]]
id = "pos-2"
password_hash = "{POS_HASH}"
[[operators]]
id = "{OPERATOR}"
password_hash = "{OPERATOR_HASH}"
{p1}
{p2}
{extra}
"#,
        disabled = disabled.join(", "),
        pos_timeout = ms(o.pay_deadline + Duration::from_secs(1)),
        pay_deadline = ms(o.pay_deadline),
        grace = ms(o.early_scan_grace),
        initial = ms(o.initial_backoff),
        max = ms(o.max_backoff),
        expiry = ms(o.outbox_expiry),
        p1 = partner("wallet-1"),
        p2 = partner("wallet-2"),
        extra = o.extra,
        pos_1_extra = o.pos_1_extra,
        server = o.server,
    )
}

pub async fn start_simulator() -> SimulatorHandle {
    let settings = SimulatorSettings {
        listen: "127.0.0.1:0".parse().expect("address"),
        partner_id: "wallet-1".into(),
        partner_name: "Wallet wallet-1".into(),
        username: Some(SIM_USER.into()),
        password: Some(SIM_PASSWORD.into()),
        ..SimulatorSettings::default()
    };
    Simulator::start(settings).await.expect("simulator starts")
}

pub struct TestHub {
    pub url: String,
    /// The operations listener's base URL, when `server.operations_listen` is set (port 0
    /// lets the system choose one that is free).
    pub operations_url: Option<String>,
    pub sim: SimulatorHandle,
    pub hub: Arc<Hub>,
    pub http: reqwest::Client,
    pub db: Option<TestDb>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestHub {
    pub async fn start(db: TestDb, options: Options) -> Self {
        let sim = start_simulator().await;
        Self::start_with(db, sim, options).await
    }

    pub async fn start_with(db: TestDb, sim: SimulatorHandle, options: Options) -> Self {
        let partner_url = options
            .partner_url
            .clone()
            .unwrap_or_else(|| sim.base_url());
        let toml = config_toml(&db.url, &partner_url, &options);
        let settings = Settings::from_toml(&toml).expect("test configuration is valid");
        let clock = options
            .clock
            .clone()
            .unwrap_or_else(|| Arc::new(SystemClock));
        let app = App::build(settings, clock).await.expect("hub builds");
        let url = format!("http://{}", app.local_addr().expect("bound"));
        let operations_url = app
            .operations_addr()
            .expect("bound")
            .map(|addr| format!("http://{addr}"));
        let hub = app.hub();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run(shutdown.clone()));
        Self {
            url,
            operations_url,
            sim,
            hub,
            http: reqwest::Client::new(),
            db: Some(db),
            shutdown,
            task,
        }
    }

    /// Stops the hub and the simulator, and drops the database.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let _ = (&mut self.task).await;
        let _ = self.sim.shutdown().await;
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }

    pub async fn post_as(
        &self,
        user: &str,
        password: &str,
        path: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .basic_auth(user, Some(password))
            .json(body)
            .send()
            .await
            .expect("the hub answers");
        let status = response.status();
        let text = response.text().await.expect("a body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        (status, json)
    }

    /// As POS client `pos-1`.
    pub async fn pos(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.post_as("pos-1", POS_PASSWORD, path, body).await
    }

    /// A createQrCode by pos-1 that must succeed; returns the tranId.
    pub async fn new_code(&self, amount: i64) -> String {
        let (status, body) = self
            .pos("/qr/v1/qrCodes", &qr_request("pos-1", amount))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["tranId"].as_str().expect("tranId").to_owned()
    }

    /// Starts a held pay by pos-1 in the background.
    pub fn pay(&self, request: Value) -> JoinHandle<(StatusCode, Value)> {
        let client = self.clone_client();
        tokio::spawn(async move { client.pos("/qr/v1/payments", &request).await })
    }

    /// A scan from `partner` of `tran_id`, with a fresh scan id unless one is given.
    pub async fn scan(
        &self,
        partner: &str,
        tran_id: &str,
        scan_id: Option<&str>,
    ) -> (StatusCode, Value) {
        let id = scan_id.map(str::to_owned).unwrap_or_else(new_id);
        let body = json!({
            "id": id,
            "time": now(),
            "partner": {"id": partner, "name": format!("Wallet {partner}")},
            "tranId": tran_id,
            "partnerPaymentToken": format!("token-{tran_id}"),
        });
        self.post_as(partner, PARTNER_PASSWORD, "/qr/v1/scans", &body)
            .await
    }

    /// A code, a held pay by pos-1 and a scan by wallet-1; returns the pay request and the
    /// POS's answer.
    pub async fn paid(&self, amount: i64) -> (Value, StatusCode, Value) {
        let tran_id = self.new_code(amount).await;
        let request = pay_request("pos-1", &tran_id, amount);
        let pay = self.pay(request.clone());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (status, body) = self.scan("wallet-1", &tran_id, None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "scan: {body}");
        assert_eq!(body, Value::Null, "202 has no body");
        let (status, answer) = pay.await.expect("pay finished");
        (request, status, answer)
    }

    /// The stored payment of pos-1's pay `request`.
    pub async fn stored(&self, request: &Value) -> qrhub::store::PaymentRecord {
        self.hub
            .store
            .payment_by_message("pos-1", request["id"].as_str().expect("id"))
            .await
            .expect("store")
            .expect("payment stored")
    }

    /// The advices the hub owes the partner for the payment of `request`.
    pub async fn outbox_of(&self, request: &Value) -> Vec<qrhub::store::OutboxMessage> {
        let payment = self.stored(request).await;
        self.hub
            .store
            .outbox_for_payment(payment.id)
            .await
            .expect("store")
    }

    /// A handle for background requests (shares the connection pool).
    pub fn clone_client(&self) -> Client {
        Client {
            url: self.url.clone(),
            http: self.http.clone(),
        }
    }

    /// Waits until `check` holds on the simulator's ledger, or fails after `within`.
    pub async fn wait_for_ledger(
        &self,
        within: Duration,
        check: impl Fn(&[qrhub::simulator::LedgerEntry]) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if check(&self.sim.ledger()) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "the partner's ledger never reached the expected state: {:#?}",
                    self.sim.ledger()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A POS (`pos-1`) and a partner (`wallet-1`) talking to a hub at `url`, in-process or not.
#[derive(Clone)]
pub struct Client {
    pub url: String,
    pub http: reqwest::Client,
}

impl Client {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            http: reqwest::Client::new(),
        }
    }

    /// As `pos-1`; a lost connection is an `Err` (tests that kill hubs look for it).
    pub async fn try_pos(&self, path: &str, body: &Value) -> reqwest::Result<(StatusCode, Value)> {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .basic_auth("pos-1", Some(POS_PASSWORD))
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    pub async fn pos(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.try_pos(path, body).await.expect("the hub answers")
    }

    /// A createQrCode that must succeed; returns the tranId.
    pub async fn new_code(&self, amount: i64) -> String {
        let (status, body) = self
            .pos("/qr/v1/qrCodes", &qr_request("pos-1", amount))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["tranId"].as_str().expect("tranId").to_owned()
    }

    /// A pay held in the background.
    pub fn spawn_pay(&self, request: &Value) -> JoinHandle<reqwest::Result<(StatusCode, Value)>> {
        let (client, request) = (self.clone(), request.clone());
        tokio::spawn(async move { client.try_pos("/qr/v1/payments", &request).await })
    }

    /// A scan of `tran_id` by `wallet-1`.
    pub async fn scan(&self, tran_id: &str) -> StatusCode {
        let body = json!({"id": new_id(), "time": now(),
            "partner": {"id": "wallet-1", "name": "Wallet wallet-1"}, "tranId": tran_id});
        self.http
            .post(format!("{}/qr/v1/scans", self.url))
            .basic_auth("wallet-1", Some(PARTNER_PASSWORD))
            .json(&body)
            .send()
            .await
            .expect("the hub answers")
            .status()
    }
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn originator() -> Value {
    json!({
        "institution": {"id": "1", "name": "Demo Retail"},
        "terminalId": "T0000001",
        "merchant": {
            "merchantType": "5411",
            "merchantId": "000000000012345",
            "merchantName": {"name": "DEMO STORE", "city": "CAPE TOWN", "region": "WC", "country": "ZA"}
        }
    })
}

pub fn qr_request(client: &str, amount: i64) -> Value {
    json!({
        "id": new_id(),
        "time": now(),
        "originator": originator(),
        "client": {"id": client, "name": "Demo Retail"},
        "amounts": {"requestAmount": {"amount": amount, "currency": "710"}},
    })
}

pub fn pay_request(client: &str, tran_id: &str, amount: i64) -> Value {
    json!({
        "id": new_id(),
        "time": now(),
        "originator": originator(),
        "client": {"id": client, "name": "Demo Retail"},
        "thirdPartyIdentifiers": [{"institutionId": "1", "transactionIdentifier": "POS-REF-1"}],
        "amounts": {"requestAmount": {"amount": amount, "currency": "710"}},
        "tranId": tran_id,
    })
}

pub fn confirmation(request_id: &str) -> Value {
    json!({"id": new_id(), "requestId": request_id, "time": now()})
}

pub fn reversal(request_id: &str, reason: &str) -> Value {
    json!({"id": new_id(), "requestId": request_id, "time": now(), "reversalReason": reason})
}

/// Every `null` anywhere in a JSON document, by path: absent fields must be omitted.
pub fn nulls(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Null => found.push(path.to_owned()),
        Value::Object(map) => {
            for (k, v) in map {
                nulls(v, &format!("{path}.{k}"), found);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                nulls(v, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// Runs `body` on both backends, each with its own database: `both_stores!(name)` declares
/// `async fn name(db: TestDb)` tests `name::postgres` and `name::sqlite`.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    super::$name(crate::common::db::TestDb::postgres().await).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    super::$name(crate::common::db::TestDb::sqlite().await).await
                }
            }
        )*
    };
}

/// A `pay` by `pos-1` on a raw connection of its own, so that a test can close it while the
/// hub holds the request: what a POS does when it is switched off or loses its network.
pub struct RawPay {
    stream: tokio::net::TcpStream,
}

impl RawPay {
    /// Sends `request` to the hub at `url` (`http://host:port`) and leaves it held.
    pub async fn send(url: &str, request: &Value) -> Self {
        use base64::Engine as _;
        use tokio::io::AsyncWriteExt;
        let addr = url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("the hub accepts a connection");
        let body = request.to_string();
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("pos-1:{POS_PASSWORD}"));
        let head = format!(
            "POST /qr/v1/payments HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .await
            .expect("head written");
        stream
            .write_all(body.as_bytes())
            .await
            .expect("body written");
        Self { stream }
    }

    /// Waits `for_at_least`, failing if the hub answered meanwhile (the pay must be held),
    /// then closes the connection.
    pub async fn hang_up_after(mut self, for_at_least: Duration) {
        use tokio::io::AsyncReadExt;
        let mut first = [0u8; 64];
        match tokio::time::timeout(for_at_least, self.stream.read(&mut first)).await {
            Err(_) => {}
            Ok(read) => panic!(
                "the hub answered the pay before the POS hung up: {:?}",
                read.map(|n| String::from_utf8_lossy(&first[..n]).into_owned())
            ),
        }
        drop(self.stream);
    }

    /// Closes the connection at once.
    pub fn hang_up(self) {
        drop(self.stream);
    }
}
