//! `export` into a plain blob container on a real Azurite: every entry of
//! each fixture becomes a blob named by its path with azcopy's POSIX
//! metadata keys; a small downloader (the crate's store API) restores the
//! tree, which must match the manifest's tree in contents, modes, owners,
//! mtimes, link counts, symlink targets and hard-link groups. A second run
//! with the same state path resumes: nothing is uploaded again.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use clfs_fs::clfs::vattr::ClfsTime;
use clfs_fs::store::azure::{AzureOptions, AzureStore};
use clfs_fs::store::url::Location;
use clfs_fs::store::{BlobName, BlobStore};
use common::azurite::Azurite;
use common::fixtures::fixture_containers;
use common::tree::small_tree;
use futures::TryStreamExt;

fn bin() -> PathBuf {
    std::env::var_os("CLFS_FS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_clfs-fs")))
}

type Downloaded = BTreeMap<String, (Vec<u8>, HashMap<String, String>)>;

/// Every blob of the container with its contents and metadata.
async fn download(url: &str) -> Downloaded {
    let env = |_: &str| None;
    let Location::Azure(t) = Location::parse(url, &env).expect("url") else {
        panic!("not an Azure URL")
    };
    let store = Arc::new(AzureStore::new(t, &AzureOptions::default()).expect("store"));
    let names: Vec<String> = store
        .list("")
        .map_ok(|m| m.name.into_string())
        .try_collect()
        .await
        .expect("list");
    let mut out = BTreeMap::new();
    for n in names {
        let (body, meta) = store
            .get_with_metadata(&BlobName::new_plain(n.clone()).expect("name"))
            .await
            .expect("get");
        out.insert(n, (body.to_vec(), meta.into_iter().collect()));
    }
    out
}

/// Restores regular files, directories and symlinks under `dir`.
fn restore(blobs: &Downloaded, dir: &Path) {
    for (name, (body, meta)) in blobs {
        let p = dir.join(name);
        if meta.get("hdi_isfolder").is_some_and(|v| v == "true") {
            std::fs::create_dir_all(&p).expect("mkdir");
            continue;
        }
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir parent");
        if meta.get("is_symlink").is_some_and(|v| v == "true") {
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(body), &p).expect("symlink");
        } else if meta.keys().all(|k| !k.starts_with("is_")) {
            std::fs::write(&p, body).expect("write");
        }
    }
}

