//! What the hub persists, behind a few focused traits gathered by [`Store`], with a PostgreSQL
//! and a SQLite implementation. The reads both run with the same SQL are written once
//! (`reads`); each backend keeps its writes, where the two databases differ.
//!
//! Every change of a payment's state is a compare-and-set (`UPDATE … WHERE state = $from`):
//! the method returns whether it won, and the caller re-reads and decides again when it did
//! not. Anything owed to a partner (an outbox row) is written in the same transaction as the
//! state change it comes from.

mod admin;
mod grouped;
mod postgres;
mod reads;
mod rows;
mod sqlite;

pub use admin::{
    event_kind, Direction, EventRecord, NewEvent, PaymentQuery, Purge, SettledPayment,
    SettlementGroup, StateCounts, SETTLEMENT_STATES,
};
#[cfg(feature = "tools")]
pub(crate) use postgres::pool_options as postgres_pool_options;
pub use postgres::PostgresStore;
pub use sqlite::{SqliteStore, WriterStats};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use uuid::Uuid;

use crate::domain::{AdviceKind, PaymentState};

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// SQLite's writer could not commit the batch a write was part of, or never ran it
    /// (the store closed, or the write waited too long): nothing of the write is stored.
    /// Shared by every write of the batch, hence the `Arc`.
    #[error("write not stored: {0}")]
    WriteNotStored(Arc<sqlx::Error>),
    /// The database failed a statement that wrote for several callers at once (delivery
    /// outcomes recorded in groups; on PostgreSQL, the hot path's writes, see
    /// `store/grouped.rs`); each of them gets it. Whether the statement committed
    /// is as unknown as for a write of one's own that failed the same way.
    #[error("database error (a statement shared with other writes): {0}")]
    Grouped(Arc<sqlx::Error>),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("unsupported database url {0:?}: use postgres://… or sqlite://…")]
    UnsupportedUrl(String),
    /// A caller asked for a move the state machine does not allow
    /// ([`PaymentState::can_move_to`]); nothing was written.
    #[error("illegal payment transition {from} -> {to}")]
    IllegalTransition {
        from: PaymentState,
        to: PaymentState,
    },
}

impl StoreError {
    /// Whether the database refused a statement for the values it held (a constraint, a
    /// type), rather than failing to run it: only then can writing a group's items one by
    /// one help.
    pub(crate) fn refused_for_its_data(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(_)))
    }

    /// This error as [`StoreError::Grouped`] shares it: one for every write of a group.
    pub(crate) fn into_shared(self) -> Arc<sqlx::Error> {
        match self {
            StoreError::Database(e) => Arc::new(e),
            StoreError::WriteNotStored(e) | StoreError::Grouped(e) => e,
            other => Arc::new(sqlx::Error::Protocol(other.to_string())),
        }
    }
}

/// The one answer of a write of one item.
pub(crate) fn first_of<T>(result: StoreResult<Vec<T>>) -> StoreResult<T> {
    result?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("a write of one item had no answer".into()))
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        // Every failed statement passes here: one that found its connection gone makes the
        // PostgreSQL pool test the rest before use for a while.
        postgres::note_if_connection_lost(&error);
        StoreError::Database(error)
    }
}

/// A scan's claim moves a waiting payment into MATCHED or straight into FORWARDED.
fn check_claim(claim: &ScanClaim) -> StoreResult<()> {
    match claim.to {
        PaymentState::Matched | PaymentState::Forwarded => Ok(()),
        to => Err(StoreError::IllegalTransition {
            from: PaymentState::WaitingForScan,
            to,
        }),
    }
}

/// Refuses a move the payment state machine does not allow, before touching the database.
fn check_move(from: PaymentState, to: PaymentState) -> StoreResult<()> {
    if from.can_move_to(to) {
        Ok(())
    } else {
        Err(StoreError::IllegalTransition { from, to })
    }
}

