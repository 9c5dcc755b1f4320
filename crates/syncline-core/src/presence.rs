//! Presence: who is here, and where their cursor is. Ephemeral, never
//! stored.
//!
//! The app hands [`Engine::set_presence`] opaque bytes (its own encoding of
//! cursor, selection, name). While connected, the engine seals them with the
//! document key (associated data: the doc id and `"presence"`, so a sealed
//! delta can never pass for presence or the reverse) and sends
//! `ClientFrame::Presence`; it sends the latest state again after every
//! (re)subscribe, and every [`PRESENCE_REFRESH_MS`] while connected.
//!
//! The relay fans presence out as `RelayFrame::Presence{from}` and, when a
//! subscription ends (unsubscribe or a closed connection), sends an empty
//! presence from it: "gone". The engine opens each one into an
//! [`Output::Presence`], and turns "gone" into [`Output::PresenceGone`].
//! Because a relay may restart, or a peer's "gone" may be dropped by a full
//! queue, a peer not heard from for [`PRESENCE_TTL_MS`] (three refreshes)
//! also expires; and when our own connection drops, every peer is gone.

use std::collections::BTreeMap;

use syncline_protocol::{ClientFrame, DocId};

use crate::EngineError;
use crate::engine::{Effect, Engine, Output};
use crate::seal;

/// While connected, our presence is re-sent this often.
pub const PRESENCE_REFRESH_MS: u64 = 15_000;
/// A peer not heard from for this long is gone.
pub const PRESENCE_TTL_MS: u64 = 3 * PRESENCE_REFRESH_MS;

/// A document's presence, ours and the peers'.
#[derive(Debug, Default)]
pub(crate) struct Presence {
    /// Our latest state, and when it was last sent on this connection.
    ours: Option<Vec<u8>>,
    sent_at: Option<u64>,
    /// Peers by replica id: when each was last heard from.
    peers: BTreeMap<[u8; 16], u64>,
}

impl Presence {
    /// When [`Engine::presence_tick`] has work for this document: our
    /// state's refresh (`may_send`: the document may be sent to now), or
    /// the first peer's expiry.
    pub(crate) fn deadline(&self, may_send: bool) -> Option<u64> {
        let refresh = self
            .sent_at
            .filter(|_| may_send && self.ours.is_some())
            .map(|t| t.saturating_add(PRESENCE_REFRESH_MS));
        let expiry = self
            .peers
            .values()
            .min()
            .map(|t| t.saturating_add(PRESENCE_TTL_MS));
        refresh.into_iter().chain(expiry).min()
    }
}

/// Presence is sealed for one document and one replica: a peer's state
/// cannot be passed off as another's (or as a delta).
fn aad(doc: &DocId, replica: &[u8; 16]) -> [u8; 40] {
    let mut aad = [0u8; 40];
    aad[..16].copy_from_slice(&doc.0);
    aad[16..24].copy_from_slice(b"presence");
    aad[24..].copy_from_slice(replica);
    aad
}

impl Engine {
    /// Sets our presence on `doc` (opaque app bytes) and sends it to the
    /// document's other subscribers if connected, or once connected.
    pub fn set_presence(
        &mut self,
        doc: DocId,
        state: Vec<u8>,
        now_ms: u64,
    ) -> Result<(), EngineError> {
        let presence = &mut self
            .docs
            .get_mut(&doc)
            .ok_or(EngineError::DocNotFound(doc))?
            .presence;
        presence.ours = Some(state);
        self.send_presence(doc, now_ms);
        Ok(())
    }

    /// Withdraws our presence on `doc`: peers see it gone.
    pub fn clear_presence(&mut self, doc: DocId) -> Result<(), EngineError> {
        let presence = &mut self
            .docs
            .get_mut(&doc)
            .ok_or(EngineError::DocNotFound(doc))?
            .presence;
        let had = presence.ours.take().is_some();
        presence.sent_at = None;
        if had && self.may_read(&doc) {
            let bytes = Vec::new(); // empty: "none", for the relay and peers
            self.send(ClientFrame::Presence { doc, bytes });
        }
        Ok(())
    }

    /// Sends our presence on `doc`, if we have one and are connected.
    pub(crate) fn send_presence(&mut self, doc: DocId, now_ms: u64) {
        if !self.may_read(&doc) {
            return;
        }
        let nonce = self.random();
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        let Some(ours) = &state.presence.ours else {
            return;
        };
        let bytes = seal::seal(&state.key.0, nonce, &aad(&doc, &self.replica), ours);
        state.presence.sent_at = Some(now_ms);
        self.send(ClientFrame::Presence { doc, bytes });
    }

    /// A peer's presence arrived from the relay.
    pub(crate) fn presence_received(
        &mut self,
        doc: DocId,
        peer: [u8; 16],
        bytes: Vec<u8>,
        now_ms: u64,
    ) {
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        let peers = &mut state.presence.peers;
        if bytes.is_empty() {
            if peers.remove(&peer).is_some() {
                self.effects.push(Output::PresenceGone { doc, peer });
            }
            return;
        }
        match seal::open(&state.key.0, &aad(&doc, &peer), &bytes) {
            Ok(plain) => {
                peers.insert(peer, now_ms);
                self.effects.push(Output::Presence {
                    doc,
                    peer,
                    state: plain,
                });
            }
            Err(error) => self.emit(Effect::Error(EngineError::BadPresence { doc, error })),
        }
    }

    /// Timers: refresh ours, expire silent peers.
    pub(crate) fn presence_tick(&mut self, now_ms: u64) {
        let mut due = Vec::new();
        let mut gone = Vec::new();
        for (doc, state) in &mut self.docs {
            let p = &mut state.presence;
            if p.ours.is_some()
                && p.sent_at
                    .is_some_and(|t| now_ms.saturating_sub(t) >= PRESENCE_REFRESH_MS)
            {
                due.push(*doc);
            }
            p.peers.retain(|peer, heard| {
                let alive = now_ms.saturating_sub(*heard) < PRESENCE_TTL_MS;
                if !alive {
                    gone.push((*doc, *peer));
                }
                alive
            });
        }
        for doc in due {
            self.send_presence(doc, now_ms);
        }
        for (doc, peer) in gone {
            self.effects.push(Output::PresenceGone { doc, peer });
        }
    }

    /// Our connection dropped: we can no longer tell who is here.
    pub(crate) fn presence_disconnected(&mut self) {
        let mut gone = Vec::new();
        for (doc, state) in &mut self.docs {
            state.presence.sent_at = None;
            let peers = std::mem::take(&mut state.presence.peers);
            gone.extend(peers.into_keys().map(|peer| (*doc, peer)));
        }
        for (doc, peer) in gone {
            self.effects.push(Output::PresenceGone { doc, peer });
        }
    }
}
