//! The mutating operations of a volume. Each is one [`Txn`]: reads go
//! through it (so an operation sees its own changes), and [`Txn::commit`]
//! writes every change, the counters and the new `change_seq` of every
//! touched inode in one RocksDB write batch.

use std::collections::HashMap;
use std::fs::File;

use rocksdb::WriteBatch;

use super::keys;
use super::record::{Deleted, Inode, Timespec};
use super::{OpError, Volume, VolumeError, VolumeResult, WriteState, NAME_MAX, ROOT_INO};
use crate::clfs::id::Ftype;

/// Attribute changes of [`Volume::setattr`]; `None` leaves a field alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// Permission bits (the type bits are kept).
    pub mode: Option<u32>,
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
    /// New size (regular files only).
    pub size: Option<u64>,
    /// Access time.
    pub atime: Option<Timespec>,
    /// Modification time.
    pub mtime: Option<Timespec>,
    /// Change time (else: now, when anything changed).
    pub ctime: Option<Timespec>,
}

/// `renameat2` flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenameFlags {
    /// Fail with EEXIST if the target exists.
    pub noreplace: bool,
    /// Swap source and target (both must exist).
    pub exchange: bool,
}

/// The largest file size (the data file's limit on common filesystems).
const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// Checks a new entry name.
fn check_name(name: &[u8]) -> Result<(), OpError> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(OpError::Invalid);
    }
    if name.len() > NAME_MAX {
        return Err(OpError::NameTooLong);
    }
    Ok(())
}

/// `(parent, name)`.
type EntryKey = (u64, Vec<u8>);

/// One operation in progress.
struct Txn<'a> {
    vol: &'a Volume,
    st: std::sync::MutexGuard<'a, WriteState>,
    seq: u64,
    now: Timespec,
    /// Changed inodes (`None`: deleted).
    inodes: HashMap<u64, Option<Inode>>,
    /// Changed entries (`None`: removed).
    dirents: HashMap<EntryKey, Option<(u64, Ftype)>>,
    /// Changed back-pointer counts.
    backptrs: HashMap<(u64, u64), u32>,
    orphans: Vec<(u64, bool)>,
    deleted: Vec<(u64, Deleted)>,
    remove_data: Vec<u64>,
    /// Open-for-writing marks to remove.
    unmark: Vec<u64>,
    /// Open-for-writing marks to add.
    mark: Vec<u64>,
}

impl<'a> Txn<'a> {
    fn new(vol: &'a Volume) -> Self {
        let st = vol.lock_state();
        let seq = st.change_seq + 1;
        Txn {
            vol,
            st,
            seq,
            now: Timespec::now(),
            inodes: HashMap::new(),
            dirents: HashMap::new(),
            backptrs: HashMap::new(),
            orphans: Vec::new(),
            deleted: Vec::new(),
            remove_data: Vec::new(),
            unmark: Vec::new(),
            mark: Vec::new(),
        }
    }

    fn get(&self, ino: u64) -> VolumeResult<Inode> {
        match self.inodes.get(&ino) {
            Some(Some(i)) => Ok(i.clone()),
            Some(None) => Err(OpError::NotFound.into()),
            None => self.vol.inode(ino),
        }
    }

    fn dir(&self, ino: u64) -> VolumeResult<Inode> {
        let d = self.get(ino)?;
        if !d.is_dir() {
            return Err(OpError::NotDir.into());
        }
        if d.nlink == 0 {
            return Err(OpError::NotFound.into());
        }
        Ok(d)
    }

    fn put(&mut self, i: Inode) {
        self.inodes.insert(i.ino, Some(i));
    }

    fn entry(&self, parent: u64, name: &[u8]) -> VolumeResult<Option<(u64, Ftype)>> {
        match self.dirents.get(&(parent, name.to_vec())) {
            Some(v) => Ok(*v),
            None => self.vol.lookup_entry(parent, name),
        }
    }

    fn set_entry(&mut self, parent: u64, name: &[u8], v: Option<(u64, Ftype)>) {
        self.dirents.insert((parent, name.to_vec()), v);
    }

