//! The object record: what the scan learnt about one source object and
//! where its write stands.

use crate::clfs::bytes::ByteWriter;
use crate::clfs::error::DecodeResult;
use crate::clfs::id::{Ftype, ObjectId, NULL_FILEHANDLE};

/// Where an object stands (codes follow the reference's where they exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ObjState {
    /// Discovered, not written (directories: not scanned).
    Pending = 1,
    /// Directory scanned; its entries are stored; inode not written.
    Scanned = 2,
    /// Written under its final name.
    Done = 4,
    /// Failed; `pre_error_state` says where.
    Error = 5,
    /// Written provisionally; must be rewritten under its final owner.
    InodePending = 6,
    /// Rewritten; provisional and older blobs must be deleted.
    CleanupPending = 8,
}

impl ObjState {
    /// From the code.
    pub fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => ObjState::Pending,
            2 => ObjState::Scanned,
            4 => ObjState::Done,
            5 => ObjState::Error,
            6 => ObjState::InodePending,
            8 => ObjState::CleanupPending,
            _ => return None,
        })
    }
}

/// A time as `stat` gives it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct StatTime {
    /// Seconds (may be negative).
    pub sec: i64,
    /// Nanoseconds.
    pub nsec: u32,
}

/// One object of the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjRecord {
    /// Where it stands.
    pub state: ObjState,
    /// The state it failed in (meaningful in `Error`).
    pub pre_error_state: ObjState,
    /// Source file type.
    pub ftype: Ftype,
    /// `st_mode` including type bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// `st_rdev`.
    pub rdev: u64,
    /// `st_size` (bytes actually read, once written).
    pub size: u64,
    /// Modification time.
    pub mtime: StatTime,
    /// Change time.
    pub ctime: StatTime,
    /// Access time.
    pub atime: StatTime,
    /// `st_ino`.
    pub ino: u64,
    /// Link count that decides reconcile (source `st_nlink` for hard-link
    /// candidates, else 1).
    pub nlink: u32,
    /// Version of the final blob; starts at 9.
    pub reconcile_vers: u64,
    /// Number of sub-directory entries (directories).
    pub child_dir_count: u32,
    /// Directory where it was first found (NULL for the root).
    pub first_backpointer: ObjectId,
    /// Source path, raw bytes.
    pub path: Vec<u8>,
    /// Last error message (in `Error`).
    pub error: String,
}

const RECORD_VERSION: u8 = 1;

impl ObjRecord {
    /// A new pending record.
    pub fn new(ftype: Ftype, path: Vec<u8>, parent: ObjectId) -> Self {
        ObjRecord {
            state: ObjState::Pending,
            pre_error_state: ObjState::Pending,
            ftype,
            mode: 0,
            uid: 0,
            gid: 0,
            rdev: 0,
            size: 0,
            mtime: StatTime::default(),
            ctime: StatTime::default(),
            atime: StatTime::default(),
            ino: 0,
            nlink: 1,
            reconcile_vers: crate::clfs::name::FIRST_VERSION,
            child_dir_count: 0,
            first_backpointer: parent,
            path,
            error: String::new(),
        }
    }

    /// True for directories.
    pub fn is_dir(&self) -> bool {
        self.ftype == Ftype::Dir
    }

