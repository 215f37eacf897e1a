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
pub(crate) fn mask(pan: &str) -> String {
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

/// Keys whose whole value is card data, whatever its type (a careless sender may write a
/// number): `cardNumber`, `pan`, `primaryAccountNumber`, track data.
fn is_card_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    matches!(
        key.as_str(),
        "cardnumber" | "card_number" | "pan" | "primaryaccountnumber" | "maskedpan"
    ) || key.starts_with("track")
}

/// Keys the hub links or reconciles by, which it never changes (DESIGN §3): an identifier or
/// a reference that looks like a card number is the sender's to answer for.
fn is_identifier_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    key == "id"
        || key.ends_with("Id")
        || key.ends_with("ID")
        || key.ends_with("Ref")
        || lower.contains("reference")
}

/// Masks the card data anywhere in `value`; returns how many values were changed.
///
/// - A card-data field (see [`is_card_key`]) is masked whole: a string, or a number (which
///   becomes a masked string).
/// - Any other string but an identifier or reference has each card number written in it
///   (13 to 19 digits, optionally grouped by single spaces or dashes, passing the Luhn check)
///   masked in place: "unknown card 4111111111111111" in an error message, a slip line.
pub(crate) fn mask_card_numbers(value: &mut Value) -> usize {
    match value {
        Value::Object(map) => map
            .iter_mut()
            .map(|(key, v)| match v {
                Value::String(s) if is_card_key(key) => {
                    let masked = if s.chars().all(|c| c.is_ascii_digit()) {
                        mask(s)
                    } else {
                        mask_digits_in(s, true)
                    };
                    let changed = usize::from(masked != *s);
                    *s = masked;
                    changed
                }
                Value::Number(n) if is_card_key(key) => {
                    *v = Value::String(mask(&n.to_string()));
                    1
                }
                Value::String(_) if is_identifier_key(key) => 0,
                other => mask_card_numbers(other),
            })
            .sum(),
        Value::Array(items) => items.iter_mut().map(mask_card_numbers).sum(),
        // Every string of every message passes here: one with too few digits to hold a card
        // number (nearly all of them) is left without copying it.
        Value::String(s) if s.bytes().filter(u8::is_ascii_digit).count() < 13 => 0,
        Value::String(s) => {
            let masked = mask_digits_in(s, false);
            let changed = usize::from(masked != *s);
            if changed == 1 {
                *s = masked;
            }
            changed
        }
        _ => 0,
    }
}

/// `text` with every card number written in it masked (first six and last four digits kept,
/// separators kept). With `any_length`, every run of digits is taken for one (track data).
pub(crate) fn mask_digits_in(text: &str, any_length: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // A run of digits, with single spaces or dashes between them.
        let start = i;
        let mut end = i;
        while end < chars.len() {
            let separator_then_digit = (chars[end] == ' ' || chars[end] == '-')
                && chars.get(end + 1).is_some_and(char::is_ascii_digit);
            if !chars[end].is_ascii_digit() && !separator_then_digit {
                break;
            }
            end += 1;
        }
        let run = &chars[start..end];
        let digits: Vec<u32> = run.iter().filter_map(|c| c.to_digit(10)).collect();
        let card = (13..=19).contains(&digits.len()) && luhn(&digits);
        if card || (any_length && digits.len() > 10) {
            let keep_tail = digits.len() - 4;
            let mut seen = 0;
            for c in run {
                if c.is_ascii_digit() {
                    out.push(if seen < 6 || seen >= keep_tail {
                        *c
                    } else {
                        '*'
                    });
                    seen += 1;
                } else {
                    out.push(*c);
                }
            }
        } else {
            out.extend(run);
        }
        i = end;
    }
    out
}

/// The Luhn check every card number passes.
fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
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
    fn card_data_under_any_name_or_type_and_in_free_text_is_masked() {
        let mut body = json!({
            "tenders": [{"cardNumber": 4111111111111111u64}],
            "PAN": "5500005555555559",
            "track2": "4111111111111111=2512101",
            "errorMessage": "unknown card 4111 1111 1111 1111, try again",
            "slipData": {"messageLines": ["card 5500-0055-5555-5559"]},
            "tranId": "4111111111111111",
            "issuerReference": "4111111111111111",
            "phone": "0821234567",
            "order": "order 1234567890123 (not a card: fails Luhn)"
        });
        assert_eq!(mask_card_numbers(&mut body), 5);
        assert_eq!(body["tenders"][0]["cardNumber"], "411111******1111");
        assert_eq!(body["PAN"], "550000******5559");
        assert_eq!(body["track2"], "411111******1111=2512101");
        assert_eq!(
            body["errorMessage"],
            "unknown card 4111 11** **** 1111, try again"
        );
        assert_eq!(
            body["slipData"]["messageLines"][0],
            "card 5500-00**-****-5559"
        );
        assert_eq!(body["tranId"], "4111111111111111");
        assert_eq!(body["issuerReference"], "4111111111111111");
        assert_eq!(body["phone"], "0821234567");
        assert!(body["order"]
            .as_str()
            .unwrap_or_default()
            .contains("1234567890123"));
        assert_eq!(
            mask_card_numbers(&mut body),
            0,
            "masking twice changes nothing"
        );
        assert_eq!(
            mask_digits_in("refused card 5500005555555559", false),
            "refused card 550000******5559"
        );
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
        // A reference is the sender's to choose, and never changed.
        assert_eq!(body["reference"], "4111111111111111");
        assert_eq!(
            mask_card_numbers(&mut body),
            0,
            "masking twice changes nothing"
        );
    }
}
