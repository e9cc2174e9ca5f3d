//! The reader against the reference containers: each verifies with no
//! problem at all, decodes to exactly the namespace of its
//! `reference.json`, and exports to a tree whose contents and metadata
//! are those of `reference.json`.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use clfs_fs::read::export::{export, is_root_user, ExportOptions};
use clfs_fs::read::json::Json;
use clfs_fs::read::verify::{canonical_namespace, verify, VerifyOptions};

use common::fixtures::fixture_containers;
use common::read::{load_reference, open_local, runtime};

#[test]
fn every_fixture_verifies_without_errors_or_warnings() {
    let rt = runtime();
    for container in fixture_containers() {
        for read_data in [true, false] {
            let opts = VerifyOptions {
                read_data,
                ..VerifyOptions::default()
            };
            let report = rt
                .block_on(verify(open_local(&container.join("blobs")), &opts))
                .expect("verify runs");
            let listed: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
            assert_eq!(report.errors, 0, "{}: {listed:#?}", container.display());
            assert_eq!(report.warnings, 0, "{}: {listed:#?}", container.display());
            assert!(report.finished);
            let w = report.stats.walk;
            assert_eq!((w.dirs, w.files, w.symlinks, w.specials), (36, 1229, 5, 1));
            assert_eq!(w.dir_segments, 2);
            assert_eq!(report.stats.data_segments, 8);
            assert_eq!(report.stats.unreachable, 0);
            if read_data {
                // Every byte of the 1 226 distinct files was read.
                assert_eq!(report.stats.file_bytes, 34_984_540);
            }
        }
    }
}

#[test]
fn canonical_namespace_equals_the_reference() {
    let rt = runtime();
    for container in fixture_containers() {
        let reference = load_reference(&container);
        let (ns, report) = rt
            .block_on(canonical_namespace(
                open_local(&container.join("blobs")),
                16,
            ))
            .expect("canonical namespace");
        assert!(report.ok(), "{:?}", report.problems);
        let mine: BTreeMap<String, String> = ns
            .records
            .iter()
            .map(|(p, r)| (Json::Str(p.as_bytes().to_vec()).to_text(), r.to_text()))
            .collect();
        let missing: Vec<&String> = reference
            .lines
            .keys()
            .filter(|k| !mine.contains_key(*k))
            .collect();
        let extra: Vec<&String> = mine
            .keys()
            .filter(|k| !reference.lines.contains_key(*k))
            .collect();
        assert!(
            missing.is_empty(),
            "{}: paths missing: {missing:?}",
            container.display()
        );
        assert!(
            extra.is_empty(),
            "{}: paths extra: {extra:?}",
            container.display()
        );
        for (k, want) in &reference.lines {
            assert_eq!(&mine[k], want, "{}: record {k}", container.display());
        }
        // The document is in the reference's line layout and sorted.
        let doc = String::from_utf8(ns.to_document(&[])).expect("ASCII");
        let body: Vec<&str> = doc.lines().filter(|l| l.starts_with(" \"")).collect();
        assert_eq!(body.len(), reference.lines.len());
    }
}

