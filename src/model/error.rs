//! `ErrorDetail`: the body of every failed answer.

use serde::{Deserialize, Serialize};

/// Describes a failed outcome of an operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// The failing message's id (the Electrum test packs' convention; see DESIGN.md §3).
    pub id: String,
    /// For an advice: the id of the request it refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_id: Option<String>,
    pub error_type: ErrorType,
    /// At most 40 characters: it is meant for an operator's screen.
    pub error_message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail_message: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_error_msg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tran_id: Option<String>,
}

/// The 22 error types of the interface, in the spec's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorType {
    DuplicateRecord,
    FormatError,
    FunctionNotSupported,
    GeneralError,
    InvalidAmount,
    RoutingError,
    TransactionNotSupported,
    UnableToLocateRecord,
    UpstreamUnavailable,
    AccountAlreadySettled,
    InvalidMerchant,
    DoNotHonor,
    DeclinedByPartner,
    DeclinedByAcquirer,
    DeclinedByIssuer,
    InsufficientFunds,
    InvalidCardNumber,
    CardExpired,
    InvalidTranId,
    PartnerUnknown,
    NoScanReceived,
    InvalidAccount,
}

/// One problem found in a request body: `field` is the dotted JSON path
/// (`originator.merchant.merchantId`), `value` what was there (`"null"` when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatError {
    pub field: String,
    pub msg: String,
    pub value: String,
}

impl ErrorDetail {
    /// An ErrorDetail with the message cut to the spec's 40 characters.
    pub fn new(id: impl Into<String>, error_type: ErrorType, message: impl Into<String>) -> Self {
        let mut error_message: String = message.into();
        if error_message.chars().count() > 40 {
            error_message = error_message.chars().take(40).collect();
        }
        Self {
            id: id.into(),
            original_id: None,
            error_type,
            error_message,
            detail_message: None,
            provider_error_code: None,
            provider_error_msg: None,
            provider_ref: None,
            tran_id: None,
        }
    }

    pub fn with_original_id(mut self, original_id: impl Into<String>) -> Self {
        self.original_id = Some(original_id.into());
        self
    }

    pub fn with_tran_id(mut self, tran_id: impl Into<String>) -> Self {
        self.tran_id = Some(tran_id.into());
        self
    }

    pub fn with_format_errors(mut self, errors: &[FormatError]) -> Self {
        self.detail_message = Some(serde_json::json!({ "formatErrors": errors }));
        self
    }

    /// FORMAT_ERROR ("Bad formatting") listing every problem found: the one way the hub,
    /// its back office and its handlers say a request is malformed.
    pub fn format_error(id: impl Into<String>, errors: &[FormatError]) -> Self {
        Self::new(id, ErrorType::FormatError, "Bad formatting").with_format_errors(errors)
    }

    /// FORMAT_ERROR for a single field.
    pub fn format_field(id: impl Into<String>, field: &str, msg: &str, value: &str) -> Self {
        Self::format_error(
            id,
            &[FormatError {
                field: field.into(),
                msg: msg.into(),
                value: value.into(),
            }],
        )
    }
}
