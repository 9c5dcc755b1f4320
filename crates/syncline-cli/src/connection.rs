//! The client's background task: one WebSocket to the relay at a time.
//!
//! Connect (bounded by [`CONNECT_TIMEOUT`]), tell the engine, then pump:
//! frames the engine sends go out as binary messages, binary messages that
//! come in go to [`syncline_core::Engine::received`], and every [`TICK`]
//! the engine is ticked (it re-pushes unacked deltas, re-subscribes stalled
//! documents and gives up on a handshake that never completes). A socket
//! that stays silent is pinged, then dropped. When a socket ends for any
//! reason the engine hears `disconnected` and the task reconnects after an
//! exponential backoff with full jitter — unless the relay refused us for
//! good (a bad token, an unsupported version) or the client is closing.
//!
//! **Failover.** The relay setting may list several relays of one cluster
//! (comma-separated, see [`relay_urls`]). A connection that cannot be made
//! (refused, no handshake) moves on to the next relay **at once**; only
//! once every relay failed in a row does the backoff apply. A connection
//! that was made and then lost moves on to the next relay after the usual
//! backoff. The engine re-pushes every unacknowledged change on the new
//! connection (the relays deduplicate by id, so a push whose ack was lost
//! with a relay is stored once) and resumes subscriptions from its cursors,
//! valid on every relay of a cluster, which share one log and one epoch.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use syncline_core::SessionState;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::{ClientState, random};

/// A connection attempt (TCP and WebSocket handshake) gives up after this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the engine's timers are driven.
pub const TICK: Duration = Duration::from_millis(500);
/// A socket silent for this long gets a WebSocket ping...
const PING_AFTER: Duration = Duration::from_secs(15);
/// ...and is dropped if still silent after this long.
const DEAD_AFTER: Duration = Duration::from_secs(45);
/// Reconnection delays: full jitter below `BACKOFF_BASE * 2^attempt`,
/// capped at `BACKOFF_MAX`.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The relays of a relay setting: one URL, or several separated by commas
/// (or whitespace), in the order to try them.
pub fn relay_urls(setting: &str) -> Vec<&str> {
    setting
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|url| !url.is_empty())
        .collect()
}

pub(crate) async fn run(shared: Arc<ClientState>) {
    let mut closing = shared.closing.subscribe();
    let mut attempt: u32 = 0;
    let urls = relay_urls(&shared.config.relay);
    let mut next = 0usize;
    // Relays that could not be reached in a row.
    let mut unreachable = 0usize;
    loop {
        if *closing.borrow() || shared.lock().fatal.is_some() {
            return;
        }
        let url = urls.get(next % urls.len().max(1)).copied().unwrap_or("");
        next = next.wrapping_add(1);
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url));
        let result = tokio::select! {
            result = connect => result,
            () = closed(&mut closing) => return,
        };
        match result {
            Ok(Ok((socket, _))) => {
                unreachable = 0;
                if session(&shared, socket, &mut closing).await {
                    attempt = 0;
                }
            }
            Ok(Err(e)) => {
                unreachable += 1;
                shared.lock().link_error = Some(format!("cannot connect to {url}: {e}"));
            }
            Err(_) => {
                unreachable += 1;
                shared.lock().link_error = Some(format!(
                    "no WebSocket handshake from {url} within {}s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            }
        }
        if unreachable > 0 && unreachable < urls.len() {
            continue; // the next relay, at once
        }
        unreachable = 0;
        if *closing.borrow() || shared.lock().fatal.is_some() {
            return;
        }
        let delay = backoff(attempt);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            () = closed(&mut closing) => return,
        }
    }
}

/// Runs one connection until it ends; returns whether the relay welcomed
/// us on it (which resets the backoff).
async fn session(
    shared: &ClientState,
    socket: Socket,
    closing: &mut watch::Receiver<bool>,
) -> bool {
    let (mut sink, mut stream) = socket.split();
    let (frames, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
    shared.step(|inner, now| {
        inner.conn = Some(frames);
        inner.connected = true;
        inner.link_error = None;
        inner.drop_conn = false;
        // Tokens go per document, in `Authorize` (see `client::Tokens`).
        inner.engine.connected(shared.replica, None, now);
    });
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut pinged = false;
    let mut welcomed = false;
    // Whether we end the connection (rather than the relay or the network).
    let mut hanging_up = true;
    let ended: Option<String> = loop {
        tokio::select! {
            frame = outgoing.recv() => {
                let Some(bytes) = frame else {
                    break Some("the connection was dropped".to_string());
                };
                if let Err(e) = sink.send(Message::Binary(bytes.into())).await {
                    hanging_up = false;
                    break Some(format!("sending to the relay failed: {e}"));
                }
            }
            message = stream.next() => {
                last_heard = Instant::now();
                pinged = false;
                match message {
                    Some(Ok(Message::Binary(bytes))) => {
                        shared.step(|inner, now| inner.engine.received(&bytes, now));
                    }
                    Some(Ok(Message::Close(frame))) => {
                        hanging_up = false;
                        break Some(match frame {
                            Some(f) => format!(
                                "the relay closed the connection ({}: {})",
                                u16::from(f.code),
                                f.reason
                            ),
                            None => "the relay closed the connection".to_string(),
                        });
                    }
                    Some(Ok(_)) => {} // pings, pongs; text is not part of the protocol
                    Some(Err(e)) => {
                        hanging_up = false;
                        break Some(format!("connection lost: {e}"));
                    }
                    None => {
                        hanging_up = false;
                        break Some("the relay closed the connection".to_string());
                    }
                }
            }
            _ = ticker.tick() => {
                shared.step(|inner, now| inner.engine.tick(now));
                let quiet = last_heard.elapsed();
                if quiet >= DEAD_AFTER {
                    break Some(format!("the relay was silent for {}s", quiet.as_secs()));
                }
                if quiet >= PING_AFTER && !pinged {
                    pinged = true;
                    if let Err(e) = sink.send(Message::Ping(Vec::new().into())).await {
                        break Some(format!("sending to the relay failed: {e}"));
                    }
                }
            }
            () = closed(closing) => break None,
        }
        let inner = shared.lock();
        welcomed |= inner.engine.status().session == SessionState::Ready;
        if inner.drop_conn {
            break Some(match &inner.fatal {
                Some(_) => "stopped after a fatal error".to_string(),
                None => "the session stopped making progress".to_string(),
            });
        }
    };
    if hanging_up {
        // Say goodbye and wait (briefly) for the relay's answering close.
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
    shared.step(|inner, _| {
        inner.lost_connection();
        inner.link_error = ended;
    });
    welcomed
}

/// Completes once the client is closing.
async fn closed(closing: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here.
    let _ = closing.wait_for(|c| *c).await;
}

/// Full jitter: uniformly random below the exponential bound.
fn backoff(attempt: u32) -> Duration {
    let bound = BACKOFF_BASE
        .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .min(BACKOFF_MAX);
    let bound_ms = bound.as_millis() as u64;
    let roll = random::<8>().map_or(bound_ms, u64::from_le_bytes);
    Duration::from_millis(roll % (bound_ms + 1))
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

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in [0, 1, 5, 30, u32::MAX] {
            let cap = BACKOFF_BASE
                .saturating_mul(1 << attempt.min(16))
                .min(BACKOFF_MAX);
            for _ in 0..50 {
                assert!(backoff(attempt) <= cap, "attempt {attempt}");
            }
        }
        assert!(backoff(0) <= BACKOFF_BASE);
        assert!(backoff(u32::MAX) <= BACKOFF_MAX);
    }
}
