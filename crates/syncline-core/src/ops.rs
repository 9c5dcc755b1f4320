//! Local edits as data: the batch of [`Op`]s a UI makes in one `change`,
//! applied to an Automerge document as one change.
//!
//! Ops address containers by a [`Path`] of map keys and list indices from the
//! document root, as the JavaScript draft sees them. They are applied in
//! order, so an index in a later op already sees the effect of earlier ones.
//!
//! Plain JSON strings are stored as atomic values (last writer wins).
//! Collaborative text is a separate kind of value, made with
//! [`Op::PutText`] and edited with [`Op::SpliceText`]; its indices count
//! UTF-16 code units, as JavaScript strings do. Counters
//! ([`Op::PutCounter`], [`Op::Increment`]) merge concurrent increments.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ReadDoc, ScalarValue, Value};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// One step of a path: a map key or a list index. In JSON, a string or a
/// non-negative integer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Key {
    Index(u64),
    Name(String),
}

/// By hand rather than `#[serde(untagged)]`: untagged tries `Index` first
/// and builds an error for every string key before trying `Name`, which
/// was a quarter of the cost of decoding a change's ops.
impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map key (string) or a list index (non-negative integer)")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Key, E> {
                Ok(Key::Index(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Key, E> {
                u64::try_from(v)
                    .map(Key::Index)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Key, E> {
                // JavaScript numbers may arrive as floats: accept whole ones.
                if v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 {
                    Ok(Key::Index(v as u64))
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
                }
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key::Name(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Key, E> {
                Ok(Key::Name(v))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

/// From the document root to a container (map or list).
pub type Path = Vec<Key>;

/// One edit of a local change. In JSON, an object whose `op` names the
/// variant in snake case (`{"op": "put", "obj": [...], "key": ..., "value": ...}`),
/// its other fields in any order; unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Sets a map key, or replaces a list element.
    Put { obj: Path, key: Key, value: Json },
    /// Deletes a map key, or `count` list elements from index `key`.
    Delete {
        obj: Path,
        key: Key,
        #[serde(default)]
        count: Option<u64>,
    },
    /// Inserts `values` into a list at `index`.
    Insert {
        obj: Path,
        index: u64,
        values: Vec<Json>,
    },
    /// Sets a map key or list element to a new collaborative text.
    PutText { obj: Path, key: Key, value: String },
    /// Edits the text at `obj`: deletes `delete` units at `index`, then
    /// inserts `insert` there.
    SpliceText {
        obj: Path,
        index: u64,
        #[serde(default)]
        delete: u64,
        #[serde(default)]
        insert: String,
    },
    /// Sets a map key or list element to a new counter.
    PutCounter { obj: Path, key: Key, value: i64 },
    /// Adds `by` (may be negative) to the counter at `obj`/`key`.
    Increment { obj: Path, key: Key, by: i64 },
}

/// The variants' names in JSON, for error messages.
const OP_NAMES: &[&str] = &[
    "put",
    "delete",
    "insert",
    "put_text",
    "splice_text",
    "put_counter",
    "increment",
];

/// The fields an op object may have (any other is skipped).
enum Field {
    Op,
    Obj,
    Key,
    Value,
    Count,
    Index,
    Values,
    Delete,
    Insert,
    By,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Field, D::Error> {
        struct FieldVisitor;
        impl serde::de::Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an op field name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "op" => Field::Op,
                    "obj" => Field::Obj,
                    "key" => Field::Key,
                    "value" => Field::Value,
                    "count" => Field::Count,
                    "index" => Field::Index,
                    "values" => Field::Values,
                    "delete" => Field::Delete,
                    "insert" => Field::Insert,
                    "by" => Field::By,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

/// By hand rather than derived: the derived code for an internally tagged
/// enum buffers every op into serde's generic `Content` before decoding it
/// again, which was the largest single function of the browser module
/// (21 KB). Here each field is decoded once, into its slot; `value` is read
/// as JSON and checked against the op once the whole object is read, so the
/// fields may come in any order.
impl<'de> Deserialize<'de> for Op {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Op, D::Error> {
        struct OpVisitor;
        impl<'de> serde::de::Visitor<'de> for OpVisitor {
            type Value = Op;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an op: an object with an \"op\" field")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Op, A::Error> {
                use serde::de::Error;
                fn once<'de, T: Deserialize<'de>, A: serde::de::MapAccess<'de>>(
                    slot: &mut Option<T>,
                    name: &'static str,
                    map: &mut A,
                ) -> Result<(), A::Error> {
                    if slot.is_some() {
                        return Err(A::Error::duplicate_field(name));
                    }
                    *slot = Some(map.next_value()?);
                    Ok(())
                }
                let mut op: Option<String> = None;
                let mut obj: Option<Path> = None;
                let mut key: Option<Key> = None;
                let mut value: Option<Json> = None;
                let mut count: Option<Option<u64>> = None;
                let mut index: Option<u64> = None;
                let mut values: Option<Vec<Json>> = None;
                let mut delete: Option<u64> = None;
                let mut insert: Option<String> = None;
                let mut by: Option<i64> = None;
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Op => once(&mut op, "op", &mut map)?,
                        Field::Obj => once(&mut obj, "obj", &mut map)?,
                        Field::Key => once(&mut key, "key", &mut map)?,
                        Field::Value => once(&mut value, "value", &mut map)?,
                        Field::Count => once(&mut count, "count", &mut map)?,
                        Field::Index => once(&mut index, "index", &mut map)?,
                        Field::Values => once(&mut values, "values", &mut map)?,
                        Field::Delete => once(&mut delete, "delete", &mut map)?,
                        Field::Insert => once(&mut insert, "insert", &mut map)?,
                        Field::By => once(&mut by, "by", &mut map)?,
                        Field::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                fn need<T, E: Error>(slot: Option<T>, name: &'static str) -> Result<T, E> {
                    slot.ok_or_else(|| E::missing_field(name))
                }
                let op = need(op, "op")?;
                let obj = need(obj, "obj")?;
                Ok(match op.as_str() {
                    "put" => Op::Put {
                        obj,
                        key: need(key, "key")?,
                        value: need(value, "value")?,
                    },
                    "delete" => Op::Delete {
                        obj,
                        key: need(key, "key")?,
                        count: count.flatten(),
                    },
                    "insert" => Op::Insert {
                        obj,
                        index: need(index, "index")?,
                        values: need(values, "values")?,
                    },
                    "put_text" => match need(value, "value")? {
                        Json::String(value) => Op::PutText {
                            obj,
                            key: need(key, "key")?,
                            value,
                        },
                        _ => return Err(A::Error::custom("put_text: `value` must be a string")),
                    },
                    "splice_text" => Op::SpliceText {
                        obj,
                        index: need(index, "index")?,
                        delete: delete.unwrap_or(0),
                        insert: insert.unwrap_or_default(),
                    },
                    "put_counter" | "increment" => {
                        let key = need(key, "key")?;
                        if op == "increment" {
                            Op::Increment {
                                obj,
                                key,
                                by: need(by, "by")?,
                            }
                        } else {
                            let value = need(value, "value")?.as_i64().ok_or_else(|| {
                                A::Error::custom("put_counter: `value` must be a whole number")
                            })?;
                            Op::PutCounter { obj, key, value }
                        }
                    }
                    other => return Err(A::Error::unknown_variant(other, OP_NAMES)),
                })
            }
        }
        deserializer.deserialize_map(OpVisitor)
    }
}

/// Why an op could not be applied. The whole change is rolled back.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OpError {
    #[error("path {path:?} does not lead to a map or list in this document")]
    NoSuchContainer { path: String },
    #[error("key {key:?} does not fit a {container} (maps take names, lists take indices)")]
    KeyKind {
        key: String,
        container: &'static str,
    },
    #[error("index {index} is out of range for a list of length {len}")]
    OutOfRange { index: u64, len: usize },
    #[error("the document root is a map: its value must be a JSON object")]
    RootNotObject,
    #[error("path {path:?} does not lead to a text")]
    NotText { path: String },
    #[error("text edit at {index}+{delete} is out of range for a text of length {len}")]
    TextOutOfRange { index: u64, delete: u64, len: usize },
    #[error("{what} is not a counter")]
    NotCounter { what: String },
    #[error("automerge refused the edit: {0}")]
    Automerge(String),
}

impl From<automerge::AutomergeError> for OpError {
    fn from(e: automerge::AutomergeError) -> Self {
        OpError::Automerge(e.to_string())
    }
}

/// Applies `ops` inside the document's open transaction.
pub fn apply_ops(doc: &mut AutoCommit, ops: &[Op]) -> Result<(), OpError> {
    for op in ops {
        match op {
            Op::Put { obj, key, value } => {
                let (id, kind) = resolve(doc, obj)?;
                let prop = prop_in(doc, &id, kind, key)?;
                put_json(doc, &id, prop, value)?;
            }
            Op::Delete { obj, key, count } => {
                let (id, kind) = resolve(doc, obj)?;
                match (kind, key) {
                    (ObjType::Map | ObjType::Table, Key::Name(name)) => {
                        doc.delete(&id, name.as_str())?
                    }
                    (ObjType::List, Key::Index(i)) => {
                        let len = doc.length(&id);
                        let count = count.unwrap_or(1);
                        let start = index_in(*i, len, true)?;
                        if start as u64 + count > len as u64 {
                            return Err(OpError::OutOfRange {
                                index: start as u64 + count,
                                len,
                            });
                        }
                        for _ in 0..count {
                            doc.delete(&id, start)?;
                        }
                    }
                    (kind, key) => return Err(key_kind(key, kind)),
                }
            }
            Op::PutText { obj, key, value } => {
                let (id, kind) = resolve(doc, obj)?;
                let prop = prop_in(doc, &id, kind, key)?;
                let text = match prop {
                    PropRef::Key(k) => doc.put_object(&id, k, ObjType::Text)?,
                    PropRef::Index(i) => doc.put_object(&id, i, ObjType::Text)?,
                };
                doc.splice_text(&text, 0, 0, value)?;
            }
            Op::SpliceText {
                obj,
                index,
                delete,
                insert,
            } => {
                let (id, kind) = resolve(doc, obj)?;
                splice(doc, obj, &id, kind, (*index, *delete, insert))?;
            }
            Op::PutCounter { obj, key, value } => {
                let (id, kind) = resolve(doc, obj)?;
                let counter = ScalarValue::counter(*value);
                match prop_in(doc, &id, kind, key)? {
                    PropRef::Key(k) => doc.put(&id, k, counter)?,
                    PropRef::Index(i) => doc.put(&id, i, counter)?,
                }
            }
            Op::Increment { obj, key, by } => {
                let (id, kind) = resolve(doc, obj)?;
                let prop = prop_in(doc, &id, kind, key)?;
                let current = match prop {
                    PropRef::Key(k) => doc.get(&id, k)?,
                    PropRef::Index(i) => doc.get(&id, i)?,
                };
                if !matches!(current, Some((Value::Scalar(ref v), _)) if matches!(v.as_ref(), ScalarValue::Counter(_)))
                {
                    return Err(OpError::NotCounter {
                        what: format!("{obj:?}/{key:?}"),
                    });
                }
                match prop {
                    PropRef::Key(k) => doc.increment(&id, k, *by)?,
                    PropRef::Index(i) => doc.increment(&id, i, *by)?,
                }
            }
            Op::Insert { obj, index, values } => {
                let (id, kind) = resolve(doc, obj)?;
                if kind != ObjType::List {
                    return Err(key_kind(&Key::Index(*index), kind));
                }
                let len = doc.length(&id);
                let start = index_in(*index, len, true)?;
                for (offset, value) in values.iter().enumerate() {
                    insert_json(doc, &id, start + offset, value)?;
                }
            }
        }
    }
    Ok(())
}

/// Writes the fields of a JSON object into the document root.
pub fn put_root_object(doc: &mut AutoCommit, value: &Json) -> Result<(), OpError> {
    let Json::Object(fields) = value else {
        return Err(OpError::RootNotObject);
    };
    for (key, value) in fields {
        put_json(doc, &automerge::ROOT, PropRef::Key(key), value)?;
    }
    Ok(())
}

/// Where `key` points inside the container `id` of kind `kind`: a map key,
/// or an existing list index.
fn prop_in<'k>(
    doc: &AutoCommit,
    id: &ObjId,
    kind: ObjType,
    key: &'k Key,
) -> Result<PropRef<'k>, OpError> {
    match (kind, key) {
        (ObjType::Map | ObjType::Table, Key::Name(name)) => Ok(PropRef::Key(name)),
        (ObjType::List, Key::Index(i)) => Ok(PropRef::Index(index_in(*i, doc.length(id), false)?)),
        (kind, key) => Err(key_kind(key, kind)),
    }
}

fn key_kind(key: &Key, container: ObjType) -> OpError {
    OpError::KeyKind {
        key: match key {
            Key::Index(i) => i.to_string(),
            Key::Name(n) => n.clone(),
        },
        container: match container {
            ObjType::List => "list",
            ObjType::Text => "text",
            ObjType::Map | ObjType::Table => "map",
        },
    }
}

/// `index` as a list position; `at_end_ok` allows `index == len` (append).
fn index_in(index: u64, len: usize, at_end_ok: bool) -> Result<usize, OpError> {
    let fits = if at_end_ok {
        index <= len as u64
    } else {
        index < len as u64
    };
    if fits {
        Ok(index as usize)
    } else {
        Err(OpError::OutOfRange { index, len })
    }
}

/// Where a path led in one state of a document: the object and its type.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) path: Path,
    obj: ObjId,
    kind: ObjType,
}

/// Like [`apply_ops`], sparing the path lookups of a change that only
/// splices text (a typist's): for such a change, `known` (where a path led
/// in the document as it is now, with no op applied yet — the caller
/// checks the heads) is used for that path, and the result says where the
/// last splice's path led. Splices never move a container, so every path
/// leads where it led before the change.
pub(crate) fn apply_ops_resolving(
    doc: &mut AutoCommit,
    ops: &[Op],
    known: Option<Resolved>,
) -> Result<Option<Resolved>, OpError> {
    if !ops.iter().all(|op| matches!(op, Op::SpliceText { .. })) {
        return apply_ops(doc, ops).map(|()| None);
    }
    let mut last = known;
    for op in ops {
        let Op::SpliceText {
            obj,
            index,
            delete,
            insert,
        } = op
        else {
            unreachable!("checked above: only splices");
        };
        let resolved = match last.take() {
            Some(known) if known.path == *obj => known,
            _ => {
                let (id, kind) = resolve(doc, obj)?;
                Resolved {
                    path: obj.clone(),
                    obj: id,
                    kind,
                }
            }
        };
        splice(
            doc,
            obj,
            &resolved.obj,
            resolved.kind,
            (*index, *delete, insert),
        )?;
        last = Some(resolved);
    }
    Ok(last)
}

/// Splices `(index, delete, insert)` into the text `id` (reached by `path`).
fn splice(
    doc: &mut AutoCommit,
    path: &[Key],
    id: &ObjId,
    kind: ObjType,
    (index, delete, insert): (u64, u64, &str),
) -> Result<(), OpError> {
    if kind != ObjType::Text {
        return Err(OpError::NotText {
            path: format!("{path:?}"),
        });
    }
    // The length is needed: Automerge appends an insertion past the end of
    // an empty text, deletes what there is past the end, and overflows on
    // a huge index (a panic, or in the browser a crash).
    let len = doc.length(id);
    if index.saturating_add(delete) > len as u64 {
        return Err(OpError::TextOutOfRange { index, delete, len });
    }
    doc.splice_text(id, index as usize, delete as isize, insert)?;
    Ok(())
}

fn resolve(doc: &AutoCommit, path: &[Key]) -> Result<(ObjId, ObjType), OpError> {
    let mut id = automerge::ROOT;
    let mut kind = ObjType::Map;
    let missing = || OpError::NoSuchContainer {
        path: format!("{path:?}"),
    };
    for step in path {
        let found = match (kind, step) {
            (ObjType::Map | ObjType::Table, Key::Name(name)) => doc.get(&id, name.as_str()),
            (ObjType::List, Key::Index(i)) if *i < doc.length(&id) as u64 => {
                doc.get(&id, *i as usize)
            }
            _ => return Err(missing()),
        }?;
        match found {
            Some((Value::Object(child_kind), child)) => {
                id = child;
                kind = child_kind;
            }
            _ => return Err(missing()),
        }
    }
    Ok((id, kind))
}

enum PropRef<'a> {
    Key(&'a str),
    Index(usize),
}

fn put_json(doc: &mut AutoCommit, obj: &ObjId, prop: PropRef, value: &Json) -> Result<(), OpError> {
    match container_type(value) {
        Some(kind) => {
            let child = match prop {
                PropRef::Key(k) => doc.put_object(obj, k, kind)?,
                PropRef::Index(i) => doc.put_object(obj, i, kind)?,
            };
            fill(doc, &child, value)
        }
        None => {
            let scalar = scalar(value);
            match prop {
                PropRef::Key(k) => doc.put(obj, k, scalar)?,
                PropRef::Index(i) => doc.put(obj, i, scalar)?,
            }
            Ok(())
        }
    }
}

fn insert_json(
    doc: &mut AutoCommit,
    list: &ObjId,
    index: usize,
    value: &Json,
) -> Result<(), OpError> {
    match container_type(value) {
        Some(kind) => {
            let child = doc.insert_object(list, index, kind)?;
            fill(doc, &child, value)
        }
        None => Ok(doc.insert(list, index, scalar(value))?),
    }
}

fn fill(doc: &mut AutoCommit, obj: &ObjId, value: &Json) -> Result<(), OpError> {
    match value {
        Json::Object(fields) => {
            for (k, v) in fields {
                put_json(doc, obj, PropRef::Key(k), v)?;
            }
        }
        Json::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                insert_json(doc, obj, i, v)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn container_type(value: &Json) -> Option<ObjType> {
    match value {
        Json::Object(_) => Some(ObjType::Map),
        Json::Array(_) => Some(ObjType::List),
        _ => None,
    }
}

fn scalar(value: &Json) -> ScalarValue {
    match value {
        Json::Null => ScalarValue::Null,
        Json::Bool(b) => ScalarValue::Boolean(*b),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => ScalarValue::Int(i),
            (None, Some(f)) => ScalarValue::F64(f),
            (None, None) => ScalarValue::Null,
        },
        Json::String(s) => ScalarValue::Str(s.as_str().into()),
        Json::Array(_) | Json::Object(_) => ScalarValue::Null,
    }
}

#[cfg(test)]
mod tests {
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
}
