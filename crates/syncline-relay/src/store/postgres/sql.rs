//! The SQL of the Postgres store: one group commit (pipelined, over
//! prepared statements), a snapshot, a page of a log, the heads of some
//! documents. Plain async functions over a client, free of the writer's
//! queueing and retries.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::future;
use syncline_protocol::{DeltaId, DocId, PushDelta, SequencedDelta};
use tokio_postgres::{Client, GenericClient, Statement};

use super::pg_error;
use crate::store::{
    Appended, Page, PageLimits, Snapshot, SnapshotOutcome, StoreError, delta_id_from_blob,
};

/// The group commit's statements, prepared once per connection: prepared
/// statements are planned once and, unlike SQL text, can be pipelined.
pub struct Statements {
    add_docs: Statement,
    lock_heads: Statement,
    known: Statement,
    insert: Statement,
    bump: Statement,
}

impl Statements {
    /// Prepares them on `client` (two round trips), and has the
    /// connection plan them anew at each execution.
    ///
    /// Postgres switches a prepared statement to a *generic* plan (one for
    /// any parameters) after five executions when it looks no costlier.
    /// Early on, with the tables near empty, that is a hash join over a
    /// sequential scan of `syncline_deltas` for the id lookup, and it
    /// stays cached while the table grows: each group commit then read the
    /// whole log (measured: `hash_bytes` and `HeapTupleSatisfiesVisibility`
    /// at 14% of the machine, throughput below the SQLite relay's). A plan
    /// made for the actual arrays uses the indexes, as the unprepared
    /// queries did.
    pub async fn prepare(client: &Client) -> Result<Statements, StoreError> {
        client
            .batch_execute("SET plan_cache_mode = force_custom_plan")
            .await
            .map_err(pg_error("setting the plan cache mode"))?;
        let (add_docs, lock_heads, known, insert, bump) = future::try_join5(
            client.prepare(
                "INSERT INTO syncline_docs (doc) SELECT unnest($1::bytea[]) ON CONFLICT (doc) DO NOTHING",
            ),
            client.prepare(
                "SELECT doc, head FROM syncline_docs WHERE doc = ANY($1) ORDER BY doc FOR UPDATE",
            ),
            client.prepare(
                "SELECT d.doc, d.id, d.seq FROM syncline_deltas d
                 JOIN unnest($1::bytea[], $2::bytea[]) AS p(doc, id) ON d.doc = p.doc AND d.id = p.id",
            ),
            client.prepare(
                "INSERT INTO syncline_deltas (doc, seq, id, bytes)
                 SELECT * FROM unnest($1::bytea[], $2::int8[], $3::bytea[], $4::bytea[])",
            ),
            client.prepare(
                "UPDATE syncline_docs d SET head = v.head
                 FROM unnest($1::bytea[], $2::int8[]) AS v(doc, head) WHERE d.doc = v.doc",
            ),
        )
        .await
        .map_err(pg_error("preparing the group commit"))?;
        Ok(Statements {
            add_docs,
            lock_heads,
            known,
            insert,
            bump,
        })
    }
}

/// Appends every push of `pushes` (in order) in **one** transaction and
/// commits it. The rows of the documents involved are locked in document
/// order (so two relays' group commits cannot deadlock on them), each
/// push's new deltas are numbered after its document's head, and the heads
/// are bumped before the commit. Returns one [`Appended`] per push.
///
/// Two round trips, whatever the group's size: `BEGIN`, adding the
/// documents, locking their heads and looking the pushed ids up go out
/// together (the server runs them in order, so the lookup sees every
/// commit made before the lock was granted); then the inserts, the heads'
/// bump and `COMMIT`. Every result is checked before the group counts as
/// stored: after a failed statement the server turns `COMMIT` into a
/// rollback. On any error the transaction is rolled back.
pub async fn append_group(
    client: &Client,
    statements: &Statements,
    pushes: &[(DocId, Vec<PushDelta>)],
) -> Result<Vec<Appended>, StoreError> {
    let result = append_group_in(client, statements, pushes).await;
    if result.is_err() && !client.is_closed() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}

