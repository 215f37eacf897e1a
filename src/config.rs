//! Configuration: a TOML file, then `QRHUB__SECTION__KEY` environment variables over it.
//!
//! Every key is documented in `config/default.toml`. [`Settings::load`] checks the values
//! against each other (the timing budget of DESIGN.md §6, credential hashes, partner URLs) so
//! that a bad deployment stops at start-up with a message naming the key.

use argon2::password_hash::PasswordHash;
use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::QrScheme;

mod qr_template;
mod retention;
mod settlement;
pub use qr_template::{MerchantReference, PartnerQrTemplate};
pub use retention::RetentionSettings;
pub use settlement::{CutOff, SettlementSettings, ZoneName};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: String, problem: String },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub hub: HubSettings,
    #[serde(default)]
    pub timing: TimingSettings,
    #[serde(default)]
    pub outbox: OutboxSettings,
    /// Approvals no POS advises (confirms or reverses).
    #[serde(default)]
    pub unadvised: UnadvisedSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub clients: Vec<ClientSettings>,
    #[serde(default)]
    pub partners: Vec<PartnerSettings>,
    /// Back-office users of `/admin/v1` (Basic auth).
    #[serde(default)]
    pub operators: Vec<OperatorSettings>,
    /// Fee schedules per partner and currency, optionally per POS client.
    #[serde(default)]
    pub fees: Vec<FeeSettings>,
    /// What a settlement day is: time zone and cut-off.
    #[serde(default)]
    pub settlement: SettlementSettings,
    /// How long events, delivered advices and payments are kept.
    #[serde(default)]
    pub retention: RetentionSettings,
    /// Requests per authenticated caller (off by default).
    #[serde(default)]
    pub rate_limit: RateLimitSettings,
    /// What failed logins may cost: argon2 slots and the per-address throttle.
    #[serde(default)]
    pub auth: AuthSettings,
    /// The partner simulator's section belongs to the tool, which reads it itself
    /// ([`load_section`]); the hub only accepts it, so that one file serves both.
    #[serde(default)]
    simulator: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Largest request body accepted; larger ones get 413 with an ErrorDetail.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// Operations answered with 501 FUNCTION_NOT_SUPPORTED (e.g. `["createQrCode"]`).
    #[serde(default)]
    pub disabled_operations: Vec<crate::model::Operation>,
    /// How long shutdown waits for held requests before it stops anyway.
    #[serde(default = "default_shutdown_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// HTTPS on the listener; plain HTTP when absent.
    #[serde(default)]
    pub tls: Option<ServerTlsSettings>,
    /// Serve Prometheus metrics at `GET /metrics` (no authentication).
    #[serde(default = "default_metrics_enabled")]
    pub metrics_enabled: bool,
    /// Connections open at once; one more is closed as soon as it is accepted. Every held
    /// `pay` keeps one open, so this is above the held pays expected at the peak.
    #[serde(default = "default_max_connections_open")]
    pub max_connections: usize,
    /// How long a new connection may take to send its first bytes (plain HTTP).
    #[serde(default = "default_first_bytes_timeout", with = "humantime_serde")]
    pub first_bytes_timeout: Duration,
    /// How long a request head may take to arrive, counted from when the hub waits for it:
    /// so also how long a kept-alive connection may sit idle between requests (HTTP/1).
    #[serde(default = "default_header_read_timeout", with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long a TLS handshake may take.
    #[serde(default = "default_tls_handshake_timeout", with = "humantime_serde")]
    pub tls_handshake_timeout: Duration,
    /// When set, `/metrics` and `/health/*` are served here (plain HTTP) and not on
    /// `listen`, which then carries only the interface, the back office and its console.
    #[serde(default)]
    pub operations_listen: Option<SocketAddr>,
}

fn default_max_connections_open() -> usize {
    25_000
}

fn default_first_bytes_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_header_read_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_tls_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_metrics_enabled() -> bool {
    true
}

/// `[server.tls]`: the listener's certificate, and optionally the CA its clients' certificates
/// must chain to (mutual TLS). All PEM files, re-read on SIGHUP.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsSettings {
    /// The certificate chain, leaf first.
    pub cert_path: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
    /// When set, every client must present a certificate issued by one of these CAs.
    #[serde(default)]
    pub client_ca_path: Option<PathBuf>,
}

