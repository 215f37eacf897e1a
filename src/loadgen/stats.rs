//! Latency histograms (microseconds) and their summaries.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// The operations whose latency is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    CreateQrCode,
    Pay,
    Scan,
    Confirm,
    Reverse,
    /// A call to the simulator's control API (scripting a decline, reading the ledger).
    Simulator,
}

impl Op {
    pub const MEASURED: [Op; 5] = [
        Op::CreateQrCode,
        Op::Pay,
        Op::Scan,
        Op::Confirm,
        Op::Reverse,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::CreateQrCode => "createQrCode",
            Op::Pay => "pay",
            Op::Scan => "scan",
            Op::Confirm => "confirm",
            Op::Reverse => "reverse",
            Op::Simulator => "simulator",
        }
    }
}

/// A histogram of microseconds from 1µs to one hour, 3 significant digits.
#[derive(Debug, Clone)]
pub(crate) struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid"))
    }
}

impl Latency {
    pub(crate) fn record(&mut self, d: Duration) {
        self.record_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Values beyond the histogram's range are clamped to it.
    pub(crate) fn record_micros(&mut self, us: u64) {
        self.0.saturating_record(us.max(1));
    }

    pub(crate) fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub(crate) fn summary(&self, name: &str) -> LatencySummary {
        let h = &self.0;
        let empty = h.is_empty();
        let q = |q: f64| if empty { 0 } else { h.value_at_quantile(q) };
        LatencySummary {
            name: name.to_owned(),
            count: h.len(),
            mean_us: if empty { 0 } else { h.mean().round() as u64 },
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if empty { 0 } else { h.max() },
        }
    }
}

/// Count and percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    pub name: String,
    pub count: u64,
    pub mean_us: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut a = Latency::default();
        let mut b = Latency::default();
        for ms in 1..=50 {
            a.record(Duration::from_millis(ms));
        }
        for ms in 51..=100 {
            b.record(Duration::from_millis(ms));
        }
        a.merge(&b);
        let s = a.summary("x");
        assert_eq!(s.count, 100);
        assert!((49_900..=50_100).contains(&s.p50_us), "{}", s.p50_us);
        assert!((99_900..=100_100).contains(&s.max_us), "{}", s.max_us);
        assert_eq!(Latency::default().summary("e").p99_us, 0);
    }
}
