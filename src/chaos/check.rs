//! The invariant checker: a pure function over what the POS saw, what the hub stored and
//! what the partner received (the simulator's ledger), read once the run has settled.
//!
//! For every flow (one tranId, one payment):
//! - the partner was asked to pay at most once;
//! - the hub answered the POS 201 only if the partner approved (a 2xx in the ledger);
//! - an approval reached the POS only for the amount asked and only for the amount the
//!   partner approved (the ledger's `approvedAmount`);
//! - a payment the partner may have paid (it approved, or its answer is unknown: 500, 502,
//!   504, any 5xx but 501 and 503, no answer) ends at the partner confirmed if and only if
//!   the POS's last word was an accepted confirmation, and reversed otherwise (the POS
//!   cancelled, its outcome was unknown, it never got an answer, its confirmation was
//!   refused, or the partner approved another amount), unless an operator's open item
//!   accounts for it;
//! - no confirmation reached the partner unless the POS's confirmation was accepted, none
//!   after a reversal of the same payment (ledger order), and never both a confirmation and
//!   a reversal;
//! - every advice the POS sent got a final answer;
//! - the hub's final state of the payment agrees with the POS's last word: CONFIRMED after
//!   an accepted confirmation, REVERSED (or DECLINED / EXPIRED, which absorb a reversal)
//!   after an accepted reversal, DECLINED after a relayed decline.
//!
//! A POS may go away (drop its held pay, or never advise). Then:
//! - a payment the hub ended because its POS went away before a scan never reached the
//!   partner;
//! - an approval its POS never advised is confirmed or reversed at the partner, or listed
//!   in the back office as an approval nobody advised (the hub's APPROVED state).
//!
//! For every outbox row (an advice the hub accepted to deliver): DELIVERED rows are in the
//! ledger with an answer that ends delivery (2xx, or 404 for a reversal); PENDING rows (not
//! delivered after the settle time) are violations, and for a reversal the hub made itself a
//! violation of its own kind (every hub-made reversal is delivered or an operator's open
//! item); FAILED rows (refused by the partner) are operators' open items when the run
//! scripted that refusal, violations otherwise; DEAD rows are listed as dead letters, open
//! items too. No message in the ledger is about a tranId the run never used, and the
//! simulator, in strict mode, saw no message that breaks the interface's rules (a schema
//! breach, or a Basic user other than the `pay`'s `client.id`).

use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

use super::faults::AdviceFault;
use super::record::{AdviceAnswer, HubAdvice, HubPayment, PosFlow, PosPay, ReversalOrigin};
use crate::domain::{AdviceKind, PaymentState};
use crate::loadgen::ledger::{self, Kind};
use crate::simulator::{LedgerEntry, MessageKind, Violation as StrictViolation};
use crate::store::OutboxState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ViolationKind {
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
    /// The hub's final state of the payment contradicts the POS's last word (e.g. UNKNOWN
    /// after the POS's reversal was accepted, or not CONFIRMED after its confirmation).
    HubStateMismatch,
    /// The partner got the pay of a payment the hub ended because its POS went away
    /// before a scan.
    ForwardedAfterPosGone,
    /// An approval no POS advised that is neither confirmed nor reversed at the partner
    /// nor listed as unadvised.
    UnadvisedApprovalUnlisted,
    /// The POS got an approval for an amount other than the one asked or the one the
    /// partner approved.
    ApprovedOtherAmount,
    /// A reversal the hub made itself is neither delivered nor an operator's open item.
    HubReversalUndelivered,
    /// The simulator in strict mode refused a message: not schema-valid, or a `pay` whose
    /// Basic user is not its `client.id`.
    StrictModeViolation,
}

impl Kind for ViolationKind {
    fn name(self) -> &'static str {
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
            Self::HubStateMismatch => "hub state contradicts the POS",
            Self::ForwardedAfterPosGone => "pay forwarded after the POS went away",
            Self::UnadvisedApprovalUnlisted => "unadvised approval not listed",
            Self::ApprovedOtherAmount => "approval of an amount not approved",
            Self::HubReversalUndelivered => "hub reversal undelivered",
            Self::StrictModeViolation => "strict-mode violation",
        }
    }
}

pub(crate) type Violation = ledger::Violation<ViolationKind>;

