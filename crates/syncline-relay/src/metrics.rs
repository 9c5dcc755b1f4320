//! Counters, gauges and a histogram, served as Prometheus text on
//! `GET /metrics`.
//!
//! Hand-rolled on atomics rather than the `prometheus` or `metrics` crates:
//! the relay needs a fixed set of about twenty series, known at compile
//! time, and the text exposition format is a few lines of `write!`. That
//! keeps the hot path at one relaxed atomic add, adds no dependency (the
//! `prometheus` crate pulls in protobuf support and a registry; `metrics`
//! needs an exporter crate with its own HTTP stack), and keeps the list of
//! metrics in one place, below, where `docs/relay.md` can mirror it.
//!
//! Every name is prefixed `syncline_`; counters end in `_total`.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.add(-1);
    }

    /// Adds `n` (which may be negative).
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the value.
    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the commit latency buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A latency histogram with the fixed [`LATENCY_BUCKETS`].
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// How many observations were recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }
}

/// Why an access was refused, a label of `syncline_auth_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No token was presented for the document.
    Missing,
    /// The token is malformed or its signature does not verify.
    Invalid,
    /// The token has expired.
    Expired,
    /// The token is for another document.
    WrongDoc,
    /// The token grants read, the request needs write.
    ReadOnly,
    /// A write without a valid proof of the document key (see
    /// `syncline_protocol::proof`), with or without a token.
    Unproven,
}

impl AuthFailure {
    const ALL: [AuthFailure; 6] = [
        AuthFailure::Missing,
        AuthFailure::Invalid,
        AuthFailure::Expired,
        AuthFailure::WrongDoc,
        AuthFailure::ReadOnly,
        AuthFailure::Unproven,
    ];

    fn label(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Invalid => "invalid",
            AuthFailure::Expired => "expired",
            AuthFailure::WrongDoc => "wrong_doc",
            AuthFailure::ReadOnly => "read_only",
            AuthFailure::Unproven => "unproven",
        }
    }
}

/// Which limit was hit, a label of `syncline_limit_exceeded_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A WebSocket message above the frame size limit.
    FrameSize,
    /// One subscription too many on a connection.
    Subscriptions,
    /// Frames per second on a connection.
    FrameRate,
    /// Bytes per second on a connection.
    ByteRate,
    /// A delta or snapshot too large to store.
    DeltaSize,
    /// A presence message too large to fan out.
    PresenceSize,
    /// An ephemeral message too large to relay.
    MessageSize,
    /// Ephemeral messages faster than `--messages-per-sec`.
    MessageRate,
    /// A connection refused: the relay holds `--max-connections`.
    Connections,
    /// A connection refused: its IP holds `--max-connections-per-ip`.
    ConnectionsPerIp,
    /// A connection closed for not sending `Hello` in time.
    HelloTimeout,
    /// A connection dropped for silence (pings unanswered) or for a
    /// socket that took no bytes for the idle timeout.
    IdleTimeout,
    /// A push refused: its document would pass `--doc-quota`.
    DocQuota,
    /// A push refused: the relay would pass `--total-quota`.
    TotalQuota,
}

impl Limit {
    const ALL: [Limit; 14] = [
        Limit::FrameSize,
        Limit::Subscriptions,
        Limit::FrameRate,
        Limit::ByteRate,
        Limit::DeltaSize,
        Limit::PresenceSize,
        Limit::MessageSize,
        Limit::MessageRate,
        Limit::Connections,
        Limit::ConnectionsPerIp,
        Limit::HelloTimeout,
        Limit::IdleTimeout,
        Limit::DocQuota,
        Limit::TotalQuota,
    ];

    fn label(self) -> &'static str {
        match self {
            Limit::FrameSize => "frame_size",
            Limit::Subscriptions => "subscriptions",
            Limit::FrameRate => "frame_rate",
            Limit::ByteRate => "byte_rate",
            Limit::DeltaSize => "delta_size",
            Limit::PresenceSize => "presence_size",
            Limit::MessageSize => "message_size",
            Limit::MessageRate => "message_rate",
            Limit::Connections => "connections",
            Limit::ConnectionsPerIp => "connections_per_ip",
            Limit::HelloTimeout => "hello_timeout",
            Limit::IdleTimeout => "idle_timeout",
            Limit::DocQuota => "doc_quota",
            Limit::TotalQuota => "total_quota",
        }
    }
}

