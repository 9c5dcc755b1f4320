//! The client's background task: the WebSocket to the relay, driven by the
//! core's connection policy ([`syncline_core::Dialer`]).
//!
//! The task only performs what the dialer decides — open a socket to relay
//! `i`, send a ping, close the socket — and reports back what happened (the
//! socket opened, a frame arrived, it closed). Backoff, connect timeout,
//! heartbeats, failover between the relays of a list and the final errors
//! are the dialer's, the same as in the browser (see its module docs). The
//! engine's frames go out as binary messages, binary messages that come in
//! go to [`syncline_core::Engine::received`], and one timer wakes the task
//! at the earlier of the engine's and the dialer's deadlines
//! ([`syncline_core::Engine::next_deadline`]) to tick both. A step taken
//! elsewhere (a change, a token) may move a deadline or ask for an action:
//! the task watches every step.
//!
//! The relay setting may list several relays of one cluster
//! (comma-separated, see [`relay_urls`]). The engine re-pushes every
//! unacknowledged change on a new connection (the relays deduplicate by
//! id) and resumes subscriptions from its cursors, valid on every relay of
//! a cluster, which share one log and one epoch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use syncline_core::{DialAction, DialState, SessionState};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::{ClientState, now_ms};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Connecting = Pin<Box<dyn Future<Output = Result<Socket, String>> + Send>>;

/// The relays of a relay setting: one URL, or several separated by commas
/// (or whitespace), in the order to try them.
pub fn relay_urls(setting: &str) -> Vec<&str> {
    setting
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|url| !url.is_empty())
        .collect()
}

/// The socket of the current attempt, in whichever phase it is.
#[derive(Default)]
struct Link {
    connecting: Option<Connecting>,
    sink: Option<SplitSink<Socket, Message>>,
    stream: Option<SplitStream<Socket>>,
    /// The engine's frames for the open socket.
    outgoing: Option<mpsc::UnboundedReceiver<Vec<u8>>>,
}

impl Link {
    fn connect(url: String) -> Link {
        let connecting: Connecting = Box::pin(async move {
            tokio_tungstenite::connect_async(url.as_str())
                .await
                .map(|(socket, _)| socket)
                .map_err(|e| format!("cannot connect to {url}: {e}"))
        });
        Link {
            connecting: Some(connecting),
            ..Link::default()
        }
    }

    /// Ends the link; an open socket is closed politely (a close frame, and
    /// a second at most for the relay's answering one).
    async fn hang_up(&mut self) {
        let (sink, stream) = (self.sink.take(), self.stream.take());
        *self = Link::default();
        if let (Some(mut sink), Some(mut stream)) = (sink, stream) {
            let goodbye = async {
                let _ = sink.send(Message::Close(None)).await;
                while let Some(Ok(message)) = stream.next().await {
                    if message.is_close() {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), goodbye).await;
        }
    }

    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        match &mut self.sink {
            Some(sink) => sink
                .send(Message::Binary(bytes.into()))
                .await
                .map_err(|e| format!("sending to the relay failed: {e}")),
            None => Ok(()), // no socket: the outbox re-sends what matters
        }
    }
}

/// What woke the task.
enum Wake {
    Closing,
    Deadline,
    Stepped,
    /// Boxed: a socket is large.
    Connected(Box<Result<Socket, String>>),
    Outgoing(Option<Vec<u8>>),
    Incoming(Option<Result<Message, tungstenite::Error>>),
}