/// A QR code the hub issued.
#[derive(Debug, Clone, PartialEq)]
pub struct QrCodeRecord {
    pub tran_id: String,
    pub client_id: String,
    /// The createQrCode message `id`; unique per client.
    pub message_id: String,
    pub scheme: String,
    pub payload: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The amount the code names and its part and over payment rules.
    pub terms: crate::domain::CodeTerms,
}

/// A payment as first stored, waiting for its scan.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPayment {
    pub id: Uuid,
    pub client_id: String,
    /// The POS's `PaymentRequest.id`; unique per client.
    pub message_id: String,
    pub tran_id: String,
    pub amount_minor: i64,
    pub currency: String,
    /// The POS's PaymentRequest, as received (JSON), to build what goes to the partner.
    pub request: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// When the scan window closes.
    pub scan_deadline: DateTime<Utc>,
    /// Timeline events written with the payment (the `pay` received).
    pub events: Vec<NewEvent>,
    /// Announced to the other hub instances when the payment is stored (see
    /// [`NotificationStore::announce`]): an early scan may wait for it elsewhere.
    pub wake: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PaymentRecord {
    pub id: Uuid,
    pub client_id: String,
    pub message_id: String,
    pub tran_id: String,
    pub state: PaymentState,
    pub amount_minor: i64,
    pub currency: String,
    pub request: serde_json::Value,
    pub partner_id: Option<String>,
    pub partner_payment_token: Option<String>,
    /// The scan notification that claimed the payment (partner's message id).
    pub scan_message_id: Option<String>,
    /// The id the hub minted for the `pay` it sends to the partner.
    pub partner_message_id: Option<String>,
    /// The POS reversed the payment while it was with the partner.
    pub reversed_by_pos: bool,
    /// The partner's HTTP status and body, once it answered.
    pub partner_status: Option<i32>,
    pub partner_response: Option<serde_json::Value>,
    /// What the partner approved, in minor units (from its answer, as the hub read it).
    pub approved_minor: Option<i64>,
    /// Fixed when the POS confirms: the amount settled, and the fee on it.
    pub settled_minor: Option<i64>,
    pub fee_minor: Option<i64>,
    /// The partner approved another amount, which the hub refused and is reversing.
    pub amount_refused: bool,
    pub created_at: DateTime<Utc>,
    pub scan_deadline: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When its POS went away before any scan ([`PaymentStore::abandon_waiting`]).
    pub pos_gone_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// The same (client, message id) is already stored.
    Duplicate,
}

/// What became of a reversal of a payment id the hub had not seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrphanOutcome {
    /// Stored: a `pay` with this id arriving from now on is refused.
    Inserted,
    /// The advice's own id is already stored.
    DuplicateAdvice,
    /// A payment with this id was stored meanwhile: the reversal is for it.
    PaymentExists,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewPaymentOutcome {
    Inserted,
    /// The same (client, message id) is already stored.
    DuplicateId,
    /// Another payment for this `tranId` is waiting, in flight or approved.
    TranIdInUse,
    /// The POS reversed this payment id before the `pay` arrived.
    AlreadyReversed,
}

/// A scan claiming the waiting payment of `tran_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanClaim {
    pub tran_id: String,
    pub partner_id: String,
    pub scan_message_id: String,
    pub partner_payment_token: Option<String>,
    /// The id the hub will use for its `pay` to the partner.
    pub partner_message_id: String,
    pub at: DateTime<Utc>,
    /// The state the claim moves the payment into: FORWARDED when the claiming instance
    /// sends the pay at once (the hub's own scans), MATCHED when something must still be
    /// decided before sending.
    pub to: PaymentState,
    /// Timeline events written only if this scan claims the payment (their `payment_id`,
    /// when `None`, becomes the claimed payment's).
    pub events: Vec<NewEvent>,
}

// One value per scan, moved straight to the caller: boxing the record would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ScanClaimOutcome {
    /// This scan won: the payment is now the partner's, in the claim's `to` state.
    Claimed(PaymentRecord),
    /// No payment for the tranId is waiting (none yet, or it already ended).
    NothingWaiting,
    /// This partner already used the scan's message id for another payment.
    ScanIdInUse,
}

