//! The hub as a client of its partners: `pay`, `confirmPayment`, `reversePayment`.
//!
//! The only question that matters about a failed call is whether the partner could have
//! acted on it: a connection that was never made means nothing reached the partner (final,
//! nothing to reverse); anything after the request went out (a timeout, a dropped
//! connection, an unreadable answer) leaves the outcome unknown.

use bytes::Bytes;
use secrecy::ExposeSecret;
use serde::Serialize;
use std::sync::Once;
use std::time::Duration;

use crate::config::PartnerSettings;

pub const PAY_PATH: &str = "/qr/v1/payments";
pub const CONFIRM_PATH: &str = "/qr/v1/payments/confirmations";
pub const REVERSE_PATH: &str = "/qr/v1/payments/reversals";

/// What came of one call.
#[derive(Debug, Clone)]
pub enum CallResult {
    /// The partner answered with a status and a (possibly empty) body.
    Answered { status: u16, body: Bytes },
    /// No connection was made: the partner cannot have seen the request.
    NotSent { error: String },
    /// The request may have reached the partner, but no complete answer came back in time.
    Unknown { error: String },
}

#[derive(Debug, Clone)]
pub struct PartnerClient {
    http: reqwest::Client,
}

static CRYPTO: Once = Once::new();

/// rustls needs one process-wide crypto provider; ring is the one compiled in.
pub fn install_crypto_provider() {
    CRYPTO.call_once(|| {
        // An error means another part of the process installed one first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl PartnerClient {
    pub fn new() -> anyhow::Result<Self> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .user_agent(concat!("qrhub/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http })
    }

    /// POSTs `body` to `{partner.base_url}{path}` with the hub's credentials and the
    /// partner's timeout, which covers the whole exchange, answer body included.
    pub async fn post<T: Serialize + ?Sized>(
        &self,
        partner: &PartnerSettings,
        path: &str,
        body: &T,
    ) -> CallResult {
        let url = format!("{}{}", partner.base_url.trim_end_matches('/'), path);
        let request = self
            .http
            .post(&url)
            .basic_auth(&partner.username, Some(partner.password.expose_secret()))
            .timeout(partner.timeout)
            .json(body);
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return classify_error(&e),
        };
        let status = response.status().as_u16();
        match response.bytes().await {
            Ok(body) => CallResult::Answered { status, body },
            Err(e) => CallResult::Unknown {
                error: format!("answer {status} could not be read: {}", chain(&e)),
            },
        }
    }
}

fn classify_error(e: &reqwest::Error) -> CallResult {
    let error = chain(e);
    if e.is_connect() {
        CallResult::NotSent { error }
    } else {
        CallResult::Unknown { error }
    }
}

/// The error with its causes, so "connection refused" is not hidden behind "error sending".
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
