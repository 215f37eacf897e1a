//! Each partner's health over the last hour, as this instance saw it: how its `pay` calls
//! ended (approved, failed, unknown, not sent), their latency (p50, p99), and the last
//! error of any call to it (a `pay` or an advice) with its time.
//!
//! Kept in memory, per instance: each instance reports the calls it made (several
//! instances are added up by whoever reads them, e.g. Prometheus). The window is 60 buckets
//! of one minute on the hub's clock, each with counts by outcome and a latency histogram of
//! fixed, logarithmic bounds (a tenth apart), so memory per partner is bounded (about
//! 32 KiB) whatever the traffic, and a percentile is exact to a bucket: it is reported as
//! the bucket's upper bound, never below the real figure by more than a tenth. The
//! advices waiting for a partner come from the store (global), not from here.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::metrics::CallOutcome;
use crate::partner::CallResult;

/// Minutes in the window.
const WINDOW_MINUTES: i64 = 60;
/// Latency bucket `i` ends at `FIRST_BOUND_MS * GROWTH^i` milliseconds.
const FIRST_BOUND_MS: f64 = 1.0;
const GROWTH: f64 = 1.1;
/// 1 ms × 1.1^130 ≈ 240 s: past any partner timeout; slower calls share the last bucket.
const LATENCY_BUCKETS: usize = 131;
/// The longest error text kept.
const ERROR_CHARS: usize = 200;

/// One minute of one partner's `pay` calls.
#[derive(Debug, Clone)]
struct Minute {
    /// Minutes since the Unix epoch.
    index: i64,
    approved: u32,
    failed: u32,
    unknown: u32,
    not_sent: u32,
    latency: Vec<u32>,
}

impl Minute {
    fn new(index: i64) -> Self {
        Self {
            index,
            approved: 0,
            failed: 0,
            unknown: 0,
            not_sent: 0,
            latency: vec![0; LATENCY_BUCKETS],
        }
    }
}

#[derive(Debug, Default)]
struct PartnerWindow {
    /// Oldest first, at most [`WINDOW_MINUTES`], each minute at most once.
    minutes: std::collections::VecDeque<Minute>,
    last_error: Option<LastError>,
}

/// The most recent failed call to a partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    pub at: DateTime<Utc>,
    /// `pay`, `confirmPayment` or `reversePayment`.
    pub operation: String,
    /// What happened: the partner's status, a timeout, a connection that failed.
    pub error: String,
}

/// The window's figures for one partner.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PayFigures {
    /// `pay` calls in the window, by how they ended.
    pub pay_calls: u64,
    pub approved: u64,
    /// Declined or not processed (a 4xx, 501, 503): final, nothing to reverse.
    pub failed: u64,
    pub unknown: u64,
    pub not_sent: u64,
    /// approved / calls, 0 to 1; absent without calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_rate: Option<f64>,
    /// unknown / calls: answers the hub could not read as approved or declined (a timeout,
    /// a 5xx, a connection lost), each one reversed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_rate: Option<f64>,
    /// Latency of the `pay` calls, in milliseconds (the upper bound of their bucket).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p99_ms: Option<f64>,
    /// The `pay` calls per minute, oldest first (60 values, the last the current minute).
    pub calls_per_minute: Vec<u32>,
    /// The approved ones per minute, aligned with `callsPerMinute`.
    pub approved_per_minute: Vec<u32>,
    /// The unknown ones per minute, aligned with `callsPerMinute`.
    pub unknown_per_minute: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
}

/// Every partner's window; one per hub instance.
#[derive(Debug, Default)]
pub struct PartnerHealth {
    partners: Mutex<HashMap<String, PartnerWindow>>,
}

fn minute_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

fn bucket_of(took: Duration) -> usize {
    let ms = took.as_secs_f64() * 1000.0;
    if ms <= FIRST_BOUND_MS {
        return 0;
    }
    let i = ((ms / FIRST_BOUND_MS).ln() / GROWTH.ln()).ceil();
    // Float to index: `i` is finite and positive here; `as` saturates anyway.
    (i as usize).min(LATENCY_BUCKETS - 1)
}

fn bound_ms(bucket: usize) -> f64 {
    let exponent = i32::try_from(bucket).unwrap_or(i32::MAX);
    // Rounded to a tenth of a millisecond: the bounds are not exact numbers anyway.
    (FIRST_BOUND_MS * GROWTH.powi(exponent) * 10.0).round() / 10.0
}

