//! Proofs that a write was made by someone holding the document key.
//!
//! The relay cannot read a document, yet it must refuse a push, snapshot
//! or presence update from anyone without the key: a client with a write
//! token but no key (or anyone, on an open relay) could otherwise store
//! garbage under an honest delta's id, or a snapshot that makes the relay
//! drop every delta it claims to cover.
//!
//! So each document has an Ed25519 key pair, derived by its clients from
//! the document key (see `syncline_core::seal`), and its id is
//! **self-certifying**: the first 16 bytes of `SHA-256("syncline/v1/doc-id"
//! ‖ public key)`. Nobody can register another key for an id. Every write
//! frame carries a [`WriteProof`] — the public key and a signature over a
//! digest of what the frame asks the relay to do — and the relay checks
//! both (the key derives the id; the signature verifies) before acting:
//!
//! - `SignedPush{doc, deltas}` signs [`push_digest`]: the document and each
//!   delta's id and SHA-256 of its (sealed) bytes, in order;
//! - `SignedSnapshot{doc, covers_seq, id, bytes}` signs
//!   [`snapshot_digest`], `covers_seq` included, so an old snapshot cannot
//!   be replayed as covering more;
//! - `SignedPresence{doc, bytes}` signs [`presence_digest`], which includes
//!   the replica id the session gave in `Hello`, so presence cannot be
//!   sent under another replica's name;
//! - `SignedMessage{doc, to, bytes}` (version 4) signs [`message_digest`],
//!   bound to the session's replica id and the addressee, likewise.
//!
//! Proofs end at the relay: it never forwards them, so a subscriber never
//! sees a signature it could replay. Documents whose id was not derived
//! from their key (made before version 3) cannot be proven: the relay
//! serves them for reading only.

use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{DeltaId, DocId, PushDelta};

/// A signature over a write's digest, and the key it verifies with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteProof {
    /// The document's public key: its id must derive from it.
    pub public_key: [u8; 32],
    /// Ed25519 over the write's digest.
    pub signature: Signature,
}

/// An Ed25519 signature (64 bytes on the wire, as one byte string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Signature, D::Error> {
        let bytes: &[u8] = Deserialize::deserialize(d)?;
        let bytes: [u8; 64] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::invalid_length(bytes.len(), &"64 bytes"))?;
        Ok(Signature(bytes))
    }
}

/// Why a proof was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The document's id is not derived from this key: another key, or a
    /// document made before ids were (it can only be read).
    #[error(
        "the key in the proof is not this document's: its id does not derive from it (a document made before signed writes can only be read)"
    )]
    WrongKey,
    /// The signature does not verify: the frame was altered, or signed by
    /// someone else.
    #[error(
        "the signature does not verify: the write was altered or not made with the document key"
    )]
    BadSignature,
}

/// The id of the document whose public key is `public_key`.
pub fn doc_id_for(public_key: &[u8; 32]) -> DocId {
    let digest = Sha256::new()
        .chain_update(b"syncline/v1/doc-id")
        .chain_update(public_key)
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    DocId(id)
}

/// The digest a `SignedPush` signs.
pub fn push_digest(doc: &DocId, deltas: &[PushDelta]) -> [u8; 32] {
    let mut hash = Sha256::new()
        .chain_update(b"syncline/v1/push")
        .chain_update(doc.0)
        .chain_update((deltas.len() as u64).to_le_bytes());
    for delta in deltas {
        hash.update(delta.id.0);
        hash.update(Sha256::digest(&delta.bytes));
    }
    hash.finalize().into()
}

/// The digest a `SignedSnapshot` signs.
pub fn snapshot_digest(doc: &DocId, covers_seq: u64, id: &DeltaId, bytes: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"syncline/v1/snapshot")
        .chain_update(doc.0)
        .chain_update(covers_seq.to_le_bytes())
        .chain_update(id.0)
        .chain_update(Sha256::digest(bytes))
        .finalize()
        .into()
}

/// The digest a `SignedPresence` signs, for the session's `replica`.
pub fn presence_digest(doc: &DocId, replica: &[u8; 16], bytes: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"syncline/v1/presence")
        .chain_update(doc.0)
        .chain_update(replica)
        .chain_update(Sha256::digest(bytes))
        .finalize()
        .into()
}

