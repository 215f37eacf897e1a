//! `[partners.qr_template]`: a partner's own merchant account template, written in tags 27–51
//! of every QR code beside the hub's in 26 (DESIGN.md §4), so that one printed or displayed
//! code can be paid from that partner's app as well as through the hub.
//!
//! The template is the partner's globally unique identifier (sub-tag 00) and the merchant's
//! reference at that partner (sub-tag `reference_sub_tag`, 01 by default). The reference is
//! the partner-wide `merchant_reference` unless `merchants` names the request's merchant
//! (`originator.merchant.merchantId`). It is keyed by merchant, not by POS client, because the
//! reference is the merchant's account with the partner: one POS client serves many merchants,
//! and one merchant may use several POS clients.

use serde::Deserialize;
use std::collections::HashSet;

use super::{invalid, ConfigError, PartnerSettings};
use crate::qr::{StaticTemplate, SubObject};

/// EMVCo: a merchant account template's GUI (sub-tag 00) has at most 32 characters.
const MAX_GUI: usize = 32;
/// One data object holds at most 99 characters: the template's whole body too.
const MAX_TEMPLATE: usize = 99;
/// Tag 26 is the hub's own template; partners have the rest of 26–51.
const FIRST_TAG: u8 = 27;
const LAST_TAG: u8 = 51;
/// `originator.merchant.merchantId` is exactly 15 characters (the interface's schema), so an
/// override keyed by anything else could never apply.
const MERCHANT_ID_CHARS: usize = 15;

/// A partner's merchant account template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerQrTemplate {
    /// The tag agreed with the partner (27–51). Without one, the template takes the lowest
    /// tag no other partner pins, in the order of `[[partners]]`; either way it is fixed at
    /// start-up, so every code of a deployment lays the partner out alike.
    #[serde(default)]
    pub tag: Option<u8>,
    /// Sub-tag 00: the partner's globally unique identifier (reverse domain, AID or UUID).
    pub gui: String,
    /// The sub-tag that carries the merchant's reference (01–99).
    #[serde(default = "default_reference_sub_tag")]
    pub reference_sub_tag: u8,
    /// The reference for merchants `merchants` does not list; without it, only those merchants'
    /// codes carry this partner's template.
    #[serde(default)]
    pub merchant_reference: Option<String>,
    /// Per-merchant references, by `originator.merchant.merchantId`.
    #[serde(default)]
    pub merchants: Vec<MerchantReference>,
}

/// One merchant's reference at a partner.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantReference {
    /// `originator.merchant.merchantId` of the createQrCode request (15 characters).
    pub merchant_id: String,
    pub merchant_reference: String,
}

fn default_reference_sub_tag() -> u8 {
    1
}

impl PartnerQrTemplate {
    /// The reference for `merchant_id`: its own, else the partner-wide one.
    fn reference_for(&self, merchant_id: &str) -> Option<&str> {
        self.merchants
            .iter()
            .find(|m| m.merchant_id == merchant_id)
            .map(|m| m.merchant_reference.as_str())
            .or(self.merchant_reference.as_deref())
    }

    /// Characters of the template's body with this reference: 00 + GUI, sub-tag + reference.
    fn body_chars(&self, reference: &str) -> usize {
        4 + self.gui.chars().count() + 4 + reference.chars().count()
    }
}

/// The partners' templates for a code of `merchant_id`, each at its tag, in `[[partners]]`
/// order. Partners without a template, or without a reference for this merchant, are left out.
pub(super) fn templates_for(
    partners: &[PartnerSettings],
    merchant_id: &str,
) -> Vec<StaticTemplate> {
    resolved_tags(partners)
        .into_iter()
        .filter_map(|(partner, tag)| {
            let template = partner.qr_template.as_ref()?;
            let reference = template.reference_for(merchant_id)?;
            Some(StaticTemplate {
                tag: Some(tag),
                guid: template.gui.clone(),
                sub_objects: vec![SubObject {
                    id: template.reference_sub_tag,
                    value: reference.to_owned(),
                }],
            })
        })
        .collect()
}

/// Every partner that has a template, with its tag: pinned, else the lowest not pinned by any
/// partner and not yet given. Tags that do not fit (checked by [`validate`]) are left out.
fn resolved_tags(partners: &[PartnerSettings]) -> Vec<(&PartnerSettings, u8)> {
    let mut taken: HashSet<u8> = partners
        .iter()
        .filter_map(|p| p.qr_template.as_ref()?.tag)
        .collect();
    partners
        .iter()
        .filter_map(|p| {
            let template = p.qr_template.as_ref()?;
            let tag = match template.tag {
                Some(tag) => tag,
                None => {
                    let free = (FIRST_TAG..=LAST_TAG).find(|t| !taken.contains(t))?;
                    taken.insert(free);
                    free
                }
            };
            Some((p, tag))
        })
        .collect()
}

