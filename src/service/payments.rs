//! pay: store the payment, hold the request until a scan claims it and the partner answers,
//! or the scan window closes.

use anyhow::{anyhow, Context};
use serde::Deserialize;
use std::sync::Arc;
use tokio::time::{sleep_until, Instant};
use uuid::Uuid;

use super::{span, Hub, HubError, HubResult, RefusalKind, Waiters};
use crate::domain::PaymentState;
use crate::model::{ErrorDetail, ErrorType, Institution, PaymentRequest, PaymentResponse};
use crate::store::{
    event_kind, AbandonedPay, Direction, NewEvent, NewPayment, NewPaymentOutcome, PaymentRecord,
};

/// The answer to a held `pay`.
pub type PayAnswer = HubResult<PaymentResponse>;

impl Hub {
    pub async fn pay(
        self: &Arc<Self>,
        client_id: &str,
        request: Box<PaymentRequest>,
        raw: serde_json::Value,
    ) -> PayAnswer {
        let started = Instant::now();
        let (message_id, tran_id) = (request.id.clone(), request.tran_id.clone());
        // Armed before the payment is stored: a scan may claim it, the partner answer and
        // the forwarder wake us before this task runs again, and that wake-up must count.
        let id = super::ids::new_id(self.now());
        let subscription = self.waiters.subscribe(Waiters::payment_key(id));
        let first_wake = subscription.notify.notified();
        tokio::pin!(first_wake);
        first_wake.as_mut().enable();
        // The request arrives boxed and storing runs in a box of its own (freed once it is
        // stored), and so does the wait after the first wake-up: this future is what a held
        // pay keeps for its whole hold, and inline they would make it several KiB.
        // From here until the answer, this future being dropped means the POS went away
        // (see `PosGone`), also while the payment is being stored.
        let mut pos_gone = PosGone::arm(self, id, client_id, &tran_id, &message_id);
        let stored = Box::pin(self.store_payment(id, client_id, *request, raw));
        let (payment_id, answer) = match stored.await {
            Ok(()) => {
                let _held = crate::metrics::HeldPay::start();
                let deadline = (started + self.settings().scan_window())
                    .min(started + self.settings().timing.pay_deadline);
                // Stored WAITING_FOR_SCAN just now: nothing to read before the first wake-up.
                tokio::select! {
                    _ = &mut first_wake => {}
                    _ = sleep_until(deadline) => {}
                }
                let answer =
                    Box::pin(self.await_outcome(id, started, client_id, &message_id, &tran_id))
                        .await;
                pos_gone.disarm();
                (Some(id), answer)
            }
            Err(refused) => {
                pos_gone.disarm();
                (None, Err(refused))
            }
        };
        // The answer to the POS on the timeline; a pay refused before it was stored also
        // gets its "received" there (a stored one got it with the payment).
        let now = self.now();
        let (status, outcome, body) = super::timeline::answer_summary(&answer, 201, "APPROVED");
        let mut events = Vec::with_capacity(2);
        if payment_id.is_none() {
            events.push(
                NewEvent::new(
                    event_kind::PAY,
                    Direction::In,
                    &tran_id,
                    client_id,
                    now,
                    &outcome,
                )
                .message(&message_id),
            );
        }
        let mut answered = NewEvent::new(
            event_kind::PAY_RESPONSE,
            Direction::Out,
            &tran_id,
            client_id,
            now,
            outcome,
        )
        .message(&message_id)
        .status(Some(status))
        .body(body);
        answered.payment_id = payment_id;
        events.push(answered);
        self.record_events(events).await;
        answer
    }

