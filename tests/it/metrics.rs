//! `GET /metrics` after real flows over HTTP: the numbers must match what happened.
//!
//! The recorder is process-wide (one per process, like any Prometheus client), so every hub
//! this binary starts adds to the same series: these cases are their own test binary
//! (`tests/metrics.rs`), apart from the other integration tests. The cases here therefore:
//! - run one at a time: each holds [`SERIAL`] for its whole run (a `tokio` mutex, so that a
//!   failed case does not poison the others, and usable across the tests' own runtimes);
//! - compare counters as deltas between a scrape before and a scrape after the flows;
//! - read gauges as absolute values only where the serialised hub is the one that sets them
//!   (held pays back to 0, the outbox depth this hub's sweeper last saw).
//!
//! Labelling every series per hub instead would put a test-only label on every production
//! series; serialising a handful of cases costs a few seconds.

use reqwest::StatusCode;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::common::db::TestDb;
use crate::common::hub::{config_toml, confirmation, pay_request, Options, TestHub};
use qrhub::app::App;
use qrhub::clock::SystemClock;
use qrhub::config::Settings;
use qrhub::model::ErrorType;
use qrhub::simulator::{MessageKind, PayBehaviour};

static SERIAL: Mutex<()> = Mutex::const_new(());

const WAIT: Duration = Duration::from_secs(10);

/// One scrape: every sample by its name and its labels (sorted `k="v"` pairs).
#[derive(Debug, Default)]
struct Scrape {
    samples: HashMap<String, f64>,
    text: String,
}

impl Scrape {
    fn parse(text: &str) -> Self {
        let mut samples = HashMap::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
            let value: f64 = value.parse().expect("a number");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let rest = rest.strip_suffix('}').expect("closing brace");
                    let mut labels: Vec<&str> = rest.split(',').filter(|l| !l.is_empty()).collect();
                    labels.sort_unstable();
                    (name, labels.join(","))
                }
                None => (series, String::new()),
            };
            samples.insert(key(name, &labels), value);
        }
        Self {
            samples,
            text: text.to_owned(),
        }
    }

    /// The sample `name{labels}`, 0 when the series does not exist yet.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        labels.sort_unstable();
        self.samples
            .get(&key(name, &labels.join(",")))
            .copied()
            .unwrap_or(0.0)
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        labels.sort_unstable();
        self.samples.contains_key(&key(name, &labels.join(",")))
    }
}

fn key(name: &str, labels: &str) -> String {
    format!("{name}{{{labels}}}")
}

async fn scrape(hub: &TestHub) -> Scrape {
    let response = hub
        .http
        .get(format!("{}/metrics", hub.url))
        .send()
        .await
        .expect("the hub answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4"
    );
    Scrape::parse(&response.text().await.expect("a body"))
}

