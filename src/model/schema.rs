//! The spec's constraints as data, and a checker that reports every violation at once.
//!
//! Each model of the interface is a [`Schema`]: its fields, which are required, and each
//! field's kind with the spec's lengths and patterns. Patterns are whole-string matches, as
//! Java's `@Pattern` is (JSON Schema's `pattern` would be unanchored). [`check`] walks a JSON
//! body and returns one [`FormatError`] per problem, with the dotted path of the field.

use regex::Regex;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

use super::{FormatError, Timestamp};

/// What a field may hold.
#[derive(Debug)]
pub enum Kind {
    Str {
        min: Option<usize>,
        max: Option<usize>,
        pattern: Option<&'static str>,
    },
    DateTime,
    Int64,
    Int32,
    Double,
    Bool,
    Object(&'static Schema),
    Array(&'static Kind),
    Map(&'static Kind),
    /// A closed set of values; anything else is a format error.
    Enum(&'static [&'static str]),
    /// An enum whose unknown values are dropped rather than refused (`QrProperties.scheme`).
    LenientEnum(&'static [&'static str]),
    /// Any JSON (free-form `detailMessage`).
    Any,
}

#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

#[derive(Debug)]
pub struct Schema {
    pub name: &'static str,
    pub fields: &'static [Field],
}

const fn req(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: true,
    }
}

const fn opt(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
    }
}

const STRING: Kind = Kind::Str {
    min: None,
    max: None,
    pattern: None,
};

const fn max_len(max: usize) -> Kind {
    Kind::Str {
        min: None,
        max: Some(max),
        pattern: None,
    }
}

const fn exact_len(n: usize) -> Kind {
    Kind::Str {
        min: Some(n),
        max: Some(n),
        pattern: None,
    }
}

const fn pattern(p: &'static str) -> Kind {
    Kind::Str {
        min: None,
        max: None,
        pattern: Some(p),
    }
}

pub const ACCOUNT_TYPES: &[&str] = &[
    "DEFAULT",
    "SAVINGS",
    "CHEQUE",
    "CREDIT",
    "UNIVERSAL",
    "ELECTRONIC_PURSE",
    "GIFT_CARD",
    "STORED_VALUE",
];
/// `Tender.accountType` has its own, older list.
pub const TENDER_ACCOUNT_TYPES: &[&str] = &[
    "DEFAULT",
    "SAVINGS",
    "CHEQUE",
    "CREDIT",
    "UNIVERSAL",
    "ELECTRONIC_PURSE",
    "STORED_VALUE",
];
pub const TRAN_TYPES: &[&str] = &[
    "GOODS_AND_SERVICES",
    "CASH_WITHDRAWAL",
    "DEBIT_ADJUSTMENT",
    "GOODS_AND_SERVICES_WITH_CASH_BACK",
    "NON_CASH",
    "RETURNS",
    "DEPOSIT",
    "CREDIT_ADJUSTMENT",
    "GENERAL_CREDIT",
    "AVAILABLE_FUNDS_INQUIRY",
    "BALANCE_INQUIRY",
    "GENERAL_INQUIRY",
    "CARD_VERIFICATION_INQUIRY",
    "CARDHOLDER_ACCOUNTS_TRANSFER",
    "GENERAL_TRANSFER",
    "PAYMENT_FROM_ACCOUNT",
    "GENERAL_PAYMENT",
    "PAYMENT_TO_ACCOUNT",
    "PAYMENT_FROM_ACCOUNT_TO_ACCOUNT",
    "PLACE_HOLD_ON_CARD",
    "GENERAL_ADMIN",
    "CHANGE_PIN",
    "CARD_HOLDER_INQUIRY",
    "POINTS_INQUIRY",
];
pub const TENDER_TYPES: &[&str] = &[
    "CASH",
    "CHEQUE",
    "CREDIT_CARD",
    "DEBIT_CARD",
    "WALLET",
    "ROUNDING",
    "GIFT_CARD",
    "LOYALTY_CARD",
    "OTHER",
];
pub const REVERSAL_REASONS: &[&str] = &["TIMEOUT", "CANCELLED", "RESPONSE_NOT_FINAL"];
pub const LEDGER_INDICATORS: &[&str] = &["DEBIT", "CREDIT"];
pub const QR_SCHEMES: &[&str] = &[
    "EMVCO_MERCHANT",
    "PSEUDO_EMVCO_MERCHANT",
    "ELECTRUM_MERCHANT_MINIMAL",
];

