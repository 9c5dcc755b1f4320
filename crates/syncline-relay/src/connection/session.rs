//! The protocol state machine of one connection, without the socket.
//!
//! [`Session::handle`] takes one received message and does everything it
//! asks — store, fan out, answer into the connection's [`FrameQueue`] — before
//! returning, with one exception: a `Push` is only *submitted* to the store
//! (validated, queued for commit) and `handle` returns at once, so the
//! connection reads on while it commits. Its `Ack` goes out once the
//! commit is durable: the connection waits for [`Session::committed`] and
//! passes the result to [`Session::acknowledge`]. At most
//! [`MAX_PUSHES_IN_FLIGHT`] pushes (and [`MAX_PUSH_BYTES_IN_FLIGHT`] of
//! their deltas) are in flight per connection; past that, `handle` waits
//! for the oldest. Answers keep the order of the frames: acks go out in
//! push order, and any other frame first waits until every earlier push is
//! acked. `Err(End)` ends the session. Nothing here touches a socket, so
//! the fuzzer drives it directly.
//!
//! Rules (see `syncline_protocol` for the frames, `docs/relay.md` for the
//! whole picture):
//!
//! * every message counts against the connection's rate limits; exceeding
//!   one is a fatal `Error{LimitExceeded}` (close 1013);
//! * the first frame must be `Hello` with a version from
//!   [`MIN_PROTOCOL_VERSION`] to [`PROTOCOL_VERSION`]; anything else is
//!   fatal. The session speaks the client's version (`Welcome` says which):
//!   version 1 gets live deltas as `Deltas`, version 2 as `Tentative` and
//!   `Committed` (see [`crate::hub`]). With a secret configured, a token in
//!   `Hello` must be valid (fatal `Error{Unauthorized}` otherwise) and
//!   grants its document;
//! * a push that passes validation is fanned out tentatively to the
//!   document's live version 2 subscribers right before it is submitted;
//! * a message that does not decode, a text message, or one above the
//!   frame limit is fatal;
//! * an ephemeral message (version 4, `session/messages.rs`) is relayed
//!   only once its proof verifies, from a subscriber with read access,
//!   within its size and its own rate;
//! * a request about one document that cannot be served — no or a bad
//!   token, a limit, a storage failure — gets a `DocError` for that
//!   document and the session goes on.

mod bounds;
mod messages;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::ws::{Message, close_code};
use syncline_protocol::{
    ClientFrame, DeltaId, DocId, ErrorCode, Limits, MAX_DELTAS_PER_FRAME, MAX_TOKEN_BYTES,
    MESSAGES_VERSION, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, ProofError, PushDelta, RelayFrame,
    SequencedDelta, decode_client, proof,
};

use super::{End, MAX_DELTA_BYTES, fatal};
use crate::auth::{self, Claims, Rights, TokenError};
use crate::frame_queue::FrameQueue;
use crate::hub::{Delivery, Pending, delta_frames};
use crate::limits::{RateExceeded, RateLimiter, TokenBucket};
use crate::metrics::{AuthFailure, Limit};
use crate::server::RelayState;
use crate::store::{Appended, Snapshot, SnapshotOutcome, StoreError};

/// Most pushes one connection may have committing at once. Pushes read
/// beyond it wait (in the socket) for the oldest to be acked.
pub(crate) const MAX_PUSHES_IN_FLIGHT: usize = 64;

/// Most delta bytes one connection may have committing at once (a single
/// larger push is still let through, alone).
pub(crate) const MAX_PUSH_BYTES_IN_FLIGHT: usize = 8 * 1024 * 1024;

type Commit = Pin<Box<dyn Future<Output = Result<Appended, StoreError>> + Send>>;

/// A push submitted to the store, not acked yet.
struct InFlight {
    doc: DocId,
    ids: Vec<DeltaId>,
    bytes: usize,
    commit: Commit,
}

