//! The SQLite store: one database file, WAL mode, `synchronous=FULL`.
//!
//! Two layers, so each is easy to test and to reason about:
//!
//! * [`SqliteLog`] is plain, blocking SQL over one [`rusqlite::Connection`].
//!   It knows the schema and the append/read rules, nothing about threads.
//! * [`SqliteStore`] implements [`Store`] on top of it without blocking the
//!   async reactor: every append goes to **one writer thread** over a
//!   channel (SQLite allows one writer at a time anyway, so a single owner
//!   of the write connection never sees `SQLITE_BUSY`), and reads run on
//!   tokio's blocking pool with their own connections (WAL lets readers
//!   proceed while the writer commits).
//!
//! Durability: `journal_mode=WAL` + `synchronous=FULL` makes SQLite fsync the
//! WAL on every commit, so once [`SqliteLog::append`] returns, the deltas
//! survive a power cut or a `kill -9` — which is what an `Ack` promises.
//!
//! Schema (version 1, kept in `PRAGMA user_version`):
//!
//! ```sql
//! meta(key TEXT PRIMARY KEY, value BLOB)            -- 'epoch' → 16 random bytes
//! deltas(doc BLOB, seq INTEGER, id BLOB, bytes BLOB,
//!        PRIMARY KEY (doc, seq), UNIQUE (doc, id))
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use syncline_protocol::{DocId, PushDelta, SequencedDelta};
use tokio::sync::oneshot;

use super::{Appended, Page, PageLimits, Store, StoreError, StoreFuture, delta_id_from_blob};

/// The file name of the relay's database inside the data directory.
pub const DATABASE_FILE: &str = "relay.sqlite3";

/// The schema version this code writes and reads.
const SCHEMA_VERSION: i64 = 1;

/// How long a connection waits on a lock held by another before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle read connections kept for reuse.
const MAX_IDLE_READERS: usize = 8;

fn sql(action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { action, source }
}

/// Sequence numbers are `u64` on the wire and `INTEGER` (i64) in SQLite. A
/// sequence is dense from 1, so it never reaches `i64::MAX`; a client's
/// `since` might, and anything that large simply means "after everything".
fn seq_to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn seq_from_sql(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("a negative sequence {seq}")))
}

/// Blocking access to the relay's log through one SQLite connection.
pub struct SqliteLog {
    conn: Connection,
}

