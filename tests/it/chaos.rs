//! The short fault-injection run, as CI runs it: `qrhub chaos` (the real binary) with two hub
//! processes on a fresh PostgreSQL database, partner faults (those of real partners too),
//! partner outages and hub SIGKILLs every few seconds, the simulator in strict mode; it must
//! find no violation. The long run is documented in RELIABILITY.md.

use std::process::Command;

/// The admin URL of the test PostgreSQL server (as `tests/it/common/db.rs`).
fn postgres_admin_url() -> String {
    std::env::var("QRHUB_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

#[test]
fn a_short_chaos_run_finds_no_violation() {
    let output = Command::new(env!("CARGO_BIN_EXE_qrhub"))
        .args([
            "chaos",
            "--flows",
            "300",
            "--lanes",
            "16",
            "--kill-every",
            "3s",
            "--seed",
            "20240601",
            "--settle",
            "90s",
            "--outage-every",
            "5s",
            "--outage-for",
            "2s",
            "--json",
        ])
        .arg("--database-url")
        .arg(postgres_admin_url())
        .env("RUST_LOG", "warn")
        .output()
        .expect("qrhub chaos runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    let violations = &report["check"]["violations"];
    assert!(
        output.status.success() && violations.as_array().is_some_and(|v| v.is_empty()),
        "violations: {violations:#}\nstderr:\n{stderr}"
    );
    let number = |path: &[&str]| {
        path.iter()
            .fold(&report, |v, k| &v[*k])
            .as_u64()
            .unwrap_or_else(|| panic!("{path:?} in {report:#}"))
    };
    assert!(number(&["flows"]) >= 290, "{report:#}");
    assert!(
        number(&["kills"]) >= 1,
        "at least one hub was killed: {report:#}"
    );
    assert_eq!(number(&["kills"]), number(&["restarts"]));
    // The mix reached the partner: approvals, declines and unknown outcomes all happened.
    for kind in ["approved", "declined", "unknown"] {
        assert!(number(&["pos", kind]) > 0, "no {kind} flow: {report:#}");
    }
    assert!(number(&["advicesDelivered"]) > 0);
    // The hub presented client.id = Basic user and schema-valid messages throughout.
    assert_eq!(number(&["check", "strictViolations"]), 0, "{report:#}");
    // Real partners' answers reached it: a repaired approval, one of another amount.
    for fault in [
        "pay:lenient-approve",
        "pay:wrong-amount",
        "pay:502",
        "advice:refused",
    ] {
        assert!(
            number(&["faultsInjected", fault]) > 0,
            "no {fault} reached the partner: {report:#}"
        );
    }
}
