//! Syncline in the browser.
//!
//! A thin layer over [`syncline_core::Engine`]: it owns no protocol logic,
//! only the browser's side of the effects the engine asks for.
//!
//! - [`api`]: the one exported class, `Core`, that the `syncline` npm
//!   package drives (JS values in, JS values out).
//! - [`host`]: runs the engine — hands each of its outputs to the part
//!   that serves it and keeps one timer for the engine's and the
//!   connection's deadlines; never calls the app while borrowed, and a
//!   re-entrant call gets the typed error `Reentrant`, never a panic.
//! - [`link`]: drives the connection with the core's connection policy
//!   (`syncline_core::Dialer`): sockets, pings, page events.
//! - [`writer`]: write-behind storage: batches pile up while one IndexedDB
//!   transaction is in flight; `flush()` waits for the covering one.
//! - [`fast_open`]: documents shown from their stored value before their
//!   CRDT loads.
//! - [`events`]: the app's events, delivered from a fresh microtask.
//! - [`platform`]: the clock, randomness, timers and the page's events.
//! - [`storage`]: the event log in IndexedDB; all writes of a tick in one
//!   transaction.
//! - [`transport`]: the WebSocket and the app's transport options.
//! - [`send_queue`]: the bounded buffer between the engine and the socket.
//! - [`inspect`]: what the devtools read: a bounded record of frames
//!   (outlines and sizes, never bytes), the dial state, a document's log
//!   and snapshot figures.
//! - [`crash`]: a panic, should one ever happen, reaches every open repo.
//! - [`messages`]: ephemeral messages and requests (`Core.sendMessage`,
//!   `request`, `serve`, `reply`).
//! - [`portable`]: `Core.exportDoc` and `Core.importDoc` (standard
//!   Automerge bytes out and in).
//! - [`schema`]: `Core.migrate` (one deterministic schema migration step).
//! - [`patches`]: Automerge patches in the shape the npm layer applies.
//! - [`convert`] and [`errors`]: JS ↔ Rust values, and errors as JS `Error`s
//!   with a `code`.

pub mod api;
mod convert;
mod crash;
mod editing;
mod errors;
mod events;
mod fast_open;
mod host;
mod inspect;
mod link;
mod messages;
mod patches;
mod platform;
mod portable;
mod schema;
mod send_queue;
mod storage;
mod transport;
mod writer;

pub use api::Core;
