//! The hub's work for each operation. Handlers parse and authenticate, then call [`Hub`];
//! the hub decides with [`crate::domain`], persists through [`crate::store`], and talks to
//! partners through [`crate::partner`].

mod advices;
pub use advices::Advice;
mod deliveries;
mod error;
mod events;
mod forward;
mod ids;
pub(crate) mod outbox;
pub(crate) mod partner_health;
mod payments;
mod qr_codes;
mod recent;
pub(crate) mod retention;
mod scans;
pub(crate) mod sweeper;
mod timeline;
mod unadvised;
mod waiters;

pub use error::{HubError, HubResult, RefusalKind};
pub use payments::PayAnswer;
pub use waiters::Waiters;

use std::sync::{Arc, RwLock};
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::partner::PartnerClient;
use crate::store::{NewOutboxMessage, SharedStore};
use tokio::sync::OwnedSemaphorePermit;

/// The configuration a reload may change, with the partner clients built for it: one
/// snapshot, swapped whole, so that a reader never pairs one file's partners with another's
/// clients. A flow takes a snapshot once and keeps it (a held pay keeps the partner and
/// client it resolved); the next flow sees the next one.
#[derive(Debug)]
pub struct Live {
    pub settings: Arc<Settings>,
    pub partners: PartnerClient,
}

/// Everything a request needs, shared by all handlers and workers.
#[derive(Debug)]
pub struct Hub {
    /// Swapped by a configuration reload (`crate::reload`); read with [`Hub::settings`] and
    /// [`Hub::live`]. A lock around an `Arc` keeps the read to a reference count.
    live: RwLock<Arc<Live>>,
    pub store: SharedStore,
    pub clock: SharedClock,
    /// Each partner's calls over the last hour, as this instance made them.
    pub health: crate::partner::health::PartnerHealth,
    pub waiters: Waiters,
    /// Codes and answered payments this instance wrote a moment ago (`recent.rs`).
    recent: recent::RecentRecords,
    /// Wakes the outbox workers when this process queued something.
    pub outbox_wake: Arc<Notify>,
    /// First tries of advices this process queued and sends itself (as many at once as the
    /// outbox workers would).
    first_tries: Arc<tokio::sync::Semaphore>,
    /// Forwarding tasks run detached from the POS's request (a POS that hangs up must not
    /// cancel a call to a partner half way); shutdown waits for them here.
    pub tasks: TaskTracker,
    /// Timeline events waiting for the batching writer (`events.rs`).
    events: tokio::sync::mpsc::Sender<events::EventMessage>,
    event_queue: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<events::EventMessage>>>,
    /// How advice deliveries ended, waiting for the recorder (`deliveries.rs`).
    deliveries: tokio::sync::mpsc::Sender<deliveries::Finished>,
    delivery_queue: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<deliveries::Finished>>>,
}

impl Hub {
    pub fn new(
        settings: Arc<Settings>,
        store: SharedStore,
        clock: SharedClock,
        partners: PartnerClient,
    ) -> Arc<Self> {
        let (event_sender, event_queue) = events::channel();
        let (delivery_sender, delivery_queue) = deliveries::channel();
        let first_tries = Arc::new(tokio::sync::Semaphore::new(settings.outbox.concurrency));
        Arc::new(Self {
            live: RwLock::new(Arc::new(Live { settings, partners })),
            store,
            clock,
            health: Default::default(),
            waiters: Waiters::default(),
            recent: Default::default(),
            outbox_wake: Arc::new(Notify::new()),
            first_tries,
            tasks: TaskTracker::new(),
            events: event_sender,
            event_queue: std::sync::Mutex::new(Some(event_queue)),
            deliveries: delivery_sender,
            delivery_queue: std::sync::Mutex::new(Some(delivery_queue)),
        })
    }

    /// The configuration in force now (a snapshot: a reload does not change it under you).
    pub fn settings(&self) -> Arc<Settings> {
        Arc::clone(&self.live().settings)
    }

    /// The configuration in force now with its partner clients.
    pub fn live(&self) -> Arc<Live> {
        let guard = self.live.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&guard)
    }

    /// Puts `live` in force for every request and worker from now on.
    pub fn replace_live(&self, live: Live) {
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(live);
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Leases `msg` to this process for its first try when a slot is free, so that it is
    /// sent right after its commit without waiting for an outbox worker to claim it (a
    /// statement and a hop less per advice). Without a slot it is queued for the workers.
    fn lease_first_try(&self, msg: &mut NewOutboxMessage) -> Option<OwnedSemaphorePermit> {
        let slot = Arc::clone(&self.first_tries).try_acquire_owned().ok()?;
        msg.first_try_until = Some(self.now() + span(outbox::lease(&self.settings())));
        Some(slot)
    }

    /// Once `msg` is committed: its first try from here, or a wake-up for the workers. A
    /// first try cut short by a crash is the workers' when its lease ends.
    fn start_first_try(
        self: &Arc<Self>,
        msg: &NewOutboxMessage,
        slot: Option<OwnedSemaphorePermit>,
    ) {
        match (slot, msg.first_try()) {
            (Some(slot), Some(row)) => {
                let hub = Arc::clone(self);
                self.tasks.spawn(async move {
                    let tried = outbox::try_once(&hub, &row).await;
                    // The slot bounds calls to partners; recording the result is not one.
                    drop(slot);
                    if let Err(e) = outbox::record(&hub, &row, tried).await {
                        tracing::error!(error.cause_chain = ?e, "recording a delivery failed");
                    }
                });
            }
            _ => self.outbox_wake.notify_one(),
        }
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
