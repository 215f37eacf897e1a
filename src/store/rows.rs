//! What both backends share: the column types that differ between them ([`Ts`], [`Id`]),
//! one `FromRow` struct per table, and one Row → Record conversion per table.
//!
//! PostgreSQL stores times as `timestamptz` and ids as `uuid`; SQLite has neither, so there
//! times are fixed-width RFC 3339 UTC text with microseconds (text order is time order) and
//! ids are hyphenated text. The two newtypes decode (and, for SQLite, encode) each form, so
//! the row structs below decode from either database.

use chrono::{DateTime, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use uuid::Uuid;

use super::{
    AdviceRecord, OutboxMessage, OutboxState, PaymentRecord, QrCodeRecord, StoreError, StoreResult,
};
use crate::domain::{AdviceKind, PaymentState};

/// A point in time as a column: `timestamptz` on PostgreSQL, fixed-width text on SQLite.
/// Both keep microseconds; finer digits are truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ts(pub DateTime<Utc>);

/// A UUID as a column: `uuid` on PostgreSQL, hyphenated text on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Id(pub Uuid);

/// The SQLite text form of a time: `2024-01-02T03:04:05.123456Z`, always 27 characters.
pub(crate) fn sqlite_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

impl Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for Ts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Ts {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(<DateTime<Utc> as Decode<Postgres>>::decode(value)?))
    }
}