#[test]
fn export_reproduces_the_reference_tree() {
    let rt = runtime();
    for container in fixture_containers() {
        let reference = load_reference(&container);
        let tmp = tempfile::tempdir().expect("tempdir");
        let target = tmp.path().join("tree");
        let opts = ExportOptions::for_current_user();
        let report = rt
            .block_on(export(open_local(&container.join("blobs")), &target, &opts))
            .expect("export runs");
        assert!(report.ok(), "{:?}", report.problems);
        assert_eq!(report.warnings, 0, "{:?}", report.problems);
        assert_eq!(report.stats.files, 1226);
        assert_eq!(report.stats.hardlinks, 3);
        assert_eq!(report.stats.bytes, 34_984_540);

        let local = |p: &[u8]| -> PathBuf {
            let rel = p.strip_prefix(b"/").unwrap_or(p);
            if rel.is_empty() {
                target.clone()
            } else {
                target.join(OsStr::from_bytes(rel))
            }
        };
        // Pass 1: lstat everything before any content is read (reading
        // could touch atimes).
        let seen: Vec<std::fs::Metadata> = reference
            .records
            .iter()
            .map(|(path, _)| {
                std::fs::symlink_metadata(local(path))
                    .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(path)))
            })
            .collect();
        // Pass 2: compare, then read contents.
        let root = is_root_user();
        for ((path, rec), m) in reference.records.iter().zip(&seen) {
            let shown = String::from_utf8_lossy(path).into_owned();
            let int = |k: &str| rec[k].as_u64().unwrap_or_else(|| panic!("{shown}: {k}"));
            let pair = |k: &str| {
                (
                    rec[k][0].as_i64().unwrap_or(-1),
                    rec[k][1].as_i64().unwrap_or(-1),
                )
            };
            let want_mode =
                u32::from_str_radix(rec["mode"].as_str().expect("mode"), 8).expect("octal");
            assert_eq!(m.mode(), want_mode, "{shown}: mode");
            assert_eq!((m.mtime(), m.mtime_nsec()), pair("mtime"), "{shown}: mtime");
            assert_eq!((m.atime(), m.atime_nsec()), pair("atime"), "{shown}: atime");
            if root {
                assert_eq!(u64::from(m.uid()), int("uid"), "{shown}: uid");
                assert_eq!(u64::from(m.gid()), int("gid"), "{shown}: gid");
            }
            let ft = m.file_type();
            let p = local(path);
            match rec["type"].as_str().expect("type") {
                "dir" => {
                    assert!(ft.is_dir(), "{shown}: not a directory");
                    let n = std::fs::read_dir(&p).expect("read_dir").count() as u64;
                    assert_eq!(n, int("entries"), "{shown}: entries");
                }
                "reg" => {
                    assert!(ft.is_file(), "{shown}: not a file");
                    assert_eq!(m.len(), int("size"), "{shown}: size");
                    let names = rec
                        .get("names")
                        .and_then(|n| n.as_array())
                        .map_or(1, Vec::len);
                    assert_eq!(m.nlink(), names as u64, "{shown}: link count");
                    let data = std::fs::read(&p).expect("read file");
                    assert_eq!(
                        data.len() as u64,
                        int("content_len"),
                        "{shown}: content length"
                    );
                    assert_eq!(
                        hex::encode(Sha256::digest(&data)),
                        rec["sha256"].as_str().expect("sha256"),
                        "{shown}: contents"
                    );
                }
                "lnk" => {
                    assert!(ft.is_symlink(), "{shown}: not a symlink");
                    let t = std::fs::read_link(&p).expect("readlink");
                    let want = common::read::unescape(rec["symlink"].as_str().expect("target"));
                    assert_eq!(t.as_os_str().as_bytes(), &want[..], "{shown}: target");
                }
                "fifo" => assert!(ft.is_fifo(), "{shown}: not a fifo"),
                other => panic!("{shown}: unexpected type {other} in the fixture"),
            }
        }
        // Same inode for every name of a hard-link group.
        let ino = |p: &str| {
            std::fs::symlink_metadata(local(p.as_bytes()))
                .expect("lstat")
                .ino()
        };
        assert_eq!(ino("/hardlinks/a/three_1"), ino("/hardlinks/b/three_3"));
        assert_eq!(ino("/hardlinks/a/three_1"), ino("/hardlinks/a/three_2"));
        assert_eq!(ino("/hardlinks/b/two_1"), ino("/hardlinks/b/two_2"));
        assert_ne!(ino("/hardlinks/b/two_1"), ino("/hardlinks/a/three_1"));
        // The all-zero file is stored as holes.
        let sparse = std::fs::symlink_metadata(local(b"/data/sparse_24MiB.bin")).expect("lstat");
        assert!(
            sparse.blocks() * 512 < sparse.len(),
            "zeros were written as data"
        );
        assert_only_reference_paths(
            &target,
            &reference.records.iter().map(|(p, _)| p.clone()).collect(),
        );
    }
}

