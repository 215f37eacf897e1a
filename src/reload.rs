//! Changes without a restart: on SIGHUP the hub reloads its listener's certificate (when it
//! has one, `crate::tls`) and re-reads its configuration file, with the same environment
//! overrides as at start.
//!
//! What a reload changes: the POS clients (credentials and policy), the partners (URLs,
//! credentials, TLS files, templates, timeouts, limits), the back-office operators and the
//! fee schedules. They are checked as a whole with the rest of the configuration in force
//! (a fee schedule must name a configured partner, the scan window must leave room for the
//! slowest partner), the published-password check runs as at start, and only then are they
//! put in force at once ([`Hub::replace_live`], then the credentials). Anything wrong keeps
//! the configuration in force, says why in the log, and counts a failure.
//!
//! What needs a restart: everything else (listeners, database and pools, timing, outbox,
//! logs, limits, the hub's identity). A reload that finds those changed keeps them as they
//! are and logs, naming the sections, that they were not applied.
//!
//! Work in flight carries on: a flow takes a snapshot of the configuration when it starts a
//! step and keeps it (a held pay keeps the client that sent it and, once a scan matched it,
//! the partner it was sent to); the outbox resolves the partner when it delivers, so queued
//! advices go to the partner's new address and with its new credentials. A partner removed
//! while it holds a payment: see DESIGN.md §7.

use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::credentials::Credentials;
use crate::service::{Hub, Live};
use crate::tls::ReloadableServerConfig;

/// The callers' (user id, argon2 hash) pairs of a configuration, by role.
#[derive(Debug, Default)]
pub(crate) struct Accounts {
    pub clients: Vec<(String, String)>,
    pub partners: Vec<(String, String)>,
    pub operators: Vec<(String, String)>,
}

impl Accounts {
    pub(crate) fn of(settings: &Settings) -> Self {
        Self {
            clients: settings
                .clients
                .iter()
                .map(|c| (c.id.clone(), c.password_hash.as_str().to_owned()))
                .collect(),
            partners: settings
                .partners
                .iter()
                .map(|p| (p.id.clone(), p.password_hash.as_str().to_owned()))
                .collect(),
            operators: settings
                .operators
                .iter()
                .map(|o| (o.id.clone(), o.password_hash.as_str().to_owned()))
                .collect(),
        }
    }
}

/// What a SIGHUP reloads, and where from.
#[derive(Debug, Clone)]
pub struct Reloader {
    pub hub: Arc<Hub>,
    pub credentials: Credentials,
    /// `None`: the hub was built from a text (tests); only the certificate is reloaded.
    pub config_path: Option<PathBuf>,
    pub tls: Option<Arc<ReloadableServerConfig>>,
}

/// A reload that was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Sections of the file that differ from those in force and need a restart.
    pub not_applied: Vec<String>,
}

impl Reloader {
    /// What SIGHUP does: the certificate, then the configuration; each logged, and a
    /// failure of either keeps what was in force.
    pub async fn hangup(&self) {
        if let Some(tls) = &self.tls {
            match tls.reload() {
                Ok(()) => tracing::info!(
                    cert = %tls.cert_path().display(),
                    "TLS certificate reloaded; new connections use it"
                ),
                Err(e) => tracing::error!(
                    error = format!("{e:#}"),
                    "TLS certificate reload failed; still using the previous one"
                ),
            }
        }
        if self.config_path.is_some() {
            // Logged and counted inside.
            let _ = self.reload_config().await;
        }
    }

    /// Re-reads the configuration file and puts its clients, partners, operators and fee
    /// schedules in force, or keeps the configuration in force and says why. Logs and
    /// counts either way (`qrhub_config_reloads_total`, `qrhub_config_reload_failures_total`,
    /// `qrhub_config_last_reload_success_timestamp_seconds`).
    pub async fn reload_config(&self) -> anyhow::Result<Reloaded> {
        let result = self.try_reload().await;
        match &result {
            Ok(reloaded) => {
                crate::metrics::config_reloaded(self.hub.clock.now());
                let settings = self.hub.settings();
                tracing::info!(
                    clients = settings.clients.len(),
                    partners = settings.partners.len(),
                    operators = settings.operators.len(),
                    fee_schedules = settings.fees.len(),
                    "configuration reloaded: clients, partners, operators and fee schedules in force"
                );
                if !reloaded.not_applied.is_empty() {
                    tracing::warn!(
                        sections = %reloaded.not_applied.join(", "),
                        "configuration reload: these sections changed and need a restart; not applied"
                    );
                }
            }
            Err(e) => {
                crate::metrics::config_reload_failed();
                tracing::error!(
                    error = format!("{e:#}"),
                    "configuration reload refused; the configuration in force stays"
                );
            }
        }
        result
    }

