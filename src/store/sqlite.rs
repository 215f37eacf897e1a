//! The store on SQLite, for a single hub instance.
//!
//! # Concurrency
//! SQLite allows one writer at a time; a second connection that tries to write gets
//! `SQLITE_BUSY`, and a deferred transaction that read first cannot wait its way out of it
//! (the busy handler is not called when upgrading a stale read snapshot). So:
//!
//! - every write is a job for `writer`, a task that owns the one writer connection: writes
//!   from concurrent requests queue there instead of colliding in SQLite, and those waiting
//!   together share one transaction and one commit (group commit, see [`writer`]);
//! - that transaction begins with `BEGIN IMMEDIATE`, taking the write lock up front, so that
//!   another process on the same file (an operator's CLI) makes it wait for `busy_timeout`
//!   rather than fail half way;
//! - reads go through `reader`, a few connections that, in WAL mode, never block the writer
//!   and see every committed write.
//!
//! An in-memory database (`sqlite::memory:`) exists once per connection, so there both
//! roles share one connection that is never closed (the writer takes it between reads).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::admin::{
    payment_search_sql, settled_sql, settlement_groups_sql, Arg, EventRow, SettledRow,
    SettlementGroupRow,
};
use super::rows::{convert_all, AdviceRow, Id, OutboxRow, PaymentRow, QrCodeRow, Ts};
use super::*;
use crate::domain::PaymentState;

mod writer;
mod writes;

pub use writer::WriterStats;
use writer::{Writer, Written};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long SQLite waits for a lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write waits for its turn on the writer (queued behind other writes).
const WRITE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
const READ_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
const READ_CONNECTIONS: u32 = 4;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Every write goes through it: the task that owns the writer connection.
    writer: Writer,
    /// The writer's one connection, which only `writer` uses (kept for pool statistics).
    writer_pool: SqlitePool,
    /// Reads only.
    reader: SqlitePool,
    /// In memory: `writer_pool` and `reader` are the same pool.
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
                writer: Writer::start(pool.clone(), WRITE_ACQUIRE_TIMEOUT),
                writer_pool: pool.clone(),
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
        // persistent. Its connection is kept open for the life of the store, and only the
        // writer task takes it (no test query before each batch: nothing else touches it).
        let writer_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .acquire_timeout(WRITE_ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .acquire_timeout(READ_ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        Ok(Self {
            writer: Writer::start(writer_pool.clone(), WRITE_ACQUIRE_TIMEOUT),
            writer_pool,
            reader,
            one_pool: false,
        })
    }

    /// The `synchronous` setting of the writer and of a reader connection (2 = FULL), for
    /// checks of durability.
    pub async fn synchronous(&self) -> StoreResult<(i64, i64)> {
        let writer = self
            .writer
            .write(|conn| {
                Box::pin(async move {
                    let value: i64 = sqlx::query_scalar("PRAGMA synchronous")
                        .fetch_one(conn)
                        .await?;
                    Ok(Written::Undone(value))
                })
            })
            .await?;
        let reader: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&self.reader)
            .await?;
        Ok((writer, reader))
    }

    /// What the writer has done since the store opened: writes, and the commits (each one
    /// fsync of the WAL) they shared.
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }
}

