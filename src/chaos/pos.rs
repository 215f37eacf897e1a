//! The POS lanes and the partner's scans, acting as the interface demands of a POS: an
//! unknown outcome (500, 504, a timeout, a lost connection) is reversed, and every advice is
//! stored and forwarded, the same advice id retried against either hub until it gets a final
//! answer (202; 404 for a reversal; another 4xx such as 400 ACCOUNT_ALREADY_SETTLED), so
//! that it survives hub kills.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::faults::{self, FlowPlan, PosAway, DECLINE_ERROR_NAME};
use super::hubs::{PARTNER_ID, PARTNER_NAME, PARTNER_PASSWORD, POS_PASSWORD, POS_USER};
use super::record::{AdviceAnswer, PosAdvice, PosFlow, PosPay, POS_INSTITUTION};
use crate::domain::AdviceKind;
use crate::loadgen::messages;
use crate::simulator::SimulatorHandle;

/// How long the POS keeps retrying one advice before it calls it unsettled.
const ADVICE_PATIENCE: Duration = Duration::from_secs(180);
/// Attempts at createQrCode and at reaching a hub for the pay before the flow gives up.
const CONNECT_TRIES: u32 = 40;
const RETRY_PAUSE: Duration = Duration::from_millis(150);
/// How long a lane waits before its next sale after the hub said the partner is unavailable
/// (503). A till does not ring up the next sale at once; and without the pause the lanes
/// race through a partner outage, whose flows end in milliseconds, so that most flows of a
/// run are that outage's 503s and the mix of faults is drowned.
const UNAVAILABLE_PAUSE: Duration = Duration::from_secs(1);

/// What the lanes share.
pub(crate) struct Pos {
    pub http: reqwest::Client,
    pub hubs: Vec<String>,
    pub sim: Arc<SimulatorHandle>,
    pub partner_timeout: Duration,
    pub seed: u64,
}

/// An answer: status and JSON body (`Null` when not JSON).
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn error_type(&self) -> Option<String> {
        self.body
            .get("errorType")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    }
}

/// What the lanes counted besides their flows.
#[derive(Debug, Default)]
pub(crate) struct PosTally {
    pub flows: Vec<PosFlow>,
    /// Flows that never got a QR code (no hub answered createQrCode in time).
    pub no_qr_code: u64,
    pub scans_accepted: u64,
}

impl PosTally {
    fn merge(&mut self, other: PosTally) {
        self.flows.extend(other.flows);
        self.no_qr_code += other.no_qr_code;
        self.scans_accepted += other.scans_accepted;
    }
}

fn other(hub: usize, hubs: usize) -> usize {
    (hub + 1) % hubs.max(1)
}

