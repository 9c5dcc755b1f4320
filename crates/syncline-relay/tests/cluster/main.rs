//! Cluster tests: several real `syncline-relay` processes sharing one real
//! PostgreSQL server (`--store`) and one real `nats-server` (`--bus`).
//!
//! Each test starts its own Postgres (data under `target/tmp/`) and NATS on
//! free ports of 127.0.0.1 ([`syncline_relay::testing::services`]) and
//! stops them when it ends; the tests take turns (one lock), so the two
//! cores are not shared by three clusters at once. Every wait is bounded.

#[allow(dead_code, unused_imports)]
#[path = "../relay/common.rs"]
mod common;
mod faults;
mod follows;
mod pusher;
mod sync;
mod tentative;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use syncline_relay::testing::RelayProcess;
use syncline_relay::testing::services::{Nats, Postgres};

static TURN: Mutex<()> = Mutex::new(());

/// Postgres, NATS and `relays` relays on them; everything stops on drop.
pub struct Cluster {
    // Dropped first: the relays, then the servers.
    pub relays: Vec<Option<RelayProcess>>,
    pub nats: Nats,
    pub postgres: Postgres,
    _turn: MutexGuard<'static, ()>,
}

impl Cluster {
    /// Starts the servers and `relays` relays **at once** (on an empty
    /// database: their migrations race, one wins). Holds the turn until
    /// dropped (a plain mutex: each test runs on its own runtime).
    pub async fn start(name: &str, relays: usize) -> Cluster {
        Cluster::start_with(name, relays, &[]).await
    }

    /// [`Cluster::start`], each relay with `extra` flags too.
    #[allow(clippy::await_holding_lock)]
    pub async fn start_with(name: &str, relays: usize, extra: &[&str]) -> Cluster {
        let turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cluster-{name}"));
        let postgres = Postgres::start(&dir);
        let nats = Nats::start();
        let (store, bus) = (postgres.url(), nats.url());
        let flags: Vec<&str> = ["--rate-frames", "0"]
            .iter()
            .chain(extra)
            .copied()
            .collect();
        let starting = (0..relays).map(|_| RelayProcess::start_cluster(&store, Some(&bus), &flags));
        let relays = futures_util::future::join_all(starting)
            .await
            .into_iter()
            .map(Some)
            .collect();
        Cluster {
            relays,
            nats,
            postgres,
            _turn: turn,
        }
    }

    /// The `ws://` URL of relay `i`.
    pub fn url(&self, i: usize) -> String {
        self.relays[i].as_ref().expect("relay running").url()
    }

    /// The address of relay `i`.
    pub fn addr(&self, i: usize) -> std::net::SocketAddr {
        self.relays[i].as_ref().expect("relay running").addr
    }
}
