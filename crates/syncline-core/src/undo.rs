//! Undo and redo of this replica's own changes, as new changes.
//!
//! An undo never rewinds the document: it makes a **new change** that
//! reverses what one *step* of this replica's changes did, as far as it is
//! still visible, so it is durable, synced and in history like any other
//! change, and other replicas' edits stay in place.
//!
//! - **Steps.** Each undoable local change is recorded with the heads just
//!   before it and just after it. A change extends the last step when it
//!   comes within the *capture window* of the previous one (default
//!   [`DEFAULT_CAPTURE_MS`]) **and** nothing else changed the document in
//!   between (its heads before are the step's heads after): a step is
//!   always a chain of this replica's own changes, so `diff(before, after)`
//!   is exactly what the step did.
//! - **Reverting a step** ([`revert`]) reads that diff and writes its
//!   inverse into the current document, finding each element by identity
//!   (Automerge cursors taken at the step's heads), not by index:
//!   - a map key the step set goes back to its value before the step — only
//!     if the step's value still wins (a later write, local or remote, is
//!     kept); a key it deleted comes back if it is still absent;
//!   - text or list elements it inserted are deleted, if still there;
//!     elements it deleted are inserted again (as new elements: Automerge
//!     does not revive them) right after the element that preceded them,
//!     or, if that one is gone, before the one that followed them; text
//!     concurrently inserted around them stays;
//!   - a list element it replaced gets its value back if the step's value
//!     still wins; a counter increment is subtracted;
//!   - what the step did *inside* an object it created needs no reverting:
//!     removing the object reverts it.
//!
//!   Marks a step added or removed are not reverted (a mark is not a value
//!   the document shows; see `docs/architecture.md`).
//! - **Redo** reverts an undo the same way. An undo goes on the redo stack,
//!   a redo back on the undo stack; a new undoable local change clears the
//!   redo stack.
//!
//! An undo whose step has nothing left to revert (everything it did was
//! overwritten since) is dropped, and the next step is tried: `undo()`
//! returns false only when the stack is empty.

use automerge::transaction::Transactable;
use automerge::{
    AutoCommit, AutomergeError, ChangeHash, Cursor, ObjId, ObjType, Patch, PatchAction, Prop,
    ReadDoc, ScalarValue, Value,
};

/// Local changes closer together than this form one undo step.
pub const DEFAULT_CAPTURE_MS: u64 = 500;

/// How many steps each stack keeps; the oldest go first.
pub const MAX_STEPS: usize = 1_000;

/// One undoable unit: a chain of this replica's changes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step {
    before: Vec<ChangeHash>,
    after: Vec<ChangeHash>,
}

/// A document's undo and redo stacks.
#[derive(Debug, Clone, Default)]
pub struct UndoStack {
    undo: Vec<Step>,
    redo: Vec<Step>,
    /// Successors of the elements undo and redo inserted again.
    pub(crate) revived: Revived,
    /// When the last recorded change was made, while its step may grow.
    open_since: Option<u64>,
}

impl UndoStack {
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    /// An undoable local change went from `before` to `after` at `now_ms`.
    pub(crate) fn record(
        &mut self,
        before: Vec<ChangeHash>,
        after: Vec<ChangeHash>,
        now_ms: u64,
        capture_ms: u64,
    ) {
        self.redo.clear();
        let grows = self
            .open_since
            .is_some_and(|at| now_ms.saturating_sub(at) < capture_ms)
            && self.undo.last().is_some_and(|step| step.after == before);
        match self.undo.last_mut() {
            Some(step) if grows => step.after = after,
            _ => push_bounded(&mut self.undo, Step { before, after }),
        }
        self.open_since = Some(now_ms);
    }

    /// A change that is not to be undone: the next undoable one starts a
    /// new step (the heads check would start one anyway; this also ends the
    /// capture window).
    pub(crate) fn interrupt(&mut self) {
        self.open_since = None;
    }

    pub(crate) fn pop_undo(&mut self) -> Option<Step> {
        self.open_since = None;
        self.undo.pop()
    }

    pub(crate) fn pop_redo(&mut self) -> Option<Step> {
        self.redo.pop()
    }