/// Every metric of the relay.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open WebSocket connections.
    pub connections: Gauge,
    /// WebSocket connections accepted since start.
    pub connections_total: Counter,
    /// Documents with a log in the store.
    pub documents: Gauge,
    /// Document subscriptions across connections.
    pub subscriptions: Gauge,
    /// WebSocket messages received.
    pub frames_in: Counter,
    /// WebSocket messages sent.
    pub frames_out: Counter,
    /// Bytes of WebSocket messages received.
    pub bytes_in: Counter,
    /// Bytes of WebSocket messages sent.
    pub bytes_out: Counter,
    /// Deltas received in pushes (including re-pushed duplicates).
    pub deltas_in: Counter,
    /// Deltas stored for the first time.
    pub deltas_stored: Counter,
    /// Deltas sent to subscribers (catch-up and live).
    pub deltas_out: Counter,
    /// Snapshots stored.
    pub snapshots_stored: Counter,
    /// Presence messages received.
    pub presence_in: Counter,
    /// Presence messages queued to subscribers.
    pub presence_out: Counter,
    /// Presence messages dropped because a subscriber's queue was full.
    pub presence_dropped: Counter,
    /// Ephemeral messages received (and verified).
    pub messages_in: Counter,
    /// Ephemeral messages queued to subscribers.
    pub messages_out: Counter,
    /// Ephemeral messages dropped because a subscriber's queue was full.
    pub messages_dropped: Counter,
    /// Time from a push (or snapshot) reaching the store to its commit.
    pub commit_seconds: Histogram,
    /// Subscribers disconnected because they did not keep up.
    pub slow_consumer_disconnects: Counter,
    /// Requests refused for want of a valid token, by reason.
    auth_failures: [Counter; AuthFailure::ALL.len()],
    /// Requests refused by a limit, by limit.
    limit_exceeded: [Counter; Limit::ALL.len()],
    /// Connections closed for breaking the protocol.
    pub protocol_errors: Counter,
    /// Store operations that failed.
    pub store_errors: Counter,
    /// 1 while the store can commit, 0 while it cannot (Postgres lost).
    pub store_up: Gauge,
    /// 1 while connected to the bus (NATS), 0 otherwise or without one.
    pub bus_up: Gauge,
    /// Documents whose uncommitted pushes on other relays this relay
    /// receives over the bus (those with a subscriber here).
    pub bus_followed_docs: Gauge,
    /// (document, relay) pairs: the documents other relays announced they
    /// follow (this relay publishes uncommitted pushes to those only).
    pub bus_remote_follows: Gauge,
    /// Commit messages published to the bus.
    pub bus_out: Counter,
    /// Commit messages from other relays received over the bus.
    pub bus_in: Counter,
    /// Uncommitted pushes published to the bus (for the other relays'
    /// `Tentative` delivery).
    pub bus_tentative_out: Counter,
    /// Other relays' uncommitted pushes received over the bus (only those
    /// of documents subscribed here reach a relay).
    pub bus_tentative_in: Counter,
    /// Uncommitted pushes not published because no other relay follows
    /// their document.
    pub bus_tentative_unfollowed: Counter,
    /// Other relays' follow announcements ignored because the set of
    /// remote follows was full.
    pub bus_follows_ignored: Counter,
    /// Gaps in what the bus brought, repaired by reading the store.
    pub gap_repairs: Counter,
    /// Deltas read from the store by gap repairs.
    pub repaired_deltas: Counter,
}

impl Metrics {
    /// Counts a refused access.
    pub fn auth_failure(&self, reason: AuthFailure) {
        self.auth_failures[reason as usize].inc();
    }

    /// Refused accesses for `reason` so far.
    pub fn auth_failures(&self, reason: AuthFailure) -> u64 {
        self.auth_failures[reason as usize].get()
    }

