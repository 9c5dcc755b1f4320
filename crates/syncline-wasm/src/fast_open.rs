//! Fast open: showing a document before its CRDT is loaded.
//!
//! Loading a big Automerge document is most of a cold open (the
//! automerge-paper document: ~470 ms of ~540). Compaction stores the
//! document's value beside its snapshot (`syncline_core::store::ValueRecord`,
//! same batch). At [`crate::Core::open`], a document whose log has nothing
//! newer than its snapshot (`syncline_core::store::fast_values`) is not
//! loaded into the engine: it is *deferred*. Only its document, snapshot
//! and value records are decrypted; its entries (the outbox, usually) stay
//! sealed until it loads. `Core.value` of a deferred document returns the
//! stored value (`JSON.parse` of the text the engine's own serializer
//! wrote: the same plain objects a full load gives).
//!
//! A deferred document is loaded (the normal path: [`Engine::absorb`], as for
//! a document another tab created) —
//! - in the background, one document per task: starting one animation
//!   frame after its value was handed out (so the page can paint it
//!   first), and at the latest [`BACKGROUND_LOAD_MS`] after the open (so the
//!   outbox of documents nobody opens is still pushed and they still sync);
//! - synchronously, by any call that needs the CRDT: `change` (so a change
//!   made before the load is applied at once, in order, and durable by
//!   `flush()` as always: it simply waits for the load, like any change of a
//!   document being loaded the old way), `history`, `heads`, presence,
//!   delete; and every deferred document before another tab's message is
//!   applied (the engine ignores messages for documents it lacks).
//!
//! Once loaded, the document's patch stream restarts there: later patches
//! are relative to the value handed out, which is the loaded value. The
//! heads of that value are kept ([`loaded_heads`]): a worker that handed
//! the value to a tab before the load applies the tab's early changes at
//! them, even when another tab's change was applied in the same call that
//! loaded the document.
//!
//! The host owns one [`FastOpen`]: the deferred documents, the timer of
//! their background loads, and how many loaded so far.

use std::collections::BTreeMap;

use automerge::ChangeHash;
use gloo_timers::callback::Timeout;
use syncline_core::store::{FastValue, fast_values};
use syncline_core::{DocId, DocUrl, EngineError, Store};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;

use crate::host::{self, HostRef};
use crate::platform::now_ms;
use crate::storage::Storage;

/// Deferred documents nobody opened load from this long after the open.
pub const BACKGROUND_LOAD_MS: u32 = 1_000;

/// A document shown from its stored value, its CRDT not loaded yet.
pub struct Deferred {
    pub url: DocUrl,
    /// The value as JSON text.
    json: String,
    /// Its document, snapshot and value records, decrypted.
    records: Vec<(Store, String, Vec<u8>)>,
    /// Its entries, still sealed.
    sealed_entries: Vec<(Store, String, Vec<u8>)>,
    /// Its value was handed out: it loads first.
    shown: bool,
}

impl Deferred {
    /// Its entries (all covered by the snapshot: the outbox, and held
    /// deltas of others not yet confirmed).
    pub fn kept_entries(&self) -> usize {
        self.sealed_entries.len()
    }
}

/// The documents shown from their stored value, not loaded into the
/// engine yet, and their loading.
#[derive(Default)]
pub struct FastOpen {
    deferred: BTreeMap<DocId, Deferred>,
    /// The next background load of a deferred document.
    loader: Option<Timeout>,
    /// Deferred documents loaded so far (observable by tests).
    loads: u32,
    /// The heads each shown document had when it loaded: those of the value
    /// handed out. One entry per document shown, dropped with the repo.
    loaded_heads: BTreeMap<DocId, Vec<ChangeHash>>,
}

impl FastOpen {
    pub fn new(deferred: BTreeMap<DocId, Deferred>) -> FastOpen {
        FastOpen {
            deferred,
            ..FastOpen::default()
        }
    }

    /// `doc`'s kept entries, if it is deferred (see [`Deferred::kept_entries`]).
    pub fn kept_entries(&self, doc: &DocId) -> Option<usize> {
        self.deferred.get(doc).map(Deferred::kept_entries)
    }

    /// The kept entries of every deferred document: their outbox, still
    /// sealed, counted as pending until they load.
    pub fn kept_total(&self) -> usize {
        self.deferred.values().map(Deferred::kept_entries).sum()
    }

    /// Deferred documents loaded so far.
    pub fn loads(&self) -> u32 {
        self.loads
    }

    /// The repo closed: deferred documents stay as they are on disk and
    /// load next time.
    pub fn clear(&mut self) {
        self.loader = None;
        self.deferred.clear();
        self.loaded_heads.clear();
    }

    /// The heads of the value `doc` was shown with, once it has loaded
    /// (`None`: never shown from its stored value, or not loaded yet).
    pub fn loaded_heads(&self, doc: &DocId) -> Option<&[ChangeHash]> {
        self.loaded_heads.get(doc).map(Vec::as_slice)
    }
}

/// What [`split`] leaves for the engine to load now.
pub struct Split {
    pub records: Vec<(Store, String, Vec<u8>)>,
    pub problems: Vec<EngineError>,
    pub deferred: BTreeMap<DocId, Deferred>,
}

/// The document a record belongs to, if any.
fn doc_of(store: Store, key: &str) -> Option<DocId> {
    match store {
        Store::Entries => key.split_once('/')?.0.parse().ok(),
        Store::Docs | Store::Snapshots | Store::Values => key.parse().ok(),
        Store::Meta => None,
    }
}

