//! Plain, blocking SQL over one [`rusqlite::Connection`]: the schema and the
//! append, snapshot and read rules, nothing about threads.
//!
//! Schema (version 2, kept in `PRAGMA user_version`):
//!
//! ```sql
//! meta(key TEXT PRIMARY KEY, value BLOB)            -- 'epoch' → 16 random bytes
//! deltas(doc BLOB, seq INTEGER, id BLOB, bytes BLOB,
//!        PRIMARY KEY (doc, seq), UNIQUE (doc, id))
//! snapshots(doc BLOB PRIMARY KEY, covers_seq INTEGER, id BLOB, bytes BLOB)
//! ```
//!
//! A snapshot empties the `bytes` of the deltas it covers but keeps their
//! rows: the ids still deduplicate re-pushes and the sequence stays dense.
//! Those rows are never read again (reads from below `covers_seq` get the
//! snapshot instead), which is why a read runs in one transaction.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use syncline_protocol::{DocId, PushDelta, SequencedDelta};

use crate::store::{
    Appended, Page, PageLimits, Snapshot, SnapshotOutcome, StoreError, delta_id_from_blob,
};

/// The schema version this code writes and reads (1 had no snapshots).
const SCHEMA_VERSION: i64 = 2;

/// How long a connection waits on a lock held by another before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn sql(action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
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
    pub(super) conn: Connection,
}

impl SqliteLog {
    /// Opens (creating if needed) the database at `path`: sets WAL and
    /// `synchronous=FULL`, creates or upgrades the schema, and draws the
    /// epoch the first time. Opening an existing database keeps its epoch.
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
        // Every statement is idempotent, so version 0 (new) and 1 (no
        // snapshots yet) both end up at version 2.
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
             );
             CREATE TABLE IF NOT EXISTS snapshots (
                 doc        BLOB    PRIMARY KEY,
                 covers_seq INTEGER NOT NULL,
                 id         BLOB    NOT NULL,
                 bytes      BLOB    NOT NULL
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

    /// How many documents have at least one delta.
    pub fn document_count(&self) -> Result<u64, StoreError> {
        let count: i64 = self
            .conn
            .query_row("SELECT COUNT(DISTINCT doc) FROM deltas", [], |row| {
                row.get(0)
            })
            .map_err(sql("counting documents"))?;
        seq_from_sql(count)
    }

    /// The delta and snapshot bytes stored for `doc`, or for all.
    pub fn stored_bytes(&self, doc: Option<DocId>) -> Result<u64, StoreError> {
        let sum = |table: &str| -> Result<i64, StoreError> {
            let all = format!("SELECT COALESCE(SUM(length(bytes)), 0) FROM {table}");
            let one = format!("{all} WHERE doc = ?1");
            let row = |row: &rusqlite::Row<'_>| row.get(0);
            match doc {
                Some(doc) => self.conn.query_row(&one, params![&doc.0[..]], row),
                None => self.conn.query_row(&all, [], row),
            }
            .map_err(sql("summing stored bytes"))
        };
        seq_from_sql(sum("deltas")? + sum("snapshots")?)
    }

    /// Appends `deltas` to `doc`'s log in a transaction of its own. See
    /// [`crate::store::Store::append`]; the store batches appends instead.
    pub fn append(&mut self, doc: DocId, deltas: Vec<PushDelta>) -> Result<Appended, StoreError> {
        // IMMEDIATE takes the write lock up front, so reading the head and
        // inserting after it cannot race another writer.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("starting an append"))?;
        let appended = append_in(&tx, doc, deltas)?;
        tx.commit().map_err(sql("committing an append"))?;
        Ok(appended)
    }

    /// Stores a snapshot in a transaction of its own. See
    /// [`crate::store::Store::snapshot`].
    pub fn store_snapshot(
        &mut self,
        doc: DocId,
        snapshot: Snapshot,
    ) -> Result<SnapshotOutcome, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("starting a snapshot"))?;
        let outcome = snapshot_in(&tx, doc, snapshot)?;
        tx.commit().map_err(sql("committing a snapshot"))?;
        Ok(outcome)
    }

    /// Reads one page of `doc`'s log above `after` (the snapshot first when
    /// `after` is below what it covers).
    pub fn read_page(
        &mut self,
        doc: DocId,
        after: u64,
        limits: PageLimits,
    ) -> Result<Page, StoreError> {
        let max_items = limits.max_items.max(1);
        // One read transaction: the snapshot and the deltas after it come
        // from the same state of the log.
        let tx = self.conn.transaction().map_err(sql("starting a read"))?;
        let mut page = Page::default();
        let mut bytes_in_page = 0usize;
        let mut from = seq_to_sql(after);
        let snapshot = tx
            .query_row(
                "SELECT covers_seq, id, bytes FROM snapshots WHERE doc = ?1 AND covers_seq > ?2",
                params![&doc.0[..], from],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get(1)?,
                        row.get::<_, Vec<u8>>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(sql("reading a snapshot"))?;
        if let Some((covers, id, bytes)) = snapshot {
            from = covers;
            bytes_in_page = bytes.len();
            page.items.push(SequencedDelta {
                seq: seq_from_sql(covers)?,
                id: delta_id_from_blob(id)?,
                bytes,
            });
        }
        {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT seq, id, bytes FROM deltas WHERE doc = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(sql("preparing a page read"))?;
            // One row more than the page can hold tells whether more remain.
            let room = max_items - page.items.len();
            let fetch = i64::try_from(room).unwrap_or(i64::MAX - 1) + 1;
            let mut rows = stmt
                .query(params![&doc.0[..], from, fetch])
                .map_err(sql("reading a page"))?;
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
        }
        tx.finish().map_err(sql("ending a read"))?;
        Ok(page)
    }
}

