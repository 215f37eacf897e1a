//! The hub's OpenAPI 3.0.3 document, generated from the code.
//!
//! `components.schemas` for the interface's models are walked from the [`schema`] definitions
//! the request validator applies, so the document and the validator cannot disagree: the
//! same lengths, the same whole-string patterns (written `^(?:…)$`, as the validator anchors
//! them; Rust `regex` syntax), the same required fields, enums and integer ranges. Optional
//! fields are `nullable`, because the validator takes `null` for an absent optional field.
//! The back-office shapes are written out by hand beside the types they describe
//! (`crate::admin`).
//!
//! `qrhub openapi` prints it (checked in as `openapi/qrhub.openapi.json`, compared by
//! `tests/it/openapi.rs`) and the hub serves it at `GET /openapi.json`.

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::LazyLock;

use crate::model::schema::{self, Field, Kind, Schema};

const ERROR_DETAIL: &str = "#/components/schemas/ErrorDetail";

/// The models of the interface the document names, roots first; the models they refer to
/// are found by walking them.
const INTERFACE_MODELS: &[&Schema] = &[
    &schema::CREATE_QR_CODE_REQUEST,
    &schema::CREATE_QR_CODE_RESPONSE,
    &schema::PAYMENT_REQUEST,
    &schema::PAYMENT_RESPONSE,
    &schema::SCAN_NOTIFICATION,
    &schema::PAYMENT_CONFIRMATION,
    &schema::PAYMENT_REVERSAL,
    &schema::ERROR_DETAIL,
];

/// The document as pretty JSON with a final newline, exactly as checked in.
pub fn render() -> String {
    let mut text = serde_json::to_string_pretty(&document()).expect("a JSON value always renders");
    text.push('\n');
    text
}

/// `GET /openapi.json`.
pub async fn serve() -> impl IntoResponse {
    static RENDERED: LazyLock<String> = LazyLock::new(render);
    (
        [(header::CONTENT_TYPE, "application/json")],
        RENDERED.as_str(),
    )
}

pub fn document() -> Value {
    let mut schemas = interface_schemas();
    schemas.extend(admin_schemas());
    schemas.extend(partner_health_schemas());
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "qrhub",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A QR payment hub speaking the Electrum QR Payment Service Interface \
                v1.7.0 under /qr/v1 (each operation also with a trailing slash, as clients \
                before v1.4.0 sent it), with extensions marked x-qrhub-extension: the QR image, \
                health, metrics, this document and the /admin/v1 back office. Generated from \
                the code (src/openapi.rs); request bodies are checked against these schemas \
                and every refusal is an ErrorDetail.",
            "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0.html"}
        },
        "servers": [{"url": "http://127.0.0.1:8080", "description": "the default configuration"}],
        "tags": [
            {"name": "interface", "description": "The five operations of the Electrum QR Payment Service Interface."},
            {"name": "extensions", "description": "Beside the interface: the QR image, health, metrics and this document."},
            {"name": "admin", "description": "The back office, for [[operators]] only."}
        ],
        "paths": paths(),
        "components": {
            "securitySchemes": {
                "basicAuth": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "HTTP Basic. /qr/v1: a POS client ([[clients]], the user is client.id) \
                        or, for scans only, a partner ([[partners]], the user is partner.id). \
                        /admin/v1: an operator ([[operators]]). Credentials of another role get 401."
                }
            },
            "schemas": Value::Object(schemas.into_iter().collect()),
            "headers": {
                "WWW-Authenticate": {
                    "description": "Basic realm=\"qrhub\", charset=\"UTF-8\"",
                    "schema": {"type": "string"}
                },
                "Retry-After": {
                    "description": "Whole seconds until the caller's rate-limit budget has room again.",
                    "schema": {"type": "integer", "minimum": 1}
                },
                "X-Request-Id": {
                    "description": "The request's id (the caller's, or a new UUID); error answers \
                        read before the body carry it as ErrorDetail.id.",
                    "schema": {"type": "string"}
                }
            }
        }
    })
}

// ---------------------------------------------------------------------------------------
// Schemas of the interface, from `model::schema`.

/// Every model reachable from [`INTERFACE_MODELS`], by name.
fn interface_schemas() -> BTreeMap<String, Value> {
    let mut seen: BTreeMap<&'static str, &'static Schema> = BTreeMap::new();
    let mut todo: Vec<&'static Schema> = INTERFACE_MODELS.to_vec();
    while let Some(s) = todo.pop() {
        if let Some(known) = seen.get(s.name) {
            assert!(
                std::ptr::eq(*known, s),
                "two different schemas are both named {}",
                s.name
            );
            continue;
        }
        seen.insert(s.name, s);
        for f in s.fields {
            let mut kind = &f.kind;
            while let Kind::Array(k) | Kind::Map(k) = kind {
                kind = k;
            }
            if let Kind::Object(inner) = kind {
                todo.push(inner);
            }
        }
    }
    seen.into_values()
        .map(|s| (s.name.to_owned(), object_schema(s)))
        .collect()
}

fn object_schema(s: &Schema) -> Value {
    let mut properties = Map::new();
    for f in s.fields {
        properties.insert(f.name.to_owned(), field_schema(f));
    }
    let required: Vec<&str> = s
        .fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    let mut out = json!({
        "type": "object",
        "description": "Unknown fields are ignored.",
        "properties": properties,
    });
    if !required.is_empty() {
        out["required"] = json!(required);
    }
    if s.name == "ErrorDetail" {
        out["description"] = json!(
            "The body of every failed answer. detailMessage is free-form; for FORMAT_ERROR it is \
             {\"formatErrors\": [{\"field\", \"msg\", \"value\"}]}, one per problem found."
        );
    }
    out
}

