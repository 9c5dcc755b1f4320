//! A connection's bounded outgoing queue.
//!
//! Each WebSocket connection has one [`Outbox`]: a bounded queue of
//! already-encoded frames, drained by the connection's writer task through
//! its [`Queue`]. It allocates its slots only when something is queued
//! (and gives them back after a burst), so an idle connection pays for none. Two kinds
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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use syncline_protocol::{RelayFrame, encode_relay};
use tokio::sync::{Notify, Semaphore, TryAcquireError};

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

/// [`Queue::try_recv`] found nothing queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("nothing is queued")]
pub struct Empty;

/// Above this many slots, an emptied queue gives its memory back.
const KEEP_SLOTS: usize = 64;

/// The state both ends share. A plain `VecDeque` rather than a tokio
/// `mpsc` channel: the channel allocates a block of 32 slots (~1 KiB) when
/// it is created, which every idle connection would carry; a `VecDeque`
/// allocates on the first frame.
struct Shared {
    items: Mutex<VecDeque<Outgoing>>,
    /// One permit per free slot.
    room: Semaphore,
    /// Wakes the receiver: a frame was queued or the last sender left.
    ready: Notify,
    senders: AtomicUsize,
    kicked: Notify,
}

impl Shared {
    fn items(&self) -> MutexGuard<'_, VecDeque<Outgoing>> {
        // Every change under the lock is a single push or pop.
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `outgoing` in a slot already taken from `room`.
    fn push(&self, outgoing: Outgoing) {
        self.items().push_back(outgoing);
        self.ready.notify_one();
    }

    fn pop(&self) -> Option<Outgoing> {
        let mut items = self.items();
        let next = items.pop_front()?;
        if items.is_empty() && items.capacity() > KEEP_SLOTS {
            items.shrink_to(KEEP_SLOTS);
        }
        drop(items);
        self.room.add_permits(1);
        Some(next)
    }
}

/// The sending side of a connection's queue; cheap to clone.
pub struct Outbox {
    id: ConnId,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("id", &self.id).finish()
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Outbox {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Outbox {
            id: self.id,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The receiver sees the end once the queue is drained.
            self.shared.ready.notify_one();
        }
    }
}

/// The receiving side: the connection's writer task drains it.
pub struct Queue {
    shared: Arc<Shared>,
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Senders waiting for room, and every later send, see `Closed`.
        self.shared.room.close();
    }
}

impl Queue {
    /// The next queued item, waiting for one; `None` once every
    /// [`Outbox`] is dropped and the queue is drained. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        loop {
            if let Some(next) = self.shared.pop() {
                return Some(next);
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                // A last send may have landed just before the last drop.
                return self.shared.pop();
            }
            // A notification sent since the check above is kept (only this
            // task waits here), so none is lost.
            self.shared.ready.notified().await;
        }
    }

    /// The next queued item, if there is one right now.
    pub fn try_recv(&mut self) -> Result<Outgoing, Empty> {
        self.shared.pop().ok_or(Empty)
    }
}

impl Outbox {
    /// A queue holding at most `capacity` frames, and its receiving end.
    /// Allocates no slots until something is queued.
    pub fn new(id: ConnId, capacity: usize) -> (Outbox, Queue) {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            items: Mutex::new(VecDeque::new()),
            room: Semaphore::new(capacity),
            ready: Notify::new(),
            senders: AtomicUsize::new(1),
            kicked: Notify::new(),
        });
        let queue = Queue {
            shared: Arc::clone(&shared),
        };
        (Outbox { id, shared }, queue)
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
        self.send_waiting(Outgoing::Frame(frame)).await
    }

    /// Queues a close, waiting for room. Nothing should be sent after it.
    pub async fn close(&self, code: u16, reason: &'static str) -> Result<(), Closed> {
        self.send_waiting(Outgoing::Close { code, reason }).await
    }

    async fn send_waiting(&self, outgoing: Outgoing) -> Result<(), Closed> {
        // Fair: senders get room in the order they asked.
        let slot = self.shared.room.acquire().await.map_err(|_| Closed)?;
        slot.forget();
        self.shared.push(outgoing);
        Ok(())
    }

    /// Queues an encoded frame if there is room right now.
    pub fn try_send(&self, frame: Bytes) -> Result<(), TrySendError> {
        match self.shared.room.try_acquire() {
            Ok(slot) => {
                slot.forget();
                self.shared.push(Outgoing::Frame(frame));
                Ok(())
            }
            Err(TryAcquireError::NoPermits) => Err(TrySendError::Full),
            Err(TryAcquireError::Closed) => Err(TrySendError::Closed),
        }
    }

    /// Asks the connection to disconnect (its consumer is too slow).
    pub fn kick(&self) {
        // `notify_one` stores a permit if nobody is waiting yet, so a kick is
        // never lost between two polls of `kicked()`.
        self.shared.kicked.notify_one();
    }

    /// Resolves once [`kick`](Outbox::kick) was called. Cancel-safe.
    pub async fn kicked(&self) {
        self.shared.kicked.notified().await;
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
        assert_eq!(
            outbox.send_bytes(Bytes::from_static(b"d")).await,
            Err(Closed)
        );
    }

    #[tokio::test]
    async fn a_waiting_send_gets_room_when_the_receiver_drains_and_the_end_follows_the_last_frame()
    {
        let (outbox, mut rx) = Outbox::new(3, 1);
        outbox.send_bytes(Bytes::from_static(b"a")).await.unwrap();
        let sender = outbox.clone();
        let waiting =
            tokio::spawn(async move { sender.send_bytes(Bytes::from_static(b"b")).await });
        assert_eq!(
            rx.recv().await,
            Some(Outgoing::Frame(Bytes::from_static(b"a")))
        );
        waiting.await.unwrap().unwrap();
        drop(outbox);
        assert_eq!(
            rx.recv().await,
            Some(Outgoing::Frame(Bytes::from_static(b"b")))
        );
        assert_eq!(rx.recv().await, None, "every sender is gone");
        assert_eq!(rx.try_recv(), Err(Empty));
    }

    #[test]
    fn an_idle_queue_holds_no_slots_and_an_emptied_one_gives_them_back() {
        let (outbox, mut rx) = Outbox::new(1, 4096);
        assert_eq!(outbox.shared.items().capacity(), 0, "nothing allocated");
        for _ in 0..1000 {
            outbox.try_send(Bytes::from_static(b"x")).unwrap();
        }
        while rx.try_recv().is_ok() {}
        assert!(outbox.shared.items().capacity() <= KEEP_SLOTS);
        assert_eq!(outbox.shared.room.available_permits(), 4096);
    }
}
