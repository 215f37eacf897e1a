//! Strangers cost little: wrong passwords are checked by a bounded number of argon2 runs with
//! a short queue (beyond it 503 at once), an address that keeps failing is throttled (429
//! with Retry-After) without a password check, failures are counted in `/metrics`, and a POS
//! whose credentials verified before keeps working through all of it.

use reqwest::header::RETRY_AFTER;
use serde_json::Value;

use crate::common::db::TestDb;
use crate::common::hub::{qr_request, Options, TestHub, POS_PASSWORD};

async fn create_as(hub: &TestHub, password: &str) -> reqwest::Response {
    hub.http
        .post(format!("{}/qr/v1/qrCodes", hub.url))
        .basic_auth("pos-1", Some(password))
        .json(&qr_request("pos-1", 100))
        .send()
        .await
        .expect("the hub answers")
}

async fn error_type(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("an ErrorDetail");
    body["errorType"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_address_that_keeps_failing_is_throttled_but_a_known_pos_is_not() {
    let hub = TestHub::start(
        TestDb::sqlite().await,
        Options {
            extra: "[auth]\nfailed_logins_per_minute = 3\n".into(),
            ..Options::default()
        },
    )
    .await;
    // The POS verified once: from now on its credentials are known.
    assert_eq!(create_as(&hub, POS_PASSWORD).await.status(), 201);
    for i in 0..3 {
        let r = create_as(&hub, &format!("wrong-{i}")).await;
        assert_eq!(r.status(), 401, "failure {i}");
    }
    let r = create_as(&hub, "wrong-3").await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(error_type(r).await, "GENERAL_ERROR");
    // Throttled means not checked: even the right password of a user not verified since
    // start (pos-2) waits; the known POS does not.
    let other = hub
        .http
        .post(format!("{}/qr/v1/qrCodes", hub.url))
        .basic_auth("pos-2", Some(POS_PASSWORD))
        .json(&qr_request("pos-2", 100))
        .send()
        .await
        .expect("answers");
    assert_eq!(other.status(), 429);
    assert_eq!(create_as(&hub, POS_PASSWORD).await.status(), 201);

    let metrics = hub
        .http
        .get(format!("{}/metrics", hub.url))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    for reason in ["invalid", "throttled"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("qrhub_failed_logins_total")
                    && l.contains(&format!("reason=\"{reason}\""))),
            "{reason} not counted: {metrics}"
        );
    }
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_checks_beyond_the_slots_and_queue_are_refused_at_once() {
    let hub = TestHub::start(
        TestDb::sqlite().await,
        Options {
            extra:
                "[auth]\nverify_concurrency = 1\nverify_queue = 1\nfailed_logins_per_minute = 0\n"
                    .into(),
            ..Options::default()
        },
    )
    .await;
    assert_eq!(create_as(&hub, POS_PASSWORD).await.status(), 201);
    // Distinct wrong passwords, so that no two share one argon2 run.
    let attempts: Vec<_> = (0..24)
        .map(|i| {
            let http = hub.http.clone();
            let url = hub.url.clone();
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let r = http
                    .post(format!("{url}/qr/v1/qrCodes"))
                    .basic_auth("pos-1", Some(format!("wrong-{i}")))
                    .json(&qr_request("pos-1", 100))
                    .send()
                    .await
                    .expect("the hub answers");
                let status = r.status().as_u16();
                let retry = r.headers().get(RETRY_AFTER).is_some();
                (status, retry, error_type(r).await, started.elapsed())
            })
        })
        .collect();
    let mut busy = 0;
    for attempt in attempts {
        let (status, retry, kind, _took) = attempt.await.expect("task");
        match status {
            401 => assert_eq!(kind, "FORMAT_ERROR"),
            503 => {
                busy += 1;
                assert!(retry, "503 carries Retry-After");
                assert_eq!(kind, "GENERAL_ERROR");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        busy > 0,
        "some attempts found every slot and the queue taken"
    );
    // A known POS never needs a slot.
    assert_eq!(create_as(&hub, POS_PASSWORD).await.status(), 201);
    hub.stop().await;
}
