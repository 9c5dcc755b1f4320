//! What happens if the module ever panics.
//!
//! A panic in wasm is a trap: the module's memory may be mid-update and no
//! further call into it can be trusted, for any repo of the page (they all
//! share one instance). The engine is written not to panic on any input,
//! but if it ever does, the app must hear about it instead of finding a
//! page that silently stopped syncing.
//!
//! So every open repo registers its event callback here, and a panic hook
//! (installed once) calls each of them synchronously, before the trap,
//! with `{ type: "crashed", error }`. The npm layer then closes the repo
//! and fails every later call with code `Crashed`. Nothing durable is
//! lost: what was committed to IndexedDB reloads with the page.

use std::cell::RefCell;
use std::sync::Once;

use syncline_core::SynclineErrorCode;
use wasm_bindgen::JsValue;
#[cfg(feature = "test-hooks")]
use wasm_bindgen::prelude::wasm_bindgen;

use crate::errors::js_error;

thread_local! {
    /// The event callbacks of the open repos, by registration id.
    static LISTENERS: RefCell<Vec<(u64, js_sys::Function)>> = const { RefCell::new(Vec::new()) };
    static NEXT_ID: RefCell<u64> = const { RefCell::new(0) };
}

static HOOK: Once = Once::new();

/// Registers a repo's callback; keep the id to [`unregister`] it on close.
pub fn register(on_event: &js_sys::Function) -> u64 {
    HOOK.call_once(|| std::panic::set_hook(Box::new(on_panic)));
    let id = NEXT_ID.with(|n| {
        let mut n = n.borrow_mut();
        *n += 1;
        *n
    });
    LISTENERS.with(|l| l.borrow_mut().push((id, on_event.clone())));
    id
}

pub fn unregister(id: u64) {
    LISTENERS.with(|l| l.borrow_mut().retain(|(other, _)| *other != id));
}

fn on_panic(info: &std::panic::PanicHookInfo<'_>) {
    let message = format!(
        "the syncline wasm module crashed ({info}); this page's repos are closed. Reload the page: everything saved locally is intact"
    );
    web_sys::console::error_1(&message.clone().into());
    // The hook must not panic itself: take the list only if it is free.
    let listeners = LISTENERS
        .try_with(|l| l.try_borrow().map(|l| l.clone()).unwrap_or_default())
        .unwrap_or_default();
    for (_, callback) in listeners {
        let event = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&event, &"type".into(), &"crashed".into());
        let _ = js_sys::Reflect::set(
            &event,
            &"error".into(),
            &js_error(SynclineErrorCode::Crashed, &message),
        );
        let _ = callback.call1(&JsValue::NULL, &event);
    }
}

/// Panics on purpose, to test that a crash reaches every open repo. Only
/// in builds with the `test-hooks` feature (never the shipped package):
/// on a real page it would let any script close every repo.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
#[wasm_bindgen(js_name = crashForTesting)]
pub fn crash_for_testing() {
    panic!("crashForTesting was called");
}
