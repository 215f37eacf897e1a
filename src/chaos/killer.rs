//! The killer: SIGKILLs one of the hub processes at random moments (exponential intervals
//! with the configured mean), and starts it again after a short pause.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::faults::next_kill_in;
use super::hubs::HubInstance;

/// What the killer did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KillStats {
    pub kills: u64,
    pub restarts: u64,
    /// Kills per hub instance name.
    pub kills_by_hub: std::collections::BTreeMap<String, u64>,
}

/// Kills and restarts `hubs` until `stop`; hands the hubs back, all running.
pub(crate) async fn run(
    mut hubs: Vec<HubInstance>,
    http: reqwest::Client,
    mean: Duration,
    restart_after: Duration,
    seed: u64,
    stop: CancellationToken,
) -> (Vec<HubInstance>, KillStats, anyhow::Result<()>) {
    let mut stats = KillStats::default();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6b69_6c6c);
    if mean.is_zero() || hubs.is_empty() {
        stop.cancelled().await;
        return (hubs, stats, Ok(()));
    }
    loop {
        let wait = next_kill_in(&mut rng, mean);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        let i = rng.gen_range(0..hubs.len());
        let hub = &mut hubs[i];
        if let Err(e) = hub.kill().await {
            return (hubs, stats, Err(e));
        }
        stats.kills += 1;
        *stats.kills_by_hub.entry(hub.name.clone()).or_default() += 1;
        let started = Instant::now();
        tokio::time::sleep(restart_after).await;
        if let Err(e) = hub.start(&http).await {
            return (hubs, stats, Err(e));
        }
        stats.restarts += 1;
        tracing::info!(hub = %hub.name, down_for = ?started.elapsed(), "hub killed and restarted");
    }
    (hubs, stats, Ok(()))
}