/// How the settlement query tests for "no partner given" here.
const PARTNER_IS_NULL: &str = "$3 IS NULL";

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
        let code = code.clone();
        self.writer
            .write(move |conn| Box::pin(writes::insert_qr_code(conn, code)))
            .await
    }

    async fn qr_code(&self, tran_id: &str) -> StoreResult<Option<QrCodeRecord>> {
        let row = sqlx::query_as::<_, QrCodeRow>("SELECT * FROM qr_code WHERE tran_id = $1")
            .bind(tran_id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(QrCodeRecord::from))
    }

    async fn insert_payment(&self, payment: &NewPayment) -> StoreResult<NewPaymentOutcome> {
        let payment = payment.clone();
        self.writer
            .write(move |conn| Box::pin(writes::insert_payment(conn, payment)))
            .await
    }

    async fn payment(&self, id: Uuid) -> StoreResult<Option<PaymentRecord>> {
        sqlx::query_as::<_, PaymentRow>("SELECT * FROM payment WHERE id = $1")
            .bind(Id(id))
            .fetch_optional(&self.reader)
            .await?
            .map(PaymentRecord::try_from)
            .transpose()
    }

    async fn payment_by_message(
        &self,
        client_id: &str,
        message_id: &str,
    ) -> StoreResult<Option<PaymentRecord>> {
        sqlx::query_as::<_, PaymentRow>(
            "SELECT * FROM payment WHERE client_id = $1 AND message_id = $2",
        )
        .bind(client_id)
        .bind(message_id)
        .fetch_optional(&self.reader)
        .await?
        .map(PaymentRecord::try_from)
        .transpose()
    }

    async fn latest_payment_for_tran(&self, tran_id: &str) -> StoreResult<Option<PaymentRecord>> {
        sqlx::query_as::<_, PaymentRow>(
            "SELECT * FROM payment WHERE tran_id = $1 ORDER BY created_at DESC, rowid DESC LIMIT 1",
        )
        .bind(tran_id)
        .fetch_optional(&self.reader)
        .await?
        .map(PaymentRecord::try_from)
        .transpose()
    }

    async fn scan_context(&self, tran_id: &str) -> StoreResult<Option<ScanContext>> {
        type Row = (
            Ts,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<bool>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT q.expires_at, p.state, p.partner_id, p.scan_message_id, \
             p.pos_gone_at IS NOT NULL FROM qr_code q \
             LEFT JOIN payment p ON p.rowid = (SELECT rowid FROM payment \
             WHERE tran_id = q.tran_id ORDER BY created_at DESC, rowid DESC LIMIT 1) \
             WHERE q.tran_id = $1",
        )
        .bind(tran_id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|(expires, state, partner, scan, gone)| {
            scan_context_from(expires.0, state, partner, scan, gone)
        })
        .transpose()
    }

    async fn claim_for_scan(&self, claim: &ScanClaim) -> StoreResult<ScanClaimOutcome> {
        check_claim(claim)?;
        let claim = claim.clone();
        self.writer
            .write(move |conn| Box::pin(writes::claim_for_scan(conn, claim)))
            .await
    }

    async fn transition(
        &self,
        id: Uuid,
        from: PaymentState,
        to: PaymentState,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        check_move(from, to)?;
        self.writer
            .write(move |conn| Box::pin(writes::transition(conn, id, from, to, at)))
            .await
    }

    async fn record_partner_answer(&self, answer: &PartnerAnswerRecord) -> StoreResult<bool> {
        check_move(PaymentState::Forwarded, answer.to)?;
        let answer = answer.clone();
        self.writer
            .write(move |conn| Box::pin(writes::record_partner_answer(conn, answer)))
            .await
    }

    async fn abandon_waiting(&self, abandoned: &AbandonedPay) -> StoreResult<bool> {
        check_move(PaymentState::WaitingForScan, PaymentState::Expired)?;
        let abandoned = abandoned.clone();
        self.writer
            .write(move |conn| Box::pin(writes::abandon_waiting(conn, abandoned)))
            .await
    }

    async fn change_state(&self, change: &StateChange) -> StoreResult<bool> {
        check_move(change.from, change.to)?;
        let change = change.clone();
        self.writer
            .write(move |conn| Box::pin(writes::change_state(conn, change)))
            .await
    }

    async fn unadvised_approvals(
        &self,
        approved_before: DateTime<Utc>,
        client_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<PaymentRecord>> {
        let rows = sqlx::query_as::<_, PaymentRow>(
            "SELECT * FROM payment WHERE state = 'APPROVED' AND updated_at < $1 \
             AND ($2 IS NULL OR client_id = $2) ORDER BY updated_at, rowid LIMIT $3",
        )
        .bind(Ts(approved_before))
        .bind(client_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        convert_all(rows)
    }

    async fn unadvised_stats(&self, approved_before: DateTime<Utc>) -> StoreResult<UnadvisedStats> {
        let (count, oldest): (i64, Option<Ts>) = sqlx::query_as(
            "SELECT count(*), min(updated_at) FROM payment \
             WHERE state = 'APPROVED' AND updated_at < $1",
        )
        .bind(Ts(approved_before))
        .fetch_one(&self.reader)
        .await?;
        Ok(UnadvisedStats {
            count,
            oldest_approved_at: oldest.map(|t| t.0),
        })
    }

    async fn expired_waiting(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Uuid>> {
        let ids: Vec<Id> = sqlx::query_scalar(
            "SELECT id FROM payment WHERE state = 'WAITING_FOR_SCAN' AND scan_deadline < $1 \
             ORDER BY scan_deadline LIMIT $2",
        )
        .bind(Ts(now))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        Ok(ids.into_iter().map(|id| id.0).collect())
    }

    async fn advice(&self, client_id: &str, message_id: &str) -> StoreResult<Option<AdviceRecord>> {
        sqlx::query_as::<_, AdviceRow>(
            "SELECT * FROM advice WHERE client_id = $1 AND message_id = $2",
        )
        .bind(client_id)
        .bind(message_id)
        .fetch_optional(&self.reader)
        .await?
        .map(AdviceRecord::try_from)
        .transpose()
    }

    async fn insert_orphan_reversal(&self, advice: &AdviceRecord) -> StoreResult<OrphanOutcome> {
        let advice = advice.clone();
        self.writer
            .write(move |conn| Box::pin(writes::insert_orphan_reversal(conn, advice)))
            .await
    }

    async fn apply_advice(&self, apply: &ApplyAdvice) -> StoreResult<ApplyAdviceOutcome> {
        if let Some(to) = apply.to {
            check_move(apply.from, to)?;
        }
        let apply = apply.clone();
        self.writer
            .write(move |conn| Box::pin(writes::apply_advice(conn, apply)))
            .await
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
        self.writer
            .write(move |conn| Box::pin(writes::claim_due_outbox(conn, now, lease_until, limit)))
            .await
    }

    async fn finish_delivery(
        &self,
        id: Uuid,
        attempt: i32,
        result: &DeliveryResult,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let result = result.clone();
        self.writer
            .write(move |conn| Box::pin(writes::finish_delivery(conn, id, attempt, result, at)))
            .await
    }

    async fn dead_letter_expired(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.writer
            .write(move |conn| Box::pin(writes::dead_letter_expired(conn, now)))
            .await
    }

    async fn outbox_stats(&self) -> StoreResult<OutboxStats> {
        // Times are fixed-width text, so min() is the earliest.
        let (pending, oldest): (i64, Option<Ts>) =
            sqlx::query_as("SELECT count(*), min(created_at) FROM outbox WHERE state = 'PENDING'")
                .fetch_one(&self.reader)
                .await?;
        let (refused, dead) = sqlx::query_as(OPEN_ITEMS_SQL)
            .fetch_one(&self.reader)
            .await?;
        Ok(OutboxStats {
            pending,
            oldest_created_at: oldest.map(|t| t.0),
            refused,
            dead,
        })
    }

    async fn outbox_backlog_by_partner(&self) -> StoreResult<Vec<PartnerBacklog>> {
        // Times are fixed-width text, so min() is the earliest.
        let rows: Vec<(String, i64, Option<Ts>)> = sqlx::query_as(
            "SELECT partner_id, count(*), min(created_at) FROM outbox \
             WHERE state = 'PENDING' GROUP BY partner_id ORDER BY partner_id",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(partner_id, waiting, oldest)| PartnerBacklog {
                partner_id,
                waiting,
                oldest_created_at: oldest.map(|t| t.0),
            })
            .collect())
    }

    async fn outbox_for_payment(&self, payment_id: Uuid) -> StoreResult<Vec<OutboxMessage>> {
        let rows = sqlx::query_as::<_, OutboxRow>(
            "SELECT * FROM outbox WHERE payment_id = $1 ORDER BY created_at, id",
        )
        .bind(Id(payment_id))
        .fetch_all(&self.reader)
        .await?;
        convert_all(rows)
    }

    async fn outbox_by_state(
        &self,
        state: OutboxState,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>> {
        let rows = sqlx::query_as::<_, OutboxRow>(
            "SELECT * FROM outbox WHERE state = $1 ORDER BY created_at, id LIMIT $2",
        )
        .bind(state.as_str())
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        convert_all(rows)
    }

    async fn retry_dead_letter(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.writer
            .write(move |conn| Box::pin(writes::retry_dead_letter(conn, id, now, expires_at)))
            .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        // Migrations run their own transactions: alone on the writer, between batches.
        self.writer
            .alone(|conn| {
                Box::pin(async move {
                    MIGRATOR.run_direct(conn).await?;
                    Ok(Written::Kept(()))
                })
            })
            .await
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
        let writer = one(&self.writer_pool);
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
        // The job cannot own `reversal_for`: it sends the payments it made UNKNOWN here and
        // waits, in its transaction, for their reversals (see `writes::recover`).
        let (made_unknown, unknown) = oneshot::channel();
        let (reversals, reversals_wanted) = oneshot::channel();
        let report = self.writer.write(move |conn| {
            Box::pin(writes::recover(
                conn,
                now,
                forwarded_before,
                matched_before,
                made_unknown,
                reversals_wanted,
            ))
        });
        // Nothing arrives when nothing was made UNKNOWN (or the job failed first).
        if let Ok(unknown) = unknown.await {
            let _ = reversals.send(unknown.iter().map(reversal_for).collect());
        }
        report.await
    }
}

#[async_trait]
impl TimelineStore for SqliteStore {
    async fn record_events(&self, events: &[NewEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        self.writer
            .write(move |conn| Box::pin(writes::record_events(conn, events)))
            .await
    }

    async fn payment_timeline(
        &self,
        payment_id: Uuid,
        tran_id: &str,
    ) -> StoreResult<Vec<EventRecord>> {
        let rows = sqlx::query_as::<_, EventRow>(
            "SELECT * FROM payment_event WHERE payment_id = $1 \
             UNION ALL SELECT * FROM payment_event WHERE tran_id = $2 AND payment_id IS NULL \
             ORDER BY at, id",
        )
        .bind(Id(payment_id))
        .bind(tran_id)
        .fetch_all(&self.reader)
        .await?;
        convert_all(rows)
    }
}

#[async_trait]
impl BackOfficeStore for SqliteStore {
    async fn search_payments(&self, query: &PaymentQuery) -> StoreResult<Vec<PaymentRecord>> {
        let (sql, args) = payment_search_sql(query);
        let mut q = sqlx::query_as::<_, PaymentRow>(&sql);
        for arg in args {
            q = match arg {
                Arg::Text(v) => q.bind(v),
                Arg::Time(v) => q.bind(v),
                Arg::Id(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
            };
        }
        convert_all(q.fetch_all(&self.reader).await?)
    }

    async fn settled_payments(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        partner_id: Option<&str>,
    ) -> StoreResult<Vec<SettledPayment>> {
        let sql = format!(
            "{} ORDER BY p.created_at, p.id",
            settled_sql(PARTNER_IS_NULL)
        );
        let rows = sqlx::query_as::<_, SettledRow>(&sql)
            .bind(Ts(from))
            .bind(Ts(to))
            .bind(partner_id)
            .fetch_all(&self.reader)
            .await?;
        convert_all(rows)
    }

    async fn settlement_groups(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        partner_id: Option<&str>,
    ) -> StoreResult<Vec<SettlementGroup>> {
        let sql = settlement_groups_sql(&settled_sql(PARTNER_IS_NULL), "");
        let rows = sqlx::query_as::<_, SettlementGroupRow>(&sql)
            .bind(Ts(from))
            .bind(Ts(to))
            .bind(partner_id)
            .fetch_all(&self.reader)
            .await?;
        convert_all(rows)
    }

    async fn state_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<StateCounts> {
        let payments = sqlx::query_as::<_, (String, i64)>(super::admin::PAYMENT_COUNTS_SQL)
            .bind(Ts(from))
            .bind(Ts(to))
            .fetch_all(&self.reader)
            .await?;
        let outbox = sqlx::query_as::<_, (String, i64)>(super::admin::OUTBOX_COUNTS_SQL)
            .fetch_all(&self.reader)
            .await?;
        super::admin::state_counts(payments, outbox)
    }

    async fn purge(
        &self,
        what: Purge,
        before: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Option<u64>> {
        self.writer
            .write(move |conn| Box::pin(writes::purge(conn, what, before, limit)))
            .await
    }
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
