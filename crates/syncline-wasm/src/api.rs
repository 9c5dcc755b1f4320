//! The exported `Core` class: what the `syncline` npm package calls.
//!
//! Each method translates JS values, calls the engine, hands the engine's
//! effects to [`crate::host`], and translates the answer back. Errors are JS
//! `Error`s with a `code` (see [`crate::errors`]).

use syncline_core::{ChangeHash, ChangeOptions, DocUrl, Engine, SynclineErrorCode};
use wasm_bindgen::prelude::*;

use crate::convert::{history_to_js, initial_from_js, ops_from_json, to_js};
use crate::errors::{engine_error, js_error};
use crate::fast_open;
use crate::host::{self, Host, HostRef};
use crate::patches::to_js_patches;
use crate::platform::{PageEvent, now_ms, random_bytes};
use crate::storage::{Durability, Storage};
use crate::transport::TransportOptions;

/// A replica in this page: its documents, its log, its relay connection.
#[wasm_bindgen]
pub struct Core {
    pub(crate) host: HostRef,
    /// Our registration with [`crate::crash`].
    crash_listener: u64,
}

impl Drop for Core {
    fn drop(&mut self) {
        crate::crash::unregister(self.crash_listener);
    }
}

#[wasm_bindgen]
impl Core {
    /// Opens (creating if needed) the local database for `name`, encrypted
    /// with `key` (32 bytes), loads every document from it, and connects to
    /// `relay` if given: a URL, or an array of them (the relays of one
    /// cluster, tried in turn: a refused connection moves to the next at
    /// once, a lost one after the backoff). A wrong key fails with code
    /// `WrongKey`.
    /// `on_event` receives `{type: "changed" | "caughtUp" | "status" | "error", ...}`
    /// objects, always from a fresh task, never from inside a `Core` call —
    /// except `{type: "crashed", error}`, sent synchronously if the module
    /// ever panics (see [`crate::crash`]).
    pub async fn open(
        name: String,
        relay: JsValue,
        on_event: js_sys::Function,
        key: &[u8],
    ) -> Result<Core, JsValue> {
        Core::open_with(name, relay, on_event, key, JsValue::UNDEFINED).await
    }

    /// [`Core::open`] with options: `{ connectTimeoutMs, heartbeatMs,
    /// pongTimeoutMs, backoffBaseMs, backoffCapMs, token, durability,
    /// maxUnsavedBytes }`,
    /// where `token` is a string (for every document) or a function
    /// `(docId) => string | Promise<string>` called per document when the
    /// engine needs its token (see `syncline_core`'s `access` module), and `durability`
    /// ("strict", "relaxed" or "default") is how the log's writes commit;
    /// `maxUnsavedBytes` is the engine's backlog limit (see `syncline_core`'s
    /// `backlog` module).
    #[wasm_bindgen(js_name = openWith)]
    pub async fn open_with(
        name: String,
        relay: JsValue,
        on_event: js_sys::Function,
        key: &[u8],
        options: JsValue,
    ) -> Result<Core, JsValue> {
        let relays = relays_from_js(&relay)?;
        let durability = Durability::from_js(&options);
        let options_js = options;
        let options = TransportOptions::from_js(&options_js);
        let key: [u8; 32] = key.try_into().map_err(|_| {
            js_error(
                SynclineErrorCode::BadKey,
                "the storage key must be exactly 32 bytes",
            )
        })?;
        let storage = Storage::open(&name, key, durability)
            .await
            .map_err(|e| e.to_js())?;
        let sealed = storage.read_all().await.map_err(|e| e.to_js())?;
        // Documents that can be shown from their stored value wait (see
        // `fast_open`); the rest loads now.
        let fast_open::Split {
            records,
            mut problems,
            deferred,
        } = fast_open::split(&storage, sealed);
        let seed = random_bytes().map_err(|e| e.to_js())?;
        let replica = random_bytes().map_err(|e| e.to_js())?;
        let dial_seed = random_bytes().map_err(|e| e.to_js())?;
        let (mut engine, load_problems) = Engine::load(seed, records);
        problems.extend(load_problems);
        if let Some(limit) = max_unsaved_bytes(&options_js) {
            engine.set_backlog_limit(limit);
        }
        let host = Host::new(
            engine,
            replica,
            dial_seed,
            storage,
            relays,
            on_event.clone(),
            options,
        );
        host.borrow_mut().fast_open = fast_open::FastOpen::new(deferred);
        fast_open::load_in(&host, fast_open::BACKGROUND_LOAD_MS);
        for problem in problems {
            // Reported, not fatal: the rest of the log loaded.
            let event = js_sys::Object::new();
            js_sys::Reflect::set(&event, &"type".into(), &"error".into())?;
            js_sys::Reflect::set(&event, &"error".into(), &engine_error(&problem))?;
            let _ = on_event.call1(&JsValue::NULL, &event);
        }
        host::start(&host);
        let crash_listener = crate::crash::register(&on_event);
        Ok(Core {
            host,
            crash_listener,
        })
    }

