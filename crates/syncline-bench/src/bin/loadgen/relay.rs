//! The relay under test: a real `syncline-relay` process (or the Node peer
//! server), its address, its memory, its metrics.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;

/// A server child process, killed when dropped, and the data directory
/// it owns (removed when dropped).
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    data: PathBuf,
    _stdout: Lines<BufReader<ChildStdout>>,
}

/// A fresh, empty directory under `root`.
pub fn fresh_dir(root: &Path, tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = root.join(format!(
        "syncline-loadgen-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a data directory");
    dir
}

impl Server {
    /// Starts `syncline-relay --listen 127.0.0.1:0 --data <fresh> EXTRA…`
    /// and reads its "syncline-relay listening on ADDR" line.
    pub async fn relay(bin: &Path, data_root: &Path, extra: &[String]) -> Server {
        let data = fresh_dir(data_root, "relay");
        let mut command = Command::new(bin);
        command
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .args(extra)
            .env("RUST_LOG", "error");
        Server::start(command, data, "syncline-relay listening on ").await
    }

    /// Starts a relay of a cluster: `--store STORE --bus BUS EXTRA…`.
    pub async fn cluster_relay(
        bin: &Path,
        data_root: &Path,
        store: &str,
        bus: &str,
        extra: &[String],
    ) -> Server {
        let data = fresh_dir(data_root, "cluster");
        let mut command = Command::new(bin);
        command
            .args(["--listen", "127.0.0.1:0", "--store", store, "--bus", bus])
            .args(extra)
            .env("RUST_LOG", "error");
        Server::start(command, data, "syncline-relay listening on ").await
    }

    /// Starts the automerge-repo sync server (`node peer-server.mjs`) in
    /// `dir`, which prints "peer listening on ADDR".
    pub async fn peer(dir: &Path, data_root: &Path) -> Server {
        let data = fresh_dir(data_root, "peer");
        let mut command = Command::new("node");
        command
            .current_dir(dir)
            .arg("peer-server.mjs")
            .env("DATA_DIR", &data);
        Server::start(command, data, "peer listening on ").await
    }

    async fn start(mut command: Command, data: PathBuf, prefix: &str) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let addr = timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("stdout") {
                if let Some(addr) = line.strip_prefix(prefix) {
                    return addr.trim().parse().expect("an address");
                }
            }
            panic!("the server exited before printing {prefix:?}")
        })
        .await
        .expect("the server starts in time");
        Server {
            child,
            addr,
            data,
            _stdout: lines,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Resident memory (VmRSS) in bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("a VmRSS line")
            * 1024
    }

    /// The relay's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        http_get(self.addr, "/metrics").await
    }

    /// One sample of the relay's `/metrics` (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        metric_in(&http_get(self.addr, "/metrics").await, series)
    }
}

/// One sample in a `/metrics` text (0 when absent).
pub fn metric_in(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap_or(0.0))
        })
        .unwrap_or(0.0)
}

/// Commit latency of the disk under `root`, probed the way the relay's
/// SQLite commits: 200 × (append 16 KiB + fdatasync) to a scratch file.
/// Returns (p50, p99) in ms. The relay's latency follows this closely,
/// and it moves with other I/O on the machine.
pub fn fsync_probe(root: &Path) -> (f64, f64) {
    use std::io::Write;
    let path = fresh_dir(root, "fsync-probe").join("probe");
    let mut file = std::fs::File::create(&path).expect("create the fsync probe file");
    let block = vec![0x5a_u8; 16 * 1024];
    let mut times: Vec<f64> = (0..200)
        .map(|_| {
            file.write_all(&block).expect("write the probe");
            let started = std::time::Instant::now();
            file.sync_data().expect("fdatasync the probe");
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    drop(file);
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    times.sort_by(f64::total_cmp);
    (times[100], times[198])
}

/// The 1-minute load average (`/proc/loadavg`), as printed there.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// CPU time (user + system) process `pid` used so far, seconds.
pub fn pid_cpu_seconds(pid: u32) -> f64 {
    cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// CPU time (user + system) this process used so far, seconds.
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds("/proc/self/stat")
}

/// utime + stime from a `/proc/…/stat` file, in seconds (Linux clock ticks
/// are 100 Hz on every architecture Rust supports there).
fn cpu_seconds(stat: &str) -> f64 {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold
    // spaces): state is field 3, utime 14, stime 15.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (tick(11) + tick(12)) as f64 / 100.0
}

/// Quantile `q` of a Prometheus histogram given as cumulative
/// `(upper bound, count)` pairs (the bucket's upper bound; +Inf as f64::INFINITY).
pub fn histogram_quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let total = buckets.last().map(|b| b.1).unwrap_or(0.0);
    if total <= 0.0 {
        return 0.0;
    }
    let rank = q * total;
    buckets
        .iter()
        .find(|(_, count)| *count >= rank)
        .map(|(bound, _)| *bound)
        .unwrap_or(f64::INFINITY)
}

/// The cumulative buckets of histogram `name` in a `/metrics` text.
pub fn histogram_buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (bound, value) = rest.split_once("\"} ")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, value.trim().parse().ok()?))
        })
        .collect()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        // Give the process a moment to go before deleting its files.
        std::thread::sleep(Duration::from_millis(100));
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        Some(String::from_utf8_lossy(&response).into_owned())
    };
    timeout(Duration::from_secs(30), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}