/// What a scan that claimed nothing needs to decide: whether its code is one the hub issued
/// (and until when), and the newest payment for it, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanContext {
    pub code_expires_at: DateTime<Utc>,
    pub latest: Option<LatestPayment>,
}

/// The newest payment of a tranId, as far as a scan cares (the scan rules decide with it).
pub use crate::domain::LatestPayment;

/// One row of the scan-context query: the code's expiry, then the newest payment's state,
/// partner, scan id and whether its POS went away (all NULL when there is none).
pub(crate) fn scan_context_from(
    code_expires_at: DateTime<Utc>,
    state: Option<String>,
    partner_id: Option<String>,
    scan_message_id: Option<String>,
    pos_gone: Option<bool>,
) -> StoreResult<ScanContext> {
    let latest = match state {
        None => None,
        Some(state) => Some(LatestPayment {
            state: state
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("unknown payment state {state:?}")))?,
            partner_id,
            scan_message_id,
            pos_gone: pos_gone.unwrap_or(false),
        }),
    };
    Ok(ScanContext {
        code_expires_at,
        latest,
    })
}

/// The partner's answer to the forwarded `pay`, recorded with the state it leads to.
#[derive(Debug, Clone, PartialEq)]
pub struct PartnerAnswerRecord {
    pub payment_id: Uuid,
    pub to: PaymentState,
    pub status: Option<i32>,
    pub body: Option<serde_json::Value>,
    /// The amount the partner approved, where it approved one the hub could read.
    pub approved_minor: Option<i64>,
    /// The approval was for another amount than asked: refused, and reversed.
    pub amount_refused: bool,
    /// The reversal owed to the partner, queued in the same transaction.
    pub reversal: Option<NewOutboxMessage>,
    /// Part of the compare-and-set: `to` was decided knowing whether the POS had reversed,
    /// so a reversal landing in between must make this write fail and be decided again.
    pub expected_reversed_by_pos: bool,
    pub at: DateTime<Utc>,
    /// Timeline events written with the answer (the `pay` sent, the partner's answer).
    pub events: Vec<NewEvent>,
    /// Announced to the other hub instances when the answer is recorded (the held `pay`
    /// may be there).
    pub wake: Option<String>,
}

/// A held `pay` whose POS went away (its connection closed) before a scan claimed it:
/// WAITING_FOR_SCAN → EXPIRED, remembering when the POS went.
#[derive(Debug, Clone, PartialEq)]
pub struct AbandonedPay {
    pub payment_id: Uuid,
    pub at: DateTime<Utc>,
    /// Timeline events written only if the abandon wins (the POS went away).
    pub events: Vec<NewEvent>,
}

/// A compare-and-set of a payment's state with what rides on it: the hub's own decisions
/// that no message from a POS or partner carries (a reversal of an approval nobody advised).
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub payment_id: Uuid,
    pub from: PaymentState,
    pub to: PaymentState,
    pub at: DateTime<Utc>,
    /// Queued in the same transaction, only if the change wins.
    pub outbox: Option<NewOutboxMessage>,
    /// Timeline events written only if the change wins.
    pub events: Vec<NewEvent>,
}

/// APPROVED payments nobody advised past a cut-off: how many, and since when the oldest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnadvisedStats {
    pub count: i64,
    /// When the oldest of them was approved (its `updated_at`).
    pub oldest_approved_at: Option<DateTime<Utc>>,
}

/// An advice from a POS, as received.
#[derive(Debug, Clone, PartialEq)]
pub struct AdviceRecord {
    pub client_id: String,
    /// The advice's own `id`.
    pub message_id: String,
    pub kind: AdviceKind,
    /// The `PaymentRequest.id` it refers to.
    pub request_id: String,
    /// The payment it applied to; `None` for a reversal of a payment the hub never saw,
    /// which is remembered so that a late `pay` with that id is refused.
    pub payment_id: Option<Uuid>,
    /// The advice as received: the 202 echo of a repeat is this body.
    pub body: serde_json::Value,
    pub received_at: DateTime<Utc>,
}

