//! Storage quotas: most bytes stored per document (`--doc-quota`) and in
//! all (`--total-quota`).
//!
//! A push is admitted when what is stored plus the push's delta bytes
//! stays within both quotas; otherwise it is refused with
//! `DocError{doc, QuotaExceeded}` (`LimitExceeded` for protocol versions
//! below 3) and nothing of it is stored. The count is the delta and
//! snapshot bytes, before deduplication (a re-push of stored deltas counts
//! again at the door, not once stored). A snapshot is always accepted: it
//! replaces the bytes of the deltas it covers, so it frees room.
//!
//! The relay reads what a document holds from the store the first time a
//! push reaches it ([`Store::stored_bytes`]), and the total at start; then
//! it counts its own commits. Pushes in flight at once are each checked
//! against what was committed, so a connection may overshoot by what it
//! has in flight (at most 8 MiB). In a cluster each relay counts its own
//! commits on top of what it read, so the quota holds per relay, not
//! across the cluster.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use syncline_protocol::DocId;

use crate::metrics::{Limit, Metrics};
use crate::store::{Store, StoreError};

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuotaExceeded {
    /// The document would hold more than its quota.
    #[error(
        "document {doc} holds {used} bytes; {adding} more would pass this relay's quota of {max} bytes per document: compact it with a snapshot, or start a new document"
    )]
    Doc {
        /// The document.
        doc: DocId,
        /// What it holds.
        used: u64,
        /// What the push adds.
        adding: u64,
        /// The quota.
        max: u64,
    },
    /// The relay would hold more than its total quota.
    #[error(
        "this relay's storage is full ({max} bytes in all): nothing more can be stored until its operator makes room; your changes stay on your device"
    )]
    Total {
        /// The quota.
        max: u64,
    },
}

#[derive(Default)]
struct Usage {
    /// Bytes per document read or counted so far.
    docs: HashMap<DocId, u64>,
    /// Bytes in all (counted only with a total quota).
    total: u64,
}

/// The relay's storage quotas and what it knows it stores.
pub struct Quota {
    store: Arc<dyn Store>,
    doc_max: u64,
    total_max: u64,
    usage: Mutex<Usage>,
}

impl Quota {
    /// Quotas of `doc_max` bytes per document and `total_max` in all (0:
    /// none) over `store`; reads the total from it when there is a total
    /// quota.
    pub async fn open(
        store: Arc<dyn Store>,
        doc_max: u64,
        total_max: u64,
    ) -> Result<Quota, StoreError> {
        let total = if total_max > 0 {
            store.stored_bytes(None).await?
        } else {
            0
        };
        Ok(Quota::with_total(store, doc_max, total_max, total))
    }

    /// Quotas as [`Quota::open`], knowing the store holds `total` bytes.
    pub fn with_total(store: Arc<dyn Store>, doc_max: u64, total_max: u64, total: u64) -> Quota {
        Quota {
            store,
            doc_max,
            total_max,
            usage: Mutex::new(Usage {
                docs: HashMap::new(),
                total,
            }),
        }
    }

    /// No quota at all.
    pub fn unlimited(store: Arc<dyn Store>) -> Quota {
        Quota::with_total(store, 0, 0, 0)
    }

    fn usage(&self) -> MutexGuard<'_, Usage> {
        self.usage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What `doc` holds, read from the store the first time.
    async fn doc_usage(&self, doc: DocId) -> Result<u64, StoreError> {
        if let Some(used) = self.usage().docs.get(&doc) {
            return Ok(*used);
        }
        let used = self.store.stored_bytes(Some(doc)).await?;
        Ok(*self.usage().docs.entry(doc).or_insert(used))
    }