/// A field's schema; an optional field also takes `null` (the validator treats it as absent).
fn field_schema(f: &Field) -> Value {
    let schema = kind_schema(&f.kind);
    if f.required || matches!(f.kind, Kind::Any) {
        return schema;
    }
    match schema {
        Value::Object(mut map) if !map.contains_key("$ref") => {
            map.insert("nullable".into(), json!(true));
            Value::Object(map)
        }
        reference => json!({"allOf": [reference], "nullable": true}),
    }
}

fn kind_schema(kind: &Kind) -> Value {
    match kind {
        Kind::Str { min, max, pattern } => {
            let mut s = json!({"type": "string"});
            if let Some(min) = min {
                s["minLength"] = json!(min);
            }
            if let Some(max) = max {
                s["maxLength"] = json!(max);
            }
            if let Some(p) = pattern {
                s["pattern"] = json!(format!("^(?:{p})$"));
            }
            s
        }
        Kind::DateTime => json!({
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339; the instant's year in UTC must be 0 to 9999. Answers carry milliseconds."
        }),
        Kind::Int64 => json!({
            "type": "integer", "format": "int64",
            "minimum": i64::MIN, "maximum": i64::MAX
        }),
        Kind::Int32 => json!({
            "type": "integer", "format": "int32",
            "minimum": i32::MIN, "maximum": i32::MAX
        }),
        Kind::Double => json!({"type": "number", "format": "double"}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Object(s) => json!({"$ref": format!("#/components/schemas/{}", s.name)}),
        Kind::Array(item) => json!({"type": "array", "items": kind_schema(item)}),
        Kind::Map(item) => json!({"type": "object", "additionalProperties": kind_schema(item)}),
        Kind::Enum(values) => json!({"type": "string", "enum": values}),
        Kind::LenientEnum(values) => json!({
            "type": "string",
            "description": format!(
                "Known values: {}. An unknown value is ignored, not refused.",
                values.join(", ")
            ),
            "x-qrhub-known-values": values
        }),
        Kind::Any => json!({"description": "Any JSON value."}),
    }
}

// ---------------------------------------------------------------------------------------
// Schemas of the back office, written out beside `crate::admin`'s types.

fn admin_schemas() -> BTreeMap<String, Value> {
    let date_time = || json!({"type": "string", "format": "date-time"});
    let uuid = || json!({"type": "string", "format": "uuid"});
    let int64 = || json!({"type": "integer", "format": "int64"});
    let int32 = || json!({"type": "integer", "format": "int32"});
    let string = || json!({"type": "string"});
    let reference = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let states: Vec<&str> = crate::domain::PaymentState::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    let outbox_states = ["PENDING", "DELIVERED", "FAILED", "DEAD"];

    let payment_view_properties = json!({
        "id": uuid(),
        "clientId": string(),
        "messageId": {"type": "string", "description": "The POS's PaymentRequest id."},
        "tranId": string(),
        "state": {"type": "string", "enum": states},
        "amount": reference("Money"),
        "partnerId": string(),
        "partnerPaymentToken": string(),
        "scanMessageId": string(),
        "partnerMessageId": {"type": "string", "description": "The id of the hub's pay to the partner."},
        "reversedByPos": {"type": "boolean"},
        "partnerStatus": int32(),
        "createdAt": date_time(),
        "scanDeadline": date_time(),
        "updatedAt": date_time(),
        "posGoneAt": {"type": "string", "format": "date-time",
                      "description": "When the POS went away while its pay waited for a scan (the payment then ended EXPIRED, never sent)."},
    });
    let payment_view_required = json!([
        "id",
        "clientId",
        "messageId",
        "tranId",
        "state",
        "amount",
        "reversedByPos",
        "createdAt",
        "scanDeadline",
        "updatedAt"
    ]);
    let mut detail_properties = payment_view_properties.clone();
    let extra = json!({
        "request": {"type": "object", "description": "The POS's PaymentRequest as received."},
        "partnerResponse": {"description": "The partner's answer (a PaymentResponse or an ErrorDetail)."},
        "timeline": {"type": "array", "items": reference("EventView"),
                     "description": "Every message in and out, oldest first."},
        "outbox": {"type": "array", "items": reference("OutboxView")},
        "openItems": {"type": "integer", "minimum": 0,
                      "description": "Advices of this payment refused by the partner or dead: while any is open the payment is unresolved."},
    });
    if let (Some(d), Some(e)) = (detail_properties.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    let mut detail_required = payment_view_required.clone();
    if let Some(r) = detail_required.as_array_mut() {
        r.extend(["request", "timeline", "outbox", "openItems"].map(|s| json!(s)));
    }
    let mut unadvised_properties = payment_view_properties.clone();
    let extra = json!({
        "approvedAt": date_time(),
        "ageSeconds": {"type": "integer", "format": "int64", "description": "Seconds since the approval, by the hub's clock."},
        "policy": {"type": "string", "enum": ["nothing", "reverse"],
                   "description": "The client's unadvised_approvals policy."},
        "reverseAt": {"type": "string", "format": "date-time",
                      "description": "When the hub reverses it (policy reverse only)."},
    });
    if let (Some(d), Some(e)) = (unadvised_properties.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    let mut unadvised_required = payment_view_required.clone();
    if let Some(r) = unadvised_required.as_array_mut() {
        r.extend(["approvedAt", "ageSeconds", "policy"].map(|s| json!(s)));
    }
    let tally = json!({
        "type": "object",
        "properties": {
            "count": int64(),
            "amount": {"type": "integer", "format": "int64", "description": "Gross, in minor units."},
            "fees": {"type": "integer", "format": "int64", "description": "Fees fixed at confirmation (confirmed payments only), in minor units."},
            "net": {"type": "integer", "format": "int64", "description": "amount - fees."}
        },
        "required": ["count", "amount", "fees", "net"]
    });
    let partner_row = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "tranId": {"type": "string", "minLength": 1},
            "partnerReference": {"type": "string", "nullable": true},
            "amount": {"type": "integer", "format": "int64", "description": "Minor units."},
            "currency": string(),
            "status": {"type": "string", "enum": ["CONFIRMED", "REVERSED"]},
            "fee": {"type": "integer", "format": "int64", "description": "The partner's fee on the payment, minor units (optional; compared with the hub's)."},
            "net": {"type": "integer", "format": "int64", "description": "The partner's amount - fee, minor units (optional; compared with the hub's)."}
        },
        "required": ["tranId", "amount", "currency", "status"]
    });
    let partner_total = json!({
        "type": "object",
        "additionalProperties": false,
        "description": "The partner's totals of the day's confirmed payments in one currency; each figure optional.",
        "properties": {
            "currency": string(),
            "amount": {"type": "integer", "format": "int64", "description": "Gross, minor units."},
            "fees": {"type": "integer", "format": "int64"},
            "net": {"type": "integer", "format": "int64"}
        },
        "required": ["currency"]
    });
    let day_rule = json!({
        "timeZone": {"type": "string", "description": "The settlement day's IANA time zone (`[settlement] time_zone`)."},
        "cutOff": {"type": "string", "description": "HH:MM local time: a payment at or past it counts on the next day (00:00: days end at midnight)."}
    });
    let day_window = json!({
        "timeZone": day_rule["timeZone"],
        "cutOff": day_rule["cutOff"],
        "from": {"type": "string", "format": "date-time", "description": "The day's first instant: payments created at or after it."},
        "to": {"type": "string", "format": "date-time", "description": "The next day's first instant: payments created before it."}
    });
    let with_day = |mut properties: Value| {
        if let (Some(p), Some(d)) = (properties.as_object_mut(), day_window.as_object()) {
            p.extend(d.clone());
        }
        properties
    };

    [
        (
            "Money",
            json!({
                "type": "object",
                "description": "Integer minor units with the ISO 4217 numeric currency.",
                "properties": {"amount": int64(), "currency": string()},
                "required": ["amount", "currency"]
            }),
        ),
        (
            "PaymentView",
            json!({"type": "object", "properties": payment_view_properties, "required": payment_view_required}),
        ),
        (
            "PaymentPage",
            json!({
                "type": "object",
                "properties": {
                    "payments": {"type": "array", "items": reference("PaymentView")},
                    "next": {"type": "string", "description": "Pass as `after` for the next page; absent on the last page."},
                    "dayRule": {"type": "object", "description": "The settlement day that `from` and `to` given as dates stand for.",
                                "properties": day_rule, "required": ["timeZone", "cutOff"]}
                },
                "required": ["payments", "dayRule"]
            }),
        ),
        (
            "PaymentDetail",
            json!({"type": "object", "properties": detail_properties, "required": detail_required}),
        ),
        (
            "EventView",
            json!({
                "type": "object",
                "properties": {
                    "at": date_time(),
                    "kind": {"type": "string", "description": "CREATE_QR_CODE, PAY, PAY_RESPONSE, SCAN, CONFIRMATION, REVERSAL, POS_GONE or UNADVISED_REVERSAL."},
                    "direction": {"type": "string", "enum": ["IN", "OUT"]},
                    "counterparty": string(),
                    "messageId": string(),
                    "httpStatus": int32(),
                    "outcome": string(),
                    "body": {"description": "The message as sent or received."}
                },
                "required": ["at", "kind", "direction", "counterparty", "outcome"]
            }),
        ),
        (
            "OutboxView",
            json!({
                "type": "object",
                "properties": {
                    "id": uuid(),
                    "paymentId": uuid(),
                    "partnerId": string(),
                    "kind": string(),
                    "messageId": string(),
                    "state": {"type": "string", "enum": outbox_states},
                    "attempts": int32(),
                    "nextAttemptAt": date_time(),
                    "lastStatus": int32(),
                    "lastError": string(),
                    "createdAt": date_time(),
                    "expiresAt": date_time(),
                    "updatedAt": date_time(),
                    "body": {"description": "The advice as it goes to the partner."}
                },
                "required": ["id", "paymentId", "partnerId", "kind", "messageId", "state", "attempts",
                             "nextAttemptAt", "createdAt", "expiresAt", "updatedAt", "body"]
            }),
        ),
        (
            "OutboxList",
            json!({
                "type": "object",
                "properties": {"outbox": {"type": "array", "items": reference("OutboxView")}},
                "required": ["outbox"]
            }),
        ),
        (
            "UnadvisedView",
            json!({"type": "object", "properties": unadvised_properties, "required": unadvised_required}),
        ),
        (
            "UnadvisedList",
            json!({
                "type": "object",
                "properties": {
                    "listedAfterSeconds": int64(),
                    "count": {"type": "integer", "format": "int64", "description": "How many there are in all clients."},
                    "payments": {"type": "array", "items": reference("UnadvisedView")}
                },
                "required": ["listedAfterSeconds", "count", "payments"]
            }),
        ),
        (
            "Retried",
            json!({
                "type": "object",
                "properties": {
                    "id": uuid(),
                    "state": {"type": "string", "enum": ["PENDING"]},
                    "nextAttemptAt": date_time(),
                    "expiresAt": date_time()
                },
                "required": ["id", "state", "nextAttemptAt", "expiresAt"]
            }),
        ),
        ("Tally", tally),
        (
            "SettlementRow",
            json!({
                "type": "object",
                "properties": {
                    "partnerId": string(),
                    "currency": string(),
                    "confirmed": reference("Tally"),
                    "reversed": reference("Tally"),
                    "unknown": reference("Tally"),
                    "approved": reference("Tally")
                },
                "required": ["partnerId", "currency", "confirmed", "reversed", "unknown", "approved"]
            }),
        ),
        (
            "SettlementReport",
            json!({
                "type": "object",
                "properties": with_day(json!({
                    "date": {"type": "string", "format": "date", "description": "The settlement day."},
                    "partnerId": string(),
                    "rows": {"type": "array", "items": reference("SettlementRow")}
                })),
                "required": ["date", "timeZone", "cutOff", "from", "to", "rows"]
            }),
        ),
        ("PartnerRow", partner_row),
        ("PartnerTotal", partner_total),
        (
            "PartnerReport",
            json!({
                "description": "The partner's report as JSON: an array of rows, or {\"rows\": [...]}.",
                "oneOf": [
                    {"type": "array", "items": reference("PartnerRow")},
                    {"type": "object", "properties": {
                        "rows": {"type": "array", "items": reference("PartnerRow")},
                        "totals": {"type": "array", "items": reference("PartnerTotal")}
                     },
                     "required": ["rows"]}
                ]
            }),
        ),
        (
            "HubEntry",
            json!({
                "type": "object",
                "properties": {
                    "tranId": string(),
                    "paymentId": uuid(),
                    "partnerReference": string(),
                    "amount": int64(),
                    "currency": string(),
                    "status": {"type": "string", "enum": ["CONFIRMED", "REVERSED", "APPROVED"]},
                    "fee": {"type": "integer", "format": "int64", "description": "Fixed at confirmation; 0 for any other status."},
                    "net": {"type": "integer", "format": "int64", "description": "amount - fee."}
                },
                "required": ["tranId", "paymentId", "amount", "currency", "status", "fee", "net"]
            }),
        ),
        (
            "AmountMismatch",
            json!({
                "type": "object",
                "properties": {
                    "tranId": string(), "paymentId": uuid(),
                    "hubAmount": int64(), "hubCurrency": string(),
                    "partnerAmount": int64(), "partnerCurrency": string()
                },
                "required": ["tranId", "paymentId", "hubAmount", "hubCurrency", "partnerAmount", "partnerCurrency"]
            }),
        ),
        (
            "StatusMismatch",
            json!({
                "type": "object",
                "properties": {
                    "tranId": string(), "paymentId": uuid(),
                    "hubStatus": string(), "partnerStatus": string()
                },
                "required": ["tranId", "paymentId", "hubStatus", "partnerStatus"]
            }),
        ),
        (
            "FeeMismatch",
            json!({
                "type": "object",
                "properties": {
                    "tranId": string(), "paymentId": uuid(), "currency": string(),
                    "hubFee": int64(), "hubNet": int64(),
                    "partnerFee": int64(), "partnerNet": int64()
                },
                "required": ["tranId", "paymentId", "currency", "hubFee", "hubNet"]
            }),
        ),
        (
            "TotalMismatch",
            json!({
                "type": "object",
                "properties": {
                    "currency": string(),
                    "hubAmount": int64(), "hubFees": int64(), "hubNet": int64(),
                    "partnerAmount": int64(), "partnerFees": int64(), "partnerNet": int64()
                },
                "required": ["currency", "hubAmount", "hubFees", "hubNet"]
            }),
        ),
        (
            "Reconciliation",
            json!({
                "type": "object",
                "properties": with_day(json!({
                    "date": {"type": "string", "format": "date", "description": "The settlement day."},
                    "partnerId": string(),
                    "matched": {"type": "integer", "format": "int64", "minimum": 0},
                    "hubOnly": {"type": "array", "items": reference("HubEntry")},
                    "partnerOnly": {"type": "array", "items": reference("PartnerRow")},
                    "amountMismatches": {"type": "array", "items": reference("AmountMismatch")},
                    "statusMismatches": {"type": "array", "items": reference("StatusMismatch")},
                    "feeMismatches": {"type": "array", "items": reference("FeeMismatch")},
                    "totalMismatches": {"type": "array", "items": reference("TotalMismatch"),
                                        "description": "Only where the partner's report gave totals."}
                })),
                "required": ["date", "timeZone", "cutOff", "from", "to", "partnerId", "matched",
                             "hubOnly", "partnerOnly", "amountMismatches", "statusMismatches",
                             "feeMismatches", "totalMismatches"]
            }),
        ),
        (
            "Health",
            json!({
                "type": "object",
                "properties": {
                    "status": {"type": "string", "enum": ["up", "ready", "unavailable"]},
                    "database": {"type": "string", "enum": ["unreachable"]}
                },
                "required": ["status"]
            }),
        ),
    ]
    .into_iter()
    .map(|(name, schema)| (name.to_owned(), schema))
    .collect()
}

