//! confirmPayment and reversePayment: store the advice, answer 202 at once, and queue what
//! the partner must hear. Repeats of an advice id answer the same; advices may come in any
//! order.

use std::sync::Arc;

use super::{Hub, HubError, HubResult, RefusalKind, Waiters};
use crate::domain::{confirmable, decide_advice, AdviceDecision, AdviceKind, PaymentState};
use crate::model::{ErrorDetail, ErrorType, PaymentConfirmation, PaymentReversal};
use crate::store::{
    event_kind, AdviceRecord, ApplyAdvice, ApplyAdviceOutcome, Direction, NewEvent, OrphanOutcome,
    PaymentRecord, Settlement,
};

/// One advice from a POS, either kind.
#[derive(Debug, Clone)]
pub enum Advice {
    Confirmation(PaymentConfirmation),
    Reversal(PaymentReversal),
}

impl Advice {
    fn kind(&self) -> AdviceKind {
        match self {
            Self::Confirmation(_) => AdviceKind::Confirmation,
            Self::Reversal(_) => AdviceKind::Reversal,
        }
    }

    fn id(&self) -> &str {
        match self {
            Self::Confirmation(c) => &c.id,
            Self::Reversal(r) => &r.id,
        }
    }

    fn request_id(&self) -> &str {
        match self {
            Self::Confirmation(c) => &c.request_id,
            Self::Reversal(r) => &r.request_id,
        }
    }

    fn tran_id(&self) -> Option<&str> {
        match self {
            Self::Confirmation(c) => c.tran_id.as_deref(),
            Self::Reversal(r) => r.tran_id.as_deref(),
        }
    }

    fn event_kind(&self) -> &'static str {
        match self {
            Self::Confirmation(_) => event_kind::CONFIRMATION,
            Self::Reversal(_) => event_kind::REVERSAL,
        }
    }
}

/// How many times an advice is re-decided when the payment keeps moving under it.
const MAX_DECISIONS: usize = 16;

impl Hub {
    /// Returns the 202 echo (the advice as first received), or the refusal.
    pub async fn advise(
        self: &Arc<Self>,
        client_id: &str,
        advice: Advice,
        raw: serde_json::Value,
    ) -> HubResult<serde_json::Value> {
        let result = self.apply_advice(client_id, &advice, raw.clone()).await;
        // An applied advice is on the timeline already (with the change it made); repeats
        // and refusals are recorded here, against the payment when there is one.
        let outcome = match &result {
            Ok((_, true)) => "ACCEPTED".to_owned(),
            Ok((_, false)) => "REPEAT".to_owned(),
            Err(e) => super::timeline::refusal_summary(e).1,
        };
        if !matches!(result, Ok((_, true))) {
            let payment = self
                .store
                .payment_by_message(client_id, advice.request_id())
                .await
                .ok()
                .flatten();
            let tran_id = payment
                .as_ref()
                .map(|p| p.tran_id.as_str())
                .or(advice.tran_id())
                .unwrap_or_default();
            let mut event = NewEvent::new(
                advice.event_kind(),
                Direction::In,
                tran_id,
                client_id,
                self.now(),
                outcome,
            )
            .message(advice.id())
            .body(Some(raw));
            event.payment_id = payment.map(|p| p.id);
            self.record_events(vec![event]).await;
        }
        result.map(|(echo, _)| echo)
    }

