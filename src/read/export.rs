//! `export`: materialise a container's tree in a local directory —
//! contents, modes, atime/mtime, symlinks, fifos, sockets, hard links as
//! hard links (same handle ⇒ `link()`), and owners and device nodes when
//! running as root.
//!
//! Files are written as they are read, one segment at a time (all-zero
//! runs become holes), a bounded number of files at once. Directory
//! modes and times are applied last, deepest first, so that writing
//! entries does not disturb them and read-only directories can be filled.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::task::JoinSet;

use crate::clfs::id::{ObjectId, ROOT};
use crate::clfs::name::Btype;
use crate::clfs::object::InodeBody;
use crate::clfs::vattr::{make_dev, ClfsTime};
use crate::store::BlobStore;

use super::container::{Container, InodeNode, ReadError};
use super::data::{read_file, FileOptions, Piece};
use super::path::NsPath;
use super::problem::{Check, Problem, ProblemSink};
use super::walk::{spawn_root_walk, Event, WalkStats};

/// How to export.
#[derive(Debug, Clone, Copy)]
pub struct ExportOptions {
    /// Requests in flight.
    pub parallel: usize,
    /// Files written at once.
    pub files: usize,
    /// Write into a non-empty directory, replacing what is in the way.
    pub force: bool,
    /// Set owners (needs root).
    pub owners: bool,
    /// Create block and character devices (needs root).
    pub devices: bool,
    /// Read from the `tmp` root of an unfinished container.
    pub unfinished: bool,
}

impl ExportOptions {
    /// Defaults for the current user: owners and devices only as root.
    pub fn for_current_user() -> Self {
        let root = is_root_user();
        ExportOptions {
            parallel: 32,
            files: 8,
            force: false,
            owners: root,
            devices: root,
            unfinished: false,
        }
    }
}

/// True when the effective user is root.
pub fn is_root_user() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Why the export could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the container failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The container has no root.
    #[error("{0}: no root directory blob: not a CLFS container, or nothing was loaded")]
    NoRoot(String),
    /// Only the `tmp` root exists.
    #[error("{0}: unfinished container (only the provisional 'tmp' root exists); use --unfinished to export it anyway")]
    Unfinished(String),
    /// The target is not empty.
    #[error("{0} is not empty; use --force to write into it anyway")]
    NotEmpty(PathBuf),
    /// The target is not a directory.
    #[error("{0} exists and is not a directory")]
    NotADirectory(PathBuf),
    /// The target could not be prepared.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// Counts of an export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Directories created (the target included).
    pub dirs: u64,
    /// Regular files written (once per inode).
    pub files: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Fifos, sockets and devices.
    pub specials: u64,
    /// Extra names made with `link()`.
    pub hardlinks: u64,
    /// File bytes read.
    pub bytes: u64,
    /// Entries not exported (unreadable, or devices without root).
    pub skipped: u64,
}

/// The outcome of [`export`].
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// Counts.
    pub stats: ExportStats,
    /// What the walk saw.
    pub walk: WalkStats,
    /// Errors (unreadable objects, local failures).
    pub errors: u64,
    /// Warnings.
    pub warnings: u64,
    /// Problems not kept.
    pub dropped: u64,
    /// The problems.
    pub problems: Vec<Problem>,
}

impl ExportReport {
    /// True without errors.
    pub fn ok(&self) -> bool {
        self.errors == 0
    }
}

/// Attributes applied after the contents.
#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u16,
    uid: u32,
    gid: u32,
    atime: ClfsTime,
    mtime: ClfsTime,
}

impl Meta {
    fn of(node: &InodeNode) -> Self {
        let v = &node.inode.vattr;
        Meta {
            mode: v.mode,
            uid: v.uid,
            gid: v.gid,
            atime: v.atime,
            mtime: v.mtime,
        }
    }
}

enum LinkState {
    /// Being created; these names wait to be linked to it.
    Pending(Vec<(PathBuf, NsPath)>),
    /// Created at this path.
    Done(PathBuf),
    /// Could not be created.
    Failed,
}

type Links = Arc<Mutex<HashMap<ObjectId, LinkState>>>;

