//! The plan of one flow, drawn from the run's seed and the flow's number alone (so a seed
//! repeats every choice): how the partner answers its `pay`, whether its advice deliveries
//! fail first, whether the POS cancels, and which hub gets each request.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::time::Duration;

use crate::model::ErrorType;
use crate::simulator::{AdviceBehaviour, PayBehaviour};

/// How the partner answers a flow's `pay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PayFault {
    /// 201 at once.
    Approve,
    /// 400 INSUFFICIENT_FUNDS.
    Decline,
    /// 201 after a third of the partner timeout.
    SlowApprove,
    /// 201 after one and a half partner timeouts: the hub has given up by then.
    LateApprove,
    /// No answer until the simulator stops.
    Hang,
    Error500,
    Error504,
    /// The request is read, then the connection dropped with no answer.
    DropConnection,
}

/// The error type of the scripted decline, which the POS recognises as the partner's.
pub const DECLINE_ERROR_TYPE: ErrorType = ErrorType::InsufficientFunds;
pub const DECLINE_ERROR_NAME: &str = "INSUFFICIENT_FUNDS";

/// (fault, weight out of 100)
const PAY_WEIGHTS: [(PayFault, u32); 8] = [
    (PayFault::Approve, 45),
    (PayFault::Decline, 12),
    (PayFault::SlowApprove, 10),
    (PayFault::LateApprove, 7),
    (PayFault::Hang, 5),
    (PayFault::Error500, 7),
    (PayFault::Error504, 7),
    (PayFault::DropConnection, 7),
];

impl PayFault {
    pub fn name(self) -> &'static str {
        match self {
            Self::Approve => "pay:approve",
            Self::Decline => "pay:decline",
            Self::SlowApprove => "pay:slow-below-timeout",
            Self::LateApprove => "pay:slow-above-timeout",
            Self::Hang => "pay:hang",
            Self::Error500 => "pay:500",
            Self::Error504 => "pay:504",
            Self::DropConnection => "pay:drop-connection",
        }
    }

    pub fn behaviour(self, partner_timeout: Duration) -> PayBehaviour {
        match self {
            Self::Approve => PayBehaviour::Approve,
            Self::Decline => PayBehaviour::decline(DECLINE_ERROR_TYPE),
            Self::SlowApprove => PayBehaviour::delayed(partner_timeout / 3, PayBehaviour::Approve),
            Self::LateApprove => {
                PayBehaviour::delayed(partner_timeout * 3 / 2, PayBehaviour::Approve)
            }
            Self::Hang => PayBehaviour::Hang,
            Self::Error500 => PayBehaviour::ServerError(500),
            Self::Error504 => PayBehaviour::ServerError(504),
            Self::DropConnection => PayBehaviour::DropConnection,
        }
    }
}

/// How the partner treats the first deliveries of the flow's advice (confirmation or
/// reversal, the hub's or the POS's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum AdviceFault {
    /// The first `n` deliveries of the advice id get `status`, then 202.
    FailTimes { n: u32, status: u16 },
    /// The first delivery's connection is dropped after the advice is read.
    DropOnce,
    /// The first delivery is answered 202 after the hub's timeout (the hub retries).
    LateOnce,
}

impl AdviceFault {
    pub fn name(self) -> &'static str {
        match self {
            Self::FailTimes { status: 504, .. } => "advice:fail-504",
            Self::FailTimes { .. } => "advice:fail-500",
            Self::DropOnce => "advice:drop-connection",
            Self::LateOnce => "advice:slow-above-timeout",
        }
    }

    pub fn behaviour(self, partner_timeout: Duration) -> AdviceBehaviour {
        match self {
            Self::FailTimes { n, status } => AdviceBehaviour::FailTimes { n, status },
            Self::DropOnce => AdviceBehaviour::DropConnection,
            Self::LateOnce => AdviceBehaviour::Delay {
                by: partner_timeout * 3 / 2,
                then: Box::new(AdviceBehaviour::Accept),
            },
        }
    }
}

/// A POS that goes away instead of seeing its flow through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum PosAway {
    /// Drops its held pay `after_ms` after sending it (unless answered by then); the scan
    /// comes `scan_after_ms` after the pay, so the hang-up lands before or after the scan.
    /// Back later, it reverses (TIMEOUT) if `reverses`, as the interface asks after a lost
    /// connection; otherwise it never advises.
    HangUp {
        after_ms: u64,
        scan_after_ms: u64,
        reverses: bool,
    },
    /// Gets its answer, then never confirms or reverses.
    Silent,
}

