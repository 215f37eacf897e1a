//! The money a payment may carry: what a code admits on the way in, and what an approval
//! must say before the hub relays it to the POS.

use serde_json::Value;

/// What a QR code lets a payment be: the amount it names, if any (the createQrCode's
/// `amounts.requestAmount`, else `qrProperties.value`), and whether a payment may be for
/// less or more than that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeTerms {
    /// Minor units and ISO 4217 numeric currency.
    pub amount: Option<(i64, String)>,
    pub part_payment_allowed: bool,
    pub over_payment_allowed: bool,
}

impl CodeTerms {
    /// Whether a payment of `amount` minor units of `currency` fits the code.
    pub fn admits(&self, amount: i64, currency: &str) -> Result<(), &'static str> {
        let Some((named, named_currency)) = &self.amount else {
            return Ok(());
        };
        if currency != named_currency {
            return Err("Currency differs from the QR code");
        }
        self.allows(amount, *named)
    }

    /// Whether `approved` may stand for `asked` under the code's part and over payment rules.
    pub fn allows(&self, approved: i64, asked: i64) -> Result<(), &'static str> {
        match approved.cmp(&asked) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Less if self.part_payment_allowed => Ok(()),
            std::cmp::Ordering::Greater if self.over_payment_allowed => Ok(()),
            std::cmp::Ordering::Less => Err("Amount is less than the QR code's"),
            std::cmp::Ordering::Greater => Err("Amount is more than the QR code's"),
        }
    }
}

/// Why an approval cannot be relayed as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmountMismatch {
    /// The partner sent an `approvedAmount` the hub cannot read (a fraction, a string).
    Unreadable(String),
    /// The partner approved another amount or currency than the POS asked for.
    Differs {
        approved: i64,
        approved_currency: String,
    },
}

impl std::fmt::Display for AmountMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreadable(raw) => write!(f, "approvedAmount unreadable: {raw}"),
            Self::Differs {
                approved,
                approved_currency,
            } => write!(f, "approved {approved} {approved_currency}"),
        }
    }
}

/// Whether a POS may confirm `amount` of `currency` for a payment the partner approved for
/// `approved` of `approved_currency`: a partial confirmation settles less, never more, and
/// never in another currency (the interface has no stand-in that would add to an approval).
pub fn confirmable(
    amount: i64,
    currency: &str,
    approved: i64,
    approved_currency: &str,
) -> Result<(), &'static str> {
    if currency != approved_currency {
        return Err("Currency differs from the approval");
    }
    if amount > approved {
        return Err("More than the partner approved");
    }
    if amount <= 0 {
        return Err("Amount must be positive");
    }
    Ok(())
}

/// The amount a (repaired, schema-valid) approval says was approved: `approvedAmount`, else
/// an echoed `requestAmount`; `None` when it names neither.
pub fn approved_amount(repaired: &Value) -> Option<i64> {
    let amounts = repaired.get("amounts")?;
    amounts
        .get("approvedAmount")
        .or_else(|| amounts.get("requestAmount"))
        .and_then(|ledger| ledger.get("amount"))
        .and_then(Value::as_i64)
}

