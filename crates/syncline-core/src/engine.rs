//! The [`Engine`]: documents and local changes.
//!
//! Frame handling — the sync session with the relay — lives in
//! [`crate::sync`]; the outbox (what the relay has not acknowledged, and
//! the persist batches that log it) in [`crate::outbox`]; loading and
//! deleting in [`crate::log`]; tabs in [`crate::tabs`]; presence in
//! [`crate::presence`]; history in [`crate::history`]. This file covers
//! documents and local changes.
//!
//! What the engine asks of its host comes out as [`Output`]s, in order:
//! every classic [`Effect`], plus what only a host with tabs and presence
//! needs. [`Engine::take_effects`] is the classic subset, for hosts that have
//! neither; [`Engine::take_outputs`] is everything.

use std::collections::{BTreeMap, HashSet};

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, AutoSerde, Change, ChangeHash};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::Value as Json;
use syncline_protocol::{DocId, Signer};

use crate::access::Access;
use crate::compaction::{CompactionPolicy, LogIndex, RelaySnapshot};
use crate::delta;
use crate::messages::{Messages, RequestFailure, RequestId};
use crate::ops::{Op, Resolved, apply_ops_resolving, put_root_object};
use crate::outbox::Outbox;
use crate::presence::Presence;
use crate::seal::{DeltaIds, DocKey};
use crate::store::{Batch, DocRecord, LogEntry, Origin, Record, RelayRecord};
use crate::undo::UndoStack;
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

/// Everything the engine asks of its host, in order: the classic
/// [`Effect`]s, plus tab broadcasts and presence.
#[derive(Debug)]
pub enum Output {
    /// Storage, relay frames, changed documents, status, errors.
    Effect(Effect),
    /// Post these bytes to the other tabs of this replica (BroadcastChannel);
    /// each hands them to [`Engine::received_from_tab`]. Emitted only when
    /// tab sync is on ([`Engine::set_tab_sync`]).
    Broadcast(Vec<u8>),
    /// A peer's presence on `doc` is now `state` (the bytes it passed to
    /// [`Engine::set_presence`]). `peer` is the replica id its connection
    /// gave the relay in `Hello`.
    Presence {
        doc: DocId,
        peer: [u8; 16],
        state: Vec<u8>,
    },
    /// A peer's presence on `doc` is gone (it left, cleared it, went silent
    /// for [`crate::PRESENCE_TTL_MS`], or our connection dropped).
    PresenceGone { doc: DocId, peer: [u8; 16] },
    /// A peer's ephemeral message on `doc` (see [`crate::messages`]).
    Message {
        doc: DocId,
        from: [u8; 16],
        message: Vec<u8>,
    },
    /// A peer asks for `method` on `doc`, which this replica serves: run
    /// the handler, then [`Engine::reply`] to `from` with `id`.
    Request {
        doc: DocId,
        from: [u8; 16],
        id: RequestId,
        method: String,
        payload: Vec<u8>,
    },
    /// Request `id` (from [`Engine::request`]) settled.
    Reply {
        doc: DocId,
        id: RequestId,
        result: Result<Vec<u8>, RequestFailure>,
    },
    /// Get an access token for `doc` and pass it to [`Engine::token_ready`]
    /// (or the failure to [`Engine::token_failed`]). Emitted only when
    /// tokens are required ([`Engine::set_tokens_required`]); see
    /// [`crate::access`].
    TokenWanted { doc: DocId },
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

/// What an app shows as "saved / synced", for the whole replica (per
/// document: [`crate::DocStatus`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub session: SessionState,
    /// Local changes not yet durable on this device (not safe to close).
    pub unsaved: usize,
    /// Local changes durable on this device, not yet acknowledged by the
    /// relay (held tentative deltas of others are not counted).
    pub pending: usize,
    /// Last time (ms since the epoch) the relay acked a push or caught a
    /// document up.
    pub last_synced_ms: Option<u64>,
}

