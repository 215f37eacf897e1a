//! What a scan gets when it found no payment of its tranId waiting to be claimed: the scan
//! rules of DESIGN.md §3, decided from what the store knows of the tranId.

use super::{PaymentState, Refusal};
use crate::model::ErrorType;

/// The newest payment of a tranId, as far as a scan cares.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestPayment {
    pub state: PaymentState,
    pub partner_id: Option<String>,
    pub scan_message_id: Option<String>,
    /// Its POS went away before any scan claimed it (`PaymentStore::abandon_waiting`).
    pub pos_gone: bool,
}

/// What a scan that claimed nothing gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanDecision {
    /// This very scan (same partner, same scan id) claimed the newest payment: 202 again.
    Repeat,
    /// Refused at once.
    Refuse(Refusal),
    /// An early scan: it waits for its pay until the grace ends, then gets
    /// [`NO_PAYMENT_WAITING`].
    Wait,
}

const fn refusal(error_type: ErrorType, message: &'static str) -> Refusal {
    Refusal {
        error_type,
        message,
    }
}

/// A scan id the partner already used for another tranId's scan.
pub const DUPLICATE_SCAN_ID: Refusal = refusal(ErrorType::DuplicateRecord, "Duplicate scan id");
/// The grace of an early scan ended with no pay.
pub const NO_PAYMENT_WAITING: Refusal = refusal(
    ErrorType::UnableToLocateRecord,
    "No payment waiting for this tranId",
);

/// The scan rules for a scan by `partner_id` with id `scan_id` that found no waiting payment:
/// `code_valid` is whether the hub issued the tranId's code and it has not expired, `latest`
/// the tranId's newest payment.
pub fn decide_scan(
    code_valid: bool,
    latest: Option<&LatestPayment>,
    partner_id: &str,
    scan_id: &str,
) -> ScanDecision {
    if !code_valid {
        return ScanDecision::Refuse(refusal(
            ErrorType::InvalidTranId,
            "Unknown or expired tranId",
        ));
    }
    let Some(latest) = latest else {
        return ScanDecision::Wait;
    };
    // Its POS went away before any scan: nobody would take the partner's answer, so nothing
    // is sent, and the customer is told at once (not after the grace).
    if latest.pos_gone && latest.state == PaymentState::Expired {
        return ScanDecision::Refuse(refusal(
            ErrorType::UnableToLocateRecord,
            "The POS went away before the scan",
        ));
    }
    if latest.partner_id.as_deref() == Some(partner_id)
        && latest.scan_message_id.as_deref() == Some(scan_id)
    {
        return ScanDecision::Repeat;
    }
    if latest.partner_id.is_some() && latest.state.partner_was_asked_or_matched() {
        return ScanDecision::Refuse(refusal(ErrorType::DuplicateRecord, "Already scanned"));
    }
    ScanDecision::Wait
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latest(state: PaymentState, partner: Option<&str>, scan: Option<&str>) -> LatestPayment {
        LatestPayment {
            state,
            partner_id: partner.map(str::to_owned),
            scan_message_id: scan.map(str::to_owned),
            pos_gone: false,
        }
    }

    fn refused_as(decision: ScanDecision) -> Option<ErrorType> {
        match decision {
            ScanDecision::Refuse(r) => Some(r.error_type),
            _ => None,
        }
    }

    #[test]
    fn an_unknown_or_expired_code_is_refused_before_anything_else() {
        let taken = latest(PaymentState::Approved, Some("w"), Some("s"));
        assert_eq!(
            refused_as(decide_scan(false, Some(&taken), "w", "s")),
            Some(ErrorType::InvalidTranId)
        );
    }

    #[test]
    fn a_repeat_of_the_claiming_scan_is_answered_again_and_another_scan_is_a_duplicate() {
        for state in [
            PaymentState::Matched,
            PaymentState::Forwarded,
            PaymentState::Approved,
        ] {
            let taken = latest(state, Some("w"), Some("s"));
            assert_eq!(
                decide_scan(true, Some(&taken), "w", "s"),
                ScanDecision::Repeat
            );
            assert_eq!(
                refused_as(decide_scan(true, Some(&taken), "w", "other")),
                Some(ErrorType::DuplicateRecord)
            );
            assert_eq!(
                refused_as(decide_scan(true, Some(&taken), "other-wallet", "s")),
                Some(ErrorType::DuplicateRecord)
            );
        }
    }

    #[test]
    fn a_scan_whose_pos_went_away_is_refused_at_once_and_an_early_one_waits() {
        let gone = LatestPayment {
            pos_gone: true,
            ..latest(PaymentState::Expired, None, None)
        };
        assert_eq!(
            refused_as(decide_scan(true, Some(&gone), "w", "s")),
            Some(ErrorType::UnableToLocateRecord)
        );
        assert_eq!(decide_scan(true, None, "w", "s"), ScanDecision::Wait);
        let declined = latest(PaymentState::Declined, None, None);
        assert_eq!(
            decide_scan(true, Some(&declined), "w", "s"),
            ScanDecision::Wait
        );
    }
}
