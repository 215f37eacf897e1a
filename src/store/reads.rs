//! The reads both backends share: each query's SQL, its arguments and its row → record
//! mapping are written once here, and a backend only runs them ([`Reader`]).
//!
//! Why SQL and arguments rather than functions generic over `sqlx::Database`: a generic
//! function needs a bound for every type it binds or decodes on every database, repeated on
//! every function, while here each backend binds one small [`Arg`] enum in one place and the
//! rows decode on either database already ([`super::rows`]). What the dialects really
//! disagree on is a [`Dialect`]: a tiebreak column, a cast, one join.
//!
//! The writes stay in each backend: their transactions, locks and statement counts are
//! where the two databases differ.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::FromRow;
use uuid::Uuid;

use super::admin::{
    settled_sql, settlement_groups_sql, state_counts as checked_state_counts, EventRow, SettledRow,
    SettlementGroupRow, OUTBOX_COUNTS_SQL, PAYMENT_COUNTS_SQL,
};
use super::rows::{convert_all, AdviceRow, Id, OutboxRow, PaymentRow, QrCodeRow, Ts};
use super::{
    scan_context_from, AdviceRecord, EventRecord, OutboxMessage, OutboxState, OutboxStats,
    PartnerBacklog, PaymentQuery, PaymentRecord, QrCodeRecord, ScanContext, SettledPayment,
    SettlementGroup, StateCounts, StoreError, StoreResult, UnadvisedStats, OPEN_ITEMS_SQL,
};

/// A value bound to a `$n` placeholder of the SQL here.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Text(&'a str),
    /// A text that may be absent (SQL `NULL`).
    MaybeText(Option<&'a str>),
    Time(Ts),
    Id(Id),
    Int(i64),
}

/// What the two dialects write differently in the shared reads.
#[derive(Debug)]
pub(crate) struct Dialect {
    /// Orders rows that share a time: SQLite's `rowid` (insertion order); PostgreSQL has no
    /// such column, so the `id`.
    pub tiebreak: &'static str,
    /// Appended to a text parameter tested for `NULL` (`$3::text IS NULL`): PostgreSQL must
    /// be told the type of a parameter it cannot infer; SQLite needs nothing.
    pub text_cast: &'static str,
    /// Makes a `SUM` of `bigint` a `bigint` on PostgreSQL (it would be `numeric`).
    pub sum_cast: &'static str,
    /// The scan-context query: a code and its newest payment, `$1` the tranId, columns as
    /// [`scan_context`] reads them. PostgreSQL joins the newest payment laterally, SQLite by
    /// its `rowid`.
    pub scan_context_sql: &'static str,
    /// The newest payment of a tranId (`$1`), all columns.
    pub latest_payment_sql: &'static str,
}

/// A row either backend decodes (the row structs of [`super::rows`], and tuples of types
/// that decode on both, such as [`Ts`] and [`Id`]).
pub(crate) trait Decoded:
    for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin
{
}

impl<T> Decoded for T where
    T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin
{
}

/// A backend's way to run a shared read: bind the arguments in order, run it on its read
/// connections, decode the rows.
#[async_trait]
pub(crate) trait Reader: Sync {
    const DIALECT: Dialect;
    async fn fetch_all<R: Decoded>(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<R>>;
    async fn fetch_optional<R: Decoded>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> StoreResult<Option<R>>;
}

/// The one row of an aggregate query.
async fn fetch_one<R: Decoded>(db: &impl Reader, sql: &str, args: &[Arg<'_>]) -> StoreResult<R> {
    db.fetch_optional(sql, args)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("no row from {sql:?}")))
}

pub(crate) async fn qr_code(db: &impl Reader, tran_id: &str) -> StoreResult<Option<QrCodeRecord>> {
    let row: Option<QrCodeRow> = db
        .fetch_optional(
            "SELECT * FROM qr_code WHERE tran_id = $1",
            &[Arg::Text(tran_id)],
        )
        .await?;
    Ok(row.map(QrCodeRecord::from))
}

