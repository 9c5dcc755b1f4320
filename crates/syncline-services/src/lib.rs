//! Real PostgreSQL and NATS servers for cluster tests, on free ports of
//! 127.0.0.1, with their data under a directory the test names (under
//! `target/`), stopped when dropped.
//!
//! PostgreSQL comes from the machine (`/usr/lib/postgresql/<version>/bin`,
//! or `$SYNCLINE_PG_BIN`); it refuses to run as root, so as root every
//! command runs as the `postgres` user (`runuser`). `nats-server` must be on
//! the `PATH` (`cargo xtask test` installs Debian's package when missing).
//! Every wait is bounded.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The directory of PostgreSQL's server binaries.
pub fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("SYNCLINE_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "PostgreSQL's server binaries are missing: install them (apt-get install postgresql) \
             or point SYNCLINE_PG_BIN at the directory holding pg_ctl"
        )
    })
}

/// Runs `program` from [`pg_bin`] (as `postgres` when we are root).
fn pg_command(program: &str) -> Command {
    let path = pg_bin().join(program);
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(path);
        command
    } else {
        Command::new(path)
    }
}

fn run(mut command: Command, what: &str) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A PostgreSQL server of its own, stopped (and its data removed) on drop.
pub struct Postgres {
    dir: PathBuf,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

impl Postgres {
    /// Initialises a cluster in `dir` (removed first) and starts it on a
    /// free port.
    pub fn start(dir: &Path) -> Postgres {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("the Postgres directory can be made");
        // Absolute: the server runs from its data directory.
        let dir = &dir
            .canonicalize()
            .expect("the Postgres directory has a path");
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(dir);
                    c
                },
                "chown",
            );
        }
        let mut init = pg_command("initdb");
        init.args([
            "-N",
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "-D",
        ])
        .arg(dir.join("data"));
        run(init, "initdb");
        let postgres = Postgres {
            dir: dir.to_path_buf(),
            port: free_port(),
        };
        postgres.pg_ctl("start");
        postgres
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} \
             -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let mut command = pg_command("pg_ctl");
        command
            .args(["-D"])
            .arg(self.dir.join("data"))
            .args(["-l"])
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "30", "-o", &options]);
        if action == "restart" {
            command.args(["-m", "immediate"]);
        }
        command.arg(action);
        run(command, &format!("pg_ctl {action}"));
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl restart -m immediate`: the server dies without a checkpoint
    /// and recovers from its WAL, as after a crash.
    pub fn restart_immediate(&self) {
        self.pg_ctl("restart");
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`).
    pub fn stop(&self) {
        let mut command = pg_command("pg_ctl");
        command.arg("-D").arg(self.dir.join("data")).args([
            "-m",
            "immediate",
            "-w",
            "-t",
            "30",
            "stop",
        ]);
        let _ = command.stdin(Stdio::null()).output();
    }

    /// Starts it again after [`Postgres::stop`], on the same port.
    pub fn start_again(&self) {
        self.pg_ctl("start");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `nats-server` of its own, killed on drop.
pub struct Nats {
    child: Option<Child>,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

impl Nats {
    /// Starts `nats-server` on a free port and waits until it accepts
    /// connections.
    pub fn start() -> Nats {
        let port = free_port();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start nats-server ({e}): install it (apt-get install nats-server; \
                     `cargo xtask test` does)"
                )
            });
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nats-server did not listen on {port} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nats {
            child: Some(child),
            port,
        }
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}