    fn backptr_add(&mut self, child: u64, parent: u64, delta: i64) -> VolumeResult<()> {
        let cur = match self.backptrs.get(&(child, parent)) {
            Some(n) => *n,
            None => match self
                .vol
                .db
                .get_cf(
                    self.vol.cf(keys::CF_BACKPTR)?,
                    keys::backptr_key(child, parent),
                )
                .map_err(|e| self.vol.db_err(e))?
            {
                Some(v) => keys::parse_u32(&v).ok_or_else(|| {
                    self.vol
                        .corrupt("back-pointer count", format!("of {child}"))
                })?,
                None => 0,
            },
        };
        let new = (cur as i64 + delta).max(0) as u32;
        self.backptrs.insert((child, parent), new);
        Ok(())
    }

    /// Touches a directory whose entries changed.
    fn dir_changed(&mut self, ino: u64, nlink_delta: i32) -> VolumeResult<()> {
        let mut d = self.get(ino)?;
        d.mtime = self.now;
        d.ctime = self.now;
        d.nlink = (d.nlink as i64 + nlink_delta as i64).max(0) as u32;
        self.put(d);
        Ok(())
    }

    /// Removes one name of `child` (its entry and back-pointer are the
    /// caller's): drops the link count, and deletes the inode when nothing
    /// refers to it any more.
    fn drop_link(&mut self, child: u64) -> VolumeResult<()> {
        let mut c = self.get(child)?;
        c.ctime = self.now;
        if c.is_dir() {
            c.nlink = 0;
        } else {
            c.nlink = c.nlink.saturating_sub(1);
        }
        if c.nlink > 0 {
            self.put(c);
        } else if self.vol.is_open(child) {
            self.orphans.push((child, true));
            self.put(c);
        } else {
            self.delete_inode(&c);
        }
        Ok(())
    }

    fn delete_inode(&mut self, c: &Inode) {
        self.deleted.push((
            c.ino,
            Deleted {
                fh: c.fh,
                ftype: c.ftype,
                change_seq: self.seq,
            },
        ));
        if c.ftype == Ftype::Reg {
            self.remove_data.push(c.ino);
            self.unmark.push(c.ino);
        }
        self.inodes.insert(c.ino, None);
    }

    fn commit(mut self) -> VolumeResult<()> {
        let vol = self.vol;
        let mut wb = WriteBatch::default();
        let cf_inode = vol.cf(keys::CF_INODE)?;
        for (ino, rec) in &mut self.inodes {
            match rec {
                Some(i) => {
                    i.change_seq = self.seq;
                    wb.put_cf(cf_inode, keys::ino_key(*ino), i.encode());
                }
                None => wb.delete_cf(cf_inode, keys::ino_key(*ino)),
            }
        }
        let cf_dirent = vol.cf(keys::CF_DIRENT)?;
        for ((parent, name), v) in &self.dirents {
            let k = keys::dirent_key(*parent, name);
            match v {
                Some((child, t)) => wb.put_cf(cf_dirent, k, keys::dirent_value(*child, *t as u8)),
                None => wb.delete_cf(cf_dirent, k),
            }
        }
        let cf_bp = vol.cf(keys::CF_BACKPTR)?;
        for ((child, parent), n) in &self.backptrs {
            let k = keys::backptr_key(*child, *parent);
            if *n == 0 {
                wb.delete_cf(cf_bp, k);
            } else {
                wb.put_cf(cf_bp, k, n.to_le_bytes());
            }
        }
        let cf_orphan = vol.cf(keys::CF_ORPHAN)?;
        for (ino, add) in &self.orphans {
            if *add {
                wb.put_cf(cf_orphan, keys::ino_key(*ino), []);
            } else {
                wb.delete_cf(cf_orphan, keys::ino_key(*ino));
            }
        }
        let cf_del = vol.cf(keys::CF_DELETED)?;
        for (ino, d) in &self.deleted {
            wb.put_cf(cf_del, keys::ino_key(*ino), d.encode());
        }
        let cf_meta = vol.cf(keys::CF_META)?;
        for ino in &self.unmark {
            wb.delete_cf(cf_meta, keys::open_mark_key(*ino));
        }
        for ino in &self.mark {
            wb.put_cf(cf_meta, keys::open_mark_key(*ino), []);
        }
        wb.put_cf(cf_meta, keys::META_NEXT_INO, self.st.next_ino.to_le_bytes());
        wb.put_cf(cf_meta, keys::META_CHANGE_SEQ, self.seq.to_le_bytes());
        vol.db.write(wb).map_err(|e| vol.db_err(e))?;
        self.st.change_seq = self.seq;
        for (ino, add) in &self.orphans {
            if *add {
                self.st.orphans.insert(*ino);
            } else {
                self.st.orphans.remove(ino);
            }
        }
        drop(self.st);
        for ino in self.remove_data {
            let p = vol.data_path(ino);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("cannot remove data file {}: {e}", p.display()),
            }
        }
        Ok(())
    }
}

