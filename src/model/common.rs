//! The base types the QR messages are built from (Electrum's service-interface-base).

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

use super::Timestamp;

/// Originating, acquiring, processing, or receiving institution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Institution {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Originator {
    pub institution: Institution,
    pub terminal_id: String,
    pub merchant: Merchant,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<String>,
    /// Added by service-interface-base 3.31.0 (newer than QR 1.7.0); accepted and echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Merchant {
    pub merchant_type: String,
    pub merchant_id: String,
    pub merchant_name: MerchantName,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MerchantName {
    pub name: String,
    pub city: String,
    pub region: String,
    pub country: String,
}

/// Amounts which make up the transaction. Absent amounts have zero value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Amounts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_amount: Option<LedgerAmount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_amount: Option<LedgerAmount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_amount: Option<LedgerAmount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_amount: Option<LedgerAmount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_amounts: Option<BTreeMap<String, LedgerAmount>>,
}

/// Money: integer minor units with an ISO 4217 numeric currency ("710" is ZAR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerAmount {
    pub amount: i64,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_indicator: Option<LedgerIndicator>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LedgerIndicator {
    Debit,
    Credit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThirdPartyIdentifier {
    pub institution_id: String,
    /// Required by the spec but not enforced by the reference implementation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_identifier: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tender {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_type: Option<AccountType>,
    pub amount: LedgerAmount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub tender_type: TenderType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TenderType {
    Cash,
    Cheque,
    CreditCard,
    DebitCard,
    Wallet,
    Rounding,
    GiftCard,
    LoyaltyCard,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccountType {
    Default,
    Savings,
    Cheque,
    Credit,
    Universal,
    ElectronicPurse,
    GiftCard,
    StoredValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TranType {
    GoodsAndServices,
    CashWithdrawal,
    DebitAdjustment,
    GoodsAndServicesWithCashBack,
    NonCash,
    Returns,
    Deposit,
    CreditAdjustment,
    GeneralCredit,
    AvailableFundsInquiry,
    BalanceInquiry,
    GeneralInquiry,
    CardVerificationInquiry,
    CardholderAccountsTransfer,
    GeneralTransfer,
    PaymentFromAccount,
    GeneralPayment,
    PaymentToAccount,
    PaymentFromAccountToAccount,
    PlaceHoldOnCard,
    GeneralAdmin,
    ChangePin,
    CardHolderInquiry,
    PointsInquiry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReversalReason {
    Timeout,
    Cancelled,
    ResponseNotFinal,
}

/// Text for the customer's receipt. Kept as JSON: the hub relays it and never reads it, so
/// the partner's exact content (including fields newer than this model) reaches the POS.
pub type SlipData = serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msisdn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_details: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_line1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_line2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
}

/// How a QR code is meant to be used (added in v1.7.0). All fields optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QrProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<LedgerAmount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over_payment_allowed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_payment_allowed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_date: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_use: Option<bool>,
    /// Unknown values are dropped rather than refused, as the reference implementation does.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_scheme"
    )]
    pub scheme: Option<QrScheme>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QrScheme {
    EmvcoMerchant,
    PseudoEmvcoMerchant,
    ElectrumMerchantMinimal,
}

/// A `null` read as the type's default. The schema treats a `null` field as absent, so the
/// types must too: `#[serde(default)]` alone covers only a missing key.
pub(super) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn lenient_scheme<'de, D: Deserializer<'de>>(d: D) -> Result<Option<QrScheme>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_scheme_is_dropped_not_refused() {
        let p: QrProperties =
            serde_json::from_str(r#"{"scheme":"SOMETHING_NEW","singleUse":true}"#)
                .expect("lenient");
        assert_eq!(p.scheme, None);
        assert_eq!(p.single_use, Some(true));
    }

    #[test]
    fn absent_options_are_omitted_not_null() {
        let p = QrProperties::default();
        assert_eq!(serde_json::to_string(&p).expect("serialises"), "{}");
    }
}
