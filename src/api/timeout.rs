//! The last guard on every request: an answer with an ErrorDetail before the POS gives up,
//! even if something inside the hub (a starved connection pool, a stuck partner call) has
//! not finished. A held `pay` normally answers itself by `timing.pay_deadline`, earlier.

use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::Timeout;
use tower::{Layer, Service};

use super::ApiError;
use crate::model::{ErrorDetail, ErrorType};

/// Answers 504 with an ErrorDetail for a request still unanswered after `limit`. A tower
/// layer with its own future rather than `axum::middleware::from_fn`, which boxes a future
/// and a clone of the inner service per request: a held `pay` keeps those for its whole
/// hold.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestTimeoutLayer {
    limit: Duration,
}

impl RequestTimeoutLayer {
    pub(crate) fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout {
            inner,
            limit: self.limit,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct RequestTimeout<S> {
    inner: S,
    limit: Duration,
}

impl<S, B> Service<Request<B>> for RequestTimeout<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TimedRequest<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Kept for the answer's ErrorDetail: a clone of the header shares its bytes.
        let request_id = request.headers().get(super::REQUEST_ID).cloned();
        TimedRequest {
            inner: tokio::time::timeout(self.limit, self.inner.call(request)),
            limit: self.limit,
            request_id,
        }
    }
}

pin_project! {
    /// A request on its way through [`RequestTimeout`]: tokio's `Timeout` held in place
    /// (it still gets its deadline checked when the request used up its task's budget).
    pub struct TimedRequest<F> {
        #[pin]
        inner: Timeout<F>,
        limit: Duration,
        request_id: Option<HeaderValue>,
    }
}

impl<F, E> Future for TimedRequest<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Ok(result) = ready!(this.inner.poll(cx)) {
            return Poll::Ready(result);
        }
        tracing::error!(limit = ?this.limit, "request cut short by the request timeout");
        let id = this
            .request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        // 504 is "unknown" to the caller: a POS reverses, which the hub absorbs.
        Poll::Ready(Ok(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorDetail::new(id, ErrorType::UpstreamUnavailable, "Request timed out"),
        )
        .into_response()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
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
            .layer(RequestTimeoutLayer::new(Duration::from_millis(20)));
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
