//! End-to-end tests of the `syncline-relay` binary over real sockets.
//!
//! Every test starts the real binary as a child process on `127.0.0.1:0`
//! with a fresh data directory, reads the address from its one stdout line,
//! and talks to it with tokio-tungstenite. Every wait is bounded by
//! [`common::TIMEOUT`]; nothing sleeps to synchronise.

mod auth;
mod bounds;
mod common;
mod errors;
mod frames;
mod fsync;
mod http;
mod limits;
mod messages;
mod persistence;
mod sync;
mod tentative;
mod tokens;
