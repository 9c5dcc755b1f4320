//! Compaction: keeping a document's log short.
//!
//! Every delta a document receives or makes is a log entry. When the
//! changes made or received since the last snapshot, or those that are safe
//! to drop, pass a count or byte threshold — or the operations they added
//! pass a share of the document's, or the document has been quiet for a
//! while with changes the snapshot lacks ([`CompactionPolicy`]) — one atomic
//! batch stores a snapshot of the whole document and deletes the entries
//! that are safe to drop — those the relay holds (acked local ones, and
//! everything that came from the relay). Two rules make this safe:
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

use automerge::ReadDoc;

use crate::delta;
use crate::engine::{DocState, Engine, SessionState};
use crate::store::{Batch, Record, SnapshotRecord, Store, ValueRecord, entry_key, snapshot_digest};

/// When to compact a document's log.
///
/// Opening a document loads its snapshot and then applies the changes the
/// snapshot lacks (the *tail*). With Automerge 0.12 the tail is the
/// expensive part: measured on the automerge-paper document (260k
/// operations, one text), applying even one change costs about a third of
/// loading the whole saved document (the text is walked once per call), and
/// each further operation about ten times what loading one costs; saving
/// the document costs about 3 % of loading it. Hence these triggers:
///
/// - by **operations**: the tail is bounded to a share of the document
///   (`1 / ops_divisor` of the operations the snapshot holds, at least
///   `min_ops`), so its replay stays a bounded fraction of the load
///   whatever the document's size, while a big document is re-saved only
///   after a proportionally long tail: the amortised cost of compaction per
///   operation stays constant;
/// - by **changes and bytes** (`max_changes`, `max_bytes`): entries the
///   snapshot can replace (the relay holds them) at these fixed counts,
///   which keep the log short; entries it would only cover (the outbox,
///   offline) at counts that grow with the document once it holds more
///   than `min_ops × ops_divisor` operations (twice that size, twice the
///   counts), and no sooner than there are as many new changes as entries
///   the last snapshot covered (each snapshot lists them all). Covering
///   them only spares replaying them at open, which the operations
///   trigger already bounds; at fixed counts a long offline session on a
///   large document re-saved the whole document, and listed every entry
///   kept, every 512 changes — quadratic: on the automerge-paper trace
///   (260k changes) compaction was 46 % of the engine's instructions.
/// - when **idle**: a document with a tail that received no change for
///   `idle_ms` is compacted, so the next open usually has no tail at all
///   (the fixed cost of applying any change is paid at most once per quiet
///   period, by a save that costs a tenth of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Compact once this many changes were logged since the last snapshot,
    /// or could be dropped (an entry may hold many: a burst, a catch-up)...
    pub max_changes: usize,
    /// ...or once they hold this many bytes...
    pub max_bytes: usize,
    /// ...or once they added this many Automerge operations to the
    /// document...
    pub min_ops: u64,
    /// ...or, if more, this fraction (1 / `ops_divisor`) of the operations
    /// in the last snapshot.
    pub ops_divisor: u64,
    /// Also compact a document that has changes newer than its snapshot
    /// and received none for this long (checked by [`Engine::tick`]);
    /// `None`: never.
    pub idle_ms: Option<u64>,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            max_changes: 512,
            max_bytes: 1 << 20,
            min_ops: 1024,
            ops_divisor: 64,
            idle_ms: Some(2_000),
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
    /// Entries kept beside the snapshot that it covers (the outbox, while
    /// offline): every compaction lists them all again.
    covered: usize,
    /// The document's operations when its snapshot was taken or loaded.
    snapshot_ops: u64,
    /// Counts the entries noted, to tell when the log last grew...
    noted: u64,
    /// ...and since when (ms) `noted` has not changed, as seen by ticks.
    quiet_since: Option<(u64, u64)>,
    /// Bytes of the snapshot record last taken or loaded (for inspection).
    pub(crate) snapshot_bytes: Option<usize>,
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
        let noted = &mut self.noted;
        let entry = self.entries.entry(id).or_insert_with(|| {
            *noted += 1;
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
            self.covered += 1;
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
            self.covered -= 1;
        }
        covered
    }

    /// For inspection ([`crate::inspect`]): entries known and their
    /// plaintext bytes; the changes no snapshot holds yet, and of those
    /// the ones the relay holds.
    pub(crate) fn totals(&self) -> (usize, usize, usize, usize) {
        let bytes = self.entries.values().map(|e| e.bytes).sum();
        (self.entries.len(), bytes, self.fresh.0, self.droppable.0)
    }

    /// Every entry it knows of.
    pub(crate) fn ids(&self) -> impl Iterator<Item = DeltaId> + '_ {
        self.entries.keys().copied()
    }

    /// Whether it knows this entry.
    pub(crate) fn contains(&self, id: &DeltaId) -> bool {
        self.entries.contains_key(id)
    }

    /// Records how many operations the document had when the snapshot
    /// just loaded was taken.
    pub(crate) fn set_snapshot_ops(&mut self, ops: u64) {
        self.snapshot_ops = ops;
    }

    /// Whether the log passed a threshold; `doc_ops`: the document's
    /// operations now.
    fn over(&self, policy: &CompactionPolicy, doc_ops: u64) -> bool {
        let over = |(count, bytes): (usize, usize), scale: usize, at_least: usize| {
            count >= policy.max_changes.saturating_mul(scale).max(at_least)
                || bytes >= policy.max_bytes.saturating_mul(scale)
        };
        let ops_divisor = policy.ops_divisor.max(1);
        let ops_limit = policy.min_ops.max(self.snapshot_ops / ops_divisor);
        // Entries the snapshot would only cover (not replace) are bounded
        // in proportion to the document too, once it is large: see
        // `CompactionPolicy`.
        let scale = self.snapshot_ops / policy.min_ops.saturating_mul(ops_divisor).max(1);
        let scale = usize::try_from(scale).unwrap_or(usize::MAX).max(1);
        let fresh_ops = doc_ops.saturating_sub(self.snapshot_ops);
        // ...and to the entries the last snapshot covered, which the next
        // one lists again: an offline session compacts O(log n) times by
        // count, not every `max_changes`.
        over(self.fresh, scale, self.covered)
            || over(self.droppable, 1, 0)
            || (self.fresh.0 > 0 && fresh_ops >= ops_limit)
    }

    /// Whether the log has entries the snapshot lacks and noted none for
    /// `idle_ms`, as seen by successive calls (one per tick).
    fn idle(&mut self, now_ms: u64, idle_ms: u64) -> bool {
        if self.fresh.0 == 0 {
            self.quiet_since = None;
            return false;
        }
        match self.quiet_since {
            Some((noted, since)) if noted == self.noted => {
                let idle = now_ms.saturating_sub(since) >= idle_ms;
                if idle {
                    // Should the compaction not happen (changes still wait
                    // for their dependencies), the next try is one quiet
                    // period later, not at every tick.
                    self.quiet_since = Some((noted, now_ms));
                }
                idle
            }
            _ => {
                self.quiet_since = Some((self.noted, now_ms));
                false
            }
        }
    }

    /// When [`LogIndex::idle`] next has something to do: `Some(0)` (now)
    /// when the quiet period has not been noted since the last entry.
    pub(crate) fn idle_deadline(&self, idle_ms: u64) -> Option<u64> {
        if self.fresh.0 == 0 {
            return None;
        }
        match self.quiet_since {
            Some((noted, since)) if noted == self.noted => Some(since.saturating_add(idle_ms)),
            _ => Some(0),
        }
    }

    /// For a new snapshot of everything (of a document with `doc_ops`
    /// operations): forgets the droppable entries (returned, to delete) and
    /// marks the rest covered (returned too).
    fn snapshot_taken(&mut self, doc_ops: u64) -> (Vec<DeltaId>, Vec<DeltaId>) {
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
        self.covered = self.entries.len();
        self.fresh = (0, 0);
        self.droppable = (0, 0);
        self.snapshot_ops = doc_ops;
        self.quiet_since = None;
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
        let durable = self.outbox.durable();
        let due: Vec<DocId> = self
            .docs
            .iter()
            .filter(|(_, s)| {
                s.relay_snapshot
                    .as_ref()
                    .is_some_and(|r| !r.sent && r.batch <= durable)
            })
            .map(|(doc, _)| *doc)
            .filter(|doc| self.may_write(doc))
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
        let over = self
            .docs
            .get(&doc)
            .is_some_and(|s| s.log.over(&policy, s.doc.stats().num_ops));
        if over {
            self.compact(doc, true);
        }
    }

    /// Compacts the documents that have changes newer than their snapshot
    /// and received none for [`CompactionPolicy::idle_ms`]. Such a
    /// snapshot is not offered to the relay: a quiet period is no reason to
    /// upload the whole document again.
    pub(crate) fn compact_idle(&mut self, now_ms: u64) {
        let Some(idle_ms) = self.compaction.idle_ms else {
            return;
        };
        if !self.compaction_enabled {
            return;
        }
        let due: Vec<DocId> = self
            .docs
            .iter_mut()
            .filter_map(|(doc, s)| s.log.idle(now_ms, idle_ms).then_some(*doc))
            .collect();
        for doc in due {
            self.compact(doc, false);
        }
    }

    /// Stores a snapshot of `doc` and deletes the entries it replaces;
    /// `offer`: also offer it to the relay.
    fn compact(&mut self, doc: DocId, offer: bool) {
        // A snapshot is a whole document's worth of bytes: not while
        // storage has not taken the backlog (see `crate::backlog`).
        if !self.compaction_enabled || self.backlog_full() {
            return;
        }
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        // Changes whose dependencies have not arrived wait inside Automerge,
        // outside any snapshot: their entries must stay until they apply.
        if !state.doc.get_missing_deps(&[]).is_empty() {
            return;
        }
        let saved = state.doc.save();
        // Every relay delta up to the cursor is in the snapshot.
        let offer = (offer && state.cursor > 0 && saved.len() < MAX_RELAY_SNAPSHOT_BYTES)
            .then(|| delta::encode_snapshot(&saved));
        // The value beside it, for opening without loading the CRDT first
        // (`store::fast_values`): in the same batch, so the two never
        // disagree. Serializing cannot fail (plain values into a String).
        let value = ValueRecord {
            doc,
            snapshot: snapshot_digest(&saved),
            json: serde_json::to_string(&automerge::AutoSerde::from(&state.doc))
                .unwrap_or_default(),
        };
        // Nor when the snapshot and the value would take the backlog past
        // half its limit: the other half is left for local changes, which a
        // snapshot still on its way to storage must not get refused.
        if self.outbox.backlog_bytes() + saved.len() + value.json.len() > self.backlog_limit / 2 {
            return;
        }
        let (dropped, covers) = state.log.snapshot_taken(state.doc.stats().num_ops);
        state.log.snapshot_bytes = Some(saved.len());
        let mut batch = Batch::default();
        batch.put(&Record::Snapshot(SnapshotRecord {
            doc,
            bytes: saved,
            covers,
        }));
        if !value.json.is_empty() {
            batch.put(&Record::Value(value));
        }
        for id in dropped {
            batch.delete(Store::Entries, entry_key(&doc, &id));
        }
        self.persist(batch);
        // It never covers a delta this replica could not use: the relay
        // would drop it for every replica (see `UnusableRecord`).
        let covers_seq = |state: &DocState| match state.unusable_from {
            Some(from) => state.cursor.min(from - 1),
            None => state.cursor,
        };
        if let (Some(plain), Some(state)) = (offer, self.docs.get_mut(&doc))
            && covers_seq(state) > 0
        {
            state.relay_snapshot = Some(RelaySnapshot {
                covers_seq: covers_seq(state),
                id: state.key.delta_id(&plain),
                plain,
                batch: self.outbox.emitted(),
                sent: false,
            });
        }
    }
}
