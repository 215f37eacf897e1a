//! Who is calling: HTTP Basic credentials checked against argon2 hashes.
//!
//! A full argon2 verification costs tens of milliseconds by design, too much for every
//! request of a busy lane. Once a password has verified, a keyed SHA-256 digest of it is
//! remembered; later requests compare digests in constant time. The key is random per
//! process, so the cache holds nothing a reader of memory could replay elsewhere. Failures are
//! never cached: a wrong password always pays the full hash.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;

/// The kind of caller an identity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Pos,
    Partner,
    /// A back-office user of `/admin/v1`.
    Operator,
}

#[derive(Debug)]
struct Account {
    role: Role,
    password_hash: String,
}

#[derive(Debug, Clone)]
pub struct Credentials {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    accounts: HashMap<String, Account>,
    cache_key: [u8; 32],
    verified: RwLock<HashMap<String, [u8; 32]>>,
}

impl Credentials {
    pub fn new(clients: &[(String, String)], partners: &[(String, String)]) -> Self {
        Self::with_operators(clients, partners, &[])
    }

    /// As [`Credentials::new`], with back-office operators too.
    pub fn with_operators(
        clients: &[(String, String)],
        partners: &[(String, String)],
        operators: &[(String, String)],
    ) -> Self {
        let mut accounts = HashMap::new();
        for (id, hash) in operators {
            accounts.insert(
                id.clone(),
                Account {
                    role: Role::Operator,
                    password_hash: hash.clone(),
                },
            );
        }
        for (id, hash) in clients {
            accounts.insert(
                id.clone(),
                Account {
                    role: Role::Pos,
                    password_hash: hash.clone(),
                },
            );
        }
        for (id, hash) in partners {
            accounts.insert(
                id.clone(),
                Account {
                    role: Role::Partner,
                    password_hash: hash.clone(),
                },
            );
        }
        let mut cache_key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut cache_key);
        Self {
            inner: Arc::new(Inner {
                accounts,
                cache_key,
                verified: RwLock::new(HashMap::new()),
            }),
        }
    }

    fn digest(&self, password: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.inner.cache_key);
        hasher.update(password.as_bytes());
        hasher.finalize().into()
    }

    /// The caller's role if `user`/`password` are right. Runs argon2 on a blocking thread
    /// when the digest is not cached yet.
    pub async fn verify(&self, user: &str, password: &str) -> Option<Role> {
        let account = self.inner.accounts.get(user)?;
        let digest = self.digest(password);
        let cached = self
            .inner
            .verified
            .read()
            .ok()
            .and_then(|m| m.get(user).copied());
        if let Some(known) = cached {
            if bool::from(known.ct_eq(&digest)) {
                return Some(account.role);
            }
        }
        let hash = account.password_hash.clone();
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || verify_hash(&hash, &password))
            .await
            .unwrap_or(false);
        if !ok {
            return None;
        }
        if let Ok(mut map) = self.inner.verified.write() {
            map.insert(user.to_owned(), digest);
        }
        Some(account.role)
    }
}

fn verify_hash(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A new argon2id PHC string for `password` (`qrhub hash-password`).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn right_wrong_and_cached_passwords() {
        let hash = hash_password("s3cret").expect("hash");
        let creds = Credentials::new(&[("pos-1".into(), hash.clone())], &[("w".into(), hash)]);
        assert_eq!(creds.verify("pos-1", "s3cret").await, Some(Role::Pos));
        // The second time comes from the cache and must still say the same.
        assert_eq!(creds.verify("pos-1", "s3cret").await, Some(Role::Pos));
        assert_eq!(creds.verify("pos-1", "wrong").await, None);
        assert_eq!(creds.verify("w", "s3cret").await, Some(Role::Partner));
        assert_eq!(creds.verify("nobody", "s3cret").await, None);
    }
}
