//! The store on PostgreSQL: the production backend, safe for several hub instances.
//!
//! Every state change is one `UPDATE … WHERE state = $from` (row locks make concurrent
//! compare-and-sets serialise, and the loser sees the new state and matches nothing);
//! multi-step changes run in one transaction at READ COMMITTED; outbox rows are leased with
//! `FOR UPDATE SKIP LOCKED` so that instances never claim the same row.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnection, PgPoolOptions};
use sqlx::Connection;
use sqlx::PgPool;
use uuid::Uuid;

use super::grouped::{Group, GroupWrite};
use super::reads::{self, Arg, Decoded, Dialect, Reader};
use super::rows::{convert_all, delivery_columns, OutboxRow, PaymentRow};
use super::*;
use crate::domain::PaymentState;
use crate::model::text::storable;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a query waits for a free connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    peers: Arc<Peers>,
    /// New QR codes, inserted many to a statement (every flow starts with one).
    qr_codes: Group<QrCodeInserts>,
    /// Partners' answers that queue nothing, recorded many to a statement.
    answers: Group<AnswerRecords>,
    /// POS advices (confirmations, reversals), applied many to a statement.
    advices: Group<AdviceApplications>,
    /// New payments, inserted many to a statement.
    payments: Group<PaymentInserts>,
    /// Scans' claims of waiting payments, made many to a statement.
    claims: Group<ScanClaims>,
}

/// At most this many writes share a statement: about as many as the POS lanes one instance
/// serves at once.
const QR_CODES_PER_INSERT: usize = 64;
/// Writes waiting for their group before their callers write their own.
const QR_CODES_QUEUED: usize = 4096;

/// Sorts a group's writes by the payment each locks, so that two groups (of answers, of
/// advices) that lock some of the same payments take them in the same order and never wait
/// for each other in a circle; returns, for each position after the sort, the position the
/// write had before. (Claims know their tranIds, not their payments: their statement locks
/// the payments it found in the same order.)
fn in_lock_order<T>(items: &mut Vec<&T>, payment: impl Fn(&T) -> Uuid) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| payment(items[i]));
    *items = order.iter().map(|&i| items[i]).collect();
    order
}

/// Inserts QR codes, many in one statement ([`Group`]).
#[derive(Debug)]
struct QrCodeInserts {
    pool: PgPool,
}

#[async_trait]
impl GroupWrite for QrCodeInserts {
    type Item = QrCodeRecord;
    type Answer = InsertOutcome;

    /// A code whose (client, message id) is already stored, or repeated earlier in `codes`,
    /// is a duplicate; its tranId (freshly minted, so unique) tells which rows went in.
    async fn write(&self, codes: &[QrCodeRecord]) -> StoreResult<Vec<InsertOutcome>> {
        let column = |f: fn(&QrCodeRecord) -> &str| codes.iter().map(f).collect::<Vec<_>>();
        let inserted: Vec<String> = sqlx::query_scalar(
            "INSERT INTO qr_code (tran_id, client_id, message_id, scheme, payload, created_at, \
             expires_at, amount_minor, currency, part_payment_allowed, over_payment_allowed) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::timestamptz[], $7::timestamptz[], $8::int8[], $9::text[], $10::bool[], \
             $11::bool[]) ON CONFLICT (client_id, message_id) DO NOTHING RETURNING tran_id",
        )
        .bind(column(|c| &c.tran_id))
        .bind(column(|c| &c.client_id))
        .bind(column(|c| &c.message_id))
        .bind(column(|c| &c.scheme))
        .bind(column(|c| &c.payload))
        .bind(codes.iter().map(|c| c.created_at).collect::<Vec<_>>())
        .bind(codes.iter().map(|c| c.expires_at).collect::<Vec<_>>())
        .bind(
            codes
                .iter()
                .map(|c| c.terms.amount.as_ref().map(|(a, _)| *a))
                .collect::<Vec<_>>(),
        )
        .bind(
            codes
                .iter()
                .map(|c| c.terms.amount.as_ref().map(|(_, c)| c.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            codes
                .iter()
                .map(|c| c.terms.part_payment_allowed)
                .collect::<Vec<_>>(),
        )
        .bind(
            codes
                .iter()
                .map(|c| c.terms.over_payment_allowed)
                .collect::<Vec<_>>(),
        )
        .fetch_all(&self.pool)
        .await?;
        let inserted: std::collections::HashSet<&str> =
            inserted.iter().map(String::as_str).collect();
        Ok(codes
            .iter()
            .map(|c| {
                if inserted.contains(c.tran_id.as_str()) {
                    InsertOutcome::Inserted
                } else {
                    InsertOutcome::Duplicate
                }
            })
            .collect())
    }
}

/// Whether another hub instance listens for wake-ups on this database. A `NOTIFY` costs
/// every commit that carries one a turn at a lock that all such commits in the cluster take
/// one after another, and each listener reads every notification: a hub alone sends none.
#[derive(Debug)]
struct Peers {
    /// True until a look finds no other listener: a wake-up too many costs little, one too
    /// few leaves another instance's waiter asleep until its deadline.
    others: AtomicBool,
    /// Hellos seen; a look that started before the latest hello does not clear `others`.
    hellos: AtomicU64,
}

impl Peers {
    fn hello(&self) {
        self.hellos.fetch_add(1, Ordering::SeqCst);
        self.others.store(true, Ordering::SeqCst);
    }
}

/// What an instance announces once it listens, so that instances already listening know at
/// once that they are no longer alone (rather than at their next look).
const HELLO: &str = "hello";

/// How often an instance looks for other listeners.
const PEER_LOOK: Duration = Duration::from_secs(1);

/// How long a connection may sit idle in the pool before it is tested on its way out.
///
/// sqlx tests every connection it hands out (a round trip) unless told otherwise, so at load
/// each statement cost PostgreSQL one more wake-up, besides the test sqlx always runs when a
/// connection comes back. A connection used a moment ago is alive, unless the server went
/// away since (see [`TEST_ALL_AFTER_A_LOSS`]). One idle longer may have been cut (a database
/// restart, a proxy's idle timeout): it is tested and, if dead, replaced, as before.
const TEST_AFTER_IDLE: Duration = Duration::from_secs(1);

/// How long every connection is tested after a statement found its connection gone.
///
/// A restart or a failover cuts all of a pool's connections at once; under load they were all
/// used within the last second, so without this each would fail one statement (a partner's
/// answer among them, which recovery then reverses). The first failure makes the pool test
/// the others before use until they have been replaced.
const TEST_ALL_AFTER_A_LOSS: Duration = Duration::from_secs(5);

/// When a statement of this process last found its PostgreSQL connection gone. A hub holds
/// one PostgreSQL pool; a second one in the process (the benchmark's reference, a test's) only
/// tests its connections for a few seconds more than it needed to.
static CONNECTION_LOST_AT: Mutex<Option<Instant>> = Mutex::new(None);

/// Notes `error` if it says the connection is gone: an I/O or protocol failure, a connection
/// exception (class 08), or the server shutting down or not yet accepting (57P01-57P03).
pub(crate) fn note_if_connection_lost(error: &sqlx::Error) {
    let lost = match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(e) => e
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    };
    if lost {
        *CONNECTION_LOST_AT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
    }
}

fn connection_lost_recently() -> bool {
    CONNECTION_LOST_AT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .is_some_and(|at| at.elapsed() < TEST_ALL_AFTER_A_LOSS)
}

/// The pool settings of the hub's PostgreSQL store; the benchmark's reference server uses
/// them too, so the two are compared like for like.
pub(crate) fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= TEST_AFTER_IDLE || connection_lost_recently() {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

impl PostgresStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = pool_options(max_connections).connect(url).await?;
        let qr_codes = Group::start(
            QrCodeInserts { pool: pool.clone() },
            QR_CODES_PER_INSERT,
            QR_CODES_QUEUED,
        );
        let answers = Group::start(
            AnswerRecords { pool: pool.clone() },
            QR_CODES_PER_INSERT,
            QR_CODES_QUEUED,
        );
        let advices = Group::start(
            AdviceApplications { pool: pool.clone() },
            QR_CODES_PER_INSERT,
            QR_CODES_QUEUED,
        );
        let payments = Group::start(
            PaymentInserts { pool: pool.clone() },
            QR_CODES_PER_INSERT,
            QR_CODES_QUEUED,
        );
        let claims = Group::start(
            ScanClaims { pool: pool.clone() },
            QR_CODES_PER_INSERT,
            QR_CODES_QUEUED,
        );
        Ok(Self {
            pool,
            qr_codes,
            answers,
            advices,
            payments,
            claims,
            peers: Arc::new(Peers {
                others: AtomicBool::new(true),
                hellos: AtomicU64::new(0),
            }),
        })
    }

    /// `key`, when another instance may be listening for it; `None` when this hub is alone.
    fn wake<'k>(&self, key: Option<&'k str>) -> Option<&'k str> {
        key.filter(|_| self.peers.others.load(Ordering::SeqCst))
    }
}

/// Other sessions of this database listening for wake-ups: sqlx's listener leaves its
/// `LISTEN` as the session's last statement. A session whose statement this role may not
/// read counts as listening.
async fn other_listeners(pool: &PgPool, own_pid: i32) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> $1 AND (query = $2 OR query = '<insufficient privilege>')",
    )
    .bind(own_pid)
    .bind(format!("LISTEN \"{WAKE_CHANNEL}\""))
    .fetch_one(pool)
    .await?)
}

