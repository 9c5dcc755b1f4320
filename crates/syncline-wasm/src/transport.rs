//! A WebSocket to the relay that comes back after it drops.
//!
//! This file holds the pieces: the socket itself, the backoff policy, the
//! options the app passes (`connectTimeoutMs`, `heartbeatMs`, a token or
//! token provider...) and the page's `online`/`offline`/`visibilitychange`
//! listeners. [`crate::host`] drives them: it times out attempts, sends
//! heartbeats and decides when to retry.
//!
//! The socket only moves bytes; what they mean is the engine's business. On
//! close it waits a backoff delay — exponential with full jitter, so a
//! relay restart isn't met by every client at the same instant — and tries
//! again, until the repo is closed. Frames sent while the socket is down are
//! dropped here on purpose: the engine's durable outbox re-sends them after
//! the next handshake, so nothing is lost. While it is up, frames wait in a
//! bounded [`crate::send_queue::SendQueue`] for the socket to drain.

use js_sys::{ArrayBuffer, Function, Reflect, Uint8Array};
use wasm_bindgen::prelude::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

/// The socket's side of the connection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketState {
    /// The repo was opened without a relay.
    NoRelay,
    /// A connection attempt is under way.
    Connecting,
    /// The socket is open (the handshake may still be in progress).
    Open,
    /// The last attempt failed; the next one is scheduled.
    Waiting,
    /// The app took the repo offline (`setOnline(false)`); nothing is
    /// attempted until it brings it back.
    Paused,
    /// Closed for good (the app closed the repo, or the relay refused us).
    Closed,
}

/// Backoff policy: the wait before attempt `n` (from 1) is uniformly random
/// in `[0, min(cap, base · 2^(n-1))]` ("full jitter").
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base_ms: f64,
    pub cap_ms: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_ms: 250.0,
            cap_ms: 10_000.0,
        }
    }
}

impl Backoff {
    /// `random` is uniform in `[0, 1)`.
    pub fn delay_ms(&self, attempt: u32, random: f64) -> f64 {
        let exp = self.base_ms * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
        exp.min(self.cap_ms) * random
    }
}

/// Where each document's access token comes from (the engine asks for
/// one per document: see `syncline_core`'s `access` module).
#[derive(Clone)]
pub enum Token {
    /// An open relay: no tokens.
    None,
    /// The same token for every document.
    Fixed(String),
    /// `(docId) => string | Promise<string>`, where `docId` is the
    /// document's URL without its `#key` fragment.
    Provider(Function),
}

impl Token {
    /// Whether the engine must ask for a token per document.
    pub fn required(&self) -> bool {
        !matches!(self, Token::None)
    }

    /// The token for `doc_id` (`syncline:<id>`); an `Err` says how the
    /// provider failed (it threw, rejected, or returned no string).
    pub async fn fetch(&self, doc_id: &str) -> Result<String, String> {
        let provider = match self {
            Token::None => return Err("no token is configured".into()),
            Token::Fixed(token) => return Ok(token.clone()),
            Token::Provider(f) => f,
        };
        let mut value = provider
            .call1(&JsValue::NULL, &doc_id.into())
            .map_err(describe)?;
        if value.is_instance_of::<js_sys::Promise>() {
            value = JsFuture::from(js_sys::Promise::from(value))
                .await
                .map_err(describe)?;
        }
        match value.as_string() {
            Some(token) if !token.is_empty() => Ok(token),
            _ => Err(format!(
                "the token function must return a non-empty string (or a promise of one), not {}",
                value.js_typeof().as_string().unwrap_or_default()
            )),
        }
    }
}

fn describe(error: JsValue) -> String {
    error
        .dyn_ref::<js_sys::Error>()
        .and_then(|e| e.message().as_string())
        .or_else(|| error.as_string())
        .unwrap_or_else(|| "the token provider failed".into())
}

/// The app's transport settings (all optional on the JS side).
#[derive(Clone)]
pub struct TransportOptions {
    pub connect_timeout_ms: u32,
    pub heartbeat_ms: u32,
    pub pong_timeout_ms: u32,
    pub backoff: Backoff,
    pub token: Token,
    /// Bound of the in-memory send buffer (see [`crate::send_queue`]).
    pub send_buffer_bytes: usize,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            connect_timeout_ms: 5_000,
            heartbeat_ms: 10_000,
            pong_timeout_ms: 5_000,
            backoff: Backoff::default(),
            token: Token::None,
            send_buffer_bytes: crate::send_queue::DEFAULT_CAPACITY,
        }
    }
}

impl TransportOptions {
    /// Reads `{ connectTimeoutMs, heartbeatMs, pongTimeoutMs, backoffBaseMs,
    /// backoffCapMs, sendBufferBytes, token }`; anything missing or unusable keeps its default.
    pub fn from_js(options: &JsValue) -> TransportOptions {
        let mut out = TransportOptions::default();
        if !options.is_object() {
            return out;
        }
        let get = |key: &str| Reflect::get(options, &key.into()).unwrap_or(JsValue::UNDEFINED);
        let ms = |key: &str, min: f64| {
            get(key)
                .as_f64()
                .filter(|v| v.is_finite() && *v >= min)
                .map(|v| v.min(3_600_000.0))
        };
        if let Some(v) = ms("connectTimeoutMs", 1.0) {
            out.connect_timeout_ms = v as u32;
        }
        if let Some(v) = ms("heartbeatMs", 1.0) {
            out.heartbeat_ms = v as u32;
        }
        if let Some(v) = ms("pongTimeoutMs", 1.0) {
            out.pong_timeout_ms = v as u32;
        }
        if let Some(v) = ms("backoffBaseMs", 0.0) {
            out.backoff.base_ms = v;
        }
        if let Some(v) = ms("backoffCapMs", 0.0) {
            out.backoff.cap_ms = v;
        }
        if let Some(v) = get("sendBufferBytes")
            .as_f64()
            .filter(|v| v.is_finite() && *v >= 1.0)
        {
            out.send_buffer_bytes = v.min(1e9) as usize;
        }
        let token = get("token");
        if let Some(s) = token.as_string() {
            out.token = Token::Fixed(s);
        } else if let Some(f) = token.dyn_ref::<Function>() {
            out.token = Token::Provider(f.clone());
        }
        out
    }
}

