//! Reading a directory's entries one segment at a time: the inline
//! DIRENTS of the inode, then each directory-segment object in block
//! order, checked on the way (spec §5.1, §10). A directory of a million
//! entries is never held whole: the caller gets one segment (at most
//! 256 KiB of entries) per call.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use crate::clfs::handle::Dirent;
use crate::clfs::id::{ObjectId, ROOT};
use crate::clfs::layout::{
    dir_segment_offset, DIR_INLINE_LIMIT, DIR_SEGMENT_BYTES, FIRST_SEGMENT_BYTES,
};
use crate::clfs::name::{Btype, FIRST_VERSION};
use crate::clfs::object::{InodeBody, Object};

use super::blocks::{check_databack_owner, report, Blocks, SegmentFetcher};
use super::check::check_name;
use super::container::{Container, InodeNode};
use super::path::{escape_bytes, NsPath};
use super::problem::{Check, ProblemSink};

/// Reads a directory's entries segment by segment.
pub struct DirReader {
    sink: Arc<ProblemSink>,
    path: NsPath,
    node: Arc<InodeNode>,
    parent: ObjectId,
    inline_done: bool,
    fetcher: SegmentFetcher,
    names: HashSet<u128>,
    entries_file: u64,
    segments: u64,
    complete: bool,
}

impl DirReader {
    /// A reader for directory `node` at `path`, whose `..` should be
    /// `parent` (the root's is the root).
    pub fn new(
        c: Arc<Container>,
        sink: Arc<ProblemSink>,
        path: NsPath,
        node: Arc<InodeNode>,
        parent: ObjectId,
        readahead: usize,
    ) -> Self {
        let b = &node.inode.bmap;
        let blocks = Blocks::new(
            c,
            sink.clone(),
            path.clone(),
            node.id,
            node.inode.vattr.ctime.sec,
            b.direct.clone(),
            b.indirect_roots.clone(),
        );
        DirReader {
            sink,
            path,
            parent,
            inline_done: false,
            fetcher: SegmentFetcher::new(blocks, readahead),
            names: HashSet::new(),
            entries_file: 0,
            segments: 0,
            complete: true,
            node,
        }
    }

    /// The entries-file size so far: Σ (4 + payload bytes) per segment.
    pub fn entries_file_size(&self) -> u64 {
        self.entries_file
    }

    /// Directory-segment objects read so far.
    pub fn segments(&self) -> u64 {
        self.segments
    }

    /// False once a segment could not be read.
    pub fn complete(&self) -> bool {
        self.complete && !self.fetcher.broken()
    }

