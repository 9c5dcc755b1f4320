//! Syncline's wire protocol: the frames a client and a relay exchange.
//!
//! Every frame is one binary WebSocket message holding one [`ClientFrame`]
//! (client → relay) or one [`RelayFrame`] (relay → client), encoded with
//! [postcard](https://docs.rs/postcard) — a compact, stable serde encoding
//! (varint integers, length-prefixed bytes, enum variants by index). New
//! variants are only ever appended, so older decoders reject newer frames
//! with a clear [`ProtocolError`] instead of misreading them.
//!
//! The relay never interprets a delta: to it a delta is opaque bytes with an
//! id. Ordering, acknowledgement and catch-up are all the relay does:
//!
//! ```text
//! client                                  relay
//!   Hello{version, replica, token}   ─▶
//!                                    ◀─  Welcome{version, epoch, limits} | Error{..}
//!   Subscribe{doc, since}            ─▶
//!                                    ◀─  Deltas{doc, items: [(seq, bytes)], caught_up}
//!   Push{doc, deltas: [(id, bytes)]} ─▶
//!                                    ◀─  Ack{doc, ids, seq}     (only after commit)
//!                                    ◀─  Tentative{doc, deltas} (live, from others, before commit)
//!                                    ◀─  Committed{doc, after, seq, ids} (live, after commit)
//! ```
//!
//! # Live delivery (version 2)
//!
//! A live subscriber should see another client's edit at network speed, not
//! after the relay's disk has synced — but its cursor must never point past
//! a delta the relay has not stored. So live deltas come in two steps:
//!
//! 1. `Tentative{doc, deltas}` as soon as a push arrives, before the relay's
//!    commit: apply them, keep them, but do **not** advance the cursor. They
//!    are not yet known to be stored anywhere but at their author (which may
//!    crash): a client holds a tentative delta as its own to re-push until it
//!    is confirmed.
//! 2. `Committed{doc, after, seq, ids}` once the commit is durable: every
//!    delta with a sequence in `after + 1 ..= seq` is stored, and this
//!    connection has been sent each of them (as `Tentative` or earlier) except
//!    its own pushes; `ids` are those others' deltas, now confirmed. A client
//!    whose cursor is `after` (or more) and holds all of `ids` moves its
//!    cursor to `seq`; any other client has missed something and subscribes
//!    again from its cursor.
//!
//! A version 1 client gets committed deltas as `Deltas` instead, and never
//! its own pushes.
//!
//! Decoding never panics: any byte string gives a frame or a [`ProtocolError`].

mod ids;
pub mod proof;
mod summary;

pub use ids::{DeltaId, DocId, IdParseError};
pub use proof::{ProofError, Signature, Signer, WriteProof};
pub use summary::FrameSummary;

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks. Sent in `Hello` and `Welcome`.
/// Version 2 added live delivery by `Tentative` and `Committed`; version 3
/// the error codes [`ErrorCode::ReadOnly`], [`ErrorCode::TokenExpired`]
/// and [`ErrorCode::Unproven`] (a relay sends older clients `Unauthorized`
/// in their place) and signed writes (`SignedPush`, `SignedSnapshot`,
/// `SignedPresence`: see [`proof`]), the only writes a relay accepts; and
/// [`ErrorCode::QuotaExceeded`] (older clients get `LimitExceeded`);
/// version 4 ephemeral messages (`SignedMessage`, `RelayFrame::Message`,
/// [`ErrorCode::RateLimited`]), sent only between version 4 peers.
pub const PROTOCOL_VERSION: u32 = 4;

/// The first version that relays ephemeral messages.
pub const MESSAGES_VERSION: u32 = 4;

/// Largest sealed message (`SignedMessage.bytes`) a client sends and the
/// reference relay accepts by default; a relay may announce a lower limit
/// by refusing larger ones with `DocError{LimitExceeded}`.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The oldest version a relay still serves (live delivery by `Deltas`).
pub const MIN_PROTOCOL_VERSION: u32 = 1;

/// Largest encoded frame either side accepts, in bytes.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Most deltas one `Push` or `Deltas` frame may carry.
pub const MAX_DELTAS_PER_FRAME: usize = 4096;

