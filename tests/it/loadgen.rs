//! The load generator in process against a real hub and simulator, on both stores; and its
//! end check failing when the partner's ledger no longer matches what the hub answered.

use std::time::Duration;

use crate::common::db::TestDb;
use crate::common::hub::{Options, TestHub, PARTNER_PASSWORD, POS_PASSWORD};
use qrhub::loadgen::{check, run, LoadgenOptions, PayOutcome, Report, ViolationKind};
use qrhub::simulator::MessageKind;

const FLOWS: u64 = 60;

fn options(hub: &TestHub) -> LoadgenOptions {
    LoadgenOptions {
        hubs: vec![hub.url.clone()],
        simulator: hub.sim.base_url(),
        lanes: 8,
        count: Some(FLOWS),
        pos_user: "pos-1".into(),
        pos_password: POS_PASSWORD.into(),
        partner_user: "wallet-1".into(),
        partner_password: PARTNER_PASSWORD.into(),
        partner_name: "Wallet wallet-1".into(),
        decline_share: 0.1,
        reverse_share: 0.1,
        settle_timeout: Duration::from_secs(15),
        ..LoadgenOptions::default()
    }
}

fn assert_clean(report: &Report) {
    assert!(report.passed(), "{report}");
    assert_eq!(report.errors.total, 0, "{report}");
    assert!(report.check.passed(), "{report}");
    assert_eq!(report.flows_started, FLOWS);
    assert_eq!(report.flows_completed, FLOWS);
    assert_eq!(
        report.confirmed + report.reversed + report.declined,
        FLOWS,
        "{report}"
    );
    // 10% of 60 each, within one.
    assert!((5..=7).contains(&report.declined), "{report}");
    assert!((5..=7).contains(&report.reversed), "{report}");
    assert_eq!(report.flows.len() as u64, FLOWS);
    let c = &report.check;
    assert_eq!(c.flows_checked as u64, FLOWS);
    assert_eq!(c.pays as u64, FLOWS);
    assert_eq!(c.confirmations_accepted as u64, report.confirmed);
    assert_eq!(c.reversals_accepted as u64, report.reversed);
    let by_op = |name: &str| {
        report
            .operations
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.count)
    };
    assert_eq!(by_op("createQrCode"), Some(FLOWS));
    assert_eq!(by_op("pay"), Some(FLOWS));
    assert_eq!(by_op("confirm"), Some(report.confirmed));
    assert_eq!(by_op("reverse"), Some(report.reversed));
    assert_eq!(report.flow.count, FLOWS);
    assert_eq!(report.match_latency.latency.count, FLOWS);
    assert!(report.flows_per_sec > 0.0);
    // The JSON form carries the same figures.
    let json = serde_json::to_value(report).expect("the report serialises");
    assert_eq!(json["flowsCompleted"], FLOWS);
    assert_eq!(json["check"]["violations"], serde_json::json!([]));
    assert_eq!(json["flow"]["count"], FLOWS);
    assert!(json["matchLatency"]["p50Us"].is_u64());
    assert_eq!(json["errors"]["byKind"], serde_json::json!({}));
}

async fn sixty_flows(db: TestDb) {
    let hub = TestHub::start(db, Options::default()).await;
    let report = run(options(&hub)).await.expect("the run completes");
    println!("{report}");
    assert_clean(&report);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_flows_on_sqlite() {
    sixty_flows(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_flows_on_postgres() {
    sixty_flows(TestDb::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ledger_that_differs_from_the_hub_fails_the_check() {
    let hub = TestHub::start(TestDb::sqlite().await, Options::default()).await;
    let report = run(options(&hub)).await.expect("the run completes");
    assert_clean(&report);
    let ledger = hub.sim.ledger();
    assert!(check(&report.flows, &ledger).passed());

    // One pay delivered twice: the partner's count and the hub's differ.
    let mut doubled = ledger.clone();
    let a_pay = ledger
        .iter()
        .find(|e| e.kind == MessageKind::Pay)
        .expect("a pay")
        .clone();
    doubled.push(a_pay);
    let r = check(&report.flows, &doubled);
    assert_eq!(r.violations.len(), 1, "{:#?}", r.violations);
    assert_eq!(r.violations[0].kind, ViolationKind::DoubledPay);

    // The partner "forgets" everything: every answered pay is now missing at the partner,
    // and so is every confirmation and reversal.
    hub.sim.clear_ledger();
    let tampered = check(&report.flows, &hub.sim.ledger());
    assert!(!tampered.passed());
    let count =
        |k: ViolationKind| tampered.violations.iter().filter(|v| v.kind == k).count() as u64;
    let answered = report
        .flows
        .iter()
        .filter(|f| matches!(f.pay, PayOutcome::Approved | PayOutcome::Declined { .. }))
        .count() as u64;
    assert_eq!(answered, FLOWS);
    assert_eq!(count(ViolationKind::MissingPay), answered);
    assert_eq!(count(ViolationKind::MissingConfirmation), report.confirmed);
    assert_eq!(count(ViolationKind::MissingReversal), report.reversed);
    hub.stop().await;
}
