//! A replica's log on disk: the native counterpart of the browser's
//! IndexedDB store.
//!
//! The engine emits [`Batch`]es that must be applied atomically and in
//! order. [`FileStore`] keeps them in one append-only file, `log`, inside a
//! state directory:
//!
//! ```text
//! "SYNCLOG1"                       8-byte header
//! frame*                           one per batch
//! frame   = len:u32le crc:u32le payload[len]     crc = CRC-32 (IEEE) of payload
//! payload = count:u32le put*  count:u32le delete*
//! put     = store:u8 key:str value:bytes
//! delete  = store:u8 key:str
//! str, bytes = len:u32le raw
//! ```
//!
//! A batch is durable once its frame is written and `fsync`ed; only then is
//! the engine told ([`syncline_core::Engine::persisted`]). On open the frames
//! are replayed in order; the first frame that is incomplete or fails its
//! checksum — a write torn by a crash — ends the log, and the file is cut
//! back to the last whole frame, so a batch is either entirely there or not
//! at all. When most of the file is superseded records, opening rewrites it
//! as one frame into `log.tmp`, `fsync`s it and renames it over `log`.
//!
//! The directory is locked (`lock`, an OS advisory lock) while a store is
//! open, so two processes never append to one log.
//!
//! The log holds document keys. On Unix the state directory (and any parent
//! it has to create) is created 0700 and every file in it 0600; a log left
//! wider by an older version is narrowed to 0600 when opened. A directory
//! that already existed keeps its mode.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use syncline_core::{Batch, Store};

const HEADER: &[u8; 8] = b"SYNCLOG1";
const LOG: &str = "log";
const LOG_TMP: &str = "log.tmp";
const LOCK: &str = "lock";
/// Opening rewrites the log once it is this big and at least twice the size
/// of what it holds.
const COMPACT_MIN_BYTES: u64 = 1 << 20;

/// Why the state directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state directory {}: {action} failed: {source}", dir.display())]
    Io {
        dir: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "state directory {} is in use by another syncline process; wait for it or pass another --state",
        .0.display()
    )]
    Locked(PathBuf),
    #[error(
        "{} is not a syncline log (unknown header); pass an empty or syncline-made --state directory",
        .0.display()
    )]
    NotALog(PathBuf),
}

/// A replica's records, in memory and in an append-only, checksummed,
/// `fsync`ed log file.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    log: File,
    /// Bytes of `log` that hold whole frames.
    len: u64,
    records: BTreeMap<(Store, String), Vec<u8>>,
    /// Held for the lifetime of the store: the directory's lock.
    _lock: File,
}

