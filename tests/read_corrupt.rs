//! Ten corrupted copies of a reference container, each broken a different
//! way: verify reports each as an error naming the blob, and nothing
//! (verify, export, ls, the canonical namespace) panics on any of them.
//!
//! The copies are [`Overlay`]s over the read-only fixture: only the
//! changed blobs live in memory.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use clfs_fs::clfs::bytes::ByteWriter;
use clfs_fs::clfs::envelope::{self, Compression, FramePolicy};
use clfs_fs::clfs::handle::{split_handles, Dirent, Handle, HandleType};
use clfs_fs::clfs::id::{ObjectId, INODE_INPROGRESS};
use clfs_fs::clfs::name::{BlobName, Btype};
use clfs_fs::clfs::object::{Inode, InodeBody, Object};
use clfs_fs::read::export::{export, ExportOptions};
use clfs_fs::read::ls::{Lister, LsOptions};
use clfs_fs::read::verify::{canonical_namespace, verify, VerifyOptions, VerifyReport};
use clfs_fs::read::{Check, Container, InodeNode, NsPath, ProblemSink, Severity};
use clfs_fs::store::{self, BlobStore};

use common::fixtures::fixtures_dir;
use common::read::{inode_at, runtime, Overlay};

/// The LZ4 fixture's blobs (about 1 MB), read once.
fn fixture() -> Arc<BTreeMap<String, Bytes>> {
    static BLOBS: OnceLock<Arc<BTreeMap<String, Bytes>>> = OnceLock::new();
    BLOBS
        .get_or_init(|| Arc::new(Overlay::load(&fixtures_dir().join("small-lz4/blobs"))))
        .clone()
}

/// One corrupted container.
struct Case {
    rt: tokio::runtime::Runtime,
    ov: Arc<Overlay>,
}

impl Case {
    /// The LZ4 fixture without its two big files (33 MiB of the 34), so
    /// that reading everything stays quick in debug builds: their entries
    /// are dropped from `/data` (whose size is fixed to match) and their
    /// blobs deleted. The control test checks that the result is valid.
    fn new() -> Self {
        let case = Case {
            rt: runtime(),
            ov: Arc::new(Overlay::new(fixture())),
        };
        let drop = [&b"text_9MiB_plus_5.txt"[..], &b"sparse_24MiB.bin"[..]];
        for name in drop {
            let n = case.node(&format!("/data/{}", String::from_utf8_lossy(name)));
            for seg in &n.inode.bmap.direct[1..] {
                case.ov
                    .remove(&BlobName::v2(*seg, Btype::Segment, &n.id, 9).to_string());
            }
            case.ov.remove(&n.blob.to_string());
        }
        case.edit_inode("/data", |i| {
            if let InodeBody::Dir { dirents, .. } = &mut i.body {
                dirents.retain(|d| !drop.contains(&d.name.as_slice()));
                let payload: usize = dirents.iter().map(Dirent::encoded_len).sum();
                i.vattr.length = 4 + payload as u64;
                i.vattr.used = i.vattr.length;
            }
        });
        case
    }

    fn store(&self) -> Arc<dyn BlobStore> {
        self.ov.clone()
    }

    fn node(&self, path: &str) -> Arc<InodeNode> {
        self.rt.block_on(inode_at(self.store(), path))
    }

    fn read(&self, name: &BlobName) -> Vec<u8> {
        let n = store::BlobName::new(name.to_string()).expect("name");
        self.rt
            .block_on(self.ov.get(&n))
            .expect("blob exists")
            .to_vec()
    }

    /// The uncompressed handle stream of a blob.
    fn stream(&self, name: &BlobName) -> Vec<u8> {
        envelope::open(&self.read(name), FramePolicy::Clfs)
            .expect("fixture blob opens")
            .stream
    }

    fn rename(&self, from: &BlobName, to: &BlobName) {
        let body = self.read(from);
        self.ov.remove(&from.to_string());
        self.ov.set(&to.to_string(), body);
    }

