//! TLS: the hub's listener over HTTPS (and mutual TLS), the hub as a TLS client of its
//! partners (own CA, client certificate), and certificate reload on SIGHUP. Every
//! certificate is made here, by rcgen: a test CA, server certificates for
//! localhost/127.0.0.1, client certificates.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::common::db::TestDb;
use crate::common::hub::{
    config_toml, new_id, now, pay_request, qr_request, start_simulator, Options, PARTNER_PASSWORD,
    POS_PASSWORD, SIM_PASSWORD, SIM_USER,
};
use crate::common::process::{free_port, write_config, HubProcess};
use qrhub::app::App;
use qrhub::clock::SystemClock;
use qrhub::config::{ServerTlsSettings, Settings};
use qrhub::domain::PaymentState;
use qrhub::service::Hub;
use qrhub::simulator::{Simulator, SimulatorHandle, SimulatorSettings};

// ---------- certificates ----------

/// A test CA that issues server and client certificates.
struct Ca {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

/// One issued certificate, as PEM and DER.
struct Issued {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq)]
enum Purpose {
    Server,
    Client,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (DNS names or IP addresses) with this serial, valid until
    /// the end of `until_year`.
    fn issue(&self, names: &[&str], purpose: Purpose, serial: u64, until_year: i32) -> Issued {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names.clone()).expect("leaf params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0].as_str());
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(until_year, 12, 31);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match purpose {
            Purpose::Server => rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            Purpose::Client => rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        }];
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    fn certificate(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.pem.as_bytes()).expect("CA as a reqwest root")
    }
}

impl Issued {
    fn identity(&self) -> reqwest::Identity {
        reqwest::Identity::from_pem(format!("{}\n{}", self.cert_pem, self.key_pem).as_bytes())
            .expect("identity")
    }

    /// Writes `{name}.pem` and `{name}.key` into `dir`; returns their paths.
    fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("cert written");
        std::fs::write(&key, &self.key_pem).expect("key written");
        (cert, key)
    }
}

fn write_ca(ca: &Ca, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, &ca.pem).expect("CA written");
    path
}

/// A client that trusts only `ca` (not the built-in web roots), optionally with an identity.
fn client(ca: &Ca, identity: Option<reqwest::Identity>) -> reqwest::Client {
    qrhub::partner::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca.certificate())
        .tls_info(true)
        .timeout(Duration::from_secs(10));
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build().expect("client")
}

/// The error with its causes, to see what refused a request.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The DER of the certificate the server presented on this response's connection.
fn peer_certificate(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("a TLS response carries the server's certificate")
        .to_vec()
}

// ---------- configuration ----------

