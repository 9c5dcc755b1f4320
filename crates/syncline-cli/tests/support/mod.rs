//! Test harness: the `syncline` binary run like a user would; the real
//! relay binary as a child process comes from `syncline_relay::testing`.

#![allow(dead_code)] // each test file uses a different part

use std::process::{Output, Stdio};

use tokio::process::Command;
use tokio::time::timeout;

pub use syncline_relay::testing::{RelayProcess as Relay, TIMEOUT};

/// Runs `syncline-relay token ...` and returns the token.
pub async fn relay_token(secret: &str, doc_url: &str, rights: &str) -> String {
    syncline_relay::testing::mint_token(secret, doc_url, rights, None).await
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
