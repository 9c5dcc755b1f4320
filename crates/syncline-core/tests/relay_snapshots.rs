//! Relay-served snapshots: after compacting, a replica offers its snapshot
//! to the relay; a replica catching up from below it gets the snapshot in
//! place of the deltas it covers, then the live tail, with no re-subscribe
//! loop; a jump in sequence that is no snapshot is still a gap.

#[path = "support/world.rs"]
mod world;

use serde_json::json;
use syncline_core::{CompactionPolicy, DocUrl, Effect};
use syncline_protocol::{ClientFrame, RelayFrame, SequencedDelta, decode_client, encode_relay};
use world::{World, items, push};

/// Replica 0 writes `n` changes one by one; replica 1, which compacts
/// every 4 droppable entries, receives them. Replica 2 is not connected.
fn compacted_world(n: usize, compact: bool) -> (World, DocUrl) {
    let mut world = World::new(3);
    world.connect(0);
    world.connect(1);
    let url = world.replicas[0]
        .engine
        .create_doc(&json!({"items": []}), world.now)
        .unwrap();
    world.collect(0);
    world.replicas[1].engine.open_doc(&url, world.now).unwrap();
    world.replicas[1].set_compaction(CompactionPolicy {
        max_changes: 4,
        max_bytes: 1 << 20,
        ..CompactionPolicy::default()
    });
    world.replicas[1].engine.set_compaction_enabled(compact);
    world.collect(1);
    world.settle();
    for k in 0..n {
        world.replicas[0]
            .engine
            .change(url.doc, &push(&format!("x{k:02}")), None, world.now)
            .unwrap();
        world.collect(0);
        world.settle();
    }
    (world, url)
}

#[test]
fn a_fresh_replica_catches_up_from_a_snapshot_then_the_live_tail() {
    let (mut world, url) = compacted_world(10, true);
    let snapshot = world.relay.snapshots.get(&url.doc).expect("no snapshot");
    let head = world.relay.logs[&url.doc].len() as u64;
    assert!(snapshot.seq > 1 && snapshot.seq <= head, "{}", snapshot.seq);
    assert!(world.replicas[1].errors.is_empty());

    world.replicas[2].engine.open_doc(&url, world.now).unwrap();
    world.collect(2);
    world.connect(2);
    world.settle();
    assert_eq!(items(&world, 2, &url), items(&world, 0, &url));
    assert_eq!(items(&world, 2, &url).len(), 10);
    assert_eq!(world.relay.subscribes[&2], 1, "no re-subscribe loop");
    assert!(world.replicas[2].errors.is_empty());
    // The live tail follows.
    world.replicas[0]
        .engine
        .change(url.doc, &push("live"), None, world.now)
        .unwrap();
    world.collect(0);
    world.settle();
    assert_eq!(items(&world, 2, &url).len(), 11);
    assert_eq!(world.relay.subscribes[&2], 1);
    // What came as a snapshot is durable: it survives a restart.
    world.crash(2);
    assert_eq!(items(&world, 2, &url).len(), 11);
    world.heal();
    assert_eq!(items(&world, 2, &url), items(&world, 0, &url));
}

#[test]
fn a_replica_that_does_not_compact_sends_no_snapshot() {
    let (world, url) = compacted_world(10, false);
    assert!(!world.relay.snapshots.contains_key(&url.doc));
}

#[test]
fn a_jump_that_is_no_snapshot_is_a_gap() {
    let (mut world, url) = compacted_world(3, false);
    let log = world.relay.logs[&url.doc].clone();
    world.restart_relay();
    let mut fresh = World::new(1);
    let engine = &mut fresh.replicas[0].engine;
    engine.open_doc(&url, 0).unwrap();
    engine.connected([1; 16], None, 0);
    let welcome = RelayFrame::Welcome {
        version: syncline_protocol::PROTOCOL_VERSION,
        epoch: [0; 16],
        limits: Default::default(),
    };
    engine.received(&encode_relay(&welcome), 0);
    engine.take_effects();
    // Seq 3 while the cursor is 0: an ordinary delta, so a gap.
    let item: SequencedDelta = log[2].clone();
    let frame = RelayFrame::Deltas {
        doc: url.doc,
        items: vec![item],
        caught_up: true,
    };
    engine.received(&encode_relay(&frame), 0);
    let resubscribed = engine.take_effects().into_iter().any(|e| {
        matches!(e, Effect::Send(f)
            if matches!(decode_client(&f), Ok(ClientFrame::Subscribe { since: 0, .. })))
    });
    assert!(resubscribed);
    assert_eq!(
        engine.value_json(&url.doc).unwrap(),
        json!({}),
        "nothing applied past the gap"
    );
}

