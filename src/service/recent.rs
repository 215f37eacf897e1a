//! What this instance wrote a moment ago and is about to read again, kept so that the read
//! costs no round trip to the database (issue 14: a flow's round trips are most of what it
//! costs PostgreSQL outside its executor).
//!
//! Two kinds of record, each safe to serve from memory for its own reason:
//! - **QR codes** never change once stored (no statement updates `qr_code`, and none deletes
//!   it), so a code read or written here is the code for as long as it is kept. A `pay` for
//!   a code this instance issued then needs no read of it.
//! - **Answered payments**, as this instance's forwarder committed the partner's answer.
//!   The held `pay` answers from it instead of reading back what was just written, and the
//!   POS's confirmation decides from it. Both uses are safe against a change elsewhere: the
//!   pay answers from the state its answer committed (a later change is one the pay could
//!   as well have missed by reading a moment earlier), and an advice applies by
//!   compare-and-set on the state it decided from, so a stale record only fails that compare
//!   and the advice reads the payment again. An advice takes the record out: the next one
//!   reads the database.
//!
//! Both are bounded (least recently used out first); a miss reads the database, as before.
//!
//! Beside them, the tranIds whose `pay` this instance is storing at this moment: a scan for
//! one of them waits for that write (its wake-up) before it claims, instead of finding no
//! payment, reading the code and its newest payment, and waiting anyway. Such a record
//! lives only while its pay's insert runs.

use hashlink::LruCache;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

use crate::domain::PaymentState;
use crate::store::{PaymentRecord, QrCodeRecord};

/// Codes kept (about 600 bytes each): a `pay` follows its code within seconds, and this is
/// 16 s of codes at 500 flows/s.
const CODES: usize = 8192;
/// Answered payments kept: a confirmation follows its pay's answer within a second, and
/// this is 4 s of answers at 500 flows/s (at less, entries stay longer, which is harmless).
/// An advice takes its payment out. Each holds the POS's request and the partner's answer:
/// about 3 KiB for ordinary messages, at most the request body limit plus
/// `max_answer_bytes`, so the bound is on entries, and an operator who raises those limits
/// far raises this map's worst case with them.
const ANSWERED: usize = 2048;

#[derive(Debug)]
pub(crate) struct RecentRecords {
    codes: Mutex<LruCache<String, Arc<QrCodeRecord>>>,
    /// By the POS's (client id, payment message id), which both the pay and its advices know.
    answered: Mutex<LruCache<(String, String), Arc<PaymentRecord>>>,
    /// tranIds whose pay is being stored, with how many such pays (a repeat races its first).
    storing: Mutex<HashMap<String, usize>>,
}

impl Default for RecentRecords {
    fn default() -> Self {
        Self {
            codes: Mutex::new(LruCache::new(CODES)),
            answered: Mutex::new(LruCache::new(ANSWERED)),
            storing: Mutex::new(HashMap::new()),
        }
    }
}