impl Pos {
    async fn post(
        &self,
        hub: usize,
        path: &str,
        auth: (&str, &str),
        body: &Value,
    ) -> Result<Answer, reqwest::Error> {
        let response = self
            .http
            .post(format!("{}{path}", self.hubs[hub]))
            .basic_auth(auth.0, Some(auth.1))
            .json(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        Ok(Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// Runs flows until `count` flows were handed out or `until` passed.
    pub(crate) async fn run_lanes(
        self: Arc<Self>,
        lanes: usize,
        count: Option<u64>,
        until: Option<Instant>,
    ) -> anyhow::Result<PosTally> {
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::with_capacity(lanes);
        for lane in 0..lanes {
            let (pos, next) = (Arc::clone(&self), Arc::clone(&next));
            tasks.push(tokio::spawn(async move {
                let mut tally = PosTally::default();
                loop {
                    if until.is_some_and(|t| Instant::now() >= t) {
                        break;
                    }
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if count.is_some_and(|c| n >= c) {
                        break;
                    }
                    pos.run_flow(lane, n, &mut tally).await;
                }
                tally
            }));
        }
        let mut total = PosTally::default();
        for task in tasks {
            total.merge(task.await?);
        }
        total.flows.sort_by_key(|f| f.plan.n);
        Ok(total)
    }

    async fn run_flow(&self, lane: usize, n: u64, tally: &mut PosTally) {
        let plan = faults::plan(self.seed, n, self.hubs.len());
        let Some(tran_id) = self.create_qr_code(lane, &plan).await else {
            tally.no_qr_code += 1;
            return;
        };
        self.sim
            .script_pay_for(&tran_id, plan.pay_fault.behaviour(self.partner_timeout));
        if let Some(f) = plan.advice_fault {
            for b in f.behaviours(self.partner_timeout) {
                self.sim.script_advice_for(&tran_id, b);
            }
        }
        let pay_id = messages::new_id();
        let pay_body = messages::pay_request(&pay_id, POS_USER, lane, &tran_id, plan.amount);
        let pay_done = AtomicBool::new(false);
        let hang_up = match plan.pos_away {
            Some(PosAway::HangUp {
                after_ms,
                scan_after_ms,
                ..
            }) if !plan.scan_first => Some((after_ms, scan_after_ms)),
            _ => None,
        };
        let delay = Duration::from_millis(hang_up.map_or(plan.scan_delay_ms, |(_, s)| s));
        let pay = async {
            if plan.scan_first {
                tokio::time::sleep(delay).await;
            }
            let answer = match hang_up {
                // Dropping the request's future closes its connection: the POS is gone.
                Some((after_ms, _)) => tokio::time::timeout(
                    Duration::from_millis(after_ms),
                    self.pay(&plan, &pay_body),
                )
                .await
                .unwrap_or((PosPay::HungUp { after_ms }, None)),
                None => self.pay(&plan, &pay_body).await,
            };
            pay_done.store(true, Ordering::Relaxed);
            answer
        };
        let scan = async {
            if !plan.scan_first {
                tokio::time::sleep(delay).await;
            }
            self.scan(&plan, &tran_id, &pay_done).await
        };
        let ((pay, approved_amount), scanned) = tokio::join!(pay, scan);
        if scanned {
            tally.scans_accepted += 1;
        }
        let reverses_on_return =
            matches!(plan.pos_away, Some(PosAway::HangUp { reverses: true, .. }));
        let unavailable = matches!(pay, PosPay::Refused { status: 503, .. });
        let advice = match &pay {
            // A POS that went away says nothing more, unless it comes back and reverses.
            PosPay::HungUp { .. } if reverses_on_return => Some(
                self.advise(&plan, AdviceKind::Reversal, &pay_id, Some("TIMEOUT"))
                    .await,
            ),
            PosPay::HungUp { .. } => None,
            _ if plan.pos_away == Some(PosAway::Silent) => None,
            PosPay::Approved if plan.cancel => Some(
                self.advise(&plan, AdviceKind::Reversal, &pay_id, Some("CANCELLED"))
                    .await,
            ),
            PosPay::Approved => Some(
                self.advise(&plan, AdviceKind::Confirmation, &pay_id, None)
                    .await,
            ),
            PosPay::Unknown { .. } => Some(
                self.advise(&plan, AdviceKind::Reversal, &pay_id, Some("TIMEOUT"))
                    .await,
            ),
            _ => None,
        };
        tally.flows.push(PosFlow {
            plan,
            tran_id,
            pay_id,
            pay,
            approved_amount,
            scanned,
            advice,
        });
        if unavailable {
            tokio::time::sleep(UNAVAILABLE_PAUSE).await;
        }
    }

    /// createQrCode, retried (with a new message id) against either hub until one answers
    /// 201. A code lost to a kill is never paid, so a retry is harmless.
    async fn create_qr_code(&self, lane: usize, plan: &FlowPlan) -> Option<String> {
        let mut hub = plan.pay_hub;
        for _ in 0..CONNECT_TRIES {
            let body = messages::qr_request(POS_USER, lane, plan.amount);
            match self
                .post(hub, "/qr/v1/qrCodes", (POS_USER, POS_PASSWORD), &body)
                .await
            {
                Ok(a) if a.status == 201 => {
                    if let Some(t) = a.body.get("tranId").and_then(|v| v.as_str()) {
                        return Some(t.to_owned());
                    }
                }
                _ => hub = other(hub, self.hubs.len()),
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        None
    }

    /// The pay: moved to the other hub only while no connection could be made (nothing was
    /// sent); after that, whatever comes back is the POS's answer. With a 201, the amount it
    /// approves: `approvedAmount`, else the `requestAmount` it echoes.
    async fn pay(&self, plan: &FlowPlan, body: &Value) -> (PosPay, Option<Value>) {
        let mut hub = plan.pay_hub;
        for _ in 0..CONNECT_TRIES {
            match self
                .post(hub, "/qr/v1/payments", (POS_USER, POS_PASSWORD), body)
                .await
            {
                Err(e) if e.is_connect() => {
                    hub = other(hub, self.hubs.len());
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) => {
                    let why = if e.is_timeout() {
                        "timeout"
                    } else {
                        "connection lost"
                    };
                    let unknown = PosPay::Unknown {
                        status: None,
                        why: why.to_owned(),
                    };
                    return (unknown, None);
                }
                Ok(a) => {
                    let error_type = a.error_type();
                    let amounts = &a.body["amounts"];
                    let approved = [&amounts["approvedAmount"], &amounts["requestAmount"]]
                        .into_iter()
                        .find(|v| !v.is_null())
                        .cloned();
                    let pay = match a.status {
                        201 => return (PosPay::Approved, approved),
                        500 | 504 => PosPay::Unknown {
                            status: Some(a.status),
                            why: error_type.unwrap_or_default(),
                        },
                        400 if error_type.as_deref() == Some(DECLINE_ERROR_NAME) => {
                            PosPay::Declined
                        }
                        status => PosPay::Refused { status, error_type },
                    };
                    return (pay, None);
                }
            }
        }
        (PosPay::NotSent, None)
    }

    /// The partner's scan, to either hub: repeated (same scan id) while the hub has no pay
    /// for it yet or cannot be reached, until the pay has its answer.
    async fn scan(&self, plan: &FlowPlan, tran_id: &str, pay_done: &AtomicBool) -> bool {
        let body = messages::scan(PARTNER_ID, PARTNER_NAME, tran_id);
        let mut hub = plan.scan_hub;
        let mut after_pay = 0;
        for _ in 0..CONNECT_TRIES {
            if pay_done.load(Ordering::Relaxed) {
                // One more try after the POS has its answer: a late scan is a real case.
                after_pay += 1;
                if after_pay > 1 {
                    return false;
                }
            }
            match self
                .post(hub, "/qr/v1/scans", (PARTNER_ID, PARTNER_PASSWORD), &body)
                .await
            {
                Ok(a) if a.status == 202 => return true,
                Ok(a)
                    if a.status == 400
                        && a.error_type().as_deref() != Some("UNABLE_TO_LOCATE_RECORD") =>
                {
                    return false
                }
                Ok(a) if a.status == 400 => {}
                Ok(_) | Err(_) => hub = other(hub, self.hubs.len()),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Sends one advice (one id) until a final answer, against either hub.
    async fn advise(
        &self,
        plan: &FlowPlan,
        kind: AdviceKind,
        pay_id: &str,
        reason: Option<&str>,
    ) -> PosAdvice {
        let id = messages::new_id();
        let mut body = json!({
            "id": id,
            "requestId": pay_id,
            "time": messages::now(),
            "thirdPartyIdentifiers": [{"institutionId": POS_INSTITUTION, "transactionIdentifier": pay_id}],
        });
        let path = match kind {
            AdviceKind::Confirmation => "/qr/v1/payments/confirmations",
            AdviceKind::Reversal => {
                body["reversalReason"] = json!(reason.unwrap_or("TIMEOUT"));
                "/qr/v1/payments/reversals"
            }
        };
        let started = Instant::now();
        let mut hub = plan.advice_hub;
        let mut pause = Duration::from_millis(100);
        let mut tries = 0;
        let answer = loop {
            tries += 1;
            let last = match self.post(hub, path, (POS_USER, POS_PASSWORD), &body).await {
                Ok(a) => match a.status {
                    202 => break AdviceAnswer::Accepted,
                    404 if kind == AdviceKind::Reversal => break AdviceAnswer::NotFound,
                    status @ (400..=499) if status != 429 => {
                        break AdviceAnswer::Refused {
                            status,
                            error_type: a.error_type(),
                        }
                    }
                    status => format!("answered {status}"),
                },
                Err(e) => format!("{e}"),
            };
            if started.elapsed() >= ADVICE_PATIENCE {
                break AdviceAnswer::Unsettled { last };
            }
            hub = other(hub, self.hubs.len());
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        };
        PosAdvice {
            kind,
            id,
            reason: reason.map(str::to_owned),
            answer,
            tries,
        }
    }
}
