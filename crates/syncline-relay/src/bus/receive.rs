//! What arrives on the bus from the other relays: commits, presence and
//! follow announcements on the cluster-wide subjects, uncommitted pushes on
//! the subjects of the documents subscribed here (followed as the hub's
//! interest changes, and announced: see [`super::follows`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{AbortHandle, Abortable, SelectAll};
use syncline_protocol::{DocId, RelayFrame, decode_relay};
use tokio::sync::{Notify, mpsc};

use super::follows::{Announcement, Followers, TTL_REFRESHES};
use super::held::Held;
use super::{
    DELTAS, MESSAGE, Outgoing, PRESENCE, RANGE, Sequencer, TENTATIVE, follows_subject, lock,
    tentative_subject,
};
use crate::hub::{Hub, REMOTE_ORIGIN};
use crate::metrics::Metrics;
use crate::store::Fanout;

/// The receiving half of a [`Bus`](super::Bus).
pub(super) struct Receiver {
    pub client: async_nats::Client,
    pub out: Outgoing,
    pub prefix: String,
    pub max_payload: usize,
    /// How often the documents followed here are announced again.
    pub refresh: Duration,
    pub sequencer: Sequencer,
    pub hub: Hub,
    pub held: Arc<Held>,
    pub followers: Arc<Mutex<Followers>>,
    pub metrics: Arc<Metrics>,
}

/// The tentative subjects followed now, by document.
struct Following {
    streams: SelectAll<Abortable<async_nats::Subscriber>>,
    docs: HashMap<DocId, AbortHandle>,
}