pub static INSTITUTION: Schema = Schema {
    name: "Institution",
    fields: &[req("id", STRING), req("name", max_len(40))],
};

pub static MERCHANT_NAME: Schema = Schema {
    name: "MerchantName",
    fields: &[
        req("name", max_len(23)),
        req("city", max_len(13)),
        req("region", max_len(2)),
        req("country", max_len(2)),
    ],
};

pub static MERCHANT: Schema = Schema {
    name: "Merchant",
    fields: &[
        req("merchantType", pattern("[0-9]{4}")),
        req("merchantId", exact_len(15)),
        req("merchantName", Kind::Object(&MERCHANT_NAME)),
    ],
};

pub static ORIGINATOR: Schema = Schema {
    name: "Originator",
    fields: &[
        req("institution", Kind::Object(&INSTITUTION)),
        req("terminalId", exact_len(8)),
        req("merchant", Kind::Object(&MERCHANT)),
        opt("operatorId", max_len(30)),
        opt("channelId", max_len(50)),
    ],
};

pub static LEDGER_AMOUNT: Schema = Schema {
    name: "LedgerAmount",
    fields: &[
        req("amount", Kind::Int64),
        req("currency", pattern("[0-9]{3}")),
        opt("ledgerIndicator", Kind::Enum(LEDGER_INDICATORS)),
    ],
};

pub static AMOUNTS: Schema = Schema {
    name: "Amounts",
    fields: &[
        opt("requestAmount", Kind::Object(&LEDGER_AMOUNT)),
        opt("approvedAmount", Kind::Object(&LEDGER_AMOUNT)),
        opt("feeAmount", Kind::Object(&LEDGER_AMOUNT)),
        opt("balanceAmount", Kind::Object(&LEDGER_AMOUNT)),
        opt(
            "additionalAmounts",
            Kind::Map(&Kind::Object(&LEDGER_AMOUNT)),
        ),
    ],
};

pub static THIRD_PARTY_IDENTIFIER: Schema = Schema {
    name: "ThirdPartyIdentifier",
    // transactionIdentifier is required by the spec but not enforced by the reference
    // implementation; POS systems in the field omit it.
    fields: &[
        req("institutionId", STRING),
        opt("transactionIdentifier", STRING),
    ],
};

const THIRD_PARTY_IDENTIFIERS: Kind = Kind::Array(&Kind::Object(&THIRD_PARTY_IDENTIFIER));

pub static BARCODE: Schema = Schema {
    name: "Barcode",
    fields: &[req("data", STRING), opt("encoding", STRING)],
};

pub static SLIP_LINE: Schema = Schema {
    name: "SlipLine",
    fields: &[
        req("text", STRING),
        opt("barcode", Kind::Object(&BARCODE)),
        opt("fontWidthScaleFactor", Kind::Double),
        opt("fontHeightScaleFactor", Kind::Double),
        opt("line", Kind::Bool),
        opt("cut", Kind::Bool),
    ],
};

pub static SLIP_DATA: Schema = Schema {
    name: "SlipData",
    fields: &[
        opt("messageLines", Kind::Array(&Kind::Object(&SLIP_LINE))),
        opt("slipWidth", Kind::Int32),
        opt("issuerReference", pattern("[A-Z0-9]{1,40}")),
    ],
};

pub static TENDER: Schema = Schema {
    name: "Tender",
    fields: &[
        opt("accountType", Kind::Enum(TENDER_ACCOUNT_TYPES)),
        req("amount", Kind::Object(&LEDGER_AMOUNT)),
        opt("cardNumber", pattern("[0-9]{6}[0-9*]{0,13}")),
        opt("reference", max_len(40)),
        req("tenderType", Kind::Enum(TENDER_TYPES)),
    ],
};

pub static ADDRESS: Schema = Schema {
    name: "Address",
    fields: &[
        opt("addressLine1", pattern(".{1,100}")),
        opt("addressLine2", pattern(".{1,100}")),
        opt("city", pattern(".{1,30}")),
        opt("region", pattern("[A-Z]{2}")),
        opt("country", pattern("[A-Z]{2}")),
        opt("postalCode", pattern("[A-Za-z0-9 -]{1,20}")),
    ],
};

