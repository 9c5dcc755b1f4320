//! Command line and configuration.
//!
//! [`Cli`] is what the binary parses (flags, or `SYNCLINE_*` environment
//! variables); [`Config`] is what the library runs with. Tests and embedders
//! build a [`Config`] directly with [`Config::new`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use syncline_protocol::{MAX_DELTAS_PER_FRAME, MAX_FRAME_BYTES};

use crate::auth::{Keys, Rights, Secret};
use crate::guard::{Guard, GuardArgs};
use crate::hub::HubLimits;
use crate::limits::ConnLimits;
use crate::store::PageLimits;

/// The relay of Syncline: stores and forwards sealed deltas in durable
/// per-document logs, over WebSocket.
///
/// On start it prints exactly one line on stdout,
/// `syncline-relay listening on HOST:PORT`, with the address it really bound
/// (useful with port 0). Logs go to stderr; set RUST_LOG to filter them
/// (default: info). `GET /healthz` answers "ok"; `GET /metrics` gives
/// Prometheus metrics. SIGTERM or Ctrl-C stops it gracefully.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "syncline-relay",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// A task other than serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// How to serve (when no subcommand is given).
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Tasks besides serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print one access token for a document, signed with the relay's
    /// secret: `sl1.<doc>.<read|write>.<expiry>.<signature>`.
    Token(TokenArgs),
}

/// `syncline-relay token`'s flags.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The relay's secret (the same as its --auth-secret).
    #[arg(
        long,
        env = "SYNCLINE_AUTH_SECRET",
        hide_env_values = true,
        value_name = "S"
    )]
    pub secret: String,

    /// The document: its URL (`syncline:<id>`, anything after `#` is
    /// ignored) or its bare base58 id.
    #[arg(long, value_name = "DOC_URL_OR_ID")]
    pub doc: String,

    /// `read` (subscribe, presence) or `write` (also push and snapshot).
    #[arg(long, value_parser = ["read", "write"])]
    pub rights: String,

    /// How long the token is valid: 90s, 30m, 1h, 7d (a bare number is
    /// seconds).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub ttl: String,
}

impl TokenArgs {
    /// The rights asked for.
    pub fn rights(&self) -> Rights {
        if self.rights == "write" {
            Rights::Write
        } else {
            Rights::Read
        }
    }
}

