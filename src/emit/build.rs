//! From namespace records to CLFS objects (no I/O): VATTR, inode objects,
//! directory segments, and the ids of segments and indirect blocks.

use sha2::{Digest, Sha256};

use crate::clfs::error::EncodeError;
use crate::clfs::handle::{Bmap, DataBack, Dirent};
use crate::clfs::id::{ObjectId, ROOT};
use crate::clfs::layout::{self, BlockMapBuilder, IndirectBlock};
use crate::clfs::name::{BlobName, Btype};
use crate::clfs::object::{Bucket, DirSegment, Indirect, Inode, InodeBody, Object};
use crate::clfs::vattr::{dev_major, dev_minor, ClfsTime, Vattr};
use crate::state::{ObjRecord, StatTime};

/// Per-load constants that go into every VATTR.
#[derive(Debug, Clone, Copy)]
pub struct LoadIds {
    /// The container id.
    pub containerid: u32,
    /// The fsid.
    pub fsid: u32,
}

fn time(t: StatTime) -> Result<ClfsTime, EncodeError> {
    ClfsTime::from_stat(t.sec, t.nsec)
}

/// VATTR of an object with the given length and link count.
pub fn vattr(rec: &ObjRecord, ids: LoadIds, length: u64, nlink: u32) -> Result<Vattr, EncodeError> {
    Ok(Vattr {
        mode: rec.mode as u16,
        ftype: Btype::from(rec.ftype).code() as u8,
        spare: 0,
        flags: 0,
        uid: rec.uid,
        gid: rec.gid,
        length,
        dtime: ClfsTime::default(),
        mtime: time(rec.mtime)?,
        ctime: time(rec.ctime)?,
        atime: time(rec.atime)?,
        used: length,
        fsid: u64::from(ids.fsid),
        fileid: rec.ino,
        rdev_major: dev_major(rec.rdev),
        rdev_minor: dev_minor(rec.rdev),
        nlink,
        ha_version: 0,
        containerid: u64::from(ids.containerid),
    })
}

/// The bucket object (spec §4.1) with its UUID.
pub fn bucket(uuid: String) -> Object {
    Object::Bucket(Bucket {
        attrs: vec![
            ("bucketCurrentNameVersion".into(), "2".into()),
            ("bucketNameVersion".into(), "2".into()),
            ("bucketObjVersion".into(), "2".into()),
            ("bucketUUID".into(), uuid),
        ],
    })
}

/// The root's EXTATTRS (spec §4.2).
pub fn root_attrs(mass_uuid: String, wipe_epoch: String) -> Vec<(String, String)> {
    vec![
        ("containeridEpoch".to_string(), "2".to_string()),
        ("massUUID".to_string(), mass_uuid),
        ("wipeEpoch".to_string(), wipe_epoch),
    ]
}

/// Longest symlink target CLFS holds.
pub const MAX_SYMLINK: usize = 1023;

/// A non-directory inode: VATTR (`nlink` = the number of back-pointers),
/// `bmap`, BACK, NAME and the body.
#[allow(clippy::too_many_arguments)]
pub fn inode(
    rec: &ObjRecord,
    ids: LoadIds,
    length: u64,
    bmap: Bmap,
    back: Vec<ObjectId>,
    name: Vec<u8>,
    body: InodeBody,
) -> Result<Inode, EncodeError> {
    Ok(Inode {
        vattr: vattr(rec, ids, length, back.len() as u32)?,
        bmap,
        back: Some(back),
        name,
        body,
    })
}

/// The block map of an inode without segments: block 0 only.
pub fn inline_bmap(id: &ObjectId) -> Bmap {
    layout::bmap(false, vec![*id], [crate::clfs::id::ZERO_ROOT; 4])
}

/// A symlink's body and VATTR length (code points, spec §5.4) from its
/// target, or why CLFS cannot hold it.
pub fn symlink_body(target: Vec<u8>) -> Result<(u64, InodeBody), String> {
    if target.len() > MAX_SYMLINK {
        return Err(format!(
            "symlink target is {} bytes; CLFS holds at most {MAX_SYMLINK}",
            target.len()
        ));
    }
    Ok((
        crate::source::scan::code_points(&target),
        InodeBody::Data(target),
    ))
}

/// Whole seconds of the owner's ctime for DATABACK (same double as VATTR).
pub fn databack_ctime(rec: &ObjRecord) -> Result<u32, EncodeError> {
    Ok(time(rec.ctime)?.sec)
}

/// The final name of an inode: the root under `tmp` until published,
/// others under their first back-pointer, or the provisional owner.
pub fn inode_name(id: &ObjectId, rec: &ObjRecord, provisional: bool) -> BlobName {
    if *id == ROOT {
        BlobName::tmp_root()
    } else if provisional {
        BlobName::v2(
            *id,
            Btype::from(rec.ftype),
            &crate::clfs::id::INODE_INPROGRESS,
            crate::clfs::name::FIRST_VERSION,
        )
    } else {
        BlobName::v2(
            *id,
            Btype::from(rec.ftype),
            &rec.first_backpointer,
            rec.reconcile_vers,
        )
    }
}

/// Derives the ids of segments and indirect blocks from a per-load secret,
/// the owner and the position: shaped like UUID4s, unique per load, and the
/// same when a write is redone after a crash, so a redone write overwrites
/// its own blobs instead of leaving garbage.
#[derive(Debug, Clone)]
pub struct IdDeriver {
    secret: [u8; 32],
}

impl IdDeriver {
    /// A deriver with the load's secret.
    pub fn new(secret: [u8; 32]) -> Self {
        IdDeriver { secret }
    }

