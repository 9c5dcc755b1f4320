//! Runs the engine in the page: takes its outputs and hands each to the
//! part of the host that serves it — batches to the write-behind writer
//! ([`crate::writer`]), frames and the connection to [`crate::link`]
//! (which drives the core's connection policy), app events to
//! [`crate::events`], token requests to the app's token function — and
//! keeps one timer for the earlier of the engine's and the connection's
//! deadlines.
//!
//! Two rules keep this safe on a single thread:
//! - the app is never called while the host is borrowed: events go out
//!   from a fresh microtask, and the token function runs in a task of its
//!   own;
//! - a call from the app that finds the host borrowed (it could only come
//!   from inside one of the host's own calls) fails with the code
//!   `Reentrant` and does nothing ([`enter`]); a callback of the browser
//!   (a timer, the socket, the page) that finds it so runs a microtask
//!   later ([`run_or_queue`]). Neither ever panics.

use std::cell::RefCell;
use std::rc::Rc;

use syncline_core::{DocId, Effect, Engine, EngineError, Output, SynclineErrorCode};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::spawn_local;

use crate::convert::{status, to_js};
use crate::errors::{engine_error, js_error};
use crate::events::{Event, emit};
use crate::fast_open::FastOpen;
use crate::link::{self, Link};
use crate::platform::{Deadline, PageEvent, PageListeners, now_ms};
use crate::storage::Storage;
use crate::transport::{Token, TransportOptions};
use crate::writer::{Writer, write_loop};

pub type HostRef = Rc<RefCell<Host>>;

pub struct Host {
    pub engine: Engine,
    on_event: js_sys::Function,
    /// IndexedDB, written behind the engine.
    pub writer: Writer,
    /// The relay connection.
    pub link: Link,
    /// Documents shown from their stored value, not loaded yet.
    pub fast_open: FastOpen,
    /// Where each document's access token comes from.
    token: Token,
    /// Ticks the engine and the dialer at the earlier of their deadlines.
    timer: Deadline,
    /// A [`drain`] is queued as a microtask (see [`drain_soon`]).
    drain_queued: bool,
    page: Option<PageListeners>,
    /// The app closed the repo: no more ticks.
    closed: bool,
}

impl Host {
    /// `replica` identifies this repo instance to the relay (fresh random
    /// bytes, like the engine's seed; `seed` is the dialer's).
    pub fn new(
        mut engine: Engine,
        replica: [u8; 16],
        seed: [u8; 32],
        storage: Storage,
        relays: Vec<String>,
        on_event: js_sys::Function,
        options: TransportOptions,
    ) -> HostRef {
        engine.set_tokens_required(options.token.required());
        Rc::new(RefCell::new(Host {
            engine,
            on_event,
            writer: Writer::new(storage),
            link: Link::new(relays, replica, &options, seed),
            fast_open: FastOpen::default(),
            token: options.token,
            timer: Deadline::default(),
            drain_queued: false,
            page: None,
            closed: false,
        }))
    }

    /// Whether the app closed the repo.
    #[cfg(test)]
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The app's event callback.
    pub fn on_event(&self) -> js_sys::Function {
        self.on_event.clone()
    }

    /// `{ unsaved, pending, lastError? }` of one document.
    pub fn doc_status_js(&self, doc: &DocId) -> Result<JsValue, JsValue> {
        let status = match (
            self.engine.doc_status(doc),
            self.fast_open.kept_entries(doc),
        ) {
            (Some(status), _) => status,
            // Not loaded yet: its kept entries are its outbox, durable.
            (None, Some(kept)) => syncline_core::DocStatus {
                unsaved: 0,
                pending: kept,
                last_error: None,
            },
            (None, None) => return Err(engine_error(&EngineError::DocNotFound(*doc))),
        };
        to_js(&crate::convert::doc_status(status))
    }

