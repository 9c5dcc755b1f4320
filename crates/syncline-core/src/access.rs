//! Per-document access: which documents the relay lets this replica read
//! and write, and getting a token for each.
//!
//! A relay started with a secret serves a document only to a connection
//! that presented a valid token for it (`Authorize{doc, token}`; a token is
//! for exactly one document and grants `read` or `write`). The engine does
//! not mint or fetch tokens: when a document needs one it asks its host
//! with [`Output::TokenWanted`], and the host answers with
//! [`Engine::token_ready`] or [`Engine::token_failed`] — at once for a
//! fixed token, after an `await` for an app's token function.
//!
//! When a document is asked for, per connection:
//!
//! 1. at `Welcome` (so on every reconnect), and when it is opened or created
//!    while the session is ready;
//! 2. when the relay says its token expired, if the relay had served it
//!    since the last token (a token that expires while in use is renewed
//!    without the app hearing of it);
//! 3. after a refusal, once a backoff delay has passed: full jitter in
//!    `[0, min(`[`TOKEN_RETRY_CAP_MS`]`, `[`TOKEN_RETRY_BASE_MS`]` · 2^(n-1))]`
//!    for the n-th refusal in a row.
//!
//! Until its token is presented, nothing about the document is sent:
//! no `Subscribe`, no `Push`, no snapshot, no presence. Then all of them
//! follow the `Authorize` at once (the relay answers only refusals, so
//! they may be pipelined).
//!
//! A refusal concerns its document only. `Unauthorized` (no token, one for
//! another document, a bad signature), `TokenExpired` right after a fresh
//! token, and a failed token provider (`TokenProvider`) park the document
//! until its retry; `ReadOnly` (a push with a read token) stops its pushes
//! and snapshots until its next token, while its subscription goes on. Its
//! local changes stay in the outbox, durable and counted as pending; none
//! is dropped. The last refusal is the document's
//! [`DocStatus::last_error`] until the relay serves it again.
//!
//! Three more reasons a document does not fully sync live here, with the
//! same per-document status and backoff:
//!
//! - `UnsupportedDocument`: its id does not derive from its key (made before
//!   signed writes, see `syncline_protocol::proof`), so its writes cannot
//!   be proven: it is read-only for good, and the app hears so at its first
//!   local change;
//! - `Unproven`: the relay could not verify a write's proof; writes wait
//!   for the next token or connection, like `ReadOnly`;
//! - `Unreadable`: the relay served it from a snapshot this replica cannot
//!   read (see `sync.rs`): nothing is applied, and it is parked and asked
//!   for again with backoff, never in a loop.
//!
//! Without [`Engine::set_tokens_required`] the engine assumes an open relay:
//! every document may be read and written, and no token is asked for.

use syncline_protocol::{ClientFrame, DocId, ErrorCode};

use crate::codes::SynclineErrorCode;
use crate::engine::{Effect, Engine, Output, SessionState};
use crate::error::EngineError;

/// The first retry after a refusal waits up to this long.
pub const TOKEN_RETRY_BASE_MS: u64 = 500;
/// No retry after a refusal waits longer than this.
pub const TOKEN_RETRY_CAP_MS: u64 = 30_000;

/// Why the relay does not (fully) serve a document to this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessError {
    /// No token, a token for another document, or one that does not verify.
    Unauthorized,
    /// The token grants read only: local changes stay local.
    ReadOnly,
    /// The token expired, and so did a fresh one.
    TokenExpired,
    /// The host's token provider failed (threw, rejected, returned junk).
    TokenProvider,
    /// The document was made before signed writes (its id does not derive
    /// from its key): the relay serves it for reading only, and local
    /// changes stay local. Copy it into a new document to write again.
    UnsupportedDocument,
    /// The relay could not verify a write's proof of the document key.
    /// Writes wait for the next connection.
    Unproven,
    /// The relay served the document from a snapshot this replica cannot
    /// read (damaged, or a newer format): nothing of it was applied, and
    /// the document asks again with backoff.
    Unreadable,
}

impl AccessError {
    /// The stable code apps see (`lastError.code`).
    pub fn code(self) -> SynclineErrorCode {
        match self {
            AccessError::Unauthorized => SynclineErrorCode::Unauthorized,
            AccessError::ReadOnly => SynclineErrorCode::ReadOnly,
            AccessError::TokenExpired => SynclineErrorCode::TokenExpired,
            AccessError::TokenProvider => SynclineErrorCode::TokenProvider,
            AccessError::UnsupportedDocument => SynclineErrorCode::UnsupportedDocument,
            AccessError::Unproven => SynclineErrorCode::Unproven,
            AccessError::Unreadable => SynclineErrorCode::Unreadable,
        }
    }
}

/// What an app shows for one document: what is not yet safe, and why the
/// relay refuses it, if it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocStatus {
    /// Local changes not yet durable on this device.
    pub unsaved: usize,
    /// Local changes durable on this device, not yet acknowledged by the
    /// relay.
    pub pending: usize,
    /// The relay's (or the token provider's) last refusal, until the relay
    /// serves the document again.
    pub last_error: Option<(AccessError, String)>,
}

