//! `GET /admin/v1/partners/health`: each partner's last hour as this instance saw it (its
//! `pay` calls' rates and latency, its last error), with the advices waiting for it from
//! the store (global: every instance's). The same figures feed the per-partner gauges.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::service::{Hub, HubResult};

pub(crate) use crate::service::partner_health::{views, PartnerHealthView};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PartnersHealth {
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
pub(crate) async fn partners_health(hub: &Hub) -> HubResult<PartnersHealth> {
    let now = hub.clock.now();
    let backlog = hub.store.outbox_backlog_by_partner().await?;
    Ok(PartnersHealth {
        generated_at: now,
        window_seconds: 3600,
        scope: "calls: this instance; advices waiting: all instances",
        partners: views(hub, &backlog, now),
    })
}
