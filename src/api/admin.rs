//! `/admin/v1`: the back office, for operators only (HTTP Basic, `[[operators]]`). JSON
//! throughout, CSV for the settlement report on request; every error an ErrorDetail.
//! The work is in [`crate::admin`].

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;

use super::extract::{request_id, Operator};
use super::{answer, ApiError, AppState};
use crate::admin::{self, reports, Params};
use crate::service::Hub;

/// Largest partner report accepted by the reconciliation import.
const RECONCILIATION_BODY_LIMIT: usize = 16 * 1024 * 1024;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/summary", get(summary))
        .route("/admin/v1/payments", get(payments))
        .route("/admin/v1/payments/{id}", get(payment))
        .route("/admin/v1/outbox", get(outbox))
        .route("/admin/v1/outbox/{id}/retry", post(retry))
        .route("/admin/v1/unadvised", get(unadvised))
        .route("/admin/v1/partners/health", get(partners_health))
        .route("/admin/v1/reports/settlement", get(settlement))
        .route(
            "/admin/v1/reports/reconciliation",
            post(reconciliation).layer(DefaultBodyLimit::max(RECONCILIATION_BODY_LIMIT)),
        )
}

fn params(id: &str, uri: &Uri) -> Result<Params, ApiError> {
    axum::extract::Query::<Params>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::format_field(id, "query", &e.body_text(), uri.query().unwrap_or("")))
}

async fn partners_health(
    State(hub): State<Arc<Hub>>,
    _: Operator,
    headers: HeaderMap,
) -> Result<Json<admin::health::PartnersHealth>, ApiError> {
    let id = request_id(&headers);
    admin::health::partners_health(&hub)
        .await
        .map(Json)
        .map_err(|e| answer(&id, e))
}

async fn summary(
    State(hub): State<Arc<Hub>>,
    _: Operator,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<admin::Summary>, ApiError> {
    let id = request_id(&headers);
    let params = params(&id, &uri)?;
    admin::summary(&hub, &id, &params)
        .await
        .map(Json)
        .map_err(|e| answer(&id, e))
}

async fn payments(
    State(hub): State<Arc<Hub>>,
    _: Operator,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<admin::PaymentPage>, ApiError> {
    let id = request_id(&headers);
    let params = params(&id, &uri)?;
    admin::search_payments(&hub, &id, &params)
        .await
        .map(Json)
        .map_err(|e| answer(&id, e))
}

async fn payment(
    State(hub): State<Arc<Hub>>,
    _: Operator,
    headers: HeaderMap,
    Path(payment_id): Path<String>,
) -> Result<Json<admin::PaymentDetail>, ApiError> {
    let id = request_id(&headers);
    admin::payment_detail(&hub, &id, &payment_id)
        .await
        .map(Json)
        .map_err(|e| answer(&id, e))
}

async fn outbox(
    State(hub): State<Arc<Hub>>,
    _: Operator,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<admin::OutboxList>, ApiError> {
    let id = request_id(&headers);
    let params = params(&id, &uri)?;
    admin::outbox(&hub, &id, &params)
        .await
        .map(Json)
        .map_err(|e| answer(&id, e))
}

async fn unadvised(
    State(hub): State<Arc<Hub>>,
    _: Operator,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<admin::UnadvisedList>, ApiError> {
    let id = request_id(&headers);
    let params = params(&id, &uri)?;
    admin::unadvised(&hub, &id, &params)
        .await
        .map(Json)
        .map_err(|e| answer(&id, e))
}

async fn retry(
    State(hub): State<Arc<Hub>>,
    Operator(operator): Operator,
    headers: HeaderMap,
    Path(row_id): Path<String>,
) -> Result<Json<admin::Retried>, ApiError> {
    let id = request_id(&headers);
    tracing::info!(operator, outbox_id = %row_id, "operator retries a dead letter");
    admin::retry_dead_letter(&hub, &id, &row_id)
        .await
        .map(Json)
        .map_err(|e| answer(&id, e))
}

/// Whether the caller asked for CSV: `?format=csv`, or `Accept: text/csv`.
fn wants_csv(id: &str, params: &Params, headers: &HeaderMap) -> Result<bool, ApiError> {
    match params.get("format").map(|f| f.trim()) {
        Some("csv") => return Ok(true),
        Some("json") => return Ok(false),
        Some("") | None => {}
        Some(other) => {
            return Err(ApiError::format_field(
                id,
                "format",
                "must be json or csv",
                other,
            ))
        }
    }
    Ok(headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept
                .split(',')
                .any(|m| m.split(';').next().unwrap_or("").trim() == "text/csv")
        }))
}

async fn settlement(
    State(hub): State<Arc<Hub>>,
    _: Operator,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let id = request_id(&headers);
    let params = params(&id, &uri)?;
    let csv = wants_csv(&id, &params, &headers)?;
    let (date, partner) = reports::report_scope(&hub, &id, &params).map_err(|e| answer(&id, e))?;
    let report = reports::settlement(&hub, date, partner)
        .await
        .map_err(|e| answer(&id, e))?;
    if csv {
        let disposition = format!("attachment; filename=\"settlement-{date}.csv\"");
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            report.to_csv(),
        )
            .into_response())
    } else {
        Ok(Json(report).into_response())
    }
}

async fn reconciliation(
    State(hub): State<Arc<Hub>>,
    _: Operator,
    headers: HeaderMap,
    uri: Uri,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<reports::Reconciliation>, ApiError> {
    let id = request_id(&headers);
    // axum's own refusal (413 over the limit) would be plain text; every answer here is an
    // ErrorDetail.
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "Request body too large"
        } else {
            "Request body could not be read"
        };
        ApiError::new(
            status,
            crate::model::ErrorDetail::new(&id, crate::model::ErrorType::FormatError, message),
        )
    })?;
    let params = params(&id, &uri)?;
    let (date, partner) = reports::report_scope(&hub, &id, &params).map_err(|e| answer(&id, e))?;
    let Some(partner) = partner else {
        return Err(ApiError::format_field(
            &id,
            "partnerId",
            "the partner whose report this is",
            "null",
        ));
    };
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let is_csv = match mime.as_str() {
        "text/csv" => true,
        "application/json" => false,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                crate::model::ErrorDetail::new(
                    &id,
                    crate::model::ErrorType::FormatError,
                    "Content-Type must be text/csv or JSON",
                ),
            ))
        }
    };
    let report = reports::parse_partner_report(&id, &body, is_csv).map_err(|e| answer(&id, e))?;
    reports::reconciliation(&hub, date, partner, report)
        .await
        .map(Json)
        .map_err(|e| answer(&id, e))
}
