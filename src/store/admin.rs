//! What the back office reads and the timeline the hub writes: message events, payment
//! search with keyset pagination, and the per-partner settlement figures.
//!
//! The back office's settlement SQL is built here and run by [`super::reads`] on either
//! backend (which also builds the search's).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::rows::{Id, Ts};
use super::{StoreError, StoreResult};
use crate::domain::PaymentState;

/// Which way a message went, seen from the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received by the hub.
    In,
    /// Sent by the hub.
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "IN",
            Self::Out => "OUT",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "IN" => Some(Self::In),
            "OUT" => Some(Self::Out),
            _ => None,
        }
    }
}

/// The kinds of message a timeline event records (the interface's operation names).
pub mod event_kind {
    use crate::model::Operation;

    pub const CREATE_QR_CODE: &str = Operation::CreateQrCode.event_kind();
    /// A PaymentRequest: from the POS (IN) or to the partner (OUT).
    pub const PAY: &str = Operation::Pay.event_kind();
    /// The answer to a PaymentRequest: from the partner (IN) or to the POS (OUT).
    pub const PAY_RESPONSE: &str = "PAY_RESPONSE";
    pub const SCAN: &str = Operation::NotifyScan.event_kind();
    /// A confirmation: from the POS (IN) or one delivery try to the partner (OUT).
    pub const CONFIRMATION: &str = Operation::ConfirmPayment.event_kind();
    /// A reversal: from the POS (IN) or one delivery try to the partner (OUT).
    pub const REVERSAL: &str = Operation::ReversePayment.event_kind();
    /// The POS's connection closed while its `pay` was held, before any scan (IN: what
    /// the hub saw of the POS).
    pub const POS_GONE: &str = "POS_GONE";
    /// The hub's own reversal of an approval its POS never advised (OUT: queued for the
    /// partner; each delivery try is a REVERSAL OUT).
    pub const UNADVISED_REVERSAL: &str = "UNADVISED_REVERSAL";
}

/// One message the hub received or sent, for the payment's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// `None` when the message never reached a payment; on a scan claim the store fills in
    /// the payment the scan claimed.
    pub payment_id: Option<Uuid>,
    pub tran_id: String,
    pub at: DateTime<Utc>,
    /// One of [`event_kind`].
    pub kind: &'static str,
    pub direction: Direction,
    /// The client or partner id on the other end.
    pub counterparty: String,
    pub message_id: Option<String>,
    pub http_status: Option<i32>,
    /// What came of it: `RECEIVED`, `APPROVED`, `DELIVERED`, an ErrorType name, ...
    pub outcome: String,
    /// The message as sent or received (JSON), when there is one.
    pub body: Option<serde_json::Value>,
}

impl NewEvent {
    pub fn new(
        kind: &'static str,
        direction: Direction,
        tran_id: impl Into<String>,
        counterparty: impl Into<String>,
        at: DateTime<Utc>,
        outcome: impl Into<String>,
    ) -> Self {
        Self {
            payment_id: None,
            tran_id: tran_id.into(),
            at,
            kind,
            direction,
            counterparty: counterparty.into(),
            message_id: None,
            http_status: None,
            outcome: outcome.into(),
            body: None,
        }
    }

    pub fn payment(mut self, id: Uuid) -> Self {
        self.payment_id = Some(id);
        self
    }

    pub fn message(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    pub fn status(mut self, status: Option<i32>) -> Self {
        self.http_status = status;
        self
    }

    pub fn body(mut self, body: Option<serde_json::Value>) -> Self {
        self.body = body;
        self
    }
}

/// A stored event; `id` orders events recorded at the same instant.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub id: i64,
    pub payment_id: Option<Uuid>,
    pub tran_id: String,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub direction: Direction,
    pub counterparty: String,
    pub message_id: Option<String>,
    pub http_status: Option<i32>,
    pub outcome: String,
    pub body: Option<serde_json::Value>,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct EventRow {
    id: i64,
    payment_id: Option<Id>,
    tran_id: String,
    at: Ts,
    kind: String,
    direction: String,
    counterparty: String,
    message_id: Option<String>,
    http_status: Option<i32>,
    outcome: String,
    body: Option<serde_json::Value>,
}

impl TryFrom<EventRow> for EventRecord {
    type Error = StoreError;
    fn try_from(row: EventRow) -> StoreResult<Self> {
        Ok(Self {
            direction: Direction::parse(&row.direction).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "event {}: unknown direction {:?}",
                    row.id, row.direction
                ))
            })?,
            id: row.id,
            payment_id: row.payment_id.map(|id| id.0),
            tran_id: row.tran_id,
            at: row.at.0,
            kind: row.kind,
            counterparty: row.counterparty,
            message_id: row.message_id,
            http_status: row.http_status,
            outcome: row.outcome,
            body: row.body,
        })
    }
}