fn lock_links(l: &Links) -> std::sync::MutexGuard<'_, HashMap<ObjectId, LinkState>> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn timespec(t: ClfsTime) -> libc::timespec {
    libc::timespec {
        tv_sec: t.sec as libc::time_t,
        tv_nsec: t.nsec.min(999_999_999) as _,
    }
}

/// Sets owner (when asked), mode (not for symlinks) and atime/mtime
/// without following symlinks.
fn apply_meta(path: &Path, m: &Meta, owners: bool, symlink: bool) -> io::Result<()> {
    if owners {
        std::os::unix::fs::lchown(path, Some(m.uid), Some(m.gid))?;
    }
    if !symlink {
        // After chown, which may clear set-id bits.
        fs::set_permissions(path, Permissions::from_mode(u32::from(m.mode) & 0o7777))?;
    }
    let c = cpath(path)?;
    let times = [timespec(m.atime), timespec(m.mtime)];
    // SAFETY: `c` is a NUL-terminated path and `times` two valid timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes a non-directory in the way (with `force`).
fn clear_way(path: &Path, force: bool) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a directory is in the way",
        )),
        Ok(_) if force => fs::remove_file(path),
        Ok(_) => Err(io::Error::new(io::ErrorKind::AlreadyExists, "exists")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn mknod(path: &Path, mode: u32, dev: u64) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: `c` is a NUL-terminated path.
    let r = unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, dev as libc::dev_t) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The decoded root of the container: an error when it has none, or when
/// its root is still under its `tmp` name (a load or sync that did not
/// finish) unless `unfinished`.
pub(crate) async fn container_root(
    c: &Container,
    unfinished: bool,
) -> Result<Arc<InodeNode>, ExportError> {
    let located = c
        .locate(&ROOT)
        .await?
        .ok_or_else(|| ExportError::NoRoot(c.location()))?;
    if located.name.is_tmp() && !unfinished {
        return Err(ExportError::Unfinished(c.location()));
    }
    Ok(Arc::new(c.fetch_inode(&ROOT, &located.name).await?))
}

/// Exports the container in `store` into `target`.
pub async fn export(
    store: Arc<dyn BlobStore>,
    target: &Path,
    opts: &ExportOptions,
) -> Result<ExportReport, ExportError> {
    prepare_target(target, opts.force)?;
    let c = Arc::new(Container::indexed(store).await?);
    let root = container_root(&c, opts.unfinished).await?;
    let sink = Arc::new(ProblemSink::default());
    let (mut rx, walker) = spawn_root_walk(c.clone(), sink.clone(), root, opts.parallel);

    let x = Exporter {
        c,
        sink: sink.clone(),
        target: target.to_path_buf(),
        opts: *opts,
        links: Arc::new(Mutex::new(HashMap::new())),
    };
    let mut stats = ExportStats::default();
    let mut dirs: Vec<(PathBuf, NsPath, Meta)> = Vec::new();
    let mut tasks: JoinSet<FileDone> = JoinSet::new();
    let mut failed_dirs: HashSet<ObjectId> = HashSet::new();
    let finish = |d: Result<FileDone, tokio::task::JoinError>, stats: &mut ExportStats| match d {
        Ok(d) => {
            stats.bytes += d.bytes;
            stats.hardlinks += d.links;
        }
        Err(e) => sink.error(
            Check::Local,
            None,
            None,
            format!("a file writer failed: {e}"),
        ),
    };
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Node { path, node, parent } => {
                // Never write below a directory that could not be made:
                // what is in its place (say, a symlink) must not be
                // followed.
                if parent.is_some_and(|p| failed_dirs.contains(&p)) {
                    if node.is_dir() {
                        failed_dirs.insert(node.id);
                    }
                    stats.skipped += 1;
                    continue;
                }
                let local = x.target.join(path.relative_os());
                match node.btype() {
                    Btype::Dir => {
                        if !path.is_root() {
                            if let Err(e) = make_dir(&local) {
                                x.local_error(&path, &local, &e);
                                failed_dirs.insert(node.id);
                                continue;
                            }
                        }
                        stats.dirs += 1;
                        dirs.push((local, path, Meta::of(&node)));
                    }
                    _ => {
                        let multi = node.inode.back.as_ref().is_some_and(|b| b.len() > 1)
                            || node.inode.vattr.nlink > 1;
                        if multi && x.link_existing(&node.id, &local, &path, &mut stats) {
                            continue;
                        }
                        if node.btype() == Btype::Reg {
                            while tasks.len() >= opts.files.max(1) {
                                if let Some(r) = tasks.join_next().await {
                                    finish(r, &mut stats);
                                }
                            }
                            stats.files += 1;
                            let x = x.clone();
                            tasks
                                .spawn(async move { x.write_file(path, local, node, multi).await });
                        } else {
                            let ok = x.make_special(&path, &local, &node, &mut stats);
                            if multi {
                                stats.hardlinks += x.settle_links(&node.id, ok.then_some(&local));
                            }
                        }
                    }
                }
            }
            Event::Broken { .. } => stats.skipped += 1,
            Event::DirDone { .. } => {}
        }
    }
    while let Some(r) = tasks.join_next().await {
        finish(r, &mut stats);
    }
    let walk_stats = match walker.await {
        Ok(w) => w,
        Err(e) => {
            sink.error(
                Check::Store,
                None,
                None,
                format!("the namespace walk failed: {e}"),
            );
            WalkStats::default()
        }
    };
    // Directories last, deepest first; the target (the root) at the end.
    dirs.sort_by_key(|(_, p, _)| std::cmp::Reverse(p.depth()));
    for (local, path, meta) in &dirs {
        if let Err(e) = apply_meta(local, meta, x.opts.owners, false) {
            x.local_error(path, local, &e);
        }
    }
    Ok(ExportReport {
        stats,
        walk: walk_stats,
        errors: sink.errors(),
        warnings: sink.warnings(),
        dropped: sink.dropped(),
        problems: sink.snapshot(),
    })
}

