//! The editing calls of `Core`: undo and redo of this replica's changes,
//! stable cursors in texts, and a text's marks. Thin translations of
//! `syncline_core`'s `Engine::undo`, `cursor`, `marks`...; a text is named
//! by its path, JSON text as in ops (`["note"]`, `["todos", 3, "title"]`).

use syncline_core::{SynclineErrorCode, ops::Key};
use wasm_bindgen::prelude::*;

use crate::api::{Core, parse};
use crate::convert::to_js;
use crate::errors::{engine_error, js_error};
use crate::fast_open;
use crate::host;
use crate::patches::to_js_patches;
use crate::platform::now_ms;

#[wasm_bindgen]
impl Core {
    /// Undoes this replica's last undo step of the doc as a new change:
    /// the patches since the doc's last `value`, `change` or `changed`
    /// event, or `null` if there was nothing to undo.
    pub fn undo(&self, url: &str) -> Result<JsValue, JsValue> {
        self.revert(url, true)
    }

    /// Redoes the last undo, like [`Core::undo`].
    pub fn redo(&self, url: &str) -> Result<JsValue, JsValue> {
        self.revert(url, false)
    }

    /// `[canUndo, canRedo]` for the doc (`[false, false]` if it is not open).
    #[wasm_bindgen(js_name = undoState)]
    pub fn undo_state(&self, url: &str) -> Result<Vec<u8>, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        let h = self.host.borrow();
        Ok(vec![
            u8::from(h.engine.can_undo(&doc)),
            u8::from(h.engine.can_redo(&doc)),
        ])
    }

    /// Local changes closer together than `ms` become one undo step.
    #[wasm_bindgen(js_name = setUndoCapture)]
    pub fn set_undo_capture(&self, ms: f64) -> Result<(), JsValue> {
        host::enter(&self.host)?;
        if !(ms.is_finite() && ms >= 0.0) {
            return Err(js_error(
                SynclineErrorCode::BadOption,
                "undoCaptureMs must be a number of milliseconds ≥ 0",
            ));
        }
        self.host.borrow_mut().engine.set_undo_capture(ms as u64);
        Ok(())
    }

    /// A stable cursor before the character at `index` of the text at
    /// `path` (`index` = its length: the end).
    pub fn cursor(&self, url: &str, path: &str, index: f64) -> Result<String, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        let path = path_from_json(path)?;
        if !(index.is_finite() && index >= 0.0 && index.fract() == 0.0) {
            return Err(js_error(
                SynclineErrorCode::BadCursor,
                "cursor(): the index must be a whole number ≥ 0",
            ));
        }
        fast_open::ensure_loaded(&self.host, &doc);
        let h = self.host.borrow();
        h.engine
            .cursor(&doc, &path, index as u64)
            .map_err(|e| engine_error(&e))
    }

    /// Where `cursor` is now in the text at `path`.
    #[wasm_bindgen(js_name = cursorPosition)]
    pub fn cursor_position(&self, url: &str, path: &str, cursor: &str) -> Result<f64, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        let path = path_from_json(path)?;
        fast_open::ensure_loaded(&self.host, &doc);
        let h = self.host.borrow();
        h.engine
            .cursor_position(&doc, &path, cursor)
            .map(|i| i as f64)
            .map_err(|e| engine_error(&e))
    }

    /// The marks of the text at `path`: `[{name, value, start, end}]`.
    pub fn marks(&self, url: &str, path: &str) -> Result<JsValue, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        let path = path_from_json(path)?;
        fast_open::ensure_loaded(&self.host, &doc);
        let h = self.host.borrow();
        to_js(&h.engine.marks(&doc, &path).map_err(|e| engine_error(&e))?)
    }
}

impl Core {
    fn revert(&self, url: &str, undo: bool) -> Result<JsValue, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        fast_open::ensure_loaded(&self.host, &doc);
        let done = {
            let mut h = self.host.borrow_mut();
            if undo {
                h.engine.undo(doc, now_ms())
            } else {
                h.engine.redo(doc, now_ms())
            }
        };
        host::drain_soon(&self.host);
        if !done.map_err(|e| engine_error(&e))? {
            return Ok(JsValue::NULL);
        }
        // The caller has no ops to apply: the patches come from a diff.
        let patches = self
            .host
            .borrow_mut()
            .engine
            .patches(&doc)
            .map_err(|e| engine_error(&e))?;
        to_js(&to_js_patches(patches))
    }
}

/// A text's path as JSON text: an array of keys and indices.
fn path_from_json(text: &str) -> Result<Vec<Key>, JsValue> {
    serde_json::from_str(text).map_err(|e| {
        js_error(
            SynclineErrorCode::BadOp,
            &format!("the path is not an array of keys and indices: {e}"),
        )
    })
}
