//! Property tests: every encode/decode pair of the codec round-trips.

use proptest::collection::vec;
use proptest::prelude::*;

use clfs_fs::clfs::envelope::{self, Compression, FramePolicy};
use clfs_fs::clfs::handle::{decode_stream, encode_stream, Bmap, DataBack, Dirent, Handle};
use clfs_fs::clfs::id::ObjectId;
use clfs_fs::clfs::name::{BlobName, Btype};
use clfs_fs::clfs::object::{
    encode_data_segment, Bucket, DataSegment, DirSegment, Indirect, Inode, InodeBody, Object,
};
use clfs_fs::clfs::vattr::{ClfsTime, Vattr};

fn any_id() -> impl Strategy<Value = ObjectId> {
    prop_oneof![
        any::<[u8; 16]>().prop_map(ObjectId::from_16),
        any::<[u8; 24]>().prop_map(ObjectId::from_24),
    ]
}

fn any_time() -> impl Strategy<Value = ClfsTime> {
    (any::<u32>(), any::<u32>()).prop_map(|(sec, nsec)| ClfsTime { sec, nsec })
}

prop_compose! {
    fn any_vattr_with(ftype: u8)(
        mode in any::<u16>(), spare in any::<u8>(), flags in any::<u32>(),
        uid in any::<u32>(), gid in any::<u32>(), length in any::<u64>(),
        dtime in any_time(), mtime in any_time(), ctime in any_time(), atime in any_time(),
        used in any::<u64>(), fsid in any::<u64>(), fileid in any::<u64>(),
        rdev_major in any::<u32>(), rdev_minor in any::<u32>(), nlink in any::<u32>(),
        ha_version in any::<u32>(), containerid in any::<u64>(),
    ) -> Vattr {
        Vattr { mode, ftype, spare, flags, uid, gid, length, dtime, mtime, ctime, atime,
                used, fsid, fileid, rdev_major, rdev_minor, nlink, ha_version, containerid }
    }
}

fn any_bmap() -> impl Strategy<Value = Bmap> {
    (
        any::<u32>(),
        any::<u32>(),
        vec(any_id(), 1..40),
        vec(any_id(), 0..6),
    )
        .prop_map(
            |(first_segment_bytes, other_segment_bytes, direct, indirect_roots)| Bmap {
                first_segment_bytes,
                other_segment_bytes,
                direct,
                indirect_roots,
            },
        )
}

fn any_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn any_dirent() -> impl Strategy<Value = Dirent> {
    (any_bytes(300), any_id()).prop_map(|(name, id)| Dirent { name, id })
}

fn any_databack() -> impl Strategy<Value = DataBack> {
    (any::<u32>(), any::<u64>(), any_id()).prop_map(|(ctime, offset, owner)| DataBack {
        ctime,
        offset,
        owner,
    })
}

fn any_attrs() -> impl Strategy<Value = Vec<(String, String)>> {
    vec((".{0,40}", ".{0,60}"), 0..8)
}

fn any_handle() -> impl Strategy<Value = Handle> {
    prop_oneof![
        any_bytes(3000).prop_map(Handle::Data),
        vec(any_dirent(), 0..20).prop_map(Handle::Dirents),
        (1u8..=7)
            .prop_flat_map(any_vattr_with)
            .prop_map(Handle::Vattr),
        any_bmap().prop_map(Handle::Bmap),
        vec(any_id(), 0..50).prop_map(Handle::Indir),
        vec(any_id(), 0..50).prop_map(Handle::Back),
        any_databack().prop_map(Handle::DataBack),
        any_attrs().prop_map(Handle::ExtAttrs),
        any_bytes(300).prop_map(Handle::Name),
        (
            prop_oneof![
                Just(6u32),
                Just(8),
                Just(11),
                Just(13),
                Just(14),
                Just(15),
                17u32..1000
            ],
            any_bytes(100)
        )
            .prop_map(|(code, payload)| Handle::Unknown { code, payload }),
    ]
}

fn any_inode() -> impl Strategy<Value = Inode> {
    (1u8..=7)
        .prop_flat_map(|ftype| {
            let body = match ftype {
                2 => (vec(any_dirent(), 0..30), proptest::option::of(any_attrs()))
                    .prop_map(|(dirents, root_attrs)| InodeBody::Dir {
                        dirents,
                        root_attrs,
                    })
                    .boxed(),
                1 | 5 => any_bytes(20_000).prop_map(InodeBody::Data).boxed(),
                _ => Just(InodeBody::Special).boxed(),
            };
            let back = if ftype == 2 {
                Just(None).boxed()
            } else {
                vec(any_id(), 0..10).prop_map(Some).boxed()
            };
            (
                any_vattr_with(ftype),
                any_bmap(),
                back,
                any_bytes(300),
                body,
            )
        })
        .prop_map(|(vattr, bmap, back, name, body)| Inode {
            vattr,
            bmap,
            back,
            name,
            body,
        })
}

fn any_object() -> impl Strategy<Value = Object> {
    prop_oneof![
        any_attrs().prop_map(|attrs| Object::Bucket(Bucket { attrs })),
        any_inode().prop_map(Object::Inode),
        (any_bytes(70_000), any_databack())
            .prop_map(|(data, databack)| Object::DataSegment(DataSegment { data, databack })),
        (vec(any_dirent(), 0..40), any_databack())
            .prop_map(|(dirents, databack)| Object::DirSegment(DirSegment { dirents, databack })),
        (vec(any_id(), 0..100), any_databack())
            .prop_map(|(pointers, databack)| Object::Indirect(Indirect { pointers, databack })),
    ]
}

