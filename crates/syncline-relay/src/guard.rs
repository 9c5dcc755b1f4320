//! The relay's bounds on what clients can hold: connections (in all and
//! per IP address), time (before `Hello`, idle), outgoing bytes, stored
//! bytes, who may upgrade (`Origin`) and who may read `/metrics`.
//!
//! | bound                        | flag                          | on excess                                             |
//! |------------------------------|-------------------------------|-------------------------------------------------------|
//! | open connections             | `--max-connections`           | `Error{LimitExceeded, fatal}`, close 1013             |
//! | open connections per IP      | `--max-connections-per-ip`    | `Error{LimitExceeded, fatal}`, close 1013             |
//! | time to `Hello`              | `--hello-timeout`             | `Error{UnexpectedFrame, fatal}`, close 1002           |
//! | silence (pings unanswered)   | `--idle-timeout`              | dropped                                               |
//! | unsent bytes per connection  | `--queue-bytes`               | kicked (close 1013 if the socket takes it)            |
//! | stored bytes, per document   | `--doc-quota`                 | `DocError{doc, QuotaExceeded}` (`LimitExceeded` < v3) |
//! | stored bytes, in all         | `--total-quota`               | as `--doc-quota`                                      |
//! | WebSocket `Origin`           | `--allow-origin`              | HTTP 403                                              |
//!
//! The flags are [`GuardArgs`], flattened into the relay's command line;
//! [`Guard`] is what the relay runs with; [`Gate`] counts connections.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::{HeaderMap, header};
use clap::Args;

use crate::metrics::{Limit, Metrics};

/// The guard flags of `syncline-relay` (see the module docs).
#[derive(Debug, Clone, Args)]
pub struct GuardArgs {
    /// Most WebSocket connections open at once; one more is told
    /// Error{LimitExceeded} and closed with 1013.
    #[arg(
        long,
        env = "SYNCLINE_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 10_000
    )]
    pub max_connections: usize,

    /// Most WebSocket connections open at once from one IP address.
    #[arg(
        long,
        env = "SYNCLINE_MAX_CONNECTIONS_PER_IP",
        value_name = "N",
        default_value_t = 256
    )]
    pub max_connections_per_ip: usize,

    /// Seconds a new connection has to send Hello before it is closed.
    #[arg(
        long,
        env = "SYNCLINE_HELLO_TIMEOUT",
        value_name = "SECS",
        default_value_t = 10
    )]
    pub hello_timeout: u64,

    /// Seconds of silence after which a connection is dropped. The relay
    /// pings a quiet client (a WebSocket ping) after half of it; any answer
    /// counts. A socket that takes none of the relay's bytes for as long
    /// is dropped too.
    #[arg(
        long,
        env = "SYNCLINE_IDLE_TIMEOUT",
        value_name = "SECS",
        default_value_t = 60
    )]
    pub idle_timeout: u64,

    /// Encoded bytes queued per connection before a slow reader is
    /// disconnected (besides --queue-capacity frames).
    #[arg(
        long,
        env = "SYNCLINE_QUEUE_BYTES",
        value_name = "BYTES",
        default_value_t = 32 * 1024 * 1024
    )]
    pub queue_bytes: usize,

    /// Most delta and snapshot bytes stored per document; a push beyond
    /// it is refused with DocError{QuotaExceeded}. 0: no quota.
    #[arg(
        long,
        env = "SYNCLINE_DOC_QUOTA",
        value_name = "BYTES",
        default_value_t = 1024 * 1024 * 1024
    )]
    pub doc_quota: u64,

    /// Most delta and snapshot bytes stored in all; as --doc-quota.
    /// 0: no quota.
    #[arg(
        long,
        env = "SYNCLINE_TOTAL_QUOTA",
        value_name = "BYTES",
        default_value_t = 0
    )]
    pub total_quota: u64,

    /// Serve /metrics on this address only, instead of on --listen.
    /// The relay prints `syncline-relay metrics on HOST:PORT` as its
    /// second stdout line.
    #[arg(long, env = "SYNCLINE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,

    /// Serve /metrics on --listen to requests with
    /// `Authorization: Bearer T` only.
    #[arg(
        long,
        env = "SYNCLINE_METRICS_TOKEN",
        hide_env_values = true,
        value_name = "T"
    )]
    pub metrics_token: Option<String>,

    /// Accept WebSocket upgrades from pages of these origins only
    /// (`https://app.example.com`; repeat the flag or separate with
    /// commas). Requests without an Origin header (not from a browser)
    /// are accepted. Default: every origin.
    #[arg(
        long,
        env = "SYNCLINE_ALLOW_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub allow_origin: Vec<String>,
}

