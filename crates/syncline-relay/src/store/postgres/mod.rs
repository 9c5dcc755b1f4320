//! The Postgres store: several relays sharing one durable log.
//!
//! Same promises as the SQLite store (see [`crate::store`]), kept by the
//! database rather than by one process:
//!
//! * **Ack after COMMIT.** An append resolves only once its transaction
//!   committed (`synchronous_commit` as the server is configured: `on` by
//!   default, i.e. flushed to the server's WAL).
//! * **Dense sequences across relays.** Every append locks its document's
//!   row in `syncline_docs` and numbers its deltas after the `head` stored
//!   there, bumping it in the same transaction (see [`schema`]).
//! * **A retried delta is stored once**: `(doc, id)` is unique, and the
//!   append looks the ids up under the document's lock.
//! * **Group commit.** One writer task per relay owns one connection, takes
//!   every queued append (up to [`MAX_BATCH_JOBS`] / [`MAX_BATCH_BYTES`])
//!   and commits them in one transaction, in two pipelined round trips
//!   over statements prepared on that connection (see
//!   [`sql::append_group`]); then it runs their `on_commit`s in order,
//!   publishes the group, and replies. Reads use a small pool.
//!
//! **Losing Postgres.** A failed commit acknowledges nothing. When the
//! connection is gone (the server restarted, the network broke), the
//! writer marks the store down ([`Store::health`], shown by `/healthz` and
//! `syncline_store_up`), and retries the same batch on a new connection
//! with backoff for up to [`HOLD_FOR`] — a retried batch finds the deltas
//! an unacknowledged earlier attempt may have committed and stores them
//! once. Only then does it fail the batch (clients re-push). While idle,
//! the writer probes the server every [`PROBE_EVERY`], so the health turns
//! down and back up by itself, with no traffic.

mod schema;
mod sql;

pub use schema::{MIGRATION_LOCK, SCHEMA_VERSION};

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use syncline_protocol::{DocId, PushDelta};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::job::Job;
use super::{
    Appended, CommitGroup, OnCommit, Page, PageLimits, Snapshot, SnapshotOutcome, Store,
    StoreError, StoreFuture, StoreHealth,
};

/// Most appends committed in one transaction.
pub const MAX_BATCH_JOBS: usize = 1024;
/// A batch stops growing once its payload passes this many bytes.
pub const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;
/// How long a batch is retried while Postgres is unreachable before its
/// appends fail (nothing of it acknowledged).
pub const HOLD_FOR: Duration = Duration::from_secs(30);
/// How often an idle writer checks that Postgres still answers.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);
/// Connections in the read pool.
const READ_POOL: usize = 8;
/// How long connecting may take, at start and when reconnecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Maps a driver error to a [`StoreError`] naming what was being done.
pub(crate) fn pg_error(action: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |source| StoreError::Postgres { action, source }
}

/// The store's health, shared by the writer and `/healthz`.
#[derive(Default)]
struct Health {
    down: AtomicBool,
    why: Mutex<Option<String>>,
}

impl Health {
    fn set_up(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::info!("Postgres is reachable again: acknowledging pushes");
        }
    }

    fn set_down(&self, why: &StoreError) {
        *self.why.lock().unwrap_or_else(PoisonError::into_inner) = Some(why.to_string());
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::error!(error = %why, "lost Postgres: not acknowledging pushes until it is back");
        }
    }
}

