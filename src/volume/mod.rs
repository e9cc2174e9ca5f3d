//! The staging volume: a writable namespace in RocksDB plus one backing
//! file per regular file, with no FUSE in it (the filesystem in
//! [`crate::fs`] and `clfs-fs sync` both drive this API).
//!
//! # On disk
//!
//! ```text
//! <volume>/VOLUME        JSON marker: format, containerid, fsid (written last by init)
//! <volume>/db/           RocksDB, column families and keys in [`keys`]
//! <volume>/data/XX/INO   contents of regular file INO (sparse); XX = two hex
//!                        digits of a hash of INO (256 fan-out folders)
//! ```
//!
//! # Records
//!
//! Each inode ([`Inode`]) has a FUSE inode number (`ino`; the root is 1,
//! every other inode's number is the `seq` of its CLFS filehandle, from
//! 1001 up, never reused), its CLFS id (the well-known 16-byte
//! [`ROOT`] for the root, else a 24-byte filehandle made by
//! [`FilehandleMaker`] from the volume's containerid, spec §2.3), type,
//! attributes, symlink target and `change_seq`. A volume-wide change
//! counter is incremented once per operation; every inode the operation
//! changes (contents, attributes, entries of a directory, back-pointers)
//! gets the new value in the same write batch. Directory entries map
//! `parent ‖ name` to the child (name order = readdir order); back-pointers
//! map `child ‖ parent` to the number of names of the child in that parent.
//! A deleted inode (link count 0 and no open handle) loses its record and
//! its data file and gains a [`Deleted`] record, which `sync` clears once it
//! has removed the inode's objects. An inode unlinked while open keeps its
//! record (link count 0) and an `orphan` key until it is released, or until
//! the next [`Volume::open`] after a crash.
//!
//! When the kernel writes a data file directly (FUSE passthrough), the
//! filesystem marks the inode open for writing ([`Volume::mark_open`]) and
//! copies the data file's length into the record, with new times, when it
//! sees the data file change ([`Volume::refresh_from_data`], on stat,
//! fsync and close). After a crash [`Volume::open`] does that for every
//! inode still marked, so a record's size always matches its data file
//! once the volume is open.
//!
//! # Operations and durability
//!
//! Each mutating method is one RocksDB write batch (with the updated
//! counters), written to the WAL without fsync: a killed process loses no
//! acknowledged operation, a power cut may lose the last ones but never
//! leaves half of one. [`Volume::sync_metadata`] flushes and syncs the WAL
//! (called by `fsync`). Mutations are serialised by one lock; reads take
//! none (a batch is visible all at once).
//!
//! # Read API for `sync`
//!
//! [`Volume::open`] is exclusive: RocksDB's `LOCK` file makes a second
//! opener (a mounted volume, another sync) fail with
//! [`VolumeError::InUse`]. Then [`Volume::for_each_inode`] (ino order, with
//! `change_seq`), [`Volume::for_each_dirent`] (name order),
//! [`Volume::backptrs`], [`Volume::open_data`], [`Volume::deleted`] /
//! [`Volume::clear_deleted`], [`Volume::change_counter`], [`Volume::marker`]
//! and the free-form `sync` column family ([`Volume::sync_get`],
//! [`Volume::sync_scan`], [`Volume::sync_write`]).

mod check;
pub mod keys;
mod ops;
pub use crate::records::volume as record;
mod spare;

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand::RngCore;
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, DB};
use serde::{Deserialize, Serialize};

use crate::clfs::id::{FilehandleMaker, Ftype, ROOT};

pub use ops::{RenameFlags, SetAttr};
pub use record::{Deleted, Inode, Timespec};

/// The root's inode number.
pub const ROOT_INO: u64 = 1;
/// The first inode number handed out (the spec's first filehandle `seq`).
pub const FIRST_INO: u64 = 1001;
/// Format of the volume folder.
pub const VOLUME_FORMAT: u32 = 1;
/// What the marker's `kind` says.
pub const VOLUME_KIND: &str = "clfs-fs staging volume";
/// Longest name of one directory entry.
pub const NAME_MAX: usize = 255;

