//! The built binary's `verify`, `ls` and `export` on the reference
//! containers: exit codes, output formats, refusals.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::fixtures::fixture_containers;
use common::read::{copy_blobs, load_reference};

fn clfs_fs(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clfs-fs"))
        .args(["--log-level", "ERROR"])
        .args(args)
        .output()
        .expect("run clfs-fs")
}

fn run(args: &[&str]) -> Output {
    let a: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    clfs_fs(&a)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn lz4_blobs() -> PathBuf {
    common::fixtures::fixtures_dir().join("small-lz4/blobs")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[test]
fn verify_passes_on_every_fixture_in_text_and_json() {
    for c in fixture_containers() {
        let blobs = c.join("blobs");
        let out = run(&["verify", s(&blobs)]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        assert!(
            text(&out.stdout).contains("verify OK: 0 errors, 0 warnings"),
            "{}",
            text(&out.stdout)
        );

        let out = run(&["verify", "--output-type", "json", s(&blobs)]);
        assert_eq!(out.status.code(), Some(0));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert_eq!(v["ok"], true);
        assert_eq!(v["errors"], 0);
        assert_eq!(v["finished"], true);
        assert_eq!(v["stats"]["files"], 1229);
        assert_eq!(v["stats"]["directories"], 36);
        assert_eq!(v["problems"].as_array().map(Vec::len), Some(0));
    }
}

#[test]
fn verify_canonical_file_matches_the_reference_namespace_lines() {
    let c = &fixture_containers()[0];
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("canon.json");
    let out = run(&["verify", "--canonical", s(&file), s(&c.join("blobs"))]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let doc = std::fs::read_to_string(&file).expect("canonical written");
    let reference = load_reference(c);
    let mine: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with(" \""))
        .map(|l| l.trim_end_matches(','))
        .collect();
    let want: Vec<String> = reference
        .lines
        .iter()
        .map(|(k, r)| format!(" {k}:{r}"))
        .collect();
    let mut mine_sorted = mine.clone();
    mine_sorted.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(mine_sorted, want_sorted);
    assert!(doc.contains("\"problems\":[]"));
}

#[test]
fn ls_lists_like_ls() {
    let blobs = lz4_blobs();
    let out = run(&["ls", s(&blobs)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "data\ndeep\nempty.txt\nempty_dir\nhardlinks\nlinks\nmanydir\nmodes\nnames\nowners\nsizes\nspecial\ntimes\n"
    );

    let out = run(&["ls", "-l", s(&blobs), "/links"]);
    assert_eq!(out.status.code(), Some(0));
    let l = text(&out.stdout);
    assert!(
        l.lines()
            .any(|x| x.starts_with("lrwxrwxrwx 1 1234 5678 ")
                && x.ends_with(" owned_1234 -> relative")),
        "{l}"
    );
    assert_eq!(l.lines().count(), 5);

    let out = run(&["ls", "-la", s(&blobs), "hardlinks/b"]);
    let l = text(&out.stdout);
    let names: Vec<&str> = l
        .lines()
        .map(|x| x.rsplit(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(names, [".", "..", "three_3", "two_1", "two_2"], "{l}");
    assert!(
        l.lines()
            .nth(3)
            .is_some_and(|x| x.starts_with("-rw-r--r-- 2 0 0 20000 ")),
        "{l}"
    );

    // Names are raw bytes.
    let out = run(&["ls", s(&blobs), "names"]);
    let needle = b"\nbad_\xff_byte.txt\n";
    assert!(out.stdout.windows(needle.len()).any(|w| w == needle));

    let out = run(&["ls", "-R", s(&blobs), "deep"]);
    let l = text(&out.stdout);
    assert!(l.starts_with("/deep:\nd01\n\n/deep/d01:\nd02\n"), "{l}");
    assert!(l.ends_with("/deep/d01/d02/d03/d04/d05/d06/d07/d08/d09/d10/d11/d12/d13/d14/d15/d16/d17/d18/d19/d20:\nbottom.txt\n"), "{l}");

    let out = run(&[
        "ls",
        "-l",
        "--full-time",
        s(&blobs),
        "times/mtime_ns_123456789.txt",
    ]);
    assert!(
        text(&out.stdout).contains(" 2009-02-13 23:31:30.123456716 +0000 "),
        "{}",
        text(&out.stdout)
    );

    let out = run(&["ls", s(&blobs), "/nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/nope: no such file or directory"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn export_refuses_a_non_empty_target_unless_forced() {
    let blobs = lz4_blobs();
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = tmp.path().join("t");
    let out = run(&["export", s(&blobs), s(&target)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("1226 files (34984540 bytes)"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        std::fs::read(target.join("names/with space.txt"))
            .expect("exported")
            .len(),
        6
    );

    let out = run(&["export", s(&blobs), s(&target)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not empty; use --force"),
        "{}",
        text(&out.stderr)
    );

    std::fs::write(target.join("empty.txt"), b"changed").expect("write");
    let out = run(&[
        "export",
        "--force",
        "--output-type",
        "json",
        s(&blobs),
        s(&target),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["ok"], true);
    assert_eq!(v["hardlinks"], 3);
    assert_eq!(
        std::fs::read(target.join("empty.txt")).expect("read").len(),
        0
    );
}

#[test]
fn an_unfinished_container_is_reported_and_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let blobs = tmp.path().join("c");
    copy_blobs(&lz4_blobs(), &blobs);
    let root = "0000006457871C6B_00000000000000000000000000000064.0002.0000006457871C6B.00000000009.FFFFFFFF.0002";
    std::fs::rename(blobs.join(root), blobs.join(format!("tmp{root}"))).expect("rename root");

    let out = run(&["verify", s(&blobs)]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out.stdout);
    assert!(
        t.contains(&format!("tmp{root}")) && t.contains("unfinished"),
        "{t}"
    );

    let out = run(&["ls", s(&blobs)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unfinished"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["ls", "--unfinished", s(&blobs)]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("data\n"));

    let out = run(&["export", s(&blobs), s(&tmp.path().join("x"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unfinished"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn no_arguments_prints_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_clfs-fs"))
        .output()
        .expect("run clfs-fs");
    assert_eq!(out.status.code(), Some(2));
    let help = text(&out.stderr) + &text(&out.stdout);
    for cmd in ["verify", "ls", "export"] {
        assert!(help.contains(cmd), "{help}");
    }
}