    /// Creates a document holding `initial` (a plain object; `undefined`
    /// means `{}`) and returns its URL.
    pub fn create(&self, initial: JsValue) -> Result<String, JsValue> {
        host::enter(&self.host)?;
        let initial = initial_from_js(initial)?;
        let result = self.host.borrow_mut().engine.create_doc(&initial, now_ms());
        host::drain(&self.host);
        Ok(result.map_err(|e| engine_error(&e))?.to_string())
    }

    /// Starts tracking the document at `url`. Returns whether this replica
    /// already has some of its content. A document this engine did not load
    /// (another tab may have created it since) is first read from the log.
    #[wasm_bindgen(js_name = openDoc)]
    pub async fn open_doc(&self, url: &str) -> Result<bool, JsValue> {
        host::enter(&self.host)?;
        let url = parse(url)?;
        match fast_open::matches(&self.host, &url) {
            Some(true) => return Ok(true),
            // The engine says what is wrong with the key.
            Some(false) => fast_open::ensure_loaded(&self.host, &url.doc),
            None => {}
        }
        let loaded = self.host.borrow().engine.doc_ids().any(|d| *d == url.doc);
        if !loaded {
            let storage = self.host.borrow().writer.storage();
            let (records, mut problems) = storage
                .load_doc(&url.doc.to_string())
                .await
                .map_err(|e| e.to_js())?;
            problems.extend(self.host.borrow_mut().engine.absorb(records, now_ms()));
            host::report(&self.host, problems);
        }
        let known = self.host.borrow_mut().engine.open_doc(&url, now_ms());
        host::drain(&self.host);
        known.map_err(|e| engine_error(&e))
    }

