//! Durable per-document logs: the only state the relay keeps.
//!
//! A document's log is an append-only list of opaque deltas, each with a
//! **dense sequence number** (1, 2, 3, … per document) and a content-derived
//! **id**. Two rules make the protocol honest:
//!
//! * [`Store::append`] returns only once the deltas are *durable*: the relay
//!   sends `Ack` after it, so an ack is a promise that survives a crash.
//! * Appending a delta whose id is already in the document's log stores
//!   nothing new but reports the sequence it already has. A client that lost
//!   an ack simply pushes again.
//! * Newly stored deltas are handed to the append's [`OnCommit`] callback
//!   after the commit and **in commit order per document**, before the
//!   append resolves. The relay publishes to live subscribers from there,
//!   so fan-out order is log order without any further locking.
//! * The callbacks of one group commit share a [`CommitGroup`]: each may
//!   leave its append's [`Fanout`] there, and once all of them ran the
//!   store hands the group's fan-outs to their [`Publish`] **together**,
//!   still before any append of the group resolves. The relay uses this
//!   to send each subscriber one `Deltas` frame per document per commit
//!   instead of one per push.
//!
//! A document may also have one **snapshot**: a client-made compaction
//! standing for every delta up to its `covers_seq`. Reads from below
//! `covers_seq` get the snapshot (as one delta with `seq = covers_seq`) in
//! place of the deltas it covers, so a store may drop those deltas' bytes.
//!
//! The relay talks to storage only through the [`Store`] trait:
//! [`sqlite::SqliteStore`] (one relay, embedded) and
//! [`postgres::PostgresStore`] (several relays sharing one log) slot in
//! without touching the protocol code. The trait is
//! object-safe (`Arc<dyn Store>`): its methods return boxed futures, which
//! costs one allocation per call — noise next to a durable commit.

mod job;
pub mod memory;
pub mod postgres;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use syncline_protocol::{DeltaId, DocId, PushDelta, SequencedDelta};

/// A boxed, sendable future returned by [`Store`] methods.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>;

/// Called once an append is durable, with what it did and the group commit
/// it was part of. It runs on the store's commit path (for SQLite, the
/// writer thread): it must not block.
pub type OnCommit = Box<dyn FnOnce(&Appended, &mut CommitGroup) + Send + 'static>;

/// Newly stored deltas of one append, to be fanned out to the document's
/// subscribers other than the one that pushed them.
#[derive(Debug, Clone)]
pub struct Fanout {
    /// The document.
    pub doc: DocId,
    /// Who pushed them (the relay's connection id): not echoed to it.
    pub origin: u64,
    /// The hub's tentative stamp of the push, from
    /// [`Hub::tentative`](crate::hub::Hub::tentative) (0: the push was never
    /// fanned out tentatively). It tells the hub which subscribers already
    /// got these deltas as `Tentative`.
    pub tentative: u64,
    /// The deltas, in sequence order.
    pub deltas: Arc<[SequencedDelta]>,
}

/// Receives the fan-outs of each group commit, once it is durable.
pub trait Publish: Send + Sync + 'static {
    /// `fanouts` are in commit order (so in sequence order per document).
    /// Called on the store's commit path: must not block.
    fn publish(&self, fanouts: &[Fanout]);
}

/// What the [`OnCommit`] callbacks of one group commit share: the fan-outs
/// they left, published together when the last of them has run.
#[derive(Default)]
pub struct CommitGroup {
    publisher: Option<Arc<dyn Publish>>,
    fanouts: Vec<Fanout>,
}

impl CommitGroup {
    /// An empty group.
    pub fn new() -> CommitGroup {
        CommitGroup::default()
    }