/// An advice the hub dead-lettered: listed for the operator (and the report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeadLetter {
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
pub(crate) enum PartnerEnd {
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

/// DESIGN.md §3, "The partner's answer to `pay`".
fn partner_pay(e: &LedgerEntry) -> PartnerPay {
    match e.status {
        Some(200..=299) => PartnerPay::Approved,
        Some(501 | 503) => PartnerPay::Declined,
        Some(500..=599) | None => PartnerPay::Unknown,
        Some(_) => PartnerPay::Declined,
    }
}

/// A LedgerAmount as (amount, currency).
fn money(v: &serde_json::Value) -> Option<(i64, &str)> {
    Some((v.get("amount")?.as_i64()?, v.get("currency")?.as_str()?))
}

/// Whether the partner's answer to this advice delivery ends the hub's delivery of it.
fn accepted(e: &LedgerEntry) -> bool {
    matches!(
        (e.kind, e.status),
        (_, Some(200..=299)) | (MessageKind::Reversal, Some(404))
    )
}

/// What [`check`] found, and the figures it counted on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CheckReport {
    pub flows_checked: usize,
    pub payments_at_partner: usize,
    pub partner_ends: BTreeMap<String, usize>,
    /// Advice deliveries in the ledger (every try), and those the partner accepted.
    pub advice_deliveries: usize,
    pub advices_accepted: usize,
    /// Payments the hub ended because their POS went away before a scan.
    pub pos_gone_before_scan: usize,
    /// Approvals no POS advised, open at the partner and listed in the back office.
    pub unadvised_listed: usize,
    pub dead_letters: Vec<DeadLetter>,
    /// Advices the partner refused (outbox FAILED) as the run scripted: operators' open
    /// items, like the dead letters.
    pub refused: Vec<DeadLetter>,
    /// Messages the simulator refused in strict mode (each is also a violation).
    pub strict_violations: usize,
    pub violations_by_kind: BTreeMap<String, usize>,
    pub violations: Vec<Violation>,
}

impl CheckReport {
    pub(crate) fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Whether only waiting longer could cure what is wrong (advices still on their way).
    pub(crate) fn may_resolve(&self) -> bool {
        !self.violations.is_empty()
            && self.violations.iter().all(|v| {
                matches!(
                    v.kind,
                    ViolationKind::AdviceUndelivered
                        | ViolationKind::HubReversalUndelivered
                        | ViolationKind::WrongEndAtPartner
                )
            })
    }

    /// Counted by kind once the check ends ([`check`]).
    fn push(&mut self, kind: ViolationKind, tran_id: Option<&str>, detail: String) {
        self.violations.push(Violation {
            kind,
            tran_id: tran_id.map(str::to_owned),
            detail,
        });
    }
}

