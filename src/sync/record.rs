//! What a sync remembers of each inode it wrote, and of the container it
//! writes to, and the blob names an inode's objects have.
//!
//! An inode's blobs are a function of what is recorded here: its inode
//! blob is named by (id, Btype, owner, version); its segments and indirect
//! blocks have ids derived from the sync's secret, the id, the version and
//! their position (`IdDeriver::for_version`), so the whole set can be
//! listed again from the record to delete it once superseded.

use serde::{Deserialize, Serialize};

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

pub use crate::records::sync::SyncedInode;

impl SyncedInode {
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
    use crate::clfs::id::{ObjectId, ROOT};

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