/// Longest access token, in bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// A frame sent by a client to the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// Opens the session. Must be the first frame.
    Hello {
        version: u32,
        /// The sending replica's id (random, stable per device and name).
        replica: [u8; 16],
        token: Option<String>,
    },
    /// Asks for every committed delta of `doc` with a sequence above `since`,
    /// then for live deltas as they are committed.
    Subscribe { doc: DocId, since: u64 },
    /// Offers deltas for the relay to commit. Answered by `Ack` once durable.
    Push { doc: DocId, deltas: Vec<PushDelta> },
    /// Liveness probe; answered by `Pong` with the same nonce.
    Ping { nonce: u64 },
    /// Stops live deltas and presence for `doc` on this connection.
    Unsubscribe { doc: DocId },
    /// Presents an access token for `doc` (when the relay requires tokens).
    /// Must come before `Subscribe`/`Push` for that doc; a token in `Hello`
    /// counts for the document it names.
    Authorize { doc: DocId, token: String },
    /// Ephemeral state (cursor, selection, who is here), sealed; fanned out
    /// to the document's other subscribers, never stored.
    Presence {
        doc: DocId,
        #[serde(with = "serde_bytes_vec")]
        bytes: Vec<u8>,
    },
    /// A client-made compaction: one delta equivalent to every delta of
    /// `doc` up to and including `covers_seq`. The relay may serve it in
    /// their place to clients catching up from below `covers_seq`. Acked
    /// like a push (`Ack{ids: [id], seq: covers_seq}`).
    Snapshot {
        doc: DocId,
        covers_seq: u64,
        id: DeltaId,
        #[serde(with = "serde_bytes_vec")]
        bytes: Vec<u8>,
    },
    /// (Version 3.) `Push` with a proof of the document key
    /// ([`proof::push_digest`]); the only push a relay accepts.
    SignedPush {
        doc: DocId,
        deltas: Vec<PushDelta>,
        proof: WriteProof,
    },
    /// (Version 3.) `Snapshot` with a proof ([`proof::snapshot_digest`]).
    SignedSnapshot {
        doc: DocId,
        covers_seq: u64,
        id: DeltaId,
        #[serde(with = "serde_bytes_vec")]
        bytes: Vec<u8>,
        proof: WriteProof,
    },
    /// (Version 3.) `Presence` with a proof ([`proof::presence_digest`],
    /// bound to the session's replica id).
    SignedPresence {
        doc: DocId,
        #[serde(with = "serde_bytes_vec")]
        bytes: Vec<u8>,
        proof: WriteProof,
    },
    /// (Version 4.) An ephemeral message for `doc`'s other subscribers
    /// (`to`: only the subscriptions of that replica), sealed by the
    /// client; relayed as `RelayFrame::Message`, never stored. Signed like
    /// presence ([`proof::message_digest`], bound to the session's replica
    /// and `to`).
    SignedMessage {
        doc: DocId,
        to: Option<[u8; 16]>,
        #[serde(with = "serde_bytes_vec")]
        bytes: Vec<u8>,
        proof: WriteProof,
    },
}

impl ClientFrame {
    /// This frame with a proof of `signer`'s key, if it is a write (`Push`,
    /// `Snapshot`, `Presence`; `replica` is the session's, from `Hello`);
    /// any other frame unchanged.
    pub fn signed(self, signer: &Signer, replica: &[u8; 16]) -> ClientFrame {
        match self {
            ClientFrame::Push { doc, deltas } => {
                let proof = signer.prove(&proof::push_digest(&doc, &deltas));
                ClientFrame::SignedPush { doc, deltas, proof }
            }
            ClientFrame::Snapshot {
                doc,
                covers_seq,
                id,
                bytes,
            } => {
                let proof = signer.prove(&proof::snapshot_digest(&doc, covers_seq, &id, &bytes));
                ClientFrame::SignedSnapshot {
                    doc,
                    covers_seq,
                    id,
                    bytes,
                    proof,
                }
            }
            ClientFrame::Presence { doc, bytes } => {
                let proof = signer.prove(&proof::presence_digest(&doc, replica, &bytes));
                ClientFrame::SignedPresence { doc, bytes, proof }
            }
            other => other,
        }
    }
}

