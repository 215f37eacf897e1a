//! The operators' web console (`GET /admin`) in a real headless Chromium: sign-in (a wrong
//! password first), live counts, a payment found by its tranId, its timeline and outbox rows,
//! and the settlement chart. Screenshots go to `target/console-artifacts/`.
//!
//! Needs `chromium` and `chromedriver` (Debian: `chromium chromium-driver`); without them
//! the test fails, it does not skip.

use futures::FutureExt;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

use crate::common::browser::{artifacts_dir, Browser};
use crate::common::db::TestDb;
use crate::common::hub::{confirmation, reversal, Options, TestHub, OPERATOR, OPERATOR_PASSWORD};
use qrhub::simulator::{LedgerEntry, MessageKind};

const WAIT: Duration = Duration::from_secs(5);

fn of_kind(ledger: &[LedgerEntry], kind: MessageKind) -> Vec<&LedgerEntry> {
    ledger.iter().filter(|e| e.kind == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn console_pages_are_self_contained_and_locked_down() {
    let hub = TestHub::start(
        TestDb::sqlite().await,
        Options {
            // 1.50 % + 1.00 on each confirmed payment, for the settlement view's fees.
            extra: "[[fees]]\npartner = \"wallet-1\"\ncurrency = \"710\"\npercent_bps = 150\nfixed = 100\n".into(),
            ..Options::default()
        },
    )
    .await;
    for (path, mime) in [
        ("/admin", "text/html; charset=utf-8"),
        ("/admin/console.js", "text/javascript; charset=utf-8"),
        ("/admin/console.css", "text/css; charset=utf-8"),
    ] {
        let response = hub
            .http
            .get(format!("{}{path}", hub.url))
            .send()
            .await
            .expect("the hub answers");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("content-type"), mime, "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert!(!header("cache-control").is_empty(), "{path}");
        let csp = header("content-security-policy");
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self';"), "{path}: {csp}");
        assert!(
            !csp.contains("unsafe") && !csp.contains("http") && !csp.contains('*'),
            "{path}: only the hub itself: {csp}"
        );
    }
    // The page asks for its assets under their digest, which may then be cached for good.
    let page = hub
        .http
        .get(format!("{}/admin", hub.url))
        .send()
        .await
        .expect("the hub answers")
        .text()
        .await
        .expect("a page");
    let script = page
        .split('"')
        .find(|s| s.starts_with("/admin/console.js?v="))
        .expect("the page loads its script by digest");
    let response = hub
        .http
        .get(format!("{}{script}", hub.url))
        .send()
        .await
        .expect("the hub answers");
    assert!(response.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .contains("immutable"));
    // The console is public; the data behind it is not.
    let response = hub
        .http
        .get(format!("{}/admin/v1/summary", hub.url))
        .send()
        .await
        .expect("the hub answers");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_finds_a_payment_and_reads_its_timeline_in_a_real_browser() {
    let hub = TestHub::start(
        TestDb::sqlite().await,
        Options {
            // 1.50 % + 1.00 on each confirmed payment, for the settlement view's fees; a
            // settlement day that ends at 23:00 in Johannesburg, which the view states.
            extra: "[[fees]]\npartner = \"wallet-1\"\ncurrency = \"710\"\npercent_bps = 150\nfixed = 100\n\
                    [settlement]\ntime_zone = \"Africa/Johannesburg\"\ncut_off = \"23:00\"\n".into(),
            ..Options::default()
        },
    )
    .await;
    // One payment confirmed (the one looked at), and one reversed, for the settlement chart.
    let (request, status, answer) = hub.paid(15000).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let tran_id = request["tranId"].as_str().expect("tranId").to_owned();
    let (status, echo) = hub
        .pos(
            "/qr/v1/payments/confirmations",
            &confirmation(request["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{echo}");
    let (other, status, answer) = hub.paid(4250).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, echo) = hub
        .pos(
            "/qr/v1/payments/reversals",
            &reversal(other["id"].as_str().expect("id"), "CANCELLED"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{echo}");
    hub.wait_for_ledger(WAIT, |l| {
        of_kind(l, MessageKind::Confirmation).len() == 1
            && of_kind(l, MessageKind::Reversal).len() == 1
    })
    .await;
    // The ledger has it before the hub has written DELIVERED: wait for the row too.
    let payment = hub
        .hub
        .store
        .payment_by_message("pos-1", request["id"].as_str().expect("id"))
        .await
        .expect("store")
        .expect("payment");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !hub
        .hub
        .store
        .outbox_for_payment(payment.id)
        .await
        .expect("store")
        .iter()
        .all(|m| m.state == qrhub::store::OutboxState::Delivered)
    {
        assert!(tokio::time::Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let browser = Browser::start().await;
    let outcome = std::panic::AssertUnwindSafe(drive(&browser, &hub.url, &tran_id))
        .catch_unwind()
        .await;
    browser.quit().await;
    hub.stop().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn drive(browser: &Browser, url: &str, tran_id: &str) {
    let artifacts = artifacts_dir();
    browser.set_window_size(1280, 1000).await;
    browser.goto(&format!("{url}/admin")).await;

    // A wrong password: the form says so, and stays.
    let user = browser.wait_visible("#login-user").await;
    let password = browser.wait_visible("#login-password").await;
    browser.type_into(&user, OPERATOR).await;
    browser.type_into(&password, "not-the-password").await;
    browser
        .click(&browser.wait_visible("#login-submit").await)
        .await;
    let error = browser.wait_text("#login-error", |t| !t.is_empty()).await;
    assert_eq!(error, "Wrong operator id or password.");
    assert!(
        !browser
            .displayed(&browser.find("#app").await.expect("app"))
            .await
    );
    browser
        .screenshot(&artifacts.join("console-login-refused.png"))
        .await;

    // The right one: the live counts come up.
    browser.type_into(&password, OPERATOR_PASSWORD).await;
    browser
        .click(&browser.wait_visible("#login-submit").await)
        .await;
    browser.wait_visible("#overview-view").await;
    assert_eq!(
        browser.wait_text("#who-name", |t| !t.is_empty()).await,
        OPERATOR
    );
    let counts = browser
        .wait_text("#payment-counts", |t| t.contains("CONFIRMED"))
        .await;
    let confirmed = browser
        .wait_text("#payment-counts .state-confirmed .n", |t| !t.is_empty())
        .await;
    assert_eq!(confirmed, "1", "{counts}");
    let reversed = browser
        .wait_text("#payment-counts .state-reversed .n", |t| !t.is_empty())
        .await;
    assert_eq!(reversed, "1", "{counts}");
    browser
        .wait_text("#outbox-counts .outbox-delivered .n", |t| t == "2")
        .await;
    browser
        .screenshot(&artifacts.join("console-overview.png"))
        .await;

    // Search by tranId, open the timeline.
    browser
        .click(&browser.wait_visible(".tab[data-view=payments]").await)
        .await;
    let field = browser.wait_visible("#q-tran").await;
    browser.type_into(&field, tran_id).await;
    browser
        .click(&browser.wait_visible("#search-submit").await)
        .await;
    let row = browser
        .wait_text("#results-body", |t| t.contains(tran_id))
        .await;
    assert_eq!(row.lines().count(), 1, "one payment: {row}");
    assert!(row.contains("CONFIRMED"), "{row}");
    assert!(row.contains("ZAR 150.00"), "{row}");
    browser
        .screenshot(&artifacts.join("console-search.png"))
        .await;
    browser
        .click(&browser.wait_visible("#results-body button.link").await)
        .await;
    browser.wait_visible("#payment-view").await;
    assert_eq!(
        browser.wait_text("#p-tran", |t| !t.is_empty()).await,
        tran_id
    );
    assert_eq!(
        browser.wait_text("#p-state", |t| !t.is_empty()).await,
        "CONFIRMED"
    );
    let timeline = browser
        .wait_text("#timeline-body", |t| t.contains("Confirmation received"))
        .await;
    let labels = browser
        .execute(
            "return [...document.querySelectorAll('#timeline-body .event-label')]\
             .map(e => e.textContent);",
            vec![],
        )
        .await;
    let labels: Vec<&str> = labels
        .as_array()
        .expect("labels")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // The lifecycle, in order (other events may sit between these).
    let expected = [
        "Pay received",
        "Scan received",
        "Pay sent",
        "Partner answer",
        "POS answer",
        "Confirmation received",
        "Confirmation sent",
    ];
    let mut from = 0;
    for label in expected {
        let at = labels[from..]
            .iter()
            .position(|l| *l == label)
            .unwrap_or_else(|| panic!("{label:?} missing or out of order in {labels:?}"));
        from += at + 1;
    }
    assert!(timeline.contains("wallet-1"), "{timeline}");
    assert!(timeline.contains("pos-1"), "{timeline}");
    assert!(timeline.contains("APPROVED"), "{timeline}");
    let outbox = browser.wait_text("#p-outbox-body", |t| !t.is_empty()).await;
    assert!(
        outbox.contains("CONFIRMATION") && outbox.contains("DELIVERED"),
        "{outbox}"
    );
    let screenshot = artifacts.join("console-timeline.png");
    browser.screenshot_full_page(&screenshot, 1280).await;
    browser.set_window_size(1280, 1000).await;
    println!("console screenshot: {}", screenshot.display());

    // The day's settlement: one chart (ZAR) with both bars, and the table.
    browser
        .click(&browser.wait_visible(".tab[data-view=settlement]").await)
        .await;
    let table = browser
        .wait_text("#settlement-body", |t| t.contains("wallet-1"))
        .await;
    assert!(table.contains("1 · ZAR 150.00"), "{table}");
    assert!(
        table.contains("fees ZAR 3.25, net ZAR 146.75"),
        "the confirmed payment's fee and net: {table}"
    );
    assert!(table.contains("1 · ZAR 42.50"), "{table}");
    let rule = browser.wait_text("#s-day-rule", |t| !t.is_empty()).await;
    assert!(
        rule.contains("days end at 23:00 in Africa/Johannesburg"),
        "the view says which settlement day it shows: {rule}"
    );
    let bars = browser
        .execute(
            "return document.querySelectorAll('#charts svg rect.bar').length;",
            vec![],
        )
        .await;
    assert_eq!(bars, 4, "two bars and two legend keys");
    browser
        .screenshot(&artifacts.join("console-settlement.png"))
        .await;

    // The partners' health: wallet-1 approved both pays; a chart of its hour.
    browser
        .click(&browser.wait_visible(".tab[data-view=partners]").await)
        .await;
    let partners = browser
        .wait_text("#partners-body", |t| t.contains("wallet-1"))
        .await;
    assert!(partners.contains("100.0 %"), "{partners}");
    let bars = browser
        .execute(
            "return document.querySelectorAll('#partner-charts svg rect.bar-approved').length;",
            vec![],
        )
        .await;
    assert!(
        bars.as_u64().is_some_and(|n| n >= 2),
        "a bar and a legend key: {bars}"
    );
    browser
        .screenshot(&artifacts.join("console-partners.png"))
        .await;

    // Nothing went wrong in the page: no script errors, no CSP violations.
    let severe: Vec<Value> = browser
        .console_log()
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        // The refused sign-in is a 401 the browser reports as a failed load.
        .filter(|e| !e["message"].as_str().unwrap_or_default().contains("401"))
        .collect();
    assert!(severe.is_empty(), "browser console errors: {severe:#?}");
    println!("console artifacts: {}", artifacts.display());
}
