//! [`Client`]: the engine on tokio, with a [`FileStore`] and a WebSocket.
//!
//! The client owns one [`Engine`] behind a mutex and does what its effects
//! ask: a `Persist` batch is appended to the store and `fsync`ed before the
//! engine hears [`Engine::persisted`] (so a delta is pushed only once it is
//! durable here, and a cursor never gets ahead of the disk); a `Send` goes
//! to the current socket; a `Disconnect` drops it. A background task
//! ([`crate::connection`]) connects, feeds frames in, ticks the engine at
//! its deadlines and reconnects as the core's [`Dialer`] decides (the same
//! connection policy as the browser's).
//!
//! Async helpers wait for what a caller cares about, each bounded by a
//! timeout that says what it was waiting for and why it did not happen:
//! [`Client::wait_caught_up`] (the relay has sent everything it had for a
//! document) and [`Client::wait_synced`] (the outbox is empty: the relay
//! acked every local change, which it does only after its own commit).
//! [`Client::subscribe`] streams [`Event`]s.
//!
//! Ephemeral messages and requests between the replicas online on a
//! document ([`Client::broadcast`], [`Client::request`], [`Client::serve`])
//! are in [`crate::messages`].
//!
//! Storage writes happen inline, under the engine's lock: right for a
//! command-line tool and small scripts, which is what this client is for.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;
use syncline_core::{
    Dialer, DialerConfig, DocId, DocUrl, Effect, Engine, EngineError, Op, Output, SessionState,
    Status, SynclineErrorCode,
};
use syncline_protocol::ErrorCode;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::connection;
use crate::messages::{self, Messages};
use crate::store::{FileStore, StoreError};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the relay refused the request: {code:?} (code {}): {message}", *code as u8)]
    Relay {
        code: ErrorCode,
        message: String,
        fatal: bool,
    },
    #[error(
        "timed out after {} waiting for {what}: {state}",
        seconds(*waited)
    )]
    Timeout {
        what: String,
        waited: Duration,
        /// What the connection was doing when time ran out.
        state: String,
    },
    #[error("local storage failed, so this replica stopped syncing: {0}")]
    StorageFailed(String),
    #[error("`{0}` is not a relay URL: use ws://HOST:PORT (wss:// is not supported by this build)")]
    BadRelayUrl(String),
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// The relay refuses one document (or its token could not be had);
    /// `code` is `Unauthorized`, `ReadOnly`, `TokenExpired` or
    /// `TokenProvider`.
    #[error("{message} ({code})")]
    Access {
        code: SynclineErrorCode,
        message: String,
    },
    /// [`Client::request`]: no replica replied in time (code `NoServer`).
    #[error(
        "no replica answered `{method}` within {}: none serves it on this document, or none is online",
        seconds(*waited)
    )]
    NoServer { method: String, waited: Duration },
    /// [`Client::request`]: the serving replica's handler failed with
    /// `message` (code `RemoteError`).
    #[error("the handler of `{method}` failed: {message}")]
    Remote { method: String, message: String },
    /// [`Client::request`]: the reply is not JSON (code `RemoteError`).
    #[error("the result of `{method}` is not JSON: {error}")]
    BadReply { method: String, error: String },
    /// [`Client::request`]: the connection dropped (or the client closed)
    /// before a reply came (code `Offline`).
    #[error("the connection to the relay dropped before `{method}` was answered")]
    Disconnected { method: String },
}

impl ClientError {
    /// The error's stable code, as the engine and the browser name it; `None`
    /// only for [`ClientError::Timeout`] (a wait helper's own deadline).
    pub fn code(&self) -> Option<SynclineErrorCode> {
        Some(match self {
            ClientError::Store(_) | ClientError::StorageFailed(_) => SynclineErrorCode::Storage,
            ClientError::Engine(e) => e.code(),
            ClientError::Relay {
                code: ErrorCode::RateLimited,
                ..
            } => SynclineErrorCode::RateLimited,
            ClientError::Relay { .. } => SynclineErrorCode::RelayRejected,
            ClientError::Timeout { .. } => return None,
            ClientError::BadRelayUrl(_) => SynclineErrorCode::BadRelayUrl,
            ClientError::Random(_) => SynclineErrorCode::NoRandomness,
            ClientError::Access { code, .. } => *code,
            ClientError::NoServer { .. } => SynclineErrorCode::NoServer,
            ClientError::Remote { .. } | ClientError::BadReply { .. } => {
                SynclineErrorCode::RemoteError
            }
            ClientError::Disconnected { .. } => SynclineErrorCode::Offline,
        })
    }
}

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// How to reach the relay.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `ws://HOST:PORT[/path]`, or several relays of one cluster separated
    /// by commas: the client fails over from one to the next.
    pub relay: String,
    /// Where each document's access token comes from.
    pub tokens: Tokens,
}

