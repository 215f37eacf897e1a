//! The lanes: each runs flows back to back until the run's count or duration is used up;
//! each keeps its own tally, merged when all have stopped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::flow::{run_flow, Context};
use super::tally::Tally;

/// Hands out flow numbers until the count is reached or the time is up.
#[derive(Debug)]
struct Schedule {
    next: AtomicU64,
    count: Option<u64>,
    until: Option<Instant>,
}

impl Schedule {
    fn next(&self) -> Option<u64> {
        if self.until.is_some_and(|t| Instant::now() >= t) {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        match self.count {
            Some(c) if n >= c => None,
            _ => Some(n),
        }
    }
}

/// Runs `lanes` lanes over `ctx.options.hubs` (round-robin) and returns the merged tally and
/// the wall time from the first flow's start to the last flow's end.
pub(super) async fn run_lanes(
    ctx: Arc<Context>,
    count: Option<u64>,
    duration: Option<Duration>,
) -> anyhow::Result<(Tally, Duration)> {
    let started = Instant::now();
    let schedule = Arc::new(Schedule {
        next: AtomicU64::new(0),
        count,
        until: duration.map(|d| started + d),
    });
    let mut tasks = Vec::with_capacity(ctx.options.lanes);
    for lane in 0..ctx.options.lanes {
        let ctx = Arc::clone(&ctx);
        let schedule = Arc::clone(&schedule);
        // Lanes open one after another over the ramp-up, as a shop's tills do, instead of
        // all in the same instant.
        let delay = ctx
            .options
            .ramp_up
            .mul_f64(lane as f64 / ctx.options.lanes.max(1) as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let hub = ctx.options.hubs[lane % ctx.options.hubs.len()].clone();
            let mut tally = Tally::default();
            while let Some(n) = schedule.next() {
                run_flow(&ctx, &hub, lane, n, &mut tally).await;
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for task in tasks {
        total.merge(task.await?);
    }
    Ok((total, started.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_hands_out_exactly_that_many_numbers() {
        let s = Schedule {
            next: AtomicU64::new(0),
            count: Some(3),
            until: None,
        };
        let got: Vec<u64> = std::iter::from_fn(|| s.next()).collect();
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(s.next(), None);
    }

    #[test]
    fn a_past_deadline_hands_out_nothing() {
        let s = Schedule {
            next: AtomicU64::new(0),
            count: None,
            until: Some(Instant::now()),
        };
        assert_eq!(s.next(), None);
    }
}