    /// Whether a push of `adding` delta bytes to `doc` fits; counts a
    /// refusal in `metrics`. A store that cannot say is no reason to
    /// refuse: the push goes on (and meets the same store).
    pub async fn admit(
        &self,
        doc: DocId,
        adding: u64,
        metrics: &Metrics,
    ) -> Result<(), QuotaExceeded> {
        if self.doc_max > 0 {
            match self.doc_usage(doc).await {
                Ok(used) if used.saturating_add(adding) > self.doc_max => {
                    metrics.limit_exceeded(Limit::DocQuota);
                    return Err(QuotaExceeded::Doc {
                        doc,
                        used,
                        adding,
                        max: self.doc_max,
                    });
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%doc, %error, "cannot read the document's size"),
            }
        }
        if self.total_max > 0 && self.usage().total.saturating_add(adding) > self.total_max {
            metrics.limit_exceeded(Limit::TotalQuota);
            return Err(QuotaExceeded::Total {
                max: self.total_max,
            });
        }
        Ok(())
    }

    /// Counts `bytes` newly stored for `doc`.
    pub fn committed(&self, doc: DocId, bytes: u64) {
        let mut usage = self.usage();
        usage.total = usage.total.saturating_add(bytes);
        if let Some(used) = usage.docs.get_mut(&doc) {
            *used = used.saturating_add(bytes);
        }
    }

    /// Recounts `doc` after a snapshot replaced some of its bytes.
    pub async fn snapshot_stored(&self, doc: DocId) {
        if self.doc_max == 0 && self.total_max == 0 {
            return;
        }
        let before = self.usage().docs.remove(&doc);
        match self.store.stored_bytes(Some(doc)).await {
            Ok(after) => {
                let known = {
                    let mut usage = self.usage();
                    usage.docs.insert(doc, after);
                    if let Some(before) = before {
                        usage.total = (usage.total + after).saturating_sub(before);
                    }
                    before.is_some()
                };
                if !known {
                    self.recount_total().await;
                }
            }
            Err(error) => tracing::warn!(%doc, %error, "cannot recount the document's size"),
        }
    }

    async fn recount_total(&self) {
        if self.total_max == 0 {
            return;
        }
        match self.store.stored_bytes(None).await {
            Ok(total) => self.usage().total = total,
            Err(error) => tracing::warn!(%error, "cannot recount the stored bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::{CommitGroup, Snapshot};
    use syncline_protocol::{DeltaId, PushDelta};

    fn delta(n: u8, len: usize) -> PushDelta {
        PushDelta {
            id: DeltaId([n; 32]),
            bytes: vec![n; len],
        }
    }

    async fn append(store: &MemoryStore, doc: DocId, delta: PushDelta) {
        let on_commit = Box::new(|_: &_, _: &mut CommitGroup| {});
        store.append(doc, vec![delta], on_commit).await.unwrap();
    }

    #[tokio::test]
    async fn quotas_count_what_is_stored_and_snapshots_free_room() {
        let store = Arc::new(MemoryStore::new());
        let (a, b) = (DocId([1; 16]), DocId([2; 16]));
        append(&store, a, delta(1, 600)).await;
        let quota = Quota::open(store.clone(), 1000, 1500).await.unwrap();
        let metrics = Metrics::default();
        assert!(quota.admit(a, 400, &metrics).await.is_ok());
        assert_eq!(
            quota.admit(a, 401, &metrics).await,
            Err(QuotaExceeded::Doc {
                doc: a,
                used: 600,
                adding: 401,
                max: 1000
            })
        );
        append(&store, b, delta(2, 800)).await;
        quota.committed(b, 800);
        assert_eq!(
            quota.admit(b, 101, &metrics).await,
            Err(QuotaExceeded::Total { max: 1500 })
        );
        // A snapshot of `a` standing for its 600 bytes in 10.
        let snapshot = Snapshot {
            covers_seq: 1,
            id: DeltaId([9; 32]),
            bytes: vec![9; 10],
        };
        store.snapshot(a, snapshot).await.unwrap();
        quota.snapshot_stored(a).await;
        assert!(quota.admit(b, 101, &metrics).await.is_ok());
        assert!(quota.admit(a, 680, &metrics).await.is_ok());
        assert_eq!(
            quota.admit(a, 700, &metrics).await,
            Err(QuotaExceeded::Total { max: 1500 }),
            "810 bytes stored in all"
        );
        let none = Quota::unlimited(store);
        assert!(none.admit(a, u64::MAX, &metrics).await.is_ok());
    }
}
