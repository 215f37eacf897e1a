use std::fmt;
use std::str::FromStr;

/// Where one payment is. See DESIGN.md §5.
///
/// ```text
/// WAITING_FOR_SCAN → MATCHED → FORWARDED → APPROVED | DECLINED | UNKNOWN
/// APPROVED → CONFIRMED | REVERSED;  UNKNOWN → REVERSED
/// WAITING_FOR_SCAN → EXPIRED | REVERSED (the POS gave up first)
/// MATCHED → DECLINED (the hub stopped before anything was sent)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentState {
    WaitingForScan,
    Matched,
    Forwarded,
    Approved,
    Declined,
    Unknown,
    Confirmed,
    Reversed,
    Expired,
}

impl PaymentState {
    pub const ALL: [PaymentState; 9] = [
        Self::WaitingForScan,
        Self::Matched,
        Self::Forwarded,
        Self::Approved,
        Self::Declined,
        Self::Unknown,
        Self::Confirmed,
        Self::Reversed,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WaitingForScan => "WAITING_FOR_SCAN",
            Self::Matched => "MATCHED",
            Self::Forwarded => "FORWARDED",
            Self::Approved => "APPROVED",
            Self::Declined => "DECLINED",
            Self::Unknown => "UNKNOWN",
            Self::Confirmed => "CONFIRMED",
            Self::Reversed => "REVERSED",
            Self::Expired => "EXPIRED",
        }
    }

    /// Whether `self → to` is a legal move. Every store transition is checked against this.
    pub fn can_move_to(self, to: PaymentState) -> bool {
        use PaymentState::*;
        matches!(
            (self, to),
            // Straight to FORWARDED: a scan claimed by the instance that sends the pay at
            // once (DESIGN.md §5).
            (WaitingForScan, Matched | Forwarded | Expired | Reversed)
                | (Matched, Forwarded | Declined)
                | (Forwarded, Approved | Declined | Unknown | Reversed)
                | (Approved, Confirmed | Reversed)
                | (Unknown, Reversed)
        )
    }

    /// Whether the partner has been (or may have been) asked to pay.
    pub fn partner_was_asked(self) -> bool {
        use PaymentState::*;
        matches!(
            self,
            Forwarded | Approved | Declined | Unknown | Confirmed | Reversed
        )
    }

    /// A scan has claimed the payment (whatever became of it since).
    pub fn partner_was_asked_or_matched(self) -> bool {
        self == Self::Matched || self.partner_was_asked()
    }

    /// The `pay` request has its answer: nothing more will happen before an advice.
    pub fn pay_is_answered(self) -> bool {
        use PaymentState::*;
        matches!(
            self,
            Approved | Declined | Unknown | Confirmed | Reversed | Expired
        )
    }
}

impl fmt::Display for PaymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PaymentState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown payment state {s:?}"))
    }
}

/// How the partner answered the forwarded `pay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartnerAnswer {
    Approved,
    /// A 2xx for another amount or currency than the POS asked for: not relayed as an
    /// approval; the hub reverses it at the partner and declines the POS. The payment is
    /// UNKNOWN meanwhile, like any payment whose money may be at the partner, so its code
    /// takes no other payment (a second scan would charge the customer twice).
    ApprovedOtherAmount,
    Declined,
    Unknown,
}

/// Where a forwarded payment goes once the partner's answer is in, and whether a reversal
/// must go to the partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    pub state: PaymentState,
    pub queue_reversal: bool,
}

/// The partner's answer, combined with a reversal the POS may have sent while the payment
/// was with the partner (the POS gave up waiting).
pub fn settle_partner_answer(answer: PartnerAnswer, reversed_by_pos: bool) -> Settlement {
    match (answer, reversed_by_pos) {
        (PartnerAnswer::Declined, _) => Settlement {
            state: PaymentState::Declined,
            queue_reversal: false,
        },
        (PartnerAnswer::Approved, false) => Settlement {
            state: PaymentState::Approved,
            queue_reversal: false,
        },
        (PartnerAnswer::Unknown | PartnerAnswer::ApprovedOtherAmount, false) => Settlement {
            state: PaymentState::Unknown,
            queue_reversal: true,
        },
        (
            PartnerAnswer::Approved | PartnerAnswer::Unknown | PartnerAnswer::ApprovedOtherAmount,
            true,
        ) => Settlement {
            state: PaymentState::Reversed,
            queue_reversal: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in PaymentState::ALL {
            assert_eq!(s.as_str().parse::<PaymentState>(), Ok(s));
        }
        assert!("PAID".parse::<PaymentState>().is_err());
    }

    #[test]
    fn final_states_have_no_way_out() {
        use PaymentState::*;
        for from in [Declined, Confirmed, Reversed, Expired] {
            for to in PaymentState::ALL {
                assert!(!from.can_move_to(to), "{from} -> {to}");
            }
        }
        assert!(!Unknown.can_move_to(Confirmed));
        assert!(!WaitingForScan.can_move_to(Approved));
        assert!(!Matched.can_move_to(Approved));
    }

    #[test]
    fn unknown_answers_always_queue_a_reversal() {
        for pos in [false, true] {
            assert!(settle_partner_answer(PartnerAnswer::Unknown, pos).queue_reversal);
            assert!(!settle_partner_answer(PartnerAnswer::Declined, pos).queue_reversal);
        }
        assert_eq!(
            settle_partner_answer(PartnerAnswer::Approved, true),
            Settlement {
                state: PaymentState::Reversed,
                queue_reversal: true
            }
        );
    }
}
