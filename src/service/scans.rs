//! notifyScan: claim the waiting payment of a tranId for the partner that scanned it.

use tokio::time::{sleep_until, Instant};

use std::sync::Arc;

use super::{Hub, HubError, HubResult, RefusalKind, Waiters};
use crate::domain::{
    decide_scan, PaymentState, Refusal, ScanDecision, DUPLICATE_SCAN_ID, NO_PAYMENT_WAITING,
};
use crate::model::{ErrorDetail, ErrorType, ScanNotification};
use crate::store::{event_kind, Direction, NewEvent, ScanClaim, ScanClaimOutcome};

impl Hub {
    /// Answers `Ok(())` (202) once the payment is claimed for this partner, or when this
    /// very scan already claimed it (a repeat).
    pub async fn notify_scan(
        self: &Arc<Self>,
        partner_id: &str,
        scan: &ScanNotification,
    ) -> HubResult<()> {
        let result = self.claim_scan(partner_id, scan).await;
        // A scan that claimed its payment is on the timeline already (with the claim).
        let outcome = match &result {
            Ok(true) => return Ok(()),
            Ok(false) => "REPEAT".to_owned(),
            Err(e) => super::timeline::refusal_summary(e).1,
        };
        let event = NewEvent::new(
            event_kind::SCAN,
            Direction::In,
            &scan.tran_id,
            partner_id,
            self.now(),
            outcome,
        )
        .message(&scan.id)
        .body(serde_json::to_value(scan).ok());
        self.record_events(vec![event]).await;
        result.map(|_| ())
    }

    /// `Ok(true)` when this call claimed the payment, `Ok(false)` for a repeat of the scan
    /// that did.
    async fn claim_scan(
        self: &Arc<Self>,
        partner_id: &str,
        scan: &ScanNotification,
    ) -> HubResult<bool> {
        let refuse = |error_type: ErrorType, message: &str| {
            HubError::refuse(
                RefusalKind::BadRequest,
                ErrorDetail::new(&scan.id, error_type, message).with_tran_id(&scan.tran_id),
            )
        };
        let refused = |r: Refusal| refuse(r.error_type, r.message);
        let now = self.now();
        // A scan that names an amount must name one its code admits, as a pay must: the
        // partner would otherwise charge the customer what the code did not show. Read only
        // for scans that carry amounts.
        if let Some(named) = scan
            .amounts
            .as_ref()
            .and_then(|a| a.request_amount.as_ref().or(a.approved_amount.as_ref()))
        {
            if let Some(code) = self.code(&scan.tran_id).await? {
                if let Err(why) = code.terms.admits(named.amount, &named.currency) {
                    return Err(refuse(ErrorType::InvalidAmount, why));
                }
            }
        }
        // An early scan (S3/P4) waits a little for its pay; a late one finds nothing.
        let grace_ends = Instant::now() + self.settings().timing.early_scan_grace;
        let key = Waiters::tran_key(&scan.tran_id);
        // This instance sends the pay as soon as its claim commits, so the claim itself says
        // FORWARDED: one commit and one row version less per flow than MATCHED then
        // FORWARDED, and no commit between the scan and the pay. (A partner missing from the
        // configuration cannot have scanned: its scan would not have been authenticated.
        // MATCHED stays for that case all the same, and forward() declines it.)
        let to = if self.settings().partner(partner_id).is_some() {
            PaymentState::Forwarded
        } else {
            PaymentState::Matched
        };
        let claim = ScanClaim {
            tran_id: scan.tran_id.clone(),
            partner_id: partner_id.to_owned(),
            scan_message_id: scan.id.clone(),
            partner_payment_token: scan.partner_payment_token.clone(),
            partner_message_id: uuid::Uuid::new_v4().to_string(),
            at: now,
            to,
            events: vec![NewEvent::new(
                event_kind::SCAN,
                Direction::In,
                &scan.tran_id,
                partner_id,
                now,
                "MATCHED",
            )
            .message(&scan.id)
            .body(serde_json::to_value(scan).ok())],
        };
        loop {
            let subscription = self.waiters.subscribe(key.clone());
            let notified = subscription.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Its pay is being stored here: claiming now would most likely find nothing.
            if self.recent.pay_being_stored(&scan.tran_id) && Instant::now() < grace_ends {
                tokio::select! {
                    _ = &mut notified => {}
                    _ = sleep_until(grace_ends) => {}
                }
                continue;
            }

            match self
                .store
                .claim_for_scan(&ScanClaim {
                    at: self.now(),
                    ..claim.clone()
                })
                .await?
            {
                ScanClaimOutcome::Claimed(payment) => {
                    crate::metrics::matched();
                    tracing::debug!(payment_id = %payment.id, tran_id = %payment.tran_id, partner = partner_id, "scan matched payment");
                    // Sent from here at once: no hop to the instance holding the pay, which
                    // the forwarder wakes with the partner's answer.
                    drop(self.spawn_forward(payment));
                    return Ok(true);
                }
                ScanClaimOutcome::NothingWaiting => {}
                ScanClaimOutcome::ScanIdInUse => return Err(refused(DUPLICATE_SCAN_ID)),
            }
            // Only a code the hub issued (and that is still valid) can have a waiting pay, so
            // the code is looked up only when there is none (with its newest payment, in one
            // read): off the hot path.
            let context = self.store.scan_context(&scan.tran_id).await?;
            let code_valid = context.as_ref().is_some_and(|c| c.code_expires_at > now);
            let latest = context.as_ref().and_then(|c| c.latest.as_ref());
            match decide_scan(code_valid, latest, partner_id, &scan.id) {
                ScanDecision::Repeat => return Ok(false),
                ScanDecision::Refuse(r) => return Err(refused(r)),
                ScanDecision::Wait => {}
            }
            if Instant::now() >= grace_ends {
                return Err(refused(NO_PAYMENT_WAITING));
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = sleep_until(grace_ends) => {}
            }
        }
    }
}