fn default_body_limit() -> usize {
    64 * 1024
}

fn default_shutdown_grace() -> Duration {
    Duration::from_secs(60)
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://data/qrhub.db` (embedded, one instance) or `postgres://user@host/db`.
    pub url: String,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

fn default_max_connections() -> u32 {
    16
}

/// The URL's password stays out of `Debug` (the whole `Settings` may be printed).
impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// A token bucket per authenticated caller (POS client or partner), checked right after its
/// credentials: `requests_per_second` refill it, `burst` is its size. Over it: 429.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Steady requests per second allowed to each caller; 0 switches the limit off.
    pub requests_per_second: u32,
    /// How many requests a caller may send at once before the steady rate applies.
    pub burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            requests_per_second: 0,
            burst: 50,
        }
    }
}

/// `[auth]`: a password not verified before costs an argon2 run (tens of milliseconds of a
/// core, 19 MiB). These keys bound what strangers can make the hub spend on them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// argon2 verifications at once; 0 means one per two cores (at least one).
    pub verify_concurrency: usize,
    /// Verifications that may wait for a slot; beyond them the hub answers 503 at once.
    pub verify_queue: usize,
    /// Failed logins (wrong password, unknown user, or refused for want of a slot) per client
    /// address per minute; beyond them 429 with Retry-After until the minute is over. 0
    /// switches the throttle off.
    pub failed_logins_per_minute: u32,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            verify_concurrency: 0,
            verify_queue: 32,
            failed_logins_per_minute: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSettings {
    /// The hub's institution id in the ThirdPartyIdentifiers it adds.
    pub institution_id: String,
    /// Tag 26 sub-tag 00 of the QR payload: who issued the code.
    pub qr_provider_id: String,
    /// Encoder used when a request names no (known) scheme.
    #[serde(default = "default_scheme")]
    pub default_scheme: QrScheme,
    /// How long an issued QR code stays valid when the request gives no expiry.
    #[serde(default = "default_qr_ttl", with = "humantime_serde")]
    pub qr_code_ttl: Duration,
}

fn default_scheme() -> QrScheme {
    QrScheme::ElectrumMerchantMinimal
}

