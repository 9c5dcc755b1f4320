//! One WebSocket connection: the protocol state machine.
//!
//! Each connection runs as two tasks:
//!
//! * the **reader** (this module's [`run`]) reads one frame at a time and
//!   handles it to completion before reading the next, so a client's frames
//!   are answered in order;
//! * the **writer** drains the connection's bounded [`Outbox`] onto the
//!   socket, batching frames into as few flushes as it can.
//!
//! The reader also watches two signals, whichever comes first: a *kick*
//! (the hub found this connection too slow to read its fan-out) and the
//! relay's *shutdown*. Both may interrupt a frame being handled. That is
//! safe because the only step that must not be cut in half — commit a push,
//! then publish it — runs in its own task (see [`Session::push`]).
//!
//! Session rules (see `syncline_protocol` for the frames):
//!
//! * the first frame must be `Hello` with [`PROTOCOL_VERSION`]; anything
//!   else ends the session with a fatal `Error`;
//! * a frame that does not decode, or a text message, is a fatal
//!   `Error{Malformed}`; only this connection is closed;
//! * a storage failure is a non-fatal `Error{Internal}`: nothing was acked,
//!   so the client retries.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use syncline_protocol::{
    ClientFrame, DocId, ErrorCode, Limits, MAX_FRAME_BYTES, PROTOCOL_VERSION, PushDelta,
    RelayFrame, SequencedDelta, decode_client,
};
use tokio::sync::mpsc;

use crate::hub::{Pending, delta_frames};
use crate::outbox::{Closed, ConnId, Outbox, Outgoing};
use crate::server::Shared;

/// Largest single delta accepted in a push. A little below the frame limit,
/// so the delta still fits in a `Deltas` frame with its sequence and id.
pub const MAX_DELTA_BYTES: usize = MAX_FRAME_BYTES - 1024;

/// Most frames the writer feeds to the socket before one flush.
const WRITE_BATCH: usize = 64;

/// Why a session ended.
#[derive(Debug)]
enum End {
    /// The client closed the socket, or the socket failed.
    Disconnected,
    /// The client broke the protocol: tell it why (fatal `Error`), close.
    Fatal { code: ErrorCode, message: String },
    /// The client reads too slowly; drop it without ceremony.
    Kicked,
    /// The relay is shutting down: close with "going away".
    Shutdown,
}

impl From<Closed> for End {
    fn from(_: Closed) -> End {
        End::Disconnected
    }
}

fn fatal(code: ErrorCode, message: impl Into<String>) -> End {
    End::Fatal {
        code,
        message: message.into(),
    }
}

/// The WebSocket close code that goes with a fatal error.
fn close_code_for(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::Malformed | ErrorCode::UnexpectedFrame | ErrorCode::UnsupportedVersion => {
            close_code::PROTOCOL
        }
        ErrorCode::Unauthorized | ErrorCode::LimitExceeded => close_code::POLICY,
        ErrorCode::Internal => close_code::ERROR,
    }
}

/// Runs one connection until it ends.
pub(crate) async fn run(socket: WebSocket, shared: Arc<Shared>, conn: ConnId) {
    let (outbox, queue) = Outbox::new(conn, shared.config.queue_capacity);
    let (sink, mut stream) = socket.split();
    let mut writer = tokio::spawn(write_frames(sink, queue));
    let mut shutdown = shared.shutdown_receiver();
    let kick = outbox.clone();
    let mut session = Session {
        shared: Arc::clone(&shared),
        outbox: outbox.clone(),
        greeted: false,
        subscriptions: HashSet::new(),
    };
    tracing::debug!("connection opened");

    let end = loop {
        let step = tokio::select! {
            biased;
            () = kick.kicked() => Some(End::Kicked),
            _ = shutdown.wait_for(|stopping| *stopping) => Some(End::Shutdown),
            end = session.step(&mut stream) => end,
        };
        if let Some(end) = step {
            break end;
        }
    };

    let grace = shared.config.shutdown_grace;
    match &end {
        End::Disconnected => tracing::debug!("connection closed by the client"),
        End::Kicked => {
            tracing::warn!("disconnecting a slow client");
            writer.abort();
        }
        End::Shutdown => {
            let _ =
                tokio::time::timeout(grace, outbox.close(close_code::AWAY, "relay shutting down"))
                    .await;
        }
        End::Fatal { code, message } => {
            tracing::info!(?code, %message, "closing the connection on a protocol error");
            let frame = RelayFrame::Error {
                code: *code,
                message: message.clone(),
                fatal: true,
            };
            let _ = tokio::time::timeout(grace, async {
                outbox.send(&frame).await?;
                outbox.close(close_code_for(*code), "protocol error").await
            })
            .await;
        }
    }
    for doc in session.subscriptions.drain() {
        shared.hub.unsubscribe(doc, conn);
    }
    // Dropping every sender ends the writer once it has sent what is queued.
    drop((session, outbox, kick));
    if tokio::time::timeout(grace, &mut writer).await.is_err() {
        writer.abort();
    }
}

