//! The replica's event log in IndexedDB, through `idb`, encrypted at rest.
//!
//! One database per repo name (`syncline:<name>`), one object store per
//! [`syncline_core::Store`], values as `Uint8Array`s under string keys. The
//! engine's batches are written inside a single read-write transaction,
//! which IndexedDB commits atomically.
//!
//! Every value is sealed with AES-256-GCM under the repo's storage key, with
//! a fresh random nonce and the store name and record key as associated
//! data, so a record moved to another key or store fails to open. A
//! key-check record (`meta/keycheck`) is opened first: a wrong key fails
//! with `WrongKey` before any other record is read or written. A record that
//! fails to open is reported as `Corrupt` and skipped; the rest loads.

use std::collections::BTreeMap;

use idb::{Database, ObjectStore, Transaction, TransactionMode, TransactionResult};
use js_sys::Uint8Array;
use syncline_core::{Batch, Store};
use wasm_bindgen::{JsCast, JsValue};

use syncline_core::EngineError;
use syncline_core::seal::{self, NONCE_BYTES};

use crate::errors::StorageError;
use crate::platform::random_bytes;

const DB_VERSION: u32 = 3; // 2: adds the snapshots store; 3: the values store

/// Where the key-check record lives; the engine never uses this key.
const KEYCHECK: (Store, &str) = (Store::Meta, "keycheck");
const KEYCHECK_PLAINTEXT: &[u8] = b"syncline storage key check v1";

/// (store, key, bytes) triples: sealed as read, or decrypted.
pub type Records = Vec<(Store, String, Vec<u8>)>;

pub struct Storage {
    db: Database,
    /// The same connection, for what `idb` does not expose (durability).
    raw: web_sys::IdbDatabase,
    key: [u8; 32],
    durability: Durability,
}

/// How the browser commits the log's write transactions (IndexedDB's
/// `durability` hint). Browsers default to *relaxed*: a commit is reported
/// once the data is handed to the operating system, so it survives a tab or
/// browser crash but not necessarily a power cut; *strict* waits until it is
/// flushed to the disk, at the cost of a sync per transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    #[default]
    Default,
    Relaxed,
    Strict,
}

impl Durability {
    /// The `durability` field of the open options: "strict", "relaxed", or
    /// anything else for the browser's default.
    pub fn from_js(options: &JsValue) -> Durability {
        let value = js_sys::Reflect::get(options, &"durability".into()).ok();
        match value.and_then(|v| v.as_string()).as_deref() {
            Some("strict") => Durability::Strict,
            Some("relaxed") => Durability::Relaxed,
            _ => Durability::Default,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Durability::Default => "default",
            Durability::Relaxed => "relaxed",
            Durability::Strict => "strict",
        }
    }
}

/// `db.transaction(stores, "readwrite", { durability })`: web-sys has the
/// options dictionary only behind its unstable-API flag, so the method is
/// called through `Reflect`.
fn readwrite_transaction(
    db: &web_sys::IdbDatabase,
    stores: &js_sys::Array,
    options: &js_sys::Object,
) -> Result<web_sys::IdbTransaction, JsValue> {
    let method: js_sys::Function = js_sys::Reflect::get(db, &"transaction".into())?.dyn_into()?;
    method
        .call3(db, stores, &"readwrite".into(), options)?
        .dyn_into()
}

fn aad(store: Store, key: &str) -> Vec<u8> {
    format!("syncline-record\0{}\0{key}", store.name()).into_bytes()
}

fn read_failed(e: idb::Error) -> StorageError {
    StorageError::Read(e.to_string())
}

fn write_failed(e: idb::Error) -> StorageError {
    StorageError::write(e.to_string())
}

fn store_names() -> Vec<&'static str> {
    Store::ALL.iter().map(|s| s.name()).collect()
}

impl Storage {
    /// Opens (creating if needed) the database for `name` and checks that
    /// `key` is the one its records were written with. Writes commit with
    /// `durability`.
    pub async fn open(
        name: &str,
        key: [u8; 32],
        durability: Durability,
    ) -> Result<Storage, StorageError> {
        let db_name = format!("syncline:{name}");
        let mut builder = Database::builder(&db_name).version(DB_VERSION);
        for store in store_names() {
            builder = builder.add_object_store(ObjectStore::builder(store));
        }
        let db = builder.build().await.map_err(|e| StorageError::Open {
            name: db_name,
            reason: format!("{e:?}"),
        })?;
        let raw: web_sys::IdbDatabase = db.into();
        let storage = Storage {
            db: Database::from(raw.clone()),
            raw,
            key,
            durability,
        };
        storage.check_key().await?;
        Ok(storage)
    }