/// What a failed call was, in a few words (the partner's status, or the transport's error).
pub(crate) fn describe(call: &CallResult) -> String {
    let text = match call {
        CallResult::Answered { status, .. } => format!("partner answered {status}"),
        CallResult::NotSent { error } => format!("not sent: {error}"),
        CallResult::Unknown { error } => error.clone(),
    };
    text.chars().take(ERROR_CHARS).collect()
}

impl PartnerHealth {
    /// One `pay` call to `partner` that ended `outcome` after `took`; `error` when it did
    /// not end in an approval.
    pub fn pay(
        &self,
        partner: &str,
        outcome: CallOutcome,
        took: Duration,
        at: DateTime<Utc>,
        error: Option<String>,
    ) {
        let mut partners = self.partners.lock().unwrap_or_else(|e| e.into_inner());
        let window = partners.entry(partner.to_owned()).or_default();
        let index = minute_of(at);
        if window.minutes.back().is_none_or(|m| m.index < index) {
            window.minutes.push_back(Minute::new(index));
        }
        while window
            .minutes
            .front()
            .is_some_and(|m| m.index <= index - WINDOW_MINUTES)
        {
            window.minutes.pop_front();
        }
        // A call whose clock reading is older than the newest minute (calls finishing out
        // of order across a minute's turn) counts in the newest: a second off at most.
        if let Some(minute) = window.minutes.back_mut() {
            match outcome {
                CallOutcome::Success => minute.approved += 1,
                CallOutcome::Failed => minute.failed += 1,
                CallOutcome::Unknown => minute.unknown += 1,
                CallOutcome::NotSent => minute.not_sent += 1,
            }
            if let Some(count) = minute.latency.get_mut(bucket_of(took)) {
                *count += 1;
            }
        }
        if let Some(error) = error {
            window.last_error = Some(LastError {
                at,
                operation: crate::model::Operation::Pay.name().to_owned(),
                error,
            });
        }
    }

    /// A failed advice call (`operation` `confirmPayment` or `reversePayment`): only its
    /// error is kept.
    pub fn advice_failed(&self, partner: &str, operation: &str, at: DateTime<Utc>, error: String) {
        let mut partners = self.partners.lock().unwrap_or_else(|e| e.into_inner());
        partners.entry(partner.to_owned()).or_default().last_error = Some(LastError {
            at,
            operation: operation.to_owned(),
            error,
        });
    }

    /// `partner`'s figures over the hour before `now`.
    pub fn figures(&self, partner: &str, now: DateTime<Utc>) -> PayFigures {
        let partners = self.partners.lock().unwrap_or_else(|e| e.into_inner());
        let Some(window) = partners.get(partner) else {
            return PayFigures {
                calls_per_minute: vec![0; WINDOW_MINUTES as usize],
                approved_per_minute: vec![0; WINDOW_MINUTES as usize],
                unknown_per_minute: vec![0; WINDOW_MINUTES as usize],
                ..PayFigures::default()
            };
        };
        let current = minute_of(now);
        let first = current - WINDOW_MINUTES + 1;
        let mut figures = PayFigures {
            last_error: window.last_error.clone(),
            ..PayFigures::default()
        };
        let mut latency = vec![0u64; LATENCY_BUCKETS];
        let mut per_minute = vec![(0u32, 0u32, 0u32); WINDOW_MINUTES as usize];
        for minute in window
            .minutes
            .iter()
            .filter(|m| (first..=current).contains(&m.index))
        {
            figures.approved += u64::from(minute.approved);
            figures.failed += u64::from(minute.failed);
            figures.unknown += u64::from(minute.unknown);
            figures.not_sent += u64::from(minute.not_sent);
            for (sum, count) in latency.iter_mut().zip(&minute.latency) {
                *sum += u64::from(*count);
            }
            let calls = minute.approved + minute.failed + minute.unknown + minute.not_sent;
            if let Some(slot) = usize::try_from(minute.index - first)
                .ok()
                .and_then(|i| per_minute.get_mut(i))
            {
                *slot = (calls, minute.approved, minute.unknown);
            }
        }
        figures.pay_calls = figures.approved + figures.failed + figures.unknown + figures.not_sent;
        if figures.pay_calls > 0 {
            let calls = figures.pay_calls as f64;
            figures.approval_rate = Some(figures.approved as f64 / calls);
            figures.unknown_rate = Some(figures.unknown as f64 / calls);
            figures.latency_p50_ms = percentile(&latency, figures.pay_calls, 0.50);
            figures.latency_p99_ms = percentile(&latency, figures.pay_calls, 0.99);
        }
        figures.calls_per_minute = per_minute.iter().map(|m| m.0).collect();
        figures.approved_per_minute = per_minute.iter().map(|m| m.1).collect();
        figures.unknown_per_minute = per_minute.iter().map(|m| m.2).collect();
        figures
    }

