//! How each advice delivery ended, recorded for many deliveries in one statement. Every
//! confirmation a POS sends ends in one such record, and on its own it was a round trip and
//! a commit per flow (issue 14). Each delivery still waits for its own record to commit
//! before it counts as done, so nothing changes for a crash: a delivery whose record was not
//! committed is tried again when its lease runs out, as before.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Hub;
use crate::store::{first_of, FinishedDelivery, StoreError, StoreResult};

/// Tries recorded by one statement at most.
const BATCH: usize = 128;
/// Queued records before deliveries fall back to writing their own.
const CAPACITY: usize = 4096;
/// How long the recorder gathers records after the first one. A delivery waits this much
/// longer to count as done (its POS was answered long before); at a few hundred
/// confirmations a second, a statement then records several.
const LINGER: Duration = Duration::from_millis(5);

#[derive(Debug)]
pub(crate) struct Finished {
    delivery: FinishedDelivery,
    recorded: oneshot::Sender<StoreResult<bool>>,
}

pub(crate) fn channel() -> (mpsc::Sender<Finished>, mpsc::Receiver<Finished>) {
    mpsc::channel(CAPACITY)
}

impl Hub {
    /// Records how a delivery try ended, with others that ended about now; `Ok(false)` when
    /// the row was no longer this try's (see [`crate::store::OutboxStore::finish_delivery`]).
    pub(crate) async fn record_delivery(&self, delivery: FinishedDelivery) -> StoreResult<bool> {
        // Still here: the recorder was never started (a hub driven without its workers).
        let recorder_idle = self
            .delivery_queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        let (recorded, answer) = oneshot::channel();
        let queued = Finished {
            delivery: delivery.clone(),
            recorded,
        };
        if !recorder_idle && self.deliveries.try_send(queued).is_ok() {
            if let Ok(result) = answer.await {
                return result;
            }
        }
        // The recorder is idle, full or stopped, or dropped this record: it is written here.
        first_of(self.store.finish_deliveries(&[delivery]).await)
    }

    /// Records queued deliveries in groups until stopped, then records what is left.
    pub async fn run_delivery_recorder(self: Arc<Self>, stop: CancellationToken) {
        let Some(mut queue) = self
            .delivery_queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let mut batch: Vec<Finished> = Vec::with_capacity(BATCH);
        loop {
            let first = tokio::select! {
                message = queue.recv() => message,
                _ = stop.cancelled() => {
                    queue.close();
                    queue.recv().await
                }
            };
            let Some(first) = first else { break };
            batch.push(first);
            let linger_until = tokio::time::Instant::now() + LINGER;
            while batch.len() < BATCH {
                let next = match queue.try_recv() {
                    Ok(message) => Some(message),
                    Err(_) if stop.is_cancelled() => None,
                    Err(_) => tokio::time::timeout_at(linger_until, queue.recv())
                        .await
                        .ok()
                        .flatten(),
                };
                let Some(next) = next else { break };
                batch.push(next);
            }
            self.record_batch(&mut batch).await;
        }
    }

    /// Writes `batch` in one statement and answers each. If the database refused the
    /// statement for what one try holds, the tries are written one by one, so that it fails
    /// only itself; if the database or the pool failed (a connection, a timeout), every try
    /// is told at once, as each would have been writing alone, and none waits for the
    /// others to time out in turn.
    async fn record_batch(&self, batch: &mut Vec<Finished>) {
        let deliveries: Vec<FinishedDelivery> = batch.iter().map(|f| f.delivery.clone()).collect();
        match self.store.finish_deliveries(&deliveries).await {
            Ok(changed) if changed.len() == batch.len() => {
                for (finished, changed) in batch.drain(..).zip(changed) {
                    let _ = finished.recorded.send(Ok(changed));
                }
            }
            Err(e) if !e.refused_for_its_data() => {
                tracing::warn!(error = %e, count = batch.len(), "could not record a group of deliveries; they are tried again when their leases end");
                let shared = e.into_shared();
                for finished in batch.drain(..) {
                    let _ = finished
                        .recorded
                        .send(Err(StoreError::Grouped(Arc::clone(&shared))));
                }
            }
            outcome => {
                match outcome {
                    Err(e) => tracing::warn!(error = %e, count = batch.len(), "could not record a group of deliveries; recording them one by one"),
                    Ok(changed) => tracing::error!(answers = changed.len(), count = batch.len(), "the store answered a group of deliveries with the wrong number of answers; recording them one by one"),
                }
                for finished in batch.drain(..) {
                    let result = first_of(
                        self.store
                            .finish_deliveries(std::slice::from_ref(&finished.delivery))
                            .await,
                    );
                    let _ = finished.recorded.send(result);
                }
            }
        }
    }
}