impl Type<Sqlite> for Ts {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for Ts {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(sqlite_time(self.0), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Ts {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        let time = DateTime::parse_from_rfc3339(text)
            .map_err(|e| format!("stored time {text:?} is not RFC 3339: {e}"))?;
        Ok(Self(time.with_timezone(&Utc)))
    }
}

impl Type<Postgres> for Id {
    fn type_info() -> PgTypeInfo {
        <Uuid as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <Uuid as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for Id {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Uuid as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Id {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(<Uuid as Decode<Postgres>>::decode(value)?))
    }
}

impl Type<Sqlite> for Id {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for Id {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.0.hyphenated().to_string(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Id {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        let id =
            Uuid::parse_str(text).map_err(|e| format!("stored id {text:?} is not a UUID: {e}"))?;
        Ok(Self(id))
    }
}

fn payment_state(s: &str, what: impl std::fmt::Display) -> StoreResult<PaymentState> {
    s.parse()
        .map_err(|e: String| StoreError::Corrupt(format!("{what}: {e}")))
}

fn advice_kind(s: &str, what: impl std::fmt::Display) -> StoreResult<AdviceKind> {
    AdviceKind::parse(s)
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: unknown advice kind {s:?}")))
}

fn outbox_state(s: &str, what: impl std::fmt::Display) -> StoreResult<OutboxState> {
    OutboxState::parse(s)
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: unknown outbox state {s:?}")))
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct QrCodeRow {
    tran_id: String,
    client_id: String,
    message_id: String,
    scheme: String,
    payload: String,
    created_at: Ts,
    expires_at: Ts,
    amount_minor: Option<i64>,
    currency: Option<String>,
    part_payment_allowed: bool,
    over_payment_allowed: bool,
}

impl From<QrCodeRow> for QrCodeRecord {
    fn from(row: QrCodeRow) -> Self {
        Self {
            tran_id: row.tran_id,
            client_id: row.client_id,
            message_id: row.message_id,
            scheme: row.scheme,
            payload: row.payload,
            created_at: row.created_at.0,
            expires_at: row.expires_at.0,
            terms: crate::domain::CodeTerms {
                amount: row.amount_minor.zip(row.currency),
                part_payment_allowed: row.part_payment_allowed,
                over_payment_allowed: row.over_payment_allowed,
            },
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct PaymentRow {
    id: Id,
    client_id: String,
    message_id: String,
    tran_id: String,
    state: String,
    amount_minor: i64,
    currency: String,
    request: serde_json::Value,
    partner_id: Option<String>,
    partner_payment_token: Option<String>,
    scan_message_id: Option<String>,
    partner_message_id: Option<String>,
    reversed_by_pos: bool,
    partner_status: Option<i32>,
    partner_response: Option<serde_json::Value>,
    approved_minor: Option<i64>,
    settled_minor: Option<i64>,
    fee_minor: Option<i64>,
    amount_refused: bool,
    created_at: Ts,
    scan_deadline: Ts,
    updated_at: Ts,
    pos_gone_at: Option<Ts>,
}

impl TryFrom<PaymentRow> for PaymentRecord {
    type Error = StoreError;
    fn try_from(row: PaymentRow) -> StoreResult<Self> {
        Ok(Self {
            state: payment_state(&row.state, format_args!("payment {}", row.id.0))?,
            id: row.id.0,
            client_id: row.client_id,
            message_id: row.message_id,
            tran_id: row.tran_id,
            amount_minor: row.amount_minor,
            currency: row.currency,
            request: row.request,
            partner_id: row.partner_id,
            partner_payment_token: row.partner_payment_token,
            scan_message_id: row.scan_message_id,
            partner_message_id: row.partner_message_id,
            reversed_by_pos: row.reversed_by_pos,
            partner_status: row.partner_status,
            partner_response: row.partner_response,
            approved_minor: row.approved_minor,
            settled_minor: row.settled_minor,
            fee_minor: row.fee_minor,
            amount_refused: row.amount_refused,
            created_at: row.created_at.0,
            scan_deadline: row.scan_deadline.0,
            updated_at: row.updated_at.0,
            pos_gone_at: row.pos_gone_at.map(|t| t.0),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AdviceRow {
    client_id: String,
    message_id: String,
    kind: String,
    request_id: String,
    payment_id: Option<Id>,
    body: serde_json::Value,
    received_at: Ts,
}

impl TryFrom<AdviceRow> for AdviceRecord {
    type Error = StoreError;
    fn try_from(row: AdviceRow) -> StoreResult<Self> {
        Ok(Self {
            kind: advice_kind(
                &row.kind,
                format_args!("advice {}/{}", row.client_id, row.message_id),
            )?,
            client_id: row.client_id,
            message_id: row.message_id,
            request_id: row.request_id,
            payment_id: row.payment_id.map(|id| id.0),
            body: row.body,
            received_at: row.received_at.0,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct OutboxRow {
    id: Id,
    payment_id: Id,
    partner_id: String,
    kind: String,
    message_id: String,
    body: serde_json::Value,
    state: String,
    attempts: i32,
    next_attempt_at: Ts,
    last_status: Option<i32>,
    last_error: Option<String>,
    created_at: Ts,
    expires_at: Ts,
    updated_at: Ts,
}

impl TryFrom<OutboxRow> for OutboxMessage {
    type Error = StoreError;
    fn try_from(row: OutboxRow) -> StoreResult<Self> {
        let what = format!("outbox row {}", row.id.0);
        Ok(Self {
            kind: advice_kind(&row.kind, &what)?,
            state: outbox_state(&row.state, &what)?,
            id: row.id.0,
            payment_id: row.payment_id.0,
            partner_id: row.partner_id,
            message_id: row.message_id,
            body: row.body,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at.0,
            last_status: row.last_status,
            last_error: row.last_error,
            created_at: row.created_at.0,
            expires_at: row.expires_at.0,
            updated_at: row.updated_at.0,
        })
    }
}

/// Converts every row, failing on the first that does not convert.
pub(crate) fn convert_all<R, T>(rows: Vec<R>) -> StoreResult<Vec<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// The columns `finish_delivery` writes for a delivery result: (state, last_status,
/// last_error, next_attempt_at; `None` keeps the current value).
pub(crate) fn delivery_columns(
    result: &super::DeliveryResult,
) -> (
    OutboxState,
    Option<i32>,
    Option<&str>,
    Option<DateTime<Utc>>,
) {
    use super::DeliveryResult::*;
    match result {
        Delivered { status } => (OutboxState::Delivered, Some(*status), None, None),
        Failed { status, error } => (OutboxState::Failed, Some(*status), Some(error), None),
        Retry {
            status,
            error,
            next_attempt_at,
        } => (
            OutboxState::Pending,
            *status,
            Some(error),
            Some(*next_attempt_at),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    #[test]
    fn sqlite_times_are_fixed_width_and_sort_as_text() {
        let base = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 9).unwrap();
        let times = [
            base,
            base + Duration::microseconds(1),
            base + Duration::milliseconds(999),
            base + Duration::seconds(1),
            base + Duration::nanoseconds(1_000_000_999),
        ];
        let texts: Vec<String> = times.iter().map(|t| sqlite_time(*t)).collect();
        assert_eq!(texts[0], "2024-05-01T12:00:09.000000Z");
        assert!(texts.iter().all(|t| t.len() == 27));
        assert!(texts.windows(2).all(|w| w[0] <= w[1]), "{texts:?}");
        // Nanoseconds are truncated, never rounded up.
        assert_eq!(texts[4], "2024-05-01T12:00:10.000000Z");
    }

    #[test]
    fn unknown_state_names_are_corrupt() {
        assert!(matches!(
            payment_state("PAID", "payment x"),
            Err(StoreError::Corrupt(msg)) if msg.contains("payment x") && msg.contains("PAID")
        ));
        assert!(matches!(
            outbox_state("SENT", "row"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            advice_kind("REFUND", "row"),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(
            payment_state("FORWARDED", "p").unwrap(),
            PaymentState::Forwarded
        );
    }

    #[test]
    fn delivery_results_map_to_columns() {
        use super::super::DeliveryResult;
        let at = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        assert_eq!(
            delivery_columns(&DeliveryResult::Delivered { status: 202 }),
            (OutboxState::Delivered, Some(202), None, None)
        );
        assert_eq!(
            delivery_columns(&DeliveryResult::Retry {
                status: None,
                error: "timeout".into(),
                next_attempt_at: at
            }),
            (OutboxState::Pending, None, Some("timeout"), Some(at))
        );
    }
}
