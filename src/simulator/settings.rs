//! The `[simulator]` section of the hub's configuration file.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

use super::behaviour::PayBehaviour;
use crate::config::ServerTlsSettings;
use crate::model::{ErrorType, Institution};

/// How the simulator is set up: where it listens, who it is, what it answers when nothing was
/// scripted, and how it reaches the hub to send scans.
///
/// ```toml
/// [simulator]
/// listen = "127.0.0.1:8081"          # port 0 picks a free port
/// partner_id = "wallet-1"            # also its ThirdPartyIdentifier institution id
/// partner_name = "Demo Wallet"
/// username = "qrhub"                 # optional: Basic credentials it requires from the hub
/// password = "secret"
/// behaviour = "approve"              # or "decline" (400 DECLINED_BY_PARTNER)
/// latency = "0s"                     # added before every /qr/v1 answer
/// hub_url = "http://127.0.0.1:8080"  # where scans go: {hub_url}/qr/v1/scans
/// hub_username = "wallet-1"          # defaults to partner_id (the hub wants user = partner.id)
/// hub_password = "secret"
/// # tls = { cert_path = "partner.pem", key_path = "partner.key", client_ca_path = "hub-ca.pem" }
/// strict = false                     # true: refuse and record breaches of the interface's rules
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorSettings {
    /// Whether `qrhub serve` starts the simulator in-process beside the hub.
    #[serde(default)]
    pub enabled: bool,
    /// Address to bind; port 0 lets the system choose (see `SimulatorHandle::addr`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The partner's institution id, the identity used on scans and on approvals that have
    /// no `partner` of their own.
    #[serde(default = "default_partner_id")]
    pub partner_id: String,
    #[serde(default = "default_partner_name")]
    pub partner_name: String,
    /// Basic credentials the hub must present. When `None`, any (or no) credentials pass;
    /// when set, wrong or missing ones get 401 with `WWW-Authenticate: Basic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// What a `pay` gets when nothing was scripted for it.
    #[serde(default)]
    pub behaviour: DefaultBehaviour,
    /// Added before every answer on `/qr/v1/...` (scripted delays come on top).
    #[serde(default, with = "humantime_serde")]
    pub latency: Duration,
    /// The hub's base URL, for scans.
    #[serde(default = "default_hub_url")]
    pub hub_url: String,
    /// Basic user for scans; `None` means `partner_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_password: Option<String>,
    /// Serve HTTPS with this certificate (and, with `client_ca_path`, require the hub's
    /// client certificate), as a partner reached over TLS would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Strict mode: every message must be schema-valid and a `pay`'s Basic user must be its
    /// `client.id`; a breach is answered 400 FORMAT_ERROR and recorded (see `strict.rs`).
    #[serde(default)]
    pub strict: bool,
}

/// The answer to an unscripted `pay`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultBehaviour {
    #[default]
    Approve,
    /// 400 with `DECLINED_BY_PARTNER`.
    Decline,
}

impl DefaultBehaviour {
    pub fn pay_behaviour(self) -> PayBehaviour {
        match self {
            Self::Approve => PayBehaviour::Approve,
            Self::Decline => PayBehaviour::Decline {
                status: 400,
                error_type: ErrorType::DeclinedByPartner,
            },
        }
    }
}

impl SimulatorSettings {
    /// The simulator's own institution.
    pub fn institution(&self) -> Institution {
        Institution {
            id: self.partner_id.clone(),
            name: self.partner_name.clone(),
        }
    }

    /// The Basic user presented to the hub on scans.
    pub fn hub_user(&self) -> &str {
        self.hub_username.as_deref().unwrap_or(&self.partner_id)
    }
}

impl Default for SimulatorSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: default_listen(),
            partner_id: default_partner_id(),
            partner_name: default_partner_name(),
            username: None,
            password: None,
            behaviour: DefaultBehaviour::default(),
            latency: Duration::ZERO,
            hub_url: default_hub_url(),
            hub_username: None,
            hub_password: None,
            tls: None,
            strict: false,
        }
    }
}

/// Passwords are never printed.
impl std::fmt::Debug for SimulatorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |p: &Option<String>| p.as_ref().map(|_| "<redacted>");
        f.debug_struct("SimulatorSettings")
            .field("enabled", &self.enabled)
            .field("listen", &self.listen)
            .field("partner_id", &self.partner_id)
            .field("partner_name", &self.partner_name)
            .field("username", &self.username)
            .field("password", &redact(&self.password))
            .field("behaviour", &self.behaviour)
            .field("latency", &self.latency)
            .field("hub_url", &self.hub_url)
            .field("hub_username", &self.hub_username)
            .field("hub_password", &redact(&self.hub_password))
            .field("tls", &self.tls)
            .field("strict", &self.strict)
            .finish()
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}

fn default_partner_id() -> String {
    "wallet-1".to_owned()
}

fn default_partner_name() -> String {
    "Demo Wallet".to_owned()
}

fn default_hub_url() -> String {
    "http://127.0.0.1:8080".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_section_takes_the_defaults() {
        let s: SimulatorSettings = serde_json::from_str("{}").expect("defaults");
        assert_eq!(s.listen, default_listen());
        assert_eq!(s.behaviour, DefaultBehaviour::Approve);
        assert_eq!(s.latency, Duration::ZERO);
        assert_eq!(s.hub_user(), "wallet-1");
    }

    #[test]
    fn durations_and_behaviour_are_read_as_written() {
        let s: SimulatorSettings = serde_json::from_str(
            r#"{"listen":"127.0.0.1:0","latency":"250ms","behaviour":"decline","hub_username":"w"}"#,
        )
        .expect("valid");
        assert_eq!(s.listen.port(), 0);
        assert_eq!(s.latency, Duration::from_millis(250));
        assert_eq!(s.behaviour, DefaultBehaviour::Decline);
        assert_eq!(s.hub_user(), "w");
    }

    #[test]
    fn passwords_are_not_printed() {
        let s = SimulatorSettings {
            password: Some("hunter2".into()),
            hub_password: Some("hunter3".into()),
            ..SimulatorSettings::default()
        };
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter"));
    }
}
