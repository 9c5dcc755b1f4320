//! The sync session: how an [`Engine`] talks to a relay.
//!
//! Per connection: send `Hello`; on `Welcome`, subscribe every document from
//! its cursor and push the whole outbox in order; apply incoming deltas and
//! advance each cursor in the same atomic batch that stores them; retire an
//! outbox entry only when the relay acks it (the relay acks only after its
//! own commit); the deltas of one frame go to Automerge in one call (see
//! [`crate::delta`]). A connection lost at any point loses nothing: the
//! outbox and cursors are durable, and the next `Welcome` starts over from
//! them.
//!
//! The session does not trust the link either. A gap in the sequence (a
//! lost or reordered frame) stops the cursor and re-subscribes from it; a
//! push not acked within [`RESEND_AFTER_MS`] is pushed again (the relay
//! deduplicates by id); a handshake that never completes asks the host to
//! drop the connection ([`Effect::Disconnect`]). The host drives these
//! timers by calling [`Engine::tick`].
//!
//! # A local change is pushed beside its log write, not after it
//!
//! Waiting for this replica's storage commit before pushing would put a
//! disk write on every edit's way to the other replicas. It is not needed
//! for safety, with one rule: **an entry is pushed before its own log write
//! only if no earlier entry of its document is still unwritten here and
//! unacknowledged by the relay** (otherwise it waits for that write, and
//! [`Engine::persisted`] pushes it, or for that ack: while local writes
//! fail, changes still leave, one acknowledgement at a time). Then:
//!
//! - every engine instance has a fresh Automerge actor, so a change lost in
//!   a crash before its log write never has its (actor, sequence) reused:
//!   if the relay got it, the restarted replica fetches it back like any
//!   other replica's change;
//! - nothing is *claimed* before it is durable: `flush()` still waits for
//!   the log write, an outbox entry leaves only on the relay's `Ack` (sent
//!   after the relay's own commit), and the records that say so (the acked
//!   entry, the cursor) are written in later batches than the entry, which
//!   the host writes in order;
//! - a change the relay stores never depends on one this replica could
//!   lose: its document's earlier entries were durable here when it was
//!   pushed, so a crash loses at most that one unwritten entry and nothing
//!   later, even if the relay lost or failed to store an earlier push.
//!   Changes of other replicas it depends on are at the relay or held by
//!   the replicas they reached (see [`crate::live`]).
//!
//! If the relay's epoch differs from the one the cursors were issued under
//! (a relay restored from backup, or replaced), the cursors are reset and
//! every document's whole state is pushed again: a relay that lost data never
//! makes a client lose its own.

use std::ops::Range;

use syncline_protocol::{
    ClientFrame, DeltaId, DocId, MAX_DELTAS_PER_FRAME, PROTOCOL_VERSION, PushDelta, RelayFrame,
    SequencedDelta, decode_relay, encode_client,
};

use crate::EngineError;
use crate::access::{AccessError, is_access_refusal};
use crate::delta;
use crate::engine::{DocState, Effect, Engine, SessionState};
use crate::store::{
    Batch, LogEntry, Origin, Record, RelayRecord, Store, UnusableRecord, entry_key,
};

/// A push not acked after this long is pushed again on the same connection.
pub const RESEND_AFTER_MS: u64 = 10_000;
/// A `Welcome` not received after this long gives up on the connection; so
/// does a catch-up that makes no progress for this long.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// A caught-up document the relay has sent nothing for in this long is
/// subscribed again from its cursor (anti-entropy): live deltas lost on the
/// way, with nothing after them to reveal the gap, are fetched then. The
/// relay answers an up-to-date cursor with one empty frame.
pub const RESYNC_IDLE_MS: u64 = 60_000;
/// Push frames are split so none grows past this many payload bytes.
const PUSH_FRAME_BYTES: usize = 1 << 20;

