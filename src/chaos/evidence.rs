//! Reading the hub's side at the end, through the [`Store`](crate::store::Store) trait: every
//! payment of the run's POS client and every outbox row, and whether anything is still on
//! its way.

use crate::domain::PaymentState;
use crate::store::{OutboxState, PaymentQuery, SharedStore};

use super::hubs::POS_USER;
use super::record::{HubAdvice, HubPayment};

const PAGE: i64 = 1000;
/// More outbox rows than any run makes (a run has at most two advices per flow).
const OUTBOX_LIMIT: i64 = 10_000_000;

/// Every payment of the run's POS client, each marked if the back office's list of approvals
/// nobody advised has it (read with that list's own query, for any age).
pub(crate) async fn payments(store: &SharedStore) -> anyhow::Result<Vec<HubPayment>> {
    let listed: std::collections::HashSet<uuid::Uuid> = store
        .unadvised_approvals(
            chrono::Utc::now() + chrono::Duration::days(1),
            Some(POS_USER),
            OUTBOX_LIMIT,
        )
        .await?
        .iter()
        .map(|p| p.id)
        .collect();
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .search_payments(&PaymentQuery {
                client_id: Some(POS_USER.to_owned()),
                after,
                limit: PAGE,
                ..PaymentQuery::default()
            })
            .await?;
        let full = page.len() as i64 == PAGE;
        after = page.last().map(|p| (p.created_at, p.id));
        all.extend(page.iter().map(|p| HubPayment {
            unadvised: listed.contains(&p.id),
            ..HubPayment::from(p)
        }));
        if !full {
            return Ok(all);
        }
    }
}

/// Every outbox row, whatever its state.
pub(crate) async fn outbox(store: &SharedStore) -> anyhow::Result<Vec<HubAdvice>> {
    let mut all = Vec::new();
    for state in [
        OutboxState::Pending,
        OutboxState::Delivered,
        OutboxState::Failed,
        OutboxState::Dead,
    ] {
        let rows = store.outbox_by_state(state, OUTBOX_LIMIT).await?;
        all.extend(rows.iter().map(HubAdvice::from));
    }
    Ok(all)
}

/// What is still under way: PENDING outbox rows, and payments not yet answered.
pub(crate) fn outstanding(payments: &[HubPayment], outbox: &[HubAdvice]) -> (usize, usize) {
    let pending = outbox
        .iter()
        .filter(|a| a.state == OutboxState::Pending)
        .count();
    let in_flight = payments
        .iter()
        .filter(|p| {
            matches!(
                p.state,
                PaymentState::WaitingForScan | PaymentState::Matched | PaymentState::Forwarded
            )
        })
        .count();
    (pending, in_flight)
}
