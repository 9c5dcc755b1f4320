//! Compaction: keeping a document's log short.
//!
//! Every delta a document receives or makes is a log entry. When the
//! changes made or received since the last snapshot, or those that are safe
//! to drop, pass a count or byte threshold, one atomic batch stores a snapshot of the whole document and
//! deletes the entries that are safe to drop — those the relay holds
//! (acked local ones, and everything that came from the relay). Two rules
//! make this safe:
//!
//! - an unacknowledged entry is never deleted: it is the outbox, and the
//!   relay does not have it yet. The snapshot lists the entries it keeps
//!   beside it ([`SnapshotRecord::covers`]): their changes are in the
//!   snapshot, so opening the document skips them (a replica that works
//!   offline for long still opens from one snapshot, not thousands of
//!   changes);
//! - a document has one snapshot record, replaced in the same batch that
//!   deletes what the new snapshot covers, so there is never a moment when
//!   neither the old snapshot nor its successor is durable.
//!
//! Tabs of one replica share the log, so only one of them compacts: the
//! host turns compaction off in the others ([`Engine::set_compaction_enabled`]).
//!
//! The snapshot is also offered to the relay (`ClientFrame::Snapshot`), as
//! a sealed delta in the snapshot format ([`crate::delta::encode_snapshot`])
//! covering relay sequences up to the document's cursor: every relay delta
//! up to it is in the snapshot. It goes out once the compaction batch is
//! durable here, at most once per connection, until the relay acks it; a
//! newer compaction replaces it. A replica catching up from below that
//! sequence then gets one snapshot instead of every delta it covers.

use std::collections::BTreeMap;

use syncline_protocol::{ClientFrame, DeltaId, DocId, MAX_FRAME_BYTES};

use crate::delta;
use crate::engine::{Engine, SessionState};
use crate::store::{Batch, Record, SnapshotRecord, Store, entry_key};

/// When to compact a document's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Compact once this many changes were logged since the last snapshot,
    /// or could be dropped (an entry may hold many: a burst, a catch-up)...
    pub max_changes: usize,
    /// ...or once they hold this many bytes.
    pub max_bytes: usize,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            max_changes: 512,
            max_bytes: 1 << 20,
        }
    }
}

/// Snapshots bigger than this are not offered to the relay (they would
/// pass its frame limit).
const MAX_RELAY_SNAPSHOT_BYTES: usize = MAX_FRAME_BYTES - (64 << 10);

/// A compaction's snapshot waiting to be offered to the relay.
#[derive(Debug)]
pub(crate) struct RelaySnapshot {
    /// The relay sequence it covers: the document's cursor when it was made.
    pub(crate) covers_seq: u64,
    pub(crate) id: DeltaId,
    /// Its plaintext ([`delta::encode_snapshot`]).
    plain: Vec<u8>,
    /// The batch that makes the compaction durable here.
    batch: u64,
    /// Sent on the current connection (cleared on disconnect).
    pub(crate) sent: bool,
}

/// What the engine knows about a document's log entries.
#[derive(Debug, Default)]
pub(crate) struct LogIndex {
    entries: BTreeMap<DeltaId, Entry>,
    /// Changes and bytes of the entries the last snapshot does not hold...
    fresh: (usize, usize),
    /// ...and of those the next snapshot may replace.
    droppable: (usize, usize),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    bytes: usize,
    changes: usize,
    /// The relay holds it: a snapshot may replace it.
    droppable: bool,
    /// The snapshot holds its changes.
    covered: bool,
}

impl LogIndex {
    /// Records an entry (again) from its plaintext; a droppable entry never
    /// becomes undroppable, a covered one never uncovered.
    pub(crate) fn note(&mut self, id: DeltaId, plain: &[u8], droppable: bool) {
        let fresh = &mut self.fresh;
        let entry = self.entries.entry(id).or_insert_with(|| {
            let entry = Entry {
                bytes: plain.len(),
                changes: delta::change_count(plain),
                droppable: false,
                covered: false,
            };
            fresh.0 += entry.changes;
            fresh.1 += entry.bytes;
            entry
        });
        if droppable && !entry.droppable {
            entry.droppable = true;
            self.droppable.0 += entry.changes;
            self.droppable.1 += entry.bytes;
        }
    }

    /// Marks a noted entry as held by the snapshot.
    pub(crate) fn cover(&mut self, id: &DeltaId) {
        if let Some(entry) = self.entries.get_mut(id)
            && !entry.covered
        {
            entry.covered = true;
            self.fresh.0 -= entry.changes;
            self.fresh.1 -= entry.bytes;
        }
    }