/// What a new inode is.
#[derive(Debug, Clone)]
pub(super) struct NewNode<'n> {
    ftype: Ftype,
    perm: u32,
    uid: u32,
    gid: u32,
    rdev: u64,
    target: &'n [u8],
    /// Mark the new inode open for writing in the same batch.
    mark_open: bool,
}

fn type_bits(t: Ftype) -> u32 {
    match t {
        Ftype::Dir => libc::S_IFDIR,
        Ftype::Reg => libc::S_IFREG,
        Ftype::Lnk => libc::S_IFLNK,
        Ftype::Blk => libc::S_IFBLK,
        Ftype::Chr => libc::S_IFCHR,
        Ftype::Sock => libc::S_IFSOCK,
        Ftype::Fifo => libc::S_IFIFO,
    }
}

/// The file type of an `st_mode`.
pub fn ftype_of_mode(mode: u32) -> Option<Ftype> {
    Some(match mode & libc::S_IFMT {
        libc::S_IFDIR => Ftype::Dir,
        libc::S_IFREG => Ftype::Reg,
        libc::S_IFLNK => Ftype::Lnk,
        libc::S_IFBLK => Ftype::Blk,
        libc::S_IFCHR => Ftype::Chr,
        libc::S_IFSOCK => Ftype::Sock,
        libc::S_IFIFO => Ftype::Fifo,
        _ => return None,
    })
}

impl Volume {
    fn create_node(&self, parent: u64, name: &[u8], n: NewNode<'_>) -> VolumeResult<Inode> {
        check_name(name)?;
        let mut t = Txn::new(self);
        let p = t.dir(parent)?;
        if t.entry(parent, name)?.is_some() {
            return Err(OpError::Exists.into());
        }
        if n.ftype == Ftype::Dir && p.nlink == u32::MAX {
            return Err(OpError::TooManyLinks.into());
        }
        let ino = t.st.next_ino;
        t.st.next_ino += 1;
        let fh = t.st.maker.make(&p.fh, n.ftype, ino, &mut rand::rng()).id();
        let node = Inode {
            ino,
            fh,
            ftype: n.ftype,
            mode: type_bits(n.ftype) | (n.perm & 0o7777),
            uid: n.uid,
            gid: n.gid,
            size: if n.ftype == Ftype::Lnk {
                n.target.len() as u64
            } else {
                0
            },
            nlink: if n.ftype == Ftype::Dir { 2 } else { 1 },
            rdev: if matches!(n.ftype, Ftype::Chr | Ftype::Blk) {
                n.rdev
            } else {
                0
            },
            atime: t.now,
            mtime: t.now,
            ctime: t.now,
            change_seq: 0,
            target: n.target.to_vec(),
        };
        t.put(node.clone());
        t.set_entry(parent, name, Some((ino, n.ftype)));
        t.backptr_add(ino, parent, 1)?;
        t.dir_changed(parent, if n.ftype == Ftype::Dir { 1 } else { 0 })?;
        if n.mark_open {
            t.mark.push(ino);
        }
        let seq = t.seq;
        t.commit()?;
        self.spares.taken(self, ino, n.ftype == Ftype::Reg);
        Ok(Inode {
            change_seq: seq,
            ..node
        })
    }

    /// Creates a regular file and returns it with its data file open for
    /// reading and writing; `mark_open` marks it open for writing (see
    /// [`Volume::mark_open`]) in the same batch.
    pub fn create_file(
        &self,
        parent: u64,
        name: &[u8],
        perm: u32,
        owner: (u32, u32),
        mark_open: bool,
    ) -> VolumeResult<(Inode, File)> {
        let node = self.create_node(
            parent,
            name,
            NewNode {
                ftype: Ftype::Reg,
                perm,
                uid: owner.0,
                gid: owner.1,
                rdev: 0,
                target: &[],
                mark_open,
            },
        )?;
        let f = self.open_data(node.ino, true)?;
        // A new number's data file holds bytes only when a crash lost the
        // creation that used the number before (the data file outlived the
        // unsynced record): they belong to no file.
        let stale = f
            .metadata()
            .and_then(|md| if md.len() > 0 { f.set_len(0) } else { Ok(()) });
        stale.map_err(|e| VolumeError::Io {
            path: self.data_path(node.ino),
            source: e,
        })?;
        Ok((node, f))
    }

