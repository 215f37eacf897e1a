//! The parser: splits a payload into data objects (and the nested objects of templates),
//! checks every length, the payload format indicator and, when present, the CRC.
//!
//! It walks the text by characters, because lengths count characters, and never slices inside
//! a UTF-8 sequence; any input gives `Ok` or a typed `Err`, never a panic.

use std::collections::HashSet;

use crate::domain::{currency_exponent, Money};

use super::crc::{crc16, crc_hex};
use super::encode::{StaticTemplate, SubObject};
use super::tag_path::TagPath;
use super::tlv::{is_template_id, DataObject};

/// Why a payload is not a valid QR payment payload. Offsets count characters from the start of
/// the payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the payload is empty")]
    Empty,
    #[error("the payload does not start with the payload format indicator (000201)")]
    MissingPayloadFormatIndicator,
    #[error("payload format indicator {found:?} is not supported (expected \"01\")")]
    UnsupportedPayloadFormat { found: String },
    #[error(
        "truncated at character {offset}: a data object needs a 2-digit id and a 2-digit length"
    )]
    TruncatedHeader { offset: usize },
    #[error("tag {tag}: declared length {declared} but only {available} characters remain")]
    TruncatedValue {
        tag: TagPath,
        declared: usize,
        available: usize,
    },
    #[error("character {offset}: id {found:?} is not two digits")]
    BadTagId { offset: usize, found: String },
    #[error("tag {tag} (character {offset}): length {found:?} is not two digits from 01 to 99")]
    BadLength {
        tag: TagPath,
        offset: usize,
        found: String,
    },
    #[error("tag {tag} appears more than once")]
    DuplicateTag { tag: TagPath },
    #[error("the CRC (tag 63) is not the last data object")]
    CrcNotLast,
    #[error("the CRC (tag 63) value {found:?} is not 4 hex digits")]
    BadCrcValue { found: String },
    #[error("CRC mismatch: the payload's content gives {}, tag 63 says {}", crc_hex(*.expected), crc_hex(*.found))]
    CrcMismatch { expected: u16, found: u16 },
}

/// A parsed payload: the root data objects in payload order, templates with their nested
/// objects, and the CRC when the payload had one (it has been verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedQr {
    objects: Vec<DataObject>,
    crc: Option<u16>,
}

/// One merchant account template (tags 26–51) as read: the hub's own in 26, partners' in
/// 27–51, or anyone's in a payload from elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountTemplate<'a> {
    /// The tag, 26–51.
    pub tag: u8,
    /// Sub-tag 00, the globally unique identifier; `None` when the template has none (the
    /// parser checks the TLV layout, not each scheme's rules).
    pub gui: Option<&'a str>,
    /// Every other sub-tag, in payload order: `(id, value)`.
    pub sub_tags: Vec<(u8, &'a str)>,
}

impl AccountTemplate<'_> {
    /// The value of the sub-tag `id` (`00` is the GUI).
    pub fn sub(&self, id: u8) -> Option<&str> {
        if id == 0 {
            return self.gui;
        }
        self.sub_tags
            .iter()
            .find(|(sub_id, _)| *sub_id == id)
            .map(|(_, value)| *value)
    }

    /// As the encoder's input, pinned to this tag: `None` without a GUI.
    pub fn to_static_template(&self) -> Option<StaticTemplate> {
        Some(StaticTemplate {
            tag: Some(self.tag),
            guid: self.gui?.to_owned(),
            sub_objects: self
                .sub_tags
                .iter()
                .map(|(id, value)| SubObject {
                    id: *id,
                    value: (*value).to_owned(),
                })
                .collect(),
        })
    }
}

/// Parses and validates `payload`. See the module docs for what is checked.
pub fn parse(payload: &str) -> Result<ParsedQr, ParseError> {
    if payload.is_empty() {
        return Err(ParseError::Empty);
    }
    // Checked before the TLV walk so that something that is not an EMV payload at all (a URL,
    // say) gets this error rather than a confusing one about ids or lengths.
    if !payload.starts_with("00") {
        return Err(ParseError::MissingPayloadFormatIndicator);
    }
    let objects = parse_objects(payload, 0, None)?;
    match objects.first() {
        Some(first) if first.id == 0 && first.value == "01" => {}
        Some(first) if first.id == 0 => {
            return Err(ParseError::UnsupportedPayloadFormat {
                found: first.value.clone(),
            })
        }
        _ => return Err(ParseError::MissingPayloadFormatIndicator),
    }
    let crc_at = objects.iter().position(|o| o.id == 63);
    let crc = match (crc_at, objects.last()) {
        (None, _) => None,
        (Some(i), Some(last)) if i + 1 == objects.len() => Some(verify_crc(payload, &last.value)?),
        (Some(_), _) => return Err(ParseError::CrcNotLast),
    };
    Ok(ParsedQr { objects, crc })
}

