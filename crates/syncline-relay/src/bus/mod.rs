//! The cluster bus: tells the other relays what this one committed, over
//! NATS core publish/subscribe (`--bus nats://…`).
//!
//! Postgres is the truth; the bus is a hint that makes cross-relay delivery
//! fast. Each relay publishes every group commit's new deltas on
//! `<prefix>.commits` and every presence change on `<prefix>.presence`,
//! and subscribes to both. What arrives from another relay goes through
//! the [`Sequencer`], with this relay's own commits, so the hub gets each
//! document in sequence order with nothing missing and nothing twice; what
//! the bus lost (NATS down, a slow consumer cut off) the sequencer reads
//! back from the store by sequence.
//!
//! Messages (one byte of kind, the sender's 16-byte relay id, then a
//! protocol frame, so the codec is `syncline-protocol`'s):
//!
//! | kind | frame | meaning |
//! |---|---|---|
//! | 1 | `Deltas{doc, items}` | newly committed deltas, in sequence order |
//! | 2 | `Committed{doc, after, seq}` | deltas `after+1 ..= seq` were committed but are too large for a message: read them from the store |
//! | 3 | `Presence{doc, from, bytes}` | a subscriber's presence (empty: gone) |
//!
//! Remote deltas reach subscribers here once committed: as `Deltas`
//! (version 1) or `Tentative` + `Committed` (version 2). Tentative
//! delivery before the commit stays within a relay: sending uncommitted
//! pushes over the bus would cost a second message per push for a gain
//! smaller than the bus's own latency.

mod sequencer;

pub use sequencer::{GAP_GRACE, POLL_EVERY, Sequencer};

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::StreamExt;
use syncline_protocol::{RelayFrame, decode_relay, encode_relay};
use tokio::sync::mpsc;

use crate::hub::{Hub, REMOTE_ORIGIN};
use crate::metrics::Metrics;
use crate::store::{Fanout, PageLimits, Publish, Store};

const DELTAS: u8 = 1;
const RANGE: u8 = 2;
const PRESENCE: u8 = 3;

/// The subject prefix, shared by every relay of a cluster.
pub const DEFAULT_PREFIX: &str = "syncline";

/// Why the bus could not start.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The URL or the server is wrong or unreachable.
    #[error(
        "cannot connect to NATS at {url}: {why}; check that nats-server runs and the URL is right (nats://HOST:PORT)"
    )]
    Connect { url: String, why: String },
    /// The subscription was refused.
    #[error("cannot subscribe on NATS at {url}: {why}")]
    Subscribe { url: String, why: String },
}

/// A relay's connection to the cluster bus.
pub struct Bus {
    client: async_nats::Client,
    sequencer: Sequencer,
    outgoing: mpsc::UnboundedSender<(String, Bytes)>,
    id: [u8; 16],
    prefix: String,
    max_payload: usize,
    metrics: Arc<Metrics>,
}

