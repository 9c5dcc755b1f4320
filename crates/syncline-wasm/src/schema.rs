//! Schema migrations on the exported `Core` class: one step, as the
//! engine's deterministic change (see `syncline_core`'s `schema` module).

use wasm_bindgen::prelude::*;

use crate::api::{Core, parse};
use crate::convert::ops_from_json;
use crate::errors::engine_error;
use crate::fast_open;
use crate::host;
use crate::platform::now_ms;

#[wasm_bindgen]
impl Core {
    /// Migrates the document from schema version `from` to `from + 1`:
    /// `ops` (JSON, as for `change`) are what the app's migration recorded
    /// on the current value; the version key is set by the engine. Returns
    /// the patches as `change` does (`null`: apply the ops). A document no
    /// longer at `from` is left as it is. On error nothing changes.
    pub fn migrate(&self, url: &str, from: f64, ops: &str) -> Result<JsValue, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        let ops = ops_from_json(ops)?;
        fast_open::ensure_loaded(&self.host, &doc);
        let from = if from.is_finite() && from >= 0.0 {
            from as u64
        } else {
            0
        };
        let result = self
            .host
            .borrow_mut()
            .engine
            .migrate(doc, from, &ops, now_ms());
        host::drain_soon(&self.host);
        result.map_err(|e| engine_error(&e))?;
        self.local_patches(&doc)
    }
}