    /// The echo, and whether the advice was applied now (its event written with it).
    async fn apply_advice(
        self: &Arc<Self>,
        client_id: &str,
        advice: &Advice,
        raw: serde_json::Value,
    ) -> HubResult<(serde_json::Value, bool)> {
        let not_found = || {
            HubError::refuse(
                RefusalKind::NotFound,
                ErrorDetail::new(
                    advice.id(),
                    ErrorType::UnableToLocateRecord,
                    "Payment not found",
                )
                .with_original_id(advice.request_id()),
            )
        };
        // A repeat is found where it makes a difference (the advice's insert is refused, or
        // the answer would be a refusal), so a first advice costs no look-up of its id.
        let known = || async {
            let stored = self.store.advice(client_id, advice.id()).await?;
            Ok::<_, HubError>(stored.map(|known| {
                self.repeat(advice, known, not_found)
                    .map(|echo| (echo, false))
            }))
        };
        // The payment as this instance's forwarder left it APPROVED, for the first decision
        // only: the compare-and-set below proves it current, and if it is not, the next
        // pass reads the store (`recent.rs`). A refusal proves nothing, so one decided from
        // memory is decided again from the store.
        let mut remembered = self.recent.take_approved(client_id, advice.request_id());
        for _ in 0..MAX_DECISIONS {
            let record = AdviceRecord {
                client_id: client_id.to_owned(),
                message_id: advice.id().to_owned(),
                kind: advice.kind(),
                request_id: advice.request_id().to_owned(),
                payment_id: None,
                body: raw.clone(),
                received_at: self.now(),
            };
            // Another client's payment is looked up under this client's id: it is not found.
            let from_memory = remembered.is_some();
            let found = match remembered.take() {
                Some(approved) => {
                    Some(Arc::try_unwrap(approved).unwrap_or_else(|shared| (*shared).clone()))
                }
                None => {
                    self.store
                        .payment_by_message(client_id, advice.request_id())
                        .await?
                }
            };
            let Some(payment) = found else {
                if let Some(repeat) = known().await? {
                    return repeat;
                }
                if advice.kind() == AdviceKind::Confirmation {
                    return Err(not_found());
                }
                // Remembered, so that a pay arriving later with this id is refused. A pay
                // stored meanwhile is this reversal's payment after all: decided again.
                match self.store.insert_orphan_reversal(&record).await? {
                    OrphanOutcome::Inserted => return Err(not_found()),
                    OrphanOutcome::DuplicateAdvice | OrphanOutcome::PaymentExists => continue,
                }
            };
            // A confirmation that settles more than the partner approved (or in another
            // currency) is refused before anything is stored or sent.
            if let (Advice::Confirmation(c), PaymentState::Approved) = (advice, payment.state) {
                if let Some(asked) = c.amounts.as_ref().and_then(|a| a.approved_amount.as_ref()) {
                    let approved = payment.approved_minor.unwrap_or(payment.amount_minor);
                    if let Err(why) =
                        confirmable(asked.amount, &asked.currency, approved, &payment.currency)
                    {
                        if from_memory {
                            continue;
                        }
                        if let Some(repeat) = known().await? {
                            return repeat;
                        }
                        return Err(HubError::refuse(
                            RefusalKind::BadRequest,
                            ErrorDetail::new(advice.id(), ErrorType::InvalidAmount, why)
                                .with_original_id(advice.request_id())
                                .with_tran_id(&payment.tran_id),
                        ));
                    }
                }
            }
            let apply = match decide_advice(advice.kind(), payment.state) {
                AdviceDecision::Refuse(r) => {
                    if from_memory {
                        continue;
                    }
                    if let Some(repeat) = known().await? {
                        return repeat;
                    }
                    return Err(HubError::refuse(
                        RefusalKind::BadRequest,
                        ErrorDetail::new(advice.id(), r.error_type, r.message)
                            .with_original_id(advice.request_id())
                            .with_tran_id(&payment.tran_id),
                    ));
                }
                AdviceDecision::Apply {
                    to,
                    send_to_partner,
                } => ApplyAdvice {
                    outbox: send_to_partner.then(|| self.advice_for_partner(&payment, advice)),
                    to: Some(to),
                    mark_reversed_by_pos: false,
                    settlement: (to == PaymentState::Confirmed)
                        .then(|| self.settlement(&payment, advice)),
                    ..self.apply_base(&record, &payment)
                },
                AdviceDecision::MarkReversedByPos => ApplyAdvice {
                    mark_reversed_by_pos: true,
                    ..self.apply_base(&record, &payment)
                },
                AdviceDecision::Absorb => self.apply_base(&record, &payment),
            };
            // A held pay may be waiting on this payment (a reversal while it waits); once
            // the pay has its answer nobody waits, and no wake-up is announced.
            let wake = (apply.to.is_some() || apply.mark_reversed_by_pos)
                && !payment.state.pay_is_answered();
            let mut apply = ApplyAdvice {
                wake: wake.then(|| Waiters::payment_key(payment.id)),
                events: vec![NewEvent::new(
                    advice.event_kind(),
                    Direction::In,
                    &payment.tran_id,
                    client_id,
                    record.received_at,
                    "ACCEPTED",
                )
                .payment(payment.id)
                .message(advice.id())
                .body(Some(raw.clone()))],
                ..apply
            };
            let slot = apply.outbox.as_mut().and_then(|m| self.lease_first_try(m));
            match self.store.apply_advice(&apply).await? {
                ApplyAdviceOutcome::Applied => {
                    if let Some(msg) = &apply.outbox {
                        self.start_first_try(msg, slot);
                    }
                    if apply.wake.is_some() {
                        self.waiters.wake(&Waiters::payment_key(payment.id));
                    }
                    tracing::debug!(payment_id = %payment.id, kind = advice.kind().as_str(), to = ?apply.to, "advice accepted");
                    return Ok((raw, true));
                }
                ApplyAdviceOutcome::DuplicateAdvice => {
                    if let Some(repeat) = known().await? {
                        return repeat;
                    }
                }
                ApplyAdviceOutcome::StateChanged => {}
            }
        }
        Err(HubError::Internal(anyhow::anyhow!(
            "advice {} kept racing with its payment's state",
            advice.id()
        )))
    }