/// Everything decided in advance about flow `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowPlan {
    pub n: u64,
    pub pay_fault: PayFault,
    pub advice_fault: Option<AdviceFault>,
    /// The POS reverses (CANCELLED) an approved payment instead of confirming it.
    pub cancel: bool,
    /// Hub index (0 or 1) for the createQrCode and the pay, for the scan, for the advice.
    pub pay_hub: usize,
    pub scan_hub: usize,
    pub advice_hub: usize,
    /// Pause between sending the pay and the scan (ms); sometimes the scan goes first.
    pub scan_delay_ms: u64,
    /// Send the scan before the pay (an early scan, which the hub holds for its grace).
    pub scan_first: bool,
    pub amount: i64,
    /// The POS goes away; `None` for one that sees its flow through.
    pub pos_away: Option<PosAway>,
}

/// The plan of flow `n` under `seed`, over `hubs` hub instances.
pub fn plan(seed: u64, n: u64, hubs: usize) -> FlowPlan {
    let mut rng = StdRng::seed_from_u64(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut pick = rng.gen_range(0..100u32);
    let mut pay_fault = PayFault::Approve;
    for (fault, weight) in PAY_WEIGHTS {
        if pick < weight {
            pay_fault = fault;
            break;
        }
        pick -= weight;
    }
    let advice_fault = match rng.gen_range(0..100u32) {
        0..=9 => Some(AdviceFault::FailTimes {
            n: rng.gen_range(1..=3),
            status: 500,
        }),
        10..=19 => Some(AdviceFault::FailTimes {
            n: rng.gen_range(1..=3),
            status: 504,
        }),
        20..=26 => Some(AdviceFault::DropOnce),
        27..=32 => Some(AdviceFault::LateOnce),
        _ => None,
    };
    let hubs = hubs.max(1);
    let mut plan = FlowPlan {
        n,
        pay_fault,
        advice_fault,
        cancel: rng.gen_bool(0.15),
        pay_hub: rng.gen_range(0..hubs),
        scan_hub: rng.gen_range(0..hubs),
        advice_hub: rng.gen_range(0..hubs),
        scan_delay_ms: rng.gen_range(0..30),
        scan_first: rng.gen_bool(0.05),
        amount: rng.gen_range(100..100_000),
        pos_away: None,
    };
    // Drawn last, so that every choice above is what the same seed drew before POS lanes
    // could go away.
    plan.pos_away = match rng.gen_range(0..100u32) {
        0..=7 => Some(PosAway::HangUp {
            after_ms: rng.gen_range(20..300),
            scan_after_ms: rng.gen_range(0..500),
            reverses: rng.gen_bool(0.5),
        }),
        8..=11 => Some(PosAway::Silent),
        _ => None,
    };
    plan
}

/// The time until the next kill: exponentially distributed with mean `mean`.
pub fn next_kill_in(rng: &mut StdRng, mean: Duration) -> Duration {
    let u: f64 = rng.gen_range(0.0..1.0);
    mean.mul_f64(-(1.0 - u).ln()).min(mean * 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_repeats_every_choice_and_the_mix_has_every_fault() {
        let a: Vec<FlowPlan> = (0..2000).map(|n| plan(42, n, 2)).collect();
        let b: Vec<FlowPlan> = (0..2000).map(|n| plan(42, n, 2)).collect();
        assert_eq!(a, b);
        assert_ne!(a, (0..2000).map(|n| plan(43, n, 2)).collect::<Vec<_>>());
        for (fault, weight) in PAY_WEIGHTS {
            let count = a.iter().filter(|p| p.pay_fault == fault).count();
            let expected = 2000 * weight as usize / 100;
            assert!(
                count > expected / 2 && count < expected * 2,
                "{fault:?}: {count}, expected about {expected}"
            );
        }
        assert!(a
            .iter()
            .any(|p| p.advice_fault == Some(AdviceFault::DropOnce)));
        assert!(a.iter().any(|p| p.pay_hub != p.scan_hub));
        assert!(a.iter().any(|p| matches!(
            p.pos_away,
            Some(PosAway::HangUp {
                reverses: false,
                ..
            })
        )));
        assert!(a.iter().any(|p| p.pos_away == Some(PosAway::Silent)));
    }

    #[test]
    fn kill_intervals_average_near_the_mean() {
        let mut rng = StdRng::seed_from_u64(1);
        let mean = Duration::from_secs(5);
        let total: Duration = (0..2000).map(|_| next_kill_in(&mut rng, mean)).sum();
        let avg = total / 2000;
        assert!(
            avg > Duration::from_secs(4) && avg < Duration::from_secs(6),
            "{avg:?}"
        );
    }
}