// ---------------------------------------------------------------------------------------
// Paths.

/// An error answer: an ErrorDetail.
fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR_DETAIL}}}
    })
}

fn json_answer(description: &str, schema_name: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema_name}")}}}
    })
}

/// The error answers every authenticated operation can give, plus `extra` (status, text).
fn errors(extra: &[(u16, &str)]) -> Map<String, Value> {
    let mut out = Map::new();
    for (status, text) in extra {
        out.insert(status.to_string(), error(text));
    }
    let mut unauthorized =
        error("No, wrong or other-role credentials (FORMAT_ERROR \"Authentication required\").");
    unauthorized["headers"] =
        json!({"WWW-Authenticate": {"$ref": "#/components/headers/WWW-Authenticate"}});
    out.insert("401".into(), unauthorized);
    let mut limited = error("The caller's rate limit ([rate_limit]) is spent (GENERAL_ERROR).");
    limited["headers"] = json!({"Retry-After": {"$ref": "#/components/headers/Retry-After"}});
    out.insert("429".into(), limited);
    out.insert(
        "500".into(),
        error("An internal failure (GENERAL_ERROR \"Internal error\"); logged by the hub."),
    );
    out
}

/// The answers a checked JSON body adds: bad formatting, too large, not JSON, switched off.
fn body_errors(extra: &[(u16, &str)]) -> Map<String, Value> {
    let mut all = vec![
        (
            400,
            "FORMAT_ERROR with every problem in detailMessage.formatErrors, or a refusal of \
             the hub (see DESIGN.md).",
        ),
        (
            413,
            "The body is over server.body_limit_bytes (FORMAT_ERROR).",
        ),
        (
            415,
            "Content-Type is not application/json (or application/*+json) (FORMAT_ERROR).",
        ),
        (
            501,
            "The operation is in server.disabled_operations (FUNCTION_NOT_SUPPORTED).",
        ),
    ];
    all.extend_from_slice(extra);
    errors(&all)
}

