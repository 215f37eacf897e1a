//! The day's settlement per partner and currency, and reconciliation of it against the
//! partner's own report.
//!
//! Days are settlement days (`[settlement]`: a time zone and a local cut-off, default UTC
//! 00:00; see `domain::SettlementDay`): a payment belongs to the day of the instant it was
//! created (its `pay` received), read on the zone's clock, and to the next day when that is at
//! or past the cut-off. Every report says which definition it used (`timeZone`, `cutOff`)
//! and which instants it covered (`from`, `to`).
//!
//! # Settlement CSV
//! One header row, then one row per partner × currency:
//!
//! `date,partnerId,currency,` then for each of `confirmed`, `reversed`, `unknown`, `approved`:
//! `…Count,…Amount,…Fees,…Net`; then `timeZone,cutOff`, the day definition.
//!
//! - `confirmed*`: payments CONFIRMED; the amount (gross) is the confirmation's
//!   `amounts.approvedAmount` when it gave one (a partial confirmation), else the partner's
//!   approved amount, else the requested amount; the fees are those fixed at confirmation by
//!   the partner's (or the client's) schedule then in force, and net = gross − fees;
//! - `reversed*`: REVERSED (by the POS, or after an unknown outcome);
//! - `unknown*`: UNKNOWN (the partner's outcome was never learnt; the hub queued a reversal);
//! - `approved*`: APPROVED by the partner and not yet confirmed or reversed by the POS.
//!
//! Amounts are integer minor units of `currency` (ISO 4217 numeric, as on the wire).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{bad_param, csv, settlement_day, DayRule};
use crate::domain::PaymentState;
use crate::model::{ErrorDetail, FormatError};
use crate::service::{Hub, HubError, HubResult, RefusalKind};
use crate::store::SettledPayment;

/// How many payments and how much money: gross, the fees on it, and what is left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Tally {
    pub count: i64,
    /// Gross, in minor units.
    pub amount: i64,
    pub fees: i64,
    /// `amount − fees`.
    pub net: i64,
}

impl Tally {
    fn add(&mut self, count: i64, amount: i64, fees: i64) {
        self.count += count;
        self.amount += amount;
        self.fees += fees;
        self.net = self.amount - self.fees;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SettlementRow {
    pub partner_id: String,
    pub currency: String,
    pub confirmed: Tally,
    pub reversed: Tally,
    pub unknown: Tally,
    /// Approved by the partner, not yet confirmed or reversed.
    pub approved: Tally,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SettlementReport {
    /// The settlement day.
    pub date: NaiveDate,
    #[serde(flatten)]
    pub day_rule: DayRule,
    /// The instants the day covers: payments created in `[from, to)`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<String>,
    pub rows: Vec<SettlementRow>,
}

pub(crate) const SETTLEMENT_CSV_HEADER: [&str; 21] = [
    "date",
    "partnerId",
    "currency",
    "confirmedCount",
    "confirmedAmount",
    "confirmedFees",
    "confirmedNet",
    "reversedCount",
    "reversedAmount",
    "reversedFees",
    "reversedNet",
    "unknownCount",
    "unknownAmount",
    "unknownFees",
    "unknownNet",
    "approvedCount",
    "approvedAmount",
    "approvedFees",
    "approvedNet",
    "timeZone",
    "cutOff",
];

impl SettlementReport {
    pub(crate) fn to_csv(&self) -> String {
        let mut out = csv::line(SETTLEMENT_CSV_HEADER);
        for r in &self.rows {
            let date = self.date.to_string();
            let numbers = [r.confirmed, r.reversed, r.unknown, r.approved]
                .iter()
                .flat_map(|t| [t.count, t.amount, t.fees, t.net].map(|n| n.to_string()))
                .collect::<Vec<_>>();
            let mut fields = vec![date, r.partner_id.clone(), r.currency.clone()];
            fields.extend(numbers);
            fields.push(self.day_rule.time_zone.to_owned());
            fields.push(self.day_rule.cut_off.clone());
            out.push_str(&csv::line(fields));
        }
        out
    }
}

/// The settlement day (`date`, default today) and optional partner of a report request.
pub(crate) fn report_scope(
    hub: &Hub,
    id: &str,
    params: &super::Params,
) -> HubResult<(NaiveDate, Option<String>)> {
    let date = match super::param(params, "date") {
        Some(v) => super::date(id, "date", v)?,
        None => settlement_day(hub).today(hub.clock.as_ref()),
    };
    Ok((date, super::param(params, "partnerId").map(str::to_owned)))
}

/// `GET /admin/v1/reports/settlement`.
pub(crate) async fn settlement(
    hub: &Hub,
    date: NaiveDate,
    partner_id: Option<String>,
) -> HubResult<SettlementReport> {
    let day = settlement_day(hub);
    let (from, to) = day.bounds(date);
    let groups = hub
        .store
        .settlement_groups(from, to, partner_id.as_deref())
        .await?;
    let mut rows: BTreeMap<(String, String), SettlementRow> = BTreeMap::new();
    for g in groups {
        let row = rows
            .entry((g.partner_id.clone(), g.currency.clone()))
            .or_insert_with(|| SettlementRow {
                partner_id: g.partner_id.clone(),
                currency: g.currency.clone(),
                confirmed: Tally::default(),
                reversed: Tally::default(),
                unknown: Tally::default(),
                approved: Tally::default(),
            });
        let tally = match g.state {
            PaymentState::Confirmed => &mut row.confirmed,
            PaymentState::Reversed => &mut row.reversed,
            PaymentState::Unknown => &mut row.unknown,
            PaymentState::Approved => &mut row.approved,
            _ => continue,
        };
        tally.add(g.count, g.amount_minor, g.fee_minor);
    }
    Ok(SettlementReport {
        date,
        day_rule: day.into(),
        from,
        to,
        partner_id,
        rows: rows.into_values().collect(),
    })
}

/// A row of the partner's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PartnerRow {
    pub tran_id: String,
    #[serde(default)]
    pub partner_reference: Option<String>,
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    /// CONFIRMED or REVERSED.
    pub status: String,
    /// What the partner says the fee on this payment is (minor units), where its report
    /// carries fees; compared with the fee the hub fixed at confirmation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee: Option<i64>,
    /// The partner's net (`amount − fee`, minor units), where its report carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<i64>,
}

/// The partner's totals of the day's confirmed payments in one currency, where its report
/// gives totals rather than (or as well as) a fee per payment. Each figure is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PartnerTotal {
    pub currency: String,
    /// Gross of the confirmed payments, minor units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fees: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<i64>,
}

/// The partner's report: one row per payment, and optionally its day totals per currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartnerReport {
    pub rows: Vec<PartnerRow>,
    pub totals: Vec<PartnerTotal>,
}

