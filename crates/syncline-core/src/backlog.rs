//! The backlog limit: what storage has not taken yet stays bounded.
//!
//! Every persist batch the engine emits waits in the host's memory until
//! the host reports it durable ([`Engine::persisted`]). While storage fails
//! (IndexedDB refuses writes, the quota is exhausted) nothing becomes
//! durable, and without a limit every change and every delta from the
//! relay would add to that pile for as long as the page lives. The
//! [`crate::outbox::Outbox`] counts the bytes of the batches not yet
//! durable — the *backlog* — and once it reaches the limit
//! ([`Engine::set_backlog_limit`], [`DEFAULT_BACKLOG_LIMIT`] by default)
//! the engine takes in nothing new until a write succeeds:
//!
//! - a local change is refused with [`EngineError::BacklogFull`] (code
//!   `BacklogFull`); nothing changes, so the app can tell the user;
//! - deltas from the relay (committed or tentative) and from other tabs are
//!   left at their source: the document is marked *deferred*, is no longer
//!   caught up, and asks the relay again from its cursor once the backlog
//!   is below the limit. Nothing is lost: the relay holds what it sent, and
//!   the tab that made a change logs and pushes it itself;
//! - compaction waits; below the limit it also skips any snapshot that
//!   would take the backlog past half of it (a snapshot, and the value
//!   stored beside it, are a whole document's worth of bytes): the other
//!   half stays free for local changes, so a snapshot on its way to a
//!   healthy storage never gets a change refused.
//!
//! What is already in the backlog keeps its promises: the local changes in
//! it still leave for the relay and are acknowledged there (`unsaved`
//! counts those neither written here nor acknowledged; an acknowledged one
//! is safe at the relay though still in the backlog), and the host retries
//! the writes (in the browser at the next change attempt or `flush()`).
//!
//! The limit bounds what the backlog can reach to the limit plus one
//! change (a change is checked before it is made, and may be large) plus
//! the bookkeeping of acknowledgements of what it already holds.

use syncline_protocol::DocId;

use crate::EngineError;
use crate::engine::Engine;

/// The default backlog limit: 32 MiB of batches not yet durable.
pub const DEFAULT_BACKLOG_LIMIT: usize = 32 << 20;

impl Engine {
    /// Sets how many bytes of batches not yet durable the engine lets pile
    /// up before it takes in nothing new (see the module docs).
    pub fn set_backlog_limit(&mut self, bytes: usize) {
        self.backlog_limit = bytes;
    }

    /// The bytes of batches emitted and not yet reported durable.
    pub fn backlog_bytes(&self) -> usize {
        self.outbox.backlog_bytes()
    }

    /// Whether the backlog reached its limit: nothing new comes in.
    pub(crate) fn backlog_full(&self) -> bool {
        self.outbox.backlog_bytes() >= self.backlog_limit
    }

    /// The error a local change gets while the backlog is full.
    pub(crate) fn refuse_change_if_backlog_full(&self) -> Result<(), EngineError> {
        if !self.backlog_full() {
            return Ok(());
        }
        Err(EngineError::BacklogFull {
            bytes: self.outbox.backlog_bytes(),
            limit: self.backlog_limit,
        })
    }

    /// While the backlog is full, leaves what came for `doc` at its source
    /// and returns `true`: the document asks again once there is room.
    pub(crate) fn defer_if_backlog_full(&mut self, doc: &DocId) -> bool {
        if !self.backlog_full() {
            return false;
        }
        if let Some(state) = self.docs.get_mut(doc) {
            state.deferred = true;
            state.caught_up = false;
            state.subscribed_at = None;
        }
        true
    }

    /// After a write: if the backlog is below its limit again, asks the
    /// relay again for every document that left deltas at their source.
    pub(crate) fn resume_deferred(&mut self, now_ms: u64) {
        if self.backlog_full() {
            return;
        }
        let deferred: Vec<DocId> = self
            .docs
            .iter()
            .filter(|(_, s)| s.deferred)
            .map(|(doc, _)| *doc)
            .collect();
        for doc in deferred {
            self.subscribe_if_ready(doc, now_ms);
        }
    }
}
