//! Who is calling: HTTP Basic credentials checked against argon2 hashes.
//!
//! A full argon2 verification costs tens of milliseconds by design, too much for every
//! request of a busy lane. Once a password has verified, a keyed SHA-256 digest of it is
//! remembered; later requests compare digests in constant time. The key is random per
//! process, so the cache holds nothing a reader of memory could replay elsewhere. Failures are
//! never cached: a wrong password always pays the full hash.
//!
//! Two more rules keep the slow path honest:
//! - An unknown user pays the same hash as a wrong password: it is verified against a dummy
//!   hash made at start-up with the configured hashes' parameters, so the answer's timing
//!   does not tell which users exist.
//! - Concurrent verifications of the same user and password (the first requests of a busy
//!   client at start-up) share one argon2 run ("single flight"); the others wait for it and
//!   take its result, instead of each occupying a blocking thread with the same hash.
//!
//! And one rule keeps strangers cheap: at most `slots` argon2 runs at once (one per two
//! cores by default), with a short queue of `queue` waiting for a slot. A verification that finds the
//! queue full is refused at once ([`Verdict::Busy`]) rather than queued behind a flood of
//! wrong passwords; a known password found in the cache never needs a slot.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use subtle::ConstantTimeEq;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

/// The kind of caller an identity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Pos,
    Partner,
    /// A back-office user of `/admin/v1`.
    Operator,
}

struct Account {
    role: Role,
    /// Shared with the cache entries verified against it, which count only while it is
    /// still this account's hash (a reload may rotate it).
    password_hash: Arc<str>,
}

type Accounts = HashMap<String, Account>;

/// A password digest that verified, and the hash it verified against.
type Verified = ([u8; 32], Arc<str>);

/// Verified identities. `Debug` shows only the user ids: hashes, the cache key and the
/// cached digests never reach a log line.
#[derive(Clone)]
pub struct Credentials {
    inner: Arc<Inner>,
}

/// What a check of credentials concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Valid(Role),
    /// Wrong password or unknown user.
    Invalid,
    /// Not checked: every argon2 slot was taken and the queue for them full.
    Busy,
}

/// How many argon2 verifications run at once, and how many may wait for a slot.
#[derive(Debug, Clone, Copy)]
pub struct VerifyLimits {
    pub slots: usize,
    pub queue: usize,
}

impl Default for VerifyLimits {
    /// One slot per two cores (at least one): argon2 is CPU-bound, so one per core would let
    /// a burst of strangers take every core from the requests of callers already known, and
    /// each run holds its 19 MiB of memory.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let slots = (cores / 2).max(1);
        Self {
            slots,
            queue: slots * 16,
        }
    }
}

/// One argon2 run in progress for a (user, digest) pair; every concurrent verification of
/// the same pair awaits the same cell. `None`: the run was refused a slot.
type Flight = Arc<OnceCell<Option<bool>>>;
/// The user, the password's digest, and the hash it is checked against: a run against a hash
/// that a reload has since replaced is no answer for the new one.
type FlightKey = (String, [u8; 32], Arc<str>);

