//! Export and import on the exported `Core` class: a document as standard
//! Automerge bytes, and a new document from them (the engine's
//! `export_doc` and `import_doc`; see `syncline_core`'s `portable` module).

use wasm_bindgen::prelude::*;

use crate::api::{Core, parse};
use crate::errors::engine_error;
use crate::fast_open;
use crate::host;
use crate::platform::now_ms;

#[wasm_bindgen]
impl Core {
    /// The document as standard Automerge bytes (Automerge's `save()`):
    /// its whole history, loadable by `@automerge/automerge`'s `load`.
    #[wasm_bindgen(js_name = exportDoc)]
    pub fn export_doc(&self, url: &str) -> Result<Vec<u8>, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        fast_open::ensure_loaded(&self.host, &doc);
        let bytes = self.host.borrow_mut().engine.export_doc(&doc);
        bytes.map_err(|e| engine_error(&e))
    }

    /// Makes a new document (fresh id and key) from Automerge bytes and
    /// returns its URL; its history is theirs, synced like local changes.
    /// Bytes that are not an Automerge document, or hold values Syncline
    /// does not support, fail with code `BadImport` and create nothing.
    #[wasm_bindgen(js_name = importDoc)]
    pub fn import_doc(&self, bytes: &[u8]) -> Result<String, JsValue> {
        host::enter(&self.host)?;
        let result = self.host.borrow_mut().engine.import_doc(bytes, now_ms());
        host::drain(&self.host);
        Ok(result.map_err(|e| engine_error(&e))?.to_string())
    }
}