    /// Forgets the document here: stops syncing it and deletes its records
    /// from the log (the relay's copy and other replicas are untouched).
    #[wasm_bindgen(js_name = deleteDoc)]
    pub fn delete_doc(&self, url: &str) -> Result<(), JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        fast_open::ensure_loaded(&self.host, &doc);
        let result = self.host.borrow_mut().engine.delete_doc(doc);
        host::drain(&self.host);
        result.map_err(|e| engine_error(&e))
    }

    /// Every change of the document, oldest first:
    /// `[{ hash, actor, seq, time, message, deps }]`.
    pub fn history(&self, url: &str) -> Result<JsValue, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        fast_open::ensure_loaded(&self.host, &doc);
        let entries = self.host.borrow_mut().engine.history(&doc);
        to_js(&history_to_js(entries.map_err(|e| engine_error(&e))?))
    }

    /// The changes `heads` do not cover, oldest first, as `history` lists
    /// them: what a copy of the history that stood at `heads` lacks (worker
    /// mode keeps one in each tab). `[]`: the whole history.
    #[wasm_bindgen(js_name = historySince)]
    pub fn history_since(&self, url: &str, heads: Vec<String>) -> Result<JsValue, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        fast_open::ensure_loaded(&self.host, &doc);
        let heads = parse_heads(&heads)?;
        let entries = self.host.borrow_mut().engine.history_since(&doc, &heads);
        to_js(&history_to_js(entries.map_err(|e| engine_error(&e))?))
    }

    /// The document as it was at `heads` (change hashes, as in `history`).
    #[wasm_bindgen(js_name = valueAt)]
    pub fn value_at(&self, url: &str, heads: Vec<String>) -> Result<JsValue, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        fast_open::ensure_loaded(&self.host, &doc);
        let heads = parse_heads(&heads)?;
        let value = self.host.borrow_mut().engine.value_at(&doc, &heads);
        to_js(&value.map_err(|e| engine_error(&e))?)
    }

    /// The heads (change hashes, as in `history`) of the value this page
    /// holds: the last `value`, plus the patches of every `change` and
    /// `changed` event since. Changes the engine has but has not yet
    /// delivered in a `changed` event are not included, so `valueAt(heads)`
    /// is that value. A document shown from its stored value loads first;
    /// its heads are then those of the value shown (see [`crate::fast_open`]).
    pub fn heads(&self, url: &str) -> Result<Vec<String>, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        fast_open::ensure_loaded(&self.host, &doc);
        let heads = self.host.borrow().engine.shown_heads(&doc);
        Ok(heads
            .map_err(|e| engine_error(&e))?
            .iter()
            .map(|h| h.to_string())
            .collect())
    }

    /// Shares this page's presence on the document (opaque bytes, sealed
    /// with the document key); peers see it until `clearPresence` or until
    /// this page goes away.
    #[wasm_bindgen(js_name = setPresence)]
    pub fn set_presence(&self, url: &str, state: Vec<u8>) -> Result<(), JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        fast_open::ensure_loaded(&self.host, &doc);
        let result = self
            .host
            .borrow_mut()
            .engine
            .set_presence(doc, state, now_ms());
        host::drain(&self.host);
        result.map_err(|e| engine_error(&e))
    }

    #[wasm_bindgen(js_name = clearPresence)]
    pub fn clear_presence(&self, url: &str) -> Result<(), JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        fast_open::ensure_loaded(&self.host, &doc);
        let result = self.host.borrow_mut().engine.clear_presence(doc);
        host::drain(&self.host);
        result.map_err(|e| engine_error(&e))
    }

    /// Turns on `broadcast` events (bytes for the other tabs of this origin).
    #[wasm_bindgen(js_name = setTabSync)]
    pub fn set_tab_sync(&self, enabled: bool) -> Result<(), JsValue> {
        host::enter(&self.host)?;
        self.host.borrow_mut().engine.set_tab_sync(enabled);
        Ok(())
    }

    /// Another tab's `broadcast` bytes arrived. Bad bytes fail with a code
    /// and change nothing.
    #[wasm_bindgen(js_name = receivedFromTab)]
    pub fn received_from_tab(&self, bytes: &[u8]) -> Result<(), JsValue> {
        host::enter(&self.host)?;
        // The engine ignores messages for documents it lacks.
        fast_open::ensure_all_loaded(&self.host);
        let result = self
            .host
            .borrow_mut()
            .engine
            .received_from_tab(bytes, now_ms());
        host::drain(&self.host);
        result.map_err(|e| engine_error(&e))
    }

    /// Only one tab compacts the shared log: the one holding the Web Lock.
    #[wasm_bindgen(js_name = setCompactionEnabled)]
    pub fn set_compaction_enabled(&self, enabled: bool) -> Result<(), JsValue> {
        host::enter(&self.host)?;
        self.host
            .borrow_mut()
            .engine
            .set_compaction_enabled(enabled);
        host::drain(&self.host);
        Ok(())
    }

    /// The document's current value as plain objects and arrays. The
    /// patches of later `change` calls and `changed` events are relative
    /// to it. A document opened from its stored value returns it without
    /// loading its CRDT (which loads right after; see [`crate::fast_open`]).
    pub fn value(&self, url: &str) -> Result<JsValue, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        if let Some(value) = fast_open::value(&self.host, &doc) {
            return Ok(value);
        }
        let mut h = self.host.borrow_mut();
        // Start the doc's patch stream here.
        h.engine
            .restart_patches(&doc)
            .map_err(|e| engine_error(&e))?;
        to_js(&h.engine.value(&doc).map_err(|e| engine_error(&e))?)
    }

    /// Applies `ops` (a JSON array of `syncline_core::Op`) as one change
    /// with an optional message (`undoable: false`: undo skips it); returns the patches since the last
    /// `value`, `change` or `changed` event of this doc (see
    /// [`crate::patches`]), or `null` when nothing but local changes
    /// happened since: then the caller applies its own ops as patches. On
    /// error nothing changes.
    pub fn change(
        &self,
        url: &str,
        ops: &str,
        message: Option<String>,
        undoable: Option<bool>,
    ) -> Result<JsValue, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        let ops = ops_from_json(ops)?;
        // A change needs the CRDT: a document shown from its stored value
        // loads now, and the change applies on top, in order.
        fast_open::ensure_loaded(&self.host, &doc);
        let options = change_options(message, undoable);
        let result = self
            .host
            .borrow_mut()
            .engine
            .change_with(doc, &ops, options, now_ms());
        host::drain_soon(&self.host);
        result.map_err(|e| engine_error(&e))?;
        self.local_patches(&doc)
    }

    /// `change` as of `heads` (the heads of the value the caller recorded
    /// its ops against: a tab whose engine runs in a worker). Returns
    /// `[hash, patches, bytes]`: the new change's hash and encoded bytes
    /// (`null` if the ops changed nothing) and the patches since the last
    /// `value`, `change` or `changed` event of this doc (`null` as in
    /// `change`).
    #[wasm_bindgen(js_name = changeAt)]
    pub fn change_at(
        &self,
        url: &str,
        heads: Vec<String>,
        ops: &str,
        message: Option<String>,
        undoable: Option<bool>,
    ) -> Result<JsValue, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        let heads = parse_heads(&heads)?;
        let ops = ops_from_json(ops)?;
        fast_open::ensure_loaded(&self.host, &doc);
        let options = change_options(message, undoable);
        let result = self
            .host
            .borrow_mut()
            .engine
            .change_at(doc, &heads, &ops, options, now_ms());
        host::drain_soon(&self.host);
        let hash = result.map_err(|e| engine_error(&e))?;
        let bytes = hash.and_then(|h| self.host.borrow_mut().engine.change_bytes(&doc, &h));
        let bytes = bytes.map_or(JsValue::NULL, |b| js_sys::Uint8Array::from(&b[..]).into());
        let hash = hash.map_or(JsValue::NULL, |h| JsValue::from_str(&h.to_string()));
        let patches = self.local_patches(&doc)?;
        Ok(js_sys::Array::of3(&hash, &patches, &bytes).into())
    }

    /// Applies, logs and pushes a local change another engine of this
    /// replica made and did not make durable (its bytes, from
    /// `changeAt`); returns its hash. Already here: nothing happens.
    #[wasm_bindgen(js_name = restoreLocalChange)]
    pub fn restore_local_change(&self, url: &str, bytes: &[u8]) -> Result<String, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        fast_open::ensure_loaded(&self.host, &doc);
        let result = self
            .host
            .borrow_mut()
            .engine
            .restore_local_change(doc, bytes, now_ms());
        host::drain_soon(&self.host);
        result.map(|h| h.to_string()).map_err(|e| engine_error(&e))
    }

    /// Whether the document's CRDT is loaded in the engine (`false` while it
    /// is shown from its stored value, or unknown). For tests and tools.
    #[wasm_bindgen(js_name = crdtLoaded)]
    pub fn crdt_loaded(&self, url: &str) -> Result<bool, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        Ok(self.host.borrow().engine.doc_ids().any(|d| *d == doc))
    }

    /// The heads of the stored value a document was shown with before its
    /// CRDT loaded (`Core.value` of a deferred document), once it has
    /// loaded; `undefined` otherwise. Stays true after later changes: worker
    /// mode applies a tab's changes made against that value at these heads.
    #[wasm_bindgen(js_name = loadedHeads)]
    pub fn loaded_heads(&self, url: &str) -> Result<Option<Vec<String>>, JsValue> {
        host::enter(&self.host)?;
        let doc = parse(url)?.doc;
        let h = self.host.borrow();
        Ok(h.fast_open
            .loaded_heads(&doc)
            .map(|heads| heads.iter().map(|hash| hash.to_string()).collect()))
    }

    /// How many documents were loaded after being shown from their stored
    /// value. For tests and tools.
    #[wasm_bindgen(js_name = deferredLoads)]
    pub fn deferred_loads(&self) -> Result<u32, JsValue> {
        host::enter(&self.host)?;
        Ok(self.host.borrow().fast_open.loads())
    }

    /// Resolves when every change made so far is durable in IndexedDB.
    pub async fn flush(&self) -> Result<(), JsValue> {
        host::enter(&self.host)?;
        crate::writer::flush(&self.host).await
    }

    /// `{ connection, pending, lastSyncedAt, attempt, lastError?, buffered }`.
    pub fn status(&self) -> Result<JsValue, JsValue> {
        host::enter(&self.host)?;
        self.host.borrow().status_js()
    }

    /// `{ unsaved, pending, lastError? }` of one document: its changes not
    /// yet durable here, durable but not acknowledged, and the relay's last
    /// refusal of it (`Unauthorized`, `ReadOnly`, `TokenExpired`,
    /// `TokenProvider`) until it serves the document again.
    #[wasm_bindgen(js_name = docStatus)]
    pub fn doc_status(&self, url: &str) -> Result<JsValue, JsValue> {
        host::enter(&self.host)?;
        let url = parse(url)?;
        self.host.borrow().doc_status_js(&url.doc)
    }

    /// `false` takes the repo offline until `setOnline(true)`: the socket
    /// closes and no attempt is made, whatever the network does. Changes are
    /// still saved locally, and pushed once back online.
    #[wasm_bindgen(js_name = setOnline)]
    pub fn set_online(&self, online: bool) -> Result<(), JsValue> {
        host::enter(&self.host)?;
        host::set_online(&self.host, online);
        Ok(())
    }

    /// A page event the engine has no window to hear (it runs in a
    /// worker): "online", "offline", or "visible" (a tab became visible).
    /// Forwarded by the tabs; in a page the engine listens itself.
    #[wasm_bindgen(js_name = pageEvent)]
    pub fn page_event(&self, event: &str) -> Result<(), JsValue> {
        let event = match event {
            "online" => PageEvent::Online,
            "offline" => PageEvent::Offline,
            "visible" => PageEvent::Visible,
            _ => {
                return Err(js_error(
                    SynclineErrorCode::BadOption,
                    "a page event is \"online\", \"offline\" or \"visible\"",
                ));
            }
        };
        host::enter(&self.host)?;
        host::page_event(&self.host, event);
        Ok(())
    }

    /// Closes the relay connection for good. Writes already made still
    /// complete; `flush()` first to wait for them. Called from inside one
    /// of the repo's own calls, it closes right after that call.
    pub fn close(&self) {
        crate::crash::unregister(self.crash_listener);
        host::run_or_queue(&self.host, host::close);
    }
}

