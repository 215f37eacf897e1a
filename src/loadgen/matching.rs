//! Match latency: from a scan reaching the hub to the hub's pay reaching the partner.
//!
//! Approximated as the time between the load generator sending the scan (the wall clock read
//! just before the request) and the simulator's `received_at` of that tranId's pay. Both are
//! the same machine's wall clock when the load generator and the simulator run on one host,
//! and it includes the scan's trip to the hub and the pay's trip to the partner (loopback:
//! tens of microseconds). Negative values (a clock step) count as zero and are counted.

use serde::Serialize;
use std::collections::HashMap;

use super::record::FlowRecord;
use super::stats::{Latency, LatencySummary};
use crate::simulator::{LedgerEntry, MessageKind};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchLatency {
    #[serde(flatten)]
    pub latency: LatencySummary,
    /// Samples where the partner's clock read earlier than the scan's (recorded as zero).
    pub negative: u64,
    pub method: &'static str,
}

pub(crate) const METHOD: &str =
    "loadgen wall clock just before sending the scan -> simulator ledger \
received_at of the tranId's pay (same host's wall clock; includes both network hops)";

/// One sample per flow that had an accepted scan and whose pay the partner received.
pub(crate) fn match_latency(flows: &[FlowRecord], ledger: &[LedgerEntry]) -> MatchLatency {
    let mut first_pay = HashMap::new();
    for e in ledger.iter().filter(|e| e.kind == MessageKind::Pay) {
        if let Some(t) = e.tran_id.as_deref() {
            first_pay.entry(t).or_insert(e.received_at);
        }
    }
    let mut h = Latency::default();
    let mut negative = 0;
    for f in flows {
        let (Some(sent), Some(received)) = (f.scan_sent_at, first_pay.get(f.tran_id.as_str()))
        else {
            continue;
        };
        match (*received - sent).to_std() {
            Ok(d) => h.record(d),
            Err(_) => {
                negative += 1;
                h.record_micros(0);
            }
        }
    }
    MatchLatency {
        latency: h.summary("match"),
        negative,
        method: METHOD,
    }
}
