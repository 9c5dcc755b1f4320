//! Test support (feature `test-support`): the real `syncline-relay` binary
//! as a child process, for integration tests of this crate and its clients.
//!
//! Not compiled into the relay binary: the feature is off by default and
//! enabled only by dev-dependencies.
//!
//! ```no_run
//! # async fn demo() {
//! use syncline_relay::testing::RelayProcess;
//! let data = std::env::temp_dir().join("relay-test");
//! let relay = RelayProcess::start(&data).await;
//! println!("{}", relay.url()); // ws://127.0.0.1:PORT
//! relay.kill9().await;
//! # }
//! ```

/// Real PostgreSQL and NATS servers for cluster tests.
pub use syncline_services as services;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;

/// The bound on every single wait in tests that use this module.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The relay's first stdout line starts with this, followed by its address.
pub const LISTENING: &str = "syncline-relay listening on ";

/// The relay binary: `$SYNCLINE_RELAY_BIN` when set, else `syncline-relay`
/// in the build directory of the running test executable
/// (`<target>/<profile>/deps/<test>` → `<target>/<profile>/syncline-relay`),
/// which honours `CARGO_TARGET_DIR`.
///
/// Panics with a hint when the binary is not there: a crate that depends
/// on this one gets its library, not its binary, so build it first
/// (`cargo build -p syncline-relay`).
pub fn relay_bin() -> PathBuf {
    let path = match std::env::var_os("SYNCLINE_RELAY_BIN") {
        Some(path) => PathBuf::from(path),
        None => {
            let exe = std::env::current_exe().expect("the test executable has a path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("the test executable lives in <target>/<profile>/deps");
            profile_dir.join(format!("syncline-relay{}", std::env::consts::EXE_SUFFIX))
        }
    };
    assert!(
        path.is_file(),
        "the relay binary is missing at {}: build it with `cargo build -p syncline-relay` \
         or point SYNCLINE_RELAY_BIN at it",
        path.display()
    );
    path
}

/// A running relay process, killed when dropped.
pub struct RelayProcess {
    child: Child,
    /// The address it listens on, read from its first stdout line.
    pub addr: SocketAddr,
    // Kept open so the relay never writes to a closed pipe.
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl RelayProcess {
    /// Starts [`relay_bin`] on a free port of 127.0.0.1 with its database in
    /// `data`.
    pub async fn start(data: &Path) -> RelayProcess {
        RelayProcess::start_with(data, &[]).await
    }

    /// Like [`RelayProcess::start`], with extra command-line arguments.
    pub async fn start_with(data: &Path, extra: &[&str]) -> RelayProcess {
        RelayProcess::start_at(data, "127.0.0.1:0", extra).await
    }

    /// Starts [`relay_bin`] listening on `listen` (e.g. the address of one
    /// that was just killed).
    pub async fn start_at(data: &Path, listen: &str, extra: &[&str]) -> RelayProcess {
        RelayProcess::spawn(&relay_bin(), data, listen, extra).await
    }

    /// Starts the relay binary `bin` and waits for it to announce its
    /// address. The `SYNCLINE_*` server settings of the environment are
    /// removed, logs go to stderr at `error` level.
    pub async fn spawn(bin: &Path, data: &Path, listen: &str, extra: &[&str]) -> RelayProcess {
        let data = data.to_str().expect("a UTF-8 data path");
        let mut args = vec!["--listen", listen, "--data", data];
        args.extend_from_slice(extra);
        RelayProcess::launch(bin, &args).await
    }

    /// Starts a relay of a cluster on a free port of 127.0.0.1: its log in
    /// Postgres at `store`, its bus at `bus` (if any), with `extra` flags.
    pub async fn start_cluster(store: &str, bus: Option<&str>, extra: &[&str]) -> RelayProcess {
        let mut args = vec!["--listen", "127.0.0.1:0", "--store", store];
        if let Some(bus) = bus {
            args.extend(["--bus", bus]);
        }
        args.extend_from_slice(extra);
        RelayProcess::launch(&relay_bin(), &args).await
    }

    /// Starts `bin` with exactly `args` and waits for it to announce its
    /// address.
    pub async fn launch(bin: &Path, args: &[&str]) -> RelayProcess {
        let mut child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "error")
            .env_remove("SYNCLINE_STORE")
            .env_remove("SYNCLINE_BUS")
            .env_remove("SYNCLINE_LISTEN")
            .env_remove("SYNCLINE_DATA")
            .env_remove("SYNCLINE_SERVE")
            .env_remove("SYNCLINE_AUTH_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("the relay binary {} starts: {e}", bin.display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = timeout(TIMEOUT, lines.next_line())
            .await
            .expect("the relay announces its address in time")
            .expect("stdout is readable")
            .expect("the relay printed a line before exiting");
        let addr = line
            .strip_prefix(LISTENING)
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("the line ends with a socket address");
        RelayProcess {
            child,
            addr,
            _stdout: lines,
        }
    }

    /// The next line the relay printed on stdout (with `--metrics-listen`,
    /// the second: `syncline-relay metrics on HOST:PORT`).
    pub async fn stdout_line(&mut self) -> Option<String> {
        timeout(TIMEOUT, self._stdout.next_line())
            .await
            .expect("a stdout line in time")
            .expect("stdout is readable")
    }

    /// `ws://` URL of the relay's root.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends SIGTERM without waiting.
    pub fn sigterm(&self) {
        let pid = self.pid().expect("the relay is running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn terminate(self) -> ExitStatus {
        self.sigterm();
        self.wait().await
    }

    /// Waits for the process to exit.
    pub async fn wait(mut self) -> ExitStatus {
        timeout(TIMEOUT, self.child.wait())
            .await
            .expect("the relay exits in time")
            .expect("wait works")
    }

    /// Sends SIGKILL (`kill -9`) and waits for the process to be gone.
    pub async fn kill9(mut self) {
        self.child.start_kill().expect("SIGKILL is sent");
        timeout(TIMEOUT, self.child.wait())
            .await
            .expect("the relay dies in time")
            .expect("wait works");
    }
}

/// Runs `syncline-relay token --secret S --doc DOC --rights R [--ttl T]`
/// and returns the one token it prints.
pub async fn mint_token(secret: &str, doc: &str, rights: &str, ttl: Option<&str>) -> String {
    let mut command = Command::new(relay_bin());
    command
        .args([
            "token", "--secret", secret, "--doc", doc, "--rights", rights,
        ])
        .env_remove("SYNCLINE_AUTH_SECRET");
    if let Some(ttl) = ttl {
        command.args(["--ttl", ttl]);
    }
    let output = timeout(TIMEOUT, command.output())
        .await
        .expect("token in time")
        .expect("the relay binary runs");
    assert!(
        output.status.success(),
        "syncline-relay token failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("the token is UTF-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {stdout:?}");
    lines[0].to_owned()
}
