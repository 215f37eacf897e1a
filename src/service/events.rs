//! Timeline events that no state change carries (the answer to the POS, refusals, advice
//! delivery tries) are written in batches by one background writer, instead of costing a
//! commit each on the request's path. Events that belong to a state change still ride in its
//! transaction (see `store`). A hub that dies loses at most the last few batched events; the
//! payments themselves are never affected.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Hub;
use crate::store::NewEvent;

/// How many events one insert writes at most.
const BATCH: usize = 512;
/// Queued events before writers fall back to writing their own.
const CAPACITY: usize = 16_384;
/// How long the writer gathers events after the first one before it writes them. Under
/// load this turns a statement per event or two into one per few dozen; a hub that dies
/// loses at most this much of its timeline (never a payment), and a flush cuts it short.
const LINGER: Duration = Duration::from_millis(20);

#[derive(Debug)]
pub(crate) enum EventMessage {
    Event(NewEvent),
    /// Answered once every event queued before it is written.
    Flush(oneshot::Sender<()>),
}

pub(crate) fn channel() -> (mpsc::Sender<EventMessage>, mpsc::Receiver<EventMessage>) {
    mpsc::channel(CAPACITY)
}

impl Hub {
    /// Queues events for the writer. Never fails the caller; if the queue is full (the
    /// database is slow), the caller writes its own events, which slows it down in step.
    pub(crate) async fn record_events(&self, events: Vec<NewEvent>) {
        let mut overflow = Vec::new();
        for event in events {
            if let Err(
                mpsc::error::TrySendError::Full(EventMessage::Event(e))
                | mpsc::error::TrySendError::Closed(EventMessage::Event(e)),
            ) = self.events.try_send(EventMessage::Event(event))
            {
                overflow.push(e);
            }
        }
        if !overflow.is_empty() {
            self.write_events(&overflow).await;
        }
    }

    /// Writes `events` in one statement; if that fails, one by one, so that an event the
    /// database refuses costs only itself, never the other payments' events batched with it.
    async fn write_events(&self, events: &[NewEvent]) {
        let Err(e) = self.store.record_events(events).await else {
            return;
        };
        if events.len() == 1 {
            tracing::warn!(error = %e, tran_id = %events[0].tran_id, kind = events[0].kind, "could not record a timeline event");
            return;
        }
        tracing::warn!(error = %e, count = events.len(), "could not record a batch of timeline events; writing them one by one");
        for event in events {
            if let Err(e) = self.store.record_events(std::slice::from_ref(event)).await {
                tracing::warn!(error = %e, tran_id = %event.tran_id, kind = event.kind, "could not record a timeline event");
            }
        }
    }

    /// Waits until every event queued so far is written (the back office reads a timeline
    /// right after this); gives up after a second.
    pub async fn flush_events(&self) {
        let (done, written) = oneshot::channel();
        if self.events.send(EventMessage::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), written).await;
        }
    }

    /// Writes queued events in batches until stopped, then writes what is left.
    pub async fn run_event_writer(self: Arc<Self>, stop: CancellationToken) {
        let Some(mut queue) = self
            .event_queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let mut batch = Vec::with_capacity(BATCH);
        let mut waiting = Vec::new();
        loop {
            let first = tokio::select! {
                message = queue.recv() => message,
                _ = stop.cancelled() => {
                    queue.close();
                    queue.recv().await
                }
            };
            let Some(first) = first else { break };
            let linger_until = tokio::time::Instant::now() + LINGER;
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    EventMessage::Event(event) => batch.push(event),
                    EventMessage::Flush(done) => waiting.push(done),
                }
                if batch.len() >= BATCH {
                    break;
                }
                next = match queue.try_recv() {
                    Ok(message) => Some(message),
                    // Someone waits for the batch, or the hub is stopping: write it now.
                    Err(_) if !waiting.is_empty() || stop.is_cancelled() => None,
                    Err(_) => tokio::time::timeout_at(linger_until, queue.recv())
                        .await
                        .ok()
                        .flatten(),
                };
            }
            if !batch.is_empty() {
                self.write_events(&batch).await;
                batch.clear();
            }
            for done in waiting.drain(..) {
                let _ = done.send(());
            }
        }
    }
}