impl FileStore {
    /// Opens (creating if needed) the store in `dir`, replaying its log.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStore, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let io_err = |action| {
            let dir = dir.clone();
            move |source| StoreError::Io {
                dir,
                action,
                source,
            }
        };
        create_private_dir(&dir).map_err(io_err("creating the directory"))?;
        let lock = private(OpenOptions::new().create(true).truncate(false).write(true))
            .open(dir.join(LOCK))
            .map_err(io_err("opening the lock file"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StoreError::Locked(dir)),
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err("locking")(e)),
        }
        // A leftover from a rewrite that crashed before its rename.
        let _ = std::fs::remove_file(dir.join(LOG_TMP));

        let path = dir.join(LOG);
        let mut log = private(
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .append(true),
        )
        .open(&path)
        .map_err(io_err("opening the log"))?;
        // A log created by an older version may be readable by others.
        narrow(&log).map_err(io_err("narrowing the log's permissions"))?;
        let mut bytes = Vec::new();
        log.read_to_end(&mut bytes)
            .map_err(io_err("reading the log"))?;

        let mut records = BTreeMap::new();
        let len = if bytes.len() < HEADER.len() {
            // New, or torn before its header was complete: start afresh.
            log.set_len(0).map_err(io_err("truncating the log"))?;
            log.write_all(HEADER).map_err(io_err("writing the log"))?;
            log.sync_all().map_err(io_err("syncing the log"))?;
            sync_dir(&dir).map_err(io_err("syncing the directory"))?;
            HEADER.len() as u64
        } else if &bytes[..HEADER.len()] != HEADER {
            return Err(StoreError::NotALog(path));
        } else {
            let valid = replay(&bytes, &mut records) as u64;
            if valid < bytes.len() as u64 {
                // A torn tail: drop it so new frames follow whole ones.
                log.set_len(valid).map_err(io_err("truncating the log"))?;
                log.sync_all().map_err(io_err("syncing the log"))?;
            }
            valid
        };
        let mut store = FileStore {
            dir,
            log,
            len,
            records,
            _lock: lock,
        };
        let live: u64 = store
            .records
            .iter()
            .map(|((_, k), v)| (k.len() + v.len() + 9) as u64)
            .sum();
        if store.len >= COMPACT_MIN_BYTES && store.len > 2 * live {
            store.compact()?;
        }
        Ok(store)
    }

    /// The directory this store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Size of the log file in bytes.
    pub fn log_len(&self) -> u64 {
        self.len
    }

    /// Applies `batch` atomically and durably: when this returns `Ok`, the
    /// whole batch survives a crash; when it fails, none of it is visible,
    /// now or after a restart.
    pub fn apply(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let frame = frame(batch);
        let written = self
            .log
            .write_all(&frame)
            .and_then(|()| self.log.sync_data());
        if let Err(source) = written {
            // Cut off whatever part of the frame reached the file, so the
            // next batch does not land behind a torn one.
            let _ = self.log.set_len(self.len);
            return Err(StoreError::Io {
                dir: self.dir.clone(),
                action: "appending to the log",
                source,
            });
        }
        self.len += frame.len() as u64;
        apply_to(&mut self.records, batch);
        Ok(())
    }

    /// Every record, as [`syncline_core::Engine::load`] takes them.
    pub fn records(&self) -> Vec<(Store, String, Vec<u8>)> {
        self.records
            .iter()
            .map(|((s, k), v)| (*s, k.clone(), v.clone()))
            .collect()
    }

    /// Rewrites the log as a single frame holding the current records:
    /// written to `log.tmp`, synced, then renamed over `log`.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        let io_err = |action| {
            let dir = self.dir.clone();
            move |source| StoreError::Io {
                dir,
                action,
                source,
            }
        };
        let all = Batch {
            puts: self.records(),
            ..Batch::default()
        };
        let mut bytes = HEADER.to_vec();
        if !all.is_empty() {
            bytes.extend(frame(&all));
        }
        let tmp = self.dir.join(LOG_TMP);
        let mut file = private(OpenOptions::new().write(true).create(true).truncate(true))
            .open(&tmp)
            .map_err(io_err("writing log.tmp"))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io_err("writing log.tmp"))?;
        drop(file);
        let path = self.dir.join(LOG);
        std::fs::rename(&tmp, &path).map_err(io_err("renaming log.tmp"))?;
        sync_dir(&self.dir).map_err(io_err("syncing the directory"))?;
        self.log = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io_err("reopening the log"))?;
        self.len = bytes.len() as u64;
        Ok(())
    }
}

fn apply_to(records: &mut BTreeMap<(Store, String), Vec<u8>>, batch: &Batch) {
    for (store, key, value) in &batch.puts {
        records.insert((*store, key.clone()), value.clone());
    }
    for (store, key) in &batch.deletes {
        records.remove(&(*store, key.clone()));
    }
}