impl SqliteLog {
    /// Opens (creating if needed) the database at `path`: sets WAL and
    /// `synchronous=FULL`, creates the schema, and draws the epoch the first
    /// time. Opening an existing database keeps its epoch.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut log = Self::connect(path)?;
        log.conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(sql("enabling WAL"))?;
        log.migrate()?;
        Ok(log)
    }

    /// Opens a further connection to an existing database, for reads only.
    pub fn open_reader(path: &Path) -> Result<Self, StoreError> {
        let log = Self::connect(path)?;
        log.conn
            .pragma_update(None, "query_only", true)
            .map_err(sql("making a reader read-only"))?;
        Ok(log)
    }

    fn connect(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(sql("opening the database"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sql("setting the busy timeout"))?;
        // FULL: fsync the WAL at every commit. NORMAL would be faster but may
        // lose the last commits on power loss — after they were acked.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql("setting synchronous=FULL"))?;
        Ok(SqliteLog { conn })
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let mut epoch = [0u8; 16];
        getrandom::fill(&mut epoch).map_err(|e| StoreError::Random(e.to_string()))?;
        // One transaction: a crash half-way leaves either no schema or all of
        // it, and the epoch is drawn exactly once (`INSERT OR IGNORE`).
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("starting the schema setup"))?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sql("reading the schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Corrupt(format!(
                "schema version {version} was written by a newer relay (this one knows {SCHEMA_VERSION})"
            )));
        }
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (
                 key   TEXT PRIMARY KEY,
                 value BLOB NOT NULL
             );
             CREATE TABLE IF NOT EXISTS deltas (
                 doc   BLOB    NOT NULL,
                 seq   INTEGER NOT NULL,
                 id    BLOB    NOT NULL,
                 bytes BLOB    NOT NULL,
                 PRIMARY KEY (doc, seq),
                 UNIQUE (doc, id)
             );",
        )
        .map_err(sql("creating the schema"))?;
        tx.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?1)",
            params![&epoch[..]],
        )
        .map_err(sql("storing the epoch"))?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(sql("writing the schema version"))?;
        tx.commit().map_err(sql("committing the schema"))
    }

    /// The epoch stored when the database was created.
    pub fn epoch(&self) -> Result<[u8; 16], StoreError> {
        let blob: Vec<u8> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |row| {
                row.get(0)
            })
            .map_err(sql("reading the epoch"))?;
        let len = blob.len();
        blob.try_into()
            .map_err(|_| StoreError::Corrupt(format!("an epoch of {len} bytes (expected 16)")))
    }

    /// Appends `deltas` to `doc`'s log in one durable transaction. See
    /// [`Store::append`].
    pub fn append(&mut self, doc: DocId, deltas: Vec<PushDelta>) -> Result<Appended, StoreError> {
        // IMMEDIATE takes the write lock up front, so reading the head and
        // inserting after it cannot race another writer.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("starting an append"))?;
        let mut head: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM deltas WHERE doc = ?1",
                params![&doc.0[..]],
                |row| row.get(0),
            )
            .map_err(sql("reading a document's head"))?;
        let mut seqs = Vec::with_capacity(deltas.len());
        let mut stored = Vec::new();
        {
            let mut find = tx
                .prepare_cached("SELECT seq FROM deltas WHERE doc = ?1 AND id = ?2")
                .map_err(sql("preparing the duplicate check"))?;
            let mut insert = tx
                .prepare_cached("INSERT INTO deltas (doc, seq, id, bytes) VALUES (?1, ?2, ?3, ?4)")
                .map_err(sql("preparing the insert"))?;
            for delta in deltas {
                let existing: Option<i64> = find
                    .query_row(params![&doc.0[..], &delta.id.0[..]], |row| row.get(0))
                    .optional()
                    .map_err(sql("checking for a duplicate delta"))?;
                if let Some(seq) = existing {
                    seqs.push(seq_from_sql(seq)?);
                    continue;
                }
                head += 1;
                insert
                    .execute(params![&doc.0[..], head, &delta.id.0[..], &delta.bytes])
                    .map_err(sql("inserting a delta"))?;
                let seq = seq_from_sql(head)?;
                seqs.push(seq);
                stored.push(SequencedDelta {
                    seq,
                    id: delta.id,
                    bytes: delta.bytes,
                });
            }
        }
        tx.commit().map_err(sql("committing an append"))?;
        Ok(Appended { seqs, stored })
    }

    /// Reads one page of `doc`'s deltas with a sequence above `after`.
    pub fn read_page(
        &self,
        doc: DocId,
        after: u64,
        limits: PageLimits,
    ) -> Result<Page, StoreError> {
        let max_items = limits.max_items.max(1);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, id, bytes FROM deltas WHERE doc = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )
            .map_err(sql("preparing a page read"))?;
        // One row more than a page can hold tells whether more remain.
        let fetch = i64::try_from(max_items).unwrap_or(i64::MAX - 1) + 1;
        let mut rows = stmt
            .query(params![&doc.0[..], seq_to_sql(after), fetch])
            .map_err(sql("reading a page"))?;
        let mut page = Page::default();
        let mut bytes_in_page = 0usize;
        while let Some(row) = rows.next().map_err(sql("reading a page"))? {
            let bytes: Vec<u8> = row.get(2).map_err(sql("reading a delta"))?;
            let full = page.items.len() == max_items
                || (!page.items.is_empty() && bytes_in_page + bytes.len() > limits.max_bytes);
            if full {
                page.more = true;
                break;
            }
            bytes_in_page += bytes.len();
            page.items.push(SequencedDelta {
                seq: seq_from_sql(row.get(0).map_err(sql("reading a delta"))?)?,
                id: delta_id_from_blob(row.get(1).map_err(sql("reading a delta"))?)?,
                bytes,
            });
        }
        Ok(page)
    }
}

/// A job for the writer thread: one append and where to send its outcome.
struct AppendJob {
    doc: DocId,
    deltas: Vec<PushDelta>,
    reply: oneshot::Sender<Result<Appended, StoreError>>,
}

