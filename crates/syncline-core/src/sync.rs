//! The sync session: how an [`Engine`] talks to a relay.
//!
//! Per connection: send `Hello`; on `Welcome`, subscribe every document from
//! its cursor and push the whole outbox in order; apply incoming deltas and
//! advance each cursor in the same atomic batch that stores them; retire an
//! outbox entry only when the relay acks it (the relay acks only after its
//! own commit). A connection lost at any point loses nothing: the outbox and
//! cursors are durable, and the next `Welcome` starts over from them.
//!
//! If the relay's epoch differs from the one the cursors were issued under
//! (a relay restored from backup, or replaced), the cursors are reset and
//! every document's whole state is pushed again: a relay that lost data never
//! makes a client lose its own.

use syncline_protocol::{
    ClientFrame, DocId, MAX_DELTAS_PER_FRAME, PROTOCOL_VERSION, PushDelta, RelayFrame,
    SequencedDelta, decode_relay, encode_client,
};

use crate::EngineError;
use crate::delta;
use crate::engine::{Effect, Engine, SessionState};
use crate::store::{Batch, DocRecord, LogEntry, Origin, Record, RelayRecord};

/// Push frames are split so none grows past this many payload bytes.
const PUSH_FRAME_BYTES: usize = 1 << 20;

impl Engine {
    /// A connection to the relay opened. `replica` identifies this device.
    pub fn connected(&mut self, replica: [u8; 16], token: Option<String>) {
        self.session = SessionState::Handshaking;
        self.send(ClientFrame::Hello {
            version: PROTOCOL_VERSION,
            replica,
            token,
        });
        self.effects.push(Effect::StatusChanged);
    }

    /// The connection closed or failed. Nothing is lost: the next
    /// `connected` resumes from the durable outbox and cursors.
    pub fn disconnected(&mut self) {
        self.session = SessionState::Offline;
        for state in self.docs.values_mut() {
            state.caught_up = false;
        }
        self.effects.push(Effect::StatusChanged);
    }

    /// A binary frame arrived from the relay. A malformed frame is reported
    /// as an [`Effect::Error`] and otherwise ignored.
    pub fn received(&mut self, bytes: &[u8], now_ms: u64) {
        match decode_relay(bytes) {
            Ok(frame) => self.handle(frame, now_ms),
            Err(e) => self.effects.push(Effect::Error(e.into())),
        }
    }

    fn handle(&mut self, frame: RelayFrame, now_ms: u64) {
        match frame {
            RelayFrame::Welcome { epoch, .. } => self.welcomed(epoch, now_ms),
            RelayFrame::Error {
                code,
                message,
                fatal,
            } => {
                if fatal {
                    self.session = SessionState::Offline;
                    self.effects.push(Effect::StatusChanged);
                }
                self.effects.push(Effect::Error(EngineError::RelayRejected {
                    code,
                    message,
                    fatal,
                }));
            }
            RelayFrame::Deltas {
                doc,
                items,
                caught_up,
            } => self.apply_relay_deltas(doc, items, caught_up, now_ms),
            RelayFrame::Ack { doc, ids, seq } => self.acked(doc, &ids, seq, now_ms),
            RelayFrame::DocError { doc, code, message } => {
                self.effects.push(Effect::Error(EngineError::RelayRejected {
                    code,
                    message: format!("document {doc}: {message}"),
                    fatal: false,
                }))
            }
            RelayFrame::Pong { .. } | RelayFrame::Presence { .. } => {}
        }
    }

    fn welcomed(&mut self, epoch: [u8; 16], now_ms: u64) {
        let known = self.relay.as_ref().map(|r| r.epoch);
        if known != Some(epoch) {
            if known.is_some() {
                self.resend_everything(now_ms);
            }
            self.relay = Some(RelayRecord { epoch });
            let mut batch = Batch::default();
            batch.put(&Record::Relay(RelayRecord { epoch }));
            self.effects.push(Effect::Persist(batch));
        }
        self.session = SessionState::Ready;
        let docs: Vec<DocId> = self.docs.keys().copied().collect();
        for doc in docs {
            self.subscribe_if_ready(doc);
        }
        let outbox = self.outbox.clone();
        self.push_if_ready(&outbox);
        self.effects.push(Effect::StatusChanged);
    }

