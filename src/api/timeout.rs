//! The last guard on every request: an answer with an ErrorDetail before the POS gives up,
//! even if something inside the hub (a starved connection pool, a stuck partner call) has
//! not finished. A held `pay` normally answers itself by `timing.pay_deadline`, earlier.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

use super::ApiError;
use crate::model::{ErrorDetail, ErrorType};

pub async fn request_timeout(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!(limit = ?limit, "request cut short by the request timeout");
            // 504 is "unknown" to the caller: a POS reverses, which the hub absorbs.
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                ErrorDetail::new(id, ErrorType::UpstreamUnavailable, "Request timed out"),
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_request_past_the_limit_gets_an_error_detail() {
        let app = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .layer(axum::middleware::from_fn_with_state(
                Duration::from_millis(20),
                request_timeout,
            ));
        let request = Request::builder()
            .uri("/slow")
            .header("x-request-id", "r-1")
            .body(Body::empty())
            .expect("request");
        let response = app.oneshot(request).await.expect("answer");
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let detail: ErrorDetail = serde_json::from_slice(&body).expect("an ErrorDetail");
        assert_eq!(detail.error_type, ErrorType::UpstreamUnavailable);
        assert_eq!(detail.id, "r-1");
    }
}
