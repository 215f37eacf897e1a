//! Retention: what the hub no longer needs is deleted in small batches (DESIGN.md §7).
//! Timeline events and delivered advices go after `[retention] events` and `outbox`;
//! finished payments, with everything recorded about them, after `payments` (years: they
//! are financial records). A pending advice is never purged, nor a refused or dead one, nor
//! any payment one of them belongs to.

use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use super::{span, Hub};
use crate::store::Purge;

/// What one purge pass deleted, per kind (payments: how many payments).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub events: u64,
    pub outbox: u64,
    pub payments: u64,
    /// Another instance was purging; this pass left the rest to it.
    pub left_to_another_instance: bool,
}

impl Hub {
    /// One pass: each kind in batches of `batch_size`, a `pause` between batches, until a
    /// batch comes back short. Stops early (with what it did) when `stop` is cancelled.
    pub async fn purge(self: &Arc<Self>, stop: &CancellationToken) -> anyhow::Result<PurgeReport> {
        let current = self.settings();
        let settings = &current.retention;
        let limit = i64::from(settings.batch_size.max(1));
        let now = self.now();
        let mut report = PurgeReport::default();
        for what in Purge::ALL {
            let keep = match what {
                Purge::Events => settings.events,
                Purge::DeliveredOutbox => settings.outbox,
                Purge::Payments => settings.payments,
            };
            // A period longer than the calendar holds keeps everything.
            let Some(before) = now.checked_sub_signed(span(keep)) else {
                continue;
            };
            loop {
                let Some(deleted) = self.store.purge(what, before, limit).await.map_err(|e| {
                    anyhow::anyhow!("purging {} before {before}: {e}", what.table())
                })?
                else {
                    report.left_to_another_instance = true;
                    return Ok(report);
                };
                crate::metrics::retention_purged(what.table(), deleted);
                match what {
                    Purge::Events => report.events += deleted,
                    Purge::DeliveredOutbox => report.outbox += deleted,
                    Purge::Payments => report.payments += deleted,
                }
                if deleted < limit as u64 {
                    break;
                }
                tokio::select! {
                    _ = stop.cancelled() => return Ok(report),
                    _ = tokio::time::sleep(settings.pause) => {}
                }
            }
        }
        Ok(report)
    }

    /// Purges at start and then every `[retention] interval` until `stop`; nothing when
    /// `[retention] enabled` is false.
    pub async fn run_retention(self: Arc<Self>, stop: CancellationToken) {
        if !self.settings().retention.enabled {
            return;
        }
        loop {
            match self.purge(&stop).await {
                Ok(report) => {
                    crate::metrics::retention_finished(Some(self.now()));
                    if report.events + report.outbox + report.payments > 0 {
                        tracing::info!(
                            events = report.events,
                            outbox = report.outbox,
                            payments = report.payments,
                            "retention purge finished"
                        );
                    }
                }
                Err(e) => {
                    crate::metrics::retention_finished(None);
                    tracing::error!(error.cause_chain = ?e, "retention purge failed");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.settings().retention.interval) => {}
            }
        }
    }
}
