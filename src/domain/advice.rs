use super::PaymentState;
use crate::model::ErrorType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdviceKind {
    Confirmation,
    Reversal,
}

impl AdviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmation => "CONFIRMATION",
            Self::Reversal => "REVERSAL",
        }
    }

    /// The partner's operation that takes this advice.
    pub fn operation(self) -> crate::model::Operation {
        match self {
            Self::Confirmation => crate::model::Operation::ConfirmPayment,
            Self::Reversal => crate::model::Operation::ReversePayment,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CONFIRMATION" => Some(Self::Confirmation),
            "REVERSAL" => Some(Self::Reversal),
            _ => None,
        }
    }
}

/// Why an advice (or a scan) is refused: the request is not allowed in the payment's state,
/// so the caller gets a bad request with this ErrorDetail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub error_type: ErrorType,
    pub message: &'static str,
}

/// What an advice from the POS does to a payment in a given state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdviceDecision {
    /// Move the payment and, if `send_to_partner`, queue the advice toward the partner.
    Apply {
        to: PaymentState,
        send_to_partner: bool,
    },
    /// The payment is still with the partner: remember the reversal and let the partner's
    /// answer settle it (`settle_partner_answer`).
    MarkReversedByPos,
    /// Accept with 202 and change nothing: the advice is already in effect, or there is
    /// nothing at the partner to act on.
    Absorb,
    Refuse(Refusal),
}

const ALREADY_SETTLED: Refusal = Refusal {
    error_type: ErrorType::AccountAlreadySettled,
    message: "Payment already settled",
};

/// The advice rules of DESIGN.md §3 for one payment's current state.
pub fn decide_advice(kind: AdviceKind, state: PaymentState) -> AdviceDecision {
    use AdviceDecision::*;
    use PaymentState::*;
    match (kind, state) {
        (AdviceKind::Confirmation, Approved) => Apply {
            to: Confirmed,
            send_to_partner: true,
        },
        (AdviceKind::Confirmation, Confirmed) => Absorb,
        // The hub reversed it (outcome unknown) or the POS did: it can never be confirmed.
        (AdviceKind::Confirmation, Reversed | Unknown) => Refuse(ALREADY_SETTLED),
        (AdviceKind::Confirmation, Declined | Expired) => Refuse(Refusal {
            error_type: ErrorType::AccountAlreadySettled,
            message: "Payment was not approved",
        }),
        (AdviceKind::Confirmation, WaitingForScan | Matched | Forwarded) => Refuse(Refusal {
            error_type: ErrorType::TransactionNotSupported,
            message: "Payment has not been answered yet",
        }),
        (AdviceKind::Reversal, Approved) => Apply {
            to: Reversed,
            send_to_partner: true,
        },
        // The hub already queued its own reversal when the outcome became unknown.
        (AdviceKind::Reversal, Unknown) => Apply {
            to: Reversed,
            send_to_partner: false,
        },
        // Nothing was sent to a partner yet: cancel the wait.
        (AdviceKind::Reversal, WaitingForScan) => Apply {
            to: Reversed,
            send_to_partner: false,
        },
        (AdviceKind::Reversal, Matched | Forwarded) => MarkReversedByPos,
        (AdviceKind::Reversal, Reversed | Declined | Expired) => Absorb,
        (AdviceKind::Reversal, Confirmed) => Refuse(ALREADY_SETTLED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_applied_advice_is_a_legal_move() {
        for kind in [AdviceKind::Confirmation, AdviceKind::Reversal] {
            for state in PaymentState::ALL {
                if let AdviceDecision::Apply { to, .. } = decide_advice(kind, state) {
                    assert!(state.can_move_to(to), "{kind:?} on {state}");
                }
            }
        }
    }

    #[test]
    fn settled_payments_refuse_the_opposite_advice() {
        assert_eq!(
            decide_advice(AdviceKind::Confirmation, PaymentState::Reversed),
            AdviceDecision::Refuse(ALREADY_SETTLED)
        );
        assert_eq!(
            decide_advice(AdviceKind::Reversal, PaymentState::Confirmed),
            AdviceDecision::Refuse(ALREADY_SETTLED)
        );
    }

    #[test]
    fn nothing_is_sent_for_a_payment_the_partner_never_approved() {
        for state in [
            PaymentState::Declined,
            PaymentState::Expired,
            PaymentState::WaitingForScan,
            PaymentState::Unknown,
        ] {
            match decide_advice(AdviceKind::Reversal, state) {
                AdviceDecision::Apply {
                    send_to_partner, ..
                } => assert!(!send_to_partner, "{state}"),
                AdviceDecision::Absorb => {}
                other => panic!("{state}: {other:?}"),
            }
        }
    }
}