/// The highest sequence of `doc` (0 for an empty log).
fn head_of(conn: &Connection, doc: DocId) -> Result<i64, StoreError> {
    conn.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM deltas WHERE doc = ?1",
        params![&doc.0[..]],
        |row| row.get(0),
    )
    .map_err(sql("reading a document's head"))
}

/// Appends inside an open transaction (or savepoint) holding the write lock.
pub(super) fn append_in(
    conn: &Connection,
    doc: DocId,
    deltas: Vec<PushDelta>,
) -> Result<Appended, StoreError> {
    let start = head_of(conn, doc)?;
    let mut head = start;
    let mut seqs = Vec::with_capacity(deltas.len());
    let mut stored = Vec::new();
    let mut find = conn
        .prepare_cached("SELECT seq FROM deltas WHERE doc = ?1 AND id = ?2")
        .map_err(sql("preparing the duplicate check"))?;
    let mut insert = conn
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
    Ok(Appended {
        seqs,
        created_doc: start == 0 && head > 0,
        stored: Arc::from(stored),
    })
}

/// Stores a snapshot inside an open transaction (or savepoint).
pub(super) fn snapshot_in(
    conn: &Connection,
    doc: DocId,
    snapshot: Snapshot,
) -> Result<SnapshotOutcome, StoreError> {
    let head = seq_from_sql(head_of(conn, doc)?)?;
    if snapshot.covers_seq > head {
        return Ok(SnapshotOutcome::BeyondHead { head });
    }
    let existing: Option<i64> = conn
        .query_row(
            "SELECT covers_seq FROM snapshots WHERE doc = ?1",
            params![&doc.0[..]],
            |row| row.get(0),
        )
        .optional()
        .map_err(sql("reading a snapshot"))?;
    let old_covers = match existing {
        Some(covers) => seq_from_sql(covers)?,
        None => 0,
    };
    if existing.is_some() && old_covers >= snapshot.covers_seq {
        return Ok(SnapshotOutcome::Superseded {
            covers_seq: old_covers,
        });
    }
    let covers = seq_to_sql(snapshot.covers_seq);
    conn.execute(
        "INSERT OR REPLACE INTO snapshots (doc, covers_seq, id, bytes) VALUES (?1, ?2, ?3, ?4)",
        params![&doc.0[..], covers, &snapshot.id.0[..], &snapshot.bytes],
    )
    .map_err(sql("storing a snapshot"))?;
    // Compact: the rows stay (dedup, dense sequence), the bytes go.
    conn.execute(
        "UPDATE deltas SET bytes = x'' WHERE doc = ?1 AND seq > ?2 AND seq <= ?3",
        params![&doc.0[..], seq_to_sql(old_covers), covers],
    )
    .map_err(sql("compacting covered deltas"))?;
    Ok(SnapshotOutcome::Stored)
}
