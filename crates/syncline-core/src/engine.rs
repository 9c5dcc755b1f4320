//! The [`Engine`]: documents, the outbox, and loading from the log.
//!
//! Frame handling — the sync session with the relay — lives in
//! [`crate::sync`]; this file covers what works with no relay at all.

use std::collections::BTreeMap;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, AutoSerde};
use serde_json::Value as Json;
use syncline_protocol::DocId;

use crate::EngineError;
use crate::delta;
use crate::ops::{Op, apply_ops, put_root_object};
use crate::store::{Batch, DocRecord, LogEntry, Origin, Record, RelayRecord, Store};

/// Something the host must do on the engine's behalf.
#[derive(Debug)]
pub enum Effect {
    /// Write this batch atomically. Hosts may merge consecutive batches into
    /// one transaction, but never split one.
    Persist(Batch),
    /// Send this frame to the relay on the current connection.
    Send(Vec<u8>),
    /// A document changed by a delta from elsewhere; re-read its value.
    DocChanged(DocId),
    /// The relay has sent everything it had for this document.
    CaughtUp(DocId),
    /// [`Engine::status`] changed.
    StatusChanged,
    /// Something went wrong that the app should hear about; the engine
    /// carried on and nothing durable was lost.
    Error(EngineError),
}

/// Where the session with the relay stands, as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// No connection.
    Offline,
    /// Connected, `Hello` sent, waiting for `Welcome`.
    Handshaking,
    /// Welcomed: subscriptions and pushes flow.
    Ready,
}

/// What an app shows as "saved / synced".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub session: SessionState,
    /// Local deltas not yet acknowledged by the relay.
    pub pending: usize,
    /// Last time (ms since the epoch) the relay acked a push or caught a
    /// document up.
    pub last_synced_ms: Option<u64>,
}

pub(crate) struct DocState {
    pub(crate) doc: AutoCommit,
    /// Every relay delta up to this sequence is applied (and, once the
    /// batch emitted with it is written, durable).
    pub(crate) cursor: u64,
    pub(crate) caught_up: bool,
}

/// A replica: many documents, one outbox, one sync session.
pub struct Engine {
    pub(crate) actor: ActorId,
    pub(crate) docs: BTreeMap<DocId, DocState>,
    /// Local deltas the relay has not acked, oldest first.
    pub(crate) outbox: Vec<LogEntry>,
    pub(crate) relay: Option<RelayRecord>,
    pub(crate) session: SessionState,
    pub(crate) last_synced_ms: Option<u64>,
    pub(crate) effects: Vec<Effect>,
}

impl Engine {
    /// A new, empty replica. `actor` must be random and unique to this
    /// engine instance (two tabs of one replica need different actors).
    pub fn new(actor: [u8; 16]) -> Engine {
        Engine {
            actor: ActorId::from(actor.as_slice()),
            docs: BTreeMap::new(),
            outbox: Vec::new(),
            relay: None,
            session: SessionState::Offline,
            last_synced_ms: None,
            effects: Vec::new(),
        }
    }

