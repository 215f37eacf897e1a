//! What a load run does: where it sends requests, how many lanes, for how long, and which
//! share of flows are declined or reversed.

use std::path::PathBuf;
use std::time::Duration;

/// The options of `qrhub loadgen`, also built directly by tests ([`Default`] fills in the
/// command line's defaults, with no hub and no simulator URL).
#[derive(Debug, Clone, clap::Args)]
pub struct LoadgenOptions {
    /// Base URL of a hub (repeatable; lanes are spread round-robin over them).
    #[arg(long = "hub", required = true, value_name = "URL")]
    pub hubs: Vec<String>,
    /// Base URL of the partner simulator's control API (`/simulator/...`).
    #[arg(long, value_name = "URL")]
    pub simulator: String,
    /// Concurrent POS lanes, each running flows back to back.
    #[arg(long, default_value_t = 50)]
    pub lanes: usize,
    /// How long new flows are started (flows under way then are finished); the default when
    /// neither --duration nor --count is given is 60s.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "count")]
    pub duration: Option<Duration>,
    /// Total flows to run, instead of a duration.
    #[arg(long)]
    pub count: Option<u64>,
    /// Basic user of the POS client.
    #[arg(long, default_value = "pos-1")]
    pub pos_user: String,
    #[arg(long, default_value = "pos-1-secret")]
    pub pos_password: String,
    /// Basic user of the partner that scans (also `partner.id` in the scan).
    #[arg(long, default_value = "wallet-1")]
    pub partner_user: String,
    #[arg(long, default_value = "wallet-1-secret")]
    pub partner_password: String,
    /// `partner.name` in the scan.
    #[arg(long, default_value = "Demo Wallet")]
    pub partner_name: String,
    /// Share of all flows (0.0..=1) whose pay the simulator is scripted to decline.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub decline_share: f64,
    /// Share of all flows (0.0..=1) that the POS reverses (CANCELLED) instead of confirming;
    /// disjoint from the declined share, so the two may add up to at most 1.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub reverse_share: f64,
    /// How long the end check waits for the advices to reach the partner.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub settle_timeout: Duration,
    /// Pause between sending a pay and sending its scan.
    #[arg(long, default_value = "2ms", value_parser = humantime::parse_duration)]
    pub scan_delay: Duration,
    /// Spread the lanes' first flows evenly over this time instead of starting all at once.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub ramp_up: Duration,
    /// Timeout of every single request (a held pay lasts up to the hub's pay_deadline).
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Write the report as JSON to this file as well.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

/// The run length when neither a duration nor a count is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(60);

impl Default for LoadgenOptions {
    fn default() -> Self {
        Self {
            hubs: Vec::new(),
            simulator: String::new(),
            lanes: 50,
            duration: None,
            count: None,
            pos_user: "pos-1".into(),
            pos_password: "pos-1-secret".into(),
            partner_user: "wallet-1".into(),
            partner_password: "wallet-1-secret".into(),
            partner_name: "Demo Wallet".into(),
            decline_share: 0.0,
            reverse_share: 0.0,
            settle_timeout: Duration::from_secs(30),
            scan_delay: Duration::from_millis(2),
            ramp_up: Duration::ZERO,
            request_timeout: Duration::from_secs(120),
            json: None,
        }
    }
}

impl LoadgenOptions {
    /// Refuses options no run can honour.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.hubs.is_empty(), "at least one --hub is needed");
        anyhow::ensure!(!self.simulator.is_empty(), "--simulator is needed");
        anyhow::ensure!(self.lanes > 0, "--lanes must be at least 1");
        anyhow::ensure!(
            self.duration.is_none() || self.count.is_none(),
            "give --duration or --count, not both"
        );
        for (name, v) in [
            ("--decline-share", self.decline_share),
            ("--reverse-share", self.reverse_share),
        ] {
            anyhow::ensure!(
                (0.0..=1.0).contains(&v),
                "{name} must lie in 0..=1, not {v}"
            );
        }
        anyhow::ensure!(
            self.decline_share + self.reverse_share <= 1.0 + 1e-9,
            "--decline-share + --reverse-share must not exceed 1"
        );
        Ok(())
    }
}

fn share(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not in 0..=1"))
    }
}
