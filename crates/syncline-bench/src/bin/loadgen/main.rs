//! Load generator for `syncline-relay` (outside CI). See
//! docs/benchmarks/relay.md for the scenarios and how to run them:
//!
//! ```sh
//! cargo build --release -p syncline-relay && cargo build --release -p syncline-bench --bin loadgen
//! target/release/loadgen acks
//! target/release/loadgen typists
//! target/release/loadgen idle
//! target/release/loadgen compare      # vs the automerge-repo sync server
//! target/release/loadgen cluster      # 3 relays on Postgres + NATS vs 1 on SQLite
//! ```
//!
//! Every server is a real child process on 127.0.0.1 with a fresh data
//! directory; every client lives in this process, sharing one clock.

mod acks;
mod cluster;
mod idle;
mod peer;
mod relay;
mod typists;
mod ws;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use syncline_protocol::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};

#[derive(Parser, Debug)]
#[command(about = "Load generator for syncline-relay (protocol v1 or v2)")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(clap::Args, Debug)]
pub struct Common {
    /// The relay binary (default: `syncline-relay` beside this executable).
    #[arg(long, global = true)]
    relay_bin: Option<PathBuf>,
    /// Where fresh data directories go (use a real disk: fsync matters).
    #[arg(long, global = true, default_value_os_t = std::env::temp_dir())]
    data_root: PathBuf,
    /// Extra relay arguments, e.g. `--relay-arg=--rate-frames=0`.
    #[arg(long = "relay-arg", global = true, allow_hyphen_values = true)]
    relay_extra: Vec<String>,
    /// Keep the relay's per-connection rate limits (off by default: one
    /// benchmark connection stands for many real clients).
    #[arg(long, global = true)]
    keep_rate_limits: bool,
    /// Warm-up before measuring, seconds.
    #[arg(long, global = true, default_value_t = 3.0)]
    warmup: f64,
    /// Measurement window, seconds.
    #[arg(long, global = true, default_value_t = 10.0)]
    seconds: f64,
    /// Protocol versions the clients speak, one run each (e.g. `1,2` to
    /// compare): 1 hears of others' deltas once committed (`Deltas`), 2
    /// at once (`Tentative`), then `Committed`.
    #[arg(long, global = true, value_delimiter = ',', default_value = "2",
          value_parser = clap::value_parser!(u32).range(MIN_PROTOCOL_VERSION as i64..=PROTOCOL_VERSION as i64))]
    pub protocol: Vec<u32>,
}

impl Common {
    pub fn relay_bin(&self) -> PathBuf {
        self.relay_bin.clone().unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("own path");
            exe.with_file_name(format!("syncline-relay{}", std::env::consts::EXE_SUFFIX))
        })
    }

    /// The protocol version of scenarios that run once (`acks`, `idle`,
    /// `compare`): the first of `--protocol`. Neither `acks` nor `idle`
    /// has live deltas, so there it hardly matters.
    pub fn version(&self) -> u32 {
        self.protocol.first().copied().unwrap_or(PROTOCOL_VERSION)
    }

    pub fn relay_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if !self.keep_rate_limits {
            args.extend(["--rate-frames=0".to_owned(), "--rate-bytes=0".to_owned()]);
        }
        args.extend(self.relay_extra.iter().cloned());
        args
    }
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Acked (durable) deltas/s with group commit, over pusher counts.
    Acks(acks::Args),
    /// N typists on one document at 6 deltas/s each: end-to-end latency.
    Typists(TypistArgs),
    /// Relay RSS per idle connection, and ping latency through the crowd.
    Idle(idle::Args),
    /// Typists against syncline-relay and the automerge-repo sync server,
    /// in the same run, with real Automerge edits on both sides.
    Compare(peer::Args),
    /// Three relays on Postgres and NATS against one on SQLite: acked
    /// deltas/s, same- vs cross-relay latency, a crowd over the cluster.
    Cluster(cluster::Args),
}