    /// An undo made the change `before → after`: redo reverts it.
    pub(crate) fn undone(&mut self, before: Vec<ChangeHash>, after: Vec<ChangeHash>) {
        push_bounded(&mut self.redo, Step { before, after });
    }

    /// A redo made the change `before → after`: it can be undone again
    /// (the redo stack is kept).
    pub(crate) fn redone(&mut self, before: Vec<ChangeHash>, after: Vec<ChangeHash>) {
        push_bounded(&mut self.undo, Step { before, after });
    }
}

fn push_bounded(stack: &mut Vec<Step>, step: Step) {
    if stack.len() == MAX_STEPS {
        stack.remove(0);
    }
    stack.push(step);
}

impl Step {
    pub(crate) fn before(&self) -> &[ChangeHash] {
        &self.before
    }

    pub(crate) fn after(&self) -> &[ChangeHash] {
        &self.after
    }
}

/// Writes the inverse of `before → after` (this replica's own chain of
/// changes) into `doc`'s open transaction. Returns how many edits it made
/// (0: nothing of the step is visible any more).
pub(crate) fn revert(
    doc: &mut AutoCommit,
    before: &[ChangeHash],
    after: &[ChangeHash],
    revived: &mut Revived,
) -> Result<usize, AutomergeError> {
    let patches = doc.diff(before, after);
    let mut edits = Vec::new();
    let mut created: Vec<ObjId> = Vec::new();
    // Per sequence object: inserted minus deleted so far, to turn an index
    // of the diff (which sees earlier patches applied) into one at `before`.
    let mut shift: Vec<(ObjId, isize)> = Vec::new();
    for patch in patches {
        if created.contains(&patch.obj) || patch.path.iter().any(|(o, _)| created.contains(o)) {
            continue; // inside an object the step made: removing it reverts this
        }
        let offset = shift
            .iter()
            .find(|(o, _)| *o == patch.obj)
            .map_or(0, |(_, s)| *s);
        let Patch { obj, action, .. } = patch;
        let (edit, moved) = invert(
            doc,
            before,
            after,
            obj.clone(),
            action,
            offset,
            &mut created,
        )?;
        if moved != 0 {
            match shift.iter_mut().find(|(o, _)| *o == obj) {
                Some((_, s)) => *s += moved,
                None => shift.push((obj, moved)),
            }
        }
        edits.extend(edit);
    }
    // In the diff's order, left to right: runs of deleted elements that
    // come back before the same surviving element come back in order.
    let count = edits.len();
    for edit in edits {
        edit.apply(doc, revived)?;
    }
    Ok(count)
}

/// Elements deleted and inserted again by an undo or redo are new
/// elements: this maps each old one (its cursor's bytes) to its
/// successor, so a later step that names the old one finds the new one.
#[derive(Debug, Clone, Default)]
pub(crate) struct Revived(std::collections::HashMap<Vec<u8>, Cursor>);

/// How many successors [`Revived`] keeps before it starts afresh.
const MAX_REVIVED: usize = 100_000;

/// How long a chain of successors [`Revived::locate`] follows (an element
/// gets one more each time an undo or redo brings it back).
const MAX_REVIVALS: usize = 2 * MAX_STEPS;

impl Revived {
    fn note(&mut self, old: &Cursor, new: Cursor) {
        if self.0.len() >= MAX_REVIVED {
            self.0.clear(); // forgets: later steps may then place text less well
        }
        self.0.insert(old.to_bytes(), new);
    }

    /// Where the element `cursor` (or its latest successor) is visible now.
    fn locate(&self, doc: &AutoCommit, obj: &ObjId, cursor: &Cursor) -> Option<usize> {
        let mut cursor = cursor;
        for _ in 0..MAX_REVIVALS {
            if let Some(index) = visible_at(doc, obj, cursor) {
                return Some(index);
            }
            cursor = self.0.get(&cursor.to_bytes())?;
        }
        None
    }
}

