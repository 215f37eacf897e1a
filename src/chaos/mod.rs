//! The fault-injection run (`qrhub chaos`): two hub processes on one PostgreSQL database, a
//! partner simulator in strict mode scripted per tranId with a random mix of faults (those
//! of real partners too: 502, 503 and 429 with Retry-After, redirects, approvals that are
//! not schema-exact or not JSON or of another amount, refused advices) and with outages
//! (maintenance windows, refused connections), POS lanes that act as the interface demands
//! of a POS, and a killer that SIGKILLs hub processes at random moments and restarts them. When the load is done and the outboxes have drained, the
//! invariant checker ([`check::check`]) compares what the POS saw, what the hub stored and
//! what the partner received, and the run fails on any violation.
//!
//! One concern per file:
//! - [`options`]: the command line;
//! - [`database`]: the run's own database, created and dropped;
//! - [`hubs`]: the hub processes (config, start, SIGKILL);
//! - [`killer`]: when to kill which hub;
//! - [`outages`]: when the partner is down, and how;
//! - [`faults`]: the seeded plan of each flow (partner faults, hubs, POS choices);
//! - [`pos`]: the POS lanes and the scans;
//! - [`record`]: what each side saw, as plain data;
//! - [`evidence`]: reading the hub's payments and outbox through the store;
//! - [`check`]: the invariants, a pure function;
//! - [`report`]: the figures, as text or JSON.
//!
//! ```text
//! qrhub chaos --flows 300 --lanes 16 --kill-every 3s --seed 7
//! ```

pub(crate) mod check;
pub(crate) mod database;
pub(crate) mod evidence;
pub(crate) mod faults;
pub(crate) mod hubs;
pub(crate) mod killer;
mod options;
pub(crate) mod outages;
pub(crate) mod pos;
pub(crate) mod record;
pub(crate) mod report;

pub(crate) use options::{ChaosOptions, DEFAULT_FLOWS};
pub(crate) use report::ChaosReport;

use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::simulator::{Simulator, SimulatorSettings};
use database::ChaosDatabase;
use hubs::{HubInstance, Timing};

/// How often the settle phase re-reads the hub and the ledger.
const SETTLE_POLL: Duration = Duration::from_millis(500);

/// `qrhub chaos`: runs, prints the report (text or JSON), fails on any violation.
pub(crate) async fn command(options: ChaosOptions) -> anyhow::Result<()> {
    let json = options.json;
    let report = run(options).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("serialising the report")?
        );
    } else {
        println!("{report}");
    }
    anyhow::ensure!(
        report.passed(),
        "the chaos run found {} violation(s)",
        report.check.violations.len()
    );
    Ok(())
}

