//! Which flows are declined and which reversed: decided by the flow's number alone, so a run
//! of N flows has (within one) the requested shares, spread evenly over the run.

use serde::Serialize;

/// What a flow is meant to end as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Fate {
    /// Approved by the partner, then confirmed by the POS.
    Confirm,
    /// Approved, then reversed by the POS (CANCELLED).
    Reverse,
    /// Declined by the partner (scripted through the simulator's control API).
    Decline,
}

/// The golden-ratio step: `frac(n * φ⁻¹)` fills the unit interval evenly for n = 1, 2, ...
const STEP: f64 = 0.618_033_988_749_894_9;

/// The fate of flow `n` (from 0): the interval [0, 1) is cut into a declined share, then a
/// reversed share, then the rest; flow `n` takes the part its low-discrepancy point falls in.
pub(crate) fn fate(n: u64, decline_share: f64, reverse_share: f64) -> Fate {
    let u = ((n + 1) as f64 * STEP).fract();
    if u < decline_share {
        Fate::Decline
    } else if u < decline_share + reverse_share {
        Fate::Reverse
    } else {
        Fate::Confirm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_kept_within_a_few_flows() {
        let n = 1000;
        let fates: Vec<Fate> = (0..n).map(|i| fate(i, 0.1, 0.2)).collect();
        let count = |f: Fate| fates.iter().filter(|&&x| x == f).count();
        assert!(
            (95..=105).contains(&count(Fate::Decline)),
            "{}",
            count(Fate::Decline)
        );
        assert!(
            (195..=205).contains(&count(Fate::Reverse)),
            "{}",
            count(Fate::Reverse)
        );
        assert!((0..60).all(|i| fate(i, 0.0, 0.0) == Fate::Confirm));
        assert!((0..60).all(|i| fate(i, 1.0, 0.0) == Fate::Decline));
    }
}
