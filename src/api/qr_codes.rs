use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

use super::{answer, ensure_enabled, ApiError, Body, PosClient};
use crate::model::{CreateQrCodeRequest, CreateQrCodeResponse, ErrorDetail, ErrorType, Operation};
use crate::qr;
use crate::service::Hub;

/// createQrCode → 201 with the request echoed, the tranId and the payload.
pub(super) async fn create(
    State(hub): State<Arc<Hub>>,
    PosClient(client): PosClient,
    body: Body<CreateQrCodeRequest>,
) -> Result<(StatusCode, Json<CreateQrCodeResponse>), ApiError> {
    let request = body.value;
    ensure_enabled(&hub, Operation::CreateQrCode, &request.id)?;
    if request.client.id != client {
        return Err(ApiError::format_field(
            &request.id,
            "client.id",
            "must be the authenticated user",
            &request.client.id,
        ));
    }
    let id = request.id.clone();
    let response = hub
        .create_qr_code(&client, request)
        .await
        .map_err(|e| answer(&id, e))?;
    Ok((StatusCode::CREATED, Json(response)))
}

#[derive(Debug, Deserialize)]
pub(super) struct ImageQuery {
    /// `svg` (default) or `png`.
    #[serde(default)]
    format: Option<String>,
    /// PNG pixels per module (default 8, at most 32).
    #[serde(default)]
    scale: Option<u32>,
}

/// An extension beside the spec: the code's image, for POS systems that do not render QR.
/// Only the client that created the code may fetch it.
pub(super) async fn image(
    State(hub): State<Arc<Hub>>,
    PosClient(client): PosClient,
    Path(tran_id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    // Read here rather than by the `Query` extractor, whose refusal is plain text: a bad
    // `scale` is a FORMAT_ERROR like every other refusal.
    let query = Query::<ImageQuery>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| {
            ApiError::format_field(&tran_id, "query", &e.body_text(), uri.query().unwrap_or(""))
        })?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorDetail::new(
                &tran_id,
                ErrorType::UnableToLocateRecord,
                "QR code not found",
            )
            .with_tran_id(&tran_id),
        )
    };
    let code = hub
        .store
        .qr_code(&tran_id)
        .await
        .map_err(|e| ApiError::internal(&tran_id, &anyhow::Error::new(e)))?
        .filter(|c| c.client_id == client)
        .ok_or_else(not_found)?;
    let format = query.format.as_deref().unwrap_or("svg");
    let rendered = match format {
        "svg" => qr::svg(&code.payload)
            .map(|svg| ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()),
        "png" => qr::png(&code.payload, query.scale.unwrap_or(8).clamp(1, 32))
            .map(|png| ([(header::CONTENT_TYPE, "image/png")], png).into_response()),
        other => {
            return Err(ApiError::format_field(
                &tran_id,
                "format",
                "must be svg or png",
                other,
            ))
        }
    };
    rendered.map_err(|e| ApiError::internal(&tran_id, &anyhow::Error::new(e)))
}
