//! Runs the engine in the page: turns its effects into IndexedDB writes,
//! WebSocket sends and app events.
//!
//! Two rules keep this safe on a single thread:
//! - the app's callback is never called while the engine is borrowed: events
//!   are collected under the borrow and delivered from a separate microtask;
//! - writes are write-behind: batches pile up while one IndexedDB
//!   transaction is in flight and all go into the next one, so a burst of
//!   changes costs one transaction, and `flush()` waits for the transaction
//!   that covers everything made before it was called.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use futures_channel::oneshot;
use gloo_timers::callback::Interval;
use gloo_timers::callback::Timeout;
use syncline_core::{Batch, DocId, Effect, Engine};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::spawn_local;

use crate::convert::{status, to_js};
use crate::errors::{engine_error, js_error};
use crate::storage::Storage;
use crate::transport::{Backoff, Handlers, Socket, SocketState};

pub type HostRef = Rc<RefCell<Host>>;

pub struct Host {
    pub engine: Engine,
    replica: [u8; 16],
    on_event: js_sys::Function,
    storage: Rc<Storage>,
    /// Batches not yet handed to IndexedDB.
    unwritten: Vec<Batch>,
    writer_running: bool,
    /// The last batch the engine emitted, and the last one committed.
    produced: u64,
    committed: u64,
    flush_waiters: Vec<(u64, oneshot::Sender<Result<(), JsValue>>)>,
    relay: Option<String>,
    socket: Option<Socket>,
    socket_state: SocketState,
    attempt: u32,
    backoff: Backoff,
    retry: Option<Timeout>,
    /// Drives the engine's timers (re-push, re-subscribe, handshake timeout).
    ticker: Option<Interval>,
}

/// An app-facing event, resolved to JS values only at delivery time.
enum Event {
    Changed(DocId),
    CaughtUp(DocId),
    Status,
    Error { code: &'static str, message: String },
}

impl Host {
    pub fn new(
        engine: Engine,
        storage: Storage,
        relay: Option<String>,
        on_event: js_sys::Function,
    ) -> HostRef {
        Rc::new(RefCell::new(Host {
            engine,
            replica: random_bytes(),
            on_event,
            storage: Rc::new(storage),
            unwritten: Vec::new(),
            writer_running: false,
            produced: 0,
            committed: 0,
            flush_waiters: Vec::new(),
            socket_state: if relay.is_some() {
                SocketState::Waiting
            } else {
                SocketState::NoRelay
            },
            relay,
            socket: None,
            attempt: 0,
            backoff: Backoff::default(),
            retry: None,
            ticker: None,
        }))
    }