async fn one_payment(
    db: &impl Reader,
    sql: &str,
    args: &[Arg<'_>],
) -> StoreResult<Option<PaymentRecord>> {
    db.fetch_optional::<PaymentRow>(sql, args)
        .await?
        .map(PaymentRecord::try_from)
        .transpose()
}

pub(crate) async fn payment(db: &impl Reader, id: Uuid) -> StoreResult<Option<PaymentRecord>> {
    one_payment(
        db,
        "SELECT * FROM payment WHERE id = $1",
        &[Arg::Id(Id(id))],
    )
    .await
}

pub(crate) async fn payment_by_message(
    db: &impl Reader,
    client_id: &str,
    message_id: &str,
) -> StoreResult<Option<PaymentRecord>> {
    one_payment(
        db,
        "SELECT * FROM payment WHERE client_id = $1 AND message_id = $2",
        &[Arg::Text(client_id), Arg::Text(message_id)],
    )
    .await
}

pub(crate) async fn latest_payment_for_tran<D: Reader>(
    db: &D,
    tran_id: &str,
) -> StoreResult<Option<PaymentRecord>> {
    one_payment(db, D::DIALECT.latest_payment_sql, &[Arg::Text(tran_id)]).await
}

pub(crate) async fn scan_context<D: Reader>(
    db: &D,
    tran_id: &str,
) -> StoreResult<Option<ScanContext>> {
    type Row = (
        Ts,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<bool>,
    );
    let row: Option<Row> = db
        .fetch_optional(D::DIALECT.scan_context_sql, &[Arg::Text(tran_id)])
        .await?;
    row.map(|(expires, state, partner, scan, gone)| {
        scan_context_from(expires.0, state, partner, scan, gone)
    })
    .transpose()
}

pub(crate) async fn unadvised_approvals<D: Reader>(
    db: &D,
    approved_before: DateTime<Utc>,
    client_id: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<PaymentRecord>> {
    let sql = format!(
        "SELECT * FROM payment WHERE state = 'APPROVED' AND updated_at < $1 \
         AND ($2{cast} IS NULL OR client_id = $2) ORDER BY updated_at, {tiebreak} LIMIT $3",
        cast = D::DIALECT.text_cast,
        tiebreak = D::DIALECT.tiebreak,
    );
    let args = [
        Arg::Time(Ts(approved_before)),
        Arg::MaybeText(client_id),
        Arg::Int(limit),
    ];
    convert_all(db.fetch_all::<PaymentRow>(&sql, &args).await?)
}

pub(crate) async fn unadvised_stats(
    db: &impl Reader,
    approved_before: DateTime<Utc>,
) -> StoreResult<UnadvisedStats> {
    // Times compare in time order on both (fixed-width text on SQLite), so min() is the
    // earliest.
    let (count, oldest): (i64, Option<Ts>) = fetch_one(
        db,
        "SELECT count(*), min(updated_at) FROM payment \
         WHERE state = 'APPROVED' AND updated_at < $1",
        &[Arg::Time(Ts(approved_before))],
    )
    .await?;
    Ok(UnadvisedStats {
        count,
        oldest_approved_at: oldest.map(|t| t.0),
    })
}

pub(crate) async fn expired_waiting(
    db: &impl Reader,
    now: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<Uuid>> {
    let ids: Vec<(Id,)> = db
        .fetch_all(
            "SELECT id FROM payment WHERE state = 'WAITING_FOR_SCAN' AND scan_deadline < $1 \
             ORDER BY scan_deadline LIMIT $2",
            &[Arg::Time(Ts(now)), Arg::Int(limit)],
        )
        .await?;
    Ok(ids.into_iter().map(|(id,)| id.0).collect())
}

pub(crate) async fn advice(
    db: &impl Reader,
    client_id: &str,
    message_id: &str,
) -> StoreResult<Option<AdviceRecord>> {
    db.fetch_optional::<AdviceRow>(
        "SELECT * FROM advice WHERE client_id = $1 AND message_id = $2",
        &[Arg::Text(client_id), Arg::Text(message_id)],
    )
    .await?
    .map(AdviceRecord::try_from)
    .transpose()
}

pub(crate) async fn outbox_stats(db: &impl Reader) -> StoreResult<OutboxStats> {
    // `next_attempt_at IS NOT NULL` (always true) is what reaches PostgreSQL's index of
    // pending rows: migration 0013 says why that index needs it.
    let (pending, oldest): (i64, Option<Ts>) = fetch_one(
        db,
        "SELECT count(*), min(created_at) FROM outbox \
         WHERE state = 'PENDING' AND next_attempt_at IS NOT NULL",
        &[],
    )
    .await?;
    let (refused, dead) = fetch_one(db, OPEN_ITEMS_SQL, &[]).await?;
    Ok(OutboxStats {
        pending,
        oldest_created_at: oldest.map(|t| t.0),
        refused,
        dead,
    })
}

pub(crate) async fn outbox_backlog_by_partner(
    db: &impl Reader,
) -> StoreResult<Vec<PartnerBacklog>> {
    let rows: Vec<(String, i64, Option<Ts>)> = db
        .fetch_all(
            "SELECT partner_id, count(*), min(created_at) FROM outbox \
             WHERE state = 'PENDING' AND next_attempt_at IS NOT NULL \
             GROUP BY partner_id ORDER BY partner_id",
            &[],
        )
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

pub(crate) async fn outbox_for_payment(
    db: &impl Reader,
    payment_id: Uuid,
) -> StoreResult<Vec<OutboxMessage>> {
    let rows = db
        .fetch_all::<OutboxRow>(
            "SELECT * FROM outbox WHERE payment_id = $1 ORDER BY created_at, id",
            &[Arg::Id(Id(payment_id))],
        )
        .await?;
    convert_all(rows)
}

pub(crate) async fn outbox_by_state(
    db: &impl Reader,
    state: OutboxState,
    limit: i64,
) -> StoreResult<Vec<OutboxMessage>> {
    let rows = db
        .fetch_all::<OutboxRow>(
            // `next_attempt_at IS NOT NULL` (always true) lets PENDING reach its index on
            // PostgreSQL (migration 0013).
            "SELECT * FROM outbox WHERE state = $1 AND next_attempt_at IS NOT NULL \
             ORDER BY created_at, id LIMIT $2",
            &[Arg::Text(state.as_str()), Arg::Int(limit)],
        )
        .await?;
    convert_all(rows)
}

/// A payment's timeline on PostgreSQL: its own events by the payment's index, and its
/// tranId's events that never reached a payment by the partial index that holds only those.
pub(crate) const TIMELINE_BY_PAYMENT_SQL: &str =
    "SELECT * FROM payment_event WHERE payment_id = $1 \
     UNION ALL SELECT * FROM payment_event WHERE tran_id = $2 AND payment_id IS NULL \
     ORDER BY at, id";

/// The same timeline on SQLite, which indexes events by tranId alone (its migration 0010):
/// every event of a payment carries the payment's tranId, and the other payments of the
/// same tranId (earlier ended attempts) are filtered out.
pub(crate) const TIMELINE_BY_TRAN_SQL: &str = "SELECT * FROM payment_event WHERE tran_id = $2 \
     AND (payment_id = $1 OR payment_id IS NULL) ORDER BY at, id";

/// `sql` is [`TIMELINE_BY_PAYMENT_SQL`] or [`TIMELINE_BY_TRAN_SQL`], as the backend's
/// indexes serve.
pub(crate) async fn payment_timeline(
    db: &impl Reader,
    sql: &str,
    payment_id: Uuid,
    tran_id: &str,
) -> StoreResult<Vec<EventRecord>> {
    let rows = db
        .fetch_all::<EventRow>(sql, &[Arg::Id(Id(payment_id)), Arg::Text(tran_id)])
        .await?;
    convert_all(rows)
}

pub(crate) async fn search_payments(
    db: &impl Reader,
    query: &PaymentQuery,
) -> StoreResult<Vec<PaymentRecord>> {
    let (sql, args) = payment_search_sql(query);
    convert_all(db.fetch_all::<PaymentRow>(&sql, &args).await?)
}

pub(crate) async fn settled_payments<D: Reader>(
    db: &D,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    partner_id: Option<&str>,
) -> StoreResult<Vec<SettledPayment>> {
    let sql = format!(
        "{} ORDER BY p.created_at, p.id",
        settled_sql(D::DIALECT.text_cast)
    );
    let args = [
        Arg::Time(Ts(from)),
        Arg::Time(Ts(to)),
        Arg::MaybeText(partner_id),
    ];
    convert_all(db.fetch_all::<SettledRow>(&sql, &args).await?)
}

pub(crate) async fn settlement_groups<D: Reader>(
    db: &D,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    partner_id: Option<&str>,
) -> StoreResult<Vec<SettlementGroup>> {
    let sql = settlement_groups_sql(&settled_sql(D::DIALECT.text_cast), D::DIALECT.sum_cast);
    let args = [
        Arg::Time(Ts(from)),
        Arg::Time(Ts(to)),
        Arg::MaybeText(partner_id),
    ];
    convert_all(db.fetch_all::<SettlementGroupRow>(&sql, &args).await?)
}

pub(crate) async fn state_counts(
    db: &impl Reader,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<StateCounts> {
    let payments = db
        .fetch_all(
            PAYMENT_COUNTS_SQL,
            &[Arg::Time(Ts(from)), Arg::Time(Ts(to))],
        )
        .await?;
    let outbox = db.fetch_all(OUTBOX_COUNTS_SQL, &[]).await?;
    checked_state_counts(payments, outbox)
}

/// `SELECT * FROM payment WHERE … ORDER BY created_at DESC, id DESC LIMIT $n`, and its
/// arguments in placeholder order. Valid on both backends (SQLite accepts `$n` and row
/// values).
pub(crate) fn payment_search_sql(q: &PaymentQuery) -> (String, Vec<Arg<'_>>) {
    let mut conditions = Vec::new();
    let mut args = Vec::new();
    let mut push = |condition: &str, values: Vec<_>, args: &mut Vec<_>| {
        let mut text = condition.to_owned();
        for value in values {
            args.push(value);
            text = text.replacen('?', &format!("${}", args.len()), 1);
        }
        conditions.push(text);
    };
    if let Some(v) = &q.tran_id {
        push("tran_id = ?", vec![Arg::Text(v)], &mut args);
    }
    if let Some(v) = &q.client_id {
        push("client_id = ?", vec![Arg::Text(v)], &mut args);
    }
    if let Some(v) = &q.partner_id {
        push("partner_id = ?", vec![Arg::Text(v)], &mut args);
    }
    if let Some(v) = q.state {
        push("state = ?", vec![Arg::Text(v.as_str())], &mut args);
    }
    if let Some(v) = q.from {
        push("created_at >= ?", vec![Arg::Time(Ts(v))], &mut args);
    }
    if let Some(v) = q.to {
        push("created_at < ?", vec![Arg::Time(Ts(v))], &mut args);
    }
    if let Some((at, id)) = q.after {
        push(
            "(created_at, id) < (?, ?)",
            vec![Arg::Time(Ts(at)), Arg::Id(Id(id))],
            &mut args,
        );
    }
    let mut sql = String::from("SELECT * FROM payment");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    args.push(Arg::Int(q.limit));
    sql.push_str(&format!(
        " ORDER BY created_at DESC, id DESC LIMIT ${}",
        args.len()
    ));
    (sql, args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PaymentState;

    #[test]
    fn search_sql_numbers_its_placeholders_in_order() {
        let query = PaymentQuery {
            client_id: Some("pos-1".into()),
            state: Some(PaymentState::Confirmed),
            after: Some((Utc::now(), Uuid::nil())),
            limit: 10,
            ..PaymentQuery::default()
        };
        let (sql, args) = payment_search_sql(&query);
        assert_eq!(
            sql,
            "SELECT * FROM payment WHERE client_id = $1 AND state = $2 AND \
             (created_at, id) < ($3, $4) ORDER BY created_at DESC, id DESC LIMIT $5"
        );
        assert_eq!(args.len(), 5);
        let query = PaymentQuery {
            limit: 1,
            ..PaymentQuery::default()
        };
        let (sql, args) = payment_search_sql(&query);
        assert_eq!(
            sql,
            "SELECT * FROM payment ORDER BY created_at DESC, id DESC LIMIT $1"
        );
        assert_eq!(args.len(), 1);
    }
}