    /// The deriver of the blobs an inode writes at `version`: the load's
    /// own for the first version, a distinct one for each later version,
    /// so that a rewrite never overwrites the blobs the previous version
    /// still references.
    pub fn for_version(&self, version: u64) -> IdDeriver {
        if version == crate::clfs::name::FIRST_VERSION {
            return self.clone();
        }
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(b"version");
        h.update(version.to_le_bytes());
        IdDeriver {
            secret: h.finalize().into(),
        }
    }

    /// Id number `n` of kind `kind` for `owner`.
    pub fn id(&self, owner: &ObjectId, kind: &[u8], n: u64) -> ObjectId {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update([owner.len() as u8]);
        h.update(owner.as_bytes());
        h.update(kind);
        h.update(n.to_le_bytes());
        let d = h.finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        ObjectId::from_16(b)
    }
}

/// One blob to write: name and encoded body.
#[derive(Debug)]
pub struct Blob {
    /// The CLFS name.
    pub name: BlobName,
    /// Envelope and stream.
    pub body: Vec<u8>,
}

/// Indirect blocks as objects ready to write.
pub fn indirect_blobs(
    blocks: Vec<IndirectBlock>,
    owner: &ObjectId,
    ctime: u32,
    compression: crate::clfs::envelope::Compression,
) -> Result<Vec<Blob>, EncodeError> {
    blocks
        .into_iter()
        .map(|b| {
            let offset = b.databack_offset();
            let obj = Object::Indirect(Indirect {
                pointers: b.pointers,
                databack: DataBack {
                    ctime,
                    offset,
                    owner: *owner,
                },
            });
            Ok(Blob {
                name: BlobName::v2(
                    b.id,
                    Btype::Indirect,
                    owner,
                    crate::clfs::name::FIRST_VERSION,
                ),
                body: obj.encode_body(compression)?,
            })
        })
        .collect()
}

/// Everything a directory writes: its segments and indirect blocks (in
/// write order), then the inode.
#[derive(Debug)]
pub struct DirectoryBlobs {
    /// Segments and indirect blocks, to be written before the inode.
    pub before: Vec<Blob>,
    /// The inode.
    pub inode: Blob,
}

/// Builds a directory from its entries (`.` and `..` first).
#[allow(clippy::too_many_arguments)]
pub fn directory(
    id: &ObjectId,
    rec: &ObjRecord,
    entries: Vec<Dirent>,
    name: Vec<u8>,
    root_attrs: Option<Vec<(String, String)>>,
    ids: LoadIds,
    derive: &IdDeriver,
    compression: crate::clfs::envelope::Compression,
    provisional: bool,
) -> Result<DirectoryBlobs, EncodeError> {
    let (segs, size) = layout::pack_dirents(entries);
    let ctime = databack_ctime(rec)?;
    let mut bm = BlockMapBuilder::new(*id);
    let mut before = Vec::new();
    let mut n_ind = 0u64;
    let mut new_ind = || {
        n_ind += 1;
        derive.id(id, b"dind", n_ind)
    };
    let mut segs = segs.into_iter();
    let first = segs.next().unwrap_or_default();
    for (k, seg) in segs.enumerate() {
        let k = k as u64 + 1;
        let sid = derive.id(id, b"dseg", k);
        let obj = Object::DirSegment(DirSegment {
            dirents: seg,
            databack: DataBack {
                ctime,
                offset: layout::dir_segment_offset(k),
                owner: *id,
            },
        });
        before.push(Blob {
            name: BlobName::v2(sid, Btype::Segment, id, crate::clfs::name::FIRST_VERSION),
            body: obj.encode_body(compression)?,
        });
        let blocks = bm
            .push(sid, &mut new_ind)
            .map_err(|_| EncodeError::TooLong {
                what: "directory",
                len: k as usize,
                max: 0,
            })?;
        before.extend(indirect_blobs(blocks, id, ctime, compression)?);
    }
    let (blocks, direct, roots) = bm.finish(&mut new_ind);
    before.extend(indirect_blobs(blocks, id, ctime, compression)?);
    let inode = Object::Inode(Inode {
        vattr: vattr(rec, ids, size, rec.child_dir_count + 2)?,
        bmap: layout::bmap(true, direct, roots),
        back: None,
        name,
        body: InodeBody::Dir {
            dirents: first,
            root_attrs,
        },
    });
    Ok(DirectoryBlobs {
        before,
        inode: Blob {
            name: inode_name(id, rec, provisional),
            body: inode.encode_body(compression)?,
        },
    })
}

/// Last path component of `path` as typed (Python's `os.path.split`):
/// `/data/src` → `src`, `/data/src/` → empty.
pub fn basename(path: &[u8]) -> Vec<u8> {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => path[i + 1..].to_vec(),
        None => path.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_uuid4_shaped_stable_and_distinct() {
        let d = IdDeriver::new([9; 32]);
        let owner = ObjectId::from_24([1; 24]);
        let a = d.id(&owner, b"seg", 1);
        assert_eq!(a, d.id(&owner, b"seg", 1));
        assert_ne!(a, d.id(&owner, b"seg", 2));
        assert_ne!(a, d.id(&owner, b"dseg", 1));
        assert_ne!(a, IdDeriver::new([8; 32]).id(&owner, b"seg", 1));
        assert_eq!(a.as_bytes()[6] >> 4, 4);
        assert_eq!(a.as_bytes()[8] >> 6, 2);
    }

    #[test]
    fn basename_is_as_typed() {
        assert_eq!(basename(b"/data/src"), b"src");
        assert_eq!(basename(b"/data/src/"), b"");
        assert_eq!(basename(b"."), b".");
        assert_eq!(basename(b"small"), b"small");
    }
}
