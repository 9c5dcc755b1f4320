//! One WebSocket connection: the socket side of a session.
//!
//! Each connection runs as two tasks:
//!
//! * the **reader** (this module's [`run`]) reads one message at a time and
//!   hands it to the [`Session`] — the protocol state machine, which knows
//!   nothing of sockets — to handle to completion before reading the next,
//!   so a client's frames are answered in order. The exception is a push:
//!   the session submits it to the store and the reader reads on while it
//!   commits, so a client's pipelined pushes share a group commit. The
//!   reader sends each push's `Ack` once its commit is durable, in push
//!   order, and handles any other frame only after every earlier push is
//!   acked. The session bounds the pushes in flight per connection;
//! * the **writer** drains the connection's bounded [`Outbox`] onto the
//!   socket, batching frames into as few flushes as it can.
//!
//! The reader also watches two signals: a *kick* (the hub found this
//! connection too slow to read its fan-out) and the relay's *shutdown*.
//! A kick interrupts whatever is going on. Shutdown interrupts only the
//! wait for the next message: a frame already being handled finishes and
//! is answered, and pushes already submitted are acked once committed
//! (within the grace period); then the connection closes with 1001 "going
//! away". That is also safe to interrupt: a commit, once queued, completes
//! and is published by the store's writer whether or not anyone waits for
//! it.
//!
//! Close codes: 1001 shutdown; 1002 protocol error; 1008 unauthorized;
//! 1009 frame too large; 1011 internal error; 1013 rate limit exceeded or
//! too slow a reader (reconnect later, with backoff).

mod session;

pub(crate) use session::{Incoming, Session};

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use syncline_protocol::{ErrorCode, MAX_FRAME_BYTES, RelayFrame};
use tokio::sync::{oneshot, watch};

use crate::metrics::Metrics;
use crate::outbox::{Closed, ConnId, Outbox, Outgoing, Queue};
use crate::server::Shared;

/// Largest single delta (or snapshot) accepted. A little below the frame
/// limit, so the delta still fits in a `Deltas` frame with its sequence and
/// id.
pub const MAX_DELTA_BYTES: usize = MAX_FRAME_BYTES - 1024;

/// Most frames the writer feeds to the socket before one flush.
const WRITE_BATCH: usize = 64;

/// How long the writer tries to deliver the close to a kicked reader,
/// whose socket is likely full.
const KICK_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long, after sending its close, the relay keeps reading (and
/// discarding) a client's messages while waiting for the client's close.
/// Closing a TCP socket with unread input makes the kernel send a reset,
/// which can destroy the `Error` frame before the client reads it.
const LINGER: Duration = Duration::from_secs(2);

/// Why a session ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The client closed the socket, or the socket failed.
    Disconnected,
    /// The client broke the protocol or a limit: tell it why (fatal
    /// `Error`), then close with `close`.
    Fatal {
        code: ErrorCode,
        message: String,
        close: u16,
    },
    /// The client reads too slowly: close with 1013 if the socket lets us.
    Kicked,
    /// The relay is shutting down: close with "going away".
    Shutdown,
}

impl From<Closed> for End {
    fn from(_: Closed) -> End {
        End::Disconnected
    }
}

/// A fatal error with the close code that goes with its error code.
pub(crate) fn fatal(code: ErrorCode, message: impl Into<String>) -> End {
    let close = match code {
        ErrorCode::Malformed | ErrorCode::UnexpectedFrame | ErrorCode::UnsupportedVersion => {
            close_code::PROTOCOL
        }
        ErrorCode::Unauthorized
        | ErrorCode::ReadOnly
        | ErrorCode::TokenExpired
        | ErrorCode::Unproven => close_code::POLICY,
        ErrorCode::LimitExceeded => close_code::SIZE,
        ErrorCode::Internal => close_code::ERROR,
    };
    End::Fatal {
        code,
        message: message.into(),
        close,
    }
}

