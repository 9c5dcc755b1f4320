//! `Engine::change_at`: a change applied as of older heads (a tab whose
//! engine runs in a worker recorded it against the value it showed) means
//! what it meant there, merges like a concurrent change, and reaches the
//! relay and other replicas like any local change.

#[path = "support/world.rs"]
mod world;

use serde_json::json;
use world::{World, items, push};

#[test]
fn changes_at_older_heads_merge_and_reach_the_relay() {
    let mut w = World::new(2);
    w.connect(0);
    w.connect(1);
    let url = w.replicas[0]
        .engine
        .create_doc(&json!({ "items": ["first"] }), w.now)
        .unwrap();
    w.collect(0);
    w.settle();
    w.replicas[1].engine.open_doc(&url, w.now).unwrap();
    w.collect(1);
    w.settle();
    let base = w.replicas[0].engine.heads(&url.doc).unwrap();
    // Three "tabs" recorded a change against `base`; the engine applies them one after another.
    for (i, item) in ["a", "b", "c"].into_iter().enumerate() {
        let hash = w.replicas[0]
            .engine
            .change_at(url.doc, &base, &push(item), Default::default(), w.now)
            .unwrap();
        assert!(hash.is_some(), "change {i} made a change");
        w.collect(0);
    }
    w.settle();
    let expected = vec!["a", "b", "c", "first"];
    assert_eq!(items(&w, 0, &url), expected);
    assert_eq!(
        items(&w, 1, &url),
        expected,
        "the other replica got every change"
    );
    // Each inserted at index 0 of the list as it was at `base`: before "first".
    let value = w.replicas[0].engine.value_json(&url.doc).unwrap();
    assert_eq!(value["items"][3], json!("first"));
    // Unknown heads change nothing.
    let unknown = [syncline_core::ChangeHash([9; 32])];
    let err = w.replicas[0]
        .engine
        .change_at(url.doc, &unknown, &push("x"), Default::default(), w.now)
        .unwrap_err();
    assert_eq!(err.code(), syncline_core::SynclineErrorCode::UnknownHeads);
    assert_eq!(items(&w, 0, &url), expected);
}

/// A tab in worker mode sends its confirmed heads plus its own changes made
/// since (ancestors and descendants together). That is one point in
/// history: typing "Hello" a key at a time, each change sent before the
/// previous one is confirmed, is one undo step, as it is in the page.
#[test]
fn heads_given_with_their_own_ancestors_are_one_point_and_keep_one_undo_step() {
    let mut w = World::new(1);
    let url = w.replicas[0]
        .engine
        .create_doc(&json!({ "items": [] }), w.now)
        .unwrap();
    let engine = &mut w.replicas[0].engine;
    let base = engine.heads(&url.doc).unwrap();
    let undoable = || syncline_core::ChangeOptions {
        undoable: true,
        ..Default::default()
    };
    let mut sent = base.clone();
    for item in ["H", "e", "l", "l", "o"] {
        let hash = engine
            .change_at(url.doc, &sent, &push(item), undoable(), w.now)
            .unwrap()
            .expect("a change");
        // The confirmed heads stay `base`; the tab adds each change it made since.
        sent.push(hash);
    }
    assert_eq!(
        engine.value_json(&url.doc).unwrap()["items"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert!(
        engine.undo(url.doc, w.now).unwrap(),
        "there was a step to undo"
    );
    assert_eq!(
        engine.value_json(&url.doc).unwrap(),
        json!({ "items": [] }),
        "the five changes were one step"
    );
    assert!(!engine.can_undo(&url.doc), "nothing left to undo");
}