    /// Forgets an entry if the snapshot holds it, so its record can go:
    /// used when the relay acks it (then nothing needs it any more).
    pub(crate) fn forget_if_covered(&mut self, id: &DeltaId) -> bool {
        let covered = self.entries.get(id).is_some_and(|e| e.covered);
        if covered {
            self.entries.remove(id);
        }
        covered
    }

    /// Every entry it knows of.
    pub(crate) fn ids(&self) -> impl Iterator<Item = DeltaId> + '_ {
        self.entries.keys().copied()
    }

    /// Whether it knows this entry.
    pub(crate) fn contains(&self, id: &DeltaId) -> bool {
        self.entries.contains_key(id)
    }

    fn over(&self, policy: &CompactionPolicy) -> bool {
        let over = |(count, bytes): (usize, usize)| {
            count >= policy.max_changes || bytes >= policy.max_bytes
        };
        over(self.fresh) || over(self.droppable)
    }

    /// For a new snapshot of everything: forgets the droppable entries
    /// (returned, to delete) and marks the rest covered (returned too).
    fn snapshot_taken(&mut self) -> (Vec<DeltaId>, Vec<DeltaId>) {
        let (dropped, kept): (Vec<_>, Vec<_>) = self
            .entries
            .iter()
            .map(|(id, e)| (*id, e.droppable))
            .partition(|(_, droppable)| *droppable);
        for (id, _) in &dropped {
            self.entries.remove(id);
        }
        for entry in self.entries.values_mut() {
            entry.covered = true;
        }
        self.fresh = (0, 0);
        self.droppable = (0, 0);
        let ids = |list: Vec<(DeltaId, bool)>| list.into_iter().map(|(id, _)| id).collect();
        (ids(dropped), ids(kept))
    }
}

impl Engine {
    /// Sets when documents are compacted (tests use tiny thresholds).
    pub fn set_compaction(&mut self, policy: CompactionPolicy) {
        self.compaction = policy;
    }

    /// Turns compaction on (the default) or off. Tabs sharing one log
    /// must not compact at once: only the tab holding the lock compacts.
    pub fn set_compaction_enabled(&mut self, enabled: bool) {
        self.compaction_enabled = enabled;
    }

    /// Offers every durable, unsent compaction snapshot to the relay.
    pub(crate) fn send_snapshots_if_ready(&mut self) {
        if self.session != SessionState::Ready {
            return;
        }
        let durable = self.batches_durable;
        let due: Vec<DocId> = self
            .docs
            .iter()
            .filter(|(_, s)| {
                s.relay_snapshot
                    .as_ref()
                    .is_some_and(|r| !r.sent && r.batch <= durable)
            })
            .map(|(doc, _)| *doc)
            .collect();
        for doc in due {
            let nonce = self.random();
            let Some(state) = self.docs.get_mut(&doc) else {
                continue;
            };
            let Some(snapshot) = &mut state.relay_snapshot else {
                continue;
            };
            snapshot.sent = true;
            let frame = ClientFrame::Snapshot {
                doc,
                covers_seq: snapshot.covers_seq,
                id: snapshot.id,
                bytes: state.key.seal(&doc, nonce, &snapshot.plain),
            };
            self.send(frame);
        }
    }

    /// Compacts `doc` if the entries since its last snapshot passed the
    /// threshold.
    pub(crate) fn maybe_compact(&mut self, doc: DocId) {
        let policy = self.compaction;
        if !self.compaction_enabled {
            return;
        }
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        // Changes whose dependencies have not arrived wait inside Automerge,
        // outside any snapshot: their entries must stay until they apply.
        if !state.log.over(&policy) || !state.doc.get_missing_deps(&[]).is_empty() {
            return;
        }
        let saved = state.doc.save();
        // Every relay delta up to the cursor is in the snapshot.
        let offer = (state.cursor > 0 && saved.len() < MAX_RELAY_SNAPSHOT_BYTES)
            .then(|| delta::encode_snapshot(&saved));
        let (dropped, covers) = state.log.snapshot_taken();
        let mut batch = Batch::default();
        batch.put(&Record::Snapshot(SnapshotRecord {
            doc,
            bytes: saved,
            covers,
        }));
        for id in dropped {
            batch.delete(Store::Entries, entry_key(&doc, &id));
        }
        self.persist(batch);
        if let (Some(plain), Some(state)) = (offer, self.docs.get_mut(&doc)) {
            state.relay_snapshot = Some(RelaySnapshot {
                covers_seq: state.cursor,
                id: state.key.delta_id(&plain),
                plain,
                batch: self.batches_emitted,
                sent: false,
            });
        }
    }
}
