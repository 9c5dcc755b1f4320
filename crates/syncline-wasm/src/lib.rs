//! Syncline in the browser.
//!
//! A thin layer over [`syncline_core::Engine`]: it owns no protocol logic,
//! only the browser's side of the effects the engine asks for.
//!
//! - [`api`]: the one exported class, `Core`, that the `syncline` npm
//!   package drives (JS values in, JS values out).
//! - [`host`]: runs the engine — dispatches its effects to storage, the
//!   socket and the app's event callback, and never calls the app while it
//!   holds a borrow of the engine.
//! - [`storage`]: the event log in IndexedDB; all writes of a tick in one
//!   transaction.
//! - [`transport`]: a WebSocket that reconnects with backoff and jitter.
//! - [`send_queue`]: the bounded buffer between the engine and the socket.
//! - [`crash`]: a panic, should one ever happen, reaches every open repo.
//! - [`patches`]: Automerge patches in the shape the npm layer applies.
//! - [`convert`] and [`errors`]: JS ↔ Rust values, and errors as JS `Error`s
//!   with a `code`.

pub mod api;
mod convert;
mod crash;
mod errors;
mod fast_open;
mod host;
mod patches;
mod send_queue;
mod storage;
mod transport;

pub use api::Core;
