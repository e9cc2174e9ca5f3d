//! The staging filesystem through a real FUSE mount, with ordinary tools:
//! `cp -a` of the fixture tree and back, compared entry by entry, the
//! manifest check,
//! hard links, symlinks, fifos, devices, renames, truncation, chmod/chown/
//! utimens, xattr refusal, read-only mounts, the in-use refusal, daemon
//! mode, and consistency after unmount and remount.

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use clfs_fs::volume::Volume;

use common::fixtures::fixtures_dir;
use common::mount::{is_mounted, run_with_timeout, Mounted};
use common::tree::small_tree;

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Compares two trees entry by entry: type, mode, owner, size, mtime
/// (nanoseconds), rdev, symlink target, contents, link count.
fn same_tree(a: &Path, b: &Path) {
    let mut names: Vec<_> = std::fs::read_dir(a)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    let mut other: Vec<_> = std::fs::read_dir(b)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    other.sort();
    assert_eq!(
        names,
        other,
        "entries of {} and {}",
        a.display(),
        b.display()
    );
    for n in names {
        let (pa, pb) = (a.join(&n), b.join(&n));
        let (ma, mb) = (
            std::fs::symlink_metadata(&pa).expect("lstat"),
            std::fs::symlink_metadata(&pb).expect("lstat"),
        );
        let key = |m: &std::fs::Metadata| {
            (
                m.mode(),
                m.uid(),
                m.gid(),
                m.rdev(),
                m.nlink(),
                m.mtime(),
                m.mtime_nsec(),
                if m.is_dir() { 0 } else { m.size() },
            )
        };
        assert_eq!(key(&ma), key(&mb), "{} vs {}", pa.display(), pb.display());
        let ft = ma.file_type();
        if ft.is_symlink() {
            assert_eq!(std::fs::read_link(&pa).ok(), std::fs::read_link(&pb).ok());
        } else if ft.is_file() {
            assert!(
                std::fs::read(&pa).expect("read") == std::fs::read(&pb).expect("read"),
                "contents of {}",
                pb.display()
            );
        } else if ft.is_dir() {
            same_tree(&pa, &pb);
        }
    }
}

fn consistent(volume: &Path) {
    let v = Volume::open(volume).expect("volume opens after unmount");
    let problems = v.check().expect("check runs");
    assert!(problems.is_empty(), "inconsistent volume: {problems:#?}");
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL")
}

