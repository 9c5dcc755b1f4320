//! A write queued for a store's single writer (SQLite's thread, Postgres's
//! task): an append or a snapshot, with where its outcome goes.

use syncline_protocol::{DocId, PushDelta};
use tokio::sync::oneshot;

use super::{Appended, OnCommit, Snapshot, SnapshotOutcome, StoreError};

/// Work for a store's writer.
pub(crate) enum Job {
    Append {
        doc: DocId,
        deltas: Vec<PushDelta>,
        on_commit: OnCommit,
        reply: oneshot::Sender<Result<Appended, StoreError>>,
    },
    Snapshot {
        doc: DocId,
        snapshot: Snapshot,
        reply: oneshot::Sender<Result<SnapshotOutcome, StoreError>>,
    },
}

impl Job {
    /// Its payload, to bound a group commit's size.
    pub(crate) fn payload_bytes(&self) -> usize {
        match self {
            Job::Append { deltas, .. } => deltas.iter().map(|d| d.bytes.len() + 32).sum(),
            Job::Snapshot { snapshot, .. } => snapshot.bytes.len(),
        }
    }
}
