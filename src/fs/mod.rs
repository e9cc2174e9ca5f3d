//! The FUSE staging filesystem: each callback delegates to one
//! [`Volume`] method, replies once, and maps errors to errno in
//! [`errno`]. File contents go straight to the inode's data file: with
//! FUSE passthrough (Linux 6.9+, the default when the kernel offers it) the
//! kernel reads and writes the data file itself, and the filesystem copies
//! its length and mtime into the record on stat, fsync and close; without
//! it, `pread`/`pwrite` on a descriptor kept per open handle.
//!
//! Extended attributes are refused (CLFS stores none): `setxattr`,
//! `getxattr` and `removexattr` fail with ENOTSUP, `listxattr` returns an
//! empty list.

pub mod attr;
pub mod blocking;
pub mod cpu_latency;
pub mod mount;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BackingId, BsdFileFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags as FuseRenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::clfs::id::Ftype;
use crate::volume::{DirEntry, Inode, OpError, RenameFlags, SetAttr, Volume, VolumeError};

use attr::{file_attr, file_type};
use blocking::Blocking;
use cpu_latency::CpuLatency;

/// How long the kernel may cache attributes and entries. This process is
/// the only writer, and the kernel updates its cache from every reply.
const TTL: Duration = Duration::from_secs(1);
/// Threads and queue length of the pool for requests that can block.
const BLOCKING_THREADS: usize = 2;
const BLOCKING_QUEUE: usize = 64;
/// A regular file at least this large is slow to delete (the kernel drops
/// its cached pages: 60-350 ms for 2 GiB on the build VM), so the unlink or
/// rename that deletes it goes to the pool and the reader goes on.
const SLOW_TO_FREE: u64 = 16 << 20;
/// Largest write request (the issue's `max_write`).
pub const MAX_WRITE: u32 = 1024 * 1024;

/// The errno of a volume error; unexpected failures are logged.
pub fn errno(e: &VolumeError) -> Errno {
    match e {
        VolumeError::Op(op) => Errno::from_i32(op.errno()),
        VolumeError::Io { .. }
        | VolumeError::InUse { .. }
        | VolumeError::NotAVolume { .. }
        | VolumeError::Db { .. }
        | VolumeError::Corrupt { .. } => {
            tracing::error!("{e}");
            Errno::from_i32(e.errno())
        }
    }
}

/// An open regular file.
struct OpenFile {
    ino: u64,
    data: File,
    /// The kernel's reference to `data` (passthrough), shared by every
    /// handle of the inode.
    _backing: Option<Arc<BackingId>>,
}

/// A regular file with open handles, in passthrough mode.
#[derive(Default)]
struct OpenInode {
    handles: u32,
    backing: Weak<BackingId>,
    /// Length and mtime of the data file when last copied to the record.
    seen: Option<DataStamp>,
    /// Marked open for writing in the volume.
    marked: bool,
}

/// How a handle was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    /// Created (for writing): in passthrough mode the volume marked the
    /// new inode open for writing already.
    Created,
}

/// Length and mtime of a data file.
type DataStamp = (u64, i64, i64);

fn stamp(md: &std::fs::Metadata) -> DataStamp {
    use std::os::unix::fs::MetadataExt;
    (md.len(), md.mtime(), md.mtime_nsec())
}

/// The record of `i` brought up to date with its data file when the kernel
/// may have written that directly (`passthrough`, file in `open`).
fn fresh_record(
    vol: &Volume,
    passthrough: bool,
    open: &Mutex<HashMap<u64, OpenInode>>,
    i: Inode,
) -> Result<Inode, VolumeError> {
    if !passthrough || i.ftype != Ftype::Reg {
        return Ok(i);
    }
    let mut g = open.lock().unwrap_or_else(|p| p.into_inner());
    let Some(o) = g.get_mut(&i.ino) else {
        return Ok(i);
    };
    let path = vol.data_path(i.ino);
    let md = std::fs::metadata(&path).map_err(|e| VolumeError::Io { path, source: e })?;
    if o.seen == Some(stamp(&md)) {
        return Ok(i);
    }
    let fresh = vol.refresh_from_data(i.ino, &md, true, false)?;
    o.seen = Some(stamp(&md));
    Ok(fresh)
}