impl GuardArgs {
    /// The guard these flags describe.
    pub fn guard(&self) -> Guard {
        Guard {
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            hello_timeout: Duration::from_secs(self.hello_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            queue_bytes: self.queue_bytes,
            doc_quota: self.doc_quota,
            total_quota: self.total_quota,
            metrics: match (&self.metrics_listen, &self.metrics_token) {
                (Some(addr), _) => MetricsAccess::Listener(addr.clone()),
                (None, Some(token)) => MetricsAccess::Token(token.clone()),
                (None, None) => MetricsAccess::Loopback,
            },
            allow_origins: self
                .allow_origin
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
        }
    }
}

/// Who may read `/metrics`.
#[derive(Clone, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Requests on `--listen` from a loopback address only (the default).
    Loopback,
    /// Requests on `--listen` with `Authorization: Bearer <token>`.
    Token(String),
    /// Anyone on this separate address; none on `--listen`.
    Listener(String),
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricsAccess::Loopback => f.write_str("Loopback"),
            MetricsAccess::Token(_) => f.write_str("Token(..)"),
            MetricsAccess::Listener(addr) => write!(f, "Listener({addr})"),
        }
    }
}

impl MetricsAccess {
    /// Whether a request to `/metrics` on the public listener, from `peer`
    /// with `headers`, may be answered.
    pub fn allows(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
        match self {
            MetricsAccess::Loopback => peer.is_some_and(|ip| ip.is_loopback()),
            MetricsAccess::Token(token) => headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())),
            MetricsAccess::Listener(_) => false,
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bounds the relay runs with (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections open at once from one IP address.
    pub max_connections_per_ip: usize,
    /// How long a connection may take to send `Hello`.
    pub hello_timeout: Duration,
    /// How long a connection may stay silent (pinged after half of it),
    /// and how long its socket may refuse the relay's bytes.
    pub idle_timeout: Duration,
    /// Encoded bytes queued per connection before it is kicked.
    pub queue_bytes: usize,
    /// Stored bytes per document (0: none).
    pub doc_quota: u64,
    /// Stored bytes in all (0: none).
    pub total_quota: u64,
    /// Who may read `/metrics`.
    pub metrics: MetricsAccess,
    /// Origins allowed to upgrade (empty: all).
    pub allow_origins: Vec<String>,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            max_connections: 10_000,
            max_connections_per_ip: 256,
            hello_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            queue_bytes: 32 * 1024 * 1024,
            doc_quota: 1024 * 1024 * 1024,
            total_quota: 0,
            metrics: MetricsAccess::Loopback,
            allow_origins: Vec::new(),
        }
    }
}

impl Guard {
    /// Clamps the bounds into workable ranges.
    pub fn normalized(mut self) -> Guard {
        self.max_connections = self.max_connections.max(1);
        self.max_connections_per_ip = self.max_connections_per_ip.max(1);
        self.hello_timeout = self.hello_timeout.max(Duration::from_millis(100));
        self.idle_timeout = self.idle_timeout.max(Duration::from_millis(200));
        self.queue_bytes = self.queue_bytes.max(1024);
        self
    }

    /// Whether a WebSocket upgrade with these headers may proceed.
    pub fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        if self.allow_origins.is_empty() {
            return true;
        }
        match headers.get(header::ORIGIN) {
            // Not a browser: Origin is a browser's promise, nothing more.
            None => true,
            Some(origin) => origin.to_str().is_ok_and(|origin| {
                let origin = origin.trim_end_matches('/');
                self.allow_origins.iter().any(|allowed| allowed == origin)
            }),
        }
    }
}

