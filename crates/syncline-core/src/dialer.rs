//! The [`Dialer`]: when to open a socket to which relay, when to ping it and
//! when to give up on it. The one connection policy of every host (the
//! browser's and the CLI's), sans-IO like the engine: the host reports what
//! happened (a socket opened, a frame arrived, the socket closed, the page
//! came back online) with the time, and takes [`DialAction`]s to perform;
//! [`Dialer::next_deadline`] says when to call [`Dialer::tick`] next.
//!
//! The policy:
//!
//! - **Attempts.** Each attempt opens a socket to one relay of the list;
//!   it must open within [`DialerConfig::connect_timeout_ms`].
//! - **Failover.** An attempt that could not be made (refused: the socket
//!   closed before it opened, or it did not open in time) moves on to the
//!   next relay **at once**, until every relay of the list failed so in a
//!   row; then the next attempt waits the backoff. A connection that was
//!   made and then lost moves on to the next relay after the backoff.
//! - **Backoff.** Exponential with full jitter: before attempt `n` (from 1),
//!   a delay uniform in `[0, min(cap, base · 2^(n-1))]`, so a relay restart
//!   is not met by every client at once. The count starts again once a
//!   session is ready ([`Dialer::session_ready`]).
//! - **Heartbeat.** While a socket is open, a protocol `Ping` goes out every
//!   [`DialerConfig::heartbeat_ms`]; some frame (any) must come back within
//!   [`DialerConfig::pong_timeout_ms`] of it, or the socket is taken for
//!   half-open and replaced (after the backoff, on the next relay).
//! - **Wake-ups.** While waiting out a backoff, the network coming back or
//!   the page becoming visible ([`Dialer::wake`]) retries at once; the
//!   network going away ([`Dialer::offline`]) ends the attempt at once.
//! - **Final errors.** A fatal `Unauthorized` or `UnsupportedVersion` from
//!   the relay ([`Dialer::engine_error`]) and an unusable relay URL stop
//!   for good: retrying would fail the same way.
//!
//! The engine's own timers (handshake, re-push, re-subscribe) stay in the
//! engine ([`crate::Engine::next_deadline`]); a host keeps one timer for the
//! earlier of the two deadlines.

use std::collections::VecDeque;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use syncline_protocol::{ClientFrame, ErrorCode, encode_client};

use crate::codes::SynclineErrorCode;
use crate::error::EngineError;

/// The dialer's timings, in milliseconds. [`Default`] is the one set of
/// defaults every host uses unless the app says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialerConfig {
    /// An attempt whose socket has not opened after this long is abandoned.
    pub connect_timeout_ms: u64,
    /// An open socket is pinged this often.
    pub heartbeat_ms: u64,
    /// Some frame must arrive within this long of a ping.
    pub pong_timeout_ms: u64,
    /// The bound of the first backoff delay...
    pub backoff_base_ms: u64,
    /// ...which doubles per attempt up to this.
    pub backoff_cap_ms: u64,
}

impl Default for DialerConfig {
    fn default() -> Self {
        DialerConfig {
            connect_timeout_ms: 5_000,
            heartbeat_ms: 10_000,
            pong_timeout_ms: 5_000,
            backoff_base_ms: 250,
            backoff_cap_ms: 10_000,
        }
    }
}

impl DialerConfig {
    /// The upper bound of the backoff delay before attempt `attempt` (from
    /// 1): `min(cap, base · 2^(attempt-1))`.
    pub fn backoff_bound_ms(&self, attempt: u32) -> u64 {
        let doublings = attempt.saturating_sub(1).min(40);
        self.backoff_base_ms
            .saturating_mul(1u64 << doublings)
            .min(self.backoff_cap_ms)
    }
}

/// Where the connection stands, as a status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialState {
    /// There is no relay to dial.
    NoRelay,
    /// Not started yet, or waiting out a backoff delay.
    Waiting,
    /// A socket is opening.
    Connecting,
    /// The socket is open (the engine's handshake may still be under way).
    Open,
    /// Taken offline by the app ([`Dialer::pause`]) until [`Dialer::resume`].
    Paused,
    /// Stopped for good: closed by the app, or a final error.
    Closed,
}

