//! Ops from the JavaScript draft's shape, applied to real documents.

use super::*;
use serde_json::json;

fn doc_with(initial: Json) -> AutoCommit {
    let mut doc = AutoCommit::new();
    put_root_object(&mut doc, &initial).unwrap();
    doc.commit();
    doc
}

fn value(doc: &AutoCommit) -> Json {
    serde_json::to_value(automerge::AutoSerde::from(doc)).unwrap()
}

fn ops(v: Json) -> Vec<Op> {
    serde_json::from_value(v).unwrap()
}

#[test]
fn ops_from_js_shape_apply_in_order() {
    let mut doc = doc_with(json!({"items": [], "title": "t"}));
    let batch = ops(json!([
        {"op": "insert", "obj": ["items"], "index": 0, "values": ["a", {"done": false}]},
        {"op": "put", "obj": ["items", 1], "key": "done", "value": true},
        {"op": "insert", "obj": ["items"], "index": 2, "values": [[1, 2.5, null]]},
        {"op": "delete", "obj": ["items"], "key": 0},
        {"op": "delete", "obj": [], "key": "title"},
        {"op": "put", "obj": [], "key": "n", "value": 3}
    ]));
    apply_ops(&mut doc, &batch).unwrap();
    assert_eq!(
        value(&doc),
        json!({"items": [{"done": true}, [1, 2.5, null]], "n": 3})
    );
}

#[test]
fn text_and_counters() {
    let mut doc = AutoCommit::new_with_encoding(automerge::TextEncoding::Utf16CodeUnit);
    put_root_object(&mut doc, &json!({"list": [0]})).unwrap();
    let batch = ops(json!([
        {"op": "put_text", "obj": [], "key": "note", "value": "héllo 👋"},
        {"op": "splice_text", "obj": ["note"], "index": 6, "delete": 2, "insert": "world"},
        {"op": "splice_text", "obj": ["note"], "index": 0, "delete": 1, "insert": "H"},
        {"op": "put_counter", "obj": [], "key": "likes", "value": 1},
        {"op": "increment", "obj": [], "key": "likes", "by": 2},
        {"op": "put_counter", "obj": ["list"], "key": 0, "value": 10},
        {"op": "increment", "obj": ["list"], "key": 0, "by": -3}
    ]));
    apply_ops(&mut doc, &batch).unwrap();
    // The emoji is two UTF-16 units: index 6 + 2 replaces exactly it.
    assert_eq!(
        value(&doc),
        json!({"note": "Héllo world", "likes": 3, "list": [7]})
    );
    doc.commit();
    // Past the end, inserting or deleting: the same typed error.
    for (index, delete) in [(20, 0), (12, 0), (11, 1), (0, 12), (u64::MAX, 0)] {
        let batch = ops(json!([
            {"op": "splice_text", "obj": ["note"], "index": index, "delete": delete, "insert": "x"}
        ]));
        let error = apply_ops(&mut doc, &batch).unwrap_err();
        assert!(
            matches!(error, OpError::TextOutOfRange { len: 11, .. }),
            "{index}+{delete}: {error:?}"
        );
        doc.rollback();
    }
    let edge = ops(
        json!([{"op": "splice_text", "obj": ["note"], "index": 11, "delete": 0, "insert": "!"}]),
    );
    apply_ops(&mut doc, &edge).unwrap(); // at the very end: fine
    doc.rollback();
    let bad = [
        json!([{"op": "splice_text", "obj": ["note"], "index": 20, "delete": 0, "insert": "x"}]),
        json!([{"op": "splice_text", "obj": ["list"], "index": 0, "insert": "x"}]),
        json!([{"op": "increment", "obj": [], "key": "note", "by": 1}]),
    ];
    for batch in bad {
        assert!(apply_ops(&mut doc, &ops(batch)).is_err());
        doc.rollback();
    }
}

#[test]
fn a_splice_is_applied_exactly_when_it_fits_and_never_panics() {
    for len in [0usize, 1, 11, 300] {
        let mut doc = AutoCommit::new_with_encoding(automerge::TextEncoding::Utf16CodeUnit);
        put_root_object(&mut doc, &json!({})).unwrap();
        let text = "a".repeat(len);
        apply_ops(
            &mut doc,
            &ops(json!([{"op": "put_text", "obj": [], "key": "t", "value": text}])),
        )
        .unwrap();
        doc.commit();
        let far = [len + 100, 1 << 31, u32::MAX as usize, usize::MAX];
        let indexes = (0..len + 3).chain(far);
        for index in indexes {
            for delete in [0, 1, 2, len + 1, usize::MAX] {
                for insert in ["", "xy"] {
                    let batch = ops(json!([{"op": "splice_text", "obj": ["t"],
                        "index": index as u64, "delete": delete as u64, "insert": insert}]));
                    let fits = index.checked_add(delete).is_some_and(|end| end <= len);
                    match apply_ops(&mut doc, &batch) {
                        Ok(()) => assert!(fits, "{len}: {index}+{delete} applied"),
                        Err(OpError::TextOutOfRange { len: l, .. }) => {
                            assert!(!fits, "{len}: {index}+{delete} refused");
                            assert_eq!(l, len);
                        }
                        Err(e) => panic!("{len}: {index}+{delete}: {e:?}"),
                    }
                    doc.rollback();
                }
            }
        }
    }
}