/// The SQLite-backed [`Store`]: a writer thread plus a pool of readers.
pub struct SqliteStore {
    epoch: [u8; 16],
    writer: mpsc::Sender<AppendJob>,
    readers: Arc<ReaderPool>,
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
        let mut log = SqliteLog::open(&path)?;
        let epoch = log.epoch()?;
        let (writer, jobs) = mpsc::channel::<AppendJob>();
        thread::Builder::new()
            .name("syncline-sqlite-writer".into())
            .spawn(move || {
                // Ends when every `SqliteStore` handle is dropped.
                for job in jobs {
                    let outcome = log.append(job.doc, job.deltas);
                    // The connection may be gone; the commit stands anyway
                    // and the client's re-push will be deduplicated.
                    let _ = job.reply.send(outcome);
                }
            })
            .map_err(|e| StoreError::Corrupt(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            epoch,
            writer,
            readers: Arc::new(ReaderPool {
                path,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }
}

impl Store for SqliteStore {
    fn epoch(&self) -> [u8; 16] {
        self.epoch
    }

    fn append(&self, doc: DocId, deltas: Vec<PushDelta>) -> StoreFuture<Appended> {
        let (reply, outcome) = oneshot::channel();
        let sent = self.writer.send(AppendJob { doc, deltas, reply });
        Box::pin(async move {
            sent.map_err(|_| StoreError::WorkerGone)?;
            outcome.await.map_err(|_| StoreError::WorkerGone)?
        })
    }

    fn read_page(&self, doc: DocId, after: u64, limits: PageLimits) -> StoreFuture<Page> {
        let readers = Arc::clone(&self.readers);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let reader = readers.take()?;
                let page = reader.read_page(doc, after, limits);
                readers.give_back(reader);
                page
            })
            .await
            .map_err(|_| StoreError::WorkerGone)?
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use syncline_protocol::DeltaId;

    fn delta(n: u8) -> PushDelta {
        PushDelta {
            id: DeltaId([n; 32]),
            bytes: vec![n; 3 + n as usize],
        }
    }

    const DOC: DocId = DocId([1; 16]);
    const OTHER: DocId = DocId([2; 16]);

    #[test]
    fn sequences_are_dense_per_document() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SqliteLog::open(&dir.path().join("db")).unwrap();
        let a = log.append(DOC, vec![delta(1), delta(2)]).unwrap();
        let b = log.append(OTHER, vec![delta(3)]).unwrap();
        let c = log.append(DOC, vec![delta(4)]).unwrap();
        assert_eq!(a.seqs, vec![1, 2]);
        assert_eq!(b.seqs, vec![1]);
        assert_eq!(c.seqs, vec![3]);
        assert_eq!(c.stored[0].bytes, delta(4).bytes);
    }

    #[test]
    fn a_known_id_is_acked_with_its_old_sequence_and_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SqliteLog::open(&dir.path().join("db")).unwrap();
        log.append(DOC, vec![delta(1), delta(2)]).unwrap();
        let again = log.append(DOC, vec![delta(2), delta(5), delta(5)]).unwrap();
        assert_eq!(again.seqs, vec![2, 3, 3]);
        assert_eq!(again.highest_seq(), 3);
        assert_eq!(again.stored.len(), 1, "only delta 5 is new, once");
        let page = log.read_page(DOC, 0, PageLimits::default()).unwrap();
        let seqs: Vec<u64> = page.items.iter().map(|d| d.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert!(!page.more);
    }

    #[test]
    fn pages_respect_item_and_byte_limits() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SqliteLog::open(&dir.path().join("db")).unwrap();
        log.append(DOC, (1..=10).map(delta).collect()).unwrap();
        let by_items = PageLimits {
            max_items: 4,
            max_bytes: usize::MAX,
        };
        let page = log.read_page(DOC, 0, by_items).unwrap();
        assert_eq!(page.items.len(), 4);
        assert!(page.more);
        let page = log.read_page(DOC, 8, by_items).unwrap();
        assert_eq!(page.items.len(), 2);
        assert!(!page.more);

        // Deltas 1..=3 are 4, 5, 6 bytes long: 9 bytes fit two of them.
        let by_bytes = PageLimits {
            max_items: 100,
            max_bytes: 9,
        };
        let page = log.read_page(DOC, 0, by_bytes).unwrap();
        assert_eq!(page.items.len(), 2);
        assert!(page.more);
        // A single delta larger than the byte limit still makes a page.
        let tiny = PageLimits {
            max_items: 100,
            max_bytes: 1,
        };
        let page = log.read_page(DOC, 9, tiny).unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].seq, 10);
        assert!(!page.more);
        // Past the head, and absurdly far past it: an empty, final page.
        assert_eq!(log.read_page(DOC, 10, tiny).unwrap(), Page::default());
        assert_eq!(log.read_page(DOC, u64::MAX, tiny).unwrap(), Page::default());
    }

    #[test]
    fn the_epoch_is_drawn_once_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let first = SqliteLog::open(&path).unwrap().epoch().unwrap();
        let second = SqliteLog::open(&path).unwrap().epoch().unwrap();
        assert_eq!(first, second);
        let elsewhere = tempfile::tempdir().unwrap();
        let other = SqliteLog::open(&elsewhere.path().join("db"))
            .unwrap()
            .epoch()
            .unwrap();
        assert_ne!(first, other, "each new log gets its own epoch");
    }

    #[test]
    fn the_database_is_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let log = SqliteLog::open(&dir.path().join("db")).unwrap();
        let mode: String = log
            .conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = log
            .conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
    }

    #[tokio::test]
    async fn the_async_store_appends_and_reads_off_the_reactor() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested/data");
        let store = SqliteStore::open(&data).unwrap();
        let appended = store.append(DOC, vec![delta(1), delta(2)]).await.unwrap();
        assert_eq!(appended.highest_seq(), 2);
        let page = store
            .read_page(DOC, 1, PageLimits::default())
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].id, DeltaId([2; 32]));
        let epoch = store.epoch();
        drop(store);
        let reopened = SqliteStore::open(&data).unwrap();
        assert_eq!(reopened.epoch(), epoch);
        let page = reopened
            .read_page(DOC, 0, PageLimits::default())
            .await
            .unwrap();
        assert_eq!(page.items.len(), 2);
    }
}
