//! Making a partner's approval relayable: a body that fits the published schema, whatever the
//! partner sent with its 2xx.
//!
//! The status decides whether a payment was approved; the body only carries details. A
//! partner that leaves out `originator`, writes a lower-case `slipData.issuerReference`, or
//! names itself in more than 40 characters has still approved: refusing to relay that (and
//! reversing the sale) would cost the retailer a sale over formatting. So the hub keeps what
//! fits, cuts names that are too long, drops what does not fit, and records each change. It
//! never alters an identifier or a reference (a changed one would be printed and reconciled
//! as if the partner had sent it): one that does not fit is dropped. What it relays also
//! meets the published schema where the hub's input tables are lenient
//! (`ThirdPartyIdentifier.transactionIdentifier` and `Barcode.encoding` are required there).

use serde_json::{Map, Value};

use super::schema::{self, Kind, Schema};

/// One change the hub made to a partner's body, for the timeline and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repair {
    /// A fixed, low-cardinality name (a metric label).
    pub kind: RepairKind,
    /// The dotted path of the field, or `body`.
    pub field: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RepairKind {
    /// The body was not a JSON object (empty, not JSON, or another JSON value).
    NotAnObject,
    /// A field the schema does not have was dropped.
    UnknownDropped,
    /// A name longer than the schema allows was cut to its maximum.
    Trimmed,
    /// A field that did not fit the schema was dropped.
    InvalidDropped,
    /// A required field missing or dropped was taken from the request the hub sent.
    FilledFromRequest,
}

impl RepairKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::NotAnObject => "not_an_object",
            Self::UnknownDropped => "unknown_dropped",
            Self::Trimmed => "trimmed",
            Self::InvalidDropped => "invalid_dropped",
            Self::FilledFromRequest => "filled_from_request",
        }
    }
}

impl std::fmt::Display for Repair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.field)
    }
}

/// `answer` (the partner's body, parsed if it was JSON) made to fit `schema`; required fields
/// it lacks come from `request`, the message the hub sent, which fits the schema's shared
/// fields already. Returns the body and what was changed; the body passes `schema::check`
/// whenever `request` carries every required field.
pub(crate) fn repair(
    answer: Option<&Value>,
    schema: &'static Schema,
    request: &Value,
) -> (Value, Vec<Repair>) {
    let mut repairs = Vec::new();
    let mut body = match answer {
        Some(Value::Object(map)) => map.clone(),
        _ => {
            repairs.push(Repair {
                kind: RepairKind::NotAnObject,
                field: "body".into(),
            });
            Map::new()
        }
    };
    repair_object(&mut body, schema, "", &mut repairs);
    for field in schema.fields.iter().filter(|f| f.required) {
        if body.contains_key(field.name) {
            continue;
        }
        if let Some(value) = request.get(field.name) {
            body.insert(field.name.to_owned(), value.clone());
            // Only worth a record when the partner had sent something (an approval with no
            // body at all is recorded once, as not an object).
            if answer.is_some_and(Value::is_object) {
                repairs.push(Repair {
                    kind: RepairKind::FilledFromRequest,
                    field: field.name.to_owned(),
                });
            }
        }
    }
    (Value::Object(body), repairs)
}

/// Whether the field at `path` is a display name (`partner.name`, `…merchantName.name`).
fn is_name(path: &str) -> bool {
    path.rsplit('.').next() == Some("name")
}