fn default_qr_ttl() -> Duration {
    Duration::from_secs(300)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimingSettings {
    /// How long POS systems wait for an answer (the interface's default is 60 s).
    #[serde(with = "humantime_serde")]
    pub pos_timeout: Duration,
    /// Every `pay` is answered this long after it arrived, at the latest.
    #[serde(with = "humantime_serde")]
    pub pay_deadline: Duration,
    /// How long a scan for an issued code waits for its `pay` to arrive.
    #[serde(with = "humantime_serde")]
    pub early_scan_grace: Duration,
}

impl Default for TimingSettings {
    fn default() -> Self {
        Self {
            pos_timeout: Duration::from_secs(60),
            pay_deadline: Duration::from_secs(55),
            early_scan_grace: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxSettings {
    /// Concurrent deliveries per hub instance.
    pub concurrency: usize,
    /// How often idle workers look for due rows (new rows written here wake them at once).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// First retry delay; doubled per try up to `max_backoff`, with jitter.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// An advice not delivered by then is dead-lettered for an operator.
    #[serde(with = "humantime_serde")]
    pub expiry: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            concurrency: 16,
            poll_interval: Duration::from_secs(1),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            expiry: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

/// `[unadvised]`: payments APPROVED at the partner that their POS neither confirmed nor
/// reversed. Usually the POS went away while the partner had the payment (the customer is
/// charged, the goods may not have been handed over), or its advice is stuck on its side.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnadvisedSettings {
    /// Approved longer ago than this with no advice: listed in the back office and counted
    /// in `qrhub_unadvised_approvals`.
    #[serde(with = "humantime_serde")]
    pub listed_after: Duration,
    /// Approved longer ago than this with no advice: the client's `unadvised_approvals`
    /// policy applies (`reverse`: the hub reverses it at the partner).
    #[serde(with = "humantime_serde")]
    pub act_after: Duration,
}

impl Default for UnadvisedSettings {
    fn default() -> Self {
        Self {
            listed_after: Duration::from_secs(10 * 60),
            act_after: Duration::from_secs(60 * 60),
        }
    }
}

/// What the hub does with a client's approval nobody advised by `unadvised.act_after`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnadvisedPolicy {
    /// Nothing: the POS owns the advice; the approval stays listed for an operator.
    #[default]
    Nothing,
    /// The hub queues its own reversal to the partner (reason TIMEOUT) and the payment
    /// ends REVERSED; a later confirmation from the POS is refused as already settled.
    Reverse,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `json` (one object per line, for collectors) or `pretty` (for people).
    pub format: LogFormat,
    /// A tracing filter (`info`, `qrhub=debug,tower_http=info`); `RUST_LOG` wins if set.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            filter: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// An argon2 PHC string from the configuration (`qrhub hash-password`). Not the password,
/// but what an offline guessing attack starts from, so `Debug` never shows it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct PasswordHashText(String);

impl PasswordHashText {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PasswordHashText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A POS system: its Basic-auth user is its `client.id`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    pub id: String,
    pub password_hash: PasswordHashText,
    /// What the hub does with this client's approvals nobody advised by
    /// `unadvised.act_after`.
    #[serde(default)]
    pub unadvised_approvals: UnadvisedPolicy,
}

/// A back-office operator: its Basic-auth user on `/admin/v1`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSettings {
    pub id: String,
    pub password_hash: PasswordHashText,
}

/// What a partner's merchant pays per confirmed payment in one currency: computed when the
/// payment is confirmed and stored with it, so a change applies to payments confirmed after
/// it. A schedule with `client` is that POS client's own at this partner; without, the
/// partner's default. See `domain::FeeSchedule` for the rounding rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeSettings {
    pub partner: String,
    #[serde(default)]
    pub client: Option<String>,
    /// ISO 4217 numeric, as on the wire (`710`).
    pub currency: String,
    /// Percentage in basis points (150 = 1.50 %).
    #[serde(default)]
    pub percent_bps: u32,
    /// Added to the percentage, in minor units.
    #[serde(default)]
    pub fixed: i64,
    #[serde(default)]
    pub min: i64,
    #[serde(default)]
    pub max: Option<i64>,
}

impl FeeSettings {
    pub fn schedule(&self) -> crate::domain::FeeSchedule {
        crate::domain::FeeSchedule {
            percent_bps: self.percent_bps,
            fixed: self.fixed,
            min: self.min,
            max: self.max,
        }
    }
}

/// A partner wallet.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerSettings {
    /// Its Basic-auth user on scans, and `partner.id` in messages.
    pub id: String,
    pub name: String,
    /// argon2 PHC string of the password the partner presents to the hub.
    pub password_hash: PasswordHashText,
    /// The hub calls `{base_url}/qr/v1/payments`, `/payments/confirmations`, `/payments/reversals`.
    pub base_url: String,
    /// What the hub presents to the partner. The hub is the sender of every message it
    /// sends there, so this is also `client.id` in them (the interface's rule: the Basic
    /// user is the sender's id); the retailer stays in `originator`.
    pub username: String,
    pub password: SecretString,
    /// `client.name` in the messages the hub sends this partner (at most 40 characters).
    #[serde(default = "default_client_name")]
    pub client_name: String,
    /// Largest answer body read from this partner: past it, a `pay` is unknown (reversed)
    /// and an advice is tried again, rather than the hub buffering whatever it is sent.
    #[serde(default = "default_max_answer_bytes")]
    pub max_answer_bytes: usize,
    /// How long the hub waits for the partner's answer to `pay` and to each advice.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// PEM bundle of the CAs trusted for this partner's server certificate, instead of the
    /// built-in web roots (`https://` base URLs only).
    #[serde(default)]
    pub ca_path: Option<PathBuf>,
    /// The certificate chain (PEM) the hub presents to this partner, with its key.
    #[serde(default)]
    pub client_cert_path: Option<PathBuf>,
    #[serde(default)]
    pub client_key_path: Option<PathBuf>,
    /// This partner's own merchant account template in tags 27–51 of every code (DESIGN §4).
    #[serde(default)]
    pub qr_template: Option<PartnerQrTemplate>,
}

fn default_client_name() -> String {
    "qrhub".into()
}

fn default_max_answer_bytes() -> usize {
    1024 * 1024
}

impl PartnerSettings {
    /// Whether calls to this partner need a TLS setup of their own.
    pub fn has_own_tls(&self) -> bool {
        self.ca_path.is_some() || self.client_cert_path.is_some()
    }
}

impl std::fmt::Debug for PartnerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartnerSettings")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("password_hash", &self.password_hash)
            .field("base_url", &redact_url(&self.base_url))
            .field("username", &self.username)
            .field("password", &self.password)
            .field("client_name", &self.client_name)
            .field("max_answer_bytes", &self.max_answer_bytes)
            .field("timeout", &self.timeout)
            .field("qr_template", &self.qr_template)
            .finish()
    }
}

