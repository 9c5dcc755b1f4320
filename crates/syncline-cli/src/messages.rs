//! Ephemeral messages and requests between the replicas online on a
//! document, with JSON payloads: [`Client::broadcast`], [`Client::request`]
//! and [`Client::serve`].
//!
//! Nothing here is stored or queued, by this client or by the relay: a
//! message reaches the replicas subscribed to the document at the moment
//! it is sent, and nobody else. Use it for what is worth nothing a second
//! later (a cursor, "someone is typing", "please recompute"), and the
//! document itself for everything that must arrive. The engine seals every
//! message with the document's key (the relay sees only sizes) and the
//! relay drops messages over 64 KiB or beyond 100 a second per connection
//! (see `syncline_core::messages`).
//!
//! **The wire format is JSON**, the same as in the npm package: a
//! broadcast message, a request's payload and a reply's result are each
//! the UTF-8 JSON text of one value. What arrives and is not JSON is an
//! error of the sender's, never a panic here: a message is dropped and
//! reported as an [`Event::Error`] with code `BadMessage`; a request's
//! payload is answered with an error without running the handler; a
//! reply fails the request with [`ClientError::BadReply`].
//!
//! **Broadcasts.** [`Client::broadcast`] returns whether the message went
//! out; `false` means not connected (or the relay has not granted the
//! document yet) and nothing is queued. Every other replica online on the
//! document gets an [`Event::Message`] on its [`Client::subscribe`]
//! stream, with the sender's replica id ([`Client::replica`]) as `from`;
//! the sender does not hear its own message.
//!
//! **Requests.** [`Client::request`] asks every replica on the document;
//! those that [`Client::serve`] the method run the handler and reply, and
//! the first reply wins. Since a replica that does not serve the method
//! stays silent, "nobody serves it" is known only when the timeout passes:
//! then the request fails with [`ClientError::NoServer`]. So pick a timeout
//! a little longer than the handler needs, and serve a method from one
//! replica per document (or make it idempotent: every server runs it).
//! The engine keeps the deadline; the client's background task wakes at
//! the engine's next deadline, which includes every request's.
//!
//! | outcome | error | code |
//! | --- | --- | --- |
//! | not connected when asked | [`ClientError::Engine`] (`MessagesOffline`), at once | `Offline` |
//! | payload over the size limit | [`ClientError::Engine`] (`MessageTooLarge`), nothing sent | `MessageTooLarge` |
//! | nobody replied in time | [`ClientError::NoServer`], after the timeout | `NoServer` |
//! | the handler returned `Err` or panicked | [`ClientError::Remote`] with its message | `RemoteError` |
//! | the result is not JSON | [`ClientError::BadReply`] | `RemoteError` |
//! | the connection dropped first | [`ClientError::Disconnected`], at once | `Offline` |
//!
//! **Handlers.** A handler is an async function from the payload to the
//! result or an error message. Each request runs it on its own tokio task,
//! so a handler that panics fails that request only (its caller gets the
//! panic's message) and the replica serves on. At most
//! [`MAX_RUNNING_HANDLERS`] run at once per client; further requests wait
//! for a slot in arrival order, at most [`MAX_WAITING_REQUESTS`] of them,
//! and a request beyond that is answered at once with a "busy" error. The
//! bound keeps a flood of requests from spawning without limit (the relay
//! caps each sender at 100 messages a second, but not the sum of senders).
//!
//! ```no_run
//! # async fn demo(a: syncline_cli::Client, b: syncline_cli::Client, url: syncline_core::DocUrl)
//! # -> Result<(), syncline_cli::ClientError> {
//! use std::time::Duration;
//! use serde_json::{json, Value};
//!
//! // Replica B serves "upper" on the document...
//! b.serve(&url.doc, "upper", |payload: Value| async move {
//!     match payload {
//!         Value::String(s) => Ok(Value::String(s.to_uppercase())),
//!         _ => Err("expected a string".to_string()),
//!     }
//! })?;
//! // ...and replica A asks for it.
//! let result = a.request(&url.doc, "upper", &json!("milk"), Duration::from_secs(5)).await?;
//! assert_eq!(result, json!("MILK"));
//! // A broadcast reaches B as `Event::Message` on `b.subscribe()`.
//! a.broadcast(&url.doc, &json!({"typing": true}))?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use syncline_core::{
    DocId, Engine, EngineError, Output, RequestFailure, RequestId, SynclineErrorCode,
};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::client::{Client, ClientError, ClientState, Event};