fn prepare_target(target: &Path, force: bool) -> Result<(), ExportError> {
    let io_err = |source| ExportError::Io {
        path: target.to_path_buf(),
        source,
    };
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => {
            let mut entries = fs::read_dir(target).map_err(io_err)?;
            if entries.next().is_some() && !force {
                return Err(ExportError::NotEmpty(target.to_path_buf()));
            }
            Ok(())
        }
        Ok(_) => Err(ExportError::NotADirectory(target.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(target).map_err(io_err),
        Err(e) => Err(io_err(e)),
    }
}

fn make_dir(local: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(local) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if fs::symlink_metadata(local)?.is_dir() {
                // Make sure it can be filled (its final mode comes last).
                fs::set_permissions(local, Permissions::from_mode(0o700))
            } else {
                Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a non-directory is in the way",
                ))
            }
        }
        Err(e) => Err(e),
    }
}

struct FileDone {
    bytes: u64,
    links: u64,
}

#[derive(Clone)]
struct Exporter {
    c: Arc<Container>,
    sink: Arc<ProblemSink>,
    target: PathBuf,
    opts: ExportOptions,
    links: Links,
}

impl Exporter {
    fn local_error(&self, path: &NsPath, local: &Path, e: &io::Error) {
        self.sink.error(
            Check::Local,
            Some(path),
            None,
            format!("{}: {e}", local.display()),
        );
    }

    /// For a handle with several names: links `local` to the first name if
    /// it exists, or queues it. Returns false when this is the first name
    /// (the caller creates it).
    fn link_existing(
        &self,
        id: &ObjectId,
        local: &Path,
        path: &NsPath,
        stats: &mut ExportStats,
    ) -> bool {
        let mut g = lock_links(&self.links);
        match g.get_mut(id) {
            None => {
                g.insert(*id, LinkState::Pending(Vec::new()));
                false
            }
            Some(LinkState::Pending(v)) => {
                v.push((local.to_path_buf(), path.clone()));
                true
            }
            Some(LinkState::Done(first)) => {
                let first = first.clone();
                drop(g);
                match clear_way(local, self.opts.force).and_then(|()| fs::hard_link(&first, local))
                {
                    Ok(()) => stats.hardlinks += 1,
                    Err(e) => self.local_error(path, local, &e),
                }
                true
            }
            Some(LinkState::Failed) => {
                stats.skipped += 1;
                true
            }
        }
    }

