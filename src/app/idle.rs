//! The idle timer of an HTTP/2 connection.
//!
//! hyper's header-read timer closes an HTTP/1 connection that sits between requests, but
//! HTTP/2 has no such timer: a client that opens a connection, or finishes its requests, and
//! then only answers pings would hold one of `server.max_connections` forever, and enough of
//! them would lock every POS out. Each HTTP/2 connection's service therefore counts the
//! requests in flight and notes when the last one ended; [`idle_for`] resolves once none has
//! been in flight for the given time, and the connection is then closed gracefully (GOAWAY).
//! A held `pay` is a request in flight, so it never counts as idle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// What one connection is doing.
#[derive(Debug)]
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    /// When the last request ended (or the connection opened).
    quiet_since: Mutex<Instant>,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            quiet_since: Mutex::new(Instant::now()),
        })
    }

    fn quiet_since(&self) -> Instant {
        *self.quiet_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }
}

/// One request in flight; its end (answered, or dropped when the stream is reset) restarts
/// the connection's idle time.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.quiet_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Resolves once the connection has had no request in flight for `limit`.
pub(crate) async fn idle_for(activity: &Activity, limit: Duration) {
    loop {
        let busy = activity.in_flight.load(Ordering::Acquire) > 0;
        let look_again = if busy {
            Instant::now() + limit
        } else {
            activity.quiet_since() + limit
        };
        tokio::time::sleep_until(look_again).await;
        if activity.in_flight.load(Ordering::Acquire) == 0
            && activity.quiet_since() + limit <= Instant::now()
        {
            return;
        }
    }
}

/// A service that keeps `activity` up to date for the requests it serves.
#[derive(Clone)]
pub(crate) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S, R> tower::Service<R> for Tracked<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    // Boxed: HTTP/2 connections only, where a stream already costs far more than a box.
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let in_flight = self.activity.started();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answered = answer.await;
            drop(in_flight);
            answered
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_only_once_the_last_request_has_ended_for_the_limit() {
        let activity = Activity::new();
        let held = activity.started();
        let limit = Duration::from_millis(100);
        let idle = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move {
                idle_for(&activity, limit).await;
                Instant::now()
            }
        });
        // A request held for longer than the limit is not idleness.
        tokio::time::sleep(limit * 3).await;
        assert!(!idle.is_finished(), "idle while a request was in flight");
        let ended = Instant::now();
        drop(held);
        let idle_at = tokio::time::timeout(Duration::from_secs(5), idle)
            .await
            .expect("idle in the end")
            .expect("task");
        assert!(
            idle_at >= ended + limit,
            "idle {:?} after the end",
            idle_at - ended
        );
    }
}
