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
//! * the **writer** drains the connection's bounded [`FrameQueue`] onto the
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
//! Time bounds ([`crate::guard`]): a connection that has not sent `Hello`
//! within the hello timeout gets a fatal `Error{UnexpectedFrame}`; the
//! writer pings (WebSocket ping) every half idle timeout, and a connection
//! the relay has heard nothing from — no frame, no pong — for the idle
//! timeout is dropped, as is one whose socket takes none of the relay's
//! bytes for as long (the writer kicks it). The reader also ends
//! subscriptions whose token expired (see the session).
//!
//! Close codes: 1001 shutdown; 1002 protocol error; 1008 unauthorized;
//! 1009 frame too large; 1011 internal error; 1013 rate limit exceeded,
//! too slow a reader, or too many connections (reconnect later, with
//! backoff).

mod session;

pub(crate) use session::{Incoming, Session};

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use syncline_protocol::{ErrorCode, MAX_FRAME_BYTES, RelayFrame, encode_relay};
use tokio::sync::{oneshot, watch};

use crate::frame_queue::{Closed, ConnId, FrameQueue, FrameReceiver, Outbound};
use crate::guard::{GateRefused, Ticket};
use crate::metrics::{Limit, Metrics};
use crate::server::RelayState;

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
    /// Nothing heard from the client for the idle timeout: a dead peer.
    Idle,
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
        ErrorCode::QuotaExceeded | ErrorCode::RateLimited => close_code::AGAIN,
        ErrorCode::Internal => close_code::ERROR,
    };
    End::Fatal {
        code,
        message: message.into(),
        close,
    }
}

