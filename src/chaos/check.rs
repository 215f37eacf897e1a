//! The invariant checker: a pure function over what the POS saw, what the hub stored and
//! what the partner received (the simulator's ledger), read once the run has settled.
//!
//! For every flow (one tranId, one payment):
//! - the partner was asked to pay at most once;
//! - the hub answered the POS 201 only if the partner approved (201 in the ledger);
//! - a payment the partner may have paid (it approved, or its answer is unknown: 500, 504,
//!   no answer) ends at the partner confirmed if and only if the POS's last word was an
//!   accepted confirmation, and reversed otherwise (the POS cancelled, its outcome was
//!   unknown, it never got an answer, or its confirmation was refused);
//! - no confirmation reached the partner unless the POS's confirmation was accepted, none
//!   after a reversal of the same payment (ledger order), and never both a confirmation and
//!   a reversal;
//! - every advice the POS sent got a final answer.
//!
//! For every outbox row (an advice the hub accepted to deliver): DELIVERED rows are in the
//! ledger with an answer that ends delivery (2xx, or 404 for a reversal); PENDING rows (not
//! delivered after the settle time) and FAILED rows are violations; DEAD rows are listed as
//! dead letters. And no message in the ledger is about a tranId the run never used.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

use super::record::{AdviceAnswer, HubAdvice, HubPayment, PosFlow, PosPay};
use crate::domain::AdviceKind;
use crate::simulator::{LedgerEntry, MessageKind};
use crate::store::OutboxState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ViolationKind {
    /// The partner got more than one `pay` for one payment.
    PayAskedTwice,
    /// The POS got 201 but the partner never approved.
    ApprovedWithoutPartner,
    /// The partner's end (confirmed / reversed / open) is not what the POS's last word says.
    WrongEndAtPartner,
    /// A confirmation reached the partner although the POS's was never accepted.
    UnexpectedConfirmation,
    /// A confirmation reached the partner after a reversal of the same payment.
    ConfirmationAfterReversal,
    /// The partner got both a confirmation and a reversal for one payment.
    ConfirmedAndReversed,
    /// An outbox row marked DELIVERED whose advice the partner never accepted.
    AdviceLost,
    /// An outbox row still PENDING after the settle time.
    AdviceUndelivered,
    /// An outbox row the hub gave up on after a final refusal.
    AdviceRefused,
    /// The POS's advice never got a final answer from either hub.
    PosAdviceUnsettled,
    /// A ledger message about a tranId the run never used.
    UnknownTranId,
}

impl ViolationKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::PayAskedTwice => "pay asked twice",
            Self::ApprovedWithoutPartner => "201 without partner approval",
            Self::WrongEndAtPartner => "wrong end at partner",
            Self::UnexpectedConfirmation => "unexpected confirmation",
            Self::ConfirmationAfterReversal => "confirmation after reversal",
            Self::ConfirmedAndReversed => "confirmed and reversed",
            Self::AdviceLost => "advice lost",
            Self::AdviceUndelivered => "advice undelivered",
            Self::AdviceRefused => "advice refused by partner",
            Self::PosAdviceUnsettled => "POS advice unsettled",
            Self::UnknownTranId => "unknown tranId",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    pub kind: ViolationKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tran_id: Option<String>,
    pub detail: String,
}

/// An advice the hub dead-lettered: listed for the operator (and the report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tran_id: Option<String>,
    pub kind: String,
    pub message_id: String,
    pub attempts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Where a payment ended at the partner, by the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PartnerEnd {
    Confirmed,
    Reversed,
    /// Neither an accepted confirmation nor an accepted reversal.
    Open,
}

/// How the partner answered the `pay`, by the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartnerPay {
    Approved,
    Declined,
    /// 500, 504, dropped, or still hanging: it may have paid.
    Unknown,
}

fn partner_pay(e: &LedgerEntry) -> PartnerPay {
    match e.status {
        Some(200..=202) => PartnerPay::Approved,
        Some(500 | 504) | None => PartnerPay::Unknown,
        Some(_) => PartnerPay::Declined,
    }
}

/// Whether the partner's answer to this advice delivery ends the hub's delivery of it.
fn accepted(e: &LedgerEntry) -> bool {
    match (e.kind, e.status) {
        (_, Some(200..=299)) => true,
        (MessageKind::Reversal, Some(404)) => true,
        _ => false,
    }
}

