//! `[retention]`: how long the hub keeps what it no longer needs to run (DESIGN.md §7), and
//! how gently it deletes it.

use serde::Deserialize;
use std::time::Duration;

/// Timeline events and delivered advices are operational records; payments and the messages
/// that made them are financial records, kept far longer and configured apart.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Purging on (default). Off, nothing is ever deleted.
    pub enabled: bool,
    /// Timeline events older than this are deleted.
    #[serde(with = "humantime_serde")]
    pub events: Duration,
    /// DELIVERED outbox rows last changed longer ago than this are deleted. PENDING rows are
    /// never purged, nor FAILED and DEAD ones (an operator's open items).
    #[serde(with = "humantime_serde")]
    pub outbox: Duration,
    /// Finished payments created longer ago than this are deleted with their advices, outbox
    /// rows and events, unless an advice of theirs is still open.
    #[serde(with = "humantime_serde")]
    pub payments: Duration,
    /// Rows deleted per statement: each batch is its own short transaction.
    pub batch_size: u32,
    /// Pause between batches, so that a large purge leaves the database to traffic.
    #[serde(with = "humantime_serde")]
    pub pause: Duration,
    /// How often a purge runs.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            events: Duration::from_secs(90 * 86_400),
            outbox: Duration::from_secs(30 * 86_400),
            // Seven years of 365.25 days, as humantime reads "7y".
            payments: Duration::from_secs(7 * 31_557_600),
            batch_size: 1_000,
            pause: Duration::from_millis(50),
            interval: Duration::from_secs(600),
        }
    }
}

impl RetentionSettings {
    /// Values that would make the purge spin or delete in one long transaction are refused.
    pub fn validate(&self) -> Result<(), super::ConfigError> {
        if !(1..=100_000).contains(&self.batch_size) {
            return Err(super::invalid(
                "retention.batch_size",
                "must be from 1 to 100000: each batch is one transaction, kept short",
            ));
        }
        if self.interval < Duration::from_secs(1) {
            return Err(super::invalid("retention.interval", "must be at least 1s"));
        }
        Ok(())
    }
}
