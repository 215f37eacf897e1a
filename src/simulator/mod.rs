//! A partner simulator: a scriptable wallet that the hub forwards payments and advices to.
//!
//! It serves the partner's side of the interface, `POST /qr/v1/payments`,
//! `/qr/v1/payments/confirmations` and `/qr/v1/payments/reversals` (each with or without a
//! trailing slash), records every message it receives in a ledger, and can send scans to a
//! hub as the partner. It is for three users:
//!
//! - a newcomer running the hub, which starts one in process from its `[simulator]` section
//!   ([`SimulatorSettings`]), so that there is a partner to talk to;
//! - integration tests, which script it per test through a [`SimulatorHandle`]
//!   ([`PayBehaviour`], [`AdviceBehaviour`]) and read its ledger ([`LedgerEntry`]);
//! - the load generator in another process, through the `/simulator/...` control
//!   endpoints (see `control.rs`).
//!
//! Unless scripted: a `pay` gets the configured default (approve: 201 with a
//! PaymentResponse built from the request); a confirmation gets 202 with its echo; a
//! reversal gets 202 with its echo if the simulator saw a `pay` with that `requestId`, else
//! 404 `UNABLE_TO_LOCATE_RECORD`. A body that is not JSON, or breaks the spec's schema, gets
//! 400 `FORMAT_ERROR`. Wrong or missing credentials, when some are configured, get 401.
//!
//! It can also behave as real partners do: any status with `Retry-After` or `Location`,
//! approvals that are not schema-exact or not JSON, approvals of another amount, and outages
//! that answer every call 503 or refuse connections ([`Outage`]). In strict mode
//! ([`SimulatorSettings::strict`]) it holds the hub to the interface's rules and records
//! every breach ([`Violation`], see `strict.rs`).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use qrhub::model::ErrorType;
//! use qrhub::simulator::{AdviceBehaviour, PayBehaviour, Simulator, SimulatorSettings};
//!
//! let sim = Simulator::start(SimulatorSettings {
//!     listen: "127.0.0.1:0".parse()?,
//!     ..SimulatorSettings::default()
//! })
//! .await?;
//! sim.script_pay(PayBehaviour::decline(ErrorType::InsufficientFunds));
//! sim.script_advice(AdviceBehaviour::fail_times(2));
//! // ... point the hub at sim.base_url(), drive it ...
//! let deliveries = sim.ledger().len();
//! sim.shutdown().await?;
//! # let _ = deliveries; Ok(()) }
//! ```

mod answer;
mod auth;
mod behaviour;
mod control;
mod gate;
mod ledger;
mod scan;
mod script;
mod server;
mod settings;
mod state;
mod strict;

pub use behaviour::{AdviceBehaviour, InvalidStatus, Outage, OutageAnswer, PayBehaviour, Respond};
pub use ledger::{LedgerEntry, MessageKind, Outcome};
pub use settings::{DefaultBehaviour, SimulatorSettings};
pub use strict::{Rule, Violation};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;

use state::{lock, ActiveOutage, Shared};

/// How long [`SimulatorHandle::shutdown`] waits for connections to close before aborting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A client that has not finished its TLS handshake by then is dropped (the hub's is
/// `server.tls_handshake_timeout`).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Binds `settings.listen` (port 0 picks a free port) and serves on a spawned task until
    /// the handle is shut down or dropped.
    pub async fn start(settings: SimulatorSettings) -> anyhow::Result<SimulatorHandle> {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding the partner simulator to {}", settings.listen))?;
        let addr = listener
            .local_addr()
            .context("reading the simulator's bound address")?;
        // reqwest is built without a default TLS provider; ring is the crate's choice. An
        // error only says one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .build()
            .context("building the simulator's HTTP client")?;
        let shared = Arc::new(Shared::new(settings, http));
        let app = server::router(Arc::clone(&shared));
        let stop = shared.shutdown.clone();
        let tls = match &shared.settings.tls {
            Some(section) => Some(Arc::new(
                crate::tls::ReloadableServerConfig::load(section.clone())
                    .context("the simulator's TLS settings")?,
            )),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = match tls {
            Some(tls) => {
                let listener = crate::tls::TlsListener::with_handshake_timeout(
                    listener,
                    tls,
                    TLS_HANDSHAKE_TIMEOUT,
                )?;
                tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stop.cancelled_owned())
                        .await
                })
            }
            None => {
                // Plain HTTP can refuse connections during an outage; behind TLS a refusing
                // outage drops each connection's requests instead.
                let listener = gate::GatedListener::new(listener, shared.outage.subscribe())
                    .context("reading the simulator's bound address")?;
                tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stop.cancelled_owned())
                        .await
                })
            }
        };
        tracing::info!(%addr, partner_id = %shared.settings.partner_id, "partner simulator listening");
        Ok(SimulatorHandle {
            addr,
            scheme,
            shared,
            task: Some(task),
        })
    }
}

