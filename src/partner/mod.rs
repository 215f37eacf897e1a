//! The hub as a client of its partners: `pay`, `confirmPayment`, `reversePayment`.
//!
//! The only question that matters about a failed call is whether the partner could have
//! acted on it: a connection that was never made means nothing reached the partner (final,
//! nothing to reverse); anything after the request went out (a timeout, a dropped
//! connection, an unreadable answer) leaves the outcome unknown.
//!
//! Over TLS, a handshake the hub gives up on (the partner's certificate is not trusted, no
//! protocol in common) is part of connecting: reqwest reports it as a connect error, so
//! nothing was sent. A partner that refuses the hub's client certificate is different under
//! TLS 1.3: the hub's side of the handshake is already done and the request written when
//! the refusal arrives, which looks like a connection dropped after sending, so it counts
//! as unknown (a reversal is queued; it fails the same way until it expires).

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use crate::config::PartnerSettings;

pub(crate) mod health;

use crate::model::Operation;

/// What came of one call.
#[derive(Debug, Clone)]
pub enum CallResult {
    /// The partner answered with a status and a (possibly empty) body.
    Answered {
        status: u16,
        body: Bytes,
        /// The answer's `Retry-After`, if it had a readable one.
        retry_after: Option<RetryAfter>,
        /// The body was longer than the partner's `max_answer_bytes` and was cut there: the
        /// status still counts (an advice needs only that), the body does not (a `pay` with
        /// one is unknown).
        truncated: bool,
    },
    /// No connection was made: the partner cannot have seen the request.
    NotSent { error: String },
    /// The request may have reached the partner, but no complete answer came back in time.
    Unknown { error: String },
}

/// A `Retry-After` header: a number of seconds, or an HTTP date (RFC 9110 §10.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    Seconds(u64),
    At(DateTime<Utc>),
}

impl RetryAfter {
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Self::Seconds(seconds));
        }
        httpdate::parse_http_date(value)
            .ok()
            .map(|t| Self::At(DateTime::<Utc>::from(t)))
    }

    /// How long from `now` (the hub's clock) the partner asked the hub to wait.
    pub fn delay(self, now: DateTime<Utc>) -> Duration {
        match self {
            Self::Seconds(s) => Duration::from_secs(s),
            Self::At(at) => (at - now).to_std().unwrap_or(Duration::ZERO),
        }
    }
}

/// One HTTP client (and connection pool) per distinct TLS setup: partners without TLS
/// settings of their own share the default one, trusting the built-in web roots.
#[derive(Debug, Clone)]
pub struct PartnerClient {
    http: reqwest::Client,
    /// Partner id → the client built for its `ca_path` / client certificate.
    own_tls: HashMap<String, reqwest::Client>,
}

/// What makes two partners' TLS setups the same.
type TlsKey = (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>);

static CRYPTO: Once = Once::new();

