//! The back office (`/admin/v1`) over real HTTP, on both stores: reports that add up,
//! search across pages, a payment's timeline, dead-letter retry, reconciliation and auth.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

use crate::common::db::TestDb;
use crate::common::hub::{
    confirmation, reversal, Options, TestHub, OPERATOR, OPERATOR_PASSWORD, PARTNER_PASSWORD,
    POS_PASSWORD,
};
use qrhub::clock::ManualClock;
use qrhub::simulator::{AdviceBehaviour, LedgerEntry, MessageKind, PayBehaviour};

const WAIT: Duration = Duration::from_secs(5);

fn of_kind(ledger: &[LedgerEntry], kind: MessageKind) -> Vec<&LedgerEntry> {
    ledger.iter().filter(|e| e.kind == kind).collect()
}

/// A paid and confirmed payment (optionally a partial confirmation of `confirmed_amount`).
async fn confirmed(hub: &TestHub, amount: i64, confirmed_amount: Option<i64>) -> Value {
    let (request, status, answer) = hub.paid(amount).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let mut advice = confirmation(request["id"].as_str().expect("id"));
    if let Some(a) = confirmed_amount {
        advice["amounts"] = json!({"approvedAmount": {"amount": a, "currency": "710"}});
    }
    let (status, echo) = hub.pos("/qr/v1/payments/confirmations", &advice).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{echo}");
    request
}

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

async fn admin_get_as(
    hub: &TestHub,
    user: &str,
    password: &str,
    path: &str,
    accept: Option<&str>,
) -> (StatusCode, String) {
    let mut request = hub
        .http
        .get(format!("{}{path}", hub.url))
        .basic_auth(user, Some(password));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("the hub answers");
    let status = response.status();
    (status, response.text().await.expect("a body"))
}

async fn admin_get(hub: &TestHub, path: &str) -> (StatusCode, Value) {
    let (status, text) = admin_get_as(hub, OPERATOR, OPERATOR_PASSWORD, path, None).await;
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, json)
}

async fn admin_post(
    hub: &TestHub,
    path: &str,
    content_type: &str,
    body: String,
) -> (StatusCode, Value) {
    let response = hub
        .http
        .post(format!("{}{path}", hub.url))
        .basic_auth(OPERATOR, Some(OPERATOR_PASSWORD))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("the hub answers");
    let status = response.status();
    let text = response.text().await.expect("a body");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, json)
}

async fn payment_id(hub: &TestHub, request: &Value) -> String {
    hub.hub
        .store
        .payment_by_message("pos-1", request["id"].as_str().expect("id"))
        .await
        .expect("store")
        .expect("payment")
        .id
        .to_string()
}

/// Fees by hand: 1.50 % rounded half up, plus 1.00 fixed, on each confirmed payment; the
/// other client's own schedule and the other currency's do not apply.
const FEES: &str = r#"
[[fees]]
partner = "wallet-1"
currency = "710"
percent_bps = 150
fixed = 100
[[fees]]
partner = "wallet-1"
client = "pos-2"
currency = "710"
percent_bps = 900
[[fees]]
partner = "wallet-1"
currency = "840"
fixed = 7777
"#;

