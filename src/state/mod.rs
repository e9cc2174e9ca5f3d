//! The namespace database (RocksDB): objects discovered by a scan, their
//! directory entries and back-pointers, the work queues and the job's
//! parameters. Layout in [`keys`]; one write batch per unit of work.

pub mod keys;
pub use crate::records::load as record;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, DB};
use serde::{Deserialize, Serialize};

use crate::clfs::bytes::{ByteReader, ByteWriter};
use crate::clfs::handle::Dirent;
use crate::clfs::id::ObjectId;

pub use keys::Queue;
pub use record::{ObjRecord, ObjState, StatTime};

/// Errors of the namespace database.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// RocksDB failed.
    #[error("state database {path}: {source}")]
    Db {
        /// The database folder.
        path: PathBuf,
        /// The cause.
        source: rocksdb::Error,
    },
    /// A stored value does not decode.
    #[error("state database {path}: corrupt {what}: {detail}")]
    Corrupt {
        /// The database folder.
        path: PathBuf,
        /// Which value.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// A file-system operation on the state folder failed.
    #[error("state path {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result alias.
pub type StateResult<T> = Result<T, StateError>;

/// Format of the state folder; a resume refuses any other value.
pub const STATE_FORMAT: u32 = 1;

/// Load phases (spec §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Phase {
    /// Creating the state and the bucket object.
    Init,
    /// Scanning and writing objects.
    Transfer,
    /// Rewriting provisional inodes under their final owners.
    Reconcile,
    /// Deleting provisional and older blobs.
    Cleanup,
    /// Logs, bucket attributes, publishing the root.
    Finalize,
    /// Finished.
    Done,
}

impl Phase {
    /// Upper-case name, as the reference logs it.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Init => "INIT",
            Phase::Transfer => "TRANSFER",
            Phase::Reconcile => "RECONCILE",
            Phase::Cleanup => "CLEANUP",
            Phase::Finalize => "FINALIZE",
            Phase::Done => "DONE",
        }
    }
}

/// The job's parameters, fixed when the load is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// [`STATE_FORMAT`].
    pub format: u32,
    /// Tool version that created the state.
    pub created_by: String,
    /// Per-load container id (`[1, 2^32-1]`).
    pub containerid: u32,
    /// Per-load fsid (`[1, 2^32-1]`).
    pub fsid: u32,
    /// `LZ4` or `DISABLED`.
    pub compression: String,
    /// Hard-link preservation.
    pub preserve_hardlinks: bool,
    /// Source root as typed, raw bytes in hex.
    pub source_root_hex: String,
    /// Canonical source root (absolute), hex of raw bytes.
    pub source_abs_hex: String,
    /// Target container URL with any secret removed.
    pub target: String,
    /// Current phase.
    pub phase: Phase,
    /// UUID of the bucket object.
    pub bucket_uuid: String,
    /// Secret for deriving segment and indirect-block ids (hex).
    pub id_secret_hex: String,
}

const META_KEY: &[u8] = b"job";
const FHSEQ_KEY: &[u8] = b"fhseq";
const PROBLEM_PREFIX: &[u8] = b"problem/";
/// Sequence numbers are reserved in blocks of this size.
const FHSEQ_BLOCK: u64 = 10_000;
/// First sequence number of a load is `FHSEQ_START + 1`.
const FHSEQ_START: u64 = 1_000;

/// The open namespace database.
pub struct Namespace {
    db: DB,
    path: PathBuf,
    order: AtomicU64,
    seq: Mutex<(u64, u64)>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("path", &self.path)
            .finish()
    }
}

/// A unit of work: applied atomically by [`Namespace::commit`].
#[derive(Default)]
pub struct Batch {
    wb: WriteBatch,
}

/// Block cache shared by all column families.
const BLOCK_CACHE_BYTES: usize = 8 << 20;

