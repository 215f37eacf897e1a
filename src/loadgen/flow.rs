//! One flow, as a POS lane and a partner run it: createQrCode, a held pay with its scan sent
//! alongside, then a confirmation or a reversal.

use chrono::Utc;
use std::time::{Duration, Instant};

use super::control::{SimulatorControl, DECLINE_ERROR_TYPE, DECLINE_STATUS};
use super::http::{join, Answer, Auth, Http};
use super::messages;
use super::plan::{fate, Fate};
use super::record::{AdviceSent, FlowRecord, PayOutcome};
use super::stats::Op;
use super::tally::Tally;
use super::LoadgenOptions;

/// How many times a scan is repeated when the hub has no pay for it yet.
const SCAN_RETRIES: usize = 20;
const SCAN_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// What every lane shares.
#[derive(Debug)]
pub(super) struct Context {
    pub http: Http,
    pub simulator: SimulatorControl,
    pub options: LoadgenOptions,
}

impl Context {
    fn pos(&self) -> Auth<'_> {
        Some((&self.options.pos_user, &self.options.pos_password))
    }

    fn partner(&self) -> Auth<'_> {
        Some((&self.options.partner_user, &self.options.partner_password))
    }
}

/// How the scan went: the accepted attempt's send time, every attempt's latency, and the
/// final failure (a transport error, or an answer other than 202) if none was accepted.
struct ScanResult {
    sent_at: Option<chrono::DateTime<Utc>>,
    latencies: Vec<Duration>,
    failure: Option<Result<reqwest::Error, Answer>>,
}

/// Runs flow number `n` of the run against `hub`, recording into `tally`.
pub(super) async fn run_flow(ctx: &Context, hub: &str, lane: usize, n: u64, tally: &mut Tally) {
    let started = Instant::now();
    let errors_before = tally.errors.total;
    tally.started += 1;
    let fate = fate(n, ctx.options.decline_share, ctx.options.reverse_share);
    let amount = 100 + i64::try_from(n % 10_000).unwrap_or(0);

    let Some(tran_id) = create_qr_code(ctx, hub, lane, amount, tally).await else {
        return;
    };
    let mut record = FlowRecord {
        tran_id: tran_id.clone(),
        pay_id: messages::new_id(),
        fate,
        pay: PayOutcome::NotSent,
        advice: AdviceSent::None,
        scan_sent_at: None,
    };
    if fate == Fate::Decline {
        if let Err(e) = ctx.simulator.script_decline(&tran_id).await {
            tally.errors.other(
                Op::Simulator,
                "script failed",
                format!("{e:#}"),
                Some(&tran_id),
            );
            tally.flows.push(record);
            return;
        }
    }

    let pay_body = messages::pay_request(
        &record.pay_id,
        &ctx.options.pos_user,
        lane,
        &tran_id,
        amount,
    );
    let pay_url = join(hub, "/qr/v1/payments");
    let pay = ctx.http.post(&pay_url, ctx.pos(), &pay_body);
    let scan = async {
        tokio::time::sleep(ctx.options.scan_delay).await;
        scan(ctx, hub, &tran_id).await
    };
    let (pay, scan) = tokio::join!(pay, scan);
    for d in &scan.latencies {
        tally.latency(Op::Scan).record(*d);
    }
    match &scan.failure {
        Some(Ok(e)) => tally.errors.transport(Op::Scan, e, Some(&tran_id)),
        Some(Err(a)) => tally
            .errors
            .answer(Op::Scan, a.status, &a.body, Some(&tran_id)),
        None => {}
    }
    record.scan_sent_at = scan.sent_at;
    record.pay = pay_outcome(fate, pay, &tran_id, tally);

    if record.pay == PayOutcome::Approved && fate != Fate::Decline {
        record.advice = advise(ctx, hub, fate, &record, tally).await;
    }
    if tally.errors.total == errors_before {
        tally.completed += 1;
        tally.flow.record(started.elapsed());
        match fate {
            Fate::Confirm => tally.confirmed += 1,
            Fate::Reverse => tally.reversed += 1,
            Fate::Decline => tally.declined += 1,
        }
    }
    tally.flows.push(record);
}

