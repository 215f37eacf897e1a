//! A fresh, empty database per test, on PostgreSQL or SQLite.
//!
//! - PostgreSQL: a new database `qrhub_test_<uuid>` on the server that
//!   `QRHUB_TEST_POSTGRES_URL` names (default `postgres://postgres@127.0.0.1:5432/postgres`,
//!   used as the admin connection). An unreachable server fails the test; it never skips.
//! - SQLite: a new file in a temporary directory, removed with it.
//!
//! # Cleanup
//! [`TestDb::run`] is the usual entry point: it opens and migrates the store, runs the test
//! body in its own task, drops the database (PostgreSQL: `DROP DATABASE … WITH (FORCE)`),
//! and only then re-raises a panic of the body, so a failing test leaves nothing behind.
//! A test that manages the store itself calls [`TestDb::cleanup`] at the end; if it panics
//! before that, `Drop` drops the database from a helper thread as a last resort.

use std::future::Future;

use qrhub::store::{self, SharedStore};
use sqlx::{Connection, PgConnection};
use tempfile::TempDir;
use uuid::Uuid;

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug)]
pub struct TestDb {
    /// The URL the store under test opens.
    pub url: String,
    /// PostgreSQL: the admin URL and the name of the database to drop.
    postgres: Option<(String, String)>,
    /// SQLite: the directory holding the file; removed when dropped.
    dir: Option<TempDir>,
}

/// The admin URL of the test PostgreSQL server.
pub fn postgres_admin_url() -> String {
    std::env::var("QRHUB_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// `url` with its database (path) replaced by `database`, keeping any `?query`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    format!("{base}/{database}{query}")
}

async fn admin_connection(admin_url: &str) -> PgConnection {
    match PgConnection::connect(admin_url).await {
        Ok(conn) => conn,
        Err(e) => panic!(
            "PostgreSQL tests need a server at {admin_url} (set QRHUB_TEST_POSTGRES_URL to \
             use another); connecting failed: {e}. Start it with \
             `pg_ctlcluster --skip-systemctl-redirect <version> main start`."
        ),
    }
}

async fn drop_database(admin_url: &str, name: &str) -> Result<(), sqlx::Error> {
    let mut admin = PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    admin.close().await
}

impl TestDb {
    /// A new empty database on the test PostgreSQL server.
    pub async fn postgres() -> TestDb {
        let admin_url = postgres_admin_url();
        let name = format!("qrhub_test_{}", Uuid::new_v4().simple());
        let mut admin = admin_connection(&admin_url).await;
        if let Err(e) = sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
        {
            panic!("creating test database {name} on {admin_url} failed: {e}");
        }
        let _ = admin.close().await;
        TestDb {
            url: with_database(&admin_url, &name),
            postgres: Some((admin_url, name)),
            dir: None,
        }
    }

    /// A new SQLite file (not yet created: the store creates it) in a temporary directory.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::Builder::new()
            .prefix("qrhub-test-")
            .tempdir()
            .expect("creating a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("qrhub.db").display());
        TestDb {
            url,
            postgres: None,
            dir: Some(dir),
        }
    }

    /// Opens the store on this database and applies the migrations.
    pub async fn store(&self) -> SharedStore {
        let store = store::connect(&self.url, 8)
            .await
            .unwrap_or_else(|e| panic!("opening the store at {}: {e}", self.url));
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrating {}: {e}", self.url));
        store
    }

    /// Drops the database (PostgreSQL) or removes the directory (SQLite).
    pub async fn cleanup(mut self) {
        if let Some((admin_url, name)) = self.postgres.take() {
            if let Err(e) = drop_database(&admin_url, &name).await {
                eprintln!("warning: dropping test database {name} failed: {e}");
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }

    /// Runs a test body against a freshly migrated store, then cleans up, whether the body
    /// passed or panicked (the panic is re-raised after cleanup).
    pub async fn run<F, Fut>(self, body: F)
    where
        F: FnOnce(SharedStore) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let store = self.store().await;
        let outcome = tokio::spawn(body(store)).await;
        self.cleanup().await;
        if let Err(e) = outcome {
            match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("test body did not finish: {e}"),
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Last resort when `cleanup` was not reached: drop the database on a thread with
        // its own runtime (this may run inside, or outside, a Tokio runtime).
        if let Some((admin_url, name)) = self.postgres.take() {
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    let _ = rt.block_on(drop_database(&admin_url, &name));
                }
            })
            .join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_replaced_in_the_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
