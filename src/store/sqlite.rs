//! The store on SQLite, for a single hub instance.
//!
//! # Concurrency
//! SQLite allows one writer at a time; a second connection that tries to write gets
//! `SQLITE_BUSY`, and a deferred transaction that read first cannot wait its way out of it
//! (the busy handler is not called when upgrading a stale read snapshot). So:
//!
//! - every write goes through `writer`, a pool of exactly **one** connection: writes from
//!   concurrent requests queue in the pool (up to its acquire timeout) instead of colliding
//!   in SQLite;
//! - multi-statement write transactions still begin with `BEGIN IMMEDIATE`, taking the write
//!   lock up front, so that another process on the same file (an operator's CLI) makes them
//!   wait for `busy_timeout` rather than fail half way;
//! - reads go through `reader`, a few connections that, in WAL mode, never block the writer
//!   and see every committed write.
//!
//! An in-memory database (`sqlite::memory:`) exists once per connection, so there both
//! roles share one connection that is never closed.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::SqlitePool;
use uuid::Uuid;

use super::reads::{self, Arg, Decoded, Dialect, Reader};
use super::rows::{convert_all, delivery_columns, Id, OutboxRow, PaymentRow, Ts};
use super::*;
use crate::domain::PaymentState;
use crate::model::text::storable;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long SQLite waits for a lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write waits for the writer connection (queued behind other writes).
const WRITE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
const READ_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
const READ_CONNECTIONS: u32 = 4;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// One connection: every write goes through it.
    writer: SqlitePool,
    /// Reads only.
    reader: SqlitePool,
    /// In memory: `writer` and `reader` are the same pool.
    one_pool: bool,
}

/// Whether a URL names an in-memory database rather than a file.
fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

impl SqliteStore {
    /// Opens (creating if missing, with its parent directory) the database file a
    /// `sqlite://…` URL names.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);

        if is_in_memory(url) {
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(WRITE_ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await?;
            return Ok(Self {
                writer: pool.clone(),
                reader: pool,
                one_pool: true,
            });
        }

        if let Some(parent) = options.get_filename().parent() {
            if !parent.as_os_str().is_empty() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(sqlx::Error::Io)?;
            }
        }
        // FULL, not WAL's usual NORMAL: with NORMAL a commit is durable only at the next
        // checkpoint, so a power cut could lose a pay the POS was answered for, an advice
        // answered 202, or an outbox row's FORWARDED mark (DESIGN.md §8). FULL syncs the WAL
        // on every commit; every connection sets it (it is not kept in the file).
        // QRHUB_BENCH_SQLITE_SYNCHRONOUS=normal exists only so that the benchmark can put a
        // figure on what FULL costs (BENCHMARKS.md); it is no setting to run a hub with.
        let synchronous = match std::env::var("QRHUB_BENCH_SQLITE_SYNCHRONOUS").as_deref() {
            Ok("normal") => SqliteSynchronous::Normal,
            _ => SqliteSynchronous::Full,
        };
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous);
        // The writer connects first: it creates the file and switches it to WAL, which is
        // persistent. Its connection is kept open for the life of the store.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(WRITE_ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .acquire_timeout(READ_ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        Ok(Self {
            writer,
            reader,
            one_pool: false,
        })
    }

    /// The `synchronous` setting of the writer and of a reader connection (2 = FULL), for
    /// checks of durability.
    pub async fn synchronous(&self) -> StoreResult<(i64, i64)> {
        let writer: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&self.writer)
            .await?;
        let reader: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&self.reader)
            .await?;
        Ok((writer, reader))
    }

    /// `DuplicateId` when `payment`'s id is already stored.
    async fn known_payment(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
        payment: &NewPayment,
    ) -> StoreResult<Option<NewPaymentOutcome>> {
        let known: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM payment WHERE client_id = $1 AND message_id = $2")
                .bind(&payment.client_id)
                .bind(&payment.message_id)
                .fetch_optional(&mut **tx)
                .await?;
        Ok(known.map(|_| NewPaymentOutcome::DuplicateId))
    }

    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Whether `err` is a unique violation on exactly these columns. SQLite reports no