/// rustls needs one process-wide crypto provider; ring is the one compiled in.
pub fn install_crypto_provider() {
    CRYPTO.call_once(|| {
        // An error means another part of the process installed one first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_rustls_tls()
        // A redirect is never followed: reqwest would repeat a POST as a GET without its
        // body, so the message would not arrive, and the answer to that GET (a 404, say)
        // would be taken for the partner's answer to the message. A 3xx is answered as it
        // came: "not processed" for `pay`, "not yet" for an advice.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .user_agent(concat!("qrhub/", env!("CARGO_PKG_VERSION")))
}

/// The client for partner `i`'s own TLS settings; a bad file stops start-up naming its key.
fn own_tls_client(i: usize, partner: &PartnerSettings) -> anyhow::Result<reqwest::Client> {
    let mut builder = builder();
    if let Some(path) = &partner.ca_path {
        let key = format!("partners[{i}].ca_path");
        // Parsed as a root store first, so that a file of non-CA junk is refused here.
        crate::tls::load_roots(&key, path)?;
        builder = builder.tls_built_in_root_certs(false);
        for cert in crate::tls::load_certs(&key, path)? {
            let cert = reqwest::Certificate::from_der(cert.as_ref())
                .with_context(|| format!("configuration key `{key}`: unusable certificate"))?;
            builder = builder.add_root_certificate(cert);
        }
    }
    if let (Some(cert_path), Some(key_path)) = (&partner.client_cert_path, &partner.client_key_path)
    {
        let cert_key = format!("partners[{i}].client_cert_path");
        let certs = crate::tls::load_certs(&cert_key, cert_path)?;
        let private_key =
            crate::tls::load_key(&format!("partners[{i}].client_key_path"), key_path)?;
        crate::tls::check_key_pair(&cert_key, &certs, &private_key)?;
        // reqwest takes the identity as one PEM buffer of certificates and key.
        let mut pem = std::fs::read(cert_path)
            .with_context(|| format!("configuration key `{cert_key}`: cannot read it"))?;
        pem.push(b'\n');
        pem.extend(std::fs::read(key_path).with_context(|| {
            format!("configuration key `partners[{i}].client_key_path`: cannot read it")
        })?);
        let identity = reqwest::Identity::from_pem(&pem)
            .with_context(|| format!("configuration key `{cert_key}`: unusable with its key"))?;
        builder = builder.identity(identity);
    }
    builder
        .build()
        .with_context(|| format!("cannot build the HTTP client for partners[{i}]"))
}

impl PartnerClient {
    /// The default client, and one per distinct TLS setup among `partners`; reads their
    /// certificate files now.
    pub fn new(partners: &[PartnerSettings]) -> anyhow::Result<Self> {
        install_crypto_provider();
        let http = builder().build()?;
        Self::with_default(http, partners)
    }

    /// The clients for a reloaded configuration's `partners`: the default client, and its
    /// pool of open connections, stay; the TLS setups of their own are read again from
    /// their files (a renewed client certificate takes effect this way).
    pub fn reloaded(&self, partners: &[PartnerSettings]) -> anyhow::Result<Self> {
        Self::with_default(self.http.clone(), partners)
    }

    fn with_default(http: reqwest::Client, partners: &[PartnerSettings]) -> anyhow::Result<Self> {
        let mut by_setup: HashMap<TlsKey, reqwest::Client> = HashMap::new();
        let mut own_tls = HashMap::new();
        for (i, partner) in partners.iter().enumerate() {
            if !partner.has_own_tls() {
                continue;
            }
            let setup = (
                partner.ca_path.clone(),
                partner.client_cert_path.clone(),
                partner.client_key_path.clone(),
            );
            let client = match by_setup.get(&setup) {
                Some(client) => client.clone(),
                None => {
                    let client = own_tls_client(i, partner)?;
                    by_setup.insert(setup, client.clone());
                    client
                }
            };
            own_tls.insert(partner.id.clone(), client);
        }
        Ok(Self { http, own_tls })
    }

    fn client_for(&self, partner: &PartnerSettings) -> &reqwest::Client {
        self.own_tls.get(&partner.id).unwrap_or(&self.http)
    }

    /// POSTs `body` to the operation's path under `partner.base_url` with the hub's credentials and the
    /// partner's timeout, which covers the whole exchange, answer body included.
    pub async fn post<T: Serialize + ?Sized>(
        &self,
        partner: &PartnerSettings,
        operation: Operation,
        body: &T,
    ) -> CallResult {
        let url = format!(
            "{}{}",
            partner.base_url.trim_end_matches('/'),
            operation.path()
        );
        let request = self
            .client_for(partner)
            .post(&url)
            .basic_auth(&partner.username, Some(partner.password.expose_secret()))
            .timeout(partner.timeout)
            .json(body);
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return classify_error(&e),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(RetryAfter::parse);
        // Read at most `max_answer_bytes`: a partner (or whatever answers at its address)
        // must not make the hub buffer an unbounded body.
        let limit = partner.max_answer_bytes;
        let mut body = BytesMut::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        let room = limit.saturating_sub(body.len());
                        body.extend_from_slice(&chunk[..room.min(chunk.len())]);
                        return CallResult::Answered {
                            status,
                            body: body.freeze(),
                            retry_after,
                            truncated: true,
                        };
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return CallResult::Unknown {
                        error: format!("answer {status} could not be read: {}", chain(&e)),
                    }
                }
            }
        }
        CallResult::Answered {
            status,
            body: body.freeze(),
            retry_after,
            truncated: false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        let Some(now) = now else {
            panic!("test date parses")
        };
        assert_eq!(RetryAfter::parse(" 120 "), Some(RetryAfter::Seconds(120)));
        let at = RetryAfter::parse("Wed, 21 Oct 2015 07:28:30 GMT");
        assert_eq!(at.map(|a| a.delay(now)), Some(Duration::from_secs(30)));
        // A date already past means "now".
        let past = RetryAfter::parse("Wed, 21 Oct 2015 07:00:00 GMT");
        assert_eq!(past.map(|a| a.delay(now)), Some(Duration::ZERO));
        assert_eq!(RetryAfter::parse("soon"), None);
        assert_eq!(RetryAfter::parse("-5"), None);
    }
}
