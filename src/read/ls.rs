//! `ls`: list a directory of a container like `ls -n` would (numeric
//! owners, names as raw bytes), optionally long (`-l`), recursive (`-R`),
//! with `.` and `..` (`-a`), or unsorted and streamed (`-U`).
//!
//! Without `-l` no inode is read: names come from the directory entries
//! and subdirectories (for `-R`) from the filehandle's type byte. With
//! `-l` each entry's inode is read, a bounded number at a time, and
//! reduced to one small row at once, so a sorted listing of a million
//! entries holds a million rows, not a million inodes.

use std::io::{self, Write};
use std::sync::Arc;

use futures::stream::{self, StreamExt};

use crate::clfs::handle::Dirent;
use crate::clfs::id::{Ftype, ObjectId, ROOT};
use crate::clfs::name::Btype;
use crate::clfs::object::InodeBody;
use crate::clfs::vattr::ClfsTime;

use super::container::{Container, InodeNode, ReadError};
use super::dir::DirReader;
use super::path::NsPath;
use super::problem::{Check, ProblemSink};

/// How to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct LsOptions {
    /// Long format.
    pub long: bool,
    /// Recurse into subdirectories.
    pub recursive: bool,
    /// Show `.` and `..`.
    pub all: bool,
    /// Do not sort; print entries as they are read.
    pub unsorted: bool,
    /// Times with seconds and nanoseconds.
    pub full_time: bool,
    /// List a directory itself, not its entries.
    pub directory: bool,
    /// Inode reads in flight.
    pub parallel: usize,
    /// Read from the `tmp` root of an unfinished container.
    pub unfinished: bool,
}

/// Why `ls` could not list.
#[derive(Debug, thiserror::Error)]
pub enum LsError {
    /// Reading failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The container has no root.
    #[error("{0}: no root directory blob: not a CLFS container, or nothing was loaded")]
    NoRoot(String),
    /// Only the `tmp` root exists.
    #[error("{0}: unfinished container (only the provisional 'tmp' root exists); use --unfinished to read it anyway")]
    Unfinished(String),
    /// The path does not exist.
    #[error("{0}: no such file or directory")]
    NotFound(NsPath),
    /// A path component is not a directory.
    #[error("{0}: not a directory")]
    NotADirectory(NsPath),
    /// Writing the output failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One line of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The name (raw bytes).
    pub name: Vec<u8>,
    /// Attributes, or `None` when the inode could not be read.
    pub attrs: Option<RowAttrs>,
}

/// The attributes shown by `-l`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowAttrs {
    /// Btype.
    pub btype: Btype,
    /// Mode with type bits.
    pub mode: u16,
    /// Link count.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size.
    pub size: u64,
    /// Device numbers.
    pub rdev: (u32, u32),
    /// Modification time.
    pub mtime: ClfsTime,
    /// Symlink target.
    pub target: Option<Vec<u8>>,
}

impl RowAttrs {
    /// From an inode.
    pub fn of(node: &InodeNode) -> Self {
        let v = &node.inode.vattr;
        let btype = node.btype();
        let target = match (&node.inode.body, btype) {
            (InodeBody::Data(d), Btype::Lnk) => Some(d.clone()),
            _ => None,
        };
        RowAttrs {
            btype,
            mode: v.mode,
            nlink: v.nlink,
            uid: v.uid,
            gid: v.gid,
            size: v.length,
            rdev: (v.rdev_major, v.rdev_minor),
            mtime: v.mtime,
            target,
        }
    }
}