/// The digest a `SignedMessage` signs, for the session's `replica` and
/// the addressee `to` (none: every subscriber).
pub fn message_digest(
    doc: &DocId,
    replica: &[u8; 16],
    to: Option<&[u8; 16]>,
    bytes: &[u8],
) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"syncline/v1/message")
        .chain_update(doc.0)
        .chain_update(replica)
        .chain_update([u8::from(to.is_some())])
        .chain_update(to.copied().unwrap_or_default())
        .chain_update(Sha256::digest(bytes))
        .finalize()
        .into()
}

/// Checks that `proof` proves `digest` for `doc`.
pub fn verify(doc: &DocId, digest: &[u8; 32], proof: &WriteProof) -> Result<(), ProofError> {
    if doc_id_for(&proof.public_key) != *doc {
        return Err(ProofError::WrongKey);
    }
    let key = VerifyingKey::from_bytes(&proof.public_key).map_err(|_| ProofError::WrongKey)?;
    let signature = ed25519_dalek::Signature::from_bytes(&proof.signature.0);
    key.verify(digest, &signature)
        .map_err(|_| ProofError::BadSignature)
}

/// A document's signing key, from a 32-byte seed (clients derive the seed
/// from the document key). Its `Debug` does not print it.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl Signer {
    pub fn from_seed(seed: &[u8; 32]) -> Signer {
        Signer {
            key: SigningKey::from_bytes(seed),
        }
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The id of the document this key signs for.
    pub fn doc_id(&self) -> DocId {
        doc_id_for(&self.public_key())
    }

    /// A proof of `digest`.
    pub fn prove(&self, digest: &[u8; 32]) -> WriteProof {
        WriteProof {
            public_key: self.public_key(),
            signature: Signature(self.key.sign(digest).to_bytes()),
        }
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(n: u8) -> PushDelta {
        PushDelta {
            id: DeltaId([n; 32]),
            bytes: vec![n; 40],
        }
    }

    #[test]
    fn a_proof_verifies_only_for_its_document_and_content() {
        let signer = Signer::from_seed(&[7; 32]);
        let doc = signer.doc_id();
        let deltas = vec![delta(1), delta(2)];
        let proof = signer.prove(&push_digest(&doc, &deltas));
        assert_eq!(verify(&doc, &push_digest(&doc, &deltas), &proof), Ok(()));

        // Other bytes under the same ids, another order, one delta less.
        let mut garbage = deltas.clone();
        garbage[1].bytes = vec![0; 40];
        let swapped = vec![delta(2), delta(1)];
        for other in [garbage, swapped, vec![delta(1)]] {
            let digest = push_digest(&doc, &other);
            assert_eq!(verify(&doc, &digest, &proof), Err(ProofError::BadSignature));
        }
        // Another document (a random id, or another key's).
        let digest = push_digest(&DocId([1; 16]), &deltas);
        assert_eq!(
            verify(&DocId([1; 16]), &digest, &proof),
            Err(ProofError::WrongKey)
        );
        let mallory = Signer::from_seed(&[8; 32]);
        let forged = mallory.prove(&push_digest(&doc, &deltas));
        assert_eq!(
            verify(&doc, &push_digest(&doc, &deltas), &forged),
            Err(ProofError::WrongKey)
        );
    }

    #[test]
    fn a_snapshot_proof_binds_covers_seq_and_presence_binds_the_replica() {
        let signer = Signer::from_seed(&[3; 32]);
        let doc = signer.doc_id();
        let id = DeltaId([9; 32]);
        let proof = signer.prove(&snapshot_digest(&doc, 5, &id, b"snap"));
        assert_eq!(
            verify(&doc, &snapshot_digest(&doc, 5, &id, b"snap"), &proof),
            Ok(())
        );
        let replayed = snapshot_digest(&doc, 9, &id, b"snap");
        assert_eq!(
            verify(&doc, &replayed, &proof),
            Err(ProofError::BadSignature)
        );

        let proof = signer.prove(&presence_digest(&doc, &[1; 16], b"here"));
        let other_replica = presence_digest(&doc, &[2; 16], b"here");
        assert_eq!(
            verify(&doc, &other_replica, &proof),
            Err(ProofError::BadSignature)
        );
    }
}