/// An advice applied to a payment: one compare-and-set plus the rows it brings.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyAdvice {
    pub advice: AdviceRecord,
    pub payment_id: Uuid,
    pub from: PaymentState,
    /// `None` keeps the state (an absorbed advice) but still requires `from` to hold.
    pub to: Option<PaymentState>,
    /// Sets `reversed_by_pos` (a reversal that arrived while the partner had the payment).
    pub mark_reversed_by_pos: bool,
    /// A confirmation fixes the amount settled and its fee, written with the move.
    pub settlement: Option<Settlement>,
    pub outbox: Option<NewOutboxMessage>,
    /// Timeline events written with the advice (the advice received).
    pub events: Vec<NewEvent>,
    /// Announced to the other hub instances when the advice is applied, where a held `pay`
    /// may wait on the payment.
    pub wake: Option<String>,
}

/// The money a confirmation settles, in minor units of the payment's currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    pub settled_minor: i64,
    pub fee_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyAdviceOutcome {
    Applied,
    /// The payment was no longer in `from`: re-read and decide again.
    StateChanged,
    /// The advice id is already stored (a repeat that raced this one).
    DuplicateAdvice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxState {
    Pending,
    Delivered,
    Failed,
    Dead,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Delivered => "DELIVERED",
            Self::Failed => "FAILED",
            Self::Dead => "DEAD",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(Self::Pending),
            "DELIVERED" => Some(Self::Delivered),
            "FAILED" => Some(Self::Failed),
            "DEAD" => Some(Self::Dead),
            _ => None,
        }
    }
}

/// An advice owed to a partner.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutboxMessage {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub partner_id: String,
    pub kind: AdviceKind,
    /// The advice's `id` toward the partner: the same on every try.
    pub message_id: String,
    /// The PaymentConfirmation or PaymentReversal to send, as JSON.
    pub body: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// After this, an undelivered row is dead-lettered.
    pub expires_at: DateTime<Utc>,
    /// `Some`: the instance queueing the row makes the first try itself, at once, and holds
    /// the row leased until then (it is stored with its first try counted); a worker takes
    /// it only if that try's result was never recorded. `None`: due now, for any worker.
    pub first_try_until: Option<DateTime<Utc>>,
}

impl NewOutboxMessage {
    /// Tries counted when the row is stored.
    pub fn initial_attempts(&self) -> i32 {
        i32::from(self.first_try_until.is_some())
    }

    /// When the row is first due: the end of the first try's lease, or at once.
    pub fn initial_due(&self) -> DateTime<Utc> {
        self.first_try_until.unwrap_or(self.created_at)
    }

