//! Runs the engine in the page: turns its effects into IndexedDB writes,
//! WebSocket sends and app events.
//!
//! Two rules keep this safe on a single thread:
//! - the app's callback is never called while the engine is borrowed: events
//!   are collected under the borrow and delivered from a separate microtask
//!   (and the page hears of them before a storage write they caused starts);
//! - writes are write-behind: batches pile up while one IndexedDB
//!   transaction is in flight and all go into the next one, so a burst of
//!   changes costs one transaction, and `flush()` waits for the transaction
//!   that covers everything made before it was called.
//!
//! Tokens: the engine asks for one per document ([`Output::TokenWanted`]);
//! each is fetched in its own task (the app's token function may await a
//! server) and handed back with `token_ready` or `token_failed`.
//!
//! The connection: each attempt opens a socket that must open within
//! `connectTimeoutMs`; while open a `Ping` goes out every
//! `heartbeatMs` and some frame must come back within `pongTimeoutMs`, or
//! the socket is taken for half-open and replaced. A failed attempt waits
//! a backoff delay; `online` and a visible tab retry at once. A fatal
//! `Unauthorized` or `UnsupportedVersion` from the relay stops retrying.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};

use futures_channel::oneshot;
use gloo_timers::callback::Interval;
use gloo_timers::callback::Timeout;
use syncline_core::{
    Batch, DocId, Effect, Engine, EngineError, Output, SessionState, SynclineErrorCode,
};
use syncline_protocol::{ClientFrame, ErrorCode, encode_client};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::{JsFuture, spawn_local};

use crate::convert::{status, to_js};
use crate::errors::{NoRandomness, engine_error, js_error};
use crate::fast_open::Deferred;
use crate::patches::to_js_patches;
use crate::send_queue::SendQueue;
use crate::storage::Storage;
use crate::transport::{Handlers, PageEvent, PageListeners, Socket, SocketState, TransportOptions};

pub type HostRef = Rc<RefCell<Host>>;

pub struct Host {
    pub engine: Engine,
    replica: [u8; 16],
    on_event: js_sys::Function,
    storage: Rc<Storage>,
    /// Batches not yet handed to IndexedDB.
    unwritten: Vec<Batch>,
    writer_running: bool,
    /// A [`drain`] is queued as a microtask (see [`drain_soon`]).
    drain_queued: bool,
    /// The last batch the engine emitted, and the last one committed.
    produced: u64,
    committed: u64,
    flush_waiters: Vec<(u64, oneshot::Sender<Result<(), JsValue>>)>,
    /// The relays to try, in order (several for a cluster; empty: none).
    relays: Vec<String>,
    /// The one the current or next attempt goes to.
    relay_index: usize,
    /// Attempts refused in a row (closed before opening): after one round
    /// of the list, the next waits a backoff.
    refused_in_row: usize,
    socket: Option<Socket>,
    /// Frames waiting for the socket to drain (bounded; see [`SendQueue`]).
    sends: SendQueue,
    /// Pumps `sends` again while the socket is backed up.
    pump_timer: Option<Timeout>,
    socket_state: SocketState,
    /// The current attempt's number from 1; 0 once a session is ready.
    attempt: u32,
    options: TransportOptions,
    retry: Option<Timeout>,
    /// Closes an attempt that doesn't open in time.
    connect_timer: Option<Timeout>,
    /// The next ping, or the pong deadline of the last one.
    heartbeat: Option<Timeout>,
    /// When the open socket last delivered a frame.
    last_frame_ms: u64,
    /// Bumped per attempt, so late callbacks of an old one do nothing.
    generation: u64,
    /// Why the last attempt failed or the relay refused us.
    last_error: Option<(SynclineErrorCode, String)>,
    page: Option<PageListeners>,
    /// Drives the engine's timers (re-push, re-subscribe, handshake timeout).
    ticker: Option<Interval>,
    /// Documents shown from their stored value, not loaded into the engine
    /// yet (see [`crate::fast_open`]).
    pub deferred: BTreeMap<DocId, Deferred>,
    /// The next background load of a deferred document.
    pub loader: Option<Timeout>,
    /// Deferred documents loaded so far (observable by tests).
    pub crdt_loads: u32,
}

