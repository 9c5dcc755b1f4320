//! The `syncline-relay` binary: parse flags; either mint a token
//! (`syncline-relay token …`) or set up logging, open the store, bind,
//! announce the address on stdout, and serve until SIGTERM or Ctrl-C.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use syncline_relay::auth::{self, Claims, Secret};
use syncline_relay::{
    Cli, Command, LISTENING_PREFIX, METRICS_PREFIX, Relay, ServeArgs, TokenArgs, shutdown_signal,
};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token(args)) => token(&args),
        None => serve(cli.serve),
    }
}

/// Prints one token on stdout.
fn token(args: &TokenArgs) -> anyhow::Result<()> {
    let secret = Secret::new(args.secret.as_bytes()).context("--secret")?;
    let doc = auth::parse_doc(&args.doc).context("--doc")?;
    let ttl: Duration = auth::parse_ttl(&args.ttl).context("--ttl")?;
    let claims = Claims {
        doc,
        rights: args.rights(),
        expires_at: auth::unix_now().saturating_add(ttl.as_secs()),
    };
    println!("{}", auth::mint(&secret, claims));
    Ok(())
}

#[tokio::main]
async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    // Installed first, so a signal during startup already means "stop".
    let shutdown = shutdown_signal();

    let config = args.config().context("--auth-secret or --max-token-ttl")?;
    let data = match &config.store_url {
        Some(_) => "Postgres (--store)".to_string(),
        None => config.data_dir.display().to_string(),
    };
    let relay = Relay::open(config)
        .await
        .with_context(|| format!("opening the relay's data in {data}"))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let metrics = match &args.guard.metrics_listen {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("listening for /metrics on {at}"))?,
        ),
        None => None,
    };

    // The first stdout line: scripts and tests wait for it and read the
    // port. With --metrics-listen, a second one says where /metrics is.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{LISTENING_PREFIX}{addr}")?;
    if let Some(metrics) = &metrics {
        writeln!(stdout, "{METRICS_PREFIX}{}", metrics.local_addr()?)?;
    }
    stdout.flush()?;
    drop(stdout);
    tracing::info!(%addr, %data, "relay started");

    relay
        .with_metrics_listener(metrics)
        .serve(listener, shutdown)
        .await?;
    Ok(())
}
