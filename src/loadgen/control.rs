//! The partner simulator's control API (`/simulator/...`, see `simulator/control.rs`):
//! resetting its ledger, scripting declines, reading what the partner received.

use anyhow::{bail, Context};
use serde_json::json;

use super::http::{join, Http};
use crate::simulator::LedgerEntry;

/// The status and error type the simulator is scripted to decline with, which the hub relays
/// to the POS unchanged.
pub(super) const DECLINE_STATUS: u16 = 400;
pub(super) const DECLINE_ERROR_TYPE: &str = "INSUFFICIENT_FUNDS";

#[derive(Debug, Clone)]
pub(super) struct SimulatorControl {
    http: Http,
    base: String,
}

impl SimulatorControl {
    pub(super) fn new(http: Http, base: &str) -> Self {
        Self {
            http,
            base: base.to_owned(),
        }
    }

    /// `DELETE /simulator/ledger`: forget every message received so far.
    pub(super) async fn reset_ledger(&self) -> anyhow::Result<()> {
        let url = join(&self.base, "/simulator/ledger");
        let a = self
            .http
            .delete(&url)
            .await
            .with_context(|| format!("DELETE {url}"))?;
        if a.status != 204 && a.status != 200 {
            bail!(
                "DELETE {url} answered {}: {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
        }
        Ok(())
    }

    /// Scripts the next `pay` of `tran_id` to be declined.
    pub(super) async fn script_decline(&self, tran_id: &str) -> anyhow::Result<()> {
        let url = join(&self.base, "/simulator/script/pay");
        let body = json!({
            "kind": "decline",
            "status": DECLINE_STATUS,
            "errorType": DECLINE_ERROR_TYPE,
            "tranId": tran_id,
        });
        let a = self
            .http
            .post(&url, None, &body)
            .await
            .with_context(|| format!("POST {url}"))?;
        if !(200..300).contains(&a.status) {
            bail!(
                "POST {url} answered {}: {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
        }
        Ok(())
    }

    /// `GET /simulator/ledger`: every message the partner received, oldest first.
    pub(super) async fn ledger(&self) -> anyhow::Result<Vec<LedgerEntry>> {
        let url = join(&self.base, "/simulator/ledger");
        let a = self
            .http
            .get(&url)
            .await
            .with_context(|| format!("GET {url}"))?;
        if a.status != 200 {
            bail!(
                "GET {url} answered {}: {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
        }
        serde_json::from_slice(&a.body)
            .with_context(|| format!("the ledger from {url} is not a list of entries"))
    }
}