/// Why [`Gate::enter`] refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GateRefused {
    /// The relay holds its maximum of connections.
    #[error("this relay holds its maximum of {0} connections: reconnect later, with backoff")]
    Full(usize),
    /// The client's IP address holds its maximum of connections.
    #[error(
        "your address holds this relay's maximum of {0} connections: close some, or reconnect later"
    )]
    PerIp(usize),
}

/// Counts open connections, in all and per IP address.
#[derive(Debug, Default)]
pub struct Gate {
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; leaving the gate when dropped.
#[derive(Debug)]
pub struct Ticket {
    gate: Arc<Gate>,
    ip: Option<IpAddr>,
}

impl Gate {
    /// Admits a connection from `peer` under `guard`'s caps, counting a
    /// refusal in `metrics`.
    pub fn enter(
        self: &Arc<Gate>,
        peer: Option<SocketAddr>,
        guard: &Guard,
        metrics: &Metrics,
    ) -> Result<Ticket, GateRefused> {
        let ip = peer.map(|peer| peer.ip());
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let (total, per_ip) = &mut *open;
        if *total >= guard.max_connections {
            metrics.limit_exceeded(Limit::Connections);
            return Err(GateRefused::Full(guard.max_connections));
        }
        if let Some(ip) = ip {
            let count = per_ip.entry(ip).or_insert(0);
            if *count >= guard.max_connections_per_ip {
                metrics.limit_exceeded(Limit::ConnectionsPerIp);
                return Err(GateRefused::PerIp(guard.max_connections_per_ip));
            }
            *count += 1;
        }
        *total += 1;
        Ok(Ticket {
            gate: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self
            .gate
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (total, per_ip) = &mut *open;
        *total -= 1;
        if let Some(ip) = self.ip
            && let Some(count) = per_ip.get_mut(&ip)
        {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_caps_in_all_and_per_ip_and_frees_on_drop() {
        let guard = Guard {
            max_connections: 3,
            max_connections_per_ip: 2,
            ..Guard::default()
        };
        let metrics = Metrics::default();
        let gate = Arc::new(Gate::default());
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:1".parse().unwrap();
        let a1 = gate.enter(Some(a), &guard, &metrics).unwrap();
        let _a2 = gate.enter(Some(a), &guard, &metrics).unwrap();
        assert_eq!(
            gate.enter(Some(a), &guard, &metrics).unwrap_err(),
            GateRefused::PerIp(2)
        );
        let _b1 = gate.enter(Some(b), &guard, &metrics).unwrap();
        assert_eq!(
            gate.enter(Some(b), &guard, &metrics).unwrap_err(),
            GateRefused::Full(3)
        );
        drop(a1);
        let _a3 = gate.enter(Some(a), &guard, &metrics).unwrap();
    }

    #[test]
    fn origins_and_metrics_access() {
        let args = GuardArgs {
            max_connections: 1,
            max_connections_per_ip: 1,
            hello_timeout: 1,
            idle_timeout: 1,
            queue_bytes: 1,
            doc_quota: 0,
            total_quota: 0,
            metrics_listen: None,
            metrics_token: Some("t0ken".into()),
            allow_origin: vec!["https://app.example.com/".into()],
        };
        let guard = args.guard();
        let mut headers = HeaderMap::new();
        assert!(guard.origin_allowed(&headers), "no Origin: not a browser");
        headers.insert(header::ORIGIN, "https://app.example.com".parse().unwrap());
        assert!(guard.origin_allowed(&headers));
        headers.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!guard.origin_allowed(&headers));

        let local = Some("127.0.0.1".parse().unwrap());
        assert!(!guard.metrics.allows(local, &headers), "a token is needed");
        headers.insert(header::AUTHORIZATION, "Bearer t0ken".parse().unwrap());
        assert!(guard.metrics.allows(None, &headers));
        headers.insert(header::AUTHORIZATION, "Bearer t0ke".parse().unwrap());
        assert!(!guard.metrics.allows(None, &headers));
        assert!(MetricsAccess::Loopback.allows(local, &HeaderMap::new()));
        let remote = Some("192.0.2.1".parse().unwrap());
        assert!(!MetricsAccess::Loopback.allows(remote, &HeaderMap::new()));
        assert_eq!(format!("{:?}", guard.metrics), "Token(..)");
    }
}
