//! Reverting steps against documents that moved on: each case makes a
//! step on replica A, lets replica B edit concurrently or after, merges,
//! and checks that the revert removes exactly A's step.

use super::*;
use automerge::{ActorId, ROOT};

fn doc(actor: u8) -> AutoCommit {
    AutoCommit::new_with_encoding(automerge::TextEncoding::Utf16CodeUnit)
        .with_actor(ActorId::from([actor; 16]))
}

fn text_obj(doc: &AutoCommit) -> ObjId {
    match doc.get(ROOT, "t").unwrap() {
        Some((Value::Object(ObjType::Text), id)) => id,
        other => panic!("no text: {other:?}"),
    }
}

fn text(doc: &AutoCommit) -> String {
    doc.text(text_obj(doc)).unwrap()
}

/// A document `{t: initial}` and a fork of it by another actor.
fn pair(initial: &str) -> (AutoCommit, AutoCommit) {
    let mut a = doc(1);
    let t = a.put_object(ROOT, "t", ObjType::Text).unwrap();
    a.splice_text(&t, 0, 0, initial).unwrap();
    a.commit();
    let b = a.fork().with_actor(ActorId::from([2u8; 16]));
    (a, b)
}

/// Runs `edit` as one change on `doc`; returns the step's heads.
fn step(
    doc: &mut AutoCommit,
    edit: impl FnOnce(&mut AutoCommit),
) -> (Vec<ChangeHash>, Vec<ChangeHash>) {
    let before = doc.get_heads();
    edit(doc);
    doc.commit();
    (before, doc.get_heads())
}

fn undo(doc: &mut AutoCommit, (before, after): &(Vec<ChangeHash>, Vec<ChangeHash>)) -> usize {
    let n = revert(doc, before, after, &mut Revived::default()).unwrap();
    doc.commit();
    n
}

#[test]
fn an_insert_is_removed_and_concurrent_text_stays() {
    let (mut a, mut b) = pair("hello world");
    let t = text_obj(&a);
    let s = step(&mut a, |d| d.splice_text(&t, 5, 0, ", dear").unwrap());
    // B, concurrently, types at both ends and inside A's future insert point.
    b.splice_text(&t, 11, 0, "!").unwrap();
    b.splice_text(&t, 0, 0, ">> ").unwrap();
    b.commit();
    a.merge(&mut b).unwrap();
    assert_eq!(text(&a), ">> hello, dear world!");
    assert_eq!(undo(&mut a, &s), 1);
    assert_eq!(text(&a), ">> hello world!");
}

#[test]
fn a_deletion_comes_back_before_what_followed_it() {
    let (mut a, mut b) = pair("abcdef");
    let t = text_obj(&a);
    let s = step(&mut a, |d| d.splice_text(&t, 1, 3, "").unwrap()); // "aef"
    b.splice_text(&t, 0, 0, "X").unwrap();
    b.splice_text(&t, 7, 0, "Y").unwrap();
    b.commit();
    a.merge(&mut b).unwrap();
    assert_eq!(text(&a), "XaefY");
    undo(&mut a, &s);
    assert_eq!(text(&a), "XabcdefY");
}

#[test]
fn scattered_deletes_and_inserts_in_one_step_revert_in_order() {
    let (mut a, _) = pair("abcd");
    let t = text_obj(&a);
    let before = a.get_heads();
    // Delete "b", insert "X" where it was, delete "c": "aXd".
    a.splice_text(&t, 1, 1, "X").unwrap();
    a.commit();
    a.splice_text(&t, 2, 1, "").unwrap();
    a.commit();
    assert_eq!(text(&a), "aXd");
    let s = (before, a.get_heads());
    undo(&mut a, &s);
    assert_eq!(text(&a), "abcd");
}

#[test]
fn text_another_replica_deleted_is_not_deleted_twice() {
    let (mut a, mut b) = pair("0123456789");
    let t = text_obj(&a);
    let s = step(&mut a, |d| d.splice_text(&t, 5, 0, "abc").unwrap());
    let mut b2 = a.fork().with_actor(ActorId::from([3u8; 16]));
    // After A's insert, B deletes "4ab" (part of A's insert and one of its own).
    b2.splice_text(&t, 4, 3, "").unwrap();
    b2.commit();
    a.merge(&mut b2).unwrap();
    b.splice_text(&t, 0, 1, "").unwrap();
    b.commit();
    a.merge(&mut b).unwrap();
    assert_eq!(text(&a), "123c56789");
    undo(&mut a, &s);
    assert_eq!(text(&a), "12356789");
}