const PARTNER_STATUSES: [&str; 2] = ["CONFIRMED", "REVERSED"];

fn format_errors(id: &str, errors: Vec<FormatError>) -> HubError {
    HubError::refuse(
        RefusalKind::BadRequest,
        ErrorDetail::format_error(id, &errors),
    )
}

/// The partner's report from CSV (header `tranId,partnerReference,amount,currency,status`,
/// optionally `fee` and `net`, columns in any order) or JSON (an array of rows, or
/// `{"rows": [...], "totals": [...]}` with optional day totals per currency).
pub(crate) fn parse_partner_report(
    id: &str,
    body: &[u8],
    is_csv: bool,
) -> HubResult<PartnerReport> {
    let (rows, totals) = if is_csv {
        (parse_partner_csv(id, body)?, Vec::new())
    } else {
        // Read as JSON first and then by shape, so that a mistake is named by what is wrong
        // with the report, not by the hub's own type names.
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| bad_param(id, "body", &format!("not JSON: {e}"), ""))?;
        let (rows, totals) = match value {
            rows @ serde_json::Value::Array(_) => (rows, None),
            serde_json::Value::Object(mut report) => (
                report.remove("rows").unwrap_or(serde_json::Value::Null),
                report.remove("totals"),
            ),
            _ => {
                return Err(bad_param(
                    id,
                    "body",
                    "a report is an array of rows, or an object with rows and totals",
                    "",
                ))
            }
        };
        let rows: Vec<PartnerRow> = serde_json::from_value(rows)
            .map_err(|e| bad_param(id, "rows", &format!("not a list of report rows: {e}"), ""))?;
        let totals: Vec<PartnerTotal> = match totals {
            Some(totals) => serde_json::from_value(totals).map_err(|e| {
                bad_param(id, "totals", &format!("not a list of day totals: {e}"), "")
            })?,
            None => Vec::new(),
        };
        (rows, totals)
    };
    let mut errors = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if !PARTNER_STATUSES.contains(&r.status.as_str()) {
            errors.push(FormatError {
                field: format!("rows[{i}].status"),
                msg: "must be CONFIRMED or REVERSED".into(),
                value: r.status.clone(),
            });
        }
        if r.tran_id.is_empty() {
            errors.push(FormatError {
                field: format!("rows[{i}].tranId"),
                msg: "may not be empty".into(),
                value: String::new(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(format_errors(id, errors));
    }
    Ok(PartnerReport { rows, totals })
}

fn parse_partner_csv(id: &str, body: &[u8]) -> HubResult<Vec<PartnerRow>> {
    let text =
        std::str::from_utf8(body).map_err(|_| bad_param(id, "body", "CSV must be UTF-8", ""))?;
    let records = csv::parse(text)
        .map_err(|line| bad_param(id, &format!("line {line}"), "unterminated quoted field", ""))?;
    let Some((header, records)) = records.split_first() else {
        return Ok(Vec::new());
    };
    let column = |name: &str| header.iter().position(|h| h.trim() == name);
    let required = ["tranId", "amount", "currency", "status"];
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|c| column(c).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(bad_param(
            id,
            "line 1",
            &format!("header lacks {}", missing.join(", ")),
            &header.join(","),
        ));
    }
    let at = |record: &[String], name: &str| -> String {
        column(name)
            .and_then(|i| record.get(i))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, record) in records.iter().enumerate() {
        // Line numbers as a person counts them: the header is line 1.
        let line = i + 2;
        let amount_text = at(record, "amount");
        let Ok(amount) = amount_text.parse::<i64>() else {
            errors.push(FormatError {
                field: format!("line {line}.amount"),
                msg: "must be an integer amount in minor units".into(),
                value: amount_text,
            });
            continue;
        };
        // The optional money columns: absent or empty is "not given".
        let mut optional = |name: &str| -> Option<i64> {
            let text = at(record, name);
            if text.is_empty() {
                return None;
            }
            let parsed = text.parse::<i64>().ok();
            if parsed.is_none() {
                errors.push(FormatError {
                    field: format!("line {line}.{name}"),
                    msg: "must be an integer amount in minor units".into(),
                    value: text,
                });
            }
            parsed
        };
        let fee = optional("fee");
        let net = optional("net");
        rows.push(PartnerRow {
            tran_id: at(record, "tranId"),
            partner_reference: Some(at(record, "partnerReference")).filter(|r| !r.is_empty()),
            amount,
            currency: at(record, "currency"),
            status: at(record, "status").to_ascii_uppercase(),
            fee,
            net,
        });
    }
    if !errors.is_empty() {
        return Err(format_errors(id, errors));
    }
    Ok(rows)
}

/// A payment as the hub sees it in a reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HubEntry {
    pub tran_id: String,
    pub payment_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_reference: Option<String>,
    pub amount: i64,
    pub currency: String,
    /// CONFIRMED, REVERSED (also for UNKNOWN: the hub reversed it) or APPROVED (not yet
    /// advised by the POS).
    pub status: &'static str,
    /// The fee fixed at confirmation (0 for any other status).
    pub fee: i64,
    /// `amount − fee`.
    pub net: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AmountMismatch {
    pub tran_id: String,
    pub payment_id: Uuid,
    pub hub_amount: i64,
    pub hub_currency: String,
    pub partner_amount: i64,
    pub partner_currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatusMismatch {
    pub tran_id: String,
    pub payment_id: Uuid,
    pub hub_status: &'static str,
    pub partner_status: String,
}

/// A payment whose fee or net the partner states differently from the hub. The partner's
/// figures are those its row gave; a figure it left out is not compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FeeMismatch {
    pub tran_id: String,
    pub payment_id: Uuid,
    pub currency: String,
    pub hub_fee: i64,
    pub hub_net: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_fee: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_net: Option<i64>,
}

/// A currency whose day totals of confirmed payments (gross, fees, net) the partner states
/// differently from the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TotalMismatch {
    pub currency: String,
    pub hub_amount: i64,
    pub hub_fees: i64,
    pub hub_net: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_fees: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_net: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Reconciliation {
    /// The settlement day.
    pub date: NaiveDate,
    #[serde(flatten)]
    pub day_rule: DayRule,
    /// The instants the day covers: payments created in `[from, to)`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub partner_id: String,
    /// Rows present on both sides with the same amount, currency and status, and the same
    /// fee and net where the partner gave them.
    pub matched: usize,
    pub hub_only: Vec<HubEntry>,
    pub partner_only: Vec<PartnerRow>,
    pub amount_mismatches: Vec<AmountMismatch>,
    pub status_mismatches: Vec<StatusMismatch>,
    pub fee_mismatches: Vec<FeeMismatch>,
    /// Only where the partner's report gave `totals`.
    pub total_mismatches: Vec<TotalMismatch>,
}

fn hub_status(state: PaymentState) -> &'static str {
    match state {
        PaymentState::Confirmed => "CONFIRMED",
        PaymentState::Reversed | PaymentState::Unknown => "REVERSED",
        _ => "APPROVED",
    }
}