/// One delta offered in a `Push`: opaque bytes and their content-derived id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushDelta {
    pub id: DeltaId,
    #[serde(with = "serde_bytes_vec")]
    pub bytes: Vec<u8>,
}

/// A frame sent by the relay to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayFrame {
    /// Accepts a `Hello`.
    Welcome {
        version: u32,
        /// Identifies the relay's log. A client whose cursors were issued
        /// under another epoch must not trust them.
        epoch: [u8; 16],
        limits: Limits,
    },
    /// Refuses something. With `fatal`, the relay closes the connection next
    /// and the client should not retry with the same parameters.
    Error {
        code: ErrorCode,
        message: String,
        fatal: bool,
    },
    /// Committed deltas of `doc`, in sequence order. `caught_up` marks the
    /// last page of a catch-up; live deltas also come with `caught_up: true`.
    Deltas {
        doc: DocId,
        items: Vec<SequencedDelta>,
        caught_up: bool,
    },
    /// The deltas `ids` of `doc` are durable in the relay's log; the highest
    /// sequence among them is `seq`.
    Ack {
        doc: DocId,
        ids: Vec<DeltaId>,
        seq: u64,
    },
    /// Answers `Ping`.
    Pong { nonce: u64 },
    /// Another subscriber's presence for `doc`; `from` is its replica id.
    Presence {
        doc: DocId,
        from: [u8; 16],
        #[serde(with = "serde_bytes_vec")]
        bytes: Vec<u8>,
    },
    /// Refuses one request about `doc` (e.g. `Unauthorized` for a push with
    /// a read-only token) without closing the connection.
    DocError {
        doc: DocId,
        code: ErrorCode,
        message: String,
    },
    /// (Version 2.) Another client's deltas of `doc`, live, possibly before
    /// the relay has stored them: apply them, but move no cursor (see the
    /// module docs).
    Tentative { doc: DocId, deltas: Vec<PushDelta> },
    /// (Version 2.) The deltas of `doc` with sequences `after + 1 ..= seq`
    /// are durable in the relay's log; `ids` are those of them this
    /// connection did not push itself, all sent to it before this frame.
    /// A group commit of more than [`MAX_DELTAS_PER_FRAME`] deltas is
    /// confirmed by several frames, each continuing the last one's `seq`.
    Committed {
        doc: DocId,
        after: u64,
        seq: u64,
        ids: Vec<DeltaId>,
    },
    /// (Version 4.) Another subscriber's ephemeral message on `doc`;
    /// `from` is its replica id, `to` the addressee it named (none: every
    /// subscriber). Never stored.
    Message {
        doc: DocId,
        from: [u8; 16],
        to: Option<[u8; 16]>,
        #[serde(with = "serde_bytes_vec")]
        bytes: Vec<u8>,
    },
}

/// A delta as stored by the relay, with its place in the document's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencedDelta {
    pub seq: u64,
    pub id: DeltaId,
    #[serde(with = "serde_bytes_vec")]
    pub bytes: Vec<u8>,
}

/// Limits the relay enforces, announced in `Welcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_frame_bytes: u32,
    pub max_deltas_per_frame: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: MAX_FRAME_BYTES as u32,
            max_deltas_per_frame: MAX_DELTAS_PER_FRAME as u32,
        }
    }
}

/// Why the relay refused something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The frame could not be decoded or broke a bound.
    Malformed,
    /// The client's protocol version is not supported.
    UnsupportedVersion,
    /// A frame arrived that is not valid in the session's state.
    UnexpectedFrame,
    /// No token for the document, or one that is invalid or for another
    /// document (before version 3 also: expired, or read-only).
    Unauthorized,
    /// A frame or rate limit was exceeded.
    LimitExceeded,
    /// The relay failed to store something; retry later.
    Internal,
    /// (Version 3.) The token for the document grants read only: the push
    /// or snapshot was refused; reading goes on.
    ReadOnly,
    /// (Version 3.) The token for the document has expired: present a
    /// fresh one with `Authorize`.
    TokenExpired,
    /// (Version 3.) A write without a valid proof of the document key
    /// (unsigned, a key that is not the document's, a bad signature): the
    /// relay did nothing. Documents made before version 3 are read-only.
    Unproven,
    /// (Version 3.) The relay's storage quota (per document or in all) is
    /// reached: nothing of the push was stored; compact the document with
    /// a snapshot or retry later (relays send older clients
    /// `LimitExceeded` in its place).
    QuotaExceeded,
    /// (Version 4.) Messages on this connection came faster than the
    /// relay's rate: this one was dropped; send less often.
    RateLimited,
}