/// Checks that the partner approved `requested` minor units of `currency`, or another amount
/// of that currency the code's `terms` allow.
///
/// `raw` is the partner's body as sent, `repaired` the schema-valid body made from it
/// (`model::repair`). The approved amount is `amounts.approvedAmount`, else the echoed
/// `amounts.requestAmount`, else (the partner said nothing about amounts) the request's: a
/// 2xx approves what was asked. An `approvedAmount` that was sent but did not survive the
/// repair is unreadable, and an approval for an amount nobody can read is not relayed.
pub fn check_approved_amount(
    requested: i64,
    currency: &str,
    terms: &CodeTerms,
    raw: Option<&Value>,
    repaired: &Value,
) -> Result<(), AmountMismatch> {
    let sent = raw
        .and_then(|b| b.get("amounts"))
        .and_then(|a| a.get("approvedAmount"))
        .filter(|v| !v.is_null());
    let amounts = repaired.get("amounts");
    let readable = amounts.and_then(|a| a.get("approvedAmount"));
    if let (Some(sent), None) = (sent, readable) {
        return Err(AmountMismatch::Unreadable(sent.to_string()));
    }
    let Some(ledger) = readable.or_else(|| amounts.and_then(|a| a.get("requestAmount"))) else {
        return Ok(());
    };
    let approved = ledger.get("amount").and_then(Value::as_i64);
    let approved_currency = ledger.get("currency").and_then(Value::as_str);
    match (approved, approved_currency) {
        (Some(a), Some(c)) if c == currency && a > 0 && terms.allows(a, requested).is_ok() => {
            Ok(())
        }
        (Some(a), Some(c)) => Err(AmountMismatch::Differs {
            approved: a,
            approved_currency: c.to_owned(),
        }),
        _ => Err(AmountMismatch::Unreadable(ledger.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(amounts: Value) -> Value {
        json!({ "amounts": amounts })
    }

    const STRICT: CodeTerms = CodeTerms {
        amount: None,
        part_payment_allowed: false,
        over_payment_allowed: false,
    };

    #[test]
    fn a_confirmation_settles_at_most_what_was_approved() {
        assert_eq!(confirmable(1000, "710", 1000, "710"), Ok(()));
        assert_eq!(confirmable(600, "710", 1000, "710"), Ok(()));
        assert!(confirmable(1001, "710", 1000, "710").is_err());
        assert!(confirmable(1000, "840", 1000, "710").is_err());
        assert!(confirmable(0, "710", 1000, "710").is_err());
    }

    #[test]
    fn a_code_admits_its_amount_and_what_its_rules_allow() {
        let open = CodeTerms::default();
        assert_eq!(open.admits(123, "710"), Ok(()));
        let fixed = CodeTerms {
            amount: Some((1000, "710".into())),
            ..CodeTerms::default()
        };
        assert_eq!(fixed.admits(1000, "710"), Ok(()));
        assert!(fixed.admits(999, "710").is_err());
        assert!(fixed.admits(1001, "710").is_err());
        assert!(fixed.admits(1000, "840").is_err());
        let part = CodeTerms {
            part_payment_allowed: true,
            ..fixed.clone()
        };
        assert_eq!(part.admits(400, "710"), Ok(()));
        assert!(part.admits(1001, "710").is_err());
        let over = CodeTerms {
            over_payment_allowed: true,
            ..fixed
        };
        assert_eq!(over.admits(1200, "710"), Ok(()));
        assert!(over.admits(999, "710").is_err());
    }

    #[test]
    fn a_partial_approval_stands_only_where_the_code_allows_it() {
        let less = body(json!({"approvedAmount": {"amount": 600, "currency": "710"}}));
        assert!(check_approved_amount(1000, "710", &STRICT, Some(&less), &less).is_err());
        let part = CodeTerms {
            part_payment_allowed: true,
            ..STRICT
        };
        assert_eq!(
            check_approved_amount(1000, "710", &part, Some(&less), &less),
            Ok(())
        );
        let other = body(json!({"approvedAmount": {"amount": 600, "currency": "840"}}));
        assert!(check_approved_amount(1000, "710", &part, Some(&other), &other).is_err());
        let zero = body(json!({"approvedAmount": {"amount": 0, "currency": "710"}}));
        assert!(check_approved_amount(1000, "710", &part, Some(&zero), &zero).is_err());
    }

    #[test]
    fn the_requested_amount_passes_whichever_field_carries_it() {
        let approved = body(json!({"approvedAmount": {"amount": 1000, "currency": "710"}}));
        assert_eq!(
            check_approved_amount(1000, "710", &STRICT, Some(&approved), &approved),
            Ok(())
        );
        let echoed = body(json!({"requestAmount": {"amount": 1000, "currency": "710"}}));
        assert_eq!(
            check_approved_amount(1000, "710", &STRICT, Some(&echoed), &echoed),
            Ok(())
        );
        let empty = body(json!({}));
        assert_eq!(
            check_approved_amount(1000, "710", &STRICT, None, &empty),
            Ok(())
        );
    }

    #[test]
    fn another_amount_or_currency_is_a_mismatch() {
        let less = body(json!({"approvedAmount": {"amount": 900, "currency": "710"}}));
        assert!(matches!(
            check_approved_amount(1000, "710", &STRICT, Some(&less), &less),
            Err(AmountMismatch::Differs { approved: 900, .. })
        ));
        let other = body(json!({"approvedAmount": {"amount": 1000, "currency": "840"}}));
        assert!(check_approved_amount(1000, "710", &STRICT, Some(&other), &other).is_err());
    }

    #[test]
    fn an_approved_amount_lost_in_the_repair_is_unreadable() {
        let raw = body(
            json!({"approvedAmount": {"amount": 1000.5, "currency": "710"},
                              "requestAmount": {"amount": 1000, "currency": "710"}}),
        );
        let repaired = body(json!({"requestAmount": {"amount": 1000, "currency": "710"}}));
        assert!(matches!(
            check_approved_amount(1000, "710", &STRICT, Some(&raw), &repaired),
            Err(AmountMismatch::Unreadable(_))
        ));
    }
}
