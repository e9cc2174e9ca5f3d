//! The FUSE side of the read-only mount: kernel requests answered from the
//! [`Namespace`], each on a fuser worker thread blocking on the tokio
//! runtime. Every request that would change something fails with EROFS.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use tokio::runtime::Handle;

use crate::clfs::name::Btype;
use crate::clfs::object::InodeBody;
use crate::clfs::vattr::ClfsTime;

use super::ns::{FsError, Listing, Namespace, Node};

/// How long the kernel may keep attributes and entries: the container does
/// not change under a read-only mount.
const TTL: Duration = Duration::from_secs(300);

struct OpenFile {
    node: Arc<Node>,
    /// Where the next sequential read would start.
    next: AtomicU64,
    /// Highest segment read ahead so far.
    ahead: AtomicU64,
}

/// The filesystem handed to fuser.
pub struct ReadOnlyFs {
    ns: Arc<Namespace>,
    rt: Handle,
    next_fh: AtomicU64,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    dirs: Mutex<HashMap<u64, Arc<Listing>>>,
}

fn errno(e: FsError) -> Errno {
    Errno::from_i32(e.errno())
}

fn time(t: ClfsTime) -> SystemTime {
    UNIX_EPOCH + Duration::new(u64::from(t.sec), t.nsec.min(999_999_999))
}

fn kind(b: Btype) -> FileType {
    match b {
        Btype::Dir => FileType::Directory,
        Btype::Lnk => FileType::Symlink,
        Btype::Chr => FileType::CharDevice,
        Btype::Blk => FileType::BlockDevice,
        Btype::Fifo => FileType::NamedPipe,
        Btype::Sock => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

/// The kernel's 32-bit device encoding (`new_encode_dev`).
fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

fn attr(node: &Node) -> FileAttr {
    let v = &node.inode.inode.vattr;
    // A symlink's size is its target's byte length (the reference loader
    // stores the number of code points in VATTR, spec §5.4).
    let size = match (&node.inode.inode.body, node.btype()) {
        (InodeBody::Data(d), Btype::Lnk) => d.len() as u64,
        _ => v.length,
    };
    FileAttr {
        ino: INodeNo(node.ino),
        size,
        blocks: v.used.max(v.length).div_ceil(512),
        atime: time(v.atime),
        mtime: time(v.mtime),
        ctime: time(v.ctime),
        crtime: time(v.ctime),
        kind: kind(node.btype()),
        perm: v.mode & 0o7777,
        nlink: v.nlink.max(1),
        uid: v.uid,
        gid: v.gid,
        rdev: encode_dev(v.rdev_major, v.rdev_minor),
        blksize: 128 * 1024,
        flags: 0,
    }
}

impl ReadOnlyFs {
    /// A filesystem over `ns`, running its reads on `rt`.
    pub fn new(ns: Arc<Namespace>, rt: Handle) -> Self {
        ReadOnlyFs {
            ns,
            rt,
            next_fh: AtomicU64::new(1),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
        }
    }

    fn fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    fn open_file(&self, fh: FileHandle) -> Option<Arc<OpenFile>> {
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh.0)
            .cloned()
    }

    /// Starts reads of the segments after `k` when `f` is read in order.
    fn read_ahead(&self, f: &Arc<OpenFile>, k: u64) {
        let ra = self.ns.options().readahead as u64;
        if ra == 0 || k == 0 {
            return;
        }
        let last = crate::clfs::layout::data_segment_count(f.node.length());
        let until = (k + ra).min(last);
        let from = f.ahead.load(Ordering::Relaxed).max(k) + 1;
        if from > until {
            return;
        }
        f.ahead.store(until, Ordering::Relaxed);
        for j in from..=until {
            let ns = self.ns.clone();
            let node = f.node.clone();
            self.rt.spawn(async move {
                if !ns.has_segment(&node, j).await {
                    let _ = ns.segment(&node, j).await;
                }
            });
        }
    }
}

impl Filesystem for ReadOnlyFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Larger kernel read-ahead means fewer, larger read requests.
        for size in [4 << 20, 1 << 20, 512 << 10] {
            if config.set_max_readahead(size).is_ok() {
                break;
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.rt.block_on(self.ns.lookup(parent.0, name.as_bytes())) {
            Ok(n) => reply.entry(&TTL, &attr(&n), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.rt.block_on(self.ns.node(ino.0)) {
            Ok(n) => reply.attr(&TTL, &attr(&n)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.rt.block_on(self.ns.node(ino.0)) {
            Ok(n) => match (&n.inode.inode.body, n.btype()) {
                (InodeBody::Data(d), Btype::Lnk) => reply.data(d),
                _ => reply.error(Errno::EINVAL),
            },
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY
            || flags.0 & (libc::O_TRUNC | libc::O_CREAT) != 0
        {
            reply.error(Errno::EROFS);
            return;
        }
        let node = match self.rt.block_on(self.ns.node(ino.0)) {
            Ok(n) => n,
            Err(e) => return reply.error(errno(e)),
        };
        if node.btype() == Btype::Dir {
            return reply.error(Errno::EISDIR);
        }
        let fh = self.fh();
        let f = Arc::new(OpenFile {
            node,
            next: AtomicU64::new(0),
            ahead: AtomicU64::new(0),
        });
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, f);
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let f = match self.open_file(fh) {
            Some(f) => f,
            None => match self.rt.block_on(self.ns.node(ino.0)) {
                Ok(node) => Arc::new(OpenFile {
                    node,
                    next: AtomicU64::new(u64::MAX),
                    ahead: AtomicU64::new(0),
                }),
                Err(e) => return reply.error(errno(e)),
            },
        };
        if f.node.btype() != Btype::Reg {
            return reply.error(Errno::EINVAL);
        }
        let k = crate::clfs::layout::block_of_offset(offset);
        let sequential =
            f.next.swap(offset + u64::from(size), Ordering::Relaxed) == offset || offset == 0;
        if sequential {
            self.read_ahead(&f, k);
        }
        match self.rt.block_on(self.ns.read(&f.node, offset, size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.rt.block_on(self.ns.listing(ino.0)) {
            Ok(l) => {
                let fh = self.fh();
                self.dirs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(fh, l);
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listing = self
            .dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh.0)
            .cloned();
        let listing = match listing {
            Some(l) => l,
            None => match self.rt.block_on(self.ns.listing(ino.0)) {
                Ok(l) => l,
                Err(e) => return reply.error(errno(e)),
            },
        };
        let dir = ino.0;
        let mut i = offset;
        loop {
            let (entry_ino, t, name): (u64, FileType, &OsStr) = match i {
                0 => (dir, FileType::Directory, OsStr::new(".")),
                1 => (
                    self.ns.parent_of(dir),
                    FileType::Directory,
                    OsStr::new(".."),
                ),
                _ => {
                    let Some((name, id)) = listing.entries.get((i - 2) as usize) else {
                        break;
                    };
                    let child = self.ns.ino_of(id, dir);
                    let b = match self.rt.block_on(self.ns.entry_type(id, child)) {
                        Ok(b) => b,
                        // Listed anyway; lookup will report the error.
                        Err(_) => Btype::Reg,
                    };
                    (child, kind(b), OsStr::from_bytes(name))
                }
            };
            if reply.add(INodeNo(entry_ino), i + 1, t, name) {
                break;
            }
            i += 1;
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }
}
