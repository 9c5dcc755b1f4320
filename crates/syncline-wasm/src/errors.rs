//! Errors as JavaScript sees them: an `Error` named `SynclineError` with a
//! stable `code` property, one of [`SynclineErrorCode`] (`"BadUrl"`,
//! `"DocNotFound"`, `"Storage"`, …).

use syncline_core::{EngineError, SynclineErrorCode};
use wasm_bindgen::JsValue;

/// Builds a JS `Error` with `name = "SynclineError"` and the given `code`.
pub fn js_error(code: SynclineErrorCode, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    error.set_name("SynclineError");
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.as_str().into());
    error.into()
}

pub fn engine_error(e: &EngineError) -> JsValue {
    js_error(e.code(), &e.to_string())
}

/// A failure of the browser's storage (IndexedDB).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "could not open the local database `{name}`: {reason}. Is IndexedDB available (not a private window with storage disabled)?"
    )]
    Open { name: String, reason: String },
    #[error("could not read the local database: {0}")]
    Read(String),
    #[error("could not write the local database: {0}")]
    Write(String),
    #[error(
        "the browser's storage quota is exhausted: nothing new was saved (what was saved before is intact). Free space, or ask the user to allow more storage"
    )]
    QuotaExceeded,
    #[error(
        "this local database was written with another key: pass the key (or passphrase) it was created with"
    )]
    WrongKey,
    #[error("nothing was written: {0}")]
    NoRandomness(#[from] NoRandomness),
}

/// The browser's CSPRNG (`crypto.getRandomValues`) failed. Keys and nonces
/// are never made up in its place: the operation that needed them fails.
#[derive(Debug, thiserror::Error)]
#[error(
    "the browser gave no random bytes ({0}); keys and nonces need them. Reload the page; if it persists, the browser's crypto API is broken or blocked"
)]
pub struct NoRandomness(pub String);

impl NoRandomness {
    pub fn to_js(&self) -> JsValue {
        js_error(SynclineErrorCode::NoRandomness, &self.to_string())
    }
}

impl StorageError {
    /// A write failure, recognising quota exhaustion.
    pub fn write(reason: String) -> StorageError {
        if reason.contains("QuotaExceeded") {
            StorageError::QuotaExceeded
        } else {
            StorageError::Write(reason)
        }
    }

    pub fn code(&self) -> SynclineErrorCode {
        match self {
            StorageError::QuotaExceeded => SynclineErrorCode::QuotaExceeded,
            StorageError::WrongKey => SynclineErrorCode::WrongKey,
            StorageError::NoRandomness(_) => SynclineErrorCode::NoRandomness,
            StorageError::Open { .. } | StorageError::Read(_) | StorageError::Write(_) => {
                SynclineErrorCode::Storage
            }
        }
    }

    pub fn to_js(&self) -> JsValue {
        js_error(self.code(), &self.to_string())
    }
}