/// A function from a document (`syncline:<id>`, never its key) to its
/// access token, or why there is none. It runs on a blocking thread.
pub type TokenProvider = Arc<dyn Fn(&str) -> Result<String, String> + Send + Sync>;

/// Where the client gets access tokens. A relay with a secret wants one per
/// document, presented with `Authorize` before anything about it; the
/// client asks for each document on every connection, and again when the
/// relay says its token expired (see `syncline_core`'s `access` module).
#[derive(Clone, Default)]
pub enum Tokens {
    /// An open relay: no tokens.
    #[default]
    None,
    /// This token for every document (right for a command that works on
    /// one document).
    Fixed(String),
    /// A token per document.
    Provider(TokenProvider),
}

impl std::fmt::Debug for Tokens {
    /// Never prints a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tokens::None => "Tokens::None",
            Tokens::Fixed(_) => "Tokens::Fixed(..)",
            Tokens::Provider(_) => "Tokens::Provider(..)",
        })
    }
}

/// What subscribers of [`Client::subscribe`] hear.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A document changed by a delta from elsewhere.
    DocChanged(DocId),
    /// The relay has sent everything it had for a document.
    CaughtUp(DocId),
    /// A peer's message on a document ([`Client::broadcast`]); `from` is
    /// its replica id ([`Client::replica`]). A message that is not JSON is
    /// dropped and reported as an `Error` with code `BadMessage`.
    Message {
        doc: DocId,
        from: [u8; 16],
        message: Json,
    },
    /// Something went wrong; the client carries on unless a wait fails.
    Error {
        code: SynclineErrorCode,
        message: String,
    },
}

/// A failure that ends waits: the relay's refusal or a broken disk.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    Relay {
        code: ErrorCode,
        message: String,
        fatal: bool,
    },
    Storage(String),
    Access {
        code: SynclineErrorCode,
        message: String,
    },
}

impl From<Failure> for ClientError {
    fn from(f: Failure) -> ClientError {
        match f {
            Failure::Relay {
                code,
                message,
                fatal,
            } => ClientError::Relay {
                code,
                message,
                fatal,
            },
            Failure::Storage(s) => ClientError::StorageFailed(s),
            Failure::Access { code, message } => ClientError::Access { code, message },
        }
    }
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    store: FileStore,
    /// Frames for the current socket, if any.
    pub(crate) conn: Option<mpsc::UnboundedSender<Vec<u8>>>,
    /// The connection policy: which relay when, heartbeats, final errors.
    pub(crate) dialer: Dialer,
    caught_up: HashSet<DocId>,
    /// Every refusal from the relay, in order.
    rejections: Vec<Failure>,
    /// Waits fail on refusals from this index on: those since the last
    /// create, open or change.
    mark: usize,
    /// Ends every wait and stops reconnecting.
    pub(crate) fatal: Option<Failure>,
    /// Why the last connection attempt or connection ended.
    pub(crate) link_error: Option<String>,
    pub(crate) connected: bool,
    /// Documents the engine wants a token for, to the token task.
    token_requests: mpsc::UnboundedSender<DocId>,
    /// Requests waiting for replies, and the handlers served here.
    pub(crate) messages: Messages,
}

pub(crate) struct ClientState {
    inner: Mutex<Inner>,
    /// Bumped after every engine step; waits and the connection task
    /// watch it.
    pub(crate) version: watch::Sender<u64>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) closing: watch::Sender<bool>,
    pub(crate) config: ClientConfig,
    pub(crate) replica: [u8; 16],
}

impl ClientState {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the engine, then does every effect it asked for.
    pub(crate) fn step<R>(&self, f: impl FnOnce(&mut Inner, u64) -> R) -> R {
        let now = now_ms();
        let mut events = Vec::new();
        let result = {
            let mut inner = self.lock();
            let result = f(&mut inner, now);
            inner.drain(now, &mut events);
            result
        };
        self.version.send_modify(|v| *v += 1);
        for event in events {
            let _ = self.events.send(event);
        }
        result
    }
}

