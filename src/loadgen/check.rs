//! The end-of-run check: does what the partner received (the simulator's ledger) match what
//! the hub told the POS? Pure, so that every rule is unit-tested.
//!
//! Per tranId the load generator used:
//! - a pay the hub answered (201 or the scripted decline) reached the partner exactly once,
//!   and the partner's answer is the one the POS got (2xx, or that decline status);
//! - a pay that failed otherwise reached it at most once; a pay never sent, not at all;
//! - a confirmed flow has exactly one confirmation the partner accepted (2xx) and no
//!   reversal; deliveries the partner refused (non-2xx, or a dropped connection) before it
//!   are retries and allowed;
//! - a reversed flow has exactly one accepted reversal and no confirmation;
//! - declined flows, and approved ones that got no advice, have no advice at all;
//! - flows whose pay failed may have one reversal (the hub reverses an unknown outcome) but
//!   no confirmation; an advice whose fate is unknown may be delivered at most once.
//!
//! And no message in the ledger is about a tranId the load generator never used.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

use super::ledger::{self, Kind};
use super::record::{AdviceSent, FlowRecord, PayOutcome};
use crate::simulator::{LedgerEntry, MessageKind, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ViolationKind {
    /// The hub answered the pay, but the partner never saw it.
    MissingPay,
    /// The partner saw the pay more than once.
    DoubledPay,
    /// The partner saw a pay the POS never sent.
    UnexpectedPay,
    /// The partner answered the pay otherwise than the hub told the POS.
    PayAnswerMismatch,
    MissingConfirmation,
    DoubledConfirmation,
    UnexpectedConfirmation,
    MissingReversal,
    DoubledReversal,
    UnexpectedReversal,
    /// A message about a tranId the load generator never used.
    UnknownTranId,
    /// A message whose tranId cannot be told (no tranId, and no known pay by its requestId).
    Unattributed,
}

impl ViolationKind {
    /// Whether more time could cure it (an advice still in the hub's outbox).
    pub fn may_resolve(self) -> bool {
        matches!(
            self,
            Self::MissingPay | Self::MissingConfirmation | Self::MissingReversal
        )
    }
}

impl Kind for ViolationKind {
    fn name(self) -> &'static str {
        match self {
            Self::MissingPay => "missing pay",
            Self::DoubledPay => "doubled pay",
            Self::UnexpectedPay => "unexpected pay",
            Self::PayAnswerMismatch => "pay answer mismatch",
            Self::MissingConfirmation => "missing confirmation",
            Self::DoubledConfirmation => "doubled confirmation",
            Self::UnexpectedConfirmation => "unexpected confirmation",
            Self::MissingReversal => "missing reversal",
            Self::DoubledReversal => "doubled reversal",
            Self::UnexpectedReversal => "unexpected reversal",
            Self::UnknownTranId => "unknown tranId",
            Self::Unattributed => "unattributed message",
        }
    }
}

pub type Violation = ledger::Violation<ViolationKind>;

/// The outcome of [`check`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub flows_checked: usize,
    pub ledger_entries: usize,
    /// Pay messages the partner received.
    pub pays: usize,
    /// Confirmations and reversals the partner accepted (2xx).
    pub confirmations_accepted: usize,
    pub reversals_accepted: usize,
    /// Deliveries the partner refused or that were cut off (retried by the hub).
    pub refused_deliveries: usize,
    pub violations_by_kind: BTreeMap<String, usize>,
    pub violations: Vec<Violation>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Whether every violation could still disappear by waiting.
    pub fn may_resolve(&self) -> bool {
        self.violations.iter().all(|v| v.kind.may_resolve())
    }
}

/// How many of an advice kind a flow must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Zero,
    One,
    AtMostOne,
}

#[derive(Default)]
struct Seen<'a> {
    pays: Vec<&'a LedgerEntry>,
    confirmations: Vec<&'a LedgerEntry>,
    reversals: Vec<&'a LedgerEntry>,
}

fn accepted(e: &LedgerEntry) -> bool {
    e.outcome == Outcome::Answered && e.status.is_some_and(|s| (200..300).contains(&s))
}