/// Checks every partner's template, naming the key of the first problem: lengths (GUI ≤ 32,
/// each reference ≤ 99 and the template's body ≤ 99 with each), tags (27–51, unique, at most
/// 25 partners), GUIs unique and not the hub's, merchant ids of 15 characters, listed once.
pub(super) fn validate(
    partners: &[PartnerSettings],
    hub_provider_id: &str,
) -> Result<(), ConfigError> {
    let with_template = partners.iter().filter(|p| p.qr_template.is_some()).count();
    let room = usize::from(LAST_TAG - FIRST_TAG) + 1;
    if with_template > room {
        return Err(invalid(
            "partners[].qr_template",
            format!(
                "{with_template} partners have one; tags 27-51 hold at most {room} beside the hub's in 26"
            ),
        ));
    }
    let mut tags = HashSet::new();
    let mut guis = HashSet::new();
    for (i, p) in partners.iter().enumerate() {
        let Some(t) = &p.qr_template else { continue };
        let key = |field: &str| format!("partners[{i}].qr_template.{field}");
        if let Some(tag) = t.tag {
            if !(FIRST_TAG..=LAST_TAG).contains(&tag) {
                return Err(invalid(
                    key("tag"),
                    format!("{tag} is not 27 to 51 (26 is the hub's own template)"),
                ));
            }
            if !tags.insert(tag) {
                return Err(invalid(
                    key("tag"),
                    format!("{tag} is pinned by another partner"),
                ));
            }
        }
        check_text(&key("gui"), &t.gui, MAX_GUI)?;
        if t.gui == hub_provider_id {
            return Err(invalid(
                key("gui"),
                "is hub.qr_provider_id; a partner's template needs the partner's own identifier",
            ));
        }
        if !guis.insert(t.gui.as_str()) {
            return Err(invalid(key("gui"), "is another partner's too"));
        }
        if !(1..=99).contains(&t.reference_sub_tag) {
            return Err(invalid(
                key("reference_sub_tag"),
                "must be 1 to 99 (00 is the GUI)",
            ));
        }
        if t.merchant_reference.is_none() && t.merchants.is_empty() {
            return Err(invalid(
                key("merchant_reference"),
                "is required when no merchants are listed; without either the template is never written",
            ));
        }
        if let Some(reference) = &t.merchant_reference {
            check_reference(&key("merchant_reference"), t, reference)?;
        }
        let mut merchants = HashSet::new();
        for (j, m) in t.merchants.iter().enumerate() {
            let key = |field: &str| format!("partners[{i}].qr_template.merchants[{j}].{field}");
            if m.merchant_id.chars().count() != MERCHANT_ID_CHARS {
                return Err(invalid(
                    key("merchant_id"),
                    format!(
                        "{:?} is not {MERCHANT_ID_CHARS} characters, as originator.merchant.merchantId always is",
                        m.merchant_id
                    ),
                ));
            }
            if !merchants.insert(m.merchant_id.as_str()) {
                return Err(invalid(key("merchant_id"), "is listed twice"));
            }
            check_reference(&key("merchant_reference"), t, &m.merchant_reference)?;
        }
    }
    Ok(())
}

fn check_reference(key: &str, t: &PartnerQrTemplate, reference: &str) -> Result<(), ConfigError> {
    check_text(key, reference, MAX_TEMPLATE)?;
    let body = t.body_chars(reference);
    if body > MAX_TEMPLATE {
        return Err(invalid(
            key,
            format!(
                "makes the template {body} characters with the GUI; one data object holds at most {MAX_TEMPLATE}"
            ),
        ));
    }
    Ok(())
}

