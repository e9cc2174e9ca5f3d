//! Source trees for the load tests: the fixture manifests rebuilt with
//! `make_tree.py`, and generated trees.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::fixtures::fixtures_dir;

/// The `small` manifest's tree, built once per test binary (as root, so
/// owners are set) into a folder that lives as long as the process.
pub fn small_tree() -> &'static Path {
    static TREE: OnceLock<PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("clfs-small-tree")
            .tempdir()
            .expect("tempdir")
            .keep();
        let dest = dir.join("small");
        let fx = fixtures_dir();
        let out = Command::new("python3")
            .arg(fx.join("make_tree.py"))
            .arg("build")
            .arg(fx.join("manifests/small.json"))
            .arg(&dest)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "make_tree.py build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dest
    })
}

/// Runs the built `clfs-fs` binary.
pub fn clfs_fs(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clfs-fs"))
        .args(args)
        .output()
        .expect("clfs-fs runs")
}

/// `clfs-fs load clfs SRC DEST --state-path STATE EXTRA…`, asserting success.
pub fn load_ok(src: &Path, dest: &Path, state: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "load".as_ref(),
        "clfs".as_ref(),
        src.as_os_str(),
        dest.as_os_str(),
        "--state-path".as_ref(),
        state.as_os_str(),
    ];
    args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
    let out = clfs_fs(&args);
    assert!(
        out.status.success(),
        "load failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
