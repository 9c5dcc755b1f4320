//! Editing helpers over the engine's documents: undo and redo of this
//! replica's changes (the algorithm is in [`crate::undo`]), stable cursors
//! in texts, and reading a text's marks.
//!
//! **Cursors.** `cursor(doc, path, index)` names the position before the
//! character at `index` (or the end of the text, for `index == length`)
//! by that character's identity, so `cursor_position` finds it again
//! after any local or remote edits: inserts before it move it right,
//! deletes before it move it left; if its character is deleted, the
//! cursor moves to the next character that was there when it was made.
//! The string is `<first 8 hex digits of the document id>.<Automerge
//! cursor>`: a cursor of another document is refused with
//! [`EngineError::BadCursor`], never silently misplaced.

use automerge::transaction::Transactable;
use automerge::{Cursor, ReadDoc};
use serde::Serialize;
use serde_json::Value as Json;
use syncline_protocol::DocId;

use crate::EngineError;
use crate::engine::Engine;
use crate::ops::{Key, resolve_text};
use crate::undo;

/// A mark on a range of a text, as `Engine::marks` lists them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextMark {
    pub name: String,
    pub value: Json,
    /// UTF-16 code units, `start..end`.
    pub start: usize,
    pub end: usize,
}

impl Engine {
    /// Undoes this replica's last undo step still worth undoing, as a new
    /// change; returns whether it changed anything.
    pub fn undo(&mut self, doc: DocId, now_ms: u64) -> Result<bool, EngineError> {
        self.revert_step(doc, now_ms, Direction::Undo)
    }

    /// Redoes the last undo, as a new change; returns whether it changed
    /// anything. A new undoable change clears what there is to redo.
    pub fn redo(&mut self, doc: DocId, now_ms: u64) -> Result<bool, EngineError> {
        self.revert_step(doc, now_ms, Direction::Redo)
    }

    pub fn can_undo(&self, doc: &DocId) -> bool {
        self.docs.get(doc).is_some_and(|s| s.undo.can_undo())
    }

    pub fn can_redo(&self, doc: &DocId) -> bool {
        self.docs.get(doc).is_some_and(|s| s.undo.can_redo())
    }

    /// Local changes closer together than `ms` become one undo step
    /// (default [`undo::DEFAULT_CAPTURE_MS`]; 0: every change is a step).
    pub fn set_undo_capture(&mut self, ms: u64) {
        self.undo_capture_ms = ms;
    }

    fn revert_step(
        &mut self,
        doc: DocId,
        now_ms: u64,
        direction: Direction,
    ) -> Result<bool, EngineError> {
        self.refuse_change_if_backlog_full()?;
        loop {
            let state = self
                .docs
                .get_mut(&doc)
                .ok_or(EngineError::DocNotFound(doc))?;
            let step = match direction {
                Direction::Undo => state.undo.pop_undo(),
                Direction::Redo => state.undo.pop_redo(),
            };
            let Some(step) = step else {
                return Ok(false);
            };
            let heads = state.doc.get_heads();
            let edits = match undo::revert(
                &mut state.doc,
                step.before(),
                step.after(),
                &mut state.undo.revived,
            ) {
                Ok(edits) => edits,
                Err(e) => {
                    state.doc.rollback();
                    return Err(EngineError::Automerge(Box::new(e)));
                }
            };
            if edits == 0 || state.doc.pending_ops() == 0 {
                state.doc.rollback();
                continue; // nothing of it is left: try the one before
            }
            let since = (!self.outbox.has_burst(&doc)).then_some(heads.clone());
            let Some(head) = self.commit_local(doc, since, None, now_ms) else {
                continue;
            };
            if let Some(state) = self.docs.get_mut(&doc) {
                match direction {
                    Direction::Undo => state.undo.undone(heads, vec![head]),
                    Direction::Redo => state.undo.redone(heads, vec![head]),
                }
            }
            self.tell_if_unprovable(doc);
            return Ok(true);
        }
    }

    /// A stable cursor before the character at `index` of the text at
    /// `path` (`index` = its length: the end).
    pub fn cursor(&self, doc: &DocId, path: &[Key], index: u64) -> Result<String, EngineError> {
        let state = self.docs.get(doc).ok_or(EngineError::DocNotFound(*doc))?;
        let text = resolve_text(&state.doc, path)?;
        let len = state.doc.length(&text);
        let cursor = match usize::try_from(index) {
            Ok(i) if i < len => state
                .doc
                .get_cursor(&text, i, None)
                .map_err(|e| bad_cursor(format!("no cursor at {index}: {e}")))?,
            Ok(i) if i == len => Cursor::End,
            _ => {
                return Err(bad_cursor(format!(
                    "index {index} is past the end of the text (length {len})"
                )));
            }
        };
        Ok(format!("{}.{cursor}", doc_tag(doc)))
    }

    /// Where the cursor `cursor` (from [`Engine::cursor`] on this document
    /// and path) is now.
    pub fn cursor_position(
        &self,
        doc: &DocId,
        path: &[Key],
        cursor: &str,
    ) -> Result<u64, EngineError> {
        let state = self.docs.get(doc).ok_or(EngineError::DocNotFound(*doc))?;
        let text = resolve_text(&state.doc, path)?;
        let Some((tag, rest)) = cursor.split_once('.') else {
            return Err(bad_cursor("not a Syncline cursor".into()));
        };
        if tag != doc_tag(doc) {
            return Err(bad_cursor("it was made for another document".into()));
        }
        let parsed =
            Cursor::try_from(rest).map_err(|_| bad_cursor("not a Syncline cursor".into()))?;
        let index = state
            .doc
            .get_cursor_position(&text, &parsed, None)
            .map_err(|_| bad_cursor("it names no position of this text".into()))?;
        Ok(index as u64)
    }

    /// The marks on the text at `path`, in order of their start.
    pub fn marks(&self, doc: &DocId, path: &[Key]) -> Result<Vec<TextMark>, EngineError> {
        let state = self.docs.get(doc).ok_or(EngineError::DocNotFound(*doc))?;
        let text = resolve_text(&state.doc, path)?;
        let marks = state
            .doc
            .marks(&text)
            .map_err(|e| EngineError::Automerge(Box::new(e)))?;
        let mut marks: Vec<TextMark> = marks
            .into_iter()
            .map(|m| TextMark {
                name: m.name().to_owned(),
                value: serde_json::to_value(m.value()).unwrap_or(Json::Null),
                start: m.start,
                end: m.end,
            })
            .collect();
        // Automerge lists them in its own order; a reader wants the text's.
        marks.sort_by(|a, b| (a.start, a.end, &a.name).cmp(&(b.start, b.end, &b.name)));
        Ok(marks)
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Undo,
    Redo,
}

/// The first 8 hex digits of the document id: enough to tell documents
/// apart, short enough to keep cursors small.
fn doc_tag(doc: &DocId) -> String {
    doc.0[..4].iter().map(|b| format!("{b:02x}")).collect()
}

fn bad_cursor(why: String) -> EngineError {
    EngineError::BadCursor(why)
}