    /// A read-write transaction over every store, committed with the chosen
    /// durability.
    fn write_transaction(&self) -> Result<idb::Transaction, StorageError> {
        let names: js_sys::Array = store_names().into_iter().map(JsValue::from).collect();
        let options = js_sys::Object::new();
        js_sys::Reflect::set(
            &options,
            &"durability".into(),
            &self.durability.name().into(),
        )
        .map_err(|e| write_failed(idb::Error::TransactionOpenFailed(e)))?;
        readwrite_transaction(&self.raw, &names, &options)
            .map(idb::Transaction::from)
            .map_err(|e| write_failed(idb::Error::TransactionOpenFailed(e)))
    }

    /// Opens the key-check record, or writes it if there is none: in one
    /// read-write transaction, so two tabs setting up the same repo at once
    /// can't both find it missing (IndexedDB runs read-write transactions
    /// over the same stores one after the other, across tabs too).
    async fn check_key(&self) -> Result<(), StorageError> {
        // Sealed up front: nothing but IndexedDB requests may happen while
        // the transaction waits (it would commit).
        let sealed_check = self.seal_value(KEYCHECK.0, KEYCHECK.1, KEYCHECK_PLAINTEXT)?;
        let tx = self.write_transaction()?;
        let store = tx.object_store(KEYCHECK.0.name()).map_err(read_failed)?;
        let key = JsValue::from_str(KEYCHECK.1);
        let stored = store
            .get(key.clone())
            .map_err(read_failed)?
            .await
            .map_err(read_failed)?;
        let result = match stored.and_then(|v| v.dyn_into::<Uint8Array>().ok()) {
            Some(sealed) => match self.open_value(KEYCHECK.0, KEYCHECK.1, &sealed.to_vec()) {
                Ok(plain) if plain == KEYCHECK_PLAINTEXT => Ok(()),
                _ => Err(StorageError::WrongKey),
            },
            None => {
                let value: JsValue = Uint8Array::from(sealed_check.as_slice()).into();
                store.put(&value, Some(&key)).map_err(write_failed)?;
                Ok(())
            }
        };
        match tx.commit().map_err(write_failed)?.await {
            Ok(TransactionResult::Committed) => result,
            failed => Err(StorageError::Write(format!(
                "the key check did not commit: {failed:?}"
            ))),
        }
    }

    fn seal_value(&self, store: Store, key: &str, plain: &[u8]) -> Result<Vec<u8>, StorageError> {
        let nonce: [u8; NONCE_BYTES] = random_bytes()?;
        Ok(seal::seal(&self.key, nonce, &aad(store, key), plain))
    }

