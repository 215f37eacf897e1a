//! What every answer and request passes on its way, beside authentication: the caller's
//! request id taken only when it is a plain token, back-office answers never cached, state
//! changes in the back office refused from other sites, and an ErrorDetail for paths and
//! methods the hub does not serve.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{request_id, ApiError, REQUEST_ID};
use crate::model::{ErrorDetail, ErrorType};

/// Longest caller-chosen request id kept (a UUID is 36).
const REQUEST_ID_MAX: usize = 64;

/// A caller's `x-request-id` is echoed in the answer, the ErrorDetail and every log line of
/// the request: one that is not a short plain token (letters, digits, `-`, `_`, `.`, `:`) is
/// dropped, and the hub makes its own, so that a caller cannot forge log fields or send
/// control bytes back through the hub.
pub(crate) async fn plain_request_id(mut request: Request, next: Next) -> Response {
    let plain = request.headers().get_all(REQUEST_ID).iter().count() <= 1
        && request.headers().get(REQUEST_ID).is_none_or(|v| {
            let bytes = v.as_bytes();
            !bytes.is_empty()
                && bytes.len() <= REQUEST_ID_MAX
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
        });
    if !plain {
        request.headers_mut().remove(REQUEST_ID);
    }
    next.run(request).await
}

/// Back-office answers carry payments, partners and settlement figures: no cache keeps
/// them, and no browser guesses their type.
pub(super) async fn not_cached(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A back-office state change (a retry) sent from another site is refused 403: a browser
/// that once answered the Basic prompt would attach the operator's credentials to a form
/// another page posts. Browsers say where a request comes from (`Sec-Fetch-Site`, `Origin`);
/// tools such as curl send neither and are not affected.
pub(super) async fn same_site_changes(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) || !cross_site(request.headers())
    {
        return next.run(request).await;
    }
    ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorDetail::new(
            request_id(request.headers()),
            ErrorType::GeneralError,
            "Refused: sent from another site",
        ),
    )
    .into_response()
}

fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers.get(header::HOST).map(HeaderValue::as_bytes);
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.as_bytes());
    origin_host.is_none() || origin_host != host
}

/// 404 for a path the hub does not serve, in the interface's error shape.
pub(super) async fn not_found(headers: HeaderMap) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorDetail::new(
            request_id(&headers),
            ErrorType::UnableToLocateRecord,
            "No such path",
        ),
    )
}

/// 405 for a method a path does not take, in the interface's error shape.
pub(super) async fn method_not_allowed(headers: HeaderMap) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorDetail::new(
            request_id(&headers),
            ErrorType::FunctionNotSupported,
            "Method not allowed on this path",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        map
    }

    #[test]
    fn where_a_request_comes_from() {
        assert!(!cross_site(&headers(&[])), "curl sends neither");
        assert!(!cross_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!cross_site(&headers(&[
            ("origin", "http://hub.example:8080"),
            ("host", "hub.example:8080")
        ])));
        assert!(cross_site(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "hub.example:8080")
        ])));
        assert!(cross_site(&headers(&[
            ("origin", "null"),
            ("host", "hub.example:8080")
        ])));
    }
}
