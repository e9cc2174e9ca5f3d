//! `sync`: a staging volume ([`crate::volume`]) into a CLFS container —
//! the whole namespace the first time, then only what changed.
//!
//! # What a sync writes
//!
//! The objects are built by the load's builders ([`crate::emit::build`],
//! [`crate::emit::writer`]), so a synced inode has the bytes a load of the
//! same namespace would give it. The first sync writes the bucket object,
//! every inode (files with inline data, 8 MiB segments and indirect
//! blocks; symlinks; special files; directories with their segments) at
//! version 9, and the root last: under its `tmp` name, then published
//! under its final name. A later sync writes only the inodes whose
//! volume `change_seq` differs from the one it recorded — created,
//! written, truncated, chmod-ed, renamed, linked or unlinked inodes and
//! the directories whose entries changed — each at its previous version
//! plus one (readers take the highest version, spec §2.7), with fresh
//! segment ids, so the previous version stays whole until it is
//! superseded. Once every write is acknowledged and the root (if it
//! changed) is written, the superseded blobs and every blob of the
//! inodes deleted from the volume are removed.
//!
//! # Crash safety
//!
//! Records live in the volume's `sync` column family ([`state`]). Before
//! an inode's blobs are put, an intent names them; after the store
//! acknowledged them, one batch records the inode as synced, drops the
//! intent and queues the superseded blobs as garbage. A rerun after a
//! kill at any point rewrites what was not recorded (same names: blind
//! overwrites), turns blobs an interrupted write left and no longer needs
//! into garbage, and deletes garbage only after the root is updated.
//!
//! # The volume must not be mounted
//!
//! A sync opens the volume's database exclusively, so a mounted volume
//! (or a second sync) is refused with a message to unmount it first; a
//! sync therefore always commits one consistent state of the namespace.

pub mod engine;
pub mod record;
pub mod state;

use std::path::PathBuf;

use crate::clfs::error::EncodeError;
use crate::store::StoreError;
use crate::volume::VolumeError;

/// Errors that stop a sync (per-object failures are counted instead).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The request does not fit the volume or the container.
    #[error("{0}")]
    Usage(String),
    /// The volume is mounted or another sync runs.
    #[error(
        "volume {} is in use: it is mounted, or another sync is running; unmount it first \
         (fusermount3 -u MOUNTPOINT), then run the sync again",
        path.display()
    )]
    InUse {
        /// The volume folder.
        path: PathBuf,
    },
    /// The volume failed.
    #[error(transparent)]
    Volume(VolumeError),
    /// The container failed in a way that stops the sync.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Encoding failed where no inode can be blamed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Something that must not happen (corrupt records, a failed task).
    #[error("{0}")]
    Fatal(String),
}

impl From<VolumeError> for SyncError {
    fn from(e: VolumeError) -> Self {
        match e {
            VolumeError::InUse { path } => SyncError::InUse { path },
            other => SyncError::Volume(other),
        }
    }
}
