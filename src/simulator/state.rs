//! What the simulator's handlers share.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::behaviour::{Outage, OutageAnswer};
use super::ledger::Ledger;
use super::script::Script;
use super::settings::SimulatorSettings;
use super::strict::Violation;

/// One per simulator, behind an `Arc`.
///
/// The locks are `std` mutexes: each is held for a few map operations and never across an
/// `.await`, which is the case the tokio docs recommend them for.
pub(crate) struct Shared {
    pub settings: SimulatorSettings,
    pub script: Mutex<Script>,
    pub ledger: Mutex<Ledger>,
    /// The partner's own record: the id of every `pay` it has seen, with its `tranId`. A
    /// reversal refers to one of these or answers 404. A ledger reset keeps it.
    pub payments: Mutex<HashMap<String, String>>,
    /// Cancelled on shutdown: ends hangs and delays, and stops the server.
    pub shutdown: CancellationToken,
    /// For scans to the hub.
    pub http: reqwest::Client,
    /// Breaches of the interface's rules seen in strict mode, oldest first.
    pub violations: Mutex<Vec<Violation>>,
    /// The outage under way, if any; the listener watches it to refuse connections.
    pub outage: watch::Sender<Option<ActiveOutage>>,
}

/// An outage and when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ActiveOutage {
    pub until: tokio::time::Instant,
    pub answer: OutageAnswer,
}

impl ActiveOutage {
    pub(crate) fn starting_now(o: Outage) -> Self {
        Self {
            until: tokio::time::Instant::now() + o.lasting,
            answer: o.answer,
        }
    }

    pub(crate) fn is_on(&self) -> bool {
        tokio::time::Instant::now() < self.until
    }
}

impl Shared {
    pub(crate) fn new(settings: SimulatorSettings, http: reqwest::Client) -> Self {
        Self {
            settings,
            script: Mutex::default(),
            ledger: Mutex::default(),
            payments: Mutex::default(),
            shutdown: CancellationToken::new(),
            http,
            violations: Mutex::default(),
            outage: watch::Sender::new(None),
        }
    }

    /// What the outage under way answers; `None` when there is none (or it has ended).
    pub(crate) fn outage_answer(&self) -> Option<OutageAnswer> {
        self.outage
            .borrow()
            .as_ref()
            .filter(|o| o.is_on())
            .map(|o| o.answer.clone())
    }

    /// Waits `by`; `false` if the simulator shut down meanwhile.
    pub(crate) async fn pause(&self, by: Duration) -> bool {
        if by.is_zero() {
            return !self.shutdown.is_cancelled();
        }
        tokio::select! {
            () = tokio::time::sleep(by) => true,
            () = self.shutdown.cancelled() => false,
        }
    }
}

/// Locks `m`, carrying on after a panic elsewhere: every update here leaves the data whole.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