#[derive(clap::Args, Debug)]
pub struct TypistArgs {
    /// Typist counts, one fresh relay each.
    #[arg(long, value_delimiter = ',', default_value = "4,16,64,256")]
    n: Vec<usize>,
    /// Deltas per second per typist.
    #[arg(long, default_value_t = 6.0)]
    rate: f64,
    /// Bytes per opaque delta (a sealed one-character Automerge change is
    /// about 120–150 B).
    #[arg(long, default_value_t = 128)]
    delta_bytes: usize,
    #[arg(long, value_enum, default_value = "opaque")]
    payload: typists::Payload,
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        ws::now_us();
        let (p50, p99) = relay::fsync_probe(&cli.common.data_root);
        println!(
            "# disk under {}: 16 KiB append + fdatasync p50 {p50:.2} ms, p99 {p99:.2} ms; load average {}",
            cli.common.data_root.display(),
            relay::load_average()
        );
        match &cli.scenario {
            Scenario::Acks(args) => acks::run(&cli.common, args).await,
            Scenario::Typists(args) => run_typists(&cli.common, args).await,
            Scenario::Idle(args) => idle::run(&cli.common, args).await,
            Scenario::Compare(args) => peer::run(&cli.common, args).await,
            Scenario::Cluster(args) => cluster::run(&cli.common, args).await,
        }
    });
}

async fn run_typists(common: &Common, args: &TypistArgs) {
    println!(
        "# typists on one doc: {} deltas/s each, {:?} payload, {} s (after {} s warm-up)",
        args.rate, args.payload, common.seconds, common.warmup
    );
    println!(
        "protocol\ttypists\tpushes/s\tp50 ms\tp99 ms\tmax ms\tdelivered/expected\tduplicates\tcommitted p50/p99 ms\tack p50/p99 ms\trelay RSS MiB\trelay CPU %\tloadgen CPU %\tdeltas/frame out\tdeltas/txn\tcommit p50/p99 ms\tload avg"
    );
    for &n in &args.n {
        for &version in &common.protocol {
            typists_row(common, args, n, version).await;
        }
    }
}

async fn typists_row(common: &Common, args: &TypistArgs, n: usize, version: u32) {
    let relay =
        relay::Server::relay(&common.relay_bin(), &common.data_root, &common.relay_args()).await;
    let result = typists::run(
        relay.addr,
        &typists::Params {
            n,
            rate: args.rate,
            delta_bytes: args.delta_bytes,
            warmup: common.warmup,
            seconds: common.seconds,
            payload: args.payload,
            server_pid: Some(relay.pid()),
            version,
        },
    )
    .await;
    // CPU in the window, as a share of one core (200 % = 2 cores).
    let relay_cpu = result.server_cpu.unwrap_or(0.0);
    let own_cpu = result.own_cpu;
    let text = relay.metrics_text().await;
    let sample = |name: &str| relay::metric_in(&text, name);
    let commits = relay::histogram_buckets(&text, "syncline_commit_duration_seconds");
    let txns = sample("syncline_store_transactions_total");
    let l = &result.latencies;
    println!(
        "v{version}\t{n}\t{:.0}\t{}\t{}\t{}\t{}/{}\t{}\t{}/{}\t{}/{}\t{:.1}\t{relay_cpu:.0}\t{own_cpu:.0}\t{:.2}\t{:.1}\t≤{}/≤{}\t{}",
        result.pushes as f64 / common.seconds,
        ws::ms(ws::quantile(l, 0.5)),
        ws::ms(ws::quantile(l, 0.99)),
        ws::ms(l.last().copied().unwrap_or(0)),
        result.delivered(),
        result.expected,
        result.duplicates,
        ws::ms(ws::quantile(&result.committed, 0.5)),
        ws::ms(ws::quantile(&result.committed, 0.99)),
        ws::ms(ws::quantile(&result.acks, 0.5)),
        ws::ms(ws::quantile(&result.acks, 0.99)),
        relay.rss() as f64 / 1048576.0,
        // All frames (acks and pongs too) over the whole run.
        sample("syncline_deltas_out_total") / sample("syncline_frames_out_total").max(1.0),
        if txns > 0.0 {
            sample("syncline_deltas_stored_total") / txns
        } else {
            0.0
        },
        relay::histogram_quantile(&commits, 0.5) * 1000.0,
        relay::histogram_quantile(&commits, 0.99) * 1000.0,
        relay::load_average(),
    );
    if let Some(warning) = result.duplicates_warning() {
        println!("{warning}");
    }
}