/// Checks the tag 63 value (the last object, so the payload's last characters) against the
/// CRC of everything before it, which includes `6304`.
fn verify_crc(payload: &str, value: &str) -> Result<u16, ParseError> {
    let bad = || ParseError::BadCrcValue {
        found: value.to_owned(),
    };
    // Exactly 4 ASCII hex digits, so the value is 4 bytes and the split below is on a char
    // boundary. Lower-case hex is accepted: the value is the same number.
    if value.len() != 4 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let found = u16::from_str_radix(value, 16).map_err(|_| bad())?;
    let covered = payload.get(..payload.len() - value.len()).ok_or_else(bad)?;
    let expected = crc16(covered.as_bytes());
    if expected == found {
        Ok(found)
    } else {
        Err(ParseError::CrcMismatch { expected, found })
    }
}

/// Splits off the first `n` characters of `s`, or `None` when it has fewer.
fn split_chars(s: &str, n: usize) -> Option<(&str, &str)> {
    if n == 0 {
        return Some(("", s));
    }
    // The byte index just past the n-th character.
    let (last_start, last) = s.char_indices().nth(n - 1)?;
    Some(s.split_at(last_start + last.len_utf8()))
}

/// Parses a sequence of data objects. `offset` is the character offset of `text` in the
/// payload; `parent` is the enclosing template's path (`None` at the root, where templates are
/// parsed one level deep; their sub-objects are primitives).
fn parse_objects(
    text: &str,
    offset: usize,
    parent: Option<&TagPath>,
) -> Result<Vec<DataObject>, ParseError> {
    let mut objects = Vec::new();
    let mut seen = HashSet::new();
    let mut rest = text;
    let mut at = offset;
    while !rest.is_empty() {
        let (id_text, after_id) =
            split_chars(rest, 2).ok_or(ParseError::TruncatedHeader { offset: at })?;
        let id = two_digits(id_text).ok_or_else(|| ParseError::BadTagId {
            offset: at,
            found: id_text.to_owned(),
        })?;
        let tag = match parent {
            Some(p) => p.child(id),
            None => TagPath::root(id),
        };
        let (len_text, after_len) =
            split_chars(after_id, 2).ok_or(ParseError::TruncatedHeader { offset: at })?;
        let declared = match two_digits(len_text) {
            Some(n) if n > 0 => usize::from(n),
            _ => {
                return Err(ParseError::BadLength {
                    tag,
                    offset: at + 2,
                    found: len_text.to_owned(),
                })
            }
        };
        let value_at = at + 4;
        let (value, after_value) =
            split_chars(after_len, declared).ok_or_else(|| ParseError::TruncatedValue {
                tag: tag.clone(),
                declared,
                available: after_len.chars().count(),
            })?;
        if !seen.insert(id) {
            return Err(ParseError::DuplicateTag { tag });
        }
        let nested = if parent.is_none() && is_template_id(id) {
            Some(parse_objects(value, value_at, Some(&tag))?)
        } else {
            None
        };
        objects.push(DataObject {
            id,
            value: value.to_owned(),
            nested,
        });
        rest = after_value;
        at = value_at + declared;
    }
    Ok(objects)
}

/// Two ASCII digits as a number (0–99).
fn two_digits(s: &str) -> Option<u8> {
    match s.as_bytes() {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => Some((a - b'0') * 10 + (b - b'0')),
        _ => None,
    }
}

impl ParsedQr {
    /// The root data objects in payload order.
    pub fn objects(&self) -> &[DataObject] {
        &self.objects
    }

    /// The root data object with this id.
    pub fn get(&self, id: u8) -> Option<&DataObject> {
        self.objects.iter().find(|o| o.id == id)
    }

    /// The raw value of the root data object with this id.
    pub fn value(&self, id: u8) -> Option<&str> {
        self.get(id).map(|o| o.value.as_str())
    }

    /// The verified CRC, when the payload carried one (the minimal scheme has none).
    ///
    /// `None` does not mean the payload is intact: a damaged CRC tag id can turn `6304…` into
    /// another well-formed data object. Callers that expect an EMVCo payload should treat
    /// `None` as a failure.
    pub fn crc(&self) -> Option<u16> {
        self.crc
    }