/// `drwxr-xr-x`-style mode string.
pub fn mode_string(btype: Btype, mode: u16) -> String {
    let t = match btype {
        Btype::Dir => 'd',
        Btype::Lnk => 'l',
        Btype::Blk => 'b',
        Btype::Chr => 'c',
        Btype::Sock => 's',
        Btype::Fifo => 'p',
        _ => '-',
    };
    let m = u32::from(mode);
    let bit = |b: u32, c: char| if m & b != 0 { c } else { '-' };
    let special =
        |x: u32, special: u32, lower: char, upper: char| match (m & x != 0, m & special != 0) {
            (true, true) => lower,
            (false, true) => upper,
            (true, false) => 'x',
            (false, false) => '-',
        };
    [
        t,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(0o100, 0o4000, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(0o010, 0o2000, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(0o001, 0o1000, 't', 'T'),
    ]
    .iter()
    .collect()
}

/// Days since 1970-01-01 to (year, month, day) (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD HH:MM` (UTC), or with seconds and nanoseconds.
pub fn format_time(t: ClfsTime, full: bool) -> String {
    let secs = i64::from(t.sec);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let (h, mi, s) = (rem / 3600, (rem / 60) % 60, rem % 60);
    if full {
        format!(
            "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:09} +0000",
            t.nsec
        )
    } else {
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}")
    }
}

struct Widths {
    nlink: usize,
    uid: usize,
    gid: usize,
    size: usize,
}

fn size_field(a: &RowAttrs) -> String {
    if matches!(a.btype, Btype::Blk | Btype::Chr) {
        format!("{}, {}", a.rdev.0, a.rdev.1)
    } else {
        a.size.to_string()
    }
}

fn widths(rows: &[Row]) -> Widths {
    let mut w = Widths {
        nlink: 1,
        uid: 1,
        gid: 1,
        size: 1,
    };
    for a in rows.iter().filter_map(|r| r.attrs.as_ref()) {
        w.nlink = w.nlink.max(a.nlink.to_string().len());
        w.uid = w.uid.max(a.uid.to_string().len());
        w.gid = w.gid.max(a.gid.to_string().len());
        w.size = w.size.max(size_field(a).len());
    }
    w
}

fn write_row(out: &mut dyn Write, row: &Row, opts: &LsOptions, w: &Widths) -> io::Result<()> {
    if opts.long {
        match &row.attrs {
            Some(a) => write!(
                out,
                "{} {:>nl$} {:<uw$} {:<gw$} {:>sw$} {} ",
                mode_string(a.btype, a.mode),
                a.nlink,
                a.uid,
                a.gid,
                size_field(a),
                format_time(a.mtime, opts.full_time),
                nl = w.nlink,
                uw = w.uid,
                gw = w.gid,
                sw = w.size
            )?,
            None => write!(
                out,
                "?????????? {q:>nl$} {q:<uw$} {q:<gw$} {q:>sw$} {q} ",
                q = "?",
                nl = w.nlink,
                uw = w.uid,
                gw = w.gid,
                sw = w.size
            )?,
        }
    }
    out.write_all(&row.name)?;
    if let Some(t) = row.attrs.as_ref().and_then(|a| a.target.as_ref()) {
        if opts.long {
            out.write_all(b" -> ")?;
            out.write_all(t)?;
        }
    }
    out.write_all(b"\n")
}

/// A container opened for listing, with its root.
pub struct Lister {
    c: Arc<Container>,
    sink: Arc<ProblemSink>,
    root: Arc<InodeNode>,
    opts: LsOptions,
}

impl Lister {
    /// Opens the root of `c`.
    pub async fn open(
        c: Arc<Container>,
        sink: Arc<ProblemSink>,
        opts: LsOptions,
    ) -> Result<Self, LsError> {
        let located = c
            .locate(&ROOT)
            .await?
            .ok_or_else(|| LsError::NoRoot(c.location()))?;
        if located.name.is_tmp() && !opts.unfinished {
            return Err(LsError::Unfinished(c.location()));
        }
        let root = Arc::new(c.fetch_inode(&ROOT, &located.name).await?);
        Ok(Lister {
            c,
            sink,
            root,
            opts,
        })
    }

    fn reader(&self, path: &NsPath, dir: &Arc<InodeNode>, parent: ObjectId) -> DirReader {
        DirReader::new(
            self.c.clone(),
            self.sink.clone(),
            path.clone(),
            dir.clone(),
            parent,
            2,
        )
    }

    async fn fetch(&self, id: &ObjectId) -> Result<Option<Arc<InodeNode>>, ReadError> {
        match self.c.locate(id).await? {
            Some(l) => Ok(Some(Arc::new(self.c.fetch_inode(id, &l.name).await?))),
            None => Ok(None),
        }
    }

    /// Finds `path`: its inode and its parent's handle.
    pub async fn resolve(&self, path: &NsPath) -> Result<(Arc<InodeNode>, ObjectId), LsError> {
        let mut cur = self.root.clone();
        let mut parent = ROOT;
        let mut at = NsPath::root();
        for comp in path.components() {
            if !cur.is_dir() {
                return Err(LsError::NotADirectory(at));
            }
            let mut reader = self.reader(&at, &cur, parent);
            let mut found = None;
            while let Some(batch) = reader.next_batch().await {
                if let Some(d) = batch.into_iter().find(|d| d.name == comp) {
                    found = Some(d.id);
                    break;
                }
            }
            at = at.join(comp);
            let id = found.ok_or_else(|| LsError::NotFound(at.clone()))?;
            let child = self
                .fetch(&id)
                .await?
                .ok_or_else(|| LsError::NotFound(at.clone()))?;
            parent = cur.id;
            cur = child;
        }
        Ok((cur, parent))
    }

    async fn rows(&self, batch: Vec<Dirent>, dir_path: &NsPath) -> Vec<(Row, Option<ObjectId>)> {
        if !self.opts.long {
            return batch
                .into_iter()
                .map(|d| {
                    let is_dir =
                        d.id.as_filehandle()
                            .is_some_and(|f| f.ftype_code() == Ftype::Dir as u8);
                    (
                        Row {
                            name: d.name,
                            attrs: None,
                        },
                        is_dir.then_some(d.id),
                    )
                })
                .collect();
        }
        stream::iter(batch)
            .map(|d| async move {
                let r = self.fetch(&d.id).await;
                let path = dir_path.join(&d.name);
                let attrs = match r {
                    Ok(Some(n)) => Some(RowAttrs::of(&n)),
                    Ok(None) => {
                        self.sink.error(
                            Check::MissingInode,
                            Some(&path),
                            None,
                            format!("handle {} has no inode blob", d.id),
                        );
                        None
                    }
                    Err(e) => {
                        super::blocks::report(
                            &self.sink,
                            &path,
                            Check::MissingInode,
                            "reading the inode",
                            &e,
                        );
                        None
                    }
                };
                let sub = attrs
                    .as_ref()
                    .is_some_and(|a| a.btype == Btype::Dir)
                    .then_some(d.id);
                (
                    Row {
                        name: d.name,
                        attrs,
                    },
                    sub,
                )
            })
            .buffered(self.opts.parallel.max(1))
            .collect()
            .await
    }

    /// Lists `path` to `out`.
    pub async fn list(&self, path: &NsPath, out: &mut dyn Write) -> Result<(), LsError> {
        let (node, parent) = self.resolve(path).await?;
        if !node.is_dir() || self.opts.directory {
            let row = Row {
                name: if path.is_root() {
                    b"/".to_vec()
                } else {
                    path.as_bytes().to_vec()
                },
                attrs: Some(RowAttrs::of(&node)),
            };
            let w = widths(std::slice::from_ref(&row));
            write_row(out, &row, &self.opts, &w)?;
            return Ok(());
        }
        // Depth-first, like ls -R: a directory, then its subdirectories in
        // listing order.
        let mut stack = vec![(path.clone(), node, parent)];
        let mut first = true;
        while let Some((p, dir, parent)) = stack.pop() {
            if self.opts.recursive {
                if !first {
                    out.write_all(b"\n")?;
                }
                out.write_all(p.as_bytes())?;
                out.write_all(b":\n")?;
            }
            first = false;
            let subdirs = self.list_one(&p, &dir, parent, out).await?;
            if self.opts.recursive {
                let mut next = Vec::new();
                for (name, id) in subdirs {
                    let sp = p.join(&name);
                    match self.fetch(&id).await {
                        Ok(Some(n)) if n.is_dir() => next.push((sp, n, dir.id)),
                        Ok(_) => {}
                        Err(e) => super::blocks::report(
                            &self.sink,
                            &sp,
                            Check::MissingInode,
                            "reading the directory",
                            &e,
                        ),
                    }
                }
                stack.extend(next.into_iter().rev());
            }
        }
        Ok(())
    }

    /// Lists one directory; returns its subdirectories (name, handle) in
    /// listing order.
    async fn list_one(
        &self,
        path: &NsPath,
        dir: &Arc<InodeNode>,
        parent: ObjectId,
        out: &mut dyn Write,
    ) -> Result<Vec<(Vec<u8>, ObjectId)>, LsError> {
        let mut rows: Vec<(Row, Option<ObjectId>)> = Vec::new();
        if self.opts.all {
            let pnode = if self.opts.long {
                self.fetch(&parent).await.ok().flatten()
            } else {
                None
            };
            rows.push((
                Row {
                    name: b".".to_vec(),
                    attrs: self.opts.long.then(|| RowAttrs::of(dir)),
                },
                None,
            ));
            rows.push((
                Row {
                    name: b"..".to_vec(),
                    attrs: pnode.as_deref().map(RowAttrs::of),
                },
                None,
            ));
        }
        let stream_out = self.opts.unsorted && !self.opts.recursive;
        let fixed = Widths {
            nlink: 3,
            uid: 5,
            gid: 5,
            size: 10,
        };
        let mut subdirs = Vec::new();
        let mut reader = self.reader(path, dir, parent);
        while let Some(batch) = reader.next_batch().await {
            let got = self.rows(batch, path).await;
            if stream_out {
                for (r, sub) in rows.drain(..).chain(got) {
                    write_row(out, &r, &self.opts, &fixed)?;
                    if let Some(id) = sub {
                        subdirs.push((r.name, id));
                    }
                }
            } else {
                rows.extend(got);
            }
        }
        if !self.opts.unsorted {
            let dots = if self.opts.all { 2 } else { 0 };
            rows[dots..].sort_by(|a, b| a.0.name.cmp(&b.0.name));
        }
        let all: Vec<Row> = rows.iter().map(|(r, _)| r.clone()).collect();
        let w = widths(&all);
        for (r, sub) in rows {
            write_row(out, &r, &self.opts, &w)?;
            if let Some(id) = sub {
                subdirs.push((r.name, id));
            }
        }
        Ok(subdirs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_times() {
        assert_eq!(mode_string(Btype::Dir, 0o40755), "drwxr-xr-x");
        assert_eq!(mode_string(Btype::Reg, 0o104755), "-rwsr-xr-x");
        assert_eq!(mode_string(Btype::Reg, 0o102644), "-rw-r-Sr--");
        assert_eq!(mode_string(Btype::Dir, 0o41777), "drwxrwxrwt");
        assert_eq!(mode_string(Btype::Fifo, 0o10644), "prw-r--r--");
        assert_eq!(mode_string(Btype::Reg, 0o100000), "----------");
        assert_eq!(
            format_time(ClfsTime { sec: 0, nsec: 0 }, false),
            "1970-01-01 00:00"
        );
        assert_eq!(
            format_time(
                ClfsTime {
                    sec: 1_600_000_000,
                    nsec: 123_456_716
                },
                true
            ),
            "2020-09-13 12:26:40.123456716 +0000"
        );
        assert_eq!(
            format_time(
                ClfsTime {
                    sec: 4_100_000_000,
                    nsec: 0
                },
                false
            ),
            "2099-12-03 16:53"
        );
    }
}
