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
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub (and, built with the tools, the partner simulator if the configuration
    /// enables it).
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
    #[cfg(feature = "tools")]
    SimulatePartner {
        #[arg(long, env = "QRHUB_CONFIG", default_value = "config/default.toml")]
        config: PathBuf,
    },
    /// Drive hubs with concurrent POS lanes and partner scans, then check the simulator's
    /// ledger against what the hubs answered.
    #[cfg(feature = "tools")]
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
    #[cfg(feature = "tools")]
    Chaos(Box<crate::chaos::ChaosOptions>),
    /// The benchmark's reference: the cheapest durable request (parse a pay, commit one row).
    #[cfg(feature = "tools")]
    #[command(hide = true)]
    BenchReference(crate::loadgen::reference::ReferenceOptions),
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // What the hub writes holds payments and passwords (the SQLite database and its journal,
    // a configuration from init-config): readable by its own user only, whatever umask it
    // was started with.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
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
            #[cfg(feature = "tools")]
            Command::SimulatePartner { config } => simulate_partner(config).await,
            #[cfg(feature = "tools")]
            Command::Loadgen(options) => crate::loadgen::command(*options).await,
            Command::Probe { url, timeout } => probe(&url, timeout).await,
            Command::Openapi => {
                print!("{}", crate::openapi::render());
                Ok(())
            }
            #[cfg(feature = "tools")]
            Command::Chaos(options) => crate::chaos::command(*options).await,
            #[cfg(feature = "tools")]
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
    #[cfg(feature = "tools")]
    let simulator_section = simulator_section(&config)?;
    #[cfg(feature = "tools")]
    if let Some(section) = simulator_section.as_ref().filter(|s| s.enabled) {
        // Its control API (scans, scripts, the ledger) has no authentication: whoever
        // reaches it can make it scan as a wallet. In-process it is a demo, so loopback only.
        anyhow::ensure!(
            crate::published::is_loopback(&section.listen),
            "refusing to start the built-in partner simulator on {} (beyond loopback, key \
             `simulator.listen`): its control API has no authentication; set it to a loopback \
             address, set `simulator.enabled = false`, or run a separate one with \
             `qrhub simulate-partner`",
            section.listen
        );
        if !crate::published::is_loopback(&settings.server.listen) {
            tracing::warn!(
                simulator = %section.listen,
                "the built-in partner simulator is enabled: partners whose base_url points at \
                 it are answered by a simulator that approves without moving money; set \
                 `simulator.enabled = false` for real partners"
            );
        }
    }
    #[cfg(feature = "tools")]
    let simulator = match simulator_section {
        Some(section) if section.enabled => Some(
            crate::simulator::Simulator::start(section)
                .await
                .context("cannot start the partner simulator")?,
        ),
        _ => None,
    };
    #[cfg(feature = "tools")]
    if let Some(sim) = &simulator {
        tracing::info!(url = %sim.base_url(), "partner simulator running");
    }
    #[cfg(not(feature = "tools"))]
    if settings.has_simulator_section() {
        tracing::info!(
            "the configuration's [simulator] section is ignored: this build has no partner \
             simulator (it was built without the `tools` feature)"
        );
    }
    let app = App::build(settings, Arc::new(SystemClock))
        .await?
        .reload_from(&config);
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        trigger.cancel();
    });
    let result = app.run(shutdown).await;
    #[cfg(feature = "tools")]
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

/// The configuration's [simulator] section: the tool's, not the hub's settings.
#[cfg(feature = "tools")]
fn simulator_section(
    config: &std::path::Path,
) -> anyhow::Result<Option<crate::simulator::SimulatorSettings>> {
    crate::config::load_section(config, "simulator")
        .with_context(|| format!("configuration {} is not usable", config.display()))
}

#[cfg(feature = "tools")]
async fn simulate_partner(config: PathBuf) -> anyhow::Result<()> {
    let settings = load(&config)?;
    telemetry::init(&settings.log);
    let section =
        simulator_section(&config)?.context("the configuration has no [simulator] section")?;
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
