//! Every error code an app can see, in one list.
//!
//! An app switches on `err.code` (JavaScript) or `lastError.code`; the
//! codes come from the engine ([`crate::EngineError::code`],
//! [`crate::AccessError::code`]), from the browser host and bindings
//! (`syncline-wasm`: storage, the connection, bad arguments) and from the
//! npm package itself (options, a closed repo, a crash). All of them are
//! listed here, and `npm/src/errors.ts` lists the same names as the
//! TypeScript union `SynclineErrorCode`; a test of this crate
//! (`tests/error_codes.rs`) fails when the two lists differ.
//!
//! The codes are stable: a name, once shipped, keeps its meaning.

/// A stable, machine-readable error code ([`SynclineErrorCode::as_str`] is
/// its name, as apps see it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SynclineErrorCode {
    // The engine.
    /// The document is not open in this replica.
    DocNotFound,
    /// A document with this id already exists here.
    DocExists,
    /// A change's ops are malformed or do not fit the document; nothing changed.
    BadOp,
    /// Not a `syncline:<id>#<key>` URL.
    BadUrl,
    /// The document is open here with another key.
    KeyMismatch,
    /// A stored record is unreadable and was skipped.
    Corrupt,
    /// A frame from the relay could not be decoded.
    Protocol,
    /// The relay refused the connection (final when the status says `closed`).
    RelayRejected,
    /// A delta from the relay or another tab is unusable and was skipped.
    BadDelta,
    /// A message from another tab could not be read.
    BadTabMessage,
    /// A peer's presence could not be opened.
    BadPresence,
    /// Heads that name a change the document does not have.
    UnknownHeads,
    /// A cursor string that is malformed, or made for another document or text.
    BadCursor,
    /// Bytes to import that are not an Automerge document, or one holding
    /// values Syncline does not support; nothing was created.
    BadImport,
    /// The document records a schema version newer than the app's: it is
    /// read-only here until the app is updated.
    SchemaTooNew,
    // Per-document access (`AccessError`).
    /// No valid token for the document.
    Unauthorized,
    /// The token grants read only.
    ReadOnly,
    /// The token expired, and so did a fresh one.
    TokenExpired,
    /// The app's token function failed.
    TokenProvider,
    /// A document made before signed writes: read-only.
    UnsupportedDocument,
    /// The relay could not verify a write's proof of the document key.
    Unproven,
    /// The relay served a snapshot this replica cannot read.
    Unreadable,
    // Storage in the browser.
    /// IndexedDB failed to open, read or write.
    Storage,
    /// The browser's storage quota is exhausted.
    QuotaExceeded,
    /// Storage has not saved the engine's limit of changes: new changes
    /// are refused until a write succeeds.
    BacklogFull,
    /// The local data was written with another storage key or passphrase.
    WrongKey,
    /// The browser's CSPRNG failed; nothing was written.
    NoRandomness,
    // The connection.
    /// A connection attempt did not open in time.
    ConnectTimeout,
    /// An open socket stopped answering heartbeats.
    HeartbeatTimeout,
    /// The browser is offline (or the app said so).
    Offline,
    /// A relay URL the browser's WebSocket refuses.
    BadRelayUrl,
    // Ephemeral messages and requests.
    /// A message (or a request's payload or result) over the size limit.
    MessageTooLarge,
    /// Messages or requests sent faster than the relay (or the engine) allows.
    RateLimited,
    /// A method name that is empty or too long.
    BadMethod,
    /// A peer's message could not be opened.
    BadMessage,
    /// No peer replied to a request before its timeout.
    NoServer,
    /// The serving peer's handler failed: its message is the error's.
    RemoteError,
    // Arguments and lifecycle.
    /// A storage key that is not 32 bytes.
    BadKey,
    /// Heads that are not change hashes.
    BadHeads,
    /// An option of the wrong type or value.
    BadOption,
    /// A value a document cannot hold.
    BadValue,
    /// An event name the repo does not emit.
    BadEvent,
    /// The repo is closed.
    Closed,
    /// A call made from inside one of the repo's own calls (an app
    /// callback it was running); nothing was done.
    Reentrant,
    /// The wasm module panicked; every later call fails.
    Crashed,
    /// The wasm module could not be loaded.
    WasmLoad,
    /// The browser lacks something Syncline needs (WebCrypto), or a call
    /// that needs the CRDT in the page was made in worker mode.
    Unsupported,
    /// This page and the shared worker of its origin run different
    /// package versions (worker mode).
    WorkerMismatch,
    /// A React hook used outside `<RepoProvider>`.
    NoRepo,
    /// A document handle used before it opened.
    NotReady,
    /// A bug in Syncline: please report it.
    Internal,
}