    /// The merchant account templates (26–51) in payload order.
    pub fn merchant_account_templates(&self) -> impl Iterator<Item = &DataObject> {
        self.objects.iter().filter(|o| matches!(o.id, 26..=51))
    }

    /// The merchant account templates (26–51) in payload order, read as tag, GUI and
    /// sub-tags: the hub's own and every partner's, so a reader can find the template of the
    /// wallet it speaks for by GUI.
    pub fn account_templates(&self) -> Vec<AccountTemplate<'_>> {
        self.merchant_account_templates()
            .map(|o| {
                let nested = o.nested.as_deref().unwrap_or_default();
                AccountTemplate {
                    tag: o.id,
                    gui: o.sub_value(0),
                    sub_tags: nested
                        .iter()
                        .filter(|s| s.id != 0)
                        .map(|s| (s.id, s.value.as_str()))
                        .collect(),
                }
            })
            .collect()
    }

    /// The first merchant account template whose GUI (sub-tag 00) is `gui`.
    pub fn account_template(&self, gui: &str) -> Option<AccountTemplate<'_>> {
        self.account_templates()
            .into_iter()
            .find(|t| t.gui == Some(gui))
    }

    /// The sub-tag 01 of the merchant account template whose sub-tag 00 (the GUID) is
    /// `provider_id`: Electrum's tranId.
    pub fn tran_id(&self, provider_id: &str) -> Option<&str> {
        self.merchant_account_templates()
            .find(|t| t.sub_value(0) == Some(provider_id))
            .and_then(|t| t.sub_value(1))
    }

    /// Tag 01: `11` static, `12` dynamic.
    pub fn point_of_initiation(&self) -> Option<&str> {
        self.value(1)
    }

    /// Tag 52, the merchant category code.
    pub fn merchant_category_code(&self) -> Option<&str> {
        self.value(52)
    }

    /// Tag 53, the ISO 4217 numeric currency.
    pub fn currency(&self) -> Option<&str> {
        self.value(53)
    }

    /// Tag 54 as written (`"150.00"`).
    pub fn amount(&self) -> Option<&str> {
        self.value(54)
    }

    /// Tags 54 and 53 as [`Money`], when both are present and the amount is a plain decimal
    /// with no more places than the currency has.
    pub fn money(&self) -> Option<Money> {
        let currency = self.currency()?;
        let minor_units = decimal_to_minor(self.amount()?, currency_exponent(currency))?;
        Some(Money {
            minor_units,
            currency: currency.to_owned(),
        })
    }

    /// Tag 58.
    pub fn country_code(&self) -> Option<&str> {
        self.value(58)
    }

    /// Tag 59.
    pub fn merchant_name(&self) -> Option<&str> {
        self.value(59)
    }

    /// Tag 60.
    pub fn merchant_city(&self) -> Option<&str> {
        self.value(60)
    }

    /// Tag 61.
    pub fn postal_code(&self) -> Option<&str> {
        self.value(61)
    }

    /// A sub-tag of the additional data template (62).
    pub fn additional_data(&self, sub_id: u8) -> Option<&str> {
        self.get(62)?.sub_value(sub_id)
    }

    /// Tag 62 sub-tag 05.
    pub fn reference_label(&self) -> Option<&str> {
        self.additional_data(5)
    }

    /// Tag 62 sub-tag 07.
    pub fn terminal_label(&self) -> Option<&str> {
        self.additional_data(7)
    }
}

