//! What the two end-of-run checks share, this tool's ([`super::check`]) and the chaos run's
//! (`chaos::check`, which sits above this tool): the partner's ledger read per tranId, and
//! the violation each reports with its count per kind. Each check keeps its own invariants
//! and its own kinds of violation.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

use crate::simulator::{LedgerEntry, MessageKind};

/// A check's kind of violation, by the name its report counts it under.
pub(crate) trait Kind: Copy {
    fn name(self) -> &'static str;
}

/// One thing a check found wrong: its kind, the tranId it is about when it has one, and
/// what was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation<K> {
    pub kind: K,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tran_id: Option<String>,
    pub detail: String,
}

/// How many violations of each kind, by the kind's name (a report's `violationsByKind`).
pub(crate) fn count_by_kind<K: Kind>(violations: &[Violation<K>]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for v in violations {
        *counts.entry(v.kind.name().to_owned()).or_default() += 1;
    }
    counts
}

/// Every ledger entry with the tranId it is about: its own, or, for an advice that names
/// none, that of the pay whose id its `requestId` names; `None` when neither tells.
pub(crate) fn by_tran_id(ledger: &[LedgerEntry]) -> Vec<(Option<&str>, &LedgerEntry)> {
    let pay_tran: HashMap<&str, &str> = ledger
        .iter()
        .filter(|e| e.kind == MessageKind::Pay)
        .filter_map(|e| Some((e.id.as_deref()?, e.tran_id.as_deref()?)))
        .collect();
    ledger
        .iter()
        .map(|e| {
            let tran = e.tran_id.as_deref().or_else(|| {
                e.request_id
                    .as_deref()
                    .and_then(|r| pay_tran.get(r).copied())
            });
            (tran, e)
        })
        .collect()
}