    /// The next segment's entries (without `.` and `..`, without invalid or
    /// duplicate names, which are reported), or `None` at the end.
    pub async fn next_batch(&mut self) -> Option<Vec<Dirent>> {
        let blob = self.node.blob_text();
        if !self.inline_done {
            self.inline_done = true;
            let ents = match &self.node.inode.body {
                InodeBody::Dir { dirents, .. } => dirents.clone(),
                _ => Vec::new(),
            };
            let payload: usize = ents.iter().map(Dirent::encoded_len).sum();
            self.entries_file += 4 + payload as u64;
            let limit = if self.node.blob.version() > FIRST_VERSION {
                FIRST_SEGMENT_BYTES as usize
            } else {
                DIR_INLINE_LIMIT
            };
            if payload > limit {
                self.sink.error(
                    Check::Dirents,
                    Some(&self.path),
                    Some(&blob),
                    format!("inline DIRENTS is {payload} bytes, at most {limit} allowed"),
                );
            }
            self.check_dots(&ents, &blob);
            let rest = ents.into_iter().skip(2).collect();
            return Some(self.filter(rest, &blob));
        }
        let f = self.fetcher.next().await?;
        let k = f.block.index;
        self.segments = k;
        let what = format!("directory segment {k}");
        let (name, obj) = match f.result {
            Ok(x) => x,
            Err(e) => {
                report(&self.sink, &self.path, Check::MissingBlock, &what, &e);
                self.complete = false;
                return Some(Vec::new());
            }
        };
        let sblob = name.to_string();
        let Object::DirSegment(seg) = obj else {
            self.sink.error(
                Check::Dirents,
                Some(&self.path),
                Some(&sblob),
                format!(
                    "{what}: expected a directory segment, found a {:?} object",
                    obj.kind()
                ),
            );
            self.complete = false;
            return Some(Vec::new());
        };
        check_name(
            &self.sink,
            &self.path,
            &name,
            Btype::Segment,
            &self.node.id,
            "the owning directory",
        );
        let want = dir_segment_offset(k);
        if seg.databack.offset != want {
            self.sink.error(
                Check::Dirents,
                Some(&self.path),
                Some(&sblob),
                format!(
                    "{what}: DATABACK offset {}, expected {want}",
                    seg.databack.offset
                ),
            );
        }
        check_databack_owner(
            &self.sink,
            &self.path,
            &sblob,
            &what,
            seg.databack.owner,
            self.node.id,
            seg.databack.ctime,
            self.node.inode.vattr.ctime.sec,
        );
        let payload: usize = seg.dirents.iter().map(Dirent::encoded_len).sum();
        self.entries_file += 4 + payload as u64;
        if payload > DIR_SEGMENT_BYTES as usize {
            self.sink.error(
                Check::Dirents,
                Some(&self.path),
                Some(&sblob),
                format!("{what}: {payload} bytes of entries, at most {DIR_SEGMENT_BYTES} allowed"),
            );
        }
        Some(self.filter(seg.dirents, &sblob))
    }

    fn check_dots(&self, ents: &[Dirent], blob: &str) {
        let want = [
            (&b"."[..], self.node.id, "its own handle"),
            (&b".."[..], self.parent, "the parent's handle"),
        ];
        for (i, (name, id, what)) in want.iter().enumerate() {
            match ents.get(i) {
                Some(d) if d.name == *name && d.id == *id => {}
                Some(d) => self.sink.error(
                    Check::Dirents,
                    Some(&self.path),
                    Some(blob),
                    format!(
                        "entry {i} is '{}' -> {}, expected '{}' -> {} ({what})",
                        escape_bytes(&d.name),
                        d.id,
                        escape_bytes(name),
                        id
                    ),
                ),
                None => self.sink.error(
                    Check::Dirents,
                    Some(&self.path),
                    Some(blob),
                    format!(
                        "no entry {i}; expected '{}' -> {} ({what})",
                        escape_bytes(name),
                        id
                    ),
                ),
            }
        }
    }

    fn filter(&mut self, ents: Vec<Dirent>, blob: &str) -> Vec<Dirent> {
        let mut out = Vec::with_capacity(ents.len());
        for d in ents {
            let bad = if d.name.is_empty() {
                Some("an empty name")
            } else if d.name == b"." || d.name == b".." {
                Some("a '.' or '..' entry outside the first two places")
            } else if d.name.contains(&b'/') || d.name.contains(&0) {
                Some("a name containing '/' or NUL")
            } else if d.id == ROOT {
                Some("an entry pointing at the root")
            } else {
                None
            };
            if let Some(why) = bad {
                self.sink.error(
                    Check::Dirents,
                    Some(&self.path),
                    Some(blob),
                    format!("{why}: '{}' -> {} (skipped)", escape_bytes(&d.name), d.id),
                );
                continue;
            }
            if !self.names.insert(name_key(&d.name)) {
                self.sink.error(
                    Check::Dirents,
                    Some(&self.path),
                    Some(blob),
                    format!(
                        "duplicate name '{}' (the later entry is skipped)",
                        escape_bytes(&d.name)
                    ),
                );
                continue;
            }
            out.push(d);
        }
        out
    }
}

/// A 128-bit key of a name, to find duplicates without keeping the names.
fn name_key(name: &[u8]) -> u128 {
    let mut a = DefaultHasher::new();
    (1u8, name).hash(&mut a);
    let mut b = DefaultHasher::new();
    (2u8, name).hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}
