//! Scenario 1: acked deltas per second with group commit.
//!
//! P pushers, each on its own connection, push 1-delta frames to their own
//! documents, keeping `window` pushes in flight. An `Ack` means the delta is
//! on disk, so acked deltas/s is durable throughput.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use syncline_protocol::{PushDelta, RelayFrame, decode_relay};
use tokio_tungstenite::tungstenite::Message;

use crate::Common;
use crate::relay::{self, Server};
use crate::ws::{self, Rng, ms, now_us, quantile};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Pusher counts to run, one fresh relay each.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64,256")]
    pub pushers: Vec<usize>,
    /// Pushes in flight per pusher.
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// Deltas per Push frame.
    #[arg(long, default_value_t = 1)]
    pub deltas_per_push: usize,
    /// Documents each pusher writes to, round robin.
    #[arg(long, default_value_t = 4)]
    pub docs_per_pusher: usize,
    /// Bytes per delta (opaque random bytes, like a sealed change).
    #[arg(long, default_value_t = 200)]
    pub delta_bytes: usize,
}

struct Outcome {
    acked: u64,
    latencies: Vec<u64>,
}

pub async fn run(common: &Common, args: &Args) {
    println!(
        "# acked deltas/s: window {}, {} delta(s)/push, {} B/delta, {} docs/pusher, {} s (after {} s warm-up)",
        args.window,
        args.deltas_per_push,
        args.delta_bytes,
        args.docs_per_pusher,
        common.seconds,
        common.warmup
    );
    println!(
        "pushers\tacked/s\tack p50 ms\tack p99 ms\tdeltas/txn\trelay RSS MiB\trelay CPU %\tloadgen CPU %\tload avg"
    );
    for &pushers in &args.pushers {
        let relay =
            Server::relay(&common.relay_bin(), &common.data_root, &common.relay_args()).await;
        let txns0 = relay.metric("syncline_store_transactions_total").await;
        let stored0 = relay.metric("syncline_deltas_stored_total").await;
        let measured = measure(&[relay.addr], &[relay.pid()], common, args, pushers).await;
        let txns = relay.metric("syncline_store_transactions_total").await - txns0;
        let stored = relay.metric("syncline_deltas_stored_total").await - stored0;
        println!(
            "{pushers}\t{:.0}\t{}\t{}\t{:.1}\t{:.1}\t{:.0}\t{:.0}\t{}",
            measured.per_sec,
            ms(quantile(&measured.latencies, 0.5)),
            ms(quantile(&measured.latencies, 0.99)),
            if txns > 0.0 { stored / txns } else { 0.0 },
            relay.rss() as f64 / 1048576.0,
            measured.servers_cpu,
            measured.own_cpu,
            relay::load_average(),
        );
    }
}

/// What [`measure`] saw in its window.
pub struct Measured {
    /// Acked deltas per second.
    pub per_sec: f64,
    /// Ack latencies, µs, sorted.
    pub latencies: Vec<u64>,
    /// CPU of the servers `pids`, % of one core.
    pub servers_cpu: f64,
    /// This process's CPU, % of one core.
    pub own_cpu: f64,
}

/// `pushers` pushers spread round robin over `addrs` (relays of one
/// cluster, or one relay), measured for `common.seconds` after the
/// warm-up.
pub async fn measure(
    addrs: &[std::net::SocketAddr],
    pids: &[u32],
    common: &Common,
    args: &Args,
    pushers: usize,
) -> Measured {
    {
        let stop = Arc::new(AtomicBool::new(false));
        let window = Arc::new((AtomicU64::new(0), AtomicU64::new(0))); // (start, end) in µs; 0 = open
        let mut tasks = Vec::new();
        for p in 0..pushers {
            let addr = addrs[p % addrs.len()];
            let stop = stop.clone();
            let window_bounds = window.clone();
            let a = (
                args.window,
                args.deltas_per_push,
                args.docs_per_pusher,
                args.delta_bytes,
            );
            let version = common.version();
            tasks.push(tokio::spawn(async move {
                pusher(p, addr, version, a, stop, window_bounds).await
            }));
        }
        tokio::time::sleep(Duration::from_secs_f64(common.warmup)).await;
        let cpu = || {
            (
                pids.iter()
                    .map(|&pid| relay::pid_cpu_seconds(pid))
                    .sum::<f64>(),
                relay::own_cpu_seconds(),
            )
        };
        let cpu0 = cpu();
        let start = now_us();
        window.0.store(start, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs_f64(common.seconds)).await;
        let end = now_us();
        window.1.store(end, Ordering::Relaxed);
        let cpu1 = cpu();
        stop.store(true, Ordering::Relaxed);
        let mut acked = 0;
        let mut latencies = Vec::new();
        for task in tasks {
            let outcome = task.await.expect("pusher");
            acked += outcome.acked;
            latencies.extend(outcome.latencies);
        }
        latencies.sort_unstable();
        let secs = (end - start) as f64 / 1e6;
        Measured {
            per_sec: acked as f64 / secs,
            latencies,
            servers_cpu: (cpu1.0 - cpu0.0) / secs * 100.0,
            own_cpu: (cpu1.1 - cpu0.1) / secs * 100.0,
        }
    }
}

async fn pusher(
    p: usize,
    addr: std::net::SocketAddr,
    version: u32,
    (window, per_push, docs, size): (usize, usize, usize, usize),
    stop: Arc<AtomicBool>,
    bounds: Arc<(AtomicU64, AtomicU64)>,
) -> Outcome {
    let mut rng = Rng::new(p as u64 + 1);
    let mut replica = [0u8; 16];
    rng.fill(&mut replica);
    let docs: Vec<_> = (0..docs).map(|_| rng.doc()).collect();
    let ws = ws::connect(addr, None, replica, version).await;
    let (mut sink, mut stream) = ws.split();
    let mut in_flight: VecDeque<u64> = VecDeque::new();
    let mut outcome = Outcome {
        acked: 0,
        latencies: Vec::new(),
    };
    let mut next_doc = 0;
    let mut body = vec![0u8; size];
    loop {
        while in_flight.len() < window && !stop.load(Ordering::Relaxed) {
            let deltas = (0..per_push)
                .map(|_| {
                    rng.fill(&mut body);
                    PushDelta {
                        id: rng.id(),
                        bytes: body.clone(),
                    }
                })
                .collect();
            let doc = docs[next_doc % docs.len()];
            next_doc += 1;
            let frame = ws::push(doc, deltas);
            sink.send(frame).await.expect("push");
            in_flight.push_back(now_us());
        }
        if in_flight.is_empty() {
            return outcome;
        }
        let message = tokio::time::timeout(ws::WAIT, stream.next())
            .await
            .expect("an ack in time");
        let bytes = match message {
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(_)) => continue,
            other => panic!("pusher {p}: connection ended: {other:?}"),
        };
        match decode_relay(&bytes).expect("a valid frame") {
            RelayFrame::Ack { ids, .. } => {
                let sent = in_flight.pop_front().expect("an ack for a push in flight");
                let now = now_us();
                // Acks arriving inside the window count (throughput).
                let (start, end) = (
                    bounds.0.load(Ordering::Relaxed),
                    bounds.1.load(Ordering::Relaxed),
                );
                if start != 0 && now >= start && (end == 0 || now <= end) {
                    outcome.acked += ids.len() as u64;
                    outcome.latencies.push(now - sent);
                }
            }
            other => panic!("pusher {p}: expected Ack, got {other:?}"),
        }
    }
}