/// Handlers running at once, per client.
pub const MAX_RUNNING_HANDLERS: usize = 64;
/// Requests waiting for a free handler slot, per client; more are answered
/// with a "busy" error.
pub const MAX_WAITING_REQUESTS: usize = 1024;
/// How long [`Client::request`] waits beyond its timeout for the engine to
/// settle the request, should the background task be gone.
const GRACE: Duration = Duration::from_secs(10);

/// What a handler returns: its result, or an error message for the caller.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Json, String>> + Send>>;
type Handler = Arc<dyn Fn(Json) -> HandlerFuture + Send + Sync>;

/// A request the engine passed up: a peer asks for a method served here.
struct Job {
    doc: DocId,
    from: [u8; 16],
    id: RequestId,
    method: String,
    payload: Vec<u8>,
}

/// A request and the handler to run for it.
pub(crate) struct Run {
    job: Job,
    handler: Handler,
}

/// The client's half of messages (the engine keeps the other): who waits
/// for which reply, and the handlers.
pub(crate) struct Messages {
    waiting: HashMap<RequestId, oneshot::Sender<Result<Vec<u8>, RequestFailure>>>,
    handlers: HashMap<(DocId, String), Handler>,
    /// To [`run_handlers`]; bounded by [`MAX_WAITING_REQUESTS`].
    runs: mpsc::Sender<Run>,
}

impl Messages {
    pub(crate) fn new() -> (Messages, mpsc::Receiver<Run>) {
        let (runs, queue) = mpsc::channel(MAX_WAITING_REQUESTS);
        let messages = Messages {
            waiting: HashMap::new(),
            handlers: HashMap::new(),
            runs,
        };
        (messages, queue)
    }

    /// Does what an engine output about messages asks: a peer's message
    /// becomes an event, a request goes to its handler, a reply to the
    /// caller waiting for it (if still there).
    pub(crate) fn output(&mut self, engine: &mut Engine, output: Output, events: &mut Vec<Event>) {
        match output {
            Output::Message { doc, from, message } => events.push(received(doc, from, &message)),
            Output::Request {
                doc,
                from,
                id,
                method,
                payload,
            } => {
                let job = Job {
                    doc,
                    from,
                    id,
                    method,
                    payload,
                };
                events.extend(self.dispatch(engine, job));
            }
            Output::Reply { id, result, .. } => {
                if let Some(caller) = self.waiting.remove(&id) {
                    let _ = caller.send(result);
                }
            }
            _ => {}
        }
    }

    /// A peer's request (`Output::Request`) goes to its handler's queue.
    /// With no handler (unserved meanwhile) it is ignored, as the engine
    /// ignores requests for methods not served; with the queue full it is
    /// answered "busy" at once.
    fn dispatch(&mut self, engine: &mut Engine, job: Job) -> Option<Event> {
        let handler = self.handlers.get(&(job.doc, job.method.clone()))?.clone();
        match self.runs.try_send(Run { job, handler }) {
            Ok(()) | Err(TrySendError::Closed(_)) => None, // closed: the client is closing
            Err(TrySendError::Full(Run { job, .. })) => {
                let busy = format!(
                    "busy: {MAX_WAITING_REQUESTS} requests already wait for a handler on the serving replica"
                );
                reply_failed(engine.reply(job.doc, job.from, job.id, Err(busy)))
            }
        }
    }
}