pub(crate) struct DocState {
    pub(crate) doc: AutoCommit,
    pub(crate) key: DocKey,
    /// Gives local deltas their ids ([`DocKey::delta_id`], keyed once).
    pub(crate) delta_ids: DeltaIds,
    /// Every relay delta up to this sequence is applied (and, once the
    /// batch emitted with it is written, durable).
    pub(crate) cursor: u64,
    pub(crate) caught_up: bool,
    /// When the current subscription was (re)sent, while not caught up.
    pub(crate) subscribed_at: Option<u64>,
    /// When the relay last sent anything for this document.
    pub(crate) heard_at: u64,
    /// The document's log entries, for compaction.
    pub(crate) log: LogIndex,
    /// Ephemeral state: ours and the peers'. Never stored.
    pub(crate) presence: Presence,
    /// A snapshot made by compaction, to offer the relay.
    pub(crate) relay_snapshot: Option<RelaySnapshot>,
    /// Changed by something other than a local change (the relay, a tab,
    /// the log) since [`Engine::patches`] last described it.
    pub(crate) changed_elsewhere: bool,
    /// What the relay lets this replica do with it (see [`crate::access`]).
    pub(crate) access: Access,
    /// The lowest relay sequence whose delta this replica could not use
    /// and skipped (see [`crate::store::UnusableRecord`]).
    pub(crate) unusable_from: Option<u64>,
    /// Where the path of this replica's last local change (if it only
    /// spliced text) led, while the heads are still that change's.
    pub(crate) last_splice: Option<(ChangeHash, Resolved)>,
    /// Local changes made as of older heads ([`Engine::change_at`]) not yet
    /// logged: Automerge commits them under a derived actor, so they are
    /// told from changes merged from elsewhere by hash, not by actor.
    pub(crate) isolated_local: HashSet<ChangeHash>,
    /// Signs its writes for the relay (see `syncline_protocol::proof`);
    /// `None` for a document whose id does not derive from its key (made
    /// before signed writes): the relay serves it for reading only.
    pub(crate) signer: Option<Signer>,
    /// Deltas for it were left at their source while the backlog was full
    /// (see [`crate::backlog`]): it asks the relay again once there is room.
    pub(crate) deferred: bool,
    /// This replica's own changes, to undo and redo (see [`crate::undo`]).
    pub(crate) undo: UndoStack,
}

/// How [`Engine::change_with`] makes a change. The default: no message,
/// undoable.
#[derive(Debug, Clone)]
pub struct ChangeOptions {
    /// The app's name for the change (a domain event), kept in history.
    pub message: Option<String>,
    /// Whether [`Engine::undo`] may revert it (an undo step of its own or
    /// part of the last one, see [`crate::undo`]).
    pub undoable: bool,
}

impl Default for ChangeOptions {
    fn default() -> ChangeOptions {
        ChangeOptions {
            message: None,
            undoable: true,
        }
    }
}

/// A replica: many documents, one outbox, one sync session.
pub struct Engine {
    pub(crate) rng: ChaCha20Rng,
    pub(crate) actor: ActorId,
    pub(crate) docs: BTreeMap<DocId, DocState>,
    /// Local deltas the relay has not acked, oldest first, and the persist
    /// batches that log them (see [`crate::outbox`]).
    pub(crate) outbox: Outbox,
    pub(crate) relay: Option<RelayRecord>,
    pub(crate) session: SessionState,
    pub(crate) session_since: u64,
    pub(crate) last_synced_ms: Option<u64>,
    pub(crate) compaction: CompactionPolicy,
    pub(crate) effects: Vec<Output>,
    /// Only one tab of a replica compacts (the host decides which).
    pub(crate) compaction_enabled: bool,
    /// Emit [`Output::Broadcast`] for every local change.
    pub(crate) tab_sync: bool,
    /// The relay wants a token per document (see [`crate::access`]).
    pub(crate) tokens_required: bool,
    /// This replica's id on the current connection (from `connected`):
    /// presence is signed and sealed for it.
    pub(crate) replica: [u8; 16],
    /// Bytes of batches not yet durable past which nothing new comes in
    /// (see [`crate::backlog`]).
    pub(crate) backlog_limit: usize,
    /// Local changes closer together than this are one undo step.
    pub(crate) undo_capture_ms: u64,
    /// Served methods and pending requests (see [`crate::messages`]).
    pub(crate) messages: Messages,
}

