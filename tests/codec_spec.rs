//! Every worked example of clfs-format.md §6 reproduced byte for byte, and
//! decoded back to the same object.

use clfs_fs::clfs::envelope::{self, Compression, FramePolicy};
use clfs_fs::clfs::handle::{DataBack, Dirent};
use clfs_fs::clfs::id::{ObjectId, ROOT, ZERO_ROOT};
use clfs_fs::clfs::layout::{self, pack_dirents};
use clfs_fs::clfs::name::{BlobName, Btype};
use clfs_fs::clfs::object::{Bucket, DataSegment, DirSegment, Indirect, Inode, InodeBody, Object};
use clfs_fs::clfs::vattr::{ClfsTime, Vattr};

/// Spec §6.1, 392 bytes.
const EX_6_1: &str = concat!(
    "05600103800000006c000000040000000000000068000000a481010000000000",
    "e8030000640000000500000000000000000000000000000000105e5fcccc5b07",
    "01105e5f0065cd1d02105e5f80b2e60e05000000000000000d0c0b0a00000000",
    "40e2010000000000000000000000000001000000000000007856341200000000",
    "0560010388000000720000000500000000000000004000000000800001000000",
    "180011cf8a4601010200ea0300000000000074a9bef499bbf4dc040000001000",
    "0000000000000000000000000000000010000000000000000000000000000000",
    "0000100000000000000000000000000000000000100000000000000000000000",
    "000000000000000005600103380000001e000000090000000000000001000000",
    "180011cf8a4600010100e903000000000000f6b165224a58b791000000000000",
    "05600103280000000d00000010000000000000000900000068656c6c6f2e7478",
    "7400000000000000056001032000000009000000020000000000000005000000",
    "68656c6c6f000000",
);

/// Spec §6.2, 552 bytes.
const EX_6_2: &str = concat!(
    "05600103800000006c000000040000000000000068000000ed41020000000000",
    "00000000000000005200000000000000000000000000000000105e5f00000000",
    "00105e5f0000000000105e5f0000000052000000000000000d0c0b0a00000000",
    "0200000000000000000000000000000003000000000000007856341200000000",
    "05600103800000006a0000000500000000000000004000000000040001000000",
    "1000000000000000000000000000000000640400000010000000000000000000",
    "0000000000000000100000000000000000000000000000000000100000000000",
    "0000000000000000000000001000000000000000000000000000000000000000",
    "0560010320000000070000001000000000000000030000007372630000000000",
    "05600103680000004e0000000300000000000000010000002e10000000000000",
    "0000000000000000000064020000002e2e100000000000000000000000000000",
    "0000640100000064180011cf8a4600010100e903000000000000f6b165224a58",
    "b79100000000000005600103a0000000860000000c0000000000000003000000",
    "10000000636f6e7461696e6572696445706f63680100000032080000006d6173",
    "73555549442400000062383362353537662d633031302d343230392d39313334",
    "2d636261303533393338326335090000007769706545706f6368240000003937",
    "6262623334652d623530362d346463362d623035652d62646132626464343466",
    "3863000000000000",
);

/// Spec §6.3, 408 bytes.
const EX_6_3: &str = concat!(
    "05600103800000006c000000040000000000000068000000ed41020000000000",
    "00000000000000005a00000000000000000000000000000000105e5f00000000",
    "00105e5f0000000000105e5f000000005a000000000000000d0c0b0a00000000",
    "4e00000000000000000000000000000002000000000000007856341200000000",
    "0560010388000000720000000500000000000000004000000000040001000000",
    "180011cf8a4600010100e903000000000000f6b165224a58b791040000001000",
    "0000000000000000000000000000000010000000000000000000000000000000",
    "0000100000000000000000000000000000000000100000000000000000000000",
    "0000000000000000056001032000000005000000100000000000000001000000",
    "6400000000000000056001037000000056000000030000000000000001000000",
    "2e180011cf8a4600010100e903000000000000f6b165224a58b791020000002e",
    "2e1000000000000000000000000000000000640100000070180011cf8a460101",
    "0700eb03000000000000fe3feb3c9250b797000000000000",
);

/// Spec §6.4, 352 bytes.
const EX_6_4: &str = concat!(
    "05600103800000006c000000040000000000000068000000a411070000000000",
    "00000000000000000000000000000000000000000000000000105e5f00000000",
    "00105e5f0000000000105e5f0000000000000000000000000d0c0b0a00000000",
    "4d00000000000000000000000000000001000000000000007856341200000000",
    "0560010388000000720000000500000000000000004000000000800001000000",
    "180011cf8a4601010700eb03000000000000fe3feb3c9250b797040000001000",
    "0000000000000000000000000000000010000000000000000000000000000000",
    "0000100000000000000000000000000000000000100000000000000000000000",
    "000000000000000005600103380000001e000000090000000000000001000000",
    "180011cf8a4600010100e903000000000000f6b165224a58b791000000000000",
    "0560010320000000050000001000000000000000010000007000000000000000",
);

