//! Tests of the SQLite log and store: sequences, dedup, paging,
//! snapshots, the schema, and group commit.

use std::sync::Mutex;

use super::*;
use syncline_protocol::{DeltaId, SequencedDelta};

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
    let appended = store
        .append(DOC, vec![delta(1), delta(2)], Box::new(|_, _| {}))
        .await
        .unwrap();
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

fn snap(covers_seq: u64, tag: u8) -> Snapshot {
    Snapshot {
        covers_seq,
        id: DeltaId([0xa0 + tag; 32]),
        bytes: vec![tag; 50],
    }
}

fn seqs(items: &[SequencedDelta]) -> Vec<u64> {
    items.iter().map(|d| d.seq).collect()
}

#[test]
fn a_snapshot_replaces_the_deltas_it_covers_for_readers_from_below() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SqliteLog::open(&dir.path().join("db")).unwrap();
    log.append(DOC, (1..=6).map(delta).collect()).unwrap();
    assert_eq!(
        log.store_snapshot(DOC, snap(4, 1)).unwrap(),
        SnapshotOutcome::Stored
    );
    let all = PageLimits::default();
    // From 0 and from 3 (below 4): the snapshot as seq 4, then 5 and 6.
    for after in [0, 3] {
        let page = log.read_page(DOC, after, all).unwrap();
        assert_eq!(seqs(&page.items), vec![4, 5, 6]);
        assert_eq!(page.items[0].id, snap(4, 1).id);
        assert_eq!(page.items[0].bytes, snap(4, 1).bytes);
    }
    // From 4 or later: plain deltas.
    let page = log.read_page(DOC, 4, all).unwrap();
    assert_eq!(seqs(&page.items), vec![5, 6]);
    assert_eq!(page.items[0].bytes, delta(5).bytes);
    // Paging works across the snapshot.
    let one = PageLimits {
        max_items: 1,
        max_bytes: usize::MAX,
    };
    let page = log.read_page(DOC, 0, one).unwrap();
    assert_eq!(seqs(&page.items), vec![4]);
    assert!(page.more);
    // The covered deltas' bytes are gone, their ids still deduplicate.
    let empty: i64 = log
        .conn
        .query_row(
            "SELECT COUNT(*) FROM deltas WHERE length(bytes) = 0",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(empty, 4);
    let again = log.append(DOC, vec![delta(2), delta(7)]).unwrap();
    assert_eq!(again.seqs, vec![2, 7]);
}

#[test]
fn older_or_equal_snapshots_are_superseded_and_beyond_the_head_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SqliteLog::open(&dir.path().join("db")).unwrap();
    assert_eq!(
        log.store_snapshot(DOC, snap(1, 1)).unwrap(),
        SnapshotOutcome::BeyondHead { head: 0 }
    );
    log.append(DOC, (1..=5).map(delta).collect()).unwrap();
    assert_eq!(
        log.store_snapshot(DOC, snap(6, 1)).unwrap(),
        SnapshotOutcome::BeyondHead { head: 5 }
    );
    assert_eq!(
        log.store_snapshot(DOC, snap(3, 1)).unwrap(),
        SnapshotOutcome::Stored
    );
    assert_eq!(
        log.store_snapshot(DOC, snap(2, 2)).unwrap(),
        SnapshotOutcome::Superseded { covers_seq: 3 }
    );
    assert_eq!(
        log.store_snapshot(DOC, snap(3, 3)).unwrap(),
        SnapshotOutcome::Superseded { covers_seq: 3 }
    );
    assert_eq!(
        log.store_snapshot(DOC, snap(5, 4)).unwrap(),
        SnapshotOutcome::Stored
    );
    let page = log.read_page(DOC, 2, PageLimits::default()).unwrap();
    assert_eq!(seqs(&page.items), vec![5]);
    assert_eq!(page.items[0].id, snap(5, 4).id);
    // Another document is untouched.
    assert!(
        log.read_page(OTHER, 0, PageLimits::default())
            .unwrap()
            .items
            .is_empty()
    );
}

#[test]
fn a_version_1_database_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
             CREATE TABLE deltas (doc BLOB NOT NULL, seq INTEGER NOT NULL, id BLOB NOT NULL,
                 bytes BLOB NOT NULL, PRIMARY KEY (doc, seq), UNIQUE (doc, id));
             INSERT INTO meta VALUES ('epoch', x'00112233445566778899aabbccddeeff');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let mut log = SqliteLog::open(&path).unwrap();
    assert_eq!(log.epoch().unwrap()[1], 0x11, "the old epoch is kept");
    log.append(DOC, vec![delta(1), delta(2)]).unwrap();
    assert_eq!(
        log.store_snapshot(DOC, snap(2, 1)).unwrap(),
        SnapshotOutcome::Stored
    );
    assert_eq!(log.document_count().unwrap(), 1);
}

#[test]
fn queued_jobs_commit_in_one_transaction_and_complete_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(&dir.path().join("db")).unwrap();
    let (tx, rx) = mpsc::channel();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut replies = Vec::new();
    // Queue everything before the writer starts: one batch.
    for n in 0..100u8 {
        let (reply, outcome) = oneshot::channel();
        let order = Arc::clone(&order);
        let doc = if n % 2 == 0 { DOC } else { OTHER };
        tx.send(Job::Append {
            doc,
            deltas: vec![delta(n)],
            on_commit: Box::new(move |appended: &Appended, _: &mut _| {
                order.lock().unwrap().push((doc, appended.highest_seq()));
            }),
            reply,
        })
        .unwrap();
        replies.push(outcome);
    }
    let (reply, snapshot_outcome) = oneshot::channel();
    tx.send(Job::Snapshot {
        doc: DOC,
        snapshot: snap(50, 1),
        reply,
    })
    .unwrap();
    drop(tx);
    let transactions = Arc::new(AtomicU64::new(0));
    write_loop(log, rx, Arc::clone(&transactions));
    assert_eq!(transactions.load(Ordering::Relaxed), 1, "one group commit");
    for (n, mut outcome) in replies.into_iter().enumerate() {
        let appended = outcome.try_recv().unwrap().unwrap();
        assert_eq!(appended.seqs, vec![n as u64 / 2 + 1]);
        assert_eq!(appended.created_doc, n < 2);
    }
    let order = order.lock().unwrap();
    for doc in [DOC, OTHER] {
        let per_doc: Vec<u64> = order
            .iter()
            .filter(|(d, _)| *d == doc)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(
            per_doc,
            (1..=50).collect::<Vec<_>>(),
            "on_commit in seq order"
        );
    }
    let mut snapshot_outcome = snapshot_outcome;
    assert_eq!(
        snapshot_outcome.try_recv().unwrap().unwrap(),
        SnapshotOutcome::Stored,
        "the snapshot saw the appends queued before it"
    );
}

#[tokio::test]
async fn the_async_store_batches_concurrent_appends() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    // `append` queues at call time: issue them all, then await them all.
    let pending: Vec<_> = (0..200u8)
        .map(|n| store.append(DOC, vec![delta(n)], Box::new(|_, _| {})))
        .collect();
    let mut seqs = Vec::new();
    for appended in pending {
        seqs.extend(appended.await.unwrap().seqs);
    }
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    assert!(
        store.transactions() < 200,
        "{} transactions",
        store.transactions()
    );
    assert_eq!(store.document_count().await.unwrap(), 1);
}