impl Namespace {
    fn db_err(&self, source: rocksdb::Error) -> StateError {
        StateError::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn options(cache: &rocksdb::Cache) -> Options {
        let mut o = Options::default();
        // One small block cache for every column family (by default each
        // gets its own, which full scans fill: 150 MiB at 200,000 files).
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(cache);
        // Index blocks count against that cache too (held apart, they grow
        // with the number of table files, i.e. with the tree).
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        o.set_block_based_table_factory(&table);
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.set_compression_type(rocksdb::DBCompressionType::Lz4);
        o.increase_parallelism(2);
        // Memory bounded independently of the tree: small memtables per
        // column family and a cap on all of them together (the defaults,
        // 64 MiB per memtable, let a 200,000-file load grow to 150 MiB).
        o.set_write_buffer_size(4 << 20);
        o.set_max_write_buffer_number(2);
        o.set_db_write_buffer_size(16 << 20);
        o
    }

    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> StateResult<Self> {
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let cfs = keys::ALL_CFS
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, Self::options(&cache)));
        let db = DB::open_cf_descriptors(&Self::options(&cache), dir, cfs).map_err(|source| {
            StateError::Db {
                path: dir.to_path_buf(),
                source,
            }
        })?;
        let ns = Namespace {
            db,
            path: dir.to_path_buf(),
            order: AtomicU64::new(0),
            seq: Mutex::new((0, 0)),
        };
        let next = ns.max_queue_order()? + 1;
        ns.order.store(next, Ordering::Relaxed);
        Ok(ns)
    }

    /// Folder of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, name: &str) -> StateResult<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| StateError::Corrupt {
            path: self.path.clone(),
            what: "column family",
            detail: format!("{name} is missing"),
        })
    }

    fn max_queue_order(&self) -> StateResult<u64> {
        let cf = self.cf(keys::CF_QUEUE)?;
        let mut max = 0;
        for q in [Queue::Scan, Queue::Write, Queue::Reconcile, Queue::Cleanup] {
            let mut it = self.db.raw_iterator_cf(cf);
            it.seek_for_prev([
                q as u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ]);
            if let Some(k) = it.key() {
                if let Some((qb, order, _)) = keys::parse_queue_key(k) {
                    if qb == q as u8 {
                        max = max.max(order);
                    }
                }
            }
        }
        Ok(max)
    }

    /// Reads the job parameters (`None` before they were written).
    pub fn meta(&self) -> StateResult<Option<Meta>> {
        let cf = self.cf(keys::CF_META)?;
        match self.db.get_cf(cf, META_KEY).map_err(|e| self.db_err(e))? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StateError::Corrupt {
                    path: self.path.clone(),
                    what: "job parameters",
                    detail: e.to_string(),
                }),
        }
    }

    /// Writes the job parameters, durably.
    pub fn put_meta(&self, m: &Meta) -> StateResult<()> {
        let cf = self.cf(keys::CF_META)?;
        let v = serde_json::to_vec(m).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            what: "job parameters",
            detail: e.to_string(),
        })?;
        let mut wb = WriteBatch::default();
        wb.put_cf(cf, META_KEY, v);
        self.write_sync(wb)
    }

    fn write_sync(&self, wb: WriteBatch) -> StateResult<()> {
        let mut o = rocksdb::WriteOptions::default();
        o.set_sync(true);
        self.db.write_opt(wb, &o).map_err(|e| self.db_err(e))
    }

    /// The next filehandle sequence number. Numbers are reserved durably in
    /// blocks, so a crash skips the rest of a block but never repeats one.
    pub fn next_seq(&self) -> StateResult<u64> {
        let mut g = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        if g.0 >= g.1 {
            let cf = self.cf(keys::CF_META)?;
            let hwm = match self.db.get_cf(cf, FHSEQ_KEY).map_err(|e| self.db_err(e))? {
                Some(v) if v.len() == 8 => u64::from_le_bytes(v[..8].try_into().unwrap_or([0; 8])),
                _ => FHSEQ_START,
            };
            let mut wb = WriteBatch::default();
            wb.put_cf(cf, FHSEQ_KEY, (hwm + FHSEQ_BLOCK).to_le_bytes());
            self.write_sync(wb)?;
            *g = (hwm, hwm + FHSEQ_BLOCK);
        }
        g.0 += 1;
        Ok(g.0)
    }

    /// Reads an object record.
    pub fn get(&self, id: &ObjectId) -> StateResult<Option<ObjRecord>> {
        let cf = self.cf(keys::CF_OBJ)?;
        match self
            .db
            .get_cf(cf, id.as_bytes())
            .map_err(|e| self.db_err(e))?
        {
            None => Ok(None),
            Some(v) => ObjRecord::decode(&v)
                .map(Some)
                .map_err(|e| StateError::Corrupt {
                    path: self.path.clone(),
                    what: "object record",
                    detail: format!("{id}: {e}"),
                }),
        }
    }

    /// Looks up a hard-link candidate by source inode and type.
    pub fn hardlink(&self, ino: u64, ftype: u8) -> StateResult<Option<ObjectId>> {
        let cf = self.cf(keys::CF_HARDLINK)?;
        Ok(self
            .db
            .get_cf(cf, keys::hardlink_key(ino, ftype))
            .map_err(|e| self.db_err(e))?
            .and_then(|v| ObjectId::from_slice(&v)))
    }

    /// Additional back-pointers of `child`: `(parent, count)` pairs.
    pub fn backptrs(&self, child: &ObjectId) -> StateResult<Vec<(ObjectId, u32)>> {
        let cf = self.cf(keys::CF_BACKPTR)?;
        let prefix = keys::backptr_prefix(child);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            if !k.starts_with(&prefix) {
                break;
            }
            let parent = ObjectId::from_slice(&k[prefix.len()..])
                .ok_or_else(|| self.corrupt("back-pointer key"))?;
            let count = u32::from_le_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| self.corrupt("back-pointer count"))?,
            );
            out.push((parent, count));
        }
        Ok(out)
    }

    fn corrupt(&self, what: &'static str) -> StateError {
        StateError::Corrupt {
            path: self.path.clone(),
            what,
            detail: "malformed".into(),
        }
    }

    /// The stored entries of a scanned directory, in scan order.
    pub fn dirents(&self, dir: &ObjectId) -> StateResult<Vec<Dirent>> {
        let cf = self.cf(keys::CF_DIRENT)?;
        let prefix = dir.as_bytes().to_vec();
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            if !k.starts_with(&prefix) || k.len() != prefix.len() + 4 {
                break;
            }
            let mut r = ByteReader::new(&v, 0);
            let name = r
                .lv32("name")
                .map_err(|_| self.corrupt("directory entry"))?
                .to_vec();
            let id = r
                .id16("child")
                .map_err(|_| self.corrupt("directory entry"))?;
            out.push(Dirent { name, id });
        }
        Ok(out)
    }

    /// Up to `limit` items of queue `q` with order > `after`, in order.
    pub fn queue_items(
        &self,
        q: Queue,
        after: u64,
        limit: usize,
    ) -> StateResult<Vec<(u64, ObjectId)>> {
        let cf = self.cf(keys::CF_QUEUE)?;
        let mut start = vec![q as u8];
        start.extend_from_slice(&after.saturating_add(1).to_be_bytes());
        // Bound the iterator to this queue: without the bound, a seek into
        // an empty queue walks on through the next queue's deleted (popped)
        // keys, which costs more than the whole load once there are
        // thousands of them.
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_iterate_upper_bound(vec![q as u8 + 1]);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf_opt(cf, ro, IteratorMode::From(&start, Direction::Forward))
        {
            let (k, _) = item.map_err(|e| self.db_err(e))?;
            let Some((qb, order, id)) = keys::parse_queue_key(&k) else {
                return Err(self.corrupt("queue key"));
            };
            if qb != q as u8 || out.len() >= limit {
                break;
            }
            out.push((order, id));
        }
        Ok(out)
    }

    /// Number of items in queue `q`.
    pub fn queue_len(&self, q: Queue) -> StateResult<u64> {
        let mut n = 0;
        let mut after = 0;
        loop {
            let items = self.queue_items(q, after, 4096)?;
            let Some(last) = items.last() else { break };
            after = last.0;
            n += items.len() as u64;
        }
        Ok(n)
    }

    /// Every object record, in id order (for summaries and finalize).
    pub fn for_each_obj(&self, mut f: impl FnMut(&ObjectId, &ObjRecord)) -> StateResult<()> {
        let cf = self.cf(keys::CF_OBJ)?;
        // A full scan: keep it out of the block cache.
        let mut ro = rocksdb::ReadOptions::default();
        ro.fill_cache(false);
        for item in self.db.iterator_cf_opt(cf, ro, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            let id = ObjectId::from_slice(&k).ok_or_else(|| self.corrupt("object key"))?;
            let rec = ObjRecord::decode(&v).map_err(|e| StateError::Corrupt {
                path: self.path.clone(),
                what: "object record",
                detail: format!("{id}: {e}"),
            })?;
            f(&id, &rec);
        }
        Ok(())
    }

    /// A new batch.
    pub fn batch(&self) -> Batch {
        Batch::default()
    }

    /// Applies a batch atomically (WAL, no fsync: a killed process loses
    /// nothing; a power cut may lose the last batches, which are redone).
    pub fn commit(&self, b: Batch) -> StateResult<()> {
        self.db.write(b.wb).map_err(|e| self.db_err(e))
    }

    /// Flushes the WAL to disk.
    pub fn sync(&self) -> StateResult<()> {
        self.db.flush_wal(true).map_err(|e| self.db_err(e))
    }

    /// Records a problem that belongs to no object (a directory entry that
    /// could not be read), durably, so that every later run still reports it.
    pub fn add_problem(&self, text: &str) -> StateResult<()> {
        let cf = self.cf(keys::CF_META)?;
        let mut k = PROBLEM_PREFIX.to_vec();
        k.extend_from_slice(&self.order.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        self.db
            .put_cf(cf, k, text.as_bytes())
            .map_err(|e| self.db_err(e))
    }

    /// Every problem recorded with [`Namespace::add_problem`], in order.
    pub fn problems(&self) -> StateResult<Vec<String>> {
        let cf = self.cf(keys::CF_META)?;
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(PROBLEM_PREFIX, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            if !k.starts_with(PROBLEM_PREFIX) {
                break;
            }
            out.push(String::from_utf8_lossy(&v).into_owned());
        }
        Ok(out)
    }

    /// Stores a record.
    pub fn put_obj(&self, b: &mut Batch, id: &ObjectId, rec: &ObjRecord) -> StateResult<()> {
        b.wb.put_cf(self.cf(keys::CF_OBJ)?, id.as_bytes(), rec.encode());
        Ok(())
    }

    /// Adds `id` to queue `q`; returns its order.
    pub fn push(&self, b: &mut Batch, q: Queue, id: &ObjectId) -> StateResult<u64> {
        let order = self.order.fetch_add(1, Ordering::Relaxed);
        b.wb.put_cf(self.cf(keys::CF_QUEUE)?, keys::queue_key(q, order, id), []);
        Ok(order)
    }

    /// Removes an item from a queue.
    pub fn pop(&self, b: &mut Batch, q: Queue, order: u64, id: &ObjectId) -> StateResult<()> {
        b.wb.delete_cf(self.cf(keys::CF_QUEUE)?, keys::queue_key(q, order, id));
        Ok(())
    }

    /// Stores entry `index` of directory `dir`.
    pub fn put_dirent(
        &self,
        b: &mut Batch,
        dir: &ObjectId,
        index: u32,
        d: &Dirent,
    ) -> StateResult<()> {
        let mut w = ByteWriter::new(Vec::with_capacity(d.name.len() + 30));
        w.u32(d.name.len() as u32);
        w.bytes(&d.name);
        w.id16(&d.id);
        b.wb.put_cf(
            self.cf(keys::CF_DIRENT)?,
            keys::dirent_key(dir, index),
            w.buf,
        );
        Ok(())
    }

    /// Deletes every stored entry of `dir`.
    pub fn delete_dirents(&self, b: &mut Batch, dir: &ObjectId) -> StateResult<()> {
        let cf = self.cf(keys::CF_DIRENT)?;
        b.wb.delete_range_cf(cf, keys::dirent_key(dir, 0), {
            let mut end = dir.as_bytes().to_vec();
            end.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff]);
            end
        });
        Ok(())
    }

    /// Sets the count of additional back-pointers from `child` to `parent`.
    pub fn put_backptr(
        &self,
        b: &mut Batch,
        child: &ObjectId,
        parent: &ObjectId,
        count: u32,
    ) -> StateResult<()> {
        b.wb.put_cf(
            self.cf(keys::CF_BACKPTR)?,
            keys::backptr_key(child, parent),
            count.to_le_bytes(),
        );
        Ok(())
    }

    /// Records a hard-link candidate.
    pub fn put_hardlink(
        &self,
        b: &mut Batch,
        ino: u64,
        ftype: u8,
        id: &ObjectId,
    ) -> StateResult<()> {
        b.wb.put_cf(
            self.cf(keys::CF_HARDLINK)?,
            keys::hardlink_key(ino, ftype),
            id.as_bytes(),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clfs::id::{Ftype, ROOT};

    #[test]
    fn batches_queues_and_sequences_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let fh = ObjectId::from_24([7; 24]);
        {
            let ns = Namespace::open(dir.path()).unwrap();
            assert_eq!(ns.next_seq().unwrap(), 1001);
            assert_eq!(ns.next_seq().unwrap(), 1002);
            let mut b = ns.batch();
            let mut rec = ObjRecord::new(Ftype::Reg, b"/x/y".to_vec(), ROOT);
            rec.size = 42;
            ns.put_obj(&mut b, &fh, &rec).unwrap();
            ns.push(&mut b, Queue::Write, &fh).unwrap();
            ns.put_dirent(
                &mut b,
                &ROOT,
                0,
                &Dirent {
                    name: b"y".to_vec(),
                    id: fh,
                },
            )
            .unwrap();
            ns.put_backptr(&mut b, &fh, &ROOT, 2).unwrap();
            ns.commit(b).unwrap();
        }
        let ns = Namespace::open(dir.path()).unwrap();
        // the rest of the first block is skipped, never reused
        assert_eq!(ns.next_seq().unwrap(), 11_001);
        assert_eq!(ns.get(&fh).unwrap().unwrap().size, 42);
        let items = ns.queue_items(Queue::Write, 0, 10).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].1, fh);
        assert!(ns.queue_items(Queue::Scan, 0, 10).unwrap().is_empty());
        assert_eq!(ns.dirents(&ROOT).unwrap()[0].id, fh);
        assert_eq!(ns.backptrs(&fh).unwrap(), vec![(ROOT, 2)]);
        let mut b = ns.batch();
        ns.pop(&mut b, Queue::Write, items[0].0, &fh).unwrap();
        ns.delete_dirents(&mut b, &ROOT).unwrap();
        // a new push orders after everything seen before
        let o = ns.push(&mut b, Queue::Write, &ROOT).unwrap();
        assert!(o > items[0].0);
        ns.commit(b).unwrap();
        assert!(ns.dirents(&ROOT).unwrap().is_empty());
        assert_eq!(ns.queue_len(Queue::Write).unwrap(), 1);
    }
}