/// Flags of the relay server.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port. WebSocket clients
    /// connect to `ws://ADDR/` or `ws://ADDR/sync`.
    #[arg(
        long,
        env = "SYNCLINE_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8787"
    )]
    pub listen: String,

    /// Directory of the relay's database (created if missing). Keep it: it
    /// holds every document's log and the relay's epoch.
    #[arg(
        long,
        env = "SYNCLINE_DATA",
        value_name = "DIR",
        required_unless_present = "store",
        conflicts_with = "store"
    )]
    pub data: Option<PathBuf>,

    /// Keep the logs in Postgres instead of --data's SQLite file
    /// (postgres://USER@HOST:PORT/DATABASE), so several relays can share
    /// them. The schema is created or migrated at start.
    #[arg(long, env = "SYNCLINE_STORE", value_name = "URL")]
    pub store: Option<String>,

    /// Join a cluster of relays over this NATS server (nats://HOST:PORT):
    /// deltas committed on any relay reach subscribers on all of them, and
    /// presence too. Needs --store postgres://… shared by every relay.
    #[arg(long, env = "SYNCLINE_BUS", value_name = "URL")]
    pub bus: Option<String>,

    /// With --bus: how often this relay tells the others again which
    /// documents it follows (those its clients subscribe to), in
    /// milliseconds; each announcement lasts three times this. The others
    /// send it a push before its commit only while they know it follows
    /// the document, so a lost announcement delays delivery by up to this
    /// long (to the commit), and nothing else.
    #[arg(
        long,
        env = "SYNCLINE_BUS_REFRESH_MS",
        value_name = "MS",
        default_value_t = 2000,
        requires = "bus"
    )]
    pub bus_refresh_ms: u64,

    /// Also serve the static files of DIR over plain HTTP (`GET /` gives
    /// DIR/index.html), e.g. a demo app.
    #[arg(long, env = "SYNCLINE_SERVE", value_name = "DIR")]
    pub serve: Option<PathBuf>,

    /// Require signed access tokens, verified with this secret (32+
    /// random bytes, or the relay refuses to start; prefer the environment
    /// variable to the flag, which other users can see in the process
    /// list). To rotate, repeat the flag (the environment variable holds
    /// one): tokens signed with any of them are accepted. Without it the relay runs in OPEN mode: anyone who can
    /// connect reads and writes every document.
    #[arg(
        long,
        env = "SYNCLINE_AUTH_SECRET",
        hide_env_values = true,
        value_name = "S"
    )]
    pub auth_secret: Vec<String>,

    /// Refuse tokens expiring further out than this (90s, 30m, 1h, 7d).
    #[arg(
        long,
        env = "SYNCLINE_MAX_TOKEN_TTL",
        value_name = "DURATION",
        default_value = "7d"
    )]
    pub max_token_ttl: String,

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

    /// Largest WebSocket message accepted (1024 up to 16 MiB); a larger one
    /// ends the connection with Error{LimitExceeded} and close code 1009.
    #[arg(
        long,
        env = "SYNCLINE_MAX_FRAME_BYTES",
        value_name = "BYTES",
        default_value_t = MAX_FRAME_BYTES
    )]
    pub max_frame_bytes: usize,

    /// Most documents one connection may subscribe to at once; one more is
    /// refused with DocError{LimitExceeded}.
    #[arg(
        long,
        env = "SYNCLINE_MAX_SUBSCRIPTIONS",
        value_name = "N",
        default_value_t = 1000
    )]
    pub max_subscriptions: usize,

    /// Largest presence message, in bytes; a larger one is refused with
    /// DocError{LimitExceeded}.
    #[arg(
        long,
        env = "SYNCLINE_MAX_PRESENCE_BYTES",
        value_name = "BYTES",
        default_value_t = 16 * 1024
    )]
    pub max_presence_bytes: usize,

    /// Largest ephemeral message (sealed), in bytes; a larger one is
    /// refused with DocError{LimitExceeded}. Clients never send more than
    /// 65536.
    #[arg(
        long,
        env = "SYNCLINE_MAX_MESSAGE_BYTES",
        value_name = "BYTES",
        default_value_t = syncline_protocol::MAX_MESSAGE_BYTES
    )]
    pub max_message_bytes: usize,

    /// Ephemeral messages (and requests, replies) per second one
    /// connection may send, sustained (bursts of twice that); each one
    /// beyond is dropped and refused with DocError{RateLimited}. 0:
    /// unlimited.
    #[arg(
        long,
        env = "SYNCLINE_MESSAGES_PER_SEC",
        value_name = "N",
        default_value_t = 100
    )]
    pub messages_per_sec: u32,

    /// Frames per second one connection may send, sustained (bursts of
    /// twice that); beyond it the connection ends with
    /// Error{LimitExceeded} and close code 1013. 0: unlimited.
    #[arg(
        long,
        env = "SYNCLINE_RATE_FRAMES",
        value_name = "N",
        default_value_t = 1000
    )]
    pub rate_frames: u32,

    /// Bytes per second one connection may send, sustained (bursts of
    /// twice that, or of one largest frame); beyond it, as --rate-frames.
    /// 0: unlimited.
    #[arg(
        long,
        env = "SYNCLINE_RATE_BYTES",
        value_name = "BYTES",
        default_value_t = 32 * 1024 * 1024
    )]
    pub rate_bytes: u64,

    /// Caps, timeouts, quotas, /metrics access, allowed origins.
    #[command(flatten)]
    pub guard: GuardArgs,
}

