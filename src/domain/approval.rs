//! What an approval must say about the money before the hub relays it to the POS.

use serde_json::Value;

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

/// Checks that the partner approved exactly `requested` minor units of `currency`.
///
/// `raw` is the partner's body as sent, `repaired` the schema-valid body made from it
/// (`model::repair`). The approved amount is `amounts.approvedAmount`, else the echoed
/// `amounts.requestAmount`, else (the partner said nothing about amounts) the request's: a
/// 2xx approves what was asked. An `approvedAmount` that was sent but did not survive the
/// repair is unreadable, and an approval for an amount nobody can read is not relayed.
///
/// Part and over payments are not relayed as approvals yet: the hub does not keep a code's
/// `partPaymentAllowed`/`overPaymentAllowed`, so any other amount is reversed.
pub fn check_approved_amount(
    requested: i64,
    currency: &str,
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
        (Some(a), Some(c)) if a == requested && c == currency => Ok(()),
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

    #[test]
    fn the_requested_amount_passes_whichever_field_carries_it() {
        let approved = body(json!({"approvedAmount": {"amount": 1000, "currency": "710"}}));
        assert_eq!(
            check_approved_amount(1000, "710", Some(&approved), &approved),
            Ok(())
        );
        let echoed = body(json!({"requestAmount": {"amount": 1000, "currency": "710"}}));
        assert_eq!(
            check_approved_amount(1000, "710", Some(&echoed), &echoed),
            Ok(())
        );
        let empty = body(json!({}));
        assert_eq!(check_approved_amount(1000, "710", None, &empty), Ok(()));
    }

    #[test]
    fn another_amount_or_currency_is_a_mismatch() {
        let less = body(json!({"approvedAmount": {"amount": 900, "currency": "710"}}));
        assert!(matches!(
            check_approved_amount(1000, "710", Some(&less), &less),
            Err(AmountMismatch::Differs { approved: 900, .. })
        ));
        let other = body(json!({"approvedAmount": {"amount": 1000, "currency": "840"}}));
        assert!(check_approved_amount(1000, "710", Some(&other), &other).is_err());
    }

    #[test]
    fn an_approved_amount_lost_in_the_repair_is_unreadable() {
        let raw = body(
            json!({"approvedAmount": {"amount": 1000.5, "currency": "710"},
                              "requestAmount": {"amount": 1000, "currency": "710"}}),
        );
        let repaired = body(json!({"requestAmount": {"amount": 1000, "currency": "710"}}));
        assert!(matches!(
            check_approved_amount(1000, "710", Some(&raw), &repaired),
            Err(AmountMismatch::Unreadable(_))
        ));
    }
}