    /// The row as stored, for the first try of the instance that leased it; `None` when the
    /// row was queued for the workers.
    pub fn first_try(&self) -> Option<OutboxMessage> {
        let leased_until = self.first_try_until?;
        Some(OutboxMessage {
            id: self.id,
            payment_id: self.payment_id,
            partner_id: self.partner_id.clone(),
            kind: self.kind,
            message_id: self.message_id.clone(),
            body: self.body.clone(),
            state: OutboxState::Pending,
            attempts: self.initial_attempts(),
            next_attempt_at: leased_until,
            last_status: None,
            last_error: None,
            created_at: self.created_at,
            expires_at: self.expires_at,
            updated_at: self.created_at,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub partner_id: String,
    pub kind: AdviceKind,
    pub message_id: String,
    pub body: serde_json::Value,
    pub state: OutboxState,
    /// Tries started so far; also the fencing token of the current lease.
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One delivery try of outbox row `id` (its try `attempt`), ended at `at` with `result`.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedDelivery {
    pub id: Uuid,
    pub attempt: i32,
    pub result: DeliveryResult,
    pub at: DateTime<Utc>,
}

/// How one delivery try ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryResult {
    /// The partner has it (2xx, or 404 on a reversal).
    Delivered { status: i32 },
    /// A final answer that is not a success: the row ends, failed.
    Failed { status: i32, error: String },
    /// Unknown outcome: try again at `next_attempt_at`.
    Retry {
        status: Option<i32>,
        error: String,
        next_attempt_at: DateTime<Utc>,
    },
}

/// The outbox's backlog: PENDING rows (due or backing off) and the oldest one's age.
/// Refused and dead advices, counted through their partial index (the same text on both
/// stores).
pub(crate) const OPEN_ITEMS_SQL: &str = "SELECT count(*) FILTER (WHERE state = 'FAILED'), \
     count(*) FILTER (WHERE state = 'DEAD') FROM outbox WHERE state IN ('FAILED', 'DEAD')";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub pending: i64,
    pub oldest_created_at: Option<DateTime<Utc>>,
    /// Advices the partner refused (FAILED): each is an operator's open item.
    pub refused: i64,
    /// Advices dead-lettered at their expiry and not retried yet.
    pub dead: i64,
}

/// One partner's advices waiting for delivery (outbox rows PENDING).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerBacklog {
    pub partner_id: String,
    pub waiting: i64,
    pub oldest_created_at: Option<DateTime<Utc>>,
}

/// Connections of the store's pools right now (for metrics; no I/O). SQLite's writer and
/// reader pools are added together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open, idle or in use.
    pub size: u32,
    pub idle: u32,
    /// The most the pools may open.
    pub max: u32,
}

/// What a hub finds after a restart, and repairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Payments left FORWARDED: their outcome is unknown, a reversal was queued (they end
    /// UNKNOWN, or REVERSED when the POS had reversed them meanwhile).
    pub forwarded_made_unknown: u64,
    /// Payments left MATCHED: nothing was sent to the partner; they end DECLINED.
    pub matched_never_sent: u64,
}

/// Wake-ups between hub instances sharing the database (publish and subscribe).
#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Tells every hub instance on this database that `key` changed (PostgreSQL:
    /// `NOTIFY`). Nothing to do where only one instance can run (SQLite). A change that
    /// needs a wake-up carries its key instead (`wake` fields), so that the announcement
    /// rides with the change's own commit.
    async fn announce(&self, key: &str) -> StoreResult<()>;
    /// The keys other instances announce, or `None` where there are no other instances.
    /// Notifications can be lost (a reconnect); every waiter also has its deadline.
    async fn announcements(&self) -> StoreResult<Option<Announcements>>;
}

