//! A hub as its own process (`qrhub serve`), for tests that kill it or run several.

use reqwest::StatusCode;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
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