#[test]
fn bad_ops_are_typed_errors() {
    let mut doc = doc_with(json!({"items": ["a"], "m": {}}));
    let cases = [
        (
            json!([{"op": "put", "obj": ["nope"], "key": "x", "value": 1}]),
            "NoSuchContainer",
        ),
        (
            json!([{"op": "put", "obj": ["items"], "key": 5, "value": 1}]),
            "OutOfRange",
        ),
        (
            json!([{"op": "insert", "obj": ["items"], "index": 9, "values": [1]}]),
            "OutOfRange",
        ),
        (
            json!([{"op": "delete", "obj": ["items"], "key": 0, "count": 2}]),
            "OutOfRange",
        ),
        (
            json!([{"op": "put", "obj": ["m"], "key": 0, "value": 1}]),
            "KeyKind",
        ),
        (
            json!([{"op": "insert", "obj": ["m"], "index": 0, "values": [1]}]),
            "KeyKind",
        ),
    ];
    for (batch, expected) in cases {
        let err = apply_ops(&mut doc, &ops(batch)).unwrap_err();
        assert!(format!("{err:?}").starts_with(expected), "{err:?}");
        doc.rollback();
    }
    assert_eq!(value(&doc), json!({"items": ["a"], "m": {}}));
}

#[test]
fn keys_decode_from_strings_and_whole_non_negative_numbers_only() {
    let key = |text: &str| serde_json::from_str::<Key>(text);
    assert_eq!(key(r#""title""#).unwrap(), Key::Name("title".into()));
    assert_eq!(key("3").unwrap(), Key::Index(3));
    assert_eq!(key("3.0").unwrap(), Key::Index(3));
    for bad in ["-1", "2.5", "null", "true", "[]"] {
        let error = key(bad).unwrap_err().to_string();
        assert!(
            error.contains("map key (string) or a list index"),
            "{bad}: {error}"
        );
    }
    let batch: Vec<Op> =
        serde_json::from_str(r#"[{"op":"put","obj":["items",0],"key":"done","value":true}]"#)
            .unwrap();
    assert_eq!(
        batch[0],
        Op::Put {
            obj: vec![Key::Name("items".into()), Key::Index(0)],
            key: Key::Name("done".into()),
            value: Json::Bool(true),
        }
    );
}

#[test]
fn ops_decode_with_fields_in_any_order_and_say_what_is_wrong() {
    let decode = |text: &str| serde_json::from_str::<Vec<Op>>(text);
    let batch = decode(
        r#"[{"value":"hi","key":"t","extra":[1,{"x":2}],"obj":[],"op":"put_text"},
            {"by":-2,"obj":["n"],"op":"increment","key":0},
            {"obj":["l"],"op":"delete","key":1,"count":null},
            {"op":"splice_text","obj":["t"],"index":1}]"#,
    )
    .unwrap();
    assert_eq!(
        batch,
        [
            Op::PutText {
                obj: vec![],
                key: Key::Name("t".into()),
                value: "hi".into()
            },
            Op::Increment {
                obj: vec![Key::Name("n".into())],
                key: Key::Index(0),
                by: -2
            },
            Op::Delete {
                obj: vec![Key::Name("l".into())],
                key: Key::Index(1),
                count: None
            },
            Op::SpliceText {
                obj: vec![Key::Name("t".into())],
                index: 1,
                delete: 0,
                insert: String::new()
            },
        ]
    );
    for (bad, says) in [
        (r#"[{"op":"move","obj":[]}]"#, "unknown variant `move`"),
        (r#"[{"obj":[],"key":"k","value":1}]"#, "missing field `op`"),
        (
            r#"[{"op":"put","obj":[],"key":"k"}]"#,
            "missing field `value`",
        ),
        (
            r#"[{"op":"put","obj":[],"obj":[],"key":"k","value":1}]"#,
            "duplicate field `obj`",
        ),
        (
            r#"[{"op":"put_text","obj":[],"key":"k","value":1}]"#,
            "must be a string",
        ),
        (
            r#"[{"op":"put_counter","obj":[],"key":"k","value":1.5}]"#,
            "whole number",
        ),
        (
            r#"[{"op":"insert","obj":[],"index":-1,"values":[]}]"#,
            "invalid value",
        ),
        (r#"["put"]"#, "an op"),
    ] {
        let error = decode(bad).unwrap_err().to_string();
        assert!(error.contains(says), "{bad}: {error}");
    }
}