/// A [`Store`] in a Postgres database shared by every relay of a cluster.
pub struct PostgresStore {
    epoch: [u8; 16],
    jobs: mpsc::UnboundedSender<Job>,
    pool: Pool,
    health: Arc<Health>,
    transactions: Arc<AtomicU64>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`), creates or
    /// migrates the schema, and starts the writer. Fails with a message
    /// that says what is wrong with the URL or why the server cannot be
    /// reached. Call inside a tokio runtime.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let config = tokio_postgres::Config::from_str(url).map_err(|e| StoreError::BadUrl {
            url: redact(url),
            why: e.to_string(),
        })?;
        let mut client = connect(&config)
            .await
            .map_err(|e| StoreError::Unreachable {
                url: redact(url),
                why: e.to_string(),
            })?;
        let epoch = schema::migrate(&mut client).await?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(READ_POOL)
            .build()
            .map_err(|e| StoreError::BadUrl {
                url: redact(url),
                why: e.to_string(),
            })?;
        let (jobs, queue) = mpsc::unbounded_channel();
        let health = Arc::new(Health::default());
        let transactions = Arc::new(AtomicU64::new(0));
        let statements = sql::Statements::prepare(&client).await?;
        let writer = Writer {
            config,
            client: Some((client, statements)),
            health: Arc::clone(&health),
            transactions: Arc::clone(&transactions),
        };
        tokio::spawn(writer.run(queue));
        Ok(PostgresStore {
            epoch,
            jobs,
            pool,
            health,
            transactions,
        })
    }

    fn read<T, F>(
        &self,
        f: impl FnOnce(deadpool_postgres::Object) -> F + Send + 'static,
    ) -> StoreFuture<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, StoreError>> + Send,
    {
        let pool = self.pool.clone();
        Box::pin(async move {
            let client = pool
                .get()
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            f(client).await
        })
    }

    fn submit<T: Send + 'static>(
        &self,
        job: Job,
        reply: oneshot::Receiver<Result<T, StoreError>>,
    ) -> StoreFuture<T> {
        let sent = self.jobs.send(job).is_ok();
        Box::pin(async move {
            if !sent {
                return Err(StoreError::WorkerGone);
            }
            reply.await.map_err(|_| StoreError::WorkerGone)?
        })
    }
}

impl Store for PostgresStore {
    fn epoch(&self) -> [u8; 16] {
        self.epoch
    }

    fn append(
        &self,
        doc: DocId,
        deltas: Vec<PushDelta>,
        on_commit: OnCommit,
    ) -> StoreFuture<Appended> {
        let (reply, wait) = oneshot::channel();
        let job = Job::Append {
            doc,
            deltas,
            on_commit,
            reply,
        };
        self.submit(job, wait)
    }

    fn snapshot(&self, doc: DocId, snapshot: Snapshot) -> StoreFuture<SnapshotOutcome> {
        let (reply, wait) = oneshot::channel();
        self.submit(
            Job::Snapshot {
                doc,
                snapshot,
                reply,
            },
            wait,
        )
    }

    fn read_page(&self, doc: DocId, after: u64, limits: PageLimits) -> StoreFuture<Page> {
        self.read(move |client| async move { sql::read_page(&**client, doc, after, limits).await })
    }

    fn heads(&self, docs: Vec<DocId>) -> StoreFuture<Vec<(DocId, u64)>> {
        self.read(move |client| async move { sql::heads(&**client, &docs).await })
    }

    fn document_count(&self) -> StoreFuture<u64> {
        self.read(|client| async move { sql::document_count(&**client).await })
    }

    fn stored_bytes(&self, doc: Option<DocId>) -> StoreFuture<u64> {
        self.read(move |client| async move { sql::stored_bytes(&**client, doc).await })
    }

    fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    fn health(&self) -> StoreHealth {
        if self.health.down.load(Ordering::Acquire) {
            let why = self
                .health
                .why
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            StoreHealth::Down(why.clone().unwrap_or_default())
        } else {
            StoreHealth::Up
        }
    }
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn connect(config: &tokio_postgres::Config) -> Result<Client, String> {
    let connecting = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls));
    let (client, connection) = match connecting.await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(describe(&e)),
        Err(_) => return Err(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())),
    };
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "a Postgres connection ended");
        }
    });
    Ok(client)
}

/// The driver's message with its cause (the OS error, the server's
/// message), which `Display` alone leaves out.
fn describe(error: &tokio_postgres::Error) -> String {
    match (error.as_db_error(), std::error::Error::source(error)) {
        (Some(db), _) => format!("{}: {}", db.severity(), db.message()),
        (None, Some(source)) => format!("{error}: {source}"),
        (None, None) => error.to_string(),
    }
}

/// Whether `error` means the connection is gone (rather than a refusal of
/// this statement), so the batch may be retried on a new one.
fn connection_lost(error: &StoreError) -> bool {
    match error {
        StoreError::Postgres { source, .. } => match source.code() {
            None => true,
            Some(code) => [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::CONNECTION_FAILURE,
                SqlState::CONNECTION_EXCEPTION,
            ]
            .contains(code),
        },
        StoreError::Unavailable(_) => true,
        _ => false,
    }
}

/// Whether `error` is a conflict with another relay's transaction
/// (deadlock, serialization): retry at once on the same connection.
fn conflict(error: &StoreError) -> bool {
    matches!(error, StoreError::Postgres { source, .. }
    if source.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    }))
}

/// One transaction the writer runs (and may retry).
#[derive(Clone, Copy)]
enum Op<'a> {
    Group(&'a [(DocId, Vec<PushDelta>)]),
    Snapshot(DocId, &'a Snapshot),
}

/// What an [`Op`] did.
enum Done {
    Group(Vec<Appended>),
    Snapshot(SnapshotOutcome),
}

/// The writer task: owns the write connection (with the group commit's
/// statements prepared on it), commits batches.
struct Writer {
    config: tokio_postgres::Config,
    client: Option<(Client, sql::Statements)>,
    health: Arc<Health>,
    transactions: Arc<AtomicU64>,
}

impl Writer {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Job>) {
        let mut probe = tokio::time::interval(PROBE_EVERY);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                job = queue.recv() => match job {
                    Some(job) => job,
                    None => return,
                },
                _ = probe.tick() => {
                    self.probe().await;
                    continue;
                }
            };
            let mut bytes = first.payload_bytes();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH_JOBS && bytes < MAX_BATCH_BYTES {
                match queue.try_recv() {
                    Ok(job) => {
                        bytes += job.payload_bytes();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.commit(batch).await;
            probe.reset();
        }
    }

    /// A connection, made anew (and its statements prepared) if the last
    /// one is gone.
    async fn client(&mut self) -> Result<&mut (Client, sql::Statements), StoreError> {
        if self.client.as_ref().is_none_or(|(c, _)| c.is_closed()) {
            self.client = None;
            let client = connect(&self.config)
                .await
                .map_err(|why| StoreError::Unavailable(format!("cannot reach Postgres: {why}")))?;
            let statements = sql::Statements::prepare(&client).await?;
            self.client = Some((client, statements));
        }
        Ok(self.client.as_mut().expect("just connected"))
    }

    async fn probe(&mut self) {
        let result = match self.client().await {
            Ok((client, _)) => client
                .simple_query("SELECT 1")
                .await
                .map(drop)
                .map_err(pg_error("probing the server")),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => self.health.set_up(),
            Err(e) => {
                self.client = None;
                self.health.set_down(&e);
            }
        }
    }

    /// Runs `op` on the connection until it succeeds, fails for good, or
    /// Postgres has been unreachable for [`HOLD_FOR`].
    async fn retrying(&mut self, op: Op<'_>) -> Result<Done, StoreError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let result = match self.client().await {
                Ok((client, statements)) => match op {
                    Op::Group(pushes) => sql::append_group(client, statements, pushes)
                        .await
                        .map(Done::Group),
                    Op::Snapshot(doc, snapshot) => sql::snapshot(client, doc, snapshot)
                        .await
                        .map(Done::Snapshot),
                },
                Err(e) => Err(e),
            };
            match result {
                Ok(value) => {
                    self.transactions.fetch_add(1, Ordering::Relaxed);
                    self.health.set_up();
                    return Ok(value);
                }
                Err(e) if conflict(&e) => continue,
                Err(e) if connection_lost(&e) && started.elapsed() < HOLD_FOR => {
                    self.client = None;
                    self.health.set_down(&e);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    if connection_lost(&e) {
                        self.client = None;
                        self.health.set_down(&e);
                    }
                    return Err(e);
                }
            }
        }
    }

    async fn commit(&mut self, batch: Vec<Job>) {
        let mut pushes = Vec::new();
        let mut completions = Vec::new();
        let mut snapshots = Vec::new();
        for job in batch {
            match job {
                Job::Append {
                    doc,
                    deltas,
                    on_commit,
                    reply,
                } => {
                    pushes.push((doc, deltas));
                    completions.push((on_commit, reply));
                }
                Job::Snapshot {
                    doc,
                    snapshot,
                    reply,
                } => snapshots.push((doc, snapshot, reply)),
            }
        }
        if !pushes.is_empty() {
            match self.retrying(Op::Group(&pushes)).await {
                Ok(Done::Group(appended)) => {
                    let mut group = CommitGroup::new();
                    let mut replies = Vec::with_capacity(appended.len());
                    for ((on_commit, reply), appended) in completions.into_iter().zip(appended) {
                        on_commit(&appended, &mut group);
                        replies.push((reply, appended));
                    }
                    group.finish();
                    for (reply, appended) in replies {
                        let _ = reply.send(Ok(appended));
                    }
                }
                Ok(Done::Snapshot(_)) => unreachable!("a group commit returns appends"),
                Err(error) => {
                    tracing::error!(%error, "a group commit failed; nothing of it was acknowledged");
                    let message = error.to_string();
                    for (_, reply) in completions {
                        let _ = reply.send(Err(StoreError::CommitFailed(message.clone())));
                    }
                }
            }
        }
        for (doc, snapshot, reply) in snapshots {
            let result = match self.retrying(Op::Snapshot(doc, &snapshot)).await {
                Ok(Done::Snapshot(outcome)) => Ok(outcome),
                Ok(Done::Group(_)) => unreachable!("a snapshot returns its outcome"),
                Err(e) => Err(e),
            };
            let _ = reply.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("postgres://app:hunter2@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
    }
}
