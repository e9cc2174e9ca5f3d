//! Locating the reference fixtures (`../shared/fixtures` beside the clone).

use std::path::PathBuf;

/// The fixtures folder: `$CLFS_FIXTURES`, else `../shared/fixtures`
/// relative to the crate. Panics with a clear message when absent, so a
/// missing fixture never turns into a test that silently passes.
pub fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os("CLFS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
    assert!(
        dir.join("README.md").is_file(),
        "fixtures not found at {} (set CLFS_FIXTURES to the shared/fixtures folder)",
        dir.display()
    );
    dir
}

/// The fixture containers: each folder holding `blobs/` and `reference.json`.
pub fn fixture_containers() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures folder is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("blobs").is_dir() && p.join("reference.json").is_file())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixture containers found");
    v
}
