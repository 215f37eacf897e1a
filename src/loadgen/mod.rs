//! The load generator (`qrhub loadgen`): many POS lanes drive whole payments through one or
//! more hubs while it plays the partner's scans, then checks that the partner (the simulator)
//! received exactly what the hub told the POS.
//!
//! A flow: createQrCode → pay (held by the hub) with the scan sent beside it → 201, or the
//! decline scripted through the simulator's control API → a confirmation, or for a share of
//! flows a reversal (CANCELLED); declined flows get no advice. Latencies are recorded per
//! operation in HDR histograms (µs), and the match latency (scan sent → partner got the pay)
//! is taken from the simulator's ledger; see [`matching`] for that approximation.
//!
//! At the end the ledger (reset at the start) is polled until it agrees with the POS's view
//! or `settle_timeout` passes, and [`check`](check::check) lists every disagreement.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use qrhub::loadgen::{run, LoadgenOptions};
//! let report = run(LoadgenOptions {
//!     hubs: vec!["http://127.0.0.1:8080".into()],
//!     simulator: "http://127.0.0.1:8081".into(),
//!     lanes: 8,
//!     count: Some(100),
//!     decline_share: 0.1,
//!     reverse_share: 0.1,
//!     ..LoadgenOptions::default()
//! })
//! .await?;
//! println!("{report}");
//! assert!(report.passed());
//! # Ok(()) }
//! ```

pub(crate) mod check;
mod control;
pub(crate) mod errors;
mod flow;
mod http;
mod lanes;
pub(crate) mod ledger;
pub(crate) mod matching;
pub(crate) mod messages;
mod options;
pub(crate) mod plan;
pub(crate) mod record;
pub(crate) mod reference;
pub(crate) mod report;
pub(crate) mod stats;
mod tally;

pub use check::{check, CheckReport, Violation, ViolationKind};
pub use options::{LoadgenOptions, DEFAULT_DURATION};
pub use plan::Fate;
pub use record::{AdviceSent, FlowRecord, PayOutcome};
pub use report::Report;

use anyhow::Context as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::simulator::LedgerEntry;
use control::SimulatorControl;
use flow::Context;
use http::Http;

/// How often the end check re-reads the ledger while advices are still on their way.
const SETTLE_POLL: Duration = Duration::from_millis(250);

/// Runs the load and the end check; the report says whether it passed (it is not an error
/// here when it did not: see [`command`]).
pub async fn run(options: LoadgenOptions) -> anyhow::Result<Report> {
    options.validate()?;
    let http = Http::new(options.lanes, options.request_timeout)?;
    let simulator = SimulatorControl::new(http.clone(), &options.simulator);
    simulator
        .reset_ledger()
        .await
        .context("resetting the simulator's ledger")?;
    let count = options.count;
    let duration = count
        .is_none()
        .then(|| options.duration.unwrap_or(DEFAULT_DURATION));
    let ctx = Arc::new(Context {
        http,
        simulator: simulator.clone(),
        options: options.clone(),
    });
    let (tally, wall) = lanes::run_lanes(ctx, count, duration).await?;
    let (ledger, check, settled_after) =
        settle(&simulator, &tally.flows, options.settle_timeout).await?;
    let match_latency = matching::match_latency(&tally.flows, &ledger);
    Ok(Report::new(
        &options,
        tally,
        wall,
        match_latency,
        check,
        settled_after,
    ))
}

/// Re-reads the ledger until no violation is left that waiting could cure, or `timeout`.
async fn settle(
    simulator: &SimulatorControl,
    flows: &[FlowRecord],
    timeout: Duration,
) -> anyhow::Result<(Vec<LedgerEntry>, CheckReport, Duration)> {
    let started = Instant::now();
    loop {
        let ledger = simulator
            .ledger()
            .await
            .context("reading the simulator's ledger")?;
        let report = check(flows, &ledger);
        let waiting = report.violations.iter().any(|v| v.kind.may_resolve());
        let elapsed = started.elapsed();
        if !waiting || elapsed >= timeout {
            return Ok((ledger, report, elapsed));
        }
        tokio::time::sleep(SETTLE_POLL.min(timeout - elapsed)).await;
    }
}

/// `qrhub loadgen`: runs, prints the report, writes it as JSON when asked, and fails when
/// there was any error or violation.
pub async fn command(options: LoadgenOptions) -> anyhow::Result<()> {
    let json = options.json.clone();
    let report = run(options).await?;
    println!("{report}");
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report).context("serialising the report")?;
        std::fs::write(&path, text)
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    anyhow::ensure!(
        report.passed(),
        "the load run failed: {} error(s), {} failed flow(s), {} violation(s)",
        report.errors.total,
        report.flows_failed,
        report.check.violations.len()
    );
    Ok(())
}