impl Settings {
    /// Loads `path` (if it exists), then the environment, then checks the result.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let settings: Settings = sources(path).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Whether the file has a `[simulator]` section (a tool's, which the hub ignores).
    pub fn has_simulator_section(&self) -> bool {
        self.simulator.is_some()
    }

    /// Parses a TOML document (tests build hubs this way) and checks it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The longest any partner may take: the scan window leaves this much of the deadline.
    pub fn max_partner_timeout(&self) -> Duration {
        self.partners
            .iter()
            .map(|p| p.timeout)
            .max()
            .unwrap_or_default()
    }

    /// How long a `pay` waits for its scan: the deadline less the slowest partner's timeout.
    pub fn scan_window(&self) -> Duration {
        self.timing
            .pay_deadline
            .saturating_sub(self.max_partner_timeout())
    }

    pub fn partner(&self, id: &str) -> Option<&PartnerSettings> {
        self.partners.iter().find(|p| p.id == id)
    }

    /// The fee schedule for a payment of `client` at `partner` in `currency`: the client's
    /// own, else the partner's default; `None` charges nothing.
    pub fn fee_schedule(
        &self,
        partner: &str,
        client: &str,
        currency: &str,
    ) -> Option<crate::domain::FeeSchedule> {
        let of = |c: Option<&str>| {
            self.fees.iter().find(|f| {
                f.partner == partner && f.currency == currency && f.client.as_deref() == c
            })
        };
        of(Some(client))
            .or_else(|| of(None))
            .map(FeeSettings::schedule)
    }

    /// The client's unadvised-approval policy (`nothing` for a client no longer configured).
    pub fn unadvised_policy(&self, client_id: &str) -> UnadvisedPolicy {
        self.clients
            .iter()
            .find(|c| c.id == client_id)
            .map(|c| c.unadvised_approvals)
            .unwrap_or_default()
    }

