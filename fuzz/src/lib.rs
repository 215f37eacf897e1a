//! What the fuzz targets share: the request-body check and the QR payload invariants.

use qrhub::model::schema::{self, Schema};
use qrhub::qr::{self, DataObject, ParsedQr};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

/// The API's path for a body: bytes → JSON → `schema::check` → `from_value::<T>`.
///
/// The promise checked: whatever the bytes, nothing panics; a body the schema accepts is one
/// the type accepts; and the type's own JSON (what the hub echoes, stores and relays) passes
/// the same schema and is a fixed point of a second round trip.
pub fn check_body<T: DeserializeOwned + Serialize>(data: &[u8], schema: &Schema) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if !schema::check(&value, schema).is_empty() {
        return;
    }
    let typed: T = match serde_json::from_value(value.clone()) {
        Ok(t) => t,
        Err(e) => panic!(
            "{} accepted by the schema but refused by the type: {e}\nbody: {value}",
            schema.name
        ),
    };
    let back = serde_json::to_value(&typed).expect("a typed body serialises");
    let errors = schema::check(&back, schema);
    assert!(
        errors.is_empty(),
        "{} re-serialised fails its own schema: {errors:?}\nfrom: {value}\nto:   {back}",
        schema.name
    );
    let again: T = serde_json::from_value(back.clone()).unwrap_or_else(|e| {
        panic!(
            "{} re-serialised is refused by the type: {e}\n{back}",
            schema.name
        )
    });
    let again = serde_json::to_value(&again).expect("a typed body serialises");
    assert_eq!(
        again, back,
        "{}: a second round trip changed the JSON",
        schema.name
    );
}

/// `id` + 2-digit character count + value, as the payload carries it.
fn tlv(id: u8, value: &str) -> String {
    format!("{id:02}{:02}{value}", value.chars().count())
}

/// Invariants of every payload `qr::parse` accepts.
pub fn check_parsed(payload: &str, parsed: &ParsedQr) {
    let objects = parsed.objects();
    assert!(!objects.is_empty());
    assert_eq!((objects[0].id, objects[0].value.as_str()), (0, "01"));
    // The objects are exactly the payload, in order: nothing skipped, nothing invented.
    let rebuilt: String = objects.iter().map(|o| tlv(o.id, &o.value)).collect();
    assert_eq!(rebuilt, payload, "objects do not rebuild the payload");
    for o in objects {
        check_object(o, true);
        // Every lookup by id finds this very object (ids are unique at the root).
        assert_eq!(parsed.get(o.id), Some(o));
    }
    match parsed.crc() {
        Some(crc) => {
            let last = objects.last().expect("non-empty");
            assert_eq!(last.id, 63, "a CRC that is not the last object");
            assert_eq!(u16::from_str_radix(&last.value, 16).ok(), Some(crc));
            let covered = &payload[..payload.len() - 4];
            assert!(covered.ends_with("6304"));
            assert_eq!(qr::crc16(covered.as_bytes()), crc, "CRC reported but wrong");
        }
        None => assert!(objects.iter().all(|o| o.id != 63)),
    }
    // Every accessor, on every input: none may panic.
    for t in parsed.merchant_account_templates() {
        assert!((26..=51).contains(&t.id));
        if let Some(guid) = t.sub_value(0) {
            // The first template with this GUID answers.
            let first = parsed
                .merchant_account_templates()
                .find(|x| x.sub_value(0) == Some(guid))
                .expect("found itself");
            assert_eq!(parsed.tran_id(guid), first.sub_value(1));
        }
    }
    let _ = parsed.tran_id("");
    let _ = parsed.tran_id("za.co.elec");
    let _ = (
        parsed.point_of_initiation(),
        parsed.merchant_category_code(),
        parsed.currency(),
        parsed.amount(),
        parsed.country_code(),
        parsed.merchant_name(),
        parsed.merchant_city(),
        parsed.postal_code(),
        parsed.reference_label(),
        parsed.terminal_label(),
    );
    for id in 0..=99 {
        let _ = parsed.additional_data(id);
    }
    if let Some(money) = parsed.money() {
        assert!(money.minor_units >= 0);
        assert_eq!(Some(money.currency.as_str()), parsed.currency());
    }
    // Parsing is a function of the text.
    assert_eq!(qr::parse(payload).ok().as_ref(), Some(parsed));
}

fn check_object(o: &DataObject, root: bool) {
    assert!(o.id <= 99);
    let chars = o.value.chars().count();
    assert!((1..=99).contains(&chars), "value of {chars} characters");
    match &o.nested {
        Some(nested) => {
            assert!(
                root && qr::is_template_id(o.id),
                "nested below the root"
            );
            let rebuilt: String = nested.iter().map(|n| tlv(n.id, &n.value)).collect();
            assert_eq!(
                rebuilt, o.value,
                "template objects do not rebuild its value"
            );
            for n in nested {
                check_object(n, false);
                assert_eq!(o.sub(n.id), Some(n), "duplicate sub-tag {}", n.id);
            }
        }
        None => assert!(!root || !qr::is_template_id(o.id)),
    }
    for id in 0..=99 {
        let _ = o.sub_value(id);
    }
}