struct Inner {
    /// Replaced whole by a configuration reload ([`Credentials::replace`]).
    accounts: RwLock<Arc<Accounts>>,
    /// What an unknown user's password is verified against (and always fails).
    dummy_hash: Arc<str>,
    cache_key: [u8; 32],
    /// Digests that verified, with the hash they verified against.
    verified: RwLock<HashMap<String, Verified>>,
    flights: Mutex<HashMap<FlightKey, Flight>>,
    /// argon2 verifications started, for tests of the slow path.
    argon2_runs: AtomicU64,
    /// The argon2 slots, and how many wait for one.
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    max_queue: usize,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let accounts = self.accounts();
        let mut users: Vec<(&String, Role)> = accounts.iter().map(|(id, a)| (id, a.role)).collect();
        users.sort_by(|a, b| a.0.cmp(b.0));
        f.debug_struct("Credentials")
            .field("users", &users)
            .finish_non_exhaustive()
    }
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
        Self::with_limits(clients, partners, operators, VerifyLimits::default())
    }

    /// As [`Credentials::with_operators`], with `limits` on concurrent argon2 runs.
    pub fn with_limits(
        clients: &[(String, String)],
        partners: &[(String, String)],
        operators: &[(String, String)],
        limits: VerifyLimits,
    ) -> Self {
        let accounts = accounts(clients, partners, operators);
        let model = clients
            .iter()
            .chain(partners)
            .map(|(_, h)| h.as_str())
            .next();
        let mut cache_key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut cache_key);
        Self {
            inner: Arc::new(Inner {
                accounts: RwLock::new(Arc::new(accounts)),
                dummy_hash: Arc::from(dummy_hash(model)),
                cache_key,
                verified: RwLock::new(HashMap::new()),
                flights: Mutex::new(HashMap::new()),
                argon2_runs: AtomicU64::new(0),
                slots: Arc::new(Semaphore::new(limits.slots.max(1))),
                queued: AtomicUsize::new(0),
                max_queue: limits.queue,
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
    /// when the digest is not cached yet; an unknown user runs it too, against the dummy hash.
    /// A verification refused a slot counts as wrong here; [`Credentials::check`] tells.
    pub async fn verify(&self, user: &str, password: &str) -> Option<Role> {
        match self.check(user, password).await {
            Verdict::Valid(role) => Some(role),
            Verdict::Invalid | Verdict::Busy => None,
        }
    }

    /// The caller's role when `user`/`password` verified before (no argon2, no slot).
    pub fn cached(&self, user: &str, password: &str) -> Option<Role> {
        let accounts = self.accounts();
        let account = accounts.get(user)?;
        let verified = self.inner.verified.read().ok()?;
        let (known, against) = verified.get(user)?;
        // A digest verified against a hash the account no longer has (a rotated password)
        // proves nothing now.
        if *against != account.password_hash {
            return None;
        }
        bool::from(known.ct_eq(&self.digest(password))).then_some(account.role)
    }

    fn accounts(&self) -> Arc<Accounts> {
        let guard = self
            .inner
            .accounts
            .read()
            .unwrap_or_else(|e| e.into_inner());
        Arc::clone(&guard)
    }

    /// Puts a reloaded configuration's callers in force: checks from now on use these
    /// users and hashes. Remembered verifications of users whose hash is unchanged stay (a
    /// reload costs known callers no argon2 run); the others are forgotten, so a rotated
    /// or removed password stops working at once.
    pub fn replace(
        &self,
        clients: &[(String, String)],
        partners: &[(String, String)],
        operators: &[(String, String)],
    ) {
        let accounts = Arc::new(accounts(clients, partners, operators));
        *self
            .inner
            .accounts
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::clone(&accounts);
        let mut verified = self
            .inner
            .verified
            .write()
            .unwrap_or_else(|e| e.into_inner());
        verified.retain(|user, (_, against)| {
            accounts
                .get(user)
                .is_some_and(|a| a.password_hash == *against)
        });
    }

    /// As [`Credentials::verify`], telling a wrong password from one not checked for want
    /// of an argon2 slot.
    pub async fn check(&self, user: &str, password: &str) -> Verdict {
        if let Some(role) = self.cached(user, password) {
            return Verdict::Valid(role);
        }
        let accounts = self.accounts();
        let account = accounts.get(user);
        let digest = self.digest(password);
        let hash = account.map_or(&self.inner.dummy_hash, |a| &a.password_hash);
        match (
            self.single_flight(user, digest, Arc::clone(hash), password)
                .await,
            account,
        ) {
            (None, _) => Verdict::Busy,
            (Some(true), Some(account)) => Verdict::Valid(account.role),
            (Some(_), _) => Verdict::Invalid,
        }
    }

    /// A slot for one argon2 run: at once if one is free, after a wait in the short queue
    /// otherwise, or `None` when the queue is full too.
    async fn admit(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(&self.inner.slots).try_acquire_owned() {
            return Some(permit);
        }
        let ahead = self.inner.queued.fetch_add(1, Ordering::AcqRel);
        let _queued = QueueGuard(&self.inner.queued);
        if ahead >= self.inner.max_queue {
            return None;
        }
        Arc::clone(&self.inner.slots).acquire_owned().await.ok()
    }

    /// One argon2 run per (user, digest) at a time: the first caller runs it (and caches a
    /// success before anyone sees the result), the others await its answer. `None` when the
    /// run found no slot.
    async fn single_flight(
        &self,
        user: &str,
        digest: [u8; 32],
        hash: Arc<str>,
        password: &str,
    ) -> Option<bool> {
        let key: FlightKey = (user.to_owned(), digest, Arc::clone(&hash));
        let flight = {
            let Ok(mut flights) = self.inner.flights.lock() else {
                return Some(false);
            };
            let entry = flights.entry(key.clone()).or_default();
            // A finished run is not reused by a later request: a failure is never cached,
            // and a success is already in `verified` (a right password found it there).
            if entry.initialized() {
                *entry = Flight::default();
            }
            Arc::clone(entry)
        };
        // Removes the entry when the last waiter is done (or gave up: a dropped request).
        // The guard holds this waiter's only reference to the cell.
        let guard = FlightGuard {
            inner: &self.inner,
            key,
            flight: Some(flight),
        };
        let Some(cell) = guard.flight.as_ref() else {
            return Some(false);
        };
        let ok = *cell
            .get_or_init(|| async {
                let permit = self.admit().await?;
                self.inner.argon2_runs.fetch_add(1, Ordering::Relaxed);
                let against = Arc::clone(&hash);
                let password = password.to_owned();
                // The slot goes with the hash into the blocking thread: a request that gives
                // up does not free it while argon2 still runs.
                let ok = tokio::task::spawn_blocking(move || {
                    let ok = verify_hash(&against, &password);
                    drop(permit);
                    ok
                })
                .await
                .unwrap_or(false);
                if ok {
                    if let Ok(mut map) = self.inner.verified.write() {
                        map.insert(user.to_owned(), (digest, hash));
                    }
                }
                Some(ok)
            })
            .await;
        drop(guard);
        ok
    }

    /// How many argon2 verifications this instance has started.
    pub fn argon2_runs(&self) -> u64 {
        self.inner.argon2_runs.load(Ordering::Relaxed)
    }
}

/// Leaves the queue for an argon2 slot, however the wait ends.
struct QueueGuard<'a>(&'a AtomicUsize);

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

struct FlightGuard<'a> {
    inner: &'a Inner,
    key: FlightKey,
    flight: Option<Flight>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut flights) = self.inner.flights.lock() {
            // Our reference goes first, under the lock, so that exactly the last waiter sees
            // the map's own reference alone and removes it.
            drop(self.flight.take());
            if flights
                .get(&self.key)
                .is_some_and(|f| Arc::strong_count(f) == 1)
            {
                flights.remove(&self.key);
            }
        }
    }
}