fn toml_str(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// `[server.tls]` with these files (appended: a sub-table may follow the other sections).
fn server_tls_section(cert: &Path, key: &Path, client_ca: Option<&Path>) -> String {
    let mut section = format!(
        "\n[server.tls]\ncert_path = {}\nkey_path = {}\n",
        toml_str(cert),
        toml_str(key)
    );
    if let Some(ca) = client_ca {
        section.push_str(&format!("client_ca_path = {}\n", toml_str(ca)));
    }
    section
}

/// `toml` with `lines` added to every partner (the test partners all point at `base_url`).
fn with_partner_keys(toml: &str, base_url: &str, lines: &str) -> String {
    let line = format!("base_url = \"{base_url}\"\n");
    assert!(toml.contains(&line), "partners point at {base_url}");
    toml.replace(&line, &format!("{line}{lines}"))
}

// ---------- a hub in this process ----------

struct RunningHub {
    url: String,
    http: reqwest::Client,
    hub: Arc<Hub>,
    db: Option<TestDb>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningHub {
    async fn start(db: TestDb, toml: &str, http: reqwest::Client) -> Self {
        let settings = Settings::from_toml(toml).expect("test configuration is valid");
        let app = App::build(settings, Arc::new(SystemClock))
            .await
            .expect("hub builds");
        let url = format!("{}://{}", app.scheme(), app.local_addr().expect("bound"));
        let hub = app.hub();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run(shutdown.clone()));
        Self {
            url,
            http,
            hub,
            db: Some(db),
            shutdown,
            task,
        }
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        let _ = (&mut self.task).await;
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }

    async fn post(
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
            .unwrap_or_else(|e| panic!("the hub answers {path}: {}", chain(&e)));
        let status = response.status();
        let text = response.text().await.expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn new_code(&self) -> String {
        let (status, body) = self
            .post(
                "pos-1",
                POS_PASSWORD,
                "/qr/v1/qrCodes",
                &qr_request("pos-1", 1500),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["tranId"].as_str().expect("tranId").to_owned()
    }

    /// A code, a held pay and a scan by wallet-1; returns the pay request and the answer.
    async fn paid(self: &Arc<Self>) -> (Value, StatusCode, Value) {
        let tran_id = self.new_code().await;
        let request = pay_request("pos-1", &tran_id, 1500);
        let me = Arc::clone(self);
        let body = request.clone();
        let pay = tokio::spawn(async move {
            me.post("pos-1", POS_PASSWORD, "/qr/v1/payments", &body)
                .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let scan = json!({
            "id": new_id(),
            "time": now(),
            "partner": {"id": "wallet-1", "name": "Wallet wallet-1"},
            "tranId": tran_id,
            "partnerPaymentToken": format!("token-{tran_id}"),
        });
        let (status, body) = self
            .post("wallet-1", PARTNER_PASSWORD, "/qr/v1/scans", &scan)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "scan: {body}");
        let (status, answer) = pay.await.expect("pay finished");
        (request, status, answer)
    }

    async fn payment_state(&self, request: &Value) -> PaymentState {
        self.hub
            .store
            .payment_by_message("pos-1", request["id"].as_str().expect("id"))
            .await
            .expect("store")
            .expect("payment stored")
            .state
    }

    async fn outbox_is_empty(&self, request: &Value) -> bool {
        let payment = self
            .hub
            .store
            .payment_by_message("pos-1", request["id"].as_str().expect("id"))
            .await
            .expect("store")
            .expect("payment stored");
        self.hub
            .store
            .outbox_for_payment(payment.id)
            .await
            .expect("store")
            .is_empty()
    }
}

/// The partner simulator over TLS with this certificate (and, with `client_ca`, requiring
/// the hub's client certificate).
async fn tls_simulator(cert: &Path, key: &Path, client_ca: Option<&Path>) -> SimulatorHandle {
    let settings = SimulatorSettings {
        listen: "127.0.0.1:0".parse().expect("address"),
        partner_id: "wallet-1".into(),
        partner_name: "Wallet wallet-1".into(),
        username: Some(SIM_USER.into()),
        password: Some(SIM_PASSWORD.into()),
        tls: Some(ServerTlsSettings {
            cert_path: cert.to_owned(),
            key_path: key.to_owned(),
            client_ca_path: client_ca.map(Path::to_owned),
        }),
        ..SimulatorSettings::default()
    };
    Simulator::start(settings).await.expect("simulator starts")
}

// ---------- the hub's listener ----------

/// Over HTTPS the hub answers a client that trusts its CA, and refuses plain HTTP and a
/// client that does not trust the certificate.
async fn the_hub_serves_https(db: TestDb) {
    let dir = TempDir::new().expect("dir");
    let ca = Ca::new("qrhub test CA");
    let (cert, key) = ca
        .issue(&["localhost", "127.0.0.1"], Purpose::Server, 1, 2040)
        .write(dir.path(), "hub");
    let sim = start_simulator().await;
    let mut toml = config_toml(&db.url, &sim.base_url(), &Options::default());
    toml.push_str(&server_tls_section(&cert, &key, None));
    let hub = RunningHub::start(db, &toml, client(&ca, None)).await;
    assert!(hub.url.starts_with("https://127.0.0.1:"), "{}", hub.url);

    let ready = hub
        .http
        .get(format!("{}/health/ready", hub.url))
        .send()
        .await
        .expect("ready over https");
    assert_eq!(ready.status(), StatusCode::OK);
    // ALPN: a client offering h2 gets it, one offering only http/1.1 gets that.
    assert_eq!(ready.version(), reqwest::Version::HTTP_2);
    let http1 = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca.certificate())
        .http1_only()
        .build()
        .expect("client");
    let ready = http1
        .get(format!("{}/health/ready", hub.url))
        .send()
        .await
        .expect("ready over https and HTTP/1.1");
    assert_eq!(ready.version(), reqwest::Version::HTTP_11);
    assert_eq!(ready.status(), StatusCode::OK);
    // By name too: the certificate is for localhost as well.
    let by_name = hub.url.replace("127.0.0.1", "localhost");
    let ready = hub
        .http
        .get(format!("{by_name}/health/live"))
        .send()
        .await
        .expect("live over https by name");
    assert_eq!(ready.status(), StatusCode::OK);
    hub.new_code().await;

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = hub.url.replace("https://", "http://");
    let refused = reqwest::Client::new()
        .get(format!("{plain}/health/ready"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(refused.is_err(), "plain HTTP was answered: {refused:?}");

    // A client that trusts only the web roots refuses the test CA's certificate.
    qrhub::partner::install_crypto_provider();
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .build()
        .expect("client");
    let refused = untrusting
        .get(format!("{}/health/ready", hub.url))
        .send()
        .await
        .expect_err("an untrusted certificate is refused");
    let why = chain(&refused);
    assert!(why.contains("certificate"), "{why}");

    // Still serving after those.
    let ready = hub
        .http
        .get(format!("{}/health/ready", hub.url))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), StatusCode::OK);
    hub.stop().await;
    let _ = sim.shutdown().await;
}

/// Shutdown over TLS is as over plain TCP: no new connections, a held pay still gets its
/// answer, then the hub stops.
async fn a_held_pay_over_https_finishes_at_shutdown(db: TestDb) {
    let dir = TempDir::new().expect("dir");
    let ca = Ca::new("qrhub test CA");
    let (cert, key) = ca
        .issue(&["localhost", "127.0.0.1"], Purpose::Server, 12, 2040)
        .write(dir.path(), "hub");
    let sim = start_simulator().await;
    let mut toml = config_toml(&db.url, &sim.base_url(), &Options::default());
    toml.push_str(&server_tls_section(&cert, &key, None));
    let hub = Arc::new(RunningHub::start(db, &toml, client(&ca, None)).await);
    let tran_id = hub.new_code().await;
    let request = pay_request("pos-1", &tran_id, 1500);
    let pay = tokio::spawn({
        let hub = Arc::clone(&hub);
        async move {
            hub.post("pos-1", POS_PASSWORD, "/qr/v1/payments", &request)
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    hub.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = client(&ca, None)
        .get(format!("{}/health/live", hub.url))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a new connection was served after shutdown"
    );
    let (status, answer) = pay.await.expect("pay finished");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "NO_SCAN_RECEIVED");
    let mut hub = match Arc::try_unwrap(hub) {
        Ok(hub) => hub,
        Err(_) => panic!("the pay task still holds the hub"),
    };
    tokio::time::timeout(Duration::from_secs(5), &mut hub.task)
        .await
        .expect("the hub stops")
        .expect("task")
        .expect("run ends cleanly");
    if let Some(db) = hub.db.take() {
        db.cleanup().await;
    }
    let _ = sim.shutdown().await;
}

/// With `client_ca_path`, a client without a certificate (or with one from another CA) is
/// refused during the handshake; one with a certificate from that CA gets through.
async fn mutual_tls_requires_a_client_certificate(db: TestDb) {
    let dir = TempDir::new().expect("dir");
    let ca = Ca::new("qrhub test CA");
    let clients_ca = Ca::new("POS clients CA");
    let stranger_ca = Ca::new("another CA");
    let (cert, key) = ca
        .issue(&["localhost", "127.0.0.1"], Purpose::Server, 1, 2040)
        .write(dir.path(), "hub");
    let clients_ca_path = write_ca(&clients_ca, dir.path(), "clients-ca");
    let sim = start_simulator().await;
    let mut toml = config_toml(&db.url, &sim.base_url(), &Options::default());
    toml.push_str(&server_tls_section(&cert, &key, Some(&clients_ca_path)));
    let pos_cert = clients_ca.issue(&["pos-1"], Purpose::Client, 10, 2040);
    let hub = RunningHub::start(db, &toml, client(&ca, Some(pos_cert.identity()))).await;

    let ready = hub
        .http
        .get(format!("{}/health/ready", hub.url))
        .send()
        .await
        .expect("a client with a certificate from the CA gets through");
    assert_eq!(ready.status(), StatusCode::OK);
    hub.new_code().await;

    let anonymous = client(&ca, None);
    anonymous
        .get(format!("{}/health/ready", hub.url))
        .send()
        .await
        .expect_err("a client without a certificate is refused");
    // Under TLS 1.3 the client finishes its side of the handshake before the server judges
    // its certificate, and reqwest reports only a closed connection: a bare rustls client
    // shows that the server refused with a TLS alert and no HTTP ever happened.
    let addr = hub.url.trim_start_matches("https://").to_owned();
    let alert = tls_refusal(&ca, &addr, None).await;
    assert!(alert.contains("CertificateRequired"), "{alert}");

    let stranger = stranger_ca.issue(&["pos-9"], Purpose::Client, 11, 2040);
    client(&ca, Some(stranger.identity()))
        .get(format!("{}/health/ready", hub.url))
        .send()
        .await
        .expect_err("a certificate from another CA is refused");
    let alert = tls_refusal(&ca, &addr, Some(&stranger)).await;
    assert!(alert.contains("UnknownCA"), "{alert}");

    hub.stop().await;
    let _ = sim.shutdown().await;
}

/// Connects to `addr` with a bare rustls client trusting `ca` (presenting `identity` if
/// given), sends an HTTP request, and returns the TLS error that ends the exchange.
async fn tls_refusal(ca: &Ca, addr: &str, identity: Option<&Issued>) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).expect("CA DER"))
        .expect("CA added");
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let config = match identity {
        Some(issued) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).expect("cert")],
                PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("key"),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("TCP connect");
    let name = ServerName::try_from("localhost").expect("name");
    let outcome = async {
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"GET /health/ready HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    }
    .await;
    match outcome {
        Ok(answer) => panic!("the server answered: {}", String::from_utf8_lossy(&answer)),
        Err(e) => format!("{e:?}"),
    }
}

// ---------- the hub as a TLS client of its partners ----------

/// A partner behind TLS is reached when its `ca_path` names the CA of its certificate.
async fn a_partner_over_tls_is_reached_with_its_ca(db: TestDb) {
    let dir = TempDir::new().expect("dir");
    let partner_ca = Ca::new("wallet CA");
    let (cert, key) = partner_ca
        .issue(&["localhost", "127.0.0.1"], Purpose::Server, 2, 2040)
        .write(dir.path(), "wallet");
    let ca_path = write_ca(&partner_ca, dir.path(), "wallet-ca");
    let sim = tls_simulator(&cert, &key, None).await;
    let base_url = sim.base_url();
    assert!(base_url.starts_with("https://"), "{base_url}");
    let toml = with_partner_keys(
        &config_toml(&db.url, &base_url, &Options::default()),
        &base_url,
        &format!("ca_path = {}\n", toml_str(&ca_path)),
    );
    let hub = Arc::new(RunningHub::start(db, &toml, reqwest::Client::new()).await);
    let (request, status, answer) = hub.paid().await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(hub.payment_state(&request).await, PaymentState::Approved);
    assert_eq!(sim.ledger().len(), 1, "the partner got the pay");
    stop_shared(hub).await;
    let _ = sim.shutdown().await;
}

/// Without its CA the partner's certificate is refused during the handshake: nothing was
/// sent, so the POS gets 503 UPSTREAM_UNAVAILABLE and there is nothing to reverse.
async fn an_untrusted_partner_certificate_is_503_with_nothing_to_reverse(db: TestDb) {
    let dir = TempDir::new().expect("dir");
    let partner_ca = Ca::new("wallet CA");
    let (cert, key) = partner_ca
        .issue(&["localhost", "127.0.0.1"], Purpose::Server, 3, 2040)
        .write(dir.path(), "wallet");
    let sim = tls_simulator(&cert, &key, None).await;
    let toml = config_toml(&db.url, &sim.base_url(), &Options::default());
    let hub = Arc::new(RunningHub::start(db, &toml, reqwest::Client::new()).await);
    let (request, status, answer) = hub.paid().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["errorType"], "UPSTREAM_UNAVAILABLE");
    assert_eq!(hub.payment_state(&request).await, PaymentState::Declined);
    assert!(hub.outbox_is_empty(&request).await, "nothing to reverse");
    assert!(sim.ledger().is_empty(), "nothing reached the partner");
    stop_shared(hub).await;
    let _ = sim.shutdown().await;
}

