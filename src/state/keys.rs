//! The key/value layout of the namespace database, documented once.
//!
//! Integers in keys are fixed-width big-endian so that ordered scans work.
//! Ids are stored raw (16 bytes for the root, 24 for filehandles).
//!
//! | column family | key | value |
//! |---|---|---|
//! | `meta` | ASCII name (`format`, `containerid`, …) | see [`super::Meta`] |
//! | `obj` | id | [`super::ObjRecord`] |
//! | `queue` | queue byte ‖ order u64 ‖ id | empty: work to do, in discovery order |
//! | `dirent` | directory id ‖ index u32 | lv32(name) ‖ lv16(child id): scanned entries |
//! | `backptr` | child id ‖ parent id | u32 count: additional back-pointers |
//! | `hardlink` | st_ino u64 ‖ ftype u8 | id: hard-link candidates (`st_nlink` > 1) |
//!
//! Every unit of work (one directory scan, one object written) is one
//! write batch, so a crash leaves either all of it or none.

use crate::clfs::id::ObjectId;

/// Column family names.
pub const CF_META: &str = "meta";
/// Objects.
pub const CF_OBJ: &str = "obj";
/// Work queues.
pub const CF_QUEUE: &str = "queue";
/// Directory entries of scanned directories not yet written.
pub const CF_DIRENT: &str = "dirent";
/// Additional back-pointers.
pub const CF_BACKPTR: &str = "backptr";
/// Hard-link candidates by source inode.
pub const CF_HARDLINK: &str = "hardlink";
/// All column families.
pub const ALL_CFS: [&str; 6] = [
    CF_META,
    CF_OBJ,
    CF_QUEUE,
    CF_DIRENT,
    CF_BACKPTR,
    CF_HARDLINK,
];

/// The work queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Queue {
    /// Directories to scan.
    Scan = 1,
    /// Objects to write (non-directories, scanned directories).
    Write = 2,
    /// Inodes to rewrite under their final owner.
    Reconcile = 3,
    /// Inodes whose provisional and older blobs must be deleted.
    Cleanup = 4,
}

/// `queue ‖ order ‖ id`.
pub fn queue_key(q: Queue, order: u64, id: &ObjectId) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + id.len());
    k.push(q as u8);
    k.extend_from_slice(&order.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// Splits a queue key into order and id.
pub fn parse_queue_key(k: &[u8]) -> Option<(u8, u64, ObjectId)> {
    if k.len() < 9 {
        return None;
    }
    let order = u64::from_be_bytes(k[1..9].try_into().ok()?);
    Some((k[0], order, ObjectId::from_slice(&k[9..])?))
}

/// `dir ‖ index`.
pub fn dirent_key(dir: &ObjectId, index: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(dir.len() + 4);
    k.extend_from_slice(dir.as_bytes());
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// `child ‖ parent`.
pub fn backptr_key(child: &ObjectId, parent: &ObjectId) -> Vec<u8> {
    let mut k = Vec::with_capacity(48);
    k.push(child.len() as u8);
    k.extend_from_slice(child.as_bytes());
    k.extend_from_slice(parent.as_bytes());
    k
}

/// Prefix of every back-pointer key of `child`.
pub fn backptr_prefix(child: &ObjectId) -> Vec<u8> {
    let mut k = Vec::with_capacity(25);
    k.push(child.len() as u8);
    k.extend_from_slice(child.as_bytes());
    k
}

/// `st_ino ‖ ftype`.
pub fn hardlink_key(ino: u64, ftype: u8) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&ino.to_be_bytes());
    k[8] = ftype;
    k
}