    /// Creates a directory.
    pub fn mkdir(
        &self,
        parent: u64,
        name: &[u8],
        perm: u32,
        uid: u32,
        gid: u32,
    ) -> VolumeResult<Inode> {
        self.create_node(
            parent,
            name,
            NewNode {
                ftype: Ftype::Dir,
                perm,
                uid,
                gid,
                rdev: 0,
                target: &[],
                mark_open: false,
            },
        )
    }

    /// Creates a symbolic link to `target`.
    pub fn symlink(
        &self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> VolumeResult<Inode> {
        if target.is_empty() {
            return Err(OpError::NotFound.into());
        }
        if target.len() > 4095 {
            return Err(OpError::NameTooLong.into());
        }
        self.create_node(
            parent,
            name,
            NewNode {
                ftype: Ftype::Lnk,
                perm: 0o777,
                uid,
                gid,
                rdev: 0,
                target,
                mark_open: false,
            },
        )
    }

    /// Creates a node from an `st_mode` (type bits included): regular file,
    /// fifo, socket, character or block device (`rdev`).
    pub fn mknod(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u64,
        uid: u32,
        gid: u32,
    ) -> VolumeResult<Inode> {
        let ftype = match ftype_of_mode(mode) {
            Some(Ftype::Dir) | Some(Ftype::Lnk) | None => return Err(OpError::Invalid.into()),
            Some(t) => t,
        };
        let node = self.create_node(
            parent,
            name,
            NewNode {
                ftype,
                perm: mode,
                uid,
                gid,
                rdev,
                target: &[],
                mark_open: false,
            },
        )?;
        if ftype == Ftype::Reg {
            self.open_data(node.ino, true)?;
        }
        Ok(node)
    }

    /// Adds the name `newname` in `newparent` for `ino`.
    pub fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> VolumeResult<Inode> {
        check_name(newname)?;
        let mut t = Txn::new(self);
        let mut c = t.get(ino)?;
        if c.is_dir() {
            return Err(OpError::NotPermitted.into());
        }
        if c.nlink == 0 {
            return Err(OpError::NotFound.into());
        }
        if c.nlink == u32::MAX {
            return Err(OpError::TooManyLinks.into());
        }
        t.dir(newparent)?;
        if t.entry(newparent, newname)?.is_some() {
            return Err(OpError::Exists.into());
        }
        c.nlink += 1;
        c.ctime = t.now;
        t.put(c.clone());
        t.set_entry(newparent, newname, Some((ino, c.ftype)));
        t.backptr_add(ino, newparent, 1)?;
        t.dir_changed(newparent, 0)?;
        let seq = t.seq;
        t.commit()?;
        Ok(Inode {
            change_seq: seq,
            ..c
        })
    }

    /// Removes a non-directory entry.
    pub fn unlink(&self, parent: u64, name: &[u8]) -> VolumeResult<()> {
        let mut t = Txn::new(self);
        t.dir(parent)?;
        let (child, ft) = t.entry(parent, name)?.ok_or(OpError::NotFound)?;
        if ft == Ftype::Dir {
            return Err(OpError::IsDir.into());
        }
        t.set_entry(parent, name, None);
        t.backptr_add(child, parent, -1)?;
        t.drop_link(child)?;
        t.dir_changed(parent, 0)?;
        t.commit()
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, parent: u64, name: &[u8]) -> VolumeResult<()> {
        if name == b"." {
            return Err(OpError::Invalid.into());
        }
        if name == b".." {
            return Err(OpError::NotEmpty.into());
        }
        let mut t = Txn::new(self);
        t.dir(parent)?;
        let (child, ft) = t.entry(parent, name)?.ok_or(OpError::NotFound)?;
        if ft != Ftype::Dir {
            return Err(OpError::NotDir.into());
        }
        if !self.is_empty_dir(child)? {
            return Err(OpError::NotEmpty.into());
        }
        t.set_entry(parent, name, None);
        t.backptr_add(child, parent, -1)?;
        t.drop_link(child)?;
        t.dir_changed(parent, -1)?;
        t.commit()
    }

    /// The parent of directory `ino` (the root is its own parent).
    pub fn dir_parent(&self, ino: u64) -> VolumeResult<u64> {
        if ino == ROOT_INO {
            return Ok(ROOT_INO);
        }
        Ok(self
            .backptrs(ino)?
            .first()
            .map(|(p, _)| *p)
            .unwrap_or(ROOT_INO))
    }

    /// True when `ancestor` is `dir` or one of its ancestors.
    fn is_ancestor(&self, ancestor: u64, dir: u64) -> VolumeResult<bool> {
        let mut cur = dir;
        for _ in 0..100_000 {
            if cur == ancestor {
                return Ok(true);
            }
            if cur == ROOT_INO {
                return Ok(false);
            }
            cur = self.dir_parent(cur)?;
        }
        Err(self.corrupt("directory tree", format!("a loop above {dir}")))
    }

    /// Renames `parent/name` to `newparent/newname` (replacing a target as
    /// rename(2) does, or per `flags`).
    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: RenameFlags,
    ) -> VolumeResult<()> {
        if flags.noreplace && flags.exchange {
            return Err(OpError::Invalid.into());
        }
        if name == b"." || name == b".." {
            return Err(OpError::Invalid.into());
        }
        check_name(newname)?;
        let mut t = Txn::new(self);
        t.dir(parent)?;
        t.dir(newparent)?;
        let (src, src_t) = t.entry(parent, name)?.ok_or(OpError::NotFound)?;
        let dst = t.entry(newparent, newname)?;
        if src_t == Ftype::Dir && self.is_ancestor(src, newparent)? {
            return Err(OpError::Invalid.into());
        }
        if flags.exchange {
            let (dst, dst_t) = dst.ok_or(OpError::NotFound)?;
            if dst_t == Ftype::Dir && self.is_ancestor(dst, parent)? {
                return Err(OpError::Invalid.into());
            }
            if src == dst {
                return Ok(());
            }
            t.set_entry(parent, name, Some((dst, dst_t)));
            t.set_entry(newparent, newname, Some((src, src_t)));
            if parent != newparent {
                t.backptr_add(src, parent, -1)?;
                t.backptr_add(src, newparent, 1)?;
                t.backptr_add(dst, newparent, -1)?;
                t.backptr_add(dst, parent, 1)?;
            }
            let dirs = |ft: Ftype| if ft == Ftype::Dir { 1 } else { 0 };
            let moved = if parent != newparent {
                dirs(dst_t) - dirs(src_t)
            } else {
                0
            };
            t.dir_changed(parent, moved)?;
            if parent != newparent {
                t.dir_changed(newparent, -moved)?;
            }
            for ino in [src, dst] {
                let mut i = t.get(ino)?;
                i.ctime = t.now;
                t.put(i);
            }
            return t.commit();
        }
        if let Some((dst, dst_t)) = dst {
            if flags.noreplace {
                return Err(OpError::Exists.into());
            }
            if dst == src {
                // Two names of one inode: rename(2) does nothing.
                return Ok(());
            }
            match (src_t == Ftype::Dir, dst_t == Ftype::Dir) {
                (true, false) => return Err(OpError::NotDir.into()),
                (false, true) => return Err(OpError::IsDir.into()),
                (true, true) => {
                    if !self.is_empty_dir(dst)? {
                        return Err(OpError::NotEmpty.into());
                    }
                }
                (false, false) => {}
            }
            t.backptr_add(dst, newparent, -1)?;
            t.drop_link(dst)?;
            if dst_t == Ftype::Dir {
                t.dir_changed(newparent, -1)?;
            }
        }
        t.set_entry(parent, name, None);
        t.set_entry(newparent, newname, Some((src, src_t)));
        t.backptr_add(src, parent, -1)?;
        t.backptr_add(src, newparent, 1)?;
        let moved_dir = src_t == Ftype::Dir && parent != newparent;
        t.dir_changed(parent, if moved_dir { -1 } else { 0 })?;
        t.dir_changed(newparent, if moved_dir { 1 } else { 0 })?;
        let mut s = t.get(src)?;
        s.ctime = t.now;
        t.put(s);
        t.commit()
    }

