//! Volume records as FUSE attributes, and FUSE arguments as volume values.

use std::time::SystemTime;

use fuser::{FileAttr, FileType, INodeNo, TimeOrNow};

use crate::clfs::id::Ftype;
use crate::volume::{Inode, Timespec};

/// `st_blksize`: large, so that copying tools use large buffers.
pub const BLKSIZE: u32 = 128 * 1024;

/// The FUSE file type of a volume type.
pub fn file_type(t: Ftype) -> FileType {
    match t {
        Ftype::Dir => FileType::Directory,
        Ftype::Reg => FileType::RegularFile,
        Ftype::Lnk => FileType::Symlink,
        Ftype::Blk => FileType::BlockDevice,
        Ftype::Chr => FileType::CharDevice,
        Ftype::Sock => FileType::Socket,
        Ftype::Fifo => FileType::NamedPipe,
    }
}

/// The attributes of an inode.
pub fn file_attr(i: &Inode) -> FileAttr {
    FileAttr {
        ino: INodeNo(i.ino),
        size: i.size,
        blocks: i.size.div_ceil(512),
        atime: i.atime.to_system_time(),
        mtime: i.mtime.to_system_time(),
        ctime: i.ctime.to_system_time(),
        crtime: i.ctime.to_system_time(),
        kind: file_type(i.ftype),
        perm: (i.mode & 0o7777) as u16,
        nlink: i.nlink,
        uid: i.uid,
        gid: i.gid,
        // The kernel's new_encode_dev layout, as stat(2) reports it.
        rdev: i.rdev as u32,
        blksize: BLKSIZE,
        flags: 0,
    }
}

/// The attributes of a negative lookup answer: node id 0, which the kernel
/// caches as "no such name" for the entry's time to live.
pub fn negative_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: BLKSIZE,
        flags: 0,
    }
}

/// A `TimeOrNow` as a volume time.
pub fn time_or_now(t: TimeOrNow) -> Timespec {
    match t {
        TimeOrNow::SpecificTime(t) => Timespec::from_system_time(t),
        TimeOrNow::Now => Timespec::now(),
    }
}

/// A `SystemTime` as a volume time.
pub fn time(t: SystemTime) -> Timespec {
    Timespec::from_system_time(t)
}
