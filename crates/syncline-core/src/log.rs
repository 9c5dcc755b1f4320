//! A replica's log, read back: loading it at start, absorbing records
//! another tab wrote while this engine ran, and deleting a document.
//!
//! [`Engine::load`] and [`Engine::absorb`] share one path: records are
//! grouped by document, snapshots are merged first, then every entry's
//! changes in one Automerge call (which orders them by their dependencies),
//! and unacknowledged local entries join the outbox. Absorbing is
//! idempotent: changes and entries already known are no-ops, so a host may
//! hand in a document's whole log at any time.
//!
//! [`Engine::delete_doc`] forgets a document in memory and deletes its
//! records in one batch.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use syncline_protocol::{ClientFrame, DeltaId, DocId};

use automerge::ReadDoc;

use crate::EngineError;
use crate::delta;
use crate::engine::{Effect, Engine, SessionState, load_automerge};
use crate::seal::DocKey;
use crate::store::{
    Batch, LogEntry, Origin, Record, SnapshotRecord, Store, entry_key, unusable_key,
};

/// A document's records, sorted out of a pile of (store, key, bytes).
#[derive(Default)]
struct DocRecords {
    record: Option<(DocKey, u64)>,
    snapshot: Option<(String, SnapshotRecord)>,
    entries: Vec<(String, LogEntry)>,
    unusable_from: Option<u64>,
}

impl Engine {
    /// Rebuilds a replica from every record of its log, in any order. An
    /// unreadable record is skipped and reported; the rest still loads.
    pub fn load(
        seed: [u8; 32],
        records: impl IntoIterator<Item = (Store, String, Vec<u8>)>,
    ) -> (Engine, Vec<EngineError>) {
        let mut engine = Engine::new(seed);
        let problems = engine.absorb(records, 0);
        (engine, problems)
    }

    /// Merges records read back from storage, e.g. those of a document
    /// another tab created (or wrote to) while this engine was running:
    /// the host reads that document's records and hands them in, before
    /// [`Engine::open_doc`]. Known documents gain what they lacked (changes,
    /// outbox entries, a higher cursor); unknown ones are added and
    /// subscribed. Nothing is written: the records are already stored.
    /// Unreadable records are skipped and reported, as in [`Engine::load`].
    pub fn absorb(
        &mut self,
        records: impl IntoIterator<Item = (Store, String, Vec<u8>)>,
        now_ms: u64,
    ) -> Vec<EngineError> {
        let mut problems = Vec::new();
        let mut docs: BTreeMap<DocId, DocRecords> = BTreeMap::new();
        for (store, key, bytes) in records {
            let corrupt = |reason: String| EngineError::Corrupt {
                store: store.name(),
                key: key.clone(),
                reason,
            };
            match Record::decode(&bytes) {
                Ok(record) if record.address() != (store, key.clone()) => {
                    problems.push(corrupt("record is stored under the wrong key".into()))
                }
                Ok(Record::Entry(entry)) => docs
                    .entry(entry.doc)
                    .or_default()
                    .entries
                    .push((key, entry)),
                Ok(Record::Doc(d)) => {
                    docs.entry(d.doc).or_default().record = Some((DocKey(d.key), d.cursor))
                }
                Ok(Record::Relay(r)) => {
                    // Another tab may have met the relay first; our own
                    // epoch, once we have one, stays ours.
                    self.relay.get_or_insert(r);
                }
                Ok(Record::Snapshot(s)) => {
                    let doc = s.doc;
                    docs.entry(doc).or_default().snapshot = Some((key, s));
                }
                Ok(Record::SnapshotV1(s)) => {
                    let doc = s.doc;
                    docs.entry(doc).or_default().snapshot = Some((key, s.into()));
                }
                // Only read before the CRDT loads (`store::fast_values`);
                // the snapshot beside it is what loads.
                Ok(Record::Value(_)) => {}
                Ok(Record::Unusable(u)) => {
                    docs.entry(u.doc).or_default().unusable_from = Some(u.from_seq)
                }
                Err(reason) => problems.push(corrupt(reason)),
            }
        }
        let first_new = self.outbox.len();
        for (doc, records) in docs {
            self.absorb_doc(doc, records, now_ms, &mut problems);
        }
        self.push_if_ready(first_new..self.outbox.len(), now_ms);
        problems
    }