/// The blob name of a relative path, if it can have one.
fn blob_name(p: &Path) -> Option<&str> {
    p.to_str().filter(|n| BlobName::new_plain(*n).is_ok())
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(root.join(&rel)).expect("read_dir") {
            let e = e.expect("entry");
            let p = rel.join(e.file_name());
            if e.file_type().expect("type").is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

fn ns(sec: i64, nsec: i64) -> String {
    let t = ClfsTime::from_stat(sec, nsec as u32).expect("time fits");
    (u128::from(t.sec) * 1_000_000_000 + u128::from(t.nsec)).to_string()
}

/// Parses one line of clfs-fs JSON, whose strings escape undecodable bytes
/// as lone surrogates (`\udcXX`), which serde_json refuses.
fn json_line(l: &str) -> serde_json::Value {
    serde_json::from_str(&l.replace("\\udc", "\\u00"))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
}

fn export(src: &Path, url: &str, state: &Path) -> serde_json::Value {
    let out = Command::new(bin())
        .arg("export")
        .arg(src)
        .arg(url)
        .arg("--state-path")
        .arg(state)
        .args(["--output-type", "json", "--log-level", "ERROR"])
        .output()
        .expect("clfs-fs runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = text.lines().last().unwrap_or_default().to_string();
    assert!(
        !last.is_empty(),
        "no output: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_line(&last);
    for l in text.lines() {
        let p = json_line(l);
        assert!(p["type"] == "progress" || p["type"] == "summary", "{l}");
    }
    v
}

#[test]
fn export_to_a_blob_container_round_trips_the_tree_and_resumes() {
    let tree = small_tree();
    let az = Azurite::start();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for (i, fx) in fixture_containers().iter().enumerate() {
        let url = az.container_url(&format!("plain{i}"));
        let state = tempfile::tempdir().expect("tempdir");
        let summary = export(&fx.join("blobs"), &url, state.path());
        assert_eq!(summary["type"], "summary");
        assert_eq!(summary["errors"], 0, "{summary}");
        assert!(summary["files"].as_u64().unwrap_or(0) > 0, "{summary}");

        let blobs = rt.block_on(download(&url));
        let restored = tempfile::tempdir().expect("tempdir");
        restore(&blobs, restored.path());

        let mut link_ids: HashMap<u64, String> = HashMap::new();
        // Names that cannot be blob names (not UTF-8, say) are skipped.
        let mut unnamable = 0;
        for rel in walk(tree) {
            let Some(name) = blob_name(&rel) else {
                unnamable += 1;
                continue;
            };
            let a = std::fs::symlink_metadata(tree.join(&rel)).expect("lstat");
            let (body, meta) = blobs.get(name).unwrap_or_else(|| panic!("{name}: no blob"));
            let what = name;
            assert_eq!(
                meta["permissions"],
                a.mode().to_string(),
                "{what}: permissions"
            );
            assert_eq!(meta["posix_owner"], a.uid().to_string(), "{what}: owner");
            assert_eq!(meta["posix_group"], a.gid().to_string(), "{what}: group");
            assert_eq!(
                meta["modtime"],
                ns(a.mtime(), a.mtime_nsec()),
                "{what}: modtime"
            );
            assert_eq!(meta["posix_nlink"], a.nlink().to_string(), "{what}: nlink");
            let ft = a.file_type();
            if ft.is_dir() {
                assert_eq!(meta.get("hdi_isfolder").map(String::as_str), Some("true"));
                assert!(body.is_empty());
            } else if ft.is_symlink() {
                assert_eq!(meta.get("is_symlink").map(String::as_str), Some("true"));
                let target = std::fs::read_link(tree.join(&rel)).expect("readlink");
                assert_eq!(
                    body.as_slice(),
                    target.as_os_str().as_bytes(),
                    "{what}: target"
                );
                let back = std::fs::read_link(restored.path().join(&rel)).expect("restored link");
                assert_eq!(back, target);
            } else if ft.is_file() {
                let want = std::fs::read(tree.join(&rel)).expect("read");
                assert!(body == &want, "{what}: contents differ");
                let back = std::fs::read(restored.path().join(&rel)).expect("restored file");
                assert!(back == want, "{what}: restored contents differ");
                if a.nlink() > 1 {
                    let id = meta
                        .get("clfs_link_id")
                        .expect("clfs_link_id on a hard link");
                    let first = link_ids.entry(a.ino()).or_insert_with(|| id.clone());
                    assert_eq!(
                        first, id,
                        "{what}: names of one inode carry different link ids"
                    );
                }
            } else {
                assert!(
                    meta.keys().any(|k| k.starts_with("is_")),
                    "{what}: special file without its type"
                );
                assert!(body.is_empty());
            }
        }
        // Each blob is a path of the tree: nothing extra.
        let named = walk(tree).iter().filter(|p| blob_name(p).is_some()).count();
        assert_eq!(blobs.len(), named, "blob count");
        assert!(unnamable > 0, "the fixture has a non-UTF-8 name");
        assert_eq!(
            summary["skipped"].as_u64(),
            Some(unnamable),
            "names that cannot be blob names are skipped, the rest exported: {summary}"
        );
        // Distinct inodes have distinct link ids.
        let ids: std::collections::HashSet<&String> = link_ids.values().collect();
        assert_eq!(ids.len(), link_ids.len());

        // Resume: the same state path, nothing left to do.
        let again = export(&fx.join("blobs"), &url, state.path());
        assert_eq!(again["errors"], 0, "{again}");
        assert_eq!(again["files"], 0, "{again}");
        assert_eq!(again["directories"], 0, "{again}");
        assert_eq!(
            again["resumed"].as_u64(),
            Some(blobs.len() as u64),
            "{again}"
        );
    }
}
