//! Containers we did not write: a cache may rewrite an object at a higher
//! version and with handle types a loader never emits. The reader takes
//! the highest version, skips unknown handles (with a warning), and never
//! writes to the source container.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use clfs_fs::clfs::envelope::{self, Compression, FramePolicy};
use clfs_fs::clfs::handle::{decode_stream, encode_stream, Handle};
use clfs_fs::clfs::name::BlobName as ClfsName;
use clfs_fs::read::export::{export, ExportOptions};
use clfs_fs::read::mount::ns::{CacheOptions, Namespace, ROOT_INO};
use clfs_fs::read::mount::{open_namespace, MountOptions};
use common::fixtures::fixture_containers;
use common::read::{copy_blobs, inode_at, open_local, runtime};

const FILE: &str = "/data/random_300KiB.bin";

/// (name, size, mtime) of every file in `dir`.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, i64, i64)> {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            let m = e.metadata().expect("metadata");
            (
                e.file_name().to_string_lossy().into_owned(),
                (m.len(), m.mtime(), m.mtime_nsec()),
            )
        })
        .collect()
}

#[test]
fn a_higher_version_with_unknown_handles_is_read_and_nothing_is_written() {
    let rt = runtime();
    for fx in fixture_containers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let blobs = tmp.path().join("blobs");
        copy_blobs(&fx.join("blobs"), &blobs);
        let store = open_local(&blobs);
        let node = rt.block_on(inode_at(store.clone(), FILE));

        // The same inode at version 10, with a later mtime and two
        // handles of a type no loader writes.
        let body = std::fs::read(blobs.join(node.blob_text())).expect("read inode blob");
        let opened = envelope::open(&body, FramePolicy::Clfs).expect("open");
        let mut handles = decode_stream(&opened.stream).expect("decode");
        let new_mtime = node.inode.vattr.mtime.sec + 12_345;
        for h in &mut handles {
            if let Handle::Vattr(v) = h {
                v.mtime.sec = new_mtime;
            }
        }
        handles.insert(
            2,
            Handle::Unknown {
                code: 0x5A5A,
                payload: b"written by a cache".to_vec(),
            },
        );
        handles.push(Handle::Unknown {
            code: 0x7001,
            payload: vec![0; 12],
        });
        let stream = encode_stream(&handles).expect("encode");
        let sealed = envelope::seal(&stream, Compression::None).expect("seal");
        let owner = *node.inode.owner().expect("owner");
        let btype = node.btype();
        assert_eq!(
            ClfsName::v2(node.id, btype, &owner, node.blob.version()).to_string(),
            node.blob_text(),
            "the rebuilt name of the current version"
        );
        let v10 = ClfsName::v2(node.id, btype, &owner, node.blob.version() + 1);
        std::fs::write(blobs.join(v10.to_string()), sealed).expect("write v10");

        let before = snapshot(&blobs);

        // export reads version 10: its mtime, the same contents.
        let out = tmp.path().join("out");
        let mut opts = ExportOptions::for_current_user();
        opts.parallel = 4;
        let report = rt
            .block_on(export(store.clone(), &out, &opts))
            .expect("export runs");
        assert!(report.ok(), "export found errors: {:?}", report.problems);
        let rel = FILE.trim_start_matches('/');
        let m = std::fs::symlink_metadata(out.join(rel)).expect("exported file");
        assert_eq!(m.mtime(), i64::from(new_mtime), "version 10's mtime");
        let want = std::fs::read(common::tree::small_tree().join(rel)).expect("source");
        assert!(
            std::fs::read(out.join(rel)).expect("read") == want,
            "contents"
        );

        // The mount's namespace reads it too.
        let mopts = MountOptions {
            cache: CacheOptions::default(),
            threads: 1,
            options: Vec::new(),
            unfinished: false,
        };
        let ns: Arc<Namespace> = rt
            .block_on(open_namespace(store.clone(), &mopts))
            .expect("namespace");
        let got = rt.block_on(async {
            let data = ns.lookup(ROOT_INO, b"data").await.expect("data dir");
            let f = ns
                .lookup(data.ino, b"random_300KiB.bin")
                .await
                .expect("file");
            assert_eq!(f.inode.inode.vattr.mtime.sec, new_mtime);
            ns.read(&f, 0, 1 << 20).await.expect("read")
        });
        assert!(got == want, "contents through the mount namespace");

        assert_eq!(before, snapshot(&blobs), "the source container was changed");
    }
}
