//! The load engine: scans directories and writes objects concurrently
//! (bounded), then reconciles, cleans up and publishes.
//!
//! Work lives in the namespace database's queues, never in memory: a scan
//! commits a directory's children and entries in one batch; a write commits
//! the object's new state in one batch after the store acknowledged every
//! blob. A crash therefore loses at most the work in flight, which is
//! redone on resume (segment and indirect-block ids are derived, so a redone
//! write overwrites its own blobs).

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};

use crate::clfs::envelope::{self, Compression};
use crate::clfs::handle::{Bmap, Dirent};
use crate::clfs::id::{FilehandleMaker, Ftype, ObjectId, INODE_INPROGRESS, ROOT};
use crate::clfs::name::{self, BlobName, FIRST_VERSION};
use crate::clfs::object::{Bucket, Inode, InodeBody, Object};
use crate::source::scan;
use crate::state::{Batch, Meta, Namespace, ObjRecord, ObjState, Phase, Queue};
use crate::store::{self, BlobStore, StoreError};

use super::build::{self, IdDeriver, LoadIds};
use super::job::parse_compression;
use super::progress::Stats;
use super::writer::{ObjResult, Writer};
use super::LoadError;

/// Most back-pointers one inode may have (spec §5.6).
pub const MAX_BACKPOINTERS: u32 = 1023;
pub use super::build::MAX_SYMLINK;
/// Objects whose state commits wait for one store flush.
const COMMIT_GROUP: usize = 8192;
/// Longest an acknowledged object waits for its state commit. A flush of a
/// local container is a `syncfs`, which waits for the device to flush its
/// cache: fewer and larger groups are what makes small files fast.
const COMMIT_GROUP_AGE: Duration = Duration::from_secs(2);

/// State commits of acknowledged objects, waiting for the store flush that
/// makes their blobs durable (a local directory syncs once per group
/// instead of once per blob).
struct PendingCommits {
    batch: Batch,
    objects: usize,
    since: Instant,
}

/// Tuning of a run.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Directories scanned at once.
    pub scan_workers: usize,
    /// Objects written at once.
    pub write_workers: usize,
    /// 8 MiB segment buffers alive at once (bounds memory for big files).
    pub segment_buffers: usize,
    /// Stop a phase after this many errors (0: never).
    pub max_errors: u64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            scan_workers: 4,
            write_workers: 64,
            segment_buffers: 16,
            max_errors: 50,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Published; every object written.
    Complete,
    /// Published, but some objects or entries failed.
    CompleteWithErrors(u64),
    /// The load had already finished.
    AlreadyDone,
    /// Stopped before publishing (`--max-errors`, or the root failed).
    Aborted(String),
}

/// A load in progress.
pub struct Engine {
    ns: Arc<Namespace>,
    store: Arc<dyn BlobStore>,
    meta: Mutex<Meta>,
    opts: EngineOptions,
    stats: Arc<Stats>,
    compression: Compression,
    ids: LoadIds,
    derive: IdDeriver,
    /// Serialises the commit of directory scans: handle assignment,
    /// hard-link matching and queue order.
    scan_commit: Mutex<FilehandleMaker>,
    writer: Writer,
    pending: Mutex<PendingCommits>,
    source_root_typed: Vec<u8>,
    state_path: PathBuf,
}

impl Engine {
    /// An engine over an opened state and store.
    pub fn new(
        ns: Arc<Namespace>,
        store: Arc<dyn BlobStore>,
        meta: Meta,
        opts: EngineOptions,
        stats: Arc<Stats>,
        state_path: PathBuf,
    ) -> Result<Arc<Self>, LoadError> {
        let compression = parse_compression(&meta.compression).ok_or_else(|| {
            LoadError::Fatal(format!(
                "stored compression {:?} is unknown",
                meta.compression
            ))
        })?;
        let mut secret = [0u8; 32];
        let raw = hex::decode(&meta.id_secret_hex)
            .map_err(|e| LoadError::Fatal(format!("stored id secret: {e}")))?;
        if raw.len() != 32 {
            return Err(LoadError::Fatal(
                "stored id secret has the wrong length".into(),
            ));
        }
        secret.copy_from_slice(&raw);
        let source_root = hex::decode(&meta.source_root_hex).unwrap_or_default();
        Ok(Arc::new(Engine {
            compression,
            ids: LoadIds {
                containerid: meta.containerid,
                fsid: meta.fsid,
            },
            derive: IdDeriver::new(secret),
            scan_commit: Mutex::new(FilehandleMaker::new(meta.containerid)),
            writer: Writer::new(
                Arc::clone(&store),
                Arc::clone(&stats),
                compression,
                opts.segment_buffers,
            )
            .with_cached_reads_under(scan::as_path(&source_root)),
            pending: Mutex::new(PendingCommits {
                batch: ns.batch(),
                objects: 0,
                since: Instant::now(),
            }),
            source_root_typed: source_root,
            meta: Mutex::new(meta),
            ns,
            store,
            opts,
            stats,
            state_path,
        }))
    }

