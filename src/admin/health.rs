//! `GET /admin/v1/partners/health`: each partner's last hour as this instance saw it (its
//! `pay` calls' rates and latency, its last error), with the advices waiting for it from
//! the store (global: every instance's). The same figures feed the per-partner gauges.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::partner::health::PayFigures;
use crate::service::{Hub, HubResult};

/// One partner's health.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartnerHealthView {
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

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartnersHealth {
    pub generated_at: DateTime<Utc>,
    /// The window of the call figures (3600: the last hour, per minute).
    pub window_seconds: u64,
    /// What the call figures cover: the calls this hub instance made (each instance
    /// reports its own); the advices waiting are the store's, every instance's.
    pub scope: &'static str,
    /// Configured partners in configuration order, then others with figures, by id.
    pub partners: Vec<PartnerHealthView>,
}

/// Every configured partner's health, and that of partners no longer configured that
/// still have advices waiting or calls in the window.
pub async fn partners_health(hub: &Hub) -> HubResult<PartnersHealth> {
    let now = hub.clock.now();
    let backlog = hub.store.outbox_backlog_by_partner().await?;
    Ok(PartnersHealth {
        generated_at: now,
        window_seconds: 3600,
        scope: "calls: this instance; advices waiting: all instances",
        partners: views(hub, &backlog, now),
    })
}

/// The views from `backlog` and this instance's windows (no I/O: the sweeper sets the
/// gauges from these too).
pub fn views(
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