    /// Changes attributes; a new size truncates or extends the data file.
    pub fn setattr(&self, ino: u64, a: SetAttr) -> VolumeResult<Inode> {
        let mut t = Txn::new(self);
        let mut i = t.get(ino)?;
        if let Some(m) = a.mode {
            i.mode = (i.mode & libc::S_IFMT) | (m & 0o7777);
        }
        if let Some(u) = a.uid {
            i.uid = u;
        }
        if let Some(g) = a.gid {
            i.gid = g;
        }
        if let Some(size) = a.size {
            match i.ftype {
                Ftype::Reg => {}
                Ftype::Dir => return Err(OpError::IsDir.into()),
                _ => return Err(OpError::Invalid.into()),
            }
            if size > MAX_FILE_SIZE {
                return Err(OpError::TooBig.into());
            }
            let f = self.open_data(ino, true)?;
            let p = self.data_path(ino);
            // Cut first to the smaller size so that bytes beyond the old
            // recorded size (left by a crash) never reappear.
            f.set_len(size.min(i.size))
                .and_then(|()| f.set_len(size))
                .map_err(|e| super::io_err(&p, e))?;
            // Times from after the cut, so that they are not older than
            // the data file's own mtime.
            t.now = Timespec::now();
            if size != i.size {
                i.mtime = t.now;
            }
            i.size = size;
        }
        if let Some(at) = a.atime {
            i.atime = at;
        }
        if let Some(mt) = a.mtime {
            i.mtime = mt;
        }
        i.ctime = a.ctime.unwrap_or(t.now);
        t.put(i.clone());
        let seq = t.seq;
        t.commit()?;
        Ok(Inode {
            change_seq: seq,
            ..i
        })
    }