/// What one patch's inverse does, with elements named by identity.
enum Edit {
    /// Put `value` (read at `before`) at `key`, if `winner` still wins there.
    Restore {
        obj: ObjId,
        key: String,
        value: Option<Copy>,
        winner: Option<ObjId>,
    },
    /// Delete these sequence elements, where they still are.
    Remove {
        obj: ObjId,
        elements: Vec<Cursor>,
    },
    /// Insert text or list values right after the element `after` if it is
    /// still there, else before the element `before` (or at the end).
    Reinsert {
        obj: ObjId,
        after: Option<Cursor>,
        before: Cursor,
        /// The deleted elements, one cursor per index unit.
        elements: Vec<Cursor>,
        content: Content,
    },
    /// Put `value` into the sequence element `element`, if `winner` still wins.
    Replace {
        obj: ObjId,
        element: Cursor,
        value: Copy,
        winner: ObjId,
    },
    Increment {
        obj: ObjId,
        prop: Target,
        by: i64,
    },
}

/// A counter's place: a map key, or a sequence element.
enum Target {
    Key(String),
    Element(Cursor),
}

enum Content {
    Text(String),
    Values(Vec<Copy>),
}

/// A value read at some heads, to write again.
enum Copy {
    Scalar(ScalarValue),
    Map(Vec<(String, Copy)>),
    List(Vec<Copy>),
    Text(String),
}

/// The inverse of one patch, and how it moved its sequence's indices.
fn invert(
    doc: &AutoCommit,
    before: &[ChangeHash],
    after: &[ChangeHash],
    obj: ObjId,
    action: PatchAction,
    offset: isize,
    created: &mut Vec<ObjId>,
) -> Result<(Option<Edit>, isize), AutomergeError> {
    let at_before = |index: usize| (index as isize - offset) as usize;
    Ok(match action {
        PatchAction::PutMap { key, value, .. } => {
            if let Value::Object(_) = value.0 {
                created.push(value.1.clone());
            }
            let old = doc.get_at(&obj, key.as_str(), before)?;
            let old = old.map(|(v, id)| copy(doc, &v, &id, before)).transpose()?;
            let edit = Edit::Restore {
                obj,
                key,
                value: old,
                winner: Some(value.1),
            };
            (Some(edit), 0)
        }
        PatchAction::DeleteMap { key } => {
            let old = doc.get_at(&obj, key.as_str(), before)?;
            let old = old.map(|(v, id)| copy(doc, &v, &id, before)).transpose()?;
            let edit = old.map(|value| Edit::Restore {
                obj,
                key,
                value: Some(value),
                winner: None,
            });
            (edit, 0)
        }
        PatchAction::SpliceText { index, value, .. } => {
            let len = value.make_string().encode_utf16().count();
            let elements = cursors(doc, &obj, index, len, after)?;
            (Some(Edit::Remove { obj, elements }), len as isize)
        }
        PatchAction::Insert { index, values } => {
            for (value, id, _) in values.iter() {
                if let Value::Object(_) = value {
                    created.push(id.clone());
                }
            }
            let len = values.len();
            let elements = cursors(doc, &obj, index, len, after)?;
            (Some(Edit::Remove { obj, elements }), len as isize)
        }
        PatchAction::DeleteSeq { index, length } => {
            let start = at_before(index);
            let end = start + length;
            let next = if end < doc.length_at(&obj, before) {
                doc.get_cursor(&obj, end, Some(before))?
            } else {
                Cursor::End
            };
            let previous = match start {
                0 => None,
                _ => Some(doc.get_cursor(&obj, start - 1, Some(before))?),
            };
            let content = match doc.object_type(&obj)? {
                ObjType::Text => {
                    Content::Text(utf16_slice(&doc.text_at(&obj, before)?, start, end))
                }
                _ => Content::Values(
                    (start..end)
                        .map(|i| {
                            let (v, id) = doc
                                .get_at(&obj, i, before)?
                                .ok_or(AutomergeError::InvalidIndex(i))?;
                            copy(doc, &v, &id, before)
                        })
                        .collect::<Result<_, _>>()?,
                ),
            };
            let edit = Edit::Reinsert {
                elements: cursors(doc, &obj, start, length, before)?,
                obj,
                after: previous,
                before: next,
                content,
            };
            (Some(edit), -(length as isize))
        }
        PatchAction::PutSeq {
            index,
            value: (new, winner),
            ..
        } => {
            if let Value::Object(_) = new {
                created.push(winner.clone());
            }
            let old = doc
                .get_at(&obj, at_before(index), before)?
                .map(|(v, id)| copy(doc, &v, &id, before))
                .transpose()?;
            let element = doc.get_cursor(&obj, index, Some(after))?;
            let edit = old.map(|value| Edit::Replace {
                obj,
                element,
                value,
                winner,
            });
            (edit, 0)
        }
        PatchAction::Increment { prop, value } => {
            let prop = match prop {
                Prop::Map(key) => Target::Key(key),
                Prop::Seq(index) => Target::Element(doc.get_cursor(&obj, index, Some(after))?),
            };
            (
                Some(Edit::Increment {
                    obj,
                    prop,
                    by: -value,
                }),
                0,
            )
        }
        PatchAction::Conflict { .. } | PatchAction::Mark { .. } => (None, 0),
    })
}

