//! JSON pointers (RFC 6901) turned into engine [`Op`]s.
//!
//! `set /a/b VALUE` becomes a `put` of key `b` in the container at `/a`;
//! `push /items VALUE` an `insert` at the end of the list at `/items`. The
//! pointer is resolved against the document's current value, which decides
//! whether a segment is a map key or a list index (`"0"` is a key in an
//! object, an index in a list). A missing segment is reported by name.

use serde_json::Value as Json;
use syncline_core::Op;
use syncline_core::ops::Key;

/// Why a pointer does not fit the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointerError {
    #[error("`{0}` is not a JSON pointer: it must be empty (the root) or start with `/`")]
    Syntax(String),
    #[error("`{pointer}`: bad escape in segment `{segment}` (only ~0 for `~` and ~1 for `/`)")]
    Escape { pointer: String, segment: String },
    #[error("`{pointer}`: segment `{segment}` does not exist: {why}")]
    Missing {
        pointer: String,
        segment: String,
        why: String,
    },
    #[error("`{pointer}`: cannot push: the value there is {kind}, not a list")]
    NotAList { pointer: String, kind: &'static str },
    #[error("the document root is an object: setting it (the empty pointer) needs a JSON object")]
    RootNotObject,
}

/// The segments of `pointer`, unescaped.
pub fn parse(pointer: &str) -> Result<Vec<String>, PointerError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(PointerError::Syntax(pointer.to_string()));
    };
    rest.split('/')
        .map(|raw| {
            let mut out = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => out.push('~'),
                    Some('1') => out.push('/'),
                    _ => {
                        return Err(PointerError::Escape {
                            pointer: pointer.to_string(),
                            segment: raw.to_string(),
                        });
                    }
                }
            }
            Ok(out)
        })
        .collect()
}

/// The ops that replace the value at `pointer` with `value` (adding the key
/// if the parent is an object without it; `-` or the length appends to a
/// list).
pub fn set_ops(doc: &Json, pointer: &str, value: Json) -> Result<Vec<Op>, PointerError> {
    let segments = parse(pointer)?;
    let Some((last, parents)) = segments.split_last() else {
        return set_root(doc, value);
    };
    let (obj, parent) = resolve(doc, pointer, parents)?;
    match parent {
        Json::Object(_) => Ok(vec![Op::Put {
            obj,
            key: Key::Name(last.clone()),
            value,
        }]),
        Json::Array(items) => {
            let len = items.len() as u64;
            let index = match last.as_str() {
                "-" => len,
                s => parse_index(s).ok_or_else(|| missing(pointer, last, not_an_index(s)))?,
            };
            if index < len {
                Ok(vec![Op::Put {
                    obj,
                    key: Key::Index(index),
                    value,
                }])
            } else if index == len {
                Ok(vec![Op::Insert {
                    obj,
                    index,
                    values: vec![value],
                }])
            } else {
                Err(missing(pointer, last, out_of_range(index, len)))
            }
        }
        other => Err(missing(pointer, last, inside_scalar(parents, other))),
    }
}

/// The ops that append `value` to the list at `pointer`.
pub fn push_ops(doc: &Json, pointer: &str, value: Json) -> Result<Vec<Op>, PointerError> {
    let segments = parse(pointer)?;
    let (obj, target) = resolve(doc, pointer, &segments)?;
    match target {
        Json::Array(items) => Ok(vec![Op::Insert {
            obj,
            index: items.len() as u64,
            values: vec![value],
        }]),
        other => Err(PointerError::NotAList {
            pointer: pointer.to_string(),
            kind: kind(other),
        }),
    }
}

/// Replaces the root's fields: puts every field of `value`, deletes the
/// others.
fn set_root(doc: &Json, value: Json) -> Result<Vec<Op>, PointerError> {
    let Json::Object(fields) = value else {
        return Err(PointerError::RootNotObject);
    };
    let mut ops: Vec<Op> = doc
        .as_object()
        .into_iter()
        .flat_map(|old| old.keys())
        .filter(|k| !fields.contains_key(*k))
        .map(|k| Op::Delete {
            obj: Vec::new(),
            key: Key::Name(k.clone()),
            count: None,
        })
        .collect();
    ops.extend(fields.into_iter().map(|(k, v)| Op::Put {
        obj: Vec::new(),
        key: Key::Name(k),
        value: v,
    }));
    Ok(ops)
}

/// Follows `segments` from the root; returns the engine path and the value
/// found there.
fn resolve<'a>(
    doc: &'a Json,
    pointer: &str,
    segments: &[String],
) -> Result<(Vec<Key>, &'a Json), PointerError> {
    let mut path = Vec::with_capacity(segments.len());
    let mut here = doc;
    for (depth, segment) in segments.iter().enumerate() {
        let parents = &segments[..depth];
        here = match here {
            Json::Object(fields) => {
                let child = fields.get(segment).ok_or_else(|| {
                    missing(
                        pointer,
                        segment,
                        format!("the object at `{}` has no such key", display(parents)),
                    )
                })?;
                path.push(Key::Name(segment.clone()));
                child
            }
            Json::Array(items) => {
                let index = parse_index(segment)
                    .ok_or_else(|| missing(pointer, segment, not_an_index(segment)))?;
                let child = items.get(index as usize).ok_or_else(|| {
                    missing(pointer, segment, out_of_range(index, items.len() as u64))
                })?;
                path.push(Key::Index(index));
                child
            }
            other => return Err(missing(pointer, segment, inside_scalar(parents, other))),
        };
    }
    Ok((path, here))
}