/// An app-facing event, resolved to JS values only at delivery time.
enum Event {
    Changed(DocId),
    CaughtUp(DocId),
    Status,
    Error {
        code: SynclineErrorCode,
        message: String,
        /// The document it concerns, if one (a per-document refusal).
        doc: Option<DocId>,
    },
    /// Bytes for the other tabs (the npm layer posts them on a BroadcastChannel).
    Broadcast(Vec<u8>),
    /// A peer's presence on a doc: its state, or `None` once it is gone.
    Presence {
        doc: DocId,
        peer: [u8; 16],
        state: Option<Vec<u8>>,
    },
}

impl Host {
    /// `replica` identifies this repo instance to the relay (fresh random
    /// bytes, like the engine's seed).
    pub fn new(
        mut engine: Engine,
        replica: [u8; 16],
        storage: Storage,
        relays: Vec<String>,
        on_event: js_sys::Function,
        options: TransportOptions,
    ) -> HostRef {
        engine.set_tokens_required(options.token.required());
        Rc::new(RefCell::new(Host {
            engine,
            replica,
            on_event,
            storage: Rc::new(storage),
            unwritten: Vec::new(),
            writer_running: false,
            drain_queued: false,
            produced: 0,
            committed: 0,
            flush_waiters: Vec::new(),
            socket_state: if !relays.is_empty() {
                SocketState::Waiting
            } else {
                SocketState::NoRelay
            },
            sends: SendQueue::new(options.send_buffer_bytes),
            pump_timer: None,
            relays,
            relay_index: 0,
            refused_in_row: 0,
            socket: None,
            attempt: 0,
            options,
            retry: None,
            connect_timer: None,
            heartbeat: None,
            last_frame_ms: 0,
            generation: 0,
            last_error: None,
            page: None,
            ticker: None,
            deferred: BTreeMap::new(),
            loader: None,
            crdt_loads: 0,
        }))
    }

    /// The log, for reads outside the engine's batches.
    pub fn storage(&self) -> Rc<Storage> {
        self.storage.clone()
    }

    /// `{ unsaved, pending, lastError? }` of one document.
    pub fn doc_status_js(&self, doc: &DocId) -> Result<JsValue, JsValue> {
        let status = match (self.engine.doc_status(doc), self.deferred.get(doc)) {
            (Some(status), _) => status,
            // Not loaded yet: its kept entries are its outbox, durable.
            (None, Some(deferred)) => syncline_core::DocStatus {
                unsaved: 0,
                pending: deferred.kept_entries(),
                last_error: None,
            },
            (None, None) => return Err(engine_error(&EngineError::DocNotFound(*doc))),
        };
        to_js(&crate::convert::doc_status(status))
    }

    pub fn status_js(&self) -> Result<JsValue, JsValue> {
        let socket_backlog = self.socket.as_ref().map_or(0, Socket::buffered_amount);
        let mut engine = self.engine.status();
        // A deferred document's kept entries are its outbox (compaction
        // keeps only those), still sealed: counted until it loads.
        engine.pending += self
            .deferred
            .values()
            .map(Deferred::kept_entries)
            .sum::<usize>();
        to_js(&status(
            engine,
            self.socket_state,
            self.attempt,
            self.last_error.as_ref(),
            self.sends.bytes() + socket_backlog,
        ))
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
        host.borrow_mut().drain_queued = false;
        drain(&host);
    });
}

