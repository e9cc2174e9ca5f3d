//! Bad input (issue 4, item 5): every kind of entry CLFS or the loader
//! cannot take is an error naming the path and the cause, counted against
//! `--max-errors`, never a panic or a hang; the exit status is non-zero
//! unless every object was written; the rest of the tree is loaded and the
//! container verifies, with problems only where the failed entries were.
//!
//! The tests run as root, for whom permission bits do not stop reads, so
//! loads that must meet an unreadable entry run as `nobody` (setpriv). A
//! file whose size changes while it is read is a procfs file bind-mounted
//! into the tree inside a private mount namespace (`unshare -m`): `lstat`
//! says 0 bytes, reading gives more. Files that vanish or change type do so
//! between a first run (where they were unreadable) and the resume that
//! retries them.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clfs_fs::read::verify::{canonical_namespace, verify, VerifyOptions};

use common::read::{open_local, runtime};

const NOBODY: u32 = 65534;

/// The copy of the binary (see [`binary`]).
static BIN: OnceLock<PathBuf> = OnceLock::new();

/// Removes the binary's copy when the test process exits (it is several
/// hundred MB, and every run makes a new one).
extern "C" fn remove_binary_copy() {
    if let Some(dir) = BIN.get().and_then(|b| b.parent()) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The binary, copied where `nobody` may run it (`/root` is private).
fn binary() -> &'static Path {
    BIN.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("clfs-bin")
            .tempdir()
            .expect("tempdir")
            .keep();
        // SAFETY: registers a plain function with no preconditions; it
        // runs once, at exit, after the tests.
        assert_eq!(unsafe { libc::atexit(remove_binary_copy) }, 0, "atexit");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let bin = dir.join("clfs-fs");
        std::fs::copy(env!("CARGO_BIN_EXE_clfs-fs"), &bin).expect("copy binary");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        bin
    })
}

/// A work folder: `src` (filled by the test) and `out` (owned by nobody,
/// for the container and the state).
struct Work {
    _tmp: tempfile::TempDir,
    src: PathBuf,
    out: PathBuf,
}

impl Work {
    fn new() -> Work {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let src = tmp.path().join("src");
        let out = tmp.path().join("out");
        std::fs::create_dir(&src).expect("mkdir");
        std::fs::create_dir(&out).expect("mkdir");
        std::os::unix::fs::chown(&out, Some(NOBODY), Some(NOBODY)).expect("chown");
        Work {
            _tmp: tmp,
            src,
            out,
        }
    }

    fn container(&self) -> PathBuf {
        self.out.join("container")
    }

    fn state(&self) -> PathBuf {
        self.out.join("state")
    }

    /// `load clfs SRC CONTAINER --state-path STATE EXTRA…` as arguments.
    fn load_args(&self, extra: &[&str]) -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec![
            binary().into(),
            "load".into(),
            "clfs".into(),
            self.src.clone().into(),
            self.container().into(),
            "--state-path".into(),
            self.state().into(),
        ];
        a.extend(extra.iter().map(|s| (*s).into()));
        a
    }
}

/// Runs `wrap… [setpriv … --] argv…`, as nobody when asked, failing the
/// test if it does not end within two minutes (a hang on a fifo, say).
fn run(argv: &[std::ffi::OsString], as_nobody: bool, wrap: &[&OsStr]) -> Output {
    let mut full: Vec<std::ffi::OsString> = wrap.iter().map(|a| a.to_os_string()).collect();
    if as_nobody {
        full.extend(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
            ]
            .iter()
            .map(|a| a.into()),
        );
    }
    full.extend(argv.iter().cloned());
    let mut child = Command::new(&full[0])
        .args(&full[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "the load hung; stderr so far:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write(p: &Path, body: &[u8], mode: u32) {
    std::fs::write(p, body).expect("write");
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn set_mtime(p: &Path, sec: i64) {
    let ts = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: sec,
            tv_nsec: 0,
        },
    ];
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).expect("path");
    // SAFETY: a valid C path and two timespecs.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), 0) };
    assert_eq!(r, 0, "utimensat {}", p.display());
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).expect("path");
    // SAFETY: a valid C path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// Asserts `out` names `path` with `cause` on one line, and no panic.
fn assert_reported(out: &Output, path: &Path, cause: &str) {
    let all = text(out);
    let shown = path.display().to_string();
    assert!(
        all.lines()
            .any(|l| l.contains(&format!("{shown}: ")) && l.contains(cause)),
        "no line names {shown} with {cause:?}; output:\n{all}"
    );
}

fn assert_no_panic(out: &Output) {
    let all = text(out);
    assert!(!all.contains("panicked"), "the load panicked:\n{all}");
}

