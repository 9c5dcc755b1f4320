//! The message calls of `Core`: ephemeral messages and requests between the
//! replicas online on a document. Thin translations of `syncline_core`'s
//! `Engine::send_message`, `request`, `serve`, `unserve` and `reply`; what
//! comes back arrives as `message`, `request` and `reply` events
//! ([`crate::events`]). Bytes are opaque here: the npm layer puts JSON text
//! in them. Replica and request ids cross as 32 hex digits.

use syncline_core::SynclineErrorCode;
use wasm_bindgen::prelude::*;

use crate::api::{Core, parse};
use crate::errors::{engine_error, js_error};
use crate::fast_open;
use crate::host;
use crate::platform::now_ms;

#[wasm_bindgen]
impl Core {
    /// Sends `bytes` to the doc's other replicas online now; `false`: not
    /// connected (nothing is queued).
    #[wasm_bindgen(js_name = sendMessage)]
    pub fn send_message(&self, url: &str, bytes: Vec<u8>) -> Result<bool, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        fast_open::ensure_loaded(&self.host, &doc);
        let sent = self.host.borrow_mut().engine.send_message(doc, bytes);
        host::drain(&self.host);
        sent.map_err(|e| engine_error(&e))
    }

    /// Asks the doc's replicas that serve `method`; returns the request's
    /// id. Its result comes as a `reply` event with that id.
    pub fn request(
        &self,
        url: &str,
        method: &str,
        payload: Vec<u8>,
        timeout_ms: f64,
    ) -> Result<String, JsValue> {
        host::enter(&self.host)?;
        if !(timeout_ms.is_finite() && timeout_ms >= 0.0) {
            return Err(js_error(
                SynclineErrorCode::BadOption,
                "timeoutMs must be a number of milliseconds ≥ 0",
            ));
        }
        let doc = parse(url)?.doc;
        fast_open::ensure_loaded(&self.host, &doc);
        let id = self.host.borrow_mut().engine.request(
            doc,
            method,
            payload,
            timeout_ms as u64,
            now_ms(),
        );
        host::drain(&self.host); // sends it, and sets the timer for its deadline
        Ok(crate::events::hex(&id.map_err(|e| engine_error(&e))?))
    }

    /// Requests for `method` on the doc come here as `request` events.
    pub fn serve(&self, url: &str, method: &str) -> Result<(), JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        fast_open::ensure_loaded(&self.host, &doc);
        let served = self.host.borrow_mut().engine.serve(doc, method);
        served.map_err(|e| engine_error(&e))
    }

    pub fn unserve(&self, url: &str, method: &str) -> Result<(), JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        self.host.borrow_mut().engine.unserve(doc, method);
        Ok(())
    }

    /// Answers request `id` of replica `to` with `result`, or with the
    /// handler's error message when `result` is `undefined`.
    pub fn reply(
        &self,
        url: &str,
        to: &str,
        id: &str,
        result: Option<Vec<u8>>,
        error: Option<String>,
    ) -> Result<bool, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        let (to, id) = (id16(to)?, id16(id)?);
        let result = result.ok_or_else(|| error.unwrap_or_default());
        let sent = self.host.borrow_mut().engine.reply(doc, to, id, result);
        host::drain(&self.host);
        sent.map_err(|e| engine_error(&e))
    }
}

/// A replica or request id from its 32 hex digits.
fn id16(text: &str) -> Result<[u8; 16], JsValue> {
    let bad = || {
        js_error(
            SynclineErrorCode::BadOption,
            "a peer or request id is 32 hex digits, as the request event gave it",
        )
    };
    if text.len() != 32 || !text.is_ascii() {
        return Err(bad());
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn ids_cross_as_32_hex_digits_and_anything_else_is_a_typed_error() {
        let id = [0xab; 16];
        assert_eq!(id16(&crate::events::hex(&id)).unwrap(), id);
        for bad in ["", "ab", &"g".repeat(32), &"é".repeat(16), &"a".repeat(34)] {
            let error = id16(bad).expect_err(bad);
            let code = js_sys::Reflect::get(&error, &"code".into()).unwrap();
            assert_eq!(code.as_string().as_deref(), Some("BadOption"));
        }
    }
}
