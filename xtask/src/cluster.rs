//! `cargo xtask demo --cluster`: PostgreSQL, NATS and three relays on
//! 127.0.0.1 (ports 8787, 8788, 8789), each serving the demo app; Ctrl-C
//! (or any relay exiting) stops everything.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, Result};
use syncline_services::{Nats, Postgres};

/// The relays' ports.
const PORTS: [u16; 3] = [8787, 8788, 8789];

pub fn demo(root: &Path, relay: &Path) -> Result<()> {
    let postgres = Postgres::start(&root.join("target/demo-cluster"));
    let nats = Nats::start();
    let mut relays: Vec<Child> = Vec::new();
    for port in PORTS {
        let child = Command::new(relay)
            .current_dir(root)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--store", &postgres.url(), "--bus", &nats.url()])
            .args(["--serve", "demo-app/dist"])
            .spawn()
            .context("starting a relay")?;
        relays.push(child);
    }
    println!(
        "\nSyncline cluster demo: Postgres on 127.0.0.1:{}, NATS on 127.0.0.1:{}, relays on \
         http://127.0.0.1:8787/, :8788/ and :8789/ — open the same address (#doc included) \
         on two of them. Ctrl-C stops everything.\n",
        postgres.port, nats.port
    );
    // Ctrl-C reaches the relays too (same process group); whichever way a
    // relay ends, stop the rest and the servers (their Drop).
    'wait: loop {
        for child in &mut relays {
            if child.try_wait()?.is_some() {
                break 'wait;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for child in &mut relays {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(())
}
