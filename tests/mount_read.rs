//! `mount --container`: each fixture container mounted read-only through
//! real FUSE must show the tree the manifest builds: `diff -r` finds no
//! difference, lstat agrees on type, mode, owner, size, mtime and link
//! count, hard links share an inode number, the entry counts match, and
//! changes fail with EROFS.
//!
//! Every mount is undone by a guard (`fusermount3 -u`, then the process is
//! killed) even when an assertion fails, and every wait has a deadline.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clfs_fs::clfs::vattr::ClfsTime;
use common::fixtures::fixture_containers;
use common::tree::small_tree;

/// The binary under test: `$CLFS_FS_BIN` when set (a private copy, for
/// machines where several checkouts share one target directory), else the
/// one cargo built.
fn bin() -> PathBuf {
    std::env::var_os("CLFS_FS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_clfs-fs")))
}

fn is_mounted(target: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let want = target.to_str().expect("utf-8 temp path");
    info.lines().any(|l| l.split(' ').nth(4) == Some(want))
}

/// A mount made by the test; unmounted (and its process stopped) on drop.
struct Mounted {
    dir: PathBuf,
    child: Option<Child>,
}

impl Mounted {
    /// `clfs-fs mount --foreground --container SRC DIR`, waiting up to 60 s.
    fn foreground(src: &Path, dir: &Path) -> Mounted {
        let child = Command::new(bin())
            .args(["mount", "--foreground", "--container"])
            .arg(src)
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("clfs-fs starts");
        let mut m = Mounted {
            dir: dir.to_path_buf(),
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !is_mounted(dir) {
            if let Some(c) = m.child.as_mut() {
                if let Some(status) = c.try_wait().expect("try_wait") {
                    panic!("the mount process exited early: {status}");
                }
            }
            assert!(Instant::now() < deadline, "mount not ready after 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if is_mounted(&self.dir) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.dir)
                .status();
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = c.kill();
                        let _ = c.wait();
                        // A killed daemon leaves a dead mount: detach it.
                        let _ = Command::new("fusermount3")
                            .arg("-uz")
                            .arg(&self.dir)
                            .status();
                        break;
                    }
                }
            }
        } else if is_mounted(&self.dir) {
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.dir)
                .status();
        }
    }
}

/// Runs a command with a deadline, returning (status ok, stdout+stderr).
fn run_with_deadline(cmd: &mut Command, secs: u64) -> (bool, String) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("command starts");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(out) => {
            let out = out.expect("output");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        }
        Err(_) => {
            // SAFETY: kill has no memory effects; pid is our child.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            panic!("command {cmd:?} did not finish in {secs} s");
        }
    }
}

