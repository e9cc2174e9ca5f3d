//! The writer against the reference: the `small` tree rebuilt from its
//! manifest, loaded with LZ4 and DISABLED, hard links on and off, decodes
//! to the fixture's namespace (only the fields the fixture README lists as
//! build- or run-dependent may differ), and verifies clean.

mod common;

use std::collections::BTreeMap;

use serde_json::Value;

use std::sync::Arc;

use clfs_fs::read::verify::{canonical_namespace, verify, VerifyOptions};
use clfs_fs::store::azure::{AzureOptions, AzureStore};
use clfs_fs::store::url::Location;
use clfs_fs::store::{self, BlobStore, StoreOptions};

use common::azurite::Azurite;

use common::fixtures::fixture_containers;
use common::read::{load_reference, open_local, runtime};
use common::tree::{load_ok, small_tree};

/// Fields that depend on the build of the tree or on the loader run.
const VOLATILE: [&str; 2] = ["ctime", "fileid"];

fn parse(text: &str) -> Value {
    serde_json::from_str(&text.replace("\\udc", "\\\\udc")).expect("record JSON")
}

/// What the reference record becomes when hard links are not preserved:
/// every name is its own inode with one link.
fn without_hardlinks(path: &str, mut rec: Value) -> Value {
    if let Some(o) = rec.as_object_mut() {
        if o.remove("hardlink_group").is_some() {
            o.remove("names");
            o.insert("nlink".into(), 1.into());
            let parent = match path.rfind('/') {
                Some(0) => "/".to_string(),
                Some(i) => path[..i].to_string(),
                None => "/".to_string(),
            };
            o.insert("parents".into(), Value::Array(vec![parent.into()]));
            let name = path.rsplit('/').next().unwrap_or_default().to_string();
            o.insert("inode_name".into(), name.into());
        }
    }
    rec
}

fn strip(mut rec: Value) -> Value {
    if let Some(o) = rec.as_object_mut() {
        for k in VOLATILE {
            o.remove(k);
        }
        // The first-found name of a hard-linked inode depends on scan order.
        if o.contains_key("hardlink_group") {
            o.remove("inode_name");
        }
    }
    rec
}

const COMBINATIONS: [(&str, bool); 4] = [
    ("LZ4", true),
    ("DISABLED", true),
    ("LZ4", false),
    ("DISABLED", false),
];

fn no_env(_: &str) -> Option<String> {
    None
}

/// Checks a loaded container: verifies clean, and its namespace is the
/// reference's (adjusted when hard links were not preserved).
fn check_container(label: &str, open: &dyn Fn() -> Arc<dyn BlobStore>, hardlinks: bool) {
    let reference_dir = fixture_containers()
        .into_iter()
        .find(|p| p.ends_with("small-lz4"))
        .expect("small-lz4 fixture");
    let reference = load_reference(&reference_dir);
    let rt = runtime();
    let report = rt
        .block_on(verify(open(), &VerifyOptions::default()))
        .expect("verify runs");
    let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(report.errors, 0, "{label}: {problems:#?}");
    assert_eq!(report.warnings, 0, "{label}: {problems:#?}");

    let (ns, _) = rt
        .block_on(canonical_namespace(open(), 16))
        .expect("canonical namespace");
    let mine: BTreeMap<String, Value> = ns
        .records
        .iter()
        .map(|(p, r)| {
            let key: String = serde_json::from_str(
                &clfs_fs::read::json::Json::Str(p.as_bytes().to_vec())
                    .to_text()
                    .replace("\\udc", "\\\\udc"),
            )
            .expect("key");
            (key, strip(parse(&r.to_text())))
        })
        .collect();
    let mut want: BTreeMap<String, Value> = BTreeMap::new();
    for (key, text) in &reference.lines {
        let key: String = serde_json::from_str(&key.replace("\\udc", "\\\\udc")).expect("key");
        let mut rec = parse(text);
        if !hardlinks {
            rec = without_hardlinks(&key, rec);
        }
        want.insert(key, strip(rec));
    }
    let missing: Vec<&String> = want.keys().filter(|k| !mine.contains_key(*k)).collect();
    let extra: Vec<&String> = mine.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(missing.is_empty(), "{label}: paths missing: {missing:?}");
    assert!(extra.is_empty(), "{label}: paths extra: {extra:?}");
    for (k, w) in &want {
        assert_eq!(&mine[k], w, "{label}: record {k}");
    }
}

#[test]
fn loads_into_a_local_container_match_the_reference_namespace() {
    let src = small_tree();
    for (compression, hardlinks) in COMBINATIONS {
        let tmp = tempfile::tempdir().expect("tempdir");
        let container = tmp.path().join("container");
        let state = tmp.path().join("state");
        let hl = format!("--preserve-hardlinks={hardlinks}");
        load_ok(
            src,
            &container,
            &state,
            &["--compression-type", compression, &hl],
        );
        let label = format!("local, {compression}, hard links {hardlinks}");
        check_container(&label, &|| open_local(&container), hardlinks);
    }
}

#[test]
fn loads_into_azurite_match_the_reference_namespace() {
    let src = small_tree();
    let azurite = Azurite::start();
    let rt = runtime();
    for (i, (compression, hardlinks)) in COMBINATIONS.into_iter().enumerate() {
        let url = azurite.container_url(&format!("load{i}"));
        let Ok(Location::Azure(target)) = Location::parse(&url, &no_env) else {
            panic!("not an Azure URL: {url}");
        };
        let bare = AzureStore::new(target, &AzureOptions::default()).expect("client");
        rt.block_on(bare.create_container())
            .expect("create container");
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = tmp.path().join("state");
        let hl = format!("--preserve-hardlinks={hardlinks}");
        load_ok(
            src,
            std::path::Path::new(&url),
            &state,
            &["--compression-type", compression, &hl],
        );
        let label = format!("Azurite, {compression}, hard links {hardlinks}");
        let open = || store::open_with_env(&url, &StoreOptions::default(), &no_env).expect("open");
        check_container(&label, &open, hardlinks);
    }
}