    /// The partners' own templates (tags 27–51) for a code of this merchant
    /// (`originator.merchant.merchantId`), each at its tag.
    pub fn partner_qr_templates(&self, merchant_id: &str) -> Vec<crate::qr::StaticTemplate> {
        qr_template::templates_for(&self.partners, merchant_id)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let u = &self.unadvised;
        if u.act_after <= u.listed_after {
            return Err(invalid(
                "unadvised.act_after",
                format!(
                    "{} must be longer than unadvised.listed_after ({}): an approval is listed for operators before a policy acts on it",
                    humantime::format_duration(u.act_after),
                    humantime::format_duration(u.listed_after)
                ),
            ));
        }
        let t = &self.timing;
        if t.pay_deadline >= t.pos_timeout {
            return Err(invalid(
                "timing.pay_deadline",
                format!(
                    "{} must be shorter than timing.pos_timeout ({}) so every pay is answered before the POS gives up",
                    humantime::format_duration(t.pay_deadline),
                    humantime::format_duration(t.pos_timeout)
                ),
            ));
        }
        if self.scan_window() < Duration::from_millis(100) {
            return Err(invalid(
                "timing.pay_deadline",
                format!(
                    "{} leaves no scan window after the slowest partner timeout ({})",
                    humantime::format_duration(t.pay_deadline),
                    humantime::format_duration(self.max_partner_timeout())
                ),
            ));
        }
        if self.hub.institution_id.is_empty() {
            return Err(invalid("hub.institution_id", "must not be empty"));
        }
        if self.hub.qr_provider_id.is_empty() || self.hub.qr_provider_id.chars().count() > 32 {
            return Err(invalid(
                "hub.qr_provider_id",
                "must be 1 to 32 characters (it shares tag 26 with the 32-character tranId)",
            ));
        }
        let server = &self.server;
        if server.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        for (key, value) in [
            ("server.first_bytes_timeout", server.first_bytes_timeout),
            ("server.header_read_timeout", server.header_read_timeout),
            ("server.tls_handshake_timeout", server.tls_handshake_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(key, "must be positive"));
            }
        }
        if self.outbox.concurrency == 0 {
            return Err(invalid("outbox.concurrency", "must be at least 1"));
        }
        if self.outbox.initial_backoff > self.outbox.max_backoff {
            return Err(invalid(
                "outbox.initial_backoff",
                "must not exceed outbox.max_backoff",
            ));
        }
        let r = &self.rate_limit;
        if r.requests_per_second > 0 && r.burst == 0 {
            return Err(invalid(
                "rate_limit.burst",
                "must be at least 1 when rate_limit.requests_per_second is set",
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for (i, c) in self.clients.iter().enumerate() {
            check_hash(
                &format!("clients[{i}].password_hash"),
                c.password_hash.as_str(),
            )?;
            if !ids.insert(c.id.as_str()) {
                return Err(invalid(format!("clients[{i}].id"), "is listed twice"));
            }
        }
        for (i, p) in self.partners.iter().enumerate() {
            check_hash(
                &format!("partners[{i}].password_hash"),
                p.password_hash.as_str(),
            )?;
            if !ids.insert(p.id.as_str()) {
                return Err(invalid(
                    format!("partners[{i}].id"),
                    "is already used by a client or another partner",
                ));
            }
            if !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://")) {
                return Err(invalid(
                    format!("partners[{i}].base_url"),
                    "must start with http:// or https://",
                ));
            }
            if p.timeout.is_zero() {
                return Err(invalid(
                    format!("partners[{i}].timeout"),
                    "must be positive",
                ));
            }
            if p.client_name.is_empty() || p.client_name.chars().count() > 40 {
                return Err(invalid(
                    format!("partners[{i}].client_name"),
                    "must be 1 to 40 characters (Institution.name)",
                ));
            }
            if p.max_answer_bytes < 4096 {
                return Err(invalid(
                    format!("partners[{i}].max_answer_bytes"),
                    "must be at least 4096",
                ));
            }
            match (&p.client_cert_path, &p.client_key_path) {
                (Some(_), None) => {
                    return Err(invalid(
                        format!("partners[{i}].client_key_path"),
                        "is required with client_cert_path",
                    ))
                }
                (None, Some(_)) => {
                    return Err(invalid(
                        format!("partners[{i}].client_cert_path"),
                        "is required with client_key_path",
                    ))
                }
                _ => {}
            }
            if p.has_own_tls() && !p.base_url.starts_with("https://") {
                let key = if p.ca_path.is_some() {
                    "ca_path"
                } else {
                    "client_cert_path"
                };
                return Err(invalid(
                    format!("partners[{i}].{key}"),
                    "is only used over TLS; base_url must start with https://",
                ));
            }
        }
        let mut schedules = std::collections::HashSet::new();
        for (i, f) in self.fees.iter().enumerate() {
            let key = |field: &str| format!("fees[{i}].{field}");
            if self.partner(&f.partner).is_none() {
                return Err(invalid(key("partner"), "is not a configured partner"));
            }
            if let Some(client) = &f.client {
                if !self.clients.iter().any(|c| &c.id == client) {
                    return Err(invalid(key("client"), "is not a configured client"));
                }
            }
            if f.currency.len() != 3 || !f.currency.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(
                    key("currency"),
                    "must be 3 digits (ISO 4217 numeric)",
                ));
            }
            if f.fixed < 0 || f.min < 0 || f.max.is_some_and(|m| m < f.min) {
                return Err(invalid(
                    key("max"),
                    "fixed and min must not be negative, and max not below min",
                ));
            }
            if f.percent_bps > 10_000 {
                return Err(invalid(key("percent_bps"), "must be at most 10000 (100 %)"));
            }
            if !schedules.insert((&f.partner, &f.client, &f.currency)) {
                return Err(invalid(
                    key("currency"),
                    "a schedule for this partner, client and currency is listed twice",
                ));
            }
        }
        qr_template::validate(&self.partners, &self.hub.qr_provider_id)?;
        self.retention.validate()?;
        for (i, o) in self.operators.iter().enumerate() {
            check_hash(
                &format!("operators[{i}].password_hash"),
                o.password_hash.as_str(),
            )?;
            if !ids.insert(o.id.as_str()) {
                return Err(invalid(
                    format!("operators[{i}].id"),
                    "is already used by a client, a partner or another operator",
                ));
            }
        }
        Ok(())
    }
}

