//! Putting objects into the store, shared by the load and the sync: blob
//! puts with progress counting, and a regular file's data (16 KiB inline,
//! 8 MiB segments a few in flight, indirect blocks) read from a local
//! file.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Semaphore;

use crate::clfs::envelope::Compression;
use crate::clfs::handle::{Bmap, DataBack};
use crate::clfs::id::ObjectId;
use crate::clfs::layout::{self, BlockMapBuilder};
use crate::clfs::name::{self, BlobName, FIRST_VERSION};
use crate::clfs::object::encode_data_segment;
use crate::source::scan;
use crate::store::{self, BlobStore, StoreError};

use super::build::{self, Blob, IdDeriver};
use super::progress::Stats;

/// Segment uploads in flight per file.
const SEGMENTS_PER_FILE: usize = 4;

/// A failure of one object, recorded against it.
pub type ObjResult<T> = Result<T, String>;

/// What a file's data became: the inline first piece and the block map
/// of the segments already in the store.
#[derive(Debug)]
pub struct FileData {
    /// The first 16 KiB (or less), for the inode's DATA handle.
    pub first: Vec<u8>,
    /// Bytes read in all.
    pub total: u64,
    /// The block map (block 0 = the inode).
    pub bmap: Bmap,
    /// Data segments written.
    pub segments: u64,
}

/// Writes blobs into one store, bounding CPU work and segment buffers.
#[derive(Debug)]
pub struct Writer {
    store: Arc<dyn BlobStore>,
    stats: Arc<Stats>,
    compression: Compression,
    segment_buffers: Semaphore,
    cpu: Semaphore,
    /// Try reading a file's start from the caches on the calling thread.
    cached_reads: bool,
}

