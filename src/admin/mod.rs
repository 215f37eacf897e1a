//! The back office behind `/admin/v1`: payment search and timelines, the outbox and its dead
//! letters, approvals nobody advised, the settlement report and reconciliation against a partner's own report.
//!
//! Handlers (`api::admin`) parse and authenticate; this module decides and shapes; the store
//! runs the queries. Money is always integer minor units with its currency.

pub(crate) mod csv;
pub(crate) mod health;
pub(crate) mod reports;

use base64::Engine;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::{PaymentState, SettlementDay};
use crate::model::{ErrorDetail, ErrorType};
use crate::service::{span, Hub, HubError, HubResult, RefusalKind};
use crate::store::{EventRecord, OutboxMessage, OutboxState, PaymentQuery, PaymentRecord};

pub(crate) use crate::model::page::{DEFAULT_LIMIT, MAX_LIMIT};

/// An amount in minor units with its ISO 4217 numeric currency, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Money {
    pub amount: i64,
    pub currency: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PaymentView {
    pub id: Uuid,
    pub client_id: String,
    /// The POS's PaymentRequest id.
    pub message_id: String,
    pub tran_id: String,
    pub state: &'static str,
    pub amount: Money,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_payment_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan_message_id: Option<String>,
    /// The id of the hub's `pay` to the partner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_message_id: Option<String>,
    pub reversed_by_pos: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_status: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub scan_deadline: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the POS's connection closed while its pay waited for a scan (it then ended
    /// EXPIRED, never sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pos_gone_at: Option<DateTime<Utc>>,
}

