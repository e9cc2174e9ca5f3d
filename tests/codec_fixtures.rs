//! Every blob of every reference container decodes with zero errors and
//! re-encodes (uncompressed) to the identical handle stream.

mod common;

use clfs_fs::clfs::envelope::{self, Compression, FramePolicy};
use clfs_fs::clfs::name::{BlobName, Btype};
use clfs_fs::clfs::object::{Object, ObjectKind};

use common::fixtures::fixture_containers;

#[test]
fn every_fixture_blob_decodes_and_reencodes_identically() {
    for container in fixture_containers() {
        let mut objects = 0;
        let mut logs = 0;
        let mut compressed = 0;
        for entry in std::fs::read_dir(container.join("blobs")).expect("blobs folder") {
            let path = entry.expect("dir entry").path();
            let file = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("ASCII name")
                .to_string();
            if file.ends_with(".txt") {
                logs += 1;
                assert!(
                    BlobName::parse(&file).is_err(),
                    "{file} parses as an object name"
                );
                continue;
            }
            let name = BlobName::parse(&file).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(name.to_string(), file, "name does not rebuild");
            let body = std::fs::read(&path).expect("blob readable");
            let opened = envelope::open(&body, FramePolicy::Clfs)
                .unwrap_or_else(|e| panic!("{}", e.in_blob(&file)));
            if opened.compression == Compression::Lz4 {
                compressed += 1;
            }
            let obj =
                Object::decode(&opened.stream).unwrap_or_else(|e| panic!("{}", e.in_blob(&file)));
            let again = obj.encode_stream().expect("re-encodes");
            assert!(again == opened.stream, "{file}: re-encoded stream differs");
            // The kind of object agrees with the name.
            let kind = obj.kind();
            match name.btype() {
                None => assert_eq!(kind, ObjectKind::Bucket, "{file}"),
                Some(Btype::Segment) => assert!(
                    matches!(kind, ObjectKind::DataSegment | ObjectKind::DirSegment),
                    "{file}: {kind:?}"
                ),
                Some(Btype::Indirect) => assert_eq!(kind, ObjectKind::Indirect, "{file}"),
                Some(b) => {
                    let Object::Inode(i) = &obj else {
                        panic!("{file}: inode name on a {kind:?}")
                    };
                    assert_eq!(i.btype(), Some(b), "{file}");
                    assert_eq!(i.own_id(), Some(name.id()), "{file}");
                }
            }
            objects += 1;
        }
        assert!(
            objects > 1000,
            "{}: only {objects} objects",
            container.display()
        );
        assert!(logs > 0, "{}: no log blobs", container.display());
        let name = container
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.contains("lz4") {
            assert!(compressed > 0, "{name}: no compressed blob");
        } else if name.contains("disabled") {
            assert_eq!(compressed, 0, "{name}: compressed blobs in a DISABLED load");
        }
    }
}