/// QR codes, payments, scans and advices: the hub's hot path, every change a
/// compare-and-set.
#[async_trait]
pub trait PaymentStore: Send + Sync {
    async fn insert_qr_code(&self, code: &QrCodeRecord) -> StoreResult<InsertOutcome>;
    async fn qr_code(&self, tran_id: &str) -> StoreResult<Option<QrCodeRecord>>;
    /// Stores a waiting payment, refusing a duplicate id, a busy tranId, and an id the POS
    /// already reversed, all in one transaction.
    async fn insert_payment(&self, payment: &NewPayment) -> StoreResult<NewPaymentOutcome>;
    async fn payment(&self, id: Uuid) -> StoreResult<Option<PaymentRecord>>;
    async fn payment_by_message(
        &self,
        client_id: &str,
        message_id: &str,
    ) -> StoreResult<Option<PaymentRecord>>;
    /// The newest payment for a tranId, whatever its state.
    async fn latest_payment_for_tran(&self, tran_id: &str) -> StoreResult<Option<PaymentRecord>>;
    /// The code of `tran_id` and its newest payment in one read; `None` if the hub never
    /// issued that code.
    async fn scan_context(&self, tran_id: &str) -> StoreResult<Option<ScanContext>>;
    /// WAITING_FOR_SCAN → MATCHED for the tranId's waiting payment, recording the scan.
    async fn claim_for_scan(&self, claim: &ScanClaim) -> StoreResult<ScanClaimOutcome>;
    /// A bare compare-and-set of the state (no other column changes but `updated_at`).
    async fn transition(
        &self,
        id: Uuid,
        from: PaymentState,
        to: PaymentState,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// FORWARDED → answer.to (only while `reversed_by_pos` still equals
    /// `expected_reversed_by_pos`), storing the partner's status and body and queueing the
    /// reversal if there is one, in one transaction.
    async fn record_partner_answer(&self, answer: &PartnerAnswerRecord) -> StoreResult<bool>;
    /// WAITING_FOR_SCAN → EXPIRED with `pos_gone_at` set, and the events, in one
    /// compare-and-set: `false` when the payment was no longer waiting (a scan claimed it
    /// first, here or at another instance, or its window had closed).
    async fn abandon_waiting(&self, abandoned: &AbandonedPay) -> StoreResult<bool>;
    /// `from → to` with the outbox row and events of `change`, in one compare-and-set:
    /// `false` (and nothing written) when the payment was no longer in `from`.
    async fn change_state(&self, change: &StateChange) -> StoreResult<bool>;
    /// APPROVED payments (no advice applied: a confirmation or reversal moves them on)
    /// approved before `approved_before`, of `client_id` if given, oldest approval first.
    async fn unadvised_approvals(
        &self,
        approved_before: DateTime<Utc>,
        client_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<PaymentRecord>>;
    /// How many payments [`PaymentStore::unadvised_approvals`] would list, all clients.
    async fn unadvised_stats(&self, approved_before: DateTime<Utc>) -> StoreResult<UnadvisedStats>;
    /// WAITING_FOR_SCAN payments whose scan window closed before `now`.
    async fn expired_waiting(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Uuid>>;
    async fn advice(&self, client_id: &str, message_id: &str) -> StoreResult<Option<AdviceRecord>>;
    /// Stores a reversal for a payment the hub never saw (payment_id None), unless a payment
    /// with its `request_id` exists by then, or is being stored at the same time (that one
    /// is waited for): then `PaymentExists`, and nothing is stored. Never both this and the
    /// payment: one of them is refused.
    async fn insert_orphan_reversal(&self, advice: &AdviceRecord) -> StoreResult<OrphanOutcome>;
    async fn apply_advice(&self, apply: &ApplyAdvice) -> StoreResult<ApplyAdviceOutcome>;
}

/// The store-and-forward queue of advices to partners, and its operators' retries.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Leases up to `limit` due PENDING rows until `lease_until`, counting a try on each.
    /// A row whose worker dies becomes due again when its lease runs out.
    async fn claim_due_outbox(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>>;
    /// Records how a try ended; ignored (false) unless the row is still PENDING with
    /// `attempts == attempt` (a stale worker cannot overwrite a newer try).
    async fn finish_delivery(
        &self,
        id: Uuid,
        attempt: i32,
        result: &DeliveryResult,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let finished = [FinishedDelivery {
            id,
            attempt,
            result: result.clone(),
            at,
        }];
        self.finish_deliveries(&finished)
            .await?
            .first()
            .copied()
            .ok_or_else(|| StoreError::Corrupt("a recorded delivery had no answer".into()))
    }
    /// [`OutboxStore::finish_delivery`] for several tries in one statement and one commit:
    /// one answer per try, in their order. The tries name different rows.
    async fn finish_deliveries(&self, finished: &[FinishedDelivery]) -> StoreResult<Vec<bool>>;
    /// PENDING rows past their expiry become DEAD; returns how many.
    async fn dead_letter_expired(&self, now: DateTime<Utc>) -> StoreResult<u64>;
    /// How many rows are PENDING and when the oldest of them was queued.
    async fn outbox_stats(&self) -> StoreResult<OutboxStats>;
    /// Advices waiting (PENDING) per partner that has any, with the oldest's creation time.
    async fn outbox_backlog_by_partner(&self) -> StoreResult<Vec<PartnerBacklog>>;
    async fn outbox_for_payment(&self, payment_id: Uuid) -> StoreResult<Vec<OutboxMessage>>;
    async fn outbox_by_state(
        &self,
        state: OutboxState,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>>;
    /// DEAD or FAILED (refused) → PENDING, due now, with a new expiry (an operator's retry).
    async fn retry_dead_letter(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<bool>;
}

/// Each payment's timeline of messages received and sent.
#[async_trait]
pub trait TimelineStore: Send + Sync {
    /// Appends timeline events where no state change carries them (one statement).
    async fn record_events(&self, events: &[NewEvent]) -> StoreResult<()>;
    /// A payment's events, and those of its tranId that reached no payment (the
    /// createQrCode, refused messages), in time order.
    async fn payment_timeline(
        &self,
        payment_id: Uuid,
        tran_id: &str,
    ) -> StoreResult<Vec<EventRecord>>;
}

/// The back office's reads: search and settlement reports.
#[async_trait]
pub trait BackOfficeStore: Send + Sync {
    /// Payments matching `query`, newest first (created_at, then id), at most `limit`.
    async fn search_payments(&self, query: &PaymentQuery) -> StoreResult<Vec<PaymentRecord>>;
    /// Payments created in [from, to) that a partner handled and that are in one of
    /// [`SETTLEMENT_STATES`], with their settled amounts (see [`SettledPayment`]).
    async fn settled_payments(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        partner_id: Option<&str>,
    ) -> StoreResult<Vec<SettledPayment>>;
    /// The same payments, counted and summed per partner, currency and state.
    async fn settlement_groups(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        partner_id: Option<&str>,
    ) -> StoreResult<Vec<SettlementGroup>>;
    /// Payments created in [from, to) and all outbox rows, counted per state.
    async fn state_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<StateCounts>;

    // Retention
    /// Deletes one batch (at most `limit`) of what `what` names older than `before`, in one
    /// short transaction, and says how many rows it deleted (payments: how many payments).
    /// `None`: another instance is purging right now (PostgreSQL: a transaction-scoped
    /// advisory lock), so this one leaves it to that one.
    async fn purge(
        &self,
        what: Purge,
        before: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Option<u64>>;
}

/// Everything the hub persists, as one object (`SharedStore`): the focused traits above,
/// and what concerns the database as a whole.
#[async_trait]
pub trait Store:
    PaymentStore + OutboxStore + TimelineStore + NotificationStore + BackOfficeStore + std::fmt::Debug
{
    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// Checks the database answers (readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// The connection pools' use, read from the pools without a query.
    fn pool_stats(&self) -> PoolStats;
    /// Repairs what a crashed hub left half done (see [`RecoveryReport`]): payments FORWARDED
    /// with no change since `forwarded_before` become UNKNOWN (REVERSED if the POS
    /// reversed them meanwhile) with the reversal that
    /// `reversal_for` builds; payments MATCHED since before `matched_before` become DECLINED.
    /// The cut-offs lie further back than any live instance could take to finish, so this
    /// is safe to run on every instance, at start-up and periodically.
    ///
    /// (`for<'p>` is spelled out because `#[async_trait]` would otherwise tie the record's
    /// borrow to the call's lifetime, and no implementation could pass a local record.)
    async fn recover(
        &self,
        now: DateTime<Utc>,
        forwarded_before: DateTime<Utc>,
        matched_before: DateTime<Utc>,
        reversal_for: &(dyn for<'p> Fn(&'p PaymentRecord) -> NewOutboxMessage + Send + Sync),
    ) -> StoreResult<RecoveryReport>;
}

pub type SharedStore = Arc<dyn Store>;

/// Keys announced by any hub instance sharing the database (see [`NotificationStore::announce`]).
pub type Announcements = tokio::sync::mpsc::Receiver<String>;

/// Opens the store a database URL names (`postgres://…` or `sqlite://…`).
pub async fn connect(url: &str, max_connections: u32) -> StoreResult<SharedStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            PostgresStore::connect(url, max_connections).await?,
        ))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}