    /// Checks and stores the payment as `payment_id`, waiting for its scan.
    async fn store_payment(
        self: &Arc<Self>,
        payment_id: Uuid,
        client_id: &str,
        request: PaymentRequest,
        raw: serde_json::Value,
    ) -> HubResult<()> {
        let now = self.now();
        let id = request.id.as_str();
        let Some(amount) = request.amounts.request_amount.as_ref() else {
            return Err(super::qr_codes::format_error(
                id,
                "amounts.requestAmount",
                "amounts.requestAmount may not be null",
                "null",
            ));
        };
        if let Err(why) = crate::domain::check_amount(amount.amount) {
            return Err(HubError::bad_request(id, ErrorType::InvalidAmount, why));
        }
        let code = self
            .code(&request.tran_id)
            .await?
            // Another client's code is refused exactly like an unknown one: nothing is
            // revealed.
            .filter(|c| c.client_id == client_id && c.expires_at > now)
            .ok_or_else(|| {
                HubError::refuse(
                    RefusalKind::BadRequest,
                    ErrorDetail::new(id, ErrorType::InvalidTranId, "Unknown or expired tranId")
                        .with_tran_id(&request.tran_id),
                )
            })?;
        // The customer scans a code that shows an amount: a pay for another one would
        // charge them what they did not see.
        if let Err(why) = code.terms.admits(amount.amount, &amount.currency) {
            return Err(HubError::refuse(
                RefusalKind::BadRequest,
                ErrorDetail::new(id, ErrorType::InvalidAmount, why).with_tran_id(&request.tran_id),
            ));
        }
        let received = NewEvent::new(
            event_kind::PAY,
            Direction::In,
            &request.tran_id,
            client_id,
            now,
            "RECEIVED",
        )
        .payment(payment_id)
        .message(&request.id)
        .body(Some(raw.clone()));
        let payment = NewPayment {
            id: payment_id,
            client_id: client_id.to_owned(),
            message_id: request.id.clone(),
            tran_id: request.tran_id.clone(),
            amount_minor: amount.amount,
            currency: amount.currency.clone(),
            request: raw,
            created_at: now,
            scan_deadline: now + span(self.settings().scan_window()),
            events: vec![received],
            // An early scan may be waiting in its grace period for exactly this payment,
            // here or on another instance.
            wake: Some(Waiters::tran_key(&request.tran_id)),
        };
        // The insert runs to its end in a task of its own, even if this request is given up
        // meanwhile: then `PosGone` ends the payment, once the insert says it is stored.
        let storing = StoringPay::new(self, &payment.tran_id);
        let hub = Arc::clone(self);
        let (payment, stored) = self
            .tasks
            .spawn(async move {
                let stored = hub.store.insert_payment(&payment).await;
                drop(storing);
                (payment, stored)
            })
            .await
            .map_err(|e| HubError::Internal(anyhow::anyhow!("storing payment {id}: {e}")))?;
        match stored? {
            NewPaymentOutcome::Inserted => {}
            NewPaymentOutcome::DuplicateId => {
                return Err(HubError::bad_request(
                    id,
                    ErrorType::DuplicateRecord,
                    "Duplicate request id",
                ))
            }
            NewPaymentOutcome::TranIdInUse => {
                return Err(HubError::refuse(
                    RefusalKind::BadRequest,
                    ErrorDetail::new(
                        id,
                        ErrorType::DuplicateRecord,
                        "tranId already has a payment",
                    )
                    .with_tran_id(&request.tran_id),
                ))
            }
            NewPaymentOutcome::AlreadyReversed => {
                return Err(HubError::bad_request(
                    id,
                    ErrorType::AccountAlreadySettled,
                    "Payment was already reversed",
                ))
            }
        }
        tracing::debug!(payment_id = %payment.id, tran_id = %payment.tran_id, "payment waiting for scan");
        Ok(())
    }

