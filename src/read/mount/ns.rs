//! The mounted container's namespace, fetched lazily: inode numbers
//! assigned on first sight of a handle (so hard links share one), inodes
//! and directory listings read when first needed and kept in bounded
//! caches, file data read a data segment at a time through a bounded
//! segment cache with de-duplicated in-flight reads (read-ahead and a
//! reader asking for the same segment share one request).
//!
//! Everything here goes through the reader ([`Container`], [`Blocks`],
//! [`DirReader`]); nothing is ever written to the container.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OnceCell;

use crate::clfs::id::{Ftype, ObjectId, ROOT};
use crate::clfs::layout::{block_of_offset, data_segment_len, data_segment_offset};
use crate::clfs::name::Btype;
use crate::clfs::object::{InodeBody, Object};

use crate::read::blocks::Blocks;
use crate::read::container::{Container, InodeNode, ReadError};
use crate::read::dir::DirReader;
use crate::read::path::NsPath;
use crate::read::problem::ProblemSink;

use super::lru::Lru;

/// Inode number of the root.
pub const ROOT_INO: u64 = 1;

/// Why an operation failed, as the errno the kernel gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsError {
    /// ENOENT.
    NotFound,
    /// ENOTDIR.
    NotDir,
    /// EIO (the cause was logged).
    Io,
}

impl FsError {
    /// The errno value.
    pub fn errno(self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::NotDir => libc::ENOTDIR,
            FsError::Io => libc::EIO,
        }
    }
}

fn io_error(what: &str, e: &ReadError) -> FsError {
    tracing::warn!("{what}: {e}");
    FsError::Io
}

/// Cache sizes and read-ahead.
#[derive(Debug, Clone, Copy)]
pub struct CacheOptions {
    /// Bytes of decoded data segments kept.
    pub segment_bytes: u64,
    /// Segments read ahead of a sequential reader.
    pub readahead: usize,
    /// Estimated bytes of inodes kept.
    pub inode_bytes: u64,
    /// Estimated bytes of directory listings kept.
    pub listing_bytes: u64,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            segment_bytes: 256 << 20,
            readahead: 4,
            inode_bytes: 64 << 20,
            listing_bytes: 64 << 20,
        }
    }
}

/// A decoded inode with its inode number and, for regular files, the
/// segment ids resolved so far.
pub struct Node {
    /// Inode number.
    pub ino: u64,
    /// The decoded inode.
    pub inode: Arc<InodeNode>,
    blocks: tokio::sync::Mutex<BlockList>,
}

struct BlockList {
    /// The block enumerator, created on first use, dropped at the end.
    blocks: Option<Blocks>,
    started: bool,
    /// `ids[i]` is the id of block `i + 1`.
    ids: Vec<ObjectId>,
}

impl Node {
    /// The file type.
    pub fn btype(&self) -> Btype {
        self.inode.btype()
    }

    /// The file length.
    pub fn length(&self) -> u64 {
        self.inode.inode.vattr.length
    }

    fn cost(&self) -> u64 {
        let body = match &self.inode.inode.body {
            InodeBody::Data(d) => d.len(),
            InodeBody::Dir { dirents, .. } => dirents.len() * 64,
            InodeBody::Special => 0,
        };
        (1024 + body + self.inode.inode.bmap.direct.len() * 24) as u64
    }
}

/// A directory's entries (without `.` and `..`).
pub struct Listing {
    /// Names and handles, in directory order.
    pub entries: Vec<(Vec<u8>, ObjectId)>,
    by_name: HashMap<Vec<u8>, usize>,
}

impl Listing {
    fn cost(&self) -> u64 {
        self.entries
            .iter()
            .map(|(n, _)| 2 * n.len() as u64 + 80)
            .sum::<u64>()
            + 64
    }
}

/// Handles and their inode numbers (`ino = index + 1`), with the parent
/// each was first seen in. Grows with the number of distinct handles
/// looked up (about 50 bytes each); everything bigger is in bounded caches.
#[derive(Default)]
struct Inos {
    by_id: HashMap<ObjectId, u64>,
    ids: Vec<(ObjectId, u64)>,
}

type Segment = Arc<Vec<u8>>;
type SegmentCell = Arc<OnceCell<Result<Segment, FsError>>>;