/// Spec §6.5, 96 bytes.
const EX_6_5: &str = concat!(
    "05600103200000000c0000000200000000000000080000004142434445464748",
    "0560010340000000260000000a0000000000000001105e5f0040000000000000",
    "180011cf8a4601010200ea0300000000000074a9bef499bbf4dc000000000000",
);

/// Spec §6.6, 136 bytes.
const EX_6_6: &str = concat!(
    "05600103380000001f00000003000000000000000100000078180011cf8a4601",
    "010200ea0300000000000074a9bef499bbf4dc00000000000560010318000000",
    "0400000002000000000000000000000005600103380000001e0000000a000000",
    "0000000000105e5f004000000000000010000000000000000000000000000000",
    "0064000000000000",
);

/// Spec §6.7, 128 bytes.
const EX_6_7: &str = concat!(
    "05600103400000002800000007000000000000000200000010000f1e2d3c4b5a",
    "49688776a5b4c3d2e1f010000f1e2d3c4b5a49688776a5b4c3d2e1f000000000",
    "0560010340000000260000000a0000000000000001105e5f0100010000000000",
    "180011cf8a4601010200ea0300000000000074a9bef499bbf4dc000000000000",
);

/// Spec §6.8, 168 bytes.
const EX_6_8: &str = concat!(
    "05600103a80000008e0000000c0000000000000004000000180000006275636b",
    "657443757272656e744e616d6556657273696f6e010000003211000000627563",
    "6b65744e616d6556657273696f6e0100000032100000006275636b65744f626a",
    "56657273696f6e01000000320a0000006275636b657455554944240000003031",
    "3233343536372d383961622d346364652d386630312d32333435363738396162",
    "6364000000000000",
);

const D: &str = "11cf8a4600010100e903000000000000f6b165224a58b791";
const HELLO: &str = "11cf8a4601010200ea0300000000000074a9bef499bbf4dc";
const P: &str = "11cf8a4601010700eb03000000000000fe3feb3c9250b797";
const UUID: &str = "0f1e2d3c4b5a49688776a5b4c3d2e1f0";
const CONTAINERID: u32 = 0x1234_5678;
const FSID: u64 = 0x0A0B_0C0D;

fn id(h: &str) -> ObjectId {
    ObjectId::from_hex(h).expect("test id is hex")
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("example is hex")
}

fn t(sec: i64, nsec: u32) -> ClfsTime {
    ClfsTime::from_stat(sec, nsec).expect("time in range")
}

fn base_vattr(mode: u16, ftype: u8, fileid: u64, length: u64, nlink: u32) -> Vattr {
    let t0 = t(1_600_000_000, 0);
    Vattr {
        mode,
        ftype,
        length,
        used: length,
        mtime: t0,
        ctime: t0,
        atime: t0,
        fsid: FSID,
        fileid,
        nlink,
        containerid: u64::from(CONTAINERID),
        ..Vattr::default()
    }
}

fn dirent(name: &str, h: ObjectId) -> Dirent {
    Dirent {
        name: name.as_bytes().to_vec(),
        id: h,
    }
}

/// Encodes `obj` uncompressed, compares with the example, and checks that
/// decoding the example gives `obj` back.
fn check(obj: &Object, example: &str) {
    let want = unhex(example);
    let got = obj.encode_stream().expect("encodes");
    assert_eq!(hex::encode(&got), hex::encode(&want));
    assert_eq!(&Object::decode(&want).expect("decodes"), obj);
    let body = obj.encode_body(Compression::None).expect("encodes");
    assert_eq!(&body[..4], &[0, 0, 0, 0]);
    assert_eq!(&body[4..], &want[..]);
}

fn hello_inode() -> Object {
    let mut v = base_vattr(0o100644, 1, 123_456, 5, 1);
    v.uid = 1000;
    v.gid = 100;
    v.mtime = t(1_600_000_000, 123_456_789);
    v.ctime = t(1_600_000_001, 500_000_000);
    v.atime = t(1_600_000_002, 250_000_000);
    Object::Inode(Inode {
        vattr: v,
        bmap: layout::bmap(false, vec![id(HELLO)], [ZERO_ROOT; 4]),
        back: Some(vec![id(D)]),
        name: b"hello.txt".to_vec(),
        body: InodeBody::Data(b"hello".to_vec()),
    })
}

#[test]
fn example_6_1_regular_file_inode() {
    let obj = hello_inode();
    check(&obj, EX_6_1);
    assert_eq!(unhex(EX_6_1).len(), 392);
    assert_eq!(
        BlobName::v2(id(HELLO), Btype::Reg, &id(D), 9).to_string(),
        "2D8CC3EAF9774511_11CF8A4601010200EA0300000000000074A9BEF499BBF4DC.0001.51EAD3C2EB7A1130.00000000009.FFFFFFFF.0002"
    );
}