    pub fn status_js(&self) -> Result<JsValue, JsValue> {
        to_js(&status(self.engine.status(), self.socket_state))
    }
}

/// Processes every effect the engine has asked for since the last call.
pub fn drain(host: &HostRef) {
    let mut events = Vec::new();
    let mut disconnect = false;
    let start_writer;
    {
        let mut h = host.borrow_mut();
        for effect in h.engine.take_effects() {
            match effect {
                Effect::Persist(batch) => {
                    h.produced = batch.id;
                    h.unwritten.push(batch);
                }
                Effect::Send(frame) => {
                    if let Some(socket) = &h.socket {
                        socket.send(&frame);
                    }
                }
                Effect::DocChanged(doc) => events.push(Event::Changed(doc)),
                Effect::CaughtUp(doc) => events.push(Event::CaughtUp(doc)),
                Effect::StatusChanged => events.push(Event::Status),
                Effect::Disconnect => disconnect = true,
                Effect::Error(e) => events.push(Event::Error {
                    code: e.code(),
                    message: e.to_string(),
                }),
            }
        }
        start_writer = !h.writer_running && !h.unwritten.is_empty();
        h.writer_running |= start_writer;
    }
    if start_writer {
        spawn_local(write_loop(host.clone()));
    }
    if disconnect {
        drop_connection(host);
    }
    emit(host, events);
}

/// The engine gave up on the connection: close it and retry after backoff.
fn drop_connection(host: &HostRef) {
    let socket = host.borrow_mut().socket.take();
    if let Some(socket) = socket {
        socket.close();
        host.borrow_mut().engine.disconnected();
        schedule_reconnect(host);
        drain(host);
    }
}

/// Delivers events from a fresh microtask, never under a borrow.
fn emit(host: &HostRef, mut events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    // One status event per burst is enough: it carries the latest status.
    let mut seen_status = false;
    events.retain(|e| !matches!(e, Event::Status) || !std::mem::replace(&mut seen_status, true));
    let host = host.clone();
    spawn_local(async move {
        for event in events {
            let (callback, value) = {
                let h = host.borrow();
                (h.on_event.clone(), event_to_js(&h, event))
            };
            if let Ok(value) = value {
                let _ = callback.call1(&JsValue::NULL, &value);
            }
        }
    });
}

fn event_to_js(h: &Host, event: Event) -> Result<JsValue, JsValue> {
    let fields: Vec<(&str, JsValue)> = match event {
        Event::Changed(doc) => {
            let value = h.engine.value(&doc).map_err(|e| engine_error(&e))?;
            vec![
                ("type", "changed".into()),
                ("url", doc_url(h, &doc).into()),
                ("value", to_js(&value)?),
            ]
        }
        Event::CaughtUp(doc) => vec![
            ("type", "caughtUp".into()),
            ("url", doc_url(h, &doc).into()),
        ],
        Event::Status => vec![("type", "status".into()), ("status", h.status_js()?)],
        Event::Error { code, message } => vec![
            ("type", "error".into()),
            ("error", js_error(code, &message)),
        ],
    };
    let object = js_sys::Object::new();
    for (key, value) in fields {
        js_sys::Reflect::set(&object, &key.into(), &value)?;
    }
    Ok(object.into())
}

fn doc_url(h: &Host, doc: &DocId) -> String {
    h.engine.url(doc).map(|u| u.to_string()).unwrap_or_default()
}

/// Writes batches until none are left; one IndexedDB transaction per round.
/// After each commit the engine hears which batches are durable (and pushes
/// the outbox entries they hold). A failed transaction puts its batches back
/// in front, so a later success never vouches for an earlier failure; the
/// next change retries them.
async fn write_loop(host: HostRef) {
    loop {
        let (batches, storage) = {
            let mut h = host.borrow_mut();
            if h.unwritten.is_empty() {
                h.writer_running = false;
                return;
            }
            (std::mem::take(&mut h.unwritten), h.storage.clone())
        };
        let last = batches.last().map_or(0, |b| b.id);
        let result = storage.write(&batches).await.map_err(|e| e.to_js());
        let waiters = {
            let mut h = host.borrow_mut();
            if result.is_ok() {
                h.committed = last;
                h.engine.persisted(last, now_ms());
            } else {
                let newer = std::mem::take(&mut h.unwritten);
                h.unwritten = batches;
                h.unwritten.extend(newer);
                h.writer_running = false;
            }
            let (done, waiting) = std::mem::take(&mut h.flush_waiters)
                .into_iter()
                .partition(|(target, _)| *target <= last);
            h.flush_waiters = waiting;
            done
        };
        for (_, waiter) in waiters {
            let _ = waiter.send(result.clone());
        }
        match result {
            Ok(()) => drain(&host),
            Err(error) => {
                let message = js_sys::Error::from(error)
                    .message()
                    .as_string()
                    .unwrap_or_default();
                emit(
                    &host,
                    vec![Event::Error {
                        code: "Storage",
                        message,
                    }],
                );
                return;
            }
        }
    }
}

/// Resolves once everything produced before the call is committed.
pub async fn flush(host: &HostRef) -> Result<(), JsValue> {
    let receiver = {
        let mut h = host.borrow_mut();
        if h.committed >= h.produced {
            return Ok(());
        }
        let (sender, receiver) = oneshot::channel();
        let target = h.produced;
        h.flush_waiters.push((target, sender));
        receiver
    };
    receiver.await.unwrap_or(Ok(()))
}

/// Calls the engine's `tick` every second while the repo is open.
pub fn start_ticker(host: &HostRef) {
    let weak = Rc::downgrade(host);
    let ticker = Interval::new(1_000, move || {
        if let Some(host) = weak.upgrade() {
            host.borrow_mut().engine.tick(now_ms());
            drain(&host);
        }
    });
    host.borrow_mut().ticker = Some(ticker);
}

/// Opens a socket to the relay, if there is one and the repo is not closed.
pub fn connect(host: &HostRef) {
    let url = {
        let mut h = host.borrow_mut();
        h.retry = None;
        match (&h.relay, h.socket_state) {
            (Some(url), SocketState::Waiting) => url.clone(),
            _ => return,
        }
    };
    let weak = Rc::downgrade(host);
    let handlers = Handlers {
        on_open: Box::new(with_host(&weak, |host| {
            {
                let mut h = host.borrow_mut();
                h.socket_state = SocketState::Open;
                h.attempt = 0;
                let replica = h.replica;
                h.engine.connected(replica, None, now_ms());
            }
            drain(host);
        })),
        on_message: Box::new({
            let weak = weak.clone();
            move |bytes: Vec<u8>| {
                if let Some(host) = weak.upgrade() {
                    host.borrow_mut().engine.received(&bytes, now_ms());
                    drain(&host);
                }
            }
        }),
        on_close: Box::new({
            let weak = weak.clone();
            move |_code: u16, _reason: String| {
                if let Some(host) = weak.upgrade() {
                    host.borrow_mut().engine.disconnected();
                    schedule_reconnect(&host);
                    drain(&host);
                }
            }
        }),
    };
    let socket = Socket::connect(&url, handlers);
    let mut h = host.borrow_mut();
    if let Some(old) = h.socket.take() {
        old.close();
    }
    match socket {
        Ok(socket) => {
            h.socket = Some(socket);
            h.socket_state = SocketState::Connecting;
        }
        Err(reason) => {
            h.socket_state = SocketState::Closed;
            drop(h);
            emit(
                host,
                vec![
                    Event::Error {
                        code: "BadRelayUrl",
                        message: format!("cannot connect to relay `{url}`: {reason}"),
                    },
                    Event::Status,
                ],
            );
        }
    }
}

fn with_host(weak: &Weak<RefCell<Host>>, f: impl Fn(&HostRef) + 'static) -> impl FnMut() + 'static {
    let weak = weak.clone();
    move || {
        if let Some(host) = weak.upgrade() {
            f(&host)
        }
    }
}

fn schedule_reconnect(host: &HostRef) {
    let mut h = host.borrow_mut();
    if h.socket_state == SocketState::Closed {
        return;
    }
    h.socket_state = SocketState::Waiting;
    h.attempt += 1;
    let delay = h.backoff.delay_ms(h.attempt, js_sys::Math::random());
    let weak = Rc::downgrade(host);
    h.retry = Some(Timeout::new(delay as u32, move || {
        if let Some(host) = weak.upgrade() {
            connect(&host);
            drain(&host);
        }
    }));
}

/// Stops reconnecting and closes the socket. Pending writes still finish.
pub fn close(host: &HostRef) {
    let mut h = host.borrow_mut();
    h.socket_state = SocketState::Closed;
    h.retry = None;
    h.ticker = None;
    if let Some(socket) = h.socket.take() {
        socket.close();
    }
    h.engine.disconnected();
    drop(h);
    drain(host);
}

pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// Fresh random bytes from the browser's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // getrandom's wasm_js backend uses crypto.getRandomValues, present in
    // every browser and worker; without it nothing here could work anyway.
    let _ = getrandom::fill(&mut bytes);
    bytes
}
