//! The engine's typed errors. Each has a stable [`EngineError::code`] that
//! bindings surface to apps (e.g. as `err.code` in JavaScript).

use syncline_protocol::{DeltaId, DocId, ErrorCode, ProtocolError};

use crate::access::AccessError;
use crate::codes::SynclineErrorCode;
use crate::delta::DeltaError;
use crate::ops::OpError;
use crate::seal::SealError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("document {0} is not open in this replica: open it by its URL first")]
    DocNotFound(DocId),
    #[error("document {0} already exists in this replica")]
    DocExists(DocId),
    #[error("the change was rolled back: {0}")]
    BadOp(#[from] OpError),
    #[error("`{url}` is not a Syncline document URL ({why}); expected `syncline:<id>#<key>`")]
    BadUrl { url: String, why: String },
    #[error("document {0} is already open here with a different key: check the URL")]
    KeyMismatch(DocId),
    #[error("stored record {store}/{key} is unreadable and was skipped: {reason}")]
    Corrupt {
        store: &'static str,
        key: String,
        reason: String,
    },
    #[error("a frame from the relay could not be decoded: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("the relay refused the request ({code:?}): {message}")]
    RelayRejected {
        code: ErrorCode,
        message: String,
        fatal: bool,
    },
    #[error("delta {id} of document {doc} is unusable and was skipped: {error}")]
    BadDelta {
        doc: DocId,
        id: DeltaId,
        #[source]
        error: DeltaError,
    },
    #[error("a message from another tab could not be read and was ignored: {0}")]
    BadTabMessage(String),
    #[error("presence for document {doc} could not be opened and was ignored: {error}")]
    BadPresence {
        doc: DocId,
        #[source]
        error: SealError,
    },
    #[error("document {doc} has no change {hash}: pass heads from its history")]
    UnknownHeads { doc: DocId, hash: String },
    #[error(
        "storage has not saved the last {bytes} bytes of changes (limit {limit}): new changes are refused until it does; the changes made so far are kept in memory and still sent to the relay (check IndexedDB's quota, then retry or call flush())"
    )]
    BacklogFull { bytes: usize, limit: usize },
    #[error(
        "not a cursor of this text: {0} (make cursors with doc.cursor() on the same document and path)"
    )]
    BadCursor(String),
    #[error("cannot import: {0}")]
    BadImport(String),
    #[error("Automerge failed on a document this replica holds (a bug; please report it): {0}")]
    Automerge(#[source] Box<automerge::AutomergeError>),
    #[error(
        "a message of {size} bytes (sealed) exceeds the limit of {limit} bytes: send less, or put large data in the document"
    )]
    MessageTooLarge { size: usize, limit: usize },
    #[error(
        "document {0}: not connected to a relay that relays messages (protocol 4) yet: try again once the status says connected"
    )]
    MessagesOffline(DocId),
    #[error("{limit} requests are already waiting for replies: wait for some to settle")]
    TooManyRequests { limit: usize },
    #[error("a method name must be 1 to {limit} bytes, not {len}")]
    BadMethod { len: usize, limit: usize },
    #[error("a message for document {doc} could not be opened and was ignored: {error}")]
    BadMessage { doc: DocId, error: String },
    /// The relay refuses (part of) one document; the others sync on.
    #[error("{message}")]
    Access {
        doc: DocId,
        error: AccessError,
        message: String,
    },
}

impl EngineError {
    /// A stable, machine-readable name for the error.
    pub fn code(&self) -> SynclineErrorCode {
        match self {
            EngineError::DocNotFound(_) => SynclineErrorCode::DocNotFound,
            EngineError::DocExists(_) => SynclineErrorCode::DocExists,
            EngineError::BadOp(_) => SynclineErrorCode::BadOp,
            EngineError::BadUrl { .. } => SynclineErrorCode::BadUrl,
            EngineError::KeyMismatch(_) => SynclineErrorCode::KeyMismatch,
            EngineError::Corrupt { .. } => SynclineErrorCode::Corrupt,
            EngineError::Protocol(_) => SynclineErrorCode::Protocol,
            EngineError::RelayRejected {
                code: syncline_protocol::ErrorCode::RateLimited,
                ..
            } => SynclineErrorCode::RateLimited,
            EngineError::RelayRejected { .. } => SynclineErrorCode::RelayRejected,
            EngineError::BadDelta { .. } => SynclineErrorCode::BadDelta,
            EngineError::BadTabMessage(_) => SynclineErrorCode::BadTabMessage,
            EngineError::BadPresence { .. } => SynclineErrorCode::BadPresence,
            EngineError::UnknownHeads { .. } => SynclineErrorCode::UnknownHeads,
            EngineError::BacklogFull { .. } => SynclineErrorCode::BacklogFull,
            EngineError::BadCursor(_) => SynclineErrorCode::BadCursor,
            EngineError::BadImport(_) => SynclineErrorCode::BadImport,
            EngineError::Automerge(_) => SynclineErrorCode::Internal,
            EngineError::Access { error, .. } => error.code(),
            EngineError::MessageTooLarge { .. } => SynclineErrorCode::MessageTooLarge,
            EngineError::MessagesOffline(_) => SynclineErrorCode::Offline,
            EngineError::TooManyRequests { .. } => SynclineErrorCode::RateLimited,
            EngineError::BadMethod { .. } => SynclineErrorCode::BadMethod,
            EngineError::BadMessage { .. } => SynclineErrorCode::BadMessage,
        }
    }
}
