//! Live delivery (protocol version 2): deltas at network speed, cursors
//! only on what the relay stored.
//!
//! While a document is subscribed, the relay forwards another client's push
//! as a `Tentative` frame the moment it arrives, before its own commit, and
//! later confirms a whole range of sequences with a `Committed` frame (see
//! [`syncline_protocol::RelayFrame`]). The engine:
//!
//! - **applies a tentative delta at once** (the page sees the edit without
//!   waiting for the relay's disk; a frame's deltas in one Automerge call,
//!   see [`crate::delta`]) and logs it, but does not move the
//!   cursor: the relay may still fail to store it, and its author may crash
//!   before pushing it again. So the delta is *held* in the outbox, as if
//!   this replica had made it ([`Origin::Tentative`]): should nothing
//!   confirm it within [`RESEND_AFTER_MS`](crate::RESEND_AFTER_MS) of its
//!   arrival (the hold survives a reconnect: the catch-up of the next
//!   connection will most likely confirm it), this replica pushes it itself
//!   (the relay stores a delta once, by id). A change that reached one
//!   replica is never lost because its author vanished — as long as a
//!   replica that may write holds it: a read-only replica cannot push.
//! - **moves the cursor on `Committed{after, seq, ids}`** only if the cursor
//!   is at `after` or beyond and every id listed is in the log here (the
//!   rest of the range is this connection's own pushes, durable here before
//!   they were pushed). The cursor record goes in a batch after the ones
//!   holding those deltas, and the host writes batches in order, so the
//!   cursor never points past a delta that is not durable here. Anything
//!   else means a frame went missing: subscribe again from the cursor.
//! - **confirms** held deltas named by `Committed`, or met again in a
//!   catch-up: they leave the outbox, as an acked push does.

use std::collections::HashSet;

use syncline_protocol::{DeltaId, DocId, PushDelta};

use crate::EngineError;
use crate::delta;
use crate::engine::{Effect, Engine};
use crate::store::{Batch, LogEntry, Origin, Record};

impl Engine {
    /// A `Tentative` frame: applies and holds the deltas this replica does
    /// not have yet.
    pub(crate) fn apply_tentative(&mut self, doc: DocId, deltas: Vec<PushDelta>, now_ms: u64) {
        if self.defer_if_backlog_full(&doc) {
            return; // fetched committed once storage catches up
        }
        let Some(state) = self.docs.get_mut(&doc) else {
            return; // not ours (any more)
        };
        state.heard_at = now_ms;
        // The frame's new deltas, applied together (see `crate::delta`).
        let mut pending = delta::Pending::default();
        let mut opened_here = HashSet::new();
        for pushed in deltas {
            if state.log.contains(&pushed.id) || opened_here.contains(&pushed.id) {
                continue; // logged here already (ours, a tab's, or a repeat)
            }
            let opened = state.key.open_delta(&doc, &pushed.id, &pushed.bytes);
            if opened.is_ok() {
                // Its content is its id's: a repeat would fare the same.
                opened_here.insert(pushed.id);
            }
            pending.push(pushed.id, opened);
        }
        let mut held = Vec::new();
        let mut problems = Vec::new();
        for (id, applied) in pending.apply(&mut state.doc) {
            match applied {
                Ok(plain) => {
                    state.log.note(id, &plain, false);
                    held.push(LogEntry {
                        doc,
                        id,
                        bytes: plain,
                        time_ms: now_ms,
                        message: None,
                        origin: Origin::Tentative,
                        relay_seq: None,
                    });
                }
                // Not usable, now or later: skipped, our own data untouched.
                Err(error) => problems.push(EngineError::BadDelta { doc, id, error }),
            }
        }
        for problem in problems {
            self.emit(Effect::Error(problem));
        }
        if held.is_empty() {
            return;
        }
        let mut batch = Batch::default();
        for entry in &held {
            batch.put(&Record::Entry(entry.clone()));
        }
        self.persist(batch);
        // Its author pushed it just now: the resend timer starts from here.
        for entry in held {
            self.outbox.hold(entry, now_ms);
        }
        self.emit(Effect::DocChanged(doc));
        self.maybe_compact(doc);
    }

    /// A `Committed` frame: confirms the held deltas `ids`, and moves the
    /// cursor to `seq` if nothing of `after + 1 ..= seq` is missing here.
    pub(crate) fn committed(
        &mut self,
        doc: DocId,
        after: u64,
        seq: u64,
        ids: &[DeltaId],
        now_ms: u64,
    ) {
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        state.heard_at = now_ms;
        let whole = state.cursor >= after && ids.iter().all(|id| state.log.contains(id));
        let advance = whole && seq > state.cursor;
        if advance {
            state.cursor = seq;
        }
        let mut batch = self.retire(doc, ids, seq);
        if advance && let Some(record) = self.doc_record(doc) {
            batch.put(&record);
        }
        if !batch.is_empty() {
            self.persist(batch);
        }
        if !whole && self.docs.get(&doc).is_some_and(|s| seq > s.cursor) {
            // A delta of the range never reached us: fetch it from the cursor.
            self.subscribe_if_ready(doc, now_ms);
        }
        if advance {
            self.last_synced_ms = Some(now_ms);
            self.emit(Effect::StatusChanged);
        }
        self.maybe_compact(doc);
    }
}
