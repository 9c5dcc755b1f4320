//! Syncline's relay: a small server that stores and forwards sealed deltas.
//!
//! The relay never reads a document. To it, a delta is opaque bytes with a
//! content-derived id; it keeps, per document, an append-only log of them
//! with a dense sequence number, and does three things over a WebSocket
//! (frames from [`syncline_protocol`]):
//!
//! * **acknowledge** a `Push` only once the deltas are durable on disk;
//! * **catch up** a `Subscribe{since}` with every stored delta after
//!   `since`, page by page;
//! * **fan out** newly stored deltas to the document's other subscribers,
//!   gap-free and in sequence order, and presence, never stored.
//!
//! Around that: client snapshots replace the deltas they cover, signed
//! per-document tokens guard documents when a secret is set ([`auth`]),
//! per-connection [`limits`] keep one client from hurting others, and
//! [`metrics`] are served on `GET /metrics`. `docs/relay.md` in the
//! repository is the operator's guide.
//!
//! How the pieces fit:
//!
//! ```text
//!  server      HTTP routes, WebSocket upgrade, static files, shutdown
//!    │
//!  connection  one task per socket; its session is the protocol state
//!    │         machine (auth, limits), free of sockets (fuzzed)
//!    │   ├── frame_queue  bounded per-connection queue of frames (slow reader → kicked)
//!    │   └── hub      who subscribes to what; live delivery; presence
//!    │
//!  store       durable per-document logs behind the `Store` trait
//!    ├── sqlite      SQLite (WAL, synchronous=FULL), group commit on a
//!    │               writer thread, which also publishes to the hub
//!    ├── postgres    one log shared by several relays (--store), group
//!    │               commit on a writer task
//!    └── memory      the same rules in memory, for tests and fuzzing
//!  bus         a cluster's NATS bus (--bus): commits to and from the other
//!              relays, ordered and gap-repaired before the hub
//! ```
//!
//! Start one with [`server::run`], or [`Relay::open`] + [`Relay::serve`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), syncline_relay::RelayError> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let config = syncline_relay::Config::new("./relay-data");
//! syncline_relay::run(listener, config, syncline_relay::shutdown_signal()).await
//! # }
//! ```

pub mod auth;
pub mod bus;
pub mod config;
mod connection;
pub mod frame_queue;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod guard;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod quota;
pub mod server;
pub mod store;
#[cfg(any(test, feature = "fuzzing", feature = "test-support"))]
pub mod test_docs;
#[cfg(feature = "test-support")]
pub mod testing;

pub use config::{Cli, Command, Config, ServeArgs, TokenArgs};
pub use connection::MAX_DELTA_BYTES;
pub use server::{Relay, RelayError, run, shutdown_signal};

/// The start of the one line the binary prints on stdout once it listens;
/// the bound address follows (`syncline-relay listening on 127.0.0.1:8787`).
pub const LISTENING_PREFIX: &str = "syncline-relay listening on ";

/// The start of the second stdout line, with `--metrics-listen`: the
/// address `/metrics` is served on follows.
pub const METRICS_PREFIX: &str = "syncline-relay metrics on ";