fn errno_of(rc: libc::c_int) -> i32 {
    assert_eq!(rc, -1, "the call should have failed");
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[test]
fn cp_a_of_the_fixture_tree_round_trips() {
    let src = small_tree();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (vol, mp) = (tmp.path().join("vol"), tmp.path().join("mnt"));
    let m = Mounted::new(&vol, &mp, &[]);
    sh(Command::new("cp").arg("-a").arg(src).arg(&mp));
    let copy = mp.join("small");
    same_tree(src, &copy);
    let manifest = fixtures_dir().join("manifests/small.json");
    let verify = |dir: &Path| {
        sh(Command::new("python3")
            .arg(fixtures_dir().join("make_tree.py"))
            .arg("verify")
            .arg(&manifest)
            .arg(dir))
    };
    verify(&copy);
    // Out again through the mount, after a remount.
    m.unmount();
    consistent(&vol);
    let m = Mounted::new(&vol, &mp, &[]);
    verify(&copy);
    let back = tmp.path().join("back");
    std::fs::create_dir(&back).expect("mkdir");
    sh(Command::new("cp").arg("-a").arg(&copy).arg(&back));
    same_tree(src, &back.join("small"));
    verify(&back.join("small"));
    // And away.
    sh(Command::new("rm").arg("-rf").arg(&copy));
    assert_eq!(std::fs::read_dir(&mp).expect("readdir").count(), 0);
    m.unmount();
    consistent(&vol);
    let v = Volume::open(&vol).expect("open");
    let mut inodes = 0;
    v.for_each_inode(|_| {
        inodes += 1;
        true
    })
    .expect("inodes");
    assert_eq!(inodes, 1, "only the root is left");
    assert!(!v.deleted().expect("deleted").is_empty());
}

#[test]
fn posix_operations_through_the_mount() {
    posix_operations(&[]);
}

#[test]
fn posix_operations_without_passthrough() {
    posix_operations(&["no_passthrough"]);
}

#[test]
fn posix_operations_with_writeback_cache() {
    posix_operations(&["writeback_cache"]);
}

fn posix_operations(opts: &[&str]) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (vol, mp) = (tmp.path().join("vol"), tmp.path().join("mnt"));
    let m = Mounted::new(&vol, &mp, opts);
    let f = mp.join("f");
    std::fs::write(&f, b"hello world").expect("write");
    // Hard links.
    std::fs::create_dir(mp.join("d")).expect("mkdir");
    std::fs::hard_link(&f, mp.join("d/h")).expect("link");
    assert_eq!(std::fs::metadata(&f).expect("stat").nlink(), 2);
    assert_eq!(
        std::fs::metadata(&f).expect("stat").ino(),
        std::fs::metadata(mp.join("d/h")).expect("stat").ino()
    );
    assert_eq!(std::fs::metadata(&mp).expect("stat").nlink(), 3);
    // Symlinks.
    std::os::unix::fs::symlink("d/h", mp.join("l")).expect("symlink");
    assert_eq!(
        std::fs::read_link(mp.join("l")).expect("readlink"),
        Path::new("d/h")
    );
    assert_eq!(
        std::fs::read(mp.join("l")).expect("read through"),
        b"hello world"
    );
    // Fifo and devices.
    sh(Command::new("mknod").arg(mp.join("p")).arg("p"));
    assert!(std::fs::symlink_metadata(mp.join("p"))
        .expect("stat")
        .file_type()
        .is_fifo());
    sh(Command::new("mknod")
        .arg(mp.join("c"))
        .args(["c", "1", "3"]));
    let c = std::fs::symlink_metadata(mp.join("c")).expect("stat");
    assert!(c.file_type().is_char_device());
    assert_eq!(c.rdev(), libc::makedev(1, 3));
    // Rename over an existing file.
    std::fs::write(mp.join("g"), b"other").expect("write");
    std::fs::rename(mp.join("g"), &f).expect("rename over");
    assert_eq!(std::fs::read(&f).expect("read"), b"other");
    assert_eq!(std::fs::read(mp.join("d/h")).expect("read"), b"hello world");
    assert_eq!(std::fs::metadata(mp.join("d/h")).expect("stat").nlink(), 1);
    // RENAME_NOREPLACE.
    let (a, b) = (cpath(&f), cpath(&mp.join("d/h")));
    // SAFETY: valid C strings; renameat2 with AT_FDCWD.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    assert_eq!(errno_of(rc), libc::EEXIST);
    // Truncate.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .expect("open");
    file.set_len(2).expect("truncate");
    drop(file);
    assert_eq!(std::fs::read(&f).expect("read"), b"ot");
    sh(Command::new("truncate").args(["-s", "5M"]).arg(&f));
    let data = std::fs::read(&f).expect("read");
    assert_eq!(data.len(), 5 << 20);
    assert!(data[2..].iter().all(|&b| b == 0));
    // chmod, chown, utimens.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4750)).expect("chmod");
    std::os::unix::fs::lchown(&f, Some(1234), Some(5678)).expect("chown");
    let t = std::time::UNIX_EPOCH + Duration::new(1_500_000_000, 123_456_789);
    std::fs::File::options()
        .write(true)
        .open(&f)
        .and_then(|h| h.set_times(std::fs::FileTimes::new().set_modified(t).set_accessed(t)))
        .expect("utimens");
    let md = std::fs::metadata(&f).expect("stat");
    // chown cleared the set-user-id bit, as on any Linux filesystem.
    assert_eq!(md.mode() & 0o7777, 0o750);
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_500_000_000, 123_456_789));
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4750)).expect("chmod");
    assert_eq!(std::fs::metadata(&f).expect("stat").mode() & 0o7777, 0o4750);
    // Extended attributes are refused.
    let (p, n) = (cpath(&f), CString::new("user.x").expect("name"));
    // Twice: the daemon says "not implemented" once, then the kernel
    // answers by itself, with the same error.
    for _ in 0..2 {
        // SAFETY: valid C strings and a 1-byte value.
        let rc = unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), b"v".as_ptr().cast(), 1, 0) };
        assert_eq!(errno_of(rc as libc::c_int), libc::ENOTSUP);
    }
    let mut buf = [0u8; 16];
    // SAFETY: valid C strings and buffer.
    let rc = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), 16) };
    assert_eq!(errno_of(rc as libc::c_int), libc::ENOTSUP);
    for _ in 0..2 {
        // SAFETY: valid C strings.
        let rc = unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) };
        assert_eq!(errno_of(rc), libc::ENOTSUP);
    }
    // SAFETY: valid C string and buffer.
    let rc = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), 16) };
    assert_eq!(rc, 0);
    // statfs answers.
    sh(Command::new("stat").arg("-f").arg(&mp));
    // A second mount of the same volume is refused as "in use".
    let out = Command::new(common::mount::bin())
        .arg("mount")
        .arg(&vol)
        .arg(tmp.path())
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // rmdir of a non-empty directory.
    assert_eq!(
        std::fs::remove_dir(mp.join("d"))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENOTEMPTY)
    );
    // Sizes written by the kernel reach the record (passthrough).
    let big = mp.join("big");
    let mut h = std::fs::File::create(&big).expect("create");
    std::io::Write::write_all(&mut h, &vec![7u8; 3 << 20]).expect("write");
    assert_eq!(std::fs::metadata(&big).expect("stat").len(), 3 << 20);
    h.sync_all().expect("fsync");
    drop(h);
    m.unmount();
    consistent(&vol);
    {
        let v = Volume::open(&vol).expect("open");
        let i = v
            .lookup(clfs_fs::volume::ROOT_INO, b"big")
            .expect("big is there");
        assert_eq!(i.size, 3 << 20);
    }
    // Read-only.
    let m = Mounted::new(&vol, &mp, &["ro"]);
    assert_eq!(std::fs::read(mp.join("d/h")).expect("read"), b"hello world");
    assert_eq!(
        std::fs::write(mp.join("new"), b"x")
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EROFS)
    );
    m.unmount();
}