    /// Leaves `fanout` to be published by `publisher` with the rest of the
    /// group (in the order they were left).
    pub fn fan_out(&mut self, publisher: &Arc<dyn Publish>, fanout: Fanout) {
        let same = self
            .publisher
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, publisher));
        if !same {
            // Another publisher (never, within one relay): keep the order.
            self.finish();
            self.publisher = Some(Arc::clone(publisher));
        }
        self.fanouts.push(fanout);
    }

    /// Publishes what was left. The store calls it after the group's last
    /// `on_commit`, before any append of the group resolves.
    pub fn finish(&mut self) {
        if let Some(publisher) = &self.publisher
            && !self.fanouts.is_empty()
        {
            publisher.publish(&self.fanouts);
        }
        self.fanouts.clear();
    }
}

/// Storage for the relay's per-document logs.
///
/// Implementations must keep blocking work off the async reactor (the
/// SQLite store uses a dedicated writer thread and `spawn_blocking` reads).
pub trait Store: Send + Sync + 'static {
    /// The log's epoch: 16 random bytes drawn once, when the log was created,
    /// and never changed. Clients compare it with the epoch their cursors
    /// came from, so a relay restored from a backup or replaced is noticed.
    fn epoch(&self) -> [u8; 16];

    /// Appends `deltas` to `doc`'s log in one durable transaction (which
    /// may be shared with other appends: group commit).
    ///
    /// Deltas whose id is already present (in the log or earlier in the same
    /// push) are not stored again. Once the commit is durable, `on_commit`
    /// is called — in commit order among all appends to `doc`, and even if
    /// the returned future was dropped — then the group's
    /// [`CommitGroup::finish`], and then the future resolves. On failure
    /// nothing was stored and `on_commit` is not called.
    fn append(
        &self,
        doc: DocId,
        deltas: Vec<PushDelta>,
        on_commit: OnCommit,
    ) -> StoreFuture<Appended>;

    /// Stores `snapshot` as `doc`'s compaction, durably, unless the stored
    /// one already covers as much; may drop the bytes of the deltas it
    /// covers. Refuses a snapshot covering more than the log holds.
    fn snapshot(&self, doc: DocId, snapshot: Snapshot) -> StoreFuture<SnapshotOutcome>;

    /// Reads the deltas of `doc` with a sequence above `after`, in order,
    /// at most one page of them. When `after` is below the snapshot's
    /// `covers_seq`, the page starts with the snapshot (as a delta with
    /// `seq = covers_seq`) and continues after it.
    fn read_page(&self, doc: DocId, after: u64, limits: PageLimits) -> StoreFuture<Page>;

    /// How many documents have a log (called once, at startup).
    fn document_count(&self) -> StoreFuture<u64>;

    /// The delta and snapshot bytes stored for `doc`, or for every
    /// document with `None` (for the storage quotas, `crate::quota`). A
    /// store that cannot say answers 0 (the default): the quotas then
    /// count only what this relay commits.
    fn stored_bytes(&self, _doc: Option<DocId>) -> StoreFuture<u64> {
        Box::pin(std::future::ready(Ok(0)))
    }

    /// How many write transactions the store committed so far (for metrics;
    /// with group commit, fewer than the appends).
    fn transactions(&self) -> u64 {
        0
    }

    /// The heads (highest sequences) of those of `docs` that have a log.
    /// Relays sharing a log compare them with what they delivered, to
    /// repair what the bus did not bring. Stores that only one relay uses
    /// need not answer (the default: nothing).
    fn heads(&self, docs: Vec<DocId>) -> StoreFuture<Vec<(DocId, u64)>> {
        drop(docs);
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    /// Whether the store can commit now (`/healthz`, `syncline_store_up`).
    fn health(&self) -> StoreHealth {
        StoreHealth::Up
    }
}

/// What [`Store::health`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    /// Commits go through.
    Up,
    /// The store cannot commit (nothing is acknowledged meanwhile): why.
    Down(String),
}

/// A client-made compaction of a document's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The highest sequence it stands for.
    pub covers_seq: u64,
    /// Its content-derived id.
    pub id: DeltaId,
    /// Opaque, sealed bytes.
    pub bytes: Vec<u8>,
}

