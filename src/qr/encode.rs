//! Encoders, one per `QrProperties.scheme` (DESIGN §4).

use crate::domain::{currency_exponent, Money};
use crate::model::QrScheme;

use super::crc::append_crc;
use super::encode_error::EncodeError;
use super::tag_path::TagPath;
use super::tlv::TlvWriter;

/// A raw data object inside a partner's template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubObject {
    pub id: u8,
    pub value: String,
}

/// A partner's own merchant account template, written in tags 27–51 after the hub's own in 26.
///
/// Sub-tag `00` is always the partner's GUID (reverse domain, AID or UUID, at most 32
/// characters); `sub_objects` follow in the order given. Electrum's docs show e.g. Masterpass
/// (`za.co.mp`) in tag 27 beside Electrum in 26.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticTemplate {
    /// The tag (27–51) agreed with the partner, or `None` for the lowest tag that no other
    /// template of the payload takes. A partner's app finds its template by GUID, but a fixed
    /// tag keeps every code of one deployment laid out alike.
    pub tag: Option<u8>,
    pub guid: String,
    pub sub_objects: Vec<SubObject>,
}

impl StaticTemplate {
    /// A template whose values are numbered `01`, `02`, … in order, the common layout.
    pub fn with_values<I, S>(guid: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            tag: None,
            guid: guid.into(),
            sub_objects: values
                .into_iter()
                .zip(1u8..)
                .map(|(value, id)| SubObject {
                    id,
                    value: value.into(),
                })
                .collect(),
        }
    }

    /// The same template pinned to `tag`.
    pub fn at_tag(self, tag: u8) -> Self {
        Self {
            tag: Some(tag),
            ..self
        }
    }
}

/// The merchant data of EMVCo tags 52, 58, 59, 60 and 61.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantInfo {
    /// Tag 52: ISO 18245 merchant category code, 4 digits (`5411`).
    pub category_code: String,
    /// Tag 59: at most 25 characters.
    pub name: String,
    /// Tag 60: at most 15 characters.
    pub city: String,
    /// Tag 58: ISO 3166-1 alpha-2, two upper-case letters (`ZA`).
    pub country_code: String,
    /// Tag 61: at most 10 characters.
    pub postal_code: Option<String>,
}

/// What one QR payload carries; each scheme writes the part it uses.
///
/// * `provider_id` and `tran_id` go in tag 26 (sub-tags 00 and 01) in every scheme.
/// * `partner_templates` go in tags 27–51, in every scheme: each at its own tag if it has one,
///   the others at the lowest free tags in order; they are written in ascending tag order.
/// * The rest is written only by the EMVCo schemes. The minimal scheme ignores it: Electrum's
///   published minimal payload carries no amount, merchant or CRC.
/// * `currency` (tag 53, ISO 4217 numeric) defaults to the amount's currency; when both are
///   given they must agree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QrContent {
    pub provider_id: String,
    pub tran_id: String,
    pub partner_templates: Vec<StaticTemplate>,
    pub amount: Option<Money>,
    pub currency: Option<String>,
    pub merchant: Option<MerchantInfo>,
    /// Tag 62 sub-tag 07, at most 25 characters.
    pub terminal_label: Option<String>,
    /// Tag 62 sub-tag 05, at most 25 characters (a 32-hex tranId does not fit; it lives in 26).
    pub reference_label: Option<String>,
}

impl QrContent {
    /// Content with just the hub's template, as the minimal scheme needs.
    pub fn new(provider_id: impl Into<String>, tran_id: impl Into<String>) -> Self {
        Self {
            provider_id: provider_id.into(),
            tran_id: tran_id.into(),
            ..Self::default()
        }
    }
}

/// The hub's merchant account template id.
const PROVIDER_TAG: u8 = 26;
/// The first id for partners' templates; merchant account templates end at 51.
const FIRST_PARTNER_TAG: u8 = 27;
const LAST_TEMPLATE_TAG: u8 = 51;

/// EMVCo field limits (`spec/emv-qr-notes.md` §3.2).
const MAX_AMOUNT: usize = 13;
const MAX_NAME: usize = 25;
const MAX_CITY: usize = 15;
const MAX_POSTAL: usize = 10;
const MAX_ADDITIONAL: usize = 25;