    async fn try_reload(&self) -> anyhow::Result<Reloaded> {
        let path = self
            .config_path
            .clone()
            .context("the hub was not started from a configuration file")?;
        let current = self.hub.settings();
        // Reading, checking and the published-password check (argon2 runs) off the runtime.
        let (next, not_applied) = tokio::task::spawn_blocking(move || {
            let loaded = Settings::load(&path)
                .with_context(|| format!("configuration {} is not usable", path.display()))?;
            let (next, not_applied) = merge(&current, &loaded)?;
            crate::published::check_listen(&next)?;
            anyhow::Ok((next, not_applied))
        })
        .await
        .context("the configuration reload did not finish")??;
        let partners = self
            .hub
            .live()
            .partners
            .reloaded(&next.partners)
            .context("cannot build the partner HTTP clients")?;
        let accounts = Accounts::of(&next);
        // The partners first, then who may call: a scan by a partner just added finds it
        // configured; one by a partner just removed, let in a moment longer, finds it gone
        // and ends as any payment of a removed partner does.
        self.hub.replace_live(Live {
            settings: Arc::new(next),
            partners,
        });
        self.credentials
            .replace(&accounts.clients, &accounts.partners, &accounts.operators);
        Ok(Reloaded { not_applied })
    }
}

/// The configuration in force with `loaded`'s clients, partners, operators and fee
/// schedules, checked as a whole, and the names of `loaded`'s sections that need a restart
/// to take effect.
pub(crate) fn merge(
    current: &Settings,
    loaded: &Settings,
) -> anyhow::Result<(Settings, Vec<String>)> {
    let mut next = current.clone();
    next.clients = loaded.clients.clone();
    next.partners = loaded.partners.clone();
    next.operators = loaded.operators.clone();
    next.fees = loaded.fees.clone();
    next.validate()?;
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let mut not_applied: Vec<String> = [
        ("server", differs(&current.server, &loaded.server)),
        (
            "database",
            current.database.url != loaded.database.url
                || current.database.max_connections != loaded.database.max_connections,
        ),
        ("hub", differs(&current.hub, &loaded.hub)),
        ("timing", differs(&current.timing, &loaded.timing)),
        ("outbox", differs(&current.outbox, &loaded.outbox)),
        ("unadvised", differs(&current.unadvised, &loaded.unadvised)),
        ("log", differs(&current.log, &loaded.log)),
        (
            "rate_limit",
            differs(&current.rate_limit, &loaded.rate_limit),
        ),
        ("auth", differs(&current.auth, &loaded.auth)),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(section, _)| section.to_owned())
    .collect();
    // Sections not named above (added later) are caught as a whole: with the reloadable
    // ones equal by construction, any other difference is in a restart-only section.
    if not_applied.is_empty() && differs(&next, loaded) {
        not_applied.push("other settings".to_owned());
    }
    Ok((next, not_applied))
}

/// Runs [`Reloader::hangup`] on every SIGHUP until `stop`. `hangup` is registered by the
/// caller before the listener serves, so that a SIGHUP never finds the default action
/// (termination).
#[cfg(unix)]
pub(crate) async fn on_hangup(
    reloader: Reloader,
    mut hangup: tokio::signal::unix::Signal,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            received = hangup.recv() => {
                if received.is_none() {
                    return;
                }
                reloader.hangup().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";

    fn settings(listen: &str, pool: u32, extra: &str) -> Settings {
        Settings::from_toml(&format!(
            r#"
[server]
listen = "{listen}"
[database]
url = "sqlite://data/x.db"
max_connections = {pool}
[hub]
institution_id = "qrhub"
qr_provider_id = "za.co.qrhub"
[[partners]]
id = "w"
name = "W"
password_hash = "{HASH}"
base_url = "http://127.0.0.1:1"
username = "qrhub"
password = "x"
timeout = "25s"
{extra}
"#
        ))
        .expect("valid")
    }

    #[test]
    fn a_reload_takes_the_callers_and_fees_and_names_what_needs_a_restart() {
        let current = settings("127.0.0.1:8080", 16, "");
        let loaded = settings(
            "127.0.0.1:9090",
            32,
            &format!(
                "[[clients]]\nid = \"pos-9\"\npassword_hash = \"{HASH}\"\n\
                 [[fees]]\npartner = \"w\"\ncurrency = \"710\"\npercent_bps = 100\n"
            ),
        );
        let (next, not_applied) = merge(&current, &loaded).expect("valid");
        assert_eq!(next.clients.len(), 1);
        assert_eq!(next.fees.len(), 1);
        assert_eq!(next.server.listen, current.server.listen, "kept");
        assert_eq!(next.database.max_connections, 16, "kept");
        assert_eq!(not_applied, ["server", "database"]);
        let (_, none) = merge(&current, &current).expect("valid");
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn a_reload_is_checked_with_the_configuration_in_force() {
        // A partner timeout that leaves no scan window under the deadline in force.
        let current = settings("127.0.0.1:8080", 16, "");
        let mut slow = settings("127.0.0.1:8080", 16, "");
        if let Some(p) = slow.partners.first_mut() {
            p.timeout = std::time::Duration::from_secs(60);
        }
        let err = merge(&current, &slow).expect_err("no scan window");
        assert!(
            format!("{err:#}").contains("timing.pay_deadline"),
            "{err:#}"
        );
    }
}
