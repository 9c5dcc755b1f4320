//! Drives the connection: performs what the core's connection policy
//! ([`syncline_core::Dialer`]) decides — open a WebSocket to relay `i`,
//! send a ping, close the socket — and tells it, and the engine, what the
//! socket and the page did. The policy itself (backoff, timeouts,
//! heartbeats, failover, final errors) is the core's, the same as the
//! CLI's; nothing of it is decided here.
//!
//! Socket callbacks carry the attempt's generation: a late callback of a
//! socket already replaced does nothing.

use std::rc::Rc;

use gloo_timers::callback::Timeout;
use syncline_core::{DialAction, DialState, Dialer, SessionState, SynclineErrorCode};

use crate::events::Event;
use crate::host::{self, Host, HostRef};
use crate::inspect::FrameLog;
use crate::platform::{PageEvent, now_ms};
use crate::send_queue::SendQueue;
use crate::transport::{Handlers, Socket, TransportOptions};

/// The connection's state in the host.
pub struct Link {
    pub dialer: Dialer,
    /// The relays to try, in order (several for a cluster; empty: none).
    relays: Vec<String>,
    /// Identifies this repo instance to the relay.
    replica: [u8; 16],
    socket: Option<Socket>,
    /// Frames waiting for the socket to drain (bounded; see [`SendQueue`]).
    sends: SendQueue,
    /// Pumps `sends` again while the socket is backed up.
    pump_timer: Option<Timeout>,
    /// Bumped per socket, so late callbacks of an old one do nothing.
    generation: u64,
    /// Outlines of the frames sent and received, for the devtools.
    pub frames: FrameLog,
}

impl Link {
    pub fn new(
        relays: Vec<String>,
        replica: [u8; 16],
        options: &TransportOptions,
        seed: [u8; 32],
    ) -> Link {
        Link {
            dialer: Dialer::new(relays.len(), options.dial, seed),
            relays,
            replica,
            socket: None,
            sends: SendQueue::new(options.send_buffer_bytes),
            pump_timer: None,
            generation: 0,
            frames: FrameLog::default(),
        }
    }

    /// Bytes waiting to go to the relay: ours and the socket's own buffer.
    pub fn buffered(&self) -> usize {
        self.sends.bytes() + self.socket.as_ref().map_or(0, Socket::buffered_amount)
    }

    /// An engine frame: queued and pumped at once, so a burst fills the
    /// socket first and only the excess waits (or is shed). Without a
    /// socket it is dropped: the outbox re-sends what matters.
    pub fn send(&mut self, frame: Vec<u8>) {
        if let Some(socket) = &self.socket {
            self.frames.record(true, &frame);
            self.sends.push(frame);
            self.sends
                .pump(|| socket.buffered_amount(), |f| socket.send(f));
        }
    }

    /// `(code, message)` of the last failure, for the status.
    pub fn last_error(&self) -> Option<(SynclineErrorCode, String)> {
        self.dialer.last_error().map(|e| (e.code(), e.to_string()))
    }
}

/// Performs one of the dialer's actions (the host is borrowed: nothing
/// here calls the app).
pub fn perform(h: &mut Host, host: &HostRef, action: DialAction, events: &mut Vec<Event>) {
    match action {
        DialAction::Connect { relay } => {
            close_socket(h);
            let url = h.link.relays.get(relay).cloned().unwrap_or_default();
            h.link.generation += 1;
            match Socket::connect(&url, handlers(host, h.link.generation)) {
                Ok(socket) => h.link.socket = Some(socket),
                Err(reason) => {
                    h.link.dialer.bad_url(&url, &reason);
                    if let Some((code, message)) = h.link.last_error() {
                        events.push(Event::Error {
                            code,
                            message,
                            doc: None,
                        });
                    }
                }
            }
        }
        DialAction::Send(ping) => {
            if let Some(socket) = &h.link.socket {
                h.link.frames.record(true, &ping);
                socket.send(&ping);
            }
        }
        DialAction::Close => {
            close_socket(h);
            h.engine.disconnected();
        }
    }
    events.push(Event::Status);
}

fn close_socket(h: &mut Host) {
    h.link.generation += 1;
    if let Some(socket) = h.link.socket.take() {
        socket.close();
    }
    h.link.sends.clear();
    h.link.pump_timer = None;
}

/// The socket's callbacks for attempt `generation`.
fn handlers(host: &HostRef, generation: u64) -> Handlers {
    let weak = Rc::downgrade(host);
    // Runs `f` on the host if the callback is for the current socket.
    let current = move |f: Box<dyn FnOnce(&mut Host)>| {
        let Some(host) = weak.upgrade() else { return };
        host::run_or_queue(&host, move |host| {
            let stale = host.borrow().link.generation != generation;
            if !stale {
                f(&mut host.borrow_mut());
                host::drain(host);
            }
        });
    };
    let on_open = current.clone();
    let on_message = current.clone();
    Handlers {
        on_open: Box::new(move || {
            on_open(Box::new(|h| {
                let now = now_ms();
                h.link.dialer.opened(now);
                let replica = h.link.replica;
                h.engine.connected(replica, None, now);
            }))
        }),
        on_message: Box::new(move |bytes: Vec<u8>| {
            on_message(Box::new(move |h| {
                let now = now_ms();
                h.link.dialer.received(now);
                h.link.frames.record(false, &bytes);
                h.engine.received(&bytes, now);
                if h.engine.status().session == SessionState::Ready {
                    h.link.dialer.session_ready();
                }
            }))
        }),
        on_close: Box::new(move |_code: u16, _reason: String| {
            current(Box::new(|h| h.link.dialer.closed(now_ms())))
        }),
    }
}

/// Moves queued frames to the socket while it has room; while it is backed
/// up, tries again shortly (incoming frames also pump, via
/// [`host::drain`]).
pub fn pump(host: &HostRef) {
    let mut h = host.borrow_mut();
    let link = &mut h.link;
    let Some(socket) = &link.socket else { return };
    let waiting = link
        .sends
        .pump(|| socket.buffered_amount(), |frame| socket.send(frame));
    if waiting && link.pump_timer.is_none() {
        let weak = Rc::downgrade(host);
        link.pump_timer = Some(Timeout::new(20, move || {
            if let Some(host) = weak.upgrade() {
                host::run_or_queue(&host, |host| {
                    host.borrow_mut().link.pump_timer = None;
                    pump(host);
                });
            }
        }));
    }
}

/// The page went online or offline, or became visible.
pub fn page_event(h: &mut Host, event: PageEvent) {
    let dialer = &mut h.link.dialer;
    match event {
        // Skip the rest of the backoff: the network may be back.
        PageEvent::Online | PageEvent::Visible => dialer.wake(now_ms()),
        // The socket is likely dead; say so now, not at the next heartbeat.
        PageEvent::Offline => dialer.offline(now_ms()),
    }
}

/// The app took the repo offline (`false`) or brought it back.
pub fn set_online(h: &mut Host, online: bool) {
    if online {
        h.link.dialer.resume(now_ms());
    } else {
        h.link.dialer.pause();
    }
}

/// The dialer's state, for the status.
pub fn state(h: &Host) -> DialState {
    h.link.dialer.state()
}
