//! The browser's side of the connection: the WebSocket itself, and the
//! options the app passes (`connectTimeoutMs`, `heartbeatMs`,
//! `pongTimeoutMs`, `backoffBaseMs`, `backoffCapMs`, a token or token
//! provider, the send buffer's bound).
//!
//! The socket only moves bytes; what they mean is the engine's business,
//! and when to open, ping or drop one is the core's connection policy
//! (`syncline_core::Dialer`), driven by [`crate::link`]. Frames sent while
//! the socket is down are dropped here on purpose: the engine's durable
//! outbox re-sends them after the next handshake, so nothing is lost. While
//! it is up, frames wait in a bounded [`crate::send_queue::SendQueue`] for
//! the socket to drain.

use js_sys::{ArrayBuffer, Function, Reflect, Uint8Array};
use syncline_core::DialerConfig;
use wasm_bindgen::prelude::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

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
    /// The connection policy's timings; unset ones keep the core's defaults.
    pub dial: DialerConfig,
    pub token: Token,
    /// Bound of the in-memory send buffer (see [`crate::send_queue`]).
    pub send_buffer_bytes: usize,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            dial: DialerConfig::default(),
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
                .map(|v| v.min(3_600_000.0) as u64)
        };
        let dial = &mut out.dial;
        for (key, min, field) in [
            ("connectTimeoutMs", 1.0, &mut dial.connect_timeout_ms),
            ("heartbeatMs", 1.0, &mut dial.heartbeat_ms),
            ("pongTimeoutMs", 1.0, &mut dial.pong_timeout_ms),
            ("backoffBaseMs", 0.0, &mut dial.backoff_base_ms),
            ("backoffCapMs", 0.0, &mut dial.backoff_cap_ms),
        ] {
            if let Some(v) = ms(key, min) {
                *field = v;
            }
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
