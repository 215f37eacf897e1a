//! Store-and-forward delivery of advices to partners.
//!
//! Workers lease due rows (the lease is the row's next due time, so a worker that dies simply
//! lets it fall due again), deliver each with the same message id every time, and record the
//! outcome with the attempt number as a fencing token. An answer that is not final (see
//! `domain::classify_advice`) is retried with capped exponential backoff and jitter, no sooner
//! than the partner's `Retry-After` (capped too); a final answer ends the row: delivered, or
//! refused (an operator's open item, retryable like a dead letter).

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::{span, Hub};
use crate::domain::{classify_advice, AdviceAnswer};
use crate::metrics::{self, CallOutcome};
use crate::model::Operation;
use crate::partner::CallResult;
use crate::store::{DeliveryResult, Direction, FinishedDelivery, NewEvent, OutboxMessage};

/// How far past a partner's timeout a lease reaches, so a live delivery is never re-leased:
/// the try's call ends by the partner's timeout, and recording its result takes a commit.
/// It is also how long a try cut short by a crash holds its row, so it is kept short. A
/// lease that still ran out too early (a stalled database, clocks more than this apart) costs
/// at most a second delivery with the same id, and the first try's record is then refused
/// by its fencing token.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// How long one try holds its row: the slowest partner's timeout and a margin.
pub(crate) fn lease(settings: &crate::config::Settings) -> Duration {
    settings.max_partner_timeout() + LEASE_MARGIN
}

/// The delay before try `attempt + 1`: doubling from `initial`, capped at `max`, then
/// scaled into [½, 1] of that so that many rows failing together do not retry together.
pub(crate) fn backoff(attempt: i32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    let raw = initial.saturating_mul(1u32 << exponent).min(max);
    raw.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

pub(crate) struct OutboxWorker {
    hub: Arc<Hub>,
}

impl OutboxWorker {
    pub(crate) fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }

    /// Delivers until cancelled; wakes on the hub's `outbox_wake` or every poll interval.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let poll = self.hub.settings().outbox.poll_interval;
        loop {
            let delivered = match self.deliver_due().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error.cause_chain = ?e, "outbox pass failed");
                    0
                }
            };
            if delivered > 0 {
                // There may be more due: go again at once.
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.hub.outbox_wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// One pass: lease a batch of due rows and deliver them concurrently. Returns how many
    /// rows were leased.
    pub(crate) async fn deliver_due(&self) -> anyhow::Result<usize> {
        let settings = &self.hub.settings();
        let concurrency = settings.outbox.concurrency;
        let now = self.hub.clock.now();
        let lease = lease(settings);
        let rows = self
            .hub
            .store
            .claim_due_outbox(now, now + span(lease), concurrency as i64)
            .await?;
        let count = rows.len();
        stream::iter(rows)
            .for_each_concurrent(concurrency, |row| async move {
                if let Err(e) = deliver(&self.hub, row).await {
                    tracing::error!(error.cause_chain = ?e, "recording a delivery failed");
                }
            })
            .await;
        Ok(count)
    }
}

/// One try of a leased row (`row.attempts` is its fencing token), and its result recorded:
/// by the workers for the rows they lease, and by the instance that queued a row for its
/// first try.
pub(crate) async fn deliver(hub: &Hub, row: OutboxMessage) -> anyhow::Result<()> {
    let tried = try_once(hub, &row).await;
    record(hub, &row, tried).await
}