/// Encodes `content` in the payload format of `scheme`.
///
/// * [`QrScheme::ElectrumMerchantMinimal`]: `000201`, tag 26 {00 provider, 01 tranId}, the
///   partner templates. No CRC.
/// * [`QrScheme::EmvcoMerchant`]: a full EMVCo MPM payload with CRC; missing mandatory data
///   (merchant, currency) is an error.
/// * [`QrScheme::PseudoEmvcoMerchant`]: the same layout and CRC, but mandatory tags without
///   data are left out instead of failing, which is what Electrum's swagger calls "not a fully
///   EMVCo compliant string". Values that *are* given are still checked, since a malformed
///   value is a caller's bug rather than missing data.
pub fn encode(scheme: QrScheme, content: &QrContent) -> Result<String, EncodeError> {
    match scheme {
        QrScheme::ElectrumMerchantMinimal => encode_minimal(content),
        QrScheme::EmvcoMerchant => encode_emvco(content, Strictness::Compliant),
        QrScheme::PseudoEmvcoMerchant => encode_emvco(content, Strictness::Tolerant),
    }
}

fn encode_minimal(content: &QrContent) -> Result<String, EncodeError> {
    let mut w = TlvWriter::new();
    w.put(0, "01")?;
    put_templates(&mut w, content)?;
    Ok(w.finish())
}

/// Whether missing mandatory EMVCo data is an error or an omission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strictness {
    Compliant,
    Tolerant,
}

impl Strictness {
    /// A mandatory value: `Some` when present and non-empty; when absent, an error naming
    /// `field` if compliant, `None` (omit the tag) if tolerant.
    fn mandatory<'a>(
        self,
        value: Option<&'a str>,
        field: &'static str,
    ) -> Result<Option<&'a str>, EncodeError> {
        match value.filter(|v| !v.is_empty()) {
            Some(v) => Ok(Some(v)),
            None if self == Strictness::Compliant => Err(EncodeError::Missing { field }),
            None => Ok(None),
        }
    }
}

fn encode_emvco(content: &QrContent, strictness: Strictness) -> Result<String, EncodeError> {
    let merchant = content.merchant.as_ref();
    if merchant.is_none() && strictness == Strictness::Compliant {
        // Name the whole block rather than only its first tag (52).
        return Err(EncodeError::Missing {
            field: "merchant information (tags 52, 58, 59, 60)",
        });
    }
    let currency = payload_currency(content)?;
    // Check every mandatory field up front so a compliant encode names the first missing one
    // before writing anything.
    let mcc = strictness.mandatory(
        merchant.map(|m| m.category_code.as_str()),
        "a merchant category code (tag 52)",
    )?;
    let currency = strictness.mandatory(currency, "a currency (tag 53)")?;
    let country = strictness.mandatory(
        merchant.map(|m| m.country_code.as_str()),
        "a merchant country code (tag 58)",
    )?;
    let name = strictness.mandatory(
        merchant.map(|m| m.name.as_str()),
        "a merchant name (tag 59)",
    )?;
    let city = strictness.mandatory(
        merchant.map(|m| m.city.as_str()),
        "a merchant city (tag 60)",
    )?;
    let postal = merchant
        .and_then(|m| m.postal_code.as_deref())
        .filter(|p| !p.is_empty());

    let mut w = TlvWriter::new();
    w.put(0, "01")?;
    // 12 = dynamic (this transaction, this amount); 11 = static, the payer keys the amount in.
    w.put(1, if content.amount.is_some() { "12" } else { "11" })?;
    put_templates(&mut w, content)?;
    if let Some(mcc) = mcc {
        check_digits("merchant category code", mcc, 4, "4 digits")?;
        w.put(52, mcc)?;
    }
    if let Some(currency) = currency {
        check_digits(
            "currency",
            currency,
            3,
            "an ISO 4217 numeric code (3 digits)",
        )?;
        w.put(53, currency)?;
    }
    if let Some(amount) = &content.amount {
        w.put(54, &amount_text(amount)?)?;
    }
    if let Some(country) = country {
        if !(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(EncodeError::InvalidField {
                field: "country code",
                value: country.to_owned(),
                expected: "two upper-case letters (ISO 3166-1 alpha-2)",
            });
        }
        w.put(58, country)?;
    }
    if let Some(name) = name {
        check_max("merchant name", "59", name, MAX_NAME)?;
        w.put(59, name)?;
    }
    if let Some(city) = city {
        check_max("merchant city", "60", city, MAX_CITY)?;
        w.put(60, city)?;
    }
    if let Some(postal) = postal {
        check_max("postal code", "61", postal, MAX_POSTAL)?;
        w.put(61, postal)?;
    }
    if content.reference_label.is_some() || content.terminal_label.is_some() {
        w.template(62, |t| {
            if let Some(reference) = &content.reference_label {
                check_max("reference label", "62.05", reference, MAX_ADDITIONAL)?;
                t.put(5, reference)?;
            }
            if let Some(terminal) = &content.terminal_label {
                check_max("terminal label", "62.07", terminal, MAX_ADDITIONAL)?;
                t.put(7, terminal)?;
            }
            Ok(())
        })?;
    }
    let mut payload = w.finish();
    append_crc(&mut payload);
    Ok(payload)
}