/// The channel hub instances announce wake-ups on.
const WAKE_CHANNEL: &str = "qrhub_wake";

/// Whether `err` violates the named constraint or unique index.
fn violates(err: &sqlx::Error, constraint: &str) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.constraint() == Some(constraint))
}

async fn insert_outbox(conn: &mut PgConnection, msg: &NewOutboxMessage) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO outbox (id, payment_id, partner_id, kind, message_id, body, state, \
         attempts, next_attempt_at, created_at, expires_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $10, $11, $8, $9, $8)",
    )
    .bind(msg.id)
    .bind(msg.payment_id)
    .bind(&msg.partner_id)
    .bind(msg.kind.as_str())
    .bind(&msg.message_id)
    .bind(&msg.body)
    .bind(OutboxState::Pending.as_str())
    .bind(msg.created_at)
    .bind(msg.expires_at)
    .bind(msg.initial_attempts())
    .bind(msg.initial_due())
    .execute(conn)
    .await?;
    Ok(())
}

/// Timeline events as one array per column, for one `UNNEST` insert (a single statement
/// whatever the number of events, and one cached prepared statement).
#[derive(Debug, Default, Clone)]
struct EventColumns {
    payment_id: Vec<Option<Uuid>>,
    tran_id: Vec<String>,
    at: Vec<DateTime<Utc>>,
    kind: Vec<String>,
    direction: Vec<String>,
    counterparty: Vec<String>,
    message_id: Vec<Option<String>>,
    http_status: Vec<Option<i32>>,
    outcome: Vec<String>,
    body: Vec<Option<String>>,
}

impl EventColumns {
    /// Appends `other`'s events after these.
    fn append(&mut self, other: &mut EventColumns) {
        self.payment_id.append(&mut other.payment_id);
        self.tran_id.append(&mut other.tran_id);
        self.at.append(&mut other.at);
        self.kind.append(&mut other.kind);
        self.direction.append(&mut other.direction);
        self.counterparty.append(&mut other.counterparty);
        self.message_id.append(&mut other.message_id);
        self.http_status.append(&mut other.http_status);
        self.outcome.append(&mut other.outcome);
        self.body.append(&mut other.body);
    }

    /// `events`, each of payment `payment_id` unless it names one.
    fn of_payment(events: &[NewEvent], payment_id: Uuid) -> Self {
        let mut columns = Self::of(events);
        for id in &mut columns.payment_id {
            id.get_or_insert(payment_id);
        }
        columns
    }

    fn of(events: &[NewEvent]) -> Self {
        Self {
            payment_id: events.iter().map(|e| e.payment_id).collect(),
            // NUL cannot be kept in `text`: an event is a record of what happened, so a
            // stray one is replaced rather than failing the event (and its whole batch).
            tran_id: events
                .iter()
                .map(|e| storable(&e.tran_id).into_owned())
                .collect(),
            at: events.iter().map(|e| e.at).collect(),
            kind: events.iter().map(|e| e.kind.to_owned()).collect(),
            direction: events
                .iter()
                .map(|e| e.direction.as_str().to_owned())
                .collect(),
            counterparty: events
                .iter()
                .map(|e| storable(&e.counterparty).into_owned())
                .collect(),
            message_id: events
                .iter()
                .map(|e| e.message_id.as_deref().map(|m| storable(m).into_owned()))
                .collect(),
            http_status: events.iter().map(|e| e.http_status).collect(),
            outcome: events
                .iter()
                .map(|e| storable(&e.outcome).into_owned())
                .collect(),
            body: events
                .iter()
                .map(|e| e.body.as_ref().map(|b| b.to_string()))
                .collect(),
        }
    }
}

/// Binds [`EventColumns`] to the ten placeholders after those already bound.
macro_rules! bind_events {
    ($query:expr, $c:expr) => {
        $query
            .bind($c.payment_id)
            .bind($c.tran_id)
            .bind($c.at)
            .bind($c.kind)
            .bind($c.direction)
            .bind($c.counterparty)
            .bind($c.message_id)
            .bind($c.http_status)
            .bind($c.outcome)
            .bind($c.body)
    };
}

/// The event columns of `payment_event`, and the `UNNEST` of ten array placeholders
/// starting at `$first` that [`bind_events`] fills.
fn events_unnest(first: usize) -> String {
    events_unnest_with(first, None)
}

/// [`events_unnest`], with an eleventh array placeholder of `int8` after the ten when
/// `extra` names its column (which of a group's writes each event belongs to).
fn events_unnest_with(first: usize, extra: Option<&str>) -> String {
    let types = [
        "uuid",
        "text",
        "timestamptz",
        "text",
        "text",
        "text",
        "text",
        "int4",
        "text",
        "text",
    ];
    let arrays: Vec<String> = types
        .iter()
        .chain(extra.map(|_| &"int8"))
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", first + i))
        .collect();
    format!(
        "UNNEST({}) AS e(payment_id, tran_id, at, kind, direction, counterparty, message_id, \
         http_status, outcome, body{})",
        arrays.join(", "),
        extra.map(|c| format!(", {c}")).unwrap_or_default()
    )
}

const EVENT_COLUMNS: &str =
    "payment_id, tran_id, at, kind, direction, counterparty, message_id, http_status, outcome, body";

async fn insert_events(conn: &mut PgConnection, events: &[NewEvent]) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO payment_event ({EVENT_COLUMNS}) SELECT e.payment_id, e.tran_id, e.at, \
         e.kind, e.direction, e.counterparty, e.message_id, e.http_status, e.outcome, \
         e.body::json FROM {}",
        events_unnest(1)
    );
    let columns = EventColumns::of(events);
    bind_events!(sqlx::query(&sql), columns)
        .execute(conn)
        .await?;
    Ok(())
}

/// What rides with a change in the same statement: an outbox row, timeline events and a
/// wake-up for the other instances. Each is a data-modifying CTE (or, for the wake-up, a
/// `pg_notify` the final `SELECT` reads) over the change's `RETURNING id`, so it happens only
/// if the change did, and all of it is one round trip and one commit.
struct Riders<'a> {
    outbox: Option<&'a NewOutboxMessage>,
    events: &'a [NewEvent],
    wake: Option<&'a str>,
}

impl<'a> Riders<'a> {
    /// `, ob AS (…), ev AS (…), wk AS (…)` over `source`, placeholders from `$first`.
    fn ctes(&self, source: &str, first: usize) -> String {
        let mut sql = String::new();
        let mut next = first;
        if self.outbox.is_some() {
            let p: Vec<String> = (next..next + 11).map(|i| format!("${i}")).collect();
            sql.push_str(&format!(
                ", ob AS (INSERT INTO outbox (id, payment_id, partner_id, kind, message_id, body, \
                 state, attempts, next_attempt_at, created_at, expires_at, updated_at) \
                 SELECT {p0}, {p1}, {p2}, {p3}, {p4}, {p5}, {p6}, {p9}, {p10}, {p7}, {p8}, {p7} \
                 FROM {source})",
                p0 = p[0],
                p1 = p[1],
                p2 = p[2],
                p3 = p[3],
                p4 = p[4],
                p5 = p[5],
                p6 = p[6],
                p7 = p[7],
                p8 = p[8],
                p9 = p[9],
                p10 = p[10],
            ));
            next += 11;
        }
        if !self.events.is_empty() {
            sql.push_str(&format!(
                ", ev AS (INSERT INTO payment_event ({EVENT_COLUMNS}) \
                 SELECT COALESCE(e.payment_id, {source}.id), e.tran_id, e.at, e.kind, \
                 e.direction, e.counterparty, e.message_id, e.http_status, e.outcome, \
                 e.body::json FROM {source}, {})",
                events_unnest(next)
            ));
            next += 10;
        }
        if self.wake.is_some() {
            sql.push_str(&format!(
                ", wk AS (SELECT pg_notify('{WAKE_CHANNEL}', ${next}) FROM {source})"
            ));
        }
        sql
    }

    /// The final `SELECT`'s extra column that makes the wake-up happen (a plain `SELECT`
    /// CTE runs only when read).
    fn select(&self) -> &'static str {
        if self.wake.is_some() {
            ", (SELECT count(*) FROM wk) AS woken"
        } else {
            ""
        }
    }

    /// Binds the placeholders [`Riders::ctes`] used, in its order.
    /// The values are bound by reference: nothing of the message is copied.
    fn bind<'q>(
        &self,
        mut query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>
    where
        'a: 'q,
    {
        if let Some(msg) = self.outbox {
            query = query
                .bind(msg.id)
                .bind(msg.payment_id)
                .bind(&msg.partner_id)
                .bind(msg.kind.as_str())
                .bind(&msg.message_id)
                .bind(&msg.body)
                .bind(OutboxState::Pending.as_str())
                .bind(msg.created_at)
                .bind(msg.expires_at)
                .bind(msg.initial_attempts())
                .bind(msg.initial_due());
        }
        if !self.events.is_empty() {
            let columns = EventColumns::of(self.events);
            query = bind_events!(query, columns);
        }
        if let Some(key) = self.wake {
            query = query.bind(key);
        }
        query
    }
}

/// A count the final `SELECT` of a chained statement reports.
fn count(row: &sqlx::postgres::PgRow, column: &str) -> StoreResult<i64> {
    use sqlx::Row;
    Ok(row.try_get::<i64, _>(column)?)
}