/// A running simulator. Dropping it stops the server (without waiting); prefer
/// [`shutdown`](Self::shutdown).
pub struct SimulatorHandle {
    addr: SocketAddr,
    scheme: &'static str,
    shared: Arc<Shared>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl SimulatorHandle {
    /// The address it listens on (the real port when `listen` had port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}` (`https://` with TLS): the partner `base_url` to give the hub.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    pub fn settings(&self) -> &SimulatorSettings {
        &self.shared.settings
    }

    /// Queues `b` for the next `pay` that has no behaviour queued for its `tranId`.
    pub fn script_pay(&self, b: PayBehaviour) {
        lock(&self.shared.script).push_pay(None, b);
    }

    /// Queues `b` for the next `pay` with this `tranId` (ahead of the shared queue).
    pub fn script_pay_for(&self, tran_id: impl Into<String>, b: PayBehaviour) {
        lock(&self.shared.script).push_pay(Some(tran_id.into()), b);
    }

    /// Queues `b` for the next delivery of a confirmation or reversal (of an advice id that
    /// no `FailTimes` holds).
    pub fn script_advice(&self, b: AdviceBehaviour) {
        lock(&self.shared.script).push_advice(None, b);
    }

    /// Queues `b` for the next advice about this `tranId`: the advice's own `tranId`, or that
    /// of the `pay` its `requestId` names.
    pub fn script_advice_for(&self, tran_id: impl Into<String>, b: AdviceBehaviour) {
        lock(&self.shared.script).push_advice(Some(tran_id.into()), b);
    }

    /// Forgets every scripted behaviour and `FailTimes` state.
    pub fn clear_script(&self) {
        lock(&self.shared.script).clear();
    }

    /// A copy of every message received so far, oldest first.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        lock(&self.shared.ledger).snapshot()
    }

    /// How many times a message with this `id` arrived (deliveries of an advice).
    pub fn deliveries(&self, id: &str) -> usize {
        lock(&self.shared.ledger).deliveries(id)
    }

    /// Empties the ledger. The payments seen stay known (reversals of them still get 202).
    pub fn clear_ledger(&self) {
        lock(&self.shared.ledger).clear();
    }

    /// Starts `outage` now, replacing one under way: until it ends, every call on
    /// `/qr/v1/...` gets its answer, whatever is scripted.
    pub fn start_outage(&self, outage: Outage) {
        self.shared
            .outage
            .send_replace(Some(ActiveOutage::starting_now(outage)));
    }

    /// Ends the outage under way, if any.
    pub fn end_outage(&self) {
        self.shared.outage.send_replace(None);
    }

    /// Every breach of the interface's rules seen in strict mode, oldest first.
    pub fn violations(&self) -> Vec<Violation> {
        lock(&self.shared.violations).clone()
    }

    /// Sends the hub a ScanNotification for `tran_id` as this partner, with the hub
    /// credentials; returns the hub's status. An error means no status came back.
    pub async fn send_scan(
        &self,
        tran_id: &str,
        partner_payment_token: Option<&str>,
    ) -> anyhow::Result<u16> {
        Ok(scan::send(&self.shared, tran_id, partner_payment_token)
            .await?
            .status)
    }

    /// Stops accepting, ends hanging and delayed answers (their connections are dropped), and
    /// waits for the server to finish.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.shared.shutdown.cancel();
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(joined) => joined
                .context("the simulator's server task failed")?
                .context("the simulator's server stopped with an error"),
            Err(_) => {
                task.abort();
                tracing::warn!(addr = %self.addr, "simulator connections outlived the grace period; aborted");
                Ok(())
            }
        }
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

impl std::fmt::Debug for SimulatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatorHandle")
            .field("addr", &self.addr)
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}