/// A poisoned lock only means a panic elsewhere while it was held; the cache is still sound
/// (each operation is one map call).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RecentRecords {
    /// Remembers a code as stored (written here, or read from the store).
    pub(crate) fn remember_code(&self, code: Arc<QrCodeRecord>) {
        lock(&self.codes).insert(code.tran_id.clone(), code);
    }

    pub(crate) fn code(&self, tran_id: &str) -> Option<Arc<QrCodeRecord>> {
        lock(&self.codes).get(tran_id).cloned()
    }

    /// Remembers a payment as the partner's answer left it, committed.
    pub(crate) fn remember_answered(&self, payment: PaymentRecord) {
        debug_assert!(payment.state.pay_is_answered());
        let key = (payment.client_id.clone(), payment.message_id.clone());
        lock(&self.answered).insert(key, Arc::new(payment));
    }

    /// The answered payment `id` if this instance answered it; kept for the advice.
    pub(crate) fn answered(
        &self,
        client_id: &str,
        message_id: &str,
        id: Uuid,
    ) -> Option<Arc<PaymentRecord>> {
        let key = (client_id.to_owned(), message_id.to_owned());
        lock(&self.answered)
            .get(&key)
            .filter(|p| p.id == id)
            .cloned()
    }

    /// Notes that a pay for `tran_id` is being stored, until [`Self::stored_pay`].
    pub(crate) fn storing_pay(&self, tran_id: &str) {
        *lock(&self.storing).entry(tran_id.to_owned()).or_default() += 1;
    }

    /// The pay [`Self::storing_pay`] noted is stored, or failed.
    pub(crate) fn stored_pay(&self, tran_id: &str) {
        let mut storing = lock(&self.storing);
        if let Some(count) = storing.get_mut(tran_id) {
            *count -= 1;
            if *count == 0 {
                storing.remove(tran_id);
            }
        }
    }

    /// Whether a pay for `tran_id` is being stored by this instance now.
    pub(crate) fn pay_being_stored(&self, tran_id: &str) -> bool {
        lock(&self.storing).contains_key(tran_id)
    }

    /// Takes the payment an advice names, if this instance answered it and it was APPROVED:
    /// the one state whose columns change only by leaving it (DESIGN.md §8), so the
    /// compare-and-set on that state alone proves the whole record still current.
    pub(crate) fn take_approved(
        &self,
        client_id: &str,
        message_id: &str,
    ) -> Option<Arc<PaymentRecord>> {
        let key = (client_id.to_owned(), message_id.to_owned());
        lock(&self.answered)
            .remove(&key)
            .filter(|p| p.state == PaymentState::Approved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CodeTerms;
    use chrono::{TimeZone, Utc};

    fn code(tran_id: &str) -> QrCodeRecord {
        let at = Utc
            .with_ymd_and_hms(2026, 12, 2, 12, 0, 0)
            .single()
            .unwrap_or_default();
        QrCodeRecord {
            tran_id: tran_id.into(),
            client_id: "pos".into(),
            message_id: format!("m-{tran_id}"),
            scheme: "EMV".into(),
            payload: "000201".into(),
            created_at: at,
            expires_at: at,
            terms: CodeTerms::default(),
        }
    }

    fn payment(state: PaymentState) -> PaymentRecord {
        let at = Utc
            .with_ymd_and_hms(2026, 12, 2, 12, 0, 0)
            .single()
            .unwrap_or_default();
        PaymentRecord {
            id: Uuid::new_v4(),
            client_id: "pos".into(),
            message_id: "pay-1".into(),
            tran_id: "t".into(),
            state,
            amount_minor: 1000,
            currency: "710".into(),
            request: serde_json::json!({}),
            partner_id: Some("wallet".into()),
            partner_payment_token: None,
            scan_message_id: Some("scan-1".into()),
            partner_message_id: Some("m".into()),
            reversed_by_pos: false,
            partner_status: Some(201),
            partner_response: Some(serde_json::json!({})),
            approved_minor: Some(1000),
            settled_minor: None,
            fee_minor: None,
            amount_refused: false,
            created_at: at,
            scan_deadline: at,
            updated_at: at,
            pos_gone_at: None,
        }
    }

    #[test]
    fn the_pay_reads_its_own_answer_and_the_advice_takes_it() {
        let recent = RecentRecords::default();
        let approved = payment(PaymentState::Approved);
        recent.remember_answered(approved.clone());
        assert!(
            recent.answered("pos", "pay-1", Uuid::new_v4()).is_none(),
            "another payment under the same message id is not this one"
        );
        assert!(recent.answered("other", "pay-1", approved.id).is_none());
        let read = recent.answered("pos", "pay-1", approved.id);
        assert_eq!(read.as_deref(), Some(&approved));
        assert_eq!(
            recent.take_approved("pos", "pay-1").as_deref(),
            Some(&approved)
        );
        assert!(
            recent.take_approved("pos", "pay-1").is_none(),
            "the next advice reads the store"
        );
    }

    #[test]
    fn only_an_approved_payment_is_given_to_an_advice() {
        let recent = RecentRecords::default();
        for state in [PaymentState::Declined, PaymentState::Unknown] {
            recent.remember_answered(payment(state));
            assert!(recent.take_approved("pos", "pay-1").is_none(), "{state:?}");
        }
    }

    #[test]
    fn codes_are_bounded_and_the_oldest_goes_first() {
        let recent = RecentRecords::default();
        for i in 0..=CODES {
            recent.remember_code(Arc::new(code(&i.to_string())));
        }
        assert!(recent.code("0").is_none(), "the oldest code was dropped");
        assert_eq!(
            recent.code(&CODES.to_string()).map(|c| c.tran_id.clone()),
            Some(CODES.to_string())
        );
    }

    #[test]
    fn a_pay_is_being_stored_until_every_pay_of_its_tran_id_is() {
        let recent = RecentRecords::default();
        assert!(!recent.pay_being_stored("t"));
        recent.storing_pay("t");
        recent.storing_pay("t");
        recent.stored_pay("t");
        assert!(
            recent.pay_being_stored("t"),
            "a repeat is still being stored"
        );
        assert!(!recent.pay_being_stored("u"));
        recent.stored_pay("t");
        assert!(!recent.pay_being_stored("t"));
        recent.stored_pay("t");
        assert!(!recent.pay_being_stored("t"), "one too many is harmless");
        assert!(
            lock(&recent.storing).is_empty(),
            "nothing is kept after the pay"
        );
    }
}