    /// What a confirmation settles: its own `approvedAmount` (a partial confirmation), else
    /// what the partner approved, else what was asked; and the fee on it by the schedule in
    /// force now, so a later schedule change leaves it as it was.
    fn settlement(&self, payment: &PaymentRecord, advice: &Advice) -> Settlement {
        let confirmed = match advice {
            Advice::Confirmation(c) => c
                .amounts
                .as_ref()
                .and_then(|a| a.approved_amount.as_ref())
                .filter(|a| a.currency == payment.currency)
                .map(|a| a.amount),
            Advice::Reversal(_) => None,
        };
        let settled_minor = confirmed
            .or(payment.approved_minor)
            .unwrap_or(payment.amount_minor);
        let fee_minor = payment
            .partner_id
            .as_deref()
            .and_then(|partner| {
                self.settings()
                    .fee_schedule(partner, &payment.client_id, &payment.currency)
            })
            .map_or(0, |schedule| schedule.fee(settled_minor));
        Settlement {
            settled_minor,
            fee_minor,
        }
    }

    fn apply_base(&self, record: &AdviceRecord, payment: &PaymentRecord) -> ApplyAdvice {
        ApplyAdvice {
            advice: AdviceRecord {
                payment_id: Some(payment.id),
                ..record.clone()
            },
            payment_id: payment.id,
            from: payment.state,
            to: None,
            mark_reversed_by_pos: false,
            settlement: None,
            outbox: None,
            events: Vec::new(),
            wake: None,
        }
    }

    fn advice_for_partner(
        &self,
        payment: &PaymentRecord,
        advice: &Advice,
    ) -> crate::store::NewOutboxMessage {
        match advice {
            Advice::Confirmation(c) => self.confirmation_for_partner(payment, c),
            Advice::Reversal(r) => self.reversal_for_partner(
                payment,
                r.reversal_reason,
                r.amounts.clone(),
                r.third_party_identifiers.clone(),
            ),
        }
    }

    /// A repeat of a stored advice answers as the first did; an id reused for a different
    /// advice is a duplicate record.
    fn repeat(
        &self,
        advice: &Advice,
        known: AdviceRecord,
        not_found: impl Fn() -> HubError,
    ) -> HubResult<serde_json::Value> {
        if known.kind != advice.kind() || known.request_id != advice.request_id() {
            return Err(HubError::refuse(
                RefusalKind::BadRequest,
                ErrorDetail::new(
                    advice.id(),
                    ErrorType::DuplicateRecord,
                    "Duplicate advice id",
                )
                .with_original_id(advice.request_id()),
            ));
        }
        if known.payment_id.is_none() {
            return Err(not_found());
        }
        Ok(known.body)
    }
}