/// What [`check`] found, and the figures it counted on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub flows_checked: usize,
    pub payments_at_partner: usize,
    pub partner_ends: BTreeMap<String, usize>,
    /// Advice deliveries in the ledger (every try), and those the partner accepted.
    pub advice_deliveries: usize,
    pub advices_accepted: usize,
    pub dead_letters: Vec<DeadLetter>,
    pub violations_by_kind: BTreeMap<String, usize>,
    pub violations: Vec<Violation>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Whether only waiting longer could cure what is wrong (advices still on their way).
    pub fn may_resolve(&self) -> bool {
        !self.violations.is_empty()
            && self.violations.iter().all(|v| {
                matches!(
                    v.kind,
                    ViolationKind::AdviceUndelivered | ViolationKind::WrongEndAtPartner
                )
            })
    }

    fn push(&mut self, kind: ViolationKind, tran_id: Option<&str>, detail: String) {
        *self
            .violations_by_kind
            .entry(kind.name().to_owned())
            .or_default() += 1;
        self.violations.push(Violation {
            kind,
            tran_id: tran_id.map(str::to_owned),
            detail,
        });
    }
}

/// Checks every invariant; see the module documentation.
pub fn check(
    flows: &[PosFlow],
    payments: &[HubPayment],
    outbox: &[HubAdvice],
    ledger: &[LedgerEntry],
) -> CheckReport {
    let mut report = CheckReport {
        flows_checked: flows.len(),
        ..CheckReport::default()
    };
    // The ledger by tranId; an advice without one is attributed through the pay it names.
    let pay_tran: HashMap<&str, &str> = ledger
        .iter()
        .filter(|e| e.kind == MessageKind::Pay)
        .filter_map(|e| Some((e.id.as_deref()?, e.tran_id.as_deref()?)))
        .collect();
    let mut by_tran: HashMap<&str, Vec<&LedgerEntry>> = HashMap::new();
    let known: HashSet<&str> = flows.iter().map(|f| f.tran_id.as_str()).collect();
    for e in ledger {
        let tran = e.tran_id.as_deref().or_else(|| {
            e.request_id
                .as_deref()
                .and_then(|r| pay_tran.get(r).copied())
        });
        match tran {
            Some(t) if known.contains(t) => by_tran.entry(t).or_default().push(e),
            _ => report.push(
                ViolationKind::UnknownTranId,
                tran,
                format!("{:?} message {:?} (seq {})", e.kind, e.id, e.seq),
            ),
        }
        if e.kind != MessageKind::Pay {
            report.advice_deliveries += 1;
            if accepted(e) {
                report.advices_accepted += 1;
            }
        }
    }
    check_outbox(payments, outbox, ledger, &mut report);
    // A payment whose advice was dead-lettered is accounted for by the dead letter.
    let dead: HashSet<String> = report
        .dead_letters
        .iter()
        .filter_map(|d| d.tran_id.clone())
        .collect();
    for flow in flows {
        let entries = by_tran.remove(flow.tran_id.as_str()).unwrap_or_default();
        check_flow(flow, &entries, dead.contains(&flow.tran_id), &mut report);
    }
    report
}

