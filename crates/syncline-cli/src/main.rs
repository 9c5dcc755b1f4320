//! `syncline`: read, write and watch Syncline documents from the command
//! line, through a relay. Argument parsing only; the commands live in
//! [`syncline_cli::commands`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use syncline_cli::client::Tokens;
use syncline_cli::commands::{self, CommandError, Options};

/// Read, write and watch Syncline documents through a relay.
///
/// Documents are named by their URL, `syncline:<id>#<key>`: the key never
/// leaves this machine; the relay only stores sealed deltas.
#[derive(Debug, Parser)]
#[command(
    name = "syncline",
    version,
    after_help = "Exit status: 0 on success (for create, set and push: only once the relay \
                  has acknowledged the change, i.e. stored it durably); 1 on errors; 2 on bad \
                  input (URL, pointer, JSON); 3 on timeout; 4 when the relay refused."
)]
struct Cli {
    /// The relay's WebSocket URL, e.g. ws://127.0.0.1:8787. Give it several
    /// times (or comma-separated in SYNCLINE_RELAY) for the relays of a
    /// cluster: an unreachable one is skipped at once, a lost connection
    /// moves on to the next after a backoff.
    #[arg(
        long,
        global = true,
        env = "SYNCLINE_RELAY",
        value_name = "URL",
        value_delimiter = ','
    )]
    relay: Vec<String>,

    /// An access token for the document the command works on (needed when
    /// the relay has an auth secret).
    #[arg(
        long,
        global = true,
        env = "SYNCLINE_TOKEN",
        hide_env_values = true,
        value_name = "T",
        conflicts_with = "token_command"
    )]
    token: Option<String>,

    /// Get a token per document by running CMD (with `sh -c`) with the
    /// document, `syncline:<id>` (never its key), as its argument `$1`;
    /// its output is the token. Needed for `create` against a relay with
    /// a secret, e.g. --token-command 'syncline-relay token --rights write
    /// --ttl 1h --doc'.
    #[arg(
        long,
        global = true,
        env = "SYNCLINE_TOKEN_COMMAND",
        value_name = "CMD"
    )]
    token_command: Option<String>,

    /// Give up after this many seconds (watch: waiting for the first value).
    #[arg(long, global = true, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    timeout: Duration,

    /// Keep the replica in DIR across runs (default: a fresh temporary
    /// directory, removed on exit). DIR holds the documents' keys: on Unix
    /// it is created owner-only (0700) and its files 0600; a DIR that
    /// already exists keeps its own mode.
    #[arg(long, global = true, value_name = "DIR")]
    state: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a document and print its URL once the relay has stored it.
    Create {
        /// The document's initial content: a JSON object.
        #[arg(long, value_name = "JSON")]
        init: Option<String>,
    },
    /// Print a document as JSON, once everything the relay has is here.
    Get {
        /// syncline:<id>#<key>
        doc_url: String,
    },
    /// Replace the value at a JSON pointer (RFC 6901: /a/b, /list/0;
    /// `-` or the length appends to a list); exits once the relay acked it.
    Set {
        /// syncline:<id>#<key>
        doc_url: String,
        /// Where: "" is the root, /items/0 the first item of `items`.
        pointer: String,
        /// The new value, as JSON (quote strings: '"milk"').
        #[arg(allow_hyphen_values = true)]
        json: String,
    },
    /// Append a value to the list at a JSON pointer; exits once the relay
    /// acked it.
    Push {
        /// syncline:<id>#<key>
        doc_url: String,
        /// The list, e.g. /items.
        pointer: String,
        /// The value to append, as JSON.
        #[arg(allow_hyphen_values = true)]
        json: String,
    },
    /// Write the document as standard Automerge bytes (its whole history,
    /// as Automerge's save(); any Automerge can load it) to FILE or stdout.
    Export {
        /// syncline:<id>#<key>
        doc_url: String,
        /// Where to write the bytes (default: standard output).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Make a new document from Automerge bytes (a file from `export`, or
    /// any Automerge's save()); prints its URL once the relay has stored it.
    Import {
        /// The Automerge file, or - for standard input.
        file: String,
    },
    /// Print the document as one JSON line, then a line per change, until
    /// interrupted.
    Watch {
        /// syncline:<id>#<key>
        doc_url: String,
    },
}

fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 365.0 * 86_400.0) {
        return Err(format!("{text}: the timeout must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.relay.iter().all(|r| r.trim().is_empty()) {
        eprintln!("error: no relay given: pass --relay ws://HOST:PORT or set SYNCLINE_RELAY");
        return ExitCode::from(2);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            let code = error
                .downcast_ref::<CommandError>()
                .map_or(1, CommandError::exit_code);
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let options = Options {
        relay: cli.relay.join(","),
        tokens: match (cli.token, cli.token_command) {
            (Some(token), _) => Tokens::Fixed(token),
            (None, Some(command)) => commands::token_command(&command),
            (None, None) => Tokens::None,
        },
        timeout: cli.timeout,
        state: cli.state,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut stdout = std::io::stdout().lock();
    runtime.block_on(async {
        match cli.command {
            Command::Create { init } => {
                commands::create(&options, init.as_deref(), &mut stdout).await
            }
            Command::Get { doc_url } => commands::get(&options, &doc_url, &mut stdout).await,
            Command::Set {
                doc_url,
                pointer,
                json,
            } => commands::set(&options, &doc_url, &pointer, &json).await,
            Command::Push {
                doc_url,
                pointer,
                json,
            } => commands::push(&options, &doc_url, &pointer, &json).await,
            Command::Export { doc_url, output } => match output {
                Some(path) => {
                    let mut bytes = Vec::new();
                    commands::export(&options, &doc_url, &mut bytes).await?;
                    std::fs::write(&path, bytes).map_err(CommandError::Output)
                }
                None => commands::export(&options, &doc_url, &mut stdout).await,
            },
            Command::Import { file } => commands::import(&options, &file, &mut stdout).await,
            Command::Watch { doc_url } => {
                let stop = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                commands::watch(&options, &doc_url, &mut stdout, stop).await
            }
        }
    })?;
    Ok(())
}