/// Runs one connection until it ends.
pub(crate) async fn run(socket: WebSocket, shared: Arc<Shared>, conn: ConnId) {
    let metrics = Arc::clone(&shared.metrics);
    metrics.connections.inc();
    metrics.connections_total.inc();
    let (outbox, queue) = Outbox::new(conn, shared.config.queue_capacity);
    let (sink, mut stream) = socket.split();
    let (urgent_close, urgent) = oneshot::channel();
    let mut writer = tokio::spawn(write_frames(sink, queue, urgent, Arc::clone(&metrics)));
    let mut shutdown = shared.shutdown_receiver();
    let grace = shared.config.shutdown_grace;
    let max_frame = shared.config.limits.max_frame_bytes;
    let kick = outbox.clone();
    let mut session = Session::new(Arc::clone(&shared), outbox.clone());
    tracing::debug!("connection opened");

    let end = loop {
        let next = tokio::select! {
            biased;
            () = kick.kicked() => break End::Kicked,
            _ = shutdown.wait_for(|stopping| *stopping) => break End::Shutdown,
            // Acks first: they free room for more pushes.
            done = session.committed(), if session.pushes_in_flight() => Err(done),
            message = stream.next() => Ok(message),
        };
        let message = match next {
            Ok(message) => message,
            Err(done) => {
                let acked = tokio::select! {
                    biased;
                    () = kick.kicked() => break End::Kicked,
                    () = grace_after(&mut shutdown, grace) => break End::Shutdown,
                    acked = session.acknowledge(done) => acked,
                };
                match acked {
                    Ok(()) => continue,
                    Err(end) => break end,
                }
            }
        };
        let incoming = match message {
            None => break End::Disconnected,
            Some(Ok(message)) => Incoming::from(message),
            Some(Err(error)) => match too_long(error) {
                Some(size) => Incoming::TooLarge {
                    size,
                    max: max_frame,
                },
                None => break End::Disconnected,
            },
        };
        let handled = tokio::select! {
            biased;
            () = kick.kicked() => break End::Kicked,
            () = grace_after(&mut shutdown, grace) => break End::Shutdown,
            // Boxed: handling a frame (a subscribe's catch-up above all)
            // takes a large future, which would otherwise be part of every
            // connection's task even while it sits idle.
            handled = Box::pin(session.handle(incoming)) => handled,
        };
        if let Err(end) = handled {
            break end;
        }
    };

    match &end {
        End::Disconnected => tracing::debug!("connection closed by the client"),
        End::Kicked => {
            metrics.slow_consumer_disconnects.inc();
            tracing::warn!("disconnecting a slow client");
            let _ = urgent_close.send(());
        }
        End::Shutdown => {
            let _ = tokio::time::timeout(grace, async {
                // Pushes already submitted are acked once durable.
                session.finish_pushes().await?;
                Ok::<_, End>(
                    outbox
                        .close(close_code::AWAY, "relay shutting down")
                        .await?,
                )
            })
            .await;
        }
        End::Fatal {
            code,
            message,
            close,
        } => {
            metrics.protocol_errors.inc();
            tracing::info!(?code, %message, "closing the connection on an error");
            let frame = RelayFrame::Error {
                code: *code,
                message: message.clone(),
                fatal: true,
            };
            let _ = tokio::time::timeout(grace, async {
                // Earlier pushes were submitted: ack them first.
                session.finish_pushes().await?;
                outbox.send(&frame).await?;
                Ok::<_, End>(outbox.close(*close, "see the Error frame").await?)
            })
            .await;
        }
    }
    // Unsubscribes everything (presence "gone" goes out to peers).
    drop(session);
    if matches!(end, End::Fatal { .. } | End::Shutdown) {
        let linger = async { while let Some(Ok(_)) = stream.next().await {} };
        let _ = tokio::time::timeout(LINGER.min(grace), linger).await;
    }
    // Dropping every sender ends the writer once it has sent what is queued.
    drop((outbox, kick));
    if tokio::time::timeout(grace, &mut writer).await.is_err() {
        writer.abort();
    }
    metrics.connections.dec();
}

/// Resolves `grace` after the relay starts shutting down.
async fn grace_after(shutdown: &mut watch::Receiver<bool>, grace: Duration) {
    if shutdown.wait_for(|stopping| *stopping).await.is_err() {
        // The relay is gone without a shutdown: nothing to wait for.
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(grace).await;
}

/// The size of a message the WebSocket layer refused as too long, if that
/// is what `error` is.
fn too_long(error: axum::Error) -> Option<usize> {
    use tungstenite::error::{CapacityError, Error};
    match error.into_inner().downcast::<Error>() {
        Ok(inner) => match *inner {
            Error::Capacity(CapacityError::MessageTooLong { size, .. }) => Some(size),
            other => {
                tracing::debug!(error = %other, "socket error");
                None
            }
        },
        Err(other) => {
            tracing::debug!(error = %other, "socket error");
            None
        }
    }
}

/// Sends queued frames on the socket until the queue closes or a `Close`
/// is sent; on `urgent` (the reader was kicked), skips what is queued and
/// tries to close with 1013 at once.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: Queue,
    urgent: oneshot::Receiver<()>,
    metrics: Arc<Metrics>,
) {
    let kicked = tokio::select! {
        biased;
        Ok(()) = urgent => true,
        () = pump(&mut sink, &mut queue, &metrics) => false,
    };
    if kicked {
        let close = CloseFrame {
            code: close_code::AGAIN,
            reason: "too slow to read: reconnect and resume from your cursor".into(),
        };
        let _ =
            tokio::time::timeout(KICK_CLOSE_TIMEOUT, sink.send(Message::Close(Some(close)))).await;
    }
}

async fn pump(sink: &mut SplitSink<WebSocket, Message>, queue: &mut Queue, metrics: &Metrics) {
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        let mut fed = 0;
        while let Some(outgoing) = next.take() {
            match outgoing {
                Outgoing::Frame(bytes) => {
                    metrics.frames_out.inc();
                    metrics.bytes_out.add(bytes.len() as u64);
                    if sink.feed(Message::Binary(bytes)).await.is_err() {
                        return;
                    }
                }
                Outgoing::Close { code, reason } => {
                    let close = CloseFrame {
                        code,
                        reason: reason.into(),
                    };
                    let _ = sink.send(Message::Close(Some(close))).await;
                    return;
                }
            }
            fed += 1;
            if fed < WRITE_BATCH {
                next = queue.try_recv().ok();
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}
