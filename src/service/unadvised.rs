//! Approvals nobody advises: payments the partner APPROVED that their POS neither confirmed
//! nor reversed. The usual cause is a POS that went away while the partner had the payment
//! (the customer is charged; whether the goods left the shop only the POS knows). The sweep
//! counts them for alerting, and past `unadvised.act_after` applies each client's policy.

use chrono::{DateTime, Utc};
use std::sync::Arc;

use super::{span, Hub};
use crate::config::UnadvisedPolicy;
use crate::domain::PaymentState;
use crate::model::ReversalReason;
use crate::store::{event_kind, Direction, NewEvent, PaymentRecord, StateChange};

/// Payments one sweep acts on per client: the rest wait for the next sweep, a second later.
const BATCH: i64 = 100;

impl Hub {
    /// One pass: the gauges, then the reversals that clients with policy `reverse` asked for.
    pub(super) async fn sweep_unadvised(
        self: &Arc<Self>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let listed_before = now - span(self.settings().unadvised.listed_after);
        let stats = self.store.unadvised_stats(listed_before).await?;
        crate::metrics::unadvised_stats(&stats, now);
        let act_before = now - span(self.settings().unadvised.act_after);
        for client in &self.settings().clients {
            if client.unadvised_approvals != UnadvisedPolicy::Reverse {
                continue;
            }
            let due = self
                .store
                .unadvised_approvals(act_before, Some(&client.id), BATCH)
                .await?;
            for payment in due {
                self.reverse_unadvised(&payment).await?;
            }
        }
        Ok(())
    }

    /// APPROVED → REVERSED with the hub's own reversal (reason TIMEOUT: the POS's advice did
    /// not come in time) queued for the partner, in one compare-and-set: a confirmation or
    /// reversal from the POS landing at the same moment, or another instance's sweep, wins
    /// or loses whole.
    async fn reverse_unadvised(self: &Arc<Self>, payment: &PaymentRecord) -> anyhow::Result<()> {
        let mut reversal =
            self.reversal_for_partner(payment, ReversalReason::Timeout, None, Vec::new());
        let slot = self.lease_first_try(&mut reversal);
        let at = self.now();
        let age = (at - payment.updated_at).num_seconds();
        let event = NewEvent::new(
            event_kind::UNADVISED_REVERSAL,
            Direction::Out,
            &payment.tran_id,
            payment.partner_id.as_deref().unwrap_or_default(),
            at,
            format!("QUEUED: no advice from the POS {age} s after the approval"),
        )
        .payment(payment.id)
        .message(&reversal.message_id)
        .body(Some(reversal.body.clone()));
        let change = StateChange {
            payment_id: payment.id,
            from: PaymentState::Approved,
            to: PaymentState::Reversed,
            at,
            outbox: Some(reversal),
            events: vec![event],
        };
        if self.store.change_state(&change).await? {
            if let Some(reversal) = &change.outbox {
                self.start_first_try(reversal, slot);
            }
            crate::metrics::unadvised_reversed();
            tracing::warn!(payment_id = %payment.id, client = %payment.client_id, tran_id = %payment.tran_id, age_seconds = age, "approval nobody advised: the hub reversed it at the partner");
        }
        Ok(())
    }
}