/// Sorts every sealed record of the log into what loads now (decrypted)
/// and the deferred documents.
pub fn split(storage: &Storage, sealed: Vec<(Store, String, Vec<u8>)>) -> Split {
    let (entries, others): (Vec<_>, Vec<_>) = sealed
        .into_iter()
        .partition(|(store, _, _)| *store == Store::Entries);
    let (others, mut problems) = storage.open_records(others);
    let fast = fast_values(&others, entries.iter().map(|(_, key, _)| key.as_str()));
    let mut deferred: BTreeMap<DocId, Deferred> = fast
        .into_iter()
        .map(|(doc, FastValue { url, json })| {
            let deferred = Deferred {
                url,
                json,
                records: Vec::new(),
                sealed_entries: Vec::new(),
                shown: false,
            };
            (doc, deferred)
        })
        .collect();
    let mut records = Vec::with_capacity(others.len());
    for record in others {
        match doc_of(record.0, &record.1).and_then(|doc| deferred.get_mut(&doc)) {
            Some(d) => d.records.push(record),
            None => records.push(record),
        }
    }
    let mut now = Vec::new();
    for record in entries {
        match doc_of(record.0, &record.1).and_then(|doc| deferred.get_mut(&doc)) {
            Some(d) => d.sealed_entries.push(record),
            None => now.push(record),
        }
    }
    let (opened, entry_problems) = storage.open_records(now);
    records.extend(opened);
    problems.extend(entry_problems);
    Split {
        records,
        problems,
        deferred,
    }
}

/// The stored value of a deferred document, and schedules its load for
/// after the next frame. `None`: not deferred (any more): the engine has
/// the value.
pub fn value(host: &HostRef, doc: &DocId) -> Option<wasm_bindgen::JsValue> {
    let json = {
        let mut h = host.borrow_mut();
        let deferred = h.fast_open.deferred.get_mut(doc)?;
        deferred.shown = true;
        deferred.json.clone()
    };
    match js_sys::JSON::parse(&json) {
        Ok(value) => {
            load_after_paint(host);
            Some(value)
        }
        // Not JSON after all (it was sealed, so it was written so): load.
        Err(_) => {
            ensure_loaded(host, doc);
            None
        }
    }
}

/// Whether `doc` is deferred with this URL's key (`None`: not deferred).
pub fn matches(host: &HostRef, url: &DocUrl) -> Option<bool> {
    host.borrow()
        .fast_open
        .deferred
        .get(&url.doc)
        .map(|d| d.url == *url)
}

/// Loads `doc` now if it is deferred. Never call it with the host borrowed.
pub fn ensure_loaded(host: &HostRef, doc: &DocId) {
    let Some(deferred) = host.borrow_mut().fast_open.deferred.remove(doc) else {
        return;
    };
    let shown = deferred.shown;
    let storage = host.borrow().writer.storage();
    let (entries, mut problems) = storage.open_records(deferred.sealed_entries);
    let mut records = deferred.records;
    records.extend(entries);
    {
        let mut h = host.borrow_mut();
        problems.extend(h.engine.absorb(records, now_ms()));
        // The page's value is the stored one, i.e. the loaded one: later
        // patches are relative to it.
        let _ = h.engine.restart_patches(doc);
        if shown && let Ok(heads) = h.engine.shown_heads(doc) {
            h.fast_open.loaded_heads.insert(*doc, heads);
        }
        h.fast_open.loads += 1;
        if h.fast_open.deferred.is_empty() {
            h.fast_open.loader = None;
        }
    }
    host::report(host, problems);
    host::drain(host);
    host::status_changed(host);
}

/// Loads every deferred document now.
pub fn ensure_all_loaded(host: &HostRef) {
    loop {
        let next = host.borrow().fast_open.deferred.keys().next().copied();
        match next {
            Some(doc) => ensure_loaded(host, &doc),
            None => return,
        }
    }
}

/// Starts the background loads in `ms`, unless they are due sooner.
pub fn load_in(host: &HostRef, ms: u32) {
    let weak = std::rc::Rc::downgrade(host);
    let mut h = host.borrow_mut();
    if h.fast_open.deferred.is_empty() || (ms > 0 && h.fast_open.loader.is_some()) {
        return;
    }
    h.fast_open.loader = Some(Timeout::new(ms, move || {
        if let Some(host) = weak.upgrade() {
            host::run_or_queue(&host, |host| {
                host.borrow_mut().fast_open.loader = None;
                load_next(host);
            });
        }
    }));
}

/// One document per task, those already shown first.
fn load_next(host: &HostRef) {
    let next = {
        let h = host.borrow();
        h.fast_open
            .deferred
            .iter()
            .find(|(_, d)| d.shown)
            .or_else(|| h.fast_open.deferred.iter().next())
            .map(|(doc, _)| *doc)
    };
    if let Some(doc) = next {
        ensure_loaded(host, &doc);
        load_in(host, 0);
    }
}

/// After the next animation frame (the page paints the value first), or
/// at once where there are no frames (no window).
fn load_after_paint(host: &HostRef) {
    let Some(window) = web_sys::window() else {
        load_in(host, 0);
        return;
    };
    let weak = std::rc::Rc::downgrade(host);
    let callback = Closure::once_into_js(move || {
        if let Some(host) = weak.upgrade() {
            host::run_or_queue(&host, |host| load_in(host, 0));
        }
    });
    // A hidden page runs no frames: the background timer still loads it.
    let _ = window.request_animation_frame(callback.unchecked_ref());
}
