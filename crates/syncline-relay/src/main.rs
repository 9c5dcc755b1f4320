//! The `syncline-relay` binary: parse flags, set up logging, open the store,
//! bind, announce the address on stdout, serve until SIGTERM or Ctrl-C.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use clap::Parser;
use syncline_relay::{Cli, LISTENING_PREFIX, Relay, shutdown_signal};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    // Installed first, so a signal during startup already means "stop".
    let shutdown = shutdown_signal();

    let relay = Relay::open(cli.config())
        .await
        .with_context(|| format!("opening the relay's data in {}", cli.data.display()))?;
    let listener = tokio::net::TcpListener::bind(&cli.listen)
        .await
        .with_context(|| format!("listening on {}", cli.listen))?;
    let addr = listener.local_addr()?;

    // The one stdout line: scripts and tests wait for it and read the port.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{LISTENING_PREFIX}{addr}")?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(%addr, data = %cli.data.display(), "relay started");

    relay.serve(listener, shutdown).await?;
    Ok(())
}