impl SynclineErrorCode {
    /// Every code, in the order `npm/src/errors.ts` lists them.
    pub const ALL: &'static [SynclineErrorCode] = &[
        Self::DocNotFound,
        Self::DocExists,
        Self::BadOp,
        Self::BadUrl,
        Self::KeyMismatch,
        Self::Corrupt,
        Self::Protocol,
        Self::RelayRejected,
        Self::BadDelta,
        Self::BadTabMessage,
        Self::BadPresence,
        Self::UnknownHeads,
        Self::BadCursor,
        Self::BadImport,
        Self::SchemaTooNew,
        Self::Unauthorized,
        Self::ReadOnly,
        Self::TokenExpired,
        Self::TokenProvider,
        Self::UnsupportedDocument,
        Self::Unproven,
        Self::Unreadable,
        Self::Storage,
        Self::QuotaExceeded,
        Self::BacklogFull,
        Self::WrongKey,
        Self::NoRandomness,
        Self::ConnectTimeout,
        Self::HeartbeatTimeout,
        Self::Offline,
        Self::BadRelayUrl,
        Self::MessageTooLarge,
        Self::RateLimited,
        Self::BadMethod,
        Self::BadMessage,
        Self::NoServer,
        Self::RemoteError,
        Self::BadKey,
        Self::BadHeads,
        Self::BadOption,
        Self::BadValue,
        Self::BadEvent,
        Self::Closed,
        Self::Reentrant,
        Self::Crashed,
        Self::WasmLoad,
        Self::Unsupported,
        Self::WorkerMismatch,
        Self::NoRepo,
        Self::NotReady,
        Self::Internal,
    ];

    /// The code's name, as apps see it (`err.code`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DocNotFound => "DocNotFound",
            Self::DocExists => "DocExists",
            Self::BadOp => "BadOp",
            Self::BadUrl => "BadUrl",
            Self::KeyMismatch => "KeyMismatch",
            Self::Corrupt => "Corrupt",
            Self::Protocol => "Protocol",
            Self::RelayRejected => "RelayRejected",
            Self::BadDelta => "BadDelta",
            Self::BadTabMessage => "BadTabMessage",
            Self::BadPresence => "BadPresence",
            Self::UnknownHeads => "UnknownHeads",
            Self::BadCursor => "BadCursor",
            Self::BadImport => "BadImport",
            Self::SchemaTooNew => "SchemaTooNew",
            Self::Unauthorized => "Unauthorized",
            Self::ReadOnly => "ReadOnly",
            Self::TokenExpired => "TokenExpired",
            Self::TokenProvider => "TokenProvider",
            Self::UnsupportedDocument => "UnsupportedDocument",
            Self::Unproven => "Unproven",
            Self::Unreadable => "Unreadable",
            Self::Storage => "Storage",
            Self::QuotaExceeded => "QuotaExceeded",
            Self::BacklogFull => "BacklogFull",
            Self::WrongKey => "WrongKey",
            Self::NoRandomness => "NoRandomness",
            Self::ConnectTimeout => "ConnectTimeout",
            Self::HeartbeatTimeout => "HeartbeatTimeout",
            Self::Offline => "Offline",
            Self::BadRelayUrl => "BadRelayUrl",
            Self::MessageTooLarge => "MessageTooLarge",
            Self::RateLimited => "RateLimited",
            Self::BadMethod => "BadMethod",
            Self::BadMessage => "BadMessage",
            Self::NoServer => "NoServer",
            Self::RemoteError => "RemoteError",
            Self::BadKey => "BadKey",
            Self::BadHeads => "BadHeads",
            Self::BadOption => "BadOption",
            Self::BadValue => "BadValue",
            Self::BadEvent => "BadEvent",
            Self::Closed => "Closed",
            Self::Reentrant => "Reentrant",
            Self::Crashed => "Crashed",
            Self::WasmLoad => "WasmLoad",
            Self::Unsupported => "Unsupported",
            Self::WorkerMismatch => "WorkerMismatch",
            Self::NoRepo => "NoRepo",
            Self::NotReady => "NotReady",
            Self::Internal => "Internal",
        }
    }
}

impl std::fmt::Display for SynclineErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// So a test can write `assert_eq!(err.code(), "BadUrl")`.
impl PartialEq<&str> for SynclineErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::SynclineErrorCode;

    #[test]
    fn every_name_is_its_variant_and_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for code in SynclineErrorCode::ALL {
            assert_eq!(format!("{code:?}"), code.as_str());
            assert!(seen.insert(*code), "{code} listed twice");
        }
    }
}
