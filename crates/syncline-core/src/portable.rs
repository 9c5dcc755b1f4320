//! Export and import: a document as standard Automerge bytes, in and out.
//!
//! [`Engine::export_doc`] is Automerge's own `save()` of the document: the
//! whole history, loadable by any Automerge (`@automerge/automerge`'s
//! `load`, the Rust crate's `AutoCommit::load`). Nothing of Syncline is in
//! it — no key, no id, no cursor.
//!
//! [`Engine::import_doc`] makes a *new* document (a fresh id and key, as
//! [`Engine::create_doc`] does) whose history is the imported changes, kept
//! as they are (same hashes, actors and messages). They are logged, pushed
//! and broadcast like a burst of local changes (see
//! [`Engine::log_local_changes`]): sealed deltas the relay stores and other
//! replicas apply like any other, so the imported history syncs with no
//! special case. The imported document must hold only values Syncline's
//! value model shows — maps, lists, text, strings, numbers (`int`, `f64`,
//! counters), booleans and null — or the import fails with
//! [`EngineError::BadImport`] and nothing is created.

use automerge::{ObjId, ObjType, Prop, ReadDoc, ScalarValue as Scalar, Value};

use crate::engine::{Effect, Engine, load_automerge};
use crate::seal::DocKey;
use crate::{DocId, DocUrl, EngineError};

/// Deepest nesting an imported document may have (the walk that checks its
/// values is recursive).
const MAX_DEPTH: usize = 256;

impl Engine {
    /// The document as standard Automerge bytes (`save()`): its whole
    /// history, readable by any Automerge implementation.
    pub fn export_doc(&mut self, doc: &DocId) -> Result<Vec<u8>, EngineError> {
        let state = self
            .docs
            .get_mut(doc)
            .ok_or(EngineError::DocNotFound(*doc))?;
        // `document()` closes no transaction here (none is ever left open)
        // and, unlike `AutoCommit::save`, moves no incremental-save cursor.
        Ok(state.doc.document().save())
    }

    /// Makes a new document (fresh id and key) from Automerge bytes (a saved
    /// document, or saved changes), keeping their history; returns its URL.
    /// Bytes Automerge cannot load, or a document holding values Syncline
    /// cannot show, fail with [`EngineError::BadImport`]; nothing changes.
    pub fn import_doc(&mut self, bytes: &[u8], now_ms: u64) -> Result<DocUrl, EngineError> {
        self.refuse_change_if_backlog_full()?;
        let mut loaded = load_automerge(bytes).map_err(|e| {
            EngineError::BadImport(format!("these bytes are not an Automerge document ({e})"))
        })?;
        check_values(&loaded, &automerge::ROOT, "", 0)?;
        loaded.set_actor(self.actor.clone());
        let hashes: Vec<_> = loaded.get_changes(&[]).iter().map(|c| c.hash()).collect();
        let url = DocUrl::for_key(DocKey(self.random()));
        let state = self.insert_doc(url.doc, url.key);
        state.doc = loaded;
        state.changed_elsewhere = true;
        state.isolated_local.extend(hashes.iter().copied());
        self.persist_doc_record(url.doc);
        if !hashes.is_empty() {
            // Logged from the empty heads, as a new document's first change.
            self.outbox.start_burst(url.doc, Vec::new(), now_ms);
        }
        self.emit(Effect::StatusChanged);
        self.request_access(url.doc, now_ms);
        Ok(url)
    }
}

/// Fails on the first value under `obj` that Syncline's value model lacks.
fn check_values(
    doc: &automerge::AutoCommit,
    obj: &ObjId,
    path: &str,
    depth: usize,
) -> Result<(), EngineError> {
    if depth > MAX_DEPTH {
        return Err(EngineError::BadImport(format!(
            "{} is nested deeper than {MAX_DEPTH} levels",
            shown(path)
        )));
    }
    // The same calls as the value's serialization (`AutoSerde`), so the
    // walk links no other Automerge code into the wasm.
    let props: Vec<Prop> = match doc.object_type(obj) {
        Ok(ObjType::Map) => doc.keys(obj).map(Prop::Map).collect(),
        Ok(ObjType::List) => (0..doc.length(obj)).map(Prop::Seq).collect(),
        // Text (with its marks) is shown as a string.
        Ok(ObjType::Text) => return Ok(()),
        Ok(ObjType::Table) => {
            return Err(EngineError::BadImport(format!(
                "{} is an Automerge table, which Syncline does not support: convert it to a map or list before importing",
                shown(path)
            )));
        }
        Err(e) => return Err(EngineError::BadImport(e.to_string())),
    };
    for prop in props {
        let Ok(Some((value, id))) = doc.get(obj, prop.clone()) else {
            continue;
        };
        let key = match prop {
            Prop::Map(key) => key.replace('~', "~0").replace('/', "~1"),
            Prop::Seq(index) => index.to_string(),
        };
        let path = format!("{path}/{key}");
        match value {
            Value::Object(_) => check_values(doc, &id, &path, depth + 1)?,
            Value::Scalar(scalar) => check_scalar(&scalar, &path)?,
        }
    }
    Ok(())
}

fn check_scalar(scalar: &Scalar, path: &str) -> Result<(), EngineError> {
    let kind = match scalar {
        Scalar::Str(_)
        | Scalar::Int(_)
        | Scalar::F64(_)
        | Scalar::Counter(_)
        | Scalar::Boolean(_)
        | Scalar::Null => return Ok(()),
        Scalar::Uint(_) => "an unsigned integer (uint)",
        Scalar::Timestamp(_) => "a timestamp (a JavaScript Date)",
        Scalar::Bytes(_) => "bytes (a Uint8Array)",
        Scalar::Unknown { .. } => "a value of a type this Automerge does not know",
    };
    Err(EngineError::BadImport(format!(
        "{} holds {kind}, which Syncline does not support: store it as a string or number before importing",
        shown(path)
    )))
}

/// A JSON pointer for messages (the root is "the document").
fn shown(path: &str) -> String {
    if path.is_empty() {
        "the document".to_owned()
    } else {
        format!("`{path}`")
    }
}
