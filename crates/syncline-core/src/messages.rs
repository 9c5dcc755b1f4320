//! Ephemeral messages and requests between the replicas online on a
//! document. Never stored, by the engine or the relay.
//!
//! **Messages.** [`Engine::send_message`] seals the app's bytes with the
//! document key (associated data: the doc id, `"message"` and our replica
//! id, so a message can never pass for a delta, for presence, or for
//! another replica's message) and sends a `SignedMessage` (protocol
//! version 4), which the relay hands to the document's other subscribers
//! that are connected now, as `RelayFrame::Message{from}`; each engine opens
//! it into an [`Output::Message`]. Nothing is queued: offline, or on a relay
//! older than version 4, `send_message` sends nothing and says so.
//!
//! **Requests.** A request is a message too, addressed to every subscriber
//! of the document: [`Engine::request`] sends `Request{id, method,
//! payload}` and keeps the request pending until its deadline. An engine
//! whose host called [`Engine::serve`] for that method on that document
//! emits [`Output::Request`]; the host runs its handler and passes the
//! result (or the handler's error message) to [`Engine::reply`], which
//! sends a `Reply{id}` addressed to the requesting replica only (the relay
//! routes it by `to`). The first reply settles the request
//! ([`Output::Reply`]); later ones are ignored. A replica that does not
//! serve the method stays silent, so "nobody serves it" is only known when
//! the deadline passes: then the request settles with
//! [`RequestFailure::NoServer`]. Why broadcast and first-reply-wins rather
//! than servers announcing themselves (in presence, say): it needs no
//! extra state at the relay or in every peer, works the moment a server
//! subscribes, and a server that went away is simply not asked. The cost:
//! every replica serving a method runs the handler for every request, so
//! serve a method from one replica per document, or make it idempotent.
//!
//! Everything here is bounded: a sealed message is at most
//! [`MAX_MESSAGE_BYTES`], a method name [`MAX_METHOD_BYTES`], and at most
//! [`MAX_PENDING_REQUESTS`] requests wait for replies at once.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use syncline_protocol::{ClientFrame, DocId, MESSAGES_VERSION, proof};

pub use syncline_protocol::MAX_MESSAGE_BYTES;

use crate::EngineError;
use crate::engine::{Effect, Engine, Output};
use crate::seal;

/// Longest method name, in bytes.
pub const MAX_METHOD_BYTES: usize = 256;
/// Most requests waiting for a reply at once, per engine.
pub const MAX_PENDING_REQUESTS: usize = 1024;
/// Bytes the seal adds to a message (format, nonce, tag).
const SEAL_OVERHEAD: usize = 1 + 12 + 16;

/// A request's id: random, so a reply names exactly one request.
pub type RequestId = [u8; 16];

/// Why a request got no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestFailure {
    /// No replica replied before the deadline: none serves the method on
    /// the document, or none is online.
    NoServer,
    /// Our connection dropped before a reply came.
    Disconnected,
    /// The serving replica's handler failed with this message.
    Remote(String),
}

/// What the engine keeps for messages: the relay's version, the methods
/// served here, the requests waiting for replies.
#[derive(Debug, Default)]
pub(crate) struct Messages {
    /// The protocol version of the current session (0: none).
    pub(crate) relay_version: u32,
    /// Methods served, per document.
    served: BTreeMap<DocId, BTreeSet<String>>,
    /// Requests sent and not settled: their document and deadline.
    pending: BTreeMap<RequestId, (DocId, u64)>,
}

impl Messages {
    /// The earliest request deadline.
    pub(crate) fn deadline(&self) -> Option<u64> {
        self.pending.values().map(|(_, at)| *at).min()
    }
}

