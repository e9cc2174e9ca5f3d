//! `export` into a plain blob container: every entry of the CLFS tree
//! becomes one blob named by its path, with its attributes in blob
//! metadata under the keys azcopy (`--preserve-posix-properties`) and
//! blobfuse2 read:
//!
//! | key | value |
//! |---|---|
//! | `permissions` | `st_mode` in decimal, type bits included (azcopy) |
//! | `posix_owner`, `posix_group` | uid, gid in decimal |
//! | `modtime`, `posix_atime`, `posix_ctime` | nanoseconds since the epoch |
//! | `posix_nlink` | link count |
//! | `hdi_isfolder` | `true` on the empty blob of a directory |
//! | `is_symlink` | `true`; the blob's contents are the link target (blobfuse2, azcopy) |
//! | `is_fifo`, `is_socket`, `is_char_dev`, `is_block_dev` | `true` on empty blobs of special files |
//! | `posix_rdev` | device number (`makedev`) of devices |
//! | `clfs_link_id` | hex handle of an inode with more than one name |
//!
//! Hard links: every name is a full copy of the contents; names of one
//! inode share `clfs_link_id`, so a restorer links the names that share it.
//! Regular files up to 16 KiB are one Put Blob; larger ones are staged as
//! Put Block (the 16 KiB inline piece, then one block per 8 MiB data
//! segment) and committed with Put Block List, so memory stays at a few
//! segments per file. The root directory has no blob. Names that are not
//! UTF-8 or not valid blob names are skipped with a warning.
//!
//! Resumable: each finished path is appended to a journal file
//! (`STATE_PATH/export-journal`, one JSON string per line) and skipped
//! when the export runs again.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use tokio::task::JoinSet;

use crate::clfs::layout::{data_segment_count, data_segment_len, FIRST_SEGMENT_BYTES};
use crate::clfs::name::Btype;
use crate::clfs::object::{InodeBody, Object};
use crate::clfs::vattr::{make_dev, ClfsTime};
use crate::store::azure::AzureStore;
use crate::store::{BlobName, BlobStore, StoreError};

use super::blocks::{Blocks, SegmentFetcher};
use super::container::{Container, InodeNode};
use super::export::{container_root, ExportError};
use super::path::NsPath;
use super::problem::{Check, Problem, ProblemSink};
use super::walk::{spawn_root_walk, Event};

/// How to export into a blob container.
#[derive(Debug, Clone)]
pub struct BlobExportOptions {
    /// Requests in flight while walking the source.
    pub parallel: usize,
    /// Entries uploaded at once.
    pub files: usize,
    /// Folder of the resume journal (created if missing).
    pub state_path: Option<PathBuf>,
    /// Read from the `tmp` root of an unfinished container.
    pub unfinished: bool,
}

/// Counts of a blob export.
#[derive(Debug, Default)]
pub struct BlobExportStats {
    /// Directory blobs written.
    pub dirs: AtomicU64,
    /// Regular-file blobs written (one per name).
    pub files: AtomicU64,
    /// Symlink blobs.
    pub symlinks: AtomicU64,
    /// Fifo, socket and device blobs.
    pub specials: AtomicU64,
    /// File bytes uploaded.
    pub bytes: AtomicU64,
    /// Entries skipped because the journal lists them as done.
    pub resumed: AtomicU64,
    /// Entries not exported (errors, invalid names).
    pub skipped: AtomicU64,
}

impl BlobExportStats {
    /// `(dirs, files, symlinks, specials, bytes, resumed, skipped)`.
    pub fn snapshot(&self) -> [u64; 7] {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            l(&self.dirs),
            l(&self.files),
            l(&self.symlinks),
            l(&self.specials),
            l(&self.bytes),
            l(&self.resumed),
            l(&self.skipped),
        ]
    }
}

/// The outcome of [`export_to_blobs`].
#[derive(Debug)]
pub struct BlobExportReport {
    /// Counts.
    pub stats: Arc<BlobExportStats>,
    /// Errors.
    pub errors: u64,
    /// Warnings.
    pub warnings: u64,
    /// The problems.
    pub problems: Vec<Problem>,
}

/// The journal file's name inside the state path.
pub const JOURNAL: &str = "export-journal";

struct Journal {
    file: Option<Mutex<File>>,
    done: HashSet<String>,
}

impl Journal {
    fn open(dir: Option<&Path>) -> io::Result<Journal> {
        let Some(dir) = dir else {
            return Ok(Journal {
                file: None,
                done: HashSet::new(),
            });
        };
        std::fs::create_dir_all(dir)?;
        let path = dir.join(JOURNAL);
        let mut done = HashSet::new();
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).lines() {
                // A torn last line (crash while appending) is not finished.
                if let Ok(name) = serde_json::from_str::<String>(&line?) {
                    done.insert(name);
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Journal {
            file: Some(Mutex::new(file)),
            done,
        })
    }

