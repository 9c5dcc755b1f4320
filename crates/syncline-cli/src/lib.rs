//! Syncline's native client: the sans-IO engine of `syncline-core` on
//! tokio, with a file-backed store, and the `syncline` command line.
//!
//! * [`store::FileStore`] keeps a replica's records in an append-only,
//!   checksummed, `fsync`ed log in a state directory; a batch is all there
//!   after a crash or not at all.
//! * [`client::Client`] drives an [`syncline_core::Engine`]: it persists its
//!   batches, speaks to the relay over a reconnecting WebSocket
//!   (tokio-tungstenite) and offers async waits — caught up, acked by the
//!   relay — and a stream of change events.
//! * [`messages`]: ephemeral JSON messages and requests between the
//!   replicas online on a document (`broadcast`, `request`, `serve`).
//! * [`pointer`] turns JSON pointers (RFC 6901) into engine ops.
//! * [`commands`] are the `syncline` subcommands (`create`, `get`, `set`,
//!   `push`, `watch`); `main.rs` only parses arguments.
//!
//! ```no_run
//! # async fn demo() -> Result<(), syncline_cli::client::ClientError> {
//! use std::time::Duration;
//! use syncline_cli::client::{Client, ClientConfig, Tokens};
//! use syncline_cli::store::FileStore;
//!
//! let store = FileStore::open("./replica")?;
//! let config = ClientConfig { relay: "ws://127.0.0.1:8787".into(), tokens: Tokens::None };
//! let client = Client::start(store, config)?;
//! let url = client.create_doc(&serde_json::json!({"items": []}))?;
//! client.wait_synced(Duration::from_secs(10)).await?; // the relay has it on disk
//! println!("{url}");
//! client.close().await;
//! # Ok(()) }
//! ```

pub mod client;
pub mod commands;
mod connection;
pub mod messages;
pub mod pointer;
pub mod store;

pub use client::{Client, ClientConfig, ClientError, Event, TokenProvider, Tokens};
pub use store::{FileStore, StoreError};
