//! Test harness: the real relay binary as a child process, and the
//! `syncline` binary run like a user would.

#![allow(dead_code)] // each test file uses a different part

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;

/// The bound on every single wait in these tests.
pub const TIMEOUT: Duration = Duration::from_secs(30);

const LISTENING: &str = "syncline-relay listening on ";

/// The relay binary: `$SYNCLINE_RELAY_BIN`, else the workspace's debug build.
pub fn relay_bin() -> PathBuf {
    let path = match std::env::var_os("SYNCLINE_RELAY_BIN") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/syncline-relay"),
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
pub struct Relay {
    child: Child,
    pub addr: SocketAddr,
    // Kept open so the relay never writes to a closed pipe.
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl Relay {
    /// Starts the relay on a free port with its database in `data`.
    pub async fn start(data: &Path) -> Relay {
        Relay::start_with(data, &[]).await
    }

    pub async fn start_with(data: &Path, extra: &[&str]) -> Relay {
        Relay::start_at(data, "127.0.0.1:0", extra).await
    }

    /// Starts the relay listening on `listen` (e.g. the address of one that
    /// was just killed).
    pub async fn start_at(data: &Path, listen: &str, extra: &[&str]) -> Relay {
        let mut child = Command::new(relay_bin())
            .args(["--listen", listen, "--data"])
            .arg(data)
            .args(extra)
            .env("RUST_LOG", "error")
            .env_remove("SYNCLINE_LISTEN")
            .env_remove("SYNCLINE_DATA")
            .env_remove("SYNCLINE_SERVE")
            .env_remove("SYNCLINE_AUTH_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the relay binary starts");
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
        Relay {
            child,
            addr,
            _stdout: lines,
        }
    }

    /// `ws://` URL of the relay.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Kills the relay (`kill -9`) and waits until it is gone.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL is sent");
        timeout(TIMEOUT, self.child.wait())
            .await
            .expect("the relay dies in time")
            .expect("wait works");
    }
}

/// Runs `syncline-relay token ...` and returns the token.
pub async fn relay_token(secret: &str, doc_url: &str, rights: &str) -> String {
    let output = timeout(
        TIMEOUT,
        Command::new(relay_bin())
            .args([
                "token", "--secret", secret, "--doc", doc_url, "--rights", rights,
            ])
            .env_remove("SYNCLINE_AUTH_SECRET")
            .output(),
    )
    .await
    .expect("token in time")
    .expect("the relay binary runs");
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output).trim().to_string()
}

/// The `syncline` command, with no configuration from the environment.
pub fn syncline() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_syncline"));
    command
        .env_remove("SYNCLINE_RELAY")
        .env_remove("SYNCLINE_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs `syncline ARGS` to completion (bounded).
pub async fn run(args: &[&str]) -> Output {
    timeout(TIMEOUT, syncline().args(args).output())
        .await
        .unwrap_or_else(|_| panic!("`syncline {}` finished in time", args.join(" ")))
        .expect("the syncline binary runs")
}

/// Runs `syncline ARGS`, asserts success, returns stdout.
pub async fn run_ok(args: &[&str]) -> String {
    let output = run(args).await;
    assert!(
        output.status.success(),
        "`syncline {}` failed ({}): {}",
        args.join(" "),
        output.status,
        stderr(&output)
    );
    stdout(&output)
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Parses `get`'s output.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}