impl Inner {
    fn drain(&mut self, now: u64, events: &mut Vec<Event>) {
        loop {
            let outputs = self.engine.take_outputs();
            if outputs.is_empty() {
                return;
            }
            for output in outputs {
                match output {
                    Output::Effect(effect) => self.effect(effect, now, events),
                    Output::TokenWanted { doc } => {
                        let _ = self.token_requests.send(doc);
                    }
                    output @ (Output::Message { .. }
                    | Output::Request { .. }
                    | Output::Reply { .. }) => {
                        self.messages.output(&mut self.engine, output, events);
                    }
                    // No tabs and no presence in this client.
                    Output::Broadcast(_)
                    | Output::Presence { .. }
                    | Output::PresenceGone { .. } => {}
                }
            }
        }
    }

    fn effect(&mut self, effect: Effect, now: u64, events: &mut Vec<Event>) {
        match effect {
            Effect::Persist(batch) => {
                if matches!(self.fatal, Some(Failure::Storage(_))) {
                    return; // later batches must not land without earlier ones
                }
                match self.store.apply(&batch) {
                    Ok(()) => self.engine.persisted(batch.id, now),
                    Err(e) => {
                        let message = e.to_string();
                        events.push(Event::Error {
                            code: SynclineErrorCode::Storage,
                            message: message.clone(),
                        });
                        self.fatal = Some(Failure::Storage(message));
                        self.dialer.stop();
                    }
                }
            }
            Effect::Send(bytes) => {
                if let Some(conn) = &self.conn {
                    let _ = conn.send(bytes);
                }
            }
            Effect::DocChanged(doc) => events.push(Event::DocChanged(doc)),
            Effect::CaughtUp(doc) => {
                self.caught_up.insert(doc);
                events.push(Event::CaughtUp(doc));
            }
            Effect::StatusChanged => {}
            Effect::Error(error) => {
                if let EngineError::Access { message, .. } = &error {
                    let code = error.code();
                    let message = message.clone();
                    self.rejections.push(Failure::Access { code, message });
                }
                if let EngineError::RelayRejected {
                    code,
                    message,
                    fatal,
                } = &error
                {
                    let failure = Failure::Relay {
                        code: *code,
                        message: message.clone(),
                        fatal: *fatal,
                    };
                    // The dialer knows which refusals are final.
                    if self.dialer.engine_error(&error) {
                        self.fatal = Some(failure.clone());
                    }
                    self.rejections.push(failure);
                }
                events.push(Event::Error {
                    code: error.code(),
                    message: error.to_string(),
                });
            }
            Effect::Disconnect => self.dialer.engine_gave_up(now),
        }
    }

    /// Called by the connection task when a socket closes.
    pub(crate) fn lost_connection(&mut self) {
        self.conn = None;
        self.connected = false;
        self.caught_up.clear();
        self.engine.disconnected();
    }

    /// When the engine's or the dialer's timers next need a tick (ms).
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let engine = self.engine.next_deadline();
        let dialer = self.dialer.next_deadline();
        engine.into_iter().chain(dialer).min()
    }

    fn failure(&self) -> Option<Failure> {
        self.fatal
            .clone()
            .or_else(|| self.rejections.get(self.mark..)?.first().cloned())
    }

    /// What the connection is doing, for timeout messages.
    fn diagnosis(&self, relay: &str, doc: Option<DocId>) -> String {
        let status = self.engine.status();
        match (self.connected, status.session) {
            (false, _) => match &self.link_error {
                Some(e) => format!("not connected to the relay at {relay}: {e}"),
                None => format!("still connecting to the relay at {relay}"),
            },
            (true, SessionState::Ready) => {
                let mut parts = Vec::new();
                if let Some(doc) = doc.filter(|d| !self.caught_up.contains(d)) {
                    parts.push(format!("the relay has not finished sending document {doc}"));
                }
                let unacked = status.unsaved + status.pending;
                if unacked > 0 {
                    parts.push(format!(
                        "{unacked} local change(s) not yet acknowledged by the relay"
                    ));
                }
                if parts.is_empty() {
                    parts.push("the relay did not answer".to_string());
                }
                format!("connected to {relay}, but {}", parts.join(" and "))
            }
            (true, _) => {
                format!("connected to {relay}, but the relay did not complete the handshake")
            }
        }
    }
}