const MARKER_FILE: &str = "VOLUME";
const DB_DIR: &str = "db";
const DATA_DIR: &str = "data";

/// Why an operation was refused: each maps to one errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// ENOENT.
    #[error("no such file or directory")]
    NotFound,
    /// EEXIST.
    #[error("file exists")]
    Exists,
    /// ENOTDIR.
    #[error("not a directory")]
    NotDir,
    /// EISDIR.
    #[error("is a directory")]
    IsDir,
    /// ENOTEMPTY.
    #[error("directory not empty")]
    NotEmpty,
    /// ENAMETOOLONG.
    #[error("file name too long")]
    NameTooLong,
    /// EINVAL.
    #[error("invalid argument")]
    Invalid,
    /// EPERM.
    #[error("operation not permitted")]
    NotPermitted,
    /// EMLINK.
    #[error("too many links")]
    TooManyLinks,
    /// EFBIG.
    #[error("file too large")]
    TooBig,
}

impl OpError {
    /// The errno.
    pub fn errno(self) -> i32 {
        match self {
            OpError::NotFound => libc::ENOENT,
            OpError::Exists => libc::EEXIST,
            OpError::NotDir => libc::ENOTDIR,
            OpError::IsDir => libc::EISDIR,
            OpError::NotEmpty => libc::ENOTEMPTY,
            OpError::NameTooLong => libc::ENAMETOOLONG,
            OpError::Invalid => libc::EINVAL,
            OpError::NotPermitted => libc::EPERM,
            OpError::TooManyLinks => libc::EMLINK,
            OpError::TooBig => libc::EFBIG,
        }
    }
}

/// Errors of the staging volume.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A refused operation (POSIX semantics).
    #[error(transparent)]
    Op(#[from] OpError),
    /// Another process holds the database.
    #[error("volume {path} is in use (mounted, or a sync is running)")]
    InUse {
        /// The volume folder.
        path: PathBuf,
    },
    /// The folder is not a volume.
    #[error("{path} is not a clfs-fs staging volume: {detail}")]
    NotAVolume {
        /// The folder.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// RocksDB failed.
    #[error("volume database {path}: {source}")]
    Db {
        /// The database folder.
        path: PathBuf,
        /// The cause.
        source: rocksdb::Error,
    },
    /// A stored value does not decode.
    #[error("volume database {path}: corrupt {what}: {detail}")]
    Corrupt {
        /// The database folder.
        path: PathBuf,
        /// Which value.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl VolumeError {
    /// The errno a filesystem should answer.
    pub fn errno(&self) -> i32 {
        match self {
            VolumeError::Op(e) => e.errno(),
            VolumeError::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            VolumeError::InUse { .. }
            | VolumeError::NotAVolume { .. }
            | VolumeError::Db { .. }
            | VolumeError::Corrupt { .. } => libc::EIO,
        }
    }
}

/// Result alias.
pub type VolumeResult<T> = Result<T, VolumeError>;

fn io_err(path: &Path, source: std::io::Error) -> VolumeError {
    VolumeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The `VOLUME` marker file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMarker {
    /// [`VOLUME_KIND`].
    pub kind: String,
    /// [`VOLUME_FORMAT`].
    pub format: u32,
    /// Tool version that created the volume.
    pub created_by: String,
    /// Container id in the filehandles (`[1, 2^32-1]`).
    pub containerid: u32,
    /// fsid for the container (`[1, 2^32-1]`).
    pub fsid: u32,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The name (raw bytes).
    pub name: Vec<u8>,
    /// The child's inode number.
    pub ino: u64,
    /// The child's type.
    pub ftype: Ftype,
}

/// Counters and the filehandle maker, under the mutation lock.
struct WriteState {
    next_ino: u64,
    change_seq: u64,
    maker: FilehandleMaker,
    /// Inodes unlinked while open (the `orphan` keys written since open):
    /// only their last release has anything to delete.
    orphans: std::collections::HashSet<u64>,
}

/// An open staging volume.
pub struct Volume {
    db: DB,
    dir: PathBuf,
    db_path: PathBuf,
    marker: VolumeMarker,
    state: Mutex<WriteState>,
    /// Open handles per inode (for unlinked-while-open files).
    open: Mutex<HashMap<u64, u32>>,
    /// Data files made ahead for the next inode numbers.
    spares: spare::Spares,
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume").field("dir", &self.dir).finish()
    }
}

fn db_options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    o.increase_parallelism(2);
    o
}

/// True when `dir` is absent or an empty folder.
fn absent_or_empty(dir: &Path) -> VolumeResult<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut it) => Ok(it.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io_err(dir, e)),
    }
}