/// constraint name, but its message names the columns: `UNIQUE constraint failed:
/// payment.client_id, payment.message_id`.
fn violates_unique(err: &sqlx::Error, columns: &str) -> bool {
    err.as_database_error().is_some_and(|db| {
        db.is_unique_violation()
            && db
                .message()
                .strip_prefix("UNIQUE constraint failed: ")
                .is_some_and(|cols| cols == columns)
    })
}

async fn insert_outbox(conn: &mut SqliteConnection, msg: &NewOutboxMessage) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO outbox (id, payment_id, partner_id, kind, message_id, body, state, \
         attempts, next_attempt_at, created_at, expires_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $10, $11, $8, $9, $8)",
    )
    .bind(Id(msg.id))
    .bind(Id(msg.payment_id))
    .bind(&msg.partner_id)
    .bind(msg.kind.as_str())
    .bind(&msg.message_id)
    .bind(&msg.body)
    .bind(OutboxState::Pending.as_str())
    .bind(Ts(msg.created_at))
    .bind(Ts(msg.expires_at))
    .bind(msg.initial_attempts())
    .bind(Ts(msg.initial_due()))
    .execute(conn)
    .await?;
    Ok(())
}

/// Rows per event insert: ten parameters each, well under SQLite's limit of 32,766.
const EVENT_ROWS_PER_INSERT: usize = 256;

/// Appends timeline events (those without a payment get `payment_id`) as one multi-row
/// INSERT per chunk: every statement is a round trip to the connection's own thread, which
/// costs more than the row itself. Only the common shapes (up to four rows, as a change
/// brings, and a full chunk) are kept prepared, so that the writer's batches of every size
/// do not push the hot path's statements out of the connection's statement cache.
async fn insert_events(
    conn: &mut SqliteConnection,
    events: &[NewEvent],
    payment_id: Option<Uuid>,
) -> StoreResult<()> {
    for chunk in events.chunks(EVENT_ROWS_PER_INSERT) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO payment_event (payment_id, tran_id, at, kind, direction, counterparty, \
             message_id, http_status, outcome, body) ",
        );
        insert.push_values(chunk, |mut row, e| {
            // NUL as U+FFFD, as on PostgreSQL (which cannot keep it): both stores show
            // the same timeline, and SQLite's own text functions stop at a NUL.
            row.push_bind(e.payment_id.or(payment_id).map(Id))
                .push_bind(storable(&e.tran_id))
                .push_bind(Ts(e.at))
                .push_bind(e.kind)
                .push_bind(e.direction.as_str())
                .push_bind(storable(&e.counterparty))
                .push_bind(e.message_id.as_deref().map(storable))
                .push_bind(e.http_status)
                .push_bind(storable(&e.outcome))
                .push_bind(&e.body);
        });
        let common_shape = chunk.len() <= 4 || chunk.len() == EVENT_ROWS_PER_INSERT;
        insert
            .build()
            .persistent(common_shape)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The shared reads ([`reads`]) on SQLite, on the read connections.
#[async_trait]
impl Reader for SqliteStore {
    const DIALECT: Dialect = Dialect {
        tiebreak: "rowid",
        text_cast: "",
        sum_cast: "",
        scan_context_sql: "SELECT q.expires_at, p.state, p.partner_id, p.scan_message_id, \
             p.pos_gone_at IS NOT NULL FROM qr_code q \
             LEFT JOIN payment p ON p.rowid = (SELECT rowid FROM payment \
             WHERE tran_id = q.tran_id ORDER BY created_at DESC, rowid DESC LIMIT 1) \
             WHERE q.tran_id = $1",
    };