impl Receiver {
    /// Takes `cluster` (the cluster-wide subscription) and the documents
    /// whose interest changed, announces what this relay follows on every
    /// (re)connection (`connected`) and every `refresh`, until the bus goes
    /// away.
    pub async fn run(
        self,
        mut cluster: async_nats::Subscriber,
        mut interest: mpsc::UnboundedReceiver<DocId>,
        connected: Arc<Notify>,
    ) {
        let mut following = Following {
            streams: SelectAll::new(),
            docs: HashMap::new(),
        };
        let mut refresh =
            tokio::time::interval_at(tokio::time::Instant::now() + self.refresh, self.refresh);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Biased: an uncommitted push usually came before the commit
            // that is ready beside it; taking it first spares its
            // subscribers a duplicate.
            tokio::select! {
                biased;
                Some(doc) = interest.recv() => self.follow(doc, &mut following).await,
                Some(message) = following.streams.next(), if !following.streams.is_empty() => {
                    self.tentative(&message.payload);
                }
                message = cluster.next() => match message {
                    Some(message) => {
                        if self.cluster(&message.payload) {
                            self.announce_all(&following);
                        }
                    }
                    None => break,
                },
                () = connected.notified() => {
                    self.announce_all(&following);
                    self.announce(&Announcement::Ask);
                }
                _ = refresh.tick() => {
                    self.announce_all(&following);
                    let mut followers = lock(&self.followers);
                    followers.sweep(Instant::now());
                    self.metrics.bus_remote_follows.set(followers.len() as i64);
                }
            }
        }
        tracing::warn!("the bus subscription ended");
    }

    fn announce(&self, announcement: &Announcement) {
        let (kind, body) = announcement.encode();
        self.out.send(kind, follows_subject(&self.prefix), &body);
    }

    /// How long this relay's follows last once heard.
    fn ttl(&self) -> Duration {
        self.refresh * TTL_REFRESHES
    }

    /// Announces every document followed here.
    fn announce_all(&self, following: &Following) {
        let docs: Vec<DocId> = following.docs.keys().copied().collect();
        // Room for the kind, the sender and NATS's own framing.
        let max_body = self.max_payload.saturating_sub(64);
        for announcement in Announcement::follows(&docs, self.ttl(), max_body) {
            self.announce(&announcement);
        }
    }

    /// Follows `doc`'s uncommitted pushes while it has subscribers here,
    /// and stops when it has none.
    async fn follow(&self, doc: DocId, following: &mut Following) {
        let wanted = self.hub.has_subscribers(doc);
        if wanted == following.docs.contains_key(&doc) {
            return;
        }
        if !wanted {
            if let Some(handle) = following.docs.remove(&doc) {
                self.announce(&Announcement::Unfollow { docs: vec![doc] });
                // The stream ends, leaves the set and is dropped: NATS is
                // told to stop sending.
                handle.abort();
                self.metrics.bus_followed_docs.dec();
            }
            return;
        }
        match self
            .client
            .subscribe(tentative_subject(&self.prefix, doc))
            .await
        {
            Ok(subscriber) => {
                let (handle, registration) = AbortHandle::new_pair();
                following
                    .streams
                    .push(Abortable::new(subscriber, registration));
                following.docs.insert(doc, handle);
                // Announced and counted once the server has the
                // subscription (a round trip): from then on the other
                // relays' pushes to `doc` are sent here.
                if let Err(error) = self.client.flush().await {
                    tracing::debug!(%error, "cannot flush the bus");
                }
                self.announce(&Announcement::Follow {
                    ttl: self.ttl(),
                    docs: vec![doc],
                });
                self.metrics.bus_followed_docs.inc();
            }
            // Only the tentative shortcut is lost: commits still arrive.
            Err(error) => tracing::debug!(%doc, %error, "cannot follow a document's pushes"),
        }
    }

    /// The sender's id and frame of a message from another relay.
    fn open<'a>(&self, payload: &'a Bytes) -> Option<([u8; 16], &'a [u8])> {
        if payload.len() < 17 || payload[1..17] == self.out.id {
            return None;
        }
        let sender = payload[1..17].try_into().ok()?;
        Some((sender, &payload[17..]))
    }

    fn tentative(&self, payload: &Bytes) {
        let Some((sender, frame)) = self.open(payload) else {
            return;
        };
        self.metrics.bus_tentative_in.inc();
        match (payload[0], decode_relay(frame)) {
            (TENTATIVE, Ok(RelayFrame::Tentative { doc, deltas })) => {
                self.held.fan_out(&self.hub, sender, doc, deltas);
            }
            (kind, decoded) => unexpected(kind, decoded.is_ok()),
        }
    }

    /// A message on the cluster-wide subjects. Returns whether its sender
    /// asks for this relay's follows.
    fn cluster(&self, payload: &Bytes) -> bool {
        let Some((sender, body)) = self.open(payload) else {
            return false;
        };
        if let Some(announcement) = Announcement::decode(payload[0], body) {
            return self.heard(sender, announcement);
        }
        self.metrics.bus_in.inc();
        match (payload[0], decode_relay(body)) {
            (DELTAS, Ok(RelayFrame::Deltas { doc, items, .. })) => {
                self.sequencer.offer(&[Fanout {
                    doc,
                    origin: REMOTE_ORIGIN,
                    tentative: 0,
                    deltas: Arc::from(items),
                }])
            }
            (RANGE, Ok(RelayFrame::Committed { doc, seq, .. })) => self.sequencer.known(doc, seq),
            (PRESENCE, Ok(RelayFrame::Presence { doc, .. })) => {
                self.hub.remote_presence(doc, &Bytes::copy_from_slice(body));
            }
            (MESSAGE, Ok(RelayFrame::Message { doc, to, .. })) => {
                self.hub
                    .remote_message(doc, to, &Bytes::copy_from_slice(body));
            }
            (kind, decoded) => unexpected(kind, decoded.is_ok()),
        }
        false
    }

    /// Notes another relay's announcement; `true` if it asks for ours.
    fn heard(&self, sender: [u8; 16], announcement: Announcement) -> bool {
        let mut followers = lock(&self.followers);
        match announcement {
            Announcement::Follow { ttl, docs } => {
                let ignored = followers.follow(sender, &docs, Instant::now() + ttl);
                self.metrics.bus_follows_ignored.add(ignored as u64);
            }
            Announcement::Unfollow { docs } => followers.unfollow(sender, &docs),
            Announcement::Ask => return true,
        }
        self.metrics.bus_remote_follows.set(followers.len() as i64);
        false
    }
}

fn unexpected(kind: u8, decoded: bool) {
    tracing::warn!(kind, ok = decoded, "an unexpected message on the bus");
}
