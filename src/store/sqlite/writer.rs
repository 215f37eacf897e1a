//! SQLite's one writer, with group commit.
//!
//! SQLite commits one write transaction at a time, and with `synchronous=FULL` every commit
//! waits for an fsync of the WAL: milliseconds on a real disk, during which writes that
//! arrive can only queue, each for a commit (and an fsync) of its own. So a task owns the
//! writer connection and every write is a *job* sent to it:
//!
//! - the task takes every job waiting (up to [`MAX_BATCH`]) and runs them one after another
//!   in one `BEGIN IMMEDIATE` transaction, each in a `SAVEPOINT` of its own, then commits
//!   them together: one fsync for the batch. A lone job commits at once; nothing waits for
//!   a batch to fill, since jobs gather by themselves while the previous commit syncs;
//! - a job that fails, or whose compare-and-set found nothing, is rolled back to its
//!   savepoint: the other jobs of its batch keep their writes;
//! - every job is answered only after its batch's `COMMIT` returned, so nothing is answered
//!   before it is durable (a compare-and-set that lost may have lost to a job of the same
//!   batch). If the commit fails, every job of the batch gets the error: nothing was stored.
//!
//! Jobs are closures that own their inputs and run their statements on the connection they
//! are given; they read what earlier jobs of the batch wrote, as if each had committed alone
//! just before. The task ends when the last [`Writer`] handle is dropped, after answering
//! what was queued; a job whose task is gone is answered with an error, never left waiting.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use sqlx::sqlite::SqliteConnection;
use sqlx::SqlitePool;
use std::panic::AssertUnwindSafe;
use tokio::sync::{mpsc, oneshot};

use crate::store::{NewEvent, StoreError, StoreResult};

/// At most this many jobs share a commit: the first of a batch is answered only after the
/// last has run, and 64 short jobs take a few milliseconds, about one fsync.
const MAX_BATCH: usize = 64;

/// What a job leaves behind: its answer, and whether its writes stay.
pub(super) enum Written<T> {
    /// Its writes are part of the batch's commit.
    Kept(T),
    /// Kept, with the timeline events of its change, which the writer inserts for all the
    /// batch's kept jobs in one statement just before the commit: a statement is a hand-off
    /// to the connection's own thread and back, and these were one per change (issue 14).
    /// They are part of the same commit as the change, as before. They must be events of a
    /// payment the job itself wrote; if their insert is refused all the same (a later job
    /// of the batch deleted that payment), they are dropped and the rest of the batch stays.
    KeptWithEvents(T, Vec<NewEvent>),
    /// Its writes, if any, are rolled back to its savepoint (a compare-and-set that found
    /// nothing, a duplicate); the answer still waits for the batch's end.
    Undone(T),
}

/// Counts of the writer's work since the store opened, for measurements and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Jobs run (each is one write operation of the store).
    pub jobs: u64,
    /// Batches that ended in a `COMMIT` (each one WAL fsync with `synchronous=FULL`).
    pub commits: u64,
}

/// The writer's commits so far, read from outside; `None` once the writer is gone.
#[derive(Debug, Clone)]
pub(super) struct CommitCount(Weak<Counts>);

impl CommitCount {
    pub(super) fn read(&self) -> Option<u64> {
        self.0
            .upgrade()
            .map(|counts| counts.commits.load(Ordering::Relaxed))
    }
}

/// A handle to the writer task; clones share it, and the task ends when the last is dropped.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: mpsc::UnboundedSender<Queued>,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    jobs: AtomicU64,
    commits: AtomicU64,
}

impl Counts {
    fn read(&self) -> WriterStats {
        WriterStats {
            jobs: self.jobs.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
        }
    }
}

