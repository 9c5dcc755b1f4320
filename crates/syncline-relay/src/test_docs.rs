//! Documents whose writes tests can sign (features `test-support` and
//! `fuzzing`; never in the relay binary).
//!
//! The relay acts only on writes that carry a proof of the document key
//! (`syncline_protocol::proof`), and a document's id derives from its
//! public key. So tests name documents by a number: [`doc`]`(n)` is the id
//! of the document whose signing key has the seed `[n; 32]`, and [`sign`]
//! turns a write to such a document into its signed frame.

use std::sync::OnceLock;

use syncline_protocol::{ClientFrame, DocId, Signer};

/// The signing key of test document `n`.
pub fn signer(n: u8) -> Signer {
    Signer::from_seed(&[n; 32])
}

/// The id of test document `n`.
pub fn doc(n: u8) -> DocId {
    ids()[usize::from(n)]
}

fn ids() -> &'static [DocId; 256] {
    static IDS: OnceLock<[DocId; 256]> = OnceLock::new();
    IDS.get_or_init(|| std::array::from_fn(|n| signer(n as u8).doc_id()))
}

/// `frame` signed for the session of `replica`, if it is a write to a test
/// document; otherwise `frame` as it is (an unsigned write stays unsigned,
/// and the relay refuses it).
pub fn sign(frame: ClientFrame, replica: &[u8; 16]) -> ClientFrame {
    let doc = match &frame {
        ClientFrame::Push { doc, .. }
        | ClientFrame::Snapshot { doc, .. }
        | ClientFrame::Presence { doc, .. } => *doc,
        _ => return frame,
    };
    match ids().iter().position(|id| *id == doc) {
        Some(n) => frame.signed(&signer(n as u8), replica),
        None => frame,
    }
}

/// A `SignedMessage` to test document `n` from the session of `replica`
/// (for `to`, or everyone), with opaque `bytes`.
pub fn message(n: u8, replica: &[u8; 16], to: Option<[u8; 16]>, bytes: &[u8]) -> ClientFrame {
    let doc = doc(n);
    let digest = syncline_protocol::proof::message_digest(&doc, replica, to.as_ref(), bytes);
    ClientFrame::SignedMessage {
        doc,
        to,
        bytes: bytes.to_vec(),
        proof: signer(n).prove(&digest),
    }
}
