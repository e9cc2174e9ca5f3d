//! What a sync remembers of each inode it wrote, and of the container it
//! writes to, and the blob names an inode's objects have.
//!
//! An inode's blobs are a function of what is recorded here: its inode
//! blob is named by (id, Btype, owner, version); its segments and indirect
//! blocks have ids derived from the sync's secret, the id, the version and
//! their position (`IdDeriver::for_version`), so the whole set can be
//! listed again from the record to delete it once superseded.

use serde::{Deserialize, Serialize};

use crate::clfs::bytes::{ByteReader, ByteWriter};
use crate::clfs::error::{DecodeError, DecodeResult};
use crate::clfs::id::{ObjectId, ROOT};
use crate::clfs::layout::BlockMapBuilder;
use crate::clfs::name::{BlobName, Btype, FIRST_VERSION};
use crate::emit::build::IdDeriver;

/// Format of the sync state; a sync refuses any other value.
pub const SYNC_FORMAT: u32 = 1;

/// Where a sync stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SyncPhase {
    /// No sync in progress.
    Idle,
    /// Objects are being written; the root is not yet updated.
    Writing,
    /// The root is updated; superseded blobs are being deleted.
    Cleaning,
}

/// The sync's parameters and progress, one per volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncMeta {
    /// [`SYNC_FORMAT`].
    pub format: u32,
    /// The container (its location without any secret).
    pub target: String,
    /// UUID of the bucket object.
    pub bucket_uuid: String,
    /// The root's `massUUID`, kept across syncs.
    pub mass_uuid: String,
    /// The root's `wipeEpoch`, kept across syncs.
    pub wipe_epoch: String,
    /// Secret for deriving segment and indirect-block ids (hex).
    pub id_secret_hex: String,
    /// True once the bucket object is stored.
    pub bucket_written: bool,
    /// True once the root was published under its final name.
    pub published: bool,
    /// Where the current sync stands.
    pub phase: SyncPhase,
    /// Highest change sequence number the last finished sync covered.
    pub synced_seq: u64,
    /// Finished syncs.
    pub syncs: u64,
}

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
        let mut r = ByteReader::new(b, 0);
        let v = r.u8("record version")?;
        if v != RECORD_VERSION {
            return Err(DecodeError::invalid(0, "record version", v.to_string()));
        }
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

    /// Every blob of this inode: its inode blob, then its segments and
    /// indirect blocks (derived from `secret` as the writer derived them).
    pub fn blob_names(&self, secret: &IdDeriver) -> Vec<BlobName> {
        let mut out = vec![self.inode_name()];
        let derive = secret.for_version(self.version);
        let (seg, ind) = if self.btype == Btype::Dir {
            (&b"dseg"[..], &b"dind"[..])
        } else {
            (&b"seg"[..], &b"ind"[..])
        };
        // The block map decides how many indirect blocks the segments
        // needed; replay it with the same ids.
        let mut bm = BlockMapBuilder::new(self.id);
        let mut n_ind = 0u64;
        for k in 1..=self.segments {
            let sid = derive.id(&self.id, seg, k);
            out.push(BlobName::v2(sid, Btype::Segment, &self.id, FIRST_VERSION));
            let mut new_ind = || {
                n_ind += 1;
                derive.id(&self.id, ind, n_ind)
            };
            if bm.push(sid, &mut new_ind).is_err() {
                break;
            }
        }
        let mut new_ind = || {
            n_ind += 1;
            derive.id(&self.id, ind, n_ind)
        };
        let _ = bm.finish(&mut new_ind);
        for n in 1..=n_ind {
            out.push(BlobName::v2(
                derive.id(&self.id, ind, n),
                Btype::Indirect,
                &self.id,
                FIRST_VERSION,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_id() -> impl Strategy<Value = ObjectId> {
        prop_oneof![
            any::<[u8; 16]>().prop_map(ObjectId::from_16),
            any::<[u8; 24]>().prop_map(ObjectId::from_24),
        ]
    }

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

    #[test]
    fn blob_names_follow_the_version_and_the_block_map() {
        let secret = IdDeriver::new([5; 32]);
        let file = SyncedInode {
            id: ObjectId::from_24([3; 24]),
            btype: Btype::Reg,
            owner: ROOT,
            version: 9,
            segments: 1030,
            change_seq: 1,
        };
        let names = file.blob_names(&secret);
        // inode, 1030 segments, one indirect block (tree 0 holds the
        // blocks beyond the 1023 direct segments).
        assert_eq!(names.len(), 1 + 1030 + 1);
        assert_eq!(names[0].version(), 9);
        let next = SyncedInode {
            version: 10,
            ..file.clone()
        };
        let later = next.blob_names(&secret);
        assert!(names.iter().all(|n| !later.contains(n)));
        assert_eq!(
            ROOT,
            *SyncedInode {
                id: ROOT,
                btype: Btype::Dir,
                owner: ObjectId::from_24([1; 24]),
                version: 12,
                segments: 0,
                change_seq: 0,
            }
            .inode_name()
            .id()
        );
    }
}