/// Cursors naming `len` elements from `index`, as the document was at `heads`.
fn cursors(
    doc: &AutoCommit,
    obj: &ObjId,
    index: usize,
    len: usize,
    heads: &[ChangeHash],
) -> Result<Vec<Cursor>, AutomergeError> {
    (index..index + len)
        .map(|i| doc.get_cursor(obj, i, Some(heads)))
        .collect()
}

/// The UTF-16 code units `start..end` of `text`.
fn utf16_slice(text: &str, start: usize, end: usize) -> String {
    let units: Vec<u16> = text.encode_utf16().collect();
    String::from_utf16_lossy(&units[start.min(units.len())..end.min(units.len())])
}

/// Reads the value `(value, id)` as it was at `heads`, objects in depth.
fn copy(
    doc: &AutoCommit,
    value: &Value<'_>,
    id: &ObjId,
    heads: &[ChangeHash],
) -> Result<Copy, AutomergeError> {
    Ok(match value {
        Value::Scalar(s) => Copy::Scalar(s.clone().into_owned()),
        Value::Object(ObjType::Text) => Copy::Text(doc.text_at(id, heads)?),
        Value::Object(ObjType::Map | ObjType::Table) => Copy::Map(
            doc.keys_at(id, heads)
                .map(|key| {
                    let (v, child) = doc
                        .get_at(id, key.as_str(), heads)?
                        .ok_or(AutomergeError::InvalidObjId(key.clone()))?;
                    Ok((key, copy(doc, &v, &child, heads)?))
                })
                .collect::<Result<_, AutomergeError>>()?,
        ),
        Value::Object(ObjType::List) => Copy::List(
            (0..doc.length_at(id, heads))
                .map(|i| {
                    let (v, child) = doc
                        .get_at(id, i, heads)?
                        .ok_or(AutomergeError::InvalidIndex(i))?;
                    copy(doc, &v, &child, heads)
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// How many UTF-16 units the character at `index` of a text takes.
fn char_units(doc: &AutoCommit, obj: &ObjId, index: usize) -> Result<usize, AutomergeError> {
    Ok(match doc.get(obj, index)? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(c) => c.encode_utf16().count().max(1),
            _ => 1,
        },
        _ => 1,
    })
}

/// Where a cursor's element is now, if it is still visible.
fn visible_at(doc: &AutoCommit, obj: &ObjId, cursor: &Cursor) -> Option<usize> {
    let index = doc.get_cursor_position(obj, cursor, None).ok()?;
    let here = doc.get_cursor(obj, index, None).ok()?;
    (here == *cursor).then_some(index)
}

impl Edit {
    fn apply(self, doc: &mut AutoCommit, revived: &mut Revived) -> Result<(), AutomergeError> {
        match self {
            Edit::Restore {
                obj,
                key,
                value,
                winner,
            } => {
                let now = doc.get(&obj, key.as_str())?.map(|(_, id)| id);
                if now != winner {
                    return Ok(()); // written again since: that write stays
                }
                match value {
                    Some(value) => write_prop(doc, &obj, Prop::Map(key), value, false),
                    None => doc.delete(&obj, key.as_str()),
                }
            }
            Edit::Remove { obj, elements } => {
                let text = doc.object_type(&obj)? == ObjType::Text;
                let mut starts: Vec<usize> = elements
                    .iter()
                    .filter_map(|c| revived.locate(doc, &obj, c))
                    .collect();
                starts.sort_unstable();
                starts.dedup(); // two UTF-16 units of one character
                // Runs of adjacent elements, `start..end` in the index unit.
                let mut runs: Vec<(usize, usize)> = Vec::new();
                for start in starts {
                    let end = start
                        + if text {
                            char_units(doc, &obj, start)?
                        } else {
                            1
                        };
                    match runs.last_mut() {
                        Some(run) if run.1 == start => run.1 = end,
                        _ => runs.push((start, end)),
                    }
                }
                // From the end, so the indices of earlier runs stay valid.
                for (start, end) in runs.into_iter().rev() {
                    let count = (end - start) as isize;
                    if text {
                        doc.splice_text(&obj, start, count, "")?;
                    } else {
                        doc.splice(&obj, start, count, std::iter::empty::<ScalarValue>())?;
                    }
                }
                Ok(())
            }
            Edit::Reinsert {
                obj,
                after,
                before,
                elements,
                content,
            } => {
                let text = matches!(content, Content::Text(_));
                let index = match after.and_then(|c| revived.locate(doc, &obj, &c)) {
                    Some(i) if text => i + char_units(doc, &obj, i)?,
                    Some(i) => i + 1,
                    None => match revived.locate(doc, &obj, &before) {
                        Some(i) => i,
                        None => doc.get_cursor_position(&obj, &before, None)?,
                    },
                };
                match content {
                    Content::Text(text) => doc.splice_text(&obj, index, 0, &text)?,
                    Content::Values(values) => {
                        for (offset, value) in values.into_iter().enumerate() {
                            write_prop(doc, &obj, Prop::Seq(index + offset), value, true)?;
                        }
                    }
                }
                for (offset, old) in elements.iter().enumerate() {
                    revived.note(old, doc.get_cursor(&obj, index + offset, None)?);
                }
                Ok(())
            }
            Edit::Replace {
                obj,
                element,
                value,
                winner,
            } => {
                let Some(index) = revived.locate(doc, &obj, &element) else {
                    return Ok(()); // deleted since
                };
                if doc.get(&obj, index)?.map(|(_, id)| id) != Some(winner) {
                    return Ok(());
                }
                write_prop(doc, &obj, Prop::Seq(index), value, false)
            }
            Edit::Increment { obj, prop, by } => match prop {
                Target::Key(key) => doc.increment(&obj, key.as_str(), by),
                Target::Element(cursor) => match revived.locate(doc, &obj, &cursor) {
                    Some(index) => doc.increment(&obj, index, by),
                    None => Ok(()),
                },
            },
        }
    }
}

/// Writes `value` at `prop` of `obj` (inserting at a sequence index when
/// `insert`), objects in depth.
fn write_prop(
    doc: &mut AutoCommit,
    obj: &ObjId,
    prop: Prop,
    value: Copy,
    insert: bool,
) -> Result<(), AutomergeError> {
    let kind = match &value {
        Copy::Scalar(s) => {
            return match (prop, insert) {
                (Prop::Map(key), _) => doc.put(obj, key, s.clone()),
                (Prop::Seq(i), false) => doc.put(obj, i, s.clone()),
                (Prop::Seq(i), true) => doc.insert(obj, i, s.clone()),
            };
        }
        Copy::Map(_) => ObjType::Map,
        Copy::List(_) => ObjType::List,
        Copy::Text(_) => ObjType::Text,
    };
    let child = match (prop, insert) {
        (Prop::Map(key), _) => doc.put_object(obj, key, kind)?,
        (Prop::Seq(i), false) => doc.put_object(obj, i, kind)?,
        (Prop::Seq(i), true) => doc.insert_object(obj, i, kind)?,
    };
    match value {
        Copy::Scalar(_) => unreachable!("returned above"),
        Copy::Text(text) => doc.splice_text(&child, 0, 0, &text),
        Copy::Map(fields) => fields
            .into_iter()
            .try_for_each(|(key, v)| write_prop(doc, &child, Prop::Map(key), v, false)),
        Copy::List(items) => items
            .into_iter()
            .enumerate()
            .try_for_each(|(i, v)| write_prop(doc, &child, Prop::Seq(i), v, true)),
    }
}

#[cfg(test)]
#[path = "undo_tests.rs"]
mod tests;
