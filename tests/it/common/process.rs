//! A hub as its own process (`qrhub serve`), for tests that kill it or run several.

use reqwest::StatusCode;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// A port nothing listens on now, for a listener the test starts later (often in another
/// process, which cannot tell the test a port it chose itself).
///
/// Chosen below the system's range of ephemeral ports (32768-60999 on Linux), which it hands
/// out for every outgoing connection and every bind to port 0: a port from that range can be
/// taken by any of the suite's connections between this check and the later bind (seen in
/// CI: "Address already in use"). Random, so that tests in other processes rarely pick the
/// same one, and never the same one twice in this process.
pub fn free_port() -> u16 {
    use rand::Rng;
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = rand::thread_rng().gen_range(20_000..32_000);
        let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
}

pub struct HubProcess {
    child: Child,
}

impl HubProcess {
    pub async fn start(config: &Path, url: &str) -> Self {
        Self::start_with_client(config, url, &reqwest::Client::new()).await
    }

    /// As [`start`](Self::start), polling readiness with `http` (e.g. one that trusts the
    /// test CA of an HTTPS hub).
    pub async fn start_with_client(config: &Path, url: &str, http: &reqwest::Client) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_qrhub"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the hub binary starts");
        // From here on, Drop kills and reaps the child, whatever happens.
        let process = Self { child };
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{url}/health/ready")).send().await {
                if r.status() == StatusCode::OK {
                    return process;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the hub did not become ready");
    }

    /// The child's process id (to send it signals with `kill`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no flush, nothing finished.
    pub fn kill(self) {
        // Drop does it.
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a configuration for a hub process listening on `port`; returns its path.
pub fn write_config(dir: &Path, name: &str, toml: &str, port: u16) -> std::path::PathBuf {
    let toml = toml.replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let path = dir.join(name);
    std::fs::write(&path, toml).expect("config written");
    path
}