fn any_btype() -> impl Strategy<Value = Btype> {
    (1u16..=12).prop_map(|c| Btype::from_code(c).unwrap_or(Btype::Reg))
}

fn any_name() -> impl Strategy<Value = BlobName> {
    prop_oneof![
        (any_id(), 0u64..=99_999_999_999, any::<u32>()).prop_map(|(id, version, snapshot)| {
            BlobName::V1 {
                id,
                version,
                snapshot,
            }
        }),
        (
            any::<bool>(),
            any_id(),
            any_btype(),
            any::<u64>(),
            0u64..=99_999_999_999,
            any::<u32>()
        )
            .prop_map(
                |(tmp, id, btype, owner_hash, version, snapshot)| BlobName::V2 {
                    tmp,
                    id,
                    btype,
                    owner_hash,
                    version,
                    snapshot,
                }
            ),
    ]
}

/// Mostly-compressible data of any length (runs of repeated bytes mixed
/// with arbitrary ones), so both sides of the LZ4 fall-back are exercised.
fn any_stream_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any_bytes(2000),
        vec((any::<u8>(), 1usize..2000), 0..400).prop_map(|runs| runs
            .into_iter()
            .flat_map(|(b, n)| std::iter::repeat_n(b, n))
            .collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn each_handle_round_trips(h in any_handle()) {
        let stream = encode_stream(std::slice::from_ref(&h)).unwrap();
        prop_assert_eq!(stream.len() % 8, 0);
        prop_assert_eq!(decode_stream(&stream).unwrap(), vec![h]);
    }

    #[test]
    fn handle_sequences_round_trip(hs in vec(any_handle(), 0..8)) {
        let stream = encode_stream(&hs).unwrap();
        prop_assert_eq!(decode_stream(&stream).unwrap(), hs);
    }

    #[test]
    fn objects_round_trip(obj in any_object(), lz4 in any::<bool>()) {
        let stream = obj.encode_stream().unwrap();
        prop_assert_eq!(&Object::decode(&stream).unwrap(), &obj);
        prop_assert_eq!(&Object::decode_owned(stream.clone()).unwrap(), &obj);
        let c = if lz4 { Compression::Lz4 } else { Compression::None };
        let body = obj.encode_body(c).unwrap();
        prop_assert_eq!(Object::decode_body(&body).unwrap(), obj);
    }

    #[test]
    fn data_segment_from_parts_equals_the_joined_stream(
        runs in vec((any::<u8>(), 1usize..40_000), 0..60),
        noise in vec((any::<usize>(), any::<u8>()), 0..200),
        databack in any_databack(),
        lz4 in any::<bool>(),
    ) {
        // Up to ~2.4 MB: several 256 KiB pieces, each straddling boundary
        // placed anywhere, compressible or not in places.
        let mut data: Vec<u8> = runs.into_iter().flat_map(|(b, n)| std::iter::repeat_n(b, n)).collect();
        if !data.is_empty() {
            let n = data.len();
            for (at, b) in noise {
                data[at % n] = b;
            }
        }
        let c = if lz4 { Compression::Lz4 } else { Compression::None };
        let parts = encode_data_segment(&data, &databack, c).unwrap();
        let joined = Object::DataSegment(DataSegment { data, databack }).encode_body(c).unwrap();
        prop_assert!(parts == joined, "bodies differ ({} and {} bytes)", parts.len(), joined.len());
    }

    #[test]
    fn names_round_trip(name in any_name()) {
        let text = name.to_string();
        prop_assert_eq!(BlobName::parse(&text).unwrap(), name);
    }

    #[test]
    fn envelope_round_trips(data in any_stream_bytes(), lz4 in any::<bool>()) {
        let c = if lz4 { Compression::Lz4 } else { Compression::None };
        let body = envelope::seal(&data, c).unwrap();
        let opened = envelope::open(&body, FramePolicy::Clfs).unwrap();
        prop_assert!(body.len() <= data.len() + 4, "sealed body longer than raw");
        if opened.compression == Compression::Lz4 {
            prop_assert!(lz4);
            let f = opened.frame.clone().unwrap();
            prop_assert_eq!(f.stored_blocks, 0);
            prop_assert!(f.is_clfs_frame());
        }
        prop_assert_eq!(opened.stream, data);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(body in any_bytes(600)) {
        let _ = Object::decode_body(&body);
        let _ = Object::decode(&body);
        let _ = decode_stream(&body);
    }

    #[test]
    fn decoding_mutated_objects_never_panics(obj in any_object(), flips in vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
        let mut stream = obj.encode_stream().unwrap();
        for (at, x) in flips {
            if !stream.is_empty() {
                let i = at % stream.len();
                stream[i] ^= x;
            }
        }
        // Taking the stream must decide exactly as borrowing it does.
        prop_assert_eq!(Object::decode_owned(stream.clone()), Object::decode(&stream));
        let cut = cut % (stream.len() + 1);
        prop_assert_eq!(
            Object::decode_owned(stream[..cut].to_vec()),
            Object::decode(&stream[..cut])
        );
    }
}
