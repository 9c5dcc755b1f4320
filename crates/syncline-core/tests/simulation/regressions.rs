//! Failing cases the simulation found, kept as literal action lists (the
//! seeded test prints a shrunk case in this form). Each is replayed on every
//! run by `saved_cases_still_converge`; its doc says what it caught.

use crate::{Action::*, Case, Setup};

/// Every saved case, with its name.
pub fn cases() -> Vec<(&'static str, Case)> {
    vec![(
        "push_waits_for_an_earlier_unwritten_entry",
        push_waits_for_an_earlier_unwritten_entry(),
    )]
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
