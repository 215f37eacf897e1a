//! The day's settlement per partner and currency, and reconciliation of it against the
//! partner's own report. Days are UTC and a payment belongs to the day it was created.
//!
//! # Settlement CSV
//! One header row, then one row per partner × currency:
//!
//! `date,partnerId,currency,` then for each of `confirmed`, `reversed`, `unknown`, `approved`:
//! `…Count,…Amount,…Fees,…Net`.
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

use axum::http::StatusCode;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{bad_param, csv, day_bounds};
use crate::domain::PaymentState;
use crate::model::{ErrorDetail, FormatError};
use crate::service::{Hub, HubError, HubResult};
use crate::store::SettledPayment;

/// How many payments and how much money: gross, the fees on it, and what is left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
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
pub struct SettlementRow {
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
pub struct SettlementReport {
    pub date: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<String>,
    pub rows: Vec<SettlementRow>,
}

pub const SETTLEMENT_CSV_HEADER: [&str; 19] = [
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
];

impl SettlementReport {
    pub fn to_csv(&self) -> String {
        let mut out = csv::line(SETTLEMENT_CSV_HEADER);
        for r in &self.rows {
            let date = self.date.to_string();
            let numbers = [r.confirmed, r.reversed, r.unknown, r.approved]
                .iter()
                .flat_map(|t| [t.count, t.amount, t.fees, t.net].map(|n| n.to_string()))
                .collect::<Vec<_>>();
            let mut fields = vec![date, r.partner_id.clone(), r.currency.clone()];
            fields.extend(numbers);
            out.push_str(&csv::line(fields));
        }
        out
    }
}

/// The day (`date`, default today UTC) and optional partner of a report request.
pub fn report_scope(
    hub: &Hub,
    id: &str,
    params: &super::Params,
) -> HubResult<(NaiveDate, Option<String>)> {
    let date = match super::param(params, "date") {
        Some(v) => super::date(id, "date", v)?,
        None => hub.clock.now().date_naive(),
    };
    Ok((date, super::param(params, "partnerId").map(str::to_owned)))
}

/// `GET /admin/v1/reports/settlement`.
pub async fn settlement(
    hub: &Hub,
    date: NaiveDate,
    partner_id: Option<String>,
) -> HubResult<SettlementReport> {
    let (from, to) = day_bounds(date);
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
        partner_id,
        rows: rows.into_values().collect(),
    })
}

/// A row of the partner's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartnerRow {
    pub tran_id: String,
    #[serde(default)]
    pub partner_reference: Option<String>,
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    /// CONFIRMED or REVERSED.
    pub status: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PartnerJson {
    Rows(Vec<PartnerRow>),
    Wrapped { rows: Vec<PartnerRow> },
}

const PARTNER_STATUSES: [&str; 2] = ["CONFIRMED", "REVERSED"];

fn format_errors(id: &str, errors: Vec<FormatError>) -> HubError {
    HubError::refuse(
        StatusCode::BAD_REQUEST,
        ErrorDetail::format_error(id, &errors),
    )
}