/// Sends queued frames on the socket until the queue closes or a `Close`
/// is sent.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Outgoing>,
) {
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        let mut fed = 0;
        while let Some(outgoing) = next.take() {
            match outgoing {
                Outgoing::Frame(bytes) => {
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

/// The reader's state.
struct Session {
    shared: Arc<Shared>,
    outbox: Outbox,
    /// Whether a valid `Hello` was received.
    greeted: bool,
    /// Documents this connection subscribed to (to unsubscribe at the end).
    subscriptions: HashSet<DocId>,
}

impl Session {
    /// Reads and handles one message. `Some` ends the session.
    async fn step(&mut self, stream: &mut SplitStream<WebSocket>) -> Option<End> {
        let message = match stream.next().await {
            None => return Some(End::Disconnected),
            Some(Err(error)) => {
                tracing::debug!(%error, "socket error");
                return Some(End::Disconnected);
            }
            Some(Ok(message)) => message,
        };
        let frame = match message {
            Message::Binary(bytes) => match decode_client(&bytes) {
                Ok(frame) => frame,
                Err(error) => return Some(fatal(ErrorCode::Malformed, error.to_string())),
            },
            Message::Text(_) => {
                return Some(fatal(
                    ErrorCode::Malformed,
                    "text messages are not part of the protocol: send binary frames",
                ));
            }
            Message::Close(_) => return Some(End::Disconnected),
            // Answered by the WebSocket layer itself.
            Message::Ping(_) | Message::Pong(_) => return None,
        };
        self.handle(frame).await.err()
    }

    async fn handle(&mut self, frame: ClientFrame) -> Result<(), End> {
        if !self.greeted {
            return match frame {
                ClientFrame::Hello {
                    version, replica, ..
                } => self.hello(version, replica).await,
                _ => Err(fatal(
                    ErrorCode::UnexpectedFrame,
                    "the first frame must be Hello",
                )),
            };
        }
        match frame {
            ClientFrame::Hello { .. } => Err(fatal(
                ErrorCode::UnexpectedFrame,
                "Hello was already received on this connection",
            )),
            ClientFrame::Subscribe { doc, since } => self.subscribe(doc, since).await,
            ClientFrame::Push { doc, deltas } => self.push(doc, deltas).await,
            ClientFrame::Ping { nonce } => {
                Ok(self.outbox.send(&RelayFrame::Pong { nonce }).await?)
            }
            ClientFrame::Unsubscribe { .. }
            | ClientFrame::Authorize { .. }
            | ClientFrame::Presence { .. }
            | ClientFrame::Snapshot { .. } => Err(fatal(
                ErrorCode::UnexpectedFrame,
                "this relay does not support this frame yet",
            )),
        }
    }

    async fn hello(&mut self, version: u32, replica: [u8; 16]) -> Result<(), End> {
        if version != PROTOCOL_VERSION {
            return Err(fatal(
                ErrorCode::UnsupportedVersion,
                format!(
                    "this relay speaks protocol version {PROTOCOL_VERSION}; the client sent {version}"
                ),
            ));
        }
        // Tokens are not checked yet: access control comes with signed tokens.
        self.greeted = true;
        let replica: String = replica.iter().map(|b| format!("{b:02x}")).collect();
        tracing::debug!(%replica, "hello");
        let welcome = RelayFrame::Welcome {
            version: PROTOCOL_VERSION,
            epoch: self.shared.store.epoch(),
            limits: Limits::default(),
        };
        Ok(self.outbox.send(&welcome).await?)
    }

    /// Sends every committed delta after `since`, then switches the
    /// subscription to live — without a gap or a duplicate (see
    /// [`crate::hub`] for why this order is right).
    async fn subscribe(&mut self, doc: DocId, since: u64) -> Result<(), End> {
        let conn = self.outbox.id();
        let hub = &self.shared.hub;
        hub.subscribe(doc, self.outbox.clone());
        self.subscriptions.insert(doc);

        // 1. Catch up from storage, page by page.
        let mut sent_up_to = since;
        loop {
            let read = self
                .shared
                .store
                .read_page(doc, sent_up_to, self.shared.config.page)
                .await;
            let page = match read {
                Ok(page) => page,
                Err(error) => {
                    tracing::error!(%doc, %error, "catch-up read failed");
                    hub.unsubscribe(doc, conn);
                    self.subscriptions.remove(&doc);
                    return self
                        .internal_error("could not read the document; subscribe again")
                        .await;
                }
            };
            if let Some(last) = page.items.last() {
                sent_up_to = last.seq;
            }
            let caught_up = !page.more;
            let frame = RelayFrame::Deltas {
                doc,
                items: page.items,
                caught_up,
            };
            self.outbox.send(&frame).await?;
            if caught_up {
                break;
            }
        }

        // 2. Send what was published meanwhile, until nothing is left and
        //    the hub has switched the subscription to live.
        loop {
            match hub.take_pending(doc, conn, sent_up_to) {
                Pending::Live => return Ok(()),
                // Kicked while catching up; the reader loop sees the kick.
                Pending::Gone => {
                    self.subscriptions.remove(&doc);
                    return Ok(());
                }
                Pending::Deltas(batches) => {
                    let fresh: Vec<SequencedDelta> = batches
                        .iter()
                        .flat_map(|batch| batch.iter())
                        .filter(|delta| delta.seq > sent_up_to)
                        .cloned()
                        .collect();
                    if let Some(last) = fresh.last() {
                        sent_up_to = last.seq;
                    }
                    for frame in delta_frames(doc, &fresh, hub.frame_limits(), true) {
                        self.outbox.send_bytes(frame).await?;
                    }
                }
            }
        }
    }

    /// Commits the deltas, fans them out, then acks.
    async fn push(&mut self, doc: DocId, deltas: Vec<PushDelta>) -> Result<(), End> {
        if let Some(big) = deltas.iter().find(|d| d.bytes.len() > MAX_DELTA_BYTES) {
            let message = format!(
                "delta {} is {} bytes; the limit is {MAX_DELTA_BYTES}",
                big.id,
                big.bytes.len()
            );
            let frame = RelayFrame::Error {
                code: ErrorCode::LimitExceeded,
                message,
                fatal: false,
            };
            return Ok(self.outbox.send(&frame).await?);
        }
        let ids = deltas.iter().map(|d| d.id).collect();
        let shared = Arc::clone(&self.shared);
        let from = self.outbox.id();
        // Own task: once the commit starts, its publish must happen even if
        // this connection is interrupted meanwhile, or live subscribers of
        // the document would miss a committed delta.
        let committed = tokio::spawn(async move { shared.commit(doc, from, deltas).await }).await;
        match committed {
            Ok(Ok(seq)) => Ok(self.outbox.send(&RelayFrame::Ack { doc, ids, seq }).await?),
            Ok(Err(error)) => {
                tracing::error!(%doc, %error, "push failed");
                self.internal_error("could not store the deltas; push them again")
                    .await
            }
            Err(error) => {
                tracing::error!(%doc, %error, "push task failed");
                self.internal_error("could not store the deltas; push them again")
                    .await
            }
        }
    }

    async fn internal_error(&self, message: &str) -> Result<(), End> {
        let frame = RelayFrame::Error {
            code: ErrorCode::Internal,
            message: message.to_owned(),
            fatal: false,
        };
        Ok(self.outbox.send(&frame).await?)
    }
}
