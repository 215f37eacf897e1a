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
//! - every advice the POS sent got a final answer;
//! - the hub's final state of the payment agrees with the POS's last word: CONFIRMED after
//!   an accepted confirmation, REVERSED (or DECLINED / EXPIRED, which absorb a reversal)
//!   after an accepted reversal, DECLINED after a relayed decline.
//!
//! For every outbox row (an advice the hub accepted to deliver): DELIVERED rows are in the
//! ledger with an answer that ends delivery (2xx, or 404 for a reversal); PENDING rows (not
//! delivered after the settle time) and FAILED rows are violations; DEAD rows are listed as
//! dead letters. And no message in the ledger is about a tranId the run never used.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

use super::record::{AdviceAnswer, HubAdvice, HubPayment, PosFlow, PosPay};
use crate::domain::{AdviceKind, PaymentState};
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
    /// The hub's final state of the payment contradicts the POS's last word (e.g. UNKNOWN
    /// after the POS's reversal was accepted, or not CONFIRMED after its confirmation).
    HubStateMismatch,
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
            Self::HubStateMismatch => "hub state contradicts the POS",
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
    matches!(
        (e.kind, e.status),
        (_, Some(200..=299)) | (MessageKind::Reversal, Some(404))
    )
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
    let hub_state: HashMap<&str, PaymentState> = payments
        .iter()
        .map(|p| (p.message_id.as_str(), p.state))
        .collect();
    for flow in flows {
        let entries = by_tran.remove(flow.tran_id.as_str()).unwrap_or_default();
        check_flow(flow, &entries, dead.contains(&flow.tran_id), &mut report);
        if !payments.is_empty() {
            check_hub_state(
                flow,
                hub_state.get(flow.pay_id.as_str()).copied(),
                &mut report,
            );
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::faults::plan;
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
            approved_amount: None,
        }
    }

    fn pay(seq: u64, tran: &str, status: Option<u16>) -> LedgerEntry {
        entry(
            seq,
            MessageKind::Pay,
            &format!("hub-pay-{tran}"),
            tran,
            status,
        )
    }

    fn flow(tran: &str, pay: PosPay, advice: Option<(AdviceKind, AdviceAnswer)>) -> PosFlow {
        PosFlow {
            plan: plan(1, 0, 2),
            tran_id: tran.into(),
            pay_id: format!("pos-pay-{tran}"),
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
                // ...and their rows say why; the dead letter accounts for its payment.
                ViolationKind::AdviceLost,
                ViolationKind::AdviceUndelivered,
                ViolationKind::AdviceRefused,
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
}