/// The lazily read namespace of one container.
pub struct Namespace {
    c: Arc<Container>,
    sink: Arc<ProblemSink>,
    opts: CacheOptions,
    inos: Mutex<Inos>,
    nodes: Mutex<Lru<u64, Arc<Node>>>,
    listings: Mutex<Lru<u64, Arc<Listing>>>,
    segments: Mutex<Lru<ObjectId, Segment>>,
    inflight: Mutex<HashMap<ObjectId, SegmentCell>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Namespace {
    /// The namespace of `c`, whose root inode is `root`.
    pub fn new(c: Arc<Container>, root: InodeNode, opts: CacheOptions) -> Arc<Self> {
        let mut inos = Inos::default();
        inos.by_id.insert(ROOT, ROOT_INO);
        inos.ids.push((ROOT, ROOT_INO));
        let ns = Namespace {
            c,
            sink: Arc::new(ProblemSink::new(1000)),
            opts,
            inos: Mutex::new(inos),
            nodes: Mutex::new(Lru::new(opts.inode_bytes, 1 << 20)),
            listings: Mutex::new(Lru::new(opts.listing_bytes, 1 << 16)),
            segments: Mutex::new(Lru::new(opts.segment_bytes, 1 << 16)),
            inflight: Mutex::new(HashMap::new()),
        };
        let root = Node {
            ino: ROOT_INO,
            inode: Arc::new(root),
            blocks: tokio::sync::Mutex::new(BlockList::empty()),
        };
        let cost = root.cost();
        lock(&ns.nodes).insert(ROOT_INO, Arc::new(root), cost);
        Arc::new(ns)
    }

    /// Options in use.
    pub fn options(&self) -> CacheOptions {
        self.opts
    }

    /// Bytes of segments cached now.
    pub fn cached_segment_bytes(&self) -> u64 {
        lock(&self.segments).cost()
    }

    /// The inode number of `id` (seen in directory `parent`), assigning
    /// one on first sight.
    pub fn ino_of(&self, id: &ObjectId, parent: u64) -> u64 {
        let mut g = lock(&self.inos);
        if let Some(&ino) = g.by_id.get(id) {
            return ino;
        }
        let ino = g.ids.len() as u64 + 1;
        g.ids.push((*id, parent));
        g.by_id.insert(*id, ino);
        ino
    }

    fn id_of(&self, ino: u64) -> Result<(ObjectId, u64), FsError> {
        let g = lock(&self.inos);
        ino.checked_sub(1)
            .and_then(|i| g.ids.get(i as usize))
            .copied()
            .ok_or(FsError::NotFound)
    }

    /// The inode number of the directory `ino` was first seen in.
    pub fn parent_of(&self, ino: u64) -> u64 {
        self.id_of(ino).map_or(ROOT_INO, |(_, p)| p)
    }

    /// The inode `ino`, read on first use (or after it left the cache).
    pub async fn node(&self, ino: u64) -> Result<Arc<Node>, FsError> {
        if let Some(n) = lock(&self.nodes).get(&ino) {
            return Ok(n);
        }
        let (id, _) = self.id_of(ino)?;
        let located = self
            .c
            .locate(&id)
            .await
            .map_err(|e| io_error(&format!("locating inode {id}"), &e))?
            .ok_or_else(|| {
                tracing::warn!("inode {id}: no blob of this handle exists");
                FsError::NotFound
            })?;
        let inode = self
            .c
            .fetch_inode(&id, &located.name)
            .await
            .map_err(|e| io_error(&format!("reading inode {id}"), &e))?;
        let node = Arc::new(Node {
            ino,
            inode: Arc::new(inode),
            blocks: tokio::sync::Mutex::new(BlockList::empty()),
        });
        let cost = node.cost();
        lock(&self.nodes).insert(ino, node.clone(), cost);
        Ok(node)
    }

    /// The entries of directory `ino`, read on first use.
    pub async fn listing(&self, ino: u64) -> Result<Arc<Listing>, FsError> {
        if let Some(l) = lock(&self.listings).get(&ino) {
            return Ok(l);
        }
        let node = self.node(ino).await?;
        if !node.inode.is_dir() {
            return Err(FsError::NotDir);
        }
        let parent_ino = self.parent_of(ino);
        let parent = if ino == ROOT_INO {
            ROOT
        } else {
            self.id_of(parent_ino)?.0
        };
        let mut reader = DirReader::new(
            self.c.clone(),
            self.sink.clone(),
            NsPath::root(),
            node.inode.clone(),
            parent,
            2,
        );
        let mut entries = Vec::new();
        while let Some(batch) = reader.next_batch().await {
            entries.extend(batch.into_iter().map(|d| (d.name, d.id)));
        }
        if !reader.complete() {
            tracing::warn!(
                "directory {}: some entries could not be read",
                node.inode.blob_text()
            );
        }
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i))
            .collect();
        let l = Arc::new(Listing { entries, by_name });
        let cost = l.cost();
        lock(&self.listings).insert(ino, l.clone(), cost);
        Ok(l)
    }

    /// The entry `name` of directory `parent`.
    pub async fn lookup(&self, parent: u64, name: &[u8]) -> Result<Arc<Node>, FsError> {
        let l = self.listing(parent).await?;
        let &i = l.by_name.get(name).ok_or(FsError::NotFound)?;
        let id = l.entries[i].1;
        let ino = self.ino_of(&id, parent);
        self.node(ino).await
    }

    /// The type of the entry `id` (from its filehandle, else its inode).
    pub async fn entry_type(&self, id: &ObjectId, ino: u64) -> Result<Btype, FsError> {
        let from_handle = id
            .as_filehandle()
            .and_then(|f| Ftype::from_code(f.ftype_code()))
            .map(Btype::from);
        match from_handle {
            Some(b) => Ok(b),
            None => Ok(self.node(ino).await?.btype()),
        }
    }

    /// The id of block `k` (≥ 1) of `node`, walking the block map as far
    /// as needed (indirect blocks are read once per inode).
    async fn block_id(&self, node: &Node, k: u64) -> Result<ObjectId, FsError> {
        let mut g = node.blocks.lock().await;
        if !g.started {
            g.started = true;
            let i = &node.inode;
            let b = &i.inode.bmap;
            g.blocks = Some(Blocks::new(
                self.c.clone(),
                self.sink.clone(),
                NsPath::root(),
                i.id,
                i.inode.vattr.ctime.sec,
                b.direct.clone(),
                b.indirect_roots.clone(),
            ));
        }
        while (g.ids.len() as u64) < k {
            let next = match g.blocks.as_mut() {
                Some(b) => b.next().await,
                None => None,
            };
            match next {
                Some(r) => g.ids.push(r.id),
                None => {
                    g.blocks = None;
                    tracing::warn!("{}: the block map has no block {k}", node.inode.blob_text());
                    return Err(FsError::Io);
                }
            }
        }
        Ok(g.ids[(k - 1) as usize])
    }

    /// Data segment `k` (≥ 1) of `node`, `data_segment_len` bytes long.
    pub async fn segment(&self, node: &Node, k: u64) -> Result<Segment, FsError> {
        let id = self.block_id(node, k).await?;
        if let Some(s) = lock(&self.segments).get(&id) {
            return Ok(s);
        }
        let cell = lock(&self.inflight)
            .entry(id)
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let r = cell
            .get_or_init(|| self.fetch_segment(node, k, id))
            .await
            .clone();
        if let Ok(s) = &r {
            let mut g = lock(&self.segments);
            if !g.contains(&id) {
                g.insert(id, s.clone(), s.len() as u64);
            }
        }
        lock(&self.inflight).remove(&id);
        r
    }

    /// True when segment `k` is cached or being read (for read-ahead).
    pub async fn has_segment(&self, node: &Node, k: u64) -> bool {
        let id = {
            let g = node.blocks.lock().await;
            match g.ids.get((k as usize).wrapping_sub(1)) {
                Some(id) => *id,
                None => return false,
            }
        };
        lock(&self.segments).contains(&id) || lock(&self.inflight).contains_key(&id)
    }

    async fn fetch_segment(&self, node: &Node, k: u64, id: ObjectId) -> Result<Segment, FsError> {
        let want = data_segment_len(node.length(), k) as usize;
        let (name, obj) = self
            .c
            .fetch_block(&id, Btype::Segment, &node.inode.id)
            .await
            .map_err(|e| {
                io_error(
                    &format!("data segment {k} of {}", node.inode.blob_text()),
                    &e,
                )
            })?;
        let Object::DataSegment(seg) = obj else {
            tracing::warn!("{name}: expected a data segment, found a {:?}", obj.kind());
            return Err(FsError::Io);
        };
        let mut data = seg.data;
        if data.len() != want {
            tracing::warn!(
                "{name}: data segment {k} holds {} bytes, expected {want} (padded or cut)",
                data.len()
            );
            data.resize(want, 0);
        }
        Ok(Arc::new(data))
    }

    /// Up to `size` bytes of regular file `node` from `offset`.
    pub async fn read(&self, node: &Node, offset: u64, size: u32) -> Result<Vec<u8>, FsError> {
        let len = node.length();
        if offset >= len {
            return Ok(Vec::new());
        }
        let end = len.min(offset.saturating_add(u64::from(size)));
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut pos = offset;
        while pos < end {
            let k = block_of_offset(pos);
            if k == 0 {
                let first = match &node.inode.inode.body {
                    InodeBody::Data(d) => d.as_slice(),
                    _ => &[],
                };
                let stop = end.min(data_segment_offset(1));
                for p in pos..stop {
                    out.push(first.get(p as usize).copied().unwrap_or(0));
                }
                pos = stop;
                continue;
            }
            let seg = self.segment(node, k).await?;
            let start = data_segment_offset(k);
            let from = (pos - start) as usize;
            let to = ((end - start) as usize).min(seg.len());
            if to <= from {
                return Err(FsError::Io);
            }
            out.extend_from_slice(&seg[from..to]);
            pos = start + to as u64;
        }
        Ok(out)
    }
}

impl BlockList {
    fn empty() -> Self {
        BlockList {
            blocks: None,
            started: false,
            ids: Vec::new(),
        }
    }
}