/// A partner that requires a client certificate gets the hub's, from
/// `client_cert_path`/`client_key_path`.
async fn the_hub_presents_its_client_certificate(db: TestDb) {
    let dir = TempDir::new().expect("dir");
    let partner_ca = Ca::new("wallet CA");
    let hub_ca = Ca::new("hub clients CA");
    let (cert, key) = partner_ca
        .issue(&["localhost", "127.0.0.1"], Purpose::Server, 4, 2040)
        .write(dir.path(), "wallet");
    let ca_path = write_ca(&partner_ca, dir.path(), "wallet-ca");
    let hub_ca_path = write_ca(&hub_ca, dir.path(), "hub-ca");
    let (client_cert, client_key) = hub_ca
        .issue(&["qrhub"], Purpose::Client, 5, 2040)
        .write(dir.path(), "hub-client");
    let sim = tls_simulator(&cert, &key, Some(&hub_ca_path)).await;
    let base_url = sim.base_url();
    let toml = with_partner_keys(
        &config_toml(&db.url, &base_url, &Options::default()),
        &base_url,
        &format!(
            "ca_path = {}\nclient_cert_path = {}\nclient_key_path = {}\n",
            toml_str(&ca_path),
            toml_str(&client_cert),
            toml_str(&client_key)
        ),
    );
    let hub = Arc::new(RunningHub::start(db, &toml, reqwest::Client::new()).await);
    let (request, status, answer) = hub.paid().await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(hub.payment_state(&request).await, PaymentState::Approved);
    assert_eq!(sim.ledger().len(), 1, "the partner got the pay");
    stop_shared(hub).await;
    let _ = sim.shutdown().await;
}