/// What [`Store::snapshot`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotOutcome {
    /// Stored; it replaces the deltas it covers in catch-ups.
    Stored,
    /// Not stored: the document already has a snapshot covering at least
    /// `covers_seq` (or this very one). Acknowledged all the same.
    Superseded {
        /// What the stored snapshot covers.
        covers_seq: u64,
    },
    /// Refused: the log's head is below the snapshot's `covers_seq`.
    BeyondHead {
        /// The document's highest sequence (0 for an empty log).
        head: u64,
    },
}

/// What an [`Store::append`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The sequence of every pushed delta, in push order (new or not).
    pub seqs: Vec<u64>,
    /// The deltas this append stored for the first time, in sequence order.
    /// Only these are fanned out: a re-pushed delta was delivered before.
    /// Shared, so fan-out does not copy the bytes.
    pub stored: Arc<[SequencedDelta]>,
    /// Whether this append gave the document its first delta.
    pub created_doc: bool,
}

impl Appended {
    /// The highest sequence among the pushed deltas: the `seq` of the `Ack`.
    pub fn highest_seq(&self) -> u64 {
        self.seqs.iter().copied().max().unwrap_or(0)
    }
}

/// How much one page of a catch-up may hold.
///
/// A page holds at least one delta when any is left, even if that one delta
/// alone is larger than `max_bytes` (a push can carry a delta that big, so a
/// catch-up must be able to return it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    /// Most deltas in one page.
    pub max_items: usize,
    /// Most delta bytes in one page (payload only, not framing).
    pub max_bytes: usize,
}

impl Default for PageLimits {
    fn default() -> Self {
        PageLimits {
            max_items: 1000,
            max_bytes: 1024 * 1024,
        }
    }
}

/// One page of a document's log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// Deltas in sequence order.
    pub items: Vec<SequencedDelta>,
    /// Whether the log holds more deltas after this page (at read time).
    pub more: bool,
}

/// Why storage failed. Every variant is worth logging; none is the client's
/// fault, so the relay answers `Error{Internal}` and the client retries.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// SQLite refused an operation.
    #[error("SQLite failed while {action}: {source}")]
    Sqlite {
        action: &'static str,
        source: rusqlite::Error,
    },
    /// The operating system could not provide randomness for the epoch.
    #[error("cannot draw a random epoch: {0}")]
    Random(String),
    /// A stored value does not have the shape the relay wrote.
    #[error("the database is corrupt: {0}")]
    Corrupt(String),
    /// The storage worker thread is gone (it panicked or the relay is
    /// shutting down); nothing more can be stored.
    #[error("the storage worker has stopped")]
    WorkerGone,
    /// A group commit failed as a whole; nothing of it was stored.
    #[error("the commit failed: {0}")]
    CommitFailed(String),
    /// Postgres refused an operation (or the connection broke during it).
    #[error("Postgres failed while {action}: {source}")]
    Postgres {
        action: &'static str,
        source: tokio_postgres::Error,
    },
    /// `--store` is not a Postgres URL the driver understands.
    #[error(
        "--store {url} is not a valid postgres:// URL ({why}); use postgres://USER@HOST:PORT/DATABASE"
    )]
    BadUrl { url: String, why: String },
    /// The Postgres server of `--store` cannot be reached at start.
    #[error(
        "cannot reach Postgres at {url}: {why}; check that the server runs and the URL is right"
    )]
    Unreachable { url: String, why: String },
    /// Postgres is unreachable now; nothing was acknowledged.
    #[error("Postgres is unavailable ({0}); nothing was acknowledged: retry")]
    Unavailable(String),
    /// The database was set up by a newer relay.
    #[error(
        "the database's schema is version {found}, newer than this relay's {supported}: upgrade the relay"
    )]
    SchemaTooNew { found: i64, supported: i64 },
}

/// Converts a stored id blob back into a [`DeltaId`].
pub(crate) fn delta_id_from_blob(blob: Vec<u8>) -> Result<DeltaId, StoreError> {
    let len = blob.len();
    blob.try_into()
        .map(DeltaId)
        .map_err(|_| StoreError::Corrupt(format!("a delta id of {len} bytes (expected 32)")))
}
