//! The two hub instances: `qrhub serve` child processes of this run (the same executable),
//! each with its own port and log file, on the run's database. They can be killed with
//! SIGKILL and started again on the same port.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The credentials the POS lanes and the scans use (the demo hashes of
/// `config/default.toml`).
pub(crate) const POS_USER: &str = "pos-1";
pub(crate) const POS_PASSWORD: &str = "pos-1-secret";
pub(crate) const PARTNER_ID: &str = "wallet-1";
pub(crate) const PARTNER_NAME: &str = "Demo Wallet";
pub(crate) const PARTNER_PASSWORD: &str = "wallet-1-secret";
const POS_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$u+0poWW1tJttUmYHmAaNFA$74ABwh7BNcelMD/yRAe9k0ABnc8OYnm5NXPjjlCfLFE";
const PARTNER_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$KnVYlCJxFFqIi9/4vct9hg$BT1La5hCFiOO6j7g0gsW6PxWl9ZsuJHmKZzq+CwW9kM";

/// How long a (re)started hub may take to answer `/health/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The timing every hub of the run gets, derived from the partner's timeout: the scan
/// window is `pay_deadline - partner_timeout`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub partner_timeout: Duration,
    pub pay_deadline: Duration,
    pub pos_timeout: Duration,
}

impl Timing {
    pub(crate) fn for_partner_timeout(partner_timeout: Duration) -> Self {
        let pay_deadline = partner_timeout * 3 + Duration::from_secs(1);
        Self {
            partner_timeout,
            pay_deadline,
            pos_timeout: pay_deadline + Duration::from_secs(1),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// A hub configuration for the run: one POS client, one partner (the simulator), short
/// windows and a quick outbox.
pub(crate) fn config_toml(
    port: u16,
    database_url: &str,
    partner_url: &str,
    timing: &Timing,
) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"
shutdown_grace = "2s"
metrics_enabled = false
[database]
url = "{database_url}"
max_connections = 8
[hub]
institution_id = "qrhub"
qr_provider_id = "za.co.qrhub"
[timing]
pos_timeout = "{pos_timeout}"
pay_deadline = "{pay_deadline}"
early_scan_grace = "1s"
[outbox]
concurrency = 8
poll_interval = "100ms"
initial_backoff = "100ms"
max_backoff = "1s"
expiry = "1h"
[log]
format = "json"
filter = "warn"
[[clients]]
id = "{POS_USER}"
password_hash = "{POS_HASH}"
[[partners]]
id = "{PARTNER_ID}"
name = "{PARTNER_NAME}"
password_hash = "{PARTNER_HASH}"
base_url = "{partner_url}"
username = "qrhub"
password = "qrhub-to-wallet-1"
timeout = "{partner_timeout}"
"#,
        pos_timeout = ms(timing.pos_timeout),
        pay_deadline = ms(timing.pay_deadline),
        partner_timeout = ms(timing.partner_timeout),
    )
}

/// A free TCP port on the loopback interface (bound and released at once).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// One hub instance: its config, log file and, while it runs, its process.
#[derive(Debug)]
pub(crate) struct HubInstance {
    pub name: String,
    pub url: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl HubInstance {
    /// Writes the instance's configuration under `dir`; nothing is started yet.
    pub(crate) fn new(dir: &Path, name: &str, port: u16, toml: &str) -> anyhow::Result<Self> {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, toml).with_context(|| format!("writing {}", config.display()))?;
        Ok(Self {
            name: name.to_owned(),
            url: format!("http://127.0.0.1:{port}"),
            config,
            log: dir.join(format!("{name}.log")),
            child: None,
        })
    }

    /// Starts `qrhub serve` (this executable) and waits until it is ready.
    pub(crate) async fn start(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("locating the qrhub executable")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let child = Command::new(exe)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting hub {}", self.name))?;
        self.child = Some(child);
        let ready = format!("{}/health/ready", self.url);
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(r) = http.get(&ready).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    anyhow::bail!(
                        "hub {} exited at start-up ({status}); see {}",
                        self.name,
                        self.log.display()
                    );
                }
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "hub {} was not ready within {READY_TIMEOUT:?}; see {}",
                self.name,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL (no shutdown, nothing flushed), then reaps the process.
    pub(crate) async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill().context("sending SIGKILL")?;
            child.wait().await.context("reaping the killed hub")?;
        }
        Ok(())
    }
}