/// `undefined` or `null` (no relay), a URL, or an array of URLs.
fn relays_from_js(relay: &JsValue) -> Result<Vec<String>, JsValue> {
    if relay.is_undefined() || relay.is_null() {
        return Ok(Vec::new());
    }
    if let Some(url) = relay.as_string() {
        return Ok(vec![url]);
    }
    if js_sys::Array::is_array(relay) {
        let urls: Option<Vec<String>> = js_sys::Array::from(relay)
            .iter()
            .map(|url| url.as_string())
            .collect();
        if let Some(urls) = urls.filter(|urls| !urls.is_empty()) {
            return Ok(urls);
        }
    }
    Err(js_error(
        SynclineErrorCode::BadOption,
        "`relay` must be a ws:// URL or a non-empty array of them",
    ))
}

pub(crate) fn parse(url: &str) -> Result<DocUrl, JsValue> {
    url.parse().map_err(|e| engine_error(&e))
}

/// The `maxUnsavedBytes` option: a positive whole number, or none.
fn max_unsaved_bytes(options: &JsValue) -> Option<usize> {
    js_sys::Reflect::get(options, &"maxUnsavedBytes".into())
        .ok()?
        .as_f64()
        .filter(|v| v.is_finite() && *v >= 1.0)
        .map(|v| v.min(1e12) as usize)
}

