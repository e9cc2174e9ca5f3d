//! What a sync remembers of each inode it wrote: the record's byte
//! encoding (the blob names it implies are listed by the `sync` module,
//! which needs RocksDB).

use crate::clfs::bytes::ByteWriter;
use crate::clfs::error::{DecodeError, DecodeResult};
use crate::clfs::id::{ObjectId, ROOT};
use crate::clfs::name::{BlobName, Btype};

/// One inode as a sync wrote it (or, as an intent, is about to write it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedInode {
    /// Its CLFS id (the root's well-known id, or a filehandle).
    pub id: ObjectId,
    /// Its Btype.
    pub btype: Btype,
    /// The owner in its inode blob's name (`..` or the first
    /// back-pointer).
    pub owner: ObjectId,
    /// The version of its inode blob.
    pub version: u64,
    /// Data or directory segments written beside the inode.
    pub segments: u64,
    /// The volume's change sequence number of what was written.
    pub change_seq: u64,
}

const RECORD_VERSION: u8 = 1;

impl SyncedInode {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = ByteWriter::new(Vec::with_capacity(80));
        w.u8(RECORD_VERSION);
        w.id16(&self.id);
        w.u16(self.btype.code());
        w.id16(&self.owner);
        w.u64(self.version);
        w.u64(self.segments);
        w.u64(self.change_seq);
        w.buf
    }

    /// Decodes a record.
    pub fn decode(b: &[u8]) -> DecodeResult<Self> {
        let mut r = super::versioned_reader(b, RECORD_VERSION)?;
        let id = r.id16("id")?;
        let at = r.offset();
        let btype = Btype::from_code(r.u16("btype")?)
            .filter(|b| b.is_inode())
            .ok_or_else(|| DecodeError::invalid(at, "btype", "not an inode type"))?;
        let owner = r.id16("owner")?;
        let version = r.u64("version")?;
        let segments = r.u64("segments")?;
        let change_seq = r.u64("change_seq")?;
        r.finish("synced inode")?;
        Ok(SyncedInode {
            id,
            btype,
            owner,
            version,
            segments,
            change_seq,
        })
    }

    /// The name of its inode blob (the root's final name for the root).
    pub fn inode_name(&self) -> BlobName {
        let owner = if self.id == ROOT { ROOT } else { self.owner };
        BlobName::v2(self.id, self.btype, &owner, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::super::any_id;
    use super::*;
    use proptest::prelude::*;

    fn any_btype() -> impl Strategy<Value = Btype> {
        (1u16..=7).prop_map(|c| Btype::from_code(c).unwrap_or(Btype::Reg))
    }

    proptest! {
        #[test]
        fn records_round_trip(
            id in any_id(), owner in any_id(), btype in any_btype(),
            nums in any::<(u64, u64, u64)>(),
        ) {
            let r = SyncedInode {
                id, btype, owner, version: nums.0, segments: nums.1, change_seq: nums.2,
            };
            prop_assert_eq!(SyncedInode::decode(&r.encode()).unwrap(), r);
        }

        #[test]
        fn decoding_garbage_never_panics(b in prop::collection::vec(any::<u8>(), 0..120)) {
            let _ = SyncedInode::decode(&b);
        }
    }
}