fn assert_only_reference_paths(target: &Path, want: &std::collections::HashSet<Vec<u8>>) {
    let mut stack = vec![(target.to_path_buf(), b"/".to_vec())];
    while let Some((dir, ns)) = stack.pop() {
        assert!(
            want.contains(&ns),
            "unexpected {}",
            String::from_utf8_lossy(&ns)
        );
        if !std::fs::symlink_metadata(&dir).expect("lstat").is_dir() {
            continue;
        }
        for e in std::fs::read_dir(&dir).expect("read_dir") {
            let e = e.expect("entry");
            let mut child = ns.clone();
            if child != b"/" {
                child.push(b'/');
            }
            child.extend_from_slice(e.file_name().as_bytes());
            stack.push((e.path(), child));
        }
    }
}

#[test]
fn walk_sends_each_directory_before_its_entries_at_any_parallelism() {
    use clfs_fs::clfs::id::ROOT;
    use clfs_fs::read::walk::{walk, Event, WalkOptions};
    use clfs_fs::read::{Container, NsPath, ProblemSink};
    use std::collections::HashSet;
    use std::sync::Arc;

    let rt = runtime();
    let container = &fixture_containers()[0];
    let reference = load_reference(container);
    let want: HashSet<Vec<u8>> = reference.records.iter().map(|(p, _)| p.clone()).collect();
    let narrow = WalkOptions {
        parallel: 1,
        dirs: 1,
        readahead: 1,
        channel: 1,
        // Every queued directory is dropped and read again.
        keep_nodes: 0,
    };
    for opts in [narrow, WalkOptions::with_parallel(64)] {
        let (paths, sink) = rt.block_on(async {
            let c = Arc::new(
                Container::indexed(open_local(&container.join("blobs")))
                    .await
                    .expect("index"),
            );
            let located = c.locate(&ROOT).await.expect("locate").expect("root");
            let root = Arc::new(
                c.fetch_inode(&ROOT, &located.name)
                    .await
                    .expect("root inode"),
            );
            let sink = Arc::new(ProblemSink::default());
            let (tx, mut rx) = tokio::sync::mpsc::channel(opts.channel);
            let w = tokio::spawn(walk(c, sink.clone(), root, NsPath::root(), ROOT, opts, tx));
            let mut seen_dirs: HashSet<Vec<u8>> = HashSet::new();
            let mut paths = Vec::new();
            let mut done = HashSet::new();
            while let Some(ev) = rx.recv().await {
                match ev {
                    Event::Node { path, node, .. } => {
                        let p = path.as_bytes().to_vec();
                        if !path.is_root() {
                            let cut = p.iter().rposition(|&b| b == b'/').expect("slash");
                            let parent = if cut == 0 {
                                b"/".to_vec()
                            } else {
                                p[..cut].to_vec()
                            };
                            assert!(seen_dirs.contains(&parent), "{path} before its directory");
                            assert!(
                                !done.contains(&parent),
                                "{path} after its directory was done"
                            );
                        }
                        if node.is_dir() {
                            seen_dirs.insert(p.clone());
                        }
                        paths.push(p);
                    }
                    Event::DirDone { path, .. } => {
                        done.insert(path.as_bytes().to_vec());
                    }
                    Event::Broken { path, .. } => panic!("{path} broken"),
                }
            }
            let stats = w.await.expect("walk");
            assert_eq!(stats.dirs, 36);
            assert_eq!(done.len(), 36);
            (paths, sink)
        });
        assert_eq!(sink.errors() + sink.warnings(), 0, "{:?}", sink.snapshot());
        assert_eq!(paths.len(), want.len());
        assert_eq!(paths.into_iter().collect::<HashSet<_>>(), want);
    }
}

