//! The `syncline` subcommands as library functions: each takes the global
//! [`Options`] and a writer for its output, and returns a typed
//! [`CommandError`] that knows its exit code.
//!
//! Every command opens a replica (the `--state` directory, or a fresh
//! temporary one), starts a [`Client`] and waits, within one overall
//! `--timeout`, for what it needs: `get` for the document to be caught up,
//! `set`/`push`/`create` also for the relay's acknowledgement — which the
//! relay sends only once the change is durable on its disk.

use std::future::Future;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value as Json;
use syncline_core::{DocUrl, EngineError};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::client::{Client, ClientConfig, ClientError, Event, Tokens};
use crate::pointer::{self, PointerError};
use crate::store::{FileStore, StoreError};

/// What every command needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// `ws://HOST:PORT`.
    pub relay: String,
    /// Where each document's access token comes from.
    pub tokens: Tokens,
    /// The bound on the whole command (for `watch`: on its first value).
    pub timeout: Duration,
    /// Where the replica lives; `None` for a temporary directory.
    pub state: Option<PathBuf>,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pointer(#[from] PointerError),
    #[error(transparent)]
    BadUrl(EngineError),
    #[error("{what} is not valid JSON ({error}); strings need quotes, e.g. '\"milk\"'")]
    BadJson { what: &'static str, error: String },
    #[error("--init must be a JSON object: the document root is a map")]
    InitNotObject,
    #[error("cannot create a temporary state directory: {0}")]
    TempDir(io::Error),
    #[error("cannot write the output: {0}")]
    Output(io::Error),
    #[error("cannot read {path}: {error}")]
    Input { path: String, error: io::Error },
    #[error(transparent)]
    BadImport(EngineError),
}

impl CommandError {
    /// The process exit code: 2 for bad input, 3 for a timeout, 4 when the
    /// relay refused, 1 for anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Pointer(_)
            | CommandError::BadUrl(_)
            | CommandError::BadJson { .. }
            | CommandError::InitNotObject
            | CommandError::Input { .. }
            | CommandError::BadImport(_)
            | CommandError::Client(ClientError::BadRelayUrl(_)) => 2,
            CommandError::Client(ClientError::Timeout { .. }) => 3,
            CommandError::Client(ClientError::Relay { .. } | ClientError::Access { .. }) => 4,
            _ => 1,
        }
    }
}

/// A token provider that runs `command` through `sh -c`, with the
/// document (`syncline:<id>`, never its key) as its first argument (`$1`,
/// also appended when the command does not mention it); its standard
/// output, trimmed, is the token. A failure or empty output is the
/// provider's error, with the command's standard error.
pub fn token_command(command: &str) -> Tokens {
    let command = command.to_owned();
    Tokens::Provider(std::sync::Arc::new(move |doc: &str| {
        let script = if command.contains("$1") {
            command.clone()
        } else {
            format!("{command} \"$1\"")
        };
        let output = std::process::Command::new("sh")
            .args(["-c", &script, "syncline-token"])
            .arg(doc)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run the token command: {e}"))?;
        let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !output.status.success() || token.is_empty() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(format!(
                "the token command failed ({}): {}",
                output.status,
                stderr.trim()
            ));
        }
        Ok(token)
    }))
}

/// `syncline create`: prints the URL of a new document once the relay has
/// it.
pub async fn create(
    options: &Options,
    init: Option<&str>,
    out: &mut impl Write,
) -> Result<(), CommandError> {
    let init = parse_json("--init", init.unwrap_or("{}"))?;
    if !init.is_object() {
        return Err(CommandError::InitNotObject);
    }
    let session = Session::start(options)?;
    let url = session.client.create_doc(&init)?;
    session.caught_up(&url).await?;
    session.synced().await?;
    writeln!(out, "{url}").map_err(CommandError::Output)?;
    session.close().await;
    Ok(())
}

/// `syncline export`: writes the document as standard Automerge bytes
/// (its whole history, as Automerge's `save()`) to `out` once caught up.
pub async fn export(
    options: &Options,
    url: &str,
    out: &mut impl Write,
) -> Result<(), CommandError> {
    let url = parse_url(url)?;
    let session = Session::start(options)?;
    session.client.open_doc(&url)?;
    session.caught_up(&url).await?;
    let bytes = session.client.export_doc(&url.doc)?;
    out.write_all(&bytes)
        .and_then(|()| out.flush())
        .map_err(CommandError::Output)?;
    session.close().await;
    Ok(())
}

/// `syncline import`: makes a new document from Automerge bytes (the file
/// at `path`, or standard input for `-`) and prints its URL once the relay
/// has stored it. Bytes that are not an Automerge document, or hold values
/// Syncline does not support, are bad input (exit 2) and create nothing.
pub async fn import(
    options: &Options,
    path: &str,
    out: &mut impl Write,
) -> Result<(), CommandError> {
    let read = if path == "-" {
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut io::stdin().lock(), &mut bytes).map(|_| bytes)
    } else {
        std::fs::read(path)
    };
    let bytes = read.map_err(|error| CommandError::Input {
        path: path.to_owned(),
        error,
    })?;
    let session = Session::start(options)?;
    let url = session.client.import_doc(&bytes).map_err(|e| match e {
        ClientError::Engine(e) if e.code() == syncline_core::SynclineErrorCode::BadImport => {
            CommandError::BadImport(e)
        }
        other => other.into(),
    })?;
    session.caught_up(&url).await?;
    session.synced().await?;
    writeln!(out, "{url}").map_err(CommandError::Output)?;
    session.close().await;
    Ok(())
}