    fn meta(&self) -> Meta {
        self.meta.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_phase(&self, p: Phase) -> Result<(), LoadError> {
        let mut m = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        m.phase = p;
        self.ns.put_meta(&m)?;
        drop(m);
        self.stats.set_phase(p);
        tracing::info!("phase {}", p.label());
        Ok(())
    }

    /// Makes the container durable up to here, then records the phase.
    async fn advance(&self, p: Phase) -> Result<(), LoadError> {
        self.flush_commits().await?;
        self.store.flush().await?;
        self.set_phase(p)
    }

    fn too_many_errors(&self) -> bool {
        self.opts.max_errors > 0
            && self.stats.phase_errors.load(Ordering::Relaxed) >= self.opts.max_errors
    }

    /// Why a phase stopped early, if `--max-errors` was reached.
    fn stop_reason(&self) -> Option<String> {
        self.too_many_errors().then(|| {
            format!(
                "stopped after {} errors (--max-errors); rerun with --new-session=false to resume",
                self.stats.phase_errors.load(Ordering::Relaxed)
            )
        })
    }

    fn count_error(&self, text: String) {
        self.stats.phase_errors.fetch_add(1, Ordering::Relaxed);
        self.stats.problem(text);
    }

    /// A directory entry that could not be loaded (no object to blame).
    fn entry_error(&self, text: String) -> Result<(), LoadError> {
        self.stats.entry_errors.fetch_add(1, Ordering::Relaxed);
        self.ns.add_problem(&text)?;
        self.count_error(text);
        Ok(())
    }

    /// Records the new state of an object whose blobs the store
    /// acknowledged (`build` adds it to a batch) once a store flush has made
    /// those blobs durable, so the state never runs ahead of the container.
    /// For a store that needs flushing, objects are grouped into one batch
    /// and one flush: a kill loses at most one group (two seconds of work),
    /// whose objects are written again on resume.
    async fn commit_after_flush(
        &self,
        build: impl FnOnce(&mut Batch) -> Result<(), LoadError>,
    ) -> Result<(), LoadError> {
        if !self.store.needs_flush() {
            // Puts are durable when they return: commit now.
            let mut b = self.ns.batch();
            build(&mut b)?;
            self.ns.commit(b)?;
            return Ok(());
        }
        let group = {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if p.objects == 0 {
                p.since = Instant::now();
            }
            build(&mut p.batch)?;
            p.objects += 1;
            if p.objects < COMMIT_GROUP && p.since.elapsed() < COMMIT_GROUP_AGE {
                return Ok(());
            }
            p.objects = 0;
            std::mem::replace(&mut p.batch, self.ns.batch())
        };
        self.commit_group(group).await
    }

    /// Flushes the store, then commits every pending state change.
    async fn flush_commits(&self) -> Result<(), LoadError> {
        let group = {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if p.objects == 0 {
                return Ok(());
            }
            p.objects = 0;
            std::mem::replace(&mut p.batch, self.ns.batch())
        };
        self.commit_group(group).await
    }

    async fn commit_group(&self, group: Batch) -> Result<(), LoadError> {
        self.store.flush().await?;
        self.ns.commit(group)?;
        Ok(())
    }

    async fn put(&self, name: &BlobName, body: Vec<u8>) -> Result<(), StoreError> {
        self.writer.put(name, body).await
    }

    async fn get(&self, name: &str) -> Result<Bytes, StoreError> {
        self.store.get(&store::BlobName::new(name)?).await
    }

    async fn delete_quietly(&self, name: &str) {
        self.writer.delete_quietly(name).await;
    }

    /// Runs the remaining phases.
    pub async fn run(self: &Arc<Self>) -> Result<Outcome, LoadError> {
        let mut phase = self.meta().phase;
        if phase == Phase::Done {
            return Ok(Outcome::AlreadyDone);
        }
        if phase == Phase::Init {
            self.write_bucket().await?;
            self.advance(Phase::Transfer).await?;
            phase = Phase::Transfer;
        }
        self.stats.set_phase(phase);
        self.count_existing()?;
        if phase == Phase::Transfer {
            if let Some(why) = self.transfer().await? {
                return Ok(Outcome::Aborted(why));
            }
            if let Some(root) = self.ns.get(&ROOT)? {
                if root.state == ObjState::Error {
                    return Ok(Outcome::Aborted(format!(
                        "the root directory failed ({}); nothing was published",
                        root.error
                    )));
                }
            }
            self.advance(Phase::Reconcile).await?;
            phase = Phase::Reconcile;
        }
        if phase == Phase::Reconcile {
            if let Some(why) = self.drain(Queue::Reconcile).await? {
                return Ok(Outcome::Aborted(why));
            }
            self.advance(Phase::Cleanup).await?;
            phase = Phase::Cleanup;
        }
        if phase == Phase::Cleanup {
            self.drain(Queue::Cleanup).await?;
            self.advance(Phase::Finalize).await?;
        }
        let errors = self.finalize().await?;
        self.advance(Phase::Done).await?;
        self.ns.sync()?;
        Ok(if errors == 0 {
            Outcome::Complete
        } else {
            Outcome::CompleteWithErrors(errors)
        })
    }

    /// Counts what a resume finds already discovered and done.
    fn count_existing(&self) -> Result<(), LoadError> {
        let (mut total, mut done) = (0u64, 0u64);
        self.ns.for_each_obj(|_, r| {
            total += 1;
            if matches!(
                r.state,
                ObjState::Done | ObjState::InodePending | ObjState::CleanupPending
            ) {
                done += 1;
            }
        })?;
        self.stats.discovered.store(total, Ordering::Relaxed);
        self.stats.skipped.store(done, Ordering::Relaxed);
        Ok(())
    }

    async fn write_bucket(&self) -> Result<(), LoadError> {
        let obj = build::bucket(self.meta().bucket_uuid);
        let name = BlobName::v1(crate::clfs::id::BUCKET, FIRST_VERSION);
        self.put(&name, obj.encode_body(self.compression)?).await?;
        Ok(())
    }

    // ------------------------------------------------------------------
    // TRANSFER

    /// Scans and writes until both queues are empty. `Some(reason)` when it
    /// stopped early.
    async fn transfer(self: &Arc<Self>) -> Result<Option<String>, LoadError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Kind {
            Scan,
            Write,
        }
        let mut inflight = FuturesUnordered::new();
        let (mut scan_cursor, mut write_cursor) = (0u64, 0u64);
        let (mut scans, mut writes) = (0usize, 0usize);
        // Queries of the queues (a database iterator each) only when they
        // may hold something new: after a scan finished (it queues
        // directories and objects), or when the last query filled every
        // free slot. Writes are claimed in batches of an eighth of the slots.
        let (mut scan_more, mut write_more) = (true, true);
        let write_batch = (self.opts.write_workers / 8).max(1);
        loop {
            if !self.too_many_errors() {
                let room = self.opts.scan_workers.saturating_sub(scans);
                if room > 0 && scan_more {
                    let items = self.ns.queue_items(Queue::Scan, scan_cursor, room)?;
                    scan_more = items.len() == room;
                    for (order, id) in items {
                        scan_cursor = order;
                        scans += 1;
                        let me = Arc::clone(self);
                        inflight.push(tokio::spawn(async move {
                            (Kind::Scan, me.scan(order, id).await)
                        }));
                    }
                }
                let room = self.opts.write_workers.saturating_sub(writes);
                if room > 0 && write_more && (room >= write_batch || writes == 0) {
                    let items = self.ns.queue_items(Queue::Write, write_cursor, room)?;
                    write_more = items.len() == room;
                    for (order, id) in items {
                        write_cursor = order;
                        writes += 1;
                        let me = Arc::clone(self);
                        inflight.push(tokio::spawn(async move {
                            (Kind::Write, me.write(order, id).await)
                        }));
                    }
                }
            }
            let Some(done) = inflight.next().await else {
                break;
            };
            let (kind, res) =
                done.map_err(|e| LoadError::Fatal(format!("a worker task failed: {e}")))?;
            match kind {
                Kind::Scan => {
                    scans -= 1;
                    scan_more = true;
                    write_more = true;
                }
                Kind::Write => writes -= 1,
            }
            res?;
        }
        self.flush_commits().await?;
        Ok(self.stop_reason())
    }