/// Compares what the POS was told (`expected`) with what the partner received (`ledger`).
pub fn check(expected: &[FlowRecord], ledger: &[LedgerEntry]) -> CheckReport {
    let mut report = CheckReport {
        flows_checked: expected.len(),
        ledger_entries: ledger.len(),
        ..CheckReport::default()
    };
    let mut violations = Vec::new();

    let mut by_tran: HashMap<&str, Seen> = HashMap::new();
    for (tran, e) in ledger::by_tran_id(ledger) {
        let Some(tran) = tran else {
            violations.push(Violation {
                kind: ViolationKind::Unattributed,
                tran_id: None,
                detail: format!(
                    "ledger entry {} ({:?}, id {:?}) names no tranId nor a known pay",
                    e.seq, e.kind, e.id
                ),
            });
            continue;
        };
        let seen = by_tran.entry(tran).or_default();
        match e.kind {
            MessageKind::Pay => seen.pays.push(e),
            MessageKind::Confirmation => seen.confirmations.push(e),
            MessageKind::Reversal => seen.reversals.push(e),
        }
        match e.kind {
            MessageKind::Pay => report.pays += 1,
            MessageKind::Confirmation if accepted(e) => report.confirmations_accepted += 1,
            MessageKind::Reversal if accepted(e) => report.reversals_accepted += 1,
            _ => report.refused_deliveries += 1,
        }
    }

    let known: HashSet<&str> = expected.iter().map(|f| f.tran_id.as_str()).collect();
    let mut unknown: Vec<(&str, &Seen)> = by_tran
        .iter()
        .filter(|(t, _)| !known.contains(*t))
        .map(|(t, s)| (*t, s))
        .collect();
    unknown.sort_by_key(|(t, _)| *t);
    for (tran, seen) in unknown {
        violations.push(Violation {
            kind: ViolationKind::UnknownTranId,
            tran_id: Some(tran.to_owned()),
            detail: format!(
                "the partner got {} pay(s), {} confirmation(s), {} reversal(s) for a tranId never used",
                seen.pays.len(),
                seen.confirmations.len(),
                seen.reversals.len()
            ),
        });
    }

    let empty = Seen::default();
    for flow in expected {
        let seen = by_tran.get(flow.tran_id.as_str()).unwrap_or(&empty);
        check_pay(flow, &seen.pays, &mut violations);
        let (confirmations, reversals) = match (flow.pay, flow.advice) {
            (PayOutcome::Approved, AdviceSent::Confirmed) => (Want::One, Want::Zero),
            (PayOutcome::Approved, AdviceSent::Reversed) => (Want::Zero, Want::One),
            (PayOutcome::Approved, AdviceSent::Unknown) => (Want::AtMostOne, Want::AtMostOne),
            (PayOutcome::Failed { .. }, _) => (Want::Zero, Want::AtMostOne),
            (PayOutcome::Approved, AdviceSent::None)
            | (PayOutcome::Declined { .. }, _)
            | (PayOutcome::NotSent, _) => (Want::Zero, Want::Zero),
        };
        check_advice(
            flow,
            &seen.confirmations,
            confirmations,
            [
                ViolationKind::MissingConfirmation,
                ViolationKind::DoubledConfirmation,
                ViolationKind::UnexpectedConfirmation,
            ],
            &mut violations,
        );
        check_advice(
            flow,
            &seen.reversals,
            reversals,
            [
                ViolationKind::MissingReversal,
                ViolationKind::DoubledReversal,
                ViolationKind::UnexpectedReversal,
            ],
            &mut violations,
        );
    }

    report.violations_by_kind = ledger::count_by_kind(&violations);
    report.violations = violations;
    report
}

fn check_pay(flow: &FlowRecord, pays: &[&LedgerEntry], out: &mut Vec<Violation>) {
    let violation = |kind, detail: String| Violation {
        kind,
        tran_id: Some(flow.tran_id.clone()),
        detail,
    };
    match flow.pay {
        PayOutcome::Approved | PayOutcome::Declined { .. } => match pays {
            [] => out.push(violation(
                ViolationKind::MissingPay,
                format!("the POS got {:?}, the partner never saw the pay", flow.pay),
            )),
            [only] => {
                let agrees = match flow.pay {
                    PayOutcome::Approved => accepted(only),
                    PayOutcome::Declined { status } => {
                        only.outcome == Outcome::Answered && only.status == Some(status)
                    }
                    _ => true,
                };
                if !agrees {
                    out.push(violation(
                        ViolationKind::PayAnswerMismatch,
                        format!(
                            "the POS got {:?}, the partner's answer was {:?} {:?}",
                            flow.pay, only.outcome, only.status
                        ),
                    ));
                }
            }
            more => out.push(violation(
                ViolationKind::DoubledPay,
                format!("the partner saw the pay {} times", more.len()),
            )),
        },
        PayOutcome::Failed { .. } if pays.len() > 1 => out.push(violation(
            ViolationKind::DoubledPay,
            format!(
                "the pay failed for the POS, the partner saw it {} times",
                pays.len()
            ),
        )),
        PayOutcome::NotSent if !pays.is_empty() => out.push(violation(
            ViolationKind::UnexpectedPay,
            format!("the POS never sent the pay, the partner saw {}", pays.len()),
        )),
        PayOutcome::Failed { .. } | PayOutcome::NotSent => {}
    }
}