/// A peer's message (`Output::Message`) as an event: JSON, or an error.
fn received(doc: DocId, from: [u8; 16], message: &[u8]) -> Event {
    match serde_json::from_slice(message) {
        Ok(message) => Event::Message { doc, from, message },
        Err(e) => Event::Error {
            code: SynclineErrorCode::BadMessage,
            message: format!(
                "a message on document {doc} from replica {} is not JSON and was dropped: {e}",
                hex(&from)
            ),
        },
    }
}

/// Runs the handlers of queued requests, [`MAX_RUNNING_HANDLERS`] at once,
/// until the client closes. Handlers already running finish and reply.
pub(crate) async fn run_handlers(shared: Arc<ClientState>, mut queue: mpsc::Receiver<Run>) {
    let slots = Arc::new(Semaphore::new(MAX_RUNNING_HANDLERS));
    let mut closing = shared.closing.subscribe();
    loop {
        let run = tokio::select! {
            run = queue.recv() => match run {
                Some(run) => run,
                None => return,
            },
            _ = closing.wait_for(|c| *c) => return,
        };
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return, // never closed
            },
            _ = closing.wait_for(|c| *c) => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let Run { job, handler } = run;
            let result = answer(handler, &job.method, &job.payload).await;
            let sent =
                shared.step(|inner, _| inner.engine.reply(job.doc, job.from, job.id, result));
            drop(slot);
            if let Some(event) = reply_failed(sent) {
                let _ = shared.events.send(event);
            }
        });
    }
}

/// The handler's answer to one request, as the bytes of a reply. The
/// handler runs on a task of its own, so that a panic is only an error.
async fn answer(handler: Handler, method: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
    let payload: Json = serde_json::from_slice(payload)
        .map_err(|e| format!("the request's payload is not JSON: {e}"))?;
    let result = match tokio::spawn(async move { handler(payload).await }).await {
        Ok(result) => result?,
        Err(e) if e.is_panic() => {
            let panic = e.into_panic();
            let why = (panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            return Err(format!("the handler of `{method}` panicked: {why}"));
        }
        Err(_) => return Err(format!("the handler of `{method}` was cancelled")),
    };
    Ok(to_bytes(&result))
}

/// A failed `Engine::reply` as an event (a reply over the size limit was
/// answered with an error saying so; the handler's host hears it here).
fn reply_failed(sent: Result<bool, EngineError>) -> Option<Event> {
    let error = sent.err()?;
    Some(Event::Error {
        code: error.code(),
        message: format!("a reply could not be sent: {error}"),
    })
}

impl Client {
    /// Sends `message` to the other replicas online on `doc` now; returns
    /// whether it went out (`false`: not connected, or the relay has not
    /// granted the document yet; nothing is queued). Fails with code
    /// `MessageTooLarge` over the size limit (64 KiB sealed), sending
    /// nothing. They get it as [`Event::Message`].
    pub fn broadcast(&self, doc: &DocId, message: &Json) -> Result<bool, ClientError> {
        let bytes = to_bytes(message);
        Ok(self
            .shared
            .step(|inner, _| inner.engine.send_message(*doc, bytes))?)
    }

    /// Asks the replicas online on `doc` that serve `method` (see
    /// [`Client::serve`]) and returns the first one's result. Fails at once
    /// when not connected (code `Offline`) or over the size limit
    /// (`MessageTooLarge`); with [`ClientError::NoServer`] when nobody
    /// replied within `timeout`; with [`ClientError::Remote`] when the
    /// handler failed; with [`ClientError::Disconnected`] when the
    /// connection dropped first. Dropping the future forgets the result
    /// (the engine still counts the request as pending until its deadline).
    pub async fn request(
        &self,
        doc: &DocId,
        method: &str,
        payload: &Json,
        timeout: Duration,
    ) -> Result<Json, ClientError> {
        let payload = to_bytes(payload);
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let (caller, settled) = oneshot::channel();
        self.shared.step(|inner, now| {
            let id = inner
                .engine
                .request(*doc, method, payload, timeout_ms, now)?;
            inner.messages.waiting.insert(id, caller);
            Ok::<_, EngineError>(())
        })?;
        let method = method.to_owned();
        // The engine settles the request by its deadline; the grace only
        // bounds the wait should the client's background task be gone.
        let result = match tokio::time::timeout(timeout.saturating_add(GRACE), settled).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RequestFailure::Disconnected), // the client closed
            Err(_) => Err(RequestFailure::NoServer),
        };
        match result {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ClientError::BadReply {
                method,
                error: e.to_string(),
            }),
            Err(RequestFailure::NoServer) => Err(ClientError::NoServer {
                method,
                waited: timeout,
            }),
            Err(RequestFailure::Disconnected) => Err(ClientError::Disconnected { method }),
            Err(RequestFailure::Remote(message)) => Err(ClientError::Remote { method, message }),
        }
    }

    /// Answers `method` on `doc` with `handler` from now on (replacing an
    /// earlier handler of it). `doc` must be open here. Each request runs
    /// the handler on a tokio task: its `Ok` is the caller's result, its
    /// `Err` (or a panic's message) the caller's [`ClientError::Remote`].
    /// At most [`MAX_RUNNING_HANDLERS`] run at once; see the module docs.
    ///
    /// ```no_run
    /// # fn demo(client: &syncline_cli::Client, doc: &syncline_core::DocId) -> Result<(), syncline_cli::ClientError> {
    /// client.serve(doc, "ping", |_payload| async { Ok(serde_json::json!("pong")) })?;
    /// # Ok(()) }
    /// ```
    pub fn serve<F, Fut>(&self, doc: &DocId, method: &str, handler: F) -> Result<(), ClientError>
    where
        F: Fn(Json) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Json, String>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |payload| Box::pin(handler(payload)) as HandlerFuture);
        self.shared.step(|inner, _| {
            inner.engine.serve(*doc, method)?;
            let key = (*doc, method.to_owned());
            inner.messages.handlers.insert(key, handler);
            Ok::<_, EngineError>(())
        })?;
        Ok(())
    }

    /// Stops serving `method` on `doc`: later requests for it are not
    /// answered here. Requests already queued or running still reply.
    pub fn unserve(&self, doc: &DocId, method: &str) {
        self.shared.step(|inner, _| {
            inner.engine.unserve(*doc, method);
            inner.messages.handlers.remove(&(*doc, method.to_owned()));
        });
    }
}

