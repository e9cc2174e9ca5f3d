//! The blocks of a file or directory beyond block 0, in order: direct
//! blocks 1…, then indirect trees 0…3 depth-first, pointers in order
//! (spec §5.3.3, §10.3), with the indirect blocks checked on the way; and
//! a fetcher that reads the segments those blocks name with a bounded
//! read-ahead.
//!
//! Memory is bounded by the tree depth (at most four INDIR blocks of
//! 4 096 pointers each) plus the read-ahead, whatever the file size.

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::StreamExt;

use crate::clfs::id::ObjectId;
use crate::clfs::layout::{indirect_offset, INDIRECT_FANOUT};
use crate::clfs::name::{BlobName as ClfsName, Btype};
use crate::clfs::object::Object;

use super::check::check_name;
use super::container::{Container, ReadError};
use super::path::NsPath;
use super::problem::{Check, ProblemSink};

/// One block of a block map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    /// Block index (1 = first segment object).
    pub index: u64,
    /// The segment's id.
    pub id: ObjectId,
    /// `None` for direct blocks, else the indirect tree.
    pub tree: Option<usize>,
}

/// Records a read failure as a problem; `missing` is the check used when
/// the blob does not exist.
pub fn report(sink: &ProblemSink, path: &NsPath, missing: Check, what: &str, err: &ReadError) {
    let check = match err {
        ReadError::Missing { .. } => missing,
        ReadError::Store { .. } => Check::Store,
        ReadError::Decode(_) | ReadError::Invalid { .. } => Check::Decode,
    };
    sink.error(
        check,
        Some(path),
        err.blob(),
        format!("{what}: {}", err.detail()),
    );
}

struct Frame {
    level: usize,
    pointers: Vec<ObjectId>,
    pos: usize,
}

/// Enumerates blocks 1… of an inode.
pub struct Blocks {
    c: Arc<Container>,
    sink: Arc<ProblemSink>,
    path: NsPath,
    owner: ObjectId,
    ctime: u32,
    direct: Vec<ObjectId>,
    next_direct: usize,
    roots: Vec<ObjectId>,
    next_tree: usize,
    cur_tree: usize,
    stack: Vec<Frame>,
    index: u64,
    seen_indirect: HashSet<ObjectId>,
    broken: bool,
}

impl Blocks {
    /// The blocks of the inode `owner` whose BMAP lists `direct` (block 0
    /// included) and `roots`; `ctime` is the owner's VATTR ctime seconds
    /// (expected in every DATABACK).
    pub fn new(
        c: Arc<Container>,
        sink: Arc<ProblemSink>,
        path: NsPath,
        owner: ObjectId,
        ctime: u32,
        direct: Vec<ObjectId>,
        roots: Vec<ObjectId>,
    ) -> Self {
        Blocks {
            c,
            sink,
            path,
            owner,
            ctime,
            direct,
            next_direct: 1,
            roots,
            next_tree: 0,
            cur_tree: 0,
            stack: Vec::new(),
            index: 0,
            seen_indirect: HashSet::new(),
            broken: false,
        }
    }

    /// True once an indirect block could not be read (blocks are missing).
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// The next block, or `None` after the last.
    pub async fn next(&mut self) -> Option<BlockRef> {
        if self.next_direct < self.direct.len() {
            let id = self.direct[self.next_direct];
            self.next_direct += 1;
            self.index += 1;
            return Some(BlockRef {
                index: self.index,
                id,
                tree: None,
            });
        }
        loop {
            if let Some(top) = self.stack.last_mut() {
                if top.pos >= top.pointers.len() {
                    self.stack.pop();
                    continue;
                }
                let id = top.pointers[top.pos];
                top.pos += 1;
                let level = top.level;
                if level == self.cur_tree {
                    self.index += 1;
                    return Some(BlockRef {
                        index: self.index,
                        id,
                        tree: Some(self.cur_tree),
                    });
                }
                if let Some(pointers) = self.fetch_indirect(id, self.cur_tree, level + 1).await {
                    self.stack.push(Frame {
                        level: level + 1,
                        pointers,
                        pos: 0,
                    });
                }
                continue;
            }
            let t = self.next_tree;
            let root = *self.roots.get(t)?;
            self.next_tree += 1;
            if root.is_zero() {
                continue;
            }
            self.cur_tree = t;
            if let Some(pointers) = self.fetch_indirect(root, t, 0).await {
                self.stack.push(Frame {
                    level: 0,
                    pointers,
                    pos: 0,
                });
            }
        }
    }

