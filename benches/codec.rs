//! Codec benchmarks: an 8 MiB data segment with LZ4 (compressible and
//! random input) beside a direct liblz4 frame of the same bytes, and a
//! 1,000-entry directory. `scripts/bench-codec` prints the ratios.

use std::hint::black_box;
use std::io::Write;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use clfs_fs::clfs::envelope::Compression;
use clfs_fs::clfs::handle::{DataBack, Dirent};
use clfs_fs::clfs::id::{ObjectId, ROOT, ZERO_ROOT};
use clfs_fs::clfs::layout::{self, pack_dirents};
use clfs_fs::clfs::object::{encode_data_segment, DirSegment, Inode, InodeBody, Object};
use clfs_fs::clfs::vattr::Vattr;

const SEGMENT: usize = 8 << 20;

fn compressible() -> Vec<u8> {
    let line = b"0123456789 the quick brown fox jumps over the lazy dog; CLFS segment text ";
    line.iter().copied().cycle().take(SEGMENT).collect()
}

fn random() -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    (0..SEGMENT)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The bare library: one liblz4 frame with the same options, fed 256 KiB
/// at a time.
fn bare_lz4(data: &[u8]) -> Vec<u8> {
    let mut enc = lz4::EncoderBuilder::new()
        .block_size(lz4::BlockSize::Max256KB)
        .block_mode(lz4::BlockMode::Linked)
        .block_checksum(lz4::liblz4::BlockChecksum::NoBlockChecksum)
        .checksum(lz4::ContentChecksum::NoChecksum)
        .build(Vec::with_capacity(data.len() + 1024))
        .expect("encoder");
    for piece in data.chunks(262_144) {
        enc.write_all(piece).expect("write");
    }
    let (out, res) = enc.finish();
    res.expect("finish");
    out
}

fn bare_unlz4(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEGMENT + 1024);
    std::io::copy(&mut lz4::Decoder::new(frame).expect("decoder"), &mut out).expect("decode");
    out
}

fn segment(c: &mut Criterion) {
    let databack = DataBack {
        ctime: 1_600_000_000,
        offset: 16_384,
        owner: ObjectId::from_24([7; 24]),
    };
    for (label, data) in [("compressible", compressible()), ("random", random())] {
        let mut g = c.benchmark_group(format!("segment_8MiB_{label}"));
        g.throughput(Throughput::Bytes(SEGMENT as u64));
        g.sample_size(20);
        g.bench_function("encode_codec", |b| {
            b.iter(|| {
                encode_data_segment(black_box(&data), &databack, Compression::Lz4).expect("encode")
            })
        });
        g.bench_function("encode_bare_lz4", |b| b.iter(|| bare_lz4(black_box(&data))));
        let body = encode_data_segment(&data, &databack, Compression::Lz4).expect("encode");
        g.bench_function("decode_codec", |b| {
            b.iter(|| Object::decode_body(black_box(&body)).expect("decode"))
        });
        let frame = bare_lz4(&data);
        g.bench_function("decode_bare_lz4", |b| {
            b.iter(|| bare_unlz4(black_box(&frame)))
        });
        g.finish();
    }
}

fn directory(c: &mut Criterion) {
    let own = ObjectId::from_24([3; 24]);
    let mut entries = vec![
        Dirent {
            name: b".".to_vec(),
            id: own,
        },
        Dirent {
            name: b"..".to_vec(),
            id: ROOT,
        },
    ];
    for i in 0..1000u32 {
        let mut fh = [5u8; 24];
        fh[8..12].copy_from_slice(&i.to_le_bytes());
        entries.push(Dirent {
            name: format!("file_{i:06}_with_a_typical_length.dat").into_bytes(),
            id: ObjectId::from_24(fh),
        });
    }
    let encode = |entries: Vec<Dirent>| -> Vec<Vec<u8>> {
        let (segs, size) = pack_dirents(entries);
        let mut bodies = Vec::new();
        let mut ids = vec![own];
        for (k, seg) in segs.iter().enumerate().skip(1) {
            let id = ObjectId::from_16([k as u8; 16]);
            ids.push(id);
            let obj = Object::DirSegment(DirSegment {
                dirents: seg.clone(),
                databack: DataBack {
                    ctime: 1,
                    offset: layout::dir_segment_offset(k as u64),
                    owner: own,
                },
            });
            bodies.push(obj.encode_body(Compression::Lz4).expect("encode"));
        }
        let inode = Object::Inode(Inode {
            vattr: Vattr {
                mode: 0o40755,
                ftype: 2,
                length: size,
                used: size,
                nlink: 2,
                ..Vattr::default()
            },
            bmap: layout::bmap(true, ids, [ZERO_ROOT; 4]),
            back: None,
            name: b"dir".to_vec(),
            body: InodeBody::Dir {
                dirents: segs.into_iter().next().unwrap_or_default(),
                root_attrs: None,
            },
        });
        bodies.push(inode.encode_body(Compression::Lz4).expect("encode"));
        bodies
    };
    let mut g = c.benchmark_group("directory_1000_entries");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("encode", |b| b.iter(|| encode(black_box(entries.clone()))));
    let bodies = encode(entries.clone());
    g.bench_function("decode", |b| {
        b.iter(|| {
            for body in &bodies {
                black_box(Object::decode_body(body).expect("decode"));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, segment, directory);
criterion_main!(benches);