    /// The first name of a multi-link handle is done (or failed): link the
    /// names that waited. Returns how many links were made.
    fn settle_links(&self, id: &ObjectId, created: Option<&Path>) -> u64 {
        let waiting = {
            let mut g = lock_links(&self.links);
            let state = match created {
                Some(p) => LinkState::Done(p.to_path_buf()),
                None => LinkState::Failed,
            };
            match g.insert(*id, state) {
                Some(LinkState::Pending(v)) => v,
                _ => Vec::new(),
            }
        };
        let Some(first) = created else {
            for (_, path) in &waiting {
                self.sink.warn(
                    Check::Skipped,
                    Some(path),
                    None,
                    "not exported: the first name of this hard link failed",
                );
            }
            return 0;
        };
        let mut n = 0;
        for (local, path) in waiting {
            match clear_way(&local, self.opts.force).and_then(|()| fs::hard_link(first, &local)) {
                Ok(()) => n += 1,
                Err(e) => self.local_error(&path, &local, &e),
            }
        }
        n
    }

    /// Symlinks, fifos, sockets, devices. Returns true if created.
    fn make_special(
        &self,
        path: &NsPath,
        local: &Path,
        node: &InodeNode,
        stats: &mut ExportStats,
    ) -> bool {
        let meta = Meta::of(node);
        let v = &node.inode.vattr;
        let btype = node.btype();
        if matches!(btype, Btype::Chr | Btype::Blk) && !self.opts.devices {
            self.sink.warn(
                Check::Skipped,
                Some(path),
                None,
                format!(
                    "{} device {}:{} not created (needs root)",
                    btype.word(),
                    v.rdev_major,
                    v.rdev_minor
                ),
            );
            stats.skipped += 1;
            return false;
        }
        let made = clear_way(local, self.opts.force).and_then(|()| match btype {
            Btype::Lnk => {
                let target = match &node.inode.body {
                    InodeBody::Data(d) => d.as_slice(),
                    _ => b"",
                };
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), local)
            }
            Btype::Fifo => mknod(local, libc::S_IFIFO | 0o600, 0),
            Btype::Sock => mknod(local, libc::S_IFSOCK | 0o600, 0),
            Btype::Chr | Btype::Blk => {
                let kind = if btype == Btype::Chr {
                    libc::S_IFCHR
                } else {
                    libc::S_IFBLK
                };
                mknod(local, kind | 0o600, make_dev(v.rdev_major, v.rdev_minor))
            }
            _ => Err(io::Error::other("not a special file")),
        });
        if let Err(e) =
            made.and_then(|()| apply_meta(local, &meta, self.opts.owners, btype == Btype::Lnk))
        {
            self.local_error(path, local, &e);
            return false;
        }
        if btype == Btype::Lnk {
            stats.symlinks += 1;
        } else {
            stats.specials += 1;
        }
        true
    }

    async fn write_file(
        self,
        path: NsPath,
        local: PathBuf,
        node: Arc<InodeNode>,
        multi: bool,
    ) -> FileDone {
        let r = self.write_contents(&path, &local, &node).await;
        let bytes = match &r {
            Ok(b) => *b,
            Err(e) => {
                self.local_error(&path, &local, e);
                0
            }
        };
        let links = if multi {
            self.settle_links(&node.id, r.is_ok().then_some(local.as_path()))
        } else {
            0
        };
        FileDone { bytes, links }
    }

    async fn write_contents(
        &self,
        path: &NsPath,
        local: &Path,
        node: &InodeNode,
    ) -> io::Result<u64> {
        clear_way(local, self.opts.force)?;
        let f: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(local)?;
        let fopts = FileOptions {
            fetch: true,
            readahead: 2,
        };
        const HOLE: usize = 64 * 1024;
        let sum = read_file(&self.c, &self.sink, path, node, fopts, |p| {
            if let Piece::Data { offset, bytes } = p {
                let mut at = offset;
                for chunk in bytes.chunks(HOLE) {
                    if chunk.iter().any(|&b| b != 0) {
                        f.write_all_at(chunk, at)?;
                    }
                    at += chunk.len() as u64;
                }
            }
            Ok(())
        })
        .await?;
        f.set_len(node.inode.vattr.length)?;
        drop(f);
        apply_meta(local, &Meta::of(node), self.opts.owners, false)?;
        Ok(sum.bytes)
    }
}