/// Processes every effect the engine has asked for since the last call.
pub fn drain(host: &HostRef) {
    let mut events = Vec::new();
    let mut disconnect = false;
    let mut fatal = None;
    let mut tokens_wanted = Vec::new();
    let start_writer;
    {
        let mut h = host.borrow_mut();
        for output in h.engine.take_outputs() {
            let effect = match output {
                Output::Effect(effect) => effect,
                Output::Broadcast(bytes) => {
                    events.push(Event::Broadcast(bytes));
                    continue;
                }
                Output::Presence { doc, peer, state } => {
                    events.push(Event::Presence {
                        doc,
                        peer,
                        state: Some(state),
                    });
                    continue;
                }
                Output::PresenceGone { doc, peer } => {
                    events.push(Event::Presence {
                        doc,
                        peer,
                        state: None,
                    });
                    continue;
                }
                Output::TokenWanted { doc } => {
                    tokens_wanted.push(doc);
                    continue;
                }
            };
            match effect {
                Effect::Persist(batch) => {
                    h.produced = batch.id;
                    h.unwritten.push(batch);
                }
                Effect::Send(frame) => {
                    // Pumped as it is queued, so a burst fills the socket
                    // first and only the excess waits (or is shed).
                    let h = &mut *h;
                    if let Some(socket) = &h.socket {
                        h.sends.push(frame);
                        h.sends
                            .pump(|| socket.buffered_amount(), |f| socket.send(f));
                    }
                }
                Effect::DocChanged(doc) => events.push(Event::Changed(doc)),
                Effect::CaughtUp(doc) => events.push(Event::CaughtUp(doc)),
                Effect::StatusChanged => events.push(Event::Status),
                Effect::Disconnect => disconnect = true,
                Effect::Error(e) => {
                    // Only these mean retrying would fail the same way.
                    if let EngineError::RelayRejected {
                        fatal: true,
                        code: ErrorCode::Unauthorized | ErrorCode::UnsupportedVersion,
                        ..
                    } = &e
                    {
                        fatal = Some(e.to_string());
                    }
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
        start_writer = !h.writer_running && !h.unwritten.is_empty();
        h.writer_running |= start_writer;
    }
    pump(host);
    if let Some(message) = fatal {
        // Retrying with the same token or version would fail the same way.
        end_attempt(
            host,
            Some((SynclineErrorCode::RelayRejected, message)),
            Retry::Never,
        );
        events.push(Event::Status);
    } else if disconnect {
        drop_connection(host);
    }
    // The page hears first: the writer lets the page's microtasks run
    // before it starts (see `after_page_microtasks`).
    emit(host, events);
    if start_writer {
        spawn_local(write_loop(host.clone()));
    }
    for doc in tokens_wanted {
        fetch_token(host, doc);
    }
}

/// Gets `doc`'s token in a task of its own (the app's function may await
/// a server, and is never called under a borrow), then hands it to the
/// engine. The engine ignores an answer it no longer waits for.
fn fetch_token(host: &HostRef, doc: DocId) {
    let token = host.borrow().options.token.clone();
    let weak = Rc::downgrade(host);
    spawn_local(async move {
        // The document's URL without its key: the key never goes to the
        // app's token service.
        let answer = token.fetch(&format!("syncline:{doc}")).await;
        let Some(host) = weak.upgrade() else { return };
        {
            let mut h = host.borrow_mut();
            match answer {
                Ok(token) => h.engine.token_ready(doc, token, now_ms()),
                Err(why) => h.engine.token_failed(doc, why, now_ms()),
            }
        }
        drain(&host);
    });
}

/// Moves queued frames to the socket while it has room; while it is backed
/// up, tries again shortly (incoming frames also pump, via [`drain`]).
fn pump(host: &HostRef) {
    let mut h = host.borrow_mut();
    let h = &mut *h;
    let Some(socket) = &h.socket else { return };
    let waiting = h
        .sends
        .pump(|| socket.buffered_amount(), |frame| socket.send(frame));
    if waiting && h.pump_timer.is_none() {
        let weak = Rc::downgrade(host);
        h.pump_timer = Some(Timeout::new(20, move || {
            if let Some(host) = weak.upgrade() {
                host.borrow_mut().pump_timer = None;
                pump(&host);
            }
        }));
    }
}

/// The engine gave up on the connection: close it and retry after backoff.
fn drop_connection(host: &HostRef) {
    if host.borrow().socket.is_some() {
        let retry = next_relay(&mut host.borrow_mut(), false);
        end_attempt(host, None, retry);
    }
}

/// What to do after an attempt ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Try again after the backoff delay.
    Backoff,
    /// Try the next relay of the list now (this one refused us).
    AtOnce,
    /// Stop for good (or until the app goes online again).
    Never,
}

/// Closes the current socket (if any) and tells the engine; then retries
/// as `retry` says. `error` becomes the status's `lastError`.
fn end_attempt(host: &HostRef, error: Option<(SynclineErrorCode, String)>, retry: Retry) {
    {
        let mut h = host.borrow_mut();
        h.generation += 1;
        h.connect_timer = None;
        h.heartbeat = None;
        if let Some(socket) = h.socket.take() {
            socket.close();
        }
        h.sends.clear();
        if error.is_some() {
            h.last_error = error;
        }
        if retry == Retry::Never {
            h.socket_state = SocketState::Closed;
            h.retry = None;
        }
        h.engine.disconnected();
    }
    match retry {
        Retry::Backoff => schedule_reconnect(host),
        Retry::AtOnce => {
            let mut h = host.borrow_mut();
            if h.socket_state != SocketState::Closed {
                h.socket_state = SocketState::Waiting;
                drop(h);
                connect(host);
            }
        }
        Retry::Never => {}
    }
    drain(host);
}

/// Moves on to the next relay of the list after an attempt ended;
/// `refused`: it closed before it opened. Returns how to retry: the next
/// relay at once after a refusal, until each was tried once in a row;
/// otherwise after the backoff.
fn next_relay(h: &mut Host, refused: bool) -> Retry {
    h.relay_index = (h.relay_index + 1) % h.relays.len().max(1);
    if !refused {
        h.refused_in_row = 0;
        return Retry::Backoff;
    }
    h.refused_in_row += 1;
    if h.refused_in_row < h.relays.len() {
        Retry::AtOnce
    } else {
        h.refused_in_row = 0;
        Retry::Backoff
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
                let mut h = host.borrow_mut();
                (h.on_event.clone(), event_to_js(&mut h, event))
            };
            if let Ok(value) = value {
                let _ = callback.call1(&JsValue::NULL, &value);
            }
        }
    });
}