    fn record(&self, name: &str) -> io::Result<()> {
        if let Some(f) = &self.file {
            let mut line = serde_json::to_string(name).map_err(io::Error::other)?;
            line.push('\n');
            f.lock()
                .unwrap_or_else(|e| e.into_inner())
                .write_all(line.as_bytes())?;
        }
        Ok(())
    }
}

fn ns(t: ClfsTime) -> String {
    (u128::from(t.sec) * 1_000_000_000 + u128::from(t.nsec)).to_string()
}

/// The blob metadata of an inode (see the module documentation).
pub fn metadata(node: &InodeNode) -> Vec<(String, String)> {
    let v = &node.inode.vattr;
    let mut m: Vec<(String, String)> = vec![
        ("permissions".into(), v.mode.to_string()),
        ("posix_owner".into(), v.uid.to_string()),
        ("posix_group".into(), v.gid.to_string()),
        ("modtime".into(), ns(v.mtime)),
        ("posix_atime".into(), ns(v.atime)),
        ("posix_ctime".into(), ns(v.ctime)),
        ("posix_nlink".into(), v.nlink.to_string()),
    ];
    let flag = |k: &str| (k.to_string(), "true".to_string());
    match node.btype() {
        Btype::Dir => m.push(flag("hdi_isfolder")),
        Btype::Lnk => m.push(flag("is_symlink")),
        Btype::Fifo => m.push(flag("is_fifo")),
        Btype::Sock => m.push(flag("is_socket")),
        Btype::Chr | Btype::Blk => {
            m.push(flag(if node.btype() == Btype::Chr {
                "is_char_dev"
            } else {
                "is_block_dev"
            }));
            m.push((
                "posix_rdev".into(),
                make_dev(v.rdev_major, v.rdev_minor).to_string(),
            ));
        }
        _ => {}
    }
    if node.btype() != Btype::Dir && v.nlink > 1 {
        m.push(("clfs_link_id".into(), node.id.to_string()));
    }
    m
}

/// Retries transient store errors a few times with backoff.
async fn retry<T, F, Fut>(mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut delay = Duration::from_millis(200);
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if e.is_transient() && attempt < 6 => {
                attempt += 1;
                tokio::time::sleep(e.retry_after().unwrap_or(delay)).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            r => return r,
        }
    }
}

fn block_id(k: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("clfs{k:012}"))
}

#[derive(Clone)]
struct Uploader {
    c: Arc<Container>,
    dst: Arc<AzureStore>,
    sink: Arc<ProblemSink>,
    stats: Arc<BlobExportStats>,
    journal: Arc<Journal>,
}