    fn absorb_doc(
        &mut self,
        doc: DocId,
        records: DocRecords,
        now_ms: u64,
        problems: &mut Vec<EngineError>,
    ) {
        let is_new = !self.docs.contains_key(&doc);
        let cursor = match (records.record, self.docs.get(&doc)) {
            (Some((key, _)), Some(state)) if state.key != key => {
                problems.push(EngineError::KeyMismatch(doc));
                return;
            }
            (Some((key, cursor)), _) => {
                self.insert_doc(doc, key);
                cursor
            }
            (None, Some(_)) => 0,
            (None, None) => {
                let key = match (&records.snapshot, records.entries.first()) {
                    (Some((key, _)), _) => (Store::Snapshots, key.clone()),
                    (None, Some((key, _))) => (Store::Entries, key.clone()),
                    (None, None) => return,
                };
                problems.push(EngineError::Corrupt {
                    store: key.0.name(),
                    key: key.1,
                    reason: format!(
                        "document {doc} has log records but its document record is missing"
                    ),
                });
                return;
            }
        };
        let actor = self.actor.clone();
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        if let Some(from) = records.unusable_from {
            state.unusable_from = Some(state.unusable_from.map_or(from, |f| f.min(from)));
        }
        let mut changed = false;
        let mut clean = true;
        // Entries whose changes the snapshot holds: not applied again.
        let mut covered = HashSet::new();
        if let Some((key, snapshot)) = records.snapshot {
            state.log.snapshot_bytes = Some(snapshot.bytes.len());
            let result = if state.doc.get_heads().is_empty() {
                // The fast path: a fresh document loads whole.
                load_automerge(&snapshot.bytes).map(|loaded| {
                    state.log.set_snapshot_ops(loaded.stats().num_ops);
                    state.doc = loaded.with_actor(actor)
                })
            } else {
                state.doc.load_incremental(&snapshot.bytes).map(|_| ())
            };
            match result {
                Ok(()) => {
                    changed = true;
                    covered.extend(snapshot.covers);
                }
                Err(e) => {
                    clean = false;
                    problems.push(EngineError::Corrupt {
                        store: Store::Snapshots.name(),
                        key,
                        reason: e.to_string(),
                    })
                }
            }
        }
        let mut list = records.entries;
        list.sort_by_key(|(_, e)| (e.time_ms, e.id));
        let mut changes = Vec::new();
        for (key, entry) in &list {
            let droppable = entry.origin == Origin::Relay || entry.relay_seq.is_some();
            state.log.note(entry.id, &entry.bytes, droppable);
            if covered.contains(&entry.id) {
                state.log.cover(&entry.id);
                continue;
            }
            match delta::decode(&entry.bytes) {
                Ok(c) => changes.extend(c),
                Err(error) => {
                    clean = false;
                    problems.push(EngineError::Corrupt {
                        store: Store::Entries.name(),
                        key: key.clone(),
                        reason: error.to_string(),
                    })
                }
            }
        }
        if !changes.is_empty() {
            changed = true;
            // One call: Automerge orders the changes by their dependencies.
            if let Err(e) = state.doc.apply_changes(changes) {
                clean = false;
                problems.push(EngineError::Corrupt {
                    store: Store::Entries.name(),
                    key: doc.to_string(),
                    reason: e.to_string(),
                });
            }
        }
        // The stored cursor is covered by the records just merged.
        if clean && cursor > state.cursor {
            state.cursor = cursor;
        }
        // Unacknowledged entries read from storage: durable, not pushed.
        for (_, entry) in list {
            if entry.origin != Origin::Relay && entry.relay_seq.is_none() {
                self.outbox.adopt(entry);
            }
        }
        if is_new {
            self.request_access(doc, now_ms);
        } else if changed {
            self.emit(Effect::DocChanged(doc));
        }
    }

    /// Deletes a document from this replica: unsubscribes it, forgets it in
    /// memory, and deletes all its records (document record, snapshot, every
    /// entry this engine knows of, outbox included) in one batch. Another
    /// tab that has the document open must delete it too.
    pub fn delete_doc(&mut self, doc: DocId) -> Result<(), EngineError> {
        let state = self
            .docs
            .remove(&doc)
            .ok_or(EngineError::DocNotFound(doc))?;
        if self.session == SessionState::Ready {
            self.send(ClientFrame::Unsubscribe { doc });
        }
        let mut ids: BTreeSet<DeltaId> = state.log.ids().collect();
        ids.extend(self.outbox.remove_doc(&doc));
        let mut batch = Batch::default();
        batch.delete(Store::Docs, doc.to_string());
        batch.delete(Store::Snapshots, doc.to_string());
        batch.delete(Store::Values, doc.to_string());
        batch.delete(Store::Meta, unusable_key(&doc));
        for id in ids {
            batch.delete(Store::Entries, entry_key(&doc, &id));
        }
        self.persist(batch);
        self.emit(Effect::StatusChanged);
        Ok(())
    }
}