    /// Holds the request until the payment has an answer. Each pass subscribes first, then
    /// reads the state, then sleeps until a wake-up or the next deadline. (The wait before
    /// the first pass is armed before the payment is stored: between storing it and
    /// subscribing, a scan may claim it and its forwarder wake nobody; a benchmark caught
    /// such a pay sleeping to the window's end.)
    async fn await_outcome(
        self: &Arc<Self>,
        id: Uuid,
        started: Instant,
        client_id: &str,
        message_id: &str,
        tran_id: &str,
    ) -> PayAnswer {
        let scan_deadline = started + self.settings().scan_window();
        let pay_deadline = started + self.settings().timing.pay_deadline;
        let key = Waiters::payment_key(id);
        loop {
            let subscription = self.waiters.subscribe(key.clone());
            let notified = subscription.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            // Answered by this instance's forwarder: as it committed it, with no read back.
            if let Some(answered) = self.recent.answered(client_id, message_id, id) {
                if let Some(answer) = self.answer_for(&answered) {
                    return answer;
                }
            }
            let payment = self.load(id).await?;
            if let Some(answer) = self.answer_for(&payment) {
                return answer;
            }
            if payment.state == PaymentState::Matched && Instant::now() >= scan_deadline {
                // The instance whose scan claimed it forwards at once; still MATCHED at the
                // window's end means that instance is gone: send it from here. The
                // compare-and-set to FORWARDED lets only one of us send.
                if let Some(answer) = self.forward_and_answer(payment, pay_deadline).await {
                    return answer;
                }
                continue;
            }
            let state = payment.state;
            let wake_at = match state {
                PaymentState::WaitingForScan if Instant::now() >= scan_deadline => {
                    let expired = self
                        .store
                        .transition(
                            id,
                            PaymentState::WaitingForScan,
                            PaymentState::Expired,
                            self.now(),
                        )
                        .await?;
                    if expired {
                        crate::metrics::scan_window_expired();
                        tracing::info!(payment_id = %id, "scan window closed without a scan");
                    }
                    // Either way the next pass reads the state that won.
                    continue;
                }
                PaymentState::WaitingForScan | PaymentState::Matched => scan_deadline,
                // With the partner: the forwarder's recorded answer wakes us, wherever it runs.
                _ => pay_deadline,
            };
            if Instant::now() >= pay_deadline {
                // No database read here: a hub this late is likely short of connections.
                return Err(unknown_in_time(id, message_id, tran_id));
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = sleep_until(wake_at.min(pay_deadline)) => {}
            }
        }
    }

    async fn load(&self, id: Uuid) -> HubResult<PaymentRecord> {
        Ok(self
            .store
            .payment(id)
            .await?
            .ok_or_else(|| anyhow!("payment {id} vanished while its pay was held"))?)
    }

    /// Forwards a matched payment in a task of its own (a POS that hangs up must not cancel
    /// a call to a partner half way) and answers from what it settled; `None` when someone
    /// else forwards it.
    async fn forward_and_answer(
        self: &Arc<Self>,
        payment: PaymentRecord,
        pay_deadline: Instant,
    ) -> Option<PayAnswer> {
        let id = payment.id;
        let forwarding = self.spawn_forward(payment);
        tokio::select! {
            joined = forwarding => match joined {
                Ok(Ok(Some(settled))) => Some(
                    self.answer_for(&settled)
                        .unwrap_or_else(|| Err(unknown_in_time(id, &settled.message_id, &settled.tran_id))),
                ),
                Ok(Ok(None)) => None,
                Ok(Err(e)) => Some(Err(HubError::Internal(e))),
                Err(e) => Some(Err(HubError::Internal(anyhow!("forwarding task failed: {e}")))),
            },
            // Only reachable if the partner call outlives its own timeout; the POS is told
            // the outcome is unknown and will reverse, which the hub absorbs.
            _ = sleep_until(pay_deadline) => Some(match self.load(id).await {
                Ok(p) => Err(unknown_in_time(id, &p.message_id, &p.tran_id)),
                Err(e) => Err(e),
            }),
        }
    }

    /// Starts forwarding in a task the shutdown waits for, detached from any request.
    pub(super) fn spawn_forward(
        self: &Arc<Self>,
        payment: PaymentRecord,
    ) -> tokio::task::JoinHandle<anyhow::Result<Option<PaymentRecord>>> {
        let hub = Arc::clone(self);
        self.tasks.spawn(async move { hub.forward(payment).await })
    }

