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
//! The writer keeps SQLite's automatic checkpoint, at a higher threshold
//! ([`WRITER_BACKSTOP_PAGES`]): under steady writes a passive checkpoint rarely reaches the
//! WAL's end, and SQLite starts the WAL over from its beginning only after a checkpoint that
//! did. Once the WAL holds that many pages, the writer's commit checkpoints; by then this
//! task has copied all but the last few commits' pages, and the WAL starts over at the next
//! write. The threshold is a trigger, not a bound: a checkpoint cannot copy past the oldest
//! snapshot a reader still holds, so a long read lets the WAL grow (as it always did), and
//! until the WAL can start over the writer checkpoints at every commit.

use std::time::Duration;

use sqlx::sqlite::SqliteConnection;
use sqlx::Connection;

use super::writer::CommitCount;

/// How often the task looks for new commits. Between two passes the WAL gains what the
/// writer commits in this time (about half a megabyte at 64 lanes): often enough that the
/// backstop finds little to copy, rarely enough that a page changed by many commits is
/// copied once.
const EVERY: Duration = Duration::from_millis(50);

/// The writer's own automatic checkpoint, in WAL pages (SQLite's default is 1,000): a WAL of
/// about 16 MiB of 4 KiB pages in steady use. The passes above leave it little to copy.
pub(super) const WRITER_BACKSTOP_PAGES: &str = "4096";

/// Starts the task; it ends when the writer is gone. (An in-memory store has no WAL and
/// no task.)
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
        // (busy, pages in the WAL, pages copied). Busy: another checkpoint was running
        // (the writer's, or another process's on the same file). Fewer pages copied than
        // the WAL holds: a reader's snapshot stopped it, or the writer committed meanwhile.
        // Either way the next tick tries again, new commits or not; only a pass that
        // copied everything waits for the next commit.
        let pass: Result<(i64, i64, i64), sqlx::Error> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&mut conn)
                .await;
        if matches!(pass, Ok((0, in_wal, copied)) if in_wal == copied) {
            checkpointed_after = now;
        }
        // The writer still checkpoints once the WAL reaches its threshold, so a failure
        // here costs speed only; it is told once, and its end once, not at every pass.
        match pass {
            Err(e) if !failing => {
                tracing::warn!(error = %e, "WAL checkpoints fail; the writer checkpoints once the WAL reaches its threshold, until they succeed again");
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
