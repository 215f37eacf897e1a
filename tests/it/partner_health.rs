//! Partner health: a scripted partner approves, answers 503, and times out; the back office
//! (`GET /admin/v1/partners/health`) and the per-partner gauges show the rates, the latency,
//! the last error and the advices waiting for it.

use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

use crate::common::db::TestDb;
use crate::common::hub::{Options, TestHub, OPERATOR, OPERATOR_PASSWORD};
use crate::common::partner::{Canned, ScriptedPartner, PAY, REVERSE};

async fn health(hub: &TestHub) -> Value {
    let response = hub
        .http
        .get(format!("{}/admin/v1/partners/health", hub.url))
        .basic_auth(OPERATOR, Some(OPERATOR_PASSWORD))
        .send()
        .await
        .expect("the hub answers");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("JSON")
}

fn partner<'a>(health: &'a Value, id: &str) -> &'a Value {
    health["partners"]
        .as_array()
        .expect("partners")
        .iter()
        .find(|p| p["partnerId"] == id)
        .unwrap_or_else(|| panic!("{id} in {health:#}"))
}

async fn approvals_a_503_and_a_timeout_show_in_the_partners_health(db: TestDb) {
    let wallet = ScriptedPartner::start().await;
    let hub = TestHub::start(
        db,
        Options {
            partner_url: Some(wallet.url.clone()),
            partner_timeout: Duration::from_millis(1000),
            pay_deadline: Duration::from_millis(3000),
            ..Options::default()
        },
    )
    .await;
    // Three approvals, a 503 (not processed), then an answer after the hub's timeout
    // (unknown: the hub reverses it, and the partner refuses the reversal for now).
    wallet.script(
        PAY,
        [
            Canned::status(201),
            Canned::status(201),
            Canned::status(201),
            Canned::status(503),
            Canned::status(201).delayed(Duration::from_millis(1600)),
        ],
    );
    wallet.script(REVERSE, std::iter::repeat_n(Canned::status(503), 10_000));
    let mut statuses = Vec::new();
    for amount in [100, 200, 300, 400, 500] {
        statuses.push(hub.paid(amount).await.1);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::CREATED,
            StatusCode::CREATED,
            StatusCode::CREATED,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::GATEWAY_TIMEOUT
        ]
    );
    wallet.wait_for(REVERSE, 1, Duration::from_secs(5)).await;
    // The reversal's first refusal is recorded after the partner's answer: wait for it.
    let mut found = Value::Null;
    for _ in 0..100 {
        found = health(&hub).await;
        if partner(&found, "wallet-1")["lastError"]["operation"] == "reversePayment" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(found["windowSeconds"], 3600);
    let w = partner(&found, "wallet-1");
    assert_eq!(w["configured"], true);
    assert_eq!(w["payCalls"], 5, "{w:#}");
    assert_eq!(
        (&w["approved"], &w["failed"], &w["unknown"], &w["notSent"]),
        (
            &Value::from(3),
            &Value::from(1),
            &Value::from(1),
            &Value::from(0)
        ),
        "{w:#}"
    );
    assert_eq!(w["approvalRate"], 0.6);
    assert_eq!(w["unknownRate"], 0.2);
    let p99 = w["latencyP99Ms"].as_f64().expect("p99");
    assert!(p99 >= 1000.0, "the timed-out call is the slowest: {w:#}");
    let p50 = w["latencyP50Ms"].as_f64().expect("p50");
    assert!(p50 < 1000.0, "most calls were quick: {w:#}");
    let calls: u64 = w["callsPerMinute"]
        .as_array()
        .expect("per minute")
        .iter()
        .map(|n| n.as_u64().expect("a count"))
        .sum();
    assert_eq!(calls, 5);
    assert_eq!(w["callsPerMinute"].as_array().map(Vec::len), Some(60));
    let last = &w["lastError"];
    assert_eq!(last["operation"], "reversePayment", "{w:#}");
    assert_eq!(last["error"], "partner answered 503", "{w:#}");
    assert!(last["at"].is_string());
    assert_eq!(w["advicesWaiting"], 1, "the reversal waits: {w:#}");
    assert!(w["oldestAdviceWaitingSeconds"].as_i64().is_some(), "{w:#}");
    // A partner with no calls has counts and no rates.
    let idle = partner(&found, "wallet-2");
    assert_eq!(idle["payCalls"], 0);
    assert!(idle.get("approvalRate").is_none(), "{idle:#}");

    // The same figures as gauges, labelled by partner, once the sweep has run.
    let mut text = String::new();
    for _ in 0..100 {
        text = hub
            .http
            .get(format!("{}/metrics", hub.url))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if text.contains("qrhub_partner_advices_waiting{partner=\"wallet-1\"}") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for series in [
        "qrhub_partner_pay_calls_last_hour{partner=\"wallet-1\"}",
        "qrhub_partner_approval_ratio{partner=\"wallet-1\"}",
        "qrhub_partner_unknown_ratio{partner=\"wallet-1\"}",
        "qrhub_partner_pay_latency_seconds{partner=\"wallet-1\",quantile=\"0.99\"}",
        "qrhub_partner_advices_waiting{partner=\"wallet-1\"}",
        "qrhub_partner_oldest_advice_waiting_age_seconds{partner=\"wallet-1\"}",
        "qrhub_partner_last_error_timestamp_seconds{partner=\"wallet-1\"}",
    ] {
        assert!(text.contains(series), "{series} missing from /metrics");
    }
    hub.stop().await;
}

both_stores!(approvals_a_503_and_a_timeout_show_in_the_partners_health);