    /// Rebuilds a replica from every record of its log, in any order. An
    /// unreadable record is skipped and reported; the rest still loads.
    pub fn load(
        actor: [u8; 16],
        records: impl IntoIterator<Item = (Store, String, Vec<u8>)>,
    ) -> (Engine, Vec<EngineError>) {
        let mut engine = Engine::new(actor);
        let mut problems = Vec::new();
        let mut entries: BTreeMap<DocId, Vec<LogEntry>> = BTreeMap::new();
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
                Ok(Record::Entry(entry)) => entries.entry(entry.doc).or_default().push(entry),
                Ok(Record::Doc(d)) => engine.doc_state(d.doc).cursor = d.cursor,
                Ok(Record::Relay(r)) => engine.relay = Some(r),
                Err(reason) => problems.push(corrupt(reason)),
            }
        }
        for (doc, mut list) in entries {
            list.sort_by(|a, b| (a.time_ms, a.id).cmp(&(b.time_ms, b.id)));
            let mut changes = Vec::new();
            for entry in &list {
                match delta::decode(&entry.bytes) {
                    Ok(c) => changes.extend(c),
                    Err(reason) => problems.push(EngineError::Corrupt {
                        store: Store::Entries.name(),
                        key: crate::store::entry_key(&doc, &entry.id),
                        reason,
                    }),
                }
            }
            // One call: Automerge orders the changes by their dependencies.
            if let Err(e) = engine.doc_state(doc).doc.apply_changes(changes) {
                problems.push(EngineError::Corrupt {
                    store: Store::Entries.name(),
                    key: doc.to_string(),
                    reason: e.to_string(),
                });
            }
            engine.outbox.extend(
                list.into_iter()
                    .filter(|e| e.origin == Origin::Local && e.relay_seq.is_none()),
            );
        }
        engine
            .outbox
            .sort_by(|a, b| (a.time_ms, a.id).cmp(&(b.time_ms, b.id)));
        (engine, problems)
    }

    /// Creates a document whose root holds the fields of `initial` (a JSON
    /// object). `doc` must be fresh random bits from the host.
    pub fn create_doc(
        &mut self,
        doc: DocId,
        initial: &Json,
        now_ms: u64,
    ) -> Result<(), EngineError> {
        if self.docs.contains_key(&doc) {
            return Err(EngineError::DocExists(doc));
        }
        let mut automerge = AutoCommit::new().with_actor(self.actor.clone());
        put_root_object(&mut automerge, initial)?;
        self.docs.insert(
            doc,
            DocState {
                doc: automerge,
                cursor: 0,
                caught_up: false,
            },
        );
        self.persist_doc_record(doc);
        self.commit_local(doc, None, now_ms);
        self.subscribe_if_ready(doc);
        Ok(())
    }

    /// Starts tracking a document known by URL, fetching it from the relay.
    /// Returns whether this replica already has some of its content.
    pub fn open_doc(&mut self, doc: DocId) -> bool {
        if let Some(state) = self.docs.get_mut(&doc) {
            return !state.doc.get_heads().is_empty();
        }
        self.doc_state(doc);
        self.persist_doc_record(doc);
        self.subscribe_if_ready(doc);
        false
    }

    /// Applies a batch of ops as one Automerge change with an optional
    /// message (the domain event name). On error nothing changes.
    pub fn change(
        &mut self,
        doc: DocId,
        ops: &[Op],
        message: Option<String>,
        now_ms: u64,
    ) -> Result<(), EngineError> {
        let state = self
            .docs
            .get_mut(&doc)
            .ok_or(EngineError::DocNotFound(doc))?;
        if let Err(e) = apply_ops(&mut state.doc, ops) {
            state.doc.rollback();
            return Err(e.into());
        }
        self.commit_local(doc, message, now_ms);
        Ok(())
    }

    /// The document's current value, serializable as plain JSON.
    pub fn value(&self, doc: &DocId) -> Result<AutoSerde<'_, AutoCommit>, EngineError> {
        let state = self.docs.get(doc).ok_or(EngineError::DocNotFound(*doc))?;
        Ok(AutoSerde::from(&state.doc))
    }

    /// The document's current value as a `serde_json::Value`.
    pub fn value_json(&self, doc: &DocId) -> Result<Json, EngineError> {
        Ok(serde_json::to_value(self.value(doc)?).unwrap_or(Json::Null))
    }

    /// The documents this replica tracks.
    pub fn doc_ids(&self) -> impl Iterator<Item = &DocId> {
        self.docs.keys()
    }

    pub fn status(&self) -> Status {
        Status {
            session: self.session,
            pending: self.outbox.len(),
            last_synced_ms: self.last_synced_ms,
        }
    }

    /// The effects asked for since the last call, in order.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    pub(crate) fn doc_state(&mut self, doc: DocId) -> &mut DocState {
        let actor = self.actor.clone();
        self.docs.entry(doc).or_insert_with(|| DocState {
            doc: AutoCommit::new().with_actor(actor),
            cursor: 0,
            caught_up: false,
        })
    }

    pub(crate) fn persist_doc_record(&mut self, doc: DocId) {
        let cursor = self.docs.get(&doc).map_or(0, |s| s.cursor);
        let mut batch = Batch::default();
        batch.put(&Record::Doc(DocRecord { doc, cursor }));
        self.effects.push(Effect::Persist(batch));
    }

    /// Commits the open transaction of `doc` (if it holds any op) as a local
    /// delta: logged, queued in the outbox, pushed if the session is ready.
    fn commit_local(&mut self, doc: DocId, message: Option<String>, now_ms: u64) {
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        if state.doc.pending_ops() == 0 {
            state.doc.rollback();
            return;
        }
        let options = CommitOptions {
            message: message.clone(),
            time: Some((now_ms / 1000) as i64),
        };
        state.doc.commit_with(options);
        let Some(change) = state.doc.get_last_local_change() else {
            return;
        };
        let bytes = delta::encode([change.raw_bytes()]);
        let entry = LogEntry {
            doc,
            id: delta::id(&bytes),
            bytes,
            time_ms: now_ms,
            message,
            origin: Origin::Local,
            relay_seq: None,
        };
        let mut batch = Batch::default();
        batch.put(&Record::Entry(entry.clone()));
        self.effects.push(Effect::Persist(batch));
        self.outbox.push(entry.clone());
        self.push_if_ready(&[entry]);
        self.effects.push(Effect::StatusChanged);
    }
}
