//! Passwords this project publishes (the demo configuration, the README, the compose setup),
//! and the rules that keep them off anything reachable beyond the machine itself.
//!
//! A demo that works out of the box must not become a deployment that anyone who read the
//! README can log into. `qrhub serve` on loopback keeps them (the demo); on any other address
//! it refuses to start while a configured credential still verifies against one of these,
//! and names the key. `qrhub init-config` writes a configuration with fresh passwords.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use secrecy::ExposeSecret;
use std::net::SocketAddr;

use crate::config::Settings;

/// Every password that appears in `config/*.toml` or the README. A hash in the configuration
/// that verifies against one of them is as good as published.
pub(crate) const PUBLISHED_PASSWORDS: &[&str] = &[
    "pos-1-secret",
    "wallet-1-secret",
    "ops-secret",
    "qrhub-to-wallet-1",
];

/// The way out, for error messages.
pub(crate) const WAY_OUT: &str = "write a configuration with fresh random passwords with \
`qrhub init-config --out qrhub.toml` and serve it with `qrhub serve --config qrhub.toml` \
(or put hashes of your own passwords there: `qrhub hash-password`); the demo passwords \
only serve on loopback (server.listen = \"127.0.0.1:8080\")";

/// True when `listen` is reachable only from this machine.
pub(crate) fn is_loopback(listen: &SocketAddr) -> bool {
    listen.ip().is_loopback()
}

/// True when `password` is one this project publishes.
pub(crate) fn is_published(password: &str) -> bool {
    PUBLISHED_PASSWORDS.contains(&password)
}

/// The configuration keys (with the user they belong to) whose password hash verifies
/// against a published password. Runs argon2 once per hash and published password, so a
/// few hundred milliseconds: call it off the async threads.
pub(crate) fn published_credentials(settings: &Settings) -> Vec<String> {
    let hashes = settings
        .clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                format!("clients[{i}].password_hash"),
                &c.id,
                &c.password_hash,
            )
        })
        .chain(settings.partners.iter().enumerate().map(|(i, p)| {
            (
                format!("partners[{i}].password_hash"),
                &p.id,
                &p.password_hash,
            )
        }))
        .chain(settings.operators.iter().enumerate().map(|(i, o)| {
            (
                format!("operators[{i}].password_hash"),
                &o.id,
                &o.password_hash,
            )
        }));
    let mut published: Vec<String> = hashes
        .filter(|(_, _, hash)| hash_is_published(hash.as_str()))
        .map(|(key, id, _)| format!("`{key}` ({id})"))
        .collect();
    // What the hub presents to a partner: anyone who read the README could present it too,
    // and send that partner confirmations and reversals in the hub's name.
    published.extend(
        settings
            .partners
            .iter()
            .enumerate()
            .filter(|(_, p)| is_published(p.password.expose_secret()))
            .map(|(i, p)| format!("`partners[{i}].password` ({})", p.id)),
    );
    published
}

fn hash_is_published(hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    PUBLISHED_PASSWORDS.iter().any(|password| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Refuses `settings` when it would listen beyond loopback with a published password.
pub(crate) fn check_listen(settings: &Settings) -> anyhow::Result<()> {
    let listen = settings.server.listen;
    if is_loopback(&listen) {
        return Ok(());
    }
    let published = published_credentials(settings);
    anyhow::ensure!(
        published.is_empty(),
        "refusing to listen on {listen} (beyond loopback, key `server.listen`): configuration \
         key {} holds a password this project publishes; {WAY_OUT}",
        published.join(", "),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses() {
        assert!(is_loopback(&"127.0.0.1:8080".parse().expect("addr")));
        assert!(is_loopback(&"[::1]:8080".parse().expect("addr")));
        assert!(!is_loopback(&"0.0.0.0:8080".parse().expect("addr")));
        assert!(!is_loopback(&"[::]:8080".parse().expect("addr")));
        assert!(!is_loopback(&"10.1.2.3:8080".parse().expect("addr")));
    }
}