fn path_of(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Fields the published schema requires that the hub's (lenient, input) tables do not: an
/// object without one is dropped from what the hub relays.
const REQUIRED_ON_OUTPUT: &[(&str, &str)] = &[
    ("ThirdPartyIdentifier", "transactionIdentifier"),
    ("Barcode", "encoding"),
];

/// Drops unknown and unfixable fields of one object; returns whether every required field is
/// still there (the caller drops an optional object that lost one).
fn repair_object(
    object: &mut Map<String, Value>,
    schema: &'static Schema,
    prefix: &str,
    repairs: &mut Vec<Repair>,
) -> bool {
    object.retain(|name, value| {
        let known = schema.fields.iter().any(|f| f.name == name);
        if !known {
            repairs.push(Repair {
                kind: RepairKind::UnknownDropped,
                field: path_of(prefix, name),
            });
        }
        // `null` is the same as absent on the wire; dropped without a record.
        known && !value.is_null()
    });
    let mut complete = true;
    for field in schema.fields {
        let path = path_of(prefix, field.name);
        let required = field.required || REQUIRED_ON_OUTPUT.contains(&(schema.name, field.name));
        let keep = match object.get_mut(field.name) {
            None => {
                complete &= !required;
                continue;
            }
            Some(value) => repair_value(value, &field.kind, &path, repairs),
        };
        if !keep {
            object.remove(field.name);
            repairs.push(Repair {
                kind: RepairKind::InvalidDropped,
                field: path,
            });
            complete &= !required;
        }
    }
    complete
}

/// Fixes one value in place where a fix keeps its meaning; false when it must be dropped.
fn repair_value(
    value: &mut Value,
    kind: &'static Kind,
    path: &str,
    repairs: &mut Vec<Repair>,
) -> bool {
    match kind {
        Kind::Object(schema) => match value.as_object_mut() {
            Some(object) => repair_object(object, schema, path, repairs),
            None => false,
        },
        Kind::Array(item) => match value.as_array_mut() {
            Some(items) => {
                let mut index = 0;
                items.retain_mut(|v| {
                    let keep = repair_value(v, item, &format!("{path}[{index}]"), repairs);
                    if !keep {
                        repairs.push(Repair {
                            kind: RepairKind::InvalidDropped,
                            field: format!("{path}[{index}]"),
                        });
                    }
                    index += 1;
                    keep
                });
                true
            }
            None => false,
        },
        Kind::Map(item) => match value.as_object_mut() {
            Some(entries) => {
                entries.retain(|k, v| {
                    let field = path_of(path, k);
                    let keep = repair_value(v, item, &field, repairs);
                    if !keep {
                        repairs.push(Repair {
                            kind: RepairKind::InvalidDropped,
                            field,
                        });
                    }
                    keep
                });
                true
            }
            None => false,
        },
        // Only a name is cut to fit: any other string that does not fit (an identifier, a
        // reference) is dropped by the caller rather than changed.
        Kind::Str { max: Some(max), .. } if value.is_string() && is_name(path) => {
            if schema::value_ok(value, kind) {
                return true;
            }
            let cut: String = value
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(*max)
                .collect();
            let cut = Value::String(cut);
            if !schema::value_ok(&cut, kind) {
                return false;
            }
            *value = cut;
            repairs.push(Repair {
                kind: RepairKind::Trimmed,
                field: path.to_owned(),
            });
            true
        }
        other => schema::value_ok(value, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request() -> Value {
        json!({
            "id": "1d5bd1b1-3f4e-4bd0-9d1b-6a1d3e0c2a55",
            "time": "2026-12-02T10:00:00.000Z",
            "originator": {
                "institution": {"id": "shop", "name": "Shop"},
                "terminalId": "00000001",
                "merchant": {"merchantId": "123456789012345", "merchantType": "5411",
                             "merchantName": {"name": "Shop", "city": "Cape Town", "region": "WC", "country": "ZA"}}
            },
            "client": {"id": "qrhub", "name": "qrhub"},
            "partner": {"id": "wallet-1", "name": "Wallet"},
            "thirdPartyIdentifiers": [{"institutionId": "qrhub", "transactionIdentifier": "abc"}],
            "amounts": {"requestAmount": {"amount": 1000, "currency": "710"}},
            "tranId": "0123456789abcdef0123456789abcdef"
        })
    }

    #[test]
    fn a_careless_approval_becomes_a_valid_payment_response() {
        let answer = json!({
            "id": "x",
            "time": "2026-12-02T10:00:01.000Z",
            "partner": {"id": "wallet-1", "name": "A wallet whose name is far longer than forty characters"},
            "slipData": {"issuerReference": "ab12cd"},
            "amounts": {"approvedAmount": {"amount": 1000, "currency": "710"}},
            "vendorExtension": {"anything": true},
            "stan": null,
            "tranId": "0123456789abcdef0123456789abcdef"
        });
        let (body, repairs) = repair(Some(&answer), &schema::PAYMENT_RESPONSE, &request());
        assert!(
            schema::check(&body, &schema::PAYMENT_RESPONSE).is_empty(),
            "{body:#}"
        );
        // A reference that does not fit is dropped, never changed.
        assert!(
            body["slipData"].get("issuerReference").is_none(),
            "{body:#}"
        );
        assert_eq!(
            body["partner"]["name"].as_str().map(|s| s.chars().count()),
            Some(40)
        );
        assert!(body.get("vendorExtension").is_none());
        assert_eq!(body["originator"], request()["originator"]);
        assert_eq!(body["amounts"]["approvedAmount"]["amount"], 1000);
        let kinds: Vec<_> = repairs.iter().map(|r| r.to_string()).collect();
        for expected in [
            "unknown_dropped vendorExtension",
            "trimmed partner.name",
            "invalid_dropped slipData.issuerReference",
            "filled_from_request originator",
            "filled_from_request client",
        ] {
            assert!(
                kinds.iter().any(|k| k == expected),
                "{expected} not in {kinds:?}"
            );
        }
    }

    #[test]
    fn unfixable_fields_are_dropped_and_required_ones_refilled() {
        let answer = json!({
            "time": "yesterday",
            "tranType": "NOT_A_TYPE",
            "slipData": {"issuerReference": "ref with spaces!"},
            "tenders": [{"tenderType": "CARD", "amount": {"amount": 5, "currency": "710"}}, 7],
            "amounts": {"approvedAmount": {"amount": 150.0, "currency": "710"}},
        });
        let (body, repairs) = repair(Some(&answer), &schema::PAYMENT_RESPONSE, &request());
        assert!(
            schema::check(&body, &schema::PAYMENT_RESPONSE).is_empty(),
            "{body:#}"
        );
        assert_eq!(body["time"], request()["time"]);
        assert!(body.get("tranType").is_none());
        assert!(body["slipData"].get("issuerReference").is_none());
        // A float amount is not an amount: the ledger amount goes, the rest of amounts stays.
        assert!(body["amounts"].get("approvedAmount").is_none(), "{body:#}");
        assert!(repairs
            .iter()
            .any(|r| r.field == "amounts.approvedAmount.amount"));
    }

    #[test]
    fn what_the_published_schema_requires_is_there_on_output() {
        let answer = json!({
            "thirdPartyIdentifiers": [
                {"institutionId": "w"},
                {"institutionId": "w", "transactionIdentifier": 123},
                {"institutionId": "w", "transactionIdentifier": "T-1"}
            ],
            "slipData": {"messageLines": [{"text": "x", "barcode": {"data": "123"}}]},
            "tenders": [{"tenderType": "CARD", "reference": "R".repeat(60),
                         "amount": {"amount": 5, "currency": "710"}}]
        });
        let (body, repairs) = repair(Some(&answer), &schema::PAYMENT_RESPONSE, &request());
        assert_eq!(
            body["thirdPartyIdentifiers"],
            json!([{"institutionId": "w", "transactionIdentifier": "T-1"}])
        );
        assert!(
            body["slipData"]["messageLines"][0].get("barcode").is_none(),
            "{body:#}"
        );
        assert!(
            repairs.iter().all(|r| r.kind != RepairKind::Trimmed),
            "{repairs:?}"
        );
    }

    #[test]
    fn no_body_at_all_is_the_request_echoed_with_one_record() {
        for answer in [None, Some(json!("approved")), Some(json!([1, 2]))] {
            let (body, repairs) = repair(answer.as_ref(), &schema::PAYMENT_RESPONSE, &request());
            assert!(
                schema::check(&body, &schema::PAYMENT_RESPONSE).is_empty(),
                "{body:#}"
            );
            assert_eq!(repairs.len(), 1, "{repairs:?}");
            assert_eq!(repairs[0].kind, RepairKind::NotAnObject);
        }
    }

    #[test]
    fn a_valid_answer_is_left_alone() {
        let mut valid = request();
        valid["slipData"] = json!({"issuerReference": "AB12"});
        let (body, repairs) = repair(Some(&valid), &schema::PAYMENT_RESPONSE, &request());
        assert_eq!(body, valid);
        assert!(repairs.is_empty(), "{repairs:?}");
    }
}
