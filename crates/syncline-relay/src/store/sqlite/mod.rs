//! The SQLite store: one database file, WAL mode, `synchronous=FULL`.
//!
//! Two layers, so each is easy to test and to reason about:
//!
//! * [`SqliteLog`] (in `log`) is plain, blocking SQL over one connection.
//! * [`SqliteStore`] implements [`Store`] on top of it without blocking the
//!   async reactor: every write goes to **one writer thread** over a
//!   channel (SQLite allows one writer at a time anyway, so a single owner
//!   of the write connection never sees `SQLITE_BUSY`), and reads run on
//!   tokio's blocking pool with their own connections (WAL lets readers
//!   proceed while the writer commits).
//!
//! **Group commit.** The writer takes the first waiting job, then drains
//! whatever else is already queued (bounded by [`MAX_BATCH_JOBS`] and
//! [`MAX_BATCH_BYTES`]) and runs the whole batch in **one** transaction,
//! each job in a savepoint of its own (a failing job is rolled back alone).
//! One fsync then makes many pushes durable, so throughput grows with
//! concurrency instead of being capped by the disk's fsync rate. Only after
//! the commit does the writer call each append's `on_commit`, in job order
//! (which is sequence order per document), publish what they left in the
//! [`CommitGroup`] to live subscribers in one go, and then reply. An ack
//! therefore still follows durability.
//!
//! Durability: `journal_mode=WAL` + `synchronous=FULL` makes SQLite fsync the
//! WAL on every commit, so once a batch commits, its deltas survive a power
//! cut or a `kill -9` — which is what an `Ack` promises.

mod log;
#[cfg(test)]
mod tests;

pub use log::SqliteLog;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;

use rusqlite::{Connection, TransactionBehavior};
use syncline_protocol::{DocId, PushDelta};
use tokio::sync::oneshot;

use super::job::Job;
use super::{
    Appended, CommitGroup, OnCommit, Page, PageLimits, Snapshot, SnapshotOutcome, Store,
    StoreError, StoreFuture,
};
use log::sql;

/// The file name of the relay's database inside the data directory.
pub const DATABASE_FILE: &str = "relay.sqlite3";

/// Most jobs committed in one transaction.
pub const MAX_BATCH_JOBS: usize = 1024;

/// A batch stops growing once its payload passes this many bytes.
pub const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// Idle read connections kept for reuse.
const MAX_IDLE_READERS: usize = 8;

/// What a job needs done in the transaction.
enum Work {
    Append(DocId, Vec<PushDelta>),
    Snapshot(DocId, Snapshot),
}

/// What to do with a job's outcome after the commit.
enum Completion {
    Append(OnCommit, oneshot::Sender<Result<Appended, StoreError>>),
    Snapshot(oneshot::Sender<Result<SnapshotOutcome, StoreError>>),
}

enum Outcome {
    Appended(Appended),
    Snapshot(SnapshotOutcome),
}

fn split(job: Job) -> (Work, Completion) {
    match job {
        Job::Append {
            doc,
            deltas,
            on_commit,
            reply,
        } => (
            Work::Append(doc, deltas),
            Completion::Append(on_commit, reply),
        ),
        Job::Snapshot {
            doc,
            snapshot,
            reply,
        } => (Work::Snapshot(doc, snapshot), Completion::Snapshot(reply)),
    }
}

/// Runs `works` in one IMMEDIATE transaction, each in its own savepoint.
/// `Err` means the transaction as a whole failed: nothing was stored.
fn run_batch(
    conn: &mut Connection,
    works: Vec<Work>,
) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("starting a group commit"))?;
    let mut outcomes = Vec::with_capacity(works.len());
    for work in works {
        let savepoint = tx.savepoint().map_err(sql("starting a savepoint"))?;
        let outcome = match work {
            Work::Append(doc, deltas) => {
                log::append_in(&savepoint, doc, deltas).map(Outcome::Appended)
            }
            Work::Snapshot(doc, snapshot) => {
                log::snapshot_in(&savepoint, doc, snapshot).map(Outcome::Snapshot)
            }
        };
        if outcome.is_ok() {
            savepoint.commit().map_err(sql("releasing a savepoint"))?;
        }
        // Dropping an unreleased savepoint rolls that job back, alone.
        outcomes.push(outcome);
    }
    tx.commit().map_err(sql("committing a group commit"))?;
    Ok(outcomes)
}

