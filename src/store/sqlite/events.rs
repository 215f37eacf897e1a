//! The timeline events SQLite's writes insert: those of a change, which the writer inserts
//! for a whole batch just before its commit (`writer.rs`), and the batched ones of
//! [`crate::store::TimelineStore::record_events`].

use sqlx::sqlite::SqliteConnection;
use uuid::Uuid;

use crate::model::text::storable;
use crate::store::rows::{Id, Ts};
use crate::store::{NewEvent, StoreResult};

/// A change's events, each tied to the payment the change is about unless it names one.
pub(super) fn of_payment(mut events: Vec<NewEvent>, payment_id: Uuid) -> Vec<NewEvent> {
    for event in &mut events {
        event.payment_id = event.payment_id.or(Some(payment_id));
    }
    events
}

/// Rows per event insert: ten parameters each, well under SQLite's limit of 32,766.
const EVENT_ROWS_PER_INSERT: usize = 256;

/// Appends timeline events as one multi-row INSERT per chunk: every statement is a round
/// trip to the connection's own thread, which costs more than the row itself. Only the
/// shapes of up to four rows and of a full chunk are kept prepared, so that batches of
/// every size do not push the hot path's statements out of the connection's statement
/// cache; a batch's events under load (5 to 255 rows) are prepared each time, which costs
/// less than the round trips they save (BENCHMARKS.md, issue 14 third round).
pub(super) async fn insert_events(
    conn: &mut SqliteConnection,
    events: &[NewEvent],
) -> StoreResult<()> {
    for chunk in events.chunks(EVENT_ROWS_PER_INSERT) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO payment_event (payment_id, tran_id, at, kind, direction, counterparty, \
             message_id, http_status, outcome, body) ",
        );
        insert.push_values(chunk, |mut row, e| {
            // NUL as U+FFFD, as on PostgreSQL (which cannot keep it): both stores show
            // the same timeline, and SQLite's own text functions stop at a NUL.
            row.push_bind(e.payment_id.map(Id))
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
