//! The key/value layout of a staging volume's database, documented once.
//!
//! Keys use fixed-width **big-endian** integers so that ordered scans work
//! (a directory's entries are one prefix scan, in name-byte order). Values
//! are little-endian like the rest of the codec.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `meta` | ASCII name: `next_ino`, `change_seq` | u64 LE |
//! | `meta` | `open/` ‖ ino u64 BE | empty: a regular file open for writing whose data file may be ahead of its record |
//! | `inode` | ino u64 BE | [`super::record::Inode`] (versioned encoding) |
//! | `dirent` | parent ino u64 BE ‖ name bytes | child ino u64 LE ‖ ftype u8 |
//! | `backptr` | child ino u64 BE ‖ parent ino u64 BE | u32 LE count (names of child in parent) |
//! | `deleted` | ino u64 BE | [`super::record::Deleted`] |
//! | `orphan` | ino u64 BE | empty: nlink 0, still open when it was unlinked |
//! | `sync` | free-form (owned by `sync`) | free-form |
//!
//! Every operation is one write batch that also stores the updated
//! `next_ino` / `change_seq` counters, so a crash leaves all of an
//! operation or none of it.

/// Counters.
pub const CF_META: &str = "meta";
/// Inode records.
pub const CF_INODE: &str = "inode";
/// Directory entries.
pub const CF_DIRENT: &str = "dirent";
/// Back-pointers (child → parents, with counts).
pub const CF_BACKPTR: &str = "backptr";
/// Inodes deleted since the last sync.
pub const CF_DELETED: &str = "deleted";
/// Unlinked inodes that were still open.
pub const CF_ORPHAN: &str = "orphan";
/// State kept by `clfs-fs sync` (the volume never reads it).
pub const CF_SYNC: &str = "sync";
/// All column families.
pub const ALL_CFS: [&str; 7] = [
    CF_META, CF_INODE, CF_DIRENT, CF_BACKPTR, CF_DELETED, CF_ORPHAN, CF_SYNC,
];

/// `meta` key of the next inode number to hand out.
pub const META_NEXT_INO: &[u8] = b"next_ino";
/// `meta` key of the last change sequence number handed out.
pub const META_CHANGE_SEQ: &[u8] = b"change_seq";

/// `meta` prefix of the open-for-writing marks.
pub const META_OPEN_PREFIX: &[u8] = b"open/";

/// `open/ ‖ ino`.
pub fn open_mark_key(ino: u64) -> Vec<u8> {
    let mut k = META_OPEN_PREFIX.to_vec();
    k.extend_from_slice(&ino.to_be_bytes());
    k
}

/// An inode key (also the `deleted` and `orphan` keys).
pub fn ino_key(ino: u64) -> [u8; 8] {
    ino.to_be_bytes()
}

/// Parses an inode key.
pub fn parse_ino_key(k: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(k.try_into().ok()?))
}

/// `parent ‖ name`.
pub fn dirent_key(parent: u64, name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + name.len());
    k.extend_from_slice(&parent.to_be_bytes());
    k.extend_from_slice(name);
    k
}

/// Splits a dirent key into parent and name.
pub fn parse_dirent_key(k: &[u8]) -> Option<(u64, &[u8])> {
    if k.len() < 9 {
        return None;
    }
    Some((u64::from_be_bytes(k[..8].try_into().ok()?), &k[8..]))
}

/// A dirent value: `child ino LE ‖ ftype`.
pub fn dirent_value(child: u64, ftype: u8) -> [u8; 9] {
    let mut v = [0u8; 9];
    v[..8].copy_from_slice(&child.to_le_bytes());
    v[8] = ftype;
    v
}

/// Parses a dirent value.
pub fn parse_dirent_value(v: &[u8]) -> Option<(u64, u8)> {
    if v.len() != 9 {
        return None;
    }
    Some((u64::from_le_bytes(v[..8].try_into().ok()?), v[8]))
}

/// `child ‖ parent`.
pub fn backptr_key(child: u64, parent: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&child.to_be_bytes());
    k[8..].copy_from_slice(&parent.to_be_bytes());
    k
}

/// Splits a back-pointer key into child and parent.
pub fn parse_backptr_key(k: &[u8]) -> Option<(u64, u64)> {
    if k.len() != 16 {
        return None;
    }
    Some((
        u64::from_be_bytes(k[..8].try_into().ok()?),
        u64::from_be_bytes(k[8..].try_into().ok()?),
    ))
}

/// A u64 LE value.
pub fn parse_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(v.try_into().ok()?))
}

/// A u32 LE value.
pub fn parse_u32(v: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(v.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn dirent_keys_round_trip(parent in any::<u64>(), name in proptest::collection::vec(any::<u8>(), 1..300)) {
            let k = dirent_key(parent, &name);
            let (p, n) = parse_dirent_key(&k).unwrap();
            prop_assert_eq!(p, parent);
            prop_assert_eq!(n, &name[..]);
        }

        #[test]
        fn dirent_values_and_backptrs_round_trip(a in any::<u64>(), b in any::<u64>(), t in any::<u8>()) {
            prop_assert_eq!(parse_dirent_value(&dirent_value(a, t)), Some((a, t)));
            prop_assert_eq!(parse_backptr_key(&backptr_key(a, b)), Some((a, b)));
            prop_assert_eq!(parse_ino_key(&ino_key(a)), Some(a));
        }

        #[test]
        fn keys_of_one_directory_sort_by_name(p in any::<u64>(), a in proptest::collection::vec(any::<u8>(), 1..20), b in proptest::collection::vec(any::<u8>(), 1..20)) {
            prop_assert_eq!(dirent_key(p, &a).cmp(&dirent_key(p, &b)), a.cmp(&b));
            if p < u64::MAX {
                prop_assert!(dirent_key(p, &a) < dirent_key(p + 1, &b));
            }
        }
    }
}
