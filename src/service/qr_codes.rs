//! createQrCode: mint a tranId, render the payload, store the code.

use std::sync::Arc;

use super::{span, Hub, HubError, HubResult, RefusalKind};
use crate::domain::{CodeTerms, Money};
use crate::model::{
    CreateQrCodeRequest, CreateQrCodeResponse, ErrorDetail, ErrorType, FormatError, QrProperties,
    Timestamp,
};
use crate::qr;
use crate::store::{event_kind, Direction, InsertOutcome, NewEvent, QrCodeRecord};

impl Hub {
    pub async fn create_qr_code(
        &self,
        client_id: &str,
        request: CreateQrCodeRequest,
    ) -> HubResult<CreateQrCodeResponse> {
        let now = self.now();
        let mut properties = request.qr_properties.clone().unwrap_or_default();
        let scheme = properties
            .scheme
            .unwrap_or(self.settings().hub.default_scheme);
        let expires_at = match properties.expiry_date {
            Some(at) if at.to_utc() <= now => {
                return Err(format_error(
                    &request.id,
                    "qrProperties.expiryDate",
                    "must be in the future",
                    &at.to_string(),
                ))
            }
            Some(at) => at.to_utc(),
            None => now + span(self.settings().hub.qr_code_ttl),
        };
        // A code for an amount that can never be paid is refused now, not at the pay.
        let named = [
            request
                .amounts
                .as_ref()
                .and_then(|a| a.request_amount.as_ref()),
            properties.value.as_ref(),
        ];
        for amount in named.into_iter().flatten() {
            if let Err(why) = crate::domain::check_amount(amount.amount) {
                return Err(HubError::bad_request(
                    &request.id,
                    ErrorType::InvalidAmount,
                    why,
                ));
            }
        }
        let tran_id = super::ids::new_tran_id(now);
        let content = self.qr_content(&tran_id, &request, &properties);
        let payload = qr::encode(scheme, &content).map_err(|e| {
            HubError::refuse(
                RefusalKind::BadRequest,
                ErrorDetail::new(&request.id, ErrorType::FormatError, "Cannot build QR code")
                    .with_format_errors(&[FormatError {
                        field: "qrProperties.scheme".into(),
                        msg: e.to_string(),
                        value: scheme_name(scheme).into(),
                    }]),
            )
        })?;
        let record = QrCodeRecord {
            tran_id: tran_id.clone(),
            client_id: client_id.to_owned(),
            message_id: request.id.clone(),
            scheme: scheme_name(scheme).to_owned(),
            payload: payload.clone(),
            created_at: now,
            expires_at,
            terms: code_terms(&request, &properties),
        };
        if self.store.insert_qr_code(&record).await? == InsertOutcome::Duplicate {
            return Err(HubError::bad_request(
                &request.id,
                ErrorType::DuplicateRecord,
                "Duplicate request id",
            ));
        }
        // Its pay, a moment from now and most likely here, then reads no code.
        self.recent.remember_code(Arc::new(record));
        self.record_events(vec![NewEvent::new(
            event_kind::CREATE_QR_CODE,
            Direction::In,
            &tran_id,
            client_id,
            now,
            "CREATED",
        )
        .message(&request.id)])
            .await;
        properties.scheme = Some(scheme);
        properties.expiry_date = Some(Timestamp::from(expires_at));
        Ok(CreateQrCodeResponse {
            id: request.id,
            time: request.time,
            originator: request.originator,
            client: request.client,
            third_party_identifiers: request.third_party_identifiers,
            rrn: request.rrn,
            stan: request.stan,
            amounts: request.amounts,
            customer: request.customer,
            qr_properties: properties,
            tran_id,
            qr_code: payload,
        })
    }

    /// The code `tran_id` names: from memory when this instance issued or read it (a code
    /// never changes once stored), else from the store.
    pub(super) async fn code(&self, tran_id: &str) -> HubResult<Option<Arc<QrCodeRecord>>> {
        if let Some(code) = self.recent.code(tran_id) {
            return Ok(Some(code));
        }
        let Some(code) = self.store.qr_code(tran_id).await? else {
            return Ok(None);
        };
        let code = Arc::new(code);
        self.recent.remember_code(Arc::clone(&code));
        Ok(Some(code))
    }

    fn qr_content(
        &self,
        tran_id: &str,
        request: &CreateQrCodeRequest,
        properties: &QrProperties,
    ) -> qr::QrContent {
        let amount = request
            .amounts
            .as_ref()
            .and_then(|a| a.request_amount.as_ref())
            .or(properties.value.as_ref())
            .map(Money::from);
        let merchant = &request.originator.merchant;
        qr::QrContent {
            tran_id: tran_id.to_owned(),
            provider_id: self.settings().hub.qr_provider_id.clone(),
            // Partners' own templates beside the hub's: one code any of them can pay.
            partner_templates: self.settings().partner_qr_templates(&merchant.merchant_id),
            currency: amount.as_ref().map(|m| m.currency.clone()),
            amount,
            merchant: Some(qr::MerchantInfo {
                category_code: merchant.merchant_type.clone(),
                name: merchant.merchant_name.name.clone(),
                city: merchant.merchant_name.city.clone(),
                country_code: merchant.merchant_name.country.clone(),
                postal_code: None,
            }),
            terminal_label: Some(request.originator.terminal_id.clone()),
            reference_label: None,
        }
    }
}

/// The amount a code names (the request's `amounts.requestAmount`, else
/// `qrProperties.value`, as the payload shows it) and its part and over payment rules.
fn code_terms(request: &CreateQrCodeRequest, properties: &QrProperties) -> CodeTerms {
    let amount = request
        .amounts
        .as_ref()
        .and_then(|a| a.request_amount.as_ref())
        .or(properties.value.as_ref())
        .map(|a| (a.amount, a.currency.clone()));
    CodeTerms {
        amount,
        part_payment_allowed: properties.part_payment_allowed.unwrap_or(false),
        over_payment_allowed: properties.over_payment_allowed.unwrap_or(false),
    }
}

pub(super) fn scheme_name(scheme: crate::model::QrScheme) -> &'static str {
    use crate::model::QrScheme::*;
    match scheme {
        EmvcoMerchant => "EMVCO_MERCHANT",
        PseudoEmvcoMerchant => "PSEUDO_EMVCO_MERCHANT",
        ElectrumMerchantMinimal => "ELECTRUM_MERCHANT_MINIMAL",
    }
}

pub(super) fn format_error(id: &str, field: &str, msg: &str, value: &str) -> HubError {
    HubError::refuse(
        RefusalKind::BadRequest,
        ErrorDetail::format_field(id, field, msg, value),
    )
}
