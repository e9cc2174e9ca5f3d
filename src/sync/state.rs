//! The sync's own records, kept in the volume's `sync` column family so
//! that they change in the same write batches as the volume's `deleted`
//! records.
//!
//! | key | value |
//! |---|---|
//! | `meta` | [`SyncMeta`] as JSON |
//! | `i` ‖ ino u64 BE | [`SyncedInode`]: what the container holds of the inode |
//! | `t` ‖ ino u64 BE | [`SyncedInode`]: an intent, written before the inode's blobs |
//! | `g` ‖ blob name | empty: a superseded blob, deleted after the root is updated |
//!
//! An intent names the blobs a write may leave behind if it is
//! interrupted: a rerun that writes the inode differently (the volume
//! changed in between) turns the difference into garbage.

use crate::clfs::name::BlobName;
use crate::emit::build::IdDeriver;
use crate::volume::{Volume, VolumeResult};

use super::record::{SyncMeta, SyncedInode};
use super::SyncError;

const META_KEY: &[u8] = b"meta";
const SYNCED: u8 = b'i';
const INTENT: u8 = b't';
const GARBAGE: u8 = b'g';

fn ino_key(kind: u8, ino: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(kind);
    k.extend_from_slice(&ino.to_be_bytes());
    k
}

fn garbage_key(name: &BlobName) -> Vec<u8> {
    let mut k = vec![GARBAGE];
    k.extend_from_slice(name.to_string().as_bytes());
    k
}

/// Changes to the sync records, applied in one batch.
#[derive(Debug, Default)]
pub struct Changes {
    puts: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    cleared: Vec<u64>,
}

impl Changes {
    /// Nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.cleared.is_empty()
    }

    /// Number of changes.
    pub fn len(&self) -> usize {
        self.puts.len() + self.cleared.len()
    }

    /// Records the meta.
    pub fn meta(&mut self, m: &SyncMeta) -> Result<(), SyncError> {
        let v = serde_json::to_vec(m).map_err(|e| SyncError::Fatal(format!("sync meta: {e}")))?;
        self.puts.push((META_KEY.to_vec(), Some(v)));
        Ok(())
    }

    /// Records what the container holds of `ino`.
    pub fn synced(&mut self, ino: u64, r: &SyncedInode) {
        self.puts.push((ino_key(SYNCED, ino), Some(r.encode())));
    }

    /// Forgets `ino` (deleted from the container).
    pub fn forget(&mut self, ino: u64) {
        self.puts.push((ino_key(SYNCED, ino), None));
    }

    /// Records an intent.
    pub fn intent(&mut self, ino: u64, r: &SyncedInode) {
        self.puts.push((ino_key(INTENT, ino), Some(r.encode())));
    }

    /// Drops the intent of `ino`.
    pub fn intent_done(&mut self, ino: u64) {
        self.puts.push((ino_key(INTENT, ino), None));
    }

    /// Queues a blob for deletion after the root is updated.
    pub fn garbage(&mut self, name: &BlobName) {
        self.puts.push((garbage_key(name), Some(Vec::new())));
    }

    /// The blobs of `old` that `new` does not reuse become garbage.
    pub fn supersede(&mut self, old: &SyncedInode, new: Option<&SyncedInode>, secret: &IdDeriver) {
        let keep = new.map(|n| n.blob_names(secret)).unwrap_or_default();
        for name in old.blob_names(secret) {
            if !keep.contains(&name) {
                self.garbage(&name);
            }
        }
    }

    /// A garbage blob was deleted.
    pub fn garbage_done(&mut self, name: &str) {
        let mut k = vec![GARBAGE];
        k.extend_from_slice(name.as_bytes());
        self.puts.push((k, None));
    }

    /// Consumes the volume's `deleted` record of `ino`.
    pub fn clear_deleted(&mut self, ino: u64) {
        self.cleared.push(ino);
    }
}

/// The sync records of one volume.
#[derive(Debug)]
pub struct SyncState<'a> {
    vol: &'a Volume,
}

impl<'a> SyncState<'a> {
    /// The records of `vol`.
    pub fn new(vol: &'a Volume) -> Self {
        SyncState { vol }
    }

    /// The meta, if a sync ever started.
    pub fn meta(&self) -> Result<Option<SyncMeta>, SyncError> {
        match self.vol.sync_get(META_KEY)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| SyncError::Fatal(format!("sync meta of the volume is corrupt: {e}"))),
        }
    }

    fn record(&self, kind: u8, ino: u64) -> Result<Option<SyncedInode>, SyncError> {
        match self.vol.sync_get(&ino_key(kind, ino))? {
            None => Ok(None),
            Some(v) => SyncedInode::decode(&v).map(Some).map_err(|e| {
                SyncError::Fatal(format!("sync record of inode {ino} is corrupt: {e}"))
            }),
        }
    }

    /// What the container holds of `ino`.
    pub fn synced(&self, ino: u64) -> Result<Option<SyncedInode>, SyncError> {
        self.record(SYNCED, ino)
    }

    /// The intent left for `ino` by an interrupted write.
    pub fn intent(&self, ino: u64) -> Result<Option<SyncedInode>, SyncError> {
        self.record(INTENT, ino)
    }

    /// Up to `max` garbage blob names.
    pub fn garbage(&self, max: usize) -> VolumeResult<Vec<String>> {
        let mut out = Vec::new();
        self.vol.sync_scan(&[GARBAGE], |k, _| {
            out.push(String::from_utf8_lossy(&k[1..]).into_owned());
            out.len() < max
        })?;
        Ok(out)
    }

    /// Every key of the sync records (to forget them all).
    pub fn all_keys(&self) -> VolumeResult<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        self.vol.sync_scan(&[], |k, _| {
            out.push(k.to_vec());
            true
        })?;
        Ok(out)
    }

    /// Applies `c` in one synced batch.
    pub fn apply(&self, c: Changes) -> VolumeResult<()> {
        if c.is_empty() {
            return Ok(());
        }
        self.vol.sync_write(&c.puts, &c.cleared)
    }

    /// Deletes the given keys in one batch.
    pub fn delete_keys(&self, keys: Vec<Vec<u8>>) -> VolumeResult<()> {
        let puts: Vec<_> = keys.into_iter().map(|k| (k, None)).collect();
        self.vol.sync_write(&puts, &[])
    }
}