/// The accounts of these callers; an id listed in two roles keeps the later role (the
/// configuration refuses that anyway).
fn accounts(
    clients: &[(String, String)],
    partners: &[(String, String)],
    operators: &[(String, String)],
) -> Accounts {
    let mut accounts = HashMap::new();
    for (role, list) in [
        (Role::Operator, operators),
        (Role::Pos, clients),
        (Role::Partner, partners),
    ] {
        for (id, hash) in list {
            accounts.insert(
                id.clone(),
                Account {
                    role,
                    password_hash: Arc::from(hash.as_str()),
                },
            );
        }
    }
    accounts
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

/// A hash of a random password that nobody knows, with the parameters of `model` (a
/// configured hash) so that verifying against it costs what a wrong password costs; with the
/// defaults of `hash-password` when there is no model.
fn dummy_hash(model: Option<&str>) -> String {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    use argon2::{Algorithm, Params, Version};
    let hasher = model
        .and_then(|m| PasswordHash::new(m).ok())
        .and_then(|m| {
            let algorithm = Algorithm::try_from(m.algorithm).ok()?;
            let version = m.version.and_then(|v| Version::try_from(v).ok())?;
            let params = Params::try_from(&m).ok()?;
            Some(Argon2::new(algorithm, version, params))
        })
        .unwrap_or_default();
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let salt = SaltString::generate(&mut OsRng);
    hasher
        .hash_password(&secret, &salt)
        .map(|h| h.to_string())
        // Unreachable with valid parameters; fall back to the model itself, which a random
        // password cannot match either and which costs the same.
        .unwrap_or_else(|_| model.unwrap_or_default().to_owned())
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

    fn creds() -> (Credentials, String) {
        let hash = hash_password("s3cret").expect("hash");
        let creds = Credentials::new(
            &[("pos-1".into(), hash.clone())],
            &[("w".into(), hash.clone())],
        );
        (creds, hash)
    }

    #[tokio::test]
    async fn a_replaced_password_stops_working_and_unchanged_ones_stay_cached() {
        let (creds, hash) = creds();
        assert_eq!(creds.verify("pos-1", "s3cret").await, Some(Role::Pos));
        assert_eq!(creds.verify("w", "s3cret").await, Some(Role::Partner));
        let rotated = hash_password("rotated").expect("hash");
        creds.replace(
            &[("pos-1".into(), rotated), ("pos-2".into(), hash.clone())],
            &[("w".into(), hash)],
            &[],
        );
        // The cached digest was verified against the old hash: it proves nothing now.
        assert_eq!(creds.cached("pos-1", "s3cret"), None);
        assert_eq!(creds.verify("pos-1", "s3cret").await, None);
        assert_eq!(creds.verify("pos-1", "rotated").await, Some(Role::Pos));
        assert_eq!(creds.verify("pos-2", "s3cret").await, Some(Role::Pos));
        // The partner's hash did not change: still known without argon2.
        let runs = creds.argon2_runs();
        assert_eq!(creds.verify("w", "s3cret").await, Some(Role::Partner));
        assert_eq!(creds.argon2_runs(), runs);
        // Removed callers are unknown at once.
        creds.replace(&[], &[], &[]);
        assert_eq!(creds.cached("w", "s3cret"), None);
        assert_eq!(creds.verify("w", "s3cret").await, None);
    }

    #[tokio::test]
    async fn right_wrong_and_cached_passwords() {
        let (creds, _) = creds();
        assert_eq!(creds.verify("pos-1", "s3cret").await, Some(Role::Pos));
        // The second time comes from the cache and must still say the same.
        assert_eq!(creds.verify("pos-1", "s3cret").await, Some(Role::Pos));
        assert_eq!(creds.argon2_runs(), 1);
        assert_eq!(creds.verify("pos-1", "wrong").await, None);
        assert_eq!(creds.verify("w", "s3cret").await, Some(Role::Partner));
        assert_eq!(creds.verify("nobody", "s3cret").await, None);
        // A cached success for one user is not a pass for another.
        assert_eq!(creds.verify("w", "wrong").await, None);
    }

    #[tokio::test]
    async fn an_unknown_user_pays_the_hash_a_wrong_password_pays() {
        let (creds, hash) = creds();
        // Same parameters as the configured hashes, so the same cost.
        let dummy = PasswordHash::new(&creds.inner.dummy_hash).expect("a PHC string");
        let model = PasswordHash::new(&hash).expect("a PHC string");
        assert_eq!(dummy.algorithm, model.algorithm);
        assert_eq!(dummy.params, model.params);
        assert_ne!(dummy.hash, model.hash);

        assert_eq!(creds.verify("pos-1", "wrong").await, None);
        assert_eq!(creds.argon2_runs(), 1);
        assert_eq!(creds.verify("nobody", "s3cret").await, None);
        assert_eq!(creds.argon2_runs(), 2, "an unknown user runs argon2 too");
        // And again: unknown users are no more cached than wrong passwords.
        assert_eq!(creds.verify("nobody", "s3cret").await, None);
        assert_eq!(creds.verify("pos-1", "wrong").await, None);
        assert_eq!(creds.argon2_runs(), 4);
    }

    #[tokio::test]
    async fn with_no_accounts_unknown_users_still_pay_a_default_hash() {
        let creds = Credentials::new(&[], &[]);
        assert!(PasswordHash::new(&creds.inner.dummy_hash).is_ok());
        assert_eq!(creds.verify("anyone", "x").await, None);
        assert_eq!(creds.argon2_runs(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_first_verifications_share_one_argon2_run() {
        let (creds, _) = creds();
        let attempts: Vec<_> = (0..64)
            .map(|_| {
                let creds = creds.clone();
                tokio::spawn(async move { creds.verify("pos-1", "s3cret").await })
            })
            .collect();
        for attempt in attempts {
            assert_eq!(attempt.await.expect("task"), Some(Role::Pos));
        }
        assert_eq!(creds.argon2_runs(), 1, "one hash for the whole herd");
        assert!(creds.inner.flights.lock().expect("lock").is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_wrong_passwords_are_shared_but_never_cached() {
        let (creds, _) = creds();
        let attempts: Vec<_> = (0..32)
            .map(|i| {
                let creds = creds.clone();
                // Two wrong passwords and two unknown users, interleaved.
                let (user, password) = match i % 4 {
                    0 => ("pos-1", "wrong-a"),
                    1 => ("pos-1", "wrong-b"),
                    2 => ("ghost", "wrong-a"),
                    _ => ("ghost-2", "s3cret"),
                };
                tokio::spawn(async move { creds.verify(user, password).await })
            })
            .collect();
        for attempt in attempts {
            assert_eq!(attempt.await.expect("task"), None);
        }
        let herd = creds.argon2_runs();
        // Each (user, password) pair needs at least one run; concurrency shares most of them.
        assert!((4..32).contains(&herd), "{herd} runs");
        assert!(creds.inner.flights.lock().expect("lock").is_empty());
        // A later attempt pays again: a failure is never remembered.
        assert_eq!(creds.verify("pos-1", "wrong-a").await, None);
        assert_eq!(creds.argon2_runs(), herd + 1);
    }

    #[tokio::test]
    async fn a_dropped_verification_leaves_nothing_behind() {
        let (creds, _) = creds();
        let abandoned = tokio::time::timeout(
            std::time::Duration::from_micros(1),
            creds.verify("pos-1", "s3cret"),
        )
        .await;
        assert!(abandoned.is_err(), "gave up before the hash finished");
        assert!(creds.inner.flights.lock().expect("lock").is_empty());
        assert_eq!(creds.verify("pos-1", "s3cret").await, Some(Role::Pos));
    }

    #[test]
    fn debug_output_names_users_only() {
        let (creds, hash) = creds();
        let text = format!("{creds:?}");
        assert!(text.contains("pos-1"), "{text}");
        assert!(!text.contains(&hash), "{text}");
        assert!(!text.contains("argon2"), "{text}");
        assert!(!text.contains("cache_key"), "{text}");
    }
}
