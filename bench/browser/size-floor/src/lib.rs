//! The least a browser build of Syncline must link: Automerge, driven
//! through every call the engine makes (load with UTF-16 text, incremental
//! load, save, changes in and out, transactions with each kind of op,
//! incremental diffs into patches, forks for history, the value as JSON),
//! and, unless built with `automerge-only`, AES-256-GCM, SHA-256, HMAC and
//! Ed25519 signing. Nothing of Syncline itself: its size is what no cut to
//! Syncline's own code can go below.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    AutoCommit, AutoSerde, ChangeHash, LoadOptions, ObjType, ROOT, ReadDoc, TextEncoding,
};
use wasm_bindgen::prelude::*;

const ENCODING: TextEncoding = TextEncoding::Utf16CodeUnit;

#[wasm_bindgen]
pub struct Doc(AutoCommit);

#[wasm_bindgen]
impl Doc {
    /// A new document, or one loaded from saved bytes.
    #[wasm_bindgen(constructor)]
    pub fn new(saved: Option<Vec<u8>>, actor: Vec<u8>) -> Result<Doc, JsError> {
        let doc = match saved {
            Some(bytes) => {
                AutoCommit::load_with_options(&bytes, LoadOptions::new().text_encoding(ENCODING))?
            }
            None => AutoCommit::new_with_encoding(ENCODING),
        };
        Ok(Doc(doc.with_actor(automerge::ActorId::from(actor))))
    }

    pub fn load_incremental(&mut self, bytes: &[u8]) -> Result<usize, JsError> {
        Ok(self.0.load_incremental(bytes)?)
    }

    pub fn save(&mut self) -> Vec<u8> {
        self.0.save()
    }

    /// One change: `kind` picks the op, as the engine's `ops.rs` does.
    pub fn change(
        &mut self,
        kind: u8,
        key: &str,
        index: usize,
        text: &str,
        n: i64,
        message: Option<String>,
    ) -> Result<(), JsError> {
        match kind {
            0 => self.0.put(ROOT, key, text)?,
            1 => self.0.put(ROOT, key, n)?,
            2 => self.0.put(ROOT, key, n as f64 / 3.0)?,
            3 => self.0.put(ROOT, key, automerge::ScalarValue::counter(n))?,
            4 => self.0.increment(ROOT, key, n)?,
            5 => self.0.delete(ROOT, key)?,
            6 => {
                let list = self.0.put_object(ROOT, key, ObjType::List)?;
                self.0.insert(&list, 0, text)?;
                let map = self.0.insert_object(&list, 1, ObjType::Map)?;
                self.0.put(&map, "x", true)?;
                self.0.delete(&list, index)?;
            }
            _ => {
                let text_obj = match self.0.get(ROOT, key)? {
                    Some((automerge::Value::Object(ObjType::Text), id)) => id,
                    _ => self.0.put_object(ROOT, key, ObjType::Text)?,
                };
                self.0.splice_text(&text_obj, index, n as isize, text)?;
            }
        }
        let mut options = CommitOptions::default().with_time(n);
        if let Some(message) = message {
            options = options.with_message(message);
        }
        self.0.commit_with(options);
        Ok(())
    }

    /// The changes since `heads` (32-byte hashes, concatenated), as bytes.
    pub fn changes_since(&mut self, heads: &[u8]) -> Vec<u8> {
        let heads: Vec<ChangeHash> = heads
            .chunks_exact(32)
            .filter_map(|h| ChangeHash::try_from(h).ok())
            .collect();
        let mut out = Vec::new();
        for change in self.0.get_changes(&heads) {
            out.extend_from_slice(change.raw_bytes());
        }
        if let Some(last) = self.0.get_last_local_change() {
            out.extend_from_slice(&last.hash().0);
        }
        out
    }

    pub fn apply(&mut self, change: &[u8]) -> Result<(), JsError> {
        let change = automerge::Change::from_bytes(change.to_vec())?;
        let known = self.0.get_change_by_hash(&change.hash()).is_some();
        if !known {
            self.0.apply_changes([change])?;
        }
        Ok(())
    }

    /// The patches since the last call, counted (the floor needs them made,
    /// not shown: turning them into JS values is Syncline's own code).
    pub fn patches(&mut self) -> usize {
        let patches = self.0.diff_incremental();
        self.0.update_diff_cursor();
        patches.iter().map(|p| 1 + p.path.len()).sum()
    }

    pub fn heads(&mut self) -> Vec<u8> {
        self.0.get_heads().iter().flat_map(|h| h.0).collect()
    }

    /// The value (or the value at the first head, as history shows it) as JSON.
    pub fn value(&mut self, at_first_head: bool) -> Result<String, JsError> {
        let len =
            self.0.length(ROOT) + self.0.keys(ROOT).count() + self.0.get_all(ROOT, "x")?.len();
        let json = if at_first_head {
            let heads = self.0.get_heads();
            let fork = self.0.fork_at(&heads[..1.min(heads.len())])?;
            serde_json::to_string(&AutoSerde::from(&fork))?
        } else {
            serde_json::to_string(&AutoSerde::from(&self.0))?
        };
        Ok(format!("{len}{json}"))
    }
}

#[cfg(not(feature = "automerge-only"))]
mod crypto {
    use aes_gcm::aead::{Aead, KeyInit};
    use aes_gcm::{Aes256Gcm, Key, Nonce};
    use ed25519_dalek::{Signer, SigningKey};
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    pub fn seal(key: &[u8], nonce: &[u8], plain: &[u8]) -> Result<Vec<u8>, JsError> {
        let key: [u8; 32] = key.try_into()?;
        let nonce: [u8; 12] = nonce.try_into()?;
        let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(key));
        cipher
            .encrypt(&Nonce::from(nonce), plain)
            .map_err(|_| JsError::new("seal"))
    }

    #[wasm_bindgen]
    pub fn open(key: &[u8], nonce: &[u8], sealed: &[u8]) -> Result<Vec<u8>, JsError> {
        let key: [u8; 32] = key.try_into()?;
        let nonce: [u8; 12] = nonce.try_into()?;
        let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(key));
        cipher
            .decrypt(&Nonce::from(nonce), sealed)
            .map_err(|_| JsError::new("open"))
    }

    #[wasm_bindgen]
    pub fn digest(bytes: &[u8]) -> Vec<u8> {
        Sha256::digest(bytes).to_vec()
    }

    #[wasm_bindgen]
    pub fn mac(key: &[u8], bytes: &[u8]) -> Result<Vec<u8>, JsError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| JsError::new("key"))?;
        mac.update(bytes);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    #[wasm_bindgen]
    pub fn sign(seed: &[u8], message: &[u8]) -> Result<Vec<u8>, JsError> {
        let seed: [u8; 32] = seed.try_into()?;
        let key = SigningKey::from_bytes(&seed);
        let mut out = key.verifying_key().to_bytes().to_vec();
        out.extend_from_slice(&key.sign(message).to_bytes());
        Ok(out)
    }
}