fn security() -> Value {
    json!([{"basicAuth": []}])
}

struct Operation<'a> {
    operation_id: &'a str,
    tag: &'a str,
    summary: &'a str,
    description: &'a str,
    extension: bool,
}

fn operation(op: &Operation, mut fields: Map<String, Value>) -> Value {
    fields.insert("operationId".into(), json!(op.operation_id));
    fields.insert("tags".into(), json!([op.tag]));
    fields.insert("summary".into(), json!(op.summary));
    if !op.description.is_empty() {
        fields.insert("description".into(), json!(op.description));
    }
    if op.extension {
        fields.insert("x-qrhub-extension".into(), json!(true));
    }
    Value::Object(fields)
}

fn body(schema_name: &str) -> Value {
    json!({
        "required": true,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema_name}")}}}
    })
}

fn map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn paths() -> Value {
    let mut paths = Map::new();

    // The five operations of the interface, each also with a trailing slash.
    let create = |op: &Operation| {
        let mut responses = body_errors(&[]);
        responses.insert(
            "201".into(),
            json_answer(
                "The request echoed, with tranId, qrCode (the payload) and qrProperties.",
                "CreateQrCodeResponse",
            ),
        );
        operation(
            op,
            map(
                json!({"security": security(), "requestBody": body("CreateQrCodeRequest"),
                        "responses": responses}),
            ),
        )
    };
    let pay = |op: &Operation| {
        let mut responses = body_errors(&[
            (503, "The partner could not be reached; nothing was sent (UPSTREAM_UNAVAILABLE)."),
            (504, "The partner's outcome is unknown; the hub queued a reversal (UPSTREAM_UNAVAILABLE)."),
        ]);
        responses.insert(
            "201".into(),
            json_answer(
                "The partner approved: its PaymentResponse, relayed in the POS's terms.",
                "PaymentResponse",
            ),
        );
        responses.insert(
            "default".into(),
            error("The partner declined: its status and ErrorDetail, relayed."),
        );
        operation(
            op,
            map(
                json!({"security": security(), "requestBody": body("PaymentRequest"),
                        "responses": responses}),
            ),
        )
    };
    let scan = |op: &Operation| {
        let mut responses = body_errors(&[]);
        responses.insert(
            "202".into(),
            json!({"description": "The payment of tranId is claimed for this partner. No body."}),
        );
        operation(
            op,
            map(
                json!({"security": security(), "requestBody": body("ScanNotification"),
                        "responses": responses}),
            ),
        )
    };
    let advice = |schema_name: &'static str| {
        move |op: &Operation| {
            let mut responses = body_errors(&[(
                404,
                "No payment of this client has requestId (UNABLE_TO_LOCATE_RECORD).",
            )]);
            responses.insert(
                "202".into(),
                json_answer(
                    "Accepted (also for a repeat): the advice echoed in the interface's form; \
                     the hub delivers it to the partner.",
                    schema_name,
                ),
            );
            operation(
                op,
                map(
                    json!({"security": security(), "requestBody": body(schema_name),
                            "responses": responses}),
                ),
            )
        }
    };
    type Build<'a> = Box<dyn Fn(&Operation) -> Value + 'a>;
    let interface: [(&str, &str, &str, &str, Build); 5] = [
        (
            "/qr/v1/qrCodes",
            "createQrCode",
            "Create a QR code (POS).",
            "",
            Box::new(create),
        ),
        (
            "/qr/v1/payments",
            "pay",
            "Pay by the QR code of tranId (POS); held until a partner scans it.",
            "Held until a partner reports the scan and answers, at most timing.pay_deadline; \
             without a scan in the window: 400 NO_SCAN_RECEIVED. A POS that closes the \
             connection (or resets the stream) before a scan ends the payment: it is never sent \
             to a partner, and a reversal of it is answered 202.",
            Box::new(pay),
        ),
        (
            "/qr/v1/scans",
            "notifyScan",
            "A customer scanned the code of tranId (partner credentials).",
            "A scan of a code whose POS went away while its pay waited: 400 \
             UNABLE_TO_LOCATE_RECORD (\"The POS went away before the scan\"), at once.",
            Box::new(scan),
        ),
        (
            "/qr/v1/payments/confirmations",
            "confirmPayment",
            "Confirm an approved payment (POS).",
            "",
            Box::new(advice("PaymentConfirmation")),
        ),
        (
            "/qr/v1/payments/reversals",
            "reversePayment",
            "Reverse a payment (POS).",
            "",
            Box::new(advice("PaymentReversal")),
        ),
    ];
    for (path, id, summary, description, build) in &interface {
        let main = Operation {
            operation_id: id,
            tag: "interface",
            summary,
            description,
            extension: false,
        };
        paths.insert((*path).to_owned(), json!({"post": build(&main)}));
        let slash_id = format!("{id}WithTrailingSlash");
        let mut slashed = build(&Operation {
            operation_id: &slash_id,
            tag: "interface",
            summary,
            description: "The same operation spelt with a trailing slash, as clients of the \
                interface before v1.4.0 send it.",
            extension: false,
        });
        slashed["deprecated"] = json!(true);
        paths.insert(format!("{path}/"), json!({"post": slashed}));
    }

    // Extensions.
    let mut image_responses = errors(&[
        (
            400,
            "format is neither svg nor png, or scale is not a whole number (FORMAT_ERROR).",
        ),
        (
            404,
            "No code of this client has tranId (UNABLE_TO_LOCATE_RECORD).",
        ),
    ]);
    image_responses.insert(
        "200".into(),
        json!({
            "description": "The code's image.",
            "content": {
                "image/svg+xml": {"schema": {"type": "string"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}}
            }
        }),
    );
    paths.insert(
        "/qr/v1/qrCodes/{tranId}/image".into(),
        json!({"get": operation(
            &Operation {
                operation_id: "getQrCodeImage",
                tag: "extensions",
                summary: "The image of a QR code (POS; only the client that created it).",
                description: "",
                extension: true,
            },
            map(json!({
                "security": security(),
                "parameters": [
                    {"name": "tranId", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "format", "in": "query", "required": false,
                     "schema": {"type": "string", "enum": ["svg", "png"], "default": "svg"}},
                    {"name": "scale", "in": "query", "required": false,
                     "description": "PNG pixels per module; clamped to 1..=32 (default 8).",
                     "schema": {"type": "integer", "minimum": 0, "maximum": u32::MAX, "default": 8}}
                ],
                "responses": image_responses
            })),
        )}),
    );
    let unauthenticated = |id: &'static str,
                           summary: &'static str,
                           description: &'static str,
                           responses: Value| {
        json!({"get": operation(
            &Operation { operation_id: id, tag: "extensions", summary, description, extension: true },
            map(json!({"security": [], "responses": responses})),
        )})
    };
    paths.insert(
        "/health/live".into(),
        unauthenticated(
            "live",
            "Liveness: the process is up.",
            "",
            json!({"200": json_answer("{\"status\": \"up\"}", "Health")}),
        ),
    );
    paths.insert(
        "/health/ready".into(),
        unauthenticated(
            "ready",
            "Readiness: the database answers.",
            "",
            json!({
                "200": json_answer("{\"status\": \"ready\"}", "Health"),
                "503": json_answer("{\"status\": \"unavailable\", \"database\": \"unreachable\"}", "Health")
            }),
        ),
    );
    paths.insert(
        "/metrics".into(),
        unauthenticated(
            "metrics",
            "Prometheus metrics (text format).",
            "Served only when server.metrics_enabled (the default). No authentication: keep it \
             off public networks.",
            json!({"200": {"description": "The Prometheus text exposition format.",
                           "content": {"text/plain": {"schema": {"type": "string"}}}}}),
        ),
    );
    paths.insert(
        "/openapi.json".into(),
        unauthenticated(
            "openapi",
            "This document.",
            "",
            json!({"200": {"description": "The OpenAPI document of this hub.",
                           "content": {"application/json": {"schema": {"type": "object"}}}}}),
        ),
    );

    // The back office.
    let admin =
        |id: &'static str, summary: &'static str, description: &'static str, fields: Value| {
            operation(
                &Operation {
                    operation_id: id,
                    tag: "admin",
                    summary,
                    description,
                    extension: true,
                },
                map(fields),
            )
        };
    let query = |name: &str, description: &str| {
        json!({"name": name, "in": "query", "required": false, "description": description,
               "schema": {"type": "string"}})
    };
    let limit = |default: i64| {
        json!({"name": "limit", "in": "query", "required": false,
               "description": format!("1 to {} (default {default}).", crate::model::page::MAX_LIMIT),
               "schema": {"type": "integer", "minimum": 1, "maximum": crate::model::page::MAX_LIMIT, "default": default}})
    };
    let states: Vec<&str> = crate::domain::PaymentState::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    let with = |mut responses: Map<String, Value>, status: &str, answer: Value| {
        responses.insert(status.into(), answer);
        Value::Object(responses)
    };
    let bad_param = (
        400,
        "A query parameter or the id is not usable (FORMAT_ERROR naming it).",
    );
    paths.insert(
        "/admin/v1/payments".into(),
        json!({"get": admin(
            "searchPayments",
            "Payments, newest first, in keyset pages.",
            "",
            json!({
                "security": security(),
                "parameters": [
                    query("tranId", "Exactly this tranId."),
                    query("clientId", "Exactly this POS client."),
                    query("partnerId", "Exactly this partner."),
                    {"name": "state", "in": "query", "required": false, "schema": {"type": "string", "enum": states}},
                    query("from", "An RFC 3339 time or a settlement day YYYY-MM-DD (its start)."),
                    query("to", "An RFC 3339 time or a settlement day YYYY-MM-DD (that day included)."),
                    limit(crate::model::page::DEFAULT_LIMIT),
                    query("after", "The `next` cursor of the previous page.")
                ],
                "responses": with(errors(&[bad_param]), "200", json_answer("A page of payments.", "PaymentPage"))
            }),
        )}),
    );
    paths.insert(
        "/admin/v1/payments/{id}".into(),
        json!({"get": admin(
            "getPayment",
            "A payment with its POS request, the partner's response, its timeline and outbox rows.",
            "",
            json!({
                "security": security(),
                "parameters": [{"name": "id", "in": "path", "required": true,
                                "description": "The payment id (a UUID).", "schema": {"type": "string"}}],
                "responses": with(
                    errors(&[bad_param, (404, "No such payment (UNABLE_TO_LOCATE_RECORD).")]),
                    "200", json_answer("The payment.", "PaymentDetail"))
            }),
        )}),
    );
    paths.insert(
        "/admin/v1/outbox".into(),
        json!({"get": admin(
            "listOutbox",
            "Outbox rows in one state (default DEAD), oldest first.",
            "",
            json!({
                "security": security(),
                "parameters": [
                    {"name": "state", "in": "query", "required": false,
                     "schema": {"type": "string", "enum": ["PENDING", "DELIVERED", "FAILED", "DEAD"], "default": "DEAD"}},
                    limit(100)
                ],
                "responses": with(errors(&[bad_param]), "200", json_answer("The rows.", "OutboxList"))
            }),
        )}),
    );
    paths.insert(
        "/admin/v1/unadvised".into(),
        json!({"get": admin(
            "listUnadvisedApprovals",
            "Payments APPROVED longer than unadvised.listed_after ago that no POS confirmed or reversed, oldest first.",
            "",
            json!({
                "security": security(),
                "parameters": [
                    {"name": "clientId", "in": "query", "required": false,
                     "description": "Only this POS client's.", "schema": {"type": "string"}},
                    limit(100)
                ],
                "responses": with(errors(&[bad_param]), "200", json_answer("The approvals.", "UnadvisedList"))
            }),
        )}),
    );
    paths.insert(
        "/admin/v1/outbox/{id}/retry".into(),
        json!({"post": admin(
            "retryDeadLetter",
            "A DEAD outbox row back to PENDING, due now, with a fresh outbox.expiry.",
            "",
            json!({
                "security": security(),
                "parameters": [{"name": "id", "in": "path", "required": true,
                                "description": "The outbox row id (a UUID).", "schema": {"type": "string"}}],
                "responses": with(
                    errors(&[bad_param, (404, "No dead or refused outbox row with this id (UNABLE_TO_LOCATE_RECORD).")]),
                    "200", json_answer("The row, pending again.", "Retried"))
            }),
        )}),
    );
    paths.insert(
        "/admin/v1/reports/settlement".into(),
        json!({"get": admin(
            "settlementReport",
            "The day's settlement per partner and currency.",
            "Payments belong to the settlement day of the instant they were created: the local date in \
             `[settlement] time_zone`, the next day at or past its `cut_off` (default UTC 00:00); \
             the report names the zone, cut-off and instants it covers. JSON, or CSV with ?format=csv or \
             Accept: text/csv (columns in src/admin/reports.rs).",
            json!({
                "security": security(),
                "parameters": [
                    query("date", "A settlement day YYYY-MM-DD (default: today, by the hub's zone and cut-off)."),
                    query("partnerId", "Only this partner."),
                    {"name": "format", "in": "query", "required": false,
                     "schema": {"type": "string", "enum": ["json", "csv"]}}
                ],
                "responses": with(errors(&[bad_param]), "200", json!({
                    "description": "The report.",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/SettlementReport"}},
                        "text/csv": {"schema": {"type": "string"}}
                    }
                }))
            }),
        )}),
    );
    paths.insert(
        "/admin/v1/reports/reconciliation".into(),
        json!({"post": admin(
            "reconcile",
            "The partner's report for a day against the hub's.",
            "The body is at most 16 MiB.",
            json!({
                "security": security(),
                "parameters": [
                    query("date", "A settlement day YYYY-MM-DD (default: today, by the hub's zone and cut-off)."),
                    {"name": "partnerId", "in": "query", "required": true,
                     "description": "The partner whose report this is.", "schema": {"type": "string", "minLength": 1}}
                ],
                "requestBody": {
                    "required": true,
                    "content": {
                        "text/csv": {"schema": {"type": "string",
                            "description": "A header row naming tranId, partnerReference, amount, currency, status and optionally fee and net (any order), then one row per payment."}},
                        "application/json": {"schema": {"$ref": "#/components/schemas/PartnerReport"}}
                    }
                },
                "responses": with(
                    errors(&[
                        (400, "A query parameter or the report is not usable (FORMAT_ERROR naming it)."),
                        (413, "The report is over 16 MiB (FORMAT_ERROR)."),
                        (415, "Content-Type is neither text/csv nor application/json (FORMAT_ERROR).")
                    ]),
                    "200", json_answer("What matched and what did not.", "Reconciliation"))
            }),
        )}),
    );
    paths.insert(
        "/admin/v1/partners/health".into(),
        json!({"get": admin(
            "partnersHealth",
            "Each partner's last hour: pay outcomes and rates, latency, last error, advices waiting.",
            "The call figures are this hub instance's (each instance reports the calls it made); \
             the advices waiting are the store's, every instance's. Partners no longer configured \
             that still have advices waiting are listed with configured = false.",
            json!({
                "security": security(),
                "responses": with(errors(&[]), "200", json_answer("Every partner's health.", "PartnersHealth"))
            }),
        )}),
    );

    Value::Object(paths)
}

