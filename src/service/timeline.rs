//! The timeline the back office shows: one event per message the hub receives or sends.
//!
//! Events ride in the same transaction as the state change they belong to wherever there
//! is one (a new payment, a scan's claim, the partner's answer, an advice); the rest (the
//! answer to the POS, refusals, outbox delivery tries) go to the batching writer of
//! `events.rs`. A failure to record one of those is logged and never fails the message.

use super::{HubError, HubResult};

/// How an answer to a caller looks on the timeline: (HTTP status, outcome, body).
pub(crate) fn answer_summary<T: serde::Serialize>(
    answer: &HubResult<T>,
    success_status: i32,
    success_outcome: &str,
) -> (i32, String, Option<serde_json::Value>) {
    match answer {
        Ok(value) => (
            success_status,
            success_outcome.to_owned(),
            serde_json::to_value(value).ok().filter(|v| !v.is_null()),
        ),
        Err(error) => {
            let (status, outcome) = refusal_summary(error);
            let body = match error {
                HubError::Refused { detail, .. } => serde_json::to_value(detail).ok(),
                HubError::Internal(_) => None,
            };
            (status, outcome, body)
        }
    }
}

/// The status and outcome (an ErrorType name) of a refusal; 500 `GENERAL_ERROR` for an
/// internal failure.
pub(crate) fn refusal_summary(error: &HubError) -> (i32, String) {
    match error {
        HubError::Refused { kind, detail } => (
            i32::from(kind.status()),
            serde_json::to_value(detail.error_type)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "REFUSED".into()),
        ),
        HubError::Internal(_) => (500, "GENERAL_ERROR".into()),
    }
}
