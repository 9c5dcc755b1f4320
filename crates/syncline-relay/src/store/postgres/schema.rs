//! The Postgres schema, versioned, and the migrations that build it.
//!
//! [`migrate`] runs at every start, in one transaction that first takes a
//! transaction-scoped advisory lock ([`MIGRATION_LOCK`]): when several
//! relays start at once on an empty database, one creates the tables and
//! the epoch, the others wait for its commit and then find nothing to do.
//! The version lives in `syncline_meta` (`schema_version`); a database
//! written by a newer relay is refused rather than misread.
//!
//! Tables:
//!
//! * `syncline_meta(key, value)`: `schema_version` and the log's `epoch`
//!   (16 random bytes drawn once, when the database is first set up);
//! * `syncline_docs(doc, head, snap_seq, snap_id, snap_bytes)`: one row
//!   per document. `head` is the highest sequence stored: every append
//!   locks this row (`FOR UPDATE`), numbers its deltas after it and bumps
//!   it in the same transaction, which keeps sequences dense and unique
//!   however many relays write the document. The snapshot columns hold
//!   the client-made compaction, if any;
//! * `syncline_deltas(doc, seq, id, bytes)`: the log. `(doc, seq)` is the
//!   key, `(doc, id)` is unique (a re-pushed delta is found, not stored
//!   again); `bytes` is `NULL` once a snapshot covers the delta.

use tokio_postgres::Client;

use super::pg_error;
use crate::store::StoreError;

/// The schema version this relay writes and understands.
pub const SCHEMA_VERSION: i64 = 1;

/// The advisory lock key migrations hold ("syncline" in ASCII).
pub const MIGRATION_LOCK: i64 = 0x7379_6e63_6c69_6e65;

/// Migration `n` (1-based) brings the schema from version `n - 1` to `n`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [r"
CREATE TABLE syncline_docs (
    doc        bytea  PRIMARY KEY,
    head       bigint NOT NULL DEFAULT 0,
    snap_seq   bigint NOT NULL DEFAULT 0,
    snap_id    bytea,
    snap_bytes bytea
);
CREATE TABLE syncline_deltas (
    doc   bytea  NOT NULL,
    seq   bigint NOT NULL,
    id    bytea  NOT NULL,
    bytes bytea,
    PRIMARY KEY (doc, seq),
    UNIQUE (doc, id)
);
"];

/// Creates or upgrades the schema and returns the log's epoch (drawing it
/// if the database is new). Safe to run from several relays at once.
pub async fn migrate(client: &mut Client) -> Result<[u8; 16], StoreError> {
    let tx = client
        .transaction()
        .await
        .map_err(pg_error("starting the migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error("taking the migration lock"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS syncline_meta (key text PRIMARY KEY, value bytea NOT NULL)",
    )
    .await
    .map_err(pg_error("creating syncline_meta"))?;
    let found = tx
        .query_opt(
            "SELECT value FROM syncline_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .map_err(pg_error("reading the schema version"))?
        .map(|row| version_from(row.get(0)))
        .transpose()?
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tracing::info!(to = index + 1, "migrating the Postgres schema");
        tx.batch_execute(sql)
            .await
            .map_err(pg_error("migrating the schema"))?;
    }
    tx.execute(
        "INSERT INTO syncline_meta (key, value) VALUES ('schema_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        &[&SCHEMA_VERSION.to_be_bytes().to_vec()],
    )
    .await
    .map_err(pg_error("recording the schema version"))?;
    let mut fresh = [0u8; 16];
    getrandom::fill(&mut fresh).map_err(|e| StoreError::Random(e.to_string()))?;
    tx.execute(
        "INSERT INTO syncline_meta (key, value) VALUES ('epoch', $1) ON CONFLICT (key) DO NOTHING",
        &[&fresh.to_vec()],
    )
    .await
    .map_err(pg_error("drawing the epoch"))?;
    let epoch: Vec<u8> = tx
        .query_one("SELECT value FROM syncline_meta WHERE key = 'epoch'", &[])
        .await
        .map_err(pg_error("reading the epoch"))?
        .get(0);
    tx.commit()
        .await
        .map_err(pg_error("committing the migration"))?;
    epoch
        .try_into()
        .map_err(|_| StoreError::Corrupt("the epoch is not 16 bytes".into()))
}

fn version_from(value: Vec<u8>) -> Result<i64, StoreError> {
    let bytes: [u8; 8] = value
        .try_into()
        .map_err(|_| StoreError::Corrupt("the schema version is not 8 bytes".into()))?;
    Ok(i64::from_be_bytes(bytes))
}
