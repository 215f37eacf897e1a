//! What the simulator's handlers share.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ledger::Ledger;
use super::script::Script;
use super::settings::SimulatorSettings;

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
        }
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