/// Runs the whole thing on a fresh database, dropped at the end unless `keep`.
pub(crate) async fn run(options: ChaosOptions) -> anyhow::Result<ChaosReport> {
    options.validate()?;
    crate::partner::install_crypto_provider();
    let seed = options.seed.unwrap_or_else(rand::random);
    eprintln!("qrhub chaos: seed {seed}");
    let db = ChaosDatabase::create(&options.database_url).await?;
    let dir = std::env::temp_dir().join(&db.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = run_on(&options, seed, &db, dir.clone()).await;
    let failed = !matches!(&result, Ok(r) if r.passed());
    if options.keep || failed {
        eprintln!(
            "qrhub chaos: hub logs kept in {}{}",
            dir.display(),
            if options.keep {
                format!(", database {} kept", db.name)
            } else {
                String::new()
            }
        );
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if !options.keep {
        if let Err(e) = db.drop_database().await {
            eprintln!("qrhub chaos: warning: {e:#}");
        }
    }
    result
}

async fn run_on(
    options: &ChaosOptions,
    seed: u64,
    db: &ChaosDatabase,
    dir: PathBuf,
) -> anyhow::Result<ChaosReport> {
    let store = crate::store::connect(&db.url, 4).await?;
    store
        .migrate()
        .await
        .context("migrating the run's database")?;

    let sim = Arc::new(
        Simulator::start(SimulatorSettings {
            listen: "127.0.0.1:0".parse()?,
            partner_id: hubs::PARTNER_ID.into(),
            partner_name: hubs::PARTNER_NAME.into(),
            // The hub must always present client.id = its Basic user and schema-valid
            // messages; the checker counts every breach.
            strict: true,
            ..SimulatorSettings::default()
        })
        .await?,
    );
    let timing = Timing::for_partner_timeout(options.partner_timeout);
    let control = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let mut instances = Vec::new();
    for name in ["hub-a", "hub-b"] {
        let port = hubs::free_port()?;
        let toml = hubs::config_toml(port, &db.url, &sim.base_url(), &timing);
        let mut hub = HubInstance::new(&dir, name, port, &toml)?;
        hub.start(&control).await?;
        instances.push(hub);
    }
    let urls: Vec<String> = instances.iter().map(|h| h.url.clone()).collect();

    let stop = CancellationToken::new();
    let killer = tokio::spawn(killer::run(
        instances,
        control.clone(),
        options.kill_every,
        options.restart_after,
        seed,
        stop.clone(),
    ));

    let outages = tokio::spawn(outages::run(
        Arc::clone(&sim),
        options.outage_every,
        options.outage_for,
        seed,
        stop.clone(),
    ));

    let pos = Arc::new(pos::Pos {
        http: reqwest::Client::builder()
            .timeout(timing.pos_timeout)
            .connect_timeout(Duration::from_secs(1))
            .pool_max_idle_per_host(options.lanes * 3 + 8)
            .build()?,
        hubs: urls,
        sim: Arc::clone(&sim),
        partner_timeout: options.partner_timeout,
        seed,
    });
    let count = match (options.flows, options.duration) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_FLOWS),
    };
    let started = Instant::now();
    let until = options.duration.map(|d| started + d);
    let lanes = Arc::clone(&pos)
        .run_lanes(options.lanes, count, until)
        .await;
    let load_seconds = started.elapsed().as_secs_f64();
    stop.cancel();
    let (mut instances, kills, killed) = killer.await.context("the killer task")?;
    let outages = outages.await.context("the outage task")?;
    let tally = lanes?;
    killed?;
    eprintln!(
        "qrhub chaos: load done: {} flows in {load_seconds:.1}s, {} kills; settling",
        tally.flows.len(),
        kills.kills
    );

    // Let the outboxes drain and the recovery sweeps finish, then check.
    let settle_started = Instant::now();
    let (payments, outbox, ledger, check) = loop {
        let payments = evidence::payments(&store).await?;
        let outbox = evidence::outbox(&store).await?;
        let ledger = sim.ledger();
        let strict = sim.violations();
        let (pending, in_flight) = evidence::outstanding(&payments, &outbox);
        let check = check::check(&tally.flows, &payments, &outbox, &ledger, &strict);
        let busy = pending > 0 || in_flight > 0 || check.may_resolve();
        if !busy || settle_started.elapsed() >= options.settle {
            break (payments, outbox, ledger, check);
        }
        tokio::time::sleep(SETTLE_POLL).await;
    };
    let settle_seconds = settle_started.elapsed().as_secs_f64();

    for hub in &mut instances {
        hub.kill().await?;
    }
    drop(pos);
    if let Ok(sim) = Arc::try_unwrap(sim) {
        let _ = sim.shutdown().await;
    }
    Ok(ChaosReport::new(report::Inputs {
        seed,
        lanes: options.lanes,
        database: db.name.clone(),
        load_seconds,
        settle_seconds,
        flows: &tally.flows,
        flows_without_qr_code: tally.no_qr_code,
        scans_accepted: tally.scans_accepted,
        payments: &payments,
        outbox: &outbox,
        ledger: &ledger,
        kills,
        outages,
        check,
    }))
}