    /// The partners this instance has figures for (a removed partner's stay until they
    /// age out).
    pub fn partners(&self) -> Vec<String> {
        let partners = self.partners.lock().unwrap_or_else(|e| e.into_inner());
        partners.keys().cloned().collect()
    }
}

/// The upper bound of the bucket holding the `q`-th quantile of `total` samples.
fn percentile(buckets: &[u64], total: u64, q: f64) -> Option<f64> {
    // The rank of the quantile, 1-based: the smallest n with n / total >= q.
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0u64;
    for (i, count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(bound_ms(i));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64, second: i64) -> DateTime<Utc> {
        // 1_800_000_000 is a whole minute (30,000,000 of them).
        DateTime::from_timestamp(1_800_000_000 + minute * 60 + second, 0).expect("a time")
    }

    #[test]
    fn rates_and_percentiles_over_the_window() {
        let health = PartnerHealth::default();
        for i in 0..98 {
            health.pay(
                "w",
                CallOutcome::Success,
                Duration::from_millis(10 + i % 3),
                at(0, i as i64 % 60),
                None,
            );
        }
        health.pay(
            "w",
            CallOutcome::Unknown,
            Duration::from_secs(2),
            at(0, 59),
            Some("timed out".into()),
        );
        health.pay(
            "w",
            CallOutcome::Failed,
            Duration::from_millis(5),
            at(1, 0),
            Some("partner answered 503".into()),
        );
        let f = health.figures("w", at(1, 30));
        assert_eq!(
            (f.pay_calls, f.approved, f.unknown, f.failed),
            (100, 98, 1, 1)
        );
        assert_eq!(f.approval_rate, Some(0.98));
        assert_eq!(f.unknown_rate, Some(0.01));
        let p50 = f.latency_p50_ms.expect("p50");
        assert!((10.0..=13.4).contains(&p50), "{p50}");
        // The 99th of 100 calls is the slowest quick one: the one 2 s call is the 100th.
        let p99 = f.latency_p99_ms.expect("p99");
        assert!((12.0..=13.4).contains(&p99), "{p99}");
        assert_eq!(f.calls_per_minute.len(), 60);
        assert_eq!(f.calls_per_minute[58..], [99, 1]);
        let last = f.last_error.expect("an error");
        assert_eq!(
            (last.operation.as_str(), last.error.as_str()),
            ("pay", "partner answered 503")
        );
        // An hour later the calls have left the window; the last error stays.
        let later = health.figures("w", at(61, 0));
        assert_eq!(later.pay_calls, 0);
        assert_eq!(later.approval_rate, None);
        assert!(later.last_error.is_some());
        // An unknown partner has nothing.
        assert_eq!(health.figures("x", at(0, 0)).pay_calls, 0);
    }

    #[test]
    fn the_window_keeps_an_hour_of_minutes_at_most() {
        let health = PartnerHealth::default();
        for minute in 0..200 {
            health.pay(
                "w",
                CallOutcome::Success,
                Duration::from_millis(1),
                at(minute, 0),
                None,
            );
        }
        let partners = health.partners.lock().expect("lock");
        assert_eq!(partners["w"].minutes.len(), 60);
        drop(partners);
        assert_eq!(health.figures("w", at(199, 0)).pay_calls, 60);
    }

    #[test]
    fn latency_buckets_bound_their_calls_within_a_tenth() {
        for ms in [1u64, 2, 9, 10, 11, 100, 999, 25_000] {
            let bound = bound_ms(bucket_of(Duration::from_millis(ms)));
            let ms = ms as f64;
            assert!(
                bound >= ms - 0.05 && bound <= ms * 1.1 + 0.1,
                "{ms} → {bound}"
            );
        }
        assert_eq!(bucket_of(Duration::from_secs(10_000)), LATENCY_BUCKETS - 1);
    }
}
