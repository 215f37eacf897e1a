//! Card numbers (PANs) as the hub keeps and shows them: the first six and last four digits,
//! the rest `*`, the most a system outside the card environment may hold or display.
//!
//! A partner may put the customer's card number in `tenders[].cardNumber` of its approval,
//! and a POS in its own messages. The hub masks every one before it stores, logs, relays or
//! shows anything, so no full PAN exists anywhere after the message is read: the database,
//! the timeline, the back office, the console and the POS's answer all carry the masked form
//! (which the published pattern `[0-9]{6}[0-9*]{0,13}` still admits).

use serde_json::Value;

/// `4111111111111111` → `411111******1111`. A number too short to keep ten digits visible
/// keeps only its first six (or fewer), so that masking never shows a whole short number.
pub fn mask(pan: &str) -> String {
    let chars: Vec<char> = pan.chars().collect();
    let len = chars.len();
    let (head, tail) = if len > 10 {
        (6, 4)
    } else {
        (len.min(6).saturating_sub(1), 0)
    };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < head || i >= len - tail { *c } else { '*' })
        .collect()
}

/// Masks every `cardNumber` string anywhere in `value`; returns how many were changed.
pub fn mask_card_numbers(value: &mut Value) -> usize {
    match value {
        Value::Object(map) => map
            .iter_mut()
            .map(|(key, v)| match v {
                Value::String(s) if key == "cardNumber" => {
                    let masked = mask(s);
                    let changed = usize::from(masked != *s);
                    *s = masked;
                    changed
                }
                other => mask_card_numbers(other),
            })
            .sum(),
        Value::Array(items) => items.iter_mut().map(mask_card_numbers).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_six_and_last_four_stay() {
        assert_eq!(mask("4111111111111111"), "411111******1111");
        assert_eq!(mask("5500005555555559999"), "550000*********9999");
        assert_eq!(mask("411111******1111"), "411111******1111");
        // Too short to show ten digits: only the first few stay.
        assert_eq!(mask("1234567890"), "12345*****");
        assert_eq!(mask("12"), "1*");
        assert_eq!(mask(""), "");
    }

    #[test]
    fn every_card_number_anywhere_is_masked() {
        let mut body = json!({
            "tenders": [
                {"tenderType": "CREDIT_CARD", "cardNumber": "4111111111111111"},
                {"tenderType": "CASH"}
            ],
            "nested": {"deeper": [{"cardNumber": "5500005555555559"}]},
            "reference": "4111111111111111"
        });
        assert_eq!(mask_card_numbers(&mut body), 2);
        assert_eq!(body["tenders"][0]["cardNumber"], "411111******1111");
        assert_eq!(
            body["nested"]["deeper"][0]["cardNumber"],
            "550000******5559"
        );
        // Only card number fields: anything else is the sender's to choose.
        assert_eq!(body["reference"], "4111111111111111");
        assert_eq!(
            mask_card_numbers(&mut body),
            0,
            "masking twice changes nothing"
        );
    }
}
