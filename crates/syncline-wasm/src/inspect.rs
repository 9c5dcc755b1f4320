//! What the devtools read (`syncline/devtools`): a bounded record of the
//! frames that went out and came in, the connection's dial state, and one
//! document's log and snapshot figures. Read-only, and off until the
//! devtools ask: nothing is recorded before the first `inspect(true, …)`.
//!
//! A frame is recorded as its outline ([`FrameSummary`]: kind, document
//! id, item count, the relay's error code) and its size, never its bytes:
//! payloads are sealed anyway, but tokens (`Authorize`, `Hello`) and
//! proofs are not, and none of it helps a bug report.

use std::collections::VecDeque;

use serde::Serialize;
use syncline_core::DialState;
use syncline_protocol::FrameSummary;
use wasm_bindgen::prelude::*;

use crate::api::{Core, parse};
use crate::convert::to_js;
use crate::host;
use crate::platform::now_ms;

/// Frames kept; the oldest go first (a ring buffer, ~100 B each).
pub const FRAME_LOG_CAPACITY: usize = 1_000;

/// The frames recorded since the devtools turned recording on.
#[derive(Default)]
pub struct FrameLog {
    enabled: bool,
    /// Numbers every record, so a reader asks only for newer ones.
    next_seq: u64,
    records: VecDeque<FrameRecord>,
}

/// One frame, outlined.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FrameRecord {
    seq: u64,
    /// ms since the epoch.
    at: u64,
    /// `"out"` (handed to the socket) or `"in"`.
    dir: &'static str,
    kind: &'static str,
    /// Encoded size in bytes.
    bytes: usize,
    /// `syncline:<id>` (no key: ids are what the relay sees too).
    #[serde(skip_serializing_if = "Option::is_none")]
    doc: Option<String>,
    /// Deltas or ids the frame carries.
    items: usize,
    /// The relay's error code (`Error`, `DocError`).
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
}

impl FrameLog {
    /// Records a frame sent (`out`) or received, if recording is on.
    pub fn record(&mut self, out: bool, bytes: &[u8]) {
        if !self.enabled {
            return;
        }
        let summary = if out {
            FrameSummary::client(bytes)
        } else {
            FrameSummary::relay(bytes)
        };
        if self.records.len() == FRAME_LOG_CAPACITY {
            self.records.pop_front();
        }
        self.next_seq += 1;
        self.records.push_back(FrameRecord {
            seq: self.next_seq,
            at: now_ms(),
            dir: if out { "out" } else { "in" },
            kind: summary.kind,
            bytes: bytes.len(),
            doc: summary.doc.map(|d| format!("syncline:{d}")),
            items: summary.items,
            code: summary.code.map(|c| format!("{c:?}")),
        });
    }
}

/// The connection as the dialer sees it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LinkInspection {
    /// `"noRelay" | "waiting" | "connecting" | "open" | "paused" | "closed"`.
    dial: &'static str,
    /// Index of the relay tried or connected, in the app's list.
    relay: usize,
    /// While waiting out a backoff: ms until the next attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_in_ms: Option<u64>,
    /// The bound of the current attempt's backoff (full jitter below it).
    backoff_bound_ms: u64,
}

#[derive(Serialize)]
struct Inspection<'a> {
    frames: Vec<&'a FrameRecord>,
    link: LinkInspection,
}

/// One document's figures (see [`syncline_core::DocInspection`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DocFigures {
    log_entries: usize,
    log_bytes: usize,
    fresh_changes: usize,
    relay_held_changes: usize,
    snapshot_bytes: Option<usize>,
    relay_seq: u64,
    caught_up: bool,
    compaction_enabled: bool,
}

#[wasm_bindgen]
impl Core {
    /// Turns frame recording on or off and returns `{ frames, link }`: the
    /// frames recorded after number `after` (oldest first, at most the
    /// last [`FRAME_LOG_CAPACITY`]) and the dial state. Turning it off
    /// forgets the records.
    pub fn inspect(&self, record: bool, after: f64) -> Result<JsValue, JsValue> {
        host::enter(&self.host)?;
        let mut h = self.host.borrow_mut();
        let log = &mut h.link.frames;
        log.enabled = record;
        if !record {
            log.records.clear();
        }
        let after = if after.is_finite() && after > 0.0 {
            after as u64
        } else {
            0
        };
        let frames: Vec<&FrameRecord> = h
            .link
            .frames
            .records
            .iter()
            .filter(|r| r.seq > after)
            .collect();
        let dialer = &h.link.dialer;
        let now = now_ms();
        let dial = match dialer.state() {
            DialState::NoRelay => "noRelay",
            DialState::Waiting => "waiting",
            DialState::Connecting => "connecting",
            DialState::Open => "open",
            DialState::Paused => "paused",
            DialState::Closed => "closed",
        };
        let link = LinkInspection {
            dial,
            relay: dialer.relay(),
            retry_in_ms: (dial == "waiting")
                .then(|| dialer.next_deadline())
                .flatten()
                .map(|at| at.saturating_sub(now)),
            backoff_bound_ms: dialer.config().backoff_bound_ms(dialer.attempt().max(1)),
        };
        to_js(&Inspection { frames, link })
    }

    /// `{ logEntries, logBytes, freshChanges, relayHeldChanges,
    /// snapshotBytes, relaySeq, caughtUp, compactionEnabled }` of one
    /// document, or `null` while it is shown from its stored value and
    /// its CRDT has not loaded.
    #[wasm_bindgen(js_name = inspectDoc)]
    pub fn inspect_doc(&self, url: &str) -> Result<JsValue, JsValue> {
        host::enter(&self.host)?;
        let url = parse(url)?;
        let h = self.host.borrow();
        let Some(d) = h.engine.inspect_doc(&url.doc) else {
            return Ok(JsValue::NULL);
        };
        to_js(&DocFigures {
            log_entries: d.log_entries,
            log_bytes: d.log_bytes,
            fresh_changes: d.fresh_changes,
            relay_held_changes: d.relay_held_changes,
            snapshot_bytes: d.snapshot_bytes,
            relay_seq: d.relay_seq,
            caught_up: d.caught_up,
            compaction_enabled: d.compaction_enabled,
        })
    }
}