#[test]
fn forced_export_never_writes_through_a_symlink_in_the_way() {
    let rt = runtime();
    let container = &fixture_containers()[0];
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = tmp.path().join("tree");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::os::unix::fs::symlink(&outside, target.join("data")).expect("symlink");
    std::os::unix::fs::symlink(&outside, target.join("empty.txt")).expect("symlink");
    let mut opts = ExportOptions::for_current_user();
    opts.force = true;
    let report = rt
        .block_on(export(open_local(&container.join("blobs")), &target, &opts))
        .expect("export runs");
    assert_eq!(
        std::fs::read_dir(&outside).expect("read").count(),
        0,
        "wrote outside the target"
    );
    assert!(!report.ok());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.path.as_ref().is_some_and(|x| x.as_bytes() == b"/data")),
        "{:?}",
        report.problems
    );
    // The symlink standing where a file belongs is replaced by the file.
    assert!(std::fs::symlink_metadata(target.join("empty.txt"))
        .expect("lstat")
        .is_file());
    assert!(target.join("names/with space.txt").is_file());
}

#[test]
fn export_makes_device_nodes_as_root_and_skips_them_otherwise() {
    use clfs_fs::clfs::envelope::Compression;
    use clfs_fs::clfs::object::Object;
    use clfs_fs::store::BlobStore;
    use common::read::{inode_at, Overlay};
    use std::sync::Arc;

    // The fixture's fifo turned into the character device 1:3 (its name
    // and filehandle still say fifo: verify would object, export must not).
    let rt = runtime();
    let base = Arc::new(Overlay::load(&fixture_containers()[0].join("blobs")));
    let ov = Arc::new(Overlay::new(base));
    let store: Arc<dyn BlobStore> = ov.clone();
    let n = rt.block_on(inode_at(store.clone(), "/special/fifo"));
    let mut inode = n.inode.clone();
    inode.vattr.mode = 0o020640;
    inode.vattr.ftype = 4;
    inode.vattr.rdev_major = 1;
    inode.vattr.rdev_minor = 3;
    ov.set(
        &n.blob.to_string(),
        Object::Inode(inode)
            .encode_body(Compression::None)
            .expect("encode"),
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = tmp.path().join("tree");
    let report = rt
        .block_on(export(store, &target, &ExportOptions::for_current_user()))
        .expect("export runs");
    let dev = target.join("special/fifo");
    if is_root_user() {
        let m = std::fs::symlink_metadata(&dev).expect("device node created");
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), libc::makedev(1, 3));
        assert_eq!(m.mode(), 0o020640);
        assert_eq!(report.stats.specials, 1);
    } else {
        assert!(std::fs::symlink_metadata(&dev).is_err());
        assert_eq!(report.stats.skipped, 1);
        assert!(report
            .problems
            .iter()
            .any(|p| p.message.contains("needs root")));
    }
}