pub static CUSTOMER: Schema = Schema {
    name: "Customer",
    fields: &[
        opt("firstName", max_len(40)),
        opt("lastName", max_len(40)),
        opt("address", max_len(80)),
        opt("dateOfBirth", Kind::DateTime),
        opt("status", STRING),
        opt("msisdn", pattern(r"\+?[1-9]\d{0,14}")),
        // RFC 5322 addr-spec, in the practical form Java's @Email accepts.
        opt(
            "emailAddress",
            pattern(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*"),
        ),
        opt("addressDetails", Kind::Object(&ADDRESS)),
        opt("profileId", STRING),
    ],
};

pub static QR_PROPERTIES: Schema = Schema {
    name: "QrProperties",
    fields: &[
        opt("uuid", STRING),
        opt("value", Kind::Object(&LEDGER_AMOUNT)),
        opt("overPaymentAllowed", Kind::Bool),
        opt("partPaymentAllowed", Kind::Bool),
        opt("expiryDate", Kind::DateTime),
        opt("singleUse", Kind::Bool),
        opt("scheme", Kind::LenientEnum(QR_SCHEMES)),
    ],
};

pub static CREATE_QR_CODE_REQUEST: Schema = Schema {
    name: "CreateQrCodeRequest",
    fields: &[
        req("id", STRING),
        req("time", Kind::DateTime),
        req("originator", Kind::Object(&ORIGINATOR)),
        req("client", Kind::Object(&INSTITUTION)),
        opt("thirdPartyIdentifiers", THIRD_PARTY_IDENTIFIERS),
        opt("rrn", STRING),
        opt("stan", STRING),
        opt("amounts", Kind::Object(&AMOUNTS)),
        opt("customer", Kind::Object(&CUSTOMER)),
        // Required by the spec, not enforced by the reference implementation.
        opt("qrProperties", Kind::Object(&QR_PROPERTIES)),
    ],
};

/// The 201 answer to `createQrCode`: the request echoed (its checks still hold), the
/// properties the code was made with (always present), the tranId and the payload.
pub static CREATE_QR_CODE_RESPONSE: Schema = Schema {
    name: "CreateQrCodeResponse",
    fields: &[
        req("id", STRING),
        req("time", Kind::DateTime),
        req("originator", Kind::Object(&ORIGINATOR)),
        req("client", Kind::Object(&INSTITUTION)),
        opt("thirdPartyIdentifiers", THIRD_PARTY_IDENTIFIERS),
        opt("rrn", STRING),
        opt("stan", STRING),
        opt("amounts", Kind::Object(&AMOUNTS)),
        opt("customer", Kind::Object(&CUSTOMER)),
        req("qrProperties", Kind::Object(&QR_PROPERTIES)),
        req("tranId", STRING),
        req("qrCode", STRING),
    ],
};

pub static SCAN_NOTIFICATION: Schema = Schema {
    name: "ScanNotification",
    fields: &[
        req("id", STRING),
        req("time", Kind::DateTime),
        req("partner", Kind::Object(&INSTITUTION)),
        opt("settlementEntity", Kind::Object(&INSTITUTION)),
        opt("receiver", Kind::Object(&INSTITUTION)),
        opt("thirdPartyIdentifiers", THIRD_PARTY_IDENTIFIERS),
        opt("amounts", Kind::Object(&AMOUNTS)),
        req("tranId", STRING),
        opt("partnerPaymentToken", STRING),
    ],
};

pub static PAYMENT_REQUEST: Schema = Schema {
    name: "PaymentRequest",
    fields: &[
        req("id", STRING),
        req("time", Kind::DateTime),
        req("originator", Kind::Object(&ORIGINATOR)),
        req("client", Kind::Object(&INSTITUTION)),
        opt("settlementEntity", Kind::Object(&INSTITUTION)),
        opt("receiver", Kind::Object(&INSTITUTION)),
        // Required, but the reference implementation defaults an absent array to [].
        opt("thirdPartyIdentifiers", THIRD_PARTY_IDENTIFIERS),
        opt("slipData", Kind::Object(&SLIP_DATA)),
        opt("basketRef", STRING),
        opt("tranType", Kind::Enum(TRAN_TYPES)),
        opt("srcAccType", Kind::Enum(ACCOUNT_TYPES)),
        opt("destAccType", Kind::Enum(ACCOUNT_TYPES)),
        opt("stan", STRING),
        opt("rrn", STRING),
        opt("partner", Kind::Object(&INSTITUTION)),
        req("amounts", Kind::Object(&AMOUNTS)),
        req("tranId", STRING),
        opt("partnerPaymentToken", STRING),
    ],
};

pub static PAYMENT_RESPONSE: Schema = Schema {
    name: "PaymentResponse",
    fields: &[
        req("id", STRING),
        req("time", Kind::DateTime),
        req("originator", Kind::Object(&ORIGINATOR)),
        req("client", Kind::Object(&INSTITUTION)),
        opt("settlementEntity", Kind::Object(&INSTITUTION)),
        opt("receiver", Kind::Object(&INSTITUTION)),
        opt("thirdPartyIdentifiers", THIRD_PARTY_IDENTIFIERS),
        opt("slipData", Kind::Object(&SLIP_DATA)),
        opt("basketRef", STRING),
        opt("tranType", Kind::Enum(TRAN_TYPES)),
        opt("srcAccType", Kind::Enum(ACCOUNT_TYPES)),
        opt("destAccType", Kind::Enum(ACCOUNT_TYPES)),
        opt("stan", STRING),
        opt("rrn", STRING),
        req("partner", Kind::Object(&INSTITUTION)),
        opt("tenders", Kind::Array(&Kind::Object(&TENDER))),
        req("amounts", Kind::Object(&AMOUNTS)),
        req("tranId", STRING),
        opt("partnerPaymentToken", STRING),
    ],
};

pub static PAYMENT_CONFIRMATION: Schema = Schema {
    name: "PaymentConfirmation",
    fields: &[
        req("id", STRING),
        req("requestId", STRING),
        req("time", Kind::DateTime),
        opt("thirdPartyIdentifiers", THIRD_PARTY_IDENTIFIERS),
        opt("stan", STRING),
        opt("rrn", STRING),
        opt("amounts", Kind::Object(&AMOUNTS)),
        opt("partner", Kind::Object(&INSTITUTION)),
        opt("tranId", STRING),
    ],
};

pub static PAYMENT_REVERSAL: Schema = Schema {
    name: "PaymentReversal",
    fields: &[
        req("id", STRING),
        req("requestId", STRING),
        req("time", Kind::DateTime),
        opt("thirdPartyIdentifiers", THIRD_PARTY_IDENTIFIERS),
        opt("stan", STRING),
        opt("rrn", STRING),
        opt("amounts", Kind::Object(&AMOUNTS)),
        opt("partner", Kind::Object(&INSTITUTION)),
        opt("tranId", STRING),
        req("reversalReason", Kind::Enum(REVERSAL_REASONS)),
    ],
};

pub static ERROR_DETAIL: Schema = Schema {
    name: "ErrorDetail",
    fields: &[
        req("id", STRING),
        opt("originalId", STRING),
        req("errorType", Kind::Enum(ERROR_TYPES)),
        req("errorMessage", STRING),
        opt("detailMessage", Kind::Any),
        opt("providerErrorCode", STRING),
        opt("providerErrorMsg", STRING),
        opt("providerRef", STRING),
        opt("tranId", STRING),
    ],
};

pub const ERROR_TYPES: &[&str] = &[
    "DUPLICATE_RECORD",
    "FORMAT_ERROR",
    "FUNCTION_NOT_SUPPORTED",
    "GENERAL_ERROR",
    "INVALID_AMOUNT",
    "ROUTING_ERROR",
    "TRANSACTION_NOT_SUPPORTED",
    "UNABLE_TO_LOCATE_RECORD",
    "UPSTREAM_UNAVAILABLE",
    "ACCOUNT_ALREADY_SETTLED",
    "INVALID_MERCHANT",
    "DO_NOT_HONOR",
    "DECLINED_BY_PARTNER",
    "DECLINED_BY_ACQUIRER",
    "DECLINED_BY_ISSUER",
    "INSUFFICIENT_FUNDS",
    "INVALID_CARD_NUMBER",
    "CARD_EXPIRED",
    "INVALID_TRAN_ID",
    "PARTNER_UNKNOWN",
    "NO_SCAN_RECEIVED",
    "INVALID_ACCOUNT",
];

/// Checks `body` against `schema`; an empty list means the body is well formed.
pub fn check(body: &Value, schema: &Schema) -> Vec<FormatError> {
    let mut errors = Vec::new();
    check_object(body, schema, "", &mut errors);
    errors
}

/// Whether one value is well formed as `kind` (for the repairs of `model::repair`).
pub(crate) fn value_ok(value: &Value, kind: &Kind) -> bool {
    let mut errors = Vec::new();
    check_value(value, kind, "", &mut errors);
    errors.is_empty()
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn problem(errors: &mut Vec<FormatError>, field: String, msg: impl Into<String>, value: &Value) {
    let value = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    errors.push(FormatError {
        field,
        msg: msg.into(),
        value,
    });
}

fn check_object(value: &Value, schema: &Schema, path: &str, errors: &mut Vec<FormatError>) {
    let Some(object) = value.as_object() else {
        let field = if path.is_empty() { "body" } else { path };
        problem(
            errors,
            field.to_owned(),
            format!("must be a {} object", schema.name),
            value,
        );
        return;
    };
    for field in schema.fields {
        let path = join(path, field.name);
        match object.get(field.name) {
            None | Some(Value::Null) => {
                if field.required {
                    // The Electrum test packs look for "<path> may not be null".
                    let msg = format!("{path} may not be null");
                    problem(errors, path, msg, &Value::Null);
                }
            }
            Some(v) => check_value(v, &field.kind, &path, errors),
        }
    }
}

fn check_value(value: &Value, kind: &Kind, path: &str, errors: &mut Vec<FormatError>) {
    match kind {
        Kind::Str { min, max, pattern } => {
            let Some(s) = value.as_str() else {
                return problem(errors, path.to_owned(), "must be a string", value);
            };
            let len = s.chars().count();
            match (min, max) {
                (Some(lo), Some(hi)) if len < *lo || len > *hi => {
                    let msg = if lo == hi {
                        format!("length must be exactly {lo}")
                    } else {
                        format!("length must be between {lo} and {hi}")
                    };
                    problem(errors, path.to_owned(), msg, value)
                }
                (Some(lo), None) if len < *lo => problem(
                    errors,
                    path.to_owned(),
                    format!("length must be at least {lo}"),
                    value,
                ),
                (None, Some(hi)) if len > *hi => problem(
                    errors,
                    path.to_owned(),
                    format!("length must be between 0 and {hi}"),
                    value,
                ),
                _ => {}
            }
            if let Some(p) = pattern {
                if !whole_match(p, s) {
                    problem(
                        errors,
                        path.to_owned(),
                        format!("must match \"{p}\""),
                        value,
                    );
                }
            }
        }
        Kind::DateTime => {
            if value.as_str().and_then(Timestamp::parse).is_none() {
                problem(
                    errors,
                    path.to_owned(),
                    "must be an RFC 3339 date-time",
                    value,
                );
            }
        }
        Kind::Int64 => {
            if value.as_i64().is_none() {
                problem(errors, path.to_owned(), "must be a 64-bit integer", value);
            }
        }
        Kind::Int32 => {
            if value.as_i64().and_then(|n| i32::try_from(n).ok()).is_none() {
                problem(errors, path.to_owned(), "must be a 32-bit integer", value);
            }
        }
        Kind::Double => {
            if !value.is_number() {
                problem(errors, path.to_owned(), "must be a number", value);
            }
        }
        Kind::Bool => {
            if !value.is_boolean() {
                problem(errors, path.to_owned(), "must be true or false", value);
            }
        }
        Kind::Object(schema) => check_object(value, schema, path, errors),
        Kind::Array(item) => {
            let Some(items) = value.as_array() else {
                return problem(errors, path.to_owned(), "must be an array", value);
            };
            for (i, v) in items.iter().enumerate() {
                check_value(v, item, &format!("{path}[{i}]"), errors);
            }
        }
        Kind::Map(item) => {
            let Some(entries) = value.as_object() else {
                return problem(errors, path.to_owned(), "must be an object", value);
            };
            for (k, v) in entries {
                check_value(v, item, &join(path, k), errors);
            }
        }
        Kind::Enum(allowed) => {
            if !value.as_str().is_some_and(|s| allowed.contains(&s)) {
                problem(
                    errors,
                    path.to_owned(),
                    format!("must be one of {}", allowed.join(", ")),
                    value,
                );
            }
        }
        Kind::LenientEnum(_) => {
            if !value.is_string() {
                problem(errors, path.to_owned(), "must be a string", value);
            }
        }
        Kind::Any => {}
    }
}

/// Patterns are few and fixed; each is compiled once, anchored at both ends.
fn whole_match(pattern: &'static str, s: &str) -> bool {
    static CACHE: LazyLock<RwLock<HashMap<&'static str, Regex>>> =
        LazyLock::new(|| RwLock::new(HashMap::new()));
    if let Ok(cache) = CACHE.read() {
        if let Some(re) = cache.get(pattern) {
            return re.is_match(s);
        }
    }
    // The patterns are constants of this file; a test compiles every one of them.
    let Ok(re) = Regex::new(&format!("^(?:{pattern})$")) else {
        return false;
    };
    let matched = re.is_match(s);
    if let Ok(mut cache) = CACHE.write() {
        cache.insert(pattern, re);
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(errors: &[FormatError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    fn every_pattern(schema: &'static Schema, out: &mut Vec<&'static str>) {
        for f in schema.fields {
            let mut kind = &f.kind;
            while let Kind::Array(k) | Kind::Map(k) = kind {
                kind = k;
            }
            match kind {
                Kind::Str {
                    pattern: Some(p), ..
                } => out.push(p),
                Kind::Object(s) => every_pattern(s, out),
                _ => {}
            }
        }
    }

    #[test]
    fn every_pattern_compiles() {
        let mut patterns = Vec::new();
        for s in [
            &CREATE_QR_CODE_REQUEST,
            &PAYMENT_REQUEST,
            &PAYMENT_RESPONSE,
            &SCAN_NOTIFICATION,
        ] {
            every_pattern(s, &mut patterns);
        }
        assert!(patterns.len() >= 8);
        for p in patterns {
            assert!(Regex::new(&format!("^(?:{p})$")).is_ok(), "{p}");
        }
    }

    #[test]
    fn patterns_match_the_whole_string() {
        let errors = check(
            &json!({"merchantType": "54111", "merchantId": "123456789012345",
                    "merchantName": {"name": "A", "city": "B", "region": "WC", "country": "ZA"}}),
            &MERCHANT,
        );
        assert_eq!(fields(&errors), ["merchantType"]);
    }

    #[test]
    fn every_missing_field_is_reported_with_its_dotted_path() {
        let errors = check(
            &json!({"id": "x", "time": "2021-05-03T11:04:04.123Z",
                    "originator": {"institution": {"id": "1"}, "terminalId": "T1",
                                   "merchant": {"merchantType": "5411", "merchantId": "123456789012345"}},
                    "client": {"id": "c", "name": "C"}}),
            &CREATE_QR_CODE_REQUEST,
        );
        assert_eq!(
            fields(&errors),
            [
                "originator.institution.name",
                "originator.terminalId",
                "originator.merchant.merchantName"
            ]
        );
        assert_eq!(errors[0].msg, "originator.institution.name may not be null");
        assert_eq!(errors[0].value, "null");
        assert_eq!(errors[1].value, "T1");
    }

    #[test]
    fn array_items_are_indexed_in_the_path() {
        let errors = check(
            &json!([{"institutionId": "a"}, {"transactionIdentifier": "b"}]),
            &SCHEMA_ARRAY_HOLDER,
        );
        assert_eq!(fields(&errors), ["body"]);
        let errors = check(
            &json!({"id": "a", "requestId": "b", "time": "2021-05-03T11:04:04Z",
                    "thirdPartyIdentifiers": [{"institutionId": "a"}, {"transactionIdentifier": "b"}]}),
            &PAYMENT_CONFIRMATION,
        );
        assert_eq!(fields(&errors), ["thirdPartyIdentifiers[1].institutionId"]);
    }

    static SCHEMA_ARRAY_HOLDER: Schema = Schema {
        name: "Holder",
        fields: &[],
    };

    #[test]
    fn unknown_enum_values_are_refused_but_unknown_schemes_are_not() {
        let errors = check(
            &json!({"id": "a", "requestId": "b", "time": "2021-05-03T11:04:04Z",
                    "reversalReason": "BECAUSE"}),
            &PAYMENT_REVERSAL,
        );
        assert_eq!(fields(&errors), ["reversalReason"]);
        assert!(check(&json!({"scheme": "NEW_ONE"}), &QR_PROPERTIES).is_empty());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let errors = check(
            &json!({"id": "c", "name": "C", "somethingNew": {"deep": 1}}),
            &INSTITUTION,
        );
        assert!(errors.is_empty());
    }
}