fn check_flow(
    flow: &PosFlow,
    entries: &[&LedgerEntry],
    dead_letter: bool,
    report: &mut CheckReport,
) {
    let tran = Some(flow.tran_id.as_str());
    let of = |kind| entries.iter().filter(move |e| e.kind == kind);
    let pays: Vec<_> = of(MessageKind::Pay).collect();
    if pays.len() > 1 {
        report.push(
            ViolationKind::PayAskedTwice,
            tran,
            format!("{} pay messages reached the partner", pays.len()),
        );
    }
    let answer = pays.first().map(|e| partner_pay(e));
    if flow.pay == PosPay::Approved && answer != Some(PartnerPay::Approved) {
        report.push(
            ViolationKind::ApprovedWithoutPartner,
            tran,
            format!(
                "the POS got 201; the partner's pay answer: {:?}",
                pays.first().map(|e| e.status)
            ),
        );
    }
    let confirmations: Vec<_> = of(MessageKind::Confirmation).collect();
    let reversals: Vec<_> = of(MessageKind::Reversal).collect();
    if !confirmations.is_empty() && !reversals.is_empty() {
        report.push(
            ViolationKind::ConfirmedAndReversed,
            tran,
            format!(
                "{} confirmation and {} reversal deliveries",
                confirmations.len(),
                reversals.len()
            ),
        );
    }
    let first_reversal = reversals
        .iter()
        .filter(|e| accepted(e))
        .map(|e| e.seq)
        .min();
    if let Some(r) = first_reversal {
        if let Some(c) = confirmations.iter().find(|c| c.seq > r) {
            report.push(
                ViolationKind::ConfirmationAfterReversal,
                tran,
                format!("confirmation seq {} after reversal seq {r}", c.seq),
            );
        }
    }
    let pos_confirmed = flow
        .advice
        .as_ref()
        .is_some_and(|a| a.kind == AdviceKind::Confirmation && a.answer == AdviceAnswer::Accepted);
    if !confirmations.is_empty() && !pos_confirmed {
        report.push(
            ViolationKind::UnexpectedConfirmation,
            tran,
            format!(
                "the POS's pay: {:?}, its advice: {:?}",
                flow.pay,
                flow.advice.as_ref().map(|a| (&a.kind, &a.answer))
            ),
        );
    }
    if let Some(a) = &flow.advice {
        if let AdviceAnswer::Unsettled { last } = &a.answer {
            report.push(
                ViolationKind::PosAdviceUnsettled,
                tran,
                format!(
                    "{} {} after {} tries: {last}",
                    a.kind.as_str(),
                    a.id,
                    a.tries
                ),
            );
        }
    }
    let Some(answer) = answer else {
        return;
    };
    report.payments_at_partner += 1;
    let end = if first_reversal.is_some() {
        PartnerEnd::Reversed
    } else if confirmations.iter().any(|e| accepted(e)) {
        PartnerEnd::Confirmed
    } else {
        PartnerEnd::Open
    };
    if answer == PartnerPay::Declined {
        *report.partner_ends.entry("declined".into()).or_default() += 1;
        return;
    }
    let name = match end {
        PartnerEnd::Confirmed => "confirmed",
        PartnerEnd::Reversed => "reversed",
        PartnerEnd::Open => "open",
    };
    *report.partner_ends.entry(name.into()).or_default() += 1;
    let expected = if pos_confirmed {
        PartnerEnd::Confirmed
    } else {
        PartnerEnd::Reversed
    };
    if end != expected && !(end == PartnerEnd::Open && dead_letter) {
        report.push(
            ViolationKind::WrongEndAtPartner,
            tran,
            format!(
                "partner {answer:?} then {end:?}, expected {expected:?}: the POS's pay {:?}, its advice {:?}",
                flow.pay,
                flow.advice.as_ref().map(|a| (&a.kind, &a.answer))
            ),
        );
    }
}

fn check_outbox(
    payments: &[HubPayment],
    outbox: &[HubAdvice],
    ledger: &[LedgerEntry],
    report: &mut CheckReport,
) {
    let tran_of: HashMap<_, _> = payments
        .iter()
        .map(|p| (p.id, p.tran_id.as_str()))
        .collect();
    let mut accepted_ids: HashSet<&str> = HashSet::new();
    for e in ledger.iter().filter(|e| e.kind != MessageKind::Pay) {
        if let (Some(id), true) = (e.id.as_deref(), accepted(e)) {
            accepted_ids.insert(id);
        }
    }
    for row in outbox {
        let tran = row
            .tran_id
            .as_deref()
            .or_else(|| tran_of.get(&row.payment_id).copied());
        let what = || {
            format!(
                "{} {} after {} tries: {}",
                row.kind.as_str(),
                row.message_id,
                row.attempts,
                row.last_error.as_deref().unwrap_or("-")
            )
        };
        match row.state {
            OutboxState::Delivered if !accepted_ids.contains(row.message_id.as_str()) => {
                report.push(ViolationKind::AdviceLost, tran, what())
            }
            OutboxState::Delivered => {}
            OutboxState::Pending => report.push(ViolationKind::AdviceUndelivered, tran, what()),
            OutboxState::Failed => report.push(ViolationKind::AdviceRefused, tran, what()),
            OutboxState::Dead => report.dead_letters.push(DeadLetter {
                tran_id: tran.map(str::to_owned),
                kind: row.kind.as_str().to_owned(),
                message_id: row.message_id.clone(),
                attempts: row.attempts,
                last_error: row.last_error.clone(),
            }),
        }
    }
}
