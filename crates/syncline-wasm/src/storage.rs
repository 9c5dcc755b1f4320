//! The replica's event log in IndexedDB, through rexie.
//!
//! One database per repo name (`syncline:<name>`), one object store per
//! [`syncline_core::Store`], values as `Uint8Array`s under string keys. The
//! engine's batches are written in order inside a single read-write
//! transaction, which IndexedDB commits atomically.

use js_sys::Uint8Array;
use rexie::{ObjectStore, Rexie, TransactionMode};
use syncline_core::{Batch, Store};
use wasm_bindgen::{JsCast, JsValue};

use crate::errors::StorageError;

const DB_VERSION: u32 = 2; // 2: adds the snapshots store

pub struct Storage {
    db: Rexie,
}

fn store_names() -> Vec<&'static str> {
    Store::ALL.iter().map(|s| s.name()).collect()
}

impl Storage {
    pub async fn open(name: &str) -> Result<Storage, StorageError> {
        let db_name = format!("syncline:{name}");
        let mut builder = Rexie::builder(&db_name).version(DB_VERSION);
        for store in store_names() {
            builder = builder.add_object_store(ObjectStore::new(store));
        }
        let db = builder.build().await.map_err(|e| StorageError::Open {
            name: db_name,
            reason: format!("{e:?}"),
        })?;
        Ok(Storage { db })
    }

    /// Every record of every store.
    pub async fn load_all(&self) -> Result<Vec<(Store, String, Vec<u8>)>, StorageError> {
        let read = |e: rexie::Error| StorageError::Read(format!("{e:?}"));
        let tx = self
            .db
            .transaction(&store_names(), TransactionMode::ReadOnly)
            .map_err(read)?;
        let mut records = Vec::new();
        for store in Store::ALL {
            let rows = tx
                .store(store.name())
                .map_err(read)?
                .scan(None, None, None, None)
                .await
                .map_err(read)?;
            for (key, value) in rows {
                let key = key.as_string().unwrap_or_default();
                let bytes = value
                    .dyn_into::<Uint8Array>()
                    .map(|a| a.to_vec())
                    .unwrap_or_default();
                records.push((store, key, bytes));
            }
        }
        tx.done().await.map_err(read)?;
        Ok(records)
    }

    /// Writes `batches` in order, in one transaction; returns once it commits.
    pub async fn write(&self, batches: &[Batch]) -> Result<(), StorageError> {
        let write = |e: rexie::Error| StorageError::Write(format!("{e:?}"));
        let tx = self
            .db
            .transaction(&store_names(), TransactionMode::ReadWrite)
            .map_err(write)?;
        for batch in batches {
            for (store, key, value) in &batch.puts {
                let value: JsValue = Uint8Array::from(value.as_slice()).into();
                tx.store(store.name())
                    .map_err(write)?
                    .put(&value, Some(&JsValue::from_str(key)))
                    .await
                    .map_err(write)?;
            }
            for (store, key) in &batch.deletes {
                tx.store(store.name())
                    .map_err(write)?
                    .delete(JsValue::from_str(key))
                    .await
                    .map_err(write)?;
            }
        }
        tx.commit().await.map_err(write)
    }
}