impl Engine {
    /// A connection to the relay opened. `replica` identifies this device.
    pub fn connected(&mut self, replica: [u8; 16], token: Option<String>, now_ms: u64) {
        self.replica = replica;
        self.session = SessionState::Handshaking;
        self.session_since = now_ms;
        self.send(ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            replica,
            token,
        });
        self.emit(Effect::StatusChanged);
    }

    /// The connection closed or failed. Nothing is lost: the next
    /// `connected` resumes from the durable outbox and cursors.
    pub fn disconnected(&mut self) {
        self.session = SessionState::Offline;
        for state in self.docs.values_mut() {
            state.caught_up = false;
            state.subscribed_at = None;
            if let Some(snapshot) = &mut state.relay_snapshot {
                snapshot.sent = false;
            }
        }
        self.presence_disconnected();
        self.messages_disconnected();
        self.access_disconnected();
        self.outbox.disconnected();
        self.emit(Effect::StatusChanged);
    }

    /// Time passed: re-push what was not acked, re-subscribe what did not
    /// catch up or has been idle for [`RESYNC_IDLE_MS`], give up on a
    /// handshake that never finished.
    pub fn tick(&mut self, now_ms: u64) {
        self.compact_idle(now_ms);
        self.messages_tick(now_ms);
        let overdue = |since: u64, limit: u64| now_ms.saturating_sub(since) >= limit;
        match self.session {
            SessionState::Offline => {}
            SessionState::Handshaking => {
                if overdue(self.session_since, HANDSHAKE_TIMEOUT_MS) {
                    // Asked again a timeout later should the host not act.
                    self.session_since = now_ms;
                    self.emit(Effect::Disconnect);
                }
            }
            SessionState::Ready => {
                let stale: Vec<DocId> = self
                    .docs
                    .iter()
                    .filter(|(_, s)| {
                        s.subscribed_at
                            .is_some_and(|t| overdue(t, HANDSHAKE_TIMEOUT_MS))
                    })
                    .map(|(doc, _)| *doc)
                    .collect();
                let idle = self
                    .docs
                    .iter()
                    .filter(|(_, s)| s.caught_up && overdue(s.heard_at, RESYNC_IDLE_MS))
                    .map(|(doc, _)| *doc);
                let stale: Vec<DocId> = stale.into_iter().chain(idle).collect();
                for doc in stale {
                    self.subscribe_if_ready(doc, now_ms);
                }
                self.retry_parked(now_ms);
                if let Some(first) = self.outbox.first_due(now_ms, RESEND_AFTER_MS) {
                    // Everything from the first overdue entry on, in order.
                    self.push_if_ready(first..self.outbox.len(), now_ms);
                }
                self.presence_tick(now_ms);
            }
        }
    }

    /// A binary frame arrived from the relay. A malformed frame is reported
    /// as an [`Effect::Error`] and otherwise ignored.
    pub fn received(&mut self, bytes: &[u8], now_ms: u64) {
        match decode_relay(bytes) {
            Ok(frame) => self.handle(frame, now_ms),
            Err(e) => self.emit(Effect::Error(e.into())),
        }
    }

    fn handle(&mut self, frame: RelayFrame, now_ms: u64) {
        match frame {
            RelayFrame::Welcome { epoch, version, .. } => {
                self.messages.relay_version = version;
                self.welcomed(epoch, now_ms)
            }
            RelayFrame::Error {
                code,
                message,
                fatal,
            } => {
                if fatal {
                    self.session = SessionState::Offline;
                    self.emit(Effect::StatusChanged);
                }
                self.emit(Effect::Error(EngineError::RelayRejected {
                    code,
                    message,
                    fatal,
                }));
            }
            RelayFrame::DocError { doc, code, message } if is_access_refusal(code) => {
                self.refused(doc, code, message, now_ms)
            }
            RelayFrame::DocError { doc, code, message } => {
                self.emit(Effect::Error(EngineError::RelayRejected {
                    code,
                    message: format!("document {doc}: {message}"),
                    fatal: false,
                }))
            }
            _ if self.session != SessionState::Ready => {
                // Nothing but Welcome or Error is valid before Welcome.
            }
            RelayFrame::Deltas {
                doc,
                items,
                caught_up,
            } => self.apply_relay_deltas(doc, items, caught_up, now_ms),
            RelayFrame::Ack { doc, ids, seq } => self.acked(doc, &ids, seq, now_ms),
            RelayFrame::Message {
                doc, from, bytes, ..
            } => self.message_received(doc, from, &bytes),
            RelayFrame::Presence { doc, from, bytes } => {
                self.presence_received(doc, from, bytes, now_ms)
            }
            RelayFrame::Pong { .. } => {}
            RelayFrame::Tentative { doc, deltas } => self.apply_tentative(doc, deltas, now_ms),
            RelayFrame::Committed {
                doc,
                after,
                seq,
                ids,
            } => self.committed(doc, after, seq, &ids, now_ms),
        }
    }

    fn welcomed(&mut self, epoch: [u8; 16], now_ms: u64) {
        if self.session != SessionState::Handshaking {
            return; // a duplicate Welcome changes nothing
        }
        let known = self.relay.as_ref().map(|r| r.epoch);
        if known != Some(epoch) {
            if known.is_some() {
                self.resend_everything(now_ms);
            }
            self.relay = Some(RelayRecord { epoch });
            let mut batch = Batch::default();
            batch.put(&Record::Relay(RelayRecord { epoch }));
            self.persist(batch);
        }
        self.session = SessionState::Ready;
        // Each document subscribes, pushes its outbox entries and offers
        // its snapshot once it may (at once on an open relay).
        let docs: Vec<DocId> = self.docs.keys().copied().collect();
        for doc in docs {
            self.request_access(doc, now_ms);
        }
        self.emit(Effect::StatusChanged);
    }

    /// The relay's log is not the one our cursors point into: forget the
    /// cursors and offer each document's whole state as one delta.
    fn resend_everything(&mut self, now_ms: u64) {
        let docs: Vec<DocId> = self.docs.keys().copied().collect();
        for doc in docs {
            let Some(state) = self.docs.get_mut(&doc) else {
                continue;
            };
            state.cursor = 0;
            state.relay_snapshot = None; // it covered the old relay's log
            let changes = state.doc.get_changes(&[]);
            let key = state.key;
            self.persist_doc_record(doc);
            if changes.is_empty() {
                continue;
            }
            let bytes = delta::encode(changes.iter().map(|c| c.raw_bytes()));
            let entry = LogEntry {
                doc,
                id: key.delta_id(&bytes),
                bytes,
                time_ms: now_ms,
                message: None,
                origin: Origin::Local,
                relay_seq: None,
            };
            // The same state offered twice (two epoch changes in a row) is
            // one delta: queue it once.
            if !self.outbox.contains(&doc, &entry.id) {
                self.enqueue(entry);
            }
        }
    }

    fn apply_relay_deltas(
        &mut self,
        doc: DocId,
        items: Vec<SequencedDelta>,
        caught_up: bool,
        now_ms: u64,
    ) {
        if self.defer_if_backlog_full(&doc) {
            return; // left at the relay: asked for again once storage catches up
        }
        let Some(state) = self.docs.get_mut(&doc) else {
            return; // not ours (any more): nothing to apply, nothing to lose
        };
        state.heard_at = now_ms;
        let mut received = Received {
            doc,
            now_ms,
            batch: Batch::default(),
            problems: Vec::new(),
            applied: Vec::new(),
        };
        let mut gap = false;
        // A jump this replica cannot read (a snapshot it cannot open or
        // apply): the cursor stays, and the document asks again later.
        let mut unreadable = None;
        // The frame's deltas, applied together (see `crate::delta`).
        let mut pending = delta::Pending::default();
        for item in items {
            if item.seq <= state.cursor {
                continue; // already have it: a duplicate or a replay
            }
            let next = item.seq == state.cursor + 1;
            let opened = state.key.open_delta(&doc, &item.id, &item.bytes);
            // A jump past the next sequence is a gap, unless the item is a
            // snapshot: it stands for every delta up to its sequence.
            let snapshot = match opened {
                Ok(plain) if next => {
                    // Automerge ignores changes it already has and parks
                    // those whose dependencies have not arrived yet, so
                    // order and duplicates are harmless here.
                    state.cursor = item.seq;
                    pending.push((item.seq, item.id), Ok(plain));
                    continue;
                }
                Err(reason) if next => {
                    state.cursor = item.seq;
                    pending.push((item.seq, item.id), Err(reason));
                    continue;
                }
                Ok(plain) if delta::is_snapshot(&plain) => plain,
                Ok(_) => {
                    gap = true; // a frame was lost or reordered: ask again
                    break;
                }
                Err(error) => {
                    unreadable = Some(error.to_string());
                    break;
                }
            };
            // Whether the jump may be taken depends on applying it: first
            // the deltas before it.
            for outcome in pending.apply(&mut state.doc) {
                received.record(state, outcome);
            }
            if let Err(error) = delta::apply(&mut state.doc, &snapshot) {
                unreadable = Some(error.to_string());
                break;
            }
            state.cursor = item.seq;
            received.record(state, ((item.seq, item.id), Ok(snapshot)));
        }
        for outcome in pending.apply(&mut state.doc) {
            received.record(state, outcome);
        }
        let Received {
            mut batch,
            problems,
            applied,
            ..
        } = received;
        let newly_caught_up = caught_up && !gap && !state.caught_up;
        state.caught_up |= newly_caught_up;
        if newly_caught_up {
            state.subscribed_at = None;
        }
        // The cursor travels in the same atomic batch as the deltas it
        // covers: it can never point past a delta that is not durable here.
        if let Some(record) = self.doc_record(doc) {
            batch.put(&record);
        }
        // Deltas held since they came tentatively are stored at the relay.
        let cursor = self.docs.get(&doc).map_or(0, |s| s.cursor);
        batch.append(self.retire(doc, &applied, cursor));
        self.persist(batch);
        for problem in problems {
            self.emit(Effect::Error(problem));
        }
        if !applied.is_empty() {
            self.emit(Effect::DocChanged(doc));
        }
        if gap {
            self.subscribe_if_ready(doc, now_ms);
        }
        match unreadable {
            None => self.served(doc, false),
            Some(reason) => {
                let message = format!(
                    "the relay served document {doc} from a snapshot this replica cannot read ({reason}); local data is untouched, and it asks again later"
                );
                self.park(doc, AccessError::Unreadable, message, now_ms);
            }
        }
        self.maybe_compact(doc);
        if newly_caught_up {
            self.last_synced_ms = Some(now_ms);
            self.emit(Effect::CaughtUp(doc));
            self.emit(Effect::StatusChanged);
        }
    }

    fn acked(&mut self, doc: DocId, ids: &[DeltaId], seq: u64, now_ms: u64) {
        self.served(doc, true);
        let batch = self.retire(doc, ids, seq);
        if let Some(state) = self.docs.get_mut(&doc)
            && state
                .relay_snapshot
                .as_ref()
                .is_some_and(|r| ids.contains(&r.id))
        {
            state.relay_snapshot = None; // the relay holds it
        }
        if !batch.is_empty() {
            self.persist(batch);
            self.maybe_compact(doc);
        }
        self.last_synced_ms = Some(now_ms);
        self.emit(Effect::StatusChanged);
        // Entries that waited for an earlier one's write may go now that
        // the relay holds it: changes keep leaving while local writes fail.
        if let Some(first) = self.outbox.first_unpushed(Some(&doc)) {
            self.push_entries(first..self.outbox.len(), Some(doc), now_ms);
        }
    }

    /// Takes the outbox entries `ids` of `doc` out of the outbox: the relay
    /// stores them (as of `seq`). Returns the batch that records it.
    pub(crate) fn retire(&mut self, doc: DocId, ids: &[DeltaId], seq: u64) -> Batch {
        let mut batch = Batch::default();
        let retired = self.outbox.retire(&doc, ids);
        let mut log = self.docs.get_mut(&doc).map(|state| &mut state.log);
        for mut done in retired {
            if log
                .as_mut()
                .is_some_and(|log| log.forget_if_covered(&done.id))
            {
                // The snapshot holds it and now the relay too: it can go.
                batch.delete(Store::Entries, entry_key(&doc, &done.id));
            } else {
                if let Some(log) = log.as_mut() {
                    log.note(done.id, &done.bytes, true); // the relay holds it
                }
                done.relay_seq = Some(seq);
                batch.put(&Record::Entry(done));
            }
        }
        batch
    }

    /// Subscribes `doc` from its cursor, if the relay may be asked to
    /// serve it now (see [`crate::access`]).
    pub(crate) fn subscribe_if_ready(&mut self, doc: DocId, now_ms: u64) {
        if !self.may_read(&doc) || self.defer_if_backlog_full(&doc) {
            return;
        }
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        state.deferred = false;
        state.caught_up = false;
        state.subscribed_at = Some(now_ms);
        let since = state.cursor;
        self.send(ClientFrame::Subscribe { doc, since });
        // The relay forgets presence with the subscription: say it again.
        self.send_presence(doc, now_ms);
    }

    /// Seals and sends the outbox entries in `range` as `Push` frames,
    /// grouped by document in order, each frame within the protocol's bounds.
    pub(crate) fn push_if_ready(&mut self, range: Range<usize>, now_ms: u64) {
        self.push_entries(range, None, now_ms);
    }

    /// Like [`Engine::push_if_ready`], for the entries of `doc` only.
    pub(crate) fn push_doc_if_ready(&mut self, doc: DocId, now_ms: u64) {
        self.push_entries(0..self.outbox.len(), Some(doc), now_ms);
    }

    fn push_entries(&mut self, range: Range<usize>, only: Option<DocId>, now_ms: u64) {
        if self.session != SessionState::Ready {
            return;
        }
        let mut current: Option<(DocId, Vec<PushDelta>, usize)> = None;
        let mut frames = Vec::new();
        // Skipped: a held delta whose author's push may still be committed,
        // or an entry that waits for an earlier one's write (`persisted`
        // pushes it then): see `crate::outbox`. Pushing one does not change
        // which others may go.
        let pushable: Vec<usize> = self.outbox.pushable(range, now_ms).collect();
        for i in pushable {
            let doc = self.outbox.get(i).entry().doc;
            if only.is_some_and(|only| only != doc) {
                continue;
            }
            if !self.may_write(&doc) {
                continue; // pushed once the relay lets us (`access.rs`)
            }
            let nonce = self.random();
            let entry = self.outbox.mark_pushed(i, now_ms);
            let Some(state) = self.docs.get(&entry.doc) else {
                continue;
            };
            let sealed = state.key.seal(&entry.doc, nonce, &entry.bytes);
            let full = |(doc, deltas, bytes): &mut (DocId, Vec<PushDelta>, usize)| {
                *doc != entry.doc
                    || deltas.len() >= MAX_DELTAS_PER_FRAME
                    || *bytes + sealed.len() > PUSH_FRAME_BYTES
            };
            if let Some((doc, deltas, _)) = current.take_if(full) {
                frames.push(ClientFrame::Push { doc, deltas });
            }
            let (_, deltas, bytes) = current.get_or_insert_with(|| (entry.doc, Vec::new(), 0));
            *bytes += sealed.len();
            deltas.push(PushDelta {
                id: entry.id,
                bytes: sealed,
            });
        }
        frames.extend(current.map(|(doc, deltas, _)| ClientFrame::Push { doc, deltas }));
        for frame in frames {
            self.send(frame);
        }
    }

    /// Sends `frame`; a write (push, snapshot, presence) goes signed with
    /// its document's key, or not at all for a document that cannot be
    /// signed for (which the engine never writes to the relay).
    pub(crate) fn send(&mut self, frame: ClientFrame) {
        let frame = match &frame {
            ClientFrame::Push { doc, .. }
            | ClientFrame::Snapshot { doc, .. }
            | ClientFrame::Presence { doc, .. } => {
                match self.docs.get(doc).and_then(|s| s.signer.as_ref()) {
                    Some(signer) => frame.signed(signer, &self.replica),
                    None => return,
                }
            }
            _ => frame,
        };
        self.emit(Effect::Send(encode_client(&frame)));
    }
}