pub(crate) async fn run(shared: Arc<ClientState>) {
    let urls: Vec<String> = relay_urls(&shared.config.relay)
        .into_iter()
        .map(String::from)
        .collect();
    let mut closing = shared.closing.subscribe();
    let mut steps = shared.version.subscribe();
    let mut link = Link::default();
    shared.step(|inner, now| inner.dialer.start(now));
    loop {
        let actions = shared.lock().dialer.take_actions();
        for action in actions {
            match action {
                DialAction::Connect { relay } => {
                    link.hang_up().await;
                    link = Link::connect(urls.get(relay).cloned().unwrap_or_default());
                }
                DialAction::Send(bytes) => {
                    if let Err(e) = link.send(bytes).await {
                        ended(&shared, e);
                    }
                }
                DialAction::Close => {
                    link.hang_up().await;
                    shared.step(|inner, _| inner.lost_connection());
                }
            }
        }
        if shared.lock().dialer.state() == DialState::Closed {
            return;
        }
        let deadline = shared
            .lock()
            .next_deadline()
            .map(|at| Instant::now() + Duration::from_millis(at.saturating_sub(now_ms())));
        steps.borrow_and_update();
        let wake = tokio::select! {
            () = closed(&mut closing) => Wake::Closing,
            () = sleep_until(deadline) => Wake::Deadline,
            _ = steps.changed() => Wake::Stepped,
            result = connected(&mut link.connecting) => Wake::Connected(Box::new(result)),
            frame = recv(&mut link.outgoing) => Wake::Outgoing(frame),
            message = next(&mut link.stream) => Wake::Incoming(message),
        };
        match wake {
            Wake::Connected(result) => match *result {
                Ok(socket) => opened(&shared, &mut link, socket),
                Err(e) => {
                    link.connecting = None;
                    ended(&shared, e);
                }
            },
            Wake::Closing => {
                link.hang_up().await;
                shared.step(|inner, _| {
                    inner.dialer.stop();
                    inner.dialer.take_actions();
                    inner.lost_connection();
                });
                return;
            }
            Wake::Deadline => shared.step(|inner, now| {
                inner.engine.tick(now);
                let before = inner.dialer.last_error().cloned();
                inner.dialer.tick(now);
                if let Some(error) = inner
                    .dialer
                    .last_error()
                    .filter(|e| Some(*e) != before.as_ref())
                {
                    inner.link_error = Some(error.to_string());
                }
            }),
            Wake::Stepped => {}
            Wake::Outgoing(Some(bytes)) => {
                if let Err(e) = link.send(bytes).await {
                    ended(&shared, e);
                }
            }
            Wake::Outgoing(None) => link.outgoing = None,
            Wake::Incoming(message) => match message {
                Some(Ok(Message::Binary(bytes))) => shared.step(|inner, now| {
                    inner.dialer.received(now);
                    inner.engine.received(&bytes, now);
                    if inner.engine.status().session == SessionState::Ready {
                        inner.dialer.session_ready();
                    }
                }),
                Some(Ok(Message::Close(frame))) => ended(
                    &shared,
                    match frame {
                        Some(f) => format!(
                            "the relay closed the connection ({}: {})",
                            u16::from(f.code),
                            f.reason
                        ),
                        None => "the relay closed the connection".to_string(),
                    },
                ),
                // WebSocket pings and pongs; text is not part of the protocol.
                Some(Ok(_)) => shared.step(|inner, now| inner.dialer.received(now)),
                Some(Err(e)) => ended(&shared, format!("connection lost: {e}")),
                None => ended(&shared, "the relay closed the connection".to_string()),
            },
        }
    }
}

/// The socket of the current attempt opened: the link carries it, and
/// the dialer and the engine hear.
fn opened(shared: &ClientState, link: &mut Link, socket: Socket) {
    let (sink, stream) = socket.split();
    let (frames, outgoing) = mpsc::unbounded_channel();
    *link = Link {
        connecting: None,
        sink: Some(sink),
        stream: Some(stream),
        outgoing: Some(outgoing),
    };
    let replica = shared.replica;
    shared.step(|inner, now| {
        inner.conn = Some(frames);
        inner.connected = true;
        inner.link_error = None;
        inner.dialer.opened(now);
        // Tokens go per document, in `Authorize` (see `client::Tokens`).
        inner.engine.connected(replica, None, now);
    });
}

/// The socket ended (or never opened) by itself: the dialer decides what
/// comes next.
fn ended(shared: &ClientState, why: String) {
    shared.step(|inner, now| {
        inner.link_error = Some(why);
        inner.dialer.closed(now);
    });
}

/// Completes once the client is closing.
async fn closed(closing: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here.
    let _ = closing.wait_for(|c| *c).await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn connected(connecting: &mut Option<Connecting>) -> Result<Socket, String> {
    match connecting {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

async fn recv(outgoing: &mut Option<mpsc::UnboundedReceiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match outgoing {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn next(
    stream: &mut Option<SplitStream<Socket>>,
) -> Option<Result<Message, tungstenite::Error>> {
    match stream {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_setting_lists_one_or_more_relays() {
        assert_eq!(relay_urls("ws://a:1"), vec!["ws://a:1"]);
        assert_eq!(
            relay_urls(" ws://a:1, ws://b:2,,ws://c:3 "),
            vec!["ws://a:1", "ws://b:2", "ws://c:3"]
        );
        assert!(relay_urls(" , ").is_empty());
    }
}
