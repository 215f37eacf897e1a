//! What a partner's HTTP status means: one table for the `pay` request, one for advices.
//!
//! The interface's outcome table ("Status type") classifies *requests*: 2xx success; 500, 504
//! and a timeout unknown; everything else failed. A request that fails is over. An advice is
//! different: the sender repeats it "until a final response" is received, so for an advice
//! the question is only whether this answer ends the repeating. DESIGN.md §3 has both tables
//! with the reasoning; the tests below pin them.

use std::time::Duration;

use crate::model::Operation;

/// What a partner's answer to `pay` means for the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The partner did not process the payment: nothing to reverse.
    Failed,
    /// The partner may or may not have acted, so whatever it may have done must be reversed.
    Unknown,
}

/// Classifies a partner's answer to `pay`.
///
/// - Any 2xx is an approval: the status decides, not the body (the interface's first rule).
/// - 500 and 504 are unknown, as the interface says; so are 502 and every other 5xx that does
///   not say the request was refused before processing (a gateway's 502, or a CDN's 520–524,
///   come back after the request may have reached the partner). Calling one of them "failed"
///   would leave a customer charged while the POS, told "declined", never reverses.
/// - 501 (not implemented) and 503 (unavailable) are explicit "not processed": failed.
/// - 302 and 303 are unknown: they are what Post/Redirect/Get answers *after* a POST was
///   processed, so the payment may have been taken.
/// - 1xx, other 3xx (301, 307, 308: "go elsewhere", answered instead of processing) and 4xx:
///   the partner did not process the payment at the address called (the hub never follows
///   redirects): failed.
pub fn classify_pay(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Success,
        501 | 503 => Outcome::Failed,
        302 | 303 | 500..=599 => Outcome::Unknown,
        _ => Outcome::Failed,
    }
}

/// What one delivery of an advice (a confirmation or a reversal) achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdviceAnswer {
    /// The partner has it: the repeating ends.
    Delivered,
    /// The partner read the message and refuses it: repeating it unchanged cannot help, so
    /// it ends, as an operator's open item.
    Refused,
    /// Not a final answer: try again later (no sooner than `retry_after`, if the partner
    /// said so).
    NotYet { retry_after: Option<Duration> },
}

/// Classifies a partner's answer to an advice. Final: 2xx; 404 to a reversal (the partner
/// never had the payment, so there is nothing to reverse); and explicit refusals of the
/// message itself: 400, 404 to a confirmation, 409, 410, 422, 501. Everything else is "not
/// yet": every other 5xx (502 and 503 included), 408, 425, 429, 3xx (the hub does not follow
/// redirects), 401 and 403 (the hub's own credentials are wrong: an operator fixes them,
/// and the advice must still arrive), and any other status, which the partner may not mean
/// as final.
///
/// A refusal whose ErrorDetail says the partner has the message already (`DUPLICATE_RECORD`,
/// an at-least-once repeat) is delivered; so is a reversal refused as
/// `UNABLE_TO_LOCATE_RECORD` (like a 404: nothing to reverse).
pub fn classify_advice(
    status: u16,
    operation: Operation,
    error_type: Option<&str>,
    retry_after: Option<Duration>,
) -> AdviceAnswer {
    match status {
        200..=299 => AdviceAnswer::Delivered,
        404 if operation == Operation::ReversePayment => AdviceAnswer::Delivered,
        400 | 409 if error_type == Some("DUPLICATE_RECORD") => AdviceAnswer::Delivered,
        400 if operation == Operation::ReversePayment
            && error_type == Some("UNABLE_TO_LOCATE_RECORD") =>
        {
            AdviceAnswer::Delivered
        }
        400 | 404 | 409 | 410 | 422 | 501 => AdviceAnswer::Refused,
        _ => AdviceAnswer::NotYet { retry_after },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pay_statuses_map_as_the_interface_says_and_unknown_covers_every_gateway_failure() {
        for status in [200, 201, 202, 203, 204, 299] {
            assert_eq!(classify_pay(status), Outcome::Success, "{status}");
        }
        for status in [302, 303, 500, 502, 504, 505, 520, 522, 524, 599] {
            assert_eq!(classify_pay(status), Outcome::Unknown, "{status}");
        }
        for status in [
            100, 301, 307, 308, 400, 401, 403, 404, 408, 409, 422, 429, 501, 503,
        ] {
            assert_eq!(classify_pay(status), Outcome::Failed, "{status}");
        }
    }

    #[test]
    fn an_advice_ends_only_on_a_final_answer() {
        use Operation::*;
        let not_yet = AdviceAnswer::NotYet { retry_after: None };
        for op in [ConfirmPayment, ReversePayment] {
            for status in [200, 201, 202, 204] {
                assert_eq!(
                    classify_advice(status, op, None, None),
                    AdviceAnswer::Delivered
                );
            }
            for status in [400, 409, 410, 422, 501] {
                assert_eq!(
                    classify_advice(status, op, None, None),
                    AdviceAnswer::Refused
                );
            }
            for status in [
                301, 302, 303, 307, 308, 401, 403, 408, 425, 429, 500, 502, 503, 504, 520, 418,
            ] {
                assert_eq!(classify_advice(status, op, None, None), not_yet, "{status}");
            }
        }
        assert_eq!(
            classify_advice(404, ReversePayment, None, None),
            AdviceAnswer::Delivered
        );
        assert_eq!(
            classify_advice(404, ConfirmPayment, None, None),
            AdviceAnswer::Refused
        );
    }

    #[test]
    fn a_refusal_that_says_the_partner_has_it_is_a_delivery() {
        use Operation::*;
        let dup = Some("DUPLICATE_RECORD");
        assert_eq!(
            classify_advice(400, ConfirmPayment, dup, None),
            AdviceAnswer::Delivered
        );
        assert_eq!(
            classify_advice(409, ReversePayment, dup, None),
            AdviceAnswer::Delivered
        );
        let unknown = Some("UNABLE_TO_LOCATE_RECORD");
        assert_eq!(
            classify_advice(400, ReversePayment, unknown, None),
            AdviceAnswer::Delivered
        );
        assert_eq!(
            classify_advice(400, ConfirmPayment, unknown, None),
            AdviceAnswer::Refused
        );
        assert_eq!(
            classify_advice(400, ConfirmPayment, Some("FORMAT_ERROR"), None),
            AdviceAnswer::Refused
        );
    }

    #[test]
    fn retry_after_rides_on_not_yet() {
        let wait = Some(Duration::from_secs(7));
        assert_eq!(
            classify_advice(429, Operation::ConfirmPayment, None, wait),
            AdviceAnswer::NotYet { retry_after: wait }
        );
        assert_eq!(
            classify_advice(202, Operation::ConfirmPayment, None, wait),
            AdviceAnswer::Delivered
        );
    }
}