/// A delta no replica can open, appended to the relay's log of `url` as if
/// pushed (the real relay only stores signed writes, but another key
/// holder's newer format, say, is unreadable all the same).
fn append_unusable(world: &mut World, url: &DocUrl) -> u64 {
    let log = world.relay.logs.get_mut(&url.doc).unwrap();
    let seq = log.len() as u64 + 1;
    log.push(SequencedDelta {
        seq,
        id: syncline_protocol::DeltaId([0x77; 32]),
        bytes: vec![0x77; 48],
    });
    seq
}

#[test]
fn a_snapshot_never_covers_a_delta_its_author_could_not_use_even_after_a_restart() {
    let (mut world, url) = compacted_world(2, true);
    let unusable = append_unusable(&mut world, &url);
    for k in 0..12 {
        world.replicas[0]
            .engine
            .change(url.doc, &push(&format!("y{k:02}")), None, world.now)
            .unwrap();
        world.collect(0);
        world.settle();
    }
    assert_eq!(world.replicas[1].errors, ["BadDelta"], "skipped once");
    assert_eq!(items(&world, 1, &url).len(), 14);
    let covers = |world: &World| world.relay.snapshots.get(&url.doc).map(|s| s.seq);
    assert!(
        covers(&world).is_some_and(|seq| seq < unusable),
        "{:?}",
        covers(&world)
    );

    // The replica restarts: it still knows, from its log, not to cover it.
    world.crash(1);
    world.connect(1);
    world.settle();
    for k in 0..12 {
        world.replicas[1]
            .engine
            .change(url.doc, &push(&format!("z{k:02}")), None, world.now)
            .unwrap();
        world.collect(1);
        world.settle();
    }
    assert!(
        covers(&world).is_some_and(|seq| seq < unusable),
        "{:?}",
        covers(&world)
    );
    let log = &world.relay.logs[&url.doc];
    assert_eq!(log[unusable as usize - 1].bytes, vec![0x77; 48]);
}

#[test]
fn an_unreadable_snapshot_is_asked_for_again_with_backoff_not_in_a_loop() {
    let (mut world, url) = compacted_world(10, true);
    let good = world.relay.snapshots[&url.doc].clone();
    let garbage = SequencedDelta {
        bytes: vec![0x66; 64],
        ..good.clone()
    };
    world.relay.snapshots.insert(url.doc, garbage);

    world.replicas[2].engine.open_doc(&url, world.now).unwrap();
    world.collect(2);
    world.connect(2);
    world.settle();
    let status = world.replicas[2].engine.doc_status(&url.doc).unwrap();
    assert_eq!(
        status.last_error.map(|(e, _)| e.code().as_str()),
        Some("Unreadable")
    );
    assert_eq!(
        items(&world, 2, &url),
        Vec::<String>::new(),
        "nothing applied"
    );
    // Ten seconds of ticks: a handful of attempts, not a loop.
    for _ in 0..100 {
        world.now += 100;
        world.tick(2);
        world.settle();
    }
    let subscribes = world.relay.subscribes[&2];
    assert!(
        (2..=8).contains(&subscribes),
        "{subscribes} subscriptions in 10 s"
    );

    // The relay serves a readable snapshot again: the replica catches up.
    world.relay.snapshots.insert(url.doc, good);
    world.now += syncline_core::TOKEN_RETRY_CAP_MS + 1;
    world.tick(2);
    world.settle();
    assert_eq!(items(&world, 2, &url), items(&world, 0, &url));
    assert_eq!(
        world.replicas[2]
            .engine
            .doc_status(&url.doc)
            .unwrap()
            .last_error,
        None
    );
}
