//! Scenario `cluster`: three relays on one Postgres and one NATS against
//! one relay on SQLite, side by side in one run, `rounds` times (medians
//! reported):
//!
//! * acked deltas/s: the same pushers spread over the three relays, or all
//!   on the one SQLite relay;
//! * A → B latency of two typists on the same relay and on two relays of
//!   the cluster (the bus between them);
//! * 256 typists on one document spread over the three relays: p99.
//!
//! Postgres and NATS run on free ports of 127.0.0.1 with Postgres's data
//! under `--data-root`; everything stops at the end.

use std::net::SocketAddr;

use syncline_services::{Nats, Postgres};

use crate::Common;
use crate::acks::{self, measure};
use crate::relay::Server;
use crate::typists::{self, Payload};
use crate::ws::quantile;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Rounds; each runs every measurement once, and medians are printed.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Pushers for the throughput comparison (spread over the relays).
    #[arg(long, default_value_t = 48)]
    pushers: usize,
    /// Pushes in flight per pusher.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Deltas per Push frame.
    #[arg(long, default_value_t = 1)]
    deltas_per_push: usize,
    /// Typists of the crowd, over the three relays.
    #[arg(long, default_value_t = 256)]
    typists: usize,
}

fn in_ms(sorted: &[u64], q: f64) -> f64 {
    quantile(sorted, q) as f64 / 1000.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn params(common: &Common, n: usize, version: u32) -> typists::Params {
    typists::Params {
        n,
        rate: 6.0,
        delta_bytes: 128,
        warmup: common.warmup,
        seconds: common.seconds,
        payload: Payload::Opaque,
        server_pid: None,
        version,
    }
}

/// p50 and p99 of others' deltas' arrival, ms.
async fn latency(addrs: &[SocketAddr], p: &typists::Params) -> (f64, f64) {
    let r = typists::run_on(addrs, p).await;
    if let Some(warning) = r.duplicates_warning() {
        println!("{warning}");
    }
    (in_ms(&r.latencies, 0.5), in_ms(&r.latencies, 0.99))
}

pub async fn run(common: &Common, args: &Args) {
    let postgres = Postgres::start(&common.data_root.join("syncline-loadgen-postgres"));
    let nats = Nats::start();
    let bin = common.relay_bin();
    let extra = common.relay_args();
    let mut cluster = Vec::new();
    for _ in 0..3 {
        let relay = Server::cluster_relay(
            &bin,
            &common.data_root,
            &postgres.url(),
            &nats.url(),
            &extra,
        )
        .await;
        cluster.push(relay);
    }
    let sqlite = Server::relay(&bin, &common.data_root, &extra).await;
    let addrs: Vec<SocketAddr> = cluster.iter().map(|r| r.addr).collect();
    let pids: Vec<u32> = cluster.iter().map(|r| r.pid()).collect();
    let version = common.version();
    let push = acks::Args {
        pushers: vec![args.pushers],
        window: args.window,
        deltas_per_push: args.deltas_per_push,
        docs_per_pusher: 4,
        delta_bytes: 200,
    };
    println!(
        "# cluster: 3 relays on Postgres + NATS vs 1 relay on SQLite, {} round(s), {} s windows after {} s warm-up, protocol v{version}, {} pushers x {} in flight",
        args.rounds, common.seconds, common.warmup, args.pushers, args.window
    );
    println!(
        "round\tcluster acked/s\tsqlite acked/s\tratio\tcluster ack p99 ms\tsame-relay A→B p50/p99 ms\tcross-relay A→B p50/p99 ms\t{} typists/3 relays p50/p99 ms",
        args.typists
    );
    let mut rows: Vec<[f64; 9]> = Vec::new();
    for round in 1..=args.rounds {
        let on_cluster = measure(&addrs, &pids, common, &push, args.pushers).await;
        let on_sqlite = measure(&[sqlite.addr], &[sqlite.pid()], common, &push, args.pushers).await;
        let two = params(common, 2, version);
        let same = latency(&[addrs[0]], &two).await;
        let cross = latency(&addrs[..2], &two).await;
        let crowd = latency(&addrs, &params(common, args.typists, version)).await;
        let row = [
            on_cluster.per_sec,
            on_sqlite.per_sec,
            in_ms(&on_cluster.latencies, 0.99),
            same.0,
            same.1,
            cross.0,
            cross.1,
            crowd.0,
            crowd.1,
        ];
        println!(
            "{round}\t{:.0}\t{:.0}\t{:.2}\t{:.2}\t{:.2}/{:.2}\t{:.2}/{:.2}\t{:.2}/{:.2}",
            row[0],
            row[1],
            row[0] / row[1].max(1.0),
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
            row[7],
            row[8]
        );
        rows.push(row);
    }
    let m = |i: usize| median(rows.iter().map(|r| r[i]).collect());
    println!(
        "median\t{:.0}\t{:.0}\t{:.2}\t{:.2}\t{:.2}/{:.2}\t{:.2}/{:.2}\t{:.2}/{:.2}",
        m(0),
        m(1),
        m(0) / m(1).max(1.0),
        m(2),
        m(3),
        m(4),
        m(5),
        m(6),
        m(7),
        m(8)
    );
    drop((cluster, sqlite));
}
