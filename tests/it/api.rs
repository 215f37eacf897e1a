//! The hub's HTTP surface as a POS and a partner meet it: paths, validation in Electrum's
//! error shape, authentication, createQrCode and the QR payloads it returns.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::db::TestDb;
use crate::common::hub::{new_id, nulls, qr_request, Options, TestHub, POS_PASSWORD};
use qrhub::qr;

async fn hub(db: TestDb) -> TestHub {
    TestHub::start(db, Options::default()).await
}

/// Removes the value at a dotted path (`originator.merchant.merchantId`).
fn without(mut body: Value, path: &str) -> Value {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().expect("a path");
    let mut node = &mut body;
    for p in parts {
        node = node.get_mut(p).expect("the path exists");
    }
    node.as_object_mut().expect("an object").remove(last);
    body
}

fn set(mut body: Value, path: &str, value: Value) -> Value {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().expect("a path");
    let mut node = &mut body;
    for p in parts {
        node = node.get_mut(p).expect("the path exists");
    }
    node[last] = value;
    body
}

fn format_error_fields(body: &Value) -> Vec<String> {
    assert_eq!(body["errorType"], "FORMAT_ERROR", "{body}");
    body["detailMessage"]["formatErrors"]
        .as_array()
        .unwrap_or_else(|| panic!("formatErrors listed: {body}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn every_operation_answers_with_and_without_a_trailing_slash(db: TestDb) {
    let hub = hub(db).await;
    for path in ["/qr/v1/qrCodes", "/qr/v1/qrCodes/"] {
        let (status, body) = hub.pos(path, &qr_request("pos-1", 1000)).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {body}");
    }
    // An empty body reaches each operation's validation (400), not a missing route (404/405).
    for path in [
        "/qr/v1/payments",
        "/qr/v1/payments/confirmations",
        "/qr/v1/payments/reversals",
    ] {
        for p in [path.to_owned(), format!("{path}/")] {
            let (status, body) = hub.pos(&p, &json!({})).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{p}: {body}");
            assert_eq!(body["errorType"], "FORMAT_ERROR", "{p}");
        }
    }
    for p in ["/qr/v1/scans", "/qr/v1/scans/"] {
        let (status, body) = hub
            .post_as(
                "wallet-1",
                crate::common::hub::PARTNER_PASSWORD,
                p,
                &json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{p}: {body}");
    }
    hub.stop().await;
}

const REQUIRED_CREATE_QR_FIELDS: &[&str] = &[
    "id",
    "time",
    "originator",
    "originator.institution",
    "originator.institution.id",
    "originator.institution.name",
    "originator.terminalId",
    "originator.merchant",
    "originator.merchant.merchantType",
    "originator.merchant.merchantId",
    "originator.merchant.merchantName",
    "originator.merchant.merchantName.name",
    "originator.merchant.merchantName.city",
    "originator.merchant.merchantName.region",
    "originator.merchant.merchantName.country",
    "client",
    "client.id",
    "client.name",
];

async fn a_missing_required_field_is_named_by_its_dotted_path(db: TestDb) {
    let hub = hub(db).await;
    for field in REQUIRED_CREATE_QR_FIELDS {
        let body = without(qr_request("pos-1", 1000), field);
        let (status, answer) = hub.pos("/qr/v1/qrCodes", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {answer}");
        let fields = format_error_fields(&answer);
        assert!(fields.contains(&field.to_string()), "{field}: {answer}");
        let error = &answer["detailMessage"]["formatErrors"][0];
        assert_eq!(error["msg"], format!("{field} may not be null"), "{answer}");
        assert_eq!(error["value"], "null");
    }
    hub.stop().await;
}

async fn bad_patterns_and_lengths_are_each_reported(db: TestDb) {
    let hub = hub(db).await;
    let cases: &[(&str, Value)] = &[
        ("originator.merchant.merchantType", json!("54A1")),
        ("originator.merchant.merchantType", json!("54111")),
        ("originator.merchant.merchantId", json!("12345")),
        ("originator.terminalId", json!("T1")),
        ("originator.institution.name", json!("x".repeat(41))),
        (
            "originator.merchant.merchantName.name",
            json!("x".repeat(24)),
        ),
        (
            "originator.merchant.merchantName.city",
            json!("x".repeat(14)),
        ),
        ("amounts.requestAmount.currency", json!("ZAR")),
        ("amounts.requestAmount.amount", json!("100")),
        ("time", json!("yesterday")),
    ];
    for (field, value) in cases {
        let body = set(qr_request("pos-1", 1000), field, value.clone());
        let (status, answer) = hub.pos("/qr/v1/qrCodes", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}: {answer}");
        assert_eq!(
            format_error_fields(&answer),
            [field.to_string()],
            "{answer}"
        );
        assert_eq!(
            answer["id"], body["id"],
            "the ErrorDetail carries the message id"
        );
    }
    // Several problems at once are all listed.
    let body = set(
        set(
            qr_request("pos-1", 1000),
            "originator.terminalId",
            json!("T1"),
        ),
        "originator.merchant.merchantType",
        json!("x"),
    );
    let (_, answer) = hub.pos("/qr/v1/qrCodes", &body).await;
    assert_eq!(format_error_fields(&answer).len(), 2, "{answer}");
    hub.stop().await;
}

async fn unknown_fields_are_ignored_and_absent_ones_omitted(db: TestDb) {
    let hub = hub(db).await;
    let mut body = qr_request("pos-1", 1000);
    body["somethingNewer"] = json!({"x": 1});
    body["originator"]["channelId"] = json!("web");
    let (status, answer) = hub.pos("/qr/v1/qrCodes", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert!(answer.get("somethingNewer").is_none());
    assert_eq!(answer["originator"]["channelId"], "web");
    let mut found = Vec::new();
    nulls(&answer, "", &mut found);
    assert!(found.is_empty(), "null fields emitted: {found:?}");
    // Optional fields the request left out are not in the answer at all.
    for absent in ["rrn", "stan", "customer"] {
        assert!(answer.get(absent).is_none(), "{absent} emitted");
    }
    hub.stop().await;
}

async fn created_codes_echo_the_request_and_decode(db: TestDb) {
    let hub = hub(db).await;
    let request = qr_request("pos-1", 15000);
    let (status, answer) = hub.pos("/qr/v1/qrCodes", &request).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    for echoed in ["id", "time", "originator", "client", "amounts"] {
        assert_eq!(answer[echoed], request[echoed], "{echoed} echoed");
    }
    let tran_id = answer["tranId"].as_str().expect("tranId");
    assert_eq!(tran_id.len(), 32);
    assert!(tran_id
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(
        answer["qrProperties"]["scheme"],
        "ELECTRUM_MERCHANT_MINIMAL"
    );
    assert!(answer["qrProperties"]["expiryDate"].is_string());
    let payload = answer["qrCode"].as_str().expect("qrCode");
    let parsed = qr::parse(payload).expect("the minimal payload parses");
    assert_eq!(parsed.tran_id("za.co.qrhub"), Some(tran_id));
    assert_eq!(
        payload,
        format!("00020126510011za.co.qrhub0132{tran_id}"),
        "Electrum's minimal template"
    );

    // The full EMVCo scheme: merchant data, amount and a CRC that verifies.
    let mut request = qr_request("pos-1", 15000);
    request["qrProperties"] = json!({"scheme": "EMVCO_MERCHANT"});
    let (status, answer) = hub.pos("/qr/v1/qrCodes", &request).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["qrProperties"]["scheme"], "EMVCO_MERCHANT");
    let payload = answer["qrCode"].as_str().expect("qrCode");
    let parsed = qr::parse(payload).expect("the EMVCo payload parses with a valid CRC");
    assert!(parsed.crc().is_some(), "tag 63 present: {payload}");
    assert_eq!(parsed.tran_id("za.co.qrhub"), answer["tranId"].as_str());
    assert_eq!(parsed.amount(), Some("150.00"));
    assert_eq!(parsed.currency(), Some("710"));
    assert_eq!(parsed.merchant_name(), Some("DEMO STORE"));
    assert!(
        payload.starts_with("000201010212"),
        "dynamic code: {payload}"
    );

    // An unknown scheme is ignored, as the reference implementation does: the default applies.
    let mut request = qr_request("pos-1", 100);
    request["qrProperties"] = json!({"scheme": "SOMETHING_ELSE"});
    let (status, answer) = hub.pos("/qr/v1/qrCodes", &request).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(
        answer["qrProperties"]["scheme"],
        "ELECTRUM_MERCHANT_MINIMAL"
    );
    hub.stop().await;
}

/// Every code is one interoperable code: the hub's template in tag 26 and each partner's own
/// (its GUI and the merchant's reference at it, from `[partners.qr_template]`) in 27–51, in
/// both schemes, read back from the payload the POS receives.
async fn codes_carry_the_partners_templates_beside_the_hubs(db: TestDb) {
    let wallet_1 = r#"
[partners.qr_template]
gui = "za.co.wallet1"
merchant_reference = "QRHUB-AT-W1"
[[partners.qr_template.merchants]]
merchant_id = "000000000012345"
merchant_reference = "W1-DEMO-STORE"
"#;
    let wallet_2 = r#"
[partners.qr_template]
gui = "za.co.wallet2"
tag = 40
merchants = [{ merchant_id = "000000000099999", merchant_reference = "W2-OTHER" }]
"#;
    let options = Options {
        partner_extra: vec![
            ("wallet-1".into(), wallet_1.into()),
            ("wallet-2".into(), wallet_2.into()),
        ],
        ..Options::default()
    };
    let hub = TestHub::start(db, options).await;
    type Templates = Vec<(u8, Option<String>, Vec<(u8, String)>)>;
    let templates_of = |parsed: &qr::ParsedQr| -> Templates {
        parsed
            .account_templates()
            .iter()
            .map(|t| {
                (
                    t.tag,
                    t.gui.map(str::to_owned),
                    t.sub_tags
                        .iter()
                        .map(|(id, v)| (*id, (*v).to_owned()))
                        .collect(),
                )
            })
            .collect()
    };
    let hubs = |tran_id: &str| {
        (
            26,
            Some("za.co.qrhub".to_owned()),
            vec![(1, tran_id.to_owned())],
        )
    };
    for (merchant_id, partners) in [
        // The demo merchant has its own reference at wallet-1 and none at wallet-2.
        (
            "000000000012345",
            vec![(
                27,
                Some("za.co.wallet1".to_owned()),
                vec![(1, "W1-DEMO-STORE".to_owned())],
            )],
        ),
        // Another merchant: wallet-1's partner-wide reference, wallet-2's own at its tag 40.
        (
            "000000000099999",
            vec![
                (
                    27,
                    Some("za.co.wallet1".to_owned()),
                    vec![(1, "QRHUB-AT-W1".to_owned())],
                ),
                (
                    40,
                    Some("za.co.wallet2".to_owned()),
                    vec![(1, "W2-OTHER".to_owned())],
                ),
            ],
        ),
    ] {
        for scheme in ["ELECTRUM_MERCHANT_MINIMAL", "EMVCO_MERCHANT"] {
            let mut request = set(
                qr_request("pos-1", 15000),
                "originator.merchant.merchantId",
                json!(merchant_id),
            );
            request["qrProperties"] = json!({"scheme": scheme});
            let (status, answer) = hub.pos("/qr/v1/qrCodes", &request).await;
            assert_eq!(status, StatusCode::CREATED, "{answer}");
            let tran_id = answer["tranId"].as_str().expect("tranId");
            let payload = answer["qrCode"].as_str().expect("qrCode");
            let parsed = qr::parse(payload).unwrap_or_else(|e| panic!("{payload}: {e}"));
            let mut expected = vec![hubs(tran_id)];
            expected.extend(partners.iter().cloned());
            assert_eq!(templates_of(&parsed), expected, "{scheme} {payload}");
            assert_eq!(parsed.tran_id("za.co.qrhub"), Some(tran_id));
            if scheme == "EMVCO_MERCHANT" {
                assert!(parsed.crc().is_some(), "tag 63 verified: {payload}");
                assert_eq!(parsed.merchant_name(), Some("DEMO STORE"));
            }
        }
    }
    hub.stop().await;
}

async fn a_duplicate_request_id_is_refused_and_nothing_is_stored_twice(db: TestDb) {
    let hub = hub(db).await;
    let request = qr_request("pos-1", 1000);
    let (status, first) = hub.pos("/qr/v1/qrCodes", &request).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again) = hub.pos("/qr/v1/qrCodes", &request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{again}");
    assert_eq!(again["errorType"], "DUPLICATE_RECORD");
    assert_eq!(again["id"], request["id"]);
    assert!(again.get("originalId").is_none());
    // The first code is still the one stored for its tranId.
    let tran_id = first["tranId"].as_str().expect("tranId");
    let stored = hub
        .hub
        .store
        .qr_code(tran_id)
        .await
        .expect("store")
        .expect("stored");
    assert_eq!(stored.message_id, request["id"].as_str().expect("id"));
    hub.stop().await;
}

async fn authentication_failures_are_401_and_identity_mismatches_400(db: TestDb) {
    let hub = hub(db).await;
    let url = format!("{}/qr/v1/qrCodes", hub.url);
    let body = qr_request("pos-1", 1000);
    // No credentials.
    let response = hub
        .http
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("www-authenticate").is_some());
    // Wrong password, unknown user, a partner's credentials on a POS operation.
    for (user, password) in [
        ("pos-1", "wrong"),
        ("nobody", POS_PASSWORD),
        ("wallet-1", crate::common::hub::PARTNER_PASSWORD),
    ] {
        let (status, answer) = hub.post_as(user, password, "/qr/v1/qrCodes", &body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user}: {answer}");
    }
    // Right credentials, but the message names another client.
    let (status, answer) = hub
        .post_as("pos-2", POS_PASSWORD, "/qr/v1/qrCodes", &body)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(format_error_fields(&answer), ["client.id"]);
    // A partner scanning in another partner's name.
    let (status, answer) = hub
        .post_as(
            "wallet-2",
            crate::common::hub::PARTNER_PASSWORD,
            "/qr/v1/scans",
            &json!({"id": new_id(), "time": crate::common::hub::now(),
                    "partner": {"id": "wallet-1", "name": "W"}, "tranId": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(format_error_fields(&answer), ["partner.id"]);
    // A POS's credentials on the partner operation.
    let (status, _) = hub
        .post_as("pos-1", POS_PASSWORD, "/qr/v1/scans", &json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    hub.stop().await;
}

async fn malformed_bodies_get_an_error_detail_never_a_500(db: TestDb) {
    let hub = hub(db).await;
    let url = format!("{}/qr/v1/qrCodes", hub.url);
    let send = |body: Vec<u8>, content_type: &'static str| {
        hub.http
            .post(&url)
            .basic_auth("pos-1", Some(POS_PASSWORD))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let response = send(b"{\"id\": ".to_vec(), "application/json")
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("an ErrorDetail");
    assert_eq!(body["errorType"], "FORMAT_ERROR");

    let response = send(b"id=1".to_vec(), "application/x-www-form-urlencoded")
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = response.json().await.expect("an ErrorDetail");
    assert_eq!(body["errorType"], "FORMAT_ERROR");

    let huge = format!("{{\"id\": \"{}\"}}", "x".repeat(200 * 1024));
    let response = send(huge.into_bytes(), "application/json")
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The body was not read, so the connection closes; the client is told, and the next
    // request goes on a new one.
    assert_eq!(response.headers()["connection"], "close");
    let body: Value = response.json().await.expect("an ErrorDetail");
    assert_eq!(body["errorType"], "FORMAT_ERROR");

    let response = send(b"[1, 2]".to_vec(), "application/json")
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    hub.stop().await;
}

async fn qr_images_are_served_to_their_client_only(db: TestDb) {
    let hub = hub(db).await;
    let tran_id = hub.new_code(1000).await;
    let url = format!("{}/qr/v1/qrCodes/{tran_id}/image", hub.url);
    let svg = hub
        .http
        .get(&url)
        .basic_auth("pos-1", Some(POS_PASSWORD))
        .send()
        .await
        .expect("answer");
    assert_eq!(svg.status(), StatusCode::OK);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.expect("text").contains("<svg"));
    let png = hub
        .http
        .get(format!("{url}?format=png"))
        .basic_auth("pos-1", Some(POS_PASSWORD))
        .send()
        .await
        .expect("answer");
    assert_eq!(png.status(), StatusCode::OK);
    assert!(png
        .bytes()
        .await
        .expect("bytes")
        .starts_with(b"\x89PNG\r\n\x1a\n"));
    let other = hub
        .http
        .get(&url)
        .basic_auth("pos-2", Some(POS_PASSWORD))
        .send()
        .await
        .expect("answer");
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    hub.stop().await;
}

async fn health_reports_liveness_and_database_readiness(db: TestDb) {
    let hub = hub(db).await;
    for path in ["/health/live", "/health/ready"] {
        let response = hub
            .http
            .get(format!("{}{path}", hub.url))
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(response.headers().get("x-request-id").is_some());
    }
    hub.stop().await;
}

async fn a_disabled_operation_answers_501(db: TestDb) {
    let hub = TestHub::start(
        db,
        Options {
            disabled_operations: vec!["createQrCode".into()],
            ..Options::default()
        },
    )
    .await;
    let (status, answer) = hub.pos("/qr/v1/qrCodes", &qr_request("pos-1", 1000)).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{answer}");
    assert_eq!(answer["errorType"], "FUNCTION_NOT_SUPPORTED");
    hub.stop().await;
}

/// On plain TCP the hub speaks HTTP/1.1 (every POS), HTTP/1.0, and HTTP/2 to a client that
/// opens with its preface (prior knowledge), each answering the same createQrCode.
async fn plain_tcp_speaks_http1_and_http2_with_prior_knowledge(db: TestDb) {
    let hub = hub(db).await;
    let clients = [
        (
            reqwest::Client::builder().http1_only(),
            reqwest::Version::HTTP_11,
        ),
        (
            reqwest::Client::builder().http2_prior_knowledge(),
            reqwest::Version::HTTP_2,
        ),
    ];
    for (builder, version) in clients {
        let http = builder.build().expect("client");
        for _ in 0..2 {
            // Twice: the second request reuses the kept-alive connection.
            let response = http
                .post(format!("{}/qr/v1/qrCodes", hub.url))
                .basic_auth("pos-1", Some(POS_PASSWORD))
                .json(&qr_request("pos-1", 1000))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{version:?}: {e}"));
            assert_eq!(response.version(), version);
            assert_eq!(response.status(), StatusCode::CREATED, "{version:?}");
            let body: Value = response.json().await.expect("JSON");
            assert!(body["tranId"].is_string(), "{version:?}: {body}");
        }
    }
    // HTTP/1.0, written by hand: answered, then closed.
    let addr = hub.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /health/live HTTP/1.0\r\n\r\n")
        .await
        .expect("sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    hub.stop().await;
}

/// A client that opened a connection and sent nothing (a load balancer's spare connection)
/// does not hold up a shutdown for its grace (3 s here): the hub closes it and stops.
async fn a_connection_that_sends_nothing_does_not_hold_up_shutdown(db: TestDb) {
    use tokio::io::AsyncReadExt;
    let hub = hub(db).await;
    let addr = hub.url.trim_start_matches("http://").to_owned();
    let mut idle = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    // Accepted and waiting for its first bytes before the shutdown starts.
    let (status, _) = hub.pos("/qr/v1/qrCodes", &qr_request("pos-1", 1000)).await;
    assert_eq!(status, StatusCode::CREATED);
    tokio::time::timeout(std::time::Duration::from_secs(2), hub.stop())
        .await
        .expect("stopped well within the shutdown grace");
    let mut rest = Vec::new();
    let read = idle
        .read_to_end(&mut rest)
        .await
        .expect("closed, not reset");
    assert_eq!(read, 0, "nothing was sent on the idle connection");
}

/// A code for an amount that can never be paid is refused when it is asked for: nothing,
/// a negative amount, or more than twelve digits of minor units (which would also let a
/// day's settlement sums overflow); a pay on an open code for such an amount likewise.
async fn amounts_that_cannot_be_paid_are_refused(db: TestDb) {
    let hub = hub(db).await;
    for amount in [0, -15000, i64::MIN, 1_000_000_000_000, i64::MAX] {
        let request = qr_request("pos-1", amount);
        let (status, answer) = hub.pos("/qr/v1/qrCodes", &request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{amount}: {answer}");
        assert_eq!(answer["errorType"], "INVALID_AMOUNT", "{amount}: {answer}");
    }
    let largest = qr_request("pos-1", 999_999_999_999);
    let (status, answer) = hub.pos("/qr/v1/qrCodes", &largest).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    // An open code (no amount): the pay names it, and is held to the same bounds.
    let open = without(qr_request("pos-1", 100), "amounts");
    let (status, code) = hub.pos("/qr/v1/qrCodes", &open).await;
    assert_eq!(status, StatusCode::CREATED, "{code}");
    let tran_id = code["tranId"].as_str().expect("tranId");
    let pay = crate::common::hub::pay_request("pos-1", tran_id, i64::MAX);
    let (status, answer) = hub.pos("/qr/v1/payments", &pay).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "INVALID_AMOUNT", "{answer}");
    hub.stop().await;
}

/// What a stranger with curl meets beside the operations: an ErrorDetail for unknown paths
/// and methods, a request id that is a plain token or the hub's own, back-office answers no
/// cache keeps, and back-office changes refused from another site.
async fn answers_a_stranger_meets(db: TestDb) {
    use crate::common::hub::{OPERATOR, OPERATOR_PASSWORD};
    let hub = hub(db).await;
    let http = &hub.http;
    let missing = http
        .get(format!("{}/nowhere", hub.url))
        .send()
        .await
        .expect("answers");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.expect("an ErrorDetail");
    assert_eq!(body["errorType"], "UNABLE_TO_LOCATE_RECORD", "{body}");
    let wrong = http
        .get(format!("{}/qr/v1/qrCodes", hub.url))
        .send()
        .await
        .expect("answers");
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = wrong.json().await.expect("an ErrorDetail");
    assert_eq!(body["errorType"], "FUNCTION_NOT_SUPPORTED", "{body}");

    let forged = "51b88df0 user=ops client=Some(10.0.0.1)";
    let answer = http
        .get(format!("{}/admin/v1/summary", hub.url))
        .header("x-request-id", forged)
        .basic_auth(OPERATOR, Some("wrong"))
        .send()
        .await
        .expect("answers");
    let echoed = answer
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_ne!(echoed, forged);
    assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "{echoed}");
    let plain = http
        .get(format!("{}/admin/v1/summary", hub.url))
        .header("x-request-id", "lane-7.req-1234")
        .basic_auth(OPERATOR, Some(OPERATOR_PASSWORD))
        .send()
        .await
        .expect("answers");
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(plain.headers()["x-request-id"], "lane-7.req-1234");
    assert_eq!(plain.headers()["cache-control"], "no-store");
    assert_eq!(plain.headers()["x-content-type-options"], "nosniff");

    let retry = format!("{}/admin/v1/outbox/{}/retry", hub.url, uuid::Uuid::new_v4());
    let cross = http
        .post(&retry)
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .basic_auth(OPERATOR, Some(OPERATOR_PASSWORD))
        .body("x=1")
        .send()
        .await
        .expect("answers");
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    // The same request from a tool (no Origin): not refused for where it came from.
    let tool = http
        .post(&retry)
        .basic_auth(OPERATOR, Some(OPERATOR_PASSWORD))
        .send()
        .await
        .expect("answers");
    assert_ne!(tool.status(), StatusCode::FORBIDDEN);
    hub.stop().await;
}

both_stores!(
    answers_a_stranger_meets,
    amounts_that_cannot_be_paid_are_refused,
    a_connection_that_sends_nothing_does_not_hold_up_shutdown,
    plain_tcp_speaks_http1_and_http2_with_prior_knowledge,
    every_operation_answers_with_and_without_a_trailing_slash,
    a_missing_required_field_is_named_by_its_dotted_path,
    bad_patterns_and_lengths_are_each_reported,
    unknown_fields_are_ignored_and_absent_ones_omitted,
    created_codes_echo_the_request_and_decode,
    codes_carry_the_partners_templates_beside_the_hubs,
    a_duplicate_request_id_is_refused_and_nothing_is_stored_twice,
    authentication_failures_are_401_and_identity_mismatches_400,
    malformed_bodies_get_an_error_detail_never_a_500,
    qr_images_are_served_to_their_client_only,
    health_reports_liveness_and_database_readiness,
    a_disabled_operation_answers_501,
);
