//! The periodic sweep that makes the hub whole after a crash: waiting payments whose holder
//! is gone are expired at their deadline, half-forwarded payments become unknown and are
//! reversed, outbox rows past their expiry are dead-lettered, and approvals nobody advised are
//! counted (and reversed for clients that ask for it).

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::Hub;
use crate::domain::PaymentState;

impl Hub {
    /// One sweep. Every write in it is a compare-and-set, so instances may sweep together.
    pub async fn sweep(self: &Arc<Self>) -> anyhow::Result<()> {
        let now = self.now();
        for id in self.store.expired_waiting(now, 500).await? {
            // A live holder may win this race first; either way the payment ends once.
            if self
                .store
                .transition(id, PaymentState::WaitingForScan, PaymentState::Expired, now)
                .await?
            {
                crate::metrics::scan_window_expired();
                self.waiters.wake(&super::Waiters::payment_key(id));
            }
        }
        let report = self.recover(now).await?;
        if report.forwarded_made_unknown + report.matched_never_sent > 0 {
            tracing::warn!(
                forwarded_made_unknown = report.forwarded_made_unknown,
                matched_never_sent = report.matched_never_sent,
                "recovered payments left behind by a stopped hub"
            );
        }
        self.sweep_unadvised(now).await?;
        let dead = self.store.dead_letter_expired(now).await?;
        if dead > 0 {
            crate::metrics::outbox_dead_letters(dead);
            tracing::error!(count = dead, "advices dead-lettered after their expiry");
        }
        // The backlog gauges are refreshed here, once a pass, rather than by a query per scrape.
        crate::metrics::outbox_stats(&self.store.outbox_stats().await?, now);
        let backlog = self.store.outbox_backlog_by_partner().await?;
        super::partner_health::publish(&super::partner_health::views(self, &backlog, now));
        crate::metrics::upkeep();
        Ok(())
    }

    /// Sweeps every `interval` until cancelled.
    /// The retention purge runs beside it, in its own task, at its own interval.
    pub async fn run_sweeper(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        let retention = tokio::spawn(Arc::clone(&self).run_retention(stop.clone()));
        loop {
            match self.sweep().await {
                Ok(()) => crate::metrics::sweep_finished(Some(self.now())),
                Err(e) => {
                    crate::metrics::sweep_finished(None);
                    tracing::error!(error.cause_chain = ?e, "sweep failed");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
        }
        if let Err(e) = retention.await {
            tracing::error!(error = %e, "the retention task ended abnormally");
        }
    }
}