/// Scrapes until `done` holds, or fails after [`WAIT`] showing the last scrape.
async fn scrape_until(hub: &TestHub, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = scrape(hub).await;
        if done(&s) {
            return s;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("metrics never showed {what}:\n{}", s.text);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A code, a held pay sent to `path` and, if `scan`, a scan by wallet-1.
async fn pay_flow(hub: &TestHub, path: &'static str, scan: bool) -> (Value, StatusCode, Value) {
    let tran_id = hub.new_code(2500).await;
    let request = pay_request("pos-1", &tran_id, 2500);
    let client = hub.clone_client();
    let body = request.clone();
    let pay = tokio::spawn(async move { client.pos(path, &body).await });
    if scan {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (status, body) = hub.scan("wallet-1", &tran_id, None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "scan: {body}");
    }
    let (status, answer) = pay.await.expect("pay finished");
    (request, status, answer)
}

async fn flows_are_counted(db: TestDb) {
    let _serial = SERIAL.lock().await;
    let hub = TestHub::start(db, Options::default()).await;
    let before = scrape(&hub).await;

    // Three approved payments (one through the pre-1.4.0 trailing-slash path), confirmed.
    for path in ["/qr/v1/payments", "/qr/v1/payments/", "/qr/v1/payments"] {
        let (request, status, answer) = pay_flow(&hub, path, true).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let (status, echo) = hub
            .pos(
                "/qr/v1/payments/confirmations",
                &confirmation(request["id"].as_str().expect("id")),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{echo}");
    }
    // One nobody scans.
    let (_, status, answer) = pay_flow(&hub, "/qr/v1/payments", false).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "NO_SCAN_RECEIVED");
    // One the partner declines.
    hub.sim.script_pay(PayBehaviour::Decline {
        status: 400,
        error_type: ErrorType::InsufficientFunds,
    });
    let (_, status, answer) = pay_flow(&hub, "/qr/v1/payments", true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorType"], "INSUFFICIENT_FUNDS");
    // A path the hub does not serve.
    let missing = hub
        .http
        .get(format!("{}/no/such/path", hub.url))
        .send()
        .await
        .expect("the hub answers");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    hub.wait_for_ledger(WAIT, |l| {
        l.iter()
            .filter(|e| e.kind == MessageKind::Confirmation)
            .count()
            == 3
    })
    .await;
    let delivered = [("kind", "confirmation"), ("result", "delivered")];
    let before_delivered = before.get("qrhub_outbox_deliveries_total", &delivered);
    // Delivery is counted once the partner's answer is in, and the depth at the next sweep.
    let after = scrape_until(&hub, "3 deliveries and an empty outbox", |s| {
        s.get("qrhub_outbox_deliveries_total", &delivered) - before_delivered >= 3.0
            && s.has("qrhub_outbox_depth", &[])
            && s.get("qrhub_outbox_depth", &[]) == 0.0
    })
    .await;
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let text = &after.text;

    // Requests by operation and status.
    let requests = "qrhub_requests_total";
    assert_eq!(
        delta(
            requests,
            &[("operation", "createQrCode"), ("status", "201")]
        ),
        5.0,
        "{text}"
    );
    assert_eq!(
        delta(requests, &[("operation", "pay"), ("status", "201")]),
        3.0,
        "{text}"
    );
    assert_eq!(
        delta(requests, &[("operation", "pay"), ("status", "400")]),
        2.0,
        "{text}"
    );
    assert_eq!(
        delta(requests, &[("operation", "notifyScan"), ("status", "202")]),
        4.0,
        "{text}"
    );
    assert_eq!(
        delta(
            requests,
            &[("operation", "confirmPayment"), ("status", "202")]
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        delta(requests, &[("operation", "unmatched"), ("status", "404")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta(
            "qrhub_request_duration_seconds_count",
            &[("operation", "pay")]
        ),
        5.0,
        "{text}"
    );
    // Every pay waited at least the 50 ms before its scan.
    assert!(
        delta(
            "qrhub_request_duration_seconds_sum",
            &[("operation", "pay")]
        ) >= 0.25,
        "{text}"
    );

    // Matching.
    assert_eq!(delta("qrhub_matches_total", &[]), 4.0, "{text}");
    assert_eq!(
        delta("qrhub_scan_window_expiries_total", &[]),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta("qrhub_match_latency_seconds_count", &[]),
        4.0,
        "{text}"
    );

    // Partner calls.
    let calls = "qrhub_partner_calls_total";
    let pay = |outcome| {
        [
            ("partner", "wallet-1"),
            ("operation", "pay"),
            ("outcome", outcome),
        ]
    };
    assert_eq!(delta(calls, &pay("success")), 3.0, "{text}");
    assert_eq!(delta(calls, &pay("failed")), 1.0, "{text}");
    assert_eq!(delta(calls, &pay("unknown")), 0.0, "{text}");
    assert_eq!(delta(calls, &pay("not_sent")), 0.0, "{text}");
    assert_eq!(
        delta(
            calls,
            &[
                ("partner", "wallet-1"),
                ("operation", "confirmPayment"),
                ("outcome", "success")
            ]
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        delta(
            "qrhub_partner_call_duration_seconds_count",
            &[("partner", "wallet-1"), ("operation", "pay")]
        ),
        4.0,
        "{text}"
    );

    // The outbox.
    assert_eq!(
        delta("qrhub_outbox_deliveries_total", &delivered),
        3.0,
        "{text}"
    );
    assert_eq!(
        delta(
            "qrhub_outbox_deliveries_total",
            &[("kind", "confirmation"), ("result", "retry")]
        ),
        0.0,
        "{text}"
    );
    assert_eq!(delta("qrhub_outbox_dead_letters_total", &[]), 0.0, "{text}");
    assert_eq!(after.get("qrhub_outbox_depth", &[]), 0.0, "{text}");
    assert_eq!(
        after.get("qrhub_outbox_oldest_age_seconds", &[]),
        0.0,
        "{text}"
    );

    // Gauges.
    assert_eq!(after.get("qrhub_held_pay_requests", &[]), 0.0, "{text}");
    let max = after.get("qrhub_db_pool_max", &[]);
    let idle = after.get("qrhub_db_pool_connections", &[("state", "idle")]);
    let in_use = after.get("qrhub_db_pool_connections", &[("state", "in_use")]);
    assert!(max >= 1.0, "{text}");
    assert!(idle + in_use >= 1.0 && idle + in_use <= max, "{text}");

    // Histograms are in seconds with the documented buckets.
    assert!(
        text.contains("qrhub_request_duration_seconds_bucket{operation=\"pay\",le=\"0.001\"}"),
        "{text}"
    );
    assert!(
        text.contains("qrhub_request_duration_seconds_bucket{operation=\"pay\",le=\"60\"}"),
        "{text}"
    );
    hub.stop().await;
}

/// While a pay is held the gauge counts it, and a POS that hangs up releases it.
async fn held_pays_are_counted_while_held(db: TestDb) {
    let _serial = SERIAL.lock().await;
    let hub = TestHub::start(db, Options::default()).await;
    let before = scrape(&hub).await.get("qrhub_held_pay_requests", &[]);
    assert_eq!(before, 0.0);
    let tran_id = hub.new_code(1000).await;
    let client = hub.clone_client();
    let hung_up = tokio::spawn(async move {
        client
            .pos("/qr/v1/payments", &pay_request("pos-1", &tran_id, 1000))
            .await
    });
    scrape_until(&hub, "one held pay", |s| {
        s.get("qrhub_held_pay_requests", &[]) == 1.0
    })
    .await;
    // The POS gives up: the connection closes and the handler's future is dropped.
    hung_up.abort();
    scrape_until(&hub, "no held pay after the POS hung up", |s| {
        s.get("qrhub_held_pay_requests", &[]) == 0.0
    })
    .await;
    hub.stop().await;
}

/// With `server.metrics_enabled = false` there is no `/metrics`, and the rest still works.
async fn metrics_can_be_switched_off(db: TestDb) {
    let _serial = SERIAL.lock().await;
    // No partner call happens here, so the partner URL need not answer.
    let toml = config_toml(&db.url, "http://127.0.0.1:9", &Options::default()).replacen(
        "[server]\n",
        "[server]\nmetrics_enabled = false\n",
        1,
    );
    let settings = Settings::from_toml(&toml).expect("valid configuration");
    assert!(!settings.server.metrics_enabled);
    let app = App::build(settings, Arc::new(SystemClock))
        .await
        .expect("hub builds");
    let url = format!("http://{}", app.local_addr().expect("bound"));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{url}{path}")).send();
    assert_eq!(
        get("/metrics").await.expect("answers").status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get("/health/live").await.expect("answers").status(),
        StatusCode::OK
    );
    shutdown.cancel();
    task.await.expect("joined").expect("stopped cleanly");
    db.cleanup().await;
}

both_stores!(
    flows_are_counted,
    held_pays_are_counted_while_held,
    metrics_can_be_switched_off
);

/// The shipped alert rules only name series the hub exports: a renamed metric would leave an
/// alert silently watching nothing.
#[test]
fn every_metric_an_alert_watches_is_one_the_hub_exports() {
    let rules = include_str!("../../config/prometheus/alerts.yml");
    let exported = include_str!("../../src/metrics.rs");
    let mut watched: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("qrhub_"))
        .collect();
    watched.sort_unstable();
    watched.dedup();
    assert!(watched.len() >= 5, "{watched:?}");
    for name in watched {
        assert!(
            exported.contains(&format!("\"{name}\"")),
            "config/prometheus/alerts.yml watches {name}, which src/metrics.rs does not export"
        );
    }
}