/// The plaintext of a message: what the relay never sees.
#[derive(Debug, Serialize, Deserialize)]
enum Envelope {
    Broadcast(#[serde(with = "syncline_protocol::serde_bytes_vec")] Vec<u8>),
    Request {
        id: RequestId,
        method: String,
        #[serde(with = "syncline_protocol::serde_bytes_vec")]
        payload: Vec<u8>,
    },
    Reply {
        id: RequestId,
        result: Result<ByteString, String>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct ByteString(#[serde(with = "syncline_protocol::serde_bytes_vec")] Vec<u8>);

/// A message is sealed for one document and one sender.
fn aad(doc: &DocId, sender: &[u8; 16]) -> [u8; 39] {
    let mut aad = [0u8; 39];
    aad[..16].copy_from_slice(&doc.0);
    aad[16..23].copy_from_slice(b"message");
    aad[23..].copy_from_slice(sender);
    aad
}

impl Engine {
    /// Sends `message` (opaque app bytes) to the other replicas online on
    /// `doc` now. Returns whether it was sent: `false` when not connected
    /// (or the relay is older than protocol version 4, or has not granted
    /// the document yet) — nothing is queued.
    pub fn send_message(&mut self, doc: DocId, message: Vec<u8>) -> Result<bool, EngineError> {
        self.seal_and_send(doc, None, &Envelope::Broadcast(message))
    }

    /// Asks the replicas online on `doc` that serve `method`; the first
    /// reply, or [`RequestFailure::NoServer`] once `timeout_ms` passed,
    /// comes as an [`Output::Reply`] with the returned id. Fails at once
    /// when not connected (`Offline`), or with too many requests pending.
    pub fn request(
        &mut self,
        doc: DocId,
        method: &str,
        payload: Vec<u8>,
        timeout_ms: u64,
        now_ms: u64,
    ) -> Result<RequestId, EngineError> {
        check_method(method)?;
        if self.messages.pending.len() >= MAX_PENDING_REQUESTS {
            return Err(EngineError::TooManyRequests {
                limit: MAX_PENDING_REQUESTS,
            });
        }
        let id = self.random();
        let method = method.to_owned();
        let envelope = Envelope::Request {
            id,
            method,
            payload,
        };
        if !self.seal_and_send(doc, None, &envelope)? {
            return Err(EngineError::MessagesOffline(doc));
        }
        let deadline = now_ms.saturating_add(timeout_ms);
        self.messages.pending.insert(id, (doc, deadline));
        Ok(id)
    }

    /// Requests for `method` on `doc` are answered here from now on: each
    /// comes as an [`Output::Request`], to be answered with
    /// [`Engine::reply`].
    pub fn serve(&mut self, doc: DocId, method: &str) -> Result<(), EngineError> {
        check_method(method)?;
        if !self.docs.contains_key(&doc) {
            return Err(EngineError::DocNotFound(doc));
        }
        let served = self.messages.served.entry(doc).or_default();
        served.insert(method.to_owned());
        Ok(())
    }

    /// Stops serving `method` on `doc`.
    pub fn unserve(&mut self, doc: DocId, method: &str) {
        if let Some(served) = self.messages.served.get_mut(&doc) {
            served.remove(method);
            if served.is_empty() {
                self.messages.served.remove(&doc);
            }
        }
    }

    /// Answers request `id` of replica `to` on `doc` with the handler's
    /// result, or its error message. A result too large to send is
    /// answered with an error saying so (and that error is returned too).
    pub fn reply(
        &mut self,
        doc: DocId,
        to: [u8; 16],
        id: RequestId,
        result: Result<Vec<u8>, String>,
    ) -> Result<bool, EngineError> {
        let envelope = Envelope::Reply {
            id,
            result: result.map(ByteString),
        };
        match self.seal_and_send(doc, Some(to), &envelope) {
            Err(EngineError::MessageTooLarge { size, limit }) => {
                let message = format!(
                    "the result of {size} bytes exceeds the message limit of {limit} bytes"
                );
                let envelope = Envelope::Reply {
                    id,
                    result: Err(message),
                };
                self.seal_and_send(doc, Some(to), &envelope)?;
                Err(EngineError::MessageTooLarge { size, limit })
            }
            other => other,
        }
    }

    fn seal_and_send(
        &mut self,
        doc: DocId,
        to: Option<[u8; 16]>,
        envelope: &Envelope,
    ) -> Result<bool, EngineError> {
        if !self.docs.contains_key(&doc) {
            return Err(EngineError::DocNotFound(doc));
        }
        let plain = postcard::to_allocvec(envelope).unwrap_or_default();
        let size = plain.len() + SEAL_OVERHEAD;
        if size > MAX_MESSAGE_BYTES {
            return Err(EngineError::MessageTooLarge {
                size,
                limit: MAX_MESSAGE_BYTES,
            });
        }
        if !self.may_read(&doc) || self.messages.relay_version < MESSAGES_VERSION {
            return Ok(false);
        }
        let nonce = self.random();
        let replica = self.replica;
        let Some(state) = self.docs.get(&doc) else {
            return Ok(false);
        };
        let Some(signer) = &state.signer else {
            // A document from before signed writes: nothing can be proven.
            return Ok(false);
        };
        let bytes = seal::seal(&state.key.0, nonce, &aad(&doc, &replica), &plain);
        let digest = proof::message_digest(&doc, &replica, to.as_ref(), &bytes);
        let proof = signer.prove(&digest);
        let frame = ClientFrame::SignedMessage {
            doc,
            to,
            bytes,
            proof,
        };
        self.emit(Effect::Send(syncline_protocol::encode_client(&frame)));
        Ok(true)
    }

    /// A peer's message arrived from the relay.
    pub(crate) fn message_received(&mut self, doc: DocId, from: [u8; 16], bytes: &[u8]) {
        let Some(state) = self.docs.get(&doc) else {
            return;
        };
        let opened = seal::open(&state.key.0, &aad(&doc, &from), bytes)
            .map_err(|e| e.to_string())
            .and_then(|plain| postcard::from_bytes(&plain).map_err(|e| e.to_string()));
        let envelope = match opened {
            Ok(envelope) => envelope,
            Err(error) => {
                return self.emit(Effect::Error(EngineError::BadMessage { doc, error }));
            }
        };
        match envelope {
            Envelope::Broadcast(message) => {
                self.effects.push(Output::Message { doc, from, message });
            }
            Envelope::Request {
                id,
                method,
                payload,
            } => {
                let served = self.messages.served.get(&doc);
                if served.is_some_and(|methods| methods.contains(&method)) {
                    self.effects.push(Output::Request {
                        doc,
                        from,
                        id,
                        method,
                        payload,
                    });
                }
            }
            Envelope::Reply { id, result } => {
                if self
                    .messages
                    .pending
                    .get(&id)
                    .is_some_and(|(d, _)| *d == doc)
                {
                    self.messages.pending.remove(&id);
                    let result = result.map(|b| b.0).map_err(RequestFailure::Remote);
                    self.effects.push(Output::Reply { doc, id, result });
                }
            }
        }
    }

    /// Settles the requests whose deadline passed: nobody replied.
    pub(crate) fn messages_tick(&mut self, now_ms: u64) {
        let expired: Vec<RequestId> = self
            .messages
            .pending
            .iter()
            .filter(|(_, (_, at))| *at <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some((doc, _)) = self.messages.pending.remove(&id) {
                let result = Err(RequestFailure::NoServer);
                self.effects.push(Output::Reply { doc, id, result });
            }
        }
    }

    /// Our connection dropped: no reply can come to a pending request.
    pub(crate) fn messages_disconnected(&mut self) {
        self.messages.relay_version = 0;
        for (id, (doc, _)) in std::mem::take(&mut self.messages.pending) {
            let result = Err(RequestFailure::Disconnected);
            self.effects.push(Output::Reply { doc, id, result });
        }
    }
}

fn check_method(method: &str) -> Result<(), EngineError> {
    if method.is_empty() || method.len() > MAX_METHOD_BYTES {
        return Err(EngineError::BadMethod {
            len: method.len(),
            limit: MAX_METHOD_BYTES,
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
