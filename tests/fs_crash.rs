//! Crash test of the staging filesystem: the mount daemon is killed with
//! SIGKILL in the middle of a large `cp -a`, the dead mount is detached,
//! and a remount must show a consistent namespace (no dangling entry,
//! right link counts) in which every file fsynced before the kill is
//! intact.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use clfs_fs::volume::Volume;

use common::mount::Mounted;

/// 60 directories of 100 small files, hard links, and a 64 MiB file.
fn make_tree(root: &Path) {
    for d in 0..60 {
        let dir = root.join(format!("dir{d:02}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in 0..100 {
            let body: Vec<u8> = (0..(1000 + f * 37))
                .map(|i| ((i + d * f) % 251) as u8)
                .collect();
            std::fs::write(dir.join(format!("f{f:03}")), body).expect("write");
        }
        std::fs::hard_link(dir.join("f000"), dir.join("link")).expect("link");
    }
    let big: Vec<u8> = (0..64u32 << 20).map(|i| (i % 253) as u8).collect();
    std::fs::write(root.join("big"), big).expect("write");
}

fn body(i: usize) -> Vec<u8> {
    (0..(1 << 20) + i * 4099)
        .map(|j| ((j * 7 + i) % 256) as u8)
        .collect()
}

fn walk(dir: &Path, n: &mut usize) {
    for e in std::fs::read_dir(dir).expect("readdir after remount") {
        let e = e.expect("entry");
        let md = std::fs::symlink_metadata(e.path()).expect("every entry stats");
        *n += 1;
        if md.is_dir() {
            walk(&e.path(), n);
        } else if md.is_file() {
            std::fs::read(e.path()).expect("every file reads");
        }
    }
}

#[test]
fn sigkill_during_a_copy_keeps_the_namespace_and_fsynced_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    make_tree(&src);
    let (vol, mp) = (tmp.path().join("vol"), tmp.path().join("mnt"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut synced = 0usize;
    let mut cut_short = 0;
    for round in 0..3 {
        let m = Mounted::new(&vol, &mp, &[]);
        // Files fsynced before the kill.
        let keep = mp.join(format!("synced{round}"));
        std::fs::create_dir(&keep).expect("mkdir");
        for i in 0..5 {
            let mut f = std::fs::File::create(keep.join(format!("s{i}"))).expect("create");
            f.write_all(&body(synced + i)).expect("write");
            f.sync_all().expect("fsync");
        }
        synced += 5;
        // A large copy, killed part-way.
        let mut cp = Command::new("cp")
            .arg("-a")
            .arg(&src)
            .arg(mp.join(format!("copy{round}")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cp starts");
        // Killed a random moment after the copy has started writing: a
        // fixed delay from the spawn would let a fast machine finish first.
        let dst = mp.join(format!("copy{round}"));
        let waiting = Instant::now();
        while std::fs::read_dir(&dst).map_or(true, |mut d| d.next().is_none()) {
            assert!(
                waiting.elapsed() < Duration::from_secs(30),
                "the copy wrote nothing in 30 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(20..300)));
        m.kill();
        let start = Instant::now();
        loop {
            if let Some(st) = cp.try_wait().expect("wait") {
                if !st.success() {
                    cut_short += 1;
                }
                break;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = cp.kill();
                let _ = cp.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The volume reopens consistent.
        {
            let v = Volume::open(&vol).expect("volume opens after the crash");
            let problems = v.check().expect("check");
            assert!(problems.is_empty(), "round {round}: {problems:#?}");
        }
        // Remounted: everything fsynced is intact, everything else readable.
        let m = Mounted::new(&vol, &mp, &[]);
        let mut k = 0;
        for r in 0..=round {
            for i in 0..5 {
                let got = std::fs::read(mp.join(format!("synced{r}/s{i}"))).expect("synced file");
                assert!(got == body(k), "round {round}: synced{r}/s{i} differs");
                k += 1;
            }
        }
        let mut n = 0;
        walk(&mp, &mut n);
        assert!(n >= synced);
        m.unmount();
    }
    assert!(cut_short > 0, "no copy was interrupted by the kill");
}

/// Files the kernel wrote directly (passthrough) and closed just before a
/// SIGKILL keep their full length and contents after it, and those closed
/// well before it keep the time they were closed (not the time of the
/// recovery, which refreshes any inode still marked open for writing).
#[test]
fn files_closed_before_a_kill_keep_their_length_and_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (vol, mp) = (tmp.path().join("vol"), tmp.path().join("mnt"));
    let m = Mounted::new(&vol, &mp, &[]);
    let write = |name: &str, len: usize| {
        let mut f = std::fs::File::create(mp.join(name)).expect("create");
        f.write_all(&body(len)[..len]).expect("write");
    };
    // Closed well before the kill (a pause of 2 s), then just before it.
    for i in 0..5 {
        write(&format!("early{i}"), 1000 + i);
    }
    std::thread::sleep(Duration::from_secs(2));
    let before_kill = clfs_fs::volume::Timespec::now();
    for i in 0..5 {
        write(&format!("late{i}"), 2000 + i);
    }
    m.kill();
    let v = Volume::open(&vol).expect("volume opens after the crash");
    assert!(v.check().expect("check").is_empty());
    for (prefix, base) in [("early", 1000), ("late", 2000)] {
        for i in 0..5 {
            let name = format!("{prefix}{i}");
            let ino = v.lookup(1, name.as_bytes()).expect("file survives").ino;
            let rec = v.inode(ino).expect("record");
            assert_eq!(rec.size, (base + i) as u64, "{name}");
            let data = std::fs::read(v.data_path(ino)).expect("data file");
            assert!(data == body(base + i)[..base + i], "{name}: contents");
            if prefix == "early" {
                assert!(rec.mtime < before_kill, "{name}: close time kept");
            }
        }
    }
}