/// A partner that requires a client certificate the hub does not present never gets the
/// pay. Under TLS 1.3 the hub's side of the handshake is finished and the request written
/// before the partner's refusal arrives, and reqwest reports only a closed connection, the
/// same as a partner that dropped the connection after reading the request: the hub cannot
/// tell, so it treats the outcome as unknown (504, a reversal queued), which is safe. The
/// partner's ledger shows nothing arrived.
async fn without_its_client_certificate_the_partner_is_not_reached(db: TestDb) {
    let dir = TempDir::new().expect("dir");
    let partner_ca = Ca::new("wallet CA");
    let hub_ca = Ca::new("hub clients CA");
    let (cert, key) = partner_ca
        .issue(&["localhost", "127.0.0.1"], Purpose::Server, 8, 2040)
        .write(dir.path(), "wallet");
    let ca_path = write_ca(&partner_ca, dir.path(), "wallet-ca");
    let hub_ca_path = write_ca(&hub_ca, dir.path(), "hub-ca");
    let sim = tls_simulator(&cert, &key, Some(&hub_ca_path)).await;
    let base_url = sim.base_url();
    let toml = with_partner_keys(
        &config_toml(&db.url, &base_url, &Options::default()),
        &base_url,
        &format!("ca_path = {}\n", toml_str(&ca_path)),
    );
    let hub = Arc::new(RunningHub::start(db, &toml, reqwest::Client::new()).await);
    let (request, status, answer) = hub.paid().await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{answer}");
    assert_eq!(answer["errorType"], "UPSTREAM_UNAVAILABLE");
    assert_eq!(hub.payment_state(&request).await, PaymentState::Unknown);
    assert!(!hub.outbox_is_empty(&request).await, "a reversal is queued");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sim.ledger().is_empty(), "nothing reached the partner");
    stop_shared(hub).await;
    let _ = sim.shutdown().await;
}