    async fn fetch_all<R: Decoded>(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<R>> {
        Ok(bound(sql, args).fetch_all(&self.reader).await?)
    }

    async fn fetch_optional<R: Decoded>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> StoreResult<Option<R>> {
        Ok(bound(sql, args).fetch_optional(&self.reader).await?)
    }
}

/// `sql` with `args` bound to its placeholders in order.
fn bound<'q, R: Decoded>(
    sql: &'q str,
    args: &'q [Arg<'q>],
) -> sqlx::query::QueryAs<'q, sqlx::Sqlite, R, sqlx::sqlite::SqliteArguments<'q>> {
    args.iter()
        .fold(sqlx::query_as(sql), |query, arg| match *arg {
            Arg::Text(v) => query.bind(v),
            Arg::MaybeText(v) => query.bind(v),
            Arg::Time(v) => query.bind(v),
            Arg::Id(v) => query.bind(v),
            Arg::Int(v) => query.bind(v),
        })
}

#[async_trait]
impl NotificationStore for SqliteStore {
    /// One instance only: its own in-process wake-ups are all there is.
    async fn announce(&self, _key: &str) -> StoreResult<()> {
        Ok(())
    }

    async fn announcements(&self) -> StoreResult<Option<Announcements>> {
        Ok(None)
    }
}

#[async_trait]
impl PaymentStore for SqliteStore {
    async fn insert_qr_code(&self, code: &QrCodeRecord) -> StoreResult<InsertOutcome> {
        let done = sqlx::query(
            "INSERT INTO qr_code (tran_id, client_id, message_id, scheme, payload, created_at, \
             expires_at, amount_minor, currency, part_payment_allowed, over_payment_allowed) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (client_id, message_id) DO NOTHING",
        )
        .bind(&code.tran_id)
        .bind(&code.client_id)
        .bind(&code.message_id)
        .bind(&code.scheme)
        .bind(&code.payload)
        .bind(Ts(code.created_at))
        .bind(Ts(code.expires_at))
        .bind(code.terms.amount.as_ref().map(|(a, _)| *a))
        .bind(code.terms.amount.as_ref().map(|(_, c)| c.as_str()))
        .bind(code.terms.part_payment_allowed)
        .bind(code.terms.over_payment_allowed)
        .execute(&self.writer)
        .await?;
        Ok(if done.rows_affected() == 1 {
            InsertOutcome::Inserted
        } else {
            InsertOutcome::Duplicate
        })
    }

    async fn qr_code(&self, tran_id: &str) -> StoreResult<Option<QrCodeRecord>> {
        reads::qr_code(self, tran_id).await
    }