    /// The POS's answer for a payment that has one, or `None` while it is still in play.
    fn answer_for(&self, payment: &PaymentRecord) -> Option<PayAnswer> {
        let id = payment.message_id.as_str();
        let tran_id = payment.tran_id.as_str();
        let refuse = |kind: RefusalKind, error_type: ErrorType, message: &str| {
            Some(Err(HubError::refuse(
                kind,
                ErrorDetail::new(id, error_type, message).with_tran_id(tran_id),
            )))
        };
        match payment.state {
            PaymentState::WaitingForScan | PaymentState::Matched | PaymentState::Forwarded => None,
            PaymentState::Approved | PaymentState::Confirmed => {
                Some(self.approved_response(payment).map_err(HubError::Internal))
            }
            PaymentState::Declined => Some(Err(self.relayed_decline(payment))),
            PaymentState::Unknown | PaymentState::Reversed if payment.amount_refused => refuse(
                RefusalKind::BadRequest,
                ErrorType::InvalidAmount,
                "Partner approved another amount",
            ),
            PaymentState::Unknown => refuse(
                RefusalKind::OutcomeUnknown,
                ErrorType::UpstreamUnavailable,
                "Partner outcome unknown; reversed",
            ),
            PaymentState::Expired => refuse(
                RefusalKind::BadRequest,
                ErrorType::NoScanReceived,
                "No scan received",
            ),
            PaymentState::Reversed => refuse(
                RefusalKind::BadRequest,
                ErrorType::AccountAlreadySettled,
                "Payment was reversed",
            ),
        }
    }

    /// The partner's PaymentResponse, put back in the POS's terms: its own message id and
    /// tranId, its originator and client, and the partner that processed it.
    fn approved_response(&self, payment: &PaymentRecord) -> anyhow::Result<PaymentResponse> {
        let body = payment
            .partner_response
            .clone()
            .context("approved payment has no partner response")?;
        let mut response: PaymentResponse = serde_json::from_value(body)
            .context("stored partner response is not a PaymentResponse")?;
        let request: PaymentRequest = PaymentRequest::deserialize(&payment.request)
            .context("stored POS request is not a PaymentRequest")?;
        // Every entity's identifiers come back: the POS's own and the hub's (as sent to the
        // partner), then any the partner added.
        let mut identifiers = request.third_party_identifiers;
        identifiers.push(self.hub_identifier(payment));
        for id in std::mem::take(&mut response.third_party_identifiers) {
            if !identifiers.contains(&id) {
                identifiers.push(id);
            }
        }
        response.third_party_identifiers = identifiers;
        response.id = request.id;
        response.tran_id = request.tran_id;
        response.originator = request.originator;
        response.client = request.client;
        let settings = self.settings();
        if let Some(partner) = payment
            .partner_id
            .as_deref()
            .and_then(|p| settings.partner(p))
        {
            if response.partner.id.is_empty() {
                response.partner = Institution {
                    id: partner.id.clone(),
                    name: partner.name.clone(),
                };
            }
        }
        Ok(response)
    }