/// What applying a catch-up frame's deltas leads to, gathered in frame
/// order.
struct Received {
    doc: DocId,
    now_ms: u64,
    /// The deltas applied and the skipped ones' marks; the cursor goes in
    /// the same batch.
    batch: Batch,
    problems: Vec<EngineError>,
    applied: Vec<DeltaId>,
}

impl Received {
    /// Logs an applied delta; a delta that can never be used is skipped
    /// for good: it is not ours, and our own data is untouched. Our
    /// snapshots will not cover it (so the relay keeps it for others).
    fn record(
        &mut self,
        state: &mut DocState,
        ((seq, id), outcome): ((u64, DeltaId), Result<Vec<u8>, delta::DeltaError>),
    ) {
        let doc = self.doc;
        match outcome {
            Ok(plain) => {
                self.applied.push(id);
                state.log.note(id, &plain, true);
                self.batch.put(&Record::Entry(LogEntry {
                    doc,
                    id,
                    bytes: plain,
                    time_ms: self.now_ms,
                    message: None,
                    origin: Origin::Relay,
                    relay_seq: Some(seq),
                }));
            }
            Err(error) => {
                if state.unusable_from.is_none_or(|from| seq < from) {
                    state.unusable_from = Some(seq);
                    self.batch
                        .put(&Record::Unusable(UnusableRecord { doc, from_seq: seq }));
                }
                self.problems.push(EngineError::BadDelta { doc, id, error });
            }
        }
    }
}