/// The page events that wake or pause the transport.
#[derive(Debug, Clone, Copy)]
pub enum PageEvent {
    Online,
    Offline,
    Visible,
}

type Listener = Closure<dyn FnMut(Event)>;

/// `online`, `offline` and `visibilitychange` listeners on `window`,
/// removed when this is dropped. Absent (a no-op) outside a window.
pub struct PageListeners {
    window: Option<web_sys::Window>,
    closures: Vec<(&'static str, Listener)>,
}

impl PageListeners {
    pub fn install(on_event: impl Fn(PageEvent) + 'static) -> PageListeners {
        let mut listeners = PageListeners {
            window: web_sys::window(),
            closures: Vec::new(),
        };
        let Some(window) = listeners.window.clone() else {
            return listeners;
        };
        let on_event = std::rc::Rc::new(on_event);
        for name in ["online", "offline", "visibilitychange"] {
            let on_event = on_event.clone();
            let page = window.clone();
            let closure = Closure::<dyn FnMut(Event)>::new(move |_| match name {
                "online" => on_event(PageEvent::Online),
                "offline" => on_event(PageEvent::Offline),
                _ => {
                    let state = page
                        .document()
                        .and_then(|d| Reflect::get(&d, &"visibilityState".into()).ok())
                        .and_then(|v| v.as_string());
                    if state.as_deref() == Some("visible") {
                        on_event(PageEvent::Visible)
                    }
                }
            });
            // `visibilitychange` fires on the document, the others on window.
            let target: web_sys::EventTarget = if name == "visibilitychange" {
                match window.document() {
                    Some(doc) => doc.into(),
                    None => continue,
                }
            } else {
                window.clone().into()
            };
            let _ = target.add_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
            listeners.closures.push((name, closure));
        }
        listeners
    }
}

impl Drop for PageListeners {
    fn drop(&mut self) {
        let Some(window) = &self.window else { return };
        for (name, closure) in &self.closures {
            let f = closure.as_ref().unchecked_ref();
            if *name == "visibilitychange" {
                if let Some(doc) = window.document() {
                    let _ = doc.remove_event_listener_with_callback(name, f);
                }
            } else {
                let _ = window.remove_event_listener_with_callback(name, f);
            }
        }
    }
}

/// What the socket reports back to its owner.
pub struct Handlers {
    pub on_open: Box<dyn FnMut()>,
    pub on_message: Box<dyn FnMut(Vec<u8>)>,
    pub on_close: Box<dyn FnMut(u16, String)>,
}

/// One live WebSocket and the JS closures wired to it.
pub struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    /// Starts connecting to `url`. Fails only if the URL is unusable.
    pub fn connect(url: &str, handlers: Handlers) -> Result<Socket, String> {
        let ws = WebSocket::new(url).map_err(|e| format!("{e:?}"))?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let Handlers {
            mut on_open,
            mut on_message,
            mut on_close,
        } = handlers;
        let open = Closure::<dyn FnMut(Event)>::new(move |_| on_open());
        let message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            // Text frames are not part of the protocol; the engine rejects
            // anything it can't decode, so pass them as empty bytes.
            let bytes = event
                .data()
                .dyn_into::<ArrayBuffer>()
                .map(|buf| Uint8Array::new(&buf).to_vec())
                .unwrap_or_default();
            on_message(bytes);
        });
        let close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            on_close(event.code(), event.reason());
        });
        ws.set_onopen(Some(open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(close.as_ref().unchecked_ref()));
        Ok(Socket {
            ws,
            _on_open: open,
            _on_message: message,
            _on_close: close,
        })
    }

    /// Bytes handed to `send` that the browser has not yet put on the wire.
    pub fn buffered_amount(&self) -> usize {
        self.ws.buffered_amount() as usize
    }

    /// Sends one binary frame if the socket is open; otherwise drops it
    /// (the outbox is the source of truth).
    pub fn send(&self, bytes: &[u8]) {
        if self.ws.ready_state() == WebSocket::OPEN {
            let _ = self.ws.send_with_u8_array(bytes);
        }
    }

    /// Closes the socket and detaches every handler, so no event from it
    /// reaches us afterwards.
    pub fn close(&self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_to_the_cap_with_full_jitter() {
        let b = Backoff::default();
        assert_eq!(b.delay_ms(1, 0.999_999).round(), 250.0);
        assert_eq!(b.delay_ms(3, 0.999_999).round(), 1000.0);
        assert_eq!(b.delay_ms(50, 0.999_999).round(), 10_000.0);
        assert_eq!(b.delay_ms(5, 0.0), 0.0);
    }
}
