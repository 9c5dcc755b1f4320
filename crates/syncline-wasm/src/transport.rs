//! A WebSocket to the relay that comes back after it drops.
//!
//! The socket only moves bytes; what they mean is the engine's business. On
//! close it waits a backoff delay — exponential with full jitter, so a
//! relay restart isn't met by every client at the same instant — and tries
//! again, until the repo is closed. Frames sent while the socket is down are
//! dropped here on purpose: the engine's durable outbox re-sends them after
//! the next handshake, so nothing is lost.

use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
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
