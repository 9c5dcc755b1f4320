//! Scenario 3: idle connections. C connections each complete the handshake
//! and subscribe to a document, then sit still. Reports the relay's RSS
//! growth per connection and Ping→Pong latency through the crowd.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures_util::future::join_all;
use syncline_protocol::{ClientFrame, RelayFrame};

use crate::Common;
use crate::relay::Server;
use crate::ws::{self, Rng, Ws, ms, now_us, quantile};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Connection counts to run, one fresh relay each.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,19000")]
    pub connections: Vec<usize>,
    /// Connections per source address (127.0.0.1, .2, …): keeps each
    /// (source, destination) pair below the ephemeral port range.
    #[arg(long, default_value_t = 20000)]
    pub per_source: usize,
    /// Documents the connections subscribe to (connection i → doc i mod D).
    #[arg(long, default_value_t = 1000)]
    pub docs: usize,
    /// Pings to time, each on a random connection.
    #[arg(long, default_value_t = 2000)]
    pub pings: usize,
    /// Pings in flight at once (on distinct connections).
    #[arg(long, default_value_t = 16)]
    pub ping_concurrency: usize,
    /// Connections opened at once.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
}

pub async fn run(common: &Common, args: &Args) {
    println!(
        "# idle connections: handshake + 1 subscription each over {} docs; {} pings, {} in flight",
        args.docs, args.pings, args.ping_concurrency
    );
    println!(
        "connections\trelay RSS before MiB\tafter MiB\tKiB/conn\tping p50 ms\tping p99 ms\tload avg"
    );
    let mut rng = Rng::new(42);
    let docs: Vec<_> = (0..args.docs.max(1)).map(|_| rng.doc()).collect();
    for &count in &args.connections {
        let relay =
            Server::relay(&common.relay_bin(), &common.data_root, &common.relay_args()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = relay.rss();
        let mut conns: Vec<Ws> = Vec::with_capacity(count);
        let mut next = 0usize;
        while next < count {
            let batch = (next..(next + args.connect_concurrency).min(count)).map(|i| {
                let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i / args.per_source) as u8));
                let doc = docs[i % docs.len()];
                let addr = relay.addr;
                let version = common.version();
                async move {
                    let mut replica = [0u8; 16];
                    replica[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    let mut ws = ws::connect(addr, Some(source), replica, version).await;
                    ws::subscribe(&mut ws, doc).await;
                    ws
                }
            });
            conns.extend(join_all(batch).await);
            next = conns.len();
        }
        // Let allocators settle before reading memory.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = relay.rss();
        let connections = relay.metric("syncline_connections").await;
        assert_eq!(
            connections as usize, count,
            "the relay counts every connection"
        );

        let mut latencies = Vec::with_capacity(args.pings);
        let mut nonce = 0u64;
        while latencies.len() < args.pings {
            // Distinct random connections for one round.
            let mut picks: Vec<usize> = (0..args.ping_concurrency.min(count))
                .map(|_| (rng.next() % count as u64) as usize)
                .collect();
            picks.sort_unstable();
            picks.dedup();
            let mut chosen: Vec<&mut Ws> = Vec::new();
            {
                let mut rest: &mut [Ws] = &mut conns;
                let mut offset = 0;
                for &p in &picks {
                    let (_, tail) = rest.split_at_mut(p - offset);
                    let (one, tail) = tail.split_first_mut().expect("in range");
                    chosen.push(one);
                    rest = tail;
                    offset = p + 1;
                }
            }
            let round = chosen.into_iter().map(|ws| {
                nonce += 1;
                let n = nonce;
                async move {
                    let sent = now_us();
                    ws::send(ws, &ClientFrame::Ping { nonce: n }).await;
                    loop {
                        match ws::recv(ws).await {
                            Some(RelayFrame::Pong { nonce }) if nonce == n => {
                                return now_us() - sent;
                            }
                            Some(_) => continue,
                            None => panic!("a connection closed during the ping"),
                        }
                    }
                }
            });
            latencies.extend(join_all(round).await);
        }
        latencies.sort_unstable();
        println!(
            "{count}\t{:.1}\t{:.1}\t{:.2}\t{}\t{}\t{}",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            (after.saturating_sub(before)) as f64 / 1024.0 / count as f64,
            ms(quantile(&latencies, 0.5)),
            ms(quantile(&latencies, 0.99)),
            crate::relay::load_average(),
        );
        drop(conns);
    }
}
