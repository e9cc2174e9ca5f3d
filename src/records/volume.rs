//! The records of a staging volume: inodes and deletions, with their
//! byte encodings (little-endian, versioned by a leading byte).

use crate::clfs::bytes::{ByteReader, ByteWriter};
use crate::clfs::error::{DecodeError, DecodeResult};
use crate::clfs::id::{Ftype, ObjectId};

/// Encoding version of [`Inode`] records.
const INODE_RECORD_V1: u8 = 1;

/// A time with nanoseconds (seconds may be negative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timespec {
    /// Seconds since the epoch.
    pub sec: i64,
    /// Nanoseconds, `< 1_000_000_000`.
    pub nsec: u32,
}

impl Timespec {
    /// The current time.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timespec {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        }
    }

    /// As a `SystemTime` (times before the epoch included).
    pub fn to_system_time(self) -> std::time::SystemTime {
        use std::time::{Duration, UNIX_EPOCH};
        if self.sec >= 0 {
            UNIX_EPOCH + Duration::new(self.sec as u64, self.nsec)
        } else {
            UNIX_EPOCH - Duration::from_secs(self.sec.unsigned_abs())
                + Duration::from_nanos(self.nsec as u64)
        }
    }

    /// From a `SystemTime`.
    pub fn from_system_time(t: std::time::SystemTime) -> Self {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Timespec {
                sec: d.as_secs() as i64,
                nsec: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                let mut sec = -(d.as_secs() as i64);
                let mut nsec = 0;
                if d.subsec_nanos() > 0 {
                    sec -= 1;
                    nsec = 1_000_000_000 - d.subsec_nanos();
                }
                Timespec { sec, nsec }
            }
        }
    }
}

/// One inode of the staging namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// FUSE inode number (1 for the root; else the filehandle's `seq`).
    pub ino: u64,
    /// The CLFS id: [`crate::clfs::id::ROOT`] (16 bytes) for the root, a
    /// 24-byte filehandle otherwise.
    pub fh: ObjectId,
    /// File type.
    pub ftype: Ftype,
    /// `st_mode`, type bits included.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (regular files: the data file's logical length;
    /// symlinks: the target length; directories: 0).
    pub size: u64,
    /// Link count (directories: 2 + subdirectories).
    pub nlink: u32,
    /// Device number of character and block devices.
    pub rdev: u64,
    /// Access time.
    pub atime: Timespec,
    /// Modification time.
    pub mtime: Timespec,
    /// Change time.
    pub ctime: Timespec,
    /// Volume-wide change counter value of the last change to this inode's
    /// contents, attributes, entries or back-pointers.
    pub change_seq: u64,
    /// Symlink target (empty for other types).
    pub target: Vec<u8>,
}

impl Inode {
    /// True for directories.
    pub fn is_dir(&self) -> bool {
        self.ftype == Ftype::Dir
    }

    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = ByteWriter::new(Vec::with_capacity(120 + self.target.len()));
        w.u8(INODE_RECORD_V1);
        w.u64(self.ino);
        w.u8(self.fh.len() as u8);
        w.bytes(self.fh.as_bytes());
        w.u8(self.ftype as u8);
        w.u32(self.mode);
        w.u32(self.uid);
        w.u32(self.gid);
        w.u64(self.size);
        w.u32(self.nlink);
        w.u64(self.rdev);
        for t in [self.atime, self.mtime, self.ctime] {
            w.u64(t.sec as u64);
            w.u32(t.nsec);
        }
        w.u64(self.change_seq);
        // Targets are bounded by PATH_MAX long before u32.
        w.u32(self.target.len() as u32);
        w.bytes(&self.target);
        w.buf
    }

    /// Decodes a record written by [`Inode::encode`].
    pub fn decode(b: &[u8]) -> DecodeResult<Self> {
        let mut r = super::versioned_reader(b, INODE_RECORD_V1)?;
        let ino = r.u64("ino")?;
        let fh = read_id(&mut r)?;
        let at = r.offset();
        let ftype = Ftype::from_code(r.u8("ftype")?)
            .ok_or_else(|| DecodeError::invalid(at, "ftype", "unknown code"))?;
        let mode = r.u32("mode")?;
        let uid = r.u32("uid")?;
        let gid = r.u32("gid")?;
        let size = r.u64("size")?;
        let nlink = r.u32("nlink")?;
        let rdev = r.u64("rdev")?;
        let mut times = [Timespec::default(); 3];
        for t in &mut times {
            t.sec = r.u64("time")? as i64;
            let at = r.offset();
            t.nsec = r.u32("nsec")?;
            if t.nsec >= 1_000_000_000 {
                return Err(DecodeError::invalid(at, "nsec", "not below 10^9"));
            }
        }
        let change_seq = r.u64("change_seq")?;
        let target = r.lv32("target")?.to_vec();
        r.finish("inode record")?;
        Ok(Inode {
            ino,
            fh,
            ftype,
            mode,
            uid,
            gid,
            size,
            nlink,
            rdev,
            atime: times[0],
            mtime: times[1],
            ctime: times[2],
            change_seq,
            target,
        })
    }
}

