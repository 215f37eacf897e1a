//! The OpenAPI document: the checked-in file is what the code generates, the hub serves it,
//! every operation it documents is routed and nothing else is; and regressions of what the
//! schema-driven fuzz (`scripts/api-fuzz`) found.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::db::TestDb;
use crate::common::hub::{Options, TestHub, OPERATOR, OPERATOR_PASSWORD, POS_PASSWORD};

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/qrhub.openapi.json");

#[test]
fn the_checked_in_document_is_the_generated_one() {
    let generated = qrhub::openapi::render();
    let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    if generated != checked_in {
        let line = generated
            .lines()
            .zip(checked_in.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the end".to_owned(), |n| format!("line {}", n + 1));
        panic!(
            "openapi/qrhub.openapi.json is not what the code generates (first difference at \
             {line}); regenerate it with:\n\n    cargo run -- openapi > openapi/qrhub.openapi.json\n"
        );
    }
}

async fn hub() -> TestHub {
    TestHub::start(TestDb::sqlite().await, Options::default()).await
}

/// Every (method, path) the document describes, with its path parameters filled in.
fn documented() -> Vec<(Method, String, bool)> {
    let doc = qrhub::openapi::document();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            let authenticated = !op["security"].as_array().expect("security").is_empty();
            let mut concrete = String::new();
            let mut rest = path.as_str();
            while let Some(start) = rest.find('{') {
                let end = rest.find('}').expect("a closed parameter");
                concrete.push_str(&rest[..start]);
                concrete.push_str("00000000-0000-4000-8000-000000000000");
                rest = &rest[end + 1..];
            }
            concrete.push_str(rest);
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            out.push((method, concrete, authenticated));
        }
    }
    out
}

#[tokio::test]
async fn the_hub_serves_its_document() {
    let hub = hub().await;
    let response = hub
        .http
        .get(format!("{}/openapi.json", hub.url))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let served: Value = response.json().await.expect("JSON");
    assert_eq!(served, qrhub::openapi::document());
    assert_eq!(served["openapi"], "3.0.3");
    hub.stop().await;
}

/// The router and the document agree: every documented operation is answered (401 without
/// credentials where the document asks for them, 200 where it does not), and paths or
/// methods the document does not name are not (404, 405).
#[tokio::test]
async fn every_documented_operation_is_routed_and_nothing_else() {
    let hub = hub().await;
    let operations = documented();
    assert!(operations.len() >= 21, "{operations:?}");
    for (method, path, authenticated) in &operations {
        let response = hub
            .http
            .request(method.clone(), format!("{}{path}", hub.url))
            .send()
            .await
            .expect("answers");
        let expected = if *authenticated {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        assert_eq!(response.status(), expected, "{method} {path}");
    }
    for path in [
        "/",
        "/qr/v1",
        "/qr/v1/nothing",
        "/qr/v2/payments",
        "/qr/v1/qrCodes/x/image/",
        "/qr/v1/payments/confirmations/x",
        "/admin/v1",
        "/admin/v1/payments/",
        "/admin/v1/nothing",
        "/health",
        "/openapi.yaml",
    ] {
        let response = hub
            .http
            .get(format!("{}{path}", hub.url))
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "GET {path}");
    }
    // A documented path with a method it does not document.
    for (method, path) in [
        (Method::GET, "/qr/v1/payments"),
        (Method::DELETE, "/qr/v1/qrCodes"),
        (Method::POST, "/health/live"),
        (Method::POST, "/admin/v1/payments"),
    ] {
        assert!(
            !operations.iter().any(|(m, p, _)| m == method && p == path),
            "{method} {path} is documented"
        );
        let response = hub
            .http
            .request(method.clone(), format!("{}{path}", hub.url))
            .send()
            .await
            .expect("answers");
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
    }
    hub.stop().await;
}

/// Found while fuzzing: `?scale=` that is not a whole number was refused by axum's `Query`
/// extractor in plain text; it is a FORMAT_ERROR ErrorDetail like every other refusal.
#[tokio::test]
async fn a_bad_image_scale_is_an_error_detail() {
    let hub = hub().await;
    let tran_id = hub.new_code(1500).await;
    for query in ["scale=abc", "scale=-1", "format=png&scale=99999999999"] {
        let response = hub
            .http
            .get(format!("{}/qr/v1/qrCodes/{tran_id}/image?{query}", hub.url))
            .basic_auth("pos-1", Some(POS_PASSWORD))
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await.expect("an ErrorDetail");
        assert_eq!(body["errorType"], "FORMAT_ERROR", "{query}: {body}");
        assert_eq!(
            body["detailMessage"]["formatErrors"][0]["field"], "query",
            "{body}"
        );
    }
    let response = hub
        .http
        .get(format!(
            "{}/qr/v1/qrCodes/{tran_id}/image?format=png&scale=4",
            hub.url
        ))
        .basic_auth("pos-1", Some(POS_PASSWORD))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/png");
    hub.stop().await;
}

/// Found while reading the routes for the document: a reconciliation report over its 16 MiB
/// limit was refused by axum in plain text; it is an ErrorDetail (413 FORMAT_ERROR).
#[tokio::test]
async fn an_oversized_reconciliation_report_is_an_error_detail() {
    let hub = hub().await;
    let body = vec![b'x'; 16 * 1024 * 1024 + 1];
    let response = hub
        .http
        .post(format!(
            "{}/admin/v1/reports/reconciliation?partnerId=wallet-1",
            hub.url
        ))
        .basic_auth(OPERATOR, Some(OPERATOR_PASSWORD))
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.expect("an ErrorDetail");
    assert_eq!(body["errorType"], "FORMAT_ERROR", "{body}");
    assert_eq!(body["errorMessage"], "Request body too large", "{body}");
    hub.stop().await;
}