impl From<&PaymentRecord> for PaymentView {
    fn from(p: &PaymentRecord) -> Self {
        Self {
            id: p.id,
            client_id: p.client_id.clone(),
            message_id: p.message_id.clone(),
            tran_id: p.tran_id.clone(),
            state: p.state.as_str(),
            amount: Money {
                amount: p.amount_minor,
                currency: p.currency.clone(),
            },
            partner_id: p.partner_id.clone(),
            partner_payment_token: p.partner_payment_token.clone(),
            scan_message_id: p.scan_message_id.clone(),
            partner_message_id: p.partner_message_id.clone(),
            reversed_by_pos: p.reversed_by_pos,
            partner_status: p.partner_status,
            created_at: p.created_at,
            scan_deadline: p.scan_deadline,
            updated_at: p.updated_at,
            pos_gone_at: p.pos_gone_at,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PaymentPage {
    pub payments: Vec<PaymentView>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The settlement day that `from` and `to` given as dates stand for.
    pub day_rule: DayRule,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventView {
    pub at: DateTime<Utc>,
    pub kind: String,
    /// `IN` (received by the hub) or `OUT` (sent by it).
    pub direction: &'static str,
    pub counterparty: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

impl From<EventRecord> for EventView {
    fn from(e: EventRecord) -> Self {
        Self {
            at: e.at,
            kind: e.kind,
            direction: e.direction.as_str(),
            counterparty: e.counterparty,
            message_id: e.message_id,
            http_status: e.http_status,
            outcome: e.outcome,
            body: e.body,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutboxView {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub partner_id: String,
    pub kind: &'static str,
    pub message_id: String,
    pub state: &'static str,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The advice as it goes to the partner.
    pub body: serde_json::Value,
}

impl From<OutboxMessage> for OutboxView {
    fn from(m: OutboxMessage) -> Self {
        Self {
            id: m.id,
            payment_id: m.payment_id,
            partner_id: m.partner_id,
            kind: m.kind.as_str(),
            message_id: m.message_id,
            state: m.state.as_str(),
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at,
            last_status: m.last_status,
            last_error: m.last_error,
            created_at: m.created_at,
            expires_at: m.expires_at,
            updated_at: m.updated_at,
            body: m.body,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PaymentDetail {
    #[serde(flatten)]
    pub payment: PaymentView,
    /// The POS's PaymentRequest as received.
    pub request: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_response: Option<serde_json::Value>,
    /// Every message in and out, oldest first (including the createQrCode and refused
    /// messages of the same tranId).
    pub timeline: Vec<EventView>,
    pub outbox: Vec<OutboxView>,
    /// Advices of this payment an operator must act on (refused by the partner, or dead):
    /// while there is one, the payment is not resolved, whatever its state says.
    pub open_items: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutboxList {
    pub outbox: Vec<OutboxView>,
}

/// 400 FORMAT_ERROR naming the query parameter.
pub(crate) fn bad_param(id: &str, field: &str, msg: &str, value: &str) -> HubError {
    HubError::refuse(
        RefusalKind::BadRequest,
        ErrorDetail::format_field(id, field, msg, value),
    )
}

pub(crate) fn not_found(id: &str, message: &str) -> HubError {
    HubError::refuse(
        RefusalKind::NotFound,
        ErrorDetail::new(id, ErrorType::UnableToLocateRecord, message),
    )
}

/// The query parameters of a request, by name (the last of a repeated one wins).
pub(crate) type Params = std::collections::HashMap<String, String>;

fn param<'p>(params: &'p Params, name: &str) -> Option<&'p str> {
    params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// `limit` (default `default`, 1 to [`MAX_LIMIT`]).
pub(crate) fn limit(id: &str, params: &Params, default: i64) -> HubResult<i64> {
    match param(params, "limit") {
        None => Ok(default),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(bad_param(
                id,
                "limit",
                &format!("must be an integer from 1 to {MAX_LIMIT}"),
                v,
            )),
        },
    }
}

/// A `YYYY-MM-DD` date: a settlement day.
pub(crate) fn date(id: &str, field: &str, value: &str) -> HubResult<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| bad_param(id, field, "must be a date YYYY-MM-DD", value))
}

/// The hub's settlement day definition (`[settlement]`): every date of the back office is
/// one of its days.
pub(crate) fn settlement_day(hub: &Hub) -> SettlementDay {
    hub.settings().settlement.day()
}

/// Which day definition an answer's dates use: the zone and the local cut-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DayRule {
    /// IANA time zone name.
    pub time_zone: &'static str,
    /// `HH:MM` local time; a payment at or past it counts on the next day (`00:00`: days
    /// end at midnight).
    pub cut_off: String,
}

impl From<SettlementDay> for DayRule {
    fn from(day: SettlementDay) -> Self {
        Self {
            time_zone: day.zone_name(),
            cut_off: day.cut_off_text(),
        }
    }
}

/// An RFC 3339 instant, or a date (a settlement day of `day`): its start (`end_of_day`
/// false) or its end (true, so that `to=2026-11-22` includes that day).
fn instant(
    id: &str,
    field: &str,
    value: &str,
    end_of_day: bool,
    day: SettlementDay,
) -> HubResult<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(within_stored_years(t.with_timezone(&Utc)));
    }
    match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(date) if (1..=9999).contains(&date.year()) => {
            let (start, end) = day.bounds(date);
            Ok(within_stored_years(if end_of_day { end } else { start }))
        }
        _ => Err(bad_param(
            id,
            field,
            "must be an RFC 3339 time or a date YYYY-MM-DD (years 0001 to 9999)",
            value,
        )),
    }
}

/// `t` within the years the store keeps times in (0001 to 9999): SQLite compares times as
/// fixed-width text, where the end of 9999-12-31 (in year 10000) would sort before every
/// payment and a search "to 9999-12-31" would find none.
fn within_stored_years(t: DateTime<Utc>) -> DateTime<Utc> {
    let earliest = NaiveDate::from_ymd_opt(1, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
    let latest = NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_micro_opt(23, 59, 59, 999_999));
    match (earliest, latest) {
        (Some(earliest), Some(latest)) => t.clamp(earliest.and_utc(), latest.and_utc()),
        _ => t,
    }
}

/// The opaque cursor of a page: base64url of `<microseconds since the epoch>:<payment id>`.
pub(crate) fn encode_cursor(created_at: DateTime<Utc>, id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{}:{}",
        created_at.timestamp_micros(),
        id
    ))
}

pub(crate) fn decode_cursor(cursor: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (micros, id) = text.split_once(':')?;
    let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    Some((at, Uuid::parse_str(id).ok()?))
}

/// `GET /admin/v1/payments`: filters, newest first, keyset pages.
pub(crate) async fn search_payments(
    hub: &Hub,
    id: &str,
    params: &Params,
) -> HubResult<PaymentPage> {
    let state = match param(params, "state") {
        None => None,
        Some(v) => Some(v.parse::<PaymentState>().map_err(|_| {
            let names: Vec<&str> = PaymentState::ALL.iter().map(|s| s.as_str()).collect();
            bad_param(id, "state", &format!("one of {}", names.join(", ")), v)
        })?),
    };
    let after = match param(params, "after") {
        None => None,
        Some(v) => Some(
            decode_cursor(v)
                .ok_or_else(|| bad_param(id, "after", "not a cursor this API returned", v))?,
        ),
    };
    let limit = limit(id, params, DEFAULT_LIMIT)?;
    let day = settlement_day(hub);
    let query = PaymentQuery {
        tran_id: param(params, "tranId").map(str::to_owned),
        client_id: param(params, "clientId").map(str::to_owned),
        partner_id: param(params, "partnerId").map(str::to_owned),
        state,
        from: param(params, "from")
            .map(|v| instant(id, "from", v, false, day))
            .transpose()?,
        to: param(params, "to")
            .map(|v| instant(id, "to", v, true, day))
            .transpose()?,
        after,
        // One more than asked: whether there is a next page.
        limit: limit + 1,
    };
    let mut found = hub.store.search_payments(&query).await?;
    let more = found.len() as i64 > limit;
    found.truncate(limit as usize);
    let next = more
        .then(|| found.last().map(|p| encode_cursor(p.created_at, p.id)))
        .flatten();
    Ok(PaymentPage {
        payments: found.iter().map(PaymentView::from).collect(),
        next,
        day_rule: day.into(),
    })
}

/// `GET /admin/v1/payments/{id}`: the payment, its timeline and its outbox rows.
pub(crate) async fn payment_detail(
    hub: &Hub,
    id: &str,
    payment_id: &str,
) -> HubResult<PaymentDetail> {
    let uuid = Uuid::parse_str(payment_id)
        .map_err(|_| bad_param(id, "id", "must be a payment id (UUID)", payment_id))?;
    let payment = hub
        .store
        .payment(uuid)
        .await?
        .ok_or_else(|| not_found(id, "Payment not found"))?;
    // This instance's batched events first, so the timeline is whole.
    hub.flush_events().await;
    let timeline = hub
        .store
        .payment_timeline(payment.id, &payment.tran_id)
        .await?;
    let outbox = hub.store.outbox_for_payment(payment.id).await?;
    let open_items = outbox
        .iter()
        .filter(|row| matches!(row.state, OutboxState::Failed | OutboxState::Dead))
        .count();
    Ok(PaymentDetail {
        open_items,
        payment: PaymentView::from(&payment),
        request: payment.request,
        partner_response: payment.partner_response,
        timeline: timeline.into_iter().map(EventView::from).collect(),
        outbox: outbox.into_iter().map(OutboxView::from).collect(),
    })
}

/// `GET /admin/v1/outbox?state=…`: rows in one state (default DEAD), oldest first.
pub(crate) async fn outbox(hub: &Hub, id: &str, params: &Params) -> HubResult<OutboxList> {
    let state = match param(params, "state") {
        None => OutboxState::Dead,
        Some(v) => OutboxState::parse(v)
            .ok_or_else(|| bad_param(id, "state", "one of PENDING, DELIVERED, FAILED, DEAD", v))?,
    };
    let limit = limit(id, params, 100)?;
    let rows = hub.store.outbox_by_state(state, limit).await?;
    Ok(OutboxList {
        outbox: rows.into_iter().map(OutboxView::from).collect(),
    })
}

/// An approval nobody advised, with how long it has waited and what the hub will do.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UnadvisedView {
    #[serde(flatten)]
    pub payment: PaymentView,
    /// When the partner's approval was recorded.
    pub approved_at: DateTime<Utc>,
    /// Seconds since then, by the hub's clock.
    pub age_seconds: i64,
    /// The client's `unadvised_approvals` policy: `nothing` or `reverse`.
    pub policy: &'static str,
    /// When the hub reverses it (policy `reverse`); absent for `nothing`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverse_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UnadvisedList {
    /// Approvals older than this are listed (`unadvised.listed_after`).
    pub listed_after_seconds: u64,
    /// How many there are in all clients (the list is at most `limit` long).
    pub count: i64,
    /// Oldest approval first.
    pub payments: Vec<UnadvisedView>,
}

/// `GET /admin/v1/unadvised?clientId=&limit=`: payments APPROVED longer than
/// `unadvised.listed_after` ago that no POS confirmed or reversed, oldest first.
pub(crate) async fn unadvised(hub: &Hub, id: &str, params: &Params) -> HubResult<UnadvisedList> {
    let limit = limit(id, params, 100)?;
    let now = hub.clock.now();
    let listed_before = now - span(hub.settings().unadvised.listed_after);
    let client = param(params, "clientId");
    let rows = hub
        .store
        .unadvised_approvals(listed_before, client, limit)
        .await?;
    let stats = hub.store.unadvised_stats(listed_before).await?;
    let payments = rows
        .iter()
        .map(|p| {
            let policy = hub.settings().unadvised_policy(&p.client_id);
            let reverse = policy == crate::config::UnadvisedPolicy::Reverse;
            UnadvisedView {
                payment: PaymentView::from(p),
                approved_at: p.updated_at,
                age_seconds: (now - p.updated_at).num_seconds().max(0),
                policy: if reverse { "reverse" } else { "nothing" },
                reverse_at: reverse
                    .then(|| p.updated_at + span(hub.settings().unadvised.act_after)),
            }
        })
        .collect();
    Ok(UnadvisedList {
        listed_after_seconds: hub.settings().unadvised.listed_after.as_secs(),
        count: stats.count,
        payments,
    })
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Retried {
    pub id: Uuid,
    pub state: &'static str,
    pub next_attempt_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// `POST /admin/v1/outbox/{id}/retry`: a DEAD row, or one the partner refused (FAILED),
/// becomes PENDING, due now, with a fresh `outbox.expiry`; 404 for any other row.
pub(crate) async fn retry_dead_letter(hub: &Hub, id: &str, row_id: &str) -> HubResult<Retried> {
    let uuid = Uuid::parse_str(row_id)
        .map_err(|_| bad_param(id, "id", "must be an outbox row id (UUID)", row_id))?;
    let now = hub.clock.now();
    let expires_at = now + span(hub.settings().outbox.expiry);
    if !hub.store.retry_dead_letter(uuid, now, expires_at).await? {
        return Err(not_found(id, "No dead or refused outbox row with this id"));
    }
    tracing::info!(outbox_id = %uuid, "dead or refused advice retried by an operator");
    hub.outbox_wake.notify_one();
    Ok(Retried {
        id: uuid,
        state: OutboxState::Pending.as_str(),
        next_attempt_at: now,
        expires_at,
    })
}

/// One state and how many are in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct StateCount {
    pub state: &'static str,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Summary {
    /// The settlement day the payment counts are for.
    pub date: NaiveDate,
    /// What that day is: zone and cut-off.
    pub day_rule: DayRule,
    /// Payments created that day, per state, every state listed (in lifecycle order).
    pub payments: Vec<StateCount>,
    /// Every outbox row, per state, every state listed.
    pub outbox: Vec<StateCount>,
    /// When the oldest PENDING advice was queued; absent when none is pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_pending_at: Option<DateTime<Utc>>,
}

/// `GET /admin/v1/summary?date=`: payments of the settlement day (default today) by state, and
/// the outbox by state, for the console's live counts.
pub(crate) async fn summary(hub: &Hub, id: &str, params: &Params) -> HubResult<Summary> {
    let day = settlement_day(hub);
    let date = match param(params, "date") {
        Some(v) => date(id, "date", v)?,
        None => day.today(hub.clock.as_ref()),
    };
    let (from, to) = day.bounds(date);
    let counts = hub.store.state_counts(from, to).await?;
    let stats = hub.store.outbox_stats().await?;
    let count_of = |found: &[(PaymentState, i64)], state: PaymentState| {
        found
            .iter()
            .filter(|(s, _)| *s == state)
            .map(|(_, n)| n)
            .sum()
    };
    let payments = PaymentState::ALL
        .iter()
        .map(|&state| StateCount {
            state: state.as_str(),
            count: count_of(&counts.payments, state),
        })
        .collect();
    let outbox = [
        OutboxState::Pending,
        OutboxState::Delivered,
        OutboxState::Failed,
        OutboxState::Dead,
    ]
    .iter()
    .map(|&state| StateCount {
        state: state.as_str(),
        count: counts
            .outbox
            .iter()
            .filter(|(s, _)| *s == state)
            .map(|(_, n)| n)
            .sum(),
    })
    .collect();
    Ok(Summary {
        date,
        day_rule: day.into(),
        payments,
        outbox,
        oldest_pending_at: stats.oldest_created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let at = DateTime::from_timestamp_micros(1_732_269_600_123_456).unwrap();
        let id = Uuid::new_v4();
        assert_eq!(decode_cursor(&encode_cursor(at, id)), Some((at, id)));
        assert_eq!(decode_cursor("not a cursor"), None);
        assert_eq!(decode_cursor(""), None);
    }

    #[test]
    fn the_last_day_of_year_9999_is_a_bound_the_store_can_compare() {
        let utc = SettlementDay::default();
        let to = instant("x", "to", "9999-12-31", true, utc).unwrap();
        assert_eq!(to.year(), 9999);
        let far = instant("x", "to", "+12000-01-01T00:00:00Z", true, utc);
        assert!(far.map_or(true, |t| t.year() == 9999));
        assert!(instant("x", "to", "12000-01-01", true, utc).is_err());
    }

    #[test]
    fn a_date_as_to_includes_that_day() {
        let utc = SettlementDay::default();
        let to = instant("x", "to", "2026-11-22", true, utc).unwrap();
        assert_eq!(to.to_rfc3339(), "2026-11-23T00:00:00+00:00");
        let from = instant("x", "from", "2026-11-22", false, utc).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-11-22T00:00:00+00:00");
        assert!(instant("x", "from", "yesterday", false, utc).is_err());
        // A settlement day ending 23:00 in Johannesburg (UTC+2).
        let jhb = SettlementDay::new(
            chrono_tz::Africa::Johannesburg,
            chrono::NaiveTime::from_hms_opt(23, 0, 0).unwrap(),
        );
        let from = instant("x", "from", "2026-11-22", false, jhb).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-11-21T21:00:00+00:00");
        let to = instant("x", "to", "2026-11-22", true, jhb).unwrap();
        assert_eq!(to.to_rfc3339(), "2026-11-22T21:00:00+00:00");
    }
}
