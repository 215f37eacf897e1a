//! One statement for the same write of many concurrent callers (group commit across
//! requests).
//!
//! On PostgreSQL a one-row statement in a transaction of its own pays a round trip, an
//! executor start-up and a commit for one row; eight rows in one statement cost about a
//! quarter as much each (BENCHMARKS.md, issue 14 sixth round). So each write that every flow
//! makes, and whose statement touches only its own payment's rows, goes through a [`Group`]:
//! a task takes every write waiting (at most `max`), writes them in one statement, and
//! answers each.
//!
//! - Nothing waits for a group to fill. A write that finds no other write of its kind under
//!   way on this instance goes at once, alone, as the one-row statement it always was (at
//!   light load the array statement would cost more than the row it writes); the writes
//!   that arrive while one is under way queue, and the task writes them together.
//! - A write is answered only after its statement committed, as before.
//! - If the database refuses the statement for what one write holds (a constraint, a value),
//!   the writes are made one by one, so that the refusal reaches only that caller: the group's
//!   statement was atomic, so none of them is stored twice. If the database or the pool failed
//!   (a connection, a timeout), every caller gets that error at once, as each would have alone.
//! - Writes of one group that touch the same rows (two answers for one payment, an advice id
//!   twice: [`GroupWrite::repeats`]) would be decided against each other inside one
//!   statement; the later ones are written after the group's statement, each in one of its
//!   own, and answered alone, so what the group's statement committed stays answered.
//! - A full queue, or a task that has stopped, makes the caller write alone.
//!
//! The task ends when the last handle is dropped, after answering what was queued.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::{first_of, StoreError, StoreResult};

/// Writes of one kind, many in one statement.
#[async_trait]
pub(crate) trait GroupWrite: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Answer: Send + 'static;
    /// Writes `items` in one statement (one transaction): all of them or none; one answer
    /// per item, in order.
    async fn write(&self, items: &[Self::Item]) -> StoreResult<Vec<Self::Answer>>;

    /// Marks the items that touch what an earlier item of `items` touches: inside one
    /// statement they would be decided against each other, so they are written after the
    /// others, each in a statement of its own, in order, as they would have been alone.
    /// None, unless a kind says otherwise.
    fn repeats(&self, items: &[Self::Item]) -> Vec<bool> {
        vec![false; items.len()]
    }
}

struct Pending<W: GroupWrite> {
    item: W::Item,
    answer: oneshot::Sender<StoreResult<W::Answer>>,
}

/// A handle on a group writer's task; clones share it.
pub(crate) struct Group<W: GroupWrite> {
    queue: mpsc::Sender<Pending<W>>,
    writer: Arc<W>,
    /// Writes of this kind under way: alone, or a group's statement.
    under_way: Arc<AtomicUsize>,
}

impl<W: GroupWrite> Clone for Group<W> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            writer: Arc::clone(&self.writer),
            under_way: Arc::clone(&self.under_way),
        }
    }
}

/// One write under way, counted until it is dropped (also when its caller gives up).
struct UnderWay<'a>(&'a AtomicUsize);

impl<'a> UnderWay<'a> {
    /// Counts a write; true if it is the only one.
    fn start(count: &'a AtomicUsize) -> (Self, bool) {
        let before = count.fetch_add(1, Ordering::SeqCst);
        (Self(count), before == 0)
    }
}

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<W: GroupWrite> fmt::Debug for Group<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field(
                "queued",
                &(self.queue.max_capacity() - self.queue.capacity()),
            )
            .finish()
    }
}

impl<W: GroupWrite> Group<W> {
    /// Starts the task (on the current tokio runtime) that writes at most `max` items a
    /// statement; up to `capacity` wait for it before callers write alone.
    pub(crate) fn start(writer: W, max: usize, capacity: usize) -> Self {
        let writer = Arc::new(writer);
        let under_way = Arc::new(AtomicUsize::new(0));
        let (queue, waiting) = mpsc::channel(capacity);
        tokio::spawn(run(
            Arc::clone(&writer),
            waiting,
            max.max(1),
            Arc::clone(&under_way),
        ));
        Self {
            queue,
            writer,
            under_way,
        }
    }