impl ServeArgs {
    /// The configuration these flags describe. `Err` names a bad flag.
    pub fn config(&self) -> Result<Config, crate::auth::TokenError> {
        let data = self.data.clone().unwrap_or_default();
        let mut config = Config::new(data);
        config.store_url = self.store.clone();
        config.bus_url = self.bus.clone();
        config.bus_refresh = Duration::from_millis(self.bus_refresh_ms);
        config.serve_dir = self.serve.clone();
        config.queue_capacity = self.queue_capacity;
        config.page = PageLimits {
            max_items: self.page_max_items,
            max_bytes: self.page_max_bytes,
        };
        config.limits = ConnLimits {
            max_frame_bytes: self.max_frame_bytes,
            max_subscriptions: self.max_subscriptions,
            max_presence_bytes: self.max_presence_bytes,
            max_message_bytes: self.max_message_bytes,
            messages_per_sec: self.messages_per_sec,
            frames_per_sec: self.rate_frames,
            bytes_per_sec: self.rate_bytes,
        };
        config.guard = self.guard.guard();
        let secrets = self.auth_secret.iter().filter(|s| !s.is_empty());
        let secrets = secrets
            .map(|secret| Secret::new(secret.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        config.auth = match secrets.is_empty() {
            true => None,
            false => Some(Keys {
                secrets,
                max_ttl: crate::auth::parse_ttl(&self.max_token_ttl)?,
            }),
        };
        Ok(config.normalized())
    }
}

/// Everything the relay runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where the SQLite database lives (unused with `store_url`).
    pub data_dir: PathBuf,
    /// A `postgres://` URL: the logs live there instead of `data_dir`.
    pub store_url: Option<String>,
    /// A `nats://` URL: the cluster's bus (needs `store_url`).
    pub bus_url: Option<String>,
    /// How often the bus announces the documents followed here again (see
    /// [`crate::bus::follows`]).
    pub bus_refresh: Duration,
    /// A folder of static files to serve, if any.
    pub serve_dir: Option<PathBuf>,
    /// Bound of each connection's outgoing queue, in frames.
    pub queue_capacity: usize,
    /// Page bounds for catch-up reads and fan-out frames.
    pub page: PageLimits,
    /// Most deltas held for one subscriber while it catches up.
    pub max_pending: usize,
    /// How long shutdown waits for in-flight work and connections to close.
    pub shutdown_grace: Duration,
    /// Per-connection limits.
    pub limits: ConnLimits,
    /// The token secrets; `None` is open mode.
    pub auth: Option<Keys>,
    /// Caps, timeouts, quotas and access rules (see [`crate::guard`]).
    pub guard: Guard,
}

impl Config {
    /// Defaults, with the database in `data_dir`: open mode, default limits.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            store_url: None,
            bus_url: None,
            bus_refresh: crate::bus::REFRESH_EVERY,
            serve_dir: None,
            queue_capacity: 1024,
            page: PageLimits::default(),
            max_pending: HubLimits::default().max_pending,
            shutdown_grace: Duration::from_secs(5),
            limits: ConnLimits::default(),
            auth: None,
            guard: Guard::default(),
        }
    }

    /// Clamps every bound into the range the protocol allows.
    pub fn normalized(mut self) -> Config {
        self.queue_capacity = self.queue_capacity.max(1);
        self.page.max_items = self.page.max_items.clamp(1, MAX_DELTAS_PER_FRAME);
        self.page.max_bytes = self.page.max_bytes.max(1);
        self.limits = self.limits.normalized();
        self.guard = self.guard.normalized();
        self.bus_refresh = self
            .bus_refresh
            .clamp(Duration::from_millis(10), Duration::from_secs(86_400));
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
            "--max-frame-bytes",
            "1",
            "--auth-secret",
            "an auth secret for tests, 32 bytes or more",
            "--auth-secret",
            "the previous secret, still accepted for now",
        ]);
        assert!(cli.command.is_none());
        let config = cli.serve.config().unwrap();
        assert_eq!(config.page.max_items, MAX_DELTAS_PER_FRAME);
        assert_eq!(config.queue_capacity, 1);
        assert_eq!(config.limits.max_frame_bytes, 1024);
        assert_eq!(config.serve_dir, None);
        let keys = config.auth.unwrap();
        assert_eq!(keys.secrets.len(), 2);
        assert_eq!(keys.max_ttl, crate::auth::DEFAULT_MAX_TTL);
        let short = Cli::parse_from(["syncline-relay", "--data", "d", "--auth-secret", "s3cret"]);
        let refused = short.serve.config().unwrap_err().to_string();
        assert!(refused.contains("at least 32"), "{refused}");
    }

    #[test]
    fn the_token_subcommand_needs_no_data_dir() {
        let cli = Cli::try_parse_from([
            "syncline-relay",
            "token",
            "--secret",
            "s",
            "--doc",
            "syncline:abc",
            "--rights",
            "write",
        ])
        .unwrap();
        let Some(Command::Token(args)) = cli.command else {
            panic!("expected the token subcommand");
        };
        assert_eq!(args.rights(), Rights::Write);
        assert_eq!(args.ttl, "1h");
        assert!(
            Cli::try_parse_from(["syncline-relay", "--listen", "x"]).is_err(),
            "serving needs --data"
        );
        let cli = Cli::try_parse_from([
            "syncline-relay",
            "--store",
            "postgres://u@127.0.0.1/db",
            "--bus",
            "nats://127.0.0.1:4222",
        ])
        .unwrap();
        let config = cli.serve.config().unwrap();
        assert_eq!(
            config.store_url.as_deref(),
            Some("postgres://u@127.0.0.1/db")
        );
        assert_eq!(config.bus_url.as_deref(), Some("nats://127.0.0.1:4222"));
        assert!(
            Cli::try_parse_from(["syncline-relay", "--data", "d", "--store", "postgres://x"])
                .is_err(),
            "--store replaces --data"
        );
        assert!(
            Cli::try_parse_from([
                "syncline-relay",
                "token",
                "--secret",
                "s",
                "--doc",
                "d",
                "--rights",
                "admin"
            ])
            .is_err()
        );
    }
}
