//! A connection's bounded outgoing queue.
//!
//! Each WebSocket connection has one [`Outbox`]: a tokio `mpsc` channel of
//! already-encoded frames, drained by the connection's writer task. Two kinds
//! of producers put frames in it:
//!
//! * the connection itself (`Welcome`, `Ack`, catch-up pages, `Pong`), which
//!   may **wait** for room with [`Outbox::send`] — backpressure from a slow
//!   reader only slows down that reader's own requests;
//! * other connections' pushes, fanned out by the [`Hub`](crate::hub::Hub),
//!   which must **never wait** on someone else's socket. They use
//!   [`Outbox::try_send`]; when the queue is full the subscriber is too slow,
//!   and it is [kicked](Outbox::kick) — disconnected — rather than buffered
//!   without bound. It reconnects and catches up from its cursor.
//!
//! Frames are [`Bytes`], so one fanned-out frame is encoded once and shared
//! by every subscriber.

use std::sync::Arc;

use axum::body::Bytes;
use syncline_protocol::{RelayFrame, encode_relay};
use tokio::sync::{Notify, mpsc};

/// Identifies one connection for the lifetime of the process.
pub type ConnId = u64;

/// What the writer task sends on the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// One encoded [`RelayFrame`], sent as one binary message.
    Frame(Bytes),
    /// A WebSocket close with this code and reason; nothing follows it.
    Close { code: u16, reason: &'static str },
}

/// The queue is closed: the connection is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection is closed")]
pub struct Closed;

/// Why a non-waiting send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TrySendError {
    /// The queue is full: the consumer is slow.
    #[error("the outgoing queue is full")]
    Full,
    /// The connection is gone.
    #[error("the connection is closed")]
    Closed,
}

/// The sending side of a connection's queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    id: ConnId,
    tx: mpsc::Sender<Outgoing>,
    kicked: Arc<Notify>,
}

impl Outbox {
    /// A queue holding at most `capacity` frames, and its receiving end.
    pub fn new(id: ConnId, capacity: usize) -> (Outbox, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let outbox = Outbox {
            id,
            tx,
            kicked: Arc::new(Notify::new()),
        };
        (outbox, rx)
    }

    /// The connection this queue belongs to.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Encodes `frame` and queues it, waiting for room.
    pub async fn send(&self, frame: &RelayFrame) -> Result<(), Closed> {
        self.send_bytes(Bytes::from(encode_relay(frame))).await
    }

    /// Queues an encoded frame, waiting for room.
    pub async fn send_bytes(&self, frame: Bytes) -> Result<(), Closed> {
        self.tx
            .send(Outgoing::Frame(frame))
            .await
            .map_err(|_| Closed)
    }

    /// Queues a close, waiting for room. Nothing should be sent after it.
    pub async fn close(&self, code: u16, reason: &'static str) -> Result<(), Closed> {
        self.tx
            .send(Outgoing::Close { code, reason })
            .await
            .map_err(|_| Closed)
    }

    /// Queues an encoded frame if there is room right now.
    pub fn try_send(&self, frame: Bytes) -> Result<(), TrySendError> {
        self.tx
            .try_send(Outgoing::Frame(frame))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => TrySendError::Full,
                mpsc::error::TrySendError::Closed(_) => TrySendError::Closed,
            })
    }

    /// Asks the connection to disconnect (its consumer is too slow).
    pub fn kick(&self) {
        // `notify_one` stores a permit if nobody is waiting yet, so a kick is
        // never lost between two polls of `kicked()`.
        self.kicked.notify_one();
    }

    /// Resolves once [`kick`](Outbox::kick) was called. Cancel-safe.
    pub async fn kicked(&self) {
        self.kicked.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_full_queue_refuses_without_waiting_and_a_kick_is_remembered() {
        let (outbox, mut rx) = Outbox::new(7, 1);
        assert_eq!(outbox.try_send(Bytes::from_static(b"a")), Ok(()));
        assert_eq!(
            outbox.try_send(Bytes::from_static(b"b")),
            Err(TrySendError::Full)
        );
        outbox.kick();
        // The permit was stored: waiting afterwards completes at once.
        tokio::time::timeout(Duration::from_secs(5), outbox.kicked())
            .await
            .expect("the kick was remembered");
        assert_eq!(
            rx.recv().await,
            Some(Outgoing::Frame(Bytes::from_static(b"a")))
        );
        drop(rx);
        assert_eq!(
            outbox.try_send(Bytes::from_static(b"c")),
            Err(TrySendError::Closed)
        );
    }
}