    fn fail(
        &self,
        id: &ObjectId,
        mut rec: ObjRecord,
        q: Queue,
        order: u64,
        why: String,
    ) -> Result<(), LoadError> {
        let path = String::from_utf8_lossy(&rec.path).into_owned();
        self.count_error(format!("{path}: {why}"));
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        rec.pre_error_state = rec.state;
        rec.state = ObjState::Error;
        rec.error = why;
        let mut b = self.ns.batch();
        self.ns.put_obj(&mut b, id, &rec)?;
        self.ns.pop(&mut b, q, order, id)?;
        self.ns.commit(b)?;
        Ok(())
    }

    async fn scan(self: Arc<Self>, order: u64, id: ObjectId) -> Result<(), LoadError> {
        let me = Arc::clone(&self);
        tokio::task::spawn_blocking(move || me.scan_blocking(order, id))
            .await
            .map_err(|e| LoadError::Fatal(format!("a scan task failed: {e}")))?
    }

    fn scan_blocking(&self, order: u64, id: ObjectId) -> Result<(), LoadError> {
        let Some(mut rec) = self.ns.get(&id)? else {
            return Err(LoadError::Fatal(format!(
                "queued directory {id} has no record"
            )));
        };
        let entries = match scan::scan_dir(scan::as_path(&rec.path)) {
            Ok(e) => e,
            Err(e) => {
                return self.fail(
                    &id,
                    rec,
                    Queue::Scan,
                    order,
                    format!("cannot read directory: {e}"),
                )
            }
        };
        let hardlinks = self.meta().preserve_hardlinks;
        let mut maker = self.scan_commit.lock().unwrap_or_else(|p| p.into_inner());
        let mut b = self.ns.batch();
        let parent_of_dotdot = if rec.is_parentless() {
            id
        } else {
            rec.first_backpointer
        };
        let mut dirents = vec![
            Dirent {
                name: b".".to_vec(),
                id,
            },
            Dirent {
                name: b"..".to_vec(),
                id: parent_of_dotdot,
            },
        ];
        let mut child_dirs = 0u32;
        // Links added by this scan: (existing inode) -> (new links here, links before).
        let mut added: HashMap<ObjectId, (u32, u32, u32)> = HashMap::new();
        let mut new_candidates: HashMap<(u64, u8), ObjectId> = HashMap::new();
        let mut discovered = 0u64;
        for e in entries {
            let path = scan::child_path(&rec.path, &e.name);
            let shown = String::from_utf8_lossy(&path).into_owned();
            let md = match e.meta {
                Ok(m) => m,
                Err(err) => {
                    self.entry_error(format!("{shown}: cannot stat: {err}"))?;
                    continue;
                }
            };
            let Some(ft) = scan::ftype_of(&md) else {
                self.entry_error(format!("{shown}: file type CLFS cannot hold"))?;
                continue;
            };
            let candidate = hardlinks && ft != Ftype::Dir && md.nlink() > 1;
            if candidate {
                let key = (md.ino(), ft as u8);
                let existing = match new_candidates.get(&key) {
                    Some(fh) => Some(*fh),
                    None => self.ns.hardlink(key.0, key.1)?,
                };
                if let Some(fh) = existing {
                    let entry = match added.get(&fh) {
                        Some(v) => *v,
                        None => {
                            let bps = self.ns.backptrs(&fh)?;
                            let here = bps.iter().find(|(p, _)| *p == id).map_or(0, |(_, c)| *c);
                            let total = 1 + bps.iter().map(|(_, c)| *c).sum::<u32>();
                            (0, here, total)
                        }
                    };
                    if entry.2 < MAX_BACKPOINTERS {
                        added.insert(fh, (entry.0 + 1, entry.1, entry.2 + 1));
                        dirents.push(Dirent {
                            name: e.name,
                            id: fh,
                        });
                        continue;
                    }
                }
            }
            let seq = self.ns.next_seq()?;
            let fh = maker.make(&id, ft, seq, &mut rand::rng()).id();
            let mut child = ObjRecord::new(ft, path, id);
            scan::fill_record(&mut child, &md);
            if candidate {
                // A new candidate, or a link beyond the cap (then nlink 2
                // forces a reconcile that fixes its own link count).
                child.nlink = if self.ns.hardlink(md.ino(), ft as u8)?.is_some()
                    || new_candidates.contains_key(&(md.ino(), ft as u8))
                {
                    2
                } else {
                    new_candidates.insert((md.ino(), ft as u8), fh);
                    self.ns.put_hardlink(&mut b, md.ino(), ft as u8, &fh)?;
                    md.nlink().min(u64::from(u32::MAX)) as u32
                };
            }
            if ft == Ftype::Dir {
                child_dirs += 1;
            }
            self.ns.put_obj(&mut b, &fh, &child)?;
            self.ns.push(
                &mut b,
                if ft == Ftype::Dir {
                    Queue::Scan
                } else {
                    Queue::Write
                },
                &fh,
            )?;
            discovered += 1;
            dirents.push(Dirent {
                name: e.name,
                id: fh,
            });
        }
        for (fh, (new, before_here, _)) in &added {
            self.ns.put_backptr(&mut b, fh, &id, before_here + new)?;
        }
        for (i, d) in dirents.iter().enumerate() {
            self.ns.put_dirent(&mut b, &id, i as u32, d)?;
        }
        rec.child_dir_count = child_dirs;
        rec.state = ObjState::Scanned;
        self.ns.put_obj(&mut b, &id, &rec)?;
        self.ns.pop(&mut b, Queue::Scan, order, &id)?;
        self.ns.push(&mut b, Queue::Write, &id)?;
        self.ns.commit(b)?;
        drop(maker);
        self.stats
            .discovered
            .fetch_add(discovered, Ordering::Relaxed);
        Ok(())
    }

