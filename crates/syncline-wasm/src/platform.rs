//! What the host needs from the browser besides storage and the socket:
//! the clock, randomness, timers, and the page's `online`, `offline` and
//! `visibilitychange` events.

use gloo_timers::callback::Timeout;
use js_sys::Reflect;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::Event;

use crate::errors::NoRandomness;

/// Milliseconds since the epoch: the clock the engine and the dialer run on.
pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// Fresh random bytes from the browser's CSPRNG (getrandom's `wasm_js`
/// backend: `crypto.getRandomValues`). A failure is an error, never bytes
/// made up in their place: they become keys and nonces.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], NoRandomness> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| NoRandomness(e.to_string()))?;
    Ok(bytes)
}

/// One timer set for a deadline (ms since the epoch): setting it again
/// replaces it, unless it is already set for that time.
#[derive(Default)]
pub struct Deadline {
    armed: Option<(u64, Timeout)>,
}

impl Deadline {
    /// Calls `fire` at `at` (at once if it has passed); `None` disarms.
    pub fn set(&mut self, at: Option<u64>, fire: impl FnOnce() + 'static) {
        match at {
            None => self.armed = None,
            Some(at) if self.armed.as_ref().is_some_and(|(t, _)| *t == at) => {}
            Some(at) => {
                let wait = at.saturating_sub(now_ms()).min(u64::from(u32::MAX));
                self.armed = Some((at, Timeout::new(wait as u32, fire)));
            }
        }
    }

    /// Forgets the timer that just fired, so the next `set` arms anew.
    pub fn fired(&mut self) {
        self.armed = None;
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