    /// Writes with `alone` when no other write of this kind is under way here; else queues
    /// `item()` for the next group. Answers when its statement committed.
    pub(crate) async fn write<Fut>(
        &self,
        item: impl FnOnce() -> W::Item,
        alone: impl FnOnce() -> Fut,
    ) -> StoreResult<W::Answer>
    where
        Fut: Future<Output = StoreResult<W::Answer>>,
    {
        let (under_way, only) = UnderWay::start(&self.under_way);
        if only {
            return alone().await;
        }
        drop(under_way);
        let (answer, answered) = oneshot::channel();
        match self.queue.try_send(Pending {
            item: item(),
            answer,
        }) {
            Ok(()) => answered.await.unwrap_or_else(|_| {
                // Only a task that panicked drops an answer: the write may or may not be
                // stored, as when a connection fails mid-statement.
                Err(StoreError::Grouped(Arc::new(sqlx::Error::WorkerCrashed)))
            }),
            Err(
                mpsc::error::TrySendError::Full(pending)
                | mpsc::error::TrySendError::Closed(pending),
            ) => first_of(self.writer.write(std::slice::from_ref(&pending.item)).await),
        }
    }
}

async fn run<W: GroupWrite>(
    writer: Arc<W>,
    mut waiting: mpsc::Receiver<Pending<W>>,
    max: usize,
    under_way: Arc<AtomicUsize>,
) {
    let mut group = Vec::with_capacity(max);
    while waiting.recv_many(&mut group, max).await > 0 {
        let _counted = UnderWay::start(&under_way);
        write_group(&*writer, &mut group).await;
    }
}

/// Writes `group` in one statement and answers each; see the module's comment for failures.
async fn write_group<W: GroupWrite>(writer: &W, group: &mut Vec<Pending<W>>) {
    let (items, answers): (Vec<W::Item>, Vec<_>) =
        group.drain(..).map(|p| (p.item, p.answer)).unzip();
    let repeat = writer.repeats(&items);
    let mut firsts = (Vec::new(), Vec::new());
    let mut later = Vec::new();
    for ((item, answer), repeat) in items.into_iter().zip(answers).zip(repeat) {
        if repeat {
            later.push((item, answer));
        } else {
            firsts.0.push(item);
            firsts.1.push(answer);
        }
    }
    write_together(writer, firsts.0, firsts.1).await;
    // Each after the group's statement, alone, and answered alone: what the group's
    // statement committed stays answered whatever happens to these.
    for (item, answer) in later {
        let _ = answer.send(first_of(writer.write(std::slice::from_ref(&item)).await));
    }
}

/// Writes `items` in one statement and answers each (see the module's comment for failures).
async fn write_together<W: GroupWrite>(
    writer: &W,
    items: Vec<W::Item>,
    answers: Vec<oneshot::Sender<StoreResult<W::Answer>>>,
) {
    if items.is_empty() {
        return;
    }
    match writer.write(&items).await {
        Ok(written) if written.len() == items.len() => {
            for (answer, written) in answers.into_iter().zip(written) {
                let _ = answer.send(Ok(written));
            }
        }
        Err(e) if !e.refused_for_its_data() => {
            tracing::warn!(error = %e, count = items.len(), "a group of writes failed");
            let shared = e.into_shared();
            for answer in answers {
                let _ = answer.send(Err(StoreError::Grouped(Arc::clone(&shared))));
            }
        }
        Ok(written) => {
            // The statement committed, so writing again would store twice: a bug to report.
            tracing::error!(
                answers = written.len(),
                count = items.len(),
                "a group of writes got the wrong number of answers"
            );
            for answer in answers {
                let _ = answer.send(Err(StoreError::Corrupt(format!(
                    "a group of {} writes got {} answers",
                    items.len(),
                    written.len()
                ))));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, count = items.len(), "the database refused a group of writes; writing them one by one");
            for (item, answer) in items.iter().zip(answers) {
                let _ = answer.send(first_of(writer.write(std::slice::from_ref(item)).await));
            }
        }
    }
}