async fn append_group_in(
    client: &Client,
    statements: &Statements,
    pushes: &[(DocId, Vec<PushDelta>)],
) -> Result<Vec<Appended>, StoreError> {
    let docs: BTreeSet<DocId> = pushes.iter().map(|(doc, _)| *doc).collect();
    let doc_keys: Vec<Vec<u8>> = docs.iter().map(|d| d.0.to_vec()).collect();
    // Which pushed ids are stored already (by this relay or another).
    let (ask_docs, ask_ids): (Vec<Vec<u8>>, Vec<Vec<u8>>) = pushes
        .iter()
        .flat_map(|(doc, deltas)| deltas.iter().map(|d| (doc.0.to_vec(), d.id.0.to_vec())))
        .unzip();
    let (begun, added, locked, found) = future::join4(
        client.batch_execute("BEGIN"),
        client.execute(&statements.add_docs, &[&doc_keys]),
        client.query(&statements.lock_heads, &[&doc_keys]),
        client.query(&statements.known, &[&ask_docs, &ask_ids]),
    )
    .await;
    begun.map_err(pg_error("starting a group commit"))?;
    added.map_err(pg_error("adding documents"))?;
    let mut heads: HashMap<DocId, u64> = HashMap::with_capacity(docs.len());
    for row in locked.map_err(pg_error("locking document heads"))? {
        heads.insert(doc_from(row.get(0))?, seq_from(row.get(1))?);
    }
    let mut known: HashMap<(DocId, DeltaId), u64> = HashMap::new();
    for row in found.map_err(pg_error("looking up pushed ids"))? {
        let key = (doc_from(row.get(0))?, delta_id_from_blob(row.get(1))?);
        known.insert(key, seq_from(row.get(2))?);
    }
    let starts = heads.clone();
    let mut rows = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut appended = Vec::with_capacity(pushes.len());
    for (doc, deltas) in pushes {
        let head = heads.get_mut(doc).ok_or_else(|| {
            StoreError::Corrupt(format!("document {doc} has no head row after insert"))
        })?;
        let before = *head;
        let mut seqs = Vec::with_capacity(deltas.len());
        let mut stored = Vec::new();
        for delta in deltas {
            if let Some(&seq) = known.get(&(*doc, delta.id)) {
                seqs.push(seq);
                continue;
            }
            *head += 1;
            known.insert((*doc, delta.id), *head);
            seqs.push(*head);
            rows.0.push(doc.0.to_vec());
            rows.1.push(*head as i64);
            rows.2.push(delta.id.0.to_vec());
            rows.3.push(delta.bytes.clone());
            stored.push(SequencedDelta {
                seq: *head,
                id: delta.id,
                bytes: delta.bytes.clone(),
            });
        }
        appended.push(Appended {
            seqs,
            created_doc: before == 0 && *head > 0,
            stored: Arc::from(stored),
        });
    }
    if rows.0.is_empty() {
        client
            .batch_execute("COMMIT")
            .await
            .map_err(pg_error("committing a group commit"))?;
        return Ok(appended);
    }
    let (bumped, new_heads): (Vec<Vec<u8>>, Vec<i64>) = heads
        .iter()
        .filter(|(doc, head)| starts.get(doc) != Some(head))
        .map(|(doc, head)| (doc.0.to_vec(), *head as i64))
        .unzip();
    let (inserted, bumped, committed) = future::join3(
        client.execute(&statements.insert, &[&rows.0, &rows.1, &rows.2, &rows.3]),
        client.execute(&statements.bump, &[&bumped, &new_heads]),
        client.batch_execute("COMMIT"),
    )
    .await;
    inserted.map_err(pg_error("inserting deltas"))?;
    bumped.map_err(pg_error("bumping heads"))?;
    committed.map_err(pg_error("committing a group commit"))?;
    Ok(appended)
}

/// Stores `snapshot` for `doc` in its own transaction, unless refused or
/// superseded; drops the bytes of the deltas it covers.
pub async fn snapshot(
    client: &mut Client,
    doc: DocId,
    snapshot: &Snapshot,
) -> Result<SnapshotOutcome, StoreError> {
    let tx = client
        .transaction()
        .await
        .map_err(pg_error("starting a snapshot"))?;
    let key = doc.0.to_vec();
    let row = tx
        .query_opt(
            "SELECT head, snap_seq, snap_id FROM syncline_docs WHERE doc = $1 FOR UPDATE",
            &[&key],
        )
        .await
        .map_err(pg_error("locking the document"))?;
    let Some(row) = row else {
        return Ok(SnapshotOutcome::BeyondHead { head: 0 });
    };
    let head = seq_from(row.get(0))?;
    let old = seq_from(row.get(1))?;
    let old_id: Option<Vec<u8>> = row.get(2);
    if snapshot.covers_seq > head {
        return Ok(SnapshotOutcome::BeyondHead { head });
    }
    if old >= snapshot.covers_seq || old_id.as_deref() == Some(&snapshot.id.0[..]) {
        return Ok(SnapshotOutcome::Superseded { covers_seq: old });
    }
    let covers = snapshot.covers_seq as i64;
    tx.execute(
        "UPDATE syncline_docs SET snap_seq = $2, snap_id = $3, snap_bytes = $4 WHERE doc = $1",
        &[&key, &covers, &snapshot.id.0.to_vec(), &snapshot.bytes],
    )
    .await
    .map_err(pg_error("storing the snapshot"))?;
    tx.execute(
        "UPDATE syncline_deltas SET bytes = NULL WHERE doc = $1 AND seq <= $2 AND bytes IS NOT NULL",
        &[&key, &covers],
    )
    .await
    .map_err(pg_error("dropping covered deltas"))?;
    tx.commit()
        .await
        .map_err(pg_error("committing the snapshot"))?;
    Ok(SnapshotOutcome::Stored)
}

