//! The run's figures: what the POS saw, what the hub stored, what was injected, and what the
//! checker found; as text or JSON.

use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt;

use super::check::CheckReport;
use super::killer::KillStats;
use super::outages::OutageStats;
use super::record::{AdviceAnswer, HubAdvice, HubPayment, PosFlow, PosPay};
use crate::domain::AdviceKind;
use crate::loadgen::ledger::Kind as _;
use crate::simulator::{LedgerEntry, MessageKind};

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PosCounts {
    pub approved: usize,
    pub declined: usize,
    pub unknown: usize,
    /// Other final answers (NO_SCAN_RECEIVED, ...), by status and error type.
    pub refused: BTreeMap<String, usize>,
    pub not_sent: usize,
    /// Pays the POS dropped before their answer (it went away).
    pub hung_up: usize,
    pub confirmations_accepted: usize,
    pub reversals_accepted: usize,
    /// Reversals the hub answered 404 (it never saw the pay).
    pub reversals_not_found: usize,
    /// Advices with another final answer, by status and error type.
    pub advices_refused: BTreeMap<String, usize>,
    /// Advice sends beyond the first (store-and-forward retries on the POS side).
    pub advice_retries: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChaosReport {
    pub seed: u64,
    pub lanes: usize,
    pub database: String,
    pub load_seconds: f64,
    pub settle_seconds: f64,
    /// Flows that got a QR code, and those that never did (no hub answered in time).
    pub flows: usize,
    pub flows_without_qr_code: u64,
    pub scans_accepted: u64,
    pub pos: PosCounts,
    pub hub_states: BTreeMap<String, usize>,
    /// Reversals the hub queued for the partner, by who asked for them.
    pub reversals_by_origin: BTreeMap<String, usize>,
    pub kills: u64,
    pub restarts: u64,
    pub kills_by_hub: BTreeMap<String, u64>,
    /// The partner's outages (maintenance windows, refused connections).
    pub outages: OutageStats,
    /// Faults scripted, by kind.
    pub faults_scripted: BTreeMap<String, usize>,
    /// Faults that took effect: the pay reached the partner / an advice of the flow did.
    pub faults_injected: BTreeMap<String, usize>,
    pub partner_pays: usize,
    pub advice_deliveries: usize,
    pub advices_delivered: usize,
    pub check: CheckReport,
}

impl ChaosReport {
    pub(crate) fn passed(&self) -> bool {
        self.check.passed()
    }
}

pub(crate) struct Inputs<'a> {
    pub seed: u64,
    pub lanes: usize,
    pub database: String,
    pub load_seconds: f64,
    pub settle_seconds: f64,
    pub flows: &'a [PosFlow],
    pub flows_without_qr_code: u64,
    pub scans_accepted: u64,
    pub payments: &'a [HubPayment],
    pub outbox: &'a [HubAdvice],
    pub ledger: &'a [LedgerEntry],
    pub kills: KillStats,
    pub outages: OutageStats,
    pub check: CheckReport,
}

fn bump(map: &mut BTreeMap<String, usize>, key: impl Into<String>) {
    *map.entry(key.into()).or_default() += 1;
}

fn answer_key(status: u16, error_type: &Option<String>) -> String {
    format!("{status} {}", error_type.as_deref().unwrap_or("-"))
}

impl ChaosReport {
    pub(crate) fn new(i: Inputs<'_>) -> Self {
        let mut pos = PosCounts::default();
        for f in i.flows {
            match &f.pay {
                PosPay::NotSent => pos.not_sent += 1,
                PosPay::Approved => pos.approved += 1,
                PosPay::Declined => pos.declined += 1,
                PosPay::Unknown { .. } => pos.unknown += 1,
                PosPay::Refused { status, error_type } => {
                    bump(&mut pos.refused, answer_key(*status, error_type))
                }
                PosPay::HungUp { .. } => pos.hung_up += 1,
            }
            if let Some(a) = &f.advice {
                pos.advice_retries += u64::from(a.tries.saturating_sub(1));
                match (&a.answer, a.kind) {
                    (AdviceAnswer::Accepted, AdviceKind::Confirmation) => {
                        pos.confirmations_accepted += 1
                    }
                    (AdviceAnswer::Accepted, AdviceKind::Reversal) => pos.reversals_accepted += 1,
                    (AdviceAnswer::NotFound, _) => pos.reversals_not_found += 1,
                    (AdviceAnswer::Refused { status, error_type }, _) => {
                        bump(&mut pos.advices_refused, answer_key(*status, error_type))
                    }
                    (AdviceAnswer::Unsettled { .. }, _) => {
                        bump(&mut pos.advices_refused, "unsettled")
                    }
                }
            }
        }
        let mut hub_states = BTreeMap::new();
        for p in i.payments {
            bump(&mut hub_states, p.state.as_str());
        }
        let mut reversals_by_origin = BTreeMap::new();
        for a in i.outbox {
            if let Some(o) = a.origin {
                bump(&mut reversals_by_origin, o.name());
            }
        }
        let paid: HashSet<&str> = i
            .ledger
            .iter()
            .filter(|e| e.kind == MessageKind::Pay)
            .filter_map(|e| e.tran_id.as_deref())
            .collect();
        let advised: HashSet<&str> = i
            .ledger
            .iter()
            .filter(|e| e.kind != MessageKind::Pay)
            .filter_map(|e| e.tran_id.as_deref())
            .collect();
        let (mut faults_scripted, mut faults_injected) = (BTreeMap::new(), BTreeMap::new());
        for f in i.flows {
            bump(&mut faults_scripted, f.plan.pay_fault.name());
            if paid.contains(f.tran_id.as_str()) {
                bump(&mut faults_injected, f.plan.pay_fault.name());
            }
            if let Some(a) = f.plan.advice_fault {
                bump(&mut faults_scripted, a.name());
                if advised.contains(f.tran_id.as_str()) {
                    bump(&mut faults_injected, a.name());
                }
            }
        }
        Self {
            seed: i.seed,
            lanes: i.lanes,
            database: i.database,
            load_seconds: i.load_seconds,
            settle_seconds: i.settle_seconds,
            flows: i.flows.len(),
            flows_without_qr_code: i.flows_without_qr_code,
            scans_accepted: i.scans_accepted,
            pos,
            hub_states,
            reversals_by_origin,
            kills: i.kills.kills,
            restarts: i.kills.restarts,
            kills_by_hub: i.kills.kills_by_hub,
            outages: i.outages,
            faults_scripted,
            faults_injected,
            partner_pays: paid.len(),
            advice_deliveries: i.check.advice_deliveries,
            advices_delivered: i.check.advices_accepted,
            check: i.check,
        }
    }
}