impl Uploader {
    async fn entry(self, path: NsPath, node: Arc<InodeNode>) {
        let text = match path.relative_os().to_str() {
            Some(t) => t.to_string(),
            None => {
                self.sink.warn(
                    Check::Skipped,
                    Some(&path),
                    None,
                    "not exported: blob names must be UTF-8",
                );
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        if self.journal.done.contains(&text) {
            self.stats.resumed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let name = match BlobName::new_plain(text.clone()) {
            Ok(n) => n,
            Err(e) => {
                self.sink.warn(
                    Check::Skipped,
                    Some(&path),
                    None,
                    format!("not exported: {e}"),
                );
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let meta = metadata(&node);
        let r = match node.btype() {
            Btype::Reg => self.file(&name, &path, &node, &meta).await,
            Btype::Lnk => {
                let target = match &node.inode.body {
                    InodeBody::Data(d) => Bytes::copy_from_slice(d),
                    _ => Bytes::new(),
                };
                self.put(&name, target, &meta).await
            }
            _ => self.put(&name, Bytes::new(), &meta).await,
        };
        match r {
            Ok(()) => {
                let counter = match node.btype() {
                    Btype::Dir => &self.stats.dirs,
                    Btype::Reg => &self.stats.files,
                    Btype::Lnk => &self.stats.symlinks,
                    _ => &self.stats.specials,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self.journal.record(&text) {
                    self.sink.error(
                        Check::Local,
                        Some(&path),
                        None,
                        format!("cannot append to the export journal: {e}"),
                    );
                }
            }
            Err(message) => {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                self.sink
                    .error(Check::Store, Some(&path), Some(name.as_str()), message);
            }
        }
    }

    async fn put(
        &self,
        name: &BlobName,
        data: Bytes,
        meta: &[(String, String)],
    ) -> Result<(), String> {
        retry(|| self.dst.put_with_metadata(name, data.clone(), meta))
            .await
            .map_err(|e| e.to_string())
    }

    async fn file(
        &self,
        name: &BlobName,
        path: &NsPath,
        node: &InodeNode,
        meta: &[(String, String)],
    ) -> Result<(), String> {
        let v = &node.inode.vattr;
        let length = v.length;
        let inline_len = length.min(u64::from(FIRST_SEGMENT_BYTES)) as usize;
        let inline = match &node.inode.body {
            InodeBody::Data(d) if d.len() >= inline_len => Bytes::copy_from_slice(&d[..inline_len]),
            _ => return Err("the inode's inline data is shorter than the file".into()),
        };
        let expected = data_segment_count(length);
        if expected == 0 {
            self.put(name, inline, meta).await?;
            self.stats.bytes.fetch_add(length, Ordering::Relaxed);
            return Ok(());
        }
        let mut ids = vec![block_id(0)];
        retry(|| self.dst.put_block(name, &ids[0], inline.clone()))
            .await
            .map_err(|e| e.to_string())?;
        let b = &node.inode.bmap;
        let blocks = Blocks::new(
            self.c.clone(),
            self.sink.clone(),
            path.clone(),
            node.id,
            v.ctime.sec,
            b.direct.clone(),
            b.indirect_roots.clone(),
        );
        let mut fetcher = SegmentFetcher::new(blocks, 2);
        while let Some(f) = fetcher.next().await {
            let k = f.block.index;
            if k > expected {
                return Err(format!(
                    "the block map has more than {expected} data segments"
                ));
            }
            let data = match f.result {
                Ok((_, Object::DataSegment(seg))) => seg.data,
                Ok((n, other)) => {
                    return Err(format!(
                        "{n}: expected a data segment, found a {:?}",
                        other.kind()
                    ))
                }
                Err(e) => return Err(format!("data segment {k}: {e}")),
            };
            if data.len() as u64 != data_segment_len(length, k) {
                return Err(format!(
                    "data segment {k} holds {} bytes, expected {}",
                    data.len(),
                    data_segment_len(length, k)
                ));
            }
            let id = block_id(k);
            let body = Bytes::from(data);
            retry(|| self.dst.put_block(name, &id, body.clone()))
                .await
                .map_err(|e| e.to_string())?;
            ids.push(id);
        }
        if (ids.len() as u64) - 1 != expected {
            return Err(format!(
                "{} of {expected} data segments found",
                ids.len() - 1
            ));
        }
        retry(|| self.dst.put_block_list(name, &ids, meta))
            .await
            .map_err(|e| e.to_string())?;
        self.stats.bytes.fetch_add(length, Ordering::Relaxed);
        Ok(())
    }
}

/// Exports the container in `src` into the blob container `dst`, calling
/// `progress` at most once a second (and once at the end).
pub async fn export_to_blobs(
    src: Arc<dyn BlobStore>,
    dst: Arc<AzureStore>,
    opts: &BlobExportOptions,
    mut progress: impl FnMut(&BlobExportStats),
) -> Result<BlobExportReport, ExportError> {
    let journal = Journal::open(opts.state_path.as_deref()).map_err(|source| ExportError::Io {
        path: opts.state_path.clone().unwrap_or_default(),
        source,
    })?;
    let c = Arc::new(Container::indexed(src).await?);
    let root = container_root(&c, opts.unfinished).await?;
    let sink = Arc::new(ProblemSink::default());
    let (mut rx, walker) = spawn_root_walk(c.clone(), sink.clone(), root, opts.parallel);
    let stats = Arc::new(BlobExportStats::default());
    let up = Uploader {
        c,
        dst,
        sink: sink.clone(),
        stats: stats.clone(),
        journal: Arc::new(journal),
    };
    let mut tasks = JoinSet::new();
    let mut last = Instant::now();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Node { path, node, .. } => {
                if path.is_root() {
                    continue;
                }
                while tasks.len() >= opts.files.max(1) {
                    let _ = tasks.join_next().await;
                }
                tasks.spawn(up.clone().entry(path, node));
            }
            Event::Broken { .. } => {
                stats.skipped.fetch_add(1, Ordering::Relaxed);
            }
            Event::DirDone { .. } => {}
        }
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            progress(&stats);
        }
    }
    while tasks.join_next().await.is_some() {}
    if let Err(e) = walker.await {
        sink.error(
            Check::Store,
            None,
            None,
            format!("the namespace walk failed: {e}"),
        );
    }
    progress(&stats);
    Ok(BlobExportReport {
        stats,
        errors: sink.errors(),
        warnings: sink.warnings(),
        problems: sink.snapshot(),
    })
}