#[test]
fn surrogate_pairs_are_removed_whole() {
    let (mut a, _) = pair("ab");
    let t = text_obj(&a);
    let s = step(&mut a, |d| d.splice_text(&t, 1, 0, "😀x😀").unwrap());
    assert_eq!(text(&a), "a😀x😀b");
    undo(&mut a, &s);
    assert_eq!(text(&a), "ab");
    let s = step(&mut a, |d| d.splice_text(&t, 0, 2, "").unwrap());
    undo(&mut a, &s);
    assert_eq!(text(&a), "ab");
}

#[test]
fn a_map_key_goes_back_unless_written_since() {
    let mut a = doc(1);
    a.put(ROOT, "x", 1).unwrap();
    a.put(ROOT, "y", "keep").unwrap();
    a.commit();
    let mut b = a.fork().with_actor(ActorId::from([2u8; 16]));
    let s = step(&mut a, |d| {
        d.put(ROOT, "x", 2).unwrap();
        d.put(ROOT, "y", "mine").unwrap();
        d.put(ROOT, "new", true).unwrap();
    });
    // Later than A's step, B overwrites y.
    b.merge(&mut a).unwrap();
    b.put(ROOT, "y", "theirs").unwrap();
    b.commit();
    a.merge(&mut b).unwrap();
    undo(&mut a, &s);
    assert_eq!(a.get(ROOT, "x").unwrap().unwrap().0.as_i64(), Some(1));
    assert_eq!(
        a.get(ROOT, "y").unwrap().unwrap().0.into_string().unwrap(),
        "theirs"
    );
    assert!(a.get(ROOT, "new").unwrap().is_none());
}

#[test]
fn a_deleted_object_comes_back_in_depth() {
    let mut a = doc(1);
    let todo = a.put_object(ROOT, "todo", ObjType::Map).unwrap();
    let items = a.put_object(&todo, "items", ObjType::List).unwrap();
    a.insert(&items, 0, "milk").unwrap();
    let note = a.insert_object(&items, 1, ObjType::Text).unwrap();
    a.splice_text(&note, 0, 0, "eggs").unwrap();
    a.put(&todo, "n", ScalarValue::counter(3)).unwrap();
    a.commit();
    let expected = serde_json::to_value(automerge::AutoSerde::from(&a)).unwrap();
    let s = step(&mut a, |d| d.delete(ROOT, "todo").unwrap());
    assert!(a.get(ROOT, "todo").unwrap().is_none());
    undo(&mut a, &s);
    assert_eq!(
        serde_json::to_value(automerge::AutoSerde::from(&a)).unwrap(),
        expected
    );
}

#[test]
fn an_object_the_step_made_is_removed_with_everything_inside() {
    let mut a = doc(1);
    a.put(ROOT, "k", 0).unwrap();
    a.commit();
    let s = step(&mut a, |d| {
        let m = d.put_object(ROOT, "m", ObjType::Map).unwrap();
        let l = d.put_object(&m, "l", ObjType::List).unwrap();
        d.insert(&l, 0, 1).unwrap();
    });
    assert_eq!(undo(&mut a, &s), 1);
    assert!(a.get(ROOT, "m").unwrap().is_none());
}

