//! Telling the hub that the simulator's "customer" scanned a code (`notifyScan`).

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;

use super::state::Shared;
use crate::model::{ScanNotification, Timestamp};

/// Longer than any wait the hub may add before answering a scan (its early-scan grace).
const SCAN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the hub said to a scan.
#[derive(Debug, Clone)]
pub(crate) struct ScanOutcome {
    /// The scan's own id.
    pub id: String,
    pub status: u16,
    /// The hub's body, as JSON when it is JSON (an ErrorDetail on failure; none on 202).
    pub body: Option<serde_json::Value>,
}

/// Posts a ScanNotification for `tran_id` to `{hub_url}/qr/v1/scans`, as the partner.
pub(crate) async fn send(
    sim: &Shared,
    tran_id: &str,
    partner_payment_token: Option<&str>,
) -> anyhow::Result<ScanOutcome> {
    let settings = &sim.settings;
    let scan = ScanNotification {
        id: uuid::Uuid::new_v4().to_string(),
        time: Timestamp::from(Utc::now()),
        partner: settings.institution(),
        settlement_entity: None,
        receiver: None,
        third_party_identifiers: Vec::new(),
        amounts: None,
        tran_id: tran_id.to_owned(),
        partner_payment_token: partner_payment_token.map(str::to_owned),
    };
    let url = format!("{}/qr/v1/scans", settings.hub_url.trim_end_matches('/'));
    let response = sim
        .http
        .post(&url)
        .basic_auth(settings.hub_user(), settings.hub_password.as_deref())
        .timeout(SCAN_TIMEOUT)
        .json(&scan)
        .send()
        .await
        .with_context(|| format!("sending a scan to {url}"))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .with_context(|| format!("reading the hub's answer to a scan from {url}"))?;
    let body = if text.trim().is_empty() {
        None
    } else {
        Some(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    };
    tracing::debug!(scan_id = %scan.id, tran_id, status, "scan sent to the hub");
    Ok(ScanOutcome {
        id: scan.id,
        status,
        body,
    })
}
