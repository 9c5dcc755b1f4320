//! Sealing: how a delta is encrypted before it leaves the replica.
//!
//! Every document has a 256-bit key, created with the document and shared
//! only inside its URL's fragment. A delta is sealed with AES-256-GCM under
//! that key with a random 96-bit nonce, the document id bound as associated
//! data (a sealed delta can't be replayed into another document):
//!
//! ```text
//! sealed = version (1 byte, = 1) ‖ nonce (12 bytes) ‖ ciphertext+tag
//! ```
//!
//! A delta's id is HMAC-SHA256(doc key, plaintext): equal plaintexts get
//! equal ids, so a re-push after a lost ack is deduplicated by the relay,
//! while the relay — which never has the key — can't test guesses against it.

use aes_gcm::aead::{Aead, Nonce, Payload};
use aes_gcm::{Aes256Gcm, Key, KeyInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use syncline_protocol::{DeltaId, DocId, Signer};

const SEAL_VERSION: u8 = 1;
pub const NONCE_BYTES: usize = 12;

/// A document's symmetric key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DocKey(pub [u8; 32]);

impl std::fmt::Debug for DocKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DocKey(..)") // never print key material
    }
}

/// Why a sealed delta could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed delta is too short")]
    Truncated,
    #[error("sealed with unknown format version {0}; upgrade Syncline to read it")]
    UnknownVersion(u8),
    #[error("cannot decrypt: wrong document key, or the delta was tampered with")]
    Decrypt,
}

impl DocKey {
    /// Seals `plaintext` for `doc` with the caller's fresh random `nonce`.
    pub fn seal(&self, doc: &DocId, nonce: [u8; NONCE_BYTES], plaintext: &[u8]) -> Vec<u8> {
        seal(&self.0, nonce, &doc.0, plaintext)
    }

    /// Opens a sealed delta of `doc`.
    pub fn open(&self, doc: &DocId, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        open(&self.0, &doc.0, sealed)
    }

    /// The id of a delta with this plaintext.
    /// Opens a sealed delta that claims the id `id`: the plaintext, or why
    /// it is unusable (wrong key, tampered, or content not matching its id).
    pub fn open_delta(
        &self,
        doc: &DocId,
        id: &DeltaId,
        sealed: &[u8],
    ) -> Result<Vec<u8>, crate::delta::DeltaError> {
        let plain = self.open(doc, sealed)?;
        match self.delta_id(&plain) == *id {
            true => Ok(plain),
            false => Err(crate::delta::DeltaError::IdMismatch),
        }
    }

    /// The document's signing key (see `syncline_protocol::proof`): the
    /// Ed25519 seed is HMAC-SHA256(doc key, "syncline/v1/signing-key"), so
    /// whoever has the key can sign writes and nobody else can.
    pub fn signer(&self) -> Signer {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"syncline/v1/signing-key");
        Signer::from_seed(&mac.finalize().into_bytes().into())
    }

    pub fn delta_id(&self, plaintext: &[u8]) -> DeltaId {
        DeltaIds::new(self).id(plaintext)
    }
}

/// [`DocKey::delta_id`] with the key's HMAC state computed once: each id
/// then costs two SHA-256 blocks fewer (a local change is given one).
#[derive(Clone)]
pub(crate) struct DeltaIds(Hmac<Sha256>);

impl DeltaIds {
    pub(crate) fn new(key: &DocKey) -> DeltaIds {
        DeltaIds(
            <Hmac<Sha256> as Mac>::new_from_slice(&key.0)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
        )
    }

    pub(crate) fn id(&self, plaintext: &[u8]) -> DeltaId {
        let mut mac = self.0.clone();
        mac.update(plaintext);
        DeltaId(mac.finalize().into_bytes().into())
    }
}

/// Seals `plaintext` under `key` (AES-256-GCM) with the caller's fresh
/// random `nonce`, binding `aad`: `version ‖ nonce ‖ ciphertext+tag`. Also
/// used by hosts to encrypt records at rest.
pub fn seal(key: &[u8; 32], nonce: [u8; NONCE_BYTES], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let payload = Payload {
        msg: plaintext,
        aad,
    };
    // Encryption with a valid key and nonce only fails for messages beyond
    // GCM's 64 GiB limit, far past any frame or record bound.
    let ciphertext = cipher(key)
        .encrypt(&Nonce::<Aes256Gcm>::from(nonce), payload)
        .unwrap_or_default();
    let mut out = Vec::with_capacity(1 + NONCE_BYTES + ciphertext.len());
    out.push(SEAL_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

/// Opens what [`seal`] made with the same key and `aad`.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    let (&version, rest) = sealed.split_first().ok_or(SealError::Truncated)?;
    if version != SEAL_VERSION {
        return Err(SealError::UnknownVersion(version));
    }
    if rest.len() < NONCE_BYTES + 16 {
        return Err(SealError::Truncated);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
    let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SealError::Truncated)?;
    let payload = Payload {
        msg: ciphertext,
        aad,
    };
    cipher(key)
        .decrypt(&Nonce::<Aes256Gcm>::from(nonce), payload)
        .map_err(|_| SealError::Decrypt)
}

fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: DocId = DocId([1; 16]);

    #[test]
    fn seal_open_round_trip_and_every_kind_of_damage_is_refused() {
        let key = DocKey([7; 32]);
        let sealed = key.seal(&DOC, [3; 12], b"hello");
        assert_eq!(key.open(&DOC, &sealed).unwrap(), b"hello");
        assert!(
            !sealed.windows(5).any(|w| w == b"hello"),
            "ciphertext hides the plaintext"
        );

        assert_eq!(DocKey([8; 32]).open(&DOC, &sealed), Err(SealError::Decrypt));
        assert_eq!(key.open(&DocId([2; 16]), &sealed), Err(SealError::Decrypt));
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert_eq!(key.open(&DOC, &flipped), Err(SealError::Decrypt));
        assert_eq!(key.open(&DOC, &sealed[..10]), Err(SealError::Truncated));
        assert_eq!(key.open(&DOC, &[]), Err(SealError::Truncated));
        let mut future = sealed;
        future[0] = 9;
        assert_eq!(key.open(&DOC, &future), Err(SealError::UnknownVersion(9)));
    }

    #[test]
    fn ids_are_keyed_and_deterministic() {
        let a = DocKey([1; 32]);
        assert_eq!(a.delta_id(b"x"), a.delta_id(b"x"));
        assert_ne!(a.delta_id(b"x"), a.delta_id(b"y"));
        assert_ne!(a.delta_id(b"x"), DocKey([2; 32]).delta_id(b"x"));
        let ids = DeltaIds::new(&a);
        assert_eq!(ids.id(b"x"), a.delta_id(b"x"), "the keyed state is reused");
        assert_eq!(ids.id(b"x"), ids.id(b"x"));
    }
}
