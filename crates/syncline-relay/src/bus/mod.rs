//! The cluster bus: tells the other relays what this one is about to
//! commit and what it committed, over NATS core publish/subscribe
//! (`--bus nats://…`).
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
//! **Tentative delivery across relays.** A push that passed validation is
//! also published, before its commit, on `<prefix>-tentative.<doc>` (the
//! document's id in base 58) — but only when another relay has announced
//! that it follows the document ([`follows`]: a relay follows a document
//! while one of its clients subscribes to it, and subscribes to that
//! subject meanwhile). A push to a document no other relay follows costs
//! the bus nothing. A relay that receives it fans it out to its live
//! version 2 subscribers as `Tentative`, as if it had been pushed there,
//! and remembers who got it ([`Held`]) so the commit, when it comes (over
//! the bus or by a gap repair), sends those subscribers only the
//! `Committed`. To a client, delivery across relays looks exactly like
//! delivery on one relay: `Tentative` when the push arrives anywhere,
//! `Committed` once stored. A tentative message that is lost, late (after
//! the commit), never sent (its document's follow was not heard yet, or
//! was lost) or never followed by a commit (the pushing relay died, or its
//! commit failed) changes nothing that is promised: the commit path alone
//! still delivers everything, a late `Tentative` of a delta the client
//! logged is ignored by it, and an unconfirmed one is held and re-pushed
//! by its receivers, as on one relay whose commit failed.
//!
//! Messages (one byte of kind, the sender's 16-byte relay id, then a
//! protocol frame, so the codec is `syncline-protocol`'s):
//!
//! | kind | subject | frame | meaning |
//! |---|---|---|---|
//! | 1 | `commits` | `Deltas{doc, items}` | newly committed deltas, in sequence order |
//! | 2 | `commits` | `Committed{doc, after, seq}` | deltas `after+1 ..= seq` were committed but are too large for a message: read them from the store |
//! | 3 | `presence` | `Presence{doc, from, bytes}` | a subscriber's presence (empty: gone) |
//! | 4 | `-tentative.<doc>` | `Tentative{doc, deltas}` | a push about to be committed, sent only if another relay follows `doc` (a larger one is not sent: its commit carries it) |
//! | 5, 6, 7 | `follows` | (not a frame: see [`follows`]) | follow, unfollow, ask |
//! | 8 | `messages` | `Message{doc, from, to, bytes}` | an ephemeral message (protocol 4), for every relay's subscribers of `doc` (or `to`'s); never stored, lost if the bus is down |
//!
//! Messages go on one cluster-wide subject, like presence, rather than
//! the per-document one tentative pushes use: a relay hears them from the
//! moment a client subscribes, without waiting for its follow to reach the
//! others.

pub mod follows;
mod held;
mod receive;
mod sequencer;

pub use follows::{Followers, MAX_REMOTE_FOLLOWS, REFRESH_EVERY, TTL_REFRESHES};
pub use held::{Held, MAX_PER_RELAY, MAX_RELAYS};
pub use sequencer::{GAP_GRACE, POLL_EVERY, Sequencer};

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use syncline_protocol::{DocId, PushDelta, RelayFrame, encode_relay};
use tokio::sync::{Notify, mpsc};

use crate::hub::{Hub, Peers};
use crate::metrics::Metrics;
use crate::store::{Fanout, PageLimits, Publish, Store};

const DELTAS: u8 = 1;
const RANGE: u8 = 2;
const PRESENCE: u8 = 3;
const TENTATIVE: u8 = 4;
const MESSAGE: u8 = 8;

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
    out: Outgoing,
    /// Documents whose subscribers here changed (to the receiver, which
    /// follows their tentative subjects).
    interest: mpsc::UnboundedSender<DocId>,
    /// What the other relays follow (kept by the receiver).
    followers: Arc<Mutex<Followers>>,
    prefix: String,
    max_payload: usize,
    metrics: Arc<Metrics>,
}

/// The subject of `doc`'s uncommitted pushes.
fn tentative_subject(prefix: &str, doc: DocId) -> String {
    format!("{prefix}-tentative.{doc}")
}

/// The subject of follow announcements.
fn follows_subject(prefix: &str) -> String {
    format!("{prefix}.follows")
}

fn lock(followers: &Mutex<Followers>) -> MutexGuard<'_, Followers> {
    // Every change to the set is complete or not made.
    followers.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The way out to the bus: messages stamped with this relay's id, queued
/// for the send task (so publishing never waits).
#[derive(Clone)]
struct Outgoing {
    queue: mpsc::UnboundedSender<(String, Bytes)>,
    id: [u8; 16],
}

impl Outgoing {
    fn send(&self, kind: u8, subject: String, body: &[u8]) {
        let mut message = Vec::with_capacity(17 + body.len());
        message.push(kind);
        message.extend_from_slice(&self.id);
        message.extend_from_slice(body);
        let _ = self.queue.send((subject, Bytes::from(message)));
    }
}

