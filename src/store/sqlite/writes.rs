//! Every write of the SQLite store, as the writer task runs it ([`super::writer`]): each
//! takes the writer's connection, already inside the batch's transaction, and owns its
//! inputs. Each says whether its writes stay (`Kept`) or are rolled back to its savepoint
//! (`Undone`: a compare-and-set that found nothing, a duplicate); an error rolls it back
//! too. A job rolled back alone leaves the other writes of its batch as they were.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteConnection;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::events::{insert_events, of_payment};
use super::writer::Written;
use crate::domain::PaymentState;
use crate::store::admin;
use crate::store::rows::{convert_all, delivery_columns, Id, OutboxRow, PaymentRow, Ts};
use crate::store::*;

/// `Kept` when a compare-and-set changed a row, `Undone` when it found nothing.
fn kept_if<T>(changed: bool, value: T) -> Written<T> {
    if changed {
        Written::Kept(value)
    } else {
        Written::Undone(value)
    }
}

pub(super) async fn insert_qr_code(
    conn: &mut SqliteConnection,
    code: QrCodeRecord,
) -> StoreResult<Written<InsertOutcome>> {
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
    .execute(conn)
    .await?;
    Ok(if done.rows_affected() == 1 {
        Written::Kept(InsertOutcome::Inserted)
    } else {
        Written::Undone(InsertOutcome::Duplicate)
    })
}

pub(super) async fn insert_payment(
    conn: &mut SqliteConnection,
    payment: NewPayment,
) -> StoreResult<Written<NewPaymentOutcome>> {
    // The insert refuses itself (no row) for an id the POS reversed first; a duplicate
    // id or a busy tranId fails on its unique index. The checks cost no statement of
    // their own on the happy path.
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
    .execute(&mut *conn)
    .await;
    let refused = match inserted {
        Ok(done) if done.rows_affected() == 1 => {
            return Ok(Written::KeptWithEvents(
                NewPaymentOutcome::Inserted,
                of_payment(payment.events, payment.id),
            ));
        }
        // Reversed first, or a busy tranId, unless this is a repeat of a payment stored
        // before (reversed since, or still live): a repeat is told as one, whichever
        // check refused it.
        Ok(_) => known_payment(conn, &payment)
            .await?
            .unwrap_or(NewPaymentOutcome::AlreadyReversed),
        Err(e) if violates_unique(&e, "payment.client_id, payment.message_id") => {
            NewPaymentOutcome::DuplicateId
        }
        Err(e) if violates_unique(&e, "payment.tran_id") => known_payment(conn, &payment)
            .await?
            .unwrap_or(NewPaymentOutcome::TranIdInUse),
        Err(e) => return Err(e.into()),
    };
    Ok(Written::Undone(refused))
}

