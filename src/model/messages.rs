//! The messages of the five operations.

use serde::{Deserialize, Serialize};

use super::{
    AccountType, Amounts, Customer, Institution, Originator, QrProperties, ReversalReason,
    SlipData, Tender, ThirdPartyIdentifier, Timestamp, TranType,
};

/// Body of `createQrCode`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateQrCodeRequest {
    pub id: String,
    pub time: Timestamp,
    pub originator: Originator,
    pub client: Institution,
    #[serde(default, deserialize_with = "super::common::null_as_default")]
    pub third_party_identifiers: Vec<ThirdPartyIdentifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amounts: Option<Amounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<Customer>,
    /// Required by the spec, not by the reference implementation: absence is accepted and the
    /// response always carries the properties the code was made with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_properties: Option<QrProperties>,
}

/// 201 answer to `createQrCode`: the request echoed, plus the code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateQrCodeResponse {
    pub id: String,
    pub time: Timestamp,
    pub originator: Originator,
    pub client: Institution,
    #[serde(default, deserialize_with = "super::common::null_as_default")]
    pub third_party_identifiers: Vec<ThirdPartyIdentifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amounts: Option<Amounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<Customer>,
    pub qr_properties: QrProperties,
    pub tran_id: String,
    pub qr_code: String,
}

/// Body of `notifyScan`: a partner says its customer scanned the code of `tranId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanNotification {
    pub id: String,
    pub time: Timestamp,
    pub partner: Institution,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_entity: Option<Institution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<Institution>,
    #[serde(default, deserialize_with = "super::common::null_as_default")]
    pub third_party_identifiers: Vec<ThirdPartyIdentifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amounts: Option<Amounts>,
    pub tran_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_payment_token: Option<String>,
}

/// Body of `pay`, from the POS to the hub and from the hub to the partner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequest {
    pub id: String,
    pub time: Timestamp,
    pub originator: Originator,
    pub client: Institution,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_entity: Option<Institution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<Institution>,
    #[serde(default, deserialize_with = "super::common::null_as_default")]
    pub third_party_identifiers: Vec<ThirdPartyIdentifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slip_data: Option<SlipData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basket_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tran_type: Option<TranType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_acc_type: Option<AccountType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_acc_type: Option<AccountType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<Institution>,
    pub amounts: Amounts,
    pub tran_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_payment_token: Option<String>,
}

/// 201 answer to `pay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentResponse {
    pub id: String,
    pub time: Timestamp,
    pub originator: Originator,
    pub client: Institution,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_entity: Option<Institution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<Institution>,
    #[serde(default, deserialize_with = "super::common::null_as_default")]
    pub third_party_identifiers: Vec<ThirdPartyIdentifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slip_data: Option<SlipData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basket_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tran_type: Option<TranType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_acc_type: Option<AccountType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_acc_type: Option<AccountType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrn: Option<String>,
    pub partner: Institution,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenders: Option<Vec<Tender>>,
    pub amounts: Amounts,
    pub tran_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_payment_token: Option<String>,
}

/// Body (and 202 echo) of `confirmPayment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentConfirmation {
    pub id: String,
    pub request_id: String,
    pub time: Timestamp,
    #[serde(default, deserialize_with = "super::common::null_as_default")]
    pub third_party_identifiers: Vec<ThirdPartyIdentifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrn: Option<String>,
    /// Absent means a full confirmation of the approved amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amounts: Option<Amounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<Institution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tran_id: Option<String>,
}

/// Body (and 202 echo) of `reversePayment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentReversal {
    pub id: String,
    pub request_id: String,
    pub time: Timestamp,
    #[serde(default, deserialize_with = "super::common::null_as_default")]
    pub third_party_identifiers: Vec<ThirdPartyIdentifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrn: Option<String>,
    /// Absent means a full reversal (a final amount of zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amounts: Option<Amounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<Institution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tran_id: Option<String>,
    pub reversal_reason: ReversalReason,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema;
    use serde_json::json;

    /// `"thirdPartyIdentifiers": null` passes the schema (null is absent there), so every type
    /// must take it too; it was refused with "invalid type: null, expected a sequence".
    #[test]
    fn null_third_party_identifiers_are_read_as_none() {
        let institution = json!({"id": "1", "name": "Demo"});
        let originator = json!({
            "institution": institution, "terminalId": "T0000001",
            "merchant": {"merchantType": "5411", "merchantId": "000000000012345",
                         "merchantName": {"name": "S", "city": "C", "region": "WC", "country": "ZA"}}
        });
        let time = "2021-05-03T11:04:04.123Z";
        let amounts = json!({"requestAmount": {"amount": 1, "currency": "710"}});
        let common = json!({"id": "m", "time": time, "thirdPartyIdentifiers": null});
        let with = |extra: serde_json::Value| {
            let mut body = common.clone();
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            body
        };
        fn taken<T: serde::de::DeserializeOwned>(body: &serde_json::Value, s: &schema::Schema) {
            assert_eq!(schema::check(body, s), vec![], "{}", s.name);
            if let Err(e) = serde_json::from_value::<T>(body.clone()) {
                panic!("{}: {e}", s.name);
            }
        }
        let qr = with(json!({"originator": originator, "client": institution}));
        taken::<CreateQrCodeRequest>(&qr, &schema::CREATE_QR_CODE_REQUEST);
        let pay = with(json!({"originator": originator, "client": institution,
                              "amounts": amounts, "tranId": "t"}));
        taken::<PaymentRequest>(&pay, &schema::PAYMENT_REQUEST);
        let response = with(json!({"originator": originator, "client": institution,
                                   "partner": institution, "amounts": amounts, "tranId": "t"}));
        taken::<PaymentResponse>(&response, &schema::PAYMENT_RESPONSE);
        let scan = with(json!({"partner": institution, "tranId": "t"}));
        taken::<ScanNotification>(&scan, &schema::SCAN_NOTIFICATION);
        let confirmation = with(json!({"requestId": "p"}));
        taken::<PaymentConfirmation>(&confirmation, &schema::PAYMENT_CONFIRMATION);
        let reversal = with(json!({"requestId": "p", "reversalReason": "TIMEOUT"}));
        taken::<PaymentReversal>(&reversal, &schema::PAYMENT_REVERSAL);
        let parsed: PaymentReversal = serde_json::from_value(reversal).unwrap();
        assert!(parsed.third_party_identifiers.is_empty());
        // Written back as an empty array, as before.
        assert_eq!(
            serde_json::to_value(&parsed).unwrap()["thirdPartyIdentifiers"],
            json!([])
        );
    }
}
