//! What each side saw, as plain data: the POS's record of every flow, and the hub's
//! payments and outbox as read at the end. The checker's input.

use serde::Serialize;
use uuid::Uuid;

use super::faults::FlowPlan;
use crate::domain::{AdviceKind, PaymentState};
use crate::store::{OutboxMessage, OutboxState, PaymentRecord};

/// The institution id the POS puts in its advices' ThirdPartyIdentifiers, so that a
/// reversal it sent can be told from one the hub made.
pub(crate) const POS_INSTITUTION: &str = "chaos-pos";

/// One flow that got a tranId, as the POS saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PosFlow {
    pub plan: FlowPlan,
    pub tran_id: String,
    /// The POS's pay message id (the `requestId` of its advices).
    pub pay_id: String,
    pub pay: PosPay,
    /// With an approval: the LedgerAmount the hub's 201 approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_amount: Option<serde_json::Value>,
    /// The scan was accepted (202) by a hub.
    pub scanned: bool,
    pub advice: Option<PosAdvice>,
}

/// The hub's answer to the pay, as the POS classifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub(crate) enum PosPay {
    /// No hub could be reached: the pay never left the POS.
    NotSent,
    /// 201.
    Approved,
    /// The partner's decline, relayed (400 INSUFFICIENT_FUNDS).
    Declined,
    /// 500, 504, a timeout or a lost connection: the POS must reverse.
    Unknown {
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        why: String,
    },
    /// Any other final answer (NO_SCAN_RECEIVED, 503 UPSTREAM_UNAVAILABLE, ...).
    Refused {
        status: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_type: Option<String>,
    },
    /// The POS dropped its held pay after `after_ms`, with no answer (it went away).
    HungUp { after_ms: u64 },
}

/// The advice the POS sent, retried until a final answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PosAdvice {
    #[serde(serialize_with = "kind_name")]
    pub kind: AdviceKind,
    pub id: String,
    /// CANCELLED (the POS's choice) or TIMEOUT (after an unknown outcome).
    pub reason: Option<String>,
    pub answer: AdviceAnswer,
    pub tries: u32,
}

fn kind_name<S: serde::Serializer>(k: &AdviceKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.as_str())
}

/// The final answer to an advice (or the lack of one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub(crate) enum AdviceAnswer {
    /// 202.
    Accepted,
    /// 404: the hub never saw the payment (a reversal only).
    NotFound,
    /// Another final answer, e.g. 400 ACCOUNT_ALREADY_SETTLED.
    Refused {
        status: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_type: Option<String>,
    },
    /// No final answer within the POS's patience (a hub availability problem).
    Unsettled { last: String },
}

/// A payment as the hub stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HubPayment {
    pub id: Uuid,
    pub tran_id: String,
    pub message_id: String,
    pub state: PaymentState,
    /// The hub saw its POS go away before any scan and ended it.
    pub pos_gone: bool,
    /// The back office lists it as an approval nobody advised.
    pub unadvised: bool,
}

impl From<&PaymentRecord> for HubPayment {
    fn from(p: &PaymentRecord) -> Self {
        Self {
            id: p.id,
            tran_id: p.tran_id.clone(),
            message_id: p.message_id.clone(),
            state: p.state,
            pos_gone: p.pos_gone_at.is_some(),
            unadvised: false,
        }
    }
}

/// Who a reversal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ReversalOrigin {
    /// The POS cancelled an approved payment.
    PosCancelled,
    /// The POS reversed after an unknown outcome (the hub had approved it).
    PosAfterUnknown,
    /// The hub's own: an unknown partner outcome, or recovery after a crash.
    Hub,
}

impl ReversalOrigin {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::PosCancelled => "pos-cancelled",
            Self::PosAfterUnknown => "pos-after-unknown",
            Self::Hub => "hub",
        }
    }
}

/// An outbox row as read at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HubAdvice {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub kind: AdviceKind,
    /// The advice's id toward the partner.
    pub message_id: String,
    pub tran_id: Option<String>,
    pub state: OutboxState,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// For reversals.
    pub origin: Option<ReversalOrigin>,
}

impl From<&OutboxMessage> for HubAdvice {
    fn from(m: &OutboxMessage) -> Self {
        let origin = (m.kind == AdviceKind::Reversal).then(|| {
            let from_pos = m
                .body
                .get("thirdPartyIdentifiers")
                .and_then(|v| v.as_array())
                .is_some_and(|ids| {
                    ids.iter().any(|i| {
                        i.get("institutionId").and_then(|v| v.as_str()) == Some(POS_INSTITUTION)
                    })
                });
            let reason = m.body.get("reversalReason").and_then(|v| v.as_str());
            match (from_pos, reason) {
                (true, Some("CANCELLED")) => ReversalOrigin::PosCancelled,
                (true, _) => ReversalOrigin::PosAfterUnknown,
                (false, _) => ReversalOrigin::Hub,
            }
        });
        Self {
            id: m.id,
            payment_id: m.payment_id,
            kind: m.kind,
            message_id: m.message_id.clone(),
            tran_id: m
                .body
                .get("tranId")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            state: m.state,
            attempts: m.attempts,
            last_error: m.last_error.clone(),
            origin,
        }
    }
}
