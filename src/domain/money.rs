use crate::model::LedgerAmount;

/// An amount in integer minor units with its ISO 4217 numeric currency. Never a float.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Money {
    pub minor_units: i64,
    pub currency: String,
}

impl From<&LedgerAmount> for Money {
    fn from(a: &LedgerAmount) -> Self {
        Self {
            minor_units: a.amount,
            currency: a.currency.clone(),
        }
    }
}

/// The largest amount the hub takes, in minor units: twelve digits, the width of an ISO 8583
/// amount field (DE 4) that card and wallet switches carry amounts in. Far above any retail
/// payment, and low enough that a day's sums of such amounts cannot overflow 64 bits.
pub const MAX_AMOUNT: i64 = 999_999_999_999;

/// Whether `minor_units` can be paid: more than zero, at most [`MAX_AMOUNT`].
pub fn check_amount(minor_units: i64) -> Result<(), &'static str> {
    if minor_units <= 0 {
        Err("Amount must be positive")
    } else if minor_units > MAX_AMOUNT {
        Err("Amount must be at most 999999999999 minor units")
    } else {
        Ok(())
    }
}

impl Money {
    /// The EMVCo tag 54 form: major units with a decimal point ("150.00").
    ///
    /// ISO 4217 exponents other than 2 exist (JPY has 0, BHD has 3); the currencies this hub
    /// serves are given in `exponent`, so the conversion is exact integer arithmetic.
    pub fn to_decimal_string(&self, exponent: u32) -> String {
        let sign = if self.minor_units < 0 { "-" } else { "" };
        let abs = self.minor_units.unsigned_abs();
        if exponent == 0 {
            return format!("{sign}{abs}");
        }
        let scale = 10u64.pow(exponent);
        format!(
            "{sign}{}.{:0width$}",
            abs / scale,
            abs % scale,
            width = exponent as usize
        )
    }
}

/// The number of decimal places of an ISO 4217 numeric currency code.
pub fn currency_exponent(numeric_code: &str) -> u32 {
    match numeric_code {
        // JPY, KRW, ISK, CLP, VND, XAF, XOF, UGX, RWF, PYG
        "392" | "410" | "352" | "152" | "704" | "950" | "952" | "800" | "646" | "600" => 0,
        // BHD, KWD, OMR, JOD, TND, LYD, IQD
        "048" | "414" | "512" | "400" | "788" | "434" | "368" => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zar(minor_units: i64) -> Money {
        Money {
            minor_units,
            currency: "710".into(),
        }
    }

    #[test]
    fn minor_units_become_a_decimal_without_floats() {
        assert_eq!(zar(79995).to_decimal_string(2), "799.95");
        assert_eq!(zar(15000).to_decimal_string(2), "150.00");
        assert_eq!(zar(5).to_decimal_string(2), "0.05");
        assert_eq!(zar(1234).to_decimal_string(0), "1234");
        assert_eq!(zar(1234).to_decimal_string(3), "1.234");
    }

    #[test]
    fn exponents_follow_iso_4217() {
        assert_eq!(currency_exponent("710"), 2);
        assert_eq!(currency_exponent("392"), 0);
        assert_eq!(currency_exponent("048"), 3);
    }
}

#[cfg(test)]
mod amount_tests {
    use super::*;

    #[test]
    fn payable_amounts_are_positive_and_twelve_digits_at_most() {
        assert!(check_amount(1).is_ok());
        assert!(check_amount(MAX_AMOUNT).is_ok());
        for bad in [0, -1, MAX_AMOUNT + 1, i64::MAX, i64::MIN] {
            assert!(check_amount(bad).is_err(), "{bad}");
        }
    }
}