    pub fn status_js(&self) -> Result<JsValue, JsValue> {
        let mut engine = self.engine.status();
        // A deferred document's kept entries are its outbox (compaction
        // keeps only those), still sealed: counted until it loads.
        engine.pending += self.fast_open.kept_total();
        to_js(&status(
            engine,
            link::state(self),
            self.link.dialer.attempt(),
            self.link.last_error().as_ref(),
            self.link.buffered(),
        ))
    }

    /// Hands one engine output to the part of the host that serves it.
    fn output(&mut self, output: Output, events: &mut Vec<Event>, tokens: &mut Vec<DocId>) {
        let effect = match output {
            Output::Effect(effect) => effect,
            Output::Broadcast(bytes) => return events.push(Event::Broadcast(bytes)),
            Output::Presence { doc, peer, state } => {
                let state = Some(state);
                return events.push(Event::Presence { doc, peer, state });
            }
            Output::PresenceGone { doc, peer } => {
                let state = None;
                return events.push(Event::Presence { doc, peer, state });
            }
            Output::TokenWanted { doc } => return tokens.push(doc),
            Output::Message { .. } | Output::Request { .. } | Output::Reply { .. } => {
                return events.push(Event::Messaging(output));
            }
        };
        match effect {
            Effect::Persist(batch) => self.writer.queue(batch),
            Effect::Send(frame) => self.link.send(frame),
            Effect::DocChanged(doc) => events.push(Event::Changed(doc)),
            Effect::CaughtUp(doc) => events.push(Event::CaughtUp(doc)),
            Effect::StatusChanged => events.push(Event::Status),
            Effect::Disconnect => self.link.dialer.engine_gave_up(now_ms()),
            Effect::Error(e) => {
                // A final refusal stops the dialer (it says which are).
                self.link.dialer.engine_error(&e);
                let doc = match &e {
                    EngineError::Access { doc, .. } => Some(*doc),
                    _ => None,
                };
                events.push(Event::Error {
                    code: e.code(),
                    message: e.to_string(),
                    doc,
                })
            }
        }
    }

    /// Sets the one timer for the earlier of the engine's and the
    /// dialer's deadlines.
    fn schedule(&mut self, host: &HostRef) {
        let engine = self.engine.next_deadline();
        let dialer = self.link.dialer.next_deadline();
        let at = engine
            .into_iter()
            .chain(dialer)
            .min()
            .filter(|_| !self.closed);
        let weak = Rc::downgrade(host);
        self.timer.set(at, move || {
            let Some(host) = weak.upgrade() else { return };
            run_or_queue(&host, |host| {
                {
                    let mut h = host.borrow_mut();
                    h.timer.fired();
                    let now = now_ms();
                    h.engine.tick(now);
                    h.link.dialer.tick(now);
                }
                drain(host);
            });
        });
    }
}

/// For calls from the app: fails with `Reentrant` (doing nothing) if the
/// host is borrowed, which can only be a call from inside one of its own.
pub fn enter(host: &HostRef) -> Result<(), JsValue> {
    match host.try_borrow_mut() {
        Ok(_) => Ok(()),
        Err(_) => Err(js_error(
            SynclineErrorCode::Reentrant,
            "this repo was called from inside one of its own calls (an app callback it was running); nothing was done: call it again after that callback returns (e.g. from a microtask)",
        )),
    }
}

/// For callbacks of the browser (timers, the socket, the page): runs
/// `f` now, or a microtask later should the host be borrowed.
pub fn run_or_queue(host: &HostRef, f: impl FnOnce(&HostRef) + 'static) {
    if host.try_borrow_mut().is_ok() {
        f(host);
    } else {
        let host = host.clone();
        spawn_local(async move { run_or_queue(&host, f) });
    }
}

/// Drains once the current task's synchronous code is done (a microtask):
/// a burst of `change()` calls then becomes one log entry and one
/// IndexedDB record, not one each (the engine logs local changes when its
/// outputs are taken).
pub fn drain_soon(host: &HostRef) {
    let mut h = host.borrow_mut();
    if h.drain_queued {
        return;
    }
    h.drain_queued = true;
    let host = host.clone();
    spawn_local(async move {
        run_or_queue(&host, |host| {
            host.borrow_mut().drain_queued = false;
            drain(host);
        });
    });
}

