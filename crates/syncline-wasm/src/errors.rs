//! Errors as JavaScript sees them: an `Error` named `SynclineError` with a
//! stable `code` property (`"BadUrl"`, `"DocNotFound"`, `"Storage"`, …).

use syncline_core::EngineError;
use wasm_bindgen::JsValue;

/// Builds a JS `Error` with `name = "SynclineError"` and the given `code`.
pub fn js_error(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    error.set_name("SynclineError");
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
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
}

impl StorageError {
    pub fn to_js(&self) -> JsValue {
        js_error("Storage", &self.to_string())
    }
}
