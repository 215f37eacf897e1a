//! What the hub told the POS about one flow: the input of the end-of-run check.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::plan::Fate;

/// One flow that got a tranId, as the POS saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowRecord {
    pub tran_id: String,
    /// The POS's pay message id (the `requestId` of its advices).
    pub pay_id: String,
    /// What the flow was meant to end as.
    pub fate: Fate,
    pub pay: PayOutcome,
    pub advice: AdviceSent,
    /// Wall-clock time just before the scan that the hub accepted was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan_sent_at: Option<DateTime<Utc>>,
}

/// The hub's answer to the pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum PayOutcome {
    /// Never sent (the flow failed before it).
    NotSent,
    /// 201.
    Approved,
    /// The scripted decline, relayed from the partner.
    Declined { status: u16 },
    /// Any other status, or none (`status` absent: a transport error).
    Failed { status: Option<u16> },
}

/// The advice the POS sent after an approval, as far as the hub accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AdviceSent {
    /// None sent.
    None,
    /// A confirmation the hub answered 202.
    Confirmed,
    /// A reversal the hub answered 202.
    Reversed,
    /// Sent, but the hub's answer was not 202 or never came: it may or may not have been
    /// taken.
    Unknown,
}
