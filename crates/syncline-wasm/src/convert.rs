//! JS ↔ Rust values: ops and initial values in, document values and status
//! out. Documents go out as plain objects and arrays (never `Map`s).

use serde::Serialize;
use serde_json::Value as Json;
use syncline_core::{
    DialState, DocStatus, HistoryEntry, Op, SessionState, Status, SynclineErrorCode,
};
use wasm_bindgen::JsValue;

use crate::errors::js_error;

fn serializer() -> serde_wasm_bindgen::Serializer {
    serde_wasm_bindgen::Serializer::json_compatible()
}

/// Any serializable value as a plain JS value.
pub fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsValue> {
    value.serialize(&serializer()).map_err(|e| {
        js_error(
            SynclineErrorCode::Internal,
            &format!("could not convert a value to JS: {e}"),
        )
    })
}

/// An app's initial document value: `undefined` means `{}`.
pub fn initial_from_js(value: JsValue) -> Result<Json, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(Json::Object(Default::default()));
    }
    serde_wasm_bindgen::from_value(value).map_err(|e| {
        js_error(
            SynclineErrorCode::BadValue,
            &format!("the initial value is not plain JSON: {e}"),
        )
    })
}

/// A change's ops, as JSON text (`JSON.stringify(ops)`): V8 writes JSON
/// faster than wasm can walk a JS array, and parsing text in wasm is
/// cheaper than one JS call per field.
pub fn ops_from_json(text: &str) -> Result<Vec<Op>, JsValue> {
    serde_json::from_str(text).map_err(|e| {
        js_error(
            SynclineErrorCode::BadOp,
            &format!("the change's ops are malformed: {e}"),
        )
    })
}

/// What the app sees as `repo.status`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsStatus {
    pub connection: &'static str,
    /// Local changes not yet durable on this device.
    pub unsaved: usize,
    /// Local changes durable here, not yet acknowledged by the relay.
    pub pending: usize,
    pub last_synced_at: Option<f64>,
    /// The current connection attempt from 1; 0 while the session is open.
    /// Absent when the repo has no relay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<JsLastError>,
    /// Bytes waiting in memory to go to the relay (our queue plus the
    /// socket's own buffer). Bounded; the durable outbox is the truth.
    pub buffered: usize,
}

/// Why the last attempt failed, or why the relay refused us.
#[derive(Serialize)]
pub struct JsLastError {
    pub code: &'static str,
    pub message: String,
}

/// Combines the engine's view with the transport's.
pub fn status(
    engine: Status,
    socket: DialState,
    attempt: u32,
    last_error: Option<&(SynclineErrorCode, String)>,
    buffered: usize,
) -> JsStatus {
    let connection = match (socket, engine.session) {
        (DialState::NoRelay, _) => "offline",
        (DialState::Closed, _) => "closed",
        (DialState::Open, SessionState::Ready) => "open",
        (DialState::Open | DialState::Connecting, _) => "connecting",
        (DialState::Waiting | DialState::Paused, _) => "offline",
    };
    JsStatus {
        connection,
        unsaved: engine.unsaved,
        pending: engine.pending,
        last_synced_at: engine.last_synced_ms.map(|ms| ms as f64),
        attempt: match (socket, connection) {
            (DialState::NoRelay, _) => None,
            (_, "open") => Some(0),
            _ => Some(attempt),
        },
        last_error: last_error.map(|(code, message)| JsLastError {
            code: code.as_str(),
            message: message.clone(),
        }),
        buffered,
    }
}

/// What the app sees as `doc.status`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsDocStatus {
    pub unsaved: usize,
    pub pending: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<JsLastError>,
}

pub fn doc_status(status: DocStatus) -> JsDocStatus {
    JsDocStatus {
        unsaved: status.unsaved,
        pending: status.pending,
        last_error: status.last_error.map(|(error, message)| JsLastError {
            code: error.code().as_str(),
            message,
        }),
    }
}

/// One change of `doc.history()`.
#[derive(Serialize)]
pub struct JsHistoryEntry {
    pub hash: String,
    pub actor: String,
    pub seq: u64,
    /// ms since the epoch (whole seconds), 0 if unknown.
    pub time: f64,
    pub message: Option<String>,
    pub deps: Vec<String>,
}

pub fn history_to_js(entries: Vec<HistoryEntry>) -> Vec<JsHistoryEntry> {
    entries
        .into_iter()
        .map(|e| JsHistoryEntry {
            hash: e.hash.to_string(),
            actor: e.actor,
            seq: e.seq,
            time: e.time_ms as f64,
            message: e.message,
            deps: e.deps.iter().map(|h| h.to_string()).collect(),
        })
        .collect()
}