/// A push whose commit finished (or failed), ready to be answered with
/// [`Session::acknowledge`].
pub(crate) struct Committed {
    doc: DocId,
    ids: Vec<DeltaId>,
    outcome: Result<Appended, StoreError>,
}

/// One message as received from the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A binary message: one encoded `ClientFrame`.
    Binary(Bytes),
    /// A text message (not part of the protocol), of this many bytes.
    Text(usize),
    /// A WebSocket-level ping or pong (answered by the WebSocket layer).
    Control(usize),
    /// The client's close.
    Close,
    /// A message the WebSocket layer refused as larger than `max`.
    TooLarge { size: usize, max: usize },
}

impl From<Message> for Incoming {
    fn from(message: Message) -> Incoming {
        match message {
            Message::Binary(bytes) => Incoming::Binary(bytes),
            Message::Text(text) => Incoming::Text(text.len()),
            Message::Ping(bytes) | Message::Pong(bytes) => Incoming::Control(bytes.len()),
            Message::Close(_) => Incoming::Close,
        }
    }
}

impl Incoming {
    fn len(&self) -> usize {
        match self {
            Incoming::Binary(bytes) => bytes.len(),
            Incoming::Text(len) | Incoming::Control(len) => *len,
            Incoming::Close => 0,
            Incoming::TooLarge { size, .. } => *size,
        }
    }
}

/// The state of one connection's session.
pub(crate) struct Session {
    shared: Arc<RelayState>,
    queue: FrameQueue,
    /// Whether a valid `Hello` was received.
    greeted: bool,
    /// The protocol version the session speaks (from `Hello`).
    version: u32,
    /// The client's replica id, from `Hello`.
    replica: [u8; 16],
    /// Documents this connection subscribes to.
    subscriptions: HashSet<DocId>,
    /// Valid tokens presented, per document (only with a secret).
    grants: HashMap<DocId, Claims>,
    rate: RateLimiter,
    /// Ephemeral messages' own rate (see `session/messages.rs`).
    message_rate: Option<TokenBucket>,
    /// Pushes submitted and not acked yet, oldest first.
    in_flight: VecDeque<InFlight>,
    /// Their delta bytes.
    in_flight_bytes: usize,
}

/// Why access to a document was refused, and what to tell the client.
type Denied = (AuthFailure, String);

impl Session {
    /// A session that has not been greeted yet.
    pub(crate) fn new(shared: Arc<RelayState>, queue: FrameQueue) -> Session {
        let rate = RateLimiter::new(&shared.config.limits, Instant::now());
        let message_rate = shared.config.limits.message_bucket(Instant::now());
        Session {
            shared,
            queue,
            greeted: false,
            version: PROTOCOL_VERSION,
            replica: [0; 16],
            subscriptions: HashSet::new(),
            grants: HashMap::new(),
            rate,
            message_rate,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
        }
    }

    /// Whether a push is waiting for its commit.
    pub(crate) fn pushes_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Waits until the oldest push in flight is committed (or failed) and
    /// takes it; never resolves when none is in flight. Cancel-safe: the
    /// push is taken only when its commit has finished.
    pub(crate) async fn committed(&mut self) -> Committed {
        let outcome = poll_fn(|cx| match self.in_flight.front_mut() {
            Some(oldest) => oldest.commit.as_mut().poll(cx),
            None => std::task::Poll::Pending,
        })
        .await;
        let done = self
            .in_flight
            .pop_front()
            .expect("the oldest push is there");
        self.in_flight_bytes -= done.bytes;
        Committed {
            doc: done.doc,
            ids: done.ids,
            outcome,
        }
    }

    /// Answers a committed push: `Ack` (it is durable), or a `DocError` if
    /// the store failed.
    pub(crate) async fn acknowledge(&mut self, done: Committed) -> Result<(), End> {
        let Committed { doc, ids, outcome } = done;
        match outcome {
            Ok(appended) => {
                let seq = appended.highest_seq();
                Ok(self.queue.send(&RelayFrame::Ack { doc, ids, seq }).await?)
            }
            Err(error) => {
                tracing::error!(%doc, %error, "push failed");
                let message = "could not store the deltas; push them again";
                self.doc_error(doc, ErrorCode::Internal, message).await
            }
        }
    }