    /// The partner's decline, in the statuses the interface declares for `pay` (400, 500,
    /// 503, 504): a refusal of the payment itself is relayed as 400 with the partner's
    /// ErrorDetail; a partner that did not process it (503, 501, 429, 408, 401/403, a
    /// redirect) is 503 UPSTREAM_UNAVAILABLE, final, nothing to reverse. The partner's own
    /// status and message go in `providerErrorCode`/`providerErrorMsg`.
    fn relayed_decline(&self, payment: &PaymentRecord) -> HubError {
        let id = payment.message_id.as_str();
        let Some(partner_status) = payment.partner_status.and_then(|s| u16::try_from(s).ok())
        else {
            return HubError::refuse(
                RefusalKind::PartnerUnavailable,
                ErrorDetail::new(id, ErrorType::UpstreamUnavailable, "Partner unreachable")
                    .with_tran_id(&payment.tran_id),
            );
        };
        let from_partner = payment
            .partner_response
            .clone()
            .and_then(|b| serde_json::from_value::<ErrorDetail>(b).ok());
        let partner_message = from_partner.as_ref().map(|d| d.error_message.clone());
        let (kind, mut detail) = match pay_decline_status(partner_status) {
            DeclineStatus::Refused => (
                RefusalKind::BadRequest,
                match from_partner {
                    // These describe the hub's message to the partner, not the POS's request:
                    // relayed as they are, they would tell the POS to fix what it cannot.
                    Some(d)
                        if matches!(
                            d.error_type,
                            ErrorType::FormatError
                                | ErrorType::DuplicateRecord
                                | ErrorType::RoutingError
                                | ErrorType::FunctionNotSupported
                        ) =>
                    {
                        ErrorDetail {
                            error_type: ErrorType::DeclinedByPartner,
                            error_message: "Declined by partner".into(),
                            detail_message: None,
                            ..d
                        }
                    }
                    Some(d) => d,
                    None => {
                        ErrorDetail::new(id, ErrorType::DeclinedByPartner, "Declined by partner")
                    }
                },
            ),
            DeclineStatus::NotProcessed => (
                RefusalKind::PartnerUnavailable,
                ErrorDetail::new(
                    id,
                    ErrorType::UpstreamUnavailable,
                    "Partner did not process the payment",
                ),
            ),
        };
        detail.id = id.to_owned();
        detail.original_id = None;
        detail.tran_id = Some(payment.tran_id.clone());
        // ErrorDetail.errorMessage is at most 40 characters.
        detail.error_message = detail.error_message.chars().take(40).collect();
        if partner_status != 400 || detail.provider_error_code.is_none() {
            detail.provider_error_code = Some(partner_status.to_string());
        }
        if detail.provider_error_msg.is_none() {
            detail.provider_error_msg = partner_message;
        }
        // The published ErrorDetail's detailMessage is an object; a partner's string or list
        // goes to providerErrorMsg instead.
        if let Some(other) = detail.detail_message.take() {
            if other.is_object() {
                detail.detail_message = Some(other);
            } else if detail.provider_error_msg.is_none() {
                detail.provider_error_msg = Some(match other {
                    serde_json::Value::String(text) => text,
                    other => other.to_string(),
                });
            }
        }
        HubError::refuse(kind, detail)
    }
}

enum DeclineStatus {
    /// The partner read the payment and refused it (4xx other than those below).
    Refused,
    /// The partner did not process it: the POS may try again later, nothing to reverse.
    NotProcessed,
}

/// A 404 is usually a wrong route (a base URL or a gateway missing the path), not a verdict
/// on the payment: the POS gets 503 like for the other "not processed" answers.
fn pay_decline_status(status: u16) -> DeclineStatus {
    match status {
        401 | 403 | 404 | 408 | 425 | 429 | 501 | 503 => DeclineStatus::NotProcessed,
        400..=499 => DeclineStatus::Refused,
        _ => DeclineStatus::NotProcessed,
    }
}

/// What a held pay's POS leaves behind if it goes away: while armed, dropping this ends the
/// payment unless a scan claimed it first.
///
/// hyper drops a request's future when its connection closes (HTTP/1) or its stream is reset
/// (HTTP/2), and the request timeout drops it at its limit; nothing else tells the hub that
/// nobody will take the answer. Left waiting, the payment would still be claimed by a scan,
/// sent to the partner and approved, and the customer charged for goods the POS never
/// released. The ending cannot be awaited here (the future is being dropped), so it is
/// spawned; its compare-and-set races a scan's claim, wherever that runs, and one wins.
struct PosGone {
    hub: Arc<Hub>,
    /// The payment and what its timeline event needs; `None` once the pay is answered.
    /// Boxed: a held pay keeps this for its whole hold.
    armed: Option<Box<Abandon>>,
}

#[derive(Debug)]
struct Abandon {
    payment_id: Uuid,
    client_id: String,
    tran_id: String,
    message_id: String,
}

impl PosGone {
    fn arm(
        hub: &Arc<Hub>,
        payment_id: Uuid,
        client_id: &str,
        tran_id: &str,
        message_id: &str,
    ) -> Self {
        Self {
            hub: Arc::clone(hub),
            armed: Some(Box::new(Abandon {
                payment_id,
                client_id: client_id.to_owned(),
                tran_id: tran_id.to_owned(),
                message_id: message_id.to_owned(),
            })),
        }
    }

    /// The pay has its answer: the POS is there to take it.
    fn disarm(&mut self) {
        self.armed = None;
    }
}

