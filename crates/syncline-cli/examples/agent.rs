//! An agent: a native replica that serves requests and answers broadcasts
//! on one document, for trying out (and end-to-end testing) Syncline's
//! ephemeral messages from a browser or another client.
//!
//! ```text
//! agent --relay ws://127.0.0.1:8787 --doc 'syncline:<id>#<key>' [--state DIR] [--token TOKEN]
//! ```
//!
//! It opens the document, waits until the relay has sent it, then serves
//!
//! * `"upper"`: a JSON string → the same string uppercased; any other
//!   payload → the error `"expected a string"`;
//! * `"fail"`: always the error `"the agent failed on purpose"`;
//!
//! and answers every broadcast `m` it receives on the document with the
//! broadcast `{"echo": m}` (unless `m` is itself an echo). Once serving it prints the line `ready` on
//! stdout (anything else goes to stderr), then runs until killed or
//! interrupted. Without `--state` it keeps its replica in a fresh temporary
//! directory.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};
use syncline_cli::client::{Client, ClientConfig, ClientError, Event, Tokens};
use syncline_cli::store::FileStore;
use syncline_core::DocUrl;
use tokio::sync::broadcast::error::RecvError;

/// Serves "upper" and "fail" and echoes broadcasts on one document.
#[derive(Parser)]
struct Args {
    /// The relay's WebSocket URL, e.g. ws://127.0.0.1:8787.
    #[arg(long)]
    relay: String,
    /// The document's URL, `syncline:<id>#<key>`.
    #[arg(long)]
    doc: String,
    /// Where to keep the replica (default: a fresh temporary directory).
    #[arg(long)]
    state: Option<PathBuf>,
    /// An access token for the document (a relay with an auth secret).
    #[arg(long)]
    token: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agent: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let url: DocUrl = args
        .doc
        .parse()
        .map_err(|e| anyhow::anyhow!("--doc: {e}"))?;
    let temp;
    let state = match args.state {
        Some(dir) => dir,
        None => {
            temp = tempfile::tempdir().context("creating a temporary state directory")?;
            temp.path().to_path_buf()
        }
    };
    let store = FileStore::open(&state).context("opening the state directory")?;
    let tokens = args.token.map_or(Tokens::None, Tokens::Fixed);
    let relay = args.relay;
    let client = Client::start(store, ClientConfig { relay, tokens })?;

    let mut events = client.subscribe();
    client.open_doc(&url)?;
    loop {
        match client
            .wait_caught_up(url.doc, Duration::from_secs(30))
            .await
        {
            Ok(()) => break,
            // Still connecting: say why, and keep trying.
            Err(e @ ClientError::Timeout { .. }) => eprintln!("agent: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
    client.serve(&url.doc, "upper", |payload| async move {
        match payload {
            Value::String(s) => Ok(Value::String(s.to_uppercase())),
            _ => Err("expected a string".to_string()),
        }
    })?;
    client.serve(&url.doc, "fail", |_| async {
        Err("the agent failed on purpose".to_string())
    })?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready")?;
    stdout.flush()?;

    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = tokio::signal::ctrl_c() => break,
        };
        match event {
            // An echo is not echoed again: two agents on one document would
            // otherwise answer each other until the relay's rate limit.
            Ok(Event::Message { doc, message, .. })
                if doc == url.doc && message.get("echo").is_none() =>
            {
                match client.broadcast(&doc, &json!({ "echo": message })) {
                    Ok(true) => {}
                    Ok(false) => eprintln!("agent: not connected, the echo was not sent"),
                    Err(e) => eprintln!("agent: the echo failed: {e}"),
                }
            }
            Ok(Event::Error { message, .. }) => {
                if let Some(failure) = client.failed() {
                    bail!("the client stopped: {failure}");
                }
                eprintln!("agent: {message}");
            }
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => eprintln!("agent: missed {n} events"),
            Err(RecvError::Closed) => break,
        }
    }
    client.close().await;
    Ok(())
}
