//! Failing cases the simulation found, kept as literal action lists (the
//! seeded test prints a shrunk case in this form). Each is replayed on every
//! run by `saved_cases_still_converge`; its doc says what it caught.

use crate::{Action::*, Case, Setup};

/// Every saved case, with its name.
pub fn cases() -> Vec<(&'static str, Case)> {
    vec![
        (
            "push_waits_for_an_earlier_unwritten_entry",
            push_waits_for_an_earlier_unwritten_entry(),
        ),
        (
            "a_snapshot_may_drop_what_no_committed_delta_carried",
            a_snapshot_may_drop_what_no_committed_delta_carried(),
        ),
    ]
}

/// Seed 892 (234 actions, shrunk to 9) with the engine's push rule removed
/// (`waits_for_an_earlier_write` in `src/sync.rs` always false): replica 0
/// pushes its document's creation and its first edit before either is
/// written here; the relay stores only the edit (the first push was
/// dropped), the replica crashes and loses both. The relay then holds a
/// change whose dependency exists nowhere, and replica 0 never converges
/// with it. With the rule, the edit waits for the creation's write, so a
/// crash loses both or neither reaches the relay alone.
fn push_waits_for_an_earlier_unwritten_entry() -> Case {
    Case {
        setup: Setup {
            replicas: 3,
            docs: 2,
            compact_every: vec![Some(1), Some(11), Some(6)],
            token_ttl_ms: None,
            online: vec![true, false, true],
            backlog_limit: None,
        },
        actions: vec![
            Deliver {
                replica: 0,
                to_relay: true,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Deliver {
                replica: 0,
                to_relay: false,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Deliver {
                replica: 0,
                to_relay: true,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Deliver {
                replica: 0,
                to_relay: true,
                reorder: false,
                drop: true,
                duplicate: false,
            },
            Deliver {
                replica: 0,
                to_relay: true,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Deliver {
                replica: 0,
                to_relay: true,
                reorder: false,
                drop: true,
                duplicate: false,
            },
            Edit {
                replica: 0,
                doc: 0,
                kind: 0,
                pos: 1453473341,
                key: 3,
            },
            Deliver {
                replica: 0,
                to_relay: true,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Crash(0),
        ],
    }
}

/// Seed 924 (249 actions, shrunk to 41), a false alarm of the oracle: it
/// counted every change in the relay's snapshot as committed. Replica 0
/// offers a snapshot (covering sequence 2) that also holds its four
/// unacknowledged changes, crashes before one of them is ever pushed, and
/// replica 1's later snapshot (covering 5) lacks that one. The relay never
/// acknowledged it (it is still in replica 0's durable outbox and arrives
/// when replica 0 returns), so nothing was lost; the oracle now holds the
/// relay to the changes of committed deltas only.
fn a_snapshot_may_drop_what_no_committed_delta_carried() -> Case {
    Case {
        setup: Setup {
            replicas: 2,
            docs: 1,
            compact_every: vec![Some(6), Some(6)],
            token_ttl_ms: None,
            online: vec![true, false],
            backlog_limit: None,
        },
        actions: vec![
            Write(0),
            Crash(0),
            ToggleOnline(1),
            Edit {
                replica: 0,
                doc: 0,
                kind: 4,
                pos: 2531131322,
                key: 3,
            },
            ToggleOnline(0),
            Deliver {
                replica: 0,
                to_relay: true,
                reorder: false,
                drop: false,
                duplicate: true,
            },
            Deliver {
                replica: 0,
                to_relay: false,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Write(0),
            Deliver {
                replica: 0,
                to_relay: true,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Deliver {
                replica: 0,
                to_relay: true,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Deliver {
                replica: 0,
                to_relay: true,
                reorder: true,
                drop: false,
                duplicate: false,
            },
            Deliver {
                replica: 0,
                to_relay: false,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Deliver {
                replica: 1,
                to_relay: true,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Edit {
                replica: 0,
                doc: 0,
                kind: 6,
                pos: 1055561041,
                key: 1,
            },
            Deliver {
                replica: 0,
                to_relay: false,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            CommitRelay,
            Edit {
                replica: 0,
                doc: 0,
                kind: 0,
                pos: 2235656850,
                key: 3,
            },
            Deliver {
                replica: 1,
                to_relay: false,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Write(0),
            Edit {
                replica: 0,
                doc: 0,
                kind: 6,
                pos: 609534128,
                key: 3,
            },
            Deliver {
                replica: 0,
                to_relay: true,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Deliver {
                replica: 1,
                to_relay: true,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Deliver {
                replica: 0,
                to_relay: false,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Deliver {
                replica: 0,
                to_relay: true,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Deliver {
                replica: 1,
                to_relay: false,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Deliver {
                replica: 0,
                to_relay: true,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Edit {
                replica: 0,
                doc: 0,
                kind: 1,
                pos: 1134004394,
                key: 3,
            },
            Write(0),
            ToggleOnline(1),
            Deliver {
                replica: 0,
                to_relay: true,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Crash(0),
            ToggleOnline(1),
            Deliver {
                replica: 1,
                to_relay: true,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Edit {
                replica: 1,
                doc: 0,
                kind: 2,
                pos: 38285806,
                key: 2,
            },
            CommitRelay,
            Deliver {
                replica: 1,
                to_relay: false,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Deliver {
                replica: 1,
                to_relay: true,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Deliver {
                replica: 1,
                to_relay: false,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Deliver {
                replica: 1,
                to_relay: true,
                reorder: false,
                drop: false,
                duplicate: false,
            },
            Write(1),
            Deliver {
                replica: 1,
                to_relay: true,
                reorder: false,
                drop: false,
                duplicate: true,
            },
        ],
    }
}