async fn create_qr_code(
    ctx: &Context,
    hub: &str,
    lane: usize,
    amount: i64,
    tally: &mut Tally,
) -> Option<String> {
    let body = messages::qr_request(&ctx.options.pos_user, lane, amount);
    match ctx
        .http
        .post(&join(hub, "/qr/v1/qrCodes"), ctx.pos(), &body)
        .await
    {
        Ok(a) => {
            tally.latency(Op::CreateQrCode).record(a.elapsed);
            if a.status != 201 {
                tally
                    .errors
                    .answer(Op::CreateQrCode, a.status, &a.body, None);
                return None;
            }
            let tran_id = a.field("tranId");
            if tran_id.is_none() {
                tally.errors.other(
                    Op::CreateQrCode,
                    "201 without tranId",
                    String::from_utf8_lossy(&a.body).into_owned(),
                    None,
                );
            }
            tran_id
        }
        Err(e) => {
            tally.errors.transport(Op::CreateQrCode, &e, None);
            None
        }
    }
}

/// Sends the scan, repeating it while the hub has no pay waiting for it yet.
async fn scan(ctx: &Context, hub: &str, tran_id: &str) -> ScanResult {
    let url = join(hub, "/qr/v1/scans");
    let body = messages::scan(
        &ctx.options.partner_user,
        &ctx.options.partner_name,
        tran_id,
    );
    let mut result = ScanResult {
        sent_at: None,
        latencies: Vec::new(),
        failure: None,
    };
    for attempt in 0..=SCAN_RETRIES {
        let sent_at = Utc::now();
        match ctx.http.post(&url, ctx.partner(), &body).await {
            Ok(a) => {
                result.latencies.push(a.elapsed);
                if a.status == 202 {
                    result.sent_at = Some(sent_at);
                    return result;
                }
                let not_yet = a.status == 400
                    && a.field("errorType").as_deref() == Some("UNABLE_TO_LOCATE_RECORD");
                if not_yet && attempt < SCAN_RETRIES {
                    tokio::time::sleep(SCAN_RETRY_PAUSE).await;
                    continue;
                }
                result.failure = Some(Err(a));
                return result;
            }
            Err(e) => {
                result.failure = Some(Ok(e));
                return result;
            }
        }
    }
    result
}

/// What the hub's answer to the pay means, given what the flow was meant to be.
fn pay_outcome(
    fate: Fate,
    pay: Result<Answer, reqwest::Error>,
    tran_id: &str,
    tally: &mut Tally,
) -> PayOutcome {
    let a = match pay {
        Ok(a) => a,
        Err(e) => {
            tally.errors.transport(Op::Pay, &e, Some(tran_id));
            return PayOutcome::Failed { status: None };
        }
    };
    tally.latency(Op::Pay).record(a.elapsed);
    let is_scripted_decline =
        a.status == DECLINE_STATUS && a.field("errorType").as_deref() == Some(DECLINE_ERROR_TYPE);
    match (fate, a.status) {
        (Fate::Decline, _) if is_scripted_decline => PayOutcome::Declined { status: a.status },
        (Fate::Confirm | Fate::Reverse, 201) => PayOutcome::Approved,
        (Fate::Decline, 201) => {
            tally.errors.other(
                Op::Pay,
                "201 where a decline was scripted",
                String::from_utf8_lossy(&a.body).into_owned(),
                Some(tran_id),
            );
            PayOutcome::Approved
        }
        (_, status) => {
            tally.errors.answer(Op::Pay, status, &a.body, Some(tran_id));
            PayOutcome::Failed {
                status: Some(status),
            }
        }
    }
}

/// Confirms or reverses an approved payment.
async fn advise(
    ctx: &Context,
    hub: &str,
    fate: Fate,
    record: &FlowRecord,
    tally: &mut Tally,
) -> AdviceSent {
    let (op, path, body, success) = match fate {
        Fate::Reverse => (
            Op::Reverse,
            "/qr/v1/payments/reversals",
            messages::reversal(&record.pay_id),
            AdviceSent::Reversed,
        ),
        _ => (
            Op::Confirm,
            "/qr/v1/payments/confirmations",
            messages::confirmation(&record.pay_id),
            AdviceSent::Confirmed,
        ),
    };
    match ctx.http.post(&join(hub, path), ctx.pos(), &body).await {
        Ok(a) => {
            tally.latency(op).record(a.elapsed);
            if a.status == 202 {
                success
            } else {
                tally
                    .errors
                    .answer(op, a.status, &a.body, Some(&record.tran_id));
                AdviceSent::Unknown
            }
        }
        Err(e) => {
            tally.errors.transport(op, &e, Some(&record.tran_id));
            AdviceSent::Unknown
        }
    }
}