/// The shared reads ([`reads`]) on PostgreSQL, on the pool.
#[async_trait]
impl Reader for PostgresStore {
    const DIALECT: Dialect = Dialect {
        tiebreak: "id",
        text_cast: "::text",
        sum_cast: "::bigint",
        // A tranId's payments are read in a subquery the planner cannot merge (`OFFSET 0`)
        // and sorted after: otherwise, when its statistics say a tranId has many payments,
        // it walks `payment_created_at_id_idx` newest first until one matches, which for a
        // tranId without a payment (a scan before its pay) is every payment there is.
        scan_context_sql: "SELECT q.expires_at, p.state, p.partner_id, p.scan_message_id, \
             p.pos_gone_at IS NOT NULL FROM qr_code q \
             LEFT JOIN LATERAL (SELECT state, partner_id, scan_message_id, pos_gone_at \
             FROM (SELECT state, partner_id, scan_message_id, pos_gone_at, created_at, id \
             FROM payment WHERE tran_id = q.tran_id OFFSET 0) t \
             ORDER BY created_at DESC, id DESC LIMIT 1) p ON true WHERE q.tran_id = $1",
        latest_payment_sql: "SELECT * FROM (SELECT * FROM payment WHERE tran_id = $1 \
             OFFSET 0) p ORDER BY created_at DESC, id DESC LIMIT 1",
    };