    fn open_value(
        &self,
        store: Store,
        key: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, seal::SealError> {
        seal::open(&self.key, &aad(store, key), sealed)
    }

    /// Every record of every store, decrypted, and the records that could
    /// not be (reported as `Corrupt`, skipped).
    pub async fn load_all(
        &self,
    ) -> Result<(Vec<(Store, String, Vec<u8>)>, Vec<EngineError>), StorageError> {
        Ok(self.open_records(self.read_all().await?))
    }

    /// Every record of every store, still sealed (the key check excluded),
    /// read in one transaction: to decrypt only what is needed now
    /// ([`Storage::open_records`]).
    pub async fn read_all(&self) -> Result<Records, StorageError> {
        let tx = self
            .db
            .transaction(&store_names(), TransactionMode::ReadOnly)
            .map_err(read_failed)?;
        let mut records = Vec::new();
        for store in Store::ALL {
            let object_store = tx.object_store(store.name()).map_err(read_failed)?;
            // Both in key order, in one transaction: they pair up.
            let keys = object_store.get_all_keys(None, None).map_err(read_failed)?;
            let values = object_store.get_all(None, None).map_err(read_failed)?;
            let (keys, values) = (
                keys.await.map_err(read_failed)?,
                values.await.map_err(read_failed)?,
            );
            for (key, value) in keys.into_iter().zip(values) {
                let key = key.as_string().unwrap_or_default();
                if (store, key.as_str()) == KEYCHECK {
                    continue;
                }
                let sealed = value
                    .dyn_into::<Uint8Array>()
                    .map(|a| a.to_vec())
                    .unwrap_or_default();
                records.push((store, key, sealed));
            }
        }
        tx.await.map_err(read_failed)?;
        Ok(records)
    }

    /// Decrypts records read by [`Storage::read_all`]; those that fail to
    /// open are reported as `Corrupt` and skipped.
    pub fn open_records(&self, sealed: Records) -> (Records, Vec<EngineError>) {
        let mut records = Vec::with_capacity(sealed.len());
        let mut problems = Vec::new();
        for (store, key, sealed) in sealed {
            match self.open_value(store, &key, &sealed) {
                Ok(plain) => records.push((store, key, plain)),
                Err(e) => problems.push(EngineError::Corrupt {
                    store: store.name(),
                    key,
                    reason: format!("{e} (tampered with, or damaged on disk)"),
                }),
            }
        }
        (records, problems)
    }

    /// The records of one document (its entries, doc record, snapshot and value),
    /// for a document another tab created after this one loaded. Reads the
    /// whole log: this happens once per such document.
    pub async fn load_doc(
        &self,
        doc: &str,
    ) -> Result<(Vec<(Store, String, Vec<u8>)>, Vec<EngineError>), StorageError> {
        let (records, problems) = self.load_all().await?;
        let prefix = format!("{doc}/");
        let ours = |store: Store, key: &str| match store {
            Store::Entries => key.starts_with(&prefix),
            Store::Docs | Store::Snapshots | Store::Values => key == doc,
            Store::Meta => false,
        };
        let records = records
            .into_iter()
            .filter(|(store, key, _)| ours(*store, key))
            .collect();
        let problems = problems
            .into_iter()
            .filter(|p| matches!(p, EngineError::Corrupt { store, key, .. } if Store::from_name(store).is_some_and(|s| ours(s, key))))
            .collect();
        Ok((records, problems))
    }

    /// Writes `batches` in one transaction; returns once it commits.
    ///
    /// Only each record's last state is written (a later batch's put or
    /// delete of a key replaces an earlier one; within a batch deletes come
    /// after puts), which is what applying them in order would leave.
    pub async fn write(&self, batches: &[Batch]) -> Result<(), StorageError> {
        let mut last: BTreeMap<(Store, &str), Option<&[u8]>> = BTreeMap::new();
        for batch in batches {
            for (store, key, value) in &batch.puts {
                last.insert((*store, key), Some(value));
            }
            for (store, key) in &batch.deletes {
                last.insert((*store, key), None);
            }
        }
        // Sealed before the transaction opens: a failure here (no random
        // nonce) writes nothing, where one between requests would leave
        // IndexedDB to auto-commit part of the batches.
        let mut sealed = Vec::with_capacity(last.len());
        for ((store, key), value) in last {
            let value = value
                .map(|plain| self.seal_value(store, key, plain))
                .transpose()?;
            sealed.push(((store, key), value));
        }
        let tx = self.write_transaction()?;
        // Requests are issued as they are made and run in order; none is
        // awaited (that would cost a task each): a failed one aborts the
        // transaction, which the commit reports.
        for ((store, key), value) in sealed {
            let object_store = tx.object_store(store.name()).map_err(write_failed)?;
            let js_key = JsValue::from_str(key);
            match value {
                Some(sealed) => {
                    let value: JsValue = Uint8Array::from(sealed.as_slice()).into();
                    object_store
                        .put(&value, Some(&js_key))
                        .map_err(write_failed)?;
                }
                None => {
                    object_store.delete(js_key).map_err(write_failed)?;
                }
            }
        }
        // The transaction's own error says why it failed (a request's error
        // would only say it was aborted): keep a handle on it past `commit`.
        let handle: Transaction = tx
            .object_store(Store::Meta.name())
            .map_err(write_failed)?
            .transaction();
        match tx.commit().map_err(write_failed)?.await {
            Ok(TransactionResult::Committed) => Ok(()),
            failed => Err(match handle.error() {
                Some(e) if e.name() == "QuotaExceededError" => StorageError::QuotaExceeded,
                Some(e) => StorageError::Write(format!("{}: {}", e.name(), e.message())),
                None => StorageError::Write(format!("the transaction did not commit: {failed:?}")),
            }),
        }
    }
}
