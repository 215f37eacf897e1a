//! The report of a run: serde-serialisable for `--json`, and an aligned table for a terminal.

use serde::Serialize;
use std::fmt;
use std::time::Duration;

use super::check::CheckReport;
use super::errors::ErrorLog;
use super::ledger::Kind as _;
use super::matching::MatchLatency;
use super::record::FlowRecord;
use super::stats::{LatencySummary, Op};
use super::tally::Tally;
use super::LoadgenOptions;

/// How many violations the text report lists one by one.
const VIOLATIONS_SHOWN: usize = 10;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub hubs: Vec<String>,
    pub lanes: usize,
    pub decline_share: f64,
    pub reverse_share: f64,
    pub flows_started: u64,
    /// Flows that went as planned with no error.
    pub flows_completed: u64,
    pub flows_failed: u64,
    pub confirmed: u64,
    pub reversed: u64,
    pub declined: u64,
    /// From the first flow's start to the last flow's end (the settle wait excluded).
    pub wall_time_secs: f64,
    /// Completed flows per second of wall time.
    pub flows_per_sec: f64,
    /// Per operation, latencies in microseconds (`pay`: request sent to answer read).
    pub operations: Vec<LatencySummary>,
    /// Whole flows that completed, createQrCode to the advice's 202.
    pub flow: LatencySummary,
    pub match_latency: MatchLatency,
    pub errors: ErrorLog,
    /// How long the end check waited for the ledger to settle.
    pub settle_secs: f64,
    pub check: CheckReport,
    /// Every flow that got a tranId, as the POS saw it (the input of the check).
    #[serde(skip)]
    pub flows: Vec<FlowRecord>,
}

impl Report {
    pub(crate) fn new(
        options: &LoadgenOptions,
        tally: Tally,
        wall: Duration,
        match_latency: MatchLatency,
        check: CheckReport,
        settled_after: Duration,
    ) -> Self {
        let wall_secs = wall.as_secs_f64();
        let operations = Op::MEASURED
            .iter()
            .map(|op| {
                tally
                    .ops
                    .get(op)
                    .cloned()
                    .unwrap_or_default()
                    .summary(op.name())
            })
            .collect();
        Self {
            hubs: options.hubs.clone(),
            lanes: options.lanes,
            decline_share: options.decline_share,
            reverse_share: options.reverse_share,
            flows_started: tally.started,
            flows_completed: tally.completed,
            flows_failed: tally.started - tally.completed,
            confirmed: tally.confirmed,
            reversed: tally.reversed,
            declined: tally.declined,
            wall_time_secs: wall_secs,
            flows_per_sec: if wall_secs > 0.0 {
                tally.completed as f64 / wall_secs
            } else {
                0.0
            },
            operations,
            flow: tally.flow.summary("flow"),
            match_latency,
            errors: tally.errors,
            settle_secs: settled_after.as_secs_f64(),
            check,
            flows: tally.flows,
        }
    }

    /// No error and no violation.
    pub fn passed(&self) -> bool {
        self.errors.is_empty() && self.check.passed() && self.flows_failed == 0
    }
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn row(f: &mut fmt::Formatter<'_>, name: &str, s: &LatencySummary) -> fmt::Result {
    writeln!(
        f,
        "  {:<14} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        name,
        s.count,
        ms(s.mean_us),
        ms(s.p50_us),
        ms(s.p90_us),
        ms(s.p99_us),
        ms(s.p999_us),
        ms(s.max_us)
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "qrhub loadgen: {} lanes over {} hub(s) {}",
            self.lanes,
            self.hubs.len(),
            self.hubs.join(", ")
        )?;
        writeln!(
            f,
            "  flows: {} completed of {} started in {:.2}s = {:.1} flows/s",
            self.flows_completed, self.flows_started, self.wall_time_secs, self.flows_per_sec
        )?;
        writeln!(
            f,
            "  completed: {} confirmed, {} reversed, {} declined; {} failed",
            self.confirmed, self.reversed, self.declined, self.flows_failed
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "  {:<14} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "mean", "p50", "p90", "p99", "p99.9", "max"
        )?;
        for s in &self.operations {
            row(f, &s.name, s)?;
        }
        row(f, "whole flow", &self.flow)?;
        row(f, "match *", &self.match_latency.latency)?;
        writeln!(f, "  * match: {}", self.match_latency.method)?;
        if self.match_latency.negative > 0 {
            writeln!(
                f,
                "    ({} samples were negative and counted as 0)",
                self.match_latency.negative
            )?;
        }
        writeln!(f)?;
        if self.errors.is_empty() {
            writeln!(f, "  errors: none")?;
        } else {
            writeln!(f, "  errors: {}", self.errors.total)?;
            let width = self
                .errors
                .by_kind
                .keys()
                .map(String::len)
                .max()
                .unwrap_or(0);
            for (kind, n) in &self.errors.by_kind {
                writeln!(f, "    {kind:<width$} {n:>8}")?;
            }
            writeln!(f, "  first errors:")?;
            for s in &self.errors.samples {
                let status = s.status.map_or("-".to_owned(), |s| s.to_string());
                let tran = s.tran_id.as_deref().unwrap_or("-");
                writeln!(
                    f,
                    "    {} {status} tranId {tran}: {}",
                    s.operation, s.detail
                )?;
            }
        }
        writeln!(f)?;
        let c = &self.check;
        writeln!(
            f,
            "  end-of-run check: {} ({} flows; ledger {} entries: {} pays, {} confirmations and {} \
             reversals accepted, {} refused deliveries; waited {:.2}s)",
            if c.passed() { "PASSED" } else { "FAILED" },
            c.flows_checked,
            c.ledger_entries,
            c.pays,
            c.confirmations_accepted,
            c.reversals_accepted,
            c.refused_deliveries,
            self.settle_secs
        )?;
        if !c.passed() {
            writeln!(f, "  violations: {}", c.violations.len())?;
            for (kind, n) in &c.violations_by_kind {
                writeln!(f, "    {kind:<24} {n:>8}")?;
            }
            for v in c.violations.iter().take(VIOLATIONS_SHOWN) {
                writeln!(
                    f,
                    "    {} tranId {}: {}",
                    v.kind.name(),
                    v.tran_id.as_deref().unwrap_or("-"),
                    v.detail
                )?;
            }
            if c.violations.len() > VIOLATIONS_SHOWN {
                writeln!(f, "    ...")?;
            }
        }
        Ok(())
    }
}