    /// Waits for every push in flight and answers each, in order.
    pub(crate) async fn finish_pushes(&mut self) -> Result<(), End> {
        while self.pushes_in_flight() {
            let done = self.committed().await;
            self.acknowledge(done).await?;
        }
        Ok(())
    }

    /// Handles one received message to completion — except that a push
    /// is only submitted (see the module docs).
    pub(crate) async fn handle(&mut self, incoming: Incoming) -> Result<(), End> {
        let metrics = &self.shared.metrics;
        let len = incoming.len();
        metrics.frames_in.inc();
        metrics.bytes_in.add(len as u64);
        let max_frame = self.shared.config.limits.max_frame_bytes;
        if let Incoming::TooLarge { size, max } = incoming {
            return Err(self.too_large(size, max));
        }
        if len > max_frame {
            return Err(self.too_large(len, max_frame));
        }
        if let Err(which) = self.rate.check(len, Instant::now()) {
            let (limit, what) = match which {
                RateExceeded::Frames => (Limit::FrameRate, "frames"),
                RateExceeded::Bytes => (Limit::ByteRate, "bytes"),
            };
            metrics.limit_exceeded(limit);
            return Err(End::Fatal {
                code: ErrorCode::LimitExceeded,
                message: format!(
                    "this connection sent {what} faster than the relay allows; reconnect later and send less often"
                ),
                close: close_code::AGAIN,
            });
        }
        match incoming {
            Incoming::Binary(bytes) => match decode_client(&bytes) {
                Ok(frame) => self.frame(frame).await,
                Err(error) => Err(fatal(ErrorCode::Malformed, error.to_string())),
            },
            Incoming::Text(_) => Err(fatal(
                ErrorCode::Malformed,
                "text messages are not part of the protocol: send binary frames",
            )),
            Incoming::Close => Err(End::Disconnected),
            Incoming::Control(_) | Incoming::TooLarge { .. } => Ok(()),
        }
    }

    fn too_large(&self, size: usize, max: usize) -> End {
        self.shared.metrics.limit_exceeded(Limit::FrameSize);
        fatal(
            ErrorCode::LimitExceeded,
            format!(
                "a message of at least {size} bytes exceeds this relay's limit of {max} bytes (see Welcome.limits)"
            ),
        )
    }