async fn stop_shared(hub: Arc<RunningHub>) {
    match Arc::try_unwrap(hub) {
        Ok(hub) => hub.stop().await,
        Err(_) => panic!("a background request still holds the hub"),
    }
}

// ---------- start-up checks ----------

#[tokio::test]
async fn bad_tls_files_stop_start_up_naming_the_key() {
    let dir = TempDir::new().expect("dir");
    let ca = Ca::new("qrhub test CA");
    let (cert, key) = ca
        .issue(&["localhost"], Purpose::Server, 6, 2040)
        .write(dir.path(), "hub");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("junk written");
    let missing = dir.path().join("missing.pem");
    let other_key = ca
        .issue(&["other"], Purpose::Server, 7, 2040)
        .write(dir.path(), "other")
        .1;

    async fn start_error(toml: &str) -> String {
        let settings = Settings::from_toml(toml).expect("valid syntax");
        match App::build(settings, Arc::new(SystemClock)).await {
            Ok(_) => panic!("the hub started"),
            Err(e) => format!("{e:#}"),
        }
    }
    let base = |db: &TestDb| config_toml(&db.url, "https://127.0.0.1:1", &Options::default());

    for (tls, key_name) in [
        (
            server_tls_section(&missing, &key, None),
            "server.tls.cert_path",
        ),
        (
            server_tls_section(&junk, &key, None),
            "server.tls.cert_path",
        ),
        (
            server_tls_section(&cert, &junk, None),
            "server.tls.key_path",
        ),
        (
            server_tls_section(&cert, &other_key, None),
            "server.tls.cert_path",
        ),
        (
            server_tls_section(&cert, &key, Some(&junk)),
            "server.tls.client_ca_path",
        ),
    ] {
        let db = TestDb::sqlite().await;
        let error = start_error(&format!("{}{tls}", base(&db))).await;
        assert!(error.contains(key_name), "{key_name}: {error}");
        db.cleanup().await;
    }
    for (lines, key_name) in [
        (
            format!("ca_path = {}\n", toml_str(&missing)),
            "partners[0].ca_path",
        ),
        (
            format!("ca_path = {}\n", toml_str(&junk)),
            "partners[0].ca_path",
        ),
        (
            format!(
                "client_cert_path = {}\nclient_key_path = {}\n",
                toml_str(&junk),
                toml_str(&key)
            ),
            "partners[0].client_cert_path",
        ),
        (
            format!(
                "client_cert_path = {}\nclient_key_path = {}\n",
                toml_str(&cert),
                toml_str(&missing)
            ),
            "partners[0].client_key_path",
        ),
    ] {
        let db = TestDb::sqlite().await;
        let toml = with_partner_keys(&base(&db), "https://127.0.0.1:1", &lines);
        let error = start_error(&toml).await;
        assert!(error.contains(key_name), "{key_name}: {error}");
        db.cleanup().await;
    }

    // Caught by the configuration check itself: half a client identity, TLS keys on http.
    let db = TestDb::sqlite().await;
    let half = with_partner_keys(
        &base(&db),
        "https://127.0.0.1:1",
        &format!("client_cert_path = {}\n", toml_str(&cert)),
    );
    let error = Settings::from_toml(&half).expect_err("refused").to_string();
    assert!(error.contains("partners[0].client_key_path"), "{error}");
    let plain = with_partner_keys(
        &config_toml(&db.url, "http://127.0.0.1:1", &Options::default()),
        "http://127.0.0.1:1",
        &format!("ca_path = {}\n", toml_str(&cert)),
    );
    let error = Settings::from_toml(&plain)
        .expect_err("refused")
        .to_string();
    assert!(error.contains("partners[0].ca_path"), "{error}");
    db.cleanup().await;
}

