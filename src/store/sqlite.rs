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
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Connection;
use sqlx::SqlitePool;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::reads::{self, Arg, Decoded, Dialect, Reader};
use super::*;
use crate::domain::PaymentState;

mod checkpoint;
mod events;
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
/// The writer's page cache, in KiB (a negative `cache_size`). SQLite's default is 2 MiB per
/// connection; the writer inserts into indexes keyed by ids that come in no order (the POS's
/// and partners' message ids; the hub's own were random until they were time-ordered), so
/// with 2 MiB most pages it touched were read back from the operating system's cache, one
/// system call and copy each (a profile of the writer's thread under load; BENCHMARKS.md,
/// issue 14, fifth round). The readers keep the default.
const WRITER_CACHE_SIZE: &str = "-65536";

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
        // temp_store: the statement journals of the writer's per-job savepoints, and any
        // sort, stay in memory instead of spilling to temporary files.
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .pragma("temp_store", "memory");
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
            .connect_with(
                options
                    .clone()
                    .pragma("cache_size", WRITER_CACHE_SIZE)
                    .pragma("wal_autocheckpoint", checkpoint::WRITER_BACKSTOP_PAGES),
            )
            .await?;
        let checkpoints = SqliteConnection::connect_with(&options).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .acquire_timeout(READ_ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        let writer = Writer::start(writer_pool.clone(), WRITE_ACQUIRE_TIMEOUT);
        checkpoint::start(checkpoints, writer.commits());
        Ok(Self {
            writer,
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
        latest_payment_sql: "SELECT * FROM payment WHERE tran_id = $1 \
             ORDER BY created_at DESC, rowid DESC LIMIT 1",
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
        let code = code.clone();
        self.writer
            .write(move |conn| Box::pin(writes::insert_qr_code(conn, code)))
            .await
    }

    async fn qr_code(&self, tran_id: &str) -> StoreResult<Option<QrCodeRecord>> {
        reads::qr_code(self, tran_id).await
    }

    async fn insert_payment(&self, payment: &NewPayment) -> StoreResult<NewPaymentOutcome> {
        let payment = payment.clone();
        self.writer
            .write(move |conn| Box::pin(writes::insert_payment(conn, payment)))
            .await
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

    async fn finish_deliveries(&self, finished: &[FinishedDelivery]) -> StoreResult<Vec<bool>> {
        let finished = finished.to_vec();
        self.writer
            .write(move |conn| Box::pin(writes::finish_deliveries(conn, finished)))
            .await
    }

    async fn dead_letter_expired(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.writer
            .write(move |conn| Box::pin(writes::dead_letter_expired(conn, now)))
            .await
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
        if !self.writer.is_running() {
            return Err(StoreError::WriteNotStored(std::sync::Arc::new(
                sqlx::Error::PoolClosed,
            )));
        }
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
        reads::payment_timeline(self, reads::TIMELINE_BY_TRAN_SQL, payment_id, tran_id).await
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
        self.writer
            .write(move |conn| Box::pin(writes::purge(conn, what, before, limit)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::{admin, is_in_memory, reads, PaymentStore, SqliteStore, Store};

    /// The steps of a statement's plan (`EXPLAIN QUERY PLAN`), one line each.
    async fn plan(store: &SqliteStore, sql: &str) -> Vec<String> {
        sqlx::query_as::<_, (i64, i64, i64, String)>(&format!("EXPLAIN QUERY PLAN {sql}"))
            .fetch_all(&store.reader)
            .await
            .expect("plan")
            .into_iter()
            .map(|(_, _, _, step)| step)
            .collect()
    }

    /// A flow records eight events in the one writer: each costs one index entry and no
    /// look-up of its payment (migration 0010), and what reads or deletes events still finds
    /// them through an index or walks the ids in order, never searching the whole table.
    #[tokio::test]
    async fn events_cost_one_index_entry_and_are_never_searched_for() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("hub.db").display());
        let store = SqliteStore::connect(&url).await.expect("store");
        store.migrate().await.expect("migrate");

        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'payment_event'",
        )
        .fetch_all(&store.reader)
        .await
        .expect("indexes");
        assert_eq!(indexes, ["payment_event_tran_id_at_idx"]);
        let keys: Vec<String> =
            sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_list('payment_event')")
                .fetch_all(&store.reader)
                .await
                .expect("foreign keys");
        assert!(keys.is_empty(), "{keys:?}");

        let by_tran_id =
            "SEARCH payment_event USING INDEX payment_event_tran_id_at_idx (tran_id=?)";
        let timeline = plan(&store, reads::TIMELINE_BY_TRAN_SQL).await;
        assert!(timeline.iter().any(|s| s == by_tran_id), "{timeline:?}");
        let [events, ..] = &admin::purge_payments_sql("SELECT value FROM json_each($1)", false)[..]
        else {
            panic!("no statements")
        };
        let purge_payment = plan(&store, events).await;
        assert!(
            purge_payment.iter().any(|s| s == by_tran_id),
            "{purge_payment:?}"
        );
        // The age purge walks ids in order and stops at its batch's size: no sort of every
        // old event first.
        let purge_old = plan(&store, admin::PURGE_EVENTS_SQL).await;
        assert!(
            !purge_old.iter().any(|s| s.contains("TEMP B-TREE")),
            "{purge_old:?}"
        );
        for steps in [&timeline, &purge_payment] {
            assert!(
                !steps.iter().any(|s| s.starts_with("SCAN payment_event")),
                "{steps:?}"
            );
        }
        assert!(
            !purge_old
                .iter()
                .any(|s| s.starts_with("SCAN payment_event USING")),
            "{purge_old:?}"
        );
    }

    /// The WAL is copied into the database file by a task of its own soon after the writer
    /// commits, not by the commit that takes the WAL past a threshold: the writer's own
    /// threshold is only a backstop, far above what this test writes.
    #[tokio::test]
    async fn the_wal_is_checkpointed_off_the_writer_soon_after_it_commits() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("hub.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", file.display()))
            .await
            .expect("store");
        store.migrate().await.expect("migrate");
        let at = chrono::DateTime::UNIX_EPOCH;
        for n in 0..20 {
            let code = super::QrCodeRecord {
                tran_id: format!("t{n}"),
                client_id: "pos".into(),
                message_id: format!("m{n}"),
                scheme: "EMV".into(),
                payload: "000201".into(),
                created_at: at,
                expires_at: at,
                terms: crate::domain::CodeTerms::default(),
            };
            store.insert_qr_code(&code).await.expect("code");
        }
        let backstop: i64 = store
            .writer
            .write(|conn| {
                Box::pin(async move {
                    let pages = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
                        .fetch_one(conn)
                        .await?;
                    Ok(super::Written::Undone(pages))
                })
            })
            .await
            .expect("threshold");
        assert_eq!(
            backstop.to_string(),
            super::checkpoint::WRITER_BACKSTOP_PAGES
        );

        // The database's size as its readers see it (through the WAL) is in the file only
        // once a checkpoint copied every page the migrations and the codes wrote.
        let (pages, page_size): (i64, i64) =
            sqlx::query_as("SELECT page_count, page_size FROM pragma_page_count, pragma_page_size")
                .fetch_one(&store.reader)
                .await
                .expect("size");
        let logical = u64::try_from(pages * page_size).expect("size");
        let mut copied = 0;
        for _ in 0..200 {
            copied = std::fs::metadata(&file).expect("file").len();
            if copied == logical {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(copied, logical, "the WAL was not checkpointed");
    }

    #[test]
    fn in_memory_urls_are_recognised() {
        assert!(is_in_memory("sqlite::memory:"));
        assert!(is_in_memory("sqlite://?mode=memory"));
        assert!(!is_in_memory("sqlite:///tmp/x.db"));
        assert!(!is_in_memory("sqlite://data/qrhub.db"));
    }
}