fn read_id(r: &mut ByteReader<'_>) -> DecodeResult<ObjectId> {
    let at = r.offset();
    let len = r.u8("id length")? as usize;
    let b = r.take(len, "id")?;
    ObjectId::from_slice(b).ok_or_else(|| DecodeError::invalid(at, "id length", format!("{len}")))
}

/// An inode deleted since the last sync: what `sync` needs to remove its
/// objects from the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// Its CLFS id.
    pub fh: ObjectId,
    /// Its file type.
    pub ftype: Ftype,
    /// The change counter value of the deletion.
    pub change_seq: u64,
}

impl Deleted {
    /// Encodes the record: `u8 id length ‖ id ‖ ftype u8 ‖ change_seq u64`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = ByteWriter::new(Vec::with_capacity(34));
        w.u8(self.fh.len() as u8);
        w.bytes(self.fh.as_bytes());
        w.u8(self.ftype as u8);
        w.u64(self.change_seq);
        w.buf
    }

    /// Decodes a record written by [`Deleted::encode`].
    pub fn decode(b: &[u8]) -> DecodeResult<Self> {
        let mut r = ByteReader::new(b, 0);
        let fh = read_id(&mut r)?;
        let at = r.offset();
        let ftype = Ftype::from_code(r.u8("ftype")?)
            .ok_or_else(|| DecodeError::invalid(at, "ftype", "unknown code"))?;
        let change_seq = r.u64("change_seq")?;
        r.finish("deleted record")?;
        Ok(Deleted {
            fh,
            ftype,
            change_seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ftype() -> impl Strategy<Value = Ftype> {
        (1u8..=7).prop_map(|c| Ftype::from_code(c).unwrap())
    }

    fn id() -> impl Strategy<Value = ObjectId> {
        prop_oneof![
            any::<[u8; 16]>().prop_map(ObjectId::from_16),
            any::<[u8; 24]>().prop_map(ObjectId::from_24),
        ]
    }

    fn ts() -> impl Strategy<Value = Timespec> {
        (any::<i64>(), 0u32..1_000_000_000).prop_map(|(sec, nsec)| Timespec { sec, nsec })
    }

    prop_compose! {
        fn inode()(ino in any::<u64>(), fh in id(), ftype in ftype(), mode in any::<u32>(),
                   uid in any::<u32>(), gid in any::<u32>(), size in any::<u64>(), nlink in any::<u32>(),
                   rdev in any::<u64>(), atime in ts(), mtime in ts(), ctime in ts(),
                   change_seq in any::<u64>(), target in proptest::collection::vec(any::<u8>(), 0..300)) -> Inode {
            Inode { ino, fh, ftype, mode, uid, gid, size, nlink, rdev, atime, mtime, ctime, change_seq, target }
        }
    }

    proptest! {
        #[test]
        fn inode_round_trips(i in inode()) {
            prop_assert_eq!(Inode::decode(&i.encode()).unwrap(), i);
        }

        #[test]
        fn deleted_round_trips(fh in id(), ftype in ftype(), change_seq in any::<u64>()) {
            let d = Deleted { fh, ftype, change_seq };
            prop_assert_eq!(Deleted::decode(&d.encode()).unwrap(), d);
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Inode::decode(&b);
            let _ = Deleted::decode(&b);
        }

        #[test]
        fn truncated_inodes_are_errors(i in inode(), cut in 0usize..100) {
            let b = i.encode();
            let cut = cut.min(b.len() - 1);
            prop_assert!(Inode::decode(&b[..cut]).is_err());
        }

        #[test]
        fn timespec_system_time_round_trips(sec in -4_000_000_000i64..4_000_000_000, nsec in 0u32..1_000_000_000) {
            let t = Timespec { sec, nsec };
            prop_assert_eq!(Timespec::from_system_time(t.to_system_time()), t);
        }
    }
}
