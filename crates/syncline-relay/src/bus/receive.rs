//! What arrives on the bus from the other relays: commits and presence on
//! the cluster-wide subjects, uncommitted pushes on the subjects of the
//! documents subscribed here (followed as the hub's interest changes).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{AbortHandle, Abortable, SelectAll};
use syncline_protocol::{DocId, RelayFrame, decode_relay};
use tokio::sync::mpsc;

use super::held::Held;
use super::{DELTAS, PRESENCE, RANGE, Sequencer, TENTATIVE, tentative_subject};
use crate::hub::{Hub, REMOTE_ORIGIN};
use crate::metrics::Metrics;
use crate::store::Fanout;

/// The receiving half of a [`Bus`](super::Bus).
pub(super) struct Receiver {
    pub client: async_nats::Client,
    pub id: [u8; 16],
    pub prefix: String,
    pub sequencer: Sequencer,
    pub hub: Hub,
    pub held: Arc<Held>,
    pub metrics: Arc<Metrics>,
}

/// The tentative subjects followed now, by document.
struct Following {
    streams: SelectAll<Abortable<async_nats::Subscriber>>,
    docs: HashMap<DocId, AbortHandle>,
}

impl Receiver {
    /// Takes `commits` (the cluster-wide subscription) and the documents
    /// whose interest changed, until the bus goes away.
    pub async fn run(
        self,
        mut commits: async_nats::Subscriber,
        mut interest: mpsc::UnboundedReceiver<DocId>,
    ) {
        let mut following = Following {
            streams: SelectAll::new(),
            docs: HashMap::new(),
        };
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
                message = commits.next() => match message {
                    Some(message) => self.commit(&message.payload),
                    None => break,
                },
            }
        }
        tracing::warn!("the bus subscription ended");
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
                // Counted once the server has the subscription (a round
                // trip): from then on the other relays' pushes to `doc`
                // are sent here.
                if let Err(error) = self.client.flush().await {
                    tracing::debug!(%error, "cannot flush the bus");
                }
                self.metrics.bus_followed_docs.inc();
            }
            // Only the tentative shortcut is lost: commits still arrive.
            Err(error) => tracing::debug!(%doc, %error, "cannot follow a document's pushes"),
        }
    }

    /// The sender's id and frame of a message from another relay.
    fn open<'a>(&self, payload: &'a Bytes) -> Option<([u8; 16], &'a [u8])> {
        if payload.len() < 17 || payload[1..17] == self.id {
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

    fn commit(&self, payload: &Bytes) {
        let Some((_, frame)) = self.open(payload) else {
            return;
        };
        self.metrics.bus_in.inc();
        match (payload[0], decode_relay(frame)) {
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
                self.hub
                    .remote_presence(doc, &Bytes::copy_from_slice(frame));
            }
            (kind, decoded) => unexpected(kind, decoded.is_ok()),
        }
    }
}

fn unexpected(kind: u8, decoded: bool) {
    tracing::warn!(kind, ok = decoded, "an unexpected message on the bus");
}
