//! The engine's typed errors. Each has a stable [`EngineError::code`] that
//! bindings surface to apps (e.g. as `err.code` in JavaScript).

use syncline_protocol::{DeltaId, DocId, ErrorCode, ProtocolError};

use crate::access::AccessError;
use crate::ops::OpError;

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
    #[error("delta {id} of document {doc} from the relay is unusable and was skipped: {reason}")]
    BadDelta {
        doc: DocId,
        id: DeltaId,
        reason: String,
    },
    #[error("a message from another tab could not be read and was ignored: {0}")]
    BadTabMessage(String),
    #[error("presence for document {doc} could not be opened and was ignored: {reason}")]
    BadPresence { doc: DocId, reason: String },
    #[error("document {doc} has no change {hash}: pass heads from its history")]
    UnknownHeads { doc: DocId, hash: String },
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
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::DocNotFound(_) => "DocNotFound",
            EngineError::DocExists(_) => "DocExists",
            EngineError::BadOp(_) => "BadOp",
            EngineError::BadUrl { .. } => "BadUrl",
            EngineError::KeyMismatch(_) => "KeyMismatch",
            EngineError::Corrupt { .. } => "Corrupt",
            EngineError::Protocol(_) => "Protocol",
            EngineError::RelayRejected { .. } => "RelayRejected",
            EngineError::BadDelta { .. } => "BadDelta",
            EngineError::BadTabMessage(_) => "BadTabMessage",
            EngineError::BadPresence { .. } => "BadPresence",
            EngineError::UnknownHeads { .. } => "UnknownHeads",
            EngineError::Access { error, .. } => error.code(),
        }
    }
}
