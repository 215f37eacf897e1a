//! Text a partner sends, made fit to keep and relay.
//!
//! PostgreSQL cannot hold the NUL character (U+0000) in `text` or `jsonb`, and a POS that
//! prints a partner's name has no use for one either. Where partner text enters the hub, NUL
//! becomes U+FFFD (the replacement character) rather than vanishing: an identifier or a
//! reference with one then fails its pattern and is dropped by the repair like any other that
//! does not fit, instead of being silently changed into another valid one, and free text
//! shows that something was there.

use serde_json::{Map, Value};
use std::borrow::Cow;

/// `text` with every NUL replaced; borrowed when there is none (the usual case).
pub(crate) fn storable(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Replaces NUL in every string and key of `value`; how many strings and keys had one.
pub(crate) fn replace_nul(value: &mut Value) -> usize {
    match value {
        Value::String(s) if s.contains('\0') => {
            *s = s.replace('\0', "\u{FFFD}");
            1
        }
        Value::Array(items) => items.iter_mut().map(replace_nul).sum(),
        Value::Object(map) => {
            let mut replaced = 0;
            if map.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(map);
                *map = old
                    .into_iter()
                    .map(|(k, v)| {
                        if k.contains('\0') {
                            replaced += 1;
                            (k.replace('\0', "\u{FFFD}"), v)
                        } else {
                            (k, v)
                        }
                    })
                    .collect::<Map<String, Value>>();
            }
            replaced + map.values_mut().map(replace_nul).sum::<usize>()
        }
        _ => 0,
    }
}

/// At most `max` bytes of a partner's raw answer as text, for an error message: invalid
/// UTF-8 and NUL replaced, cut on a character boundary, card numbers masked.
pub(crate) fn excerpt(bytes: &[u8], max: usize) -> String {
    let lossy = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]);
    super::pan::mask_digits_in(&storable(&lossy), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_is_replaced_in_strings_and_keys_only() {
        let mut body = json!({
            "name": "A\u{0}wallet",
            "ok": "fine",
            "lines": ["x\u{0}", "y"],
            "k\u{0}": {"deep": "\u{0}"},
            "n": 0
        });
        assert_eq!(replace_nul(&mut body), 4);
        assert_eq!(body["name"], "A\u{FFFD}wallet");
        assert_eq!(body["lines"], json!(["x\u{FFFD}", "y"]));
        assert_eq!(body["k\u{FFFD}"]["deep"], "\u{FFFD}");
        assert_eq!(body["ok"], "fine");
        assert!(!body.to_string().contains("\\u0000"));
        assert!(matches!(storable("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn an_excerpt_is_cut_and_storable() {
        assert_eq!(excerpt(b"ab\0cd", 3), "ab\u{FFFD}");
        // A cut through a multi-byte character leaves a replacement, not a panic.
        assert_eq!(excerpt("é".as_bytes(), 1), "\u{FFFD}");
        assert_eq!(
            excerpt(b"refused card 5500005555555559", 500),
            "refused card 550000******5559"
        );
    }
}
