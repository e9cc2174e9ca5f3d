//! Reading a local directory tree: `lstat`, `readdir` in on-disk order,
//! `readlink`, and file contents in full pieces.

use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::clfs::id::Ftype;
use crate::state::{ObjRecord, StatTime};

/// The CLFS type of a file, or `None` for a type CLFS cannot hold.
pub fn ftype_of(md: &Metadata) -> Option<Ftype> {
    let t = md.file_type();
    Some(if t.is_dir() {
        Ftype::Dir
    } else if t.is_file() {
        Ftype::Reg
    } else if t.is_symlink() {
        Ftype::Lnk
    } else if t.is_block_device() {
        Ftype::Blk
    } else if t.is_char_device() {
        Ftype::Chr
    } else if t.is_socket() {
        Ftype::Sock
    } else if t.is_fifo() {
        Ftype::Fifo
    } else {
        return None;
    })
}

/// Copies `lstat` attributes into a record.
pub fn fill_record(rec: &mut ObjRecord, md: &Metadata) {
    rec.mode = md.mode();
    rec.uid = md.uid();
    rec.gid = md.gid();
    rec.rdev = md.rdev();
    rec.size = md.size();
    rec.mtime = StatTime {
        sec: md.mtime(),
        nsec: md.mtime_nsec() as u32,
    };
    rec.ctime = StatTime {
        sec: md.ctime(),
        nsec: md.ctime_nsec() as u32,
    };
    rec.atime = StatTime {
        sec: md.atime(),
        nsec: md.atime_nsec() as u32,
    };
    rec.ino = md.ino();
}

/// One entry of a scanned directory.
#[derive(Debug)]
pub struct ScannedEntry {
    /// Raw name bytes.
    pub name: Vec<u8>,
    /// Its `lstat`, or why it could not be read.
    pub meta: Result<Metadata, io::Error>,
}

/// Lists a directory in `readdir` order with an `lstat` of each entry.
/// Failing to open or read the directory is an error of the directory;
/// failing to `lstat` an entry is reported in that entry.
pub fn scan_dir(path: &Path) -> io::Result<Vec<ScannedEntry>> {
    let mut out = Vec::new();
    for e in fs::read_dir(path)? {
        let e = e?;
        let meta = fs::symlink_metadata(e.path());
        out.push(ScannedEntry {
            name: e.file_name().as_bytes().to_vec(),
            meta,
        });
    }
    Ok(out)
}

/// Path of child `name` of `parent` (raw bytes).
pub fn child_path(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = parent.to_vec();
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// A path from raw bytes.
pub fn as_path(p: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(p))
}

/// Opens a regular file for reading without updating its access time (so
/// a load leaves the source's atimes as they were); falls back to a plain
/// open where `O_NOATIME` is not allowed (files of other users, when not
/// root). The open never blocks and never follows a symlink, and what was
/// opened must still be a regular file: a file replaced by a fifo, a
/// socket, a device or a symlink since the scan is an error, not a hang.
pub fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |extra: libc::c_int| {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | extra)
            .open(path)
    };
    let f = match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0)?,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(io::Error::other(
                "it is now a symlink, no longer a regular file",
            ))
        }
        r => r?,
    };
    let md = f.metadata()?;
    if !md.is_file() {
        let now = ftype_of(&md).map_or("of a type CLFS cannot hold", |t| match t {
            Ftype::Dir => "a directory",
            Ftype::Blk | Ftype::Chr => "a device",
            Ftype::Sock => "a socket",
            Ftype::Fifo => "a fifo",
            _ => "something else",
        });
        return Err(io::Error::other(format!(
            "it is now {now}, no longer a regular file"
        )));
    }
    Ok(f)
}

/// Reads until `buf` is full or end of file; returns the bytes read.
pub fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Number of code points of `b` decoded as UTF-8 where every byte of an
/// invalid sequence counts as one (Python's surrogate escape): the
/// reference's symlink length.
pub fn code_points(mut b: &[u8]) -> u64 {
    let mut n = 0u64;
    while !b.is_empty() {
        match std::str::from_utf8(b) {
            Ok(s) => return n + s.chars().count() as u64,
            Err(e) => {
                let good = e.valid_up_to();
                n += std::str::from_utf8(&b[..good]).map_or(0, |s| s.chars().count() as u64);
                let bad = e.error_len().unwrap_or(b.len() - good);
                n += bad as u64;
                b = &b[good + bad..];
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_points_count_like_surrogateescape() {
        assert_eq!(code_points("ünïcødé/目标/файл.txt".as_bytes()), 19);
        assert_eq!(code_points(b"abc"), 3);
        assert_eq!(code_points(b"a\xffb"), 3);
        assert_eq!(code_points(b"\xe6\x97"), 2);
        assert_eq!(code_points(b""), 0);
    }

    #[test]
    fn child_paths_join_with_one_slash() {
        assert_eq!(child_path(b"/a", b"b"), b"/a/b");
        assert_eq!(child_path(b"/a/", b"b"), b"/a/b");
    }
}