async fn settlement_report_adds_up_in_json_and_csv(db: TestDb) {
    let hub = TestHub::start(
        db,
        Options {
            extra: FEES.into(),
            ..Options::default()
        },
    )
    .await;
    // 7 confirmed: six of 1000 (fee 15 + 100 each) and one of 5000 confirmed partially at
    // 4200 (fee 63 + 100): 853 in fees.
    for _ in 0..6 {
        confirmed(&hub, 1000, None).await;
    }
    confirmed(&hub, 5000, Some(4200)).await;
    // 2 reversed by the POS after approval.
    for _ in 0..2 {
        let (request, status, _) = hub.paid(2000).await;
        assert_eq!(status, StatusCode::CREATED);
        let advice = reversal(request["id"].as_str().expect("id"), "CANCELLED");
        let (status, _) = hub.pos("/qr/v1/payments/reversals", &advice).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    // 1 unknown: the partner never answers, the hub reverses it and tells the POS 504.
    hub.sim.script_pay(PayBehaviour::Hang);
    let (_, status, answer) = hub.paid(3000).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{answer}");

    let date = today();
    let (status, report) = admin_get(
        &hub,
        &format!("/admin/v1/reports/settlement?date={date}&partnerId=wallet-1"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["date"], date.as_str());
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{report}");
    let row = &rows[0];
    assert_eq!(row["partnerId"], "wallet-1");
    assert_eq!(row["currency"], "710");
    assert_eq!(
        row["confirmed"],
        json!({"count": 7, "amount": 6 * 1000 + 4200, "fees": 853, "net": 10200 - 853})
    );
    assert_eq!(
        row["reversed"],
        json!({"count": 2, "amount": 4000, "fees": 0, "net": 4000})
    );
    assert_eq!(
        row["unknown"],
        json!({"count": 1, "amount": 3000, "fees": 0, "net": 3000})
    );
    assert_eq!(
        row["approved"],
        json!({"count": 0, "amount": 0, "fees": 0, "net": 0})
    );

    // The same in CSV, by Accept header and by ?format=csv.
    for (path, accept) in [
        (
            format!("/admin/v1/reports/settlement?date={date}"),
            Some("text/csv"),
        ),
        (
            format!("/admin/v1/reports/settlement?date={date}&format=csv"),
            None,
        ),
    ] {
        let (status, text) = admin_get_as(&hub, OPERATOR, OPERATOR_PASSWORD, &path, accept).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let lines: Vec<Vec<&str>> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split(',').collect())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let header = &lines[0];
        let record = &lines[1];
        let field = |name: &str| -> &str {
            let i = header
                .iter()
                .position(|h| *h == name)
                .unwrap_or_else(|| panic!("no column {name}: {text}"));
            record[i]
        };
        let number = |name: &str| field(name).parse::<i64>().expect("integer");
        assert_eq!(field("date"), date.as_str());
        assert_eq!(field("partnerId"), "wallet-1");
        assert_eq!(field("currency"), "710");
        assert_eq!(number("confirmedCount"), 7);
        assert_eq!(number("confirmedAmount"), 10200);
        assert_eq!(number("confirmedFees"), 853);
        assert_eq!(number("confirmedNet"), 9347);
        assert_eq!(number("reversedCount"), 2);
        assert_eq!(number("reversedAmount"), 4000);
        assert_eq!(number("unknownCount"), 1);
        assert_eq!(number("unknownAmount"), 3000);
        assert_eq!(number("approvedCount"), 0);
        assert_eq!(number("approvedAmount"), 0);
    }

    // Another day, another partner: nothing. A bad date: an ErrorDetail.
    let (_, empty) = admin_get(&hub, "/admin/v1/reports/settlement?date=2001-01-01").await;
    assert_eq!(empty["rows"], json!([]));
    let (_, empty) = admin_get(
        &hub,
        &format!("/admin/v1/reports/settlement?date={date}&partnerId=wallet-2"),
    )
    .await;
    assert_eq!(empty["rows"], json!([]));
    let (status, error) = admin_get(&hub, "/admin/v1/reports/settlement?date=22-11-2026").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["errorType"], "FORMAT_ERROR");
    assert_eq!(error["detailMessage"]["formatErrors"][0]["field"], "date");
    hub.stop().await;
}

/// A settlement day that ends at 23:00 in Johannesburg (UTC+2 all year).
const JOHANNESBURG_23H: &str = r#"
[settlement]
time_zone = "Africa/Johannesburg"
cut_off = "23:00"
"#;

fn instant(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("an RFC 3339 time")
        .with_timezone(&chrono::Utc)
}