/// A directory listing, taken when it is read from the start, so that
/// entries removed or added while a tool walks it never shift the offsets.
struct OpenDir {
    entries: Vec<DirEntry>,
    parent: u64,
}

/// Options of the filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsOptions {
    /// Refuse every change (the mount is also read-only for the kernel).
    pub read_only: bool,
    /// Let the kernel cache writes (it then keeps regular files' ctime
    /// and mtime itself; excludes passthrough).
    pub writeback_cache: bool,
    /// Let the kernel read and write data files directly when it can.
    pub passthrough: bool,
    /// Hold 0 µs CPU wake-up latency while requests are dense (see
    /// [`cpu_latency`]).
    pub low_latency: bool,
}

/// The staging filesystem over one open volume.
pub struct StagingFs {
    vol: Arc<Volume>,
    opts: FsOptions,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    dirs: Mutex<HashMap<u64, Arc<Mutex<OpenDir>>>>,
    next_fh: AtomicU64,
    /// Passthrough was negotiated with the kernel.
    passthrough: bool,
    open_inodes: Arc<Mutex<HashMap<u64, OpenInode>>>,
    /// Runs the requests that can block (fsync); started in `init`.
    blocking: Blocking,
    /// Counts requests; started in `init` (after the daemon forked).
    latency: CpuLatency,
}

impl std::fmt::Debug for StagingFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagingFs").field("vol", &self.vol).finish()
    }
}

fn name_bytes(n: &OsStr) -> &[u8] {
    n.as_bytes()
}

impl StagingFs {
    /// A filesystem over `vol`.
    pub fn new(vol: Arc<Volume>, opts: FsOptions) -> Self {
        StagingFs {
            vol,
            opts,
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            passthrough: false,
            open_inodes: Arc::new(Mutex::new(HashMap::new())),
            blocking: Blocking::off(),
            latency: CpuLatency::off(),
        }
    }

    /// The record of `i` brought up to date with its data file when the
    /// kernel may have written that directly (passthrough, file open).
    fn fresh(&self, i: Inode) -> Result<Inode, VolumeError> {
        fresh_record(&self.vol, self.passthrough, &self.open_inodes, i)
    }

    fn inode_fresh(&self, ino: u64) -> Result<Inode, VolumeError> {
        self.vol.inode(ino).and_then(|i| self.fresh(i))
    }