impl Writer {
    /// Starts the task that writes through `pool` (one connection). A job that waited
    /// longer than `max_wait` for its turn is refused unrun, as a pool's acquire timeout
    /// would refuse it.
    pub(super) fn start(pool: SqlitePool, max_wait: Duration) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        let counts = Arc::default();
        tokio::spawn(run(pool, queue, max_wait, Arc::clone(&counts)));
        Self { jobs, counts }
    }

    /// Runs `work` in the next batch; answers once the batch's commit returned.
    pub(super) fn write<T, F>(&self, work: F) -> impl Future<Output = StoreResult<T>> + 'static
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<Written<T>>>
            + Send
            + 'static,
    {
        // Queued now, not at the first poll: a caller may need the job running before it
        // awaits the answer (recovery hands the job what it builds from the job's rows).
        self.queue(work, false)
    }

    /// Runs `work` on the bare connection between batches, outside any transaction, for
    /// what manages its own (migrations). Kept or undone makes no difference there.
    pub(super) fn alone<T, F>(&self, work: F) -> impl Future<Output = StoreResult<T>> + 'static
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<Written<T>>>
            + Send
            + 'static,
    {
        self.queue(work, true)
    }

    pub(super) fn stats(&self) -> WriterStats {
        self.counts.read()
    }

    /// The writer's count of commits, for whoever acts after them without keeping the
    /// writer alive (the checkpointer).
    pub(super) fn commits(&self) -> CommitCount {
        CommitCount(Arc::downgrade(&self.counts))
    }

    /// Whether the task still takes writes (it ends only when every handle is dropped, or
    /// if its own code failed); the health check asks, since reads go on without it.
    pub(super) fn is_running(&self) -> bool {
        !self.jobs.is_closed()
    }

    fn queue<T, F>(&self, work: F, alone: bool) -> impl Future<Output = StoreResult<T>> + 'static
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<Written<T>>>
            + Send
            + 'static,
    {
        let (answer, answered) = oneshot::channel();
        // A send fails only when the task is gone; the job, and its answer's sender with
        // it, is then dropped, which the receiver below reports as the writer stopped.
        let _ = self.jobs.send(Queued {
            job: Box::new(Job { work, answer }),
            queued_at: Instant::now(),
            alone,
        });
        async move {
            answered
                .await
                .unwrap_or_else(|_| Err(not_stored(sqlx::Error::PoolClosed)))
        }
    }
}

/// The error of every job of a batch that could not be committed, or never ran.
fn not_stored(error: impl Into<Arc<sqlx::Error>>) -> StoreError {
    StoreError::WriteNotStored(error.into())
}

struct Queued {
    job: Box<dyn Pending>,
    queued_at: Instant,
    alone: bool,
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queued")
            .field("queued_at", &self.queued_at)
            .field("alone", &self.alone)
            .finish_non_exhaustive()
    }
}

/// A job with its answer's type hidden, as the task holds it.
trait Pending: Send {
    /// Whoever asked has stopped waiting (its request went away): the job need not run.
    fn abandoned(&self) -> bool;
    /// Runs the job's statements; the answer is held back until the batch ends.
    fn run<'c>(self: Box<Self>, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Ran>;
    /// Answers with `error` without running.
    fn refuse(self: Box<Self>, error: StoreError);
}

/// A job that ran, waiting for its batch's end.
struct Ran {
    /// Its writes stay; otherwise they are rolled back to its savepoint.
    keep: bool,
    /// The events of its change, inserted with the batch's before the commit.
    events: Vec<NewEvent>,
    /// Sends the answer, given how the batch ended (a failed job sends its own error).
    reply: Box<dyn FnOnce(Result<(), StoreError>) + Send>,
}

struct Job<T, F> {
    work: F,
    answer: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Pending for Job<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<Written<T>>>
        + Send
        + 'static,
{
    fn abandoned(&self) -> bool {
        self.answer.is_closed()
    }

    fn run<'c>(self: Box<Self>, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Ran> {
        let Job { work, answer } = *self;
        Box::pin(async move {
            // A job that panics is a bug, but it must cost only itself: unwinding out of
            // here would end the writer task with its transaction open (the connection
            // goes back to the pool still holding the write lock) and refuse every later
            // write while reads, and so the health check, carry on. Caught, it is undone
            // to its savepoint like any job that failed.
            let (keep, events, result) = match AssertUnwindSafe(work(conn)).catch_unwind().await {
                Ok(Ok(Written::Kept(value))) => (true, Vec::new(), Ok(value)),
                Ok(Ok(Written::KeptWithEvents(value, events))) => (true, events, Ok(value)),
                Ok(Ok(Written::Undone(value))) => (false, Vec::new(), Ok(value)),
                Ok(Err(error)) => (false, Vec::new(), Err(error)),
                Err(_) => {
                    tracing::error!("an SQLite write job panicked; it is undone and refused");
                    let error = sqlx::Error::Protocol("the write job panicked".to_owned());
                    (false, Vec::new(), Err(not_stored(error)))
                }
            };
            Ran {
                keep,
                events,
                reply: Box::new(move |batch| {
                    // The caller may have gone meanwhile; nobody is left to tell.
                    let _ = answer.send(result.and_then(|value| batch.map(|()| value)));
                }),
            }
        })
    }

    fn refuse(self: Box<Self>, error: StoreError) {
        let _ = self.answer.send(Err(error));
    }
}