/// Replays every whole, intact frame after the header into `records`;
/// returns the length of the valid prefix of `bytes`.
fn replay(bytes: &[u8], records: &mut BTreeMap<(Store, String), Vec<u8>>) -> usize {
    let mut at = HEADER.len();
    loop {
        let Some(header) = bytes.get(at..at + 8) else {
            return at;
        };
        let len = u32::from_le_bytes(header[..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().unwrap_or_default());
        let Some(payload) = bytes.get(at + 8..(at + 8).saturating_add(len)) else {
            return at;
        };
        if crc32(payload) != crc {
            return at;
        }
        let Some(batch) = decode_payload(payload) else {
            return at;
        };
        apply_to(records, &batch);
        at += 8 + len;
    }
}

fn frame(batch: &Batch) -> Vec<u8> {
    let mut payload = Vec::new();
    put_u32(&mut payload, batch.puts.len());
    for (store, key, value) in &batch.puts {
        payload.push(store_tag(*store));
        put_bytes(&mut payload, key.as_bytes());
        put_bytes(&mut payload, value);
    }
    put_u32(&mut payload, batch.deletes.len());
    for (store, key) in &batch.deletes {
        payload.push(store_tag(*store));
        put_bytes(&mut payload, key.as_bytes());
    }
    let mut out = Vec::with_capacity(payload.len() + 8);
    put_u32(&mut out, payload.len());
    out.extend(crc32(&payload).to_le_bytes());
    out.extend(payload);
    out
}

fn decode_payload(mut input: &[u8]) -> Option<Batch> {
    let mut batch = Batch::default();
    for _ in 0..take_u32(&mut input)? {
        let store = take_store(&mut input)?;
        let key = String::from_utf8(take_bytes(&mut input)?.to_vec()).ok()?;
        let value = take_bytes(&mut input)?.to_vec();
        batch.puts.push((store, key, value));
    }
    for _ in 0..take_u32(&mut input)? {
        let store = take_store(&mut input)?;
        let key = String::from_utf8(take_bytes(&mut input)?.to_vec()).ok()?;
        batch.deletes.push((store, key));
    }
    input.is_empty().then_some(batch)
}

fn store_tag(store: Store) -> u8 {
    Store::ALL.iter().position(|s| *s == store).unwrap_or(0) as u8
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend((n as u32).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.extend(bytes);
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if input.len() < n {
        return None;
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Some(head)
}

fn take_u32(input: &mut &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(take(input, 4)?.try_into().ok()?))
}

fn take_bytes<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = take_u32(input)? as usize;
    take(input, n)
}

fn take_store(input: &mut &[u8]) -> Option<Store> {
    Store::ALL.get(*take(input, 1)?.first()? as usize).copied()
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Creates `dir` and any missing parent as owner-only (0700 on Unix); a
/// directory that already exists keeps its mode (it may be the user's).
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Files it creates are owner-only (0600 on Unix): the log holds document
/// keys.
fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(options, 0o600);
    options
}

/// Takes away group and other permissions from an open file (Unix).
fn narrow(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// Makes a rename or a file creation in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(puts: &[(&str, &str)], deletes: &[&str]) -> Batch {
        Batch {
            id: 0,
            puts: puts
                .iter()
                .map(|(k, v)| (Store::Entries, k.to_string(), v.as_bytes().to_vec()))
                .collect(),
            deletes: deletes
                .iter()
                .map(|k| (Store::Entries, k.to_string()))
                .collect(),
        }
    }

    fn contents(store: &FileStore) -> Vec<(String, String)> {
        store
            .records()
            .into_iter()
            .map(|(_, k, v)| (k, String::from_utf8(v).unwrap()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn batches_survive_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = FileStore::open(dir.path()).unwrap();
            store.apply(&batch(&[("a", "1"), ("b", "2")], &[])).unwrap();
            store.apply(&batch(&[("a", "3")], &["b"])).unwrap();
            store.apply(&Batch::default()).unwrap();
        }
        let store = FileStore::open(dir.path()).unwrap();
        assert_eq!(contents(&store), pairs(&[("a", "3")]));
    }

    #[test]
    fn a_torn_last_batch_leaves_the_previous_state() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(LOG);
        let after_first = {
            let mut store = FileStore::open(dir.path()).unwrap();
            store.apply(&batch(&[("a", "1"), ("b", "2")], &[])).unwrap();
            let after_first = store.log_len();
            store
                .apply(&batch(&[("a", "changed"), ("c", "3")], &["b"]))
                .unwrap();
            after_first
        };
        let full = std::fs::read(&log).unwrap();
        // Cut the second frame at every possible point: a crash mid-write.
        for cut in after_first as usize..full.len() {
            std::fs::write(&log, &full[..cut]).unwrap();
            let mut store = FileStore::open(dir.path()).unwrap();
            assert_eq!(
                contents(&store),
                pairs(&[("a", "1"), ("b", "2")]),
                "cut at {cut}"
            );
            assert_eq!(store.log_len(), after_first, "the torn tail is dropped");
            // New batches go after the last whole one and are readable.
            store.apply(&batch(&[("d", "4")], &[])).unwrap();
            drop(store);
            let store = FileStore::open(dir.path()).unwrap();
            assert_eq!(
                contents(&store),
                pairs(&[("a", "1"), ("b", "2"), ("d", "4")])
            );
        }
    }

    #[test]
    fn a_corrupted_batch_and_everything_after_it_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(LOG);
        let after_first = {
            let mut store = FileStore::open(dir.path()).unwrap();
            store.apply(&batch(&[("a", "1")], &[])).unwrap();
            let after_first = store.log_len();
            store.apply(&batch(&[("a", "2")], &[])).unwrap();
            store.apply(&batch(&[("b", "3")], &[])).unwrap();
            after_first
        };
        let mut bytes = std::fs::read(&log).unwrap();
        let last = bytes.len() - 1;
        bytes[after_first as usize + 12] ^= 0x55; // inside the second payload
        bytes[last] ^= 0x01;
        std::fs::write(&log, &bytes).unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        assert_eq!(contents(&store), pairs(&[("a", "1")]));
    }

    #[test]
    fn a_log_torn_inside_its_header_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOG), &HEADER[..3]).unwrap();
        let mut store = FileStore::open(dir.path()).unwrap();
        assert!(store.records().is_empty());
        store.apply(&batch(&[("a", "1")], &[])).unwrap();
        drop(store);
        let store = FileStore::open(dir.path()).unwrap();
        assert_eq!(contents(&store), pairs(&[("a", "1")]));
    }

    #[test]
    fn a_foreign_file_is_refused_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOG), b"something else entirely").unwrap();
        let err = FileStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::NotALog(_)), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join(LOG)).unwrap(),
            b"something else entirely"
        );
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = FileStore::open(dir.path()).unwrap();
        let err = FileStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Locked(_)), "{err}");
        assert!(err.to_string().contains("in use"), "{err}");
    }

    #[test]
    fn compaction_keeps_the_records_and_shrinks_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let value = "x".repeat(4096);
        {
            let mut store = FileStore::open(dir.path()).unwrap();
            for i in 0..400 {
                store
                    .apply(&batch(&[("same", &format!("{i}{value}"))], &[]))
                    .unwrap();
            }
            store.apply(&batch(&[("other", "o")], &[])).unwrap();
            assert!(store.log_len() > COMPACT_MIN_BYTES);
        }
        // A crashed earlier rewrite leaves a stray temp file: ignored.
        std::fs::write(dir.path().join(LOG_TMP), b"junk").unwrap();
        let mut store = FileStore::open(dir.path()).unwrap();
        assert!(store.log_len() < 10_000, "rewritten: {}", store.log_len());
        assert!(!dir.path().join(LOG_TMP).exists());
        let expected = vec![
            ("other".to_string(), "o".to_string()),
            ("same".to_string(), format!("399{value}")),
        ];
        assert_eq!(contents(&store), expected);
        store.apply(&batch(&[("new", "n")], &[])).unwrap();
        drop(store);
        let store = FileStore::open(dir.path()).unwrap();
        assert_eq!(contents(&store).len(), 3);
    }

    /// The log holds document keys: a new state directory and every file in
    /// it are for the owner only.
    #[cfg(unix)]
    #[test]
    fn the_state_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("nested").join("state");
        {
            let mut store = FileStore::open(&dir).unwrap();
            store.apply(&batch(&[("k", "v")], &[])).unwrap();
        }
        assert_eq!(mode(&dir), 0o700, "a new state directory");
        assert_eq!(mode(&root.path().join("nested")), 0o700, "a new parent");
        assert_eq!(mode(&dir.join(LOG)), 0o600, "the log");
        assert_eq!(mode(&dir.join(LOCK)), 0o600, "the lock file");

        // A log left wider (by an older version) is narrowed; a directory
        // that already existed is the user's and keeps its mode.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.join(LOG), std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut store = FileStore::open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o755, "an existing directory is left alone");
        assert_eq!(mode(&dir.join(LOG)), 0o600);

        // So is a rewritten log (compaction writes log.tmp, renamed over log).
        store.compact().unwrap();
        assert_eq!(mode(&dir.join(LOG)), 0o600, "the compacted log");
    }
}