impl Core {
    /// Right after a local change: the patches since the last value,
    /// change or `changed` event, or `null` when only local changes
    /// happened (the caller applies its own ops).
    pub(crate) fn local_patches(&self, doc: &syncline_core::DocId) -> Result<JsValue, JsValue> {
        let patches = self
            .host
            .borrow_mut()
            .engine
            .patches_after_local_change(doc)
            .map_err(|e| engine_error(&e))?;
        match patches {
            Some(patches) => to_js(&to_js_patches(patches)),
            None => Ok(JsValue::NULL),
        }
    }
}

/// A change's message and whether undo may revert it (by default, yes).
fn change_options(message: Option<String>, undoable: Option<bool>) -> ChangeOptions {
    ChangeOptions {
        message,
        undoable: undoable.unwrap_or(true),
    }
}

/// Change hashes (hex, as in `history`), or `BadHeads`.
fn parse_heads(heads: &[String]) -> Result<Vec<ChangeHash>, JsValue> {
    heads
        .iter()
        .map(|h| h.parse::<ChangeHash>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            js_error(
                SynclineErrorCode::BadHeads,
                &format!("not a change hash from history(): {e}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    // Opening a repo needs IndexedDB: the crate's unit tests run in the browser.
    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    fn code(error: &JsValue) -> Option<String> {
        js_sys::Reflect::get(error, &"code".into())
            .ok()?
            .as_string()
    }

    /// The only way into a borrowed host is a call from inside one of its
    /// own: it gets `Reentrant` and changes nothing; a close is queued.
    #[wasm_bindgen_test]
    #[allow(
        clippy::await_holding_refcell_ref,
        reason = "the test holds the borrow on purpose, as an outer call would"
    )]
    async fn a_call_into_a_borrowed_host_is_a_typed_error_and_close_is_queued() {
        let name = format!("reentrant-{}", js_sys::Math::random());
        let on_event = js_sys::Function::new_no_args("");
        let core = Core::open(name, JsValue::UNDEFINED, on_event, &[9; 32])
            .await
            .unwrap();
        let url = core.create(JsValue::UNDEFINED).unwrap();
        core.value(&url).unwrap();
        let ops = r#"[{"op":"put","obj":[],"key":"n","value":1}]"#;
        {
            let _busy = core.host.borrow_mut();
            let error = core.change(&url, ops, None, None).unwrap_err();
            assert_eq!(code(&error).as_deref(), Some("Reentrant"));
            assert_eq!(
                code(&core.status().unwrap_err()).as_deref(),
                Some("Reentrant")
            );
            assert!(core.flush().await.is_err());
            core.close(); // queued, not a panic
        }
        assert_eq!(
            core.host
                .borrow()
                .engine
                .value_json(&url.parse::<DocUrl>().unwrap().doc)
                .unwrap(),
            serde_json::json!({}),
            "the refused change did nothing"
        );
        // The queued close runs once the borrow is over.
        wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&JsValue::NULL))
            .await
            .unwrap();
        let status = core.status().unwrap();
        let connection = js_sys::Reflect::get(&status, &"connection".into()).unwrap();
        assert_eq!(connection.as_string().as_deref(), Some("offline"));
        assert!(core.host.borrow().is_closed());
    }
}