/// The confirmed tally of the one row of a settlement report.
fn confirmed_tally(report: &Value) -> Value {
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{report:#}");
    rows[0]["confirmed"].clone()
}

/// A payment made at 23:30 local time counts on the next settlement day, in the JSON and CSV
/// reports, the reconciliation, the default "today" and the search's dates; one made at
/// 22:30 stays on its day.
async fn a_payment_past_the_local_cut_off_counts_on_the_next_day(db: TestDb) {
    // 22:30 in Johannesburg on 15 June.
    let clock = ManualClock::new(instant("2026-06-15T20:30:00Z"));
    let hub = TestHub::start(
        db,
        Options {
            extra: format!("{FEES}{JOHANNESBURG_23H}"),
            clock: Some(std::sync::Arc::new(clock.clone())),
            ..Options::default()
        },
    )
    .await;
    let before = confirmed(&hub, 2000, None).await;
    // 23:30 local: past the cut-off.
    clock.set(instant("2026-06-15T21:30:00Z"));
    let late = confirmed(&hub, 1000, None).await;

    let (status, report) = admin_get(
        &hub,
        "/admin/v1/reports/settlement?date=2026-06-16&partnerId=wallet-1",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["date"], "2026-06-16");
    assert_eq!(report["timeZone"], "Africa/Johannesburg");
    assert_eq!(report["cutOff"], "23:00");
    assert_eq!(report["from"], "2026-06-15T21:00:00Z");
    assert_eq!(report["to"], "2026-06-16T21:00:00Z");
    // 1.50 % of 1000 plus 100 fixed.
    assert_eq!(
        confirmed_tally(&report),
        json!({"count": 1, "amount": 1000, "fees": 115, "net": 885})
    );
    let (_, report) = admin_get(&hub, "/admin/v1/reports/settlement?date=2026-06-15").await;
    assert_eq!(
        confirmed_tally(&report),
        json!({"count": 1, "amount": 2000, "fees": 130, "net": 1870}),
        "the payment before the cut-off stays on its day"
    );
    // Without a date: today by the hub's clock and day definition, already the 16th.
    let (_, report) = admin_get(&hub, "/admin/v1/reports/settlement").await;
    assert_eq!(report["date"], "2026-06-16");
    assert_eq!(confirmed_tally(&report)["amount"], 1000);

    // The CSV says the same, with the day definition in its last columns.
    let (status, text) = admin_get_as(
        &hub,
        OPERATOR,
        OPERATOR_PASSWORD,
        "/admin/v1/reports/settlement?date=2026-06-16&format=csv",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let lines: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let field = |name: &str| -> &str {
        let i = lines[0]
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name}: {text}"));
        lines[1][i]
    };
    assert_eq!(field("date"), "2026-06-16");
    assert_eq!(field("confirmedCount"), "1");
    assert_eq!(field("confirmedAmount"), "1000");
    assert_eq!(field("confirmedFees"), "115");
    assert_eq!(field("confirmedNet"), "885");
    assert_eq!(field("timeZone"), "Africa/Johannesburg");
    assert_eq!(field("cutOff"), "23:00");
    let (_, text) = admin_get_as(
        &hub,
        OPERATOR,
        OPERATOR_PASSWORD,
        "/admin/v1/reports/settlement?date=2026-06-15&format=csv",
        None,
    )
    .await;
    assert!(
        text.contains("\r\n2026-06-15,wallet-1,710,1,2000,130,1870,"),
        "{text}"
    );

    // The reconciliation of the 16th holds the late payment, and only it.
    let tran = |r: &Value| r["tranId"].as_str().expect("tranId").to_owned();
    let csv = format!(
        "tranId,amount,currency,status\r\n{},1000,710,CONFIRMED\r\n",
        tran(&late)
    );
    let (status, rec) = admin_post(
        &hub,
        "/admin/v1/reports/reconciliation?date=2026-06-16&partnerId=wallet-1",
        "text/csv",
        csv,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rec}");
    assert_eq!(rec["matched"], 1, "{rec:#}");
    assert_eq!(rec["hubOnly"], json!([]), "{rec:#}");
    assert_eq!(rec["timeZone"], "Africa/Johannesburg");

    // The search's dates are settlement days too.
    let (status, page) = admin_get(&hub, "/admin/v1/payments?from=2026-06-16&to=2026-06-16").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let found: Vec<&Value> = page["payments"].as_array().expect("list").iter().collect();
    assert_eq!(found.len(), 1, "{page:#}");
    assert_eq!(found[0]["tranId"], tran(&late).as_str());
    assert_eq!(
        page["dayRule"],
        json!({"timeZone": "Africa/Johannesburg", "cutOff": "23:00"})
    );
    let (_, page) = admin_get(&hub, "/admin/v1/payments?to=2026-06-15").await;
    let found: Vec<&Value> = page["payments"].as_array().expect("list").iter().collect();
    assert_eq!(found.len(), 1, "{page:#}");
    assert_eq!(found[0]["tranId"], tran(&before).as_str());
    hub.stop().await;
}

/// A partner's report that carries fees and net, and disagrees with the hub on one fee: the
/// reconciliation lists that payment, per payment and in the day's totals.
async fn reconciliation_finds_a_fee_the_partner_disagrees_on(db: TestDb) {
    let hub = TestHub::start(
        db,
        Options {
            extra: FEES.into(),
            ..Options::default()
        },
    )
    .await;
    // Fees by hand: 15 + 100 on 1000, 30 + 100 on 2000.
    let a = confirmed(&hub, 1000, None).await;
    let b = confirmed(&hub, 2000, None).await;
    let tran = |r: &Value| r["tranId"].as_str().expect("tranId").to_owned();
    let path = format!(
        "/admin/v1/reports/reconciliation?date={}&partnerId=wallet-1",
        today()
    );
    // a agrees; b's partner charged 140, not 130 (its net follows).
    let csv = format!(
        "tranId,amount,currency,status,fee,net\r\n\
         {},1000,710,CONFIRMED,115,885\r\n\
         {},2000,710,CONFIRMED,140,1860\r\n",
        tran(&a),
        tran(&b),
    );
    let (status, report) = admin_post(&hub, &path, "text/csv", csv).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["matched"], 1, "{report:#}");
    let mismatches = report["feeMismatches"].as_array().expect("list");
    assert_eq!(mismatches.len(), 1, "{report:#}");
    assert_eq!(mismatches[0]["tranId"], tran(&b).as_str());
    assert_eq!(mismatches[0]["hubFee"], 130);
    assert_eq!(mismatches[0]["hubNet"], 1870);
    assert_eq!(mismatches[0]["partnerFee"], 140);
    assert_eq!(mismatches[0]["partnerNet"], 1860);
    assert_eq!(report["amountMismatches"], json!([]));
    assert_eq!(report["statusMismatches"], json!([]));
    assert_eq!(report["totalMismatches"], json!([]));

    // JSON with the day's totals: fees 255 against the hub's 245.
    let rows = json!({
        "rows": [
            {"tranId": tran(&a), "amount": 1000, "currency": "710", "status": "CONFIRMED", "fee": 115},
            {"tranId": tran(&b), "amount": 2000, "currency": "710", "status": "CONFIRMED", "net": 1860}
        ],
        "totals": [{"currency": "710", "amount": 3000, "fees": 255, "net": 2745}]
    });
    let (status, report) = admin_post(&hub, &path, "application/json", rows.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["matched"], 1, "{report:#}");
    assert_eq!(report["feeMismatches"][0]["tranId"], tran(&b).as_str());
    assert_eq!(report["feeMismatches"][0]["partnerNet"], 1860);
    assert_eq!(
        report["totalMismatches"],
        json!([{"currency": "710", "hubAmount": 3000, "hubFees": 245, "hubNet": 2755,
                "partnerAmount": 3000, "partnerFees": 255, "partnerNet": 2745}])
    );
    // A report without fees (the old format) compares none.
    let old = format!(
        "tranId,partnerReference,amount,currency,status\r\n{},,1000,710,CONFIRMED\r\n{},,2000,710,CONFIRMED\r\n",
        tran(&a),
        tran(&b)
    );
    let (_, report) = admin_post(&hub, &path, "text/csv", old).await;
    assert_eq!(report["matched"], 2, "{report:#}");
    assert_eq!(report["feeMismatches"], json!([]));
    hub.stop().await;
}