/// Where a document stands with the relay on the current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Grant {
    /// Not asked for on this connection (or no connection).
    #[default]
    Idle,
    /// The host was asked for a token ([`Output::TokenWanted`]).
    Wanted,
    /// Its token went out (or none is needed); `served` once the relay
    /// answered a request about it with something other than a refusal.
    Granted { served: bool },
    /// Refused: asked for again at `retry_at`.
    Parked { retry_at: u64 },
}

/// A document's access state. Owned by its `DocState`.
#[derive(Debug)]
pub(crate) struct Access {
    grant: Grant,
    /// The relay refused a push with the current token: pushes wait for
    /// the next one.
    read_only: bool,
    /// Writes cannot be signed (see [`AccessError::UnsupportedDocument`]):
    /// never pushed, for good.
    unprovable: bool,
    /// The app was told so (at its first local change).
    told: bool,
    /// Refusals in a row, for the backoff.
    refusals: u32,
    last_error: Option<(AccessError, String)>,
}

impl Access {
    /// When a parked document is asked for again ([`Engine::retry_parked`]).
    pub(crate) fn retry_at(&self) -> Option<u64> {
        match self.grant {
            Grant::Parked { retry_at } => Some(retry_at),
            _ => None,
        }
    }

    /// A document's state before its first connection; `provable`: its id
    /// derives from its key, so its writes can be signed.
    pub(crate) fn new(provable: bool) -> Access {
        Access {
            grant: Grant::Idle,
            read_only: false,
            unprovable: !provable,
            told: false,
            refusals: 0,
            last_error: (!provable).then(|| {
                let message = "this document was made before signed writes: the relay serves it read-only, and changes made here stay here. Copy its content into a new document to keep editing it with others".to_string();
                (AccessError::UnsupportedDocument, message)
            }),
        }
    }
}

impl Engine {
    /// Tells the engine that the relay wants a token per document (the app
    /// configured tokens): each document is asked for with
    /// [`Output::TokenWanted`] before anything about it is sent. Set it
    /// before connecting.
    pub fn set_tokens_required(&mut self, required: bool) {
        self.tokens_required = required;
    }

    /// The host's answer to [`Output::TokenWanted`]: presents `token` for
    /// `doc` and syncs it. An answer nobody waits for any more (the
    /// connection dropped since, the document was deleted) is ignored.
    pub fn token_ready(&mut self, doc: DocId, token: String, now_ms: u64) {
        if self.session != SessionState::Ready || !self.wants_token(doc) {
            return;
        }
        self.send(ClientFrame::Authorize { doc, token });
        self.grant(doc, now_ms);
    }

    /// The host could not get a token for `doc` (`message` says why): the
    /// document is parked and asked for again after a backoff.
    pub fn token_failed(&mut self, doc: DocId, message: String, now_ms: u64) {
        if self.wants_token(doc) {
            let message = format!("the token provider failed for {doc}: {message}");
            self.park(doc, AccessError::TokenProvider, message, now_ms);
        }
    }

    /// What the app shows for `doc`: unsaved and pending changes, and the
    /// last refusal.
    pub fn doc_status(&self, doc: &DocId) -> Option<DocStatus> {
        let state = self.docs.get(doc)?;
        let (unsaved, pending) = self.outbox.counts(Some(doc));
        Some(DocStatus {
            unsaved,
            pending,
            last_error: state.access.last_error.clone(),
        })
    }

    fn wants_token(&self, doc: DocId) -> bool {
        self.docs
            .get(&doc)
            .is_some_and(|s| s.access.grant == Grant::Wanted)
    }

    /// After a local change to a document whose writes cannot be proven:
    /// the app hears, once, that it stays local.
    pub(crate) fn tell_if_unprovable(&mut self, doc: DocId) {
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        let access = &mut state.access;
        if !access.unprovable || std::mem::replace(&mut access.told, true) {
            return;
        }
        if let Some((error, message)) = access.last_error.clone() {
            self.emit(Effect::Error(EngineError::Access {
                doc,
                error,
                message,
            }));
        }
    }

    /// Whether the relay may be sent requests to read `doc` now.
    pub(crate) fn may_read(&self, doc: &DocId) -> bool {
        self.session == SessionState::Ready
            && self
                .docs
                .get(doc)
                .is_some_and(|s| matches!(s.access.grant, Grant::Granted { .. }))
    }

    /// Whether `doc`'s deltas and snapshots may be pushed now.
    pub(crate) fn may_write(&self, doc: &DocId) -> bool {
        self.may_read(doc)
            && self
                .docs
                .get(doc)
                .is_some_and(|s| !s.access.read_only && !s.access.unprovable)
    }

    /// Starts syncing `doc` on the ready session: asks the host for its
    /// token, or (open relay) syncs it at once.
    pub(crate) fn request_access(&mut self, doc: DocId, now_ms: u64) {
        if self.session != SessionState::Ready {
            return;
        }
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        if self.tokens_required {
            state.access.grant = Grant::Wanted;
            self.effects.push(Output::TokenWanted { doc });
        } else {
            self.grant(doc, now_ms);
        }
    }

