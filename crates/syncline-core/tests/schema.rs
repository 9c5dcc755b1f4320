//! Schema migrations through the model relay: two replicas migrating the
//! same old document from the same heads while offline make one change
//! (applied once); from different heads, two (each applied, no clash).

#[path = "support/world.rs"]
mod world;

use serde_json::json;
use syncline_core::{Op, SCHEMA_KEY};
use world::shared_doc;

/// The migration an app would record: push "migrated" to items.
fn push_migrated(len: usize) -> Vec<Op> {
    serde_json::from_value(json!([
        {"op": "insert", "obj": ["items"], "index": len, "values": ["migrated"]}
    ]))
    .unwrap()
}

#[test]
fn two_replicas_migrating_the_same_heads_offline_apply_it_once() {
    let (mut world, url) = shared_doc(2);
    world.disconnect(0);
    world.disconnect(1);
    let now = world.now;
    let mut hashes = Vec::new();
    for i in 0..2 {
        let engine = &mut world.replicas[i].engine;
        assert_eq!(engine.schema_version(&url.doc).unwrap(), 0);
        let hash = engine
            .migrate(url.doc, 0, &push_migrated(0), now + i as u64 * 777)
            .unwrap();
        hashes.push(hash.expect("a change"));
        assert_eq!(engine.schema_version(&url.doc).unwrap(), 1);
        // Migrating again from 0 does nothing: it is at 1 now.
        assert_eq!(
            engine.migrate(url.doc, 0, &push_migrated(1), now).unwrap(),
            None
        );
        world.collect(i);
    }
    assert_eq!(hashes[0], hashes[1], "the same change on both replicas");
    world.connect(0);
    world.connect(1);
    world.settle();
    for i in 0..2 {
        assert_eq!(
            world.replicas[i].engine.value_json(&url.doc).unwrap(),
            json!({"items": ["migrated"], SCHEMA_KEY: 1}),
            "replica {i}: the migration happened once"
        );
        assert_eq!(world.replicas[i].engine.status().pending, 0);
    }
}

#[test]
fn migrations_from_different_heads_both_apply_and_still_sync() {
    let (mut world, url) = shared_doc(2);
    world.disconnect(0);
    world.disconnect(1);
    let now = world.now;
    // Replica 1 made a change of its own first: other heads.
    let ops: Vec<Op> =
        serde_json::from_value(json!([{"op": "put", "obj": [], "key": "title", "value": "t"}]))
            .unwrap();
    world.replicas[1]
        .engine
        .change(url.doc, &ops, None, now)
        .unwrap();
    for i in 0..2 {
        world.replicas[i]
            .engine
            .migrate(url.doc, 0, &push_migrated(0), now)
            .unwrap()
            .expect("a change");
        world.collect(i);
    }
    world.connect(0);
    world.connect(1);
    world.settle();
    let values: Vec<_> = (0..2)
        .map(|i| world.replicas[i].engine.value_json(&url.doc).unwrap())
        .collect();
    assert_eq!(values[0], values[1], "converged");
    assert_eq!(
        values[0]["items"],
        json!(["migrated", "migrated"]),
        "the documented limit: each applied"
    );
    assert_eq!(values[0][SCHEMA_KEY], json!(1));
}