#[test]
fn list_inserts_deletes_replacements_and_counters() {
    let mut a = doc(1);
    let l = a.put_object(ROOT, "l", ObjType::List).unwrap();
    for (i, v) in ["a", "b", "c"].into_iter().enumerate() {
        a.insert(&l, i, v).unwrap();
    }
    a.put(ROOT, "n", ScalarValue::counter(10)).unwrap();
    a.commit();
    let mut b = a.fork().with_actor(ActorId::from([2u8; 16]));
    let s = step(&mut a, |d| {
        d.insert(&l, 0, "new").unwrap(); // new a b c
        d.delete(&l, 2).unwrap(); // new a c
        d.put(&l, 2, "C").unwrap(); // new a C
        d.increment(ROOT, "n", 5).unwrap();
    });
    b.insert(&l, 3, "z").unwrap();
    b.increment(ROOT, "n", 100).unwrap();
    b.commit();
    a.merge(&mut b).unwrap();
    undo(&mut a, &s);
    let list: Vec<String> = (0..a.length(&l))
        .map(|i| a.get(&l, i).unwrap().unwrap().0.into_string().unwrap())
        .collect();
    assert_eq!(list, ["a", "b", "c", "z"]);
    match a.get(ROOT, "n").unwrap().unwrap().0 {
        Value::Scalar(s) => assert_eq!(*s, ScalarValue::counter(110)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_undo_reverted_is_a_redo() {
    let (mut a, _) = pair("one two");
    let t = text_obj(&a);
    let s = step(&mut a, |d| d.splice_text(&t, 3, 4, " three").unwrap());
    let u = (a.get_heads(), {
        revert(&mut a, &s.0, &s.1, &mut Revived::default()).unwrap();
        a.commit();
        a.get_heads()
    });
    assert_eq!(text(&a), "one two");
    undo(&mut a, &u);
    assert_eq!(text(&a), "one three");
}

#[test]
fn a_step_already_overwritten_reverts_nothing() {
    let mut a = doc(1);
    a.put(ROOT, "x", 1).unwrap();
    a.commit();
    let s = step(&mut a, |d| d.put(ROOT, "x", 2).unwrap());
    a.put(ROOT, "x", 3).unwrap();
    a.commit();
    assert_eq!(
        revert(&mut a, &s.0, &s.1, &mut Revived::default()).unwrap(),
        1
    );
    assert_eq!(a.pending_ops(), 0, "the edit found its key written since");
}

#[test]
fn the_stack_groups_within_the_window_and_only_unbroken_chains() {
    let h = |n: u8| vec![ChangeHash([n; 32])];
    let mut stack = UndoStack::default();
    stack.record(h(0), h(1), 1_000, 500);
    stack.record(h(1), h(2), 1_400, 500); // within 500 ms, same chain: grows
    assert_eq!(stack.undo.len(), 1);
    stack.record(h(2), h(3), 2_000, 500); // 600 ms later: new step
    assert_eq!(stack.undo.len(), 2);
    stack.record(h(9), h(4), 2_100, 500); // something else came between
    assert_eq!(stack.undo.len(), 3);
    let last = stack.pop_undo().unwrap();
    assert_eq!((last.before(), last.after()), (&h(9)[..], &h(4)[..]));
    stack.undone(h(4), h(5));
    assert!(stack.can_redo());
    stack.record(h(5), h(6), 2_200, 500); // a new change clears redo
    assert!(!stack.can_redo());
    stack.interrupt();
    stack.record(h(6), h(7), 2_300, 500);
    assert_eq!(stack.undo.len(), 4, "interrupted: no grouping");
    assert_eq!(
        stack.undo[0],
        Step {
            before: h(0),
            after: h(2)
        }
    );
}

proptest::proptest! {
    /// Any sequence of splices, one step each: undoing every step gives
    /// the initial text back, redoing every undo the final text.
    #[test]
    fn undo_all_then_redo_all_round_trips(
        edits in proptest::collection::vec((0usize..40, 0usize..4, "[a-c😀]{0,3}"), 1..25)
    ) {
        let (mut a, _) = pair("the quick brown fox");
        let t = text_obj(&a);
        let initial = text(&a);
        let mut steps = Vec::new();
        for (at, delete, insert) in edits {
            let len = a.length(&t);
            // Whole characters only: never split a surrogate pair.
            let units: Vec<u16> = text(&a).encode_utf16().collect();
            let mut at = at.min(len);
            while at > 0 && at < units.len() && (0xDC00..0xE000).contains(&units[at]) {
                at -= 1;
            }
            let mut end = (at + delete).min(len);
            while end < units.len() && (0xDC00..0xE000).contains(&units[end]) {
                end += 1;
            }
            steps.push(step(&mut a, |d| d.splice_text(&t, at, (end - at) as isize, &insert).unwrap()));
        }
        let last = text(&a);
        let mut undos = Vec::new();
        let mut revived = Revived::default();
        for s in steps.iter().rev() {
            let before = a.get_heads();
            revert(&mut a, &s.0, &s.1, &mut revived).unwrap();
            a.commit();
            undos.push((before, a.get_heads()));
        }
        proptest::prop_assert_eq!(text(&a), initial);
        for u in undos.iter().rev() {
            revert(&mut a, &u.0, &u.1, &mut revived).unwrap();
            a.commit();
        }
        proptest::prop_assert_eq!(text(&a), last);
    }
}
