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
    /// Marks `start..end` of the text at `obj` with `name` = `value` (a
    /// string, number, boolean or null); `expand` says whether text typed
    /// at either end gets the mark too.
    Mark {
        obj: Path,
        start: u64,
        end: u64,
        name: String,
        value: Json,
        expand: Expand,
    },
    /// Removes the mark `name` from `start..end` of the text at `obj`.
    Unmark {
        obj: Path,
        start: u64,
        end: u64,
        name: String,
        expand: Expand,
    },
}

/// Whether a mark grows when text is inserted at its ends. In JSON:
/// `"before"`, `"after"` (the default), `"both"` or `"none"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expand {
    Before,
    #[default]
    After,
    Both,
    None,
}

impl From<Expand> for automerge::marks::ExpandMark {
    fn from(expand: Expand) -> Self {
        match expand {
            Expand::Before => automerge::marks::ExpandMark::Before,
            Expand::After => automerge::marks::ExpandMark::After,
            Expand::Both => automerge::marks::ExpandMark::Both,
            Expand::None => automerge::marks::ExpandMark::None,
        }
    }
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
    "mark",
    "unmark",
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
    Start,
    End,
    Name,
    Expand,
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
                    "start" => Field::Start,
                    "end" => Field::End,
                    "name" => Field::Name,
                    "expand" => Field::Expand,
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
                let mut start: Option<u64> = None;
                let mut end: Option<u64> = None;
                let mut name: Option<String> = None;
                let mut expand: Option<Expand> = None;
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
                        Field::Start => once(&mut start, "start", &mut map)?,
                        Field::End => once(&mut end, "end", &mut map)?,
                        Field::Name => once(&mut name, "name", &mut map)?,
                        Field::Expand => once(&mut expand, "expand", &mut map)?,
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
                    "mark" => Op::Mark {
                        obj,
                        start: need(start, "start")?,
                        end: need(end, "end")?,
                        name: need(name, "name")?,
                        value: match need(value, "value")? {
                            v @ (Json::Array(_) | Json::Object(_)) => {
                                return Err(A::Error::custom(format!(
                                    "mark: `value` must be a string, number, boolean or null, not {v}"
                                )));
                            }
                            v => v,
                        },
                        expand: expand.unwrap_or_default(),
                    },
                    "unmark" => Op::Unmark {
                        obj,
                        start: need(start, "start")?,
                        end: need(end, "end")?,
                        name: need(name, "name")?,
                        expand: expand.unwrap_or_default(),
                    },
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
            Op::Mark {
                obj,
                start,
                end,
                name,
                value,
                expand,
            } => {
                let id = text_range(doc, obj, *start, *end)?;
                let mark = automerge::marks::Mark::new(
                    name.clone(),
                    scalar(value),
                    *start as usize,
                    *end as usize,
                );
                doc.mark(&id, mark, (*expand).into())?;
            }
            Op::Unmark {
                obj,
                start,
                end,
                name,
                expand,
            } => {
                let id = text_range(doc, obj, *start, *end)?;
                doc.unmark(&id, name, *start as usize, *end as usize, (*expand).into())?;
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

/// The text at `path`, checking that `start..end` is a range of it.
fn text_range(doc: &AutoCommit, path: &[Key], start: u64, end: u64) -> Result<ObjId, OpError> {
    let id = resolve_text(doc, path)?;
    let len = doc.length(&id);
    if start > end || end > len as u64 {
        return Err(OpError::TextOutOfRange {
            index: start,
            delete: end.saturating_sub(start),
            len,
        });
    }
    Ok(id)
}

/// The text at `path`, or [`OpError::NotText`].
pub(crate) fn resolve_text(doc: &AutoCommit, path: &[Key]) -> Result<ObjId, OpError> {
    match resolve(doc, path)? {
        (id, ObjType::Text) => Ok(id),
        _ => Err(OpError::NotText {
            path: format!("{path:?}"),
        }),
    }
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
#[path = "ops_tests.rs"]
mod tests;