    /// `doc`'s token (if any) was presented: subscribe, then push what it
    /// has waiting.
    fn grant(&mut self, doc: DocId, now_ms: u64) {
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        state.access.grant = Grant::Granted { served: false };
        state.access.read_only = false;
        self.subscribe_if_ready(doc, now_ms);
        self.push_doc_if_ready(doc, now_ms);
        self.send_snapshots_if_ready();
    }

    /// The relay answered a request about `doc` with data (deltas, an ack):
    /// its token works, and so do writes if it acked one. The last refusal
    /// is forgotten, unless writes are still refused.
    pub(crate) fn served(&mut self, doc: DocId, wrote: bool) {
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        let access = &mut state.access;
        if let Grant::Granted { served } = &mut access.grant {
            *served = true;
        }
        access.refusals = 0;
        access.read_only &= !wrote;
        if access.last_error.is_some() && !access.read_only && !access.unprovable {
            access.last_error = None;
            self.emit(Effect::StatusChanged);
        }
    }

    /// The relay refused a request about `doc` with an access code
    /// ([`is_access_refusal`]).
    pub(crate) fn refused(&mut self, doc: DocId, code: ErrorCode, message: String, now_ms: u64) {
        let Some(state) = self.docs.get_mut(&doc) else {
            return; // deleted since: nothing to hold back
        };
        let access = &mut state.access;
        if matches!(access.grant, Grant::Parked { .. } | Grant::Wanted) {
            // A late answer to a request made with the previous token: the
            // document already waits for a new one.
            return;
        }
        match code {
            ErrorCode::ReadOnly | ErrorCode::Unproven => {
                let error = match code {
                    ErrorCode::ReadOnly => AccessError::ReadOnly,
                    _ => AccessError::Unproven,
                };
                access.read_only = true;
                let again = access.last_error.as_ref().is_some_and(|(e, _)| *e == error);
                access.last_error = Some((error, message.clone()));
                if !again {
                    self.emit(Effect::Error(EngineError::Access {
                        doc,
                        error,
                        message,
                    }));
                    self.emit(Effect::StatusChanged);
                }
            }
            ErrorCode::TokenExpired
                if self.tokens_required && access.grant == (Grant::Granted { served: true }) =>
            {
                // It expired while in use: a fresh one, without fuss.
                self.request_access(doc, now_ms);
            }
            ErrorCode::TokenExpired => self.park(doc, AccessError::TokenExpired, message, now_ms),
            _ => self.park(doc, AccessError::Unauthorized, message, now_ms),
        }
    }

    /// Stops syncing `doc` until a backoff delay has passed; then
    /// [`Engine::retry_parked`] asks for its token again.
    pub(crate) fn park(&mut self, doc: DocId, error: AccessError, message: String, now_ms: u64) {
        let random = self.random::<8>();
        let Some(state) = self.docs.get_mut(&doc) else {
            return;
        };
        let access = &mut state.access;
        access.refusals = access.refusals.saturating_add(1);
        let exp = TOKEN_RETRY_BASE_MS.saturating_mul(1 << (access.refusals - 1).min(20));
        let delay = full_jitter(exp.min(TOKEN_RETRY_CAP_MS), random);
        access.grant = Grant::Parked {
            retry_at: now_ms + delay,
        };
        access.last_error = Some((error, message.clone()));
        state.caught_up = false;
        state.subscribed_at = None;
        self.emit(Effect::Error(EngineError::Access {
            doc,
            error,
            message,
        }));
        self.emit(Effect::StatusChanged);
    }

    /// Asks again for the documents whose backoff has passed.
    pub(crate) fn retry_parked(&mut self, now_ms: u64) {
        let due: Vec<DocId> = self
            .docs
            .iter()
            .filter(
                |(_, s)| matches!(s.access.grant, Grant::Parked { retry_at } if retry_at <= now_ms),
            )
            .map(|(doc, _)| *doc)
            .collect();
        for doc in due {
            self.request_access(doc, now_ms);
        }
    }

    /// The connection is gone: every grant with it. Refusals, their
    /// backoff count and the last error stay.
    pub(crate) fn access_disconnected(&mut self) {
        for state in self.docs.values_mut() {
            state.access.grant = Grant::Idle;
        }
    }
}

/// Whether a relay refusal with `code` is about access to the document
/// (handled by [`Engine::refused`]) rather than about the request.
pub(crate) fn is_access_refusal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Unauthorized
            | ErrorCode::ReadOnly
            | ErrorCode::TokenExpired
            | ErrorCode::Unproven
    )
}

/// Uniform in `[0, max]` from 8 random bytes.
fn full_jitter(max: u64, random: [u8; 8]) -> u64 {
    u64::from_le_bytes(random) % (max + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_stays_within_its_bound() {
        assert_eq!(full_jitter(0, [0xff; 8]), 0);
        for seed in 0..=255u8 {
            assert!(full_jitter(500, [seed; 8]) <= 500);
        }
    }
}