/// Runs one connection until it ends; `ticket` is its place in the
/// relay's connection caps, freed as it ends.
pub(crate) async fn run(socket: WebSocket, shared: Arc<RelayState>, conn: ConnId, ticket: Ticket) {
    let metrics = Arc::clone(&shared.metrics);
    metrics.connections.inc();
    metrics.connections_total.inc();
    let guard = &shared.config.guard;
    let (queue, frames) =
        FrameQueue::with_bytes(conn, shared.config.queue_capacity, guard.queue_bytes);
    let (sink, mut stream) = socket.split();
    let (urgent_close, urgent) = oneshot::channel();
    let idle = guard.idle_timeout;
    let writer = write_frames(sink, frames, urgent, Arc::clone(&metrics), idle);
    let mut writer = tokio::spawn(writer);
    let hello_by = Instant::now() + guard.hello_timeout;
    let mut heard = Instant::now();
    let mut shutdown = shared.shutdown_receiver();
    let grace = shared.config.shutdown_grace;
    let max_frame = shared.config.limits.max_frame_bytes;
    let kick = queue.clone();
    let mut session = Session::new(Arc::clone(&shared), queue.clone());
    tracing::debug!("connection opened");

    let end = loop {
        let expiry = session.until_token_expiry();
        let next = tokio::select! {
            biased;
            () = kick.kicked() => break End::Kicked,
            _ = shutdown.wait_for(|stopping| *stopping) => break End::Shutdown,
            // Acks first: they free room for more pushes.
            done = session.committed(), if session.pushes_in_flight() => Err(Some(done)),
            message = stream.next() => Ok(message),
            () = tokio::time::sleep_until(hello_by), if !session.greeted() => {
                metrics.limit_exceeded(Limit::HelloTimeout);
                let message = format!(
                    "no Hello within {} ms of connecting: send Hello first",
                    shared.config.guard.hello_timeout.as_millis()
                );
                break fatal(ErrorCode::UnexpectedFrame, message);
            }
            () = tokio::time::sleep_until(heard + idle) => break End::Idle,
            () = tokio::time::sleep(expiry.unwrap_or_default()), if expiry.is_some() => Err(None),
        };
        let message = match next {
            Ok(message) => {
                heard = Instant::now();
                message
            }
            Err(None) => match session.end_expired_subscriptions().await {
                Ok(()) => continue,
                Err(end) => break end,
            },
            Err(Some(done)) => {
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
        End::Idle => {
            metrics.limit_exceeded(Limit::IdleTimeout);
            tracing::info!("dropping a connection silent for the idle timeout");
        }
        End::Shutdown => {
            let _ = tokio::time::timeout(grace, async {
                // Pushes already submitted are acked once durable.
                session.finish_pushes().await?;
                Ok::<_, End>(queue.close(close_code::AWAY, "relay shutting down").await?)
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
                queue.send(&frame).await?;
                Ok::<_, End>(queue.close(*close, "see the Error frame").await?)
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
    drop((queue, kick));
    if tokio::time::timeout(grace, &mut writer).await.is_err() {
        writer.abort();
    }
    drop(ticket);
    metrics.connections.dec();
}

/// Refuses a connection the gate did not admit: a fatal
/// `Error{LimitExceeded}` saying why, then close 1013 (try again later).
pub(crate) async fn refuse(mut socket: WebSocket, refused: GateRefused) {
    tracing::info!(%refused, "refusing a connection");
    let frame = RelayFrame::Error {
        code: ErrorCode::LimitExceeded,
        message: refused.to_string(),
        fatal: true,
    };
    let close = CloseFrame {
        code: close_code::AGAIN,
        reason: "too many connections: see the Error frame".into(),
    };
    let _ = tokio::time::timeout(LINGER, async {
        socket
            .send(Message::Binary(encode_relay(&frame).into()))
            .await?;
        socket.send(Message::Close(Some(close))).await?;
        // Until the client's close: unread input would reset the socket.
        while let Some(Ok(_)) = socket.next().await {}
        Ok::<_, axum::Error>(())
    })
    .await;
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

/// Sends queued frames on the socket until the frames closes or a `Close`
/// is sent, and a ping every half `idle`; on `urgent` (the reader was
/// kicked), skips what is queued and tries to close with 1013 at once. A
/// socket that takes nothing for `idle` kicks the connection.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut frames: FrameReceiver,
    urgent: oneshot::Receiver<()>,
    metrics: Arc<Metrics>,
    idle: Duration,
) {
    let pumped = tokio::select! {
        biased;
        Ok(()) = urgent => None,
        stalled = pump(&mut sink, &mut frames, &metrics, idle) => Some(stalled),
    };
    if pumped == Some(true) {
        tracing::info!("the socket took nothing for the idle timeout");
        frames.kick();
    }
    let kicked = pumped.is_none();
    if kicked {
        let close = CloseFrame {
            code: close_code::AGAIN,
            reason: "too slow to read: reconnect and resume from your cursor".into(),
        };
        let _ =
            tokio::time::timeout(KICK_CLOSE_TIMEOUT, sink.send(Message::Close(Some(close)))).await;
    }
}

/// Writes until the frames ends or the socket fails (`false`), or until
/// the socket took nothing for `idle` (`true`).
async fn pump(
    sink: &mut SplitSink<WebSocket, Message>,
    frames: &mut FrameReceiver,
    metrics: &Metrics,
    idle: Duration,
) -> bool {
    let keepalive = idle / 2;
    let mut ping = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            first = frames.recv() => first,
            _ = ping.tick() => {
                let ping = sink.send(Message::Ping(Default::default()));
                match tokio::time::timeout(idle, ping).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(_)) => return false,
                    Err(_) => return true,
                }
            }
        };
        let Some(first) = first else { break };
        let mut next = Some(first);
        let mut fed = 0;
        while let Some(outgoing) = next.take() {
            match outgoing {
                Outbound::Frame(bytes) => {
                    metrics.frames_out.inc();
                    metrics.bytes_out.add(bytes.len() as u64);
                    let feed = sink.feed(Message::Binary(bytes));
                    match tokio::time::timeout(idle, feed).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return false,
                        Err(_) => return true,
                    }
                }
                Outbound::Close { code, reason } => {
                    let close = CloseFrame {
                        code,
                        reason: reason.into(),
                    };
                    let _ =
                        tokio::time::timeout(idle, sink.send(Message::Close(Some(close)))).await;
                    return false;
                }
            }
            fed += 1;
            if fed < WRITE_BATCH {
                next = frames.try_recv().ok();
            }
        }
        match tokio::time::timeout(idle, sink.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return false,
            Err(_) => return true,
        }
    }
    let _ = tokio::time::timeout(idle, sink.close()).await;
    false
}
