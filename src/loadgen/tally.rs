//! What a lane counts and measures, merged into the run's when every lane has stopped.

use std::collections::BTreeMap;

use super::errors::ErrorLog;
use super::record::FlowRecord;
use super::stats::{Latency, Op};

/// What one lane (and, merged, the run) counted and measured.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub started: u64,
    /// Flows that went as planned, with no error.
    pub completed: u64,
    pub confirmed: u64,
    pub reversed: u64,
    pub declined: u64,
    pub ops: BTreeMap<Op, Latency>,
    /// Whole-flow latency of completed flows.
    pub flow: Latency,
    pub errors: ErrorLog,
    pub flows: Vec<FlowRecord>,
}

impl Tally {
    pub(crate) fn latency(&mut self, op: Op) -> &mut Latency {
        self.ops.entry(op).or_default()
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        self.started += other.started;
        self.completed += other.completed;
        self.confirmed += other.confirmed;
        self.reversed += other.reversed;
        self.declined += other.declined;
        for (op, h) in &other.ops {
            self.latency(*op).merge(h);
        }
        self.flow.merge(&other.flow);
        self.errors.merge(other.errors);
        self.flows.extend(other.flows);
    }
}