/// Checks every invariant; see the module documentation. `strict` is what the simulator
/// refused in strict mode.
pub(crate) fn check(
    flows: &[PosFlow],
    payments: &[HubPayment],
    outbox: &[HubAdvice],
    ledger: &[LedgerEntry],
    strict: &[StrictViolation],
) -> CheckReport {
    let mut report = CheckReport {
        flows_checked: flows.len(),
        strict_violations: strict.len(),
        ..CheckReport::default()
    };
    for v in strict {
        let tran = ledger
            .binary_search_by_key(&v.seq, |e| e.seq)
            .ok()
            .and_then(|i| ledger[i].tran_id.as_deref());
        report.push(
            ViolationKind::StrictModeViolation,
            tran,
            format!(
                "{:?} {:?} (seq {}) broke {:?}: {}",
                v.kind, v.id, v.seq, v.rule, v.detail
            ),
        );
    }
    // The ledger by tranId; an advice without one is attributed through the pay it names.
    let mut by_tran: HashMap<&str, Vec<&LedgerEntry>> = HashMap::new();
    let known: HashSet<&str> = flows.iter().map(|f| f.tran_id.as_str()).collect();
    for (tran, e) in ledger::by_tran_id(ledger) {
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
    // The flows whose plan has the partner refuse an advice: their FAILED rows are expected.
    let refusing: HashSet<&str> = flows
        .iter()
        .filter(|f| matches!(f.plan.advice_fault, Some(AdviceFault::Refuse { .. })))
        .map(|f| f.tran_id.as_str())
        .collect();
    check_outbox(payments, outbox, ledger, &refusing, &mut report);
    // A payment whose advice was dead-lettered or refused is accounted for by that open item.
    let dead: HashSet<String> = report
        .dead_letters
        .iter()
        .chain(&report.refused)
        .filter_map(|d| d.tran_id.clone())
        .collect();
    let hub_state: HashMap<&str, PaymentState> = payments
        .iter()
        .map(|p| (p.message_id.as_str(), p.state))
        .collect();
    let hub_payment: HashMap<&str, &HubPayment> = payments
        .iter()
        .map(|p| (p.message_id.as_str(), p))
        .collect();
    for flow in flows {
        let entries = by_tran.remove(flow.tran_id.as_str()).unwrap_or_default();
        let hub = hub_payment.get(flow.pay_id.as_str()).copied();
        check_pos_away(flow, hub, &entries, &mut report);
        check_flow(
            flow,
            &entries,
            dead.contains(&flow.tran_id),
            hub,
            &mut report,
        );
        if !payments.is_empty() {
            check_hub_state(
                flow,
                hub_state.get(flow.pay_id.as_str()).copied(),
                &mut report,
            );
        }
    }
    report.violations_by_kind = ledger::count_by_kind(&report.violations);
    report
}

/// The hub's final state against the POS's last word (see the module documentation).
fn check_hub_state(flow: &PosFlow, state: Option<PaymentState>, report: &mut CheckReport) {
    use PaymentState::*;
    let advice = flow
        .advice
        .as_ref()
        .filter(|a| a.answer == AdviceAnswer::Accepted);
    let allowed: &[PaymentState] = match (advice.map(|a| a.kind), &flow.pay) {
        (Some(AdviceKind::Confirmation), _) => &[Confirmed],
        (Some(AdviceKind::Reversal), _) => &[Reversed, Declined, Expired],
        (None, PosPay::Declined) => &[Declined],
        _ => return,
    };
    if !state.is_some_and(|s| allowed.contains(&s)) {
        report.push(
            ViolationKind::HubStateMismatch,
            Some(&flow.tran_id),
            format!(
                "hub state {}, expected one of {allowed:?}: the POS's pay {:?}, its advice {:?}",
                state.map_or("none", |s| s.as_str()),
                flow.pay,
                advice.map(|a| a.kind.as_str())
            ),
        );
    }
}

/// A payment the hub ended because its POS went away before a scan was never sent.
fn check_pos_away(
    flow: &PosFlow,
    hub: Option<&HubPayment>,
    entries: &[&LedgerEntry],
    report: &mut CheckReport,
) {
    if !hub.is_some_and(|p| p.pos_gone) {
        return;
    }
    report.pos_gone_before_scan += 1;
    let pays = entries
        .iter()
        .filter(|e| e.kind == MessageKind::Pay)
        .count();
    if pays > 0 {
        report.push(
            ViolationKind::ForwardedAfterPosGone,
            Some(&flow.tran_id),
            format!(
                "{pays} pay messages reached the partner; the POS's pay: {:?}",
                flow.pay
            ),
        );
    }
}

fn check_flow(
    flow: &PosFlow,
    entries: &[&LedgerEntry],
    dead_letter: bool,
    hub: Option<&HubPayment>,
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
    // (Without the partner's approval at all, ApprovedWithoutPartner below says it.)
    if flow.pay == PosPay::Approved && answer == Some(PartnerPay::Approved) {
        // The amount asked: the flow's, in the currency the hub asked the partner for.
        let currency = pays
            .first()
            .and_then(|e| e.message.pointer("/amounts/requestAmount/currency"))
            .and_then(|v| v.as_str());
        let asked = currency.map(|c| (flow.plan.amount, c));
        let at_pos = flow.approved_amount.as_ref().and_then(money);
        let at_partner = pays
            .first()
            .and_then(|e| e.approved_amount.as_ref())
            .and_then(money);
        if at_pos.is_none() || at_pos != asked || at_pos != at_partner {
            report.push(
                ViolationKind::ApprovedOtherAmount,
                tran,
                format!(
                    "asked {asked:?}, the partner approved {at_partner:?}, the POS got an approval of {at_pos:?}"
                ),
            );
        }
    }
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
    // A POS that went away (or stayed silent) and never advised leaves an approval open at
    // the partner: the hub must list it for the back office (policy `nothing`). An outcome
    // the hub did not take as approved is its own to reverse, checked below as any other.
    if end == PartnerEnd::Open
        && flow.advice.is_none()
        && flow.plan.pos_away.is_some()
        && hub.is_some_and(|p| p.state == PaymentState::Approved)
    {
        if hub.is_some_and(|p| p.unadvised) {
            report.unadvised_listed += 1;
        } else {
            report.push(
                ViolationKind::UnadvisedApprovalUnlisted,
                tran,
                format!(
                    "partner {answer:?}, open, no advice from the POS ({:?})",
                    flow.pay
                ),
            );
        }
        return;
    }
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
    refusing: &HashSet<&str>,
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
        let open_item = || DeadLetter {
            tran_id: tran.map(str::to_owned),
            kind: row.kind.as_str().to_owned(),
            message_id: row.message_id.clone(),
            attempts: row.attempts,
            last_error: row.last_error.clone(),
        };
        match row.state {
            OutboxState::Delivered if !accepted_ids.contains(row.message_id.as_str()) => {
                report.push(ViolationKind::AdviceLost, tran, what())
            }
            OutboxState::Delivered => {}
            OutboxState::Pending if row.origin == Some(ReversalOrigin::Hub) => {
                report.push(ViolationKind::HubReversalUndelivered, tran, what())
            }
            OutboxState::Pending => report.push(ViolationKind::AdviceUndelivered, tran, what()),
            OutboxState::Failed if tran.is_some_and(|t| refusing.contains(t)) => {
                report.refused.push(open_item())
            }
            OutboxState::Failed => report.push(ViolationKind::AdviceRefused, tran, what()),
            OutboxState::Dead => report.dead_letters.push(open_item()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::faults::{plan, FlowPlan};
    use crate::chaos::record::{PosAdvice, ReversalOrigin};
    use crate::simulator::Outcome;
    use uuid::Uuid;

    fn entry(
        seq: u64,
        kind: MessageKind,
        id: &str,
        tran: &str,
        status: Option<u16>,
    ) -> LedgerEntry {
        LedgerEntry {
            seq,
            kind,
            message: serde_json::json!({}),
            id: Some(id.into()),
            request_id: (kind != MessageKind::Pay).then(|| format!("hub-pay-{tran}")),
            tran_id: Some(tran.into()),
            username: Some("qrhub".into()),
            received_at: chrono::Utc::now(),
            outcome: if status.is_some() {
                Outcome::Answered
            } else {
                Outcome::Dropped
            },
            status,
            approved_amount: (kind == MessageKind::Pay && status.is_some_and(|s| s / 100 == 2))
                .then(asked),
        }
    }

    /// The amount every test flow asks (that of `plan(1, 0, 2)`).
    fn asked() -> serde_json::Value {
        serde_json::json!({"amount": plan(1, 0, 2).amount, "currency": "710"})
    }

    fn pay(seq: u64, tran: &str, status: Option<u16>) -> LedgerEntry {
        let mut e = entry(
            seq,
            MessageKind::Pay,
            &format!("hub-pay-{tran}"),
            tran,
            status,
        );
        e.message = serde_json::json!({"amounts": {"requestAmount": asked()}});
        e
    }

    fn flow(tran: &str, pay: PosPay, advice: Option<(AdviceKind, AdviceAnswer)>) -> PosFlow {
        PosFlow {
            plan: plan(1, 0, 2),
            tran_id: tran.into(),
            pay_id: format!("pos-pay-{tran}"),
            approved_amount: (pay == PosPay::Approved).then(asked),
            pay,
            scanned: true,
            advice: advice.map(|(kind, answer)| PosAdvice {
                kind,
                id: format!("pos-advice-{tran}"),
                reason: None,
                answer,
                tries: 1,
            }),
        }
    }

    fn unknown() -> PosPay {
        PosPay::Unknown {
            status: Some(504),
            why: "UPSTREAM_UNAVAILABLE".into(),
        }
    }

    fn row(tran: &str, kind: AdviceKind, message_id: &str, state: OutboxState) -> HubAdvice {
        HubAdvice {
            id: Uuid::new_v4(),
            payment_id: Uuid::new_v4(),
            kind,
            message_id: message_id.into(),
            tran_id: Some(tran.into()),
            state,
            attempts: 1,
            last_error: None,
            origin: (kind == AdviceKind::Reversal).then_some(ReversalOrigin::Hub),
        }
    }

    /// The checker with no strict-mode violation.
    fn check(
        flows: &[PosFlow],
        payments: &[HubPayment],
        outbox: &[HubAdvice],
        ledger: &[LedgerEntry],
    ) -> CheckReport {
        super::check(flows, payments, outbox, ledger, &[])
    }

    fn kinds(r: &CheckReport) -> Vec<ViolationKind> {
        let mut k: Vec<_> = r.violations.iter().map(|v| v.kind).collect();
        k.sort();
        k
    }

    const CONFIRMED: Option<(AdviceKind, AdviceAnswer)> =
        Some((AdviceKind::Confirmation, AdviceAnswer::Accepted));
    const REVERSED: Option<(AdviceKind, AdviceAnswer)> =
        Some((AdviceKind::Reversal, AdviceAnswer::Accepted));

    #[test]
    fn a_clean_run_of_every_shape_passes() {
        let flows = [
            flow("confirmed", PosPay::Approved, CONFIRMED),
            flow("cancelled", PosPay::Approved, REVERSED),
            flow("declined", PosPay::Declined, None),
            // The partner approved after the hub's timeout; the hub reversed.
            flow("late", unknown(), REVERSED),
            // The partner never answered; the reversal's first delivery failed.
            flow("hang", unknown(), REVERSED),
            // Never reached the partner; the POS's reversal found nothing.
            flow(
                "lost",
                unknown(),
                Some((AdviceKind::Reversal, AdviceAnswer::NotFound)),
            ),
        ];
        let ledger = [
            pay(1, "confirmed", Some(201)),
            entry(2, MessageKind::Confirmation, "c1", "confirmed", Some(500)),
            entry(3, MessageKind::Confirmation, "c1", "confirmed", Some(202)),
            pay(4, "cancelled", Some(201)),
            entry(5, MessageKind::Reversal, "r1", "cancelled", Some(202)),
            pay(6, "declined", Some(400)),
            pay(7, "late", Some(201)),
            entry(8, MessageKind::Reversal, "r2", "late", Some(202)),
            pay(9, "hang", None),
            entry(10, MessageKind::Reversal, "r3", "hang", None),
            entry(11, MessageKind::Reversal, "r3", "hang", Some(404)),
        ];
        let outbox = [
            row(
                "confirmed",
                AdviceKind::Confirmation,
                "c1",
                OutboxState::Delivered,
            ),
            row(
                "cancelled",
                AdviceKind::Reversal,
                "r1",
                OutboxState::Delivered,
            ),
            row("late", AdviceKind::Reversal, "r2", OutboxState::Delivered),
            row("hang", AdviceKind::Reversal, "r3", OutboxState::Delivered),
        ];
        let r = check(&flows, &[], &outbox, &ledger);
        assert!(r.passed(), "{:#?}", r.violations);
        assert_eq!(r.payments_at_partner, 5);
        assert_eq!(r.advice_deliveries, 6);
        assert_eq!(r.advices_accepted, 4);
        assert_eq!(r.partner_ends.get("reversed"), Some(&3));
    }

    #[test]
    fn an_unknown_outcome_left_unreversed_is_caught() {
        // The planted bug's shape: the partner approved late, the POS was told 504 and
        // reversed, but no reversal ever reached the partner.
        let flows = [flow("t", unknown(), REVERSED)];
        let r = check(&flows, &[], &[], &[pay(1, "t", Some(201))]);
        assert_eq!(kinds(&r), [ViolationKind::WrongEndAtPartner]);
        assert!(r.may_resolve(), "an advice still on its way could cure it");
        // Also when the partner's answer itself was lost (a 500, or no answer at all).
        for status in [Some(500), Some(504), None] {
            let r = check(&flows, &[], &[], &[pay(1, "t", status)]);
            assert_eq!(kinds(&r), [ViolationKind::WrongEndAtPartner], "{status:?}");
        }
    }

    #[test]
    fn a_confirmed_payment_must_reach_the_partner_confirmed() {
        let flows = [flow("t", PosPay::Approved, CONFIRMED)];
        let r = check(&flows, &[], &[], &[pay(1, "t", Some(201))]);
        assert_eq!(kinds(&r), [ViolationKind::WrongEndAtPartner]);
        // A refused confirmation leaves the POS's last word "not confirmed": reversed.
        let refused = Some((
            AdviceKind::Confirmation,
            AdviceAnswer::Refused {
                status: 400,
                error_type: Some("ACCOUNT_ALREADY_SETTLED".into()),
            },
        ));
        let flows = [flow("t", PosPay::Approved, refused)];
        let ledger = [
            pay(1, "t", Some(201)),
            entry(2, MessageKind::Reversal, "r", "t", Some(202)),
        ];
        assert!(check(&flows, &[], &[], &ledger).passed());
    }

    #[test]
    fn a_second_pay_and_a_201_without_approval_are_caught() {
        let flows = [
            flow("twice", PosPay::Approved, CONFIRMED),
            flow("declined", PosPay::Approved, CONFIRMED),
        ];
        let ledger = [
            pay(1, "twice", Some(201)),
            pay(2, "twice", Some(201)),
            entry(3, MessageKind::Confirmation, "c", "twice", Some(202)),
            pay(4, "declined", Some(400)),
            entry(5, MessageKind::Confirmation, "c2", "declined", Some(202)),
        ];
        let r = check(&flows, &[], &[], &ledger);
        assert_eq!(
            kinds(&r),
            [
                ViolationKind::PayAskedTwice,
                ViolationKind::ApprovedWithoutPartner
            ]
        );
    }

    #[test]
    fn a_confirmation_after_a_reversal_is_caught_three_ways() {
        let flows = [flow("t", unknown(), REVERSED)];
        let ledger = [
            pay(1, "t", Some(201)),
            entry(2, MessageKind::Reversal, "r", "t", Some(202)),
            entry(3, MessageKind::Confirmation, "c", "t", Some(202)),
        ];
        let r = check(&flows, &[], &[], &ledger);
        assert_eq!(
            kinds(&r),
            [
                ViolationKind::UnexpectedConfirmation,
                ViolationKind::ConfirmationAfterReversal,
                ViolationKind::ConfirmedAndReversed,
            ]
        );
        assert!(!r.may_resolve());
    }

    #[test]
    fn outbox_rows_must_be_in_the_ledger_and_dead_letters_are_listed() {
        let flows = [
            flow("lost", unknown(), REVERSED),
            flow("pending", unknown(), REVERSED),
            flow("dead", unknown(), REVERSED),
            flow("failed", PosPay::Approved, CONFIRMED),
        ];
        let ledger = [
            pay(1, "lost", Some(504)),
            pay(2, "pending", Some(504)),
            pay(3, "dead", Some(504)),
            entry(4, MessageKind::Reversal, "r-dead", "dead", Some(500)),
            pay(5, "failed", Some(201)),
            entry(
                6,
                MessageKind::Confirmation,
                "c-failed",
                "failed",
                Some(400),
            ),
        ];
        let outbox = [
            row(
                "lost",
                AdviceKind::Reversal,
                "r-lost",
                OutboxState::Delivered,
            ),
            row(
                "pending",
                AdviceKind::Reversal,
                "r-pending",
                OutboxState::Pending,
            ),
            row("dead", AdviceKind::Reversal, "r-dead", OutboxState::Dead),
            row(
                "failed",
                AdviceKind::Confirmation,
                "c-failed",
                OutboxState::Failed,
            ),
        ];
        // The hub's states agree with the POS: only the outbox and the partner are wrong.
        let payments: Vec<HubPayment> = outbox
            .iter()
            .map(|row| {
                let tran = row.tran_id.clone().expect("tranId");
                HubPayment {
                    id: row.payment_id,
                    message_id: format!("pos-pay-{tran}"),
                    tran_id: tran,
                    state: match row.kind {
                        AdviceKind::Confirmation => PaymentState::Confirmed,
                        AdviceKind::Reversal => PaymentState::Reversed,
                    },
                    pos_gone: false,
                    unadvised: false,
                }
            })
            .collect();
        let r = check(&flows, &payments, &outbox, &ledger);
        assert_eq!(
            kinds(&r),
            [
                // lost, pending and failed never reached their end at the partner...
                ViolationKind::WrongEndAtPartner,
                ViolationKind::WrongEndAtPartner,
                ViolationKind::WrongEndAtPartner,
                // ...and their rows say why (the pending one is a reversal the hub made); the
                // dead letter accounts for its payment.
                ViolationKind::AdviceLost,
                ViolationKind::AdviceRefused,
                ViolationKind::HubReversalUndelivered,
            ]
        );
        assert_eq!(r.dead_letters.len(), 1);
        assert_eq!(r.dead_letters[0].message_id, "r-dead");
        assert_eq!(r.dead_letters[0].tran_id.as_deref(), Some("dead"));
    }

    #[test]
    fn messages_about_other_tran_ids_and_unsettled_advices_are_caught() {
        let unsettled = Some((
            AdviceKind::Reversal,
            AdviceAnswer::Unsettled {
                last: "connection refused".into(),
            },
        ));
        let flows = [flow("t", unknown(), unsettled)];
        let mut stray = pay(1, "never-issued", Some(201));
        stray.id = Some("x".into());
        let r = check(&flows, &[], &[], &[stray]);
        assert_eq!(
            kinds(&r),
            [
                ViolationKind::PosAdviceUnsettled,
                ViolationKind::UnknownTranId
            ]
        );
    }

    #[test]
    fn an_advice_without_a_tran_id_is_attributed_through_its_pay() {
        let flows = [flow("t", PosPay::Approved, CONFIRMED)];
        let mut confirmation = entry(2, MessageKind::Confirmation, "c", "t", Some(202));
        confirmation.tran_id = None;
        let r = check(&flows, &[], &[], &[pay(1, "t", Some(201)), confirmation]);
        assert!(r.passed(), "{:#?}", r.violations);
    }

    #[test]
    fn a_pos_that_went_away_is_never_charged_and_its_approvals_are_listed() {
        use crate::chaos::faults::PosAway;
        let away = |tran: &str, pay: PosPay, how: PosAway| PosFlow {
            plan: FlowPlan {
                pos_away: Some(how),
                ..plan(1, 0, 2)
            },
            ..flow(tran, pay, None)
        };
        let hung_up = PosAway::HangUp {
            after_ms: 50,
            scan_after_ms: 100,
            reverses: false,
        };
        let flows = [
            away("gone", PosPay::HungUp { after_ms: 50 }, hung_up),
            away("after-scan", PosPay::HungUp { after_ms: 50 }, hung_up),
            away("silent", PosPay::Approved, PosAway::Silent),
        ];
        let hub = |t: &str, state, pos_gone, unadvised| HubPayment {
            id: Uuid::new_v4(),
            tran_id: t.into(),
            message_id: format!("pos-pay-{t}"),
            state,
            pos_gone,
            unadvised,
        };
        let ledger = [pay(1, "after-scan", Some(201)), pay(2, "silent", Some(201))];
        let payments = [
            hub("gone", PaymentState::Expired, true, false),
            hub("after-scan", PaymentState::Approved, false, true),
            hub("silent", PaymentState::Approved, false, true),
        ];
        let r = check(&flows, &payments, &[], &ledger);
        assert!(r.passed(), "{:#?}", r.violations);
        assert_eq!((r.pos_gone_before_scan, r.unadvised_listed), (1, 2));

        // Sent after the hub ended it; and approvals nobody lists.
        let ledger = [
            pay(1, "after-scan", Some(201)),
            pay(2, "silent", Some(201)),
            pay(3, "gone", Some(201)),
        ];
        let payments = [
            hub("gone", PaymentState::Expired, true, false),
            hub("after-scan", PaymentState::Approved, false, false),
            hub("silent", PaymentState::Approved, false, false),
        ];
        let r = check(&flows, &payments, &[], &ledger);
        assert_eq!(
            kinds(&r),
            [
                ViolationKind::WrongEndAtPartner,
                ViolationKind::ForwardedAfterPosGone,
                ViolationKind::UnadvisedApprovalUnlisted,
                ViolationKind::UnadvisedApprovalUnlisted,
            ]
        );
    }

    #[test]
    fn the_hub_state_must_agree_with_the_pos() {
        let flows = [
            flow("reversed", unknown(), REVERSED),
            flow("confirmed", PosPay::Approved, CONFIRMED),
            flow("declined", PosPay::Declined, None),
        ];
        let ledger = [
            pay(1, "reversed", Some(504)),
            entry(2, MessageKind::Reversal, "r", "reversed", Some(202)),
            pay(3, "confirmed", Some(201)),
            entry(4, MessageKind::Confirmation, "c", "confirmed", Some(202)),
            pay(5, "declined", Some(400)),
        ];
        let payments = |states: [PaymentState; 3]| -> Vec<HubPayment> {
            ["reversed", "confirmed", "declined"]
                .iter()
                .zip(states)
                .map(|(t, state)| HubPayment {
                    id: Uuid::new_v4(),
                    tran_id: (*t).into(),
                    message_id: format!("pos-pay-{t}"),
                    state,
                    pos_gone: false,
                    unadvised: false,
                })
                .collect()
        };
        use PaymentState::*;
        let r = check(
            &flows,
            &payments([Reversed, Confirmed, Declined]),
            &[],
            &ledger,
        );
        assert!(r.passed(), "{:#?}", r.violations);
        // A payment the POS reversed that the hub still calls UNKNOWN, one it confirmed that
        // the hub calls APPROVED, and a relayed decline the hub calls UNKNOWN.
        let r = check(
            &flows,
            &payments([Unknown, Approved, Unknown]),
            &[],
            &ledger,
        );
        assert_eq!(kinds(&r), [ViolationKind::HubStateMismatch; 3]);
    }

    #[test]
    fn an_approval_of_another_amount_than_the_partner_approved_is_caught() {
        let flows = [flow("t", PosPay::Approved, CONFIRMED)];
        let ledger = |approved: serde_json::Value| {
            let mut p = pay(1, "t", Some(201));
            p.approved_amount = Some(approved);
            [p, entry(2, MessageKind::Confirmation, "c", "t", Some(202))]
        };
        assert!(check(&flows, &[], &[], &ledger(asked())).passed());
        // The partner approved part of it, and the POS was told it was approved.
        let part = serde_json::json!({"amount": 1, "currency": "710"});
        let r = check(&flows, &[], &[], &ledger(part.clone()));
        assert_eq!(kinds(&r), [ViolationKind::ApprovedOtherAmount]);
        // The POS was told another amount than the partner approved.
        let mut flows = flows;
        flows[0].approved_amount = Some(part);
        let r = check(&flows, &[], &[], &ledger(asked()));
        assert_eq!(kinds(&r), [ViolationKind::ApprovedOtherAmount]);
        // A wrong-amount approval the hub declined and reversed is clean.
        let refused = flow(
            "w",
            PosPay::Refused {
                status: 400,
                error_type: Some("INVALID_AMOUNT".into()),
            },
            None,
        );
        let mut p = pay(1, "w", Some(201));
        p.approved_amount = Some(serde_json::json!({"amount": 1, "currency": "710"}));
        let ledger = [p, entry(2, MessageKind::Reversal, "r", "w", Some(202))];
        let outbox = [row("w", AdviceKind::Reversal, "r", OutboxState::Delivered)];
        assert!(check(&[refused], &[], &outbox, &ledger).passed());
    }

    #[test]
    fn real_partner_statuses_classify_as_the_hub_does() {
        // A 200 is an approval, a 502 unknown (reversed), a 503 or 429 not processed.
        let flows = [
            flow("ok", PosPay::Approved, CONFIRMED),
            flow("gw", unknown(), REVERSED),
            flow(
                "busy",
                PosPay::Refused {
                    status: 503,
                    error_type: None,
                },
                None,
            ),
        ];
        let ledger = [
            pay(1, "ok", Some(200)),
            entry(2, MessageKind::Confirmation, "c", "ok", Some(202)),
            pay(3, "gw", Some(502)),
            entry(4, MessageKind::Reversal, "r", "gw", Some(503)),
            entry(5, MessageKind::Reversal, "r", "gw", Some(202)),
            pay(6, "busy", Some(429)),
        ];
        let r = check(&flows, &[], &[], &ledger);
        assert!(r.passed(), "{:#?}", r.violations);
        assert_eq!(r.partner_ends.get("declined"), Some(&1));
        // Left unreversed, the 502 is caught.
        let r = check(&flows, &[], &[], &ledger[..3]);
        assert_eq!(kinds(&r), [ViolationKind::WrongEndAtPartner]);
    }

    #[test]
    fn hub_reversals_must_be_delivered_or_open_items_and_scripted_refusals_are_open_items() {
        let mut refusing = flow("refused", unknown(), REVERSED);
        refusing.plan.advice_fault = Some(AdviceFault::Refuse { status: 409 });
        let flows = [
            refusing,
            flow("stuck", unknown(), REVERSED),
            flow("unplanned", unknown(), REVERSED),
        ];
        let ledger = [
            pay(1, "refused", Some(504)),
            entry(2, MessageKind::Reversal, "r1", "refused", Some(409)),
            pay(3, "stuck", Some(504)),
            pay(4, "unplanned", Some(504)),
            entry(5, MessageKind::Reversal, "r3", "unplanned", Some(409)),
        ];
        let outbox = [
            row("refused", AdviceKind::Reversal, "r1", OutboxState::Failed),
            row("stuck", AdviceKind::Reversal, "r2", OutboxState::Pending),
            row("unplanned", AdviceKind::Reversal, "r3", OutboxState::Failed),
        ];
        let r = check(&flows, &[], &outbox, &ledger);
        assert_eq!(
            kinds(&r),
            [
                ViolationKind::WrongEndAtPartner,
                ViolationKind::WrongEndAtPartner,
                ViolationKind::AdviceRefused,
                ViolationKind::HubReversalUndelivered,
            ]
        );
        assert_eq!(r.refused.len(), 1);
        assert_eq!(r.refused[0].tran_id.as_deref(), Some("refused"));
    }

    #[test]
    fn every_strict_mode_violation_is_a_violation() {
        let flows = [flow("t", PosPay::Approved, CONFIRMED)];
        let ledger = [pay(1, "t", Some(400))];
        let strict = [StrictViolation {
            seq: 1,
            kind: MessageKind::Pay,
            id: Some("hub-pay-t".into()),
            rule: crate::simulator::Rule::BasicUser,
            detail: "Basic user \"qrhub\" but client.id \"pos-1\"".into(),
        }];
        let r = super::check(&flows[..0], &[], &[], &[], &strict);
        assert_eq!(kinds(&r), [ViolationKind::StrictModeViolation]);
        assert_eq!(r.strict_violations, 1);
        let r = super::check(&flows, &[], &[], &ledger, &strict);
        assert!(r
            .violations
            .iter()
            .any(|v| v.kind == ViolationKind::StrictModeViolation
                && v.tran_id.as_deref() == Some("t")));
    }
}
