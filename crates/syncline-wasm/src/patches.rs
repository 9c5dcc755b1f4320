//! Automerge patches as the npm layer applies them to its immutable values.
//!
//! After a change (local or remote) the page gets the *edits* to its
//! current value instead of a fresh copy of the whole document, so a change
//! to a 10,000-item list costs what the change touched. Each patch names
//! the container it edits by its path from the root; the npm layer copies
//! that path and shares everything else (see `npm/src/patches.ts`).
//!
//! JS shape, one object per patch:
//! - `{ action: "put", path, key, value }` — a map key or list index set; a
//!   new container arrives as `{}`, `[]` or `""` (text) and is filled by the
//!   patches that follow;
//! - `{ action: "insert", path, index, values }`;
//! - `{ action: "del", path, key, length }` — `key` a map key or an index,
//!   `length` elements (of a list) or UTF-16 units (of a text);
//! - `{ action: "splice", path, index, value }` — text inserted at `index`
//!   of the text *at* `path`;
//! - `{ action: "inc", path, key, value }` — a counter changed by `value`.
//!
//! Conflicts and marks don't change the JSON value and are left out.

use automerge::{ObjType, Patch, PatchAction, Prop, ScalarValue, Value};
use serde::Serialize;
use serde_json::{Number, Value as Json};

/// A step of a path: a map key or a list index.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Step {
    Key(String),
    Index(usize),
}

impl From<&Prop> for Step {
    fn from(prop: &Prop) -> Self {
        match prop {
            Prop::Map(key) => Step::Key(key.clone()),
            Prop::Seq(index) => Step::Index(*index),
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum JsPatch {
    Put {
        path: Vec<Step>,
        key: Step,
        value: Json,
    },
    Insert {
        path: Vec<Step>,
        index: usize,
        values: Vec<Json>,
    },
    Del {
        path: Vec<Step>,
        key: Step,
        length: usize,
    },
    Splice {
        path: Vec<Step>,
        index: usize,
        value: String,
    },
    Inc {
        path: Vec<Step>,
        key: Step,
        value: i64,
    },
}

/// The patches that change the JSON value, in order.
pub fn to_js_patches(patches: Vec<Patch>) -> Vec<JsPatch> {
    patches.into_iter().filter_map(convert).collect()
}

fn convert(patch: Patch) -> Option<JsPatch> {
    let path: Vec<Step> = patch
        .path
        .iter()
        .map(|(_, prop)| Step::from(prop))
        .collect();
    Some(match patch.action {
        PatchAction::PutMap { key, value, .. } => JsPatch::Put {
            path,
            key: Step::Key(key),
            value: json(&value.0),
        },
        PatchAction::PutSeq { index, value, .. } => JsPatch::Put {
            path,
            key: Step::Index(index),
            value: json(&value.0),
        },
        PatchAction::Insert { index, values } => JsPatch::Insert {
            path,
            index,
            values: values.iter().map(|(value, _, _)| json(value)).collect(),
        },
        PatchAction::SpliceText { index, value, .. } => JsPatch::Splice {
            path,
            index,
            value: value.make_string(),
        },
        PatchAction::Increment { prop, value } => JsPatch::Inc {
            path,
            key: Step::from(&prop),
            value,
        },
        PatchAction::DeleteMap { key } => JsPatch::Del {
            path,
            key: Step::Key(key),
            length: 1,
        },
        PatchAction::DeleteSeq { index, length } => JsPatch::Del {
            path,
            key: Step::Index(index),
            length,
        },
        PatchAction::Conflict { .. } | PatchAction::Mark { .. } => return None,
    })
}

/// A value as the document's JSON shows it; a new container is empty.
fn json(value: &Value<'_>) -> Json {
    match value {
        Value::Object(ObjType::Map | ObjType::Table) => Json::Object(Default::default()),
        Value::Object(ObjType::List) => Json::Array(Vec::new()),
        Value::Object(ObjType::Text) => Json::String(String::new()),
        Value::Scalar(scalar) => scalar_json(scalar),
    }
}

fn scalar_json(scalar: &ScalarValue) -> Json {
    match scalar {
        ScalarValue::Str(s) => Json::String(s.to_string()),
        ScalarValue::Int(n) | ScalarValue::Timestamp(n) => Json::Number((*n).into()),
        ScalarValue::Uint(n) => Json::Number((*n).into()),
        ScalarValue::Counter(c) => Json::Number(i64::from(c).into()),
        ScalarValue::F64(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        ScalarValue::Boolean(b) => Json::Bool(*b),
        ScalarValue::Bytes(bytes) => Json::Array(bytes.iter().map(|b| Json::from(*b)).collect()),
        ScalarValue::Null | ScalarValue::Unknown { .. } => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT, TextEncoding};

    fn js(patches: Vec<Patch>) -> Json {
        serde_json::to_value(to_js_patches(patches)).unwrap()
    }

    #[test]
    fn every_kind_of_edit_becomes_a_path_addressed_patch() {
        let mut doc = AutoCommit::new_with_encoding(TextEncoding::Utf16CodeUnit);
        let list = doc.put_object(ROOT, "items", ObjType::List).unwrap();
        let item = doc.insert_object(&list, 0, ObjType::Map).unwrap();
        doc.put(&item, "title", "milk").unwrap();
        let note = doc.put_object(ROOT, "note", ObjType::Text).unwrap();
        doc.splice_text(&note, 0, 0, "hé🌍").unwrap();
        doc.put(ROOT, "likes", ScalarValue::counter(1)).unwrap();
        doc.diff_incremental();

        doc.splice_text(&note, 1, 1, "e").unwrap();
        doc.increment(ROOT, "likes", 2).unwrap();
        doc.put(&item, "done", true).unwrap();
        doc.insert(&list, 1, 7).unwrap();
        doc.delete(&list, 1).unwrap();
        doc.delete(ROOT, "likes").unwrap();
        // A diff, not a replay: the list insert and delete cancel out, and
        // patches come grouped by object. Applied in order, they give the
        // new value.
        assert_eq!(
            js(doc.diff_incremental()),
            serde_json::json!([
                { "action": "inc", "path": [], "key": "likes", "value": 2 },
                { "action": "del", "path": [], "key": "likes", "length": 1 },
                { "action": "put", "path": ["items", 0], "key": "done", "value": true },
                { "action": "splice", "path": ["note"], "index": 1, "value": "e" },
                { "action": "del", "path": ["note"], "key": 2, "length": 1 },
            ])
        );
    }

    #[test]
    fn new_containers_arrive_empty_and_are_filled_by_later_patches() {
        let mut doc = AutoCommit::new_with_encoding(TextEncoding::Utf16CodeUnit);
        doc.diff_incremental();
        let list = doc.put_object(ROOT, "items", ObjType::List).unwrap();
        doc.insert(&list, 0, "a").unwrap();
        let patches = js(doc.diff_incremental());
        assert_eq!(
            patches,
            serde_json::json!([
                { "action": "put", "path": [], "key": "items", "value": [] },
                { "action": "insert", "path": ["items"], "index": 0, "values": ["a"] },
            ])
        );
    }
}