#[test]
fn example_6_2_root_directory_inode() {
    let (segs, size) = pack_dirents(vec![
        dirent(".", ROOT),
        dirent("..", ROOT),
        dirent("d", id(D)),
    ]);
    assert_eq!(segs.len(), 1);
    assert_eq!(size, 82);
    let obj = Object::Inode(Inode {
        vattr: base_vattr(0o40755, 2, 2, size, 3),
        bmap: layout::bmap(true, vec![ROOT], [ZERO_ROOT; 4]),
        back: None,
        name: b"src".to_vec(),
        body: InodeBody::Dir {
            dirents: segs.into_iter().next().unwrap_or_default(),
            root_attrs: Some(vec![
                ("containeridEpoch".into(), "2".into()),
                (
                    "massUUID".into(),
                    "b83b557f-c010-4209-9134-cba0539382c5".into(),
                ),
                (
                    "wipeEpoch".into(),
                    "97bbb34e-b506-4dc6-b05e-bda2bdd44f8c".into(),
                ),
            ]),
        },
    });
    check(&obj, EX_6_2);
    assert_eq!(unhex(EX_6_2).len(), 552);
}

#[test]
fn example_6_3_directory_inode() {
    let (segs, size) = pack_dirents(vec![
        dirent(".", id(D)),
        dirent("..", ROOT),
        dirent("p", id(P)),
    ]);
    assert_eq!(size, 90);
    let obj = Object::Inode(Inode {
        vattr: base_vattr(0o40755, 2, 78, size, 2),
        bmap: layout::bmap(true, vec![id(D)], [ZERO_ROOT; 4]),
        back: None,
        name: b"d".to_vec(),
        body: InodeBody::Dir {
            dirents: segs.into_iter().next().unwrap_or_default(),
            root_attrs: None,
        },
    });
    check(&obj, EX_6_3);
    assert_eq!(unhex(EX_6_3).len(), 408);
    assert_eq!(
        BlobName::v2(id(D), Btype::Dir, &ROOT, 9).to_string(),
        "51EAD3C2EB7A1130_11CF8A4600010100E903000000000000F6B165224A58B791.0002.0000006457871C6B.00000000009.FFFFFFFF.0002"
    );
}

#[test]
fn example_6_4_fifo_inode() {
    let obj = Object::Inode(Inode {
        vattr: base_vattr(0o010644, 7, 77, 0, 1),
        bmap: layout::bmap(false, vec![id(P)], [ZERO_ROOT; 4]),
        back: Some(vec![id(D)]),
        name: b"p".to_vec(),
        body: InodeBody::Special,
    });
    check(&obj, EX_6_4);
    assert_eq!(unhex(EX_6_4).len(), 352);
    assert_eq!(
        BlobName::v2(id(P), Btype::Fifo, &id(D), 9).to_string(),
        "4833D4F11CCB225A_11CF8A4601010700EB03000000000000FE3FEB3C9250B797.0007.51EAD3C2EB7A1130.00000000009.FFFFFFFF.0002"
    );
}

#[test]
fn example_6_5_data_segment() {
    let obj = Object::DataSegment(DataSegment {
        data: b"ABCDEFGH".to_vec(),
        databack: DataBack {
            ctime: 1_600_000_001,
            offset: 16_384,
            owner: id(HELLO),
        },
    });
    check(&obj, EX_6_5);
    assert_eq!(
        BlobName::v2(id(UUID), Btype::Segment, &id(D), 9).to_string(),
        "A9F1E7D00B790BA0_0F1E2D3C4B5A49688776A5B4C3D2E1F0.0008.51EAD3C2EB7A1130.00000000009.FFFFFFFF.0002"
    );
}

#[test]
fn example_6_6_directory_segment() {
    let obj = Object::DirSegment(DirSegment {
        dirents: vec![dirent("x", id(HELLO))],
        databack: DataBack {
            ctime: 1_600_000_000,
            offset: layout::dir_segment_offset(1),
            owner: ROOT,
        },
    });
    check(&obj, EX_6_6);
}

#[test]
fn example_6_7_indirect_block() {
    let obj = Object::Indirect(Indirect {
        pointers: vec![id(UUID), id(UUID)],
        databack: DataBack {
            ctime: 1_600_000_001,
            offset: layout::indirect_offset(1, 1),
            owner: id(HELLO),
        },
    });
    check(&obj, EX_6_7);
}

fn bucket() -> Object {
    Object::Bucket(Bucket {
        attrs: vec![
            ("bucketCurrentNameVersion".into(), "2".into()),
            ("bucketNameVersion".into(), "2".into()),
            ("bucketObjVersion".into(), "2".into()),
            (
                "bucketUUID".into(),
                "01234567-89ab-4cde-8f01-23456789abcd".into(),
            ),
        ],
    })
}

#[test]
fn example_6_8_bucket_object() {
    check(&bucket(), EX_6_8);
}

#[test]
fn example_6_8_bucket_object_with_lz4() {
    let body = bucket().encode_body(Compression::Lz4).expect("encodes");
    // envelope, frame header, first block size word 0x7d as in the spec
    assert_eq!(hex::encode(&body[..15]), "0000010004224d184050777d000000");
    assert_eq!(body.len(), 144);
    assert!(body.ends_with(&[0, 0, 0, 0]));
    let opened = envelope::open(&body, FramePolicy::Clfs).expect("opens");
    assert_eq!(opened.compression, Compression::Lz4);
    assert_eq!(hex::encode(&opened.stream), EX_6_8);
    assert_eq!(Object::decode_body(&body).expect("decodes"), bucket());
}