// ---------- certificate reload ----------

/// After the cert files are replaced and the hub gets SIGHUP, new connections see the new
/// certificate while a connection made before keeps working; a reload of bad files keeps the
/// certificate in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_for_new_connections() {
    let db = TestDb::sqlite().await;
    let dir = TempDir::new().expect("dir");
    let ca = Ca::new("qrhub test CA");
    let first = ca.issue(&["localhost", "127.0.0.1"], Purpose::Server, 100, 2040);
    let second = ca.issue(&["localhost", "127.0.0.1"], Purpose::Server, 200, 2041);
    let (cert, key) = first.write(dir.path(), "hub");

    let sim = start_simulator().await;
    let mut toml = config_toml(&db.url, &sim.base_url(), &Options::default());
    toml.push_str(&server_tls_section(&cert, &key, None));
    let port = free_port();
    let config = write_config(dir.path(), "hub.toml", &toml, port);
    let url = format!("https://127.0.0.1:{port}");
    let kept = client(&ca, None);
    let hub = HubProcess::start_with_client(&config, &url, &kept).await;

    let seen = |response: &reqwest::Response| peer_certificate(response);
    let response = kept
        .get(format!("{url}/health/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(seen(&response), first.der);

    // Replace both files, then SIGHUP.
    second.write(dir.path(), "hub");
    hangup(&hub);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = client(&ca, None);
        let response = fresh
            .get(format!("{url}/health/ready"))
            .send()
            .await
            .expect("the hub still answers new connections");
        assert_eq!(response.status(), StatusCode::OK);
        if seen(&response) == second.der {
            break;
        }
        assert_eq!(seen(&response), first.der, "an unknown certificate");
        assert!(
            tokio::time::Instant::now() < deadline,
            "new connections never saw the reloaded certificate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The connection made before the reload is still open and still works.
    let response = kept
        .get(format!("{url}/health/ready"))
        .send()
        .await
        .expect("the old connection still answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        seen(&response),
        first.der,
        "the request went over the connection made before the reload"
    );

    // A reload of a broken file keeps the certificate in use and the hub running.
    std::fs::write(&cert, "garbage").expect("cert overwritten");
    hangup(&hub);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = client(&ca, None)
        .get(format!("{url}/health/ready"))
        .send()
        .await
        .expect("still serving after a failed reload");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen(&response), second.der);

    drop(hub);
    let _ = sim.shutdown().await;
    db.cleanup().await;
}

fn hangup(hub: &HubProcess) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &hub.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -HUP failed");
}