/// What the host must do for the dialer. Perform them in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialAction {
    /// Close any socket still open, then open one to relay number `relay`
    /// of the host's list; report [`Dialer::opened`] or [`Dialer::closed`].
    Connect { relay: usize },
    /// Send these bytes (an encoded protocol `Ping`) on the open socket.
    Send(Vec<u8>),
    /// Close the current socket, if any, and tell the engine
    /// (`Engine::disconnected`). Comes after every attempt that ended,
    /// whoever ended it.
    Close,
}

/// Why the last attempt failed, or why dialing stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    #[error(
        "the relay did not answer within {ms} ms: is it running, and is the URL right? Retrying"
    )]
    ConnectTimeout { ms: u64 },
    #[error("no answer to a ping within {ms} ms: the connection was dropped and is being replaced")]
    HeartbeatTimeout { ms: u64 },
    #[error("the network is offline: changes are saved here and sent once it is back")]
    Offline,
    #[error(
        "the relay refused this client for good ({code:?}): {message}. Check the token or update the client"
    )]
    Rejected { code: ErrorCode, message: String },
    #[error("cannot connect to the relay `{url}`: {reason}")]
    BadRelayUrl { url: String, reason: String },
}

impl DialError {
    /// The stable code apps see (`lastError.code`).
    pub fn code(&self) -> SynclineErrorCode {
        match self {
            DialError::ConnectTimeout { .. } => SynclineErrorCode::ConnectTimeout,
            DialError::HeartbeatTimeout { .. } => SynclineErrorCode::HeartbeatTimeout,
            DialError::Offline => SynclineErrorCode::Offline,
            DialError::Rejected { .. } => SynclineErrorCode::RelayRejected,
            DialError::BadRelayUrl { .. } => SynclineErrorCode::BadRelayUrl,
        }
    }
}

/// The phase of the current attempt, with its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NoRelay,
    /// `retry_at`: when the next attempt starts (`None`: before `start`).
    Waiting {
        retry_at: Option<u64>,
    },
    Connecting {
        deadline: u64,
    },
    /// `ping_at`: the next ping; `pong_by`: the deadline of the last one,
    /// while unanswered.
    Open {
        ping_at: u64,
        pong_by: Option<u64>,
    },
    Paused,
    Closed,
}

/// How the next attempt starts after one ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    AtOnce,
    Backoff,
    Stop,
}

/// The connection policy's state machine. See the module docs.
#[derive(Debug)]
pub struct Dialer {
    config: DialerConfig,
    relays: usize,
    phase: Phase,
    /// The relay the current or next attempt goes to.
    relay: usize,
    /// Attempts in a row that could not be made (see the module docs).
    unreachable_in_row: usize,
    /// Attempts since the last ready session; the current one's number.
    attempt: u32,
    last_error: Option<DialError>,
    actions: VecDeque<DialAction>,
    rng: ChaCha20Rng,
    nonce: u64,
}

impl Dialer {
    /// A dialer for a list of `relays` (a count: the host keeps the URLs).
    /// `seed`: fresh random bytes, for the backoff's jitter. Nothing happens
    /// before [`Dialer::start`].
    pub fn new(relays: usize, config: DialerConfig, seed: [u8; 32]) -> Dialer {
        Dialer {
            config,
            relays,
            phase: if relays == 0 {
                Phase::NoRelay
            } else {
                Phase::Waiting { retry_at: None }
            },
            relay: 0,
            unreachable_in_row: 0,
            attempt: 0,
            last_error: None,
            actions: VecDeque::new(),
            rng: ChaCha20Rng::from_seed(seed),
            nonce: 0,
        }
    }

    pub fn config(&self) -> &DialerConfig {
        &self.config
    }

    pub fn state(&self) -> DialState {
        match self.phase {
            Phase::NoRelay => DialState::NoRelay,
            Phase::Waiting { .. } => DialState::Waiting,
            Phase::Connecting { .. } => DialState::Connecting,
            Phase::Open { .. } => DialState::Open,
            Phase::Paused => DialState::Paused,
            Phase::Closed => DialState::Closed,
        }
    }

    /// The current attempt's number from 1; 0 once a session was ready
    /// (and before the first attempt).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The relay (index in the host's list) of the current or next attempt.
    pub fn relay(&self) -> usize {
        self.relay
    }

    /// Why the last attempt failed, or why dialing stopped; cleared once a
    /// session is ready.
    pub fn last_error(&self) -> Option<&DialError> {
        self.last_error.as_ref()
    }

