//! The namespace walk: from the root, every directory's entries segment by
//! segment, every entry's inode fetched and checked, with bounded
//! parallelism (a few directories at once, a bounded number of inode reads
//! per directory) and bounded memory (events go through a bounded
//! channel; a directory is never held whole).
//!
//! The walk sends [`Event`]s to its consumer (verify, the canonical
//! namespace, export). A directory's own [`Event::Node`] is always sent
//! before any event of its entries, so a consumer creating directories in
//! event order never meets an entry before its directory.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::stream::{self, FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, Notify};

use crate::clfs::handle::Dirent;
use crate::clfs::id::{Ftype, ObjectId, ROOT};
use crate::clfs::name::{Btype, FIRST_VERSION};

use super::blocks::report;
use super::check::check_inode;
use super::container::{Container, InodeNode};
use super::dir::DirReader;
use super::path::{escape_bytes, NsPath};
use super::problem::{Check, ProblemSink};

/// Parallelism of the walk.
#[derive(Debug, Clone, Copy)]
pub struct WalkOptions {
    /// Inode reads in flight per directory.
    pub parallel: usize,
    /// Directories read at once.
    pub dirs: usize,
    /// Directory segments read ahead per directory.
    pub readahead: usize,
    /// Events buffered between the walk and its consumer.
    pub channel: usize,
    /// Queued directories keep their decoded inode while fewer than this
    /// many wait; beyond, they are queued by handle and read again when
    /// their turn comes (bounds memory on very wide trees).
    pub keep_nodes: usize,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            parallel: 32,
            dirs: 4,
            readahead: 2,
            channel: 256,
            keep_nodes: 4096,
        }
    }
}

impl WalkOptions {
    /// Options for `parallel` requests in flight.
    pub fn with_parallel(parallel: usize) -> Self {
        let parallel = parallel.max(1);
        WalkOptions {
            parallel,
            dirs: (parallel / 8).clamp(1, 8),
            ..WalkOptions::default()
        }
    }
}

/// What the walk found, in order per directory.
#[derive(Debug, Clone)]
pub enum Event {
    /// An inode reachable at `path` (the root included, with no parent).
    Node {
        /// Where.
        path: NsPath,
        /// The directory holding the entry (`None` for the root).
        parent: Option<ObjectId>,
        /// The inode.
        node: Arc<InodeNode>,
    },
    /// An entry whose inode is missing or unreadable (a problem was
    /// recorded).
    Broken {
        /// Where.
        path: NsPath,
        /// The directory holding the entry.
        parent: ObjectId,
        /// The handle the entry points at.
        id: ObjectId,
    },
    /// All entries of a directory were sent (not those of its
    /// subdirectories).
    DirDone {
        /// Where.
        path: NsPath,
        /// The directory.
        id: ObjectId,
        /// Entries, without `.` and `..`.
        entries: u64,
        /// Entries that are directories.
        subdirs: u64,
    },
}

/// Counts of what the walk saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Directories (the root included).
    pub dirs: u64,
    /// Regular files (hard links count once per name).
    pub files: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Devices, fifos, sockets.
    pub specials: u64,
    /// Entries pointing at a missing or unreadable inode.
    pub broken: u64,
    /// Directory-segment objects.
    pub dir_segments: u64,
}

#[derive(Default)]
struct Counters {
    dirs: AtomicU64,
    files: AtomicU64,
    symlinks: AtomicU64,
    specials: AtomicU64,
    broken: AtomicU64,
    dir_segments: AtomicU64,
}

struct LinkRecord {
    path: NsPath,
    blob: String,
    back: Vec<ObjectId>,
    found: Vec<ObjectId>,
}

#[derive(Default)]
struct Links {
    /// Non-directories with one back-pointer and nlink 1, seen once: the
    /// directory they were found in.
    simple: HashMap<ObjectId, ObjectId>,
    /// The others: where BACK says they are, where they were found.
    multi: HashMap<ObjectId, LinkRecord>,
}

struct QueuedDir {
    path: NsPath,
    id: ObjectId,
    parent: ObjectId,
    node: Option<Arc<InodeNode>>,
}

