//! The [`Engine`]: documents, the outbox, and loading from the log.
//!
//! Frame handling — the sync session with the relay — lives in
//! [`crate::sync`]; this file covers what works with no relay at all.

use std::collections::BTreeMap;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, AutoSerde};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::Value as Json;
use syncline_protocol::DocId;

use crate::compaction::{CompactionPolicy, LogIndex};
use crate::delta;
use crate::ops::{Op, apply_ops, put_root_object};
use crate::seal::DocKey;
use crate::store::{Batch, DocRecord, LogEntry, Origin, Record, RelayRecord, Store};
use crate::{DocUrl, EngineError};

/// Something the host must do on the engine's behalf.
#[derive(Debug)]
pub enum Effect {
    /// Write this batch atomically, after every batch emitted before it, then
    /// report it with [`Engine::persisted`]. Hosts may merge consecutive
    /// batches into one transaction, but never split or reorder them.
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
    /// Give up on the current connection (it stopped making progress):
    /// close it, then reconnect as after any drop.
    Disconnect,
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
    pub(crate) key: DocKey,
    /// Every relay delta up to this sequence is applied (and, once the
    /// batch emitted with it is written, durable).
    pub(crate) cursor: u64,
    pub(crate) caught_up: bool,
    /// When the current subscription was (re)sent, while not caught up.
    pub(crate) subscribed_at: Option<u64>,
    /// The document's log entries, for compaction.
    pub(crate) log: LogIndex,
}

/// An outbox entry and when it was last pushed on this connection.
pub(crate) struct Outgoing {
    pub(crate) entry: LogEntry,
    pub(crate) pushed_at: Option<u64>,
    /// The batch that makes it durable here. Only durable entries are
    /// pushed, so the relay never holds a change whose dependencies could
    /// still vanish in a crash of this replica.
    pub(crate) batch: u64,
}

/// A replica: many documents, one outbox, one sync session.
pub struct Engine {
    pub(crate) rng: ChaCha20Rng,
    pub(crate) actor: ActorId,
    pub(crate) docs: BTreeMap<DocId, DocState>,
    /// Local deltas the relay has not acked, oldest first.
    pub(crate) outbox: Vec<Outgoing>,
    pub(crate) relay: Option<RelayRecord>,
    pub(crate) session: SessionState,
    pub(crate) session_since: u64,
    pub(crate) last_synced_ms: Option<u64>,
    pub(crate) compaction: CompactionPolicy,
    /// The last batch emitted, and the last one the host reported durable.
    pub(crate) batches_emitted: u64,
    pub(crate) batches_durable: u64,
    pub(crate) effects: Vec<Effect>,
}

impl Engine {
    /// A new, empty replica. `seed` must be fresh random bytes for every
    /// engine instance: document ids, keys, nonces and the Automerge actor
    /// all come from it (two tabs of one replica need different seeds).
    pub fn new(seed: [u8; 32]) -> Engine {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut actor = [0u8; 16];
        rng.fill_bytes(&mut actor);
        Engine {
            rng,
            actor: ActorId::from(actor.as_slice()),
            docs: BTreeMap::new(),
            outbox: Vec::new(),
            relay: None,
            session: SessionState::Offline,
            session_since: 0,
            last_synced_ms: None,
            compaction: CompactionPolicy::default(),
            batches_emitted: 0,
            batches_durable: 0,
            effects: Vec::new(),
        }
    }

