//! Command line and configuration.
//!
//! [`Cli`] is what the binary parses (flags, or `SYNCLINE_*` environment
//! variables); [`Config`] is what the library runs with. Tests and embedders
//! build a [`Config`] directly with [`Config::new`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use syncline_protocol::MAX_DELTAS_PER_FRAME;

use crate::hub::HubLimits;
use crate::store::PageLimits;

/// The relay of Syncline: stores and forwards sealed deltas in durable
/// per-document logs, over WebSocket.
///
/// On start it prints exactly one line on stdout,
/// `syncline-relay listening on HOST:PORT`, with the address it really bound
/// (useful with port 0). Logs go to stderr; set RUST_LOG to filter them
/// (default: info).
#[derive(Debug, Clone, Parser)]
#[command(name = "syncline-relay", version)]
pub struct Cli {
    /// Address to listen on. Port 0 picks a free port. WebSocket clients
    /// connect to `ws://ADDR/` or `ws://ADDR/sync`; `GET /healthz` answers
    /// "ok".
    #[arg(
        long,
        env = "SYNCLINE_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8787"
    )]
    pub listen: String,

    /// Directory of the relay's database (created if missing). Keep it: it
    /// holds every document's log and the relay's epoch.
    #[arg(long, env = "SYNCLINE_DATA", value_name = "DIR")]
    pub data: PathBuf,

    /// Also serve the static files of DIR over plain HTTP (`GET /` gives
    /// DIR/index.html), e.g. a demo app.
    #[arg(long, env = "SYNCLINE_SERVE", value_name = "DIR")]
    pub serve: Option<PathBuf>,

    /// Frames queued per connection before a slow reader is disconnected.
    #[arg(
        long,
        env = "SYNCLINE_QUEUE_CAPACITY",
        value_name = "FRAMES",
        default_value_t = 1024
    )]
    pub queue_capacity: usize,

    /// Most deltas in one catch-up or fan-out frame (at most 4096).
    #[arg(
        long,
        env = "SYNCLINE_PAGE_MAX_ITEMS",
        value_name = "N",
        default_value_t = 1000
    )]
    pub page_max_items: usize,

    /// Delta bytes per catch-up or fan-out frame, beyond which a new frame
    /// starts (a single larger delta still gets its own frame).
    #[arg(
        long,
        env = "SYNCLINE_PAGE_MAX_BYTES",
        value_name = "BYTES",
        default_value_t = 1024 * 1024
    )]
    pub page_max_bytes: usize,
}

impl Cli {
    /// The configuration these flags describe.
    pub fn config(&self) -> Config {
        let mut config = Config::new(self.data.clone());
        config.serve_dir = self.serve.clone();
        config.queue_capacity = self.queue_capacity;
        config.page = PageLimits {
            max_items: self.page_max_items,
            max_bytes: self.page_max_bytes,
        };
        config.normalized()
    }
}

/// Everything the relay runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where the database lives.
    pub data_dir: PathBuf,
    /// A folder of static files to serve, if any.
    pub serve_dir: Option<PathBuf>,
    /// Bound of each connection's outgoing queue, in frames.
    pub queue_capacity: usize,
    /// Page bounds for catch-up reads and fan-out frames.
    pub page: PageLimits,
    /// Most deltas held for one subscriber while it catches up.
    pub max_pending: usize,
    /// How long shutdown waits for connections to close.
    pub shutdown_grace: Duration,
}

impl Config {
    /// Defaults, with the database in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            serve_dir: None,
            queue_capacity: 1024,
            page: PageLimits::default(),
            max_pending: HubLimits::default().max_pending,
            shutdown_grace: Duration::from_secs(5),
        }
    }

    /// Clamps every bound into the range the protocol allows.
    pub fn normalized(mut self) -> Config {
        self.queue_capacity = self.queue_capacity.max(1);
        self.page.max_items = self.page.max_items.clamp(1, MAX_DELTAS_PER_FRAME);
        self.page.max_bytes = self.page.max_bytes.max(1);
        self
    }

    /// The hub's bounds under this configuration.
    pub fn hub_limits(&self) -> HubLimits {
        HubLimits {
            frame: self.page,
            max_pending: self.max_pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed_and_clamps_bounds() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from([
            "syncline-relay",
            "--listen",
            "127.0.0.1:0",
            "--data",
            "/tmp/x",
            "--page-max-items",
            "100000",
            "--queue-capacity",
            "0",
        ]);
        let config = cli.config();
        assert_eq!(config.page.max_items, MAX_DELTAS_PER_FRAME);
        assert_eq!(config.queue_capacity, 1);
        assert_eq!(config.serve_dir, None);
    }
}