/// The shapes of `GET /admin/v1/partners/health` (`crate::admin::health`).
fn partner_health_schemas() -> BTreeMap<String, Value> {
    let int64 = || json!({"type": "integer", "format": "int64"});
    let minutes = |what: &str| {
        json!({"type": "array", "items": {"type": "integer", "format": "int32"},
               "description": format!("{what} per minute, oldest first: 60 values, the last the current minute.")})
    };
    let rate = |what: &str| {
        json!({"type": "number", "format": "double", "minimum": 0, "maximum": 1,
               "description": format!("{what} / payCalls; absent without calls.")})
    };
    let latency = |q: &str| {
        json!({"type": "number", "format": "double",
               "description": format!("{q} of the pay calls' latency in milliseconds (the upper bound of its bucket, at most a tenth above); absent without calls.")})
    };
    BTreeMap::from([
        (
            "PartnerLastError".to_owned(),
            json!({
                "type": "object",
                "properties": {
                    "at": {"type": "string", "format": "date-time"},
                    "operation": {"type": "string", "enum": ["pay", "confirmPayment", "reversePayment"]},
                    "error": {"type": "string", "description": "The partner's status, a timeout, a connection that failed."}
                },
                "required": ["at", "operation", "error"]
            }),
        ),
        (
            "PartnerHealth".to_owned(),
            json!({
                "type": "object",
                "properties": {
                    "partnerId": {"type": "string"},
                    "name": {"type": "string", "description": "Absent for a partner no longer configured."},
                    "configured": {"type": "boolean"},
                    "advicesWaiting": int64(),
                    "oldestAdviceWaitingSeconds": int64(),
                    "payCalls": int64(),
                    "approved": int64(),
                    "failed": {"type": "integer", "format": "int64", "description": "Declined or not processed (a 4xx, 501, 503): final, nothing to reverse."},
                    "unknown": int64(),
                    "notSent": int64(),
                    "approvalRate": rate("approved"),
                    "unknownRate": rate("unknown"),
                    "latencyP50Ms": latency("The median"),
                    "latencyP99Ms": latency("The 99th percentile"),
                    "callsPerMinute": minutes("pay calls"),
                    "approvedPerMinute": minutes("Approvals"),
                    "unknownPerMinute": minutes("Unknown outcomes"),
                    "lastError": {"$ref": "#/components/schemas/PartnerLastError"}
                },
                "required": ["partnerId", "configured", "advicesWaiting", "payCalls", "approved",
                             "failed", "unknown", "notSent", "callsPerMinute",
                             "approvedPerMinute", "unknownPerMinute"]
            }),
        ),
        (
            "PartnersHealth".to_owned(),
            json!({
                "type": "object",
                "properties": {
                    "generatedAt": {"type": "string", "format": "date-time"},
                    "windowSeconds": int64(),
                    "scope": {"type": "string"},
                    "partners": {"type": "array", "items": {"$ref": "#/components/schemas/PartnerHealth"}}
                },
                "required": ["generatedAt", "windowSeconds", "scope", "partners"]
            }),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut refs = Vec::new();
        fn walk(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|v| walk(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        walk(&doc, &mut refs);
        assert!(refs.len() > 50);
        for r in refs {
            let pointer = r.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn patterns_are_anchored_as_the_validator_applies_them() {
        let doc = document();
        assert_eq!(
            doc.pointer("/components/schemas/Merchant/properties/merchantType/pattern"),
            Some(&json!("^(?:[0-9]{4})$"))
        );
        assert_eq!(
            doc.pointer("/components/schemas/Merchant/required"),
            Some(&json!(["merchantType", "merchantId", "merchantName"]))
        );
        assert_eq!(
            doc.pointer(
                "/components/schemas/Amounts/properties/additionalAmounts/additionalProperties"
            ),
            Some(&json!({"$ref": "#/components/schemas/LedgerAmount"}))
        );
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = document();
        let mut ids = Vec::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                ids.push(op["operationId"].as_str().unwrap().to_owned());
            }
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count);
    }
}