/// Filters of a payment search, newest first. `after` is the (created_at, id) of the last
/// payment of the previous page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PaymentQuery {
    pub tran_id: Option<String>,
    pub client_id: Option<String>,
    pub partner_id: Option<String>,
    pub state: Option<PaymentState>,
    /// created_at ≥ from.
    pub from: Option<DateTime<Utc>>,
    /// created_at < to.
    pub to: Option<DateTime<Utc>>,
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// The payment states the settlement report and reconciliation look at.
pub const SETTLEMENT_STATES: [PaymentState; 4] = [
    PaymentState::Confirmed,
    PaymentState::Reversed,
    PaymentState::Unknown,
    PaymentState::Approved,
];

/// One payment as settlement sees it: its final amount in minor units, and its fee. For a
/// confirmed payment that is the amount its confirmation settled (the confirmation's
/// `amounts.approvedAmount` when it gave one, else the partner's approved amount, else the
/// requested amount) and the fee fixed then; for the others the partner's approved amount,
/// else the requested amount, and no fee (fees are charged on confirmed payments only).
#[derive(Debug, Clone, PartialEq)]
pub struct SettledPayment {
    pub payment_id: Uuid,
    pub tran_id: String,
    pub partner_id: String,
    /// The `id` of the hub's `pay` to the partner: the reference the partner knows.
    pub partner_message_id: Option<String>,
    pub state: PaymentState,
    pub currency: String,
    pub amount_minor: i64,
    pub fee_minor: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SettledRow {
    id: Id,
    tran_id: String,
    partner_id: String,
    partner_message_id: Option<String>,
    state: String,
    currency: String,
    amount: i64,
    fee: i64,
    created_at: Ts,
}

impl TryFrom<SettledRow> for SettledPayment {
    type Error = StoreError;
    fn try_from(row: SettledRow) -> StoreResult<Self> {
        Ok(Self {
            state: row
                .state
                .parse()
                .map_err(|e: String| StoreError::Corrupt(format!("payment {}: {e}", row.id.0)))?,
            payment_id: row.id.0,
            tran_id: row.tran_id,
            partner_id: row.partner_id,
            partner_message_id: row.partner_message_id,
            currency: row.currency,
            amount_minor: row.amount,
            fee_minor: row.fee,
            created_at: row.created_at.0,
        })
    }
}

/// Count and sum of settled amounts per partner, currency and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementGroup {
    pub partner_id: String,
    pub currency: String,
    pub state: PaymentState,
    pub count: i64,
    pub amount_minor: i64,
    pub fee_minor: i64,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SettlementGroupRow {
    partner_id: String,
    currency: String,
    state: String,
    count: i64,
    amount: i64,
    fee: i64,
}

impl TryFrom<SettlementGroupRow> for SettlementGroup {
    type Error = StoreError;
    fn try_from(row: SettlementGroupRow) -> StoreResult<Self> {
        Ok(Self {
            state: row
                .state
                .parse()
                .map_err(|e: String| StoreError::Corrupt(format!("settlement group: {e}")))?,
            partner_id: row.partner_id,
            currency: row.currency,
            count: row.count,
            amount_minor: row.amount,
            fee_minor: row.fee,
        })
    }
}

/// The states of [`SETTLEMENT_STATES`] as an SQL list: `'CONFIRMED', 'REVERSED', …`.
pub(crate) fn settlement_states_sql() -> String {
    SETTLEMENT_STATES
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The per-payment settlement query (columns as [`SettledRow`]): `$1` from, `$2` to, `$3`
/// partner or NULL, with `text_cast` after the `$3` that is tested for NULL (PostgreSQL must
/// be told its type). It adds up typed columns only, never numbers read out of stored JSON,
/// so nothing a partner sent can make it fail.
pub(crate) fn settled_sql(text_cast: &str) -> String {
    format!(
        "SELECT p.id, p.tran_id, p.partner_id, p.partner_message_id, p.state, p.currency, \
         p.created_at, CASE WHEN p.state = 'CONFIRMED' \
         THEN COALESCE(p.settled_minor, p.approved_minor, p.amount_minor) \
         ELSE COALESCE(p.approved_minor, p.amount_minor) END AS amount, \
         CASE WHEN p.state = 'CONFIRMED' THEN COALESCE(p.fee_minor, 0) ELSE 0 END AS fee \
         FROM payment p WHERE p.partner_id IS NOT NULL AND p.state IN ({states}) \
         AND p.created_at >= $1 AND p.created_at < $2 \
         AND ($3{text_cast} IS NULL OR p.partner_id = $3)",
        states = settlement_states_sql()
    )
}

/// Wraps [`settled_sql`] into per-group totals; `cast` makes PostgreSQL's sums `bigint`.
pub(crate) fn settlement_groups_sql(settled: &str, cast: &str) -> String {
    format!(
        "SELECT partner_id, currency, state, COUNT(*) AS count, SUM(amount){cast} AS amount, \
         SUM(fee){cast} AS fee FROM ({settled}) s GROUP BY partner_id, currency, state \
         ORDER BY partner_id, currency, state"
    )
}

/// How many payments created in a window, and how many outbox rows, are in each state
/// (`GET /admin/v1/summary`). States with no rows are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub payments: Vec<(PaymentState, i64)>,
    pub outbox: Vec<(super::OutboxState, i64)>,
}

/// Payments created in [$1, $2), counted per state. Valid on both backends.
pub(crate) const PAYMENT_COUNTS_SQL: &str =
    "SELECT state, count(*) FROM payment WHERE created_at >= $1 AND created_at < $2 GROUP BY state";
/// Every outbox row, counted per state. Valid on both backends.
pub(crate) const OUTBOX_COUNTS_SQL: &str = "SELECT state, count(*) FROM outbox GROUP BY state";

/// The `(state, count)` rows of the two queries above, checked.
pub(crate) fn state_counts(
    payments: Vec<(String, i64)>,
    outbox: Vec<(String, i64)>,
) -> StoreResult<StateCounts> {
    let payments = payments
        .into_iter()
        .map(|(state, n)| {
            state
                .parse::<PaymentState>()
                .map(|s| (s, n))
                .map_err(StoreError::Corrupt)
        })
        .collect::<StoreResult<_>>()?;
    let outbox = outbox
        .into_iter()
        .map(|(state, n)| {
            super::OutboxState::parse(&state)
                .map(|s| (s, n))
                .ok_or_else(|| StoreError::Corrupt(format!("unknown outbox state {state:?}")))
        })
        .collect::<StoreResult<_>>()?;
    Ok(StateCounts { payments, outbox })
}

/// What a retention purge deletes (DESIGN.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purge {
    /// Timeline events recorded before the cut-off.
    Events,
    /// DELIVERED outbox rows last changed before the cut-off. PENDING rows are owed to a
    /// partner and FAILED or DEAD ones are an operator's open items: never purged.
    DeliveredOutbox,
    /// Payments created before the cut-off in a state they never leave (CONFIRMED, REVERSED,
    /// DECLINED, EXPIRED) and with no advice other than DELIVERED, with their advices,
    /// outbox rows, events and message ids.
    Payments,
}