    /// Counts a hit limit.
    pub fn limit_exceeded(&self, limit: Limit) {
        self.limit_exceeded[limit as usize].inc();
    }

    /// Hits of `limit` so far.
    pub fn limits_exceeded(&self, limit: Limit) -> u64 {
        self.limit_exceeded[limit as usize].get()
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric;
    /// `store_transactions` comes from the store.
    pub fn render(&self, store_transactions: u64) -> String {
        let mut out = String::with_capacity(4096);
        let gauges = [
            (
                "connections",
                "Open WebSocket connections.",
                self.connections.get(),
            ),
            (
                "documents",
                "Documents with a log in the store.",
                self.documents.get(),
            ),
            (
                "subscriptions",
                "Document subscriptions across all connections.",
                self.subscriptions.get(),
            ),
            (
                "store_up",
                "1 while the store can commit; 0 while it cannot (nothing is acknowledged).",
                self.store_up.get(),
            ),
            (
                "bus_up",
                "1 while connected to the bus (NATS); 0 otherwise or without --bus.",
                self.bus_up.get(),
            ),
            (
                "bus_followed_docs",
                "Documents whose other relays' uncommitted pushes this relay receives (those subscribed here).",
                self.bus_followed_docs.get(),
            ),
            (
                "bus_remote_follows",
                "(document, relay) pairs other relays follow, as announced: uncommitted pushes to those documents are published.",
                self.bus_remote_follows.get(),
            ),
        ];
        for (name, help, value) in gauges {
            header(&mut out, name, help, "gauge");
            let _ = writeln!(out, "syncline_{name} {value}");
        }
        let counters = [
            (
                "connections_total",
                "WebSocket connections accepted.",
                &self.connections_total,
            ),
            (
                "frames_in_total",
                "WebSocket messages received.",
                &self.frames_in,
            ),
            (
                "frames_out_total",
                "WebSocket messages sent.",
                &self.frames_out,
            ),
            (
                "bytes_in_total",
                "Bytes of WebSocket messages received.",
                &self.bytes_in,
            ),
            (
                "bytes_out_total",
                "Bytes of WebSocket messages sent.",
                &self.bytes_out,
            ),
            (
                "deltas_in_total",
                "Deltas received in pushes, duplicates included.",
                &self.deltas_in,
            ),
            (
                "deltas_stored_total",
                "Deltas stored for the first time.",
                &self.deltas_stored,
            ),
            (
                "deltas_out_total",
                "Deltas sent to subscribers, catch-up and live.",
                &self.deltas_out,
            ),
            (
                "snapshots_stored_total",
                "Client snapshots stored.",
                &self.snapshots_stored,
            ),
            (
                "presence_in_total",
                "Presence messages received.",
                &self.presence_in,
            ),
            (
                "presence_out_total",
                "Presence messages queued to subscribers.",
                &self.presence_out,
            ),
            (
                "presence_dropped_total",
                "Presence messages dropped: subscriber queue full.",
                &self.presence_dropped,
            ),
            (
                "messages_in_total",
                "Ephemeral messages received.",
                &self.messages_in,
            ),
            (
                "messages_out_total",
                "Ephemeral messages queued to subscribers.",
                &self.messages_out,
            ),
            (
                "messages_dropped_total",
                "Ephemeral messages dropped: subscriber queue full.",
                &self.messages_dropped,
            ),
            (
                "slow_consumer_disconnects_total",
                "Subscribers disconnected for not keeping up.",
                &self.slow_consumer_disconnects,
            ),
            (
                "protocol_errors_total",
                "Connections closed for breaking the protocol.",
                &self.protocol_errors,
            ),
            (
                "store_errors_total",
                "Store operations that failed.",
                &self.store_errors,
            ),
            (
                "bus_out_total",
                "Commit messages published to the bus.",
                &self.bus_out,
            ),
            (
                "bus_in_total",
                "Commit messages from other relays received over the bus.",
                &self.bus_in,
            ),
            (
                "bus_tentative_out_total",
                "Uncommitted pushes published to the bus.",
                &self.bus_tentative_out,
            ),
            (
                "bus_tentative_in_total",
                "Other relays' uncommitted pushes received over the bus.",
                &self.bus_tentative_in,
            ),
            (
                "bus_tentative_unfollowed_total",
                "Uncommitted pushes not published: no other relay follows their document.",
                &self.bus_tentative_unfollowed,
            ),
            (
                "bus_follows_ignored_total",
                "Other relays' follow announcements ignored: the set of remote follows was full.",
                &self.bus_follows_ignored,
            ),
            (
                "gap_repairs_total",
                "Gaps in what the bus brought, repaired from the store.",
                &self.gap_repairs,
            ),
            (
                "repaired_deltas_total",
                "Deltas read from the store by gap repairs.",
                &self.repaired_deltas,
            ),
        ];
        for (name, help, counter) in counters {
            header(&mut out, name, help, "counter");
            let _ = writeln!(out, "syncline_{name} {}", counter.get());
        }
        header(
            &mut out,
            "store_transactions_total",
            "Write transactions committed (group commit: fewer than pushes).",
            "counter",
        );
        let _ = writeln!(
            out,
            "syncline_store_transactions_total {store_transactions}"
        );

        header(
            &mut out,
            "auth_failures_total",
            "Requests refused for want of a valid token, by reason.",
            "counter",
        );
        for reason in AuthFailure::ALL {
            let _ = writeln!(
                out,
                "syncline_auth_failures_total{{reason=\"{}\"}} {}",
                reason.label(),
                self.auth_failures(reason)
            );
        }
        header(
            &mut out,
            "limit_exceeded_total",
            "Requests refused by a limit, by limit.",
            "counter",
        );
        for limit in Limit::ALL {
            let _ = writeln!(
                out,
                "syncline_limit_exceeded_total{{limit=\"{}\"}} {}",
                limit.label(),
                self.limits_exceeded(limit)
            );
        }

        let name = "commit_duration_seconds";
        header(
            &mut out,
            name,
            "Time from a write reaching the store to its durable commit.",
            "histogram",
        );
        let mut cumulative = 0;
        for (i, bucket) in self.commit_seconds.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            match LATENCY_BUCKETS.get(i) {
                Some(bound) => {
                    let _ = writeln!(out, "syncline_{name}_bucket{{le=\"{bound}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "syncline_{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.commit_seconds.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "syncline_{name}_sum {sum}");
        let _ = writeln!(out, "syncline_{name}_count {cumulative}");
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP syncline_{name} {help}");
    let _ = writeln!(out, "# TYPE syncline_{name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.connections.inc();
        metrics.deltas_in.add(3);
        metrics.auth_failure(AuthFailure::Expired);
        metrics.limit_exceeded(Limit::FrameRate);
        metrics.commit_seconds.observe(Duration::from_micros(300));
        metrics.commit_seconds.observe(Duration::from_millis(3));
        metrics.commit_seconds.observe(Duration::from_secs(60));
        let text = metrics.render(7);
        for line in [
            "# TYPE syncline_connections gauge",
            "syncline_connections 1",
            "syncline_deltas_in_total 3",
            "syncline_store_transactions_total 7",
            "syncline_auth_failures_total{reason=\"expired\"} 1",
            "syncline_auth_failures_total{reason=\"missing\"} 0",
            "syncline_limit_exceeded_total{limit=\"frame_rate\"} 1",
            "# TYPE syncline_commit_duration_seconds histogram",
            "syncline_commit_duration_seconds_bucket{le=\"0.0005\"} 1",
            "syncline_commit_duration_seconds_bucket{le=\"0.001\"} 1",
            "syncline_commit_duration_seconds_bucket{le=\"0.005\"} 2",
            "syncline_commit_duration_seconds_bucket{le=\"5\"} 2",
            "syncline_commit_duration_seconds_bucket{le=\"+Inf\"} 3",
            "syncline_commit_duration_seconds_count 3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert_eq!(metrics.commit_seconds.count(), 3);
        // Every sample line is `name[{labels}] value`, names prefixed.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("syncline_"), "{line}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