/// One page of `doc`'s log after `after`, the snapshot first when it
/// covers more than `after`. One statement, so one consistent view.
pub async fn read_page(
    client: &impl GenericClient,
    doc: DocId,
    after: u64,
    limits: PageLimits,
) -> Result<Page, StoreError> {
    let max_items = limits.max_items.max(1);
    let rows = client
        .query(
            "SELECT snap_seq, snap_id, snap_bytes FROM syncline_docs
               WHERE doc = $1 AND snap_seq > $2
             UNION ALL
             (SELECT seq, id, bytes FROM syncline_deltas
               WHERE doc = $1
                 AND seq > GREATEST($2, (SELECT snap_seq FROM syncline_docs WHERE doc = $1))
               ORDER BY seq LIMIT $3)",
            &[&doc.0.to_vec(), &(after as i64), &(max_items as i64 + 1)],
        )
        .await
        .map_err(pg_error("reading a page"))?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let bytes: Option<Vec<u8>> = row.get(2);
        items.push(SequencedDelta {
            seq: seq_from(row.get(0))?,
            id: delta_id_from_blob(row.get(1))?,
            bytes: bytes.ok_or_else(|| {
                StoreError::Corrupt(format!("a delta of {doc} above its snapshot has no bytes"))
            })?,
        });
    }
    items.sort_by_key(|d| d.seq);
    let mut page = Page::default();
    let mut bytes = 0usize;
    for item in items {
        let full = page.items.len() == max_items
            || (!page.items.is_empty() && bytes + item.bytes.len() > limits.max_bytes);
        if full {
            page.more = true;
            break;
        }
        bytes += item.bytes.len();
        page.items.push(item);
    }
    Ok(page)
}

/// The heads of those of `docs` that have a log.
pub async fn heads(
    client: &impl GenericClient,
    docs: &[DocId],
) -> Result<Vec<(DocId, u64)>, StoreError> {
    let keys: Vec<Vec<u8>> = docs.iter().map(|d| d.0.to_vec()).collect();
    let rows = client
        .query(
            "SELECT doc, head FROM syncline_docs WHERE doc = ANY($1) AND head > 0",
            &[&keys],
        )
        .await
        .map_err(pg_error("reading heads"))?;
    rows.into_iter()
        .map(|row| Ok((doc_from(row.get(0))?, seq_from(row.get(1))?)))
        .collect()
}

/// How many documents have a log.
pub async fn document_count(client: &impl GenericClient) -> Result<u64, StoreError> {
    let row = client
        .query_one("SELECT count(*) FROM syncline_docs WHERE head > 0", &[])
        .await
        .map_err(pg_error("counting documents"))?;
    seq_from(row.get(0))
}

/// The delta and snapshot bytes stored for `doc`, or for all.
pub async fn stored_bytes(
    client: &impl GenericClient,
    doc: Option<DocId>,
) -> Result<u64, StoreError> {
    let doc = doc.map(|doc| doc.0.to_vec());
    let row = client
        .query_one(
            "SELECT (SELECT COALESCE(SUM(length(bytes)), 0) FROM syncline_deltas
                      WHERE $1::bytea IS NULL OR doc = $1)
                  + (SELECT COALESCE(SUM(length(snap_bytes)), 0) FROM syncline_docs
                      WHERE $1::bytea IS NULL OR doc = $1)",
            &[&doc],
        )
        .await
        .map_err(pg_error("summing stored bytes"))?;
    // length() is an int4, so each SUM is a bigint.
    seq_from(row.get(0))
}

fn doc_from(blob: Vec<u8>) -> Result<DocId, StoreError> {
    let len = blob.len();
    blob.try_into()
        .map(DocId)
        .map_err(|_| StoreError::Corrupt(format!("a document id of {len} bytes (expected 16)")))
}

fn seq_from(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("a negative sequence {value}")))
}