async fn run(
    pool: SqlitePool,
    mut queue: mpsc::UnboundedReceiver<Queued>,
    max_wait: Duration,
    counts: Arc<Counts>,
) {
    let _report = StopReport(Arc::clone(&counts));
    // An `alone` job met while gathering a batch runs after that batch.
    let mut next: Option<Queued> = None;
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => match queue.recv().await {
                Some(job) => job,
                None => break, // every handle dropped, and everything queued answered
            },
        };
        if first.alone {
            if let Some(job) = ready(first, max_wait) {
                run_alone(&pool, job).await;
            }
            continue;
        }
        let mut batch = Vec::new();
        batch.extend(ready(first, max_wait));
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) if job.alone => {
                    next = Some(job);
                    break;
                }
                Ok(job) => batch.extend(ready(job, max_wait)),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let jobs = batch.len() as u64;
        let committed = run_batch(&pool, batch).await;
        counts.jobs.fetch_add(jobs, Ordering::Relaxed);
        counts
            .commits
            .fetch_add(u64::from(committed), Ordering::Relaxed);
    }
}

/// The job, unless its caller has gone (dropped unrun) or it waited too long (refused).
fn ready(queued: Queued, max_wait: Duration) -> Option<Box<dyn Pending>> {
    if queued.job.abandoned() {
        return None;
    }
    if queued.queued_at.elapsed() > max_wait {
        queued.job.refuse(not_stored(sqlx::Error::PoolTimedOut));
        return None;
    }
    Some(queued.job)
}

async fn run_alone(pool: &SqlitePool, job: Box<dyn Pending>) {
    match pool.acquire().await {
        Ok(mut conn) => {
            let done = job.run(&mut conn).await;
            // No job run alone brings events today; if one does, they are not lost.
            let inserted = if done.keep && !done.events.is_empty() {
                super::events::insert_events(&mut conn, &done.events).await
            } else {
                Ok(())
            };
            (done.reply)(inserted)
        }
        Err(e) => job.refuse(not_stored(e)),
    }
}

/// Runs one batch and answers its jobs; true if it ended in a `COMMIT` that succeeded.
async fn run_batch(pool: &SqlitePool, batch: Vec<Box<dyn Pending>>) -> bool {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            refuse_all(batch, e);
            return false;
        }
    };
    if let Err(e) = execute(&mut conn, "BEGIN IMMEDIATE").await {
        refuse_all(batch, e);
        return false;
    }
    // A lone job needs no savepoint: the whole transaction is its own.
    let isolate = batch.len() > 1;
    let mut ran = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    let mut broken = None;
    for job in jobs.by_ref() {
        // Each job's savepoint is released as the next one opens, in the same round trip
        // to the connection's thread. Left open, they nested, and SQLite marked every page
        // a job wrote in every savepoint still open: a batch of n jobs cost n² (about a
        // tenth of the writer's time at 64 lanes; BENCHMARKS.md, issue 14, seventh round).
        // `ROLLBACK TO` goes back to the job's savepoint and leaves it open; the next
        // `RELEASE`, or the commit, ends it. (sqlx runs the statements of one string in
        // order and stops at the first error; if it ever stopped running the second, the
        // next `ROLLBACK TO` would find no savepoint and fail the batch, not pass quietly.)
        if isolate {
            let sql = if ran.is_empty() {
                "SAVEPOINT job"
            } else {
                "RELEASE job; SAVEPOINT job"
            };
            if let Err(e) = execute(&mut conn, sql).await {
                broken = Some(e);
                break;
            }
        }
        let done = job.run(&mut conn).await;
        if isolate && !done.keep {
            // Fails only if SQLite rolled the whole transaction back itself (an I/O error,
            // a full disk): then nothing of the batch is left to commit.
            if let Err(e) = execute(&mut conn, "ROLLBACK TO job").await {
                ran.push(done);
                broken = Some(e);
                break;
            }
        }
        ran.push(done);
    }
    if let Some(e) = broken {
        let _ = execute(&mut conn, "ROLLBACK").await;
        let e = Arc::new(e);
        for done in ran {
            (done.reply)(Err(not_stored(Arc::clone(&e))));
        }
        for job in jobs {
            job.refuse(not_stored(Arc::clone(&e)));
        }
        return false;
    }
    // The kept changes' events, in the order of their jobs, in one statement (a chunk
    // per 256 rows); `ends` marks where each job's end, for the fallback below.
    let mut events: Vec<NewEvent> = Vec::new();
    let mut ends = Vec::new();
    for done in ran.iter_mut().filter(|done| done.keep) {
        if !done.events.is_empty() {
            events.append(&mut done.events);
            ends.push(events.len());
        }
    }
    if !events.is_empty() {
        if let Err(e) = super::events::insert_events(&mut conn, &events).await {
            // A job's events can be refused only if a later job of the batch deleted their
            // payment (the retention purge of an old payment that just took an advice):
            // they go with their payment, and the batch's other events are inserted job by
            // job. SQLite undid the failed statement alone; the transaction goes on. (If
            // the disk failed instead, these fail too and so, below, does the commit.)
            tracing::warn!(error = %e, count = events.len(), "could not insert a batch's events at once; inserting them job by job");
            let mut start = 0;
            for end in ends {
                if let Err(e) = super::events::insert_events(&mut conn, &events[start..end]).await {
                    tracing::warn!(error = %e, count = end - start, "timeline events of a change dropped (their payment was deleted in the same batch?)");
                }
                start = end;
            }
        }
    }
    // Nothing kept (only compare-and-sets that lost): no commit, and no fsync.
    let commit = ran.iter().any(|done| done.keep);
    let ended = execute(&mut conn, if commit { "COMMIT" } else { "ROLLBACK" }).await;
    let outcome = match ended {
        Ok(()) => Ok(()),
        Err(e) => {
            // A failed COMMIT can leave the transaction open.
            let _ = execute(&mut conn, "ROLLBACK").await;
            Err(Arc::new(e))
        }
    };
    let committed = commit && outcome.is_ok();
    for done in ran {
        (done.reply)(outcome.clone().map_err(not_stored));
    }
    committed
}