/// The try itself: the partner's call (none for a partner no longer configured) and what
/// its answer means for the row, logged and counted.
pub(crate) async fn try_once(hub: &Hub, row: &OutboxMessage) -> FinishedDelivery {
    // The partner as configured now: an advice queued before a reload goes to the
    // partner's new address, with its new credentials.
    let live = hub.live();
    let Some(partner) = live.settings.partner(&row.partner_id) else {
        // Removed from the configuration while it owes this advice (DESIGN.md §7): kept
        // queued, not refused, since the partner never saw it. It waits as an open item
        // (listed with this error, counted among the partner's advices waiting) until the
        // partner is configured again, an operator acts, or it expires into a dead letter.
        metrics::outbox_delivery(row.kind, "retry");
        let now = hub.clock.now();
        let error = format!("partner {:?} is not configured", row.partner_id);
        tracing::error!(outbox_id = %row.id, message_id = %row.message_id, partner = %row.partner_id, "advice kept queued for a partner that is no longer configured; configure it again or act on the advice");
        let result = DeliveryResult::Retry {
            status: None,
            error,
            next_attempt_at: now + crate::service::span(live.settings.outbox.max_backoff),
        };
        return FinishedDelivery {
            id: row.id,
            attempt: row.attempts,
            result,
            at: now,
        };
    };
    let operation = row.kind.operation();
    let sent = std::time::Instant::now();
    let call = live.partners.post(partner, operation, &row.body).await;
    let outcome = call_outcome(&call, operation);
    metrics::partner_call(&partner.id, operation, outcome, sent.elapsed());
    let now = hub.clock.now();
    if outcome != metrics::CallOutcome::Success {
        hub.health.advice_failed(
            &partner.id,
            operation.name(),
            now,
            crate::partner::health::describe(&call),
        );
    }
    if let CallResult::Answered {
        status: status @ (401 | 403),
        ..
    } = &call
    {
        // The partner does not accept the hub's own credentials: only an operator can fix
        // that. The advice is kept and retried meanwhile.
        metrics::partner_credentials_refused(&partner.id);
        tracing::error!(partner = %partner.id, status, outbox_id = %row.id, "partner refused the hub's credentials; check partners[].username and password");
    }
    let result = delivery_result(&call, operation, row.attempts, now, hub);
    metrics::outbox_delivery(
        row.kind,
        match &result {
            DeliveryResult::Delivered { .. } => "delivered",
            DeliveryResult::Failed { .. } => "failed",
            DeliveryResult::Retry { .. } => "retry",
        },
    );
    match &result {
        DeliveryResult::Delivered { status } => {
            tracing::debug!(outbox_id = %row.id, message_id = %row.message_id, kind = row.kind.as_str(), status, attempt = row.attempts, "advice delivered")
        }
        DeliveryResult::Failed { status, error } => {
            tracing::error!(outbox_id = %row.id, message_id = %row.message_id, kind = row.kind.as_str(), status, %error, "partner refused advice; an operator must act on it")
        }
        DeliveryResult::Retry {
            error,
            next_attempt_at,
            ..
        } => {
            tracing::warn!(outbox_id = %row.id, message_id = %row.message_id, kind = row.kind.as_str(), %error, %next_attempt_at, attempt = row.attempts, "advice delivery unknown; will retry")
        }
    }
    FinishedDelivery {
        id: row.id,
        attempt: row.attempts,
        result,
        at: now,
    }
}

/// Records how the try ended (with others that ended about now), and its timeline event.
pub(crate) async fn record(
    hub: &Hub,
    row: &OutboxMessage,
    tried: FinishedDelivery,
) -> anyhow::Result<()> {
    let event = delivery_event(row, &tried.result, tried.at);
    hub.record_delivery(tried).await?;
    hub.record_events(vec![event]).await;
    Ok(())
}

/// How an advice call went, for metrics.
fn call_outcome(call: &CallResult, operation: Operation) -> CallOutcome {
    match call {
        CallResult::Answered { status, body, .. } => {
            match classify_advice(*status, operation, error_type_of(body).as_deref(), None) {
                AdviceAnswer::Delivered => CallOutcome::Success,
                AdviceAnswer::Refused => CallOutcome::Failed,
                AdviceAnswer::NotYet { .. } => CallOutcome::Unknown,
            }
        }
        CallResult::NotSent { .. } => CallOutcome::NotSent,
        CallResult::Unknown { .. } => CallOutcome::Unknown,
    }
}

