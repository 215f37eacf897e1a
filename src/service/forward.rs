//! Sending a matched payment to its partner, and the advices the hub owes partners.

use anyhow::{anyhow, Context};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::sync::Arc;
use uuid::Uuid;

use super::{span, Hub, Waiters};
use crate::domain::{
    approved_amount, check_approved_amount, classify_pay, settle_partner_answer, AdviceKind,
    CodeTerms, Outcome, PartnerAnswer, PaymentState,
};
use crate::metrics::CallOutcome;
use crate::model::repair::{repair, Repair};
use crate::model::{
    schema, Amounts, Institution, Operation, PaymentConfirmation, PaymentRequest, PaymentReversal,
    ReversalReason, ThirdPartyIdentifier, Timestamp,
};
use crate::partner::CallResult;
use crate::store::{
    event_kind, Direction, NewEvent, NewOutboxMessage, PartnerAnswerRecord, PaymentRecord,
};

/// How soon after FORWARDED is committed its pay must start out, or it is not sent (see
/// [`Hub::forward`]); well inside recovery's margin.
const SEND_BY: std::time::Duration = std::time::Duration::from_secs(1);

impl Hub {
    /// (MATCHED →) FORWARDED → the partner's answer; returns the payment as settled, or
    /// `None` if someone else moved it first. The FORWARDED row is committed before anything
    /// is sent (by the scan's claim itself, or here for a MATCHED one), so a crash in between
    /// is found by recovery and reversed.
    pub(super) async fn forward(
        self: &Arc<Self>,
        payment: PaymentRecord,
    ) -> anyhow::Result<Option<PaymentRecord>> {
        let payment_id = payment.id;
        let partner_id = payment
            .partner_id
            .clone()
            .context("matched payment has no partner")?;
        // One snapshot for the whole call: a reload meanwhile does not change the partner
        // this payment goes to, nor the client it goes with.
        let live = self.live();
        let partner = live.settings.partner(&partner_id).cloned();
        // When FORWARDED was committed: recovery's cut-off counts from it.
        let forwarded_at = match (payment.state, &partner) {
            // Claimed straight into FORWARDED by this instance's scan (DESIGN.md §5).
            (PaymentState::Forwarded, Some(_)) => payment.updated_at,
            (PaymentState::Matched, None) => {
                // The partner was removed from the configuration after it scanned.
                self.store
                    .transition(
                        payment_id,
                        PaymentState::Matched,
                        PaymentState::Declined,
                        self.now(),
                    )
                    .await?;
                self.wake_everywhere(&Waiters::payment_key(payment_id))
                    .await;
                return Ok(None);
            }
            (PaymentState::Matched, Some(_)) => {
                let at = self.now();
                if !self
                    .store
                    .transition(
                        payment_id,
                        PaymentState::Matched,
                        PaymentState::Forwarded,
                        at,
                    )
                    .await?
                {
                    // Someone else moved it (the claiming instance, the holder, or recovery).
                    return Ok(None);
                }
                at
            }
            (state, _) => {
                return Err(anyhow!(
                    "payment {payment_id} is {state}, not a claim this instance can send"
                ))
            }
        };
        let partner = partner.context("a forwarded payment's partner is configured")?;
        let request = self.request_for_partner(&payment, &partner)?;
        tracing::debug!(payment_id = %payment_id, partner = %partner_id, "forwarding pay to partner");
        // A claimed row's updated_at is when the scan claimed it (taken before its commit).
        crate::metrics::match_latency(payment.updated_at, self.now());
        let sent = std::time::Instant::now();
        let sent_at = self.now();
        let tran_id = payment.tran_id.clone();
        // Recovery takes a FORWARDED row as abandoned (and queues its reversal) from the
        // partner's timeout and a margin after it was written. A pay that starts out later
        // than SEND_BY after that (a commit that waited long for a connection, a stalled
        // process) is not sent at all: sent, it could reach the partner after the reversal.
        let result = if self.now() - forwarded_at > span(SEND_BY) {
            tracing::warn!(payment_id = %payment_id, partner = %partner_id, "FORWARDED was committed too long ago to send the pay safely; declined unsent");
            CallResult::NotSent {
                error: "the claim committed too late to send safely".to_owned(),
            }
        } else {
            live.partners.post(&partner, Operation::Pay, &request).await
        };
        let request_json = serde_json::to_value(&request).ok();
        let request_json = request_json.as_ref().unwrap_or(&serde_json::Value::Null);
        let requested = (payment.amount_minor, payment.currency.as_str());
        let mut interpreted =
            interpret_pay_answer(&result, request_json, requested, &CodeTerms::default());
        if interpreted.answer == PartnerAnswer::ApprovedOtherAmount {
            // Another amount may still be one the code allows (part or over payment); its
            // terms are read only on this rare path.
            // A read that fails now must not lose the partner's answer: the code's terms are
            // then taken as allowing nothing, and the approval is reversed.
            let terms = match self.store.qr_code(&payment.tran_id).await {
                Ok(code) => code.map(|c| c.terms).unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(payment_id = %payment_id, error = %e, "cannot read the code's terms; the other amount is refused");
                    CodeTerms::default()
                }
            };
            interpreted = interpret_pay_answer(&result, request_json, requested, &terms);
        }
        let PayInterpretation {
            answer,
            status,
            raw_body,
            body,
            repairs,
            mismatch,
        } = interpreted;
        // What the partner approved, where the hub could read it (the report's gross).
        let approved_minor = match (answer, &body) {
            (PartnerAnswer::Approved | PartnerAnswer::ApprovedOtherAmount, Some(body)) => {
                approved_amount(body)
            }
            _ => None,
        };
        let outcome = pay_call_outcome(&result, answer);
        let took = sent.elapsed();
        crate::metrics::partner_call(&partner_id, Operation::Pay, outcome, took);
        self.health.pay(
            &partner_id,
            outcome,
            took,
            self.now(),
            match (outcome, answer) {
                (CallOutcome::Success, _) => None,
                (_, PartnerAnswer::ApprovedOtherAmount) => {
                    Some("approved another amount than asked".to_owned())
                }
                _ => Some(crate::partner::health::describe(&result)),
            },
        );
        if let CallResult::NotSent { error } | CallResult::Unknown { error } = &result {
            tracing::warn!(payment_id = %payment_id, partner = %partner_id, %error, ?answer, "partner call failed");
        }
        if let CallResult::Answered {
            status: refused @ (401 | 403),
            ..
        } = &result
        {
            crate::metrics::partner_credentials_refused(&partner_id);
            tracing::error!(payment_id = %payment_id, partner = %partner_id, status = refused, "partner refused the hub's credentials; check partners[].username and password");
        }
        // Once per kind of repair per approval, however many fields it touched.
        let mut kinds: Vec<&'static str> = repairs.iter().map(|r| r.kind.as_str()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        for kind in kinds {
            crate::metrics::payment_response_repair(&partner_id, kind);
        }
        if let Some(mismatch) = &mismatch {
            tracing::error!(payment_id = %payment_id, partner = %partner_id, requested = payment.amount_minor, currency = %payment.currency, %mismatch, "partner approved another amount; reversing it");
        }
        // The pay sent and the partner's answer, for the timeline: written with the answer.
        let timeline = |at| {
            let (sent, answered) = match &result {
                CallResult::NotSent { error } => {
                    ("NOT_SENT".to_owned(), format!("DECLINED: {error}"))
                }
                CallResult::Unknown { error } => ("SENT".to_owned(), format!("UNKNOWN: {error}")),
                CallResult::Answered { .. } => match &mismatch {
                    Some(m) => (
                        "SENT".to_owned(),
                        format!("APPROVED_OTHER_AMOUNT: {m}; reversed"),
                    ),
                    None if repairs.is_empty() => {
                        ("SENT".to_owned(), format!("{answer:?}").to_uppercase())
                    }
                    None => ("SENT".to_owned(), repaired_outcome(answer, &repairs)),
                },
            };
            let event = |kind, direction, at, outcome| {
                NewEvent::new(kind, direction, &tran_id, &partner_id, at, outcome)
                    .payment(payment_id)
                    .message(&request.id)
            };
            // The partner's body as it came, for the record; the payment keeps the repaired
            // one it relays.
            vec![
                event(event_kind::PAY, Direction::Out, sent_at, sent)
                    .body(Some(request_json.clone())),
                event(event_kind::PAY_RESPONSE, Direction::In, at, answered)
                    .status(status)
                    .body(raw_body.clone()),
            ]
        };
        // A POS reversal may land while the partner has the payment: the compare-and-set
        // includes it, and a lost race re-reads and decides again.
        let mut current = PaymentRecord {
            state: PaymentState::Forwarded,
            ..payment
        };
        loop {
            if current.state != PaymentState::Forwarded {
                tracing::warn!(payment_id = %payment_id, state = %current.state, "partner answer came after the payment moved on; ignored");
                self.record_events(timeline(self.now())).await;
                return Ok(None);
            }
            let settlement = settle_partner_answer(answer, current.reversed_by_pos);
            // An approval for another amount is called off, not timed out.
            let reason = if answer == PartnerAnswer::ApprovedOtherAmount {
                ReversalReason::Cancelled
            } else {
                ReversalReason::Timeout
            };
            let mut reversal = settlement
                .queue_reversal
                .then(|| self.reversal_for_partner(&current, reason, None, Vec::new()));
            let slot = reversal.as_mut().and_then(|m| self.lease_first_try(m));
            let at = self.now();
            let record = PartnerAnswerRecord {
                payment_id,
                to: settlement.state,
                status,
                body: body.clone(),
                approved_minor,
                amount_refused: mismatch.is_some(),
                reversal,
                expected_reversed_by_pos: current.reversed_by_pos,
                at,
                events: timeline(at),
                // The pay may be held by another instance.
                wake: Some(Waiters::payment_key(payment_id)),
            };
            if self.store.record_partner_answer(&record).await? {
                if let Some(reversal) = &record.reversal {
                    self.start_first_try(reversal, slot);
                }
                tracing::debug!(payment_id = %payment_id, state = %settlement.state, "partner answered");
                let settled = PaymentRecord {
                    state: settlement.state,
                    partner_status: status,
                    partner_response: body,
                    approved_minor,
                    amount_refused: mismatch.is_some(),
                    updated_at: at,
                    ..current
                };
                // The held pay answers from this, and the POS's confirmation decides from
                // it, without reading back what was just committed (`recent.rs`).
                self.recent.remember_answered(settled.clone());
                self.waiters.wake(&Waiters::payment_key(payment_id));
                return Ok(Some(settled));
            }
            current = self
                .store
                .payment(payment_id)
                .await?
                .ok_or_else(|| anyhow!("payment {payment_id} vanished"))?;
        }
    }

    /// The POS's request as the partner gets it: the hub's own message id, the partner and
    /// its token added, and the hub's ThirdPartyIdentifier appended to the caller's.
    fn request_for_partner(
        &self,
        payment: &PaymentRecord,
        partner: &crate::config::PartnerSettings,
    ) -> anyhow::Result<PaymentRequest> {
        let mut request = PaymentRequest::deserialize(&payment.request)
            .context("stored POS request is not a PaymentRequest")?;
        request.id = payment
            .partner_message_id
            .clone()
            .context("matched payment has no partner message id")?;
        request.time = Timestamp::from(self.now());
        request.partner = payment.partner_id.clone().map(|id| Institution {
            id,
            name: partner.name.clone(),
        });
        // The hub sends this message, so the hub is its client: the interface has every
        // request's Basic user equal `client.id`, and partners that enforce it would refuse
        // the POS's client here. The retailer stays in `originator`; the POS's own client
        // is given back to it in the answer.
        request.client = Institution {
            id: partner.username.clone(),
            name: partner.client_name.clone(),
        };
        request.partner_payment_token = payment.partner_payment_token.clone();
        request
            .third_party_identifiers
            .push(self.hub_identifier(payment));
        Ok(request)
    }

    pub(super) fn hub_identifier(&self, payment: &PaymentRecord) -> ThirdPartyIdentifier {
        ThirdPartyIdentifier {
            institution_id: self.settings().hub.institution_id.clone(),
            transaction_identifier: Some(payment.id.simple().to_string()),
        }
    }

    fn partner_institution(&self, payment: &PaymentRecord) -> Option<Institution> {
        let id = payment.partner_id.as_deref()?;
        let name = self
            .settings()
            .partner(id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| id.to_owned());
        Some(Institution {
            id: id.to_owned(),
            name,
        })
    }

    fn outbox_message(
        &self,
        payment: &PaymentRecord,
        kind: AdviceKind,
        message_id: String,
        body: serde_json::Value,
    ) -> NewOutboxMessage {
        let now = self.now();
        NewOutboxMessage {
            id: super::ids::new_id(now),
            payment_id: payment.id,
            partner_id: payment.partner_id.clone().unwrap_or_default(),
            kind,
            message_id,
            body,
            created_at: now,
            expires_at: now + span(self.settings().outbox.expiry),
            first_try_until: None,
        }
    }

    /// Every entity's identifiers for an advice about `payment`: the POS's (from its advice,
    /// else from its `pay`), the hub's, then those the partner answered with.
    fn identifiers_for_advice(
        &self,
        payment: &PaymentRecord,
        from_pos: Vec<ThirdPartyIdentifier>,
    ) -> Vec<ThirdPartyIdentifier> {
        let mut identifiers = if from_pos.is_empty() {
            payment
                .request
                .get("thirdPartyIdentifiers")
                .and_then(|v| Vec::<ThirdPartyIdentifier>::deserialize(v).ok())
                .unwrap_or_default()
        } else {
            from_pos
        };
        let from_partner: Vec<ThirdPartyIdentifier> = payment
            .partner_response
            .as_ref()
            .and_then(|b| b.get("thirdPartyIdentifiers"))
            .and_then(|v| Vec::<ThirdPartyIdentifier>::deserialize(v).ok())
            .unwrap_or_default();
        for id in std::iter::once(self.hub_identifier(payment)).chain(from_partner) {
            if !identifiers.contains(&id) {
                identifiers.push(id);
            }
        }
        identifiers
    }

    /// A reversal owed to the partner for `payment`, with the `requestId` the partner saw.
    pub(crate) fn reversal_for_partner(
        &self,
        payment: &PaymentRecord,
        reason: ReversalReason,
        amounts: Option<Amounts>,
        identifiers: Vec<ThirdPartyIdentifier>,
    ) -> NewOutboxMessage {
        let message_id = Uuid::new_v4().to_string();
        let reversal = PaymentReversal {
            id: message_id.clone(),
            request_id: payment.partner_message_id.clone().unwrap_or_default(),
            time: Timestamp::from(self.now()),
            third_party_identifiers: self.identifiers_for_advice(payment, identifiers),
            stan: None,
            rrn: None,
            amounts,
            partner: self.partner_institution(payment),
            tran_id: Some(payment.tran_id.clone()),
            reversal_reason: reason,
        };
        let body = serde_json::to_value(&reversal).unwrap_or_default();
        self.outbox_message(payment, AdviceKind::Reversal, message_id, body)
    }

    /// The POS's confirmation as the partner gets it (partial amounts carried through).
    pub(crate) fn confirmation_for_partner(
        &self,
        payment: &PaymentRecord,
        from_pos: &PaymentConfirmation,
    ) -> NewOutboxMessage {
        let message_id = Uuid::new_v4().to_string();
        let confirmation = PaymentConfirmation {
            id: message_id.clone(),
            request_id: payment.partner_message_id.clone().unwrap_or_default(),
            time: Timestamp::from(self.now()),
            third_party_identifiers: self
                .identifiers_for_advice(payment, from_pos.third_party_identifiers.clone()),
            stan: from_pos.stan.clone(),
            rrn: from_pos.rrn.clone(),
            amounts: from_pos.amounts.clone(),
            partner: self.partner_institution(payment),
            tran_id: Some(payment.tran_id.clone()),
        };
        let body = serde_json::to_value(&confirmation).unwrap_or_default();
        self.outbox_message(payment, AdviceKind::Confirmation, message_id, body)
    }

    /// Builds the reversal recovery queues for a payment a crashed hub left FORWARDED.
    pub fn recovery_reversal(&self, payment: &PaymentRecord) -> NewOutboxMessage {
        self.reversal_for_partner(payment, ReversalReason::Timeout, None, Vec::new())
    }

    /// Repairs what a crashed instance left half done; safe on every instance, any time.
    pub async fn recover(
        &self,
        now: DateTime<Utc>,
    ) -> anyhow::Result<crate::store::RecoveryReport> {
        // A live forwarder records its answer within the partner's timeout of writing
        // FORWARDED; past that and this margin, nobody is coming back for the payment.
        let margin = chrono::Duration::seconds(2);
        let forwarded_before = now - span(self.settings().max_partner_timeout()) - margin;
        let matched_before = now - span(self.settings().timing.pay_deadline) - margin;
        let builder = |p: &PaymentRecord| self.recovery_reversal(p);
        let report = self
            .store
            .recover(now, forwarded_before, matched_before, &builder)
            .await?;
        if report.forwarded_made_unknown > 0 {
            self.outbox_wake.notify_one();
        }
        Ok(report)
    }
}

