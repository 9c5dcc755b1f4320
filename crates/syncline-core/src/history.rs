//! History and views: a document's changes, and its value at any point.
//!
//! Every Automerge change carries its author (actor), a time and an
//! optional message; local changes get the host's injected `now_ms` (to the
//! second, as Automerge stores it) and the app's message (its domain event
//! name, e.g. `"todo.added"`). [`Engine::history`] lists them in causal
//! order; [`Engine::value_at`] shows the document as it was at a set of
//! heads (the hashes of the changes it had last); [`Engine::shown_heads`]
//! are the heads of the value a host shows.

use std::collections::HashSet;

use automerge::{AutoCommit, AutoSerde, ChangeHash};
use serde_json::Value as Json;
use syncline_protocol::DocId;

use crate::EngineError;
use crate::engine::Engine;

/// One change in a document's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The change's hash: pass `[hash]` to [`Engine::value_at`] to see the
    /// document just after it.
    pub hash: ChangeHash,
    /// Who made it: the Automerge actor, in hex (one per engine instance).
    pub actor: String,
    /// Its number among the actor's changes, from 1.
    pub seq: u64,
    /// When it was made, in ms since the epoch (whole seconds; 0 if the
    /// author recorded no time).
    pub time_ms: u64,
    /// The app's name for it, e.g. `"todo.added"`.
    pub message: Option<String>,
    /// The changes it came after.
    pub deps: Vec<ChangeHash>,
}

impl Engine {
    /// Every change of `doc`, in causal order (a change comes after those
    /// it depends on).
    pub fn history(&mut self, doc: &DocId) -> Result<Vec<HistoryEntry>, EngineError> {
        self.history_since(doc, &[])
    }

    /// The changes of `doc` that `heads` do not cover (none of `heads` or
    /// their ancestors), in causal order: what a mirror of the history that
    /// stood at `heads` lacks. Empty `heads`: the whole history. A hash the
    /// document does not have is [`EngineError::UnknownHeads`].
    pub fn history_since(
        &mut self,
        doc: &DocId,
        heads: &[ChangeHash],
    ) -> Result<Vec<HistoryEntry>, EngineError> {
        let state = self
            .docs
            .get_mut(doc)
            .ok_or(EngineError::DocNotFound(*doc))?;
        if let Some(hash) = heads
            .iter()
            .find(|h| state.doc.get_change_meta_by_hash(h).is_none())
        {
            return Err(EngineError::UnknownHeads {
                doc: *doc,
                hash: hash.to_string(),
            });
        }
        Ok(state
            .doc
            .get_changes_meta(heads)
            .into_iter()
            .map(|meta| HistoryEntry {
                hash: meta.hash,
                actor: meta.actor.to_hex_string(),
                seq: meta.seq,
                time_ms: u64::try_from(meta.timestamp)
                    .unwrap_or(0)
                    .saturating_mul(1000),
                message: meta.message.map(|m| m.into_owned()),
                deps: meta.deps,
            })
            .collect())
    }

    /// The document's current heads: the hashes of its latest changes.
    pub fn heads(&mut self, doc: &DocId) -> Result<Vec<ChangeHash>, EngineError> {
        let state = self
            .docs
            .get_mut(doc)
            .ok_or(EngineError::DocNotFound(*doc))?;
        Ok(state.doc.get_heads())
    }

    /// The heads of the value a host shows for `doc`: where the document's
    /// patch stream stands — the heads when [`Engine::restart_patches`],
    /// [`Engine::patches`] or [`Engine::patches_after_local_change`] was
    /// last called. A host that applies every patch it is given to the
    /// value it read shows exactly the document at these heads, while
    /// [`Engine::heads`] may already include changes from elsewhere that
    /// it has not been given yet.
    pub fn shown_heads(&self, doc: &DocId) -> Result<Vec<ChangeHash>, EngineError> {
        let state = self.docs.get(doc).ok_or(EngineError::DocNotFound(*doc))?;
        Ok(state.doc.diff_cursor())
    }

    /// The value of `doc` as it was at `heads` (as [`Engine::value_json`]
    /// shows the present). Heads the document does not have are an
    /// [`EngineError::UnknownHeads`]; no heads at all is the empty document.
    pub fn value_at(&mut self, doc: &DocId, heads: &[ChangeHash]) -> Result<Json, EngineError> {
        let state = self
            .docs
            .get_mut(doc)
            .ok_or(EngineError::DocNotFound(*doc))?;
        let unknown = |hash: &ChangeHash| EngineError::UnknownHeads {
            doc: *doc,
            hash: hash.to_string(),
        };
        if let Some(hash) = heads
            .iter()
            .find(|h| state.doc.get_change_meta_by_hash(h).is_none())
        {
            return Err(unknown(hash));
        }
        let view = state
            .doc
            .fork_at(heads)
            .map_err(|_| unknown(heads.first().unwrap_or(&ChangeHash([0; 32]))))?;
        Ok(serde_json::to_value(AutoSerde::from(&view)).unwrap_or(Json::Null))
    }
}

/// How many changes [`frontier`] looks at before it gives up reducing.
const FRONTIER_STEPS: usize = 4_096;

/// `hashes` without those that another of them already covers (an ancestor
/// of another): the heads a document has after exactly those changes.
/// Hashes the document does not have are kept (the caller reports them).
///
/// The walk goes back from the hashes' deps and stops at any change whose
/// `max_op` is below the smallest of theirs: op counters grow along
/// causality, so nothing older can be one of them. A tab's heads plus its
/// own later changes (worker mode) thus cost a few steps, not the history.
/// Past [`FRONTIER_STEPS`] (an old concurrent head among them, where the
/// walk would cover everything since the fork) the hashes are returned as
/// given, sorted: the same point in history, only not reduced, which costs
/// nothing but the grouping of an undo step.
pub(crate) fn frontier(doc: &mut AutoCommit, hashes: &[ChangeHash]) -> Vec<ChangeHash> {
    let mut unique: Vec<ChangeHash> = hashes.to_vec();
    unique.sort();
    unique.dedup();
    if unique.len() < 2 {
        return unique;
    }
    let mut floor = u64::MAX;
    let mut stack = Vec::new();
    for hash in &unique {
        if let Some(meta) = doc.get_change_meta_by_hash(hash) {
            floor = floor.min(meta.max_op);
            stack.extend(meta.deps);
        }
    }
    let mut reached = HashSet::new();
    while let Some(hash) = stack.pop() {
        if reached.len() >= FRONTIER_STEPS {
            return unique;
        }
        if !reached.insert(hash) {
            continue;
        }
        match doc.get_change_meta_by_hash(&hash) {
            // Its ancestors' counters are no larger: none of them is one of the hashes.
            Some(meta) if meta.max_op < floor => {}
            Some(meta) => stack.extend(meta.deps),
            None => {}
        }
    }
    unique.retain(|hash| !reached.contains(hash));
    unique
}