/// Processes every output of the engine and every action of the dialer
/// since the last call, then sets the timer.
pub fn drain(host: &HostRef) {
    let mut events = Vec::new();
    let mut tokens = Vec::new();
    let start_writer = {
        let mut h = host.borrow_mut();
        loop {
            let outputs = h.engine.take_outputs();
            let actions = h.link.dialer.take_actions();
            if outputs.is_empty() && actions.is_empty() {
                break;
            }
            for output in outputs {
                h.output(output, &mut events, &mut tokens);
            }
            for action in actions {
                link::perform(&mut h, host, action, &mut events);
            }
        }
        h.schedule(host);
        h.writer.needs_loop()
    };
    link::pump(host);
    // The page hears first: the writer lets the page's microtasks run
    // before it starts.
    emit(host, events);
    if start_writer {
        spawn_local(write_loop(host.clone()));
    }
    for doc in tokens {
        fetch_token(host, doc);
    }
}

/// Gets `doc`'s token in a task of its own (the app's function may await
/// a server, and is never called under a borrow), then hands it to the
/// engine. The engine ignores an answer it no longer waits for.
fn fetch_token(host: &HostRef, doc: DocId) {
    let token = host.borrow().token.clone();
    let weak = Rc::downgrade(host);
    spawn_local(async move {
        // The document's URL without its key: the key never goes to the
        // app's token service.
        let answer = token.fetch(&format!("syncline:{doc}")).await;
        let Some(host) = weak.upgrade() else { return };
        run_or_queue(&host, move |host| {
            {
                let mut h = host.borrow_mut();
                match answer {
                    Ok(token) => h.engine.token_ready(doc, token, now_ms()),
                    Err(why) => h.engine.token_failed(doc, why, now_ms()),
                }
            }
            drain(host);
        });
    });
}

/// Tells the app about problems found outside any call (e.g. corrupt
/// records skipped while reading a document's log).
pub fn report(host: &HostRef, problems: Vec<EngineError>) {
    let events = problems
        .into_iter()
        .map(|e| Event::Error {
            code: e.code(),
            message: e.to_string(),
            doc: None,
        })
        .collect();
    emit(host, events);
}

/// Tells the app the status changed (e.g. a deferred document's outbox is
/// now counted exactly).
pub fn status_changed(host: &HostRef) {
    emit(host, vec![Event::Status]);
}

/// Starts the repo's connection: listens to the page's `online`,
/// `offline` and `visibilitychange` events and makes the first attempt.
pub fn start(host: &HostRef) {
    let weak = Rc::downgrade(host);
    let listeners = PageListeners::install(move |event| {
        let Some(host) = weak.upgrade() else { return };
        run_or_queue(&host, move |host| page_event(host, event));
    });
    {
        let mut h = host.borrow_mut();
        h.page = Some(listeners);
        h.link.dialer.start(now_ms());
    }
    drain(host);
}

/// A page event heard by a tab rather than by this engine (worker mode).
pub fn page_event(host: &HostRef, event: PageEvent) {
    link::page_event(&mut host.borrow_mut(), event);
    drain(host);
}

/// Takes the repo offline (`online == false`: closes the socket, no
/// retries, page events ignored) or back online (connects at once). Local
/// changes go on being saved either way and are pushed once back.
pub fn set_online(host: &HostRef, online: bool) {
    link::set_online(&mut host.borrow_mut(), online);
    drain(host);
}

/// Stops reconnecting and closes the socket. Pending writes still finish.
pub fn close(host: &HostRef) {
    {
        let mut h = host.borrow_mut();
        h.closed = true;
        h.link.dialer.stop();
        h.page = None;
        h.fast_open.clear();
    }
    drain(host);
}