impl Bus {
    /// Connects to `url`, subscribes, and starts feeding `hub` (through a
    /// [`Sequencer`] that repairs from `store`), announcing the documents
    /// followed here every `refresh` ([`follows`]). Fails at once if the
    /// server cannot be reached; later outages are retried for ever.
    pub async fn connect(
        url: &str,
        hub: Hub,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        page: PageLimits,
        refresh: Duration,
    ) -> Result<Arc<Bus>, BusError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| BusError::Connect {
            url: url.to_string(),
            why: e.to_string(),
        })?;
        // Each (re)connection: announce what this relay follows and ask
        // the others for theirs (announcements may have been lost).
        let connected = Arc::new(Notify::new());
        let on_connect = Arc::clone(&connected);
        // No echo: a relay's own messages never come back to it.
        let options = async_nats::ConnectOptions::new()
            .name("syncline-relay")
            .no_echo()
            .event_callback(move |event| {
                if matches!(event, async_nats::Event::Connected) {
                    on_connect.notify_one();
                }
                async {}
            })
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
        let held = Held::new();
        let sequencer = Sequencer::start(
            hub.clone(),
            store,
            Arc::clone(&metrics),
            page,
            Arc::clone(&held),
        );
        let (queue, outgoing) = mpsc::unbounded_channel();
        let out = Outgoing { queue, id };
        let (interest, interest_changes) = mpsc::unbounded_channel();
        let max_payload = client.server_info().max_payload.max(4096);
        let followers = Arc::new(Mutex::new(Followers::new()));
        let bus = Arc::new(Bus {
            client: client.clone(),
            sequencer: sequencer.clone(),
            out: out.clone(),
            interest,
            followers: Arc::clone(&followers),
            prefix: prefix.clone(),
            max_payload,
            metrics: Arc::clone(&metrics),
        });
        tokio::spawn(send_loop(client.clone(), outgoing));
        let receiver = receive::Receiver {
            client,
            out,
            prefix,
            max_payload,
            refresh,
            sequencer,
            hub: hub.clone(),
            held,
            followers,
            metrics,
        };
        tokio::spawn(receiver.run(subscription, interest_changes, connected));
        hub.set_peers(Arc::new(Link(Arc::downgrade(&bus))));
        tracing::info!(%url, "connected to the NATS bus");
        Ok(bus)
    }

    /// Whether the bus is connected now.
    pub fn is_up(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn send(&self, kind: u8, subject: String, frame: &[u8]) {
        self.out.send(kind, subject, frame);
    }

    /// Whether another relay follows `doc` now.
    fn followed(&self, doc: DocId) -> bool {
        lock(&self.followers).followed(doc, Instant::now())
    }

    /// Whether deltas of these sizes fit in one message.
    fn fits<'a>(&self, sizes: impl Iterator<Item = &'a Vec<u8>>) -> bool {
        let bytes: usize = sizes.map(|bytes| bytes.len() + 48).sum();
        bytes + 64 < self.max_payload
    }
}

/// The hub's way to the bus, without keeping it alive.
struct Link(Weak<Bus>);

impl Peers for Link {
    fn presence(&self, _doc: DocId, frame: &Bytes) {
        if let Some(bus) = self.0.upgrade() {
            bus.send(PRESENCE, format!("{}.presence", bus.prefix), frame);
            bus.metrics.bus_out.inc();
        }
    }

    fn message(&self, _doc: DocId, frame: &Bytes) {
        if let Some(bus) = self.0.upgrade() {
            if frame.len() + 64 >= bus.max_payload {
                return; // larger than NATS takes: this relay's subscribers only
            }
            bus.send(MESSAGE, format!("{}.messages", bus.prefix), frame);
            bus.metrics.bus_out.inc();
        }
    }

    fn tentative(&self, doc: DocId, deltas: &mut Vec<PushDelta>) {
        let Some(bus) = self.0.upgrade() else {
            return;
        };
        if deltas.is_empty() || !bus.fits(deltas.iter().map(|d| &d.bytes)) {
            return;
        }
        if !bus.followed(doc) {
            bus.metrics.bus_tentative_unfollowed.inc();
            return;
        }
        // Moved into the frame to encode it and back: no copy of the bytes.
        let frame = RelayFrame::Tentative {
            doc,
            deltas: std::mem::take(deltas),
        };
        let encoded = encode_relay(&frame);
        if let RelayFrame::Tentative { deltas: taken, .. } = frame {
            *deltas = taken;
        }
        bus.send(TENTATIVE, tentative_subject(&bus.prefix, doc), &encoded);
        bus.metrics.bus_tentative_out.inc();
    }

    fn interest(&self, doc: DocId) {
        if let Some(bus) = self.0.upgrade() {
            let _ = bus.interest.send(doc);
        }
    }
}

impl Publish for Bus {
    /// This relay's group commits: to its own hub (in order, through the
    /// sequencer), then to the other relays.
    fn publish(&self, fanouts: &[Fanout]) {
        self.sequencer.offer(fanouts);
        let subject = || format!("{}.commits", self.prefix);
        for fanout in fanouts {
            let (Some(first), Some(last)) = (fanout.deltas.first(), fanout.deltas.last()) else {
                continue;
            };
            if self.fits(fanout.deltas.iter().map(|d| &d.bytes)) {
                let frame = encode_relay(&RelayFrame::Deltas {
                    doc: fanout.doc,
                    items: fanout.deltas.to_vec(),
                    caught_up: true,
                });
                self.send(DELTAS, subject(), &frame);
            } else {
                let frame = encode_relay(&RelayFrame::Committed {
                    doc: fanout.doc,
                    after: first.seq - 1,
                    seq: last.seq,
                    ids: Vec::new(),
                });
                self.send(RANGE, subject(), &frame);
            }
            self.metrics.bus_out.inc();
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