    /// Re-encodes an inode (uncompressed) with `f` applied; returns its blob.
    fn edit_inode(&self, path: &str, f: impl FnOnce(&mut Inode)) -> String {
        let n = self.node(path);
        let mut inode = n.inode.clone();
        f(&mut inode);
        let body = Object::Inode(inode)
            .encode_body(Compression::None)
            .expect("encode");
        let name = n.blob.to_string();
        self.ov.set(&name, body);
        name
    }

    fn verify(&self) -> VerifyReport {
        self.rt
            .block_on(verify(self.store(), &VerifyOptions::default()))
            .expect("verify runs")
    }

    /// Verify fails with an error of `check` naming `blob`, and the other
    /// readers survive the container.
    fn assert_reported(&self, check: Check, blob: &str) {
        let report = self.verify();
        assert!(!report.ok(), "no error reported for {blob}");
        let all: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        let hit = report
            .problems
            .iter()
            .find(|p| {
                p.severity == Severity::Error && p.check == check && p.blob.as_deref() == Some(blob)
            })
            .unwrap_or_else(|| panic!("no {check:?} error naming {blob}; got {all:#?}"));
        assert!(
            hit.to_string().contains(blob),
            "the message does not name the blob: {hit}"
        );
        self.survive_other_readers();
    }

    fn survive_other_readers(&self) {
        // Memory-backed when available: export creates ~1 300 files.
        let shm = std::path::Path::new("/dev/shm");
        let out = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("tempdir");
        let mut opts = ExportOptions::for_current_user();
        opts.unfinished = true;
        // Export reports the problems it meets (the tmp root is none for
        // it with `unfinished`); it must not panic.
        self.rt
            .block_on(export(self.store(), &out.path().join("x"), &opts))
            .expect("export runs");
        let (_ns, report) = self
            .rt
            .block_on(canonical_namespace(self.store(), 8))
            .expect("canonical runs");
        assert!(!report.ok());
        self.rt.block_on(async {
            let c = Arc::new(Container::indexed(self.store()).await.expect("listing"));
            let lopts = LsOptions {
                long: true,
                recursive: true,
                unfinished: true,
                parallel: 8,
                ..LsOptions::default()
            };
            let lister = Lister::open(c, Arc::new(ProblemSink::default()), lopts)
                .await
                .expect("root readable");
            let mut sink = Vec::new();
            // Errors are fine here; panics are not.
            let _ = lister.list(&NsPath::root(), &mut sink).await;
        });
    }
}

fn raw_body(stream: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 4];
    b.extend_from_slice(stream);
    b
}

#[test]
fn control_the_slimmed_copy_and_an_uncompressed_rewrite_are_valid() {
    let case = Case::new();
    case.edit_inode("/sizes/one_byte.bin", |_| {});
    let report = case.verify();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.warnings, 0, "{:?}", report.problems);
    assert_eq!(report.stats.walk.files, 1227);
}

#[test]
fn flipped_header_byte() {
    let case = Case::new();
    let n = case.node("/sizes/one_byte.bin");
    let mut body = raw_body(&case.stream(&n.blob));
    body[4] ^= 0xff; // first byte of the first handle's magic
    case.ov.set(&n.blob.to_string(), body);
    case.assert_reported(Check::Decode, &n.blob.to_string());
}

#[test]
fn truncated_blob() {
    let case = Case::new();
    let n = case.node("/data/random_300KiB.bin");
    let seg = BlobName::v2(n.inode.bmap.direct[1], Btype::Segment, &n.id, 9);
    let body = case.read(&seg);
    case.ov
        .set(&seg.to_string(), body[..body.len() / 2].to_vec());
    case.assert_reported(Check::Decode, &seg.to_string());
}

#[test]
fn missing_data_segment() {
    let case = Case::new();
    let n = case.node("/data/random_300KiB.bin");
    let seg = BlobName::v2(n.inode.bmap.direct[1], Btype::Segment, &n.id, 9);
    case.ov.remove(&seg.to_string());
    case.assert_reported(Check::MissingBlock, &seg.to_string());
}