/// Why bytes could not be turned into a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge { size: usize, limit: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("frame breaks a bound: {0}")]
    OutOfBounds(&'static str),
}

/// Encodes a client frame into one binary message.
pub fn encode_client(frame: &ClientFrame) -> Vec<u8> {
    // Serializing these plain types into a Vec cannot fail.
    postcard::to_allocvec(frame).unwrap_or_default()
}

/// Encodes a relay frame into one binary message.
pub fn encode_relay(frame: &RelayFrame) -> Vec<u8> {
    postcard::to_allocvec(frame).unwrap_or_default()
}

/// Decodes one client frame, checking every bound.
pub fn decode_client(bytes: &[u8]) -> Result<ClientFrame, ProtocolError> {
    let frame: ClientFrame = decode(bytes)?;
    match &frame {
        ClientFrame::Hello { token: Some(t), .. } if t.len() > MAX_TOKEN_BYTES => {
            Err(ProtocolError::OutOfBounds("token too long"))
        }
        ClientFrame::Push { deltas, .. } | ClientFrame::SignedPush { deltas, .. }
            if deltas.len() > MAX_DELTAS_PER_FRAME =>
        {
            Err(ProtocolError::OutOfBounds("too many deltas in one push"))
        }
        ClientFrame::Push { deltas, .. } | ClientFrame::SignedPush { deltas, .. }
            if deltas.is_empty() =>
        {
            Err(ProtocolError::OutOfBounds(
                "a push must carry at least one delta",
            ))
        }
        _ => Ok(frame),
    }
}

/// Decodes one relay frame, checking every bound.
pub fn decode_relay(bytes: &[u8]) -> Result<RelayFrame, ProtocolError> {
    let frame: RelayFrame = decode(bytes)?;
    match &frame {
        RelayFrame::Deltas { items, .. } if items.len() > MAX_DELTAS_PER_FRAME => {
            Err(ProtocolError::OutOfBounds("too many deltas in one frame"))
        }
        RelayFrame::Ack { ids, .. } if ids.len() > MAX_DELTAS_PER_FRAME => {
            Err(ProtocolError::OutOfBounds("too many ids in one ack"))
        }
        RelayFrame::Tentative { deltas, .. } if deltas.len() > MAX_DELTAS_PER_FRAME => {
            Err(ProtocolError::OutOfBounds("too many deltas in one frame"))
        }
        RelayFrame::Committed { ids, .. } if ids.len() > MAX_DELTAS_PER_FRAME => Err(
            ProtocolError::OutOfBounds("too many ids in one committed frame"),
        ),
        RelayFrame::Committed { after, seq, .. } if after >= seq => Err(
            ProtocolError::OutOfBounds("a committed range must not be empty"),
        ),
        _ => Ok(frame),
    }
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ProtocolError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(ProtocolError::FrameTooLarge {
            size: bytes.len(),
            limit: MAX_FRAME_BYTES,
        });
    }
    let (frame, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ProtocolError::Malformed(format!(
            "{} trailing bytes after the frame",
            rest.len()
        )));
    }
    Ok(frame)
}

/// Serializes `Vec<u8>` as one length-prefixed byte string (postcard would
/// otherwise write a sequence of varints, one per byte). Public for the
/// engine's own postcard records (`#[serde(with = "...")]`).
pub mod serde_bytes_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        // postcard hands out borrowed slices; copy once into an owned Vec.
        let bytes: &[u8] = Deserialize::deserialize(d)?;
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests;
