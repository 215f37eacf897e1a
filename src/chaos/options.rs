//! What a chaos run does: how many flows over how many lanes, how often a hub dies, which
//! seed picks the faults, and how long the outboxes get to drain before the check.

use std::time::Duration;

/// The options of `qrhub chaos`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ChaosOptions {
    /// PostgreSQL admin URL: the run creates `qrhub_chaos_<random>` on this server, points
    /// both hubs at it, and drops it at the end (unless --keep).
    #[arg(
        long,
        env = "QRHUB_CHAOS_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    /// Total flows to run (default 300 when neither --flows nor --duration is given).
    #[arg(long, conflicts_with = "duration")]
    pub flows: Option<u64>,
    /// Start new flows for this long instead of a fixed count.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Concurrent POS lanes; each runs flows back to back, against either hub.
    #[arg(long, default_value_t = 16)]
    pub lanes: usize,
    /// Mean time between SIGKILLs of a hub process (exponentially distributed); 0 kills
    /// nothing.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub kill_every: Duration,
    /// Mean time between outages of the partner (exponentially distributed): a maintenance
    /// window (every call 503 with Retry-After) or refused connections; 0 for none.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub outage_every: Duration,
    /// The longest outage; each lasts between a quarter of this and all of it.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub outage_for: Duration,
    /// How long a killed hub stays down before it is started again.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub restart_after: Duration,
    /// Seed of every random choice (faults, hubs, kill times); random when absent, and
    /// printed either way so that a run's choices can be repeated.
    #[arg(long)]
    pub seed: Option<u64>,
    /// After the load: how long to wait for the outboxes to drain before checking.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// The hubs' timeout for the partner; the simulator's slow answers are scripted below
    /// and above it.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub partner_timeout: Duration,
    /// Keep the database (and the hubs' logs) instead of dropping them at the end.
    #[arg(long)]
    pub keep: bool,
    /// Print the report as JSON on standard output instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Flows run when neither --flows nor --duration is given.
pub(crate) const DEFAULT_FLOWS: u64 = 300;

impl Default for ChaosOptions {
    fn default() -> Self {
        Self {
            database_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            flows: None,
            duration: None,
            lanes: 16,
            kill_every: Duration::from_secs(5),
            outage_every: Duration::from_secs(20),
            outage_for: Duration::from_secs(3),
            restart_after: Duration::from_millis(500),
            seed: None,
            settle: Duration::from_secs(60),
            partner_timeout: Duration::from_secs(1),
            keep: false,
            json: false,
        }
    }
}

impl ChaosOptions {
    /// Refuses options no run can honour.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.lanes > 0, "--lanes must be at least 1");
        anyhow::ensure!(
            self.flows.is_none() || self.duration.is_none(),
            "give --flows or --duration, not both"
        );
        anyhow::ensure!(
            self.partner_timeout >= Duration::from_millis(100)
                && self.partner_timeout <= Duration::from_secs(10),
            "--partner-timeout must lie between 100ms and 10s"
        );
        anyhow::ensure!(
            self.database_url.starts_with("postgres://")
                || self.database_url.starts_with("postgresql://"),
            "--database-url must be a postgres:// URL (two hub instances need PostgreSQL)"
        );
        Ok(())
    }
}