fn hub_entry(p: &SettledPayment) -> HubEntry {
    HubEntry {
        tran_id: p.tran_id.clone(),
        payment_id: p.payment_id,
        partner_reference: p.partner_message_id.clone(),
        amount: p.amount_minor,
        currency: p.currency.clone(),
        status: hub_status(p.state),
        fee: p.fee_minor,
        net: p.amount_minor - p.fee_minor,
    }
}

/// The day's confirmed payments per currency: gross and fees.
fn confirmed_totals(hub: &[SettledPayment]) -> BTreeMap<&str, (i64, i64)> {
    let mut totals: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for p in hub.iter().filter(|p| p.state == PaymentState::Confirmed) {
        let t = totals.entry(p.currency.as_str()).or_default();
        t.0 += p.amount_minor;
        t.1 += p.fee_minor;
    }
    totals
}

/// Compares the hub's settled payments of one partner and day with the partner's rows.
/// Rows pair by `tranId`; when a tranId has several payments (an earlier attempt ended and
/// freed it), the one whose partner reference (the hub's `pay` id) matches wins, else the
/// oldest unpaired one.
pub(crate) fn reconcile(
    day: &DayScope,
    partner_id: String,
    hub: &[SettledPayment],
    partner: PartnerReport,
) -> Reconciliation {
    let mut by_tran: HashMap<&str, Vec<&SettledPayment>> = HashMap::new();
    for p in hub {
        by_tran.entry(p.tran_id.as_str()).or_default().push(p);
    }
    let mut report = Reconciliation {
        date: day.date,
        day_rule: day.rule.clone(),
        from: day.from,
        to: day.to,
        partner_id,
        matched: 0,
        hub_only: Vec::new(),
        partner_only: Vec::new(),
        amount_mismatches: Vec::new(),
        status_mismatches: Vec::new(),
        fee_mismatches: Vec::new(),
        total_mismatches: Vec::new(),
    };
    let totals = confirmed_totals(hub);
    for given in &partner.totals {
        let (amount, fees) = totals
            .get(given.currency.as_str())
            .copied()
            .unwrap_or_default();
        let differs = |theirs: Option<i64>, ours: i64| theirs.is_some_and(|t| t != ours);
        if differs(given.amount, amount)
            || differs(given.fees, fees)
            || differs(given.net, amount - fees)
        {
            report.total_mismatches.push(TotalMismatch {
                currency: given.currency.clone(),
                hub_amount: amount,
                hub_fees: fees,
                hub_net: amount - fees,
                partner_amount: given.amount,
                partner_fees: given.fees,
                partner_net: given.net,
            });
        }
    }
    for row in partner.rows {
        let candidates = by_tran.get_mut(row.tran_id.as_str());
        let Some(candidates) = candidates.filter(|c| !c.is_empty()) else {
            report.partner_only.push(row);
            continue;
        };
        let pick = candidates
            .iter()
            .position(|p| {
                row.partner_reference.is_some()
                    && p.partner_message_id.as_deref() == row.partner_reference.as_deref()
            })
            .unwrap_or(0);
        let p = candidates.remove(pick);
        let mut same = true;
        if p.amount_minor != row.amount || p.currency != row.currency {
            same = false;
            report.amount_mismatches.push(AmountMismatch {
                tran_id: row.tran_id.clone(),
                payment_id: p.payment_id,
                hub_amount: p.amount_minor,
                hub_currency: p.currency.clone(),
                partner_amount: row.amount,
                partner_currency: row.currency.clone(),
            });
        }
        let status = hub_status(p.state);
        if status != row.status {
            same = false;
            report.status_mismatches.push(StatusMismatch {
                tran_id: row.tran_id.clone(),
                payment_id: p.payment_id,
                hub_status: status,
                partner_status: row.status.clone(),
            });
        }
        let hub_net = p.amount_minor - p.fee_minor;
        if row.fee.is_some_and(|f| f != p.fee_minor) || row.net.is_some_and(|n| n != hub_net) {
            same = false;
            report.fee_mismatches.push(FeeMismatch {
                tran_id: row.tran_id.clone(),
                payment_id: p.payment_id,
                currency: p.currency.clone(),
                hub_fee: p.fee_minor,
                hub_net,
                partner_fee: row.fee,
                partner_net: row.net,
            });
        }
        if same {
            report.matched += 1;
        }
    }
    let mut left: Vec<&SettledPayment> = by_tran.into_values().flatten().collect();
    left.sort_by_key(|p| (p.created_at, p.payment_id));
    report.hub_only = left.into_iter().map(hub_entry).collect();
    report
}