fn check_hash(key: &str, hash: &str) -> Result<(), ConfigError> {
    PasswordHash::new(hash).map(|_| ()).map_err(|e| {
        invalid(
            key,
            format!("is not an argon2 PHC string ({e}); make one with `qrhub hash-password`"),
        )
    })
}

/// The file at `path`, then `QRHUB__SECTION__KEY` environment variables over it.
fn sources(path: &Path) -> config::ConfigBuilder<config::builder::DefaultState> {
    config::Config::builder()
        .add_source(config::File::from(path).required(false))
        .add_source(
            config::Environment::with_prefix("QRHUB")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        )
}

/// A section of the configuration that is a tool's rather than the hub's (`simulator`), read
/// from the same sources as [`Settings::load`]; `None` when the file has no such section.
pub fn load_section<T: serde::de::DeserializeOwned>(
    path: &Path,
    section: &str,
) -> Result<Option<T>, ConfigError> {
    match sources(path).build()?.get::<T>(section) {
        Ok(value) => Ok(Some(value)),
        Err(config::ConfigError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The database URL without its password, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redact_url("postgres://hub:s3cret@db:5432/qrhub"),
            "postgres://hub:***@db:5432/qrhub"
        );
        assert_eq!(
            redact_url("sqlite://data/qrhub.db"),
            "sqlite://data/qrhub.db"
        );
    }

    const HASH: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";

    fn toml(extra: &str) -> String {
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
[database]
url = "sqlite://data/x.db"
[hub]
institution_id = "qrhub"
qr_provider_id = "za.co.qrhub"
{extra}
"#
        )
    }

    #[test]
    fn defaults_follow_the_design() {
        let s = Settings::from_toml(&toml("")).expect("valid");
        assert_eq!(s.timing.pay_deadline, Duration::from_secs(55));
        assert_eq!(s.scan_window(), Duration::from_secs(55));
    }

    #[test]
    fn the_scan_window_leaves_room_for_the_slowest_partner() {
        let s = Settings::from_toml(&toml(&format!(
            r#"
[[partners]]
id = "w"
name = "W"
password_hash = "{HASH}"
base_url = "http://127.0.0.1:1"
username = "qrhub"
password = "x"
timeout = "25s"
"#
        )))
        .expect("valid");
        assert_eq!(s.scan_window(), Duration::from_secs(30));
    }

    #[test]
    fn a_deadline_past_the_pos_timeout_is_refused_by_name() {
        let err = Settings::from_toml(&toml(
            "[timing]\npos_timeout = \"10s\"\npay_deadline = \"20s\"\nearly_scan_grace = \"1s\"",
        ))
        .expect_err("invalid");
        assert!(err.to_string().contains("timing.pay_deadline"), "{err}");
    }

    #[test]
    fn unadvised_approvals_are_listed_before_a_policy_acts() {
        let s = Settings::from_toml(&toml("")).expect("valid");
        assert!(s.unadvised.act_after > s.unadvised.listed_after);
        assert_eq!(s.unadvised_policy("anyone"), UnadvisedPolicy::Nothing);
        let err = Settings::from_toml(&toml(
            "[unadvised]\nlisted_after = \"2h\"\nact_after = \"1h\"",
        ))
        .expect_err("invalid");
        assert!(err.to_string().contains("unadvised.act_after"), "{err}");
        let s = Settings::from_toml(&toml(&format!(
            "[[clients]]\nid = \"pos\"\npassword_hash = \"{HASH}\"\nunadvised_approvals = \"reverse\""
        )))
        .expect("valid");
        assert_eq!(s.unadvised_policy("pos"), UnadvisedPolicy::Reverse);
    }

    #[test]
    fn a_plain_password_in_place_of_a_hash_is_refused_by_name() {
        let err = Settings::from_toml(&toml(
            "[[clients]]\nid = \"pos\"\npassword_hash = \"secret\"",
        ))
        .expect_err("invalid");
        assert!(
            err.to_string().contains("clients[0].password_hash"),
            "{err}"
        );
    }

    #[test]
    fn debug_output_holds_no_hash_password_or_database_password() {
        let s = Settings::from_toml(&format!(
            r#"
[server]
listen = "127.0.0.1:0"
[database]
url = "postgres://hub:db-s3cret@db/qrhub"
[hub]
institution_id = "qrhub"
qr_provider_id = "za.co.qrhub"
[[clients]]
id = "pos-1"
password_hash = "{HASH}"
[[partners]]
id = "w"
name = "W"
password_hash = "{HASH}"
base_url = "http://127.0.0.1:1"
username = "qrhub"
password = "partner-s3cret"
timeout = "25s"
"#
        ))
        .expect("valid");
        let text = format!("{s:?} {s:#?}");
        for secret in [
            "db-s3cret",
            "partner-s3cret",
            HASH,
            "argon2",
            "RdescudvJCsgt3ub",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("pos-1") && text.contains("qrhub"), "{text}");
    }

    #[test]
    fn the_shipped_configuration_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let s = Settings::load(&path).expect("config/default.toml is valid");
        assert_eq!(
            s.rate_limit.requests_per_second, 0,
            "rate limits ship switched off"
        );
    }

    #[test]
    fn settlement_day_and_retention_are_checked() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let shipped = Settings::load(&path).expect("config/default.toml is valid");
        assert_eq!(
            shipped.settlement.day(),
            crate::domain::SettlementDay::default()
        );
        assert_eq!(
            shipped.retention.payments,
            RetentionSettings::default().payments
        );
        let s = Settings::from_toml(&toml(
            "[settlement]\ntime_zone = \"Africa/Johannesburg\"\ncut_off = \"23:00\"",
        ))
        .expect("valid");
        assert_eq!(s.settlement.day().zone_name(), "Africa/Johannesburg");
        assert_eq!(s.settlement.day().cut_off_text(), "23:00");
        for (bad, key) in [
            ("[settlement]\ntime_zone = \"Mars/Olympus\"", "time_zone"),
            ("[settlement]\ncut_off = \"25:00\"", "cut_off"),
            ("[retention]\nbatch_size = 0", "retention.batch_size"),
            ("[retention]\ninterval = \"0s\"", "retention.interval"),
        ] {
            let err = Settings::from_toml(&toml(bad)).expect_err(bad);
            assert!(err.to_string().contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn rate_limits_are_off_by_default_and_need_a_burst() {
        let s = Settings::from_toml(&toml("")).expect("valid");
        assert_eq!(s.rate_limit.requests_per_second, 0);
        let s = Settings::from_toml(&toml("[rate_limit]\nrequests_per_second = 2\nburst = 3"))
            .expect("valid");
        assert_eq!(
            (s.rate_limit.requests_per_second, s.rate_limit.burst),
            (2, 3)
        );
        let err = Settings::from_toml(&toml("[rate_limit]\nrequests_per_second = 2\nburst = 0"))
            .expect_err("invalid");
        assert!(err.to_string().contains("rate_limit.burst"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err =
            Settings::from_toml(&toml("[timing]\npay_deadlin = \"5s\"")).expect_err("invalid");
        assert!(err.to_string().contains("pay_deadlin"), "{err}");
    }
}