/// Verifies the container; returns the problems' texts (each must concern
/// one of `failed`, the entries that were not written).
fn verify_problems(container: &Path, failed: &[&str]) -> Vec<String> {
    let rt = runtime();
    let report = rt
        .block_on(verify(open_local(container), &VerifyOptions::default()))
        .expect("verify runs");
    assert!(report.finished, "the root was not published");
    let problems: Vec<String> = report.problems.iter().map(|p| format!("{p:?}")).collect();
    for p in &problems {
        assert!(
            failed.iter().any(|f| p.contains(f)),
            "verify found a problem that is not a failed entry: {p}\nall: {problems:#?}"
        );
    }
    problems
}

/// Path → type of every record of the container's namespace.
fn types(container: &Path) -> std::collections::BTreeMap<String, String> {
    let rt = runtime();
    let (ns, _) = rt
        .block_on(canonical_namespace(open_local(container), 16))
        .expect("canonical namespace");
    ns.records
        .iter()
        .map(|(p, r)| {
            let v: serde_json::Value =
                serde_json::from_str(&r.to_text().replace("\\udc", "\\\\udc")).expect("record");
            (
                String::from_utf8_lossy(p.as_bytes()).into_owned(),
                v["type"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn bad_entries_fail_alone_and_the_rest_loads_and_verifies() {
    let w = Work::new();
    let s = &w.src;
    write(&s.join("ok.txt"), b"hello", 0o644);
    write(&s.join("big_ok.bin"), &vec![7u8; 20_000], 0o644);
    write(&s.join("secret.txt"), b"s", 0o000);
    std::fs::create_dir(s.join("locked")).expect("mkdir");
    write(&s.join("locked/x.txt"), b"x", 0o644);
    std::fs::set_permissions(s.join("locked"), std::fs::Permissions::from_mode(0o000))
        .expect("chmod");
    std::fs::create_dir(s.join("nosearch")).expect("mkdir");
    write(&s.join("nosearch/y.txt"), b"y", 0o644);
    std::fs::set_permissions(s.join("nosearch"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    std::os::unix::fs::symlink("a".repeat(1024), s.join("long_link")).expect("symlink");
    std::os::unix::fs::symlink("b".repeat(1023), s.join("ok_link")).expect("symlink");
    write(&s.join("old.txt"), b"1969", 0o644);
    set_mtime(&s.join("old.txt"), -86_400);
    write(&s.join("future.txt"), b"2128", 0o644);
    set_mtime(&s.join("future.txt"), 5_000_000_000);
    drop(std::os::unix::net::UnixListener::bind(s.join("sock")).expect("socket"));
    mkfifo(&s.join("fifo"));
    let odd = OsStr::from_bytes(&[0xffu8; 255]);
    write(&s.join(odd), b"odd name", 0o644);
    write(&s.join("grows"), b"", 0o644);

    // `grows` is /proc/version inside a private mount namespace: lstat says
    // 0 bytes, a read returns the kernel's version string.
    let proc_file = OsStr::new("/proc/version");
    let grows = s.join("grows");
    let script = OsStr::new("mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\"");
    let wrap: Vec<&OsStr> = vec![
        OsStr::new("unshare"),
        OsStr::new("-m"),
        OsStr::new("--propagation"),
        OsStr::new("private"),
        OsStr::new("--"),
        OsStr::new("sh"),
        OsStr::new("-c"),
        script,
        OsStr::new("sh"),
        proc_file,
        grows.as_os_str(),
    ];
    let out = run(&w.load_args(&["--max-errors", "0"]), true, &wrap);
    assert_no_panic(&out);
    assert!(
        !out.status.success(),
        "a load with errors must not exit 0:\n{}",
        text(&out)
    );
    assert!(text(&out).contains("CompletedWithErrors"), "{}", text(&out));
    assert_reported(
        &out,
        &s.join("secret.txt"),
        "cannot read: Permission denied",
    );
    assert_reported(
        &out,
        &s.join("locked"),
        "cannot read directory: Permission denied",
    );
    assert_reported(
        &out,
        &s.join("nosearch/y.txt"),
        "cannot stat: Permission denied",
    );
    assert_reported(&out, &s.join("long_link"), "symlink target is 1024 bytes");
    assert_reported(&out, &s.join("old.txt"), "outside the range CLFS can store");
    assert_reported(
        &out,
        &s.join("future.txt"),
        "outside the range CLFS can store",
    );
    assert_reported(
        &out,
        &s.join("grows"),
        "changed size during the load (scanned 0 bytes, read",
    );
    let problems = std::fs::read(w.state().join("problems.txt")).expect("problems.txt");
    let problems = String::from_utf8_lossy(&problems);
    for name in [
        "secret.txt",
        "locked",
        "nosearch/y.txt",
        "long_link",
        "old.txt",
        "future.txt",
        "grows",
    ] {
        assert!(
            problems.contains(&s.join(name).display().to_string()),
            "problems.txt lacks {name}:\n{problems}"
        );
    }

    let failed = [
        "secret.txt",
        "locked",
        "nosearch",
        "long_link",
        "old.txt",
        "future.txt",
        "grows",
    ];
    verify_problems(&w.container(), &failed);
    let t = types(&w.container());
    for (path, ty) in [
        ("/ok.txt", "reg"),
        ("/big_ok.bin", "reg"),
        ("/ok_link", "lnk"),
        ("/sock", "sock"),
        ("/fifo", "fifo"),
        ("/nosearch", "dir"),
    ] {
        assert_eq!(t.get(path).map(String::as_str), Some(ty), "{path}: {t:#?}");
    }
    assert!(
        t.keys().any(|k| k.len() > 255 && k.starts_with('/')),
        "the 255-byte non-UTF-8 name is missing: {t:#?}"
    );
    for path in [
        "/secret.txt",
        "/long_link",
        "/old.txt",
        "/future.txt",
        "/grows",
    ] {
        assert!(
            t.get(path).is_none_or(|ty| ty == "<missing>"),
            "{path} should not have been written: {t:#?}"
        );
    }
}

#[test]
fn max_errors_stops_the_load_and_a_resume_finishes_it() {
    let w = Work::new();
    for i in 0..20 {
        write(&w.src.join(format!("ok{i:02}.txt")), b"fine", 0o644);
    }
    for i in 0..5 {
        write(&w.src.join(format!("bad{i}.txt")), b"unreadable", 0o000);
    }
    let out = run(&w.load_args(&["--max-errors", "3"]), true, &[]);
    assert_no_panic(&out);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("(--max-errors)"),
        "no --max-errors stop:\n{}",
        text(&out)
    );
    // Root can read them: the resume retries the failed files and finishes.
    let out = run(
        &w.load_args(&["--new-session=false", "--max-errors", "0"]),
        false,
        &[],
    );
    assert_no_panic(&out);
    assert!(out.status.success(), "resume failed:\n{}", text(&out));
    assert!(verify_problems(&w.container(), &[]).is_empty());
    let t = types(&w.container());
    assert_eq!(t.len(), 26, "{t:#?}");
}

#[test]
fn entries_that_vanish_or_change_before_their_retry_are_errors() {
    let w = Work::new();
    let s = &w.src;
    write(&s.join("ok.txt"), b"fine", 0o644);
    write(&s.join("grown.txt"), b"short", 0o000);
    write(&s.join("gone.txt"), b"here", 0o000);
    write(&s.join("to_fifo.txt"), b"file", 0o000);
    std::fs::create_dir(s.join("gone_dir")).expect("mkdir");
    write(&s.join("gone_dir/inner.txt"), b"inner", 0o644);
    std::fs::set_permissions(s.join("gone_dir"), std::fs::Permissions::from_mode(0o000))
        .expect("chmod");
    let out = run(&w.load_args(&["--max-errors", "0"]), true, &[]);
    assert_no_panic(&out);
    assert!(!out.status.success(), "{}", text(&out));
    for name in ["grown.txt", "gone.txt", "to_fifo.txt"] {
        assert_reported(&out, &s.join(name), "Permission denied");
    }

    // Between the runs: one file grows (and becomes readable), one
    // vanishes, one becomes a fifo, the directory vanishes.
    write(&s.join("grown.txt"), b"much longer than before", 0o644);
    std::fs::remove_file(s.join("gone.txt")).expect("rm");
    std::fs::remove_file(s.join("to_fifo.txt")).expect("rm");
    mkfifo(&s.join("to_fifo.txt"));
    std::fs::set_permissions(s.join("gone_dir"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::fs::remove_dir_all(s.join("gone_dir")).expect("rm -r");

    let out = run(
        &w.load_args(&["--new-session=false", "--max-errors", "0"]),
        false,
        &[],
    );
    assert_no_panic(&out);
    assert!(!out.status.success(), "{}", text(&out));
    assert_reported(&out, &s.join("gone.txt"), "No such file or directory");
    assert_reported(&out, &s.join("to_fifo.txt"), "no longer a regular file");
    assert_reported(
        &out,
        &s.join("gone_dir"),
        "cannot read directory: No such file or directory",
    );
    verify_problems(&w.container(), &["gone.txt", "to_fifo.txt", "gone_dir"]);
    let t = types(&w.container());
    assert_eq!(t.get("/grown.txt").map(String::as_str), Some("reg"));
    assert_eq!(t.get("/ok.txt").map(String::as_str), Some("reg"));
}