/// Commits one batch and completes its jobs, in order.
fn commit_batch(log: &mut SqliteLog, batch: Vec<Job>, transactions: &AtomicU64) {
    let (works, completions): (Vec<Work>, Vec<Completion>) = batch.into_iter().map(split).unzip();
    let outcomes = match run_batch(&mut log.conn, works) {
        Ok(outcomes) => {
            transactions.fetch_add(1, Ordering::Relaxed);
            outcomes
        }
        Err(error) => {
            tracing::error!(%error, jobs = completions.len(), "a group commit failed");
            let message = error.to_string();
            completions
                .iter()
                .map(|_| Err(StoreError::CommitFailed(message.clone())))
                .collect()
        }
    };
    // Every `on_commit` first (they fill the group), then the group's
    // fan-out, then the replies: an append resolves only after its deltas
    // were handed to the subscribers.
    let mut group = CommitGroup::new();
    let replies: Vec<Reply> = completions
        .into_iter()
        .zip(outcomes)
        .map(|(completion, outcome)| match (completion, outcome) {
            (Completion::Append(on_commit, reply), Ok(Outcome::Appended(appended))) => {
                on_commit(&appended, &mut group);
                Reply::Append(reply, Ok(appended))
            }
            (Completion::Append(_, reply), Err(error)) => Reply::Append(reply, Err(error)),
            (Completion::Snapshot(reply), Ok(Outcome::Snapshot(outcome))) => {
                Reply::Snapshot(reply, Ok(outcome))
            }
            (Completion::Snapshot(reply), Err(error)) => Reply::Snapshot(reply, Err(error)),
            // `run_batch` answers each work with the outcome of its kind.
            (Completion::Append(_, reply), Ok(_)) => Reply::Append(reply, Err(mismatched())),
            (Completion::Snapshot(reply), Ok(_)) => Reply::Snapshot(reply, Err(mismatched())),
        })
        .collect();
    group.finish();
    for reply in replies {
        // A requester may be gone; the commit stands anyway and a re-push
        // is deduplicated.
        match reply {
            Reply::Append(reply, outcome) => {
                let _ = reply.send(outcome);
            }
            Reply::Snapshot(reply, outcome) => {
                let _ = reply.send(outcome);
            }
        }
    }
}

/// A job's answer, sent once the whole group was handled.
enum Reply {
    Append(
        oneshot::Sender<Result<Appended, StoreError>>,
        Result<Appended, StoreError>,
    ),
    Snapshot(
        oneshot::Sender<Result<SnapshotOutcome, StoreError>>,
        Result<SnapshotOutcome, StoreError>,
    ),
}

fn mismatched() -> StoreError {
    StoreError::Corrupt("mismatched outcome".into())
}

/// The writer thread's loop: batch what is queued, commit, repeat. Ends
/// when every sender is dropped.
fn write_loop(mut log: SqliteLog, jobs: mpsc::Receiver<Job>, transactions: Arc<AtomicU64>) {
    while let Ok(first) = jobs.recv() {
        let mut bytes = first.payload_bytes();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_JOBS && bytes < MAX_BATCH_BYTES {
            match jobs.try_recv() {
                Ok(job) => {
                    bytes += job.payload_bytes();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        commit_batch(&mut log, batch, &transactions);
    }
}

/// The SQLite-backed [`Store`]: a writer thread plus a pool of readers.
pub struct SqliteStore {
    epoch: [u8; 16],
    writer: mpsc::Sender<Job>,
    readers: Arc<ReaderPool>,
    transactions: Arc<AtomicU64>,
}

impl SqliteStore {
    /// Opens the store in `data_dir` (created if missing), starting the
    /// writer thread. Blocking: call it from `spawn_blocking` or at startup.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(DATABASE_FILE);
        let log = SqliteLog::open(&path)?;
        let epoch = log.epoch()?;
        let (writer, jobs) = mpsc::channel::<Job>();
        let transactions = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&transactions);
        thread::Builder::new()
            .name("syncline-sqlite-writer".into())
            .spawn(move || write_loop(log, jobs, counter))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            epoch,
            writer,
            readers: Arc::new(ReaderPool {
                path,
                idle: Mutex::new(Vec::new()),
            }),
            transactions,
        })
    }

    fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&mut SqliteLog) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<T> {
        let readers = Arc::clone(&self.readers);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut reader = readers.take()?;
                let outcome = read(&mut reader);
                readers.give_back(reader);
                outcome
            })
            .await
            .map_err(|_| StoreError::WorkerGone)?
        })
    }
}

impl Store for SqliteStore {
    fn epoch(&self) -> [u8; 16] {
        self.epoch
    }

    fn append(
        &self,
        doc: DocId,
        deltas: Vec<PushDelta>,
        on_commit: OnCommit,
    ) -> StoreFuture<Appended> {
        let (reply, outcome) = oneshot::channel();
        let sent = self.writer.send(Job::Append {
            doc,
            deltas,
            on_commit,
            reply,
        });
        Box::pin(async move {
            sent.map_err(|_| StoreError::WorkerGone)?;
            outcome.await.map_err(|_| StoreError::WorkerGone)?
        })
    }

    fn snapshot(&self, doc: DocId, snapshot: Snapshot) -> StoreFuture<SnapshotOutcome> {
        let (reply, outcome) = oneshot::channel();
        let sent = self.writer.send(Job::Snapshot {
            doc,
            snapshot,
            reply,
        });
        Box::pin(async move {
            sent.map_err(|_| StoreError::WorkerGone)?;
            outcome.await.map_err(|_| StoreError::WorkerGone)?
        })
    }

    fn read_page(&self, doc: DocId, after: u64, limits: PageLimits) -> StoreFuture<Page> {
        self.read(move |reader| reader.read_page(doc, after, limits))
    }

    fn document_count(&self) -> StoreFuture<u64> {
        self.read(|reader| reader.document_count())
    }

    fn stored_bytes(&self, doc: Option<DocId>) -> StoreFuture<u64> {
        self.read(move |reader| reader.stored_bytes(doc))
    }

    fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }
}

/// Read connections, reused across `spawn_blocking` calls.
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<SqliteLog>>,
}

impl ReaderPool {
    fn take(&self) -> Result<SqliteLog, StoreError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(reader) => Ok(reader),
            None => SqliteLog::open_reader(&self.path),
        }
    }

    fn give_back(&self, reader: SqliteLog) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(reader);
        }
    }
}