// ---------- both stores where it matters ----------

mod the_hub_serves_https {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::the_hub_serves_https(crate::common::db::TestDb::sqlite().await).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::the_hub_serves_https(crate::common::db::TestDb::postgres().await).await
    }
}

macro_rules! on_sqlite {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(crate::common::db::TestDb::sqlite().await).await
            }
        )*
    };
}

mod sqlite {
    on_sqlite!(
        mutual_tls_requires_a_client_certificate,
        a_partner_over_tls_is_reached_with_its_ca,
        an_untrusted_partner_certificate_is_503_with_nothing_to_reverse,
        the_hub_presents_its_client_certificate,
        without_its_client_certificate_the_partner_is_not_reached,
        a_held_pay_over_https_finishes_at_shutdown,
    );
}

/// A client that connects to the HTTPS listener and never starts its handshake is closed
/// after `server.tls_handshake_timeout`, while an HTTPS POS is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_never_comes_is_closed_after_its_timeout() {
    use tokio::io::AsyncReadExt;
    let db = TestDb::sqlite().await;
    let dir = TempDir::new().expect("dir");
    let ca = Ca::new("qrhub test CA");
    let (cert, key) = ca
        .issue(&["localhost", "127.0.0.1"], Purpose::Server, 1, 2040)
        .write(dir.path(), "hub");
    let sim = start_simulator().await;
    let options = Options {
        server: "tls_handshake_timeout = \"400ms\"\n".into(),
        ..Options::default()
    };
    let mut toml = config_toml(&db.url, &sim.base_url(), &options);
    toml.push_str(&server_tls_section(&cert, &key, None));
    let hub = RunningHub::start(db, &toml, client(&ca, None)).await;
    let addr = hub.url.trim_start_matches("https://").to_owned();
    let mut silent = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connects");
    let connected = std::time::Instant::now();
    hub.new_code().await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the silent client is still connected: {read:?}"
    );
    let took = connected.elapsed();
    assert!(
        took >= Duration::from_millis(350),
        "not before its time: {took:?}"
    );
    hub.new_code().await;
    hub.stop().await;
    let _ = sim.shutdown().await;
}