    async fn fetch_all<R: Decoded>(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<R>> {
        Ok(bound(sql, args).fetch_all(&self.pool).await?)
    }

    async fn fetch_optional<R: Decoded>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> StoreResult<Option<R>> {
        Ok(bound(sql, args).fetch_optional(&self.pool).await?)
    }
}

/// `sql` with `args` bound to its placeholders in order.
fn bound<'q, R: Decoded>(
    sql: &'q str,
    args: &'q [Arg<'q>],
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, R, sqlx::postgres::PgArguments> {
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
impl NotificationStore for PostgresStore {
    async fn announce(&self, key: &str) -> StoreResult<()> {
        if self.wake(Some(key)).is_none() {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(WAKE_CHANNEL)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn announcements(&self) -> StoreResult<Option<Announcements>> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        // Asked before LISTEN, which must stay the session's last statement (see
        // other_listeners).
        let own_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut listener)
            .await?;
        listener.listen(WAKE_CHANNEL).await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(WAKE_CHANNEL)
            .bind(HELLO)
            .execute(&self.pool)
            .await?;
        // Looks for other listeners until the hub stops listening. A listener that
        // reconnected has another pid and counts as another instance: wake-ups are then
        // announced, as before this existed.
        let (pool, peers) = (self.pool.clone(), Arc::clone(&self.peers));
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        let watched = tx.clone();
        // QRHUB_BENCH_ALWAYS_NOTIFY=1 exists only so that the benchmark can measure what the
        // wake-ups cost a hub alone (BENCHMARKS.md): it never looks, and always announces.
        let looks = std::env::var_os("QRHUB_BENCH_ALWAYS_NOTIFY").is_none();
        tokio::spawn(async move {
            if !looks {
                return;
            }
            let mut look = tokio::time::interval(PEER_LOOK);
            while !watched.is_closed() {
                look.tick().await;
                let hellos = peers.hellos.load(Ordering::SeqCst);
                let alone = match other_listeners(&pool, own_pid).await {
                    Ok(n) => n == 0,
                    Err(e) => {
                        tracing::debug!(error = %e, "could not look for other instances");
                        false
                    }
                };
                // A hello since the look began wins over what the look saw.
                if !(alone && peers.hellos.load(Ordering::SeqCst) == hellos) {
                    peers.others.store(true, Ordering::SeqCst);
                } else {
                    peers.others.store(false, Ordering::SeqCst);
                }
            }
        });
        let peers = Arc::clone(&self.peers);
        tokio::spawn(async move {
            loop {
                // recv() reconnects by itself after a lost connection; what was announced
                // meanwhile is lost, and the waiters' deadlines cover it.
                match listener.recv().await {
                    Ok(notification) if notification.payload() == HELLO => peers.hello(),
                    Ok(notification) => {
                        if tx.send(notification.payload().to_owned()).await.is_err() {
                            return; // the hub stopped listening
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the wake-up channel; reconnecting");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        Ok(Some(rx))
    }
}

/// A partner's answer waiting for [`AnswerRecords`], its columns ready to bind.
#[derive(Debug)]
struct QueuedAnswer {
    payment_id: Uuid,
    to: &'static str,
    status: Option<i32>,
    /// The partner's answer as JSON text (read as `jsonb`, which it becomes anyway).
    body: Option<String>,
    at: DateTime<Utc>,
    expected_reversed_by_pos: bool,
    approved_minor: Option<i64>,
    amount_refused: bool,
    events: EventColumns,
    wake: Option<String>,
}

impl QueuedAnswer {
    fn of(answer: &PartnerAnswerRecord, wake: Option<&str>) -> Self {
        let events = EventColumns::of_payment(&answer.events, answer.payment_id);
        Self {
            payment_id: answer.payment_id,
            to: answer.to.as_str(),
            status: answer.status,
            body: answer.body.as_ref().map(|b| b.to_string()),
            at: answer.at,
            expected_reversed_by_pos: answer.expected_reversed_by_pos,
            approved_minor: answer.approved_minor,
            amount_refused: answer.amount_refused,
            events,
            wake: wake.map(str::to_owned),
        }
    }
}

/// Records partners' answers, many in one statement ([`Group`]): each is the compare-and-set
/// of [`PaymentStore::record_partner_answer`] (FORWARDED, and the POS's reversal as the
/// caller knew it), with its events and wake-up if it wins. Answers that queue a reversal are
/// recorded alone. Two answers for one payment in a group are decided one after the other,
/// as they would be alone: the later ones in statements of their own, after the group's.
#[derive(Debug)]
struct AnswerRecords {
    pool: PgPool,
}

#[async_trait]
impl GroupWrite for AnswerRecords {
    type Item = QueuedAnswer;
    type Answer = bool;

    async fn write(&self, answers: &[QueuedAnswer]) -> StoreResult<Vec<bool>> {
        self.write_distinct(answers.iter().collect()).await
    }

    fn repeats(&self, answers: &[QueuedAnswer]) -> Vec<bool> {
        let mut seen = std::collections::HashSet::new();
        answers.iter().map(|a| !seen.insert(a.payment_id)).collect()
    }
}

impl AnswerRecords {
    /// [`GroupWrite::write`] for answers to distinct payments.
    async fn write_distinct(&self, mut answers: Vec<&QueuedAnswer>) -> StoreResult<Vec<bool>> {
        let order = in_lock_order(&mut answers, |a| a.payment_id);
        let sql = format!(
            "WITH d AS (SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int4[], $4::text[], \
             $5::timestamptz[], $6::bool[], $7::int8[], $8::bool[], $9::text[]) \
             WITH ORDINALITY AS d(id, state, status, body, at, reversed_by_pos, \
             approved_minor, amount_refused, wake, ord)), \
             upd AS (UPDATE payment p SET state = d.state, partner_status = d.status, \
             partner_response = d.body::jsonb, updated_at = d.at, \
             approved_minor = d.approved_minor, amount_refused = d.amount_refused FROM d \
             WHERE p.id = d.id AND p.state = $10 AND p.reversed_by_pos = d.reversed_by_pos \
             RETURNING d.ord, d.wake), \
             ev AS (INSERT INTO payment_event ({EVENT_COLUMNS}) SELECT e.payment_id, \
             e.tran_id, e.at, e.kind, e.direction, e.counterparty, e.message_id, \
             e.http_status, e.outcome, e.body::json FROM {} JOIN upd ON upd.ord = e.ord), \
             wk AS (SELECT pg_notify('{WAKE_CHANNEL}', upd.wake) FROM upd \
             WHERE upd.wake IS NOT NULL) \
             SELECT upd.ord, (SELECT count(*) FROM wk) AS woken FROM upd",
            events_unnest_with(11, Some("ord"))
        );
        let mut events = EventColumns::default();
        let mut event_of = Vec::new();
        for (i, answer) in (1_i64..).zip(&answers) {
            event_of.extend(std::iter::repeat_n(i, answer.events.tran_id.len()));
            // Bound by value: each answer's events were turned into text when queued.
            events.append(&mut answer.events.clone());
        }
        let query = sqlx::query(&sql)
            .bind(answers.iter().map(|a| a.payment_id).collect::<Vec<_>>())
            .bind(answers.iter().map(|a| a.to).collect::<Vec<_>>())
            .bind(answers.iter().map(|a| a.status).collect::<Vec<_>>())
            .bind(
                answers
                    .iter()
                    .map(|a| a.body.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(answers.iter().map(|a| a.at).collect::<Vec<_>>())
            .bind(
                answers
                    .iter()
                    .map(|a| a.expected_reversed_by_pos)
                    .collect::<Vec<_>>(),
            )
            .bind(answers.iter().map(|a| a.approved_minor).collect::<Vec<_>>())
            .bind(answers.iter().map(|a| a.amount_refused).collect::<Vec<_>>())
            .bind(
                answers
                    .iter()
                    .map(|a| a.wake.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(PaymentState::Forwarded.as_str());
        let rows = bind_events!(query, events)
            .bind(event_of)
            .fetch_all(&self.pool)
            .await?;
        let mut changed = vec![false; answers.len()];
        for row in &rows {
            // The statement committed: a row no answer asked for is a bug to report, not
            // an answer to call lost.
            let ord = sqlx::Row::try_get::<i64, _>(row, "ord")?;
            let i = usize::try_from(ord - 1)
                .ok()
                .and_then(|k| order.get(k))
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "a group of {} answers returned a payment for answer {ord}",
                        answers.len()
                    ))
                })?;
            changed[*i] = true;
        }
        Ok(changed)
    }
}

/// A scan's claim waiting for [`ScanClaims`], its columns ready to bind.
#[derive(Debug)]
struct QueuedClaim {
    tran_id: String,
    to: &'static str,
    partner_id: String,
    partner_payment_token: Option<String>,
    scan_message_id: String,
    partner_message_id: String,
    at: DateTime<Utc>,
    events: EventColumns,
}

impl QueuedClaim {
    fn of(claim: &ScanClaim) -> Self {
        Self {
            tran_id: claim.tran_id.clone(),
            to: claim.to.as_str(),
            partner_id: claim.partner_id.clone(),
            partner_payment_token: claim.partner_payment_token.clone(),
            scan_message_id: claim.scan_message_id.clone(),
            partner_message_id: claim.partner_message_id.clone(),
            at: claim.at,
            events: EventColumns::of(&claim.events),
        }
    }
}

/// The compare of a scan's claim: the tranId's payment still waits for its scan.
const CLAIM_WHERE: &str = "state = 'WAITING_FOR_SCAN'";

/// Makes scans' claims, many in one statement ([`Group`]): each is the compare-and-set of
/// [`PaymentStore::claim_for_scan`] (the tranId's payment still WAITING_FOR_SCAN), with its
/// events if it wins. Every flow makes one, so alone it cost a statement and a commit a
/// flow, the last of the hot path's writes that did (BENCHMARKS.md, issue 14 ninth round).
/// Two claims of one tranId, or of one scan id, in a group are decided one after the other,
/// as they would be alone: the later ones in statements of their own, after the group's.
#[derive(Debug)]
struct ScanClaims {
    pool: PgPool,
}

#[async_trait]
impl GroupWrite for ScanClaims {
    type Item = QueuedClaim;
    /// Each claim's own: a payment row that cannot be read back fails only its claim, not
    /// the others that the same statement committed.
    type Answer = StoreResult<ScanClaimOutcome>;

    async fn write(&self, claims: &[QueuedClaim]) -> StoreResult<Vec<Self::Answer>> {
        match self.write_distinct(claims).await {
            // Alone (also each write of a refused group, one by one), a scan id another
            // payment holds is this claim's answer, as it always was.
            Err(StoreError::Database(e))
                if claims.len() == 1 && violates(&e, "payment_partner_scan_key") =>
            {
                Ok(vec![Ok(ScanClaimOutcome::ScanIdInUse)])
            }
            other => other,
        }
    }

    fn repeats(&self, claims: &[QueuedClaim]) -> Vec<bool> {
        let mut trans = std::collections::HashSet::new();
        let mut scans = std::collections::HashSet::new();
        claims
            .iter()
            .map(|c| {
                let tran = trans.insert(c.tran_id.as_str());
                let scan = scans.insert((c.partner_id.as_str(), c.scan_message_id.as_str()));
                !(tran && scan)
            })
            .collect()
    }
}

impl ScanClaims {
    /// One claim in a statement of its own: the WHERE is the compare, the SET the swap;
    /// the events ride along in the same statement (a data-modifying CTE) and exist only
    /// if the claim won. What a write that finds no other under way runs.
    async fn claim_alone(pool: &PgPool, claim: &ScanClaim) -> StoreResult<ScanClaimOutcome> {
        let update = format!(
            "UPDATE payment SET state = $2, partner_id = $3, \
             partner_payment_token = $4, scan_message_id = $5, partner_message_id = $6, \
             updated_at = $7 WHERE tran_id = $1 AND {CLAIM_WHERE} RETURNING *"
        );
        let sql = if claim.events.is_empty() {
            update
        } else {
            format!(
                "WITH claimed AS ({update}), ev AS (INSERT INTO payment_event ({EVENT_COLUMNS}) \
                 SELECT COALESCE(e.payment_id, claimed.id), e.tran_id, e.at, e.kind, \
                 e.direction, e.counterparty, e.message_id, e.http_status, e.outcome, \
                 e.body::json FROM claimed, {}) SELECT * FROM claimed",
                events_unnest(8)
            )
        };
        let query = sqlx::query_as::<_, PaymentRow>(&sql)
            .bind(&claim.tran_id)
            .bind(claim.to.as_str())
            .bind(&claim.partner_id)
            .bind(&claim.partner_payment_token)
            .bind(&claim.scan_message_id)
            .bind(&claim.partner_message_id)
            .bind(claim.at);
        let row = if claim.events.is_empty() {
            query.fetch_optional(pool).await
        } else {
            let columns = EventColumns::of(&claim.events);
            bind_events!(query, columns).fetch_optional(pool).await
        };
        match row {
            Ok(Some(row)) => Ok(ScanClaimOutcome::Claimed(row.try_into()?)),
            Ok(None) => Ok(ScanClaimOutcome::NothingWaiting),
            Err(e) if violates(&e, "payment_partner_scan_key") => Ok(ScanClaimOutcome::ScanIdInUse),
            Err(e) => Err(e.into()),
        }
    }

    /// [`GroupWrite::write`] for claims of distinct tranIds and scan ids.
    async fn write_distinct(
        &self,
        claims: &[QueuedClaim],
    ) -> StoreResult<Vec<StoreResult<ScanClaimOutcome>>> {
        // Each claim finds its payment through the tranId's index, in a subquery the
        // planner cannot merge (`OFFSET 0`): joined to the group's tranIds directly, the
        // planner hashed them against every payment whenever its statistics were young (a
        // new database's first minute, before autovacuum's first ANALYZE), 6 ms a group in
        // a 20 s benchmark. The payments found are then locked one by one in the order
        // of their ids, as the answers' and the advices' groups lock theirs, and only
        // those still waiting are updated, found by their keys as an array (a join, even
        // on the key, was hashed the same way).
        let sql = format!(
            "WITH d AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
             $5::text[], $6::text[], $7::timestamptz[]) WITH ORDINALITY AS d(tran_id, state, \
             partner_id, token, scan_message_id, partner_message_id, at, ord)), \
             w AS (SELECT d.*, t.id FROM d CROSS JOIN LATERAL (SELECT id FROM payment \
             WHERE tran_id = d.tran_id AND {CLAIM_WHERE} OFFSET 0) t), \
             locked AS (SELECT l.id FROM (SELECT id FROM w ORDER BY id OFFSET 0) o \
             CROSS JOIN LATERAL (SELECT id FROM payment WHERE id = o.id AND {CLAIM_WHERE} \
             FOR UPDATE) l), \
             claimed AS (UPDATE payment p SET state = w.state, partner_id = w.partner_id, \
             partner_payment_token = w.token, scan_message_id = w.scan_message_id, \
             partner_message_id = w.partner_message_id, updated_at = w.at FROM w \
             WHERE p.id = ANY (ARRAY(SELECT id FROM locked)) AND p.id = w.id \
             AND p.{CLAIM_WHERE} RETURNING p.*, w.ord), \
             ev AS (INSERT INTO payment_event ({EVENT_COLUMNS}) \
             SELECT COALESCE(e.payment_id, claimed.id), e.tran_id, e.at, e.kind, \
             e.direction, e.counterparty, e.message_id, e.http_status, e.outcome, \
             e.body::json FROM {} JOIN claimed ON claimed.ord = e.ord) \
             SELECT * FROM claimed",
            events_unnest_with(8, Some("ord"))
        );
        let mut events = EventColumns::default();
        let mut event_of = Vec::new();
        for (i, claim) in (1_i64..).zip(claims) {
            event_of.extend(std::iter::repeat_n(i, claim.events.tran_id.len()));
            // Bound by value: each claim's events were turned into text when queued.
            events.append(&mut claim.events.clone());
        }
        let column = |f: fn(&QueuedClaim) -> &str| claims.iter().map(f).collect::<Vec<_>>();
        let query = sqlx::query(&sql)
            .bind(column(|c| &c.tran_id))
            .bind(column(|c| c.to))
            .bind(column(|c| &c.partner_id))
            .bind(
                claims
                    .iter()
                    .map(|c| c.partner_payment_token.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(column(|c| &c.scan_message_id))
            .bind(column(|c| &c.partner_message_id))
            .bind(claims.iter().map(|c| c.at).collect::<Vec<_>>());
        let rows = bind_events!(query, events)
            .bind(event_of)
            .fetch_all(&self.pool)
            .await?;
        let mut outcomes: Vec<StoreResult<ScanClaimOutcome>> = claims
            .iter()
            .map(|_| Ok(ScanClaimOutcome::NothingWaiting))
            .collect();
        for row in &rows {
            // The statement committed: a row no claim asked for is a bug to report, not a
            // claim to answer "nothing waiting".
            let ord = sqlx::Row::try_get::<i64, _>(row, "ord")?;
            let outcome = usize::try_from(ord - 1)
                .ok()
                .and_then(|i| outcomes.get_mut(i))
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "a group of {} claims returned a payment for claim {ord}",
                        claims.len()
                    ))
                })?;
            *outcome = <PaymentRow as sqlx::FromRow<_>>::from_row(row)
                .map_err(StoreError::from)
                .and_then(PaymentRecord::try_from)
                .map(ScanClaimOutcome::Claimed);
        }
        Ok(outcomes)
    }
}

/// An advice waiting for [`AdviceApplications`], its columns ready to bind.
#[derive(Debug)]
struct QueuedAdvice {
    payment_id: Uuid,
    from: &'static str,
    to: &'static str,
    mark_reversed_by_pos: bool,
    /// Whether the payment's `updated_at` moves (its state or its reversal mark does).
    touched: bool,
    client_id: String,
    message_id: String,
    kind: &'static str,
    request_id: String,
    advice_payment_id: Option<Uuid>,
    /// The advice as JSON text (read as `jsonb`).
    body: String,
    received_at: DateTime<Utc>,
    settled_minor: Option<i64>,
    fee_minor: Option<i64>,
    outbox: Option<QueuedOutbox>,
    events: EventColumns,
    wake: Option<String>,
}

/// The outbox row an advice queues, its columns ready to bind.
#[derive(Debug)]
struct QueuedOutbox {
    id: Uuid,
    payment_id: Uuid,
    partner_id: String,
    kind: &'static str,
    message_id: String,
    body: String,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl QueuedAdvice {
    fn of(apply: &ApplyAdvice, wake: Option<&str>) -> Self {
        let events = EventColumns::of_payment(&apply.events, apply.payment_id);
        let advice = &apply.advice;
        Self {
            payment_id: apply.payment_id,
            from: apply.from.as_str(),
            to: apply.to.unwrap_or(apply.from).as_str(),
            mark_reversed_by_pos: apply.mark_reversed_by_pos,
            touched: apply.to.is_some() || apply.mark_reversed_by_pos,
            client_id: advice.client_id.clone(),
            message_id: advice.message_id.clone(),
            kind: advice.kind.as_str(),
            request_id: advice.request_id.clone(),
            advice_payment_id: advice.payment_id,
            body: advice.body.to_string(),
            received_at: advice.received_at,
            settled_minor: apply.settlement.map(|s| s.settled_minor),
            fee_minor: apply.settlement.map(|s| s.fee_minor),
            outbox: apply.outbox.as_ref().map(|m| QueuedOutbox {
                id: m.id,
                payment_id: m.payment_id,
                partner_id: m.partner_id.clone(),
                kind: m.kind.as_str(),
                message_id: m.message_id.clone(),
                body: m.body.to_string(),
                attempts: m.initial_attempts(),
                next_attempt_at: m.initial_due(),
                created_at: m.created_at,
                expires_at: m.expires_at,
            }),
            events,
            wake: wake.map(str::to_owned),
        }
    }
}

/// Applies POS advices, many in one statement ([`Group`]). Each is what
/// [`PaymentStore::apply_advice`] promises alone: lock the payment while it is still in
/// `from`, store the advice (nothing more happens if its id is known), then change the
/// payment, with its outbox row, events and wake-up. Advices for one payment, or with one
/// advice id, are applied one after the other, as they would be alone.
#[derive(Debug)]
struct AdviceApplications {
    pool: PgPool,
}

#[async_trait]
impl GroupWrite for AdviceApplications {
    type Item = QueuedAdvice;
    type Answer = Option<StoreResult<ApplyAdviceOutcome>>;

    async fn write(
        &self,
        applies: &[QueuedAdvice],
    ) -> StoreResult<Vec<Option<StoreResult<ApplyAdviceOutcome>>>> {
        self.write_distinct(applies.iter().collect()).await
    }

    fn repeats(&self, applies: &[QueuedAdvice]) -> Vec<bool> {
        let mut payments = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        applies
            .iter()
            .map(|a| {
                let new_id = ids.insert((a.client_id.as_str(), a.message_id.as_str()));
                !(payments.insert(a.payment_id) & new_id)
            })
            .collect()
    }
}

impl AdviceApplications {
    /// [`GroupWrite::write`] for advices to distinct payments, with distinct ids.
    async fn write_distinct(
        &self,
        mut applies: Vec<&QueuedAdvice>,
    ) -> StoreResult<Vec<Option<StoreResult<ApplyAdviceOutcome>>>> {
        let order = in_lock_order(&mut applies, |a| a.payment_id);
        let sql = format!(
            "WITH d AS (SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bool[], \
             $5::bool[], $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[], \
             $11::uuid[], $12::text[], $13::int8[], $14::int8[], $15::text[]) \
             WITH ORDINALITY AS d(payment_id, from_state, to_state, mark, touched, \
             received_at, client_id, message_id, kind, request_id, advice_payment_id, body, \
             settled_minor, fee_minor, wake, ord)), \
             locked AS (SELECT d.ord FROM d JOIN payment p ON p.id = d.payment_id \
             AND p.state = d.from_state FOR UPDATE OF p), \
             adv AS (INSERT INTO advice (client_id, message_id, kind, request_id, payment_id, \
             body, received_at) SELECT d.client_id, d.message_id, d.kind, d.request_id, \
             d.advice_payment_id, d.body::jsonb, d.received_at FROM d JOIN locked \
             ON locked.ord = d.ord ON CONFLICT (client_id, message_id) DO NOTHING \
             RETURNING client_id, message_id), \
             stored AS (SELECT d.ord FROM d JOIN adv ON adv.client_id = d.client_id \
             AND adv.message_id = d.message_id), \
             upd AS (UPDATE payment p SET state = d.to_state, \
             reversed_by_pos = (p.reversed_by_pos OR d.mark), \
             updated_at = CASE WHEN d.touched THEN d.received_at ELSE p.updated_at END, \
             settled_minor = COALESCE(d.settled_minor, p.settled_minor), \
             fee_minor = COALESCE(d.fee_minor, p.fee_minor) \
             FROM d JOIN stored ON stored.ord = d.ord WHERE p.id = d.payment_id \
             RETURNING d.ord, d.wake), \
             ob AS (INSERT INTO outbox (id, payment_id, partner_id, kind, message_id, body, \
             state, attempts, next_attempt_at, created_at, expires_at, updated_at) \
             SELECT o.id, o.payment_id, o.partner_id, o.kind, o.message_id, o.body::jsonb, $27, \
             o.attempts, o.next_attempt_at, o.created_at, o.expires_at, o.created_at \
             FROM UNNEST($16::int8[], $17::uuid[], $18::uuid[], $19::text[], $20::text[], \
             $21::text[], $22::text[], $23::int4[], $24::timestamptz[], $25::timestamptz[], \
             $26::timestamptz[]) AS o(ord, id, payment_id, partner_id, kind, message_id, body, \
             attempts, next_attempt_at, created_at, expires_at) JOIN upd ON upd.ord = o.ord), \
             ev AS (INSERT INTO payment_event ({EVENT_COLUMNS}) SELECT e.payment_id, \
             e.tran_id, e.at, e.kind, e.direction, e.counterparty, e.message_id, \
             e.http_status, e.outcome, e.body::json FROM {} JOIN upd ON upd.ord = e.ord), \
             wk AS (SELECT pg_notify('{WAKE_CHANNEL}', upd.wake) FROM upd \
             WHERE upd.wake IS NOT NULL) \
             SELECT d.ord, EXISTS (SELECT 1 FROM locked WHERE locked.ord = d.ord) AS locked, \
             EXISTS (SELECT 1 FROM stored WHERE stored.ord = d.ord) AS inserted, \
             EXISTS (SELECT 1 FROM upd WHERE upd.ord = d.ord) AS changed, \
             (SELECT count(*) FROM wk) AS woken FROM d",
            events_unnest_with(28, Some("ord"))
        );
        let mut events = EventColumns::default();
        let mut event_of = Vec::new();
        for (i, apply) in (1_i64..).zip(&applies) {
            event_of.extend(std::iter::repeat_n(i, apply.events.tran_id.len()));
            // Bound by value: each advice's events were turned into text when queued.
            events.append(&mut apply.events.clone());
        }
        let outboxes: Vec<(i64, &QueuedOutbox)> = (1_i64..)
            .zip(&applies)
            .filter_map(|(i, a)| a.outbox.as_ref().map(|o| (i, o)))
            .collect();
        let column =
            |f: fn(&QueuedAdvice) -> &str| applies.iter().map(|a| f(a)).collect::<Vec<_>>();
        let query = sqlx::query(&sql)
            .bind(applies.iter().map(|a| a.payment_id).collect::<Vec<_>>())
            .bind(column(|a| a.from))
            .bind(column(|a| a.to))
            .bind(
                applies
                    .iter()
                    .map(|a| a.mark_reversed_by_pos)
                    .collect::<Vec<_>>(),
            )
            .bind(applies.iter().map(|a| a.touched).collect::<Vec<_>>())
            .bind(applies.iter().map(|a| a.received_at).collect::<Vec<_>>())
            .bind(column(|a| &a.client_id))
            .bind(column(|a| &a.message_id))
            .bind(column(|a| a.kind))
            .bind(column(|a| &a.request_id))
            .bind(
                applies
                    .iter()
                    .map(|a| a.advice_payment_id)
                    .collect::<Vec<_>>(),
            )
            .bind(column(|a| &a.body))
            .bind(applies.iter().map(|a| a.settled_minor).collect::<Vec<_>>())
            .bind(applies.iter().map(|a| a.fee_minor).collect::<Vec<_>>())
            .bind(
                applies
                    .iter()
                    .map(|a| a.wake.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(outboxes.iter().map(|(i, _)| *i).collect::<Vec<_>>())
            .bind(outboxes.iter().map(|(_, o)| o.id).collect::<Vec<_>>())
            .bind(
                outboxes
                    .iter()
                    .map(|(_, o)| o.payment_id)
                    .collect::<Vec<_>>(),
            )
            .bind(
                outboxes
                    .iter()
                    .map(|(_, o)| o.partner_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(outboxes.iter().map(|(_, o)| o.kind).collect::<Vec<_>>())
            .bind(
                outboxes
                    .iter()
                    .map(|(_, o)| o.message_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                outboxes
                    .iter()
                    .map(|(_, o)| o.body.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(outboxes.iter().map(|(_, o)| o.attempts).collect::<Vec<_>>())
            .bind(
                outboxes
                    .iter()
                    .map(|(_, o)| o.next_attempt_at)
                    .collect::<Vec<_>>(),
            )
            .bind(
                outboxes
                    .iter()
                    .map(|(_, o)| o.created_at)
                    .collect::<Vec<_>>(),
            )
            .bind(
                outboxes
                    .iter()
                    .map(|(_, o)| o.expires_at)
                    .collect::<Vec<_>>(),
            )
            .bind(OutboxState::Pending.as_str());
        let rows = bind_events!(query, events)
            .bind(event_of)
            .fetch_all(&self.pool)
            .await?;
        let mut outcomes: Vec<Option<StoreResult<ApplyAdviceOutcome>>> =
            (0..applies.len()).map(|_| None).collect();
        for row in &rows {
            use sqlx::Row;
            let ord: i64 = row.try_get("ord")?;
            let Some(k) = usize::try_from(ord - 1).ok().filter(|&k| k < order.len()) else {
                continue;
            };
            let (i, apply) = (order[k], applies[k]);
            let (locked, inserted, changed): (bool, bool, bool) = (
                row.try_get("locked")?,
                row.try_get("inserted")?,
                row.try_get("changed")?,
            );
            outcomes[i] = Some(match (locked, inserted, changed) {
                (false, _, _) => Ok(ApplyAdviceOutcome::StateChanged),
                (true, false, _) => Ok(ApplyAdviceOutcome::DuplicateAdvice),
                (true, true, true) => Ok(ApplyAdviceOutcome::Applied),
                (true, true, false) => Err(StoreError::Corrupt(format!(
                    "advice {} was stored but payment {} did not change",
                    apply.message_id, apply.payment_id
                ))),
            });
        }
        Ok(outcomes)
    }
}

/// A payment waiting for [`PaymentInserts`], its columns ready to bind.
#[derive(Debug)]
struct QueuedPayment {
    id: Uuid,
    client_id: String,
    message_id: String,
    tran_id: String,
    amount_minor: i64,
    currency: String,
    /// The POS's request as JSON text (read as `jsonb`).
    request: String,
    created_at: DateTime<Utc>,
    scan_deadline: DateTime<Utc>,
    events: EventColumns,
    wake: Option<String>,
}

impl QueuedPayment {
    fn of(payment: &NewPayment, wake: Option<&str>) -> Self {
        let events = EventColumns::of_payment(&payment.events, payment.id);
        Self {
            id: payment.id,
            client_id: payment.client_id.clone(),
            message_id: payment.message_id.clone(),
            tran_id: payment.tran_id.clone(),
            amount_minor: payment.amount_minor,
            currency: payment.currency.clone(),
            request: payment.request.to_string(),
            created_at: payment.created_at,
            scan_deadline: payment.scan_deadline,
            events,
            wake: wake.map(str::to_owned),
        }
    }
}

/// Inserts new payments, many in one statement ([`Group`]), each with its `payment_message`
/// key, its timeline events and its wake-up. A payment that is not inserted (its id already
/// stored, its tranId busy, an earlier payment of the group taking either, an id its POS
/// reversed first) is answered `false`, and [`PaymentStore::insert_payment`] looks up why.
#[derive(Debug)]
struct PaymentInserts {
    pool: PgPool,
}

#[async_trait]
impl GroupWrite for PaymentInserts {
    type Item = QueuedPayment;
    type Answer = bool;

    async fn write(&self, payments: &[QueuedPayment]) -> StoreResult<Vec<bool>> {
        // The check for a reversal that came first probes the advices' index once per
        // payment: `OFFSET 0` keeps it a subquery the planner cannot turn into a join. As a
        // join, it was hashed against every reversal stored whenever the statistics were
        // young, 74 groups of a 10 s benchmark taking over 4 ms (BENCHMARKS.md, issue 14
        // ninth round).
        let sql = format!(
            "WITH p AS (SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], \
             $5::int8[], $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[], \
             $10::text[]) AS p(id, client_id, message_id, tran_id, amount_minor, currency, \
             request, created_at, scan_deadline, wake)), \
             ins AS (INSERT INTO payment (id, client_id, message_id, tran_id, state, \
             amount_minor, currency, request, created_at, scan_deadline, updated_at) \
             SELECT p.id, p.client_id, p.message_id, p.tran_id, $11, p.amount_minor, \
             p.currency, p.request::jsonb, p.created_at, p.scan_deadline, p.created_at FROM p \
             WHERE NOT EXISTS (SELECT 1 FROM advice a WHERE a.client_id = p.client_id \
             AND a.request_id = p.message_id AND a.kind = $12 OFFSET 0) \
             ON CONFLICT DO NOTHING RETURNING id, client_id, message_id), \
             msg AS (INSERT INTO payment_message (client_id, message_id) \
             SELECT client_id, message_id FROM ins), \
             ev AS (INSERT INTO payment_event ({EVENT_COLUMNS}) SELECT e.payment_id, \
             e.tran_id, e.at, e.kind, e.direction, e.counterparty, e.message_id, \
             e.http_status, e.outcome, e.body::json FROM {} JOIN ins ON ins.id = e.payment_id), \
             wk AS (SELECT pg_notify('{WAKE_CHANNEL}', p.wake) FROM p JOIN ins ON ins.id = p.id \
             WHERE p.wake IS NOT NULL) \
             SELECT ins.id, (SELECT count(*) FROM wk) AS woken FROM ins",
            events_unnest(13)
        );
        let mut events = EventColumns::default();
        for payment in payments {
            // Bound by value: each payment's events were turned into text when queued.
            events.append(&mut payment.events.clone());
        }
        let column = |f: fn(&QueuedPayment) -> &str| payments.iter().map(f).collect::<Vec<_>>();
        let query = sqlx::query(&sql)
            .bind(payments.iter().map(|p| p.id).collect::<Vec<_>>())
            .bind(column(|p| &p.client_id))
            .bind(column(|p| &p.message_id))
            .bind(column(|p| &p.tran_id))
            .bind(payments.iter().map(|p| p.amount_minor).collect::<Vec<_>>())
            .bind(column(|p| &p.currency))
            .bind(column(|p| &p.request))
            .bind(payments.iter().map(|p| p.created_at).collect::<Vec<_>>())
            .bind(payments.iter().map(|p| p.scan_deadline).collect::<Vec<_>>())
            .bind(
                payments
                    .iter()
                    .map(|p| p.wake.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(PaymentState::WaitingForScan.as_str())
            .bind(AdviceKind::Reversal.as_str());
        let rows = match bind_events!(query, events).fetch_all(&self.pool).await {
            Ok(rows) => rows,
            // A reversal of this id took its key first: not inserted, and the caller looks
            // up why. In a group, the group is written again one by one to find whose it was.
            Err(e) if payments.len() == 1 && violates(&e, "payment_message_pkey") => {
                return Ok(vec![false])
            }
            Err(e) => return Err(e.into()),
        };
        let inserted = rows
            .iter()
            .map(|row| sqlx::Row::try_get::<Uuid, _>(row, "id"))
            .collect::<Result<std::collections::HashSet<Uuid>, _>>()?;
        Ok(payments.iter().map(|p| inserted.contains(&p.id)).collect())
    }
}

/// The hot path's writes as statements of their own: what a write runs when no other write
/// of its kind is under way on this instance (`store/grouped.rs`), and what the rarer cases
/// always run.
impl PostgresStore {
    /// A code's insert as a statement of its own.
    async fn insert_code_alone(&self, code: &QrCodeRecord) -> StoreResult<InsertOutcome> {
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
        .bind(code.created_at)
        .bind(code.expires_at)
        .bind(code.terms.amount.as_ref().map(|(a, _)| *a))
        .bind(code.terms.amount.as_ref().map(|(_, c)| c.as_str()))
        .bind(code.terms.part_payment_allowed)
        .bind(code.terms.over_payment_allowed)
        .execute(&self.pool)
        .await?;
        Ok(if done.rows_affected() == 1 {
            InsertOutcome::Inserted
        } else {
            InsertOutcome::Duplicate
        })
    }

    /// One try of the pay's insert as a statement of its own: true if stored, false if
    /// refused (a duplicate id, a busy tranId, an id the POS reversed first; the caller
    /// looks up which).
    async fn insert_payment_alone(&self, payment: &NewPayment) -> StoreResult<bool> {
        let riders = Riders {
            outbox: None,
            events: &payment.events,
            wake: self.wake(payment.wake.as_deref()),
        };
        // The payment's id is also written to `payment_message`, which a reversal that
        // finds no payment writes too (insert_orphan_reversal): whichever is second waits
        // for the first's commit. A reversal that got there first makes this statement fail
        // on that key, undoing the payment with it.
        let sql = format!(
            "WITH ins AS (INSERT INTO payment (id, client_id, message_id, tran_id, state, \
             amount_minor, currency, request, created_at, scan_deadline, updated_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $9 WHERE NOT EXISTS \
             (SELECT 1 FROM advice WHERE client_id = $2 AND request_id = $3 AND kind = $11) \
             ON CONFLICT DO NOTHING RETURNING id, client_id, message_id), \
             msg AS (INSERT INTO payment_message (client_id, message_id) \
             SELECT client_id, message_id FROM ins){} \
             SELECT (SELECT count(*) FROM ins) AS changed{}",
            riders.ctes("ins", 12),
            riders.select()
        );
        let query = sqlx::query(&sql)
            .bind(payment.id)
            .bind(&payment.client_id)
            .bind(&payment.message_id)
            .bind(&payment.tran_id)
            .bind(PaymentState::WaitingForScan.as_str())
            .bind(payment.amount_minor)
            .bind(&payment.currency)
            .bind(&payment.request)
            .bind(payment.created_at)
            .bind(payment.scan_deadline)
            .bind(AdviceKind::Reversal.as_str());
        match riders.bind(query).fetch_one(&self.pool).await {
            Ok(row) => Ok(count(&row, "changed")? == 1),
            // A reversal of this id took the key first: looked up by the caller.
            Err(e) if violates(&e, "payment_message_pkey") => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// A partner's answer as a statement of its own (with the reversal it queues, if any).
    async fn record_answer_alone(&self, answer: &PartnerAnswerRecord) -> StoreResult<bool> {
        let riders = Riders {
            outbox: answer.reversal.as_ref(),
            events: &answer.events,
            wake: self.wake(answer.wake.as_deref()),
        };
        let sql = format!(
            "WITH upd AS (UPDATE payment SET state = $3, partner_status = $4, \
             partner_response = $5, updated_at = $6, approved_minor = $8, amount_refused = $9 \
             WHERE id = $1 AND state = $2 AND reversed_by_pos = $7 RETURNING id){} \
             SELECT (SELECT count(*) FROM upd) AS changed{}",
            riders.ctes("upd", 10),
            riders.select()
        );
        let query = sqlx::query(&sql)
            .bind(answer.payment_id)
            .bind(PaymentState::Forwarded.as_str())
            .bind(answer.to.as_str())
            .bind(answer.status)
            .bind(&answer.body)
            .bind(answer.at)
            .bind(answer.expected_reversed_by_pos)
            .bind(answer.approved_minor)
            .bind(answer.amount_refused);
        let row = riders.bind(query).fetch_one(&self.pool).await?;
        Ok(count(&row, "changed")? == 1)
    }

    /// An advice as a statement of its own.
    async fn apply_advice_alone(&self, apply: &ApplyAdvice) -> StoreResult<ApplyAdviceOutcome> {
        // One statement: lock the payment while it is still in `from`, store the advice
        // (nothing more happens if its id is known), then change the payment; the outbox
        // row, the events and the wake-up ride on that change. The lock keeps `from` true
        // from the advice's insert to the update. With `to` None the state is written back
        // unchanged.
        let touched = apply.to.is_some() || apply.mark_reversed_by_pos;
        let riders = Riders {
            outbox: apply.outbox.as_ref(),
            events: &apply.events,
            wake: self.wake(apply.wake.as_deref()),
        };
        let sql = format!(
            "WITH locked AS (SELECT id FROM payment WHERE id = $1 AND state = $2 FOR UPDATE), \
             adv AS (INSERT INTO advice (client_id, message_id, kind, request_id, payment_id, \
             body, received_at) SELECT $7, $8, $9, $10, $11, $12, $6 FROM locked \
             ON CONFLICT (client_id, message_id) DO NOTHING RETURNING 1), \
             upd AS (UPDATE payment SET state = $3, reversed_by_pos = (reversed_by_pos OR $4), \
             updated_at = CASE WHEN $5 THEN $6 ELSE updated_at END, \
             settled_minor = COALESCE($13, settled_minor), fee_minor = COALESCE($14, fee_minor) \
             WHERE id = $1 AND EXISTS (SELECT 1 FROM adv) RETURNING id){} \
             SELECT (SELECT count(*) FROM locked) AS locked, \
             (SELECT count(*) FROM adv) AS inserted, \
             (SELECT count(*) FROM upd) AS changed{}",
            riders.ctes("upd", 15),
            riders.select()
        );
        let advice = &apply.advice;
        let query = sqlx::query(&sql)
            .bind(apply.payment_id)
            .bind(apply.from.as_str())
            .bind(apply.to.unwrap_or(apply.from).as_str())
            .bind(apply.mark_reversed_by_pos)
            .bind(touched)
            .bind(advice.received_at)
            .bind(&advice.client_id)
            .bind(&advice.message_id)
            .bind(advice.kind.as_str())
            .bind(&advice.request_id)
            .bind(advice.payment_id)
            .bind(&advice.body)
            .bind(apply.settlement.map(|s| s.settled_minor))
            .bind(apply.settlement.map(|s| s.fee_minor));
        let row = riders.bind(query).fetch_one(&self.pool).await?;
        if count(&row, "locked")? == 0 {
            return Ok(ApplyAdviceOutcome::StateChanged);
        }
        if count(&row, "inserted")? == 0 {
            return Ok(ApplyAdviceOutcome::DuplicateAdvice);
        }
        if count(&row, "changed")? != 1 {
            return Err(StoreError::Corrupt(format!(
                "advice {} was stored but payment {} did not change",
                advice.message_id, apply.payment_id
            )));
        }
        Ok(ApplyAdviceOutcome::Applied)
    }
}

#[async_trait]
impl PaymentStore for PostgresStore {
    async fn insert_qr_code(&self, code: &QrCodeRecord) -> StoreResult<InsertOutcome> {
        self.qr_codes
            .write(|| code.clone(), || self.insert_code_alone(code))
            .await
    }

    async fn qr_code(&self, tran_id: &str) -> StoreResult<Option<QrCodeRecord>> {
        reads::qr_code(self, tran_id).await
    }

    async fn insert_payment(&self, payment: &NewPayment) -> StoreResult<NewPaymentOutcome> {
        // The happy path is one statement (alone, or a group's): the insert refuses a
        // payment (no row) on a duplicate id, a busy tranId (both unique indexes) or an id
        // the POS reversed first; the reason is looked up only then.
        let queued = || QueuedPayment::of(payment, self.wake(payment.wake.as_deref()));
        let mut inserted = self
            .payments
            .write(queued, || self.insert_payment_alone(payment))
            .await?;
        // A conflicting payment that ended between the insert and the look-up frees its
        // tranId: try again, a few times, alone.
        for tries in 1.. {
            if inserted {
                return Ok(NewPaymentOutcome::Inserted);
            }
            let (duplicate, reversed, busy): (bool, bool, bool) = sqlx::query_as(
                "SELECT EXISTS (SELECT 1 FROM payment WHERE client_id = $1 AND message_id = $2), \
                 EXISTS (SELECT 1 FROM advice WHERE client_id = $1 AND request_id = $2 \
                 AND kind = $4), \
                 EXISTS (SELECT 1 FROM payment WHERE tran_id = $3 \
                 AND state NOT IN ('EXPIRED', 'DECLINED', 'REVERSED'))",
            )
            .bind(&payment.client_id)
            .bind(&payment.message_id)
            .bind(&payment.tran_id)
            .bind(AdviceKind::Reversal.as_str())
            .fetch_one(&self.pool)
            .await?;
            if duplicate {
                return Ok(NewPaymentOutcome::DuplicateId);
            }
            if reversed {
                return Ok(NewPaymentOutcome::AlreadyReversed);
            }
            if busy {
                return Ok(NewPaymentOutcome::TranIdInUse);
            }
            if tries == 3 {
                break;
            }
            inserted = self.insert_payment_alone(payment).await?;
        }
        Err(StoreError::Corrupt(format!(
            "payment {} was refused by the database for no reason it could name",
            payment.id
        )))
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
        self.claims
            .write(
                || QueuedClaim::of(claim),
                || async { Ok(ScanClaims::claim_alone(&self.pool, claim).await) },
            )
            .await?
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
        .bind(id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_partner_answer(&self, answer: &PartnerAnswerRecord) -> StoreResult<bool> {
        check_move(PaymentState::Forwarded, answer.to)?;
        if answer.reversal.is_some() {
            return self.record_answer_alone(answer).await;
        }
        let wake = self.wake(answer.wake.as_deref());
        self.answers
            .write(
                || QueuedAnswer::of(answer, wake),
                || self.record_answer_alone(answer),
            )
            .await
    }

    async fn abandon_waiting(&self, abandoned: &AbandonedPay) -> StoreResult<bool> {
        check_move(PaymentState::WaitingForScan, PaymentState::Expired)?;
        let riders = Riders {
            outbox: None,
            events: &abandoned.events,
            wake: None,
        };
        // The same row lock a scan's claim takes: whichever commits first wins, and the
        // other's `WHERE state = 'WAITING_FOR_SCAN'` then matches nothing.
        let sql = format!(
            "WITH upd AS (UPDATE payment SET state = $2, pos_gone_at = $3, updated_at = $3 \
             WHERE id = $1 AND state = 'WAITING_FOR_SCAN' RETURNING id){} \
             SELECT (SELECT count(*) FROM upd) AS changed{}",
            riders.ctes("upd", 4),
            riders.select()
        );
        let query = sqlx::query(&sql)
            .bind(abandoned.payment_id)
            .bind(PaymentState::Expired.as_str())
            .bind(abandoned.at);
        let row = riders.bind(query).fetch_one(&self.pool).await?;
        Ok(count(&row, "changed")? == 1)
    }

    async fn change_state(&self, change: &StateChange) -> StoreResult<bool> {
        check_move(change.from, change.to)?;
        let riders = Riders {
            outbox: change.outbox.as_ref(),
            events: &change.events,
            wake: None,
        };
        let sql = format!(
            "WITH upd AS (UPDATE payment SET state = $3, updated_at = $4 \
             WHERE id = $1 AND state = $2 RETURNING id){} \
             SELECT (SELECT count(*) FROM upd) AS changed{}",
            riders.ctes("upd", 5),
            riders.select()
        );
        let query = sqlx::query(&sql)
            .bind(change.payment_id)
            .bind(change.from.as_str())
            .bind(change.to.as_str())
            .bind(change.at);
        let row = riders.bind(query).fetch_one(&self.pool).await?;
        Ok(count(&row, "changed")? == 1)
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
        // The payment's id first: if a `pay` with this id is being stored right now, this
        // waits for its commit (the key is already taken by a reversal before this one when
        // no payment has it). The look-up after it is a statement of its own, so it sees
        // what committed while this one waited.
        // Only a reversal keeps a later pay out; a confirmation of nothing blocks nothing.
        let mut tx = self.pool.begin().await?;
        // Each statement must see what committed before it started (the look-up after the
        // wait), whatever the database's default isolation is.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .execute(&mut *tx)
            .await?;
        if advice.kind == AdviceKind::Reversal {
            sqlx::query(
                "INSERT INTO payment_message (client_id, message_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&advice.client_id)
            .bind(&advice.request_id)
            .execute(&mut *tx)
            .await?;
        }
        let paid: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM payment WHERE client_id = $1 AND message_id = $2)",
        )
        .bind(&advice.client_id)
        .bind(&advice.request_id)
        .fetch_one(&mut *tx)
        .await?;
        if paid {
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
        let wake = self.wake(apply.wake.as_deref());
        self.advices
            .write(
                || QueuedAdvice::of(apply, wake),
                || async { Ok(Some(self.apply_advice_alone(apply).await)) },
            )
            .await?
            .unwrap_or_else(|| {
                Err(StoreError::Corrupt(format!(
                    "advice {} got no answer from its statement",
                    apply.advice.message_id
                )))
            })
    }
}

/// The tries of [`OutboxStore::finish_deliveries`] as one array per column, for `UNNEST`.
#[derive(Default)]
struct DeliveryColumns<'a> {
    id: Vec<Uuid>,
    attempt: Vec<i32>,
    state: Vec<&'static str>,
    status: Vec<Option<i32>>,
    error: Vec<Option<&'a str>>,
    next: Vec<Option<DateTime<Utc>>>,
    at: Vec<DateTime<Utc>>,
}

#[async_trait]
impl OutboxStore for PostgresStore {
    async fn claim_due_outbox(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>> {
        // Rows another instance is claiming right now are skipped, not waited for.
        let rows = sqlx::query_as::<_, OutboxRow>(
            "UPDATE outbox SET next_attempt_at = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE id IN (SELECT id FROM outbox WHERE state = 'PENDING' AND next_attempt_at <= $2 \
             ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING *",
        )
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed: Vec<OutboxMessage> = convert_all(rows)?;
        claimed.sort_by_key(|m| (m.created_at, m.id));
        Ok(claimed)
    }

    async fn finish_deliveries(&self, finished: &[FinishedDelivery]) -> StoreResult<Vec<bool>> {
        if finished.is_empty() {
            return Ok(Vec::new());
        }
        let mut columns = DeliveryColumns::default();
        for f in finished {
            let (state, status, error, next) = delivery_columns(&f.result);
            columns.id.push(f.id);
            columns.attempt.push(f.attempt);
            columns.state.push(state.as_str());
            columns.status.push(status);
            columns.error.push(error);
            columns.next.push(next);
            columns.at.push(f.at);
        }
        // One statement for the whole group: each try's compare-and-set is its own row of
        // the join (still PENDING, and on the try that leased it); a try is answered by its
        // row and attempt, so two tries of one row in a group are told apart.
        let changed: Vec<(Uuid, i32)> = sqlx::query_as(
            "UPDATE outbox AS o SET state = d.state, last_status = d.status, \
             last_error = d.error, next_attempt_at = COALESCE(d.next, o.next_attempt_at), \
             updated_at = d.at \
             FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::int4[], $5::text[], \
             $6::timestamptz[], $7::timestamptz[]) AS d(id, attempts, state, status, error, next, at) \
             WHERE o.id = d.id AND o.state = 'PENDING' AND o.attempts = d.attempts \
             RETURNING o.id, d.attempts",
        )
        .bind(&columns.id)
        .bind(&columns.attempt)
        .bind(&columns.state)
        .bind(&columns.status)
        .bind(&columns.error)
        .bind(&columns.next)
        .bind(&columns.at)
        .fetch_all(&self.pool)
        .await?;
        Ok(finished
            .iter()
            .map(|f| changed.contains(&(f.id, f.attempt)))
            .collect())
    }

    async fn dead_letter_expired(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        // `next_attempt_at IS NOT NULL` (always true) reaches the index of pending rows
        // (migration 0013).
        let done = sqlx::query(
            "UPDATE outbox SET state = $1, updated_at = $2 WHERE state = 'PENDING' \
             AND next_attempt_at IS NOT NULL AND expires_at <= $2",
        )
        .bind(OutboxState::Dead.as_str())
        .bind(now)
        .execute(&self.pool)
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
        .bind(id)
        .bind(OutboxState::Dead.as_str())
        .bind(OutboxState::Pending.as_str())
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn recover(
        &self,
        now: DateTime<Utc>,
        forwarded_before: DateTime<Utc>,
        matched_before: DateTime<Utc>,
        reversal_for: &(dyn for<'p> Fn(&'p PaymentRecord) -> NewOutboxMessage + Send + Sync),
    ) -> StoreResult<RecoveryReport> {
        let mut tx = self.pool.begin().await?;
        // A payment the POS reversed while the partner had it ends REVERSED, not UNKNOWN:
        // the POS's reversal was accepted, and UNKNOWN would wait for one forever.
        let unknown = sqlx::query_as::<_, PaymentRow>(
            "UPDATE payment SET state = CASE WHEN reversed_by_pos THEN $4 ELSE $1 END, updated_at = $2 \
             WHERE state = 'FORWARDED' AND updated_at < $3 RETURNING *",
        )
        .bind(PaymentState::Unknown.as_str())
        .bind(now)
        .bind(forwarded_before)
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
        .bind(now)
        .bind(matched_before)
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
impl TimelineStore for PostgresStore {
    async fn record_events(&self, events: &[NewEvent]) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        insert_events(&mut conn, events).await
    }

    async fn payment_timeline(
        &self,
        payment_id: Uuid,
        tran_id: &str,
    ) -> StoreResult<Vec<EventRecord>> {
        reads::payment_timeline(self, reads::TIMELINE_BY_PAYMENT_SQL, payment_id, tran_id).await
    }
}

#[async_trait]
impl BackOfficeStore for PostgresStore {
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
        let mut tx = self.pool.begin().await?;
        // Held to the end of this batch's transaction: instances purge one at a time, and a
        // crashed one holds nothing.
        let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(RETENTION_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !ours {
            return Ok(None);
        }
        let deleted = match what {
            Purge::Events | Purge::DeliveredOutbox => {
                let sql = if what == Purge::Events {
                    super::admin::PURGE_EVENTS_SQL
                } else {
                    super::admin::PURGE_OUTBOX_SQL
                };
                sqlx::query(sql)
                    .bind(before)
                    .bind(limit)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            }
            Purge::Payments => {
                let ids: Vec<Uuid> = sqlx::query_scalar(&super::admin::purgeable_payments_sql(
                    "FOR UPDATE OF p SKIP LOCKED",
                ))
                .bind(before)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                if !ids.is_empty() {
                    for sql in super::admin::purge_payments_sql("SELECT unnest($1::uuid[])", true) {
                        sqlx::query(&sql).bind(&ids).execute(&mut *tx).await?;
                    }
                }
                ids.len() as u64
            }
        };
        tx.commit().await?;
        Ok(Some(deleted))
    }
}

/// The advisory lock key of the retention purge (any constant no other code uses).
const RETENTION_LOCK: i64 = 0x7172_6875_6250_7267;

/// Inserts an advice row; false if its (client, id) is already stored.
async fn insert_advice<'e, E>(executor: E, advice: &AdviceRecord) -> StoreResult<bool>
where
    E: sqlx::PgExecutor<'e>,
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
    .bind(advice.payment_id)
    .bind(&advice.body)
    .bind(advice.received_at)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}
