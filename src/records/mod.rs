//! The byte encodings of the records kept in RocksDB: a staging volume's
//! inodes and deletions ([`volume`]), a load's per-object state
//! ([`load`]) and what a sync wrote of each inode ([`sync`]). Pure codecs
//! like [`crate::clfs`], built without RocksDB so that the fuzz targets
//! can decode them: the databases are read from disk, where anything can
//! be found.

pub mod load;
pub mod sync;
pub mod volume;

use crate::clfs::bytes::ByteReader;
use crate::clfs::error::{DecodeError, DecodeResult};

/// A reader of record `b` past its leading version byte, which must be
/// `version`.
fn versioned_reader(b: &[u8], version: u8) -> DecodeResult<ByteReader<'_>> {
    let mut r = ByteReader::new(b, 0);
    let v = r.u8("record version")?;
    if v != version {
        return Err(DecodeError::invalid(0, "record version", v.to_string()));
    }
    Ok(r)
}

/// Any CLFS id (16-byte or 24-byte), for the records' property tests.
#[cfg(test)]
fn any_id() -> impl proptest::strategy::Strategy<Value = crate::clfs::id::ObjectId> {
    use crate::clfs::id::ObjectId;
    use proptest::prelude::*;
    prop_oneof![
        any::<[u8; 16]>().prop_map(ObjectId::from_16),
        any::<[u8; 24]>().prop_map(ObjectId::from_24),
    ]
}