/// A settlement day as a report states it: its date, definition and instants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DayScope {
    pub date: NaiveDate,
    pub rule: DayRule,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl DayScope {
    pub(crate) fn new(day: crate::domain::SettlementDay, date: NaiveDate) -> Self {
        let (from, to) = day.bounds(date);
        Self {
            date,
            rule: day.into(),
            from,
            to,
        }
    }
}

/// `POST /admin/v1/reports/reconciliation`.
pub(crate) async fn reconciliation(
    hub: &Hub,
    date: NaiveDate,
    partner_id: String,
    report: PartnerReport,
) -> HubResult<Reconciliation> {
    let day = DayScope::new(settlement_day(hub), date);
    let settled = hub
        .store
        .settled_payments(day.from, day.to, Some(&partner_id))
        .await?;
    Ok(reconcile(&day, partner_id, &settled, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn settled(tran: &str, state: PaymentState, amount: i64) -> SettledPayment {
        SettledPayment {
            payment_id: Uuid::new_v4(),
            tran_id: tran.into(),
            partner_id: "w".into(),
            partner_message_id: Some(format!("ref-{tran}")),
            state,
            currency: "710".into(),
            amount_minor: amount,
            fee_minor: 0,
            created_at: Utc::now(),
        }
    }

    fn row(tran: &str, amount: i64, status: &str) -> PartnerRow {
        PartnerRow {
            tran_id: tran.into(),
            partner_reference: None,
            amount,
            currency: "710".into(),
            status: status.into(),
            fee: None,
            net: None,
        }
    }

    fn scope() -> DayScope {
        DayScope::new(
            crate::domain::SettlementDay::default(),
            NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
        )
    }

    #[test]
    fn differences_of_every_kind() {
        let hub = [
            settled("a", PaymentState::Confirmed, 100),
            settled("b", PaymentState::Confirmed, 200),
            settled("c", PaymentState::Unknown, 300),
            settled("d", PaymentState::Confirmed, 400),
            settled("e", PaymentState::Reversed, 500),
        ];
        let partner = vec![
            row("a", 100, "CONFIRMED"),
            row("b", 250, "CONFIRMED"),
            row("c", 300, "REVERSED"),
            row("e", 500, "CONFIRMED"),
            row("z", 1, "CONFIRMED"),
        ];
        let partner = PartnerReport {
            rows: partner,
            totals: Vec::new(),
        };
        let r = reconcile(&scope(), "w".into(), &hub, partner);
        assert_eq!(r.matched, 2);
        assert_eq!(r.amount_mismatches.len(), 1);
        assert_eq!(r.amount_mismatches[0].tran_id, "b");
        assert_eq!(r.status_mismatches.len(), 1);
        assert_eq!(r.status_mismatches[0].tran_id, "e");
        assert_eq!(r.hub_only.len(), 1);
        assert_eq!(r.hub_only[0].tran_id, "d");
        assert_eq!(r.partner_only.len(), 1);
        assert_eq!(r.partner_only[0].tran_id, "z");
        assert!(r.fee_mismatches.is_empty() && r.total_mismatches.is_empty());
    }

    #[test]
    fn fees_and_net_are_compared_where_the_partner_gives_them() {
        let mut a = settled("a", PaymentState::Confirmed, 1000);
        a.fee_minor = 115;
        let mut b = settled("b", PaymentState::Confirmed, 2000);
        b.fee_minor = 130;
        let c = settled("c", PaymentState::Reversed, 300);
        let hub = [a, b, c];
        let with = |tran: &str, amount, status: &str, fee, net| PartnerRow {
            fee,
            net,
            ..row(tran, amount, status)
        };
        let partner = PartnerReport {
            rows: vec![
                // a agrees on both; b's fee differs (its net follows); c gives none.
                with("a", 1000, "CONFIRMED", Some(115), Some(885)),
                with("b", 2000, "CONFIRMED", Some(140), Some(1860)),
                with("c", 300, "REVERSED", None, None),
            ],
            totals: vec![
                PartnerTotal {
                    currency: "710".into(),
                    amount: Some(3000),
                    fees: Some(255),
                    net: None,
                },
                PartnerTotal {
                    currency: "840".into(),
                    amount: None,
                    fees: Some(0),
                    net: Some(0),
                },
            ],
        };
        let r = reconcile(&scope(), "w".into(), &hub, partner);
        assert_eq!(r.matched, 2);
        assert_eq!(
            r.fee_mismatches,
            vec![FeeMismatch {
                tran_id: "b".into(),
                payment_id: hub[1].payment_id,
                currency: "710".into(),
                hub_fee: 130,
                hub_net: 1870,
                partner_fee: Some(140),
                partner_net: Some(1860),
            }]
        );
        assert_eq!(
            r.total_mismatches,
            vec![TotalMismatch {
                currency: "710".into(),
                hub_amount: 3000,
                hub_fees: 245,
                hub_net: 2755,
                partner_amount: Some(3000),
                partner_fees: Some(255),
                partner_net: None,
            }]
        );
    }

    #[test]
    fn partner_csv_in_any_column_order_and_bad_amounts_named() {
        let body = b"status,tranId,amount,currency,partnerReference\r\nconfirmed,a,100,710,r1\n";
        let rows = parse_partner_report("x", body, true).unwrap().rows;
        assert_eq!((rows[0].fee, rows[0].net), (None, None));
        let with_fees =
            b"tranId,amount,currency,status,fee,net\na,100,710,CONFIRMED,2,98\nb,5,710,REVERSED,,\n";
        let fees = parse_partner_report("x", with_fees, true).unwrap().rows;
        assert_eq!((fees[0].fee, fees[0].net), (Some(2), Some(98)));
        assert_eq!((fees[1].fee, fees[1].net), (None, None));
        let bad_fee = b"tranId,amount,currency,status,fee\na,100,710,CONFIRMED,1.5\n";
        assert!(parse_partner_report("x", bad_fee, true).is_err());
        let totals = br#"{"rows": [], "totals": [{"currency": "710", "fees": 5}]}"#;
        assert_eq!(
            parse_partner_report("x", totals, false)
                .unwrap()
                .totals
                .len(),
            1
        );
        assert_eq!(rows[0].status, "CONFIRMED");
        assert_eq!(rows[0].partner_reference.as_deref(), Some("r1"));
        let bad = b"tranId,partnerReference,amount,currency,status\na,,12.50,710,CONFIRMED\n";
        match parse_partner_report("x", bad, true) {
            Err(HubError::Refused { detail, .. }) => {
                let json = serde_json::to_value(&detail).unwrap();
                assert!(json.to_string().contains("line 2.amount"), "{json}");
            }
            other => panic!("{other:?}"),
        }
        let json =
            br#"{"rows": [{"tranId": "a", "amount": 5, "currency": "710", "status": "REVERSED"}]}"#;
        assert_eq!(
            parse_partner_report("x", json, false).unwrap().rows.len(),
            1
        );
        let float = br#"[{"tranId": "a", "amount": 5.5, "currency": "710", "status": "REVERSED"}]"#;
        assert!(parse_partner_report("x", float, false).is_err());
    }

    #[test]
    fn csv_report_has_its_documented_columns() {
        let report = SettlementReport {
            date: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
            day_rule: crate::domain::SettlementDay::default().into(),
            from: Utc::now(),
            to: Utc::now(),
            partner_id: None,
            rows: vec![SettlementRow {
                partner_id: "w".into(),
                currency: "710".into(),
                confirmed: Tally {
                    count: 2,
                    amount: 300,
                    fees: 6,
                    net: 294,
                },
                reversed: Tally::default(),
                unknown: Tally::default(),
                approved: Tally {
                    count: 1,
                    amount: 5,
                    fees: 0,
                    net: 5,
                },
            }],
        };
        assert_eq!(
            report.to_csv(),
            "date,partnerId,currency,confirmedCount,confirmedAmount,confirmedFees,confirmedNet,\
             reversedCount,reversedAmount,reversedFees,reversedNet,unknownCount,unknownAmount,\
             unknownFees,unknownNet,approvedCount,approvedAmount,approvedFees,approvedNet,\
             timeZone,cutOff\r\n\
             2026-11-22,w,710,2,300,6,294,0,0,0,0,0,0,0,0,1,5,0,5,UTC,00:00\r\n"
        );
    }
}