fn event_to_js(h: &mut Host, event: Event) -> Result<JsValue, JsValue> {
    let fields: Vec<(&str, JsValue)> = match event {
        Event::Changed(doc) => {
            // Computed at delivery, so the page applies every doc's patch
            // stream in the order it was produced.
            let patches = h.engine.patches(&doc).map_err(|e| engine_error(&e))?;
            vec![
                ("type", "changed".into()),
                ("url", doc_url(h, &doc).into()),
                ("patches", to_js(&to_js_patches(patches))?),
            ]
        }
        Event::CaughtUp(doc) => vec![
            ("type", "caughtUp".into()),
            ("url", doc_url(h, &doc).into()),
        ],
        Event::Status => vec![("type", "status".into()), ("status", h.status_js()?)],
        Event::Error { code, message, doc } => {
            let mut fields = vec![
                ("type", "error".into()),
                ("error", js_error(code, &message)),
            ];
            if let Some(doc) = doc {
                fields.push(("url", doc_url(h, &doc).into()));
            }
            fields
        }
        Event::Broadcast(bytes) => vec![
            ("type", "broadcast".into()),
            ("bytes", js_sys::Uint8Array::from(bytes.as_slice()).into()),
        ],
        Event::Presence { doc, peer, state } => vec![
            ("type", "presence".into()),
            ("url", doc_url(h, &doc).into()),
            ("peer", hex(&peer).into()),
            (
                "state",
                state.map_or(JsValue::NULL, |s| {
                    js_sys::Uint8Array::from(s.as_slice()).into()
                }),
            ),
        ],
    };
    let object = js_sys::Object::new();
    for (key, value) in fields {
        js_sys::Reflect::set(&object, &key.into(), &value)?;
    }
    Ok(object.into())
}

/// Lowercase hex, for replica and actor ids.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

fn doc_url(h: &Host, doc: &DocId) -> String {
    h.engine.url(doc).map(|u| u.to_string()).unwrap_or_default()
}

/// Writes batches until none are left; one IndexedDB transaction per round.
/// After each commit the engine hears which batches are durable (and pushes
/// the outbox entries they hold). A failed transaction puts its batches back
/// in front, so a later success never vouches for an earlier failure; the
/// next change retries them.
async fn write_loop(host: HostRef) {
    after_page_microtasks().await;
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
        let outcome = storage.write(&batches).await;
        let failure = outcome.as_ref().err().map(|e| (e.code(), e.to_string()));
        let result = outcome.map_err(|e| e.to_js());
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
        match failure {
            None => drain(&host),
            Some((code, message)) => {
                let doc = None;
                emit(&host, vec![Event::Error { code, message, doc }]);
                return;
            }
        }
    }
}

/// Lets the page's microtasks queued so far run first. [`emit`] hands
/// events to the page in a microtask, and the page tells its subscribers in
/// one it queues from there; a write started in the same turn would seal
/// its records and open its transaction (about a millisecond) before any
/// subscriber sees the change. Durability moves by one microtask.
async fn after_page_microtasks() {
    let _ = JsFuture::from(js_sys::Promise::resolve(&JsValue::UNDEFINED)).await;
}

/// Resolves once everything produced before the call is committed.
pub async fn flush(host: &HostRef) -> Result<(), JsValue> {
    drain(host); // changes of this task are logged (and counted) now
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
    flush_answer(receiver.await)
}