/// How the call went, for metrics: an approval the hub could not relay counts as unknown,
/// as the hub treats it.
fn pay_call_outcome(result: &CallResult, answer: PartnerAnswer) -> CallOutcome {
    match (result, answer) {
        (CallResult::NotSent { .. }, _) => CallOutcome::NotSent,
        (_, PartnerAnswer::Approved) => CallOutcome::Success,
        (_, PartnerAnswer::Declined) => CallOutcome::Failed,
        (_, PartnerAnswer::Unknown | PartnerAnswer::ApprovedOtherAmount) => CallOutcome::Unknown,
    }
}

/// The timeline's word for an approval relayed after repairs (kept short: it is a column).
fn repaired_outcome(answer: PartnerAnswer, repairs: &[Repair]) -> String {
    let listed: Vec<String> = repairs.iter().take(8).map(Repair::to_string).collect();
    let more = repairs.len().saturating_sub(listed.len());
    let mut text = format!(
        "{} (repaired: {})",
        format!("{answer:?}").to_uppercase(),
        listed.join(", ")
    );
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// Whether a 2xx body can be read as an approval: empty (the status alone approves what
/// was asked), or a JSON object that has something of a PaymentResponse, no `errorType`
/// and, if it names `amounts`, an object there. Anything else (a gateway's or captive
/// portal's HTML page, an envelope around the real answer, an ErrorDetail sent with 200)
/// may not come from the partner's payment at all, and is unknown: reversed.
fn recognisable(text: &[u8], json: Option<&serde_json::Value>) -> bool {
    match json {
        None => text.iter().all(u8::is_ascii_whitespace),
        Some(serde_json::Value::Object(map)) => {
            !map.contains_key("errorType")
                && map.get("amounts").is_none_or(serde_json::Value::is_object)
                && schema::PAYMENT_RESPONSE
                    .fields
                    .iter()
                    .any(|f| map.contains_key(f.name))
        }
        Some(_) => false,
    }
}

/// Writes `amounts.approvedAmount` from the echoed `requestAmount` when the approval left it
/// out, so the POS is not left to read an absent approved amount as zero.
fn state_approved_amount(repaired: &mut serde_json::Value) {
    let Some(amounts) = repaired
        .get_mut("amounts")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    if amounts.contains_key("approvedAmount") {
        return;
    }
    if let Some(asked) = amounts.get("requestAmount").cloned() {
        amounts.insert("approvedAmount".into(), asked);
    }
}

/// What the partner's answer to `pay` means.
struct PayInterpretation {
    answer: PartnerAnswer,
    status: Option<i32>,
    /// The body as the partner sent it, if it was JSON (for the timeline).
    raw_body: Option<serde_json::Value>,
    /// What the payment keeps: for an approval, a schema-valid PaymentResponse; otherwise
    /// the partner's body.
    body: Option<serde_json::Value>,
    repairs: Vec<Repair>,
    mismatch: Option<crate::domain::AmountMismatch>,
}

/// Reads the partner's answer to `pay` (`request` is the PaymentRequest the hub sent, and
/// `requested` its amount and currency, `terms` its code's). A 2xx is an approval whatever its body: the body is
/// repaired into a valid PaymentResponse, and the approval relayed only if it is for the
/// amount asked.
fn interpret_pay_answer(
    result: &CallResult,
    request: &serde_json::Value,
    requested: (i64, &str),
    terms: &CodeTerms,
) -> PayInterpretation {
    let nothing = |answer| PayInterpretation {
        answer,
        status: None,
        raw_body: None,
        body: None,
        repairs: Vec::new(),
        mismatch: None,
    };
    match result {
        CallResult::Answered {
            status,
            body,
            truncated,
            ..
        } => {
            // A byte-order mark is not JSON, but it is no reason to lose a sale either.
            let text = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
            let mut json: Option<serde_json::Value> = serde_json::from_slice(text).ok();
            // A card number the partner sent is masked, and NUL (which PostgreSQL cannot
            // keep) replaced, before anything keeps or relays it.
            if let Some(body) = json.as_mut() {
                crate::model::pan::mask_card_numbers(body);
                if crate::model::text::replace_nul(body) > 0 {
                    tracing::warn!("partner answered pay with NUL characters; replaced");
                }
            }
            let status_i32 = Some(i32::from(*status));
            let outcome = match classify_pay(*status) {
                Outcome::Success if *truncated || !recognisable(text, json.as_ref()) => {
                    tracing::warn!(
                        status,
                        truncated,
                        "partner answered pay 2xx with a body that is no payment response"
                    );
                    Outcome::Unknown
                }
                other => other,
            };
            match outcome {
                Outcome::Success => {
                    let (mut repaired, repairs) =
                        repair(json.as_ref(), &schema::PAYMENT_RESPONSE, request);
                    let mismatch = check_approved_amount(
                        requested.0,
                        requested.1,
                        terms,
                        json.as_ref(),
                        &repaired,
                    )
                    .err();
                    let answer = if mismatch.is_some() {
                        PartnerAnswer::ApprovedOtherAmount
                    } else {
                        // "Absent amounts have zero value": an approval that named no
                        // approved amount approved what was asked, and says so to the POS.
                        state_approved_amount(&mut repaired);
                        PartnerAnswer::Approved
                    };
                    PayInterpretation {
                        answer,
                        status: status_i32,
                        raw_body: json,
                        body: Some(repaired),
                        repairs,
                        mismatch,
                    }
                }
                outcome => PayInterpretation {
                    answer: if outcome == Outcome::Failed {
                        PartnerAnswer::Declined
                    } else {
                        PartnerAnswer::Unknown
                    },
                    status: status_i32,
                    raw_body: json.clone(),
                    body: json,
                    repairs: Vec::new(),
                    mismatch: None,
                },
            }
        }
        // Nothing reached the partner: a final failure, nothing to reverse.
        CallResult::NotSent { .. } => nothing(PartnerAnswer::Declined),
        CallResult::Unknown { .. } => nothing(PartnerAnswer::Unknown),
    }
}