    /// True when the parent is unknown.
    pub fn is_parentless(&self) -> bool {
        self.first_backpointer == NULL_FILEHANDLE
    }

    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = ByteWriter::new(Vec::with_capacity(120 + self.path.len()));
        w.u8(RECORD_VERSION);
        w.u8(self.state as u8);
        w.u8(self.pre_error_state as u8);
        w.u8(self.ftype as u8);
        w.u32(self.mode);
        w.u32(self.uid);
        w.u32(self.gid);
        w.u64(self.rdev);
        w.u64(self.size);
        for t in [self.mtime, self.ctime, self.atime] {
            w.u64(t.sec as u64);
            w.u32(t.nsec);
        }
        w.u64(self.ino);
        w.u32(self.nlink);
        w.u64(self.reconcile_vers);
        w.u32(self.child_dir_count);
        w.id16(&self.first_backpointer);
        // Lengths of paths and messages always fit u32 on Linux.
        w.u32(self.path.len() as u32);
        w.bytes(&self.path);
        w.u32(self.error.len() as u32);
        w.bytes(self.error.as_bytes());
        w.buf
    }

    /// Decodes a record.
    pub fn decode(b: &[u8]) -> DecodeResult<Self> {
        use crate::clfs::error::DecodeError;
        let mut r = super::versioned_reader(b, RECORD_VERSION)?;
        let state_at = r.offset();
        let state = ObjState::from_code(r.u8("state")?)
            .ok_or_else(|| DecodeError::invalid(state_at, "state", "unknown code"))?;
        let pre = ObjState::from_code(r.u8("pre-error state")?)
            .ok_or_else(|| DecodeError::invalid(state_at + 1, "pre-error state", "unknown code"))?;
        let ftype = Ftype::from_code(r.u8("ftype")?)
            .ok_or_else(|| DecodeError::invalid(state_at + 2, "ftype", "unknown code"))?;
        let mode = r.u32("mode")?;
        let uid = r.u32("uid")?;
        let gid = r.u32("gid")?;
        let rdev = r.u64("rdev")?;
        let size = r.u64("size")?;
        let mut times = [StatTime::default(); 3];
        for t in &mut times {
            t.sec = r.u64("time")? as i64;
            t.nsec = r.u32("time")?;
        }
        let ino = r.u64("ino")?;
        let nlink = r.u32("nlink")?;
        let reconcile_vers = r.u64("reconcile_vers")?;
        let child_dir_count = r.u32("child_dir_count")?;
        let first_backpointer = r.id16("first back-pointer")?;
        let path = r.lv32("path")?.to_vec();
        let err_at = r.offset();
        let error = String::from_utf8(r.lv32("error")?.to_vec())
            .map_err(|_| DecodeError::invalid(err_at, "error", "not UTF-8"))?;
        r.finish("record")?;
        Ok(ObjRecord {
            state,
            pre_error_state: pre,
            ftype,
            mode,
            uid,
            gid,
            rdev,
            size,
            mtime: times[0],
            ctime: times[1],
            atime: times[2],
            ino,
            nlink,
            reconcile_vers,
            child_dir_count,
            first_backpointer,
            path,
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::any_id;
    use super::*;
    use proptest::prelude::*;

    fn any_state() -> impl Strategy<Value = ObjState> {
        prop::sample::select(vec![
            ObjState::Pending,
            ObjState::Scanned,
            ObjState::Done,
            ObjState::Error,
            ObjState::InodePending,
            ObjState::CleanupPending,
        ])
    }

    fn any_time() -> impl Strategy<Value = StatTime> {
        (any::<i64>(), any::<u32>()).prop_map(|(sec, nsec)| StatTime { sec, nsec })
    }

    proptest! {
        #[test]
        fn records_round_trip(
            state in any_state(), pre in any_state(), ft in 1u8..=7,
            nums in any::<(u32, u32, u32, u64, u64, u64, u32, u64, u32)>(),
            times in (any_time(), any_time(), any_time()),
            parent in any_id(), path in prop::collection::vec(any::<u8>(), 0..300),
            error in ".{0,80}",
        ) {
            let r = ObjRecord {
                state, pre_error_state: pre, ftype: Ftype::from_code(ft).unwrap_or(Ftype::Reg),
                mode: nums.0, uid: nums.1, gid: nums.2, rdev: nums.3, size: nums.4,
                mtime: times.0, ctime: times.1, atime: times.2,
                ino: nums.5, nlink: nums.6, reconcile_vers: nums.7, child_dir_count: nums.8,
                first_backpointer: parent, path, error,
            };
            prop_assert_eq!(ObjRecord::decode(&r.encode()).unwrap(), r);
        }

        #[test]
        fn decoding_garbage_never_panics(b in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = ObjRecord::decode(&b);
        }
    }
}
