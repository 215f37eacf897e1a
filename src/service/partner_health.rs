//! Each partner's health as this instance sees it (its `pay` calls over the last hour, its
//! last error) with the advices waiting for it from the store: what the back office shows
//! and the sweep publishes as per-partner gauges.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

use super::Hub;
use crate::partner::health::PayFigures;

/// One partner's health.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PartnerHealthView {
    pub partner_id: String,
    /// Its configured name; absent for a partner no longer configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// False for a partner removed from the configuration that still has advices waiting
    /// or calls in the window: its advices wait until it is configured again or an
    /// operator acts.
    pub configured: bool,
    /// Outbox rows PENDING for this partner (all instances).
    pub advices_waiting: i64,
    /// Age of the oldest of them, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_advice_waiting_seconds: Option<i64>,
    #[serde(flatten)]
    pub window: PayFigures,
}

/// The views from `backlog` and this instance's windows (no I/O: the sweeper sets the
/// gauges from these too).
pub(crate) fn views(
    hub: &Hub,
    backlog: &[crate::store::PartnerBacklog],
    now: DateTime<Utc>,
) -> Vec<PartnerHealthView> {
    let settings = hub.settings();
    let mut others: BTreeMap<String, ()> = BTreeMap::new();
    for id in backlog
        .iter()
        .map(|b| b.partner_id.clone())
        .chain(hub.health.partners())
    {
        if settings.partner(&id).is_none() {
            others.insert(id, ());
        }
    }
    settings
        .partners
        .iter()
        .map(|p| (p.id.clone(), Some(p.name.clone())))
        .chain(others.into_keys().map(|id| (id, None)))
        .map(|(partner_id, name)| {
            let waiting = backlog.iter().find(|b| b.partner_id == partner_id);
            PartnerHealthView {
                configured: name.is_some(),
                name,
                advices_waiting: waiting.map_or(0, |b| b.waiting),
                oldest_advice_waiting_seconds: waiting
                    .and_then(|b| b.oldest_created_at)
                    .map(|at| (now - at).num_seconds().max(0)),
                window: hub.health.figures(&partner_id, now),
                partner_id,
            }
        })
        .collect()
}

/// The per-partner gauges of `views`.
pub(crate) fn publish(views: &[PartnerHealthView]) {
    for p in views {
        let w = &p.window;
        crate::metrics::partner_health(&crate::metrics::PartnerGauges {
            partner_id: &p.partner_id,
            pay_calls: w.pay_calls,
            approval_rate: w.approval_rate,
            unknown_rate: w.unknown_rate,
            latency_p50_ms: w.latency_p50_ms,
            latency_p99_ms: w.latency_p99_ms,
            advices_waiting: p.advices_waiting,
            oldest_advice_waiting_seconds: p.oldest_advice_waiting_seconds,
            last_error_at: w.last_error.as_ref().map(|e| e.at),
        });
    }
}