    /// The next action to perform, oldest first.
    pub fn poll_action(&mut self) -> Option<DialAction> {
        self.actions.pop_front()
    }

    /// Every action to perform, oldest first.
    pub fn take_actions(&mut self) -> Vec<DialAction> {
        self.actions.drain(..).collect()
    }

    /// When [`Dialer::tick`] must be called next (ms), if ever.
    pub fn next_deadline(&self) -> Option<u64> {
        match self.phase {
            Phase::Waiting { retry_at } => retry_at,
            Phase::Connecting { deadline } => Some(deadline),
            Phase::Open { ping_at, pong_by } => Some(pong_by.unwrap_or(ping_at)),
            Phase::NoRelay | Phase::Paused | Phase::Closed => None,
        }
    }

    /// Starts the first attempt (once; later calls do nothing).
    pub fn start(&mut self, now_ms: u64) {
        if self.phase == (Phase::Waiting { retry_at: None }) {
            self.connect(now_ms);
        }
    }

    /// The socket of the current attempt opened.
    pub fn opened(&mut self, now_ms: u64) {
        if let Phase::Connecting { .. } = self.phase {
            self.unreachable_in_row = 0;
            self.phase = Phase::Open {
                ping_at: now_ms.saturating_add(self.config.heartbeat_ms),
                pong_by: None,
            };
        }
    }

    /// A frame arrived on the open socket: it answers any ping.
    pub fn received(&mut self, _now_ms: u64) {
        if let Phase::Open { pong_by, .. } = &mut self.phase {
            *pong_by = None;
        }
    }

    /// The engine's session is ready (the relay welcomed us): the backoff
    /// starts over and the last error is forgotten.
    pub fn session_ready(&mut self) {
        if let Phase::Open { .. } = self.phase {
            self.attempt = 0;
            self.last_error = None;
        }
    }

    /// The socket closed by itself (or could not be opened at all). Before
    /// it opened, the relay counts as unreachable and the next one is tried
    /// at once; after, as lost, and the next is tried after the backoff.
    pub fn closed(&mut self, now_ms: u64) {
        match self.phase {
            Phase::Connecting { .. } => self.unreachable(now_ms, None),
            Phase::Open { .. } => self.lost(now_ms, None),
            _ => {} // an old socket's late news
        }
    }

    /// The engine gave up on the connection (`Effect::Disconnect`).
    pub fn engine_gave_up(&mut self, now_ms: u64) {
        if let Phase::Connecting { .. } | Phase::Open { .. } = self.phase {
            self.lost(now_ms, None);
        }
    }

    /// An error the engine reported: a final refusal by the relay stops
    /// dialing for good. Returns whether it did.
    pub fn engine_error(&mut self, error: &EngineError) -> bool {
        let EngineError::RelayRejected {
            fatal: true,
            code: code @ (ErrorCode::Unauthorized | ErrorCode::UnsupportedVersion),
            message,
        } = error
        else {
            return false;
        };
        if self.phase == Phase::Closed {
            return false;
        }
        let error = DialError::Rejected {
            code: *code,
            message: message.clone(),
        };
        self.end(0, Some(error), Then::Stop);
        true
    }

    /// The host could not even start a socket to the current relay (the
    /// browser refuses its URL): retrying cannot help.
    pub fn bad_url(&mut self, url: &str, reason: &str) {
        let error = DialError::BadRelayUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        self.end(0, Some(error), Then::Stop);
    }

    /// The network came back, or the page became visible: a pending retry
    /// happens now instead of after the rest of its backoff.
    pub fn wake(&mut self, now_ms: u64) {
        if let Phase::Waiting { retry_at: Some(_) } = self.phase {
            self.connect(now_ms);
        }
    }

    /// The network went away: the current attempt ends now (the socket is
    /// most likely dead), and retries go on after the backoff (the host's
    /// idea of "offline" can be wrong).
    pub fn offline(&mut self, now_ms: u64) {
        if let Phase::Connecting { .. } | Phase::Open { .. } = self.phase {
            self.end(now_ms, Some(DialError::Offline), Then::Backoff);
        }
    }

