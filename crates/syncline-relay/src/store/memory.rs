//! An in-memory [`Store`]: the same rules as SQLite, nothing durable.
//!
//! For tests and fuzzing, where a connection's state machine runs without
//! sockets or disk. Every operation completes at once, and `on_commit`
//! runs under the store's lock, so it is in commit order like SQLite's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use syncline_protocol::{DeltaId, DocId, PushDelta, SequencedDelta};

use super::{
    Appended, CommitGroup, OnCommit, Page, PageLimits, Snapshot, SnapshotOutcome, Store,
    StoreError, StoreFuture,
};

#[derive(Default)]
struct DocLog {
    /// Index `i` holds seq `i + 1`; covered deltas keep their id, lose bytes.
    deltas: Vec<SequencedDelta>,
    ids: HashMap<DeltaId, u64>,
    snapshot: Option<SequencedDelta>,
}

/// A [`Store`] kept in memory.
#[derive(Default)]
pub struct MemoryStore {
    docs: Mutex<HashMap<DocId, DocLog>>,
    transactions: std::sync::atomic::AtomicU64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn docs(&self) -> MutexGuard<'_, HashMap<DocId, DocLog>> {
        self.docs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn commit_one(&self) {
        self.transactions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn ready<T: Send + 'static>(value: Result<T, StoreError>) -> StoreFuture<T> {
    Box::pin(std::future::ready(value))
}

impl Store for MemoryStore {
    fn epoch(&self) -> [u8; 16] {
        [0x6d; 16]
    }

    fn append(
        &self,
        doc: DocId,
        deltas: Vec<PushDelta>,
        on_commit: OnCommit,
    ) -> StoreFuture<Appended> {
        let mut docs = self.docs();
        let log = docs.entry(doc).or_default();
        let created_before = !log.deltas.is_empty();
        let mut seqs = Vec::with_capacity(deltas.len());
        let mut stored = Vec::new();
        for delta in deltas {
            if let Some(&seq) = log.ids.get(&delta.id) {
                seqs.push(seq);
                continue;
            }
            let seq = log.deltas.len() as u64 + 1;
            let delta = SequencedDelta {
                seq,
                id: delta.id,
                bytes: delta.bytes,
            };
            log.ids.insert(delta.id, seq);
            log.deltas.push(delta.clone());
            stored.push(delta);
            seqs.push(seq);
        }
        let appended = Appended {
            seqs,
            created_doc: !created_before && !log.deltas.is_empty(),
            stored: Arc::from(stored),
        };
        if log.deltas.is_empty() {
            docs.remove(&doc);
        }
        self.commit_one();
        let mut group = CommitGroup::new();
        on_commit(&appended, &mut group);
        group.finish();
        drop(docs);
        ready(Ok(appended))
    }

    fn snapshot(&self, doc: DocId, snapshot: Snapshot) -> StoreFuture<SnapshotOutcome> {
        let mut docs = self.docs();
        let Some(log) = docs.get_mut(&doc) else {
            return ready(Ok(SnapshotOutcome::BeyondHead { head: 0 }));
        };
        let head = log.deltas.len() as u64;
        if snapshot.covers_seq > head {
            return ready(Ok(SnapshotOutcome::BeyondHead { head }));
        }
        if let Some(old) = &log.snapshot
            && old.seq >= snapshot.covers_seq
        {
            return ready(Ok(SnapshotOutcome::Superseded {
                covers_seq: old.seq,
            }));
        }
        let covers = usize::try_from(snapshot.covers_seq).unwrap_or(usize::MAX);
        for delta in &mut log.deltas[..covers] {
            delta.bytes = Vec::new();
        }
        log.snapshot = Some(SequencedDelta {
            seq: snapshot.covers_seq,
            id: snapshot.id,
            bytes: snapshot.bytes,
        });
        self.commit_one();
        ready(Ok(SnapshotOutcome::Stored))
    }

    fn read_page(&self, doc: DocId, after: u64, limits: PageLimits) -> StoreFuture<Page> {
        let docs = self.docs();
        let mut page = Page::default();
        let Some(log) = docs.get(&doc) else {
            return ready(Ok(page));
        };
        let max_items = limits.max_items.max(1);
        let mut from = after;
        let mut bytes = 0usize;
        if let Some(snapshot) = &log.snapshot
            && snapshot.seq > after
        {
            from = snapshot.seq;
            bytes = snapshot.bytes.len();
            page.items.push(snapshot.clone());
        }
        let start = usize::try_from(from).unwrap_or(usize::MAX);
        for delta in log.deltas.get(start..).unwrap_or_default() {
            let full = page.items.len() == max_items
                || (!page.items.is_empty() && bytes + delta.bytes.len() > limits.max_bytes);
            if full {
                page.more = true;
                break;
            }
            bytes += delta.bytes.len();
            page.items.push(delta.clone());
        }
        ready(Ok(page))
    }

    fn document_count(&self) -> StoreFuture<u64> {
        ready(Ok(self.docs().len() as u64))
    }

    fn stored_bytes(&self, doc: Option<DocId>) -> StoreFuture<u64> {
        let docs = self.docs();
        let bytes = |log: &DocLog| -> u64 {
            let snapshot = log.snapshot.iter();
            let all = log.deltas.iter().chain(snapshot);
            all.map(|d| d.bytes.len() as u64).sum()
        };
        ready(Ok(match doc {
            Some(doc) => docs.get(&doc).map_or(0, bytes),
            None => docs.values().map(bytes).sum(),
        }))
    }

    fn transactions(&self) -> u64 {
        self.transactions.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(n: u8) -> PushDelta {
        PushDelta {
            id: DeltaId([n; 32]),
            bytes: vec![n; 4],
        }
    }

    #[tokio::test]
    async fn follows_the_same_rules_as_sqlite() {
        let store = MemoryStore::new();
        let doc = DocId([1; 16]);
        let a = store
            .append(doc, vec![delta(1), delta(2), delta(1)], Box::new(|_, _| {}))
            .await
            .unwrap();
        assert_eq!(a.seqs, vec![1, 2, 1]);
        assert!(a.created_doc);
        store
            .append(doc, vec![delta(3)], Box::new(|_, _| {}))
            .await
            .unwrap();
        let snapshot = Snapshot {
            covers_seq: 2,
            id: DeltaId([9; 32]),
            bytes: vec![9],
        };
        assert_eq!(
            store.snapshot(doc, snapshot.clone()).await.unwrap(),
            SnapshotOutcome::Stored
        );
        assert_eq!(
            store.snapshot(doc, snapshot).await.unwrap(),
            SnapshotOutcome::Superseded { covers_seq: 2 }
        );
        let page = store
            .read_page(doc, 0, PageLimits::default())
            .await
            .unwrap();
        let seqs: Vec<u64> = page.items.iter().map(|d| d.seq).collect();
        assert_eq!(seqs, vec![2, 3]);
        assert_eq!(page.items[0].id, DeltaId([9; 32]));
        assert_eq!(store.document_count().await.unwrap(), 1);
    }
}