    async fn fetch_indirect(
        &mut self,
        id: ObjectId,
        tree: usize,
        level: usize,
    ) -> Option<Vec<ObjectId>> {
        let what = format!("indirect block {id} (tree {tree}, level {level})");
        if !self.seen_indirect.insert(id) {
            self.sink.error(
                Check::Indirect,
                Some(&self.path),
                None,
                format!("{what} appears twice in the block map"),
            );
            self.broken = true;
            return None;
        }
        let (name, obj) = match self.c.fetch_block(&id, Btype::Indirect, &self.owner).await {
            Ok(x) => x,
            Err(e) => {
                report(&self.sink, &self.path, Check::MissingBlock, &what, &e);
                self.broken = true;
                return None;
            }
        };
        let blob = name.to_string();
        let Object::Indirect(ind) = obj else {
            self.sink.error(
                Check::Indirect,
                Some(&self.path),
                Some(&blob),
                format!(
                    "{what}: expected an indirect block, found a {:?} object",
                    obj.kind()
                ),
            );
            self.broken = true;
            return None;
        };
        check_name(
            &self.sink,
            &self.path,
            &name,
            Btype::Indirect,
            &self.owner,
            "the owning inode",
        );
        let db = &ind.databack;
        let want = indirect_offset(tree, level);
        if db.offset != want {
            self.sink.error(
                Check::Indirect,
                Some(&self.path),
                Some(&blob),
                format!(
                    "{what}: DATABACK offset {:#x}, expected {want:#x}",
                    db.offset
                ),
            );
        }
        check_databack_owner(
            &self.sink, &self.path, &blob, &what, db.owner, self.owner, db.ctime, self.ctime,
        );
        if ind.pointers.len() > INDIRECT_FANOUT {
            self.sink.error(
                Check::Indirect,
                Some(&self.path),
                Some(&blob),
                format!(
                    "{what}: {} pointers, at most {INDIRECT_FANOUT} allowed",
                    ind.pointers.len()
                ),
            );
        }
        Some(ind.pointers)
    }
}

/// DATABACK owner and ctime of a segment or indirect block.
#[allow(clippy::too_many_arguments)]
pub fn check_databack_owner(
    sink: &ProblemSink,
    path: &NsPath,
    blob: &str,
    what: &str,
    owner: ObjectId,
    want_owner: ObjectId,
    ctime: u32,
    want_ctime: u32,
) {
    if owner != want_owner {
        sink.error(
            Check::Segment,
            Some(path),
            Some(blob),
            format!("{what}: DATABACK owner is {owner}, expected {want_owner}"),
        );
    }
    if ctime != want_ctime {
        sink.error(
            Check::Segment,
            Some(path),
            Some(blob),
            format!("{what}: DATABACK ctime is {ctime}, the owner's ctime is {want_ctime}"),
        );
    }
}

/// What fetching one block gave.
pub struct Fetched {
    /// The block.
    pub block: BlockRef,
    /// Its blob and decoded object, or why not.
    pub result: Result<(ClfsName, Object), ReadError>,
}

/// Reads the segments of an inode in block order, a few ahead.
pub struct SegmentFetcher {
    blocks: Blocks,
    blocks_done: bool,
    queue: FuturesOrdered<BoxFuture<'static, Fetched>>,
    readahead: usize,
    c: Arc<Container>,
    owner: ObjectId,
}

impl SegmentFetcher {
    /// A fetcher over `blocks` keeping up to `readahead` reads in flight.
    pub fn new(blocks: Blocks, readahead: usize) -> Self {
        let c = blocks.c.clone();
        let owner = blocks.owner;
        SegmentFetcher {
            blocks,
            blocks_done: false,
            queue: FuturesOrdered::new(),
            readahead: readahead.max(1),
            c,
            owner,
        }
    }

    /// True once an indirect block could not be read.
    pub fn broken(&self) -> bool {
        self.blocks.broken()
    }

    /// The next segment in block order.
    pub async fn next(&mut self) -> Option<Fetched> {
        while !self.blocks_done && self.queue.len() < self.readahead {
            match self.blocks.next().await {
                Some(block) => {
                    let c = self.c.clone();
                    let owner = self.owner;
                    self.queue.push_back(Box::pin(async move {
                        let result = c.fetch_block(&block.id, Btype::Segment, &owner).await;
                        Fetched { block, result }
                    }));
                }
                None => self.blocks_done = true,
            }
        }
        self.queue.next().await
    }

    /// The next block without reading it: its blob name if it exists.
    pub async fn next_unread(&mut self) -> Option<(BlockRef, Result<Option<ClfsName>, ReadError>)> {
        let block = self.blocks.next().await?;
        let found = self
            .c
            .find_block(&block.id, Btype::Segment, &self.owner)
            .await;
        Some((block, found))
    }
}