/// A burst of local changes is split into entries of about this size, far
/// within the protocol's frame limit.
const MAX_LOCAL_ENTRY_BYTES: usize = 1 << 20;

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
            outbox: Outbox::default(),
            relay: None,
            session: SessionState::Offline,
            session_since: 0,
            last_synced_ms: None,
            compaction: CompactionPolicy::default(),
            effects: Vec::new(),
            compaction_enabled: true,
            tab_sync: false,
            tokens_required: false,
            replica: [0; 16],
            backlog_limit: crate::backlog::DEFAULT_BACKLOG_LIMIT,
            undo_capture_ms: crate::undo::DEFAULT_CAPTURE_MS,
            messages: Messages::default(),
        }
    }

    /// Creates a document whose root holds the fields of `initial` (a JSON
    /// object), with a fresh id and key. Returns its URL.
    pub fn create_doc(&mut self, initial: &Json, now_ms: u64) -> Result<DocUrl, EngineError> {
        let mut automerge = new_automerge(self.actor.clone());
        put_root_object(&mut automerge, initial)?;
        // The id derives from the key: self-certifying, so the relay can
        // check who may write (see `syncline_protocol::proof`).
        let url = DocUrl::for_key(DocKey(self.random()));
        self.insert_doc(url.doc, url.key).doc = automerge;
        self.persist_doc_record(url.doc);
        // A new document has no heads: its first change is logged from there.
        self.commit_local(url.doc, Some(Vec::new()), None, now_ms);
        self.request_access(url.doc, now_ms);
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
        self.request_access(url.doc, now_ms);
        Ok(false)
    }

    /// Applies a batch of ops as one undoable Automerge change with an
    /// optional message (the domain event name): [`Engine::change_with`].
    pub fn change(
        &mut self,
        doc: DocId,
        ops: &[Op],
        message: Option<String>,
        now_ms: u64,
    ) -> Result<(), EngineError> {
        let options = ChangeOptions {
            message,
            undoable: true,
        };
        self.change_with(doc, ops, options, now_ms)
    }

    /// Applies a batch of ops as one Automerge change. On error nothing
    /// changes; while storage has not taken [`Engine::set_backlog_limit`]
    /// bytes, the change is refused with [`EngineError::BacklogFull`].
    pub fn change_with(
        &mut self,
        doc: DocId,
        ops: &[Op],
        options: ChangeOptions,
        now_ms: u64,
    ) -> Result<(), EngineError> {
        self.refuse_change_if_backlog_full()?;
        let capture_ms = self.undo_capture_ms;
        let state = self
            .docs
            .get_mut(&doc)
            .ok_or(EngineError::DocNotFound(doc))?;
        // No transaction is open here, so reading the heads commits nothing.
        let heads = state.doc.get_heads();
        // The same heads are the same document: the path leads where it led.
        let known = state
            .last_splice
            .take()
            .and_then(|(head, known)| (heads == [head]).then_some(known));
        let since = (!self.outbox.has_burst(&doc)).then_some(heads.clone());
        let resolved = match apply_ops_resolving(&mut state.doc, ops, known) {
            Ok(resolved) => resolved,
            Err(e) => {
                state.doc.rollback();
                return Err(e.into());
            }
        };
        let head = self.commit_local(doc, since, options.message, now_ms);
        if let (Some(head), Some(state)) = (head, self.docs.get_mut(&doc)) {
            if options.undoable {
                state.undo.record(heads, vec![head], now_ms, capture_ms);
            } else {
                state.undo.interrupt();
            }
            if let Some(resolved) = resolved {
                state.last_splice = Some((head, resolved));
            }
        }
        self.tell_if_unprovable(doc);
        Ok(())
    }

    /// [`Engine::change_with`] as of `heads`: the ops are applied to the
    /// document as it was at those heads (Automerge's isolation), so list
    /// indices and text positions mean what they meant to whoever recorded
    /// them against that version (a tab whose engine is in a worker), and
    /// the change depends on those heads only: it merges with whatever
    /// arrived since like a concurrent change. Current (or empty) heads are
    /// [`Engine::change`]. Returns the change's hash (`None`: the ops
    /// changed nothing). Unknown heads fail with
    /// [`EngineError::UnknownHeads`] and nothing changes. The next
    /// [`Engine::patches`] describe the merged result.
    pub fn change_at(
        &mut self,
        doc: DocId,
        heads: &[ChangeHash],
        ops: &[Op],
        options: ChangeOptions,
        now_ms: u64,
    ) -> Result<Option<ChangeHash>, EngineError> {
        let state = self
            .docs
            .get_mut(&doc)
            .ok_or(EngineError::DocNotFound(doc))?;
        let current = state.doc.get_heads();
        // Heads given with some of their own ancestors (a tab's heads plus its
        // later changes) are the same point: compare and record them as such.
        let wanted = crate::history::frontier(&mut state.doc, heads);
        let mut now = current.clone();
        now.sort();
        if wanted.is_empty() || wanted == now {
            self.change_with(doc, ops, options, now_ms)?;
            let state = self
                .docs
                .get_mut(&doc)
                .ok_or(EngineError::DocNotFound(doc))?;
            let head = state.doc.get_heads();
            return Ok(head.last().copied().filter(|h| !current.contains(h)));
        }
        if let Some(hash) = wanted
            .iter()
            .find(|h| state.doc.get_change_by_hash(h).is_none())
        {
            return Err(EngineError::UnknownHeads {
                doc,
                hash: hash.to_string(),
            });
        }
        self.refuse_change_if_backlog_full()?;
        let state = self
            .docs
            .get_mut(&doc)
            .ok_or(EngineError::DocNotFound(doc))?;
        state.last_splice = None;
        let since = (!self.outbox.has_burst(&doc)).then_some(current);
        state.doc.isolate(&wanted);
        if let Err(e) = apply_ops_resolving(&mut state.doc, ops, None) {
            state.doc.rollback();
            state.doc.integrate();
            return Err(e.into());
        }
        let head = self.commit_local(doc, since, options.message, now_ms);
        let capture_ms = self.undo_capture_ms;
        if let Some(state) = self.docs.get_mut(&doc) {
            state.doc.integrate();
            state.isolated_local.extend(head);
            match head {
                // A step of its own: its heads before are not the last step's.
                Some(head) if options.undoable => {
                    state.undo.record(wanted, vec![head], now_ms, capture_ms)
                }
                Some(_) => state.undo.interrupt(),
                None => {}
            }
            // The merged result is not the ops alone: patches come from a diff.
            state.changed_elsewhere = true;
        }
        self.tell_if_unprovable(doc);
        Ok(head)
    }

    /// The encoded change `hash` of the document, if it has it.
    pub fn change_bytes(&mut self, doc: &DocId, hash: &ChangeHash) -> Option<Vec<u8>> {
        let state = self.docs.get_mut(doc)?;
        Some(state.doc.get_change_by_hash(hash)?.raw_bytes().to_vec())
    }

    /// Takes back a local change made by another engine of this replica
    /// that died before making it durable (a worker, in worker mode): the
    /// same change (same hash), applied, logged and pushed like a local
    /// change. A change the document already has is a no-op, so a copy
    /// that arrives from the relay too is applied once.
    pub fn restore_local_change(
        &mut self,
        doc: DocId,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<ChangeHash, EngineError> {
        self.refuse_change_if_backlog_full()?;
        let change = Change::from_bytes(bytes.to_vec())
            .map_err(|e| EngineError::BadTabMessage(e.to_string()))?;
        let hash = change.hash();
        let has_burst = self.outbox.has_burst(&doc);
        let state = self
            .docs
            .get_mut(&doc)
            .ok_or(EngineError::DocNotFound(doc))?;
        if state.doc.get_change_by_hash(&hash).is_some() {
            return Ok(hash);
        }
        let current = state.doc.get_heads();
        state
            .doc
            .apply_changes([change])
            .map_err(|e| EngineError::BadTabMessage(e.to_string()))?;
        state.last_splice = None;
        state.changed_elsewhere = true;
        state.isolated_local.insert(hash);
        if !has_burst {
            self.outbox.start_burst(doc, current, now_ms);
        }
        self.emit(Effect::DocChanged(doc));
        self.emit(Effect::StatusChanged);
        Ok(hash)
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
        state.changed_elsewhere = false;
        Ok(state.doc.diff_incremental())
    }

    /// Starts the document's patches afresh: later ones describe what
    /// changes after its value now (which the caller reads next).
    pub fn restart_patches(&mut self, doc: &DocId) -> Result<(), EngineError> {
        let state = self
            .docs
            .get_mut(doc)
            .ok_or(EngineError::DocNotFound(*doc))?;
        state.changed_elsewhere = false;
        state.doc.update_diff_cursor();
        Ok(())
    }

    /// Right after a local [`Engine::change`]: the patches since the last
    /// call, or `None` when only this replica's local changes happened
    /// since — then the caller, who knows the ops it just made, applies them
    /// to its value itself, and Automerge computes no diff. (Diffing one
    /// change is most of a change's cost on a large document.)
    pub fn patches_after_local_change(
        &mut self,
        doc: &DocId,
    ) -> Result<Option<Vec<automerge::Patch>>, EngineError> {
        let state = self
            .docs
            .get_mut(doc)
            .ok_or(EngineError::DocNotFound(*doc))?;
        if state.changed_elsewhere || state.doc.diff_cursor().is_empty() {
            return self.patches(doc).map(Some);
        }
        state.doc.update_diff_cursor();
        Ok(None)
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
        let (unsaved, pending) = self.outbox.counts(None);
        Status {
            session: self.session,
            unsaved,
            pending,
            last_synced_ms: self.last_synced_ms,
        }
    }

    /// The host wrote every batch up to and including `batch_id`. Outbox
    /// entries that waited for an earlier entry's write are pushed now, and
    /// compaction snapshots that became durable are offered to the relay.
    pub fn persisted(&mut self, batch_id: u64, now_ms: u64) {
        if batch_id <= self.outbox.durable() {
            return;
        }
        if self.outbox.written(batch_id) {
            self.emit(Effect::StatusChanged); // unsaved changes became pending
        }
        if self.session != SessionState::Ready {
            return; // pushed (and deferred documents subscribed) at the next Welcome
        }
        self.resume_deferred(now_ms);
        self.send_snapshots_if_ready();
        if let Some(first) = self.outbox.first_unpushed(None) {
            self.push_if_ready(first..self.outbox.len(), now_ms);
        }
    }

    pub(crate) fn persist(&mut self, mut batch: Batch) {
        batch.id = self.outbox.next_batch(batch.bytes());
        self.emit(Effect::Persist(batch));
    }

    /// The classic effects asked for since the last call, in order. Tab
    /// broadcasts and presence are dropped: a host that handles them calls
    /// [`Engine::take_outputs`] instead.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        self.log_local_changes();
        std::mem::take(&mut self.effects)
            .into_iter()
            .filter_map(|output| match output {
                Output::Effect(effect) => Some(effect),
                _ => None,
            })
            .collect()
    }

    /// Everything asked for since the last call, in order.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        self.log_local_changes();
        std::mem::take(&mut self.effects)
    }

    pub(crate) fn emit(&mut self, effect: Effect) {
        if let Effect::DocChanged(doc) = &effect
            && let Some(state) = self.docs.get_mut(doc)
        {
            state.changed_elsewhere = true;
        }
        self.effects.push(Output::Effect(effect));
    }

    pub(crate) fn random<const N: usize>(&mut self) -> [u8; N] {
        let mut bytes = [0u8; N];
        self.rng.fill_bytes(&mut bytes);
        bytes
    }

    pub(crate) fn insert_doc(&mut self, doc: DocId, key: DocKey) -> &mut DocState {
        let actor = self.actor.clone();
        self.docs.entry(doc).or_insert_with(|| {
            let signer = Some(key.signer()).filter(|s| s.doc_id() == doc);
            DocState {
                doc: new_automerge(actor),
                key,
                delta_ids: DeltaIds::new(&key),
                cursor: 0,
                caught_up: false,
                subscribed_at: None,
                heard_at: 0,
                log: LogIndex::default(),
                presence: Presence::default(),
                relay_snapshot: None,
                changed_elsewhere: false,
                access: Access::new(signer.is_some()),
                unusable_from: None,
                deferred: false,
                last_splice: None,
                undo: UndoStack::default(),
                isolated_local: HashSet::new(),
                signer,
            }
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
    /// change, to be logged with the others of its burst (see
    /// [`Engine::log_local_changes`]).
    /// `since` is the document's heads before it, if it is the first.
    /// Returns the change's hash, if there was one.
    pub(crate) fn commit_local(
        &mut self,
        doc: DocId,
        since: Option<Vec<ChangeHash>>,
        message: Option<String>,
        now_ms: u64,
    ) -> Option<ChangeHash> {
        let state = self.docs.get_mut(&doc)?;
        if state.doc.pending_ops() == 0 {
            state.doc.rollback();
            return None;
        }
        let options = CommitOptions {
            message,
            time: Some((now_ms / 1000) as i64),
        };
        let head = state.doc.commit_with(options);
        if let Some(since) = since {
            self.outbox.start_burst(doc, since, now_ms);
        }
        self.emit(Effect::StatusChanged);
        head
    }

    /// Turns the unlogged local changes into log entries: logged, queued in
    /// the outbox, broadcast to tabs, pushed.
    ///
    /// A document's local changes committed since the outputs were last
    /// taken (its *burst*) are logged together: a burst of changes (a
    /// paste, a loop, a fast typist between two ticks) becomes one log
    /// entry, one storage record, one push and one tab broadcast, and the
    /// change bytes are extracted from Automerge once for all of them. Each
    /// change stays a change of its own inside the entry, with its own
    /// message and time: that is what [`Engine::history`] lists.
    pub(crate) fn log_local_changes(&mut self) {
        for (doc, since, time_ms) in self.outbox.take_bursts() {
            let Some(state) = self.docs.get_mut(&doc) else {
                continue; // deleted since
            };
            // Changes merged from elsewhere since then are not ours to log.
            let isolated = std::mem::take(&mut state.isolated_local);
            let changes: Vec<Change> = state
                .doc
                .get_changes(&since)
                .into_iter()
                .filter(|c| *c.actor_id() == self.actor || isolated.contains(&c.hash()))
                .collect();
            let mut entries = Vec::new();
            let mut rest = &changes[..];
            while !rest.is_empty() {
                let mut size = 0;
                let take = rest
                    .iter()
                    .take_while(|c| {
                        size += c.raw_bytes().len();
                        size <= MAX_LOCAL_ENTRY_BYTES
                    })
                    .count()
                    .max(1);
                let (these, others) = rest.split_at(take);
                rest = others;
                let bytes = delta::encode(these.iter().map(|c| c.raw_bytes()));
                entries.push(LogEntry {
                    doc,
                    id: state.delta_ids.id(&bytes),
                    bytes,
                    time_ms,
                    message: entry_message(these),
                    origin: Origin::Local,
                    relay_seq: None,
                });
            }
            let first = self.outbox.len();
            for entry in entries {
                if self.tab_sync {
                    self.broadcast(&entry);
                }
                self.enqueue(entry);
            }
            self.push_if_ready(first..self.outbox.len(), time_ms);
        }
    }

    /// Logs a local delta and queues it for the relay. The caller made
    /// sure the outbox does not have it yet.
    pub(crate) fn enqueue(&mut self, entry: LogEntry) {
        if let Some(state) = self.docs.get_mut(&entry.doc) {
            state.log.note(entry.id, &entry.bytes, false);
        }
        let mut batch = Batch::default();
        let record = Record::Entry(entry);
        batch.put(&record);
        self.persist(batch);
        let Record::Entry(entry) = record else {
            return; // it is the entry just wrapped
        };
        // The caller pushes it, beside the log write: see `sync.rs` on why
        // the push need not wait for that write.
        let doc = entry.doc;
        self.outbox.log(entry);
        self.emit(Effect::StatusChanged);
        self.maybe_compact(doc);
    }
}

/// A log entry's label: the first message among its changes (each change
/// keeps its own message; this only names the entry, as for an entry
/// received from another tab).
pub(crate) fn entry_message(changes: &[Change]) -> Option<String> {
    changes.iter().find_map(|c| c.message().map(str::to_owned))
}

/// Text indices count UTF-16 code units, as JavaScript strings do.
const TEXT_ENCODING: automerge::TextEncoding = automerge::TextEncoding::Utf16CodeUnit;

pub(crate) fn new_automerge(actor: ActorId) -> AutoCommit {
    AutoCommit::new_with_encoding(TEXT_ENCODING).with_actor(actor)
}

pub(crate) fn load_automerge(bytes: &[u8]) -> Result<AutoCommit, automerge::AutomergeError> {
    AutoCommit::load_with_options(
        bytes,
        automerge::LoadOptions::new().text_encoding(TEXT_ENCODING),
    )
}
