//! Schema versions: a document records the version of the app's schema it
//! follows under a reserved top-level key, [`SCHEMA_KEY`] (an integer; a
//! document without it is at version 0), and an app that opens an older
//! document migrates it, one step at a time, with [`Engine::migrate`].
//!
//! **Applied once.** Two replicas often migrate the same old document at the
//! same time (two devices, both offline, both updated to the new app). A
//! migration step is therefore made *deterministic*: its Automerge change
//! has an actor derived from the document, the step and the heads it starts
//! from, sequence 1, time 0 and a fixed message, so two replicas that start
//! from the same heads and run the same step (the app's migration function
//! records the same ops on the same value) make byte-identical changes —
//! the same hash — and Automerge applies it once when they meet. The
//! guarantee stops there: replicas that migrate from *different* heads (one
//! of them lacks changes the other has, or made its own since) make
//! different changes, each applied (its effects happen twice; concurrent
//! writes to the same field still merge as Automerge merges them). The
//! derived actor differs then too, so the two never clash on a sequence.
//!
//! The change is logged, pushed and broadcast like a local change (by hash,
//! as [`Engine::change_at`]'s isolated changes are), and is not undoable.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, ChangeHash, ROOT, ReadDoc, ScalarValue, Value};
use sha2::{Digest, Sha256};

use crate::engine::{Effect, Engine};
use crate::ops::{Op, apply_ops};
use crate::{DocId, EngineError};

/// The reserved top-level key holding a document's schema version.
pub const SCHEMA_KEY: &str = "syncline:schema";

impl Engine {
    /// The schema version the document records (0 when it records none).
    pub fn schema_version(&self, doc: &DocId) -> Result<u64, EngineError> {
        let state = self.docs.get(doc).ok_or(EngineError::DocNotFound(*doc))?;
        Ok(recorded_version(&state.doc))
    }

    /// Migrates the document from schema version `from` to `from + 1`:
    /// applies `ops` (what the app's migration recorded on the current
    /// value) and sets [`SCHEMA_KEY`], as one deterministic change (see
    /// the module docs). Returns its hash. If the document is not at
    /// version `from` (another replica's identical migration arrived
    /// meanwhile), nothing happens and `None` is returned. On error nothing
    /// changes.
    pub fn migrate(
        &mut self,
        doc: DocId,
        from: u64,
        ops: &[Op],
        now_ms: u64,
    ) -> Result<Option<ChangeHash>, EngineError> {
        self.refuse_change_if_backlog_full()?;
        let has_burst = self.outbox.has_burst(&doc);
        let own = self.actor.clone();
        let state = self
            .docs
            .get_mut(&doc)
            .ok_or(EngineError::DocNotFound(doc))?;
        // The next patches come from a diff: they hold the version key,
        // which the app's ops lack (and nothing of them when nothing ran).
        state.changed_elsewhere = true;
        if recorded_version(&state.doc) != from {
            return Ok(None);
        }
        let mut heads = state.doc.get_heads();
        heads.sort();
        state.doc.set_actor(migration_actor(&doc, from, &heads));
        let applied = apply_ops(&mut state.doc, ops)
            .map_err(EngineError::from)
            .and_then(|()| {
                let next = i64::try_from(from.saturating_add(1)).unwrap_or(i64::MAX);
                state
                    .doc
                    .put(ROOT, SCHEMA_KEY, next)
                    .map_err(|e| EngineError::Automerge(Box::new(e)))
            });
        if let Err(e) = applied {
            state.doc.rollback();
            state.doc.set_actor(own);
            return Err(e);
        }
        let options = CommitOptions {
            message: Some(format!(
                "syncline.schema {from}->{}",
                from.saturating_add(1)
            )),
            time: Some(0),
        };
        let head = state.doc.commit_with(options);
        state.doc.set_actor(own);
        state.last_splice = None;
        state.undo.interrupt();
        if let Some(head) = head {
            state.isolated_local.insert(head);
            if !has_burst {
                self.outbox.start_burst(doc, heads, now_ms);
            }
        }
        self.emit(Effect::StatusChanged);
        self.tell_if_unprovable(doc);
        Ok(head)
    }
}

/// The version under [`SCHEMA_KEY`]: a non-negative integer, else 0.
fn recorded_version(doc: &automerge::AutoCommit) -> u64 {
    match doc.get(ROOT, SCHEMA_KEY) {
        Ok(Some((Value::Scalar(v), _))) => match v.as_ref() {
            ScalarValue::Int(n) => u64::try_from(*n).unwrap_or(0),
            ScalarValue::Uint(n) => *n,
            ScalarValue::F64(f) if *f >= 0.0 && f.fract() == 0.0 => *f as u64,
            _ => 0,
        },
        _ => 0,
    }
}

/// The actor of the migration from `from` of `doc` at `heads` (sorted):
/// the same on every replica that starts from the same heads.
fn migration_actor(doc: &DocId, from: u64, heads: &[ChangeHash]) -> ActorId {
    let mut hash = Sha256::new();
    hash.update(b"syncline-schema-migration\0");
    hash.update(doc.to_string().as_bytes());
    hash.update(from.to_be_bytes());
    for head in heads {
        hash.update(head.0);
    }
    ActorId::from(&hash.finalize()[..16])
}
