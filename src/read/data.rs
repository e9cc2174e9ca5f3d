//! Reading a regular file's contents: the inline first 16 KiB, then each
//! 8 MiB data segment in block order, checked (spec §10: segment count,
//! sizes, DATABACK offsets, owners, ctime) and handed to the caller one
//! piece at a time, so memory stays at a few segments per file.

use std::io;
use std::sync::Arc;

use crate::clfs::layout::{
    data_segment_count, data_segment_len, data_segment_offset, FIRST_SEGMENT_BYTES,
};
use crate::clfs::name::Btype;
use crate::clfs::object::{InodeBody, Object};

use super::blocks::{check_databack_owner, report, Blocks, SegmentFetcher};
use super::check::check_name;
use super::container::{Container, InodeNode};
use super::path::NsPath;
use super::problem::{Check, ProblemSink};

/// One piece of a file, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Bytes at `offset`.
    Data {
        /// Byte offset in the file.
        offset: u64,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// `len` bytes at `offset` could not be read (a problem was recorded).
    Lost {
        /// Byte offset in the file.
        offset: u64,
        /// How many bytes are missing.
        len: u64,
    },
}

/// How to read a file.
#[derive(Debug, Clone, Copy)]
pub struct FileOptions {
    /// Read the segments (false: only check that they exist, by name).
    pub fetch: bool,
    /// Segments read ahead per file.
    pub readahead: usize,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            fetch: true,
            readahead: 2,
        }
    }
}

/// What reading a file found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileSummary {
    /// Bytes delivered as [`Piece::Data`].
    pub bytes: u64,
    /// Data segments seen.
    pub segments: u64,
    /// True when every byte of the file's length was delivered.
    pub complete: bool,
}

/// Reads the regular file `node` at `path`, calling `out` with each piece
/// in order; an error from `out` stops the read and is returned.
pub async fn read_file<F>(
    c: &Arc<Container>,
    sink: &Arc<ProblemSink>,
    path: &NsPath,
    node: &InodeNode,
    opts: FileOptions,
    mut out: F,
) -> io::Result<FileSummary>
where
    F: FnMut(Piece<'_>) -> io::Result<()>,
{
    let v = &node.inode.vattr;
    let length = v.length;
    let expected = data_segment_count(length);
    let mut sum = FileSummary::default();
    let mut lost = false;

    let inline_want = length.min(u64::from(FIRST_SEGMENT_BYTES));
    match &node.inode.body {
        InodeBody::Data(d) => {
            let n = (d.len() as u64).min(inline_want);
            out(Piece::Data {
                offset: 0,
                bytes: &d[..n as usize],
            })?;
            sum.bytes += n;
            if n < inline_want {
                out(Piece::Lost {
                    offset: n,
                    len: inline_want - n,
                })?;
                lost = true;
            }
        }
        _ => {
            out(Piece::Lost {
                offset: 0,
                len: inline_want,
            })?;
            lost = true;
        }
    }

    let b = &node.inode.bmap;
    let blocks = Blocks::new(
        c.clone(),
        sink.clone(),
        path.clone(),
        node.id,
        v.ctime.sec,
        b.direct.clone(),
        b.indirect_roots.clone(),
    );
    let mut fetcher = SegmentFetcher::new(blocks, opts.readahead);
    let mut reported_extra = false;
    loop {
        let (block, found) = if opts.fetch {
            match fetcher.next().await {
                Some(f) => (f.block, Some(f.result)),
                None => break,
            }
        } else {
            match fetcher.next_unread().await {
                Some((block, r)) => {
                    match r {
                        Ok(Some(name)) => {
                            check_name(
                                sink,
                                path,
                                &name,
                                Btype::Segment,
                                &node.id,
                                "the owning file",
                            );
                        }
                        Ok(None) => sink.error(
                            Check::MissingBlock,
                            Some(path),
                            Some(
                                &crate::clfs::name::BlobName::v2(
                                    block.id,
                                    Btype::Segment,
                                    &node.id,
                                    9,
                                )
                                .to_string(),
                            ),
                            format!("data segment {} ({}) does not exist", block.index, block.id),
                        ),
                        Err(e) => report(
                            sink,
                            path,
                            Check::MissingBlock,
                            &format!("data segment {}", block.index),
                            &e,
                        ),
                    }
                    (block, None)
                }
                None => break,
            }
        };
        let k = block.index;
        sum.segments = k;
        if k > expected {
            if !reported_extra {
                sink.error(
                    Check::Segment,
                    Some(path),
                    Some(&node.blob_text()),
                    format!("the block map has segment {k} but a file of {length} bytes has only {expected}"),
                );
                reported_extra = true;
            }
            continue;
        }
        let offset = data_segment_offset(k);
        let want = data_segment_len(length, k);
        let Some(result) = found else { continue };
        let what = format!("data segment {k}");
        let seg = match result {
            Ok((name, Object::DataSegment(seg))) => {
                let blob = name.to_string();
                check_name(
                    sink,
                    path,
                    &name,
                    Btype::Segment,
                    &node.id,
                    "the owning file",
                );
                if seg.databack.offset != offset {
                    sink.error(
                        Check::Segment,
                        Some(path),
                        Some(&blob),
                        format!(
                            "{what}: DATABACK offset {}, expected {offset}",
                            seg.databack.offset
                        ),
                    );
                }
                check_databack_owner(
                    sink,
                    path,
                    &blob,
                    &what,
                    seg.databack.owner,
                    node.id,
                    seg.databack.ctime,
                    v.ctime.sec,
                );
                if seg.data.len() as u64 != want {
                    sink.error(
                        Check::Segment,
                        Some(path),
                        Some(&blob),
                        format!("{what}: DATA is {} bytes, expected {want}", seg.data.len()),
                    );
                }
                Some(seg)
            }
            Ok((name, other)) => {
                sink.error(
                    Check::Segment,
                    Some(path),
                    Some(&name.to_string()),
                    format!(
                        "{what}: expected a data segment, found a {:?} object",
                        other.kind()
                    ),
                );
                None
            }
            Err(e) => {
                report(sink, path, Check::MissingBlock, &what, &e);
                None
            }
        };
        let got = seg.as_ref().map_or(0, |s| (s.data.len() as u64).min(want));
        if let Some(s) = &seg {
            out(Piece::Data {
                offset,
                bytes: &s.data[..got as usize],
            })?;
            sum.bytes += got;
        }
        if got < want {
            out(Piece::Lost {
                offset: offset + got,
                len: want - got,
            })?;
            lost = true;
        }
    }
    if sum.segments < expected {
        if !fetcher.broken() {
            sink.error(
                Check::Segment,
                Some(path),
                Some(&node.blob_text()),
                format!(
                    "a file of {length} bytes needs {expected} data segments, the block map has {}",
                    sum.segments
                ),
            );
        }
        let from = data_segment_offset(sum.segments + 1);
        if opts.fetch {
            out(Piece::Lost {
                offset: from,
                len: length - from,
            })?;
        }
        lost = true;
    }
    sum.complete = !lost && opts.fetch;
    Ok(sum)
}
