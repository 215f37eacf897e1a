//! As shipped, the hub is a demo: its published passwords serve on loopback only. Beyond
//! loopback `qrhub serve` refuses them and says which key and what to do; a configuration
//! from `qrhub init-config` serves anywhere. The processes run with the Docker image's own
//! environment (its ENV lines), as the image would run them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::process::free_port;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs `qrhub serve` until it exits or `wait` passes (then kills it): `None` if it was still
/// serving.
fn serve_for(envs: &[(&str, String)], wait: Duration) -> Option<Output> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qrhub"))
        .arg("serve")
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the hub binary starts");
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            return Some(child.wait_with_output().expect("output"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The ENV lines of the Dockerfile, with the image's paths moved under `dir`.
fn image_env(dir: &Path) -> Vec<(&'static str, String)> {
    let dockerfile = std::fs::read_to_string(repo_file("Dockerfile")).expect("Dockerfile");
    let env_block = dockerfile
        .split("\nENV ")
        .nth(1)
        .expect("an ENV instruction")
        .split("\n\n")
        .next()
        .expect("its lines");
    let mut found = Vec::new();
    for part in env_block.split_whitespace() {
        let part = part.trim_end_matches('\\');
        if let Some((key, value)) = part.split_once('=') {
            let value = value
                .replace("/var/lib/qrhub", &dir.display().to_string())
                .replace("/etc/qrhub", &repo_file("config").display().to_string());
            let key: &'static str = Box::leak(key.to_owned().into_boxed_str());
            found.push((key, value));
        }
        if !part.contains('=') && !part.is_empty() && part != "\\" {
            break; // the next instruction
        }
    }
    assert!(
        found.iter().any(|(k, _)| *k == "QRHUB__SERVER__LISTEN"),
        "{found:?}"
    );
    found
}

/// Kills and reaps the child however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn with(
    mut envs: Vec<(&'static str, String)>,
    key: &'static str,
    value: String,
) -> Vec<(&'static str, String)> {
    envs.retain(|(k, _)| *k != key);
    envs.push((key, value));
    envs
}

#[test]
fn the_demo_configuration_is_refused_beyond_loopback_and_says_why() {
    let dir = tempfile::tempdir().expect("dir");
    let envs = vec![
        (
            "QRHUB_CONFIG",
            repo_file("config/default.toml").display().to_string(),
        ),
        ("QRHUB__SERVER__LISTEN", format!("0.0.0.0:{}", free_port())),
        (
            "QRHUB__DATABASE__URL",
            format!("sqlite://{}/qrhub.db", dir.path().display()),
        ),
        ("QRHUB__SIMULATOR__ENABLED", "false".into()),
    ];
    let output = serve_for(&envs, Duration::from_secs(20))
        .expect("the hub refuses to start, it does not serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "clients[0].password_hash",
        "partners[0].password_hash",
        "`partners[0].password`",
        "operators[0].password_hash",
        "server.listen",
        "qrhub init-config",
    ] {
        assert!(stderr.contains(needle), "{needle} missing from: {stderr}");
    }
    assert!(!stderr.contains("pos-1-secret"), "{stderr}");
}

/// The built-in simulator's control API has no authentication: `serve` starts it on loopback
/// only, whatever the passwords.
#[test]
fn the_built_in_simulator_never_listens_beyond_loopback() {
    let dir = tempfile::tempdir().expect("dir");
    let envs = vec![
        (
            "QRHUB_CONFIG",
            repo_file("config/default.toml").display().to_string(),
        ),
        (
            "QRHUB__SERVER__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        ),
        (
            "QRHUB__DATABASE__URL",
            format!("sqlite://{}/qrhub.db", dir.path().display()),
        ),
        ("QRHUB__SIMULATOR__ENABLED", "true".into()),
        (
            "QRHUB__SIMULATOR__LISTEN",
            format!("0.0.0.0:{}", free_port()),
        ),
    ];
    let output = serve_for(&envs, Duration::from_secs(20))
        .expect("the hub refuses to start, it does not serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("simulator.listen"), "{stderr}");
    assert!(stderr.contains("no authentication"), "{stderr}");
}

#[test]
fn the_image_environment_serves_only_a_configuration_of_ones_own() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let envs = with(
        image_env(dir.path()),
        "QRHUB__SERVER__LISTEN",
        format!("0.0.0.0:{port}"),
    );
    // As shipped: no configuration of one's own yet, and the image's template is the demo.
    let refused = serve_for(&envs, Duration::from_secs(20))
        .expect("the image does not serve before init-config");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("qrhub init-config"), "{stderr}");

    // The image's configuration pointed at the demo file, as it did before: refused too.
    let demo = with(
        envs.clone(),
        "QRHUB_CONFIG",
        repo_file("config/default.toml").display().to_string(),
    );
    let refused = serve_for(&demo, Duration::from_secs(20))
        .expect("the demo configuration does not serve beyond loopback");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("clients[0].password_hash"), "{stderr}");

    // The one command: a configuration with fresh passwords, where serve looks for it.
    let init = Command::new(env!("CARGO_BIN_EXE_qrhub"))
        .arg("init-config")
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("init-config runs");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let printed = String::from_utf8_lossy(&init.stdout);
    let pos_password = printed
        .lines()
        .find(|l| l.contains("POS client pos-1"))
        .and_then(|l| l.split_whitespace().rev().nth(1))
        .expect("the POS password is printed")
        .to_owned();
    // Never overwritten by a second run.
    let again = Command::new(env!("CARGO_BIN_EXE_qrhub"))
        .arg("init-config")
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("init-config runs");
    assert!(!again.status.success());

    qrhub::partner::install_crypto_provider();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let child = Command::new(env!("CARGO_BIN_EXE_qrhub"))
        .arg("serve")
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serves");
    let _serving = KillOnDrop(child);
    let answered = rt.block_on(async {
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{url}/health/ready")).send().await {
                if r.status().is_success() {
                    let body = crate::common::hub::qr_request("pos-1", 100);
                    let post = |password: &str| {
                        http.post(format!("{url}/qr/v1/qrCodes"))
                            .basic_auth("pos-1", Some(password))
                            .json(&body)
                            .send()
                    };
                    let demo = post("pos-1-secret").await.expect("answers").status();
                    let own = post(&pos_password).await.expect("answers").status();
                    return Some((demo, own));
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    });
    let (demo, own) = answered.expect("the hub serves its own configuration");
    assert_eq!(demo.as_u16(), 401);
    assert_eq!(own.as_u16(), 201);
}

#[test]
fn the_demo_still_serves_on_loopback() {
    let dir = tempfile::tempdir().expect("dir");
    let envs = vec![
        (
            "QRHUB_CONFIG",
            repo_file("config/default.toml").display().to_string(),
        ),
        (
            "QRHUB__SERVER__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        ),
        (
            "QRHUB__DATABASE__URL",
            format!("sqlite://{}/qrhub.db", dir.path().display()),
        ),
        ("QRHUB__SIMULATOR__ENABLED", "false".into()),
    ];
    assert!(
        serve_for(&envs, Duration::from_secs(3)).is_none(),
        "the demo serves on loopback"
    );
    // What it wrote holds payments: its own user's only, whatever the umask it started with.
    #[cfg(unix)]
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        use std::os::unix::fs::PermissionsExt;
        let entry = entry.expect("entry");
        let mode = entry.metadata().expect("metadata").permissions().mode();
        assert_eq!(mode & 0o077, 0, "{:?} is {mode:o}", entry.file_name());
    }
}

/// `init-config --force` over a file others could read leaves it owner-only.
#[cfg(unix)]
#[test]
fn init_config_over_a_readable_file_makes_it_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("qrhub.toml");
    std::fs::write(&out, "old").expect("written");
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let init = Command::new(env!("CARGO_BIN_EXE_qrhub"))
        .args(["init-config", "--force", "--out"])
        .arg(&out)
        .arg("--template")
        .arg(repo_file("config/default.toml"))
        .output()
        .expect("init-config runs");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mode = std::fs::metadata(&out)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}