/// Every path below `root` (itself included), relative, sorted; like
/// `find ROOT` without following symlinks.
fn all_paths(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::new()];
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(root.join(&rel)).expect("read_dir") {
            let e = e.expect("entry");
            let p = rel.join(e.file_name());
            if e.file_type().expect("file type").is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

fn check_against_tree(mnt: &Path, tree: &Path) {
    // diff -r: contents of every file, the same names everywhere. GNU diff
    // reports special files it cannot compare ("… is a fifo while …");
    // those lines are not differences.
    let (_, text) = run_with_deadline(
        Command::new("diff")
            .args(["-r", "--no-dereference"])
            .arg(mnt)
            .arg(tree),
        300,
    );
    let real: Vec<&str> = text
        .lines()
        .filter(|l| {
            !(l.starts_with("File ") && {
                let kinds = [
                    "fifo",
                    "socket",
                    "character special file",
                    "block special file",
                ];
                kinds.iter().any(|k| {
                    l.ends_with(&format!("is a {k}")) && l.contains(&format!("is a {k} while"))
                })
            })
        })
        .collect();
    assert!(
        real.is_empty(),
        "diff -r found differences:\n{}",
        real.join("\n")
    );

    // find | wc -l
    let (ok, find_mnt) = run_with_deadline(Command::new("find").arg(mnt), 120);
    assert!(ok, "find failed on the mount: {find_mnt}");
    let (_, find_tree) = run_with_deadline(Command::new("find").arg(tree), 120);
    assert_eq!(
        find_mnt.lines().count(),
        find_tree.lines().count(),
        "find | wc -l differs"
    );

    // lstat of every entry; hard links share inode numbers exactly where
    // the source's do.
    let paths = all_paths(tree);
    assert_eq!(paths, all_paths(mnt), "the two trees list different names");
    let mut ino_map: HashMap<u64, u64> = HashMap::new();
    let mut seen_mnt: HashMap<u64, u64> = HashMap::new();
    for rel in &paths {
        let a = std::fs::symlink_metadata(tree.join(rel)).expect("lstat source");
        let b = std::fs::symlink_metadata(mnt.join(rel)).expect("lstat mount");
        let what = rel.display();
        assert_eq!(a.mode(), b.mode(), "{what}: mode");
        assert_eq!((a.uid(), a.gid()), (b.uid(), b.gid()), "{what}: owner");
        assert_eq!(a.nlink(), b.nlink(), "{what}: link count");
        // CLFS keeps times as the reference loader converts them (through
        // a double, spec §3.5.1): the mount must show exactly that.
        let stored = ClfsTime::from_stat(a.mtime(), a.mtime_nsec() as u32).expect("time fits");
        assert_eq!(
            (i64::from(stored.sec), i64::from(stored.nsec)),
            (b.mtime(), b.mtime_nsec()),
            "{what}: mtime (source {}.{:09})",
            a.mtime(),
            a.mtime_nsec()
        );
        if !a.is_dir() {
            assert_eq!(a.size(), b.size(), "{what}: size");
        }
        if a.file_type().is_char_device() || a.file_type().is_block_device() {
            assert_eq!(a.rdev(), b.rdev(), "{what}: device number");
        }
        if !a.is_dir() {
            let m = *ino_map.entry(a.ino()).or_insert(b.ino());
            assert_eq!(
                m,
                b.ino(),
                "{what}: hard link to a different inode on the mount"
            );
            let s = *seen_mnt.entry(b.ino()).or_insert(a.ino());
            assert_eq!(
                s,
                a.ino(),
                "{what}: shares an inode on the mount but not in the source"
            );
        }
        if a.file_type().is_symlink() {
            assert_eq!(
                std::fs::read_link(tree.join(rel)).expect("readlink source"),
                std::fs::read_link(mnt.join(rel)).expect("readlink mount"),
                "{what}: symlink target"
            );
        }
    }
}

use std::os::unix::fs::FileTypeExt;

fn assert_erofs(r: std::io::Result<()>, what: &str) {
    match r {
        Ok(()) => panic!("{what} succeeded on a read-only mount"),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}"),
    }
}

#[test]
fn every_fixture_mounts_as_the_manifest_tree() {
    let tree = small_tree();
    for fx in fixture_containers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mkdir");
        let m = Mounted::foreground(&fx.join("blobs"), &mnt);
        check_against_tree(&m.dir, tree);

        // Nothing can change.
        assert_erofs(
            std::fs::write(mnt.join("new-file"), b"x"),
            "creating a file",
        );
        assert_erofs(std::fs::create_dir(mnt.join("new-dir")), "mkdir");
        let some_file = all_paths(tree)
            .into_iter()
            .find(|p| tree.join(p).symlink_metadata().is_ok_and(|m| m.is_file()))
            .expect("a regular file");
        assert_erofs(
            std::fs::OpenOptions::new()
                .append(true)
                .open(mnt.join(&some_file))
                .map(drop),
            "opening a file for writing",
        );
        assert_erofs(std::fs::remove_file(mnt.join(&some_file)), "unlink");
        drop(m);
        assert!(!is_mounted(&mnt), "still mounted after the guard");
    }
}

#[test]
fn background_mount_returns_when_ready_and_unmounts_cleanly() {
    let fx = &fixture_containers()[0];
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let (ok, text) = run_with_deadline(
        Command::new(bin())
            .args(["mount", "--container"])
            .arg(fx.join("blobs"))
            .arg(&mnt)
            .args(["-o", "allow_other,ro"]),
        120,
    );
    let guard = Mounted {
        dir: mnt.clone(),
        child: None,
    };
    assert!(ok, "mount failed: {text}");
    assert!(is_mounted(&mnt), "not mounted after the command returned");
    assert!(mnt.join("data").is_dir(), "the root is not visible");
    let (ok, text) = run_with_deadline(Command::new("fusermount3").arg("-u").arg(&mnt), 60);
    assert!(ok, "fusermount3 -u failed: {text}");
    assert!(!is_mounted(&mnt));
    drop(guard);
}

#[test]
fn a_container_mount_takes_only_the_mount_point() {
    let (ok, text) = run_with_deadline(
        Command::new(bin()).args(["mount", "--container", "/tmp/x", "/tmp/y", "/tmp/z"]),
        30,
    );
    assert!(!ok);
    assert!(text.contains("only the mount point"), "{text}");
}