/// A JSON value's UTF-8 text (writing a `Value` cannot fail).
fn to_bytes(value: &Json) -> Vec<u8> {
    value.to_string().into_bytes()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_that_is_not_json_is_an_error_event() {
        let doc = DocId([7; 16]);
        let event = received(doc, [1; 16], b"{\"ok\": true}");
        let message = serde_json::json!({"ok": true});
        assert_eq!(
            event,
            Event::Message {
                doc,
                from: [1; 16],
                message
            }
        );
        match received(doc, [1; 16], b"{not json") {
            Event::Error { code, message } => {
                assert_eq!(code, SynclineErrorCode::BadMessage);
                assert!(message.contains("not JSON"), "{message}");
                assert!(message.contains(&"01".repeat(16)), "{message}");
            }
            other => panic!("not an error: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_handler_that_panics_or_gets_no_json_is_an_error_message() {
        let panics: Handler = Arc::new(|_| Box::pin(async { panic!("boom") }));
        let err = answer(panics, "m", b"1").await.unwrap_err();
        assert_eq!(err, "the handler of `m` panicked: boom");
        let panics_at_once: Handler = Arc::new(|_| -> HandlerFuture { panic!("at {}", 1) });
        let err = answer(panics_at_once, "m", b"1").await.unwrap_err();
        assert_eq!(err, "the handler of `m` panicked: at 1");

        let echo: Handler = Arc::new(|payload| Box::pin(async move { Ok(payload) }));
        let err = answer(echo.clone(), "m", b"{nope").await.unwrap_err();
        assert!(
            err.starts_with("the request's payload is not JSON"),
            "{err}"
        );
        assert_eq!(answer(echo, "m", b"[1, 2]").await.unwrap(), b"[1,2]");
    }
}