    /// The relay's log is not the one our cursors point into: forget the
    /// cursors and offer each document's whole state as one delta.
    fn resend_everything(&mut self, now_ms: u64) {
        let docs: Vec<DocId> = self.docs.keys().copied().collect();
        for doc in docs {
            let state = self.doc_state(doc);
            state.cursor = 0;
            if state.doc.get_heads().is_empty() {
                self.persist_doc_record(doc);
                continue;
            }
            let changes = state.doc.get_changes(&[]);
            let bytes = delta::encode(changes.iter().map(|c| c.raw_bytes()));
            let entry = LogEntry {
                doc,
                id: delta::id(&bytes),
                bytes,
                time_ms: now_ms,
                message: None,
                origin: Origin::Local,
                relay_seq: None,
            };
            let mut batch = Batch::default();
            batch.put(&Record::Entry(entry.clone()));
            batch.put(&Record::Doc(DocRecord { doc, cursor: 0 }));
            self.effects.push(Effect::Persist(batch));
            if !self.outbox.iter().any(|e| e.id == entry.id) {
                self.outbox.push(entry);
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
        let Some(state) = self.docs.get_mut(&doc) else {
            // Not ours (any more): nothing to apply, nothing to lose.
            return;
        };
        let mut batch = Batch::default();
        let mut problems = Vec::new();
        let mut applied = false;
        for item in items {
            if item.seq <= state.cursor {
                continue; // already have it: a duplicate or a replay
            }
            state.cursor = item.seq;
            if delta::id(&item.bytes) != item.id {
                problems.push(EngineError::BadDelta {
                    doc,
                    id: item.id,
                    reason: "its bytes do not hash to its id".into(),
                });
                continue;
            }
            // Automerge ignores changes it already has and parks those whose
            // dependencies have not arrived yet, so order and duplicates are
            // harmless here.
            match delta::apply(&mut state.doc, &item.bytes) {
                Ok(_) => {
                    applied = true;
                    batch.put(&Record::Entry(LogEntry {
                        doc,
                        id: item.id,
                        bytes: item.bytes,
                        time_ms: now_ms,
                        message: None,
                        origin: Origin::Relay,
                        relay_seq: Some(item.seq),
                    }));
                }
                Err(reason) => problems.push(EngineError::BadDelta {
                    doc,
                    id: item.id,
                    reason,
                }),
            }
        }
        // The cursor travels in the same atomic batch as the deltas it
        // covers: it can never point past a delta that is not durable here.
        batch.put(&Record::Doc(DocRecord {
            doc,
            cursor: state.cursor,
        }));
        let newly_caught_up = caught_up && !state.caught_up;
        state.caught_up |= caught_up;
        self.effects.push(Effect::Persist(batch));
        self.effects.extend(problems.into_iter().map(Effect::Error));
        if applied {
            self.effects.push(Effect::DocChanged(doc));
        }
        if newly_caught_up {
            self.last_synced_ms = Some(now_ms);
            self.effects.push(Effect::CaughtUp(doc));
            self.effects.push(Effect::StatusChanged);
        }
    }

    fn acked(&mut self, doc: DocId, ids: &[syncline_protocol::DeltaId], seq: u64, now_ms: u64) {
        let mut batch = Batch::default();
        self.outbox.retain(|entry| {
            if entry.doc != doc || !ids.contains(&entry.id) {
                return true;
            }
            let mut done = entry.clone();
            done.relay_seq = Some(seq);
            batch.put(&Record::Entry(done));
            false
        });
        if !batch.is_empty() {
            self.effects.push(Effect::Persist(batch));
        }
        self.last_synced_ms = Some(now_ms);
        self.effects.push(Effect::StatusChanged);
    }

    pub(crate) fn subscribe_if_ready(&mut self, doc: DocId) {
        if self.session != SessionState::Ready {
            return;
        }
        let since = self.docs.get(&doc).map_or(0, |s| s.cursor);
        self.send(ClientFrame::Subscribe { doc, since });
    }

    /// Sends `entries` as `Push` frames, grouped by document in order, each
    /// frame within the protocol's bounds.
    pub(crate) fn push_if_ready(&mut self, entries: &[LogEntry]) {
        if self.session != SessionState::Ready {
            return;
        }
        let mut current: Option<(DocId, Vec<PushDelta>, usize)> = None;
        for entry in entries {
            let full = |(doc, deltas, bytes): &mut (DocId, Vec<PushDelta>, usize)| {
                *doc != entry.doc
                    || deltas.len() >= MAX_DELTAS_PER_FRAME
                    || *bytes + entry.bytes.len() > PUSH_FRAME_BYTES
            };
            if let Some((doc, deltas, _)) = current.take_if(full) {
                self.send(ClientFrame::Push { doc, deltas });
            }
            let (_, deltas, bytes) = current.get_or_insert_with(|| (entry.doc, Vec::new(), 0));
            deltas.push(PushDelta {
                id: entry.id,
                bytes: entry.bytes.clone(),
            });
            *bytes += entry.bytes.len();
        }
        if let Some((doc, deltas, _)) = current {
            self.send(ClientFrame::Push { doc, deltas });
        }
    }

    fn send(&mut self, frame: ClientFrame) {
        self.effects.push(Effect::Send(encode_client(&frame)));
    }
}
