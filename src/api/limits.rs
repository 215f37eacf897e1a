//! Per-caller rate limits: a token bucket (GCRA) per authenticated user, checked right after
//! its credentials, so that one busy or misbehaving client slows down itself, not the others,
//! whatever address it comes from. The keys are configured identities only (an
//! unauthenticated request never reaches the limiter), so the table stays small.

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use crate::config::RateLimitSettings;

#[derive(Clone, Default)]
pub struct RateLimits {
    limiter: Option<Arc<DefaultKeyedRateLimiter<String>>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("enabled", &self.limiter.is_some())
            .finish()
    }
}

impl RateLimits {
    /// Off when `requests_per_second` is 0.
    pub fn new(settings: &RateLimitSettings) -> Self {
        let limiter = NonZeroU32::new(settings.requests_per_second).map(|rate| {
            let burst = NonZeroU32::new(settings.burst).unwrap_or(rate);
            Arc::new(DefaultKeyedRateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            ))
        });
        Self { limiter }
    }

    /// Takes one request from `user`'s bucket, or says how long until the next one fits.
    pub fn check(&self, user: &str) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check_key(&user.to_owned())
            .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }
}

/// Failed logins per client address in fixed one-minute windows: past the limit an address
/// gets 429 without a password check until its window ends. Known credentials (found in the
/// verification cache) never reach it, so a POS behind the same address as a guesser keeps
/// working.
#[derive(Clone, Default)]
pub struct LoginThrottle {
    inner: Option<Arc<Throttle>>,
}

struct Throttle {
    limit: u32,
    windows: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, Window>>,
}

#[derive(Clone, Copy)]
struct Window {
    start: std::time::Instant,
    failures: u32,
}

const THROTTLE_WINDOW: Duration = Duration::from_secs(60);
/// Past this many addresses, windows that ended are dropped (a flood from many addresses
/// must not grow the table without end).
const THROTTLE_PRUNE_AT: usize = 100_000;

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("limit", &self.inner.as_ref().map(|t| t.limit))
            .finish()
    }
}

impl LoginThrottle {
    /// Off when `failures_per_minute` is 0.
    pub fn new(failures_per_minute: u32) -> Self {
        Self {
            inner: (failures_per_minute > 0).then(|| {
                Arc::new(Throttle {
                    limit: failures_per_minute,
                    windows: Default::default(),
                })
            }),
        }
    }

    /// Whether `ip` may try a password now, or how long until it may.
    pub fn check(&self, ip: std::net::IpAddr) -> Result<(), Duration> {
        let Some(t) = &self.inner else {
            return Ok(());
        };
        let Ok(windows) = t.windows.lock() else {
            return Ok(());
        };
        match windows.get(&ip) {
            Some(w) if w.failures >= t.limit => {
                let left = THROTTLE_WINDOW.saturating_sub(w.start.elapsed());
                if left.is_zero() {
                    Ok(())
                } else {
                    Err(left)
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed login from `ip`.
    pub fn failed(&self, ip: std::net::IpAddr) {
        let Some(t) = &self.inner else {
            return;
        };
        let Ok(mut windows) = t.windows.lock() else {
            return;
        };
        let now = std::time::Instant::now();
        if windows.len() >= THROTTLE_PRUNE_AT {
            windows.retain(|_, w| now.duration_since(w.start) < THROTTLE_WINDOW);
        }
        let w = windows.entry(ip).or_insert(Window {
            start: now,
            failures: 0,
        });
        if now.duration_since(w.start) >= THROTTLE_WINDOW {
            *w = Window {
                start: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default() {
        let limits = RateLimits::new(&RateLimitSettings::default());
        assert!((0..1000).all(|_| limits.check("pos-1").is_ok()));
    }

    #[test]
    fn each_caller_has_its_own_bucket() {
        let limits = RateLimits::new(&RateLimitSettings {
            requests_per_second: 2,
            burst: 3,
        });
        for _ in 0..3 {
            assert!(limits.check("pos-1").is_ok());
        }
        let wait = limits
            .check("pos-1")
            .expect_err("the fourth is over the burst");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        assert!(limits.check("pos-2").is_ok());
    }
}