async fn search_filters_and_walks_pages(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let mut requests = Vec::new();
    for i in 0..5 {
        let (request, status, _) = hub.paid(100 + i).await;
        assert_eq!(status, StatusCode::CREATED);
        requests.push(request);
    }
    let confirm = confirmation(requests[1]["id"].as_str().expect("id"));
    assert_eq!(
        hub.pos("/qr/v1/payments/confirmations", &confirm).await.0,
        StatusCode::ACCEPTED
    );

    // By client, two per page: three pages, newest first, each payment once.
    let mut seen = Vec::new();
    let mut path = "/admin/v1/payments?clientId=pos-1&limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = admin_get(&hub, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        let payments = page["payments"].as_array().expect("payments");
        assert!(payments.len() <= 2);
        seen.extend(payments.iter().map(|p| p["messageId"].clone()));
        match page["next"].as_str() {
            Some(next) => path = format!("/admin/v1/payments?clientId=pos-1&limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<Value> = requests.iter().rev().map(|r| r["id"].clone()).collect();
    assert_eq!(seen, expected, "newest first, each once");

    // By tranId and by state.
    let tran_id = requests[3]["tranId"].as_str().expect("tranId");
    let (_, page) = admin_get(&hub, &format!("/admin/v1/payments?tranId={tran_id}")).await;
    let payments = page["payments"].as_array().expect("payments");
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["messageId"], requests[3]["id"]);
    assert_eq!(
        payments[0]["amount"],
        json!({"amount": 103, "currency": "710"})
    );
    assert_eq!(payments[0]["partnerId"], "wallet-1");
    assert!(page.get("next").is_none());
    let (_, page) = admin_get(
        &hub,
        "/admin/v1/payments?state=CONFIRMED&partnerId=wallet-1",
    )
    .await;
    let payments = page["payments"].as_array().expect("payments");
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["messageId"], requests[1]["id"]);
    let (_, page) = admin_get(&hub, "/admin/v1/payments?clientId=pos-2").await;
    assert_eq!(page["payments"], json!([]));
    let (_, page) = admin_get(
        &hub,
        &format!("/admin/v1/payments?from={}&to={}", today(), today()),
    )
    .await;
    assert_eq!(page["payments"].as_array().expect("payments").len(), 5);

    // Bad parameters are ErrorDetails naming the parameter.
    for (query, field) in [
        ("limit=501", "limit"),
        ("limit=0", "limit"),
        ("state=PAID", "state"),
        ("after=garbage", "after"),
        ("from=yesterday", "from"),
    ] {
        let (status, error) = admin_get(&hub, &format!("/admin/v1/payments?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {error}");
        assert_eq!(error["errorType"], "FORMAT_ERROR");
        assert_eq!(error["detailMessage"]["formatErrors"][0]["field"], field);
    }
    hub.stop().await;
}

async fn a_payment_timeline_tells_its_story_in_order(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let request = confirmed(&hub, 1500, None).await;
    hub.wait_for_ledger(WAIT, |l| of_kind(l, MessageKind::Confirmation).len() == 1)
        .await;
    let id = payment_id(&hub, &request).await;
    let path = format!("/admin/v1/payments/{id}");
    // The delivery's event is written just after the partner answered: wait for it.
    let deadline = tokio::time::Instant::now() + WAIT;
    let detail = loop {
        let (status, detail) = admin_get(&hub, &path).await;
        assert_eq!(status, StatusCode::OK, "{detail}");
        let delivered = detail["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .any(|e| e["kind"] == "CONFIRMATION" && e["direction"] == "OUT");
        if delivered {
            break detail;
        }
        assert!(tokio::time::Instant::now() < deadline, "{detail:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let steps: Vec<(String, String, String)> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default().to_owned(),
                e["direction"].as_str().unwrap_or_default().to_owned(),
                e["counterparty"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("CREATE_QR_CODE", "IN", "pos-1"),
        ("PAY", "IN", "pos-1"),
        ("SCAN", "IN", "wallet-1"),
        ("PAY", "OUT", "wallet-1"),
        ("PAY_RESPONSE", "IN", "wallet-1"),
        ("PAY_RESPONSE", "OUT", "pos-1"),
        ("CONFIRMATION", "IN", "pos-1"),
        ("CONFIRMATION", "OUT", "wallet-1"),
    ]
    .map(|(k, d, c)| (k.to_owned(), d.to_owned(), c.to_owned()));
    assert_eq!(steps, expected, "{:#}", detail["timeline"]);
    let timeline = detail["timeline"].as_array().expect("timeline");
    let times: Vec<&str> = timeline
        .iter()
        .map(|e| e["at"].as_str().expect("at"))
        .collect();
    let parsed: Vec<chrono::DateTime<chrono::Utc>> =
        times.iter().map(|t| t.parse().expect("time")).collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(
        timeline[1]["body"]["id"], request["id"],
        "the pay as received"
    );
    assert_eq!(timeline[1]["messageId"], request["id"]);
    assert_eq!(timeline[4]["httpStatus"], 201);
    assert_eq!(timeline[4]["outcome"], "APPROVED");
    assert_eq!(timeline[5]["httpStatus"], 201);
    assert_eq!(timeline[5]["body"]["id"], request["id"], "the POS's answer");
    assert_eq!(timeline[7]["outcome"], "DELIVERED");
    assert_eq!(timeline[7]["httpStatus"], 202);
    // The rest of the detail: the payment, its request, its outbox row.
    assert_eq!(detail["id"], id.as_str());
    assert_eq!(detail["state"], "CONFIRMED");
    assert_eq!(detail["request"]["id"], request["id"]);
    assert_eq!(detail["outbox"][0]["state"], "DELIVERED");
    assert_eq!(detail["outbox"][0]["kind"], "CONFIRMATION");

    let (status, error) = admin_get(
        &hub,
        &format!("/admin/v1/payments/{}", uuid::Uuid::new_v4()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["errorType"], "UNABLE_TO_LOCATE_RECORD");
    let (status, error) = admin_get(&hub, "/admin/v1/payments/not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["errorType"], "FORMAT_ERROR");
    hub.stop().await;
}

async fn a_dead_letter_retried_by_an_operator_is_delivered(db: TestDb) {
    let hub = TestHub::start(
        db,
        Options {
            outbox_expiry: Duration::from_millis(600),
            ..Options::default()
        },
    )
    .await;
    let (request, status, _) = hub.paid(1000).await;
    assert_eq!(status, StatusCode::CREATED);
    hub.sim.script_advice(AdviceBehaviour::FailTimes {
        n: 10_000,
        status: 500,
    });
    let advice = confirmation(request["id"].as_str().expect("id"));
    assert_eq!(
        hub.pos("/qr/v1/payments/confirmations", &advice).await.0,
        StatusCode::ACCEPTED
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    let dead = loop {
        let (status, list) = admin_get(&hub, "/admin/v1/outbox?state=DEAD").await;
        assert_eq!(status, StatusCode::OK, "{list}");
        if let Some(row) = list["outbox"].as_array().and_then(|rows| rows.first()) {
            break row.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead["kind"], "CONFIRMATION");
    assert_eq!(dead["lastStatus"], 500);
    let row_id = dead["id"].as_str().expect("id").to_owned();

    // The partner is healthy again; the operator retries.
    hub.sim.clear_script();
    let retry = format!("/admin/v1/outbox/{row_id}/retry");
    let (status, retried) = admin_post(&hub, &retry, "application/json", String::new()).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["state"], "PENDING");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, list) = admin_get(&hub, "/admin/v1/outbox?state=DELIVERED&limit=10").await;
        if list["outbox"]
            .as_array()
            .is_some_and(|rows| rows.iter().any(|r| r["id"] == row_id.as_str()))
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, list) = admin_get(&hub, "/admin/v1/outbox?state=DEAD").await;
    assert_eq!(list["outbox"], json!([]));
    // Only a dead row can be retried.
    let (status, error) = admin_post(&hub, &retry, "application/json", String::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert_eq!(error["errorType"], "UNABLE_TO_LOCATE_RECORD");
    let (status, _) = admin_post(
        &hub,
        "/admin/v1/outbox/nope/retry",
        "application/json",
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, error) = admin_get(&hub, "/admin/v1/outbox?state=LOST").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["detailMessage"]["formatErrors"][0]["field"], "state");
    hub.stop().await;
}

async fn reconciliation_finds_planted_differences(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let a = confirmed(&hub, 1000, None).await;
    let b = confirmed(&hub, 2000, None).await;
    let c = confirmed(&hub, 3000, None).await;
    let (d, status, _) = hub.paid(4000).await;
    assert_eq!(status, StatusCode::CREATED);
    let advice = reversal(d["id"].as_str().expect("id"), "CANCELLED");
    assert_eq!(
        hub.pos("/qr/v1/payments/reversals", &advice).await.0,
        StatusCode::ACCEPTED
    );
    let tran = |r: &Value| r["tranId"].as_str().expect("tranId").to_owned();
    let extra = "ffffffffffffffffffffffffffffffff";
    // a matches, b's amount differs, c is missing, d matches (reversed), one extra row.
    let csv = format!(
        "tranId,partnerReference,amount,currency,status\r\n\
         {},,1000,710,CONFIRMED\r\n\
         {},ref-b,2500,710,CONFIRMED\r\n\
         {},,4000,710,REVERSED\r\n\
         {extra},ref-x,999,710,CONFIRMED\r\n",
        tran(&a),
        tran(&b),
        tran(&d),
    );
    let path = format!(
        "/admin/v1/reports/reconciliation?date={}&partnerId=wallet-1",
        today()
    );
    let (status, report) = admin_post(&hub, &path, "text/csv", csv).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["matched"], 2, "{report:#}");
    let mismatches = report["amountMismatches"].as_array().expect("list");
    assert_eq!(mismatches.len(), 1, "{report:#}");
    assert_eq!(mismatches[0]["tranId"], tran(&b).as_str());
    assert_eq!(mismatches[0]["hubAmount"], 2000);
    assert_eq!(mismatches[0]["partnerAmount"], 2500);
    let hub_only = report["hubOnly"].as_array().expect("list");
    assert_eq!(hub_only.len(), 1);
    assert_eq!(hub_only[0]["tranId"], tran(&c).as_str());
    assert_eq!(hub_only[0]["amount"], 3000);
    let partner_only = report["partnerOnly"].as_array().expect("list");
    assert_eq!(partner_only.len(), 1);
    assert_eq!(partner_only[0]["tranId"], extra);
    assert_eq!(report["statusMismatches"], json!([]));

    // The same report as JSON, with a status difference planted instead.
    let rows = json!({"rows": [
        {"tranId": tran(&a), "amount": 1000, "currency": "710", "status": "REVERSED"},
        {"tranId": tran(&b), "amount": 2000, "currency": "710", "status": "CONFIRMED"},
        {"tranId": tran(&c), "amount": 3000, "currency": "710", "status": "CONFIRMED"},
        {"tranId": tran(&d), "amount": 4000, "currency": "710", "status": "REVERSED"},
    ]});
    let (status, report) = admin_post(&hub, &path, "application/json", rows.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["matched"], 3);
    assert_eq!(report["statusMismatches"][0]["tranId"], tran(&a).as_str());
    assert_eq!(report["statusMismatches"][0]["hubStatus"], "CONFIRMED");
    assert_eq!(report["hubOnly"], json!([]));
    assert_eq!(report["partnerOnly"], json!([]));

    // Money is integers; the partner is required; errors are ErrorDetails.
    let float = "tranId,partnerReference,amount,currency,status\nx,,10.5,710,CONFIRMED\n";
    let (status, error) = admin_post(&hub, &path, "text/csv", float.into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error["detailMessage"]["formatErrors"][0]["field"],
        "line 2.amount"
    );
    let (status, error) = admin_post(
        &hub,
        &format!("/admin/v1/reports/reconciliation?date={}", today()),
        "text/csv",
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error["detailMessage"]["formatErrors"][0]["field"],
        "partnerId"
    );
    hub.stop().await;
}

async fn only_operators_reach_the_back_office(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let path = "/admin/v1/payments";
    let (status, _) = admin_get_as(&hub, OPERATOR, OPERATOR_PASSWORD, path, None).await;
    assert_eq!(status, StatusCode::OK);
    for (user, password) in [
        ("pos-1", POS_PASSWORD),
        ("wallet-1", PARTNER_PASSWORD),
        (OPERATOR, "wrong"),
    ] {
        let (status, body) = admin_get_as(&hub, user, password, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user}: {body}");
        let error: Value = serde_json::from_str(&body).expect("an ErrorDetail");
        assert_eq!(error["errorType"], "FORMAT_ERROR");
    }
    let response = hub
        .http
        .get(format!("{}{path}", hub.url))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    // And operators have no business on the payment interface.
    let (status, _) = hub
        .post_as(
            OPERATOR,
            OPERATOR_PASSWORD,
            "/qr/v1/qrCodes",
            &crate::common::hub::qr_request("pos-1", 100),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    hub.stop().await;
}

async fn the_summary_counts_todays_payments_and_the_outbox(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    for _ in 0..2 {
        confirmed(&hub, 1000, None).await;
    }
    let (request, status, _) = hub.paid(2000).await;
    assert_eq!(status, StatusCode::CREATED);
    let advice = reversal(request["id"].as_str().expect("id"), "CANCELLED");
    assert_eq!(
        hub.pos("/qr/v1/payments/reversals", &advice).await.0,
        StatusCode::ACCEPTED
    );
    let count = |summary: &Value, list: &str, state: &str| {
        summary[list]
            .as_array()
            .expect("a list")
            .iter()
            .find(|c| c["state"] == state)
            .and_then(|c| c["count"].as_i64())
            .unwrap_or_else(|| panic!("{state} missing from {list}: {summary}"))
    };
    // The three advices reach the partner; the summary sees them delivered.
    let deadline = tokio::time::Instant::now() + WAIT;
    let summary = loop {
        let (status, summary) = admin_get(&hub, "/admin/v1/summary").await;
        assert_eq!(status, StatusCode::OK, "{summary}");
        if count(&summary, "outbox", "DELIVERED") == 3 {
            break summary;
        }
        assert!(tokio::time::Instant::now() < deadline, "{summary}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(summary["date"], today().as_str());
    // Every state is listed, in lifecycle order, with the day's counts.
    let states: Vec<&str> = summary["payments"]
        .as_array()
        .expect("payments")
        .iter()
        .filter_map(|c| c["state"].as_str())
        .collect();
    let all: Vec<&str> = qrhub::domain::PaymentState::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(states, all);
    assert_eq!(count(&summary, "payments", "CONFIRMED"), 2);
    assert_eq!(count(&summary, "payments", "REVERSED"), 1);
    let total: i64 = summary["payments"]
        .as_array()
        .expect("payments")
        .iter()
        .filter_map(|c| c["count"].as_i64())
        .sum();
    assert_eq!(total, 3, "{summary}");
    for state in ["PENDING", "FAILED", "DEAD"] {
        assert_eq!(count(&summary, "outbox", state), 0, "{summary}");
    }
    assert!(summary.get("oldestPendingAt").is_none(), "{summary}");

    // Another day has no payments; the outbox is not per day.
    let (status, other) = admin_get(&hub, "/admin/v1/summary?date=2001-02-03").await;
    assert_eq!(status, StatusCode::OK, "{other}");
    assert_eq!(other["date"], "2001-02-03");
    assert!(other["payments"]
        .as_array()
        .expect("payments")
        .iter()
        .all(|c| c["count"] == 0));
    assert_eq!(count(&other, "outbox", "DELIVERED"), 3);
    let (status, error) = admin_get(&hub, "/admin/v1/summary?date=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["detailMessage"]["formatErrors"][0]["field"], "date");
    let (status, _) = admin_get_as(&hub, OPERATOR, "wrong", "/admin/v1/summary", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    hub.stop().await;
}

both_stores!(
    settlement_report_adds_up_in_json_and_csv,
    a_payment_past_the_local_cut_off_counts_on_the_next_day,
    reconciliation_finds_a_fee_the_partner_disagrees_on,
    search_filters_and_walks_pages,
    a_payment_timeline_tells_its_story_in_order,
    a_dead_letter_retried_by_an_operator_is_delivered,
    reconciliation_finds_planted_differences,
    only_operators_reach_the_back_office,
    the_summary_counts_todays_payments_and_the_outbox,
);
