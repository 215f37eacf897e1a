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
