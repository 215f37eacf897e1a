//! The `qrhub` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::app::{shutdown_signal, App};
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::{credentials, store, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "qrhub",
    version,
    about = "QR payment hub (Electrum QR Payment Service Interface)"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub (and the partner simulator, if the configuration enables it).
    Serve {
        /// Configuration file; QRHUB__SECTION__KEY environment variables override it.
        #[arg(long, env = "QRHUB_CONFIG", default_value = "config/default.toml")]
        config: PathBuf,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[arg(long, env = "QRHUB_CONFIG", default_value = "config/default.toml")]
        config: PathBuf,
    },
    /// Print an argon2id hash of a password read from standard input, for the config file.
    HashPassword,
    /// Write a configuration of your own: the template with every password replaced by a
    /// fresh random one (hashed where the hub checks it); prints the new passwords once.
    InitConfig {
        /// The configuration to start from.
        #[arg(
            long,
            env = "QRHUB_CONFIG_TEMPLATE",
            default_value = "config/default.toml"
        )]
        template: PathBuf,
        /// Where to write it (never overwritten without --force); `serve` reads the same
        /// QRHUB_CONFIG.
        #[arg(long, env = "QRHUB_CONFIG", default_value = "qrhub.toml")]
        out: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// Run only the partner simulator of the configuration's [simulator] section.
    SimulatePartner {
        #[arg(long, env = "QRHUB_CONFIG", default_value = "config/default.toml")]
        config: PathBuf,
    },
    /// Drive hubs with concurrent POS lanes and partner scans, then check the simulator's
    /// ledger against what the hubs answered.
    Loadgen(Box<crate::loadgen::LoadgenOptions>),
    /// Exit 0 if the URL answers 2xx within the timeout (a container health check that needs
    /// no curl in the image).
    Probe {
        #[arg(default_value = "http://127.0.0.1:8080/health/ready")]
        url: String,
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Print the hub's OpenAPI document (JSON), as checked in at openapi/qrhub.openapi.json.
    Openapi,
    /// Fault-injection run: two hub processes on a fresh PostgreSQL database, a partner
    /// simulator with scripted faults, hubs SIGKILLed at random; then the invariant check.
    Chaos(Box<crate::chaos::ChaosOptions>),
    /// The benchmark's reference: the cheapest durable request (parse a pay, commit one row).
    #[command(hide = true)]
    BenchReference(crate::loadgen::reference::ReferenceOptions),
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve { config } => serve(config).await,
            Command::Migrate { config } => migrate(config).await,
            Command::HashPassword => hash_password(),
            Command::InitConfig {
                template,
                out,
                force,
            } => crate::init_config::command(&template, &out, force),
            Command::SimulatePartner { config } => simulate_partner(config).await,
            Command::Loadgen(options) => crate::loadgen::command(*options).await,
            Command::Probe { url, timeout } => probe(&url, timeout).await,
            Command::Openapi => {
                print!("{}", crate::openapi::render());
                Ok(())
            }
            Command::Chaos(options) => crate::chaos::command(*options).await,
            Command::BenchReference(options) => crate::loadgen::reference::command(options).await,
        }
    })
}

fn load(path: &std::path::Path) -> anyhow::Result<Settings> {
    Settings::load(path).with_context(|| {
        if path.exists() {
            format!("configuration {} is not usable", path.display())
        } else {
            format!(
                "configuration {} is not usable (it does not exist: write one with fresh \
                 passwords with `qrhub init-config --out {}`)",
                path.display(),
                path.display()
            )
        }
    })
}

async fn serve(config: PathBuf) -> anyhow::Result<()> {
    let settings = load(&config)?;
    telemetry::init(&settings.log);
    let simulator = match &settings.simulator {
        Some(section) if section.enabled => Some(
            crate::simulator::Simulator::start(section.clone())
                .await
                .context("cannot start the partner simulator")?,
        ),
        _ => None,
    };
    if let Some(sim) = &simulator {
        tracing::info!(url = %sim.base_url(), "partner simulator running");
    }
    let app = App::build(settings, Arc::new(SystemClock)).await?;
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        trigger.cancel();
    });
    let result = app.run(shutdown).await;
    if let Some(sim) = simulator {
        sim.shutdown().await?;
    }
    result
}

async fn migrate(config: PathBuf) -> anyhow::Result<()> {
    let settings = load(&config)?;
    telemetry::init(&settings.log);
    let store = store::connect(&settings.database.url, 1).await?;
    store.migrate().await?;
    tracing::info!("migrations applied");
    Ok(())
}

fn hash_password() -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']);
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    let hash = credentials::hash_password(password)
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
    println!("{hash}");
    Ok(())
}

async fn simulate_partner(config: PathBuf) -> anyhow::Result<()> {
    let settings = load(&config)?;
    telemetry::init(&settings.log);
    let section = settings
        .simulator
        .context("the configuration has no [simulator] section")?;
    if !crate::published::is_loopback(&section.listen)
        && section
            .password
            .as_deref()
            .is_some_and(crate::published::is_published)
    {
        anyhow::bail!(
            "refusing to listen on {} (beyond loopback, key `simulator.listen`): configuration \
             key `simulator.password` is a password this project publishes; {}",
            section.listen,
            crate::published::WAY_OUT
        );
    }
    let simulator = crate::simulator::Simulator::start(section).await?;
    tracing::info!(url = %simulator.base_url(), "partner simulator running");
    shutdown_signal().await;
    simulator.shutdown().await
}

async fn probe(url: &str, timeout: std::time::Duration) -> anyhow::Result<()> {
    crate::partner::install_crypto_provider();
    let response = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .build()?
        .get(url)
        .send()
        .await
        .with_context(|| format!("{url} did not answer"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "{url} answered {}",
        response.status()
    );
    Ok(())
}
