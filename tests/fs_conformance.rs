//! POSIX conformance and data integrity of the staging filesystem through
//! a real mount: pjdfstest (configuration and excluded tests in
//! tests/pjdfstest.toml) and fsx, 100,000 random operations on one file
//! (tests/fsx.toml). Both come from crates.io; `scripts/setup-fstools.sh`
//! installs them (scripts/test.sh runs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use clfs_fs::volume::Volume;

use common::mount::Mounted;

/// An installed tool: `$CLFS_FS_TOOLS_DIR/bin/NAME`, default
/// `~/.cache/clfs-fs/tools/bin/NAME`. Panics when missing (a missing tool
/// must not turn into a passing test).
fn tool(name: &str) -> PathBuf {
    let root = std::env::var_os("CLFS_FS_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/clfs-fs/tools")
        });
    let p = root.join("bin").join(name);
    assert!(
        p.is_file(),
        "{} not found: run scripts/setup-fstools.sh (or set CLFS_FS_TOOLS_DIR)",
        p.display()
    );
    p
}

fn config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}

fn consistent(volume: &Path) {
    let v = Volume::open(volume).expect("volume opens");
    let p = v.check().expect("check");
    assert!(p.is_empty(), "inconsistent volume: {p:#?}");
}

#[test]
fn pjdfstest_passes() {
    let pjd = tool("pjdfstest");
    let tmp = tempfile::tempdir().expect("tempdir");
    // The suite switches to unprivileged users: they must reach the mount
    // (allow_other) through its parent folders.
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let (vol, mp) = (tmp.path().join("vol"), tmp.path().join("mnt"));
    let m = Mounted::new(&vol, &mp, &["allow_other"]);
    let dir = mp.join("pjd");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    // A second filesystem for the EXDEV tests: the native disk.
    let second = tmp.path().join("second");
    std::fs::create_dir(&second).expect("mkdir");
    std::fs::set_permissions(&second, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    let out = Command::new(&pjd)
        .arg("-c")
        .arg(config("pjdfstest.toml"))
        .arg("-p")
        .arg(&dir)
        .arg("-s")
        .arg(&second)
        .current_dir(tmp.path())
        .output()
        .expect("pjdfstest runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failed: Vec<&str> = stdout.lines().filter(|l| l.contains("FAILED")).collect();
    assert!(
        out.status.success() && failed.is_empty(),
        "pjdfstest failed ({}):\n{}\n{}",
        out.status,
        failed.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    m.unmount();
    consistent(&vol);
}

#[test]
fn fsx_100000_operations_without_miscompare() {
    let fsx = tool("fsx");
    let tmp = tempfile::tempdir().expect("tempdir");
    let (vol, mp) = (tmp.path().join("vol"), tmp.path().join("mnt"));
    let m = Mounted::new(&vol, &mp, &[]);
    let artifacts = tmp.path().join("artifacts");
    std::fs::create_dir(&artifacts).expect("mkdir");
    let out = Command::new(&fsx)
        .args(["-N", "100000", "-S", "20261130"])
        .arg("-f")
        .arg(config("fsx.toml"))
        .arg("-P")
        .arg(&artifacts)
        .arg(mp.join("fsx.file"))
        .output()
        .expect("fsx runs");
    assert!(
        out.status.success(),
        "fsx failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    m.unmount();
    consistent(&vol);
}