/// A replica syncing with one relay. Dropping it stops the background task;
/// [`Client::close`] also closes the socket politely.
pub struct Client {
    pub(crate) shared: Arc<ClientState>,
    task: Option<JoinHandle<()>>,
    problems: Vec<EngineError>,
}

impl Client {
    /// Loads the replica from `store` and starts connecting to the relay.
    /// Must be called inside a tokio runtime.
    pub fn start(store: FileStore, config: ClientConfig) -> Result<Client, ClientError> {
        let relays = connection::relay_urls(&config.relay);
        let bad = |url: &&str| !url.starts_with("ws://") || url.len() <= "ws://".len();
        if relays.is_empty() || relays.iter().any(bad) {
            return Err(ClientError::BadRelayUrl(config.relay.clone()));
        }
        let seed: [u8; 32] = random()?;
        let replica: [u8; 16] = random()?;
        let dialer = Dialer::new(relays.len(), DialerConfig::default(), random()?);
        let (mut engine, problems) = Engine::load(seed, store.records());
        engine.set_tokens_required(!matches!(config.tokens, Tokens::None));
        let (token_requests, wanted) = mpsc::unbounded_channel();
        let (messages, jobs) = Messages::new();
        let inner = Inner {
            engine,
            store,
            conn: None,
            dialer,
            caught_up: HashSet::new(),
            rejections: Vec::new(),
            mark: 0,
            fatal: None,
            link_error: None,
            connected: false,
            token_requests,
            messages,
        };
        let shared = Arc::new(ClientState {
            inner: Mutex::new(inner),
            version: watch::Sender::new(0),
            events: broadcast::Sender::new(1024),
            closing: watch::Sender::new(false),
            config,
            replica,
        });
        let connection = connection::run(shared.clone());
        let tokens = fetch_tokens(shared.clone(), wanted);
        let handlers = messages::run_handlers(shared.clone(), jobs);
        let task = tokio::spawn(async move {
            tokio::join!(connection, tokens, handlers);
        });
        Ok(Client {
            shared,
            task: Some(task),
            problems,
        })
    }

    /// Records of the store that could not be loaded (and were skipped).
    pub fn load_problems(&self) -> &[EngineError] {
        &self.problems
    }

    /// Creates a document whose root holds the fields of `initial` (a JSON
    /// object). It reaches the relay in the background: see
    /// [`Client::wait_synced`].
    pub fn create_doc(&self, initial: &Json) -> Result<DocUrl, ClientError> {
        self.act(|engine, now| engine.create_doc(initial, now))
    }

    /// Starts tracking a document; returns whether this replica already has
    /// some of its content. See [`Client::wait_caught_up`].
    pub fn open_doc(&self, url: &DocUrl) -> Result<bool, ClientError> {
        self.act(|engine, now| engine.open_doc(url, now))
    }

    /// The document as standard Automerge bytes (see `Engine::export_doc`).
    pub fn export_doc(&self, doc: &DocId) -> Result<Vec<u8>, ClientError> {
        self.act(|engine, _| engine.export_doc(doc))
    }

    /// A new document from Automerge bytes (see `Engine::import_doc`); it
    /// reaches the relay in the background, as [`Client::create_doc`]'s.
    pub fn import_doc(&self, bytes: &[u8]) -> Result<DocUrl, ClientError> {
        self.act(|engine, now| engine.import_doc(bytes, now))
    }

    /// Applies `ops` to `doc` as one change, with an optional message.
    pub fn change(
        &self,
        doc: DocId,
        ops: &[Op],
        message: Option<String>,
    ) -> Result<(), ClientError> {
        self.act(|engine, now| engine.change(doc, ops, message, now))
    }

    /// Builds ops from the document's current value and applies them, with
    /// no other change in between. An error from `make` changes nothing.
    pub fn change_with<E>(
        &self,
        doc: DocId,
        make: impl FnOnce(&Json) -> Result<Vec<Op>, E>,
    ) -> Result<Result<(), E>, ClientError> {
        self.act(|engine, now| {
            let value = engine.value_json(&doc)?;
            Ok(match make(&value) {
                Ok(ops) => Ok(engine.change(doc, &ops, None, now)?),
                Err(e) => Err(e),
            })
        })
    }

