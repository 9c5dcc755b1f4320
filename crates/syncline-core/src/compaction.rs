//! Compaction: keeping a document's log short.
//!
//! Every delta a document receives or makes is a log entry. When the entries
//! that are safe to drop — those the relay holds (acked local ones, and
//! everything that came from the relay) — pass a count or byte threshold,
//! one atomic batch stores a snapshot of the whole document and deletes
//! exactly those entries. Two rules make this safe:
//!
//! - an unacknowledged entry is never deleted: it is the outbox, and the
//!   relay does not have it yet;
//! - a document has one snapshot record, replaced in the same batch that
//!   deletes what the new snapshot covers, so there is never a moment when
//!   neither the old snapshot nor its successor is durable.

use std::collections::BTreeMap;

use syncline_protocol::{DeltaId, DocId};

use crate::engine::Engine;
use crate::store::{Batch, Record, SnapshotRecord, Store, entry_key};

/// When to compact a document's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Compact once this many entries could be dropped...
    pub max_entries: usize,
    /// ...or once they hold this many bytes.
    pub max_bytes: usize,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            max_entries: 512,
            max_bytes: 1 << 20,
        }
    }
}

/// What the engine knows about a document's log entries.
#[derive(Debug, Default)]
pub(crate) struct LogIndex {
    entries: BTreeMap<DeltaId, Entry>,
    /// Count and bytes of the entries a snapshot may replace.
    droppable: (usize, usize),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    bytes: usize,
    /// The relay holds it: a snapshot may replace it.
    droppable: bool,
}

impl LogIndex {
    /// Records an entry (again); a droppable entry never becomes
    /// undroppable.
    pub(crate) fn note(&mut self, id: DeltaId, bytes: usize, droppable: bool) {
        let entry = self.entries.entry(id).or_insert(Entry {
            bytes,
            droppable: false,
        });
        if droppable && !entry.droppable {
            entry.droppable = true;
            self.droppable.0 += 1;
            self.droppable.1 += entry.bytes;
        }
    }

    fn over(&self, policy: &CompactionPolicy) -> bool {
        self.droppable.0 >= policy.max_entries || self.droppable.1 >= policy.max_bytes
    }

    fn take_droppable(&mut self) -> Vec<DeltaId> {
        let ids: Vec<DeltaId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.droppable)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.entries.remove(id);
        }
        self.droppable = (0, 0);
        ids
    }
}

impl Engine {
    /// Sets when documents are compacted (tests use tiny thresholds).
    pub fn set_compaction(&mut self, policy: CompactionPolicy) {
        self.compaction = policy;
    }

    /// Compacts `doc` if its droppable entries passed the threshold.
    pub(crate) fn maybe_compact(&mut self, doc: DocId) {
        let policy = self.compaction;
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        // Changes whose dependencies have not arrived wait inside Automerge,
        // outside any snapshot: their entries must stay until they apply.
        if !state.log.over(&policy) || !state.doc.get_missing_deps(&[]).is_empty() {
            return;
        }
        let mut batch = Batch::default();
        batch.put(&Record::Snapshot(SnapshotRecord {
            doc,
            bytes: state.doc.save(),
        }));
        for id in state.log.take_droppable() {
            batch.delete(Store::Entries, entry_key(&doc, &id));
        }
        self.persist(batch);
    }
}
