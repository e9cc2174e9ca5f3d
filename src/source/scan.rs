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

/// Whether the file system holding `path` keeps its files on a local
/// device (ext4, XFS, Btrfs, F2FS, ZFS, bcachefs, tmpfs, overlayfs), where
/// opening a file whose path was just looked up, and reading what is in
/// the page cache, never waits on a network: what [`read_start_cached`]
/// relies on. Network and FUSE file systems, and any error, answer false.
pub fn is_local_disk_fs(path: &Path) -> bool {
    const LOCAL: [i64; 8] = [
        0xEF53,      // ext2/3/4
        0x5846_5342, // XFS
        0x9123_683E, // Btrfs
        0xF2F5_2010, // F2FS
        0x2FC1_2FC1, // ZFS
        0xCA45_1A4E, // bcachefs
        0x0102_1994, // tmpfs
        0x794C_7630, // overlayfs
    ];
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut s = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: c is a valid C string and s points to writable memory of the
    // right size; statfs fills it on success.
    if unsafe { libc::statfs(c.as_ptr(), s.as_mut_ptr()) } != 0 {
        return false;
    }
    // f_type's width differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    // SAFETY: statfs returned 0, so it initialised the struct.
    let f_type = unsafe { s.assume_init() }.f_type as i64;
    LOCAL.contains(&f_type)
}

/// The first `len` bytes of the regular file at `path` (all of it when
/// shorter) and the file positioned after them, if that needs no wait on a
/// device: the path is resolved from the kernel's lookup cache only
/// (`openat2` with `RESOLVE_CACHED`) and the bytes come from the page cache
/// only (`preadv2` with `RWF_NOWAIT`). `None` when anything would have
/// waited, or failed: the caller then reads the ordinary way, which also
/// reports any error. Meant for a local file system (see
/// [`is_local_disk_fs`]), where it lets a small file be read without
/// handing the work to a blocking thread.
pub fn read_start_cached(path: &Path, len: usize) -> Option<(File, Vec<u8>)> {
    use std::os::fd::FromRawFd;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: open_how is plain integers; all zero is its default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    // O_NOATIME as in open_regular (a caller who may not use it gets EPERM
    // here and the ordinary way, which falls back).
    how.flags =
        (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOATIME)
            as u64;
    how.resolve = libc::RESOLVE_CACHED;
    // SAFETY: openat2 with a valid C string, a valid open_how and its
    // size; the result is a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a descriptor this function just opened and owns.
    let file = unsafe { File::from_raw_fd(fd as libc::c_int) };
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut buf = vec![0u8; len];
    let mut n = 0;
    while n < len {
        let iov = libc::iovec {
            iov_base: buf[n..].as_mut_ptr().cast(),
            iov_len: len - n,
        };
        // SAFETY: one iovec over the unfilled part of buf; offset -1 reads
        // at (and advances) the file position.
        let r = unsafe {
            libc::preadv2(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                &iov,
                1,
                -1,
                libc::RWF_NOWAIT,
            )
        };
        match r {
            0 => break,
            k if k > 0 => n += k as usize,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return None,
        }
    }
    buf.truncate(n);
    Some((file, buf))
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
    fn a_cached_start_read_gives_the_bytes_and_leaves_the_file_after_them() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let body: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &body).unwrap();
        // Just written and read: the path and the bytes are cached.
        assert_eq!(std::fs::read(&p).unwrap(), body);
        let (mut f, first) = read_start_cached(&p, 16_384).expect("cached");
        assert_eq!(first, body[..16_384]);
        let mut rest = Vec::new();
        f.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, body[16_384..]);
        // Shorter than asked: the whole file.
        let (_, all) = read_start_cached(&p, 100_000).expect("cached");
        assert_eq!(all, body);
        std::fs::write(&p, b"").unwrap();
        let (_, none) = read_start_cached(&p, 10).expect("cached");
        assert!(none.is_empty());
    }

    #[test]
    fn a_cached_start_read_leaves_everything_but_regular_files_to_the_ordinary_way() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let l = d.path().join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        let sub = d.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(read_start_cached(&l, 10).is_none(), "symlink");
        assert!(read_start_cached(&sub, 10).is_none(), "directory");
        assert!(read_start_cached(&d.path().join("missing"), 10).is_none());
        assert!(read_start_cached(&f, 10).is_some());
    }

    #[test]
    fn local_disk_file_systems_are_told_from_others() {
        // /proc is neither local disk nor network: never the cached way.
        assert!(!is_local_disk_fs(Path::new("/proc")));
        assert!(!is_local_disk_fs(Path::new("/no/such/path")));
        // /dev/shm is tmpfs wherever the tests run.
        if Path::new("/dev/shm").is_dir() {
            assert!(is_local_disk_fs(Path::new("/dev/shm")));
        }
    }

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
