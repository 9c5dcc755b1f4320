//! The app's events: collected while the host runs the engine, turned into
//! JS objects and handed to the npm layer's callback only from a fresh
//! microtask, never while the host is borrowed — so the app may call back
//! into the repo from any event, and the page hears of a change before the
//! storage write it caused starts (see [`crate::writer`]).

use syncline_core::{DocId, Output, RequestFailure, SynclineErrorCode};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::spawn_local;

use crate::convert::to_js;
use crate::errors::{engine_error, js_error};
use crate::host::{Host, HostRef};
use crate::patches::to_js_patches;

/// An app-facing event, resolved to JS values only at delivery time.
pub enum Event {
    Changed(DocId),
    CaughtUp(DocId),
    Status,
    Error {
        code: SynclineErrorCode,
        message: String,
        /// The document it concerns, if one (a per-document refusal).
        doc: Option<DocId>,
    },
    /// Bytes for the other tabs (the npm layer posts them on a BroadcastChannel).
    Broadcast(Vec<u8>),
    /// A peer's presence on a doc: its state, or `None` once it is gone.
    Presence {
        doc: DocId,
        peer: [u8; 16],
        state: Option<Vec<u8>>,
    },
    /// A peer's message, a request for a method this page serves, or the
    /// settling of our request: `Output::Message`, `Request` or `Reply`.
    Messaging(Output),
}

/// Delivers events from a fresh microtask, never under a borrow.
pub fn emit(host: &HostRef, mut events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    // One status event per burst is enough: it carries the latest status.
    let mut seen_status = false;
    events.retain(|e| !matches!(e, Event::Status) || !std::mem::replace(&mut seen_status, true));
    let host = host.clone();
    spawn_local(async move {
        for event in events {
            let (callback, value) = {
                let mut h = host.borrow_mut();
                let value = to_js_event(&mut h, event);
                (h.on_event(), value)
            };
            if let Ok(value) = value {
                let _ = callback.call1(&JsValue::NULL, &value);
            }
        }
    });
}

fn to_js_event(h: &mut Host, event: Event) -> Result<JsValue, JsValue> {
    let fields: Vec<(&str, JsValue)> = match event {
        Event::Changed(doc) => {
            // Computed at delivery, so the page applies every doc's patch
            // stream in the order it was produced.
            let patches = h.engine.patches(&doc).map_err(|e| engine_error(&e))?;
            vec![
                ("type", "changed".into()),
                ("url", doc_url(h, &doc).into()),
                ("patches", to_js(&to_js_patches(patches))?),
            ]
        }
        Event::CaughtUp(doc) => vec![
            ("type", "caughtUp".into()),
            ("url", doc_url(h, &doc).into()),
        ],
        Event::Status => vec![("type", "status".into()), ("status", h.status_js()?)],
        Event::Error { code, message, doc } => {
            let mut fields = vec![
                ("type", "error".into()),
                ("error", js_error(code, &message)),
            ];
            if let Some(doc) = doc {
                fields.push(("url", doc_url(h, &doc).into()));
            }
            fields
        }
        Event::Broadcast(bytes) => vec![("type", "broadcast".into()), ("bytes", bytes_js(&bytes))],
        Event::Presence { doc, peer, state } => vec![
            ("type", "presence".into()),
            ("url", doc_url(h, &doc).into()),
            ("peer", hex(&peer).into()),
            ("state", state.map_or(JsValue::NULL, |s| bytes_js(&s))),
        ],
        Event::Messaging(output) => messaging_fields(h, output),
    };
    let object = js_sys::Object::new();
    for (key, value) in fields {
        js_sys::Reflect::set(&object, &key.into(), &value)?;
    }
    Ok(object.into())
}

/// The fields of a `message`, `request` or `reply` event.
fn messaging_fields(h: &Host, output: Output) -> Vec<(&'static str, JsValue)> {
    match output {
        Output::Message { doc, from, message } => vec![
            ("type", "message".into()),
            ("url", doc_url(h, &doc).into()),
            ("from", hex(&from).into()),
            ("bytes", bytes_js(&message)),
        ],
        Output::Request {
            doc,
            from,
            id,
            method,
            payload,
        } => vec![
            ("type", "request".into()),
            ("url", doc_url(h, &doc).into()),
            ("from", hex(&from).into()),
            ("id", hex(&id).into()),
            ("method", method.into()),
            ("payload", bytes_js(&payload)),
        ],
        Output::Reply { doc, id, result } => {
            let outcome = match result {
                Ok(bytes) => ("result", bytes_js(&bytes)),
                Err(failure) => ("error", request_error(failure)),
            };
            vec![
                ("type", "reply".into()),
                ("url", doc_url(h, &doc).into()),
                ("id", hex(&id).into()),
                outcome,
            ]
        }
        // The host hands only those three here.
        _ => vec![("type", "ignored".into())],
    }
}

/// Why a request got no result, as the error its promise rejects with.
fn request_error(failure: RequestFailure) -> JsValue {
    match failure {
        RequestFailure::NoServer => js_error(
            SynclineErrorCode::NoServer,
            "no peer serving this method replied before the timeout: is a server for it online on this document?",
        ),
        RequestFailure::Disconnected => js_error(
            SynclineErrorCode::Offline,
            "the connection dropped before a reply came: send the request again once connected",
        ),
        RequestFailure::Remote(message) => js_error(SynclineErrorCode::RemoteError, &message),
    }
}

fn doc_url(h: &Host, doc: &DocId) -> String {
    h.engine.url(doc).map(|u| u.to_string()).unwrap_or_default()
}

fn bytes_js(bytes: &[u8]) -> JsValue {
    js_sys::Uint8Array::from(bytes).into()
}

/// Lowercase hex, for replica and actor ids.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