/// What `flush()` resolves with, from its waiter's answer. A waiter dropped
/// unanswered (the repo went away first) proves nothing durable: that is
/// the error `Closed`, never success.
fn flush_answer(answer: Result<Result<(), JsValue>, oneshot::Canceled>) -> Result<(), JsValue> {
    answer.unwrap_or_else(|_| {
        Err(js_error(
            SynclineErrorCode::Closed,
            "the repo closed before these changes were known to be durable: reopen it and check",
        ))
    })
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

/// Listens to `online`, `offline` and `visibilitychange` for this repo.
pub fn watch_page(host: &HostRef) {
    let weak = Rc::downgrade(host);
    let listeners = PageListeners::install(move |event| {
        let Some(host) = weak.upgrade() else { return };
        let state = host.borrow().socket_state;
        match (event, state) {
            (PageEvent::Online | PageEvent::Visible, SocketState::Waiting) => {
                // Skip the rest of the backoff: the network may be back.
                connect(&host);
                drain(&host);
            }
            (PageEvent::Offline, SocketState::Open | SocketState::Connecting) => {
                // The socket is likely dead; say so now, not at the next
                // heartbeat. Retries go on (`offline` can be wrong).
                end_attempt(
                    &host,
                    Some((
                        SynclineErrorCode::Offline,
                        "the browser went offline".into(),
                    )),
                    Retry::Backoff,
                );
            }
            _ => {}
        }
    });
    host.borrow_mut().page = Some(listeners);
}

/// Starts an attempt: opens a socket to the relay, if there is one and the
/// repo is not closed or already connecting. (Tokens are asked for per
/// document once the relay welcomes us.)
pub fn connect(host: &HostRef) {
    let (url, generation) = {
        let mut h = host.borrow_mut();
        let url = match (h.relays.get(h.relay_index), h.socket_state) {
            (Some(url), SocketState::Waiting) => url.clone(),
            _ => return,
        };
        h.retry = None;
        h.attempt = h.attempt.saturating_add(1);
        h.generation += 1;
        h.socket_state = SocketState::Connecting;
        (url, h.generation)
    };
    emit(host, vec![Event::Status]);
    open_socket(host, &url, generation);
}

fn open_socket(host: &HostRef, url: &str, generation: u64) {
    let weak = Rc::downgrade(host);
    let current = move |weak: &Weak<RefCell<Host>>| {
        weak.upgrade()
            .filter(|host| host.borrow().generation == generation)
    };
    let handlers = Handlers {
        on_open: Box::new({
            let weak = weak.clone();
            move || {
                let Some(host) = current(&weak) else { return };
                {
                    let mut h = host.borrow_mut();
                    h.connect_timer = None;
                    h.socket_state = SocketState::Open;
                    h.refused_in_row = 0;
                    h.last_frame_ms = now_ms();
                    let replica = h.replica;
                    h.engine.connected(replica, None, now_ms());
                }
                schedule_ping(&host, generation);
                drain(&host);
            }
        }),
        on_message: Box::new({
            let weak = weak.clone();
            move |bytes: Vec<u8>| {
                let Some(host) = current(&weak) else { return };
                {
                    let mut h = host.borrow_mut();
                    h.last_frame_ms = now_ms();
                    h.engine.received(&bytes, now_ms());
                    if h.engine.status().session == SessionState::Ready {
                        h.attempt = 0;
                        h.last_error = None;
                    }
                }
                drain(&host);
            }
        }),
        on_close: Box::new({
            let weak = weak.clone();
            move |_code: u16, _reason: String| {
                if let Some(host) = current(&weak) {
                    let retry = {
                        let mut h = host.borrow_mut();
                        let refused = h.socket_state == SocketState::Connecting;
                        next_relay(&mut h, refused)
                    };
                    end_attempt(&host, None, retry);
                }
            }
        }),
    };
    let socket = Socket::connect(url, handlers);
    let mut h = host.borrow_mut();
    if let Some(old) = h.socket.take() {
        old.close();
    }
    match socket {
        Ok(socket) => {
            h.socket = Some(socket);
            let weak = Rc::downgrade(host);
            let ms = h.options.connect_timeout_ms;
            h.connect_timer = Some(Timeout::new(ms, move || {
                if let Some(host) = weak.upgrade() {
                    let stale = {
                        let h = host.borrow();
                        h.generation != generation || h.socket_state != SocketState::Connecting
                    };
                    if !stale {
                        let message = format!("the relay did not answer within {ms} ms");
                        let retry = next_relay(&mut host.borrow_mut(), false);
                        end_attempt(
                            &host,
                            Some((SynclineErrorCode::ConnectTimeout, message)),
                            retry,
                        );
                    }
                }
            }));
        }
        Err(reason) => {
            h.socket_state = SocketState::Closed;
            let message = format!("cannot connect to relay `{url}`: {reason}");
            h.last_error = Some((SynclineErrorCode::BadRelayUrl, message.clone()));
            drop(h);
            emit(
                host,
                vec![
                    Event::Error {
                        code: SynclineErrorCode::BadRelayUrl,
                        message,
                        doc: None,
                    },
                    Event::Status,
                ],
            );
        }
    }
}

/// After `heartbeatMs`, sends a `Ping`; then, after `pongTimeoutMs`, checks
/// that some frame arrived since, and either pings again or gives up on the
/// socket as half-open.
fn schedule_ping(host: &HostRef, generation: u64) {
    let weak = Rc::downgrade(host);
    let mut h = host.borrow_mut();
    let wait = h.options.heartbeat_ms;
    h.heartbeat = Some(Timeout::new(wait, move || {
        let Some(host) = weak.upgrade() else { return };
        let mut h = host.borrow_mut();
        if h.generation != generation {
            return;
        }
        // Only told apart from earlier pings: it need not be random.
        let nonce = now_ms();
        if let Some(socket) = &h.socket {
            socket.send(&encode_client(&ClientFrame::Ping { nonce }));
        }
        let sent_at = now_ms();
        let deadline = h.options.pong_timeout_ms;
        let weak = Rc::downgrade(&host);
        h.heartbeat = Some(Timeout::new(deadline, move || {
            let Some(host) = weak.upgrade() else { return };
            let (current, answered) = {
                let h = host.borrow();
                (h.generation == generation, h.last_frame_ms >= sent_at)
            };
            if current && answered {
                schedule_ping(&host, generation);
            } else if current {
                let message = format!("no answer to a ping within {deadline} ms");
                let retry = next_relay(&mut host.borrow_mut(), false);
                end_attempt(
                    &host,
                    Some((SynclineErrorCode::HeartbeatTimeout, message)),
                    retry,
                );
            }
        }));
    }));
}

fn schedule_reconnect(host: &HostRef) {
    let mut h = host.borrow_mut();
    if h.socket_state == SocketState::Closed {
        return;
    }
    h.socket_state = SocketState::Waiting;
    let delay = h
        .options
        .backoff
        .delay_ms(h.attempt.max(1), js_sys::Math::random());
    let weak = Rc::downgrade(host);
    h.retry = Some(Timeout::new(delay as u32, move || {
        if let Some(host) = weak.upgrade() {
            connect(&host);
            drain(&host);
        }
    }));
}

/// Takes the repo offline (`online == false`: closes the socket, no
/// retries, page events ignored) or back online (connects at once). Local
/// changes go on being saved either way and are pushed once back.
pub fn set_online(host: &HostRef, online: bool) {
    let state = host.borrow().socket_state;
    match (online, state) {
        (false, SocketState::Open | SocketState::Connecting | SocketState::Waiting) => {
            end_attempt(host, None, Retry::Never);
            let mut h = host.borrow_mut();
            h.socket_state = SocketState::Paused;
            h.attempt = 0;
            drop(h);
            emit(host, vec![Event::Status]);
        }
        (true, SocketState::Paused) => {
            host.borrow_mut().socket_state = SocketState::Waiting;
            connect(host);
            drain(host);
        }
        _ => {}
    }
}

/// Stops reconnecting and closes the socket. Pending writes still finish.
pub fn close(host: &HostRef) {
    let mut h = host.borrow_mut();
    h.socket_state = SocketState::Closed;
    h.retry = None;
    h.ticker = None;
    h.connect_timer = None;
    h.heartbeat = None;
    h.page = None;
    // Deferred documents stay as they are on disk: they load next time.
    h.loader = None;
    h.deferred.clear();
    h.generation += 1;
    if let Some(socket) = h.socket.take() {
        socket.close();
    }
    h.sends.clear();
    h.engine.disconnected();
    drop(h);
    drain(host);
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn a_flush_whose_waiter_was_dropped_fails_with_closed() {
        let (sender, mut receiver) = oneshot::channel::<Result<(), JsValue>>();
        drop(sender);
        let answer = receiver.try_recv().map(|a| a.unwrap_or(Ok(())));
        let error = flush_answer(answer).expect_err("not durable");
        let code = js_sys::Reflect::get(&error, &"code".into()).unwrap();
        assert_eq!(code.as_string().as_deref(), Some("Closed"));
        assert!(flush_answer(Ok(Ok(()))).is_ok());
    }
}
