//! Crash test: a 5,000-file load killed with SIGKILL at random points and
//! resumed each time ends with the same namespace as an uninterrupted load,
//! with no blob of a lower version and no provisional name left.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use clfs_fs::clfs::hash::hash64;
use clfs_fs::clfs::id::INODE_INPROGRESS;
use clfs_fs::clfs::name::BlobName;
use clfs_fs::read::verify::{canonical_namespace, verify, VerifyOptions};

use common::read::{open_local, runtime};
use common::tree::load_ok;

/// 50 directories of 100 files of 1–8 KiB, a 20 MiB file (three data
/// segments), and hard links across directories.
fn make_tree(root: &Path) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for d in 0..50 {
        let dir = root.join(format!("dir{d:02}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in 0..100 {
            let n = rng.random_range(1024..8192);
            let body: Vec<u8> = (0..n).map(|i| ((i * 31 + f * 7 + d) % 251) as u8).collect();
            std::fs::write(dir.join(format!("file{f:03}.bin")), body).expect("write");
        }
    }
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 253) as u8).collect();
    std::fs::write(root.join("big.bin"), big).expect("write");
    for d in 0..10 {
        std::fs::hard_link(
            root.join("dir00/file000.bin"),
            root.join(format!("dir{:02}/link{d}.bin", d + 1)),
        )
        .expect("link");
    }
    // Access times in the future, as the fixture trees have them, so that
    // reading the tree (readdir updates a directory's atime under relatime)
    // does not change what the next load sees.
    let future = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000);
    let times = std::fs::FileTimes::new().set_accessed(future);
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                dirs.push(p.clone());
            }
            std::fs::File::open(&p)
                .and_then(|f| f.set_times(times))
                .expect("set atime");
        }
        std::fs::File::open(&d)
            .and_then(|f| f.set_times(times))
            .expect("set atime");
    }
}

fn namespace(container: &Path) -> BTreeMap<String, String> {
    let rt = runtime();
    let (ns, report) = rt
        .block_on(canonical_namespace(open_local(container), 16))
        .expect("canonical namespace");
    assert!(report.ok(), "{:?}", report.problems);
    ns.records
        .iter()
        .map(|(p, r)| {
            let mut v: serde_json::Value = serde_json::from_str(&r.to_text()).expect("record");
            if let Some(o) = v.as_object_mut() {
                // the first-found name of a hard-linked inode depends on
                // which directory scan found it first
                if o.contains_key("hardlink_group") {
                    o.remove("inode_name");
                }
            }
            (
                String::from_utf8_lossy(p.as_bytes()).into_owned(),
                v.to_string(),
            )
        })
        .collect()
}

#[test]
fn killed_loads_resume_to_the_same_namespace() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    make_tree(&src);
    let flags = ["--preserve-hardlinks", "--compression-type", "LZ4"];

    // The uninterrupted load.
    let clean = tmp.path().join("clean");
    let start = Instant::now();
    load_ok(&src, &clean, &tmp.path().join("clean-state"), &flags);
    let full = start.elapsed();

    // The same load, killed again and again.
    let crashed = tmp.path().join("crashed");
    let state = tmp.path().join("crashed-state");
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let mut kills = 0;
    let mut new_session = true;
    let mut finished = false;
    for attempt in 0..40 {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clfs-fs"));
        cmd.args(["load", "clfs"])
            .arg(&src)
            .arg(&crashed)
            .arg("--state-path")
            .arg(&state)
            .args(flags)
            .arg(format!("--new-session={new_session}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn");
        // Kill after a random share of a twelfth of a full load's time, so
        // the kills spread over the whole load (each run gets further), at
        // least 10 of them, then let it finish.
        if kills < 12 {
            let ms = rng.random_range(10..(full.as_millis() as u64 / 12).max(40));
            let deadline = Instant::now() + Duration::from_millis(ms);
            let mut exited = None;
            while Instant::now() < deadline {
                if let Some(s) = child.try_wait().expect("try_wait") {
                    exited = Some(s);
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            match exited {
                Some(s) => {
                    assert!(s.success(), "attempt {attempt} failed: {s}");
                    finished = true;
                    break;
                }
                None => {
                    child.kill().expect("SIGKILL");
                    child.wait().expect("wait");
                    kills += 1;
                }
            }
        } else {
            let s = child.wait().expect("wait");
            assert!(s.success(), "final attempt failed: {s}");
            finished = true;
            break;
        }
        // The state exists once the first run got past its start-up.
        new_session = !state.join("db").is_dir();
    }
    assert!(finished, "the load never finished");
    assert!(
        kills >= 10,
        "only {kills} kills landed before the load finished"
    );

    let (got, want) = (namespace(&crashed), namespace(&clean));
    assert_eq!(got.len(), want.len(), "number of paths");
    let differing: Vec<(&String, &String, Option<&String>)> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .map(|(k, v)| (k, v, got.get(k)))
        .take(3)
        .collect();
    assert!(
        differing.is_empty(),
        "records differ (path, uninterrupted, crashed): {differing:#?}"
    );

    // Nothing provisional or superseded is left, and nothing unreachable.
    let inprogress = format!("{:016X}", hash64(INODE_INPROGRESS.as_bytes()));
    let mut versions: BTreeMap<String, u32> = BTreeMap::new();
    for e in std::fs::read_dir(&crashed).expect("container") {
        let name = e.expect("entry").file_name().to_string_lossy().into_owned();
        // Log blobs, and the local backend's own temporary folder.
        if name.ends_with(".txt") || name.starts_with('.') {
            continue;
        }
        let parsed = BlobName::parse(&name).unwrap_or_else(|e| panic!("{e}"));
        assert!(!parsed.is_tmp(), "provisional root left: {name}");
        assert_ne!(
            parsed.owner_hash().map(|h| format!("{h:016X}")),
            Some(inprogress.clone()),
            "provisional inode left: {name}"
        );
        *versions.entry(parsed.id().to_string()).or_default() += 1;
    }
    let multi: Vec<_> = versions.iter().filter(|(_, n)| **n > 1).collect();
    assert!(multi.is_empty(), "ids with several versions: {multi:?}");
    let rt = runtime();
    let report = rt
        .block_on(verify(open_local(&crashed), &VerifyOptions::default()))
        .expect("verify");
    let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(report.errors, 0, "{problems:#?}");
    assert_eq!(report.warnings, 0, "{problems:#?}");
}
