use axum::extract::State;
use axum::http::StatusCode;
use std::sync::Arc;

use super::{answer, ensure_enabled, ApiError, Body, PartnerCaller};
use crate::model::{Operation, ScanNotification};
use crate::service::Hub;

/// notifyScan → 202 with no body once the payment is claimed for this partner.
pub(super) async fn notify(
    State(hub): State<Arc<Hub>>,
    PartnerCaller(partner): PartnerCaller,
    body: Body<ScanNotification>,
) -> Result<StatusCode, ApiError> {
    let scan = body.value;
    ensure_enabled(&hub, Operation::NotifyScan, &scan.id)?;
    // A partner scans only as itself.
    if scan.partner.id != partner {
        return Err(ApiError::format_field(
            &scan.id,
            "partner.id",
            "must be the authenticated user",
            &scan.partner.id,
        ));
    }
    hub.notify_scan(&partner, &scan)
        .await
        .map_err(|e| answer(&scan.id, e))?;
    Ok(StatusCode::ACCEPTED)
}