struct Walker {
    c: Arc<Container>,
    sink: Arc<ProblemSink>,
    opts: WalkOptions,
    tx: mpsc::Sender<Event>,
    queue: Mutex<Vec<QueuedDir>>,
    notify: Notify,
    visited: Mutex<HashSet<ObjectId>>,
    links: Mutex<Links>,
    ids: Mutex<Option<(u64, u64, NsPath)>>,
    counters: Counters,
    closed: AtomicBool,
}

/// Starts a walk of the whole namespace from the container's root on a
/// task of its own, with `parallel` inode reads in flight: events arrive on
/// the receiver, and the task ends with the walk's statistics.
pub fn spawn_root_walk(
    c: Arc<Container>,
    sink: Arc<ProblemSink>,
    root: Arc<InodeNode>,
    parallel: usize,
) -> (mpsc::Receiver<Event>, tokio::task::JoinHandle<WalkStats>) {
    let wopts = WalkOptions::with_parallel(parallel);
    let (tx, rx) = mpsc::channel(wopts.channel);
    let walker = tokio::spawn(walk(c, sink, root, NsPath::root(), ROOT, wopts, tx));
    (rx, walker)
}

/// Walks the namespace under `root` (which must be a directory inode;
/// `root_path` is its path, `/` for the container root), sending events
/// to `tx`. Returns when every reachable directory was read or the
/// receiver was dropped. Link counts are checked at the end.
pub async fn walk(
    c: Arc<Container>,
    sink: Arc<ProblemSink>,
    root: Arc<InodeNode>,
    root_path: NsPath,
    root_parent: ObjectId,
    opts: WalkOptions,
    tx: mpsc::Sender<Event>,
) -> WalkStats {
    let w = Walker {
        c,
        sink,
        opts,
        tx,
        queue: Mutex::new(Vec::new()),
        notify: Notify::new(),
        visited: Mutex::new(HashSet::new()),
        links: Mutex::new(Links::default()),
        ids: Mutex::new(None),
        counters: Counters::default(),
        closed: AtomicBool::new(false),
    };
    w.visited_insert(root.id);
    w.note_ids(&root_path, &root);
    let parent = if root.id == ROOT {
        None
    } else {
        Some(root_parent)
    };
    check_inode(&w.sink, &root_path, &root, parent.as_ref());
    w.count(&root);
    w.send(Event::Node {
        path: root_path.clone(),
        parent,
        node: root.clone(),
    })
    .await;
    w.lock_queue().push(QueuedDir {
        path: root_path,
        id: root.id,
        parent: root_parent,
        node: Some(root),
    });

    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < w.opts.dirs.max(1) {
            let next = w.lock_queue().pop();
            match next {
                Some(d) => running.push(w.process_dir(d)),
                None => break,
            }
        }
        if running.is_empty() || w.closed.load(Ordering::Relaxed) {
            break;
        }
        tokio::select! {
            _ = running.next() => {}
            _ = w.notify.notified() => {}
        }
    }
    drop(running);
    w.finish_links();
    let c = &w.counters;
    WalkStats {
        dirs: c.dirs.load(Ordering::Relaxed),
        files: c.files.load(Ordering::Relaxed),
        symlinks: c.symlinks.load(Ordering::Relaxed),
        specials: c.specials.load(Ordering::Relaxed),
        broken: c.broken.load(Ordering::Relaxed),
        dir_segments: c.dir_segments.load(Ordering::Relaxed),
    }
}