/// One delivery try on the payment's timeline (the advice itself is in its outbox row).
fn delivery_event(row: &OutboxMessage, result: &DeliveryResult, at: DateTime<Utc>) -> NewEvent {
    let kind = row.kind.operation().event_kind();
    let (status, outcome) = match result {
        DeliveryResult::Delivered { status } => (Some(*status), "DELIVERED".to_owned()),
        DeliveryResult::Failed { status, error } => (Some(*status), format!("FAILED: {error}")),
        DeliveryResult::Retry { status, error, .. } => (*status, format!("RETRY: {error}")),
    };
    let outcome: String = outcome.chars().take(200).collect();
    let tran_id = row
        .body
        .get("tranId")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    NewEvent::new(kind, Direction::Out, tran_id, &row.partner_id, at, outcome)
        .payment(row.payment_id)
        .message(&row.message_id)
        .status(status)
}

fn delivery_result(
    call: &CallResult,
    operation: Operation,
    attempt: i32,
    now: DateTime<Utc>,
    hub: &Hub,
) -> DeliveryResult {
    let outbox = &hub.settings().outbox;
    let retry_at = |asked: Option<Duration>| {
        let delay = backoff(
            attempt,
            outbox.initial_backoff,
            outbox.max_backoff,
            rand::thread_rng().gen(),
        );
        now + span(not_before(delay, asked, outbox.max_backoff))
    };
    match call {
        CallResult::Answered {
            status,
            body,
            retry_after,
            ..
        } => {
            let status_i32 = i32::from(*status);
            let asked = retry_after.map(|r| r.delay(now));
            match classify_advice(*status, operation, error_type_of(body).as_deref(), asked) {
                AdviceAnswer::Delivered => DeliveryResult::Delivered { status: status_i32 },
                AdviceAnswer::Refused => DeliveryResult::Failed {
                    status: status_i32,
                    error: crate::model::text::excerpt(body, 500),
                },
                AdviceAnswer::NotYet { retry_after } => DeliveryResult::Retry {
                    status: Some(status_i32),
                    error: format!("partner answered {status}"),
                    next_attempt_at: retry_at(retry_after),
                },
            }
        }
        // An advice that never left is retried like an unknown one: the partner must get it.
        CallResult::NotSent { error } | CallResult::Unknown { error } => DeliveryResult::Retry {
            status: None,
            error: error.clone(),
            next_attempt_at: retry_at(None),
        },
    }
}

/// The `errorType` of an ErrorDetail answer, if the body is one.
fn error_type_of(body: &[u8]) -> Option<String> {
    let detail: serde_json::Value = serde_json::from_slice(body).ok()?;
    detail.get("errorType")?.as_str().map(str::to_owned)
}

/// The wait before the next try: the backoff, or longer if the partner asked for longer with
/// `Retry-After`, but never past `cap` (a partner asking for a week does not stall an
/// advice for a week; the row's expiry still ends it).
fn not_before(backoff: Duration, asked: Option<Duration>, cap: Duration) -> Duration {
    match asked {
        Some(asked) => backoff.max(asked.min(cap)),
        None => backoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps_and_jitter_stays_within_half() {
        let s = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        assert_eq!(backoff(1, s, max, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(2, s, max, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(4, s, max, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(20, s, max, 1.0), max);
        assert_eq!(backoff(1000, s, max, 1.0), max);
        assert_eq!(backoff(4, s, max, 0.0), Duration::from_secs(4));
    }

    #[test]
    fn retry_after_lengthens_the_wait_up_to_the_cap_and_never_shortens_it() {
        let s = Duration::from_secs;
        assert_eq!(not_before(s(2), None, s(300)), s(2));
        assert_eq!(not_before(s(2), Some(s(30)), s(300)), s(30));
        assert_eq!(not_before(s(2), Some(s(86_400)), s(300)), s(300));
        assert_eq!(not_before(s(20), Some(s(1)), s(300)), s(20));
    }
}
