//! Source trees for the load tests: the fixture manifests rebuilt with
//! `make_tree.py`, and generated trees.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::fixtures::fixtures_dir;

/// The `small` manifest's tree, built (as root, so owners are set) once
/// per manifest and builder version into the cargo target's temporary
/// folder, and reused by later test binaries and runs.
pub fn small_tree() -> &'static Path {
    static TREE: OnceLock<PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        let fx = fixtures_dir();
        let script = fx.join("make_tree.py");
        let manifest = fx.join("manifests/small.json");
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for f in [&script, &manifest] {
            std::hash::Hash::hash(&std::fs::read(f).expect("fixture file"), &mut h);
        }
        let name = format!("small-tree-{:016x}", std::hash::Hasher::finish(&h));
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let done = base.join(&name);
        if !done.join("small").is_dir() {
            // Built beside its final name, then renamed into place, so a
            // test binary running at the same time never sees half a tree.
            let part = base.join(format!("{name}.part-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&part);
            std::fs::create_dir_all(&part).expect("tree folder");
            let out = Command::new("python3")
                .arg(&script)
                .arg("build")
                .arg(&manifest)
                .arg(part.join("small"))
                .output()
                .expect("python3 runs");
            assert!(
                out.status.success(),
                "make_tree.py build failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if std::fs::rename(&part, &done).is_err() {
                // Another binary finished first: use its tree.
                let _ = std::fs::remove_dir_all(&part);
            }
        }
        done.join("small")
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