#[test]
fn indirect_trees_are_followed_in_block_order() {
    use clfs_fs::clfs::envelope::Compression;
    use clfs_fs::clfs::handle::{DataBack, Dirent};
    use clfs_fs::clfs::id::{FilehandleMaker, Ftype, ObjectId, ROOT};
    use clfs_fs::clfs::layout::{self, BlockMapBuilder};
    use clfs_fs::clfs::name::{BlobName, Btype};
    use clfs_fs::clfs::object::{Indirect, Inode, InodeBody, Object};
    use clfs_fs::read::blocks::Blocks;
    use clfs_fs::read::{Container, NsPath, ProblemSink};
    use clfs_fs::store::BlobStore;
    use common::read::{inode_at, Overlay};
    use std::sync::Arc;

    // A file of 1024 + 4096 + 4096 blocks (spec 5.3.3: tree 0 full, tree 1
    // holding one full leaf and the empty leaf of the quirk), added to the
    // root of a fixture. Its segments are empty placeholders: verify runs
    // without reading data, so only their names are checked.
    let rt = runtime();
    let base = Arc::new(Overlay::load(&fixture_containers()[0].join("blobs")));
    let ov = Arc::new(Overlay::new(base));
    let store: Arc<dyn BlobStore> = ov.clone();
    let root = rt.block_on(inode_at(store.clone(), "/"));
    let v = root.inode.vattr.clone();
    let mut maker = FilehandleMaker::new(v.containerid as u32);
    let mut rng = rand::rng();
    let fh = maker.make(&ROOT, Ftype::Reg, 900_000, &mut rng).id();
    let mut counter = 0u64;
    let mut new_id = || {
        counter += 1;
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&counter.to_be_bytes());
        b[8] = 0xee;
        ObjectId::from_16(b)
    };
    let ctime = v.ctime.sec;
    let put_indirect = |ib: &layout::IndirectBlock| {
        let obj = Object::Indirect(Indirect {
            pointers: ib.pointers.clone(),
            databack: DataBack {
                ctime,
                offset: ib.databack_offset(),
                owner: fh,
            },
        });
        ov.set(
            &BlobName::v2(ib.id, Btype::Indirect, &fh, 9).to_string(),
            obj.encode_body(Compression::Lz4).expect("encode"),
        );
    };
    let mut b = BlockMapBuilder::new(fh);
    let mut segments = Vec::new();
    let blocks = 1024 + 4096 + 4096 - 1;
    for _ in 0..blocks {
        let s = new_id();
        segments.push(s);
        ov.set(
            &BlobName::v2(s, Btype::Segment, &fh, 9).to_string(),
            Vec::new(),
        );
        for ib in b.push(s, &mut new_id).expect("fits") {
            put_indirect(&ib);
        }
    }
    let (tail, direct, roots) = b.finish(&mut new_id);
    assert!(
        tail.iter().any(|ib| ib.pointers.is_empty()),
        "the quirk's empty leaf"
    );
    for ib in &tail {
        put_indirect(ib);
    }
    let length = 16_384 + blocks as u64 * 8_388_608;
    let mut fv = v.clone();
    fv.mode = 0o100644;
    fv.ftype = 1;
    fv.length = length;
    fv.used = length;
    fv.nlink = 1;
    let file = Object::Inode(Inode {
        vattr: fv,
        bmap: layout::bmap(false, direct, roots),
        back: Some(vec![ROOT]),
        name: b"huge".to_vec(),
        body: InodeBody::Data(vec![0u8; 16_384]),
    });
    ov.set(
        &BlobName::v2(fh, Btype::Reg, &ROOT, 9).to_string(),
        file.encode_body(Compression::Lz4).expect("encode"),
    );
    let mut r = root.inode.clone();
    if let InodeBody::Dir { dirents, .. } = &mut r.body {
        dirents.push(Dirent {
            name: b"huge".to_vec(),
            id: fh,
        });
        let payload: usize = dirents.iter().map(Dirent::encoded_len).sum();
        r.vattr.length = 4 + payload as u64;
        r.vattr.used = r.vattr.length;
    }
    ov.set(
        &root.blob.to_string(),
        Object::Inode(r)
            .encode_body(Compression::Lz4)
            .expect("encode"),
    );

    // The block enumerator yields the segments in order.
    let huge = rt.block_on(inode_at(store.clone(), "/huge"));
    let order = rt.block_on(async {
        let c = Arc::new(Container::indexed(store.clone()).await.expect("index"));
        let sink = Arc::new(ProblemSink::default());
        let bm = &huge.inode.bmap;
        let mut blocks = Blocks::new(
            c,
            sink.clone(),
            NsPath::root().join(b"huge"),
            fh,
            ctime,
            bm.direct.clone(),
            bm.indirect_roots.clone(),
        );
        let mut got = Vec::new();
        while let Some(b) = blocks.next().await {
            assert_eq!(b.index, got.len() as u64 + 1);
            got.push(b.id);
        }
        assert_eq!(sink.errors(), 0, "{:?}", sink.snapshot());
        got
    });
    assert_eq!(order, segments);

    // Verify (names only) accepts it all: every INDIR block is reached.
    let opts = VerifyOptions {
        read_data: false,
        ..VerifyOptions::default()
    };
    let report = rt.block_on(verify(store, &opts)).expect("verify runs");
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.warnings, 0, "{:?}", report.problems);
    assert_eq!(report.stats.data_segments, 8 + blocks as u64);
}