fn missing(pointer: &str, segment: &str, why: String) -> PointerError {
    PointerError::Missing {
        pointer: pointer.to_string(),
        segment: segment.to_string(),
        why,
    }
}

/// A list index as RFC 6901 spells it: `0` or digits without a leading zero.
fn parse_index(segment: &str) -> Option<u64> {
    let digits = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
    if !digits || (segment.len() > 1 && segment.starts_with('0')) {
        return None;
    }
    segment.parse().ok()
}

fn not_an_index(segment: &str) -> String {
    format!("the parent is a list, and `{segment}` is not an index")
}

fn out_of_range(index: u64, len: u64) -> String {
    format!("the list has {len} item(s), index {index} is out of range")
}

fn inside_scalar(parents: &[String], value: &Json) -> String {
    format!(
        "`{}` is {}, which has no children",
        display(parents),
        kind(value)
    )
}

fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

/// The pointer of a path prefix, re-escaped (`""` shows as `/`).
fn display(segments: &[String]) -> String {
    if segments.is_empty() {
        return "/".to_string();
    }
    segments
        .iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Json {
        json!({"a": {"b": 1, "0": "zero"}, "items": [10, {"x": true}], "s": "str", "a/b~": 5})
    }

    #[test]
    fn parse_unescapes_and_rejects_garbage() {
        assert_eq!(parse("").unwrap(), Vec::<String>::new());
        assert_eq!(parse("/").unwrap(), vec![""]);
        assert_eq!(parse("/a~1b~0/c").unwrap(), vec!["a/b~", "c"]);
        assert!(matches!(parse("a/b"), Err(PointerError::Syntax(_))));
        assert!(matches!(parse("/a~2"), Err(PointerError::Escape { .. })));
        assert!(matches!(parse("/a~"), Err(PointerError::Escape { .. })));
    }

    #[test]
    fn set_puts_keys_and_list_elements() {
        let ops = set_ops(&doc(), "/a/b", json!(2)).unwrap();
        assert_eq!(
            ops,
            vec![Op::Put {
                obj: vec![Key::Name("a".into())],
                key: Key::Name("b".into()),
                value: json!(2)
            }]
        );
        // "0" in an object is a key, in a list an index.
        let ops = set_ops(&doc(), "/a/0", json!("z")).unwrap();
        assert!(matches!(&ops[0], Op::Put { key: Key::Name(k), .. } if k == "0"));
        let ops = set_ops(&doc(), "/items/1/x", json!(false)).unwrap();
        assert!(matches!(&ops[0], Op::Put { obj, .. }
            if *obj == vec![Key::Name("items".into()), Key::Index(1)]));
        let ops = set_ops(&doc(), "/items/0", json!(11)).unwrap();
        assert!(matches!(
            &ops[0],
            Op::Put {
                key: Key::Index(0),
                ..
            }
        ));
        let ops = set_ops(&doc(), "/a~1b~0", json!(6)).unwrap();
        assert!(matches!(&ops[0], Op::Put { key: Key::Name(k), .. } if k == "a/b~"));
        // A new key in an existing object is fine.
        assert!(set_ops(&doc(), "/a/new", json!(null)).is_ok());
    }

    #[test]
    fn set_at_the_end_of_a_list_appends() {
        for pointer in ["/items/-", "/items/2"] {
            let ops = set_ops(&doc(), pointer, json!(3)).unwrap();
            assert_eq!(
                ops,
                vec![Op::Insert {
                    obj: vec![Key::Name("items".into())],
                    index: 2,
                    values: vec![json!(3)]
                }]
            );
        }
    }

    #[test]
    fn set_of_the_root_replaces_its_fields() {
        let ops = set_ops(&json!({"old": 1, "kept": 2}), "", json!({"kept": 3})).unwrap();
        assert_eq!(ops.len(), 2);
        assert!(matches!(&ops[0], Op::Delete { key: Key::Name(k), .. } if k == "old"));
        assert!(matches!(&ops[1], Op::Put { key: Key::Name(k), .. } if k == "kept"));
        assert_eq!(
            set_ops(&doc(), "", json!([1])).unwrap_err(),
            PointerError::RootNotObject
        );
    }

    #[test]
    fn missing_segments_are_named() {
        let cases = [
            ("/nope/b", "nope", "the object at `/` has no such key"),
            ("/a/nope/c", "nope", "the object at `/a` has no such key"),
            ("/items/5/x", "5", "index 5 is out of range"),
            ("/items/05", "05", "is not an index"),
            ("/items/x", "x", "is not an index"),
            ("/items/3", "3", "index 3 is out of range"),
            ("/s/x", "x", "`/s` is a string"),
            ("/a/b/c", "c", "`/a/b` is a number"),
        ];
        for (pointer, segment, why) in cases {
            let err = set_ops(&doc(), pointer, json!(1)).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(&format!("segment `{segment}` does not exist")),
                "{pointer}: {text}"
            );
            assert!(text.contains(why), "{pointer}: {text}");
        }
    }

    #[test]
    fn push_appends_to_lists_only() {
        let ops = push_ops(&doc(), "/items", json!("new")).unwrap();
        assert_eq!(
            ops,
            vec![Op::Insert {
                obj: vec![Key::Name("items".into())],
                index: 2,
                values: vec![json!("new")]
            }]
        );
        let err = push_ops(&doc(), "/a", json!(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`/a`: cannot push: the value there is an object, not a list"
        );
        let err = push_ops(&doc(), "", json!(1)).unwrap_err();
        assert!(matches!(err, PointerError::NotAList { .. }));
        let err = push_ops(&doc(), "/missing", json!(1)).unwrap_err();
        assert!(matches!(err, PointerError::Missing { .. }));
    }
}