/// Fan-out folder name of `ino`: two hex digits of a multiplicative hash.
fn fanout(ino: u64) -> String {
    format!(
        "{:02x}",
        (ino.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
    )
}

impl Volume {
    /// Creates a volume in `dir`, which must be absent or empty. The marker
    /// is written last: a folder without it is not a volume.
    pub fn init(dir: &Path) -> VolumeResult<VolumeMarker> {
        if !absent_or_empty(dir)? {
            if dir.join(MARKER_FILE).exists() {
                return Err(VolumeError::NotAVolume {
                    path: dir.to_path_buf(),
                    detail: "it is already a volume".into(),
                });
            }
            return Err(VolumeError::NotAVolume {
                path: dir.to_path_buf(),
                detail: "the folder is not empty (a new volume needs an empty or absent folder)"
                    .into(),
            });
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_err(dir, e))?;
        let data = dir.join(DATA_DIR);
        for i in 0..=255u8 {
            let d = data.join(format!("{i:02x}"));
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .map_err(|e| io_err(&d, e))?;
        }
        let db_path = dir.join(DB_DIR);
        let db = open_db(&db_path)?;
        let now = Timespec::now();
        // SAFETY: geteuid/getegid have no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let root = Inode {
            ino: ROOT_INO,
            fh: ROOT,
            ftype: Ftype::Dir,
            mode: libc::S_IFDIR | 0o755,
            uid,
            gid,
            size: 0,
            nlink: 2,
            rdev: 0,
            atime: now,
            mtime: now,
            ctime: now,
            change_seq: 1,
            target: Vec::new(),
        };
        let cf = |n: &str| {
            db.cf_handle(n).ok_or_else(|| VolumeError::Corrupt {
                path: db_path.clone(),
                what: "column family",
                detail: format!("{n} is missing"),
            })
        };
        let mut wb = WriteBatch::default();
        wb.put_cf(cf(keys::CF_INODE)?, keys::ino_key(ROOT_INO), root.encode());
        wb.put_cf(
            cf(keys::CF_META)?,
            keys::META_NEXT_INO,
            FIRST_INO.to_le_bytes(),
        );
        wb.put_cf(
            cf(keys::CF_META)?,
            keys::META_CHANGE_SEQ,
            1u64.to_le_bytes(),
        );
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(true);
        db.write_opt(wb, &wo).map_err(|source| VolumeError::Db {
            path: db_path.clone(),
            source,
        })?;
        drop(db);
        let mut rng = rand::rng();
        let nonzero = |rng: &mut rand::rngs::ThreadRng| loop {
            let v = rng.next_u32();
            if v != 0 {
                break v;
            }
        };
        let marker = VolumeMarker {
            kind: VOLUME_KIND.into(),
            format: VOLUME_FORMAT,
            created_by: format!("clfs-fs {}", env!("CARGO_PKG_VERSION")),
            containerid: nonzero(&mut rng),
            fsid: nonzero(&mut rng),
        };
        let text = serde_json::to_vec_pretty(&marker).map_err(|e| VolumeError::Corrupt {
            path: dir.to_path_buf(),
            what: "marker",
            detail: e.to_string(),
        })?;
        let tmp = dir.join("VOLUME.tmp");
        write_synced(&tmp, &text)?;
        let path = dir.join(MARKER_FILE);
        std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(dir, e))?;
        Ok(marker)
    }

    /// Opens the volume in `dir`, creating it first when `dir` is absent or
    /// empty (what `mount` does).
    pub fn open_or_init(dir: &Path) -> VolumeResult<Self> {
        if absent_or_empty(dir)? {
            Self::init(dir)?;
        }
        Self::open(dir)
    }

    /// Opens the volume in `dir`, exclusively. Finishes the deletion of
    /// inodes that were unlinked while open when the last user stopped.
    pub fn open(dir: &Path) -> VolumeResult<Self> {
        let marker_path = dir.join(MARKER_FILE);
        let text = match std::fs::read(&marker_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VolumeError::NotAVolume {
                    path: dir.to_path_buf(),
                    detail: format!(
                        "{} is missing (create one with `clfs-fs init`)",
                        marker_path.display()
                    ),
                })
            }
            Err(e) => return Err(io_err(&marker_path, e)),
        };
        let marker: VolumeMarker =
            serde_json::from_slice(&text).map_err(|e| VolumeError::NotAVolume {
                path: dir.to_path_buf(),
                detail: format!("{}: {e}", marker_path.display()),
            })?;
        if marker.kind != VOLUME_KIND || marker.format != VOLUME_FORMAT {
            return Err(VolumeError::NotAVolume {
                path: dir.to_path_buf(),
                detail: format!(
                    "{} says kind {:?} format {} (this tool reads format {VOLUME_FORMAT})",
                    marker_path.display(),
                    marker.kind,
                    marker.format
                ),
            });
        }
        let db_path = dir.join(DB_DIR);
        if !db_path.is_dir() {
            return Err(VolumeError::NotAVolume {
                path: dir.to_path_buf(),
                detail: format!("{} is missing", db_path.display()),
            });
        }
        let db = open_db(&db_path).map_err(|e| match e {
            VolumeError::Db { source, .. } if is_lock_error(&source) => VolumeError::InUse {
                path: dir.to_path_buf(),
            },
            other => other,
        })?;
        let mut vol = Volume {
            db,
            dir: dir.to_path_buf(),
            db_path,
            state: Mutex::new(WriteState {
                next_ino: FIRST_INO,
                change_seq: 0,
                maker: FilehandleMaker::new(marker.containerid),
                orphans: Default::default(),
            }),
            marker,
            open: Mutex::new(HashMap::new()),
            spares: Default::default(),
        };
        let next_ino = vol.meta_u64(keys::META_NEXT_INO)?.unwrap_or(FIRST_INO);
        let change_seq = vol.meta_u64(keys::META_CHANGE_SEQ)?.unwrap_or(0);
        {
            let st = vol.state.get_mut().unwrap_or_else(|p| p.into_inner());
            st.next_ino = next_ino;
            st.change_seq = change_seq;
        }
        vol.reap_orphans()?;
        vol.recover_open_marks()?;
        Ok(vol)
    }

    /// The volume folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The marker (containerid, fsid).
    pub fn marker(&self) -> &VolumeMarker {
        &self.marker
    }

    /// The last change counter value handed out.
    pub fn change_counter(&self) -> u64 {
        self.lock_state().change_seq
    }

    /// The next inode number that will be handed out.
    pub fn next_ino(&self) -> u64 {
        self.lock_state().next_ino
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, WriteState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn db_err(&self, source: rocksdb::Error) -> VolumeError {
        VolumeError::Db {
            path: self.db_path.clone(),
            source,
        }
    }

    fn corrupt(&self, what: &'static str, detail: impl Into<String>) -> VolumeError {
        VolumeError::Corrupt {
            path: self.db_path.clone(),
            what,
            detail: detail.into(),
        }
    }

    fn cf(&self, name: &str) -> VolumeResult<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| self.corrupt("column family", format!("{name} is missing")))
    }

    fn meta_u64(&self, key: &[u8]) -> VolumeResult<Option<u64>> {
        match self
            .db
            .get_cf(self.cf(keys::CF_META)?, key)
            .map_err(|e| self.db_err(e))?
        {
            None => Ok(None),
            Some(v) => keys::parse_u64(&v)
                .map(Some)
                .ok_or_else(|| self.corrupt("counter", String::from_utf8_lossy(key))),
        }
    }

    /// The inode `ino`, if it exists.
    pub fn get(&self, ino: u64) -> VolumeResult<Option<Inode>> {
        match self
            .db
            .get_cf(self.cf(keys::CF_INODE)?, keys::ino_key(ino))
            .map_err(|e| self.db_err(e))?
        {
            None => Ok(None),
            Some(v) => Inode::decode(&v)
                .map(Some)
                .map_err(|e| self.corrupt("inode record", format!("ino {ino}: {e}"))),
        }
    }

    /// The inode `ino`, or [`OpError::NotFound`].
    pub fn inode(&self, ino: u64) -> VolumeResult<Inode> {
        self.get(ino)?.ok_or(VolumeError::Op(OpError::NotFound))
    }

    /// The entry `name` of directory `parent`: `(child ino, type)`.
    pub fn lookup_entry(&self, parent: u64, name: &[u8]) -> VolumeResult<Option<(u64, Ftype)>> {
        match self
            .db
            .get_cf(self.cf(keys::CF_DIRENT)?, keys::dirent_key(parent, name))
            .map_err(|e| self.db_err(e))?
        {
            None => Ok(None),
            Some(v) => {
                let (ino, t) = keys::parse_dirent_value(&v)
                    .ok_or_else(|| self.corrupt("directory entry", format!("in {parent}")))?;
                let ft = Ftype::from_code(t)
                    .ok_or_else(|| self.corrupt("directory entry type", format!("in {parent}")))?;
                Ok(Some((ino, ft)))
            }
        }
    }

    /// Looks `name` up in `parent` and returns the child's inode:
    /// [`OpError::NotDir`] if `parent` is not a directory,
    /// [`OpError::NotFound`] if there is no such entry.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> VolumeResult<Inode> {
        if name.len() > NAME_MAX {
            return Err(OpError::NameTooLong.into());
        }
        match self.lookup_entry(parent, name)? {
            Some((ino, _)) => self.get(ino)?.ok_or_else(|| {
                self.corrupt(
                    "directory entry",
                    format!("{parent} names missing inode {ino}"),
                )
            }),
            None => {
                let p = self.inode(parent)?;
                if !p.is_dir() {
                    return Err(OpError::NotDir.into());
                }
                Err(OpError::NotFound.into())
            }
        }
    }

    /// Calls `f` for the entries of `dir` whose names sort after `after`
    /// (all when `None`), in name order, until `f` returns false.
    pub fn for_each_dirent(
        &self,
        dir: u64,
        after: Option<&[u8]>,
        mut f: impl FnMut(DirEntry) -> bool,
    ) -> VolumeResult<()> {
        let cf = self.cf(keys::CF_DIRENT)?;
        let prefix = dir.to_be_bytes();
        let start = match after {
            Some(a) => {
                let mut k = keys::dirent_key(dir, a);
                k.push(0);
                k
            }
            None => prefix.to_vec(),
        };
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            if !k.starts_with(&prefix) {
                break;
            }
            let (_, name) = keys::parse_dirent_key(&k)
                .ok_or_else(|| self.corrupt("directory entry key", format!("in {dir}")))?;
            let (ino, t) = keys::parse_dirent_value(&v)
                .ok_or_else(|| self.corrupt("directory entry", format!("in {dir}")))?;
            let ftype = Ftype::from_code(t)
                .ok_or_else(|| self.corrupt("directory entry type", format!("in {dir}")))?;
            if !f(DirEntry {
                name: name.to_vec(),
                ino,
                ftype,
            }) {
                break;
            }
        }
        Ok(())
    }

    /// True when `dir` has no entry.
    pub fn is_empty_dir(&self, dir: u64) -> VolumeResult<bool> {
        let mut empty = true;
        self.for_each_dirent(dir, None, |_| {
            empty = false;
            false
        })?;
        Ok(empty)
    }

    /// Back-pointers of `ino`: `(parent ino, number of names in it)`, by
    /// parent. Empty for the root and for unlinked inodes.
    pub fn backptrs(&self, ino: u64) -> VolumeResult<Vec<(u64, u32)>> {
        let cf = self.cf(keys::CF_BACKPTR)?;
        let prefix = ino.to_be_bytes();
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            if !k.starts_with(&prefix) {
                break;
            }
            let (_, parent) = keys::parse_backptr_key(&k)
                .ok_or_else(|| self.corrupt("back-pointer key", format!("of {ino}")))?;
            let n = keys::parse_u32(&v)
                .ok_or_else(|| self.corrupt("back-pointer count", format!("of {ino}")))?;
            out.push((parent, n));
        }
        Ok(out)
    }

    /// Calls `f` for every inode, in inode-number order (the root first).
    pub fn for_each_inode(&self, mut f: impl FnMut(Inode) -> bool) -> VolumeResult<()> {
        let cf = self.cf(keys::CF_INODE)?;
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            let ino = keys::parse_ino_key(&k)
                .ok_or_else(|| self.corrupt("inode key", hex::encode(&k)))?;
            let rec = Inode::decode(&v)
                .map_err(|e| self.corrupt("inode record", format!("ino {ino}: {e}")))?;
            if !f(rec) {
                break;
            }
        }
        Ok(())
    }

    /// Inodes deleted since `sync` last cleared them: `(ino, record)`.
    pub fn deleted(&self) -> VolumeResult<Vec<(u64, Deleted)>> {
        let cf = self.cf(keys::CF_DELETED)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            let ino = keys::parse_ino_key(&k)
                .ok_or_else(|| self.corrupt("deleted key", hex::encode(&k)))?;
            let d = Deleted::decode(&v)
                .map_err(|e| self.corrupt("deleted record", format!("ino {ino}: {e}")))?;
            out.push((ino, d));
        }
        Ok(out)
    }

    /// Removes the given `deleted` records (durably).
    pub fn clear_deleted(&self, inos: &[u64]) -> VolumeResult<()> {
        let cf = self.cf(keys::CF_DELETED)?;
        let mut wb = WriteBatch::default();
        for ino in inos {
            wb.delete_cf(cf, keys::ino_key(*ino));
        }
        self.write_synced(wb)
    }

    /// A value of the `sync` column family.
    pub fn sync_get(&self, key: &[u8]) -> VolumeResult<Option<Vec<u8>>> {
        self.db
            .get_cf(self.cf(keys::CF_SYNC)?, key)
            .map_err(|e| self.db_err(e))
    }

    /// Calls `f` for the `sync` entries whose key starts with `prefix`, in
    /// key order, until `f` returns false.
    pub fn sync_scan(
        &self,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> VolumeResult<()> {
        let cf = self.cf(keys::CF_SYNC)?;
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            if !k.starts_with(prefix) || !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    /// Applies puts (`Some`) and deletes (`None`) to the `sync` column
    /// family and removes `deleted` records, in one batch, WAL-synced.
    pub fn sync_write(
        &self,
        changes: &[(Vec<u8>, Option<Vec<u8>>)],
        clear_deleted: &[u64],
    ) -> VolumeResult<()> {
        let cf = self.cf(keys::CF_SYNC)?;
        let del = self.cf(keys::CF_DELETED)?;
        let mut wb = WriteBatch::default();
        for (k, v) in changes {
            match v {
                Some(v) => wb.put_cf(cf, k, v),
                None => wb.delete_cf(cf, k),
            }
        }
        for ino in clear_deleted {
            wb.delete_cf(del, keys::ino_key(*ino));
        }
        self.write_synced(wb)
    }

    fn write_synced(&self, wb: WriteBatch) -> VolumeResult<()> {
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(wb, &wo).map_err(|e| self.db_err(e))
    }

    /// Flushes and syncs the WAL: every operation so far survives a crash.
    pub fn sync_metadata(&self) -> VolumeResult<()> {
        self.db.flush_wal(true).map_err(|e| self.db_err(e))
    }

    /// Path of the data file of regular file `ino`.
    pub fn data_path(&self, ino: u64) -> PathBuf {
        self.dir
            .join(DATA_DIR)
            .join(fanout(ino))
            .join(ino.to_string())
    }

    /// Opens the data file of `ino` for reading and, if `write`, writing;
    /// creates it (empty) when missing.
    pub fn open_data(&self, ino: u64, write: bool) -> VolumeResult<File> {
        let p = self.data_path(ino);
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(if write { 0 } else { libc::O_NOATIME })
            .open(&p)
            .map_err(|e| io_err(&p, e))
    }

    /// Records one more open handle of `ino`.
    pub fn open_ref(&self, ino: u64) {
        let mut g = self.open.lock().unwrap_or_else(|p| p.into_inner());
        *g.entry(ino).or_insert(0) += 1;
    }

    fn is_open(&self, ino: u64) -> bool {
        let g = self.open.lock().unwrap_or_else(|p| p.into_inner());
        g.get(&ino).copied().unwrap_or(0) > 0
    }

    /// Drops one open handle of `ino`; deletes the inode if it was the last
    /// handle of an unlinked inode.
    pub fn release_ref(&self, ino: u64) -> VolumeResult<()> {
        let last = {
            let mut g = self.open.lock().unwrap_or_else(|p| p.into_inner());
            match g.get_mut(&ino) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    g.remove(&ino);
                    true
                }
                None => false,
            }
        };
        // An unlink that saw the handle open recorded the orphan under the
        // state lock before releasing it, so this check cannot miss one.
        if last && self.lock_state().orphans.contains(&ino) {
            self.reap_if_unlinked(ino)?;
        }
        Ok(())
    }

    /// Marks regular file `ino` as open for writing by someone who writes
    /// its data file directly (durable with the next WAL sync).
    pub fn mark_open(&self, ino: u64) -> VolumeResult<()> {
        self.db
            .put_cf(self.cf(keys::CF_META)?, keys::open_mark_key(ino), [])
            .map_err(|e| self.db_err(e))
    }

    fn recover_open_marks(&mut self) -> VolumeResult<()> {
        let cf = self.cf(keys::CF_META)?;
        let mut inos = Vec::new();
        for item in self.db.iterator_cf(
            cf,
            IteratorMode::From(keys::META_OPEN_PREFIX, Direction::Forward),
        ) {
            let (k, _) = item.map_err(|e| self.db_err(e))?;
            let Some(rest) = k.strip_prefix(keys::META_OPEN_PREFIX) else {
                break;
            };
            inos.push(
                keys::parse_ino_key(rest)
                    .ok_or_else(|| self.corrupt("open mark", hex::encode(&k)))?,
            );
        }
        for ino in inos {
            let refreshed = match std::fs::metadata(self.data_path(ino)) {
                Ok(md) => match self.refresh_from_data(ino, &md, true, true) {
                    Ok(_) => true,
                    // Gone or not a regular file: only the mark is left.
                    Err(VolumeError::Op(_)) => false,
                    Err(e) => return Err(e),
                },
                Err(_) => false,
            };
            if !refreshed {
                let cf = self.cf(keys::CF_META)?;
                self.db
                    .delete_cf(cf, keys::open_mark_key(ino))
                    .map_err(|e| self.db_err(e))?;
            }
        }
        Ok(())
    }

    fn reap_orphans(&mut self) -> VolumeResult<()> {
        let cf = self.cf(keys::CF_ORPHAN)?;
        let mut inos = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, _) = item.map_err(|e| self.db_err(e))?;
            inos.push(
                keys::parse_ino_key(&k)
                    .ok_or_else(|| self.corrupt("orphan key", hex::encode(&k)))?,
            );
        }
        for ino in inos {
            self.reap_if_unlinked(ino)?;
        }
        Ok(())
    }
}

fn open_db(path: &Path) -> VolumeResult<DB> {
    let cfs = keys::ALL_CFS
        .iter()
        .map(|n| ColumnFamilyDescriptor::new(*n, db_options()));
    DB::open_cf_descriptors(&db_options(), path, cfs).map_err(|source| VolumeError::Db {
        path: path.to_path_buf(),
        source,
    })
}

fn is_lock_error(e: &rocksdb::Error) -> bool {
    let s = e.to_string();
    s.contains("LOCK") || s.contains("lock hold") || s.contains("Resource temporarily unavailable")
}

fn write_synced(path: &Path, bytes: &[u8]) -> VolumeResult<()> {
    use std::io::Write;
    let mut f = File::create(path).map_err(|e| io_err(path, e))?;
    f.write_all(bytes).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

#[cfg(test)]
mod tests;