#[test]
fn daemon_mode_returns_when_mounted_and_umount_ends_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (vol, mp) = (tmp.path().join("vol"), tmp.path().join("mnt"));
    std::fs::create_dir(&mp).expect("mkdir");
    let st = run_with_timeout(
        Command::new(common::mount::bin())
            .arg("mount")
            .arg(&vol)
            .arg(&mp),
        Duration::from_secs(30),
    );
    assert!(st.is_some_and(|s| s.success()), "mount: {st:?}");
    let guard = scopeguard(&mp);
    assert!(is_mounted(&mp));
    std::fs::write(mp.join("x"), b"data").expect("write");
    assert!(vol.join("mount.log").is_file());
    let st = run_with_timeout(
        Command::new(common::mount::bin()).arg("umount").arg(&mp),
        Duration::from_secs(30),
    );
    assert!(st.is_some_and(|s| s.success()), "umount: {st:?}");
    // The daemon closes the volume shortly after the unmount.
    let start = std::time::Instant::now();
    let v = loop {
        match Volume::open(&vol) {
            Ok(v) => break v,
            Err(e) if start.elapsed() > Duration::from_secs(20) => {
                panic!("volume not released: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert!(v.check().expect("check").is_empty());
    drop(guard);
    // Mounting a folder that is not a volume fails in the parent.
    let junk = tmp.path().join("junk");
    std::fs::create_dir(&junk).expect("mkdir");
    std::fs::write(junk.join("file"), b"x").expect("write");
    let out = Command::new(common::mount::bin())
        .arg("mount")
        .arg(&junk)
        .arg(&mp)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a clfs-fs staging volume"));
    assert!(!is_mounted(&mp));
}

/// Unmounts lazily when dropped.
struct Unmounter(std::path::PathBuf);
impl Drop for Unmounter {
    fn drop(&mut self) {
        common::mount::force_unmount(&self.0);
    }
}
fn scopeguard(mp: &Path) -> Unmounter {
    Unmounter(mp.to_path_buf())
}

/// Unlinks and renames that delete a large file (16 MiB and more) are
/// served off the reader thread; what they leave must be what the small
/// ones leave: the names, the link counts, the data files gone, a
/// consistent volume.
#[test]
fn deleting_large_files_by_unlink_and_rename() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (vol, mp) = (tmp.path().join("vol"), tmp.path().join("mnt"));
    let m = Mounted::new(&vol, &mp, &[]);
    let big: Vec<u8> = (0..(20u32 << 20)).map(|i| (i % 251) as u8).collect();
    for n in ["gone", "over", "linked"] {
        std::fs::write(mp.join(n), &big).expect("write a large file");
    }
    std::fs::write(mp.join("small"), b"replacement").expect("write");
    std::fs::hard_link(mp.join("linked"), mp.join("second")).expect("link");
    let inos: Vec<u64> = ["gone", "over", "linked"]
        .iter()
        .map(|n| std::fs::metadata(mp.join(n)).expect("stat").ino())
        .collect();
    std::fs::remove_file(mp.join("gone")).expect("unlink a large file");
    std::fs::rename(mp.join("small"), mp.join("over")).expect("rename over a large file");
    std::fs::remove_file(mp.join("linked")).expect("unlink one of two links");
    let mut names: Vec<_> = std::fs::read_dir(&mp)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    assert_eq!(names, ["over", "second"]);
    assert_eq!(
        std::fs::read(mp.join("over")).expect("read"),
        b"replacement"
    );
    let second = std::fs::metadata(mp.join("second")).expect("stat");
    assert_eq!((second.nlink(), second.ino()), (1, inos[2]));
    assert!(std::fs::read(mp.join("second")).expect("read") == big);
    m.unmount();
    consistent(&vol);
    let v = Volume::open(&vol).expect("open");
    for ino in &inos[..2] {
        assert!(
            !v.data_path(*ino).exists(),
            "the data file of deleted inode {ino} is gone"
        );
    }
    assert!(
        v.data_path(inos[2]).exists(),
        "the linked file's data stays"
    );
}