impl Bus {
    /// Connects to `url`, subscribes, and starts feeding `hub` (through a
    /// [`Sequencer`] that repairs from `store`). Fails at once if the
    /// server cannot be reached; later outages are retried for ever.
    pub async fn connect(
        url: &str,
        hub: Hub,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        page: PageLimits,
    ) -> Result<Arc<Bus>, BusError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| BusError::Connect {
            url: url.to_string(),
            why: e.to_string(),
        })?;
        let options = async_nats::ConnectOptions::new()
            .name("syncline-relay")
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64 * 100).min(1000))
            });
        let client = options.connect(url).await.map_err(|e| BusError::Connect {
            url: url.to_string(),
            why: e.to_string(),
        })?;
        let prefix = DEFAULT_PREFIX.to_string();
        let subscription =
            client
                .subscribe(format!("{prefix}.>"))
                .await
                .map_err(|e| BusError::Subscribe {
                    url: url.to_string(),
                    why: e.to_string(),
                })?;
        let sequencer = Sequencer::start(hub.clone(), store, Arc::clone(&metrics), page);
        let (outgoing, queue) = mpsc::unbounded_channel();
        let max_payload = client.server_info().max_payload.max(4096);
        let bus = Arc::new(Bus {
            client: client.clone(),
            sequencer: sequencer.clone(),
            outgoing,
            id,
            prefix,
            max_payload,
            metrics: Arc::clone(&metrics),
        });
        tokio::spawn(send_loop(client, queue));
        tokio::spawn(receive_loop(
            subscription,
            id,
            sequencer,
            hub.clone(),
            metrics,
        ));
        let sink = Arc::downgrade(&bus);
        hub.set_presence_sink(Arc::new(move |_doc, frame| {
            if let Some(bus) = sink.upgrade() {
                bus.send(PRESENCE, "presence", frame);
            }
        }));
        tracing::info!(%url, "connected to the NATS bus");
        Ok(bus)
    }

    /// Whether the bus is connected now.
    pub fn is_up(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn send(&self, kind: u8, subject: &str, frame: &[u8]) {
        let mut message = Vec::with_capacity(17 + frame.len());
        message.push(kind);
        message.extend_from_slice(&self.id);
        message.extend_from_slice(frame);
        let subject = format!("{}.{subject}", self.prefix);
        if self.outgoing.send((subject, Bytes::from(message))).is_ok() {
            self.metrics.bus_out.inc();
        }
    }
}

impl Publish for Bus {
    /// This relay's group commits: to its own hub (in order, through the
    /// sequencer), then to the other relays.
    fn publish(&self, fanouts: &[Fanout]) {
        self.sequencer.offer(fanouts);
        for fanout in fanouts {
            let (Some(first), Some(last)) = (fanout.deltas.first(), fanout.deltas.last()) else {
                continue;
            };
            let bytes: usize = fanout.deltas.iter().map(|d| d.bytes.len() + 48).sum();
            if bytes + 64 < self.max_payload {
                let frame = encode_relay(&RelayFrame::Deltas {
                    doc: fanout.doc,
                    items: fanout.deltas.to_vec(),
                    caught_up: true,
                });
                self.send(DELTAS, "commits", &frame);
            } else {
                let frame = encode_relay(&RelayFrame::Committed {
                    doc: fanout.doc,
                    after: first.seq - 1,
                    seq: last.seq,
                    ids: Vec::new(),
                });
                self.send(RANGE, "commits", &frame);
            }
        }
    }
}

async fn send_loop(
    client: async_nats::Client,
    mut queue: mpsc::UnboundedReceiver<(String, Bytes)>,
) {
    while let Some((subject, payload)) = queue.recv().await {
        if let Err(error) = client.publish(subject, payload).await {
            // Lost: the other relays repair from the store.
            tracing::debug!(%error, "cannot publish on the bus");
        }
    }
}

async fn receive_loop(
    mut subscription: async_nats::Subscriber,
    id: [u8; 16],
    sequencer: Sequencer,
    hub: Hub,
    metrics: Arc<Metrics>,
) {
    while let Some(message) = subscription.next().await {
        let payload = &message.payload;
        if payload.len() < 17 || payload[1..17] == id {
            continue;
        }
        metrics.bus_in.inc();
        let frame = &payload[17..];
        match (payload[0], decode_relay(frame)) {
            (DELTAS, Ok(RelayFrame::Deltas { doc, items, .. })) => sequencer.offer(&[Fanout {
                doc,
                origin: REMOTE_ORIGIN,
                tentative: 0,
                deltas: Arc::from(items),
            }]),
            (RANGE, Ok(RelayFrame::Committed { doc, seq, .. })) => sequencer.known(doc, seq),
            (PRESENCE, Ok(RelayFrame::Presence { doc, .. })) => {
                hub.remote_presence(doc, &Bytes::copy_from_slice(frame));
            }
            (kind, decoded) => {
                tracing::warn!(
                    kind,
                    ok = decoded.is_ok(),
                    "an unexpected message on the bus"
                )
            }
        }
    }
    tracing::warn!("the bus subscription ended");
}