pub(super) async fn claim_for_scan(
    conn: &mut SqliteConnection,
    claim: ScanClaim,
) -> StoreResult<Written<ScanClaimOutcome>> {
    // One statement: the WHERE is the compare, the SET the swap; the events join it in
    // the same job when there are any.
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
    .fetch_optional(&mut *conn)
    .await;
    match row {
        Ok(Some(row)) => {
            let payment: PaymentRecord = row.try_into()?;
            let events = of_payment(claim.events, payment.id);
            Ok(Written::KeptWithEvents(
                ScanClaimOutcome::Claimed(payment),
                events,
            ))
        }
        Ok(None) => Ok(Written::Undone(ScanClaimOutcome::NothingWaiting)),
        Err(e) if violates_unique(&e, "payment.partner_id, payment.scan_message_id") => {
            Ok(Written::Undone(ScanClaimOutcome::ScanIdInUse))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn transition(
    conn: &mut SqliteConnection,
    id: Uuid,
    from: PaymentState,
    to: PaymentState,
    at: DateTime<Utc>,
) -> StoreResult<Written<bool>> {
    let done =
        sqlx::query("UPDATE payment SET state = $3, updated_at = $4 WHERE id = $1 AND state = $2")
            .bind(Id(id))
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(Ts(at))
            .execute(conn)
            .await?;
    let changed = done.rows_affected() == 1;
    Ok(kept_if(changed, changed))
}

pub(super) async fn record_partner_answer(
    conn: &mut SqliteConnection,
    answer: PartnerAnswerRecord,
) -> StoreResult<Written<bool>> {
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
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(Written::Undone(false));
    }
    if let Some(reversal) = &answer.reversal {
        insert_outbox(conn, reversal).await?;
    }
    Ok(Written::KeptWithEvents(
        true,
        of_payment(answer.events, answer.payment_id),
    ))
}

pub(super) async fn abandon_waiting(
    conn: &mut SqliteConnection,
    abandoned: AbandonedPay,
) -> StoreResult<Written<bool>> {
    // One writer at a time: a scan's claim is either committed before this (and this
    // matches nothing) or waits for it (and then finds nothing waiting).
    let done = sqlx::query(
        "UPDATE payment SET state = $2, pos_gone_at = $3, updated_at = $3 \
         WHERE id = $1 AND state = 'WAITING_FOR_SCAN'",
    )
    .bind(Id(abandoned.payment_id))
    .bind(PaymentState::Expired.as_str())
    .bind(Ts(abandoned.at))
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(Written::Undone(false));
    }
    Ok(Written::KeptWithEvents(
        true,
        of_payment(abandoned.events, abandoned.payment_id),
    ))
}

pub(super) async fn change_state(
    conn: &mut SqliteConnection,
    change: StateChange,
) -> StoreResult<Written<bool>> {
    let done =
        sqlx::query("UPDATE payment SET state = $3, updated_at = $4 WHERE id = $1 AND state = $2")
            .bind(Id(change.payment_id))
            .bind(change.from.as_str())
            .bind(change.to.as_str())
            .bind(Ts(change.at))
            .execute(&mut *conn)
            .await?;
    if done.rows_affected() != 1 {
        return Ok(Written::Undone(false));
    }
    if let Some(msg) = &change.outbox {
        insert_outbox(conn, msg).await?;
    }
    Ok(Written::KeptWithEvents(
        true,
        of_payment(change.events, change.payment_id),
    ))
}

pub(super) async fn insert_orphan_reversal(
    conn: &mut SqliteConnection,
    advice: AdviceRecord,
) -> StoreResult<Written<OrphanOutcome>> {
    // One writer at a time: a `pay` with this id is stored wholly before or after.
    let paid: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM payment WHERE client_id = $1 AND message_id = $2")
            .bind(&advice.client_id)
            .bind(&advice.request_id)
            .fetch_optional(&mut *conn)
            .await?;
    if paid.is_some() {
        return Ok(Written::Undone(OrphanOutcome::PaymentExists));
    }
    if !insert_advice(conn, &advice).await? {
        return Ok(Written::Undone(OrphanOutcome::DuplicateAdvice));
    }
    Ok(Written::Kept(OrphanOutcome::Inserted))
}

pub(super) async fn apply_advice(
    conn: &mut SqliteConnection,
    apply: ApplyAdvice,
) -> StoreResult<Written<ApplyAdviceOutcome>> {
    if !insert_advice(&mut *conn, &apply.advice).await? {
        return Ok(Written::Undone(ApplyAdviceOutcome::DuplicateAdvice));
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
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        // The advice row inserted above goes with the rest of the job.
        return Ok(Written::Undone(ApplyAdviceOutcome::StateChanged));
    }
    if let Some(msg) = &apply.outbox {
        insert_outbox(conn, msg).await?;
    }
    Ok(Written::KeptWithEvents(
        ApplyAdviceOutcome::Applied,
        of_payment(apply.events, apply.payment_id),
    ))
}

pub(super) async fn claim_due_outbox(
    conn: &mut SqliteConnection,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Written<Vec<OutboxMessage>>> {
    // One statement on the single writer: no other claim can interleave.
    let rows = sqlx::query_as::<_, OutboxRow>(
        "UPDATE outbox SET next_attempt_at = $1, attempts = attempts + 1, updated_at = $2 \
         WHERE id IN (SELECT id FROM outbox WHERE state = 'PENDING' AND next_attempt_at <= $2 \
         ORDER BY next_attempt_at LIMIT $3) RETURNING *",
    )
    .bind(Ts(lease_until))
    .bind(Ts(now))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    let mut claimed: Vec<OutboxMessage> = convert_all(rows)?;
    claimed.sort_by_key(|m| (m.created_at, m.id));
    Ok(kept_if(!claimed.is_empty(), claimed))
}

pub(super) async fn finish_deliveries(
    conn: &mut SqliteConnection,
    finished: Vec<FinishedDelivery>,
) -> StoreResult<Written<Vec<bool>>> {
    let mut changed = Vec::with_capacity(finished.len());
    for f in &finished {
        let (state, status, error, next) = delivery_columns(&f.result);
        let done = sqlx::query(
            "UPDATE outbox SET state = $4, last_status = $5, last_error = $6, \
             next_attempt_at = COALESCE($7, next_attempt_at), updated_at = $8 \
             WHERE id = $1 AND state = $2 AND attempts = $3",
        )
        .bind(Id(f.id))
        .bind(OutboxState::Pending.as_str())
        .bind(f.attempt)
        .bind(state.as_str())
        .bind(status)
        .bind(error)
        .bind(next.map(Ts))
        .bind(Ts(f.at))
        .execute(&mut *conn)
        .await?;
        changed.push(done.rows_affected() == 1);
    }
    // A try that changed nothing wrote nothing: the others' changes are kept, and a group
    // that changed nothing costs no commit.
    let any = changed.iter().any(|c| *c);
    Ok(kept_if(any, changed))
}

pub(super) async fn dead_letter_expired(
    conn: &mut SqliteConnection,
    now: DateTime<Utc>,
) -> StoreResult<Written<u64>> {
    let done = sqlx::query(
        "UPDATE outbox SET state = $1, updated_at = $2 WHERE state = 'PENDING' AND expires_at <= $2",
    )
    .bind(OutboxState::Dead.as_str())
    .bind(Ts(now))
    .execute(conn)
    .await?;
    Ok(kept_if(done.rows_affected() > 0, done.rows_affected()))
}

pub(super) async fn retry_dead_letter(
    conn: &mut SqliteConnection,
    id: Uuid,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> StoreResult<Written<bool>> {
    let done = sqlx::query(
        "UPDATE outbox SET state = $3, next_attempt_at = $4, expires_at = $5, updated_at = $4 \
         WHERE id = $1 AND state IN ($2, 'FAILED')",
    )
    .bind(Id(id))
    .bind(OutboxState::Dead.as_str())
    .bind(OutboxState::Pending.as_str())
    .bind(Ts(now))
    .bind(Ts(expires_at))
    .execute(conn)
    .await?;
    let changed = done.rows_affected() == 1;
    Ok(kept_if(changed, changed))
}

/// Recovery's job. The reversals of what it makes UNKNOWN come from a closure the job
/// cannot own (it borrows the caller's state), so the job hands the payments to the caller
/// on `made_unknown` and waits, inside its transaction, for their reversals on `reversals`.
pub(super) async fn recover(
    conn: &mut SqliteConnection,
    now: DateTime<Utc>,
    forwarded_before: DateTime<Utc>,
    matched_before: DateTime<Utc>,
    made_unknown: oneshot::Sender<Vec<PaymentRecord>>,
    reversals: oneshot::Receiver<Vec<NewOutboxMessage>>,
) -> StoreResult<Written<RecoveryReport>> {
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
    .fetch_all(&mut *conn)
    .await?;
    let unknown: Vec<PaymentRecord> = convert_all(unknown)?;
    let forwarded_made_unknown = unknown.len() as u64;
    if !unknown.is_empty() {
        // Either fails only when the caller has stopped waiting: nobody needs the answer.
        let gone = || {
            StoreError::WriteNotStored(std::sync::Arc::new(sqlx::Error::Protocol(
                "recovery's caller went away".into(),
            )))
        };
        made_unknown.send(unknown).map_err(|_| gone())?;
        for reversal in reversals.await.map_err(|_| gone())? {
            insert_outbox(conn, &reversal).await?;
        }
    }
    let declined = sqlx::query(
        "UPDATE payment SET state = $1, updated_at = $2 WHERE state = 'MATCHED' AND updated_at < $3",
    )
    .bind(PaymentState::Declined.as_str())
    .bind(Ts(now))
    .bind(Ts(matched_before))
    .execute(conn)
    .await?;
    let report = RecoveryReport {
        forwarded_made_unknown,
        matched_never_sent: declined.rows_affected(),
    };
    Ok(kept_if(report != RecoveryReport::default(), report))
}

pub(super) async fn record_events(
    conn: &mut SqliteConnection,
    events: Vec<NewEvent>,
) -> StoreResult<Written<()>> {
    insert_events(conn, &events).await?;
    Ok(Written::Kept(()))
}

pub(super) async fn purge(
    conn: &mut SqliteConnection,
    what: Purge,
    before: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Written<Option<u64>>> {
    // One writer, one instance: no other purge can run, and each batch of rows is one
    // short job that other writes queue behind only briefly.
    let deleted = match what {
        Purge::Events | Purge::DeliveredOutbox => {
            let sql = if what == Purge::Events {
                admin::PURGE_EVENTS_SQL
            } else {
                admin::PURGE_OUTBOX_SQL
            };
            sqlx::query(sql)
                .bind(Ts(before))
                .bind(limit)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        }
        Purge::Payments => {
            let ids: Vec<Id> = sqlx::query_scalar(&admin::purgeable_payments_sql(""))
                .bind(Ts(before))
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?;
            if !ids.is_empty() {
                let list = serde_json::Value::from(
                    ids.iter()
                        .map(|id| id.0.hyphenated().to_string())
                        .collect::<Vec<_>>(),
                )
                .to_string();
                for sql in admin::purge_payments_sql("SELECT value FROM json_each($1)", false) {
                    sqlx::query(&sql).bind(&list).execute(&mut *conn).await?;
                }
            }
            ids.len() as u64
        }
    };
    Ok(kept_if(deleted > 0, Some(deleted)))
}

/// `DuplicateId` when `payment`'s id is already stored.
async fn known_payment(
    conn: &mut SqliteConnection,
    payment: &NewPayment,
) -> StoreResult<Option<NewPaymentOutcome>> {
    let known: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM payment WHERE client_id = $1 AND message_id = $2")
            .bind(&payment.client_id)
            .bind(&payment.message_id)
            .fetch_optional(conn)
            .await?;
    Ok(known.map(|_| NewPaymentOutcome::DuplicateId))
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