/// The largest globally unique identifier (sub-tag 00 of a merchant account template).
const MAX_GUI: usize = 32;

/// Tag 26 (the hub) then the partners' templates in 27–51, in ascending tag order.
fn put_templates(w: &mut TlvWriter, content: &QrContent) -> Result<(), EncodeError> {
    let placed = place_templates(&content.partner_templates)?;
    check_gui(PROVIDER_TAG, &content.provider_id)?;
    w.template(PROVIDER_TAG, |t| {
        t.put(0, &content.provider_id)?.put(1, &content.tran_id)?;
        Ok(())
    })?;
    for (id, template) in placed {
        if template.sub_objects.iter().any(|s| s.id == 0) {
            return Err(EncodeError::ReservedSubTag {
                guid: template.guid.clone(),
            });
        }
        // The parser refuses a repeated id, so the encoder must not write one.
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = template.sub_objects.iter().find(|s| !seen.insert(s.id)) {
            return Err(EncodeError::DuplicateSubTag {
                guid: template.guid.clone(),
                id: dup.id,
            });
        }
        check_gui(id, &template.guid)?;
        w.template(id, |t| {
            t.put(0, &template.guid)?;
            for sub in &template.sub_objects {
                t.put(sub.id, &sub.value)?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// The tag of every partner template, sorted by tag: pinned ones where they ask, the others
/// at the lowest tags left, in the order given.
fn place_templates(
    templates: &[StaticTemplate],
) -> Result<Vec<(u8, &StaticTemplate)>, EncodeError> {
    let room = usize::from(LAST_TEMPLATE_TAG - FIRST_PARTNER_TAG) + 1;
    if templates.len() > room {
        return Err(EncodeError::TooManyTemplates {
            count: templates.len(),
        });
    }
    // Index by tag - FIRST_PARTNER_TAG: which template holds each of 27..=51.
    let mut slots: Vec<Option<&StaticTemplate>> = vec![None; room];
    for template in templates {
        let Some(tag) = template.tag else { continue };
        if !(FIRST_PARTNER_TAG..=LAST_TEMPLATE_TAG).contains(&tag) {
            return Err(EncodeError::TemplateTagOutOfRange {
                guid: template.guid.clone(),
                tag,
            });
        }
        let slot = &mut slots[usize::from(tag - FIRST_PARTNER_TAG)];
        if let Some(first) = slot {
            return Err(EncodeError::DuplicateTemplateTag {
                tag,
                first: first.guid.clone(),
                second: template.guid.clone(),
            });
        }
        *slot = Some(template);
    }
    let mut free = 0;
    for template in templates.iter().filter(|t| t.tag.is_none()) {
        // At most `room` templates in all, so a free slot is always left for this one.
        while slots.get(free).is_some_and(Option::is_some) {
            free += 1;
        }
        match slots.get_mut(free) {
            Some(slot) => *slot = Some(template),
            None => {
                return Err(EncodeError::TooManyTemplates {
                    count: templates.len(),
                })
            }
        }
    }
    Ok(slots
        .into_iter()
        .zip(FIRST_PARTNER_TAG..)
        .filter_map(|(slot, tag)| slot.map(|t| (tag, t)))
        .collect())
}

/// EMVCo limits a merchant account template's GUI (sub-tag 00) to 32 characters.
fn check_gui(tag: u8, gui: &str) -> Result<(), EncodeError> {
    let chars = gui.chars().count();
    if chars > MAX_GUI {
        return Err(EncodeError::GuiTooLong {
            tag: TagPath::root(tag).child(0),
            chars,
        });
    }
    Ok(())
}

/// Tag 53: the explicit currency, else the amount's; they must agree when both are given.
fn payload_currency(content: &QrContent) -> Result<Option<&str>, EncodeError> {
    match (&content.currency, &content.amount) {
        (Some(currency), Some(amount)) if *currency != amount.currency => {
            Err(EncodeError::CurrencyMismatch {
                amount_currency: amount.currency.clone(),
                currency: currency.clone(),
            })
        }
        (Some(currency), _) => Ok(Some(currency)),
        (None, Some(amount)) => Ok(Some(&amount.currency)),
        (None, None) => Ok(None),
    }
}

/// Tag 54: major units with the currency's decimal places, non-negative, at most 13 characters.
fn amount_text(amount: &Money) -> Result<String, EncodeError> {
    let text = amount.to_decimal_string(currency_exponent(&amount.currency));
    if amount.minor_units < 0 {
        return Err(EncodeError::InvalidField {
            field: "amount",
            value: text,
            expected: "zero or more",
        });
    }
    check_max("amount", "54", &text, MAX_AMOUNT)?;
    Ok(text)
}

fn check_digits(
    field: &'static str,
    value: &str,
    len: usize,
    expected: &'static str,
) -> Result<(), EncodeError> {
    if value.len() == len && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(EncodeError::InvalidField {
            field,
            value: value.to_owned(),
            expected,
        })
    }
}

fn check_max(
    field: &'static str,
    tag: &'static str,
    value: &str,
    max: usize,
) -> Result<(), EncodeError> {
    let chars = value.chars().count();
    if chars > max {
        Err(EncodeError::FieldTooLong {
            field,
            tag,
            chars,
            max,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRAN_ID: &str = "f82d7f64feea4f2ab24da94aaf5c2941";

    fn zar(minor_units: i64) -> Money {
        Money {
            minor_units,
            currency: "710".into(),
        }
    }

    fn merchant(city: &str) -> MerchantInfo {
        MerchantInfo {
            category_code: "5411".into(),
            name: "TEST STORE".into(),
            city: city.into(),
            country_code: "ZA".into(),
            postal_code: None,
        }
    }

    /// The §3.5 dynamic example's data.
    fn dynamic_example() -> QrContent {
        QrContent {
            amount: Some(zar(15000)),
            currency: Some("710".into()),
            merchant: Some(merchant("JOHANNESBURG")),
            reference_label: Some("INV0001234".into()),
            terminal_label: Some("POS00001".into()),
            ..QrContent::new("za.co.elec", TRAN_ID)
        }
    }

    #[test]
    fn minimal_matches_electrums_published_example() {
        let payload = encode(
            QrScheme::ElectrumMerchantMinimal,
            &QrContent::new("za.co.elec", TRAN_ID),
        )
        .unwrap();
        assert_eq!(
            payload,
            "00020126500010za.co.elec0132f82d7f64feea4f2ab24da94aaf5c2941"
        );
    }

    #[test]
    fn minimal_ignores_emvco_data_and_adds_partner_templates() {
        let content = QrContent {
            partner_templates: vec![StaticTemplate::with_values("za.co.mp", ["1234567890"])],
            ..dynamic_example()
        };
        let payload = encode(QrScheme::ElectrumMerchantMinimal, &content).unwrap();
        assert_eq!(
            payload,
            "00020126500010za.co.elec0132f82d7f64feea4f2ab24da94aaf5c29412726\
             0008za.co.mp01101234567890"
        );
    }

    #[test]
    fn emvco_dynamic_matches_the_worked_example() {
        let payload = encode(QrScheme::EmvcoMerchant, &dynamic_example()).unwrap();
        assert_eq!(
            payload,
            "00020101021226500010za.co.elec0132f82d7f64feea4f2ab24da94aaf5c29415204541153037105406150.005802ZA5910TEST STORE6012JOHANNESBURG62260510INV00012340708POS000016304D471"
        );
    }

    #[test]
    fn emvco_static_matches_the_worked_example() {
        let content = QrContent {
            currency: Some("710".into()),
            merchant: Some(merchant("CAPE TOWN")),
            ..QrContent::new("za.co.elec", "MERCHANT0001")
        };
        let payload = encode(QrScheme::EmvcoMerchant, &content).unwrap();
        assert_eq!(
            payload,
            "00020101021126300010za.co.elec0112MERCHANT00015204541153037105802ZA5910TEST STORE6009CAPE TOWN63049A38"
        );
    }

    #[test]
    fn currency_defaults_to_the_amounts() {
        let content = QrContent {
            currency: None,
            ..dynamic_example()
        };
        assert_eq!(
            encode(QrScheme::EmvcoMerchant, &content).unwrap(),
            encode(QrScheme::EmvcoMerchant, &dynamic_example()).unwrap()
        );
        let content = QrContent {
            currency: Some("840".into()),
            ..dynamic_example()
        };
        assert!(matches!(
            encode(QrScheme::EmvcoMerchant, &content),
            Err(EncodeError::CurrencyMismatch { .. })
        ));
    }

    #[test]
    fn emvco_names_missing_mandatory_data() {
        let no_merchant = QrContent {
            merchant: None,
            ..dynamic_example()
        };
        let err = encode(QrScheme::EmvcoMerchant, &no_merchant).unwrap_err();
        assert_eq!(
            err.to_string(),
            "an EMVCo payload needs merchant information (tags 52, 58, 59, 60)"
        );

        let no_currency = QrContent {
            amount: None,
            currency: None,
            ..dynamic_example()
        };
        assert_eq!(
            encode(QrScheme::EmvcoMerchant, &no_currency).unwrap_err(),
            EncodeError::Missing {
                field: "a currency (tag 53)"
            }
        );

        let mut empty_city = dynamic_example();
        if let Some(m) = empty_city.merchant.as_mut() {
            m.city.clear();
        }
        assert_eq!(
            encode(QrScheme::EmvcoMerchant, &empty_city).unwrap_err(),
            EncodeError::Missing {
                field: "a merchant city (tag 60)"
            }
        );
    }

    #[test]
    fn pseudo_emvco_omits_what_it_cannot_fill() {
        // Same data as the compliant encoder: same payload.
        assert_eq!(
            encode(QrScheme::PseudoEmvcoMerchant, &dynamic_example()).unwrap(),
            encode(QrScheme::EmvcoMerchant, &dynamic_example()).unwrap()
        );
        let content = QrContent {
            amount: Some(zar(15000)),
            ..QrContent::new("za.co.elec", TRAN_ID)
        };
        let payload = encode(QrScheme::PseudoEmvcoMerchant, &content).unwrap();
        let body = "00020101021226500010za.co.elec0132f82d7f64feea4f2ab24da94aaf5c2941\
                    53037105406150.006304";
        assert!(payload.starts_with(body), "{payload}");
        assert_eq!(payload.len(), body.len() + 4);
        // Given values are still checked.
        let mut long_name = dynamic_example();
        if let Some(m) = long_name.merchant.as_mut() {
            m.name = "A".repeat(26);
        }
        assert!(matches!(
            encode(QrScheme::PseudoEmvcoMerchant, &long_name),
            Err(EncodeError::FieldTooLong {
                tag: "59",
                chars: 26,
                max: 25,
                ..
            })
        ));
    }

    #[test]
    fn postal_code_is_written_after_the_city() {
        let mut content = dynamic_example();
        if let Some(m) = content.merchant.as_mut() {
            m.postal_code = Some("2001".into());
        }
        let payload = encode(QrScheme::EmvcoMerchant, &content).unwrap();
        assert!(
            payload.contains("6012JOHANNESBURG61042001622605"),
            "{payload}"
        );
    }

    #[test]
    fn field_limits_are_errors() {
        type Mutation = Box<dyn Fn(&mut QrContent)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|c| c.tran_id = "x".repeat(90)),
                "tag 26: value has 108 characters, a data object holds at most 99",
            ),
            (
                Box::new(|c| c.tran_id.clear()),
                "tag 26.01: a value cannot be empty",
            ),
            (
                Box::new(|c| c.reference_label = Some("R".repeat(26))),
                "reference label (tag 62.05) has 26 characters, at most 25 allowed",
            ),
            (
                Box::new(|c| c.amount = Some(zar(-1))),
                "amount \"-0.01\" is not zero or more",
            ),
            (
                Box::new(|c| c.amount = Some(zar(1_000_000_000_000))),
                "amount (tag 54) has 14 characters, at most 13 allowed",
            ),
            (
                Box::new(|c| {
                    if let Some(m) = c.merchant.as_mut() {
                        m.category_code = "541".into();
                    }
                }),
                "merchant category code \"541\" is not 4 digits",
            ),
            (
                Box::new(|c| {
                    if let Some(m) = c.merchant.as_mut() {
                        m.country_code = "za".into();
                    }
                }),
                "country code \"za\" is not two upper-case letters (ISO 3166-1 alpha-2)",
            ),
        ];
        for (mutate, expected) in cases {
            let mut content = dynamic_example();
            mutate(&mut content);
            let err = encode(QrScheme::EmvcoMerchant, &content).unwrap_err();
            assert_eq!(err.to_string(), expected);
        }
    }

    #[test]
    fn partner_templates_fill_27_to_51() {
        let mut content = QrContent::new("za.co.elec", "T1");
        content.partner_templates = (0..25)
            .map(|i| StaticTemplate::with_values(format!("p{i}"), ["v"]))
            .collect();
        let payload = encode(QrScheme::ElectrumMerchantMinimal, &content).unwrap();
        assert!(payload.ends_with("51120003p240101v"), "{payload}");
        content
            .partner_templates
            .push(StaticTemplate::with_values("one.too.many", ["v"]));
        assert_eq!(
            encode(QrScheme::ElectrumMerchantMinimal, &content).unwrap_err(),
            EncodeError::TooManyTemplates { count: 26 }
        );
        content.partner_templates = vec![StaticTemplate {
            tag: None,
            guid: "p".into(),
            sub_objects: vec![SubObject {
                id: 0,
                value: "x".into(),
            }],
        }];
        assert!(matches!(
            encode(QrScheme::ElectrumMerchantMinimal, &content),
            Err(EncodeError::ReservedSubTag { .. })
        ));
    }

    /// Two sub-objects with one id used to encode to a payload that `parse` refuses as a
    /// duplicate tag (noticed while writing the QR round-trip fuzz target and properties).
    #[test]
    fn a_repeated_sub_tag_is_refused_not_written() {
        let mut content = QrContent::new("za.co.elec", "T1");
        content.partner_templates = vec![StaticTemplate {
            tag: None,
            guid: "za.co.mp".into(),
            sub_objects: vec![
                SubObject {
                    id: 1,
                    value: "a".into(),
                },
                SubObject {
                    id: 1,
                    value: "b".into(),
                },
            ],
        }];
        for scheme in [
            QrScheme::ElectrumMerchantMinimal,
            QrScheme::PseudoEmvcoMerchant,
        ] {
            assert_eq!(
                encode(scheme, &content).unwrap_err(),
                EncodeError::DuplicateSubTag {
                    guid: "za.co.mp".into(),
                    id: 1
                }
            );
        }
    }

    /// A partner's own template (GUI + the merchant's reference at that partner) sits at the
    /// tag agreed with it; templates without one fill the lowest tags left, in order; all are
    /// written in ascending tag order after the hub's 26, in both the minimal and the EMVCo
    /// layout.
    #[test]
    fn partner_templates_take_their_pinned_tags() {
        let content = QrContent {
            partner_templates: vec![
                StaticTemplate::with_values("za.co.walleta", ["A-1"]).at_tag(30),
                StaticTemplate::with_values("za.co.walletb", ["B-2"]),
                StaticTemplate::with_values("za.co.walletc", ["C-3"]).at_tag(27),
                StaticTemplate::with_values("za.co.walletd", ["D-4"]),
            ],
            ..dynamic_example()
        };
        let hub = "26500010za.co.elec0132f82d7f64feea4f2ab24da94aaf5c2941";
        let partners = "27240013za.co.walletc0103C-3\
                        28240013za.co.walletb0103B-2\
                        29240013za.co.walletd0103D-4\
                        30240013za.co.walleta0103A-1";
        assert_eq!(
            encode(QrScheme::ElectrumMerchantMinimal, &content).unwrap(),
            format!("000201{hub}{partners}")
        );
        let emvco = encode(QrScheme::EmvcoMerchant, &content).unwrap();
        let body = format!(
            "000201010212{hub}{partners}5204541153037105406150.005802ZA5910TEST STORE\
             6012JOHANNESBURG62260510INV00012340708POS000016304"
        );
        assert_eq!(
            emvco,
            format!(
                "{body}{}",
                crate::qr::crc_hex(crate::qr::crc16(body.as_bytes()))
            )
        );
    }

    #[test]
    fn partner_template_limits_are_errors() {
        let t = |guid: &str| StaticTemplate::with_values(guid, ["R"]);
        let cases: Vec<(Vec<StaticTemplate>, EncodeError)> = vec![
            (
                vec![t("za.co.w").at_tag(26)],
                EncodeError::TemplateTagOutOfRange {
                    guid: "za.co.w".into(),
                    tag: 26,
                },
            ),
            (
                vec![t("za.co.w").at_tag(52)],
                EncodeError::TemplateTagOutOfRange {
                    guid: "za.co.w".into(),
                    tag: 52,
                },
            ),
            (
                vec![
                    t("za.co.a").at_tag(31),
                    t("za.co.b"),
                    t("za.co.c").at_tag(31),
                ],
                EncodeError::DuplicateTemplateTag {
                    tag: 31,
                    first: "za.co.a".into(),
                    second: "za.co.c".into(),
                },
            ),
            (
                vec![t(&"g".repeat(33))],
                EncodeError::GuiTooLong {
                    tag: TagPath::root(27).child(0),
                    chars: 33,
                },
            ),
            (
                (27..=51)
                    .map(|tag| t(&format!("p{tag}")).at_tag(tag))
                    .chain([t("one.too.many")])
                    .collect(),
                EncodeError::TooManyTemplates { count: 26 },
            ),
        ];
        for (templates, expected) in cases {
            let content = QrContent {
                partner_templates: templates,
                ..dynamic_example()
            };
            for scheme in [QrScheme::ElectrumMerchantMinimal, QrScheme::EmvcoMerchant] {
                assert_eq!(encode(scheme, &content).unwrap_err(), expected);
            }
        }
        // 32 characters is the most a GUI may have, the hub's own included.
        let content = QrContent {
            partner_templates: vec![t(&"g".repeat(32)).at_tag(51)],
            ..QrContent::new("h".repeat(32), "T1")
        };
        assert!(encode(QrScheme::ElectrumMerchantMinimal, &content).is_ok());
        let content = QrContent::new("h".repeat(33), "T1");
        assert_eq!(
            encode(QrScheme::ElectrumMerchantMinimal, &content)
                .unwrap_err()
                .to_string(),
            "tag 26.00: the globally unique identifier (sub-tag 00) has 33 characters, at most 32 allowed"
        );
    }

    #[test]
    fn currency_exponent_is_respected() {
        let content = QrContent {
            amount: Some(Money {
                minor_units: 1234,
                currency: "392".into(),
            }),
            currency: None,
            ..dynamic_example()
        };
        let payload = encode(QrScheme::EmvcoMerchant, &content).unwrap();
        assert!(payload.contains("530339254041234"), "{payload}");
    }
}
