/// What the interface says a status code means (protocol basics, "Status type").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failed,
    /// 500, 504, a timeout or a connection lost after the request went out: the partner may
    /// or may not have acted, so whatever it may have done must be reversed.
    Unknown,
}

/// Which of the partner's operations answered: 404 means different things to each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartnerOperation {
    Pay,
    Confirm,
    Reverse,
}

/// Classifies a partner's HTTP status. 404 on a reversal is a success (the partner never saw
/// the payment, so there is nothing to reverse); on a confirmation it is a failure.
pub fn classify(status: u16, operation: PartnerOperation) -> Outcome {
    match status {
        200..=202 => Outcome::Success,
        404 if operation == PartnerOperation::Reverse => Outcome::Success,
        500 | 504 => Outcome::Unknown,
        _ => Outcome::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_map_as_the_interface_says() {
        use PartnerOperation::*;
        for op in [Pay, Confirm, Reverse] {
            assert_eq!(classify(201, op), Outcome::Success);
            assert_eq!(classify(202, op), Outcome::Success);
            assert_eq!(classify(500, op), Outcome::Unknown);
            assert_eq!(classify(504, op), Outcome::Unknown);
            assert_eq!(classify(400, op), Outcome::Failed);
            assert_eq!(classify(503, op), Outcome::Failed);
            assert_eq!(classify(501, op), Outcome::Failed);
        }
        assert_eq!(classify(404, Reverse), Outcome::Success);
        assert_eq!(classify(404, Confirm), Outcome::Failed);
        assert_eq!(classify(404, Pay), Outcome::Failed);
    }
}
