//! Placeholder: replaced by the real implementation.
#![allow(unused_variables)]
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::*;
use crate::domain::PaymentState;

#[derive(Debug)]
pub struct SqliteStore;

impl SqliteStore {
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let _ = url;
        todo!("sqlite store")
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        todo!()
    }
    async fn ping(&self) -> StoreResult<()> {
        todo!()
    }
    async fn insert_qr_code(&self, code: &QrCodeRecord) -> StoreResult<InsertOutcome> {
        todo!()
    }
    async fn qr_code(&self, tran_id: &str) -> StoreResult<Option<QrCodeRecord>> {
        todo!()
    }
    async fn insert_payment(&self, payment: &NewPayment) -> StoreResult<NewPaymentOutcome> {
        todo!()
    }
    async fn payment(&self, id: Uuid) -> StoreResult<Option<PaymentRecord>> {
        todo!()
    }
    async fn payment_by_message(
        &self,
        client_id: &str,
        message_id: &str,
    ) -> StoreResult<Option<PaymentRecord>> {
        todo!()
    }
    async fn latest_payment_for_tran(&self, tran_id: &str) -> StoreResult<Option<PaymentRecord>> {
        todo!()
    }
    async fn claim_for_scan(&self, claim: &ScanClaim) -> StoreResult<ScanClaimOutcome> {
        todo!()
    }
    async fn transition(
        &self,
        id: Uuid,
        from: PaymentState,
        to: PaymentState,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        todo!()
    }
    async fn record_partner_answer(&self, answer: &PartnerAnswerRecord) -> StoreResult<bool> {
        todo!()
    }
    async fn expired_waiting(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Uuid>> {
        todo!()
    }
    async fn advice(&self, client_id: &str, message_id: &str) -> StoreResult<Option<AdviceRecord>> {
        todo!()
    }
    async fn insert_orphan_reversal(&self, advice: &AdviceRecord) -> StoreResult<InsertOutcome> {
        todo!()
    }
    async fn apply_advice(&self, apply: &ApplyAdvice) -> StoreResult<ApplyAdviceOutcome> {
        todo!()
    }
    async fn claim_due_outbox(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>> {
        todo!()
    }
    async fn finish_delivery(
        &self,
        id: Uuid,
        attempt: i32,
        result: &DeliveryResult,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        todo!()
    }
    async fn dead_letter_expired(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        todo!()
    }
    async fn outbox_for_payment(&self, payment_id: Uuid) -> StoreResult<Vec<OutboxMessage>> {
        todo!()
    }
    async fn outbox_by_state(
        &self,
        state: OutboxState,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>> {
        todo!()
    }
    async fn retry_dead_letter(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        todo!()
    }
    async fn recover(
        &self,
        now: DateTime<Utc>,
        forwarded_before: DateTime<Utc>,
        matched_before: DateTime<Utc>,
        reversal_for: &(dyn Fn(&PaymentRecord) -> NewOutboxMessage + Send + Sync),
    ) -> StoreResult<RecoveryReport> {
        todo!()
    }
}