    async fn insert_payment(&self, payment: &NewPayment) -> StoreResult<NewPaymentOutcome> {
        // The insert refuses itself (no row) for an id the POS reversed first; a duplicate
        // id or a busy tranId fails on its unique index. The checks cost no statement of
        // their own on the happy path.
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO payment (id, client_id, message_id, tran_id, state, amount_minor, \
             currency, request, created_at, scan_deadline, updated_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $9 WHERE NOT EXISTS \
             (SELECT 1 FROM advice WHERE client_id = $2 AND request_id = $3 AND kind = $11)",
        )
        .bind(Id(payment.id))
        .bind(&payment.client_id)
        .bind(&payment.message_id)
        .bind(&payment.tran_id)
        .bind(PaymentState::WaitingForScan.as_str())
        .bind(payment.amount_minor)
        .bind(&payment.currency)
        .bind(&payment.request)
        .bind(Ts(payment.created_at))
        .bind(Ts(payment.scan_deadline))
        .bind(AdviceKind::Reversal.as_str())
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(done) if done.rows_affected() == 1 => {
                insert_events(&mut tx, &payment.events, Some(payment.id)).await?;
                tx.commit().await?;
                Ok(NewPaymentOutcome::Inserted)
            }
            // Reversed first, or a busy tranId, unless this is a repeat of a payment stored
            // before (reversed since, or still live): a repeat is told as one, whichever
            // check refused it.
            Ok(_) => Ok(self
                .known_payment(&mut tx, payment)
                .await?
                .unwrap_or(NewPaymentOutcome::AlreadyReversed)),
            Err(e) if violates_unique(&e, "payment.client_id, payment.message_id") => {
                Ok(NewPaymentOutcome::DuplicateId)
            }
            Err(e) if violates_unique(&e, "payment.tran_id") => Ok(self
                .known_payment(&mut tx, payment)
                .await?
                .unwrap_or(NewPaymentOutcome::TranIdInUse)),
            Err(e) => Err(e.into()),
        }
    }

    async fn payment(&self, id: Uuid) -> StoreResult<Option<PaymentRecord>> {
        reads::payment(self, id).await
    }

    async fn payment_by_message(
        &self,
        client_id: &str,
        message_id: &str,
    ) -> StoreResult<Option<PaymentRecord>> {
        reads::payment_by_message(self, client_id, message_id).await
    }

    async fn latest_payment_for_tran(&self, tran_id: &str) -> StoreResult<Option<PaymentRecord>> {
        reads::latest_payment_for_tran(self, tran_id).await
    }

    async fn scan_context(&self, tran_id: &str) -> StoreResult<Option<ScanContext>> {
        reads::scan_context(self, tran_id).await
    }

    async fn claim_for_scan(&self, claim: &ScanClaim) -> StoreResult<ScanClaimOutcome> {
        // One statement: the WHERE is the compare, the SET the swap; the events join it in
        // one transaction when there are any.
        check_claim(claim)?;
        let mut tx = self.begin_write().await?;
        let row = sqlx::query_as::<_, PaymentRow>(
            "UPDATE payment SET state = $2, partner_id = $3, partner_payment_token = $4, \
             scan_message_id = $5, partner_message_id = $6, updated_at = $7 \
             WHERE tran_id = $1 AND state = 'WAITING_FOR_SCAN' RETURNING *",
        )
        .bind(&claim.tran_id)
        .bind(claim.to.as_str())
        .bind(&claim.partner_id)
        .bind(&claim.partner_payment_token)
        .bind(&claim.scan_message_id)
        .bind(&claim.partner_message_id)
        .bind(Ts(claim.at))
        .fetch_optional(&mut *tx)
        .await;
        match row {
            Ok(Some(row)) => {
                let payment: PaymentRecord = row.try_into()?;
                insert_events(&mut tx, &claim.events, Some(payment.id)).await?;
                tx.commit().await?;
                Ok(ScanClaimOutcome::Claimed(payment))
            }
            Ok(None) => {
                tx.rollback().await?;
                Ok(ScanClaimOutcome::NothingWaiting)
            }
            Err(e) if violates_unique(&e, "payment.partner_id, payment.scan_message_id") => {
                tx.rollback().await?;
                Ok(ScanClaimOutcome::ScanIdInUse)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn transition(
        &self,
        id: Uuid,
        from: PaymentState,
        to: PaymentState,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        check_move(from, to)?;
        let done = sqlx::query(
            "UPDATE payment SET state = $3, updated_at = $4 WHERE id = $1 AND state = $2",
        )
        .bind(Id(id))
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(Ts(at))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_partner_answer(&self, answer: &PartnerAnswerRecord) -> StoreResult<bool> {
        check_move(PaymentState::Forwarded, answer.to)?;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE payment SET state = $3, partner_status = $4, partner_response = $5, \
             updated_at = $6, approved_minor = $8, amount_refused = $9 \
             WHERE id = $1 AND state = $2 AND reversed_by_pos = $7",
        )
        .bind(Id(answer.payment_id))
        .bind(PaymentState::Forwarded.as_str())
        .bind(answer.to.as_str())
        .bind(answer.status)
        .bind(&answer.body)
        .bind(Ts(answer.at))
        .bind(answer.expected_reversed_by_pos)
        .bind(answer.approved_minor)
        .bind(answer.amount_refused)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(reversal) = &answer.reversal {
            insert_outbox(&mut tx, reversal).await?;
        }
        insert_events(&mut tx, &answer.events, Some(answer.payment_id)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn abandon_waiting(&self, abandoned: &AbandonedPay) -> StoreResult<bool> {
        check_move(PaymentState::WaitingForScan, PaymentState::Expired)?;
        // One writer at a time: a scan's claim is either committed before this (and this
        // matches nothing) or waits for it (and then finds nothing waiting).
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE payment SET state = $2, pos_gone_at = $3, updated_at = $3 \
             WHERE id = $1 AND state = 'WAITING_FOR_SCAN'",
        )
        .bind(Id(abandoned.payment_id))
        .bind(PaymentState::Expired.as_str())
        .bind(Ts(abandoned.at))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_events(&mut tx, &abandoned.events, Some(abandoned.payment_id)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn change_state(&self, change: &StateChange) -> StoreResult<bool> {
        check_move(change.from, change.to)?;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE payment SET state = $3, updated_at = $4 WHERE id = $1 AND state = $2",
        )
        .bind(Id(change.payment_id))
        .bind(change.from.as_str())
        .bind(change.to.as_str())
        .bind(Ts(change.at))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(msg) = &change.outbox {
            insert_outbox(&mut tx, msg).await?;
        }
        insert_events(&mut tx, &change.events, Some(change.payment_id)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn unadvised_approvals(
        &self,
        approved_before: DateTime<Utc>,
        client_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<PaymentRecord>> {
        reads::unadvised_approvals(self, approved_before, client_id, limit).await
    }

    async fn unadvised_stats(&self, approved_before: DateTime<Utc>) -> StoreResult<UnadvisedStats> {
        reads::unadvised_stats(self, approved_before).await
    }

    async fn expired_waiting(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Uuid>> {
        reads::expired_waiting(self, now, limit).await
    }

    async fn advice(&self, client_id: &str, message_id: &str) -> StoreResult<Option<AdviceRecord>> {
        reads::advice(self, client_id, message_id).await
    }

    async fn insert_orphan_reversal(&self, advice: &AdviceRecord) -> StoreResult<OrphanOutcome> {
        // One writer at a time: a `pay` with this id is stored wholly before or after.
        let mut tx = self.begin_write().await?;
        let paid: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM payment WHERE client_id = $1 AND message_id = $2")
                .bind(&advice.client_id)
                .bind(&advice.request_id)
                .fetch_optional(&mut *tx)
                .await?;
        if paid.is_some() {
            tx.rollback().await?;
            return Ok(OrphanOutcome::PaymentExists);
        }
        if !insert_advice(&mut *tx, advice).await? {
            tx.rollback().await?;
            return Ok(OrphanOutcome::DuplicateAdvice);
        }
        tx.commit().await?;
        Ok(OrphanOutcome::Inserted)
    }

    async fn apply_advice(&self, apply: &ApplyAdvice) -> StoreResult<ApplyAdviceOutcome> {
        if let Some(to) = apply.to {
            check_move(apply.from, to)?;
        }
        let mut tx = self.begin_write().await?;
        if !insert_advice(&mut *tx, &apply.advice).await? {
            tx.rollback().await?;
            return Ok(ApplyAdviceOutcome::DuplicateAdvice);
        }
        // With `to` None the state is written back unchanged: the compare still holds the
        // payment in `from` for the rest of this transaction.
        let touched = apply.to.is_some() || apply.mark_reversed_by_pos;
        let done = sqlx::query(
            "UPDATE payment SET state = $3, reversed_by_pos = (reversed_by_pos OR $4), \
             updated_at = CASE WHEN $5 THEN $6 ELSE updated_at END, \
             settled_minor = COALESCE($7, settled_minor), fee_minor = COALESCE($8, fee_minor) \
             WHERE id = $1 AND state = $2",
        )
        .bind(Id(apply.payment_id))
        .bind(apply.from.as_str())
        .bind(apply.to.unwrap_or(apply.from).as_str())
        .bind(apply.mark_reversed_by_pos)
        .bind(touched)
        .bind(Ts(apply.advice.received_at))
        .bind(apply.settlement.map(|s| s.settled_minor))
        .bind(apply.settlement.map(|s| s.fee_minor))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(ApplyAdviceOutcome::StateChanged);
        }
        if let Some(msg) = &apply.outbox {
            insert_outbox(&mut tx, msg).await?;
        }
        insert_events(&mut tx, &apply.events, Some(apply.payment_id)).await?;
        tx.commit().await?;
        Ok(ApplyAdviceOutcome::Applied)
    }
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn claim_due_outbox(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>> {
        // One statement, through the single writer: no other claim can interleave.
        let rows = sqlx::query_as::<_, OutboxRow>(
            "UPDATE outbox SET next_attempt_at = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE id IN (SELECT id FROM outbox WHERE state = 'PENDING' AND next_attempt_at <= $2 \
             ORDER BY next_attempt_at LIMIT $3) RETURNING *",
        )
        .bind(Ts(lease_until))
        .bind(Ts(now))
        .bind(limit)
        .fetch_all(&self.writer)
        .await?;
        let mut claimed: Vec<OutboxMessage> = convert_all(rows)?;
        claimed.sort_by_key(|m| (m.created_at, m.id));
        Ok(claimed)
    }

    async fn finish_delivery(
        &self,
        id: Uuid,
        attempt: i32,
        result: &DeliveryResult,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (state, status, error, next) = delivery_columns(result);
        let done = sqlx::query(
            "UPDATE outbox SET state = $4, last_status = $5, last_error = $6, \
             next_attempt_at = COALESCE($7, next_attempt_at), updated_at = $8 \
             WHERE id = $1 AND state = $2 AND attempts = $3",
        )
        .bind(Id(id))
        .bind(OutboxState::Pending.as_str())
        .bind(attempt)
        .bind(state.as_str())
        .bind(status)
        .bind(error)
        .bind(next.map(Ts))
        .bind(Ts(at))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn dead_letter_expired(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE outbox SET state = $1, updated_at = $2 WHERE state = 'PENDING' AND expires_at <= $2",
        )
        .bind(OutboxState::Dead.as_str())
        .bind(Ts(now))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn outbox_stats(&self) -> StoreResult<OutboxStats> {
        reads::outbox_stats(self).await
    }

    async fn outbox_backlog_by_partner(&self) -> StoreResult<Vec<PartnerBacklog>> {
        reads::outbox_backlog_by_partner(self).await
    }

    async fn outbox_for_payment(&self, payment_id: Uuid) -> StoreResult<Vec<OutboxMessage>> {
        reads::outbox_for_payment(self, payment_id).await
    }

    async fn outbox_by_state(
        &self,
        state: OutboxState,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>> {
        reads::outbox_by_state(self, state, limit).await
    }

    async fn retry_dead_letter(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET state = $3, next_attempt_at = $4, expires_at = $5, updated_at = $4 \
             WHERE id = $1 AND state IN ($2, 'FAILED')",
        )
        .bind(Id(id))
        .bind(OutboxState::Dead.as_str())
        .bind(OutboxState::Pending.as_str())
        .bind(Ts(now))
        .bind(Ts(expires_at))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.writer).await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    fn pool_stats(&self) -> PoolStats {
        let one = |pool: &SqlitePool| PoolStats {
            size: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        };
        let writer = one(&self.writer);
        if self.one_pool {
            return writer;
        }
        let reader = one(&self.reader);
        PoolStats {
            size: writer.size + reader.size,
            idle: writer.idle + reader.idle,
            max: writer.max + reader.max,
        }
    }

    async fn recover(
        &self,
        now: DateTime<Utc>,
        forwarded_before: DateTime<Utc>,
        matched_before: DateTime<Utc>,
        reversal_for: &(dyn for<'p> Fn(&'p PaymentRecord) -> NewOutboxMessage + Send + Sync),
    ) -> StoreResult<RecoveryReport> {
        let mut tx = self.begin_write().await?;
        // A payment the POS reversed while the partner had it ends REVERSED, not UNKNOWN:
        // the POS's reversal was accepted, and UNKNOWN would wait for one forever.
        let unknown = sqlx::query_as::<_, PaymentRow>(
            "UPDATE payment SET state = CASE WHEN reversed_by_pos = 1 THEN $4 ELSE $1 END, updated_at = $2 \
             WHERE state = 'FORWARDED' AND updated_at < $3 RETURNING *",
        )
        .bind(PaymentState::Unknown.as_str())
        .bind(Ts(now))
        .bind(Ts(forwarded_before))
        .bind(PaymentState::Reversed.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let unknown: Vec<PaymentRecord> = convert_all(unknown)?;
        for payment in &unknown {
            insert_outbox(&mut tx, &reversal_for(payment)).await?;
        }
        let declined = sqlx::query(
            "UPDATE payment SET state = $1, updated_at = $2 WHERE state = 'MATCHED' AND updated_at < $3",
        )
        .bind(PaymentState::Declined.as_str())
        .bind(Ts(now))
        .bind(Ts(matched_before))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RecoveryReport {
            forwarded_made_unknown: unknown.len() as u64,
            matched_never_sent: declined.rows_affected(),
        })
    }
}

#[async_trait]
impl TimelineStore for SqliteStore {
    async fn record_events(&self, events: &[NewEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        insert_events(&mut tx, events, None).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn payment_timeline(
        &self,
        payment_id: Uuid,
        tran_id: &str,
    ) -> StoreResult<Vec<EventRecord>> {
        reads::payment_timeline(self, payment_id, tran_id).await
    }
}

#[async_trait]
impl BackOfficeStore for SqliteStore {
    async fn search_payments(&self, query: &PaymentQuery) -> StoreResult<Vec<PaymentRecord>> {
        reads::search_payments(self, query).await
    }

    async fn settled_payments(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        partner_id: Option<&str>,
    ) -> StoreResult<Vec<SettledPayment>> {
        reads::settled_payments(self, from, to, partner_id).await
    }

    async fn settlement_groups(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        partner_id: Option<&str>,
    ) -> StoreResult<Vec<SettlementGroup>> {
        reads::settlement_groups(self, from, to, partner_id).await
    }

    async fn state_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<StateCounts> {
        reads::state_counts(self, from, to).await
    }

    async fn purge(
        &self,
        what: Purge,
        before: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Option<u64>> {
        // One writer, one instance: no other purge can run, and each batch is one short
        // write transaction that other writes queue behind only briefly.
        let mut tx = self.begin_write().await?;
        let deleted = match what {
            Purge::Events | Purge::DeliveredOutbox => {
                let sql = if what == Purge::Events {
                    super::admin::PURGE_EVENTS_SQL
                } else {
                    super::admin::PURGE_OUTBOX_SQL
                };
                sqlx::query(sql)
                    .bind(Ts(before))
                    .bind(limit)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            }
            Purge::Payments => {
                let ids: Vec<Id> = sqlx::query_scalar(&super::admin::purgeable_payments_sql(""))
                    .bind(Ts(before))
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                if !ids.is_empty() {
                    let list = serde_json::Value::from(
                        ids.iter()
                            .map(|id| id.0.hyphenated().to_string())
                            .collect::<Vec<_>>(),
                    )
                    .to_string();
                    for sql in
                        super::admin::purge_payments_sql("SELECT value FROM json_each($1)", false)
                    {
                        sqlx::query(&sql).bind(&list).execute(&mut *tx).await?;
                    }
                }
                ids.len() as u64
            }
        };
        tx.commit().await?;
        Ok(Some(deleted))
    }
}

/// Inserts an advice row; false if its (client, id) is already stored.
async fn insert_advice<'e, E>(executor: E, advice: &AdviceRecord) -> StoreResult<bool>
where
    E: sqlx::SqliteExecutor<'e>,
{
    let done = sqlx::query(
        "INSERT INTO advice (client_id, message_id, kind, request_id, payment_id, body, \
         received_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (client_id, message_id) DO NOTHING",
    )
    .bind(&advice.client_id)
    .bind(&advice.message_id)
    .bind(advice.kind.as_str())
    .bind(&advice.request_id)
    .bind(advice.payment_id.map(Id))
    .bind(&advice.body)
    .bind(Ts(advice.received_at))
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::is_in_memory;

    #[test]
    fn in_memory_urls_are_recognised() {
        assert!(is_in_memory("sqlite::memory:"));
        assert!(is_in_memory("sqlite://?mode=memory"));
        assert!(!is_in_memory("sqlite:///tmp/x.db"));
        assert!(!is_in_memory("sqlite://data/qrhub.db"));
    }
}