/// `"150.00"` with exponent 2 is 15000. `None` for anything but digits with an optional point
/// and at most `exponent` decimals, or on overflow.
fn decimal_to_minor(text: &str, exponent: u32) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty())
        || !digits(whole)
        || !digits(fraction)
        || fraction.len() > exponent as usize
    {
        return None;
    }
    let scale = 10i64.checked_pow(exponent)?;
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction: i64 = if fraction.is_empty() {
        0
    } else {
        // "5" of "0.5" is 50 cents: pad to the exponent.
        let pad = 10i64.checked_pow(exponent - fraction.len() as u32)?;
        fraction.parse::<i64>().ok()?.checked_mul(pad)?
    };
    whole.checked_mul(scale)?.checked_add(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::QrScheme;
    use crate::qr::encode::{encode, MerchantInfo, QrContent, StaticTemplate, SubObject};

    const EMVCO_SAMPLE: &str = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A";
    const SA_DYNAMIC: &str = "00020101021226500010za.co.elec0132f82d7f64feea4f2ab24da94aaf5c29415204541153037105406150.005802ZA5910TEST STORE6012JOHANNESBURG62260510INV00012340708POS000016304D471";
    const SA_STATIC: &str = "00020101021126300010za.co.elec0112MERCHANT00015204541153037105802ZA5910TEST STORE6009CAPE TOWN63049A38";
    const ELECTRUM_MINIMAL: &str = "00020126500010za.co.elec0132f82d7f64feea4f2ab24da94aaf5c2941";
    const OTHER_VECTORS: &[&str] = &[
        "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D",
        "00020101021252044131153137210116372101160123456789ABCDE6010Phnom Penh5913Merchant Shop5802KH540510.005303840622501081234567802090124444446304A0BA",
        "0002010102121516ABCDEF123456789052045311530339254039995802JP5906DONGRI6005TOKYO62240104hoge0504fuga0704piyo63043FE6",
    ];

    #[test]
    fn the_emvco_spec_sample_parses_with_its_crc() {
        let qr = parse(EMVCO_SAMPLE).unwrap();
        assert_eq!(qr.crc(), Some(0xA13A));
        assert_eq!(qr.merchant_name(), Some("BEST TRANSPORT"));
        assert_eq!(qr.merchant_city(), Some("BEIJING"));
        assert_eq!(qr.amount(), Some("23.72"));
        assert_eq!(qr.currency(), Some("156"));
        let language = qr.get(64).unwrap();
        assert_eq!(language.sub_value(0), Some("ZH"));
        assert_eq!(language.sub_value(1), Some("最佳运输"));
        assert_eq!(language.sub_value(2), Some("北京"));
        assert_eq!(qr.additional_data(3), Some("1234"));
        assert_eq!(qr.additional_data(6), Some("***"));
        assert_eq!(qr.terminal_label(), Some("A6008667"));
        assert_eq!(qr.get(91).unwrap().sub_value(0), Some("A011223344998877"));
        // Template 29 has a GUID but no sub-tag 01.
        assert_eq!(qr.get(29).unwrap().sub_value(5), Some("A93FO3230Q"));
        assert_eq!(qr.tran_id("D15600000000"), None);
        // 02–25 are primitives, not templates.
        assert_eq!(
            parse(OTHER_VECTORS[2]).unwrap().get(15).unwrap().nested,
            None
        );
    }

    #[test]
    fn the_other_published_vectors_parse() {
        for payload in OTHER_VECTORS {
            let qr = parse(payload).unwrap_or_else(|e| panic!("{payload}: {e}"));
            assert!(qr.crc().is_some());
        }
    }

    #[test]
    fn the_south_african_examples_parse() {
        let qr = parse(SA_DYNAMIC).unwrap();
        assert_eq!(qr.crc(), Some(0xD471));
        assert_eq!(
            qr.tran_id("za.co.elec"),
            Some("f82d7f64feea4f2ab24da94aaf5c2941")
        );
        assert_eq!(qr.tran_id("za.co.mp"), None);
        assert_eq!(qr.point_of_initiation(), Some("12"));
        assert_eq!(qr.merchant_category_code(), Some("5411"));
        assert_eq!(qr.country_code(), Some("ZA"));
        assert_eq!(qr.reference_label(), Some("INV0001234"));
        assert_eq!(qr.terminal_label(), Some("POS00001"));
        assert_eq!(
            qr.money(),
            Some(Money {
                minor_units: 15000,
                currency: "710".into()
            })
        );
        let qr = parse(SA_STATIC).unwrap();
        assert_eq!(qr.tran_id("za.co.elec"), Some("MERCHANT0001"));
        assert_eq!(qr.amount(), None);
        assert_eq!(qr.money(), None);

        let qr = parse(ELECTRUM_MINIMAL).unwrap();
        assert_eq!(qr.crc(), None);
        assert_eq!(
            qr.tran_id("za.co.elec"),
            Some("f82d7f64feea4f2ab24da94aaf5c2941")
        );
    }

    #[test]
    fn typed_errors() {
        let cases: &[(&str, ParseError)] = &[
            ("", ParseError::Empty),
            (
                "https://example.com",
                ParseError::MissingPayloadFormatIndicator,
            ),
            ("0102120002", ParseError::MissingPayloadFormatIndicator),
            (
                "000202",
                ParseError::UnsupportedPayloadFormat { found: "02".into() },
            ),
            ("000201260", ParseError::TruncatedHeader { offset: 6 }),
            (
                "0002012610abc",
                ParseError::TruncatedValue {
                    tag: TagPath::root(26),
                    declared: 10,
                    available: 3,
                },
            ),
            (
                "000201x1",
                ParseError::BadTagId {
                    offset: 6,
                    found: "x1".into(),
                },
            ),
            (
                "0002015900",
                ParseError::BadLength {
                    tag: TagPath::root(59),
                    offset: 8,
                    found: "00".into(),
                },
            ),
            (
                "00020159 1x",
                ParseError::BadLength {
                    tag: TagPath::root(59),
                    offset: 8,
                    found: " 1".into(),
                },
            ),
            (
                "0002015901a5901b",
                ParseError::DuplicateTag {
                    tag: TagPath::root(59),
                },
            ),
            (
                "00020126050002a",
                ParseError::TruncatedValue {
                    tag: TagPath::root(26).child(0),
                    declared: 2,
                    available: 1,
                },
            ),
            ("000201630412345901X", ParseError::CrcNotLast),
            (
                "0002016304XYZW",
                ParseError::BadCrcValue {
                    found: "XYZW".into(),
                },
            ),
            (
                "00020163031A2",
                ParseError::BadCrcValue {
                    found: "1A2".into(),
                },
            ),
            (
                "0002016304ABCD",
                ParseError::CrcMismatch {
                    expected: crc16(b"0002016304"),
                    found: 0xABCD,
                },
            ),
        ];
        for (payload, expected) in cases {
            assert_eq!(&parse(payload).unwrap_err(), expected, "{payload:?}");
        }
        // Messages name the numbers in the same upper-case hex as the payload.
        let tampered = SA_DYNAMIC.replace("150.00", "950.00");
        assert_eq!(
            parse(&tampered).unwrap_err().to_string(),
            format!(
                "CRC mismatch: the payload's content gives {}, tag 63 says D471",
                crc_hex(crc16(tampered.trim_end_matches("D471").as_bytes()))
            )
        );
    }

    #[test]
    fn lower_case_crc_hex_is_the_same_number() {
        let lower = SA_DYNAMIC.replace("6304D471", "6304d471");
        assert_eq!(parse(&lower).unwrap().crc(), Some(0xD471));
    }

    #[test]
    fn lengths_count_characters() {
        // 3 characters, 9 bytes.
        let qr = parse("0002015903北京市").unwrap();
        assert_eq!(qr.merchant_name(), Some("北京市"));
        // A length that would end mid-character by bytes is fine by characters, and a length
        // longer than the characters left is truncation, not a slice panic.
        assert!(matches!(
            parse("0002015904北京市"),
            Err(ParseError::TruncatedValue {
                declared: 4,
                available: 3,
                ..
            })
        ));
    }

    #[test]
    fn no_single_ascii_substitution_passes_as_crc_verified() {
        // A CRC-16 catches every error burst of 16 bits or less, and changing one ASCII
        // character is one such burst, so no substitution can leave a verified CRC. It *can*
        // leave a payload without one: `6304D471` damaged to `0304D471` is a well-formed tag 03
        // and the minimal scheme has no CRC. Callers that expect an EMVCo payload must check
        // `crc().is_some()`.
        let chars: Vec<char> = SA_DYNAMIC.chars().collect();
        for i in 0..chars.len() {
            for replacement in ['0', '9', 'A', 'z', ' '] {
                if chars[i] == replacement {
                    continue;
                }
                let mut mutated = chars.clone();
                mutated[i] = replacement;
                let mutated: String = mutated.into_iter().collect();
                if let Ok(qr) = parse(&mutated) {
                    assert_eq!(qr.crc(), None, "{mutated}");
                }
            }
        }
        assert_eq!(
            parse(&SA_DYNAMIC.replace("6304D471", "0304D471"))
                .unwrap()
                .crc(),
            None
        );
    }

    /// xorshift64*: a small deterministic generator, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn never_panics_on_malformed_input() {
        let valid = [
            EMVCO_SAMPLE,
            SA_DYNAMIC,
            SA_STATIC,
            ELECTRUM_MINIMAL,
            OTHER_VECTORS[0],
            OTHER_VECTORS[1],
            OTHER_VECTORS[2],
        ];
        let mut inputs: Vec<String> = Vec::new();
        // Every truncation (by characters) of every valid payload, and every suffix.
        for payload in valid {
            let chars: Vec<char> = payload.chars().collect();
            for i in 0..=chars.len() {
                inputs.push(chars[..i].iter().collect());
                inputs.push(chars[i..].iter().collect());
            }
        }
        // Random strings: digit-heavy ASCII (to get past the id/length checks often) and
        // multi-byte characters of 2, 3 and 4 bytes.
        let alphabet: Vec<char> = "0000011111222233456789AaZz .*-é北京最😀".chars().collect();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..5000 {
            let len = rng.below(80);
            let mut s = String::from(if rng.below(2) == 0 { "000201" } else { "" });
            for _ in 0..len {
                s.push(alphabet[rng.below(alphabet.len())]);
            }
            inputs.push(s);
        }
        // Random edits (substitute, insert, delete) of valid payloads.
        for _ in 0..5000 {
            let mut chars: Vec<char> = valid[rng.below(valid.len())].chars().collect();
            for _ in 0..=rng.below(3) {
                let i = rng.below(chars.len());
                let c = alphabet[rng.below(alphabet.len())];
                match rng.below(3) {
                    0 => chars[i] = c,
                    1 => chars.insert(i, c),
                    _ => {
                        chars.remove(i);
                    }
                }
            }
            inputs.push(chars.into_iter().collect());
        }
        let mut ok = 0;
        for input in &inputs {
            // Reaching the end of the loop is the assertion: no input panics.
            if parse(input).is_ok() {
                ok += 1;
            }
        }
        // Sanity: the corpus is not all trivially rejected nor all accepted.
        assert!(ok > 0 && ok < inputs.len(), "{ok} of {}", inputs.len());
    }

    #[test]
    fn every_encoder_round_trips() {
        let content = QrContent {
            amount: Some(Money {
                minor_units: 79995,
                currency: "710".into(),
            }),
            merchant: Some(MerchantInfo {
                category_code: "5812".into(),
                name: "Café Ünïcödé".into(),
                city: "Gqeberha".into(),
                country_code: "ZA".into(),
                postal_code: Some("6001".into()),
            }),
            reference_label: Some("***".into()),
            terminal_label: Some("TILL 3".into()),
            partner_templates: vec![StaticTemplate::with_values("za.co.mp", ["M123", "X"])],
            ..QrContent::new("za.co.elec", "0f5b3a1e2d9c4b7a8e6f1d2c3b4a5968")
        };
        for scheme in [
            QrScheme::ElectrumMerchantMinimal,
            QrScheme::EmvcoMerchant,
            QrScheme::PseudoEmvcoMerchant,
        ] {
            let payload = encode(scheme, &content).unwrap();
            let qr = parse(&payload).unwrap_or_else(|e| panic!("{scheme:?} {payload}: {e}"));
            assert_eq!(qr.tran_id("za.co.elec"), Some(content.tran_id.as_str()));
            assert_eq!(qr.tran_id("za.co.mp"), Some("M123"));
            if scheme == QrScheme::ElectrumMerchantMinimal {
                assert_eq!(qr.crc(), None);
                continue;
            }
            assert!(qr.crc().is_some());
            assert_eq!(qr.money(), content.amount);
            assert_eq!(qr.merchant_name(), Some("Café Ünïcödé"));
            assert_eq!(qr.postal_code(), Some("6001"));
            assert_eq!(qr.reference_label(), Some("***"));
            assert_eq!(qr.terminal_label(), Some("TILL 3"));
        }
        // The tolerant encoder with nothing but the template still parses with a CRC.
        let bare = QrContent::new("za.co.elec", "T1");
        let qr = parse(&encode(QrScheme::PseudoEmvcoMerchant, &bare).unwrap()).unwrap();
        assert_eq!(qr.tran_id("za.co.elec"), Some("T1"));
        assert_eq!(qr.point_of_initiation(), Some("11"));
        assert!(qr.crc().is_some());
    }

    /// Table: payloads carrying the hub's template in 26 and partners' in 27–51 (as written by
    /// hand, so the parser is not only checked against its own encoder) read back as tag, GUI
    /// and sub-tags.
    /// A template as tag, GUI and sub-tags.
    type Read<'a> = (u8, Option<&'a str>, Vec<(u8, &'a str)>);
    type Expected<'a> = (u8, Option<&'a str>, &'a [(u8, &'a str)]);

    #[test]
    fn account_templates_read_back_tag_gui_and_sub_tags() {
        let cases: &[(&str, &[Expected])] = &[
            (
                ELECTRUM_MINIMAL,
                &[(
                    26,
                    Some("za.co.elec"),
                    &[(1, "f82d7f64feea4f2ab24da94aaf5c2941")],
                )],
            ),
            // Electrum's published combination: itself in 26, Masterpass in 27.
            (
                "00020126200010za.co.elec0102T127300008za.co.mp0108M00012340202X1",
                &[
                    (26, Some("za.co.elec"), &[(1, "T1")]),
                    (27, Some("za.co.mp"), &[(1, "M0001234"), (2, "X1")]),
                ],
            ),
            // The EMVCo sample: 29 and 31 carry no sub-tag 01; 31 has 00 then 03.
            (
                EMVCO_SAMPLE,
                &[
                    (29, Some("D15600000000"), &[(5, "A93FO3230Q")]),
                    (31, Some("D15600000001"), &[(3, "12345678")]),
                ],
            ),
            // A template without a GUI is still listed, with `gui` None.
            ("0002012606010212", &[(26, None, &[(1, "12")])]),
        ];
        for (payload, expected) in cases {
            let qr = parse(payload).unwrap_or_else(|e| panic!("{payload}: {e}"));
            let templates = qr.account_templates();
            let got: Vec<Read> = templates
                .iter()
                .map(|t| (t.tag, t.gui, t.sub_tags.clone()))
                .collect();
            let want: Vec<Read> = expected
                .iter()
                .map(|(tag, gui, subs)| (*tag, *gui, subs.to_vec()))
                .collect();
            assert_eq!(got, want, "{payload}");
        }
        let qr = parse("00020126200010za.co.elec0102T127300008za.co.mp0108M00012340202X1").unwrap();
        let mp = qr
            .account_template("za.co.mp")
            .expect("Masterpass's template");
        assert_eq!(
            (mp.tag, mp.sub(0), mp.sub(1), mp.sub(2), mp.sub(3)),
            (27, Some("za.co.mp"), Some("M0001234"), Some("X1"), None)
        );
        assert_eq!(
            mp.to_static_template(),
            Some(StaticTemplate::with_values("za.co.mp", ["M0001234", "X1"]).at_tag(27))
        );
        assert_eq!(qr.account_template("za.co.other"), None);
    }

    /// The hub's codes as a partner's app meets them: the hub's template in 26 and the
    /// configured partner's in its pinned tag, in both schemes, the CRC still verifying.
    #[test]
    fn the_hub_and_partner_templates_round_trip_in_both_schemes() {
        let content = QrContent {
            amount: Some(Money {
                minor_units: 15000,
                currency: "710".into(),
            }),
            merchant: Some(MerchantInfo {
                category_code: "5411".into(),
                name: "DEMO STORE".into(),
                city: "CAPE TOWN".into(),
                country_code: "ZA".into(),
                postal_code: None,
            }),
            partner_templates: vec![
                StaticTemplate::with_values("za.co.demowallet", ["QRHUB-0001"]).at_tag(33),
                StaticTemplate::with_values("za.co.mp", ["M0001234"]),
            ],
            ..QrContent::new("za.co.qrhub", "0f5b3a1e2d9c4b7a8e6f1d2c3b4a5968")
        };
        for scheme in [QrScheme::ElectrumMerchantMinimal, QrScheme::EmvcoMerchant] {
            let payload = encode(scheme, &content).unwrap();
            let qr = parse(&payload).unwrap_or_else(|e| panic!("{scheme:?} {payload}: {e}"));
            let tags: Vec<(u8, Option<&str>)> = qr
                .account_templates()
                .iter()
                .map(|t| (t.tag, t.gui))
                .collect();
            assert_eq!(
                tags,
                [
                    (26, Some("za.co.qrhub")),
                    (27, Some("za.co.mp")),
                    (33, Some("za.co.demowallet"))
                ],
                "{payload}"
            );
            assert_eq!(
                qr.account_template("za.co.demowallet")
                    .and_then(|t| t.sub(1).map(str::to_owned)),
                Some("QRHUB-0001".to_owned())
            );
            assert_eq!(qr.tran_id("za.co.qrhub"), Some(content.tran_id.as_str()));
            assert_eq!(qr.crc().is_some(), scheme == QrScheme::EmvcoMerchant);
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Printable text with multi-byte characters, 1..=max characters.
        fn value(max: usize) -> impl Strategy<Value = String> {
            proptest::string::string_regex(&format!("[A-Za-z0-9 .*é北😀-]{{1,{max}}}"))
                .expect("a valid regex")
        }

        /// Up to 25 partner templates with distinct pinned tags or none, GUIs of at most 32
        /// characters and sub-tags 01–99 whose template stays within 99 characters.
        fn templates() -> impl Strategy<Value = Vec<StaticTemplate>> {
            let template = (
                any::<bool>(),
                value(32),
                prop::collection::btree_map(1u8..=99, value(12), 0..=3),
            );
            (
                prop::collection::vec(template, 0..=25),
                Just((27u8..=51).collect::<Vec<u8>>()).prop_shuffle(),
            )
                .prop_map(|(templates, tags)| {
                    templates
                        .into_iter()
                        .zip(tags)
                        .map(|((pinned, guid, subs), tag)| StaticTemplate {
                            tag: pinned.then_some(tag),
                            guid,
                            sub_objects: subs
                                .into_iter()
                                .map(|(id, value)| SubObject { id, value })
                                .collect(),
                        })
                        .collect()
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

            /// Whatever templates are given come back from the parser, each at its pinned tag
            /// or, unpinned, at the lowest tags left in order, with the hub's in 26, in every
            /// scheme, and the CRC of the EMVCo ones verifies.
            #[test]
            fn partner_templates_round_trip(templates in templates(), tran_id in "[0-9a-f]{32}") {
                let content = QrContent {
                    partner_templates: templates.clone(),
                    currency: Some("710".into()),
                    merchant: Some(MerchantInfo {
                        category_code: "5411".into(),
                        name: "DEMO STORE".into(),
                        city: "CAPE TOWN".into(),
                        country_code: "ZA".into(),
                        postal_code: None,
                    }),
                    ..QrContent::new("za.co.qrhub", tran_id.clone())
                };
                // The expected placement, computed independently of the encoder.
                let mut taken: Vec<u8> = templates.iter().filter_map(|t| t.tag).collect();
                let mut expected: Vec<StaticTemplate> = Vec::new();
                for t in &templates {
                    let tag = match t.tag {
                        Some(tag) => tag,
                        None => {
                            let free = (27u8..=51).find(|tag| !taken.contains(tag)).expect("room");
                            taken.push(free);
                            free
                        }
                    };
                    expected.push(t.clone().at_tag(tag));
                }
                expected.sort_by_key(|t| t.tag);
                for scheme in [
                    QrScheme::ElectrumMerchantMinimal,
                    QrScheme::EmvcoMerchant,
                    QrScheme::PseudoEmvcoMerchant,
                ] {
                    let payload = encode(scheme, &content)
                        .map_err(|e| TestCaseError::fail(format!("{scheme:?}: {e}")))?;
                    let qr = parse(&payload)
                        .map_err(|e| TestCaseError::fail(format!("{scheme:?} {payload:?}: {e}")))?;
                    let read = qr.account_templates();
                    prop_assert_eq!(read.len(), templates.len() + 1);
                    prop_assert_eq!(read[0].tag, 26);
                    prop_assert_eq!(read[0].gui, Some("za.co.qrhub"));
                    prop_assert_eq!(read[0].sub(1), Some(tran_id.as_str()));
                    let partners: Vec<Option<StaticTemplate>> =
                        read[1..].iter().map(AccountTemplate::to_static_template).collect();
                    let expected: Vec<Option<StaticTemplate>> =
                        expected.iter().cloned().map(Some).collect();
                    prop_assert_eq!(partners, expected);
                    prop_assert_eq!(qr.crc().is_some(), scheme != QrScheme::ElectrumMerchantMinimal);
                }
            }
        }
    }

    #[test]
    fn decimal_amounts() {
        assert_eq!(decimal_to_minor("150.00", 2), Some(15000));
        assert_eq!(decimal_to_minor("150", 2), Some(15000));
        assert_eq!(decimal_to_minor("0.5", 2), Some(50));
        assert_eq!(decimal_to_minor(".5", 2), Some(50));
        assert_eq!(decimal_to_minor("1234", 0), Some(1234));
        assert_eq!(decimal_to_minor("1.234", 3), Some(1234));
        for bad in [
            "",
            ".",
            "1.234",
            "-1.00",
            "1,00",
            "1.2.3",
            "99999999999999999999",
        ] {
            assert_eq!(decimal_to_minor(bad, 2), None, "{bad}");
        }
    }
}
