//! Checkpoints of SQLite's WAL, off the writer's connection.
//!
//! In WAL mode every commit appends the pages it changed to the WAL, and a checkpoint copies
//! them back into the database file and syncs it. SQLite's automatic checkpoint runs inside
//! the commit that takes the WAL past its threshold, on the committing connection: for the
//! hub that is the one writer, and at 64 lanes the copy and the database file's fsync were
//! about a sixth of the writer's time, with every write of the next batch queued behind them
//! (BENCHMARKS.md, issue 14, seventh round).
//!
//! So a task of its own, on a connection of its own, checkpoints after the writer commits: a
//! `PASSIVE` checkpoint copies what the WAL holds without taking the write lock, while the
//! writer goes on. Durability does not change: a write is durable at its commit's WAL fsync,
//! as before; a checkpoint only moves committed pages.
//!
//! The writer keeps an automatic checkpoint, at a higher threshold ([`WRITER_BACKSTOP_PAGES`]),
//! as a backstop: under steady writes a passive checkpoint rarely reaches the WAL's end, and
//! SQLite starts the WAL over from its beginning only after a checkpoint that did. When the
//! backstop runs, this task has copied all but the last few commits' pages.

use std::time::Duration;

use sqlx::sqlite::SqliteConnection;
use sqlx::Connection;

use super::writer::CommitCount;

/// How often the task looks for new commits. Between two passes the WAL gains what the
/// writer commits in this time (about half a megabyte at 64 lanes): often enough that the
/// backstop finds little to copy, rarely enough that a page changed by many commits is
/// copied once.
const EVERY: Duration = Duration::from_millis(50);

/// The writer's own automatic checkpoint, in WAL pages (SQLite's default is 1,000). The
/// passes above keep it from having much to copy; it bounds the WAL at about this size
/// (16 MiB of 4 KiB pages) when they cannot keep up.
pub(super) const WRITER_BACKSTOP_PAGES: &str = "4096";

/// Starts the task; it ends when the writer is gone.
pub(super) fn start(conn: SqliteConnection, commits: CommitCount) {
    tokio::spawn(run(conn, commits));
}

async fn run(mut conn: SqliteConnection, commits: CommitCount) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checkpointed_after = 0;
    let mut failing = false;
    loop {
        tick.tick().await;
        let Some(now) = commits.read() else { break };
        if now == checkpointed_after {
            continue;
        }
        checkpointed_after = now;
        // (busy, pages in the WAL, pages copied). Busy only means another checkpoint
        // (the writer's backstop) is running: this pass is skipped, the next one comes.
        let pass: Result<(i64, i64, i64), sqlx::Error> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&mut conn)
                .await;
        // The writer's backstop still bounds the WAL, so a failure costs speed only; it
        // is told once, and its end once, not at every pass.
        match pass {
            Err(e) if !failing => {
                tracing::warn!(error = %e, "WAL checkpoints fail; the writer's own checkpoint takes over until they succeed again");
                failing = true;
            }
            Ok(_) if failing => {
                tracing::info!("WAL checkpoints succeed again");
                failing = false;
            }
            _ => {}
        }
    }
    let _ = conn.close().await;
}