    async fn write(self: Arc<Self>, order: u64, id: ObjectId) -> Result<(), LoadError> {
        let Some(rec) = self.ns.get(&id)? else {
            return Err(LoadError::Fatal(format!(
                "queued object {id} has no record"
            )));
        };
        let hardlinks = self.meta().preserve_hardlinks;
        let provisional = id != ROOT
            && !rec.is_dir()
            && (rec.reconcile_vers > FIRST_VERSION || (hardlinks && rec.nlink != 1));
        let res = match rec.ftype {
            Ftype::Dir => self.write_dir(&id, &rec).await,
            Ftype::Reg => self.write_file(&id, &rec, provisional).await,
            _ => self.write_small(&id, &rec, provisional).await,
        };
        match res {
            Err(why) => self.fail(&id, rec, Queue::Write, order, why),
            Ok(size) => {
                let mut rec = rec;
                if rec.ftype == Ftype::Reg {
                    rec.size = size;
                    self.stats.bytes.fetch_add(size, Ordering::Relaxed);
                }
                if provisional {
                    rec.state = ObjState::InodePending;
                    rec.reconcile_vers += 1;
                } else {
                    rec.state = ObjState::Done;
                }
                self.commit_after_flush(|b| {
                    if provisional {
                        self.ns.push(b, Queue::Reconcile, &id)?;
                    }
                    if rec.is_dir() {
                        self.ns.delete_dirents(b, &id)?;
                    }
                    self.ns.put_obj(b, &id, &rec)?;
                    self.ns.pop(b, Queue::Write, order, &id)?;
                    Ok(())
                })
                .await?;
                self.stats.written.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    async fn write_dir(&self, id: &ObjectId, rec: &ObjRecord) -> ObjResult<u64> {
        let entries = self.ns.dirents(id).map_err(|e| e.to_string())?;
        let (name, root_attrs) = if *id == ROOT {
            let mut rng = rand::rng();
            (
                build::basename(&self.source_root_typed),
                Some(build::root_attrs(
                    crate::clfs::id::new_uuid_string(&mut rng),
                    crate::clfs::id::new_uuid_string(&mut rng),
                )),
            )
        } else {
            (build::basename(&rec.path), None)
        };
        let blobs = build::directory(
            id,
            rec,
            entries,
            name,
            root_attrs,
            self.ids,
            &self.derive,
            self.compression,
            false,
        )
        .map_err(|e| e.to_string())?;
        self.writer.put_all(blobs.before).await?;
        self.put(&blobs.inode.name, blobs.inode.body)
            .await
            .map_err(|e| e.to_string())?;
        Ok(0)
    }

    /// Symlinks, devices, fifos, sockets: one inode object.
    async fn write_small(
        &self,
        id: &ObjectId,
        rec: &ObjRecord,
        provisional: bool,
    ) -> ObjResult<u64> {
        let (length, body) = if rec.ftype == Ftype::Lnk {
            let target = std::fs::read_link(scan::as_path(&rec.path))
                .map_err(|e| format!("cannot read link: {e}"))?;
            build::symlink_body(target.as_os_str().as_bytes().to_vec())?
        } else {
            (rec.size, InodeBody::Special)
        };
        let inode = self.inode(rec, length, build::inline_bmap(id), body)?;
        let name = build::inode_name(id, rec, provisional);
        let body = Object::Inode(inode)
            .encode_body(self.compression)
            .map_err(|e| e.to_string())?;
        self.put(&name, body).await.map_err(|e| e.to_string())?;
        Ok(0)
    }

    /// An inode found in one directory (BACK = its first back-pointer).
    fn inode(&self, rec: &ObjRecord, length: u64, bmap: Bmap, body: InodeBody) -> ObjResult<Inode> {
        build::inode(
            rec,
            self.ids,
            length,
            bmap,
            vec![rec.first_backpointer],
            build::basename(&rec.path),
            body,
        )
        .map_err(|e| e.to_string())
    }

    /// A regular file: inline first 16 KiB, 8 MiB segments (a few in
    /// flight), indirect blocks, then the inode.
    async fn write_file(
        &self,
        id: &ObjectId,
        rec: &ObjRecord,
        provisional: bool,
    ) -> ObjResult<u64> {
        let shown = || String::from_utf8_lossy(&rec.path).into_owned();
        let ctime = build::databack_ctime(rec).map_err(|e| e.to_string())?;
        // Check the times before reading anything.
        build::vattr(rec, self.ids, 0, 1).map_err(|e| e.to_string())?;
        let data = self
            .writer
            .file_data(id, scan::as_path(&rec.path), u64::MAX, ctime, &self.derive)
            .await?;
        if data.total != rec.size {
            return Err(format!(
                "changed size during the load (scanned {} bytes, read {}); {}",
                rec.size, data.total, "rerun with --new-session=false to retry it"
            ));
        }
        let inode = self.inode(rec, data.total, data.bmap, InodeBody::Data(data.first))?;
        let name = build::inode_name(id, rec, provisional);
        let body = Object::Inode(inode)
            .encode_body(self.compression)
            .map_err(|e| e.to_string())?;
        self.put(&name, body)
            .await
            .map_err(|e| format!("{}: {e}", shown()))?;
        Ok(data.total)
    }

    // ------------------------------------------------------------------
    // RECONCILE and CLEANUP

    /// Works through a queue with bounded concurrency.
    async fn drain(self: &Arc<Self>, q: Queue) -> Result<Option<String>, LoadError> {
        let mut cursor = 0u64;
        let mut inflight = FuturesUnordered::new();
        loop {
            if !self.too_many_errors() {
                let room = self.opts.write_workers.saturating_sub(inflight.len());
                for (order, id) in self.ns.queue_items(q, cursor, room)? {
                    cursor = order;
                    let me = Arc::clone(self);
                    inflight.push(tokio::spawn(async move {
                        match q {
                            Queue::Reconcile => me.reconcile(order, id).await,
                            _ => me.cleanup(order, id).await,
                        }
                    }));
                }
            }
            let Some(done) = inflight.next().await else {
                break;
            };
            done.map_err(|e| LoadError::Fatal(format!("a worker task failed: {e}")))??;
        }
        self.flush_commits().await?;
        Ok(self.stop_reason())
    }

    /// Finds the current blob of `id`: `preferred` if it exists, else the
    /// highest version under the id's prefix.
    async fn current_blob(
        &self,
        id: &ObjectId,
        preferred: &str,
    ) -> Result<Option<(String, Bytes)>, StoreError> {
        match self.get(preferred).await {
            Ok(b) => return Ok(Some((preferred.to_string(), b))),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let names = self.list_id(id).await?;
        match name::current(names.iter()) {
            None => Ok(None),
            Some(n) => {
                let text = n.to_string();
                let body = self.get(&text).await?;
                Ok(Some((text, body)))
            }
        }
    }

    async fn list_id(&self, id: &ObjectId) -> Result<Vec<BlobName>, StoreError> {
        let prefix = BlobName::id_prefix_v2(id);
        let mut out = Vec::new();
        let mut s = store::list_stream(self.store.as_ref(), &prefix);
        while let Some(m) = s.next().await {
            if let Ok(n) = BlobName::parse(m?.name.as_str()) {
                out.push(n);
            }
        }
        Ok(out)
    }

    async fn reconcile(self: Arc<Self>, order: u64, id: ObjectId) -> Result<(), LoadError> {
        let Some(mut rec) = self.ns.get(&id)? else {
            return Err(LoadError::Fatal(format!(
                "queued object {id} has no record"
            )));
        };
        rec.reconcile_vers += 1;
        match self.reconcile_one(&id, &rec).await {
            Err(why) => self.fail(&id, rec, Queue::Reconcile, order, why),
            Ok(()) => {
                rec.state = ObjState::CleanupPending;
                self.commit_after_flush(|b| {
                    self.ns.put_obj(b, &id, &rec)?;
                    self.ns.pop(b, Queue::Reconcile, order, &id)?;
                    self.ns.push(b, Queue::Cleanup, &id)?;
                    Ok(())
                })
                .await?;
                Ok(())
            }
        }
    }

    async fn reconcile_one(&self, id: &ObjectId, rec: &ObjRecord) -> ObjResult<()> {
        let btype = name::Btype::from(rec.ftype);
        let provisional = BlobName::v2(*id, btype, &INODE_INPROGRESS, FIRST_VERSION).to_string();
        let (found, body) = self
            .current_blob(id, &provisional)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "no blob of this inode in the container to reconcile".to_string())?;
        let mut inode = match Object::decode_body(&body) {
            Ok(Object::Inode(i)) => i,
            Ok(_) => return Err(format!("blob {found} is not an inode")),
            Err(e) => return Err(e.in_blob(found).to_string()),
        };
        let mut back = vec![rec.first_backpointer];
        for (parent, count) in self.ns.backptrs(id).map_err(|e| e.to_string())? {
            back.extend(std::iter::repeat_n(parent, count as usize));
        }
        inode.vattr.nlink = back.len() as u32;
        inode.back = Some(back);
        let name = BlobName::v2(*id, btype, &rec.first_backpointer, rec.reconcile_vers);
        let body = Object::Inode(inode)
            .encode_body(self.compression)
            .map_err(|e| e.to_string())?;
        self.put(&name, body).await.map_err(|e| e.to_string())
    }

    async fn cleanup(self: Arc<Self>, order: u64, id: ObjectId) -> Result<(), LoadError> {
        let Some(mut rec) = self.ns.get(&id)? else {
            return Err(LoadError::Fatal(format!(
                "queued object {id} has no record"
            )));
        };
        if id != ROOT {
            let provisional = BlobName::v2(
                id,
                name::Btype::from(rec.ftype),
                &INODE_INPROGRESS,
                FIRST_VERSION,
            );
            self.delete_quietly(&provisional.to_string()).await;
        }
        match self.list_id(&id).await {
            Ok(names) => {
                let keep = name::current(names.iter()).cloned();
                for n in names {
                    if Some(&n) != keep.as_ref() && !n.is_tmp() {
                        self.delete_quietly(&n.to_string()).await;
                    }
                }
            }
            Err(e) => tracing::warn!("cleanup of {id}: cannot list: {e}"),
        }
        rec.state = ObjState::Done;
        self.commit_after_flush(|b| {
            self.ns.put_obj(b, &id, &rec)?;
            self.ns.pop(b, Queue::Cleanup, order, &id)?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    // ------------------------------------------------------------------
    // FINALIZE

    /// Problems, logs, bucket attributes, and the root under its final name.
    /// Returns the number of failed objects and entries.
    async fn finalize(&self) -> Result<u64, LoadError> {
        let mut failed_paths = Vec::new();
        self.ns.for_each_obj(|_, r| {
            if r.state == ObjState::Error {
                failed_paths.push(r.path.clone());
            }
        })?;
        let entry_problems = self.ns.problems()?;
        let errors = (failed_paths.len() + entry_problems.len()) as u64;
        let problems = self.state_path.join("problems.txt");
        let _ = std::fs::remove_file(&problems);
        if errors > 0 {
            // One line per failed object (its raw path), then the entries
            // that could not be read ("path: cause").
            let mut text = Vec::new();
            for p in &failed_paths {
                text.extend_from_slice(p);
                text.push(b'\n');
            }
            for p in &entry_problems {
                text.extend_from_slice(p.as_bytes());
                text.push(b'\n');
            }
            std::fs::write(&problems, text).map_err(|e| LoadError::Io {
                path: problems.clone(),
                source: e,
            })?;
        }
        // Upload the *.txt files of the state path, sorted by name.
        let mut logs: Vec<String> = std::fs::read_dir(&self.state_path)
            .map_err(|e| LoadError::Io {
                path: self.state_path.clone(),
                source: e,
            })?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| n.ends_with(".txt"))
            .collect();
        logs.sort();
        for n in &logs {
            let p = self.state_path.join(n);
            let body = std::fs::read(&p).map_err(|e| LoadError::Io {
                path: p.clone(),
                source: e,
            })?;
            self.store
                .put(&store::BlobName::new(n.clone())?, Bytes::from(body))
                .await?;
        }
        // Bucket attributes: one logfileNNN per log, existing keys updated in place.
        let mut attrs = super::job::check_bucket(&self.store).await?;
        for (i, n) in logs.iter().enumerate() {
            let key = format!("logfile{:03}", i + 1);
            match attrs.iter_mut().find(|(k, _)| *k == key) {
                Some(kv) => kv.1 = n.clone(),
                None => attrs.push((key, n.clone())),
            }
        }
        let bucket = BlobName::v1(crate::clfs::id::BUCKET, FIRST_VERSION);
        self.put(
            &bucket,
            Object::Bucket(Bucket { attrs }).encode_body(self.compression)?,
        )
        .await?;
        // Everything else is durable before the root makes it visible.
        self.store.flush().await?;
        // Publish the root.
        let root = self
            .ns
            .get(&ROOT)?
            .ok_or_else(|| LoadError::Fatal("the root has no record".into()))?;
        let tmp = BlobName::tmp_root().to_string();
        let final_name = BlobName::v2(ROOT, name::Btype::Dir, &ROOT, root.reconcile_vers);
        match self.get(&tmp).await {
            Ok(body) => {
                let opened = envelope::open(&body, envelope::FramePolicy::Clfs)
                    .map_err(|e| LoadError::Fatal(e.in_blob(tmp.clone()).to_string()))?;
                let body = envelope::seal(&opened.stream, self.compression)?;
                self.put(&final_name, body).await?;
                self.delete_quietly(&tmp).await;
            }
            Err(e) if e.is_not_found() => {
                let key = store::BlobName::new(final_name.to_string())?;
                if self.store.head(&key).await?.is_none() {
                    return Err(LoadError::Fatal(format!(
                        "neither {tmp} nor {final_name} exists: the root was never written"
                    )));
                }
            }
            Err(e) => return Err(e.into()),
        }
        Ok(errors)
    }
}