impl Writer {
    /// A writer into `store` with `segment_buffers` 8 MiB buffers at most.
    pub fn new(
        store: Arc<dyn BlobStore>,
        stats: Arc<Stats>,
        compression: Compression,
        segment_buffers: usize,
    ) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Writer {
            store,
            stats,
            compression,
            segment_buffers: Semaphore::new(segment_buffers.max(1)),
            cpu: Semaphore::new(cpus.max(2)),
            cached_reads: false,
        }
    }

    /// When `source` is on a local disk file system, a file's first piece
    /// is first tried from the caches on the calling thread (see
    /// [`scan::read_start_cached`]) and read by a blocking thread only if
    /// that would wait: for a small file already in the page cache, that
    /// saves the two thread hand-offs of a blocking task.
    pub fn with_cached_reads_under(mut self, source: &Path) -> Self {
        self.cached_reads = scan::is_local_disk_fs(source);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    /// The compression of every object.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Puts one blob and counts it.
    pub async fn put(&self, name: &BlobName, body: Vec<u8>) -> Result<(), StoreError> {
        let key = store::BlobName::new(name.to_string())?;
        let len = body.len() as u64;
        self.store.put(&key, Bytes::from(body)).await?;
        tracing::debug!("put {name}");
        self.stats.blobs_put.fetch_add(1, Ordering::Relaxed);
        self.stats.body_bytes.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    /// Puts blobs, a few at a time; the first failure ends it.
    pub async fn put_all(&self, blobs: Vec<Blob>) -> ObjResult<()> {
        let mut puts = FuturesUnordered::new();
        for b in blobs {
            puts.push(async move { self.put(&b.name, b.body).await.map_err(|e| e.to_string()) });
            if puts.len() >= SEGMENTS_PER_FILE {
                if let Some(r) = puts.next().await {
                    r?;
                }
            }
        }
        while let Some(r) = puts.next().await {
            r?;
        }
        Ok(())
    }

    /// Deletes a blob; a missing blob is fine, another failure a warning.
    /// True when the blob is gone.
    pub async fn delete_quietly(&self, name: &str) -> bool {
        let res = match store::BlobName::new(name) {
            Ok(k) => self.store.delete(&k).await,
            Err(e) => Err(e),
        };
        match res {
            Ok(()) => true,
            Err(e) if e.is_not_found() => true,
            Err(e) => {
                tracing::warn!("could not delete {name}: {e}");
                false
            }
        }
    }

    /// Reads the regular file at `path` to its end, or to `limit` bytes,
    /// and writes its data segments and indirect blocks (ids from
    /// `derive`, owner `id`, DATABACK ctime `ctime`). The inode is the
    /// caller's to write, last.
    pub async fn file_data(
        &self,
        id: &ObjectId,
        path: &Path,
        limit: u64,
        ctime: u32,
        derive: &IdDeriver,
    ) -> ObjResult<FileData> {
        let want =
            move |read: u64, piece: u32| limit.saturating_sub(read).min(u64::from(piece)) as usize;
        let cpu = self.cpu.acquire().await.map_err(|e| e.to_string())?;
        let first_len = want(0, layout::FIRST_SEGMENT_BYTES);
        let cached = if self.cached_reads {
            scan::read_start_cached(path, first_len)
        } else {
            None
        };
        let (mut file, first) = match cached {
            Some(read) => read,
            None => {
                let p2 = path.to_path_buf();
                tokio::task::spawn_blocking(move || -> std::io::Result<_> {
                    let mut f = scan::open_regular(&p2)?;
                    let mut first = vec![0u8; first_len];
                    let n = scan::read_full(&mut f, &mut first)?;
                    first.truncate(n);
                    Ok((f, first))
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("cannot read: {e}"))?
            }
        };
        drop(cpu);
        let mut total = first.len() as u64;
        let mut bm = BlockMapBuilder::new(*id);
        let mut n_ind = 0u64;
        let mut k = 0u64;
        let mut puts = FuturesUnordered::new();
        if first.len() == layout::FIRST_SEGMENT_BYTES as usize {
            loop {
                let piece = want(total, layout::DATA_SEGMENT_BYTES);
                if piece == 0 {
                    break;
                }
                let permit = self
                    .segment_buffers
                    .acquire()
                    .await
                    .map_err(|e| e.to_string())?;
                let cpu = self.cpu.acquire().await.map_err(|e| e.to_string())?;
                let databack = DataBack {
                    ctime,
                    offset: layout::data_segment_offset(k + 1),
                    owner: *id,
                };
                let compression = self.compression;
                let (f, n, body) = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
                    let mut buf = vec![0u8; piece];
                    let n = scan::read_full(&mut file, &mut buf)?;
                    if n == 0 {
                        return Ok((file, 0, Vec::new()));
                    }
                    let body = encode_data_segment(&buf[..n], &databack, compression)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    Ok((file, n, body))
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("cannot read: {e}"))?;
                drop(cpu);
                file = f;
                if n == 0 {
                    break;
                }
                k += 1;
                total += n as u64;
                let sid = derive.id(id, b"seg", k);
                let name = BlobName::v2(sid, name::Btype::Segment, id, FIRST_VERSION);
                puts.push(Box::pin(async move {
                    let r = self.put(&name, body).await.map_err(|e| e.to_string());
                    drop(permit);
                    r
                }) as BoxFuture<'_, ObjResult<()>>);
                let mut new_ind = || {
                    n_ind += 1;
                    derive.id(id, b"ind", n_ind)
                };
                let blocks = bm.push(sid, &mut new_ind).map_err(|e| e.to_string())?;
                for b in build::indirect_blobs(blocks, id, ctime, self.compression)
                    .map_err(|e| e.to_string())?
                {
                    puts.push(Box::pin(async move {
                        self.put(&b.name, b.body).await.map_err(|e| e.to_string())
                    }));
                }
                while puts.len() >= SEGMENTS_PER_FILE {
                    if let Some(r) = puts.next().await {
                        r?;
                    }
                }
                if n < layout::DATA_SEGMENT_BYTES as usize {
                    break;
                }
            }
        }
        while let Some(r) = puts.next().await {
            r?;
        }
        let mut new_ind = || {
            n_ind += 1;
            derive.id(id, b"ind", n_ind)
        };
        let (blocks, direct, roots) = bm.finish(&mut new_ind);
        self.put_all(
            build::indirect_blobs(blocks, id, ctime, self.compression)
                .map_err(|e| e.to_string())?,
        )
        .await?;
        Ok(FileData {
            first,
            total,
            bmap: layout::bmap(false, direct, roots),
            segments: k,
        })
    }
}
