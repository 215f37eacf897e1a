//! What the hub's schedule charges a partner's merchant for one confirmed payment.
//!
//! Rounding rule: the percentage part is `amount × bps / 10 000` rounded half up to a whole
//! minor unit (computed in 128 bits, so no amount overflows); the fixed part is added; the
//! total is raised to `min`, lowered to `max`, and never more than the amount itself.

/// One fee schedule: a percentage in basis points, a fixed amount, a floor and a ceiling,
/// all in minor units of the schedule's currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeSchedule {
    pub percent_bps: u32,
    pub fixed: i64,
    pub min: i64,
    pub max: Option<i64>,
}

impl FeeSchedule {
    /// The fee on a settled `amount` (minor units, positive).
    pub fn fee(&self, amount: i64) -> i64 {
        if amount <= 0 {
            return 0;
        }
        let percent = (i128::from(amount) * i128::from(self.percent_bps) + 5_000) / 10_000;
        let mut fee = percent.saturating_add(i128::from(self.fixed));
        fee = fee.max(i128::from(self.min));
        if let Some(max) = self.max {
            fee = fee.min(i128::from(max));
        }
        let fee = fee.clamp(0, i128::from(amount));
        // Clamped to 0..=amount, which is an i64.
        i64::try_from(fee).unwrap_or(amount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(percent_bps: u32, fixed: i64, min: i64, max: Option<i64>) -> FeeSchedule {
        FeeSchedule {
            percent_bps,
            fixed,
            min,
            max,
        }
    }

    #[test]
    fn percentages_round_half_up_to_a_minor_unit() {
        // 1.5 % of R10.00 is 15 cents; of 10.01 it is 15.015 → 15; of 10.10 it is 15.15 → 15;
        // of 10.30 it is 15.45 → 15; of 10.34 it is 15.51 → 16; of 1.00 it is 1.5 → 2.
        let s = schedule(150, 0, 0, None);
        assert_eq!(s.fee(1000), 15);
        assert_eq!(s.fee(1001), 15);
        assert_eq!(s.fee(1034), 16);
        assert_eq!(s.fee(100), 2);
        assert_eq!(s.fee(33), 0);
    }

    #[test]
    fn fixed_min_and_max_apply_in_order_and_never_exceed_the_amount() {
        assert_eq!(schedule(100, 200, 0, None).fee(10_000), 300);
        assert_eq!(schedule(100, 0, 250, None).fee(10_000), 250);
        assert_eq!(schedule(100, 0, 0, Some(50)).fee(10_000), 50);
        assert_eq!(schedule(0, 500, 0, None).fee(300), 300);
        assert_eq!(schedule(10_000, 0, 0, None).fee(i64::MAX), i64::MAX);
        assert_eq!(schedule(150, 0, 0, None).fee(0), 0);
    }
}
