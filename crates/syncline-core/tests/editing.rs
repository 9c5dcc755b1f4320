//! Undo, redo, cursors and marks through the engine, between replicas
//! that sync through the model relay.

#[path = "support/world.rs"]
mod world;

use serde_json::json;
use syncline_core::{ChangeOptions, DocUrl, EngineError, Op, SynclineErrorCode};
use world::{World, shared_doc};

fn ops(v: serde_json::Value) -> Vec<Op> {
    serde_json::from_value(v).unwrap()
}

fn splice(index: u64, delete: u64, insert: &str) -> Vec<Op> {
    ops(
        json!([{"op": "splice_text", "obj": ["t"], "index": index, "delete": delete, "insert": insert}]),
    )
}

/// Two replicas sharing `{items: [], t: <text initial>}`.
fn shared_text(initial: &str) -> (World, DocUrl) {
    let (mut world, url) = shared_doc(2);
    let now = world.now;
    world.replicas[0]
        .engine
        .change(
            url.doc,
            &ops(json!([{"op": "put_text", "obj": [], "key": "t", "value": initial}])),
            None,
            now,
        )
        .unwrap();
    world.collect(0);
    world.settle();
    (world, url)
}

fn text(world: &World, i: usize, url: &DocUrl) -> String {
    world.replicas[i].engine.value_json(&url.doc).unwrap()["t"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn edit(world: &mut World, i: usize, url: &DocUrl, change: Vec<Op>) {
    let now = world.now;
    world.replicas[i]
        .engine
        .change(url.doc, &change, None, now)
        .unwrap();
    world.collect(i);
}

#[test]
fn undo_removes_only_this_replicas_step_and_redo_brings_it_back() {
    let (mut world, url) = shared_text("hello world");
    world.now += 10_000; // the setup's change is a step of its own
    // Replica 0 types ", dear" as six keystrokes within the capture window.
    for (n, c) in ", dear".chars().enumerate() {
        world.now += 50;
        edit(&mut world, 0, &url, splice(5 + n as u64, 0, &c.to_string()));
    }
    // Replica 1, concurrently (not synced yet), types at both ends.
    edit(&mut world, 1, &url, splice(11, 0, "!"));
    edit(&mut world, 1, &url, splice(0, 0, ">> "));
    world.settle();
    assert_eq!(text(&world, 0, &url), ">> hello, dear world!");
    assert!(world.replicas[0].engine.can_undo(&url.doc));

    let now = world.now;
    assert!(world.replicas[0].engine.undo(url.doc, now).unwrap());
    world.collect(0);
    world.settle();
    for i in 0..2 {
        assert_eq!(
            text(&world, i, &url),
            ">> hello world!",
            "replica {i}: one step, the other's text kept"
        );
    }
    assert!(world.replicas[0].engine.can_redo(&url.doc));

    let now = world.now;
    assert!(world.replicas[0].engine.redo(url.doc, now).unwrap());
    world.collect(0);
    world.settle();
    assert_eq!(text(&world, 0, &url), text(&world, 1, &url));
    assert!(text(&world, 0, &url).contains(", dear"));
    assert!(!world.replicas[0].engine.can_redo(&url.doc));
}

#[test]
fn the_capture_window_groups_keystrokes_and_a_new_change_clears_redo() {
    let (mut world, url) = shared_text("");
    world.replicas[0].engine.set_undo_capture(500);
    world.now += 10_000;
    for (n, word) in ["a", "b", "c"].into_iter().enumerate() {
        world.now += 100; // within 500 ms: one step
        edit(&mut world, 0, &url, splice(n as u64, 0, word));
    }
    world.now += 2_000; // a pause: a new step
    edit(&mut world, 0, &url, splice(3, 0, "d"));
    let now = world.now;
    let engine = &mut world.replicas[0].engine;
    assert!(engine.undo(url.doc, now).unwrap());
    assert_eq!(engine.value_json(&url.doc).unwrap()["t"], "abc");
    assert!(engine.undo(url.doc, now).unwrap());
    assert_eq!(engine.value_json(&url.doc).unwrap()["t"], "");
    assert!(engine.redo(url.doc, now).unwrap());
    assert_eq!(engine.value_json(&url.doc).unwrap()["t"], "abc");
    engine
        .change(url.doc, &splice(0, 0, "x"), None, now)
        .unwrap();
    assert!(!engine.can_redo(&url.doc), "a new change clears redo");
    assert!(!engine.redo(url.doc, now).unwrap());
}

#[test]
fn a_change_can_opt_out_of_undo_and_undo_with_nothing_is_false() {
    let (mut world, url) = shared_text("x");
    let now = world.now + 10_000;
    let engine = &mut world.replicas[1].engine;
    assert!(!engine.can_undo(&url.doc));
    assert!(
        !engine.undo(url.doc, now).unwrap(),
        "nothing to undo: no-op"
    );
    let quiet = ChangeOptions {
        message: None,
        undoable: false,
    };
    engine
        .change_with(url.doc, &splice(1, 0, "y"), quiet, now)
        .unwrap();
    assert!(!engine.can_undo(&url.doc));
    assert_eq!(engine.value_json(&url.doc).unwrap()["t"], "xy");
}

#[test]
fn a_cursor_stays_before_its_character_through_remote_edits() {
    let (mut world, url) = shared_text("abcdef");
    let path = vec![syncline_core::ops::Key::Name("t".into())];
    let cursor = world.replicas[0].engine.cursor(&url.doc, &path, 3).unwrap(); // before "d"
    let end = world.replicas[0].engine.cursor(&url.doc, &path, 6).unwrap();
    edit(&mut world, 1, &url, splice(0, 0, "XYZ")); // before it: moves right
    edit(&mut world, 1, &url, splice(4, 1, "")); // deletes "b": moves left
    edit(&mut world, 1, &url, splice(7, 0, "!")); // after it: stays
    world.settle();
    let engine = &world.replicas[0].engine;
    let now_text = text(&world, 0, &url);
    assert_eq!(now_text, "XYZacde!f");
    let at = engine.cursor_position(&url.doc, &path, &cursor).unwrap() as usize;
    assert_eq!(&now_text[at..at + 1], "d");
    assert_eq!(
        engine.cursor_position(&url.doc, &path, &end).unwrap() as usize,
        now_text.len()
    );

    // Bad input: a typed error, never a wrong position.
    let code = |e: EngineError| e.code();
    assert_eq!(
        code(
            engine
                .cursor_position(&url.doc, &path, "nonsense")
                .unwrap_err()
        ),
        SynclineErrorCode::BadCursor
    );
    assert_eq!(
        code(
            engine
                .cursor_position(&url.doc, &path, "0000.garbage")
                .unwrap_err()
        ),
        SynclineErrorCode::BadCursor
    );
    assert_eq!(
        code(engine.cursor(&url.doc, &path, 99).unwrap_err()),
        SynclineErrorCode::BadCursor
    );
    let items = vec![syncline_core::ops::Key::Name("items".into())];
    assert_eq!(
        code(engine.cursor(&url.doc, &items, 0).unwrap_err()),
        SynclineErrorCode::BadOp,
        "not a text"
    );
    // A cursor of another document.
    let now = world.now;
    let other = world.replicas[0]
        .engine
        .create_doc(&json!({}), now)
        .unwrap();
    world.replicas[0]
        .engine
        .change(
            other.doc,
            &ops(json!([{"op": "put_text", "obj": [], "key": "t", "value": "abcdef"}])),
            None,
            now,
        )
        .unwrap();
    let foreign = world.replicas[0]
        .engine
        .cursor(&other.doc, &path, 3)
        .unwrap();
    let err = world.replicas[0]
        .engine
        .cursor_position(&url.doc, &path, &foreign)
        .unwrap_err();
    assert_eq!(err.code(), SynclineErrorCode::BadCursor);
}

#[test]
fn marks_sync_and_merge() {
    let (mut world, url) = shared_text("hello brave new world");
    let path = vec![syncline_core::ops::Key::Name("t".into())];
    edit(
        &mut world,
        0,
        &url,
        ops(
            json!([{"op": "mark", "obj": ["t"], "start": 0, "end": 5, "name": "bold", "value": true}]),
        ),
    );
    edit(
        &mut world,
        1,
        &url,
        ops(
            json!([{"op": "mark", "obj": ["t"], "start": 6, "end": 11, "name": "link", "value": "https://example.org", "expand": "none"}]),
        ),
    );
    world.settle();
    // Typed at the end of the bold word (expand "after" by default): bold too.
    edit(&mut world, 0, &url, splice(5, 0, "!"));
    // Typed at the end of the link (expand "none"): not a link.
    edit(&mut world, 1, &url, splice(12, 0, "?"));
    world.settle();
    let marks = |world: &World, i: usize| world.replicas[i].engine.marks(&url.doc, &path).unwrap();
    assert_eq!(
        marks(&world, 0),
        marks(&world, 1),
        "both replicas see the same marks"
    );
    let summary: Vec<(String, usize, usize)> = marks(&world, 0)
        .into_iter()
        .map(|m| (m.name, m.start, m.end))
        .collect();
    assert_eq!(
        summary,
        [("bold".to_owned(), 0, 6), ("link".to_owned(), 7, 12)],
        "text: {}",
        text(&world, 0, &url)
    );
    edit(
        &mut world,
        0,
        &url,
        ops(json!([{"op": "unmark", "obj": ["t"], "start": 0, "end": 6, "name": "bold"}])),
    );
    world.settle();
    assert_eq!(marks(&world, 1).len(), 1);
    // Bad input.
    let now = world.now;
    let err = world.replicas[0]
        .engine
        .change(url.doc, &ops(json!([{"op": "mark", "obj": ["t"], "start": 3, "end": 99, "name": "b", "value": 1}])), None, now)
        .unwrap_err();
    assert_eq!(err.code(), SynclineErrorCode::BadOp);
    assert!(
        serde_json::from_value::<Vec<Op>>(
            json!([{"op": "mark", "obj": ["t"], "start": 0, "end": 1, "name": "b", "value": [1]}])
        )
        .is_err()
    );
}
