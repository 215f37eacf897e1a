//! `qrhub init-config`: a configuration of one's own, from a template (the demo's
//! `config/default.toml` by default), with every password replaced by a fresh random one.
//!
//! The template's structure and comments are kept (toml_edit), so the result documents
//! itself like the template does. Credentials the hub checks get argon2id hashes of the new
//! passwords; the passwords the hub presents to partners, and the built-in simulator's, are
//! stored as they must be (the hub sends them). The passwords are printed once, for the
//! operator to hand to the POS systems, partners and back-office users.

use anyhow::Context;
use rand::distributions::{Alphanumeric, DistString};
use std::io::Write;
use std::path::Path;
use toml_edit::{value, DocumentMut, Item};

use crate::config::Settings;
use crate::credentials::hash_password;
use crate::published::{is_published, published_credentials, PUBLISHED_PASSWORDS};

/// 24 letters and digits: about 143 bits, beyond guessing through the login throttle.
const PASSWORD_LEN: usize = 24;

/// One new password and who uses it.
#[derive(Debug, Clone)]
pub(crate) struct NewPassword {
    /// What it is for, for the operator (`POS client pos-1`).
    pub who: String,
    /// The configuration key it (or its hash) is stored under.
    pub key: String,
    pub password: String,
}

/// A configuration with new passwords, and the passwords.
#[derive(Debug)]
pub(crate) struct Generated {
    pub toml: String,
    pub passwords: Vec<NewPassword>,
}

fn new_password() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), PASSWORD_LEN)
}

fn hashed(password: &str) -> anyhow::Result<Item> {
    let hash = hash_password(password).map_err(|e| anyhow::anyhow!("cannot hash: {e}"))?;
    Ok(value(hash))
}

/// Replaces every password of `template` (a TOML configuration); fails if the result is not
/// a valid configuration or still holds a published password.
pub(crate) fn generate(template: &str) -> anyhow::Result<Generated> {
    let mut doc: DocumentMut = template
        .parse()
        .context("the template is not a TOML document")?;
    let mut passwords = Vec::new();
    for (section, kind) in [
        ("clients", "POS client"),
        ("operators", "back-office operator"),
    ] {
        if let Some(tables) = doc.get_mut(section).and_then(Item::as_array_of_tables_mut) {
            for (i, table) in tables.iter_mut().enumerate() {
                let id = table.get("id").and_then(Item::as_str).unwrap_or("?");
                let password = new_password();
                passwords.push(NewPassword {
                    who: format!("{kind} {id}"),
                    key: format!("{section}[{i}].password_hash"),
                    password: password.clone(),
                });
                table["password_hash"] = hashed(&password)?;
            }
        }
    }
    // partner id -> (what it presents to the hub, what the hub presents to it)
    let mut partner_passwords = Vec::new();
    if let Some(tables) = doc
        .get_mut("partners")
        .and_then(Item::as_array_of_tables_mut)
    {
        for (i, table) in tables.iter_mut().enumerate() {
            let id = table
                .get("id")
                .and_then(Item::as_str)
                .unwrap_or("?")
                .to_owned();
            let inbound = new_password();
            let outbound = new_password();
            passwords.push(NewPassword {
                who: format!("partner {id}, presented to the hub"),
                key: format!("partners[{i}].password_hash"),
                password: inbound.clone(),
            });
            passwords.push(NewPassword {
                who: format!("presented by the hub to partner {id} (agree it with them)"),
                key: format!("partners[{i}].password"),
                password: outbound.clone(),
            });
            table["password_hash"] = hashed(&inbound)?;
            table["password"] = value(outbound.clone());
            partner_passwords.push((id, inbound, outbound));
        }
    }
    // The simulator plays one of the partners: it takes that partner's new passwords.
    if let Some(simulator) = doc.get_mut("simulator").and_then(Item::as_table_like_mut) {
        let plays = simulator
            .get("partner_id")
            .and_then(Item::as_str)
            .unwrap_or("wallet-1")
            .to_owned();
        let (inbound, outbound) = partner_passwords
            .iter()
            .find(|(id, _, _)| *id == plays)
            .map(|(_, i, o)| (i.clone(), o.clone()))
            .unwrap_or_else(|| (new_password(), new_password()));
        if simulator.contains_key("password") {
            simulator.insert("password", value(outbound));
        }
        if simulator.contains_key("hub_password") {
            simulator.insert("hub_password", value(inbound));
        }
    }
    // The template's comments name its demo passwords; they are no longer true.
    let toml = doc
        .to_string()
        .lines()
        .filter(|line| {
            !(line.trim_start().starts_with('#')
                && PUBLISHED_PASSWORDS.iter().any(|p| line.contains(p)))
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let settings =
        Settings::from_toml(&toml).context("the template does not make a valid configuration")?;
    let left = published_credentials(&settings);
    anyhow::ensure!(
        left.is_empty(),
        "published passwords left in {}",
        left.join(", ")
    );
    // The simulator's section is a tool's, not part of the hub's settings: read from the
    // document itself.
    let simulator_password = |key: &str| {
        doc.get("simulator")
            .and_then(|s| s.get(key))
            .and_then(Item::as_str)
            .is_some_and(is_published)
    };
    anyhow::ensure!(
        !simulator_password("password") && !simulator_password("hub_password"),
        "published passwords left in [simulator]"
    );
    Ok(Generated { toml, passwords })
}

/// `qrhub init-config`: writes the configuration (owner-only: it holds the passwords the hub
/// presents to partners) and prints the new passwords.
pub(crate) fn command(template: &Path, out: &Path, force: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(template)
        .with_context(|| format!("cannot read the template {}", template.display()))?;
    let generated = generate(&text)
        .with_context(|| format!("cannot make a configuration from {}", template.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(out).with_context(|| {
        format!(
            "cannot create {} (it is never overwritten without --force)",
            out.display()
        )
    })?;
    // Owner-only also when --force overwrote a file that was readable by others.
    #[cfg(unix)]
    file.set_permissions(
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .with_context(|| format!("cannot make {} owner-only", out.display()))?;
    file.write_all(generated.toml.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "Wrote {} from {}. Its new passwords, shown only now:",
        out.display(),
        template.display()
    );
    for p in &generated.passwords {
        println!("  {:<58} {}  ({})", p.who, p.password, p.key);
    }
    println!("Serve it with: qrhub serve --config {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_configuration_gets_new_passwords_and_keeps_its_shape() {
        let template = include_str!("../config/default.toml");
        let generated = generate(template).expect("generated");
        let settings = Settings::from_toml(&generated.toml).expect("valid");
        assert_eq!(settings.clients.len(), 1);
        assert_eq!(settings.partners.len(), 1);
        assert_eq!(settings.operators.len(), 1);
        for published in PUBLISHED_PASSWORDS {
            assert!(!generated.toml.contains(published), "{published} left");
        }
        let doc: toml_edit::DocumentMut = generated.toml.parse().expect("TOML");
        let inbound = &generated.passwords[2];
        assert_eq!(inbound.key, "partners[0].password_hash");
        assert_eq!(
            doc["simulator"]["hub_password"].as_str(),
            Some(inbound.password.as_str())
        );
        assert!(generated.toml.contains("[server]"));
        assert!(generated
            .toml
            .contains("# Address and port the hub listens on."));
    }
}