impl Purge {
    pub const ALL: [Purge; 3] = [Purge::Events, Purge::DeliveredOutbox, Purge::Payments];

    /// The table a metric names.
    pub fn table(self) -> &'static str {
        match self {
            Self::Events => "payment_event",
            Self::DeliveredOutbox => "outbox",
            Self::Payments => "payment",
        }
    }
}

/// One batch of events recorded before `$1`, at most `$2`, in the order of their ids, which
/// are given as events are recorded: oldest first but for a batch writer's few
/// milliseconds. Neither backend keeps an index on `at` (PostgreSQL's migration 0012,
/// SQLite's 0010); the primary key serves the order. Valid on both backends.
pub(crate) const PURGE_EVENTS_SQL: &str = "DELETE FROM payment_event WHERE id IN \
     (SELECT id FROM payment_event WHERE at < $1 ORDER BY id LIMIT $2)";

/// One batch of DELIVERED outbox rows last changed before `$1`, at most `$2`, oldest first
/// (by the partial index on DELIVERED rows). Valid on both backends.
pub(crate) const PURGE_OUTBOX_SQL: &str = "DELETE FROM outbox WHERE state = 'DELIVERED' AND id IN \
     (SELECT id FROM outbox WHERE state = 'DELIVERED' AND updated_at < $1 \
      ORDER BY updated_at LIMIT $2)";

/// The ids of one batch of payments [`Purge::Payments`] may delete: created before `$1`, at
/// most `$2`, oldest first; `lock` is appended (PostgreSQL: `FOR UPDATE SKIP LOCKED`).
pub(crate) fn purgeable_payments_sql(lock: &str) -> String {
    format!(
        "SELECT p.id FROM payment p WHERE p.created_at < $1 \
         AND p.state IN ('CONFIRMED', 'REVERSED', 'DECLINED', 'EXPIRED') \
         AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.payment_id = p.id \
                         AND o.state <> 'DELIVERED') \
         ORDER BY p.created_at, p.id LIMIT $2 {lock}"
    )
}

/// The statements that delete the payments whose ids `ids` (an SQL subquery over `$1`)
/// lists, children first so no foreign key is left dangling. `payment_message` (PostgreSQL
/// only: the ids a payment or an early reversal holds) is freed with them.
pub(crate) fn purge_payments_sql(ids: &str, payment_message: bool) -> Vec<String> {
    let mut statements = vec![
        // By tranId as well: SQLite indexes events by tranId only (its migration 0010), and
        // every event of a payment carries the payment's tranId.
        format!(
            "DELETE FROM payment_event WHERE payment_id IN ({ids}) \
             AND tran_id IN (SELECT tran_id FROM payment WHERE id IN ({ids}))"
        ),
        format!("DELETE FROM outbox WHERE payment_id IN ({ids})"),
        format!("DELETE FROM advice WHERE payment_id IN ({ids})"),
    ];
    if payment_message {
        statements.push(format!(
            "DELETE FROM payment_message WHERE (client_id, message_id) IN \
             (SELECT client_id, message_id FROM payment WHERE id IN ({ids}))"
        ));
    }
    statements.push(format!("DELETE FROM payment WHERE id IN ({ids})"));
    statements
}