impl Walker {
    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<QueuedDir>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn visited_insert(&self, id: ObjectId) -> bool {
        self.visited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id)
    }

    async fn send(&self, e: Event) {
        if self.tx.send(e).await.is_err() {
            self.closed.store(true, Ordering::Relaxed);
        }
    }

    fn count(&self, node: &InodeNode) {
        let c = match node.btype() {
            Btype::Dir => &self.counters.dirs,
            Btype::Reg => &self.counters.files,
            Btype::Lnk => &self.counters.symlinks,
            _ => &self.counters.specials,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// All inodes share one fsid and one containerid.
    fn note_ids(&self, path: &NsPath, node: &InodeNode) {
        let v = &node.inode.vattr;
        let mut g = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        match &*g {
            None => *g = Some((v.fsid, v.containerid, path.clone())),
            Some((fsid, cid, first)) => {
                if *fsid != v.fsid || *cid != v.containerid {
                    self.sink.error(
                        Check::Vattr,
                        Some(path),
                        Some(&node.blob_text()),
                        format!(
                            "fsid {:#x} / containerid {:#x} differ from {:#x} / {:#x} of {first}",
                            v.fsid, v.containerid, fsid, cid
                        ),
                    );
                }
            }
        }
    }

    fn note_link(&self, path: &NsPath, node: &InodeNode, dir: ObjectId) {
        let Some(back) = &node.inode.back else { return };
        let mut g = self.links.lock().unwrap_or_else(|e| e.into_inner());
        if back.len() == 1 && node.inode.vattr.nlink == 1 && !g.multi.contains_key(&node.id) {
            let Some(first) = g.simple.remove(&node.id) else {
                g.simple.insert(node.id, dir);
                return;
            };
            g.multi.insert(
                node.id,
                LinkRecord {
                    path: path.clone(),
                    blob: node.blob_text(),
                    back: back.clone(),
                    found: vec![first],
                },
            );
        }
        g.multi
            .entry(node.id)
            .or_insert_with(|| LinkRecord {
                path: path.clone(),
                blob: node.blob_text(),
                back: back.clone(),
                found: Vec::new(),
            })
            .found
            .push(dir);
    }

    /// BACK lists, per directory, as many links as the directory has
    /// entries for the handle, and nlink counts them all.
    fn finish_links(&self) {
        let g = self.links.lock().unwrap_or_else(|e| e.into_inner());
        for (id, r) in &g.multi {
            let mut back = r.back.clone();
            let mut found = r.found.clone();
            back.sort();
            found.sort();
            if back != found {
                self.sink.error(
                    Check::Nlink,
                    Some(&r.path),
                    Some(&r.blob),
                    format!(
                        "handle {id} is named by {} directory entries (in {}) but BACK has {} entries (for {})",
                        found.len(),
                        summarize(&found),
                        back.len(),
                        summarize(&back)
                    ),
                );
            }
        }
    }

    async fn process_dir(&self, d: QueuedDir) {
        let node = match d.node {
            Some(n) => n,
            None => match self.c.locate(&d.id).await {
                Ok(Some(l)) => match self.c.fetch_inode(&d.id, &l.name).await {
                    Ok(n) => Arc::new(n),
                    Err(e) => {
                        report(
                            &self.sink,
                            &d.path,
                            Check::MissingInode,
                            "reading the directory again",
                            &e,
                        );
                        return;
                    }
                },
                _ => {
                    self.sink.error(
                        Check::MissingInode,
                        Some(&d.path),
                        None,
                        format!("directory {} vanished during the walk", d.id),
                    );
                    return;
                }
            },
        };
        let dir_blob = node.blob_text();
        let mut reader = DirReader::new(
            self.c.clone(),
            self.sink.clone(),
            d.path.clone(),
            node.clone(),
            d.parent,
            self.opts.readahead,
        );
        let mut entries = 0u64;
        let mut subdirs = 0u64;
        while let Some(batch) = reader.next_batch().await {
            if self.closed.load(Ordering::Relaxed) {
                return;
            }
            let dir_blob: Arc<str> = Arc::from(dir_blob.as_str());
            let mut fetched = stream::iter(batch)
                .map(|e| {
                    let path = d.path.join(&e.name);
                    tokio::spawn(fetch_child(
                        self.c.clone(),
                        self.sink.clone(),
                        dir_blob.clone(),
                        path,
                        e,
                    ))
                })
                .buffered(self.opts.parallel.max(1));
            while let Some(joined) = fetched.next().await {
                let (e, path, child) = match joined {
                    Ok(x) => x,
                    Err(err) => {
                        self.sink.error(
                            Check::Store,
                            Some(&d.path),
                            Some(&dir_blob),
                            format!("reading an entry failed: {err}"),
                        );
                        continue;
                    }
                };
                entries += 1;
                let Some(child) = child else {
                    self.counters.broken.fetch_add(1, Ordering::Relaxed);
                    if e.id
                        .as_filehandle()
                        .is_some_and(|f| f.ftype_code() == Ftype::Dir as u8)
                    {
                        subdirs += 1;
                    }
                    self.send(Event::Broken {
                        path,
                        parent: node.id,
                        id: e.id,
                    })
                    .await;
                    continue;
                };
                check_inode(&self.sink, &path, &child, Some(&node.id));
                self.note_ids(&path, &child);
                self.count(&child);
                if child.id != e.id {
                    // Cannot happen: fetch_inode keeps the id it was asked for.
                    continue;
                }
                if child.is_dir() {
                    subdirs += 1;
                    if !self.visited_insert(child.id) {
                        self.sink.error(
                            Check::Dirents,
                            Some(&path),
                            Some(&dir_blob),
                            format!(
                                "entry '{}' points at directory {} which is already reachable elsewhere (directory hard link or cycle; not followed)",
                                escape_bytes(&e.name),
                                child.id
                            ),
                        );
                        continue;
                    }
                    self.send(Event::Node {
                        path: path.clone(),
                        parent: Some(node.id),
                        node: child.clone(),
                    })
                    .await;
                    let mut q = self.lock_queue();
                    let keep = q.len() < self.opts.keep_nodes;
                    q.push(QueuedDir {
                        path,
                        id: child.id,
                        parent: node.id,
                        node: keep.then_some(child),
                    });
                    drop(q);
                    self.notify.notify_one();
                } else {
                    self.note_link(&path, &child, node.id);
                    self.send(Event::Node {
                        path,
                        parent: Some(node.id),
                        node: child,
                    })
                    .await;
                }
            }
        }
        self.counters
            .dir_segments
            .fetch_add(reader.segments(), Ordering::Relaxed);
        let v = &node.inode.vattr;
        if u64::from(v.nlink) != 2 + subdirs {
            self.sink.error(
                Check::Nlink,
                Some(&d.path),
                Some(&dir_blob),
                format!(
                    "directory nlink is {}, expected 2 + {subdirs} subdirectories = {}",
                    v.nlink,
                    2 + subdirs
                ),
            );
        }
        if reader.complete()
            && node.blob.version() == FIRST_VERSION
            && v.length != reader.entries_file_size()
        {
            self.sink.warn(
                Check::Vattr,
                Some(&d.path),
                Some(&dir_blob),
                format!(
                    "directory size {} differs from its entries-file size {} (spec 5.1)",
                    v.length,
                    reader.entries_file_size()
                ),
            );
        }
        self.send(Event::DirDone {
            path: d.path,
            id: node.id,
            entries,
            subdirs,
        })
        .await;
    }
}

/// Finds and reads the inode an entry points at (run as its own task, so
/// decoding spreads over the runtime's threads).
async fn fetch_child(
    c: Arc<Container>,
    sink: Arc<ProblemSink>,
    dir_blob: Arc<str>,
    path: NsPath,
    e: Dirent,
) -> (Dirent, NsPath, Option<Arc<InodeNode>>) {
    let child = fetch_child_inner(&c, &sink, &dir_blob, &path, &e).await;
    (e, path, child)
}

async fn fetch_child_inner(
    c: &Container,
    sink: &ProblemSink,
    dir_blob: &str,
    path: &NsPath,
    e: &Dirent,
) -> Option<Arc<InodeNode>> {
    let located = match c.locate(&e.id).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            sink.error(
                    Check::MissingInode,
                    Some(path),
                    Some(dir_blob),
                    format!(
                        "directory entry '{}' points at handle {}, which has no inode blob (no blob named {}*)",
                        escape_bytes(&e.name),
                        e.id,
                        crate::clfs::name::BlobName::id_prefix_v2(&e.id)
                    ),
                );
            return None;
        }
        Err(err) => {
            report(sink, path, Check::MissingInode, "locating the inode", &err);
            return None;
        }
    };
    for r in located.rivals() {
        sink.error(
            Check::Version,
            Some(path),
            Some(&r.to_string()),
            format!(
                "has the same version {} as {}; which one is current is undefined",
                r.version(),
                located.name
            ),
        );
    }
    match c.fetch_inode(&e.id, &located.name).await {
        Ok(n) => Some(Arc::new(n)),
        Err(err) => {
            report(sink, path, Check::MissingInode, "reading the inode", &err);
            None
        }
    }
}

fn summarize(ids: &[ObjectId]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j < ids.len() && ids[j] == ids[i] {
            j += 1;
        }
        parts.push(if j - i > 1 {
            format!("{} x{}", ids[i], j - i)
        } else {
            ids[i].to_string()
        });
        i = j;
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}