fn map_line<V: fmt::Display>(map: &BTreeMap<String, V>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.pos;
        writeln!(
            f,
            "qrhub chaos: seed {}, {} lanes, database {}",
            self.seed, self.lanes, self.database
        )?;
        writeln!(
            f,
            "load {:.1}s, settle {:.1}s",
            self.load_seconds, self.settle_seconds
        )?;
        writeln!(
            f,
            "flows {} (without a QR code: {}), scans accepted {}",
            self.flows, self.flows_without_qr_code, self.scans_accepted
        )?;
        writeln!(
            f,
            "POS: approvals {}, declines {}, unknowns {}, not sent {}, hung up {}, other answers: {}",
            p.approved,
            p.declined,
            p.unknown,
            p.not_sent,
            p.hung_up,
            map_line(&p.refused)
        )?;
        writeln!(
            f,
            "POS went away: ended by the hub before a scan {}, approvals left unadvised and listed {}",
            self.check.pos_gone_before_scan, self.check.unadvised_listed
        )?;
        writeln!(
            f,
            "POS advices: confirmations accepted {}, reversals accepted {}, reversals 404 {}, retries {}, other: {}",
            p.confirmations_accepted,
            p.reversals_accepted,
            p.reversals_not_found,
            p.advice_retries,
            map_line(&p.advices_refused)
        )?;
        writeln!(f, "hub payment states: {}", map_line(&self.hub_states))?;
        writeln!(
            f,
            "reversals by origin: {}",
            map_line(&self.reversals_by_origin)
        )?;
        writeln!(
            f,
            "kills {}, restarts {} ({})",
            self.kills,
            self.restarts,
            map_line(&self.kills_by_hub)
        )?;
        writeln!(
            f,
            "partner outages {} ({}), {:.1}s in all",
            self.outages.count(),
            map_line(&self.outages.by_kind),
            self.outages.seconds
        )?;
        writeln!(f, "faults scripted: {}", map_line(&self.faults_scripted))?;
        writeln!(f, "faults injected: {}", map_line(&self.faults_injected))?;
        writeln!(
            f,
            "partner: pays {}, advice deliveries {}, advices delivered {}, ends: {}",
            self.partner_pays,
            self.advice_deliveries,
            self.advices_delivered,
            map_line(&self.check.partner_ends)
        )?;
        writeln!(
            f,
            "strict-mode violations at the partner: {}",
            self.check.strict_violations
        )?;
        writeln!(
            f,
            "operators' open items: refused advices {}, dead letters {}",
            self.check.refused.len(),
            self.check.dead_letters.len()
        )?;
        for d in self.check.refused.iter().take(20) {
            writeln!(
                f,
                "  FAILED {} {} tranId {} after {} tries: {}",
                d.kind,
                d.message_id,
                d.tran_id.as_deref().unwrap_or("?"),
                d.attempts,
                d.last_error.as_deref().unwrap_or("-")
            )?;
        }
        if self.check.refused.len() > 20 {
            writeln!(f, "  ... and {} more", self.check.refused.len() - 20)?;
        }
        for d in &self.check.dead_letters {
            writeln!(
                f,
                "  DEAD {} {} tranId {} after {} tries: {}",
                d.kind,
                d.message_id,
                d.tran_id.as_deref().unwrap_or("?"),
                d.attempts,
                d.last_error.as_deref().unwrap_or("-")
            )?;
        }
        writeln!(
            f,
            "violations: {} ({})",
            self.check.violations.len(),
            map_line(&self.check.violations_by_kind)
        )?;
        for v in self.check.violations.iter().take(50) {
            writeln!(
                f,
                "  {}: tranId {}: {}",
                v.kind.name(),
                v.tran_id.as_deref().unwrap_or("?"),
                v.detail
            )?;
        }
        if self.check.violations.len() > 50 {
            writeln!(f, "  ... and {} more", self.check.violations.len() - 50)?;
        }
        write!(f, "{}", if self.passed() { "PASSED" } else { "FAILED" })
    }
}