    fn act<R>(
        &self,
        f: impl FnOnce(&mut Engine, u64) -> Result<R, EngineError>,
    ) -> Result<R, ClientError> {
        self.shared.step(|inner, now| {
            if let Some(Failure::Storage(s)) = &inner.fatal {
                return Err(ClientError::StorageFailed(s.clone()));
            }
            inner.mark = inner.rejections.len();
            Ok(f(&mut inner.engine, now)?)
        })
    }

    /// The failure that stopped this client for good (a fatal refusal by the
    /// relay, or a storage error), if any.
    pub fn failed(&self) -> Option<ClientError> {
        self.shared.lock().fatal.clone().map(ClientError::from)
    }

    /// The document's current value as JSON.
    pub fn value(&self, doc: &DocId) -> Result<Json, ClientError> {
        Ok(self.shared.lock().engine.value_json(doc)?)
    }

    /// Runs `f` on the engine itself (for anything the helpers lack), then
    /// does the effects it caused.
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut Engine, u64) -> R) -> R {
        self.shared.step(|inner, now| f(&mut inner.engine, now))
    }

    /// This replica's id on the current and every later connection: the
    /// `from` of its messages at the other replicas.
    pub fn replica(&self) -> [u8; 16] {
        self.shared.replica
    }

    pub fn status(&self) -> Status {
        self.shared.lock().engine.status()
    }

    /// Events from now on. A receiver that falls behind gets
    /// `RecvError::Lagged` and should re-read what it shows.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Waits until the relay has sent everything it had for `doc` on the
    /// current connection.
    pub async fn wait_caught_up(&self, doc: DocId, within: Duration) -> Result<(), ClientError> {
        let what = format!("document {doc} from the relay");
        self.wait(what, within, Some(doc), |inner| {
            inner.caught_up.contains(&doc)
        })
        .await
    }

    /// Waits until the outbox is empty: the relay acked (after committing)
    /// every local change made so far.
    pub async fn wait_synced(&self, within: Duration) -> Result<(), ClientError> {
        let what = "the relay to acknowledge the change".to_string();
        self.wait(what, within, None, |inner| {
            let status = inner.engine.status();
            status.unsaved + status.pending == 0
        })
        .await
    }

    async fn wait(
        &self,
        what: String,
        within: Duration,
        doc: Option<DocId>,
        ready: impl Fn(&Inner) -> bool,
    ) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + within;
        let mut changes = self.shared.version.subscribe();
        loop {
            {
                let inner = self.shared.lock();
                if let Some(failure) = inner.failure() {
                    return Err(failure.into());
                }
                if ready(&inner) {
                    return Ok(());
                }
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                let state = self.shared.lock().diagnosis(&self.shared.config.relay, doc);
                return Err(ClientError::Timeout {
                    what,
                    waited: within,
                    state,
                });
            }
        }
    }

    /// Closes the connection (sending a WebSocket close) and stops the
    /// background task, waiting at most about two seconds for both.
    pub async fn close(mut self) {
        self.shared.closing.send_replace(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Answers the engine's token requests until the client goes away: a fixed
/// token at once, a provider's on a blocking thread (a slow token endpoint
/// holds up only its own document).
async fn fetch_tokens(shared: Arc<ClientState>, mut wanted: mpsc::UnboundedReceiver<DocId>) {
    let mut closing = shared.closing.subscribe();
    loop {
        let doc = tokio::select! {
            doc = wanted.recv() => match doc {
                Some(doc) => doc,
                None => return,
            },
            _ = closing.wait_for(|c| *c) => return,
        };
        let answer = match &shared.config.tokens {
            Tokens::None => Err("no token was configured".to_string()),
            Tokens::Fixed(token) => Ok(token.clone()),
            Tokens::Provider(provider) => {
                let provider = provider.clone();
                let url = format!("syncline:{doc}");
                let shared = shared.clone();
                tokio::spawn(async move {
                    let answer = tokio::task::spawn_blocking(move || provider(&url))
                        .await
                        .unwrap_or_else(|e| Err(format!("the token provider panicked: {e}")));
                    answer_token(&shared, doc, answer);
                });
                continue;
            }
        };
        answer_token(&shared, doc, answer);
    }
}

fn answer_token(shared: &ClientState, doc: DocId, answer: Result<String, String>) {
    shared.step(|inner, now| match answer {
        Ok(token) => inner.engine.token_ready(doc, token, now),
        Err(why) => inner.engine.token_failed(doc, why, now),
    });
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Fresh random bytes from the operating system.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], ClientError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| ClientError::Random(e.to_string()))?;
    Ok(bytes)
}
