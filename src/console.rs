//! The operators' web console at `GET /admin`: one HTML page, one script and one stylesheet,
//! embedded in the binary (no build step, nothing fetched from elsewhere). The page holds no
//! data of its own: its script calls `/admin/v1` with the operator's Basic credentials, so
//! these handlers need no authentication and serve the same bytes to everyone.
//!
//! Every answer carries a Content-Security-Policy that allows only the hub itself: no inline
//! script or style, no other origin. The assets are addressed with `?v=<digest of their
//! content>`, so a browser may keep them for good while the page itself is revalidated.

use std::sync::LazyLock;

use axum::extract::RawQuery;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

const INDEX_HTML: &str = include_str!("console/assets/index.html");
const CONSOLE_JS: &str = include_str!("console/assets/console.js");
const CONSOLE_CSS: &str = include_str!("console/assets/console.css");
const FAVICON_SVG: &str = include_str!("console/assets/favicon.svg");

/// Only the hub's own origin, for everything; no inline code, no framing, no plugins.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The page: revalidated on every load (it names the current assets).
const PAGE_CACHE: &str = "no-cache";
/// An asset asked for with the current digest: it never changes under that name.
const ASSET_CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// An asset asked for without it (or with an old one).
const ASSET_CACHE_OTHER: &str = "no-cache";

/// The first 16 hex digits of SHA-256 over the script, stylesheet and icon.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::new()
        .chain_update(CONSOLE_JS.as_bytes())
        .chain_update([0u8])
        .chain_update(CONSOLE_CSS.as_bytes())
        .chain_update([0u8])
        .chain_update(FAVICON_SVG.as_bytes())
        .finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
});

static PAGE: LazyLock<String> = LazyLock::new(|| INDEX_HTML.replace("__VERSION__", &VERSION));

/// `GET /admin` (and `/admin/`, redirected), `/admin/console.js`, `/admin/console.css`,
/// `/admin/favicon.svg`.
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/admin", get(page))
        .route("/admin/", get(|| async { Redirect::permanent("/admin") }))
        .route("/admin/console.js", get(script))
        .route("/admin/console.css", get(stylesheet))
        .route("/admin/favicon.svg", get(icon))
}

fn respond(content_type: &'static str, cache: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    (headers, body).into_response()
}

async fn page() -> Response {
    respond("text/html; charset=utf-8", PAGE_CACHE, PAGE.as_str())
}

/// Immutable caching only for the digest the page names.
fn asset_cache(query: Option<&str>) -> &'static str {
    let current = query
        .unwrap_or_default()
        .split('&')
        .any(|pair| pair.strip_prefix("v=") == Some(VERSION.as_str()));
    if current {
        ASSET_CACHE_IMMUTABLE
    } else {
        ASSET_CACHE_OTHER
    }
}

async fn script(RawQuery(query): RawQuery) -> Response {
    respond(
        "text/javascript; charset=utf-8",
        asset_cache(query.as_deref()),
        CONSOLE_JS,
    )
}

async fn stylesheet(RawQuery(query): RawQuery) -> Response {
    respond(
        "text/css; charset=utf-8",
        asset_cache(query.as_deref()),
        CONSOLE_CSS,
    )
}

async fn icon(RawQuery(query): RawQuery) -> Response {
    respond("image/svg+xml", asset_cache(query.as_deref()), FAVICON_SVG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_the_current_assets_and_loads_nothing_else() {
        assert!(!PAGE.contains("__VERSION__"));
        assert!(PAGE.contains(&format!("/admin/console.js?v={}", *VERSION)));
        assert!(PAGE.contains(&format!("/admin/console.css?v={}", *VERSION)));
        // No other origin, no inline script or style, no inline event handlers.
        for needle in [
            "http://",
            "https://",
            "<script>",
            "style=",
            "<style",
            "onclick",
            "onload",
            "onsubmit",
            "javascript:",
        ] {
            assert!(!PAGE.contains(needle), "the page contains {needle:?}");
        }
    }

    #[test]
    fn assets_are_immutable_only_under_their_digest() {
        assert_eq!(
            asset_cache(Some(&format!("v={}", *VERSION))),
            ASSET_CACHE_IMMUTABLE
        );
        assert_eq!(asset_cache(Some("v=0000")), ASSET_CACHE_OTHER);
        assert_eq!(asset_cache(None), ASSET_CACHE_OTHER);
    }

    #[test]
    fn the_script_never_writes_markup() {
        for needle in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!CONSOLE_JS.contains(needle), "console.js uses {needle}");
        }
    }
}
