//! Syncline's engine, sans-IO.
//!
//! The [`Engine`] holds a replica's documents (each an Automerge document),
//! its outbox of local deltas the relay has not acknowledged, and the state
//! of the sync session with the relay. It never awaits, sleeps, opens a
//! socket or touches storage: the host calls it with inputs — a local change,
//! a connection opened or closed, a frame received — and then drains the
//! [`Effect`]s it asks for — batches to persist atomically, frames to send,
//! documents that changed. Time and randomness come in as arguments.
//!
//! The same engine runs in the browser (the `syncline-wasm` crate supplies
//! IndexedDB and a WebSocket) and in tests, where a simulation wires many
//! engines to a model relay with lossy links.
//!
//! ```
//! use syncline_core::{Engine, Effect, MemoryStore};
//!
//! let mut engine = Engine::new([1; 32]); // seed: fresh random bytes in real use
//! let url = engine.create_doc(&serde_json::json!({"items": []}), 0).unwrap();
//! let mut store = MemoryStore::default();
//! for effect in engine.take_effects() {
//!     if let Effect::Persist(batch) = effect {
//!         store.apply(&batch);
//!         engine.persisted(batch.id, 0);
//!     }
//! }
//! // A restarted replica loads the same document from its log.
//! let (reloaded, problems) = Engine::load([2; 32], store.records());
//! assert!(problems.is_empty());
//! assert_eq!(reloaded.value_json(&url.doc).unwrap(), serde_json::json!({"items": []}));
//! ```

mod access;
mod backlog;
mod codes;
mod compaction;
mod deadline;
pub mod delta;
pub mod dialer;
mod doc_url;
mod editing;
mod engine;
mod error;
mod history;
mod inspect;
mod live;
mod log;
pub mod messages;
pub mod ops;
mod outbox;
mod portable;
mod presence;
mod schema;
pub mod seal;
pub mod store;
mod sync;
mod tabs;
mod undo;

pub use access::{AccessError, DocStatus, TOKEN_RETRY_BASE_MS, TOKEN_RETRY_CAP_MS};
pub use automerge::ChangeHash;
pub use backlog::DEFAULT_BACKLOG_LIMIT;
pub use codes::SynclineErrorCode;
pub use compaction::CompactionPolicy;
pub use dialer::{DialAction, DialError, DialState, Dialer, DialerConfig};
pub use doc_url::DocUrl;
pub use editing::TextMark;
pub use engine::{ChangeOptions, Effect, Engine, Output, SessionState, Status};
pub use error::EngineError;
pub use history::HistoryEntry;
pub use inspect::DocInspection;
pub use messages::{RequestFailure, RequestId};
pub use ops::{Expand, Op};
pub use presence::{PRESENCE_REFRESH_MS, PRESENCE_TTL_MS};
pub use schema::SCHEMA_KEY;
pub use seal::DocKey;
pub use store::{Batch, MemoryStore, Store};
pub use sync::{HANDSHAKE_TIMEOUT_MS, RESEND_AFTER_MS, RESYNC_IDLE_MS};
pub use syncline_protocol::{DeltaId, DocId};
pub use undo::{DEFAULT_CAPTURE_MS, MAX_STEPS};
