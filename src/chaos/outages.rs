//! The partner's outages: at random moments (exponential intervals with the configured
//! mean) the simulator goes down for a while, every call answered 503 with Retry-After (a
//! maintenance window) or connections refused, whatever the flows scripted.

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::faults::next_outage;
use crate::simulator::{OutageAnswer, SimulatorHandle};

/// What the outages were.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutageStats {
    /// Outages by kind (`maintenance-503`, `refused`).
    pub by_kind: BTreeMap<String, u64>,
    /// Their total length, in seconds (the last one cut short when the load ends).
    pub seconds: f64,
}

impl OutageStats {
    pub(crate) fn count(&self) -> u64 {
        self.by_kind.values().sum()
    }
}

/// Takes the partner down now and then until `stop`; the partner is up when it returns.
pub(crate) async fn run(
    sim: Arc<SimulatorHandle>,
    mean: Duration,
    longest: Duration,
    seed: u64,
    stop: CancellationToken,
) -> OutageStats {
    let mut stats = OutageStats::default();
    if mean.is_zero() || longest.is_zero() {
        return stats;
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6f75_7461_6765);
    loop {
        let (wait, outage) = next_outage(&mut rng, mean, longest);
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
        let kind = match outage.answer {
            OutageAnswer::Refuse => "refused",
            OutageAnswer::Respond(_) => "maintenance-503",
        };
        *stats.by_kind.entry(kind.to_owned()).or_default() += 1;
        let lasting = outage.lasting;
        let started = tokio::time::Instant::now();
        sim.start_outage(outage);
        tracing::info!(kind, ?lasting, "partner outage");
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(lasting) => {}
        }
        sim.end_outage();
        stats.seconds += started.elapsed().as_secs_f64();
        if stop.is_cancelled() {
            break;
        }
    }
    stats
}
