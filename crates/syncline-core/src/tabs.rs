//! Tabs: replicas of one origin that share one log and converge with no
//! relay.
//!
//! Every tab runs its own engine over the same storage. With tab sync on
//! ([`Engine::set_tab_sync`]), each local change is also emitted as an
//! [`Output::Broadcast`]: a small message the host posts on a
//! BroadcastChannel. Another tab hands it to [`Engine::received_from_tab`],
//! which applies it like a relay delta (a duplicate is a no-op, missing
//! dependencies wait inside Automerge) and logs it as a *local outbox
//! entry*: if the tab that made the change dies before pushing it, this one
//! pushes it (the relay deduplicates by delta id). Log keys are derived
//! from content, so both tabs writing the entry write the same record.
//!
//! The message carries the delta sealed exactly as for the relay:
//!
//! ```text
//! message = 1 (format) ‖ postcard { doc: [u8; 16], id: [u8; 32], sealed: bytes }
//! ```
//!
//! A document this tab does not have is ignored: when the app opens it, the
//! host reads its records from storage and hands them to
//! [`Engine::absorb`]. Only one tab should compact
//! ([`Engine::set_compaction_enabled`]): the one holding a Web Lock.

use serde::{Deserialize, Serialize};
use syncline_protocol::{DeltaId, DocId};

use crate::EngineError;
use crate::delta::{self, DeltaError};
use crate::engine::{Effect, Engine, Output};
use crate::store::{LogEntry, Origin};

const TAB_FORMAT: u8 = 1;

#[derive(Serialize, Deserialize)]
struct TabMessage {
    doc: DocId,
    id: DeltaId,
    #[serde(with = "crate::delta::serde_bytes")]
    sealed: Vec<u8>,
}

impl Engine {
    /// Turns [`Output::Broadcast`] on or off (off by default: a host with
    /// no other tabs pays nothing for it).
    pub fn set_tab_sync(&mut self, enabled: bool) {
        self.tab_sync = enabled;
    }

    /// Emits a local delta for the other tabs.
    pub(crate) fn broadcast(&mut self, entry: &LogEntry) {
        let nonce = self.random();
        let Some(state) = self.docs.get(&entry.doc) else {
            return;
        };
        let message = TabMessage {
            doc: entry.doc,
            id: entry.id,
            sealed: state.key.seal(&entry.doc, nonce, &entry.bytes),
        };
        let mut bytes = vec![TAB_FORMAT];
        bytes.extend(postcard::to_allocvec(&message).unwrap_or_default());
        self.effects.push(Output::Broadcast(bytes));
    }

    /// Another tab's [`Output::Broadcast`] arrived. Applies its delta and
    /// logs it in this tab's outbox; a duplicate, or a document this tab
    /// does not have, is a no-op. Bytes that are no tab message are a
    /// [`EngineError::BadTabMessage`]; a delta that can't be opened or
    /// applied is a [`EngineError::BadDelta`]. Either way nothing changes.
    pub fn received_from_tab(&mut self, bytes: &[u8], now_ms: u64) -> Result<(), EngineError> {
        let message = decode(bytes).map_err(EngineError::BadTabMessage)?;
        let (doc, id) = (message.doc, message.id);
        if self.defer_if_backlog_full(&doc) {
            return Ok(()); // the tab that made it logs and pushes it
        }
        let Some(state) = self.docs.get_mut(&doc) else {
            return Ok(());
        };
        let bad = |error: DeltaError| EngineError::BadDelta { doc, id, error };
        let plain = state
            .key
            .open_delta(&doc, &id, &message.sealed)
            .map_err(bad)?;
        if state.log.contains(&id) || self.outbox.contains(&doc, &id) {
            return Ok(()); // already logged here
        }

        let changes = delta::decode(&plain).map_err(bad)?;
        if changes
            .iter()
            .all(|c| state.doc.get_change_by_hash(&c.hash()).is_some())
        {
            return Ok(()); // already applied (e.g. from the relay)
        }
        let message = crate::engine::entry_message(&changes);
        state
            .doc
            .apply_changes(changes)
            .map_err(|e| bad(DeltaError::Apply(Box::new(e))))?;
        self.enqueue(LogEntry {
            doc,
            id,
            bytes: plain,
            time_ms: now_ms,
            message,
            origin: Origin::Local,
            relay_seq: None,
        });
        let last = self.outbox.len() - 1;
        self.push_if_ready(last..last + 1, now_ms);
        self.emit(Effect::DocChanged(doc));
        Ok(())
    }
}

fn decode(bytes: &[u8]) -> Result<TabMessage, String> {
    match bytes.split_first() {
        Some((&TAB_FORMAT, body)) => {
            let (message, rest) = postcard::take_from_bytes::<TabMessage>(body)
                .map_err(|e| format!("not a tab message: {e}"))?;
            match rest.is_empty() {
                true => Ok(message),
                false => Err(format!("{} trailing bytes after the message", rest.len())),
            }
        }
        Some((other, _)) => Err(format!("unknown tab message format {other}")),
        None => Err("empty tab message".into()),
    }
}