/// 1 to `max` characters, none of them control characters (a scanner shows these values).
fn check_text(key: &str, value: &str, max: usize) -> Result<(), ConfigError> {
    let chars = value.chars().count();
    if chars == 0 || chars > max {
        return Err(invalid(
            key,
            format!("has {chars} characters; it must have 1 to {max}"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(key, "must not contain control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Settings;
    use crate::qr::StaticTemplate;

    const HASH: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
    const MERCHANT: &str = "000000000012345";
    const OTHER_MERCHANT: &str = "000000000099999";

    /// A hub whose partners `w0`, `w1`, … have these `[partners.qr_template]` bodies (an
    /// empty one: no template).
    fn settings(templates: &[&str]) -> Result<Settings, super::ConfigError> {
        let mut text = String::from(
            "[server]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"sqlite://data/x.db\"\n\
             [hub]\ninstitution_id = \"qrhub\"\nqr_provider_id = \"za.co.qrhub\"\n",
        );
        for (i, template) in templates.iter().enumerate() {
            text.push_str(&format!(
                "[[partners]]\nid = \"w{i}\"\nname = \"W\"\npassword_hash = \"{HASH}\"\n\
                 base_url = \"http://127.0.0.1:1\"\nusername = \"qrhub\"\npassword = \"x\"\n\
                 timeout = \"1s\"\n"
            ));
            if !template.is_empty() {
                text.push_str(&format!("[partners.qr_template]\n{template}\n"));
            }
        }
        Settings::from_toml(&text)
    }

    fn error(templates: &[&str]) -> String {
        match settings(templates) {
            Ok(_) => panic!("accepted: {templates:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn tags_are_pinned_or_the_lowest_free_and_references_follow_the_merchant() {
        let s = settings(&[
            "gui = \"za.co.a\"\nmerchant_reference = \"HUB-AT-A\"",
            "",
            "gui = \"za.co.b\"\ntag = 27\nreference_sub_tag = 2\nmerchant_reference = \"HUB-AT-B\"",
            &format!(
                "gui = \"za.co.c\"\n[[partners.qr_template.merchants]]\nmerchant_id = \"{MERCHANT}\"\nmerchant_reference = \"C-7\""
            ),
        ])
        .expect("valid");
        assert_eq!(
            s.partner_qr_templates(MERCHANT),
            [
                StaticTemplate::with_values("za.co.a", ["HUB-AT-A"]).at_tag(28),
                StaticTemplate {
                    tag: Some(27),
                    guid: "za.co.b".into(),
                    sub_objects: vec![crate::qr::SubObject {
                        id: 2,
                        value: "HUB-AT-B".into()
                    }],
                },
                StaticTemplate::with_values("za.co.c", ["C-7"]).at_tag(29),
            ]
        );
        // Another merchant: c has no reference for it, and the others keep their tags.
        let tags: Vec<_> = s
            .partner_qr_templates(OTHER_MERCHANT)
            .into_iter()
            .map(|t| (t.tag, t.guid))
            .collect();
        assert_eq!(
            tags,
            [
                (Some(28), "za.co.a".to_owned()),
                (Some(27), "za.co.b".to_owned())
            ]
        );
    }

    /// The demo partner of `config/default.toml` shows the feature on `serve`.
    #[test]
    fn the_shipped_demo_partner_has_a_template() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let s = Settings::load(&path).expect("config/default.toml is valid");
        assert_eq!(
            s.partner_qr_templates(MERCHANT),
            [StaticTemplate::with_values("za.co.demowallet", ["DEMO-STORE-7"]).at_tag(27)]
        );
        assert_eq!(
            s.partner_qr_templates(OTHER_MERCHANT),
            [StaticTemplate::with_values("za.co.demowallet", ["QRHUB0001"]).at_tag(27)]
        );
    }

    /// The one-line form DESIGN.md §10 and `config/default.toml` show.
    #[test]
    fn the_one_line_form_loads() {
        let s = Settings::from_toml(&format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"sqlite://data/x.db\"\n\
             [hub]\ninstitution_id = \"qrhub\"\nqr_provider_id = \"za.co.qrhub\"\n\
             [[partners]]\nid = \"w\"\nname = \"W\"\npassword_hash = \"{HASH}\"\n\
             base_url = \"http://127.0.0.1:1\"\nusername = \"qrhub\"\npassword = \"x\"\n\
             timeout = \"1s\"\n\
             qr_template = {{ gui = \"za.co.demowallet\", merchant_reference = \"QRHUB0001\" }}\n"
        ))
        .expect("valid");
        assert_eq!(
            s.partner_qr_templates(MERCHANT),
            [StaticTemplate::with_values("za.co.demowallet", ["QRHUB0001"]).at_tag(27)]
        );
    }

    #[test]
    fn a_merchant_override_wins_over_the_partner_wide_reference() {
        let s = settings(&[&format!(
            "gui = \"za.co.a\"\nmerchant_reference = \"HUB\"\nmerchants = [{{ merchant_id = \"{MERCHANT}\", merchant_reference = \"OWN\" }}]"
        )])
        .expect("valid");
        assert_eq!(
            s.partner_qr_templates(MERCHANT)[0].sub_objects[0].value,
            "OWN"
        );
        assert_eq!(
            s.partner_qr_templates(OTHER_MERCHANT)[0].sub_objects[0].value,
            "HUB"
        );
    }

    /// Each bad value is refused at start-up with the key that holds it.
    #[test]
    fn bad_templates_are_refused_by_key() {
        let long_ref = "r".repeat(60);
        let gui32 = "g".repeat(32);
        let too_many: Vec<String> = (0..26)
            .map(|i| format!("gui = \"za.co.p{i}\"\nmerchant_reference = \"R\""))
            .collect();
        let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
        let cases: Vec<(Vec<String>, &str)> = vec![
            (
                vec![format!("gui = \"{}\"\nmerchant_reference = \"R\"", "g".repeat(33))],
                "`partners[0].qr_template.gui`: has 33 characters; it must have 1 to 32",
            ),
            (
                vec!["gui = \"\"\nmerchant_reference = \"R\"".into()],
                "`partners[0].qr_template.gui`: has 0 characters",
            ),
            (
                vec!["gui = \"za.co.qrhub\"\nmerchant_reference = \"R\"".into()],
                "`partners[0].qr_template.gui`: is hub.qr_provider_id",
            ),
            (
                vec![
                    "gui = \"za.co.a\"\nmerchant_reference = \"R\"".into(),
                    "gui = \"za.co.a\"\nmerchant_reference = \"R\"".into(),
                ],
                "`partners[1].qr_template.gui`: is another partner's too",
            ),
            (
                vec!["gui = \"za.co.a\"\ntag = 26\nmerchant_reference = \"R\"".into()],
                "`partners[0].qr_template.tag`: 26 is not 27 to 51",
            ),
            (
                vec!["gui = \"za.co.a\"\ntag = 52\nmerchant_reference = \"R\"".into()],
                "`partners[0].qr_template.tag`: 52 is not 27 to 51",
            ),
            (
                vec![
                    "gui = \"za.co.a\"\ntag = 30\nmerchant_reference = \"R\"".into(),
                    String::new(),
                    "gui = \"za.co.b\"\ntag = 30\nmerchant_reference = \"R\"".into(),
                ],
                "`partners[2].qr_template.tag`: 30 is pinned by another partner",
            ),
            (
                vec!["gui = \"za.co.a\"\nreference_sub_tag = 0\nmerchant_reference = \"R\"".into()],
                "`partners[0].qr_template.reference_sub_tag`: must be 1 to 99",
            ),
            (
                vec!["gui = \"za.co.a\"".into()],
                "`partners[0].qr_template.merchant_reference`: is required when no merchants are listed",
            ),
            (
                // 36 + 4 + 60 = 100 characters of template body.
                vec![format!("gui = \"{gui32}\"\nmerchant_reference = \"{long_ref}\"")],
                "`partners[0].qr_template.merchant_reference`: makes the template 100 characters",
            ),
            (
                vec![format!("gui = \"za.co.a\"\nmerchant_reference = \"{}\"", "r".repeat(100))],
                "`partners[0].qr_template.merchant_reference`: has 100 characters; it must have 1 to 99",
            ),
            (
                vec!["gui = \"za.co.a\"\nmerchant_reference = \"a\\tb\"".into()],
                "`partners[0].qr_template.merchant_reference`: must not contain control characters",
            ),
            (
                vec![format!(
                    "gui = \"{gui32}\"\nmerchants = [{{ merchant_id = \"{MERCHANT}\", merchant_reference = \"ok\" }}, {{ merchant_id = \"{OTHER_MERCHANT}\", merchant_reference = \"{long_ref}\" }}]"
                )],
                "`partners[0].qr_template.merchants[1].merchant_reference`: makes the template 100 characters",
            ),
            (
                vec!["gui = \"za.co.a\"\nmerchants = [{ merchant_id = \"M1\", merchant_reference = \"R\" }]".into()],
                "`partners[0].qr_template.merchants[0].merchant_id`: \"M1\" is not 15 characters",
            ),
            (
                vec![format!(
                    "gui = \"za.co.a\"\nmerchants = [{{ merchant_id = \"{MERCHANT}\", merchant_reference = \"R\" }}, {{ merchant_id = \"{MERCHANT}\", merchant_reference = \"S\" }}]"
                )],
                "`partners[0].qr_template.merchants[1].merchant_id`: is listed twice",
            ),
            (
                too_many.iter().map(|s| (*s).to_owned()).collect(),
                "`partners[].qr_template`: 26 partners have one; tags 27-51 hold at most 25",
            ),
        ];
        for (templates, expected) in cases {
            let templates: Vec<&str> = templates.iter().map(String::as_str).collect();
            let err = error(&templates);
            assert!(err.contains(expected), "{err}\nexpected: {expected}");
        }
        // The limits themselves are accepted: a 32-character GUI and a 59-character reference
        // make a 99-character template, and 25 partners fill 27-51.
        let max_ref = "r".repeat(59);
        let template = format!("gui = \"{gui32}\"\nmerchant_reference = \"{max_ref}\"");
        settings(&[&template]).expect("a 99-character template is valid");
        let s = settings(&too_many[..25]).expect("25 partners fit");
        let tags: Vec<Option<u8>> = s
            .partner_qr_templates(MERCHANT)
            .iter()
            .map(|t| t.tag)
            .collect();
        assert_eq!(tags, (27..=51).map(Some).collect::<Vec<_>>());
    }
}