impl Drop for PosGone {
    fn drop(&mut self) {
        let Some(abandon) = self.armed.take() else {
            return;
        };
        // Dropped by hyper or the timeout, so on a runtime thread; a drop anywhere else
        // (a runtime tearing down) leaves the payment to its scan window's end.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(payment_id = %abandon.payment_id, "POS went away with no runtime to record it; the scan window will end the payment");
            return;
        };
        let hub = Arc::clone(&self.hub);
        // On the tracker, so a shutdown waits for the write like it waits for forwarding.
        self.hub
            .tasks
            .spawn_on(async move { hub.abandon(*abandon).await }, &runtime);
    }
}

impl Hub {
    /// WAITING_FOR_SCAN → EXPIRED for a pay whose POS went away, unless a scan claimed it
    /// first (then the flow carries on: the partner's answer is recorded for an advice or the
    /// back office, see the unadvised approvals).
    async fn abandon(self: Arc<Self>, abandon: Abandon) {
        let Abandon {
            payment_id,
            client_id,
            tran_id,
            message_id,
        } = abandon;
        // The POS may have gone while its payment was being stored: end it once it is.
        self.until_pays_stored(&tran_id).await;
        // A store that fails now would leave the payment open to a scan until its window
        // closes: a few quick tries before giving up on it.
        for attempt in 1..=3u32 {
            let at = self.now();
            let abandoned = AbandonedPay {
                payment_id,
                at,
                events: vec![NewEvent::new(
                    event_kind::POS_GONE,
                    Direction::In,
                    &tran_id,
                    &client_id,
                    at,
                    "POS_WENT_AWAY",
                )
                .payment(payment_id)
                .message(&message_id)],
            };
            match self.store.abandon_waiting(&abandoned).await {
                Ok(true) => {
                    crate::metrics::pos_gone_before_scan();
                    tracing::info!(payment_id = %payment_id, tran_id = %tran_id, client = %client_id, "POS went away before a scan; payment ended, nothing sent");
                    return;
                }
                Ok(false) => {
                    tracing::info!(payment_id = %payment_id, tran_id = %tran_id, client = %client_id, "POS went away after its payment left WAITING_FOR_SCAN; carrying on");
                    return;
                }
                Err(e) => {
                    tracing::error!(payment_id = %payment_id, attempt, error = %e, "could not end the payment of a POS that went away");
                    tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt)))
                        .await;
                }
            }
        }
    }
}

/// 504: the hub could not learn the partner's answer before its own deadline.
fn unknown_in_time(id: Uuid, message_id: &str, tran_id: &str) -> HubError {
    tracing::warn!(payment_id = %id, "pay deadline reached before the partner's answer");
    HubError::refuse(
        RefusalKind::OutcomeUnknown,
        ErrorDetail::new(
            message_id,
            ErrorType::UpstreamUnavailable,
            "Partner did not answer in time",
        )
        .with_tran_id(tran_id),
    )
}

/// A pay being stored, for scans of its tranId and for the ending of a pay whose POS went
/// away to wait for (`recent.rs`); when it is dropped (stored, refused or failed), they are
/// woken to claim it or to find out why not.
struct StoringPay {
    hub: Arc<Hub>,
    tran_id: String,
}

impl StoringPay {
    fn new(hub: &Arc<Hub>, tran_id: &str) -> Self {
        hub.recent.storing_pay(tran_id);
        Self {
            hub: Arc::clone(hub),
            tran_id: tran_id.to_owned(),
        }
    }
}

impl Drop for StoringPay {
    fn drop(&mut self) {
        self.hub.recent.stored_pay(&self.tran_id);
        self.hub.waiters.wake(&Waiters::tran_key(&self.tran_id));
    }
}

impl Hub {
    /// Returns once no pay of `tran_id` is being stored by this instance (or after a while,
    /// should one hang: its insert fails by then at the pool's timeout).
    async fn until_pays_stored(&self, tran_id: &str) {
        let key = Waiters::tran_key(tran_id);
        let give_up = Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let subscription = self.waiters.subscribe(key.clone());
            let notified = subscription.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.recent.pay_being_stored(tran_id) || Instant::now() >= give_up {
                return;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = sleep_until(give_up) => {}
            }
        }
    }
}