    /// Records a write of `[offset, end)` to regular file `ino`: the size
    /// grows to `end` if smaller, mtime and ctime become now.
    pub fn note_write(&self, ino: u64, end: u64) -> VolumeResult<Inode> {
        let mut t = Txn::new(self);
        let mut i = t.get(ino)?;
        if i.ftype != Ftype::Reg {
            return Err(OpError::Invalid.into());
        }
        i.size = i.size.max(end);
        i.mtime = t.now;
        i.ctime = t.now;
        t.put(i.clone());
        let seq = t.seq;
        t.commit()?;
        Ok(Inode {
            change_seq: seq,
            ..i
        })
    }

    /// Copies the state of regular file `ino`'s data file (`md`, from
    /// stat) into its record when the kernel wrote it behind the volume's
    /// back. `written`: the caller saw the data file change (its length or
    /// mtime differs from when it last looked); then, or when the length
    /// differs from the record's, size = data length and mtime = ctime =
    /// now. The data file's own mtime is not used: the kernel stamps it
    /// with a coarse clock that may lag the one records are stamped with,
    /// so comparing the two would move times that did not change.
    /// `unmark` also removes the open-for-writing mark and records a change
    /// even when none was seen (a write within one tick of the last look
    /// leaves length and mtime as they were; the next sync must still send
    /// the file). Returns the (possibly unchanged) record.
    pub fn refresh_from_data(
        &self,
        ino: u64,
        md: &std::fs::Metadata,
        written: bool,
        unmark: bool,
    ) -> VolumeResult<Inode> {
        let mut t = Txn::new(self);
        let mut i = t.get(ino)?;
        if i.ftype != Ftype::Reg {
            return Err(OpError::Invalid.into());
        }
        let written = written || md.len() != i.size;
        if !written && !unmark {
            return Ok(i);
        }
        if written {
            i.size = md.len();
            i.mtime = t.now;
            i.ctime = t.now;
        }
        t.put(i.clone());
        if unmark {
            t.unmark.push(ino);
        }
        let seq = t.seq;
        t.commit()?;
        Ok(Inode {
            change_seq: seq,
            ..i
        })
    }

    /// Deletes `ino` if it is unlinked (link count 0) and not open.
    pub(super) fn reap_if_unlinked(&self, ino: u64) -> VolumeResult<()> {
        let mut t = Txn::new(self);
        let i = match self.get(ino)? {
            Some(i) if i.nlink == 0 && self.is_open(ino) => return Ok(()),
            Some(i) if i.nlink == 0 => i,
            _ => {
                // Linked again, or gone: only the orphan mark is left.
                let cf = self.cf(keys::CF_ORPHAN)?;
                return self
                    .db
                    .delete_cf(cf, keys::ino_key(ino))
                    .map_err(|e| self.db_err(e));
            }
        };
        t.orphans.push((ino, false));
        t.delete_inode(&i);
        t.commit()
    }
}