fn refuse_all(batch: Vec<Box<dyn Pending>>, error: sqlx::Error) {
    let error = Arc::new(error);
    for job in batch {
        job.refuse(not_stored(Arc::clone(&error)));
    }
}

async fn execute(conn: &mut SqliteConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::query(sql).execute(conn).await.map(|_| ())
}

/// Logs the writer's counts when its task ends (the store closed, or the runtime stopped).
struct StopReport(Arc<Counts>);

impl Drop for StopReport {
    fn drop(&mut self) {
        let stats = self.0.read();
        tracing::info!(
            writes = stats.jobs,
            commits = stats.commits,
            "SQLite writer stopped"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    const WAIT: Duration = Duration::from_secs(30);

    /// A file database with one connection, as the store's writer has, and a child table
    /// whose foreign key is checked only at commit.
    async fn pool(dir: &std::path::Path) -> SqlitePool {
        let options = SqliteConnectOptions::new()
            .filename(dir.join("writer.db"))
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("pool");
        sqlx::raw_sql(
            "CREATE TABLE parent (k TEXT PRIMARY KEY); \
             CREATE TABLE child (k TEXT PRIMARY KEY, \
             parent TEXT REFERENCES parent (k) DEFERRABLE INITIALLY DEFERRED)",
        )
        .execute(&pool)
        .await
        .expect("schema");
        pool
    }

    async fn parents(pool: &SqlitePool) -> Vec<String> {
        sqlx::query_scalar("SELECT k FROM parent ORDER BY k")
            .fetch_all(pool)
            .await
            .expect("read")
    }

    /// Inserts `k`; `keep` false plays a compare-and-set that found nothing after writing.
    async fn insert(
        conn: &mut SqliteConnection,
        k: String,
        keep: bool,
    ) -> StoreResult<Written<()>> {
        sqlx::query("INSERT INTO parent (k) VALUES ($1)")
            .bind(&k)
            .execute(conn)
            .await?;
        Ok(if keep {
            Written::Kept(())
        } else {
            Written::Undone(())
        })
    }

    /// Inserts `k`, then fails on a key an earlier job of the batch inserted.
    async fn insert_then_fail(conn: &mut SqliteConnection, k: String) -> StoreResult<Written<()>> {
        insert(&mut *conn, k, true).await?;
        insert(conn, "k0".into(), true).await
    }

    /// A child of a parent nobody inserts: the statement passes, the commit fails.
    async fn orphan(conn: &mut SqliteConnection) -> StoreResult<Written<()>> {
        sqlx::query("INSERT INTO child (k, parent) VALUES ('c', 'nobody')")
            .execute(conn)
            .await?;
        Ok(Written::Kept(()))
    }

    // On a current-thread runtime the writer task runs only when the test awaits, so
    // everything queued before that is one batch.

    #[tokio::test]
    async fn waiting_writes_share_one_commit_and_a_failure_stays_its_own() {
        let dir = tempfile::tempdir().expect("dir");
        let pool = pool(dir.path()).await;
        let writer = Writer::start(pool.clone(), WAIT);
        let kept: Vec<_> = (0..10)
            .map(|i| writer.write(move |conn| Box::pin(insert(conn, format!("k{i}"), true))))
            .collect();
        let undone = writer.write(|conn| Box::pin(insert(conn, "undone".into(), false)));
        let failed = writer.write(|conn| Box::pin(insert_then_fail(conn, "partial".into())));
        let last = writer.write(|conn| Box::pin(insert(conn, "last".into(), true)));
        for answer in kept {
            answer.await.expect("kept");
        }
        undone.await.expect("undone is answered, not an error");
        assert!(
            matches!(failed.await, Err(StoreError::Database(_))),
            "its own error"
        );
        last.await.expect("a job after the failed one");
        let mut expected: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
        expected.push("last".into());
        assert_eq!(parents(&pool).await, expected, "no 'undone', no 'partial'");
        assert_eq!(
            writer.stats(),
            WriterStats {
                jobs: 13,
                commits: 1
            }
        );
    }

    /// Inserts `k`, then panics, as a job with a bug would.
    async fn insert_then_panic(conn: &mut SqliteConnection, k: String) -> StoreResult<Written<()>> {
        insert(&mut *conn, k, true).await?;
        panic!("a bug in a write job");
    }

    #[tokio::test]
    async fn a_job_that_panics_is_undone_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().expect("dir");
        let pool = pool(dir.path()).await;
        let writer = Writer::start(pool.clone(), WAIT);
        let before = writer.write(|conn| Box::pin(insert(conn, "a".into(), true)));
        let panics = writer.write(|conn| Box::pin(insert_then_panic(conn, "bug".into())));
        let after = writer.write(|conn| Box::pin(insert(conn, "b".into(), true)));
        before.await.expect("a job before the panic");
        assert!(matches!(panics.await, Err(StoreError::WriteNotStored(_))));
        after.await.expect("a job after the panic");
        assert_eq!(
            parents(&pool).await,
            ["a", "b"],
            "nothing of the job that panicked"
        );
        assert!(writer.is_running(), "the writer outlives the panic");
        writer
            .write(|conn| Box::pin(insert(conn, "c".into(), true)))
            .await
            .expect("a later batch");
        assert_eq!(parents(&pool).await, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_job_of_its_batch() {
        let dir = tempfile::tempdir().expect("dir");
        let pool = pool(dir.path()).await;
        let writer = Writer::start(pool.clone(), WAIT);
        let parent = writer.write(|conn| Box::pin(insert(conn, "p1".into(), true)));
        let child = writer.write(|conn| Box::pin(orphan(conn)));
        assert!(matches!(parent.await, Err(StoreError::WriteNotStored(_))));
        assert!(matches!(child.await, Err(StoreError::WriteNotStored(_))));
        assert!(
            parents(&pool).await.is_empty(),
            "nothing of the batch stored"
        );
        // The writer goes on: a lone write commits at once.
        writer
            .write(|conn| Box::pin(insert(conn, "p2".into(), true)))
            .await
            .expect("next batch");
        assert_eq!(parents(&pool).await, ["p2"]);
        assert_eq!(
            writer.stats(),
            WriterStats {
                jobs: 3,
                commits: 1
            }
        );
    }

    #[tokio::test]
    async fn dropping_the_writer_answers_what_was_queued() {
        let dir = tempfile::tempdir().expect("dir");
        let pool = pool(dir.path()).await;
        let writer = Writer::start(pool.clone(), WAIT);
        let queued = writer.write(|conn| Box::pin(insert(conn, "a".into(), true)));
        drop(writer);
        queued.await.expect("answered after the last handle went");
        assert_eq!(parents(&pool).await, ["a"]);
    }

    #[test]
    fn a_write_whose_writer_task_is_gone_gets_an_error() {
        let dir = tempfile::tempdir().expect("dir");
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
        };
        let first = runtime();
        let (writer, queued) = first.block_on(async {
            let writer = Writer::start(pool(dir.path()).await, WAIT);
            let queued = writer.write(|conn| Box::pin(insert(conn, "a".into(), true)));
            (writer, queued)
        });
        // The runtime goes, and the writer task with it, before it ran the job.
        drop(first);
        runtime().block_on(async {
            assert!(matches!(queued.await, Err(StoreError::WriteNotStored(_))));
            let later = writer.write(|conn| Box::pin(insert(conn, "b".into(), true)));
            assert!(matches!(later.await, Err(StoreError::WriteNotStored(_))));
        });
    }
}
