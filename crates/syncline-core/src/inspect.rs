//! Read-only figures about one document for inspection tools (the
//! browser devtools): the size of its log and snapshot, how far the relay
//! has served it, and whether compaction runs here. Nothing here changes
//! the engine, and nothing here holds a key or a document's content.

use syncline_protocol::DocId;

use crate::engine::Engine;

/// One document's log, snapshot and relay position, as this replica sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocInspection {
    /// Log entries (deltas) kept beside the snapshot.
    pub log_entries: usize,
    /// Their plaintext bytes (stored sealed, a little larger).
    pub log_bytes: usize,
    /// Changes no snapshot holds yet: what the next compaction would fold in...
    pub fresh_changes: usize,
    /// ...and of those, the changes the relay holds (acknowledged or
    /// received from it): the next snapshot may delete their entries.
    pub relay_held_changes: usize,
    /// Bytes of the snapshot record last taken or loaded; `None`: never compacted here.
    pub snapshot_bytes: Option<usize>,
    /// Every relay delta up to this sequence is applied here.
    pub relay_seq: u64,
    /// The relay has sent everything it had for it (this session).
    pub caught_up: bool,
    /// Whether this engine compacts (one tab of an origin does).
    pub compaction_enabled: bool,
}

impl Engine {
    /// Figures about `doc` for inspection; `None` if it is not loaded
    /// (unknown, or shown from its stored value while its CRDT loads).
    pub fn inspect_doc(&self, doc: &DocId) -> Option<DocInspection> {
        let state = self.docs.get(doc)?;
        let (log_entries, log_bytes, fresh_changes, relay_held_changes) = state.log.totals();
        Some(DocInspection {
            log_entries,
            log_bytes,
            fresh_changes,
            relay_held_changes,
            snapshot_bytes: state.log.snapshot_bytes,
            relay_seq: state.cursor,
            caught_up: state.caught_up,
            compaction_enabled: self.compaction_enabled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CompactionPolicy, Effect, MemoryStore};
    use serde_json::json;

    fn persist_all(engine: &mut Engine, store: &mut MemoryStore) {
        for effect in engine.take_effects() {
            if let Effect::Persist(batch) = effect {
                store.apply(&batch);
                engine.persisted(batch.id, 0);
            }
        }
    }

    #[test]
    fn counts_the_log_and_the_snapshot_after_compaction() {
        let mut engine = Engine::new([3; 32]);
        let url = engine.create_doc(&json!({"n": 0}), 0).unwrap();
        let mut store = MemoryStore::default();
        persist_all(&mut engine, &mut store);
        let before = engine.inspect_doc(&url.doc).unwrap();
        assert!(before.log_entries >= 1 && before.log_bytes > 0);
        assert_eq!(before.snapshot_bytes, None);
        assert!(before.compaction_enabled);
        assert_eq!(engine.inspect_doc(&DocId([0; 16])), None);

        // Reloaded from a store holding a snapshot: its size is known.
        engine.set_compaction(CompactionPolicy {
            max_changes: 2,
            ..CompactionPolicy::default()
        });
        for n in 1..5 {
            let op: crate::Op =
                serde_json::from_value(json!({"op": "put", "obj": [], "key": "n", "value": n}))
                    .unwrap();
            engine.change(url.doc, &[op], None, n).unwrap();
            persist_all(&mut engine, &mut store);
            engine.tick(n * 1_000_000);
            persist_all(&mut engine, &mut store);
        }
        let (reloaded, problems) = Engine::load([4; 32], store.records());
        assert!(problems.is_empty());
        let after = reloaded.inspect_doc(&url.doc).unwrap();
        assert!(after.snapshot_bytes.is_some_and(|b| b > 0), "{after:?}");
    }
}