/// `syncline get`: prints the document as (pretty) JSON once caught up.
pub async fn get(options: &Options, url: &str, out: &mut impl Write) -> Result<(), CommandError> {
    let url = parse_url(url)?;
    let session = Session::start(options)?;
    session.client.open_doc(&url)?;
    session.caught_up(&url).await?;
    let value = session.client.value(&url.doc)?;
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    writeln!(out, "{text}").map_err(CommandError::Output)?;
    session.close().await;
    Ok(())
}

/// `syncline set`: replaces the value at `pointer`; returns once the relay
/// acked the change.
pub async fn set(
    options: &Options,
    url: &str,
    pointer: &str,
    value: &str,
) -> Result<(), CommandError> {
    edit(options, url, pointer, value, pointer::set_ops).await
}

/// `syncline push`: appends to the list at `pointer`; returns once the relay
/// acked the change.
pub async fn push(
    options: &Options,
    url: &str,
    pointer: &str,
    value: &str,
) -> Result<(), CommandError> {
    edit(options, url, pointer, value, pointer::push_ops).await
}

async fn edit(
    options: &Options,
    url: &str,
    pointer: &str,
    value: &str,
    ops: fn(&Json, &str, Json) -> Result<Vec<syncline_core::Op>, PointerError>,
) -> Result<(), CommandError> {
    let url = parse_url(url)?;
    pointer::parse(pointer)?;
    let value = parse_json("the value", value)?;
    let session = Session::start(options)?;
    session.client.open_doc(&url)?;
    session.caught_up(&url).await?;
    session
        .client
        .change_with(url.doc, |doc| ops(doc, pointer, value))??;
    session.synced().await?;
    session.close().await;
    Ok(())
}

/// `syncline watch`: prints the document as one JSON line once caught up,
/// then a line each time it changes, until `stop` completes.
pub async fn watch(
    options: &Options,
    url: &str,
    out: &mut impl Write,
    stop: impl Future<Output = ()>,
) -> Result<(), CommandError> {
    let url = parse_url(url)?;
    let session = Session::start(options)?;
    let mut events = session.client.subscribe();
    session.client.open_doc(&url)?;
    session.caught_up(&url).await?;
    let mut last = None;
    print_if_changed(&session.client, &url, &mut last, out)?;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(Event::DocChanged(doc)) if doc == url.doc => {
                    print_if_changed(&session.client, &url, &mut last, out)?;
                }
                Err(RecvError::Lagged(_)) => {
                    print_if_changed(&session.client, &url, &mut last, out)?;
                }
                Ok(Event::Error { message, .. }) => {
                    if let Some(failure) = session.client.failed() {
                        return Err(failure.into());
                    }
                    eprintln!("warning: {message}");
                }
                Ok(_) => {}
                Err(RecvError::Closed) => break,
            },
            () = &mut stop => break,
        }
    }
    session.close().await;
    Ok(())
}

fn print_if_changed(
    client: &Client,
    url: &DocUrl,
    last: &mut Option<Json>,
    out: &mut impl Write,
) -> Result<(), CommandError> {
    let value = client.value(&url.doc)?;
    if last.as_ref() == Some(&value) {
        return Ok(());
    }
    writeln!(out, "{value}")
        .and_then(|()| out.flush())
        .map_err(CommandError::Output)?;
    *last = Some(value);
    Ok(())
}

/// A client on a replica directory, with the command's deadline.
struct Session {
    // Declared first: dropped (closing the store) before the directory.
    client: Client,
    _temp: Option<tempfile::TempDir>,
    deadline: Instant,
    timeout: Duration,
}

impl Session {
    fn start(options: &Options) -> Result<Session, CommandError> {
        let deadline = Instant::now() + options.timeout;
        let (dir, temp) = match &options.state {
            Some(dir) => (dir.clone(), None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("syncline-")
                    .tempdir()
                    .map_err(CommandError::TempDir)?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let store = FileStore::open(&dir)?;
        let client = Client::start(
            store,
            ClientConfig {
                relay: options.relay.clone(),
                tokens: options.tokens.clone(),
            },
        )?;
        for problem in client.load_problems() {
            eprintln!("warning: {problem}");
        }
        Ok(Session {
            client,
            _temp: temp,
            deadline,
            timeout: options.timeout,
        })
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Timeouts report the command's whole budget, not what was left of it.
    fn whole_budget(&self, error: ClientError) -> ClientError {
        match error {
            ClientError::Timeout { what, state, .. } => ClientError::Timeout {
                what,
                waited: self.timeout,
                state,
            },
            other => other,
        }
    }

    async fn caught_up(&self, url: &DocUrl) -> Result<(), ClientError> {
        self.client
            .wait_caught_up(url.doc, self.remaining())
            .await
            .map_err(|e| self.whole_budget(e))
    }

    async fn synced(&self) -> Result<(), ClientError> {
        self.client
            .wait_synced(self.remaining())
            .await
            .map_err(|e| self.whole_budget(e))
    }

    async fn close(self) {
        self.client.close().await;
    }
}

fn parse_url(url: &str) -> Result<DocUrl, CommandError> {
    url.parse().map_err(CommandError::BadUrl)
}

fn parse_json(what: &'static str, text: &str) -> Result<Json, CommandError> {
    serde_json::from_str(text).map_err(|e| CommandError::BadJson {
        what,
        error: e.to_string(),
    })
}
