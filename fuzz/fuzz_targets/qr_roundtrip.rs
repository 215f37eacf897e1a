//! Structured QR content, bounded to what the format can hold, through every encoder: an
//! encoded payload must parse, give back the tranId and the data, and (EMVCo) carry a CRC
//! that verifies.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use qrhub::domain::Money;
use qrhub::model::QrScheme;
use qrhub::qr::{self, MerchantInfo, QrContent, StaticTemplate, SubObject};

/// At most `max` characters of `s`, never empty (the format has no empty values).
fn bounded(s: String, max: usize) -> String {
    let s: String = s.chars().take(max).collect();
    if s.is_empty() {
        "x".to_owned()
    } else {
        s
    }
}

#[derive(Debug, Arbitrary)]
struct Template {
    guid: String,
    values: Vec<(u8, String)>,
}

#[derive(Debug, Arbitrary)]
struct Merchant {
    category_code: u16,
    name: String,
    city: String,
    country: [u8; 2],
    postal_code: Option<String>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    provider_id: String,
    tran_id: String,
    templates: Vec<Template>,
    amount: Option<(u64, u8)>,
    explicit_currency: bool,
    merchant: Option<Merchant>,
    terminal_label: Option<String>,
    reference_label: Option<String>,
    /// Raw, unbounded strings now and then, to reach the encoders' refusals.
    raw: Option<(String, String)>,
}

const CURRENCIES: [&str; 5] = ["710", "392", "048", "840", "978"];

fn content(input: Input) -> QrContent {
    let provider_id = bounded(input.provider_id, 30);
    // Tag 26 holds 00(provider) and 01(tranId): 8 characters of headers, 99 in all.
    let tran_id = bounded(input.tran_id, 91 - provider_id.chars().count());
    let partner_templates = input
        .templates
        .into_iter()
        .take(3)
        .map(|t| StaticTemplate {
            tag: None,
            guid: bounded(t.guid, 20),
            sub_objects: t
                .values
                .into_iter()
                .take(3)
                .map(|(id, v)| SubObject {
                    id: id % 100,
                    value: bounded(v, 15),
                })
                .collect(),
        })
        .collect();
    let amount = input.amount.map(|(units, c)| Money {
        // Up to 13 characters of tag 54 with any exponent.
        minor_units: (units % 1_000_000_000) as i64,
        currency: CURRENCIES[usize::from(c) % CURRENCIES.len()].to_owned(),
    });
    let merchant = input.merchant.map(|m| MerchantInfo {
        category_code: format!("{:04}", m.category_code % 10_000),
        name: bounded(m.name, 25),
        city: bounded(m.city, 15),
        country_code: m
            .country
            .iter()
            .map(|b| char::from(b'A' + b % 26))
            .collect(),
        postal_code: m.postal_code.map(|p| bounded(p, 10)),
    });
    let mut content = QrContent {
        provider_id,
        tran_id,
        partner_templates,
        currency: if input.explicit_currency {
            amount.as_ref().map(|a| a.currency.clone())
        } else {
            None
        },
        amount,
        merchant,
        terminal_label: input.terminal_label.map(|s| bounded(s, 25)),
        reference_label: input.reference_label.map(|s| bounded(s, 25)),
    };
    if let Some((provider, tran)) = input.raw {
        content.provider_id = provider;
        content.tran_id = tran;
    }
    content
}

fuzz_target!(|input: Input| {
    let content = content(input);
    for scheme in [
        QrScheme::ElectrumMerchantMinimal,
        QrScheme::EmvcoMerchant,
        QrScheme::PseudoEmvcoMerchant,
    ] {
        let Ok(payload) = qr::encode(scheme, &content) else {
            continue;
        };
        let parsed = qr::parse(&payload).unwrap_or_else(|e| {
            panic!("{scheme:?} encoded a payload it cannot parse: {e}\n{payload:?}\n{content:?}")
        });
        qrhub_fuzz::check_parsed(&payload, &parsed);
        assert_eq!(
            parsed.tran_id(&content.provider_id),
            Some(content.tran_id.as_str()),
            "{scheme:?}: tranId lost\n{payload:?}"
        );
        for (template, tag) in content.partner_templates.iter().zip(27u8..) {
            let object = parsed.get(tag).expect("partner template written");
            assert_eq!(object.sub_value(0), Some(template.guid.as_str()));
            for sub in &template.sub_objects {
                assert_eq!(object.sub_value(sub.id), Some(sub.value.as_str()));
            }
        }
        if scheme == QrScheme::ElectrumMerchantMinimal {
            assert_eq!(parsed.crc(), None);
            continue;
        }
        let crc = parsed
            .crc()
            .expect("an EMVCo payload carries a verified CRC");
        let (body, tag) = payload.split_at(payload.len() - 4);
        assert!(body.ends_with("6304"));
        assert_eq!(qr::crc16(body.as_bytes()), crc);
        assert_eq!(tag, qr::crc_hex(crc));
        if content.amount.is_some() {
            assert_eq!(parsed.money(), content.amount, "{payload:?}");
            assert_eq!(parsed.point_of_initiation(), Some("12"));
        } else {
            assert_eq!(parsed.point_of_initiation(), Some("11"));
        }
        if let Some(m) = &content.merchant {
            assert_eq!(parsed.merchant_name(), Some(m.name.as_str()));
            assert_eq!(parsed.merchant_city(), Some(m.city.as_str()));
            assert_eq!(parsed.country_code(), Some(m.country_code.as_str()));
            assert_eq!(
                parsed.merchant_category_code(),
                Some(m.category_code.as_str())
            );
            assert_eq!(parsed.postal_code(), m.postal_code.as_deref());
        }
        assert_eq!(parsed.terminal_label(), content.terminal_label.as_deref());
        assert_eq!(parsed.reference_label(), content.reference_label.as_deref());
    }
});