    /// The app took the connection offline: close it and attempt nothing
    /// until [`Dialer::resume`].
    pub fn pause(&mut self) {
        if let Phase::Waiting { .. } | Phase::Connecting { .. } | Phase::Open { .. } = self.phase {
            self.end(0, None, Then::Stop);
            self.phase = Phase::Paused;
            self.attempt = 0;
        }
    }

    /// The app brought the connection back: an attempt starts now.
    pub fn resume(&mut self, now_ms: u64) {
        if self.phase == Phase::Paused {
            self.connect(now_ms);
        }
    }

    /// Stops for good (the app closed the repo).
    pub fn stop(&mut self) {
        if !matches!(self.phase, Phase::Closed | Phase::NoRelay) {
            self.end(0, None, Then::Stop);
        }
    }

    /// Time passed: starts a retry whose backoff is over, abandons an
    /// attempt that did not open in time, pings, and drops a socket whose
    /// ping went unanswered.
    pub fn tick(&mut self, now_ms: u64) {
        match self.phase {
            Phase::Waiting {
                retry_at: Some(at), ..
            } if now_ms >= at => self.connect(now_ms),
            Phase::Connecting { deadline } if now_ms >= deadline => {
                let ms = self.config.connect_timeout_ms;
                self.unreachable(now_ms, Some(DialError::ConnectTimeout { ms }));
            }
            Phase::Open {
                pong_by: Some(by), ..
            } if now_ms >= by => {
                let ms = self.config.pong_timeout_ms;
                self.lost(now_ms, Some(DialError::HeartbeatTimeout { ms }));
            }
            Phase::Open {
                ping_at,
                pong_by: None,
            } if now_ms >= ping_at => {
                self.nonce = self.nonce.wrapping_add(1);
                let ping = ClientFrame::Ping { nonce: self.nonce };
                self.actions
                    .push_back(DialAction::Send(encode_client(&ping)));
                self.phase = Phase::Open {
                    ping_at: now_ms.saturating_add(self.config.heartbeat_ms),
                    pong_by: Some(now_ms.saturating_add(self.config.pong_timeout_ms)),
                };
            }
            _ => {}
        }
    }

    /// Starts an attempt on the current relay.
    fn connect(&mut self, now_ms: u64) {
        debug_assert!(self.relays > 0, "an attempt needs a relay");
        self.attempt = self.attempt.saturating_add(1);
        self.phase = Phase::Connecting {
            deadline: now_ms.saturating_add(self.config.connect_timeout_ms),
        };
        self.actions
            .push_back(DialAction::Connect { relay: self.relay });
    }

    /// The attempt could not be made: the next relay at once, unless every
    /// relay failed so in a row.
    fn unreachable(&mut self, now_ms: u64, error: Option<DialError>) {
        self.relay = (self.relay + 1) % self.relays.max(1);
        self.unreachable_in_row += 1;
        let then = if self.unreachable_in_row < self.relays {
            Then::AtOnce
        } else {
            self.unreachable_in_row = 0;
            Then::Backoff
        };
        self.end(now_ms, error, then);
    }

    /// A connection that was made ended: the next relay, after the backoff.
    fn lost(&mut self, now_ms: u64, error: Option<DialError>) {
        self.relay = (self.relay + 1) % self.relays.max(1);
        self.unreachable_in_row = 0;
        self.end(now_ms, error, Then::Backoff);
    }

    /// Ends the current attempt (the host closes the socket and tells the
    /// engine), then goes on as `then` says.
    fn end(&mut self, now_ms: u64, error: Option<DialError>, then: Then) {
        self.actions.push_back(DialAction::Close);
        if error.is_some() {
            self.last_error = error;
        }
        match then {
            Then::AtOnce => self.connect(now_ms),
            Then::Backoff => {
                let bound = self.config.backoff_bound_ms(self.attempt.max(1));
                let delay = full_jitter(bound, self.rng.next_u64());
                self.phase = Phase::Waiting {
                    retry_at: Some(now_ms.saturating_add(delay)),
                };
            }
            Then::Stop => self.phase = Phase::Closed,
        }
    }
}

/// Uniform in `[0, bound]` from a random word.
fn full_jitter(bound: u64, random: u64) -> u64 {
    match bound.checked_add(1) {
        Some(span) => random % span,
        None => random,
    }
}

#[cfg(test)]
#[path = "dialer_tests.rs"]
mod tests;