    async fn frame(&mut self, frame: ClientFrame) -> Result<(), End> {
        if !self.greeted {
            return match frame {
                ClientFrame::Hello {
                    version,
                    replica,
                    token,
                } => self.hello(version, replica, token).await,
                _ => Err(fatal(
                    ErrorCode::UnexpectedFrame,
                    "the first frame must be Hello",
                )),
            };
        }
        if !matches!(frame, ClientFrame::SignedPush { .. }) {
            // Answers go out in the order of the frames.
            self.finish_pushes().await?;
        }
        match frame {
            ClientFrame::Hello { .. } => Err(fatal(
                ErrorCode::UnexpectedFrame,
                "Hello was already received on this connection",
            )),
            ClientFrame::Subscribe { doc, since } => self.subscribe(doc, since).await,
            ClientFrame::Unsubscribe { doc } => {
                self.unsubscribe(doc);
                Ok(())
            }
            // Writes are acted on only with a proof of the document key.
            ClientFrame::Push { doc, .. }
            | ClientFrame::Snapshot { doc, .. }
            | ClientFrame::Presence { doc, .. } => {
                let message = format!(
                    "a write to {doc} must be signed with the document key (SignedPush, SignedSnapshot, SignedPresence: protocol version 3)"
                );
                self.deny(doc, (AuthFailure::Unproven, message)).await
            }
            ClientFrame::SignedPush { doc, deltas, proof } => {
                match proof::verify(&doc, &proof::push_digest(&doc, &deltas), &proof) {
                    Ok(()) => self.push(doc, deltas).await,
                    Err(error) => self.unproven(doc, error).await,
                }
            }
            ClientFrame::Ping { nonce } => Ok(self.queue.send(&RelayFrame::Pong { nonce }).await?),
            ClientFrame::Authorize { doc, token } => self.authorize(doc, token).await,
            ClientFrame::SignedPresence { doc, bytes, proof } => {
                let digest = proof::presence_digest(&doc, &self.replica, &bytes);
                match proof::verify(&doc, &digest, &proof) {
                    Ok(()) => self.presence(doc, bytes).await,
                    Err(error) => self.unproven(doc, error).await,
                }
            }
            ClientFrame::SignedMessage {
                doc,
                to,
                bytes,
                proof,
            } => {
                let digest = proof::message_digest(&doc, &self.replica, to.as_ref(), &bytes);
                match proof::verify(&doc, &digest, &proof) {
                    Ok(()) => self.message(doc, to, bytes).await,
                    Err(error) => self.unproven(doc, error).await,
                }
            }
            ClientFrame::SignedSnapshot {
                doc,
                covers_seq,
                id,
                bytes,
                proof,
            } => {
                let digest = proof::snapshot_digest(&doc, covers_seq, &id, &bytes);
                match proof::verify(&doc, &digest, &proof) {
                    Ok(()) => self.snapshot(doc, covers_seq, id, bytes).await,
                    Err(error) => self.unproven(doc, error).await,
                }
            }
        }
    }

    /// Refuses a write whose proof did not verify: nothing is stored,
    /// fanned out or deleted on its account.
    async fn unproven(&mut self, doc: DocId, error: ProofError) -> Result<(), End> {
        let message = format!("the write to {doc} was refused: {error}");
        self.deny(doc, (AuthFailure::Unproven, message)).await
    }