    /// Rebuilds a replica from every record of its log, in any order. An
    /// unreadable record is skipped and reported; the rest still loads.
    pub fn load(
        seed: [u8; 32],
        records: impl IntoIterator<Item = (Store, String, Vec<u8>)>,
    ) -> (Engine, Vec<EngineError>) {
        let mut engine = Engine::new(seed);
        let mut problems = Vec::new();
        let mut entries: BTreeMap<DocId, Vec<(String, LogEntry)>> = BTreeMap::new();
        let mut snapshots = BTreeMap::new();
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
                Ok(Record::Entry(entry)) => {
                    entries.entry(entry.doc).or_default().push((key, entry))
                }
                Ok(Record::Doc(d)) => {
                    let state = engine.insert_doc(d.doc, DocKey(d.key));
                    state.cursor = d.cursor;
                }
                Ok(Record::Relay(r)) => engine.relay = Some(r),
                Ok(Record::Snapshot(snapshot)) => {
                    snapshots.insert(snapshot.doc, (key, snapshot.bytes));
                }
                Err(reason) => problems.push(corrupt(reason)),
            }
        }
        for (doc, (key, bytes)) in snapshots {
            let actor = engine.actor.clone();
            match (engine.docs.get_mut(&doc), load_automerge(&bytes)) {
                (Some(state), Ok(loaded)) => state.doc = loaded.with_actor(actor),
                (_, result) => problems.push(EngineError::Corrupt {
                    store: Store::Snapshots.name(),
                    key,
                    reason: result
                        .err()
                        .map_or("no document record".into(), |e| e.to_string()),
                }),
            }
        }
        for (doc, mut list) in entries {
            let Some(state) = engine.docs.get_mut(&doc) else {
                problems.push(EngineError::Corrupt {
                    store: Store::Docs.name(),
                    key: doc.to_string(),
                    reason: "log entries exist but the document record is missing".into(),
                });
                continue;
            };
            list.sort_by_key(|(_, e)| (e.time_ms, e.id));
            let mut changes = Vec::new();
            for (key, entry) in &list {
                let droppable = entry.origin == Origin::Relay || entry.relay_seq.is_some();
                state.log.note(entry.id, entry.bytes.len(), droppable);
                match delta::decode(&entry.bytes) {
                    Ok(c) => changes.extend(c),
                    Err(reason) => problems.push(EngineError::Corrupt {
                        store: Store::Entries.name(),
                        key: key.clone(),
                        reason,
                    }),
                }
            }
            // One call: Automerge orders the changes by their dependencies.
            if let Err(e) = state.doc.apply_changes(changes) {
                problems.push(EngineError::Corrupt {
                    store: Store::Entries.name(),
                    key: doc.to_string(),
                    reason: e.to_string(),
                });
            }
            engine.outbox.extend(
                list.into_iter()
                    .map(|(_, entry)| entry)
                    .filter(|e| e.origin == Origin::Local && e.relay_seq.is_none())
                    .map(|entry| Outgoing {
                        entry,
                        pushed_at: None,
                        batch: 0, // loaded from storage: durable
                    }),
            );
        }
        (engine, problems)
    }

    /// Creates a document whose root holds the fields of `initial` (a JSON
    /// object), with a fresh id and key. Returns its URL.
    pub fn create_doc(&mut self, initial: &Json, now_ms: u64) -> Result<DocUrl, EngineError> {
        let mut automerge = new_automerge(self.actor.clone());
        put_root_object(&mut automerge, initial)?;
        let url = DocUrl {
            doc: DocId(self.random()),
            key: DocKey(self.random()),
        };
        self.insert_doc(url.doc, url.key).doc = automerge;
        self.persist_doc_record(url.doc);
        self.commit_local(url.doc, None, now_ms);
        self.subscribe_if_ready(url.doc, now_ms);
        Ok(url)
    }

    /// Starts tracking a document known by URL, fetching it from the relay.
    /// Returns whether this replica already has some of its content.
    pub fn open_doc(&mut self, url: &DocUrl, now_ms: u64) -> Result<bool, EngineError> {
        if let Some(state) = self.docs.get_mut(&url.doc) {
            if state.key != url.key {
                return Err(EngineError::KeyMismatch(url.doc));
            }
            return Ok(!state.doc.get_heads().is_empty());
        }
        self.insert_doc(url.doc, url.key);
        self.persist_doc_record(url.doc);
        self.subscribe_if_ready(url.doc, now_ms);
        Ok(false)
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

    /// How the document changed since the previous call (the first call
    /// describes the whole document): Automerge patches, for a UI that
    /// updates its view instead of re-reading the whole value.
    pub fn patches(&mut self, doc: &DocId) -> Result<Vec<automerge::Patch>, EngineError> {
        let state = self
            .docs
            .get_mut(doc)
            .ok_or(EngineError::DocNotFound(*doc))?;
        Ok(state.doc.diff_incremental())
    }

    /// The document's current value as a `serde_json::Value`.
    pub fn value_json(&self, doc: &DocId) -> Result<Json, EngineError> {
        Ok(serde_json::to_value(self.value(doc)?).unwrap_or(Json::Null))
    }

    /// The Automerge document, read-only (for tests, tools and exports).
    pub fn automerge(&self, doc: &DocId) -> Option<&AutoCommit> {
        self.docs.get(doc).map(|s| &s.doc)
    }

    /// The URL of a document this replica tracks.
    pub fn url(&self, doc: &DocId) -> Option<DocUrl> {
        self.docs.get(doc).map(|s| DocUrl {
            doc: *doc,
            key: s.key,
        })
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

    /// The host wrote every batch up to and including `batch_id`. Outbox
    /// entries that became durable are pushed now.
    pub fn persisted(&mut self, batch_id: u64, now_ms: u64) {
        if batch_id <= self.batches_durable {
            return;
        }
        self.batches_durable = batch_id.min(self.batches_emitted);
        if self.session != SessionState::Ready {
            return; // pushed at the next Welcome
        }
        if let Some(first) = self
            .outbox
            .iter()
            .position(|o| o.pushed_at.is_none() && o.batch <= self.batches_durable)
        {
            self.push_if_ready(first..self.outbox.len(), now_ms);
        }
    }

    pub(crate) fn persist(&mut self, mut batch: Batch) {
        self.batches_emitted += 1;
        batch.id = self.batches_emitted;
        self.effects.push(Effect::Persist(batch));
    }

    /// The effects asked for since the last call, in order.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    pub(crate) fn random<const N: usize>(&mut self) -> [u8; N] {
        let mut bytes = [0u8; N];
        self.rng.fill_bytes(&mut bytes);
        bytes
    }

    fn insert_doc(&mut self, doc: DocId, key: DocKey) -> &mut DocState {
        let actor = self.actor.clone();
        self.docs.entry(doc).or_insert_with(|| DocState {
            doc: new_automerge(actor),
            key,
            cursor: 0,
            caught_up: false,
            subscribed_at: None,
            log: LogIndex::default(),
        })
    }

    pub(crate) fn doc_record(&self, doc: DocId) -> Option<Record> {
        let state = self.docs.get(&doc)?;
        Some(Record::Doc(DocRecord {
            doc,
            key: state.key.0,
            cursor: state.cursor,
        }))
    }

    pub(crate) fn persist_doc_record(&mut self, doc: DocId) {
        if let Some(record) = self.doc_record(doc) {
            let mut batch = Batch::default();
            batch.put(&record);
            self.persist(batch);
        }
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
            id: state.key.delta_id(&bytes),
            bytes,
            time_ms: now_ms,
            message,
            origin: Origin::Local,
            relay_seq: None,
        };
        self.enqueue(entry);
    }

    /// Logs a local delta and queues it for the relay.
    pub(crate) fn enqueue(&mut self, entry: LogEntry) {
        if let Some(state) = self.docs.get_mut(&entry.doc) {
            state.log.note(entry.id, entry.bytes.len(), false);
        }
        let mut batch = Batch::default();
        batch.put(&Record::Entry(entry.clone()));
        self.persist(batch);
        // Pushed once durable: see `persisted`.
        self.outbox.push(Outgoing {
            entry,
            pushed_at: None,
            batch: self.batches_emitted,
        });
        self.effects.push(Effect::StatusChanged);
    }
}

/// Text indices count UTF-16 code units, as JavaScript strings do.
const TEXT_ENCODING: automerge::TextEncoding = automerge::TextEncoding::Utf16CodeUnit;

pub(crate) fn new_automerge(actor: ActorId) -> AutoCommit {
    AutoCommit::new_with_encoding(TEXT_ENCODING).with_actor(actor)
}

fn load_automerge(bytes: &[u8]) -> Result<AutoCommit, automerge::AutomergeError> {
    AutoCommit::load_with_options(
        bytes,
        automerge::LoadOptions::new().text_encoding(TEXT_ENCODING),
    )
}