/// The partner's report from CSV (header `tranId,partnerReference,amount,currency,status`,
/// columns in any order) or JSON (an array of rows, or `{"rows": [...]}`).
pub fn parse_partner_report(id: &str, body: &[u8], is_csv: bool) -> HubResult<Vec<PartnerRow>> {
    let rows = if is_csv {
        parse_partner_csv(id, body)?
    } else {
        match serde_json::from_slice::<PartnerJson>(body) {
            Ok(PartnerJson::Rows(rows) | PartnerJson::Wrapped { rows }) => rows,
            Err(e) => return Err(bad_param(id, "body", &format!("not a report: {e}"), "")),
        }
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
    Ok(rows)
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
        rows.push(PartnerRow {
            tran_id: at(record, "tranId"),
            partner_reference: Some(at(record, "partnerReference")).filter(|r| !r.is_empty()),
            amount,
            currency: at(record, "currency"),
            status: at(record, "status").to_ascii_uppercase(),
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
pub struct HubEntry {
    pub tran_id: String,
    pub payment_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_reference: Option<String>,
    pub amount: i64,
    pub currency: String,
    /// CONFIRMED, REVERSED (also for UNKNOWN: the hub reversed it) or APPROVED (not yet
    /// advised by the POS).
    pub status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AmountMismatch {
    pub tran_id: String,
    pub payment_id: Uuid,
    pub hub_amount: i64,
    pub hub_currency: String,
    pub partner_amount: i64,
    pub partner_currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusMismatch {
    pub tran_id: String,
    pub payment_id: Uuid,
    pub hub_status: &'static str,
    pub partner_status: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reconciliation {
    pub date: NaiveDate,
    pub partner_id: String,
    /// Rows present on both sides with the same amount, currency and status.
    pub matched: usize,
    pub hub_only: Vec<HubEntry>,
    pub partner_only: Vec<PartnerRow>,
    pub amount_mismatches: Vec<AmountMismatch>,
    pub status_mismatches: Vec<StatusMismatch>,
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
    }
}

/// Compares the hub's settled payments of one partner and day with the partner's rows.
/// Rows pair by `tranId`; when a tranId has several payments (an earlier attempt ended and
/// freed it), the one whose partner reference (the hub's `pay` id) matches wins, else the
/// oldest unpaired one.
pub fn reconcile(
    date: NaiveDate,
    partner_id: String,
    hub: &[SettledPayment],
    partner: Vec<PartnerRow>,
) -> Reconciliation {
    let mut by_tran: HashMap<&str, Vec<&SettledPayment>> = HashMap::new();
    for p in hub {
        by_tran.entry(p.tran_id.as_str()).or_default().push(p);
    }
    let mut report = Reconciliation {
        date,
        partner_id,
        matched: 0,
        hub_only: Vec::new(),
        partner_only: Vec::new(),
        amount_mismatches: Vec::new(),
        status_mismatches: Vec::new(),
    };
    for row in partner {
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
        if same {
            report.matched += 1;
        }
    }
    let mut left: Vec<&SettledPayment> = by_tran.into_values().flatten().collect();
    left.sort_by_key(|p| (p.created_at, p.payment_id));
    report.hub_only = left.into_iter().map(hub_entry).collect();
    report
}

/// `POST /admin/v1/reports/reconciliation`.
pub async fn reconciliation(
    hub: &Hub,
    date: NaiveDate,
    partner_id: String,
    rows: Vec<PartnerRow>,
) -> HubResult<Reconciliation> {
    let (from, to) = day_bounds(date);
    let settled = hub
        .store
        .settled_payments(from, to, Some(&partner_id))
        .await?;
    Ok(reconcile(date, partner_id, &settled, rows))
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
        }
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
        let date = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let r = reconcile(date, "w".into(), &hub, partner);
        assert_eq!(r.matched, 2);
        assert_eq!(r.amount_mismatches.len(), 1);
        assert_eq!(r.amount_mismatches[0].tran_id, "b");
        assert_eq!(r.status_mismatches.len(), 1);
        assert_eq!(r.status_mismatches[0].tran_id, "e");
        assert_eq!(r.hub_only.len(), 1);
        assert_eq!(r.hub_only[0].tran_id, "d");
        assert_eq!(r.partner_only.len(), 1);
        assert_eq!(r.partner_only[0].tran_id, "z");
    }

    #[test]
    fn partner_csv_in_any_column_order_and_bad_amounts_named() {
        let body = b"status,tranId,amount,currency,partnerReference\r\nconfirmed,a,100,710,r1\n";
        let rows = parse_partner_report("x", body, true).unwrap();
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
        assert_eq!(parse_partner_report("x", json, false).unwrap().len(), 1);
        let float = br#"[{"tranId": "a", "amount": 5.5, "currency": "710", "status": "REVERSED"}]"#;
        assert!(parse_partner_report("x", float, false).is_err());
    }

    #[test]
    fn csv_report_has_its_documented_columns() {
        let report = SettlementReport {
            date: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
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
             unknownFees,unknownNet,approvedCount,approvedAmount,approvedFees,approvedNet\r\n\
             2026-11-22,w,710,2,300,6,294,0,0,0,0,0,0,0,0,1,5,0,5\r\n"
        );
    }
}