    async fn hello(
        &mut self,
        version: u32,
        replica: [u8; 16],
        token: Option<String>,
    ) -> Result<(), End> {
        if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version) {
            return Err(fatal(
                ErrorCode::UnsupportedVersion,
                format!(
                    "this relay speaks protocol versions {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}; the client sent {version}"
                ),
            ));
        }
        if let (Some(secret), Some(token)) = (&self.shared.config.auth, token) {
            match secret.verify(&token, auth::unix_now()) {
                Ok(claims) => {
                    self.grants.insert(claims.doc, claims);
                }
                Err(error) => {
                    let reason = match error {
                        TokenError::Expired { .. } => AuthFailure::Expired,
                        _ => AuthFailure::Invalid,
                    };
                    self.shared.metrics.auth_failure(reason);
                    return Err(fatal(
                        ErrorCode::Unauthorized,
                        format!("the token in Hello was refused: {error}"),
                    ));
                }
            }
        }
        // In open mode a token is accepted and ignored.
        self.greeted = true;
        self.version = version.min(PROTOCOL_VERSION);
        self.replica = replica;
        let hex: String = replica.iter().map(|b| format!("{b:02x}")).collect();
        tracing::debug!(replica = %hex, version = self.version, "hello");
        let limits = &self.shared.config.limits;
        let welcome = RelayFrame::Welcome {
            version: self.version,
            epoch: self.shared.store.epoch(),
            limits: Limits {
                max_frame_bytes: u32::try_from(limits.max_frame_bytes).unwrap_or(u32::MAX),
                max_deltas_per_frame: MAX_DELTAS_PER_FRAME as u32,
            },
        };
        Ok(self.queue.send(&welcome).await?)
    }

    async fn authorize(&mut self, doc: DocId, token: String) -> Result<(), End> {
        let Some(secret) = &self.shared.config.auth else {
            // Open mode: every document is open; nothing to check.
            return Ok(());
        };
        let verified = if token.len() > MAX_TOKEN_BYTES {
            Err(TokenError::Malformed("longer than any token"))
        } else {
            secret.verify(&token, auth::unix_now())
        };
        let denied = match verified {
            Ok(claims) if claims.doc == doc => {
                let full = self.grants.len() >= self.shared.config.limits.max_subscriptions;
                if full && !self.grants.contains_key(&doc) {
                    self.shared.metrics.limit_exceeded(Limit::Subscriptions);
                    let message =
                        "too many documents authorized on this connection; open another connection";
                    return self.doc_error(doc, ErrorCode::LimitExceeded, message).await;
                }
                // The latest valid token for a document replaces the last.
                self.grants.insert(doc, claims);
                return Ok(());
            }
            Ok(claims) => (
                AuthFailure::WrongDoc,
                format!(
                    "this token is for document {}, not {doc}: get a token for {doc}",
                    claims.doc
                ),
            ),
            Err(error @ TokenError::Expired { .. }) => (AuthFailure::Expired, error.to_string()),
            Err(error) => (AuthFailure::Invalid, error.to_string()),
        };
        self.deny(doc, denied).await
    }

    /// Whether this connection may do what `needs` on `doc`.
    fn access(&self, doc: DocId, needs: Rights) -> Result<(), Denied> {
        if self.shared.config.auth.is_none() {
            return Ok(());
        }
        let Some(claims) = self.grants.get(&doc) else {
            return Err((
                AuthFailure::Missing,
                format!(
                    "no token for document {doc}: send Authorize{{doc, token}} with a token for it first"
                ),
            ));
        };
        if claims.expires_at <= auth::unix_now() {
            return Err((
                AuthFailure::Expired,
                format!(
                    "the token for document {doc} expired at {} (unix seconds): send Authorize with a fresh one",
                    claims.expires_at
                ),
            ));
        }
        if needs == Rights::Write && claims.rights == Rights::Read {
            return Err((
                AuthFailure::ReadOnly,
                format!(
                    "the token for document {doc} grants read only: pushing and snapshots need a write token"
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a request about `doc`. Version 3 clients learn exactly why
    /// (`ReadOnly`, `TokenExpired`), so they can keep reading or fetch a
    /// fresh token; older ones only know `Unauthorized`.
    async fn deny(&mut self, doc: DocId, (reason, message): Denied) -> Result<(), End> {
        self.shared.metrics.auth_failure(reason);
        let code = match reason {
            _ if self.version < 3 => ErrorCode::Unauthorized,
            AuthFailure::ReadOnly => ErrorCode::ReadOnly,
            AuthFailure::Expired => ErrorCode::TokenExpired,
            AuthFailure::Unproven => ErrorCode::Unproven,
            AuthFailure::Missing | AuthFailure::Invalid | AuthFailure::WrongDoc => {
                ErrorCode::Unauthorized
            }
        };
        self.doc_error(doc, code, &message).await
    }

    async fn doc_error(&mut self, doc: DocId, code: ErrorCode, message: &str) -> Result<(), End> {
        let frame = RelayFrame::DocError {
            doc,
            code,
            message: message.to_owned(),
        };
        Ok(self.queue.send(&frame).await?)
    }

    /// Sends every committed delta after `since`, then switches the
    /// subscription to live — without a gap or a duplicate (see
    /// [`crate::hub`] for why this order is right).
    async fn subscribe(&mut self, doc: DocId, since: u64) -> Result<(), End> {
        if let Err(denied) = self.access(doc, Rights::Read) {
            return self.deny(doc, denied).await;
        }
        let limits = &self.shared.config.limits;
        if !self.subscriptions.contains(&doc)
            && self.subscriptions.len() >= limits.max_subscriptions
        {
            self.shared.metrics.limit_exceeded(Limit::Subscriptions);
            let message = format!(
                "this connection already subscribes to {} documents, the most allowed: unsubscribe from one first",
                limits.max_subscriptions
            );
            return self
                .doc_error(doc, ErrorCode::LimitExceeded, &message)
                .await;
        }
        let conn = self.queue.id();
        let shared = Arc::clone(&self.shared);
        let hub = &shared.hub;
        let delivery = Delivery::for_version(self.version);
        hub.subscribe(doc, self.queue.clone(), self.replica, delivery);
        if self.version >= MESSAGES_VERSION {
            hub.take_messages(doc, self.queue.id());
        }
        if self.subscriptions.insert(doc) {
            shared.metrics.subscriptions.inc();
        }

        // 1. Catch up from storage, page by page.
        let mut sent_up_to = since;
        loop {
            let read = shared
                .store
                .read_page(doc, sent_up_to, shared.config.page)
                .await;
            let page = match read {
                Ok(page) => page,
                Err(error) => {
                    tracing::error!(%doc, %error, "catch-up read failed");
                    shared.metrics.store_errors.inc();
                    self.unsubscribe(doc);
                    let message = "could not read the document; subscribe again";
                    return self.doc_error(doc, ErrorCode::Internal, message).await;
                }
            };
            if let Some(last) = page.items.last() {
                sent_up_to = last.seq;
            }
            shared.metrics.deltas_out.add(page.items.len() as u64);
            let caught_up = !page.more;
            let frame = RelayFrame::Deltas {
                doc,
                items: page.items,
                caught_up,
            };
            self.queue.send(&frame).await?;
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
                    if self.subscriptions.remove(&doc) {
                        shared.metrics.subscriptions.dec();
                    }
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
                    shared.metrics.deltas_out.add(fresh.len() as u64);
                    for frame in delta_frames(doc, &fresh, hub.frame_limits(), true) {
                        self.queue.send_bytes(frame).await?;
                    }
                }
            }
        }
    }

    /// Stops live deltas and presence of `doc`; a no-op if not subscribed.
    fn unsubscribe(&mut self, doc: DocId) {
        if self.subscriptions.remove(&doc) {
            self.shared.hub.unsubscribe(doc, self.queue.id());
            self.shared.metrics.subscriptions.dec();
        }
    }

    /// Fans the deltas out tentatively, then submits them for commit (the
    /// store publishes them once durable); the `Ack` follows from
    /// [`Session::acknowledge`].
    async fn push(&mut self, doc: DocId, mut deltas: Vec<PushDelta>) -> Result<(), End> {
        if let Err(denied) = self.access(doc, Rights::Write) {
            self.finish_pushes().await?;
            return self.deny(doc, denied).await;
        }
        self.shared.metrics.deltas_in.add(deltas.len() as u64);
        if let Some(big) = deltas.iter().find(|d| d.bytes.len() > MAX_DELTA_BYTES) {
            self.shared.metrics.limit_exceeded(Limit::DeltaSize);
            let message = format!(
                "delta {} is {} bytes; the limit is {MAX_DELTA_BYTES}: split it",
                big.id,
                big.bytes.len()
            );
            self.finish_pushes().await?;
            return self
                .doc_error(doc, ErrorCode::LimitExceeded, &message)
                .await;
        }
        let bytes = deltas.iter().map(|d| d.bytes.len()).sum::<usize>();
        let quota = self
            .shared
            .quota
            .admit(doc, bytes as u64, &self.shared.metrics);
        if let Err(exceeded) = quota.await {
            self.finish_pushes().await?;
            return self.over_quota(doc, exceeded).await;
        }
        while self.in_flight.len() >= MAX_PUSHES_IN_FLIGHT
            || (self.pushes_in_flight() && self.in_flight_bytes + bytes > MAX_PUSH_BYTES_IN_FLIGHT)
        {
            let done = self.committed().await;
            self.acknowledge(done).await?;
        }
        let ids = deltas.iter().map(|d| d.id).collect();
        let conn = self.queue.id();
        // Before the commit is queued, so every `Tentative` of this push
        // is in its subscribers' queues before any `Committed` for it.
        let stamp = self.shared.hub.tentative(doc, conn, &mut deltas);
        // Queued in the store now: pushes commit in the order they came.
        let commit = Box::pin(self.shared.commit(doc, conn, stamp, deltas));
        self.in_flight_bytes += bytes;
        self.in_flight.push_back(InFlight {
            doc,
            ids,
            bytes,
            commit,
        });
        Ok(())
    }

    /// Stores a client-made compaction, then acks it like a push.
    async fn snapshot(
        &mut self,
        doc: DocId,
        covers_seq: u64,
        id: DeltaId,
        bytes: Vec<u8>,
    ) -> Result<(), End> {
        if let Err(denied) = self.access(doc, Rights::Write) {
            return self.deny(doc, denied).await;
        }
        if covers_seq == 0 {
            let message = "a snapshot with covers_seq 0 covers nothing: send it with the highest sequence it includes";
            return self.doc_error(doc, ErrorCode::Malformed, message).await;
        }
        if bytes.len() > MAX_DELTA_BYTES {
            self.shared.metrics.limit_exceeded(Limit::DeltaSize);
            let message = format!(
                "the snapshot is {} bytes; the limit is {MAX_DELTA_BYTES}",
                bytes.len()
            );
            return self
                .doc_error(doc, ErrorCode::LimitExceeded, &message)
                .await;
        }
        let snapshot = Snapshot {
            covers_seq,
            id,
            bytes,
        };
        match self.shared.snapshot(doc, snapshot).await {
            Ok(SnapshotOutcome::Stored | SnapshotOutcome::Superseded { .. }) => {
                let ack = RelayFrame::Ack {
                    doc,
                    ids: vec![id],
                    seq: covers_seq,
                };
                Ok(self.queue.send(&ack).await?)
            }
            Ok(SnapshotOutcome::BeyondHead { head }) => {
                let message = format!(
                    "the snapshot covers seq {covers_seq} but the log of {doc} ends at {head}: snapshot only what you received from this relay"
                );
                self.doc_error(doc, ErrorCode::UnexpectedFrame, &message)
                    .await
            }
            Err(error) => {
                tracing::error!(%doc, %error, "snapshot failed");
                let message = "could not store the snapshot; send it again";
                self.doc_error(doc, ErrorCode::Internal, message).await
            }
        }
    }

    /// Fans presence out to the document's other subscribers.
    async fn presence(&mut self, doc: DocId, bytes: Vec<u8>) -> Result<(), End> {
        self.shared.metrics.presence_in.inc();
        // Read rights suffice: viewers are present too, and presence
        // cannot change the document.
        if let Err(denied) = self.access(doc, Rights::Read) {
            return self.deny(doc, denied).await;
        }
        let max = self.shared.config.limits.max_presence_bytes;
        if bytes.len() > max {
            self.shared.metrics.limit_exceeded(Limit::PresenceSize);
            let message = format!(
                "presence of {} bytes exceeds the limit of {max} bytes",
                bytes.len()
            );
            return self
                .doc_error(doc, ErrorCode::LimitExceeded, &message)
                .await;
        }
        if !self.subscriptions.contains(&doc)
            || self
                .shared
                .hub
                .set_presence(doc, self.queue.id(), bytes)
                .is_err()
        {
            let message = format!("subscribe to {doc} before sending presence for it");
            return self
                .doc_error(doc, ErrorCode::UnexpectedFrame, &message)
                .await;
        }
        Ok(())
    }
}

impl Drop for Session {
    /// Ends every subscription (peers hear that its presence is gone).
    fn drop(&mut self) {
        for doc in std::mem::take(&mut self.subscriptions) {
            self.shared.hub.unsubscribe(doc, self.queue.id());
            self.shared.metrics.subscriptions.dec();
        }
    }
}
