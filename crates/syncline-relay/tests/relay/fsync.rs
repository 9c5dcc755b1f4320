//! "Ack after fsync", shown: the relay runs under `strace`, and every
//! `Ack` it writes to a socket comes after an `fdatasync`/`fsync` of the
//! file that its deltas were written to, which completed after those
//! writes. (The kill -9 tests cannot see a missing fsync: SIGKILL keeps
//! the page cache.)
//!
//! Skipped, saying so, only when `strace` is missing or ptrace is denied;
//! `cargo xtask install` installs it.

use std::collections::HashMap;
use std::path::Path;

use syncline_protocol::PushDelta;

use crate::common::{Client, RelayProcess, delta, doc};

/// The bytes as `strace -xx` prints them.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\x{b:02x}")).collect()
}

fn strace_works() -> Result<(), String> {
    let probe = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=fdatasync", "true"])
        .output();
    match probe {
        Err(error) => Err(format!("strace cannot run ({error})")),
        Ok(out) if !out.status.success() => Err(format!(
            "strace cannot trace here (ptrace denied?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => Ok(()),
    }
}

/// One traced system call: which, on which fd, where it completed.
struct Call {
    name: String,
    fd: Option<u32>,
    line: String,
}

/// Reads an `strace -f` log into completed calls, in completion order
/// (an `<unfinished ...>` call counts where it is `resumed`).
fn calls(log: &str) -> Vec<Call> {
    let mut pending: HashMap<String, (String, Option<u32>, String)> = HashMap::new();
    let mut calls = Vec::new();
    for line in log.lines() {
        let (pid, rest) = line.split_once(' ').unwrap_or(("", line));
        let rest = rest.trim_start();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let name = resumed.split(' ').next().unwrap_or_default().to_owned();
            if let Some((_, fd, start)) = pending.remove(pid) {
                calls.push(Call {
                    name,
                    fd,
                    line: format!("{start}{rest}"),
                });
            }
            continue;
        }
        let Some((name, args)) = rest.split_once('(') else {
            continue;
        };
        let fd = args
            .split([',', ')', ' '])
            .next()
            .and_then(|fd| fd.parse().ok());
        if rest.ends_with("<unfinished ...>") {
            pending.insert(pid.to_owned(), (name.to_owned(), fd, rest.to_owned()));
        } else {
            calls.push(Call {
                name: name.to_owned(),
                fd,
                line: rest.to_owned(),
            });
        }
    }
    calls
}

/// A call's line, short enough for a message.
fn short(line: &str) -> String {
    line.chars().take(120).collect()
}

fn probe(n: u32) -> PushDelta {
    let mut d = delta(n);
    d.bytes = format!("fsync-probe-{n:04}-").repeat(4).into_bytes();
    d
}

#[tokio::test]
async fn every_ack_is_written_after_the_fsync_that_made_it_durable() {
    if let Err(why) = strace_works() {
        eprintln!("SKIPPED every_ack_is_written_after_the_fsync: {why}; run `cargo xtask install`");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let trace = data.path().join("strace.log");
    let db = data.path().join("db");
    let bin = syncline_relay::testing::relay_bin();
    let args = [
        "-f",
        "-qq",
        "-xx",
        "-s",
        "65536",
        "-e",
        "trace=fdatasync,fsync,write,pwrite64,writev,pwritev,sendto,sendmsg",
        "-o",
        trace.to_str().unwrap(),
        bin.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data",
        db.to_str().unwrap(),
    ];
    let relay = RelayProcess::launch(Path::new("strace"), &args).await;
    let (mut client, _) = Client::greeted(&relay.url()).await;
    let pushes: Vec<PushDelta> = (1..=20).map(probe).collect();
    for push in &pushes {
        client.push(doc(1), vec![push.clone()]).await;
    }
    drop(client);
    // SIGTERM to the relay itself (strace's child): it stops gracefully,
    // and strace writes out its log and exits with it.
    let strace = relay.pid().expect("strace runs");
    let children = format!("/proc/{strace}/task/{strace}/children");
    let children = std::fs::read_to_string(&children).unwrap();
    let child = children.split_whitespace().next().expect("the relay");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", child])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(relay.wait().await.success(), "the relay stopped cleanly");

    let log = std::fs::read_to_string(&trace).unwrap();
    let calls = calls(&log);
    let synced = |call: &Call| {
        matches!(call.name.as_str(), "fdatasync" | "fsync") && call.line.ends_with("= 0")
    };
    for push in &pushes {
        let (id, bytes) = (hex(&push.id.0), hex(&push.bytes));
        // Its bytes reach the database file (the WAL) ...
        let stored = calls
            .iter()
            .position(|c| c.line.contains(&bytes))
            .unwrap_or_else(|| panic!("delta {} never written to disk", push.id));
        let file = calls[stored].fd;
        // ... and its Ack, which names its id but carries no bytes, a
        // socket (SQLite writes its files with pwrite64, the socket is
        // written with write, writev, sendto or sendmsg).
        let to_socket =
            |c: &Call| matches!(c.name.as_str(), "write" | "writev" | "sendto" | "sendmsg");
        let acked = calls
            .iter()
            .position(|c| to_socket(c) && c.line.contains(&id) && !c.line.contains(&bytes))
            .unwrap_or_else(|| panic!("no Ack of {} was written", push.id));
        let fsynced = calls[stored..acked]
            .iter()
            .any(|c| synced(c) && c.fd == file);
        assert!(
            fsynced,
            "the Ack of {} was sent before an fsync of fd {file:?} made it durable:\n{}\n…\n{}",
            push.id,
            short(&calls[stored].line),
            short(&calls[acked].line)
        );
    }
}
