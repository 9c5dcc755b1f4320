//! Live delivery (protocol v2) against the model relay: a tentative delta is
//! visible before the relay commits, cursors move only on `Committed`, and a
//! delta that reached one replica survives its author and the relay.

#[path = "support/world.rs"]
mod world;

use syncline_core::{DocUrl, MemoryStore, RESEND_AFTER_MS};
use syncline_protocol::{ClientFrame, RelayFrame, decode_client, decode_relay};
use world::{World, durable_cursor, items, push, shared_doc};

/// Two replicas sharing a doc, the relay holding commits until told.
fn held_relay() -> (World, DocUrl) {
    let (mut world, url) = shared_doc(2);
    world.relay.hold_commits = true;
    (world, url)
}

/// Replica `i` makes a change, writes it, and its push reaches the relay.
fn change_and_push(world: &mut World, i: usize, url: &DocUrl, item: &str) {
    world.replicas[i]
        .engine
        .change(url.doc, &push(item), None, world.now)
        .unwrap();
    world.collect(i);
    world.write(i);
    while world.deliver_to_relay(i) {}
}

/// The frames waiting for replica `i`, decoded, left in place.
fn in_flight_to(world: &World, i: usize) -> Vec<RelayFrame> {
    world.to_replica[i]
        .iter()
        .map(|f| decode_relay(f).unwrap())
        .collect()
}

#[test]
fn a_tentative_delta_is_shown_at_once_and_the_cursor_waits_for_the_commit() {
    let (mut world, url) = held_relay();
    let before = durable_cursor(&world, 1, &url);
    change_and_push(&mut world, 0, &url, "x");
    assert!(matches!(
        in_flight_to(&world, 1)[..],
        [RelayFrame::Tentative { .. }]
    ));
    while world.deliver_to_replica(1) {}
    world.write(1);
    assert_eq!(items(&world, 1, &url), ["x"], "visible before the commit");
    assert_eq!(durable_cursor(&world, 1, &url), before, "cursor waits");
    assert_eq!(
        world.replicas[1].engine.status().pending,
        0,
        "another's delta is not this replica's pending work"
    );

    world.commit_relay();
    while world.deliver_to_replica(1) {}
    world.write(1);
    let head = world.relay.logs[&url.doc].len() as u64;
    assert_eq!(durable_cursor(&world, 1, &url), head);
    // Confirmed: it is not held any more, so time passing pushes nothing.
    world.now += RESEND_AFTER_MS;
    world.tick(1);
    assert!(world.to_relay[1].is_empty(), "{:?}", world.to_relay[1]);
}

#[test]
fn a_pushers_cursor_covers_its_own_deltas() {
    let (mut world, url) = shared_doc(2);
    change_and_push(&mut world, 0, &url, "mine");
    world.settle();
    let head = world.relay.logs[&url.doc].len() as u64;
    assert_eq!(durable_cursor(&world, 0, &url), head);
    // So a new connection fetches nothing back.
    world.disconnect(0);
    world.connect(0);
    while world.deliver_to_relay(0) {}
    let fetched: usize = in_flight_to(&world, 0)
        .iter()
        .map(|f| match f {
            RelayFrame::Deltas { items, .. } => items.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(fetched, 0);
}

#[test]
fn a_delta_that_reached_one_replica_survives_its_author_and_the_relay() {
    let (mut world, url) = held_relay();
    change_and_push(&mut world, 0, &url, "only here");
    while world.deliver_to_replica(1) {}
    world.write(1); // durable at replica 1, held as tentative
    // The relay dies before committing, and the author's device is gone.
    world.restart_relay();
    world.replicas[0].store = MemoryStore::default();
    world.crash(0);
    assert!(world.relay.logs[&url.doc].len() == 1, "only the creation");

    world.relay.hold_commits = false;
    world.connect(1);
    world.settle();
    // Not yet overdue: replica 1 waits for the author's re-push.
    let pushed = world.relay.logs[&url.doc].len();
    assert_eq!(pushed, 1);
    world.now += RESEND_AFTER_MS;
    world.tick(1);
    world.settle();
    assert_eq!(world.relay.logs[&url.doc].len(), 2, "replica 1 pushed it");

    // A new device of the author's gets it from the relay.
    world.replicas[0].engine.open_doc(&url, world.now).unwrap();
    world.collect(0);
    world.heal();
    assert_eq!(items(&world, 0, &url), ["only here"]);
}

#[test]
fn a_held_delta_confirmed_by_the_next_catch_up_is_not_pushed_again() {
    let (mut world, url) = held_relay();
    change_and_push(&mut world, 0, &url, "x");
    while world.deliver_to_replica(1) {}
    world.write(1);
    world.disconnect(1);
    world.commit_relay();
    world.connect(1);
    world.settle();
    assert_eq!(world.relay.logs[&url.doc].len(), 2);
    world.now += RESEND_AFTER_MS;
    world.tick(1);
    world.settle();
    assert_eq!(
        world.relay.pushes.get(&1),
        None,
        "the catch-up confirmed it: replica 1 never pushed"
    );
    assert_eq!(items(&world, 1, &url), ["x"]);
}

#[test]
fn a_commit_naming_a_delta_that_never_arrived_fetches_it() {
    let (mut world, url) = held_relay();
    change_and_push(&mut world, 0, &url, "lost");
    let tentative = world.to_replica[1].pop_front().unwrap();
    assert!(matches!(
        decode_relay(&tentative).unwrap(),
        RelayFrame::Tentative { .. }
    ));
    world.commit_relay();
    while world.deliver_to_replica(1) {}
    let asked: Vec<ClientFrame> = world.to_relay[1]
        .iter()
        .map(|f| decode_client(f).unwrap())
        .collect();
    assert!(
        matches!(asked[..], [ClientFrame::Subscribe { .. }, ..]),
        "the gap made it subscribe again: {asked:?}"
    );
    world.relay.hold_commits = false;
    world.settle();
    assert_eq!(items(&world, 1, &url), ["lost"]);
    let head = world.relay.logs[&url.doc].len() as u64;
    assert_eq!(durable_cursor(&world, 1, &url), head);
}