    /// Registers a new handle of `ino` whose data file is `data`; in
    /// passthrough mode returns the kernel's backing reference (made with
    /// `open_backing` the first time).
    fn register(
        &self,
        ino: u64,
        data: File,
        access: Access,
        open_backing: impl FnOnce(&File) -> std::io::Result<BackingId>,
    ) -> Result<(FileHandle, Option<Arc<BackingId>>), Errno> {
        let mut backing = None;
        if self.passthrough {
            let mut g = self.open_inodes.lock().unwrap_or_else(|p| p.into_inner());
            let o = g.entry(ino).or_default();
            let b = match o.backing.upgrade() {
                Some(b) => b,
                None => {
                    let b = Arc::new(open_backing(&data).map_err(|e| {
                        tracing::error!(
                            "passthrough for {}: {e}",
                            self.vol.data_path(ino).display()
                        );
                        Errno::from(e)
                    })?);
                    o.backing = Arc::downgrade(&b);
                    b
                }
            };
            if o.seen.is_none() {
                o.seen = data.metadata().ok().map(|md| stamp(&md));
            }
            match access {
                Access::Read => {}
                // create_file marked it with the new inode.
                Access::Created => o.marked = true,
                Access::Write if o.marked => {}
                Access::Write => {
                    self.vol.mark_open(ino).map_err(|e| errno(&e))?;
                    o.marked = true;
                }
            }
            o.handles += 1;
            backing = Some(b);
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.vol.open_ref(ino);
        self.files.lock().unwrap_or_else(|p| p.into_inner()).insert(
            fh,
            Arc::new(OpenFile {
                ino,
                data,
                _backing: backing.clone(),
            }),
        );
        Ok((FileHandle(fh), backing))
    }

    /// Drops a handle; the last one of an inode copies the data file's
    /// state into the record and clears the open-for-writing mark.
    fn unregister(&self, f: Arc<OpenFile>) -> Result<(), VolumeError> {
        if self.passthrough {
            let mut g = self.open_inodes.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(o) = g.get_mut(&f.ino) {
                o.handles = o.handles.saturating_sub(1);
                if o.handles == 0 {
                    let (marked, seen) = (o.marked, o.seen);
                    g.remove(&f.ino);
                    let md = f.data.metadata().map_err(|e| VolumeError::Io {
                        path: self.vol.data_path(f.ino),
                        source: e,
                    })?;
                    let written = seen != Some(stamp(&md));
                    match self.vol.refresh_from_data(f.ino, &md, written, marked) {
                        Ok(_) | Err(VolumeError::Op(OpError::NotFound)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        let ino = f.ino;
        drop(f);
        self.vol.release_ref(ino)
    }

    fn file(&self, fh: FileHandle) -> Option<Arc<OpenFile>> {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh.0)
            .cloned()
    }

    fn writable(&self) -> Result<(), Errno> {
        if self.opts.read_only {
            Err(Errno::from_i32(libc::EROFS))
        } else {
            Ok(())
        }
    }

    /// Owner and group of a new inode in `parent`, and the set-group-id bit
    /// a new directory inherits (System V / Linux semantics).
    fn new_owner(&self, req: &Request, parent: &Inode) -> (u32, u32, u32) {
        if parent.mode & libc::S_ISGID != 0 {
            (req.uid(), parent.gid, libc::S_ISGID)
        } else {
            (req.uid(), req.gid(), 0)
        }
    }

    fn entry(&self, reply: ReplyEntry, r: Result<Inode, VolumeError>) {
        match r.and_then(|i| self.fresh(i)) {
            Ok(i) => reply.entry(&TTL, &file_attr(&i), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn empty(reply: ReplyEmpty, r: Result<(), VolumeError>) {
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn listing(&self, ino: u64, fh: FileHandle, offset: u64) -> Result<Arc<Mutex<OpenDir>>, Errno> {
        let d = self
            .dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh.0)
            .cloned()
            .ok_or(Errno::EBADF)?;
        if offset == 0 {
            let mut entries = Vec::new();
            self.vol
                .for_each_dirent(ino, None, |e| {
                    entries.push(e);
                    true
                })
                .map_err(|e| errno(&e))?;
            let parent = self.vol.dir_parent(ino).map_err(|e| errno(&e))?;
            let mut g = d.lock().unwrap_or_else(|p| p.into_inner());
            g.entries = entries;
            g.parent = parent;
        }
        Ok(d)
    }

    /// Whether removing the entry `name` of `parent` would delete a large
    /// regular file (its last link, not open): that goes to the pool.
    fn frees_a_large_file(&self, parent: u64, name: &[u8]) -> bool {
        matches!(
            self.vol.lookup(parent, name),
            Ok(i) if i.ftype == Ftype::Reg && i.nlink == 1 && i.size >= SLOW_TO_FREE
        )
    }

    fn open_data(&self, ino: u64) -> Result<File, Errno> {
        let i = self.vol.inode(ino).map_err(|e| errno(&e))?;
        match i.ftype {
            Ftype::Reg => self.vol.open_data(ino, true).map_err(|e| errno(&e)),
            Ftype::Dir => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }
}

impl Filesystem for StagingFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config.set_max_readahead(MAX_WRITE);
        let _ = config.set_max_background(64);
        let mut want = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_BIG_WRITES
            | InitFlags::FUSE_MAX_PAGES;
        let have = config.capabilities();
        if self.opts.passthrough
            && !self.opts.writeback_cache
            && have.contains(InitFlags::FUSE_PASSTHROUGH)
            && config.set_max_stack_depth(1).is_ok()
        {
            want |= InitFlags::FUSE_PASSTHROUGH;
            self.passthrough = true;
        } else if self.opts.writeback_cache && !self.opts.read_only {
            want |= InitFlags::FUSE_WRITEBACK_CACHE;
        }
        let _ = config.add_capabilities(want & have);
        tracing::info!(
            "kernel I/O mode: {}",
            if self.passthrough {
                "passthrough"
            } else if want.contains(InitFlags::FUSE_WRITEBACK_CACHE) {
                "writeback cache"
            } else {
                "write-through"
            }
        );
        if self.opts.passthrough && !self.opts.writeback_cache && !self.passthrough {
            tracing::warn!(
                "the kernel did not grant FUSE passthrough (it needs root and Linux 6.9+ \
                 built with it): file contents go through the daemon"
            );
        }
        if !self.opts.read_only {
            self.vol.start_spares();
        }
        if self.opts.low_latency {
            self.latency = CpuLatency::start();
        }
        self.blocking = Blocking::start(BLOCKING_THREADS, BLOCKING_QUEUE);
        Ok(())
    }

    fn destroy(&mut self) {
        self.latency.stop();
        self.blocking.stop();
        self.vol.stop_spares();
        if let Err(e) = self.vol.sync_metadata() {
            tracing::error!("at unmount: {e}");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.latency.touch();
        match self.vol.lookup(parent.0, name_bytes(name)) {
            // Only this mount changes the volume, and the kernel replaces a
            // cached negative entry itself when it creates the name: a
            // tool's stat-then-create costs one lookup, not two.
            Err(VolumeError::Op(OpError::NotFound)) => {
                reply.entry(&TTL, &attr::negative_attr(), Generation(0))
            }
            r => self.entry(reply, r),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.latency.touch();
        match self.inode_fresh(ino.0) {
            Ok(i) => reply.attr(&TTL, &file_attr(&i)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.latency.touch();
        if let Err(e) = self.writable() {
            return reply.error(e);
        }
        let a = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(attr::time_or_now),
            mtime: mtime.map(attr::time_or_now),
            ctime: ctime.map(attr::time),
        };
        // Writes the kernel made directly come first.
        if let Err(e) = self.inode_fresh(ino.0) {
            return reply.error(errno(&e));
        }
        match self.vol.setattr(ino.0, a) {
            Ok(i) => {
                if size.is_some() {
                    // The cut changed the data file: that is recorded.
                    let mut g = self.open_inodes.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(o) = g.get_mut(&ino.0) {
                        o.seen = std::fs::metadata(self.vol.data_path(ino.0))
                            .ok()
                            .map(|md| stamp(&md));
                    }
                }
                reply.attr(&TTL, &file_attr(&i))
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.latency.touch();
        match self.vol.inode(ino.0) {
            Ok(i) if i.ftype == Ftype::Lnk => reply.data(&i.target),
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.latency.touch();
        if let Err(e) = self.writable() {
            return reply.error(e);
        }
        let r = self.vol.inode(parent.0).and_then(|p| {
            let (uid, gid, _) = self.new_owner(req, &p);
            self.vol
                .mknod(parent.0, name_bytes(name), mode, rdev as u64, uid, gid)
        });
        self.entry(reply, r)
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.latency.touch();
        if let Err(e) = self.writable() {
            return reply.error(e);
        }
        let r = self.vol.inode(parent.0).and_then(|p| {
            let (uid, gid, sgid) = self.new_owner(req, &p);
            self.vol
                .mkdir(parent.0, name_bytes(name), (mode & 0o7777) | sgid, uid, gid)
        });
        self.entry(reply, r)
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.latency.touch();
        if let Err(e) = self.writable() {
            return reply.error(e);
        }
        let slow = self.frees_a_large_file(parent.0, name_bytes(name));
        let vol = self.vol.clone();
        let name = name.to_owned();
        let job = move || Self::empty(reply, vol.unlink(parent.0, name_bytes(&name)));
        if slow {
            self.blocking.run(job)
        } else {
            job()
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.latency.touch();
        if let Err(e) = self.writable() {
            return reply.error(e);
        }
        Self::empty(reply, self.vol.rmdir(parent.0, name_bytes(name)))
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.latency.touch();
        if let Err(e) = self.writable() {
            return reply.error(e);
        }
        let r = self.vol.inode(parent.0).and_then(|p| {
            let (uid, gid, _) = self.new_owner(req, &p);
            self.vol.symlink(
                parent.0,
                name_bytes(link_name),
                target.as_os_str().as_bytes(),
                uid,
                gid,
            )
        });
        self.entry(reply, r)
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: FuseRenameFlags,
        reply: ReplyEmpty,
    ) {
        self.latency.touch();
        if let Err(e) = self.writable() {
            return reply.error(e);
        }
        let known = FuseRenameFlags::RENAME_NOREPLACE | FuseRenameFlags::RENAME_EXCHANGE;
        if !(flags - known).is_empty() {
            return reply.error(Errno::EINVAL);
        }
        let f = RenameFlags {
            noreplace: flags.contains(FuseRenameFlags::RENAME_NOREPLACE),
            exchange: flags.contains(FuseRenameFlags::RENAME_EXCHANGE),
        };
        let vol = self.vol.clone();
        let (from, to) = (name.to_owned(), newname.to_owned());
        let job = move || {
            Self::empty(
                reply,
                vol.rename(parent.0, name_bytes(&from), newparent.0, name_bytes(&to), f),
            )
        };
        if !f.exchange && self.frees_a_large_file(newparent.0, name_bytes(newname)) {
            self.blocking.run(job)
        } else {
            job()
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.latency.touch();
        if let Err(e) = self.writable() {
            return reply.error(e);
        }
        self.entry(
            reply,
            self.vol.link(ino.0, newparent.0, name_bytes(newname)),
        )
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.latency.touch();
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            if let Err(e) = self.writable() {
                return reply.error(e);
            }
        }
        let write = flags.0 & libc::O_ACCMODE != libc::O_RDONLY;
        let data = match self.open_data(ino.0) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        let access = if write { Access::Write } else { Access::Read };
        match self.register(ino.0, data, access, |f| reply.open_backing(f)) {
            Ok((fh, Some(b))) => reply.opened_passthrough(fh, FopenFlags::FOPEN_NOFLUSH, &b),
            Ok((fh, None)) => {
                reply.opened(fh, FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_NOFLUSH)
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.latency.touch();
        let Some(f) = self.file(fh) else {
            return reply.error(Errno::EBADF);
        };
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            match f.data.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::error!("read {}: {e}", self.vol.data_path(f.ino).display());
                    return reply.error(Errno::from(e));
                }
            }
        }
        reply.data(&buf[..got])
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.latency.touch();
        if let Err(e) = self.writable() {
            return reply.error(e);
        }
        let Some(f) = self.file(fh) else {
            return reply.error(Errno::EBADF);
        };
        if let Err(e) = f.data.write_all_at(data, offset) {
            tracing::error!("write {}: {e}", self.vol.data_path(f.ino).display());
            return reply.error(Errno::from(e));
        }
        match self.vol.note_write(f.ino, offset + data.len() as u64) {
            Ok(_) => reply.written(data.len() as u32),
            Err(e) => reply.error(errno(&e)),
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
        self.latency.touch();
        reply.ok()
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
        self.latency.touch();
        let f = self
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0);
        match f {
            Some(f) => Self::empty(reply, self.unregister(f)),
            None => reply.ok(),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.latency.touch();
        let Some(f) = self.file(fh) else {
            return reply.error(Errno::EBADF);
        };
        let (vol, open, passthrough) =
            (self.vol.clone(), self.open_inodes.clone(), self.passthrough);
        self.blocking.run(move || {
            let r = if datasync {
                f.data.sync_data()
            } else {
                f.data.sync_all()
            };
            if let Err(e) = r {
                tracing::error!("fsync {}: {e}", vol.data_path(f.ino).display());
                return reply.error(Errno::from(e));
            }
            let r = vol
                .inode(f.ino)
                .and_then(|i| fresh_record(&vol, passthrough, &open, i))
                .and_then(|_| vol.sync_metadata());
            Self::empty(reply, r)
        })
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.latency.touch();
        match self.vol.inode(ino.0) {
            Ok(i) if i.is_dir() => {}
            Ok(_) => return reply.error(Errno::ENOTDIR),
            Err(e) => return reply.error(errno(&e)),
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.dirs.lock().unwrap_or_else(|p| p.into_inner()).insert(
            fh,
            Arc::new(Mutex::new(OpenDir {
                entries: Vec::new(),
                parent: ino.0,
            })),
        );
        reply.opened(FileHandle(fh), FopenFlags::empty())
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.latency.touch();
        let d = match self.listing(ino.0, fh, offset) {
            Ok(d) => d,
            Err(e) => return reply.error(e),
        };
        let d = d.lock().unwrap_or_else(|p| p.into_inner());
        // Offsets: 1 = ".", 2 = "..", 3 + i = entries[i].
        let mut next = offset;
        while next < 2 + d.entries.len() as u64 {
            let full = match next {
                0 => reply.add(ino, 1, fuser::FileType::Directory, "."),
                1 => reply.add(INodeNo(d.parent), 2, fuser::FileType::Directory, ".."),
                n => {
                    let e = &d.entries[(n - 2) as usize];
                    reply.add(
                        INodeNo(e.ino),
                        n + 1,
                        file_type(e.ftype),
                        OsStr::from_bytes(&e.name),
                    )
                }
            };
            if full {
                break;
            }
            next += 1;
        }
        reply.ok()
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.latency.touch();
        let d = match self.listing(ino.0, fh, offset) {
            Ok(d) => d,
            Err(e) => return reply.error(e),
        };
        let d = d.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = offset;
        while next < 2 + d.entries.len() as u64 {
            let (ino_n, name): (u64, &[u8]) = match next {
                0 => (ino.0, b"."),
                1 => (d.parent, b".."),
                n => {
                    let e = &d.entries[(n - 2) as usize];
                    (e.ino, &e.name)
                }
            };
            let i = match self.vol.get(ino_n) {
                Ok(Some(i)) => match self.fresh(i) {
                    Ok(i) => i,
                    Err(e) => return reply.error(errno(&e)),
                },
                // Removed since the listing was taken: skip it.
                Ok(None) => {
                    next += 1;
                    continue;
                }
                Err(e) => return reply.error(errno(&e)),
            };
            if reply.add(
                INodeNo(ino_n),
                next + 1,
                OsStr::from_bytes(name),
                &TTL,
                &file_attr(&i),
                Generation(0),
            ) {
                break;
            }
            next += 1;
        }
        reply.ok()
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.latency.touch();
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0);
        reply.ok()
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.latency.touch();
        let vol = self.vol.clone();
        self.blocking
            .run(move || Self::empty(reply, vol.sync_metadata()))
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.latency.touch();
        match nix_statvfs(self.vol.dir()) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                crate::volume::NAME_MAX as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(Errno::from(e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        self.latency.touch();
        // "Not implemented": the kernel answers ENOTSUP itself from then on
        // (the caller sees the same error), which spares `cp -a` a round
        // trip per file for the ACL it tries to copy.
        reply.error(Errno::from_i32(libc::ENOSYS))
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        self.latency.touch();
        // "Not implemented": the kernel then stops asking (no more
        // security.capability lookups on every file's first write, one
        // round trip per file saved) and answers ENOTSUP itself.
        reply.error(Errno::from_i32(libc::ENOSYS))
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.latency.touch();
        if size == 0 {
            reply.size(0)
        } else {
            reply.data(&[])
        }
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        self.latency.touch();
        // As setxattr: the kernel answers ENOTSUP itself from then on.
        reply.error(Errno::from_i32(libc::ENOSYS))
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        self.latency.touch();
        // Permissions are checked by the kernel (default_permissions);
        // this only answers whether the inode exists.
        Self::empty(reply, self.vol.inode(ino.0).map(drop))
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        self.latency.touch();
        // No ioctl is supported (tools probe with TCGETS: answer as a
        // regular file on a local filesystem does).
        reply.error(Errno::ENOTTY)
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        self.latency.touch();
        if let Err(e) = self.writable() {
            return reply.error(e);
        }
        let r = self.vol.inode(parent.0).and_then(|p| {
            if mode & libc::S_IFMT != libc::S_IFREG && mode & libc::S_IFMT != 0 {
                return Err(VolumeError::Op(OpError::Invalid));
            }
            let (uid, gid, _) = self.new_owner(req, &p);
            self.vol.create_file(
                parent.0,
                name_bytes(name),
                mode,
                (uid, gid),
                self.passthrough,
            )
        });
        let (i, data) = match r {
            Ok(x) => x,
            Err(e) => return reply.error(errno(&e)),
        };
        match self.register(i.ino, data, Access::Created, |f| reply.open_backing(f)) {
            Ok((fh, Some(b))) => reply.created_passthrough(
                &TTL,
                &file_attr(&i),
                Generation(0),
                fh,
                FopenFlags::FOPEN_NOFLUSH,
                &b,
            ),
            Ok((fh, None)) => reply.created(
                &TTL,
                &file_attr(&i),
                Generation(0),
                fh,
                FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_NOFLUSH,
            ),
            Err(e) => reply.error(e),
        }
    }
}

/// `statvfs(2)` of a path.
fn nix_statvfs(p: &Path) -> std::io::Result<libc::statvfs> {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: c is a valid C string and s points to writable memory of
    // the right size; statvfs fills it on success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised the struct.
    Ok(unsafe { s.assume_init() })
}
