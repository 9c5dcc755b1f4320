//! [`Engine::next_deadline`]: when the engine's timers next need
//! [`Engine::tick`], so a host keeps one timer instead of ticking at a
//! fixed rate.
//!
//! Each timer [`Engine::tick`] drives has its deadline here, counted only
//! while `tick` would act on it (a deadline `tick` cannot move would
//! otherwise come back at once, forever):
//!
//! - the handshake: `Welcome` due [`HANDSHAKE_TIMEOUT_MS`] after
//!   `connected` (`sync.rs`);
//! - per document, on a ready session, while it may be read: a
//!   subscription not caught up within [`HANDSHAKE_TIMEOUT_MS`], a
//!   caught-up document idle for [`RESYNC_IDLE_MS`] (`sync.rs`); our
//!   presence's refresh and the peers' expiry (`presence.rs`); a refused
//!   document's retry (`access.rs`);
//! - per outbox entry, on a ready session, while its document may be
//!   written and no earlier write holds it back: its re-push [`RESEND_AFTER_MS`] after its last push
//!   (`sync.rs`, `live.rs`);
//! - per pending request, in any session state: its deadline, when it
//!   settles as `NoServer` (`messages.rs`);
//! - per document, when this engine compacts: the end of its quiet period
//!   (`compaction.rs`; "now" when the period has not started yet).
//!
//! After `tick(now)`, the next deadline is later than `now`: the tests of
//! this module check it, and the simulation checks it after every tick.

use crate::engine::{Engine, SessionState};
use crate::sync::{HANDSHAKE_TIMEOUT_MS, RESEND_AFTER_MS, RESYNC_IDLE_MS};

impl Engine {
    /// The earliest time (ms, the clock the host passes in) at which
    /// [`Engine::tick`] has something to do; `None`: nothing until some
    /// other input. A time already past means "tick now". Ticking earlier
    /// does nothing that waits for a deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        let mut earliest: Option<u64> = None;
        let mut at = |deadline: u64| {
            earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
        };
        if let (Some(idle_ms), true) = (self.compaction.idle_ms, self.compaction_enabled) {
            for state in self.docs.values() {
                if let Some(deadline) = state.log.idle_deadline(idle_ms) {
                    at(deadline);
                }
            }
        }
        if let Some(deadline) = self.messages.deadline() {
            at(deadline);
        }
        match self.session {
            SessionState::Offline => {}
            SessionState::Handshaking => {
                at(self.session_since.saturating_add(HANDSHAKE_TIMEOUT_MS))
            }
            SessionState::Ready => {
                for (doc, state) in &self.docs {
                    if let Some(retry_at) = state.access.retry_at() {
                        at(retry_at);
                    }
                    let readable = self.may_read(doc);
                    if let Some(deadline) = state.presence.deadline(readable) {
                        at(deadline);
                    }
                    if !readable {
                        continue;
                    }
                    if let Some(since) = state.subscribed_at {
                        at(since.saturating_add(HANDSHAKE_TIMEOUT_MS));
                    }
                    if state.caught_up {
                        at(state.heard_at.saturating_add(RESYNC_IDLE_MS));
                    }
                }
                for (doc, pushed_at) in self.outbox.pushed() {
                    if self.may_write(doc) {
                        at(pushed_at.saturating_add(RESEND_AFTER_MS));
                    }
                }
            }
        }
        earliest
    }
}

#[cfg(test)]
#[path = "deadline_tests.rs"]
mod tests;