/// `[missing, doubled, unexpected]` are the violation kinds for this advice kind.
fn check_advice(
    flow: &FlowRecord,
    deliveries: &[&LedgerEntry],
    want: Want,
    kinds: [ViolationKind; 3],
    out: &mut Vec<Violation>,
) {
    let [missing, doubled, unexpected] = kinds;
    let ok = deliveries.iter().filter(|e| accepted(e)).count();
    let advice_ids: HashSet<Option<&str>> = deliveries.iter().map(|e| e.id.as_deref()).collect();
    let violation = |kind, detail: String| Violation {
        kind,
        tran_id: Some(flow.tran_id.clone()),
        detail,
    };
    let describe = || {
        format!(
            "{} delivered, {ok} accepted, {} distinct advice id(s); POS pay {:?}, advice {:?}",
            deliveries.len(),
            advice_ids.len(),
            flow.pay,
            flow.advice
        )
    };
    match want {
        Want::Zero if !deliveries.is_empty() => out.push(violation(unexpected, describe())),
        Want::One if ok == 0 => out.push(violation(missing, describe())),
        Want::One | Want::AtMostOne if ok > 1 || advice_ids.len() > 1 => {
            out.push(violation(doubled, describe()))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::plan::Fate;
    use chrono::Utc;
    use serde_json::json;

    fn flow(tran: &str, pay: PayOutcome, advice: AdviceSent) -> FlowRecord {
        FlowRecord {
            tran_id: tran.into(),
            pay_id: format!("pos-pay-{tran}"),
            fate: match (pay, advice) {
                (PayOutcome::Declined { .. }, _) => Fate::Decline,
                (_, AdviceSent::Reversed) => Fate::Reverse,
                _ => Fate::Confirm,
            },
            pay,
            advice,
            scan_sent_at: None,
        }
    }

    fn entry(
        seq: u64,
        kind: MessageKind,
        tran: Option<&str>,
        id: &str,
        status: u16,
    ) -> LedgerEntry {
        LedgerEntry {
            seq,
            kind,
            message: json!({}),
            id: Some(id.into()),
            request_id: (kind != MessageKind::Pay)
                .then(|| format!("hub-pay-{}", tran.unwrap_or("x"))),
            tran_id: tran.map(str::to_owned),
            username: Some("qrhub".into()),
            received_at: Utc::now(),
            outcome: Outcome::Answered,
            status: Some(status),
            approved_amount: None,
        }
    }

    fn pay(seq: u64, tran: &str, status: u16) -> LedgerEntry {
        entry(
            seq,
            MessageKind::Pay,
            Some(tran),
            &format!("hub-pay-{tran}"),
            status,
        )
    }

    fn confirmation(seq: u64, tran: &str, status: u16) -> LedgerEntry {
        entry(
            seq,
            MessageKind::Confirmation,
            Some(tran),
            &format!("conf-{tran}"),
            status,
        )
    }

    fn reversal(seq: u64, tran: &str, status: u16) -> LedgerEntry {
        entry(
            seq,
            MessageKind::Reversal,
            Some(tran),
            &format!("rev-{tran}"),
            status,
        )
    }

    /// Three flows, one of each fate, and the ledger a correct hub leaves.
    fn run() -> (Vec<FlowRecord>, Vec<LedgerEntry>) {
        let flows = vec![
            flow("t1", PayOutcome::Approved, AdviceSent::Confirmed),
            flow("t2", PayOutcome::Approved, AdviceSent::Reversed),
            flow("t3", PayOutcome::Declined { status: 400 }, AdviceSent::None),
        ];
        let ledger = vec![
            pay(1, "t1", 201),
            pay(2, "t2", 201),
            pay(3, "t3", 400),
            confirmation(4, "t1", 202),
            reversal(5, "t2", 202),
        ];
        (flows, ledger)
    }

    fn kinds(r: &CheckReport) -> Vec<ViolationKind> {
        r.violations.iter().map(|v| v.kind).collect()
    }

    #[test]
    fn a_matching_ledger_passes() {
        let (flows, ledger) = run();
        let r = check(&flows, &ledger);
        assert!(r.passed(), "{:#?}", r.violations);
        assert_eq!(
            (r.pays, r.confirmations_accepted, r.reversals_accepted),
            (3, 1, 1)
        );
    }

    #[test]
    fn retries_after_refused_deliveries_are_allowed() {
        let (flows, mut ledger) = run();
        ledger.insert(3, confirmation(10, "t1", 500));
        let mut dropped = confirmation(11, "t1", 0);
        dropped.outcome = Outcome::Dropped;
        dropped.status = None;
        ledger.insert(4, dropped);
        let r = check(&flows, &ledger);
        assert!(r.passed(), "{:#?}", r.violations);
        assert_eq!(r.refused_deliveries, 2);
    }

    #[test]
    fn advices_without_a_tran_id_are_attributed_through_their_pay() {
        let (flows, mut ledger) = run();
        for e in &mut ledger {
            if e.kind != MessageKind::Pay {
                e.tran_id = None;
            }
        }
        assert!(check(&flows, &ledger).passed());
    }

    #[test]
    fn a_missing_confirmation_is_reported() {
        let (flows, mut ledger) = run();
        ledger.retain(|e| e.kind != MessageKind::Confirmation);
        let r = check(&flows, &ledger);
        assert_eq!(kinds(&r), [ViolationKind::MissingConfirmation]);
        assert!(r.may_resolve());
    }

    #[test]
    fn a_confirmation_the_partner_refused_is_not_a_delivery() {
        let (flows, mut ledger) = run();
        for e in &mut ledger {
            if e.kind == MessageKind::Confirmation {
                e.status = Some(500);
            }
        }
        assert_eq!(
            kinds(&check(&flows, &ledger)),
            [ViolationKind::MissingConfirmation]
        );
    }

    #[test]
    fn a_doubled_pay_is_reported() {
        let (flows, mut ledger) = run();
        ledger.push(pay(6, "t1", 201));
        let r = check(&flows, &ledger);
        assert_eq!(kinds(&r), [ViolationKind::DoubledPay]);
        assert!(!r.may_resolve());
    }

    #[test]
    fn a_doubled_confirmation_is_reported() {
        let (flows, mut ledger) = run();
        ledger.push(confirmation(6, "t1", 202));
        assert_eq!(
            kinds(&check(&flows, &ledger)),
            [ViolationKind::DoubledConfirmation]
        );
    }

    #[test]
    fn a_missing_pay_is_reported() {
        let (flows, mut ledger) = run();
        ledger.retain(|e| !(e.kind == MessageKind::Pay && e.tran_id.as_deref() == Some("t3")));
        assert_eq!(kinds(&check(&flows, &ledger)), [ViolationKind::MissingPay]);
    }

    #[test]
    fn an_extra_unknown_tran_id_is_reported() {
        let (flows, mut ledger) = run();
        ledger.push(pay(6, "t-stranger", 201));
        let r = check(&flows, &ledger);
        assert_eq!(kinds(&r), [ViolationKind::UnknownTranId]);
        assert_eq!(r.violations[0].tran_id.as_deref(), Some("t-stranger"));
    }

    #[test]
    fn a_message_naming_no_tran_id_is_reported() {
        let (flows, mut ledger) = run();
        let mut e = confirmation(6, "nowhere", 202);
        e.tran_id = None;
        ledger.push(e);
        assert_eq!(
            kinds(&check(&flows, &ledger)),
            [ViolationKind::Unattributed]
        );
    }

    #[test]
    fn a_confirmation_where_a_reversal_was_expected_is_reported() {
        let (flows, mut ledger) = run();
        for e in &mut ledger {
            if e.kind == MessageKind::Reversal {
                e.kind = MessageKind::Confirmation;
            }
        }
        let mut k = kinds(&check(&flows, &ledger));
        k.sort();
        assert_eq!(
            k,
            [
                ViolationKind::UnexpectedConfirmation,
                ViolationKind::MissingReversal
            ]
        );
    }

    #[test]
    fn an_advice_for_a_declined_pay_is_reported() {
        let (flows, mut ledger) = run();
        ledger.push(reversal(6, "t3", 202));
        assert_eq!(
            kinds(&check(&flows, &ledger)),
            [ViolationKind::UnexpectedReversal]
        );
    }

    #[test]
    fn the_partner_approving_what_the_pos_saw_declined_is_reported() {
        let (flows, mut ledger) = run();
        ledger[2].status = Some(201);
        assert_eq!(
            kinds(&check(&flows, &ledger)),
            [ViolationKind::PayAnswerMismatch]
        );
    }

    #[test]
    fn an_empty_ledger_reports_every_flow() {
        let (flows, _) = run();
        let mut k = kinds(&check(&flows, &[]));
        k.sort();
        assert_eq!(
            k,
            [
                ViolationKind::MissingPay,
                ViolationKind::MissingPay,
                ViolationKind::MissingPay,
                ViolationKind::MissingConfirmation,
                ViolationKind::MissingReversal
            ]
        );
    }

    #[test]
    fn a_failed_pay_may_be_reversed_once_but_not_paid_twice() {
        let flows = vec![flow(
            "t1",
            PayOutcome::Failed { status: Some(504) },
            AdviceSent::None,
        )];
        let ledger = vec![pay(1, "t1", 0), reversal(2, "t1", 202)];
        assert!(check(&flows, &ledger).passed());
        let doubled = vec![pay(1, "t1", 0), pay(2, "t1", 0)];
        assert_eq!(kinds(&check(&flows, &doubled)), [ViolationKind::DoubledPay]);
    }
}
