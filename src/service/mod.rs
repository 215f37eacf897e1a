//! The hub's work for each operation. Handlers parse and authenticate, then call [`Hub`];
//! the hub decides with [`crate::domain`], persists through [`crate::store`], and talks to
//! partners through [`crate::partner`].

mod advices;
pub use advices::Advice;
mod error;
mod events;
mod forward;
mod payments;
mod qr_codes;
mod scans;
pub mod sweeper;
mod timeline;
mod waiters;

pub use error::{HubError, HubResult};
pub use payments::PayAnswer;
pub use waiters::Waiters;

use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::partner::PartnerClient;
use crate::store::SharedStore;

/// Everything a request needs, shared by all handlers and workers.
#[derive(Debug)]
pub struct Hub {
    pub settings: Arc<Settings>,
    pub store: SharedStore,
    pub clock: SharedClock,
    pub partners: PartnerClient,
    pub waiters: Waiters,
    /// Wakes the outbox workers when this process queued something.
    pub outbox_wake: Arc<Notify>,
    /// Forwarding tasks run detached from the POS's request (a POS that hangs up must not
    /// cancel a call to a partner half way); shutdown waits for them here.
    pub tasks: TaskTracker,
    /// Timeline events waiting for the batching writer (`events.rs`).
    events: tokio::sync::mpsc::Sender<events::EventMessage>,
    event_queue: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<events::EventMessage>>>,
}

impl Hub {
    pub fn new(
        settings: Arc<Settings>,
        store: SharedStore,
        clock: SharedClock,
        partners: PartnerClient,
    ) -> Arc<Self> {
        let (event_sender, event_queue) = events::channel();
        Arc::new(Self {
            settings,
            store,
            clock,
            partners,
            waiters: Waiters::default(),
            outbox_wake: Arc::new(Notify::new()),
            tasks: TaskTracker::new(),
            events: event_sender,
            event_queue: std::sync::Mutex::new(Some(event_queue)),
        })
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Wakes waiters on `key` in this process and in every other instance on the database.
    /// A lost announcement only delays the other instance's waiter to its deadline.
    async fn wake_everywhere(&self, key: &str) {
        self.waiters.wake(key);
        if let Err(e) = self.store.announce(key).await {
            tracing::warn!(error = %e, key, "could not announce a wake-up to other instances");
        }
    }

    /// Relays other instances' announcements to this process's waiters until they stop.
    pub async fn relay_announcements(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut announcements = match self.store.announcements().await {
            Ok(Some(rx)) => rx,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for other instances' wake-ups; waits end at their deadlines");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                key = announcements.recv() => match key {
                    Some(key) => self.waiters.wake(&key),
                    None => return,
                },
            }
        }
    }
}

/// A chrono span from a std duration, saturating instead of failing on absurd values.
pub fn span(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
