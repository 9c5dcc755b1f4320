//! Scenario 4: the same typists against syncline-relay and against the
//! automerge-repo sync server, in the same run.
//!
//! Syncline's typists are in this process (real Automerge changes, sealed);
//! the peer's typists are automerge-repo clients in one Node process
//! (`bench/relay/typists.mjs`), against the peer server
//! (`bench/relay/peer-server.mjs`). Each side gets a fresh server per N.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::Common;
use crate::relay::Server;
use crate::typists::{self, Payload};
use crate::ws::{ms, quantile};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Typist counts.
    #[arg(long, value_delimiter = ',', default_value = "4,16,64,256")]
    pub n: Vec<usize>,
    /// Edits per second per typist.
    #[arg(long, default_value_t = 6.0)]
    pub rate: f64,
    /// The Node package with the peer server and its clients.
    #[arg(long, default_value = "bench/relay")]
    pub peer_dir: PathBuf,
    /// Give up on the peer's run for one N after this many seconds beyond
    /// warm-up + window (setup included).
    #[arg(long, default_value_t = 120.0)]
    pub peer_timeout: f64,
    /// Syncline's payload: real sealed Automerge changes (fair), or opaque.
    #[arg(long, value_enum, default_value = "automerge")]
    pub payload: Payload,
}

struct Side {
    pushes: u64,
    p50: u64,
    p99: u64,
    delivered: u64,
    expected: u64,
    note: String,
}

pub async fn run(common: &Common, args: &Args) {
    println!(
        "# typists, same run: syncline-relay ({:?} payload) vs automerge-repo sync server; {} edits/s each, {} s (after {} s warm-up)",
        args.payload, args.rate, common.seconds, common.warmup
    );
    println!(
        "typists\tsyncline edits/s\tp50 ms\tp99 ms\tdelivered\tpeer edits/s\tp50 ms\tp99 ms\tdelivered\tratio p50\tratio p99\tload avg\tnote"
    );
    for &n in &args.n {
        let ours = {
            let relay =
                Server::relay(&common.relay_bin(), &common.data_root, &common.relay_args()).await;
            let r = typists::run(
                relay.addr,
                &typists::Params {
                    n,
                    rate: args.rate,
                    delta_bytes: 128,
                    warmup: common.warmup,
                    seconds: common.seconds,
                    payload: args.payload,
                    server_pid: Some(relay.pid()),
                    version: common.version(),
                },
            )
            .await;
            if let Some(warning) = r.duplicates_warning() {
                println!("{warning}");
            }
            Side {
                pushes: r.pushes,
                p50: quantile(&r.latencies, 0.5),
                p99: quantile(&r.latencies, 0.99),
                delivered: r.delivered(),
                expected: r.expected,
                note: String::new(),
            }
        };
        let theirs = peer_side(common, args, n).await;
        let ratio = |a: u64, b: u64| {
            if b == 0 {
                "-".to_owned()
            } else {
                format!("{:.3}", a as f64 / b as f64)
            }
        };
        println!(
            "{n}\t{:.0}\t{}\t{}\t{}/{}\t{:.0}\t{}\t{}\t{}/{}\t{}\t{}\t{}\t{}",
            ours.pushes as f64 / common.seconds,
            ms(ours.p50),
            ms(ours.p99),
            ours.delivered,
            ours.expected,
            theirs.pushes as f64 / common.seconds,
            ms(theirs.p50),
            ms(theirs.p99),
            theirs.delivered,
            theirs.expected,
            ratio(ours.p50, theirs.p50),
            ratio(ours.p99, theirs.p99),
            crate::relay::load_average(),
            [ours.note, theirs.note].join(" ").trim()
        );
    }
}

async fn peer_side(common: &Common, args: &Args, n: usize) -> Side {
    let server = Server::peer(&args.peer_dir, &common.data_root).await;
    let mut command = Command::new("node");
    command
        .current_dir(&args.peer_dir)
        .arg("typists.mjs")
        .args(["--url", &server.url()])
        .args(["--n", &n.to_string()])
        .args(["--rate", &args.rate.to_string()])
        .args(["--warmup", &common.warmup.to_string()])
        .args(["--seconds", &common.seconds.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let limit = Duration::from_secs_f64(common.warmup + common.seconds + args.peer_timeout);
    let failed = |note: String| Side {
        pushes: 0,
        p50: 0,
        p99: 0,
        delivered: 0,
        expected: 0,
        note,
    };
    let output = match tokio::time::timeout(limit, command.output()).await {
        Err(_) => {
            return failed(format!(
                "peer: no result within {:.0} s",
                limit.as_secs_f64()
            ));
        }
        Ok(Err(e)) => return failed(format!("peer: cannot run node: {e}")),
        Ok(Ok(output)) => output,
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(line) = stdout.lines().rev().find(|l| l.starts_with('{')) else {
        return failed(format!("peer: typists.mjs failed ({})", output.status));
    };
    eprintln!("peer typists, n = {n}: {line}");
    let json: serde_json::Value = serde_json::from_str(line).expect("typists.mjs prints JSON");
    let get = |k: &str| json[k].as_f64().unwrap_or(0.0);
    Side {
        pushes: get("pushes") as u64,
        p50: (get("p50_ms") * 1000.0) as u64,
        p99: (get("p99_ms") * 1000.0) as u64,
        delivered: get("delivered") as u64,
        expected: get("expected") as u64,
        note: json["note"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|s| format!("peer: {s}"))
            .unwrap_or_default(),
    }
}