#[test]
fn wrong_owner_hash_in_a_name() {
    let case = Case::new();
    let n = case.node("/empty.txt");
    let wrong = BlobName::v2(n.id, Btype::Reg, &INODE_INPROGRESS, 9);
    case.rename(&n.blob, &wrong);
    case.assert_reported(Check::Name, &wrong.to_string());
}

#[test]
fn only_the_tmp_root() {
    let case = Case::new();
    let root = case.node("/");
    let tmp_name = BlobName::tmp_root();
    case.rename(&root.blob, &tmp_name);
    case.assert_reported(Check::Root, &tmp_name.to_string());
    let report = case.verify();
    assert!(!report.finished);
    assert!(report
        .problems
        .iter()
        .any(|p| p.message.contains("unfinished")));
    // Everything else is still checked: the tmp root is the only error.
    assert_eq!(report.errors, 1, "{:?}", report.problems);
}

#[test]
fn nlink_mismatch() {
    let case = Case::new();
    let name = case.edit_inode("/sizes/16384.bin", |i| i.vattr.nlink = 2);
    case.assert_reported(Check::Nlink, &name);
}

#[test]
fn lz4_frame_with_a_stored_block() {
    let case = Case::new();
    let n = case.node("/special/fifo");
    let stream = case.stream(&n.blob);
    let mut body = vec![0, 0, 1, 0];
    body.extend_from_slice(&envelope::LZ4_FRAME_HEADER);
    body.extend_from_slice(
        &(u32::try_from(stream.len()).expect("small") | 0x8000_0000).to_le_bytes(),
    );
    body.extend_from_slice(&stream);
    body.extend_from_slice(&[0, 0, 0, 0]);
    case.ov.set(&n.blob.to_string(), body);
    case.assert_reported(Check::Decode, &n.blob.to_string());
}

#[test]
fn non_zero_padding() {
    let case = Case::new();
    let n = case.node("/sizes/16383.bin");
    let stream = case.stream(&n.blob);
    let pad_at = {
        let raws = split_handles(&stream).expect("split");
        let bmap = raws
            .iter()
            .find(|r| r.code == HandleType::Bmap as u32)
            .expect("BMAP");
        let end = bmap.payload_offset() + bmap.payload.len();
        assert!(end % 8 != 0, "the BMAP of a small file is padded");
        end
    };
    let mut body = raw_body(&stream);
    body[4 + pad_at] = 0x5a;
    case.ov.set(&n.blob.to_string(), body);
    case.assert_reported(Check::Decode, &n.blob.to_string());
}

#[test]
fn an_extra_handle() {
    let case = Case::new();
    let n = case.node("/links/relative");
    let mut w = ByteWriter::new(raw_body(&case.stream(&n.blob)));
    Handle::Name(b"extra".to_vec())
        .encode(&mut w)
        .expect("encode");
    case.ov.set(&n.blob.to_string(), w.buf);
    case.assert_reported(Check::Decode, &n.blob.to_string());
}

#[test]
fn a_directory_entry_pointing_at_no_inode() {
    let case = Case::new();
    let mut ghost = [0u8; 24];
    ghost[..4].copy_from_slice(&0x468A_CF11u32.to_le_bytes());
    ghost[6] = 2; // a regular file
    ghost[8..16].copy_from_slice(&999_999u64.to_le_bytes());
    ghost[16..].copy_from_slice(&0x1234_5678_9abc_def0u64.to_le_bytes());
    let name = case.edit_inode("/empty_dir", |i| {
        if let InodeBody::Dir { dirents, .. } = &mut i.body {
            dirents.push(Dirent {
                name: b"ghost".to_vec(),
                id: ObjectId::from_24(ghost),
            });
        }
    });
    case.assert_reported(Check::MissingInode, &name);
    // The canonical namespace shows the entry as missing.
    let (ns, _) = case
        .rt
        .block_on(canonical_namespace(case.store(), 8))
        .expect("canonical runs");
    let rec = ns
        .get(b"/empty_dir/ghost")
        .expect("record of the dangling entry");
    assert_eq!(rec.to_text(), r#"{"type":"<missing>"}"#);
}
