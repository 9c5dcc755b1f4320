//! The backlog limit (`syncline_core::backlog`): while storage fails,
//! what waits for it stays bounded, changes already made still leave, and
//! nothing is lost once storage recovers.

#[path = "support/world.rs"]
mod world;

use syncline_core::{CompactionPolicy, EngineError, SynclineErrorCode};
use world::{World, items, push, shared_doc};

const LIMIT: usize = 16 * 1024;

/// Replica 0's storage never writes; replica 1's does. Moves every frame
/// and write (but replica 0's) until nothing moves.
fn exchange(world: &mut World) {
    for _ in 0..20 {
        while world.deliver_to_relay(0) {}
        world.commit_relay();
        while world.deliver_to_replica(0) {}
        world.write(1);
        while world.deliver_to_relay(1) {}
        world.commit_relay();
        while world.deliver_to_replica(1) {}
    }
}

/// An item of about 600 bytes, unique by `n`.
fn big_item(n: usize) -> String {
    format!("{n:04}-{}", "x".repeat(600))
}

#[test]
fn while_storage_fails_the_backlog_stops_at_its_limit_and_nothing_is_lost() {
    stops_at_the_limit(CompactionPolicy::default());
}

#[test]
fn compaction_never_takes_the_backlog_past_its_limit() {
    // Every 4 changes: each snapshot would be most of the limit.
    stops_at_the_limit(CompactionPolicy {
        max_changes: 4,
        idle_ms: None,
        ..CompactionPolicy::default()
    });
}

fn stops_at_the_limit(policy: CompactionPolicy) {
    let (mut world, url) = shared_doc(2);
    world.replicas[0].set_compaction(policy);
    world.replicas[0].engine.set_backlog_limit(LIMIT);
    // A document bigger than the limit, written while storage worked: a
    // snapshot of it alone would pass the limit.
    let mut made = Vec::new();
    for n in 0..40 {
        let item = format!("early-{}", big_item(n));
        let now = world.now;
        world.replicas[0]
            .engine
            .change(url.doc, &push(&item), None, now)
            .unwrap();
        world.collect(0);
        world.settle();
        made.push(item);
    }
    assert_eq!(world.replicas[0].engine.backlog_bytes(), 0);

    // From now on storage fails. Changes until the engine refuses one:
    // each goes to the relay.
    let refused = loop {
        assert!(made.len() < 240, "never refused: the backlog is unbounded");
        let item = big_item(made.len());
        let now = world.now;
        match world.replicas[0]
            .engine
            .change(url.doc, &push(&item), None, now)
        {
            Ok(()) => made.push(item),
            Err(e) => break e,
        }
        world.collect(0);
        exchange(&mut world);
    };
    assert!(matches!(
        refused,
        EngineError::BacklogFull { limit: LIMIT, .. }
    ));
    assert_eq!(refused.code(), SynclineErrorCode::BacklogFull);
    assert!(
        refused.to_string().contains("new changes are refused"),
        "{refused}"
    );
    let engine = &world.replicas[0].engine;
    let backlog = engine.backlog_bytes();
    assert!(
        (LIMIT..LIMIT + 4096).contains(&backlog),
        "backlog {backlog} B: the limit plus one change at most"
    );
    assert!(
        made.len() >= 40 + 10,
        "{} changes before the limit",
        made.len() - 40
    );
    // The refused change changed nothing; those before it left and were
    // acknowledged though storage never took them.
    let mut expected = made.clone();
    expected.sort();
    assert_eq!(items(&world, 0, &url), expected);
    assert_eq!(items(&world, 1, &url), expected);
    assert!(
        !world.replicas[0].unwritten.is_empty(),
        "storage never wrote"
    );
    assert_eq!(world.replicas[0].engine.status().pending, 0, "all acked");

    // Replica 1 keeps writing: replica 0 leaves its deltas at the relay
    // (tentative, committed, and the catch-ups its gaps would ask for)
    // instead of piling them up too.
    for n in 0..20 {
        let now = world.now;
        world.replicas[1]
            .engine
            .change(url.doc, &push(&format!("remote-{n:02}")), None, now)
            .unwrap();
        world.collect(1);
        exchange(&mut world);
    }
    assert_eq!(world.replicas[0].engine.backlog_bytes(), backlog);
    assert_eq!(items(&world, 0, &url), expected, "nothing came in");
    let now = world.now;
    let again = world.replicas[0]
        .engine
        .change(url.doc, &push("still-refused"), None, now);
    assert!(matches!(again, Err(EngineError::BacklogFull { .. })));

    // Storage recovers: the backlog is written, the document asks the
    // relay again from its cursor, and changes are taken again.
    world.write(0);
    assert_eq!(world.replicas[0].engine.backlog_bytes(), 0);
    world.settle();
    expected.extend((0..20).map(|n| format!("remote-{n:02}")));
    expected.sort();
    assert_eq!(items(&world, 0, &url), expected, "fetched again at once");
    let now = world.now;
    world.replicas[0]
        .engine
        .change(url.doc, &push("after"), None, now)
        .unwrap();
    world.collect(0);
    world.settle();
    expected.push("after".into());
    expected.sort();
    assert_eq!(items(&world, 0, &url), expected);
    assert_eq!(items(&world, 1, &url), expected);
    let status = world.replicas[0].engine.status();
    assert_eq!((status.unsaved, status.pending), (0, 0));

    // Everything is durable: a restart from storage has it all.
    world.replicas[0].crash_and_restart();
    assert_eq!(items(&world, 0, &url), expected);
}

#[test]
fn a_backlog_under_the_limit_changes_nothing() {
    let (mut world, url) = shared_doc(2);
    world.replicas[0].engine.set_backlog_limit(LIMIT);
    for n in 0..100 {
        let now = world.now;
        world.replicas[0]
            .engine
            .change(url.doc, &push(&big_item(n)), None, now)
            .unwrap();
        world.collect(0);
        world.settle(); // storage writes: the backlog empties every time
        assert_eq!(world.replicas[0].engine.backlog_bytes(), 0);
    }
    assert_eq!(items(&world, 1, &url).len(), 100);
}

#[test]
fn a_snapshot_on_its_way_to_storage_never_gets_a_change_refused() {
    // Storage works but is one step behind: everything waits for the next
    // change before it is written, so every snapshot compaction makes is
    // still in the backlog when the next change comes (with the
    // acknowledgements that arrived meanwhile).
    let (mut world, url) = shared_doc(2);
    world.replicas[0].set_compaction(CompactionPolicy {
        max_changes: 2,
        idle_ms: None,
        ..CompactionPolicy::default()
    });
    world.replicas[0].set_backlog_limit(LIMIT);
    let mut made = Vec::new();
    for n in 0..80 {
        // Items of many sizes, so the snapshots take many sizes too.
        let item = format!("{n:04}-{}", "y".repeat(50 + n * 37 % 500));
        let now = world.now;
        let made_now = world.replicas[0]
            .engine
            .change(url.doc, &push(&item), None, now);
        assert!(
            made_now.is_ok(),
            "change {n} refused with {} B waiting for a storage that works",
            world.replicas[0].engine.backlog_bytes()
        );
        world.write(0);
        made.push(item);
        world.collect(0);
        exchange(&mut world);
    }
    world.write(0);
    world.settle();
    made.sort();
    assert_eq!(items(&world, 1, &url), made);
    assert!(
        world.replicas[0].store.records().len() < 80,
        "compaction ran"
    );
}
