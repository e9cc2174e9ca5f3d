//! The sync run: check the container, walk the volume for inodes whose
//! `change_seq` moved, write them (bounded concurrency), drop the deleted
//! ones, update the root, then delete what was superseded.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::stream::{FuturesUnordered, StreamExt};
use rand::RngCore;
use tokio::sync::mpsc;

use crate::clfs::envelope::Compression;
use crate::clfs::handle::Dirent;
use crate::clfs::id::{new_uuid_string, Ftype, ObjectId, BUCKET, ROOT};
use crate::clfs::layout;
use crate::clfs::name::{BlobName, Btype, FIRST_VERSION};
use crate::clfs::object::{InodeBody, Object};
use crate::emit::build::{self, IdDeriver, LoadIds};
use crate::emit::progress::Stats;
use crate::emit::writer::{FileData, ObjResult, Writer};
use crate::state::{ObjRecord, ObjState, Phase, StatTime};
use crate::store::{self, BlobStore};
use crate::volume::{Inode, Timespec, Volume, ROOT_INO};

use super::record::{SyncMeta, SyncPhase, SyncedInode, SYNC_FORMAT};
use super::state::{Changes, SyncState};
use super::SyncError;

/// Records applied per batch (one WAL sync each).
const BATCH: usize = 64;

/// How to sync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Compression of the objects this sync writes.
    pub compression: Compression,
    /// Stop after this many failed inodes (0: never).
    pub max_errors: u64,
    /// Inodes written at once.
    pub write_workers: usize,
    /// 8 MiB segment buffers alive at once.
    pub segment_buffers: usize,
    /// Forget the container the volume was synced to and write everything
    /// into the given (empty) one.
    pub new_container: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            compression: Compression::Lz4,
            max_errors: 50,
            write_workers: 64,
            segment_buffers: 16,
            new_container: false,
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// True for the first sync into the container.
    pub first: bool,
    /// Inodes written (the root included).
    pub inodes_written: u64,
    /// Inodes found unchanged.
    pub inodes_unchanged: u64,
    /// Inodes deleted from the container.
    pub inodes_deleted: u64,
    /// Blobs put (every object: inodes, segments, indirect blocks, the
    /// bucket, the root's `tmp` and final names).
    pub blobs_written: u64,
    /// Blobs deleted (superseded versions, deleted inodes, the `tmp` root).
    pub blobs_deleted: u64,
    /// Inodes that failed.
    pub failed: u64,
    /// File bytes written.
    pub bytes: u64,
}

/// How a sync ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Everything written; superseded blobs removed.
    Complete(Summary),
    /// Written and published, but some inodes failed (they are retried by
    /// the next sync; superseded blobs are kept until then).
    CompleteWithErrors(Summary),
    /// Stopped before updating the root (`--max-errors`, or the root
    /// failed); rerun to finish.
    Aborted(Summary, String),
}

/// One inode to write.
#[derive(Debug)]
struct Job {
    inode: Inode,
    /// Its NAME (the entry name in its first parent; the volume folder's
    /// name for the root).
    name: Vec<u8>,
    /// BACK for non-directories (first back-pointer first); `[parent]`
    /// for directories.
    back: Vec<ObjectId>,
    /// What will be recorded (the intent already is).
    plan: SyncedInode,
    /// What the container held before.
    prev: Option<SyncedInode>,
}

/// A sync in progress.
pub struct Sync {
    vol: Arc<Volume>,
    writer: Writer,
    stats: Arc<Stats>,
    opts: SyncOptions,
    ids: LoadIds,
    secret: IdDeriver,
    meta: Mutex<SyncMeta>,
    root_name: Vec<u8>,
    errors: AtomicU64,
    written: AtomicU64,
    unchanged: AtomicU64,
    deleted_inodes: AtomicU64,
    deleted_blobs: AtomicU64,
}

fn stat_time(t: Timespec) -> StatTime {
    StatTime {
        sec: t.sec,
        nsec: t.nsec,
    }
}

fn btype_of(i: &Inode) -> Btype {
    if i.ino == ROOT_INO {
        Btype::Dir
    } else {
        Btype::from(i.ftype)
    }
}

/// The attributes of a volume inode as the builders take them.
fn record_of(i: &Inode, owner: ObjectId, version: u64, child_dirs: u32) -> ObjRecord {
    let mut r = ObjRecord::new(i.ftype, Vec::new(), owner);
    r.state = ObjState::Done;
    r.mode = i.mode;
    r.uid = i.uid;
    r.gid = i.gid;
    r.rdev = i.rdev;
    r.size = i.size;
    r.mtime = stat_time(i.mtime);
    r.ctime = stat_time(i.ctime);
    r.atime = stat_time(i.atime);
    r.ino = i.ino;
    r.reconcile_vers = version;
    r.child_dir_count = child_dirs;
    r
}

fn random_secret() -> [u8; 32] {
    let mut s = [0u8; 32];
    rand::rng().fill_bytes(&mut s);
    s
}

impl Sync {
    /// Prepares a sync of `vol` into `store`: checks the target, creates
    /// or resumes the sync records.
    pub async fn prepare(
        vol: Arc<Volume>,
        store: Arc<dyn BlobStore>,
        opts: SyncOptions,
        stats: Arc<Stats>,
    ) -> Result<Arc<Self>, SyncError> {
        let location = store.location();
        let state = SyncState::new(&vol);
        let mut meta = state.meta()?;
        if let Some(m) = &meta {
            if m.format != SYNC_FORMAT {
                return Err(SyncError::Usage(format!(
                    "the sync records of volume {} have format {}, this clfs-fs reads format {SYNC_FORMAT}",
                    vol.dir().display(),
                    m.format
                )));
            }
            if m.target != location {
                if !opts.new_container {
                    return Err(SyncError::Usage(format!(
                        "volume {} is synced to {}, not {location}; a volume syncs to one container \
                         (give --new-container to forget {} and write everything into {location})",
                        vol.dir().display(),
                        m.target,
                        m.target
                    )));
                }
                tracing::info!("forgetting the sync records of {}", m.target);
                let keys = state.all_keys()?;
                for chunk in keys.chunks(1000) {
                    state.delete_keys(chunk.to_vec())?;
                }
                meta = None;
            }
        }
        let meta = match meta {
            Some(m) => m,
            None => {
                // The first sync needs an empty container.
                let mut listing = store::list_stream(store.as_ref(), "");
                if let Some(first) = listing.next().await {
                    let first = first?;
                    return Err(SyncError::Usage(format!(
                        "container {location} is not empty (it holds {} and maybe more); the first sync of a volume needs an empty container",
                        first.name
                    )));
                }
                drop(listing);
                let mut rng = rand::rng();
                let m = SyncMeta {
                    format: SYNC_FORMAT,
                    target: location.clone(),
                    bucket_uuid: new_uuid_string(&mut rng),
                    mass_uuid: new_uuid_string(&mut rng),
                    wipe_epoch: new_uuid_string(&mut rng),
                    id_secret_hex: hex::encode(random_secret()),
                    bucket_written: false,
                    published: false,
                    phase: SyncPhase::Idle,
                    synced_seq: 0,
                    syncs: 0,
                };
                let mut c = Changes::default();
                c.meta(&m)?;
                state.apply(c)?;
                m
            }
        };
        let raw = hex::decode(&meta.id_secret_hex)
            .map_err(|e| SyncError::Fatal(format!("stored id secret: {e}")))?;
        let secret: [u8; 32] = raw
            .try_into()
            .map_err(|_| SyncError::Fatal("stored id secret has the wrong length".into()))?;
        let marker = vol.marker().clone();
        let canonical =
            std::fs::canonicalize(vol.dir()).unwrap_or_else(|_| vol.dir().to_path_buf());
        let root_name = canonical
            .file_name()
            .map(|n| std::os::unix::ffi::OsStrExt::as_bytes(n).to_vec())
            .unwrap_or_default();
        Ok(Arc::new(Sync {
            writer: Writer::new(
                store,
                Arc::clone(&stats),
                opts.compression,
                opts.segment_buffers,
            )
            .with_cached_reads_under(vol.dir()),
            vol,
            stats,
            ids: LoadIds {
                containerid: marker.containerid,
                fsid: marker.fsid,
            },
            secret: IdDeriver::new(secret),
            meta: Mutex::new(meta),
            root_name,
            opts,
            errors: AtomicU64::new(0),
            written: AtomicU64::new(0),
            unchanged: AtomicU64::new(0),
            deleted_inodes: AtomicU64::new(0),
            deleted_blobs: AtomicU64::new(0),
        }))
    }

    fn state(&self) -> SyncState<'_> {
        SyncState::new(&self.vol)
    }

    fn meta(&self) -> SyncMeta {
        self.meta.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes the meta and records it.
    fn update_meta(&self, f: impl FnOnce(&mut SyncMeta)) -> Result<(), SyncError> {
        let mut m = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut m);
        let mut c = Changes::default();
        c.meta(&m)?;
        self.state().apply(c)?;
        Ok(())
    }

    fn too_many_errors(&self) -> bool {
        self.opts.max_errors > 0 && self.errors.load(Ordering::Relaxed) >= self.opts.max_errors
    }

    fn fail(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        self.stats.phase_errors.fetch_add(1, Ordering::Relaxed);
        self.stats.problem(what);
    }

    fn summary(&self, first: bool) -> Summary {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Summary {
            first,
            inodes_written: g(&self.written),
            inodes_unchanged: g(&self.unchanged),
            inodes_deleted: g(&self.deleted_inodes),
            blobs_written: g(&self.stats.blobs_put),
            blobs_deleted: g(&self.deleted_blobs),
            failed: g(&self.errors),
            bytes: g(&self.stats.bytes),
        }
    }

    /// Runs the sync to its end.
    pub async fn run(self: &Arc<Self>) -> Result<Outcome, SyncError> {
        let first = !self.meta().published;
        let counter = self.vol.change_counter();
        if self.meta().phase == SyncPhase::Cleaning {
            // A sync was killed after updating its root: finish it first.
            self.stats.set_phase(Phase::Cleanup);
            self.clean().await?;
        }
        self.update_meta(|m| m.phase = SyncPhase::Writing)?;
        self.stats.set_phase(Phase::Transfer);
        if !self.meta().bucket_written {
            let body = build::bucket(self.meta().bucket_uuid).encode_body(self.opts.compression)?;
            self.writer
                .put(&BlobName::v1(BUCKET, FIRST_VERSION), body)
                .await?;
            self.update_meta(|m| m.bucket_written = true)?;
        }
        for dirs in [false, true] {
            self.pass(dirs).await?;
            if self.too_many_errors() {
                return Ok(self.stopped(first));
            }
        }
        self.forget_deleted()?;
        self.stats.set_phase(Phase::Finalize);
        if let Err(why) = self.root().await {
            self.fail(format!("the root directory: {why}"));
            return Ok(Outcome::Aborted(
                self.summary(first),
                format!("the root directory failed ({why}); run the sync again"),
            ));
        }
        if self.errors.load(Ordering::Relaxed) > 0 {
            // Superseded blobs stay until a sync without errors: a
            // directory that failed may still name them.
            return Ok(Outcome::CompleteWithErrors(self.summary(first)));
        }
        self.update_meta(|m| m.phase = SyncPhase::Cleaning)?;
        self.stats.set_phase(Phase::Cleanup);
        self.clean().await?;
        self.update_meta(|m| {
            m.phase = SyncPhase::Idle;
            m.synced_seq = counter;
            m.syncs += 1;
        })?;
        self.stats.set_phase(Phase::Done);
        Ok(Outcome::Complete(self.summary(first)))
    }

    fn stopped(&self, first: bool) -> Outcome {
        Outcome::Aborted(
            self.summary(first),
            format!(
                "stopped after {} errors (--max-errors); the root was not updated: fix the causes and run the sync again",
                self.errors.load(Ordering::Relaxed)
            ),
        )
    }

    // ------------------------------------------------------------------
    // Planning: which inodes to write

    /// The first back-pointer of a non-directory with several links: the
    /// previous owner while it still holds a link, else the parent with
    /// the smallest inode number. Returns the parents (ino, fh, count) with
    /// the first one first.
    fn parents(
        &self,
        child: &Inode,
        prev: Option<&SyncedInode>,
    ) -> Result<Vec<(u64, ObjectId, u32)>, SyncError> {
        let mut out = Vec::new();
        for (p, n) in self.vol.backptrs(child.ino)? {
            let fh = self
                .vol
                .get(p)?
                .ok_or_else(|| {
                    SyncError::Fatal(format!(
                        "inode {} has a back-pointer to missing inode {p}",
                        child.ino
                    ))
                })?
                .fh;
            out.push((p, fh, n));
        }
        if let Some(pos) = prev.and_then(|r| out.iter().position(|(_, fh, _)| *fh == r.owner)) {
            let keep = out.remove(pos);
            out.insert(0, keep);
        }
        Ok(out)
    }

    /// The job for `child`, found as `name` in directory `dir`, if it
    /// changed since it was last synced and `dir` is where it is written
    /// from (its first parent).
    fn plan(
        &self,
        dir: &Inode,
        name: &[u8],
        child_ino: u64,
        seen: &mut HashSet<u64>,
    ) -> Result<Option<Job>, SyncError> {
        let child = self.vol.get(child_ino)?.ok_or_else(|| {
            SyncError::Fatal(format!(
                "directory {} names missing inode {child_ino}",
                dir.ino
            ))
        })?;
        let state = self.state();
        let prev = state.synced(child_ino)?;
        let back = if child.is_dir() || child.nlink <= 1 {
            vec![dir.fh]
        } else {
            // Hard links: written once, from the first name in the first
            // parent.
            let parents = self.parents(&child, prev.as_ref())?;
            if parents.first().map(|p| p.0) != Some(dir.ino) || !seen.insert(child_ino) {
                return Ok(None);
            }
            let mut back = Vec::new();
            for (_, fh, n) in &parents {
                back.extend(std::iter::repeat_n(*fh, *n as usize));
            }
            back
        };
        self.stats.discovered.fetch_add(1, Ordering::Relaxed);
        if prev.as_ref().map(|p| p.change_seq) == Some(child.change_seq) {
            self.unchanged.fetch_add(1, Ordering::Relaxed);
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let segments = if child.ftype == Ftype::Reg {
            layout::data_segment_count(child.size)
        } else {
            0
        };
        let plan = SyncedInode {
            id: child.fh,
            btype: btype_of(&child),
            owner: back[0],
            version: prev.as_ref().map_or(FIRST_VERSION, |p| p.version + 1),
            segments,
            change_seq: child.change_seq,
        };
        Ok(Some(Job {
            inode: child,
            name: name.to_vec(),
            back,
            plan,
            prev,
        }))
    }

    /// Walks every directory's entries (directories when `dirs`, other
    /// inodes otherwise) and sends the jobs, their intents recorded first.
    fn walk(&self, dirs: bool, tx: mpsc::Sender<Job>) -> Result<(), SyncError> {
        let mut err = None;
        let mut chunk: Vec<Job> = Vec::new();
        let mut changes = Changes::default();
        let state = self.state();
        let flush = |chunk: &mut Vec<Job>, changes: &mut Changes| -> Result<bool, SyncError> {
            state.apply(std::mem::take(changes))?;
            for job in chunk.drain(..) {
                if tx.blocking_send(job).is_err() {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        let mut go_on = true;
        self.vol.for_each_inode(|dir| {
            if !dir.is_dir() {
                return true;
            }
            let mut seen = HashSet::new();
            let res = self.vol.for_each_dirent(dir.ino, None, |e| {
                if (e.ftype == Ftype::Dir) != dirs {
                    return true;
                }
                let job = match self.plan(&dir, &e.name, e.ino, &mut seen) {
                    Ok(Some(j)) => j,
                    Ok(None) => return true,
                    Err(e) => {
                        err = Some(e);
                        return false;
                    }
                };
                match state.intent(job.inode.ino) {
                    Ok(Some(old)) if old != job.plan => {
                        changes.supersede(&old, Some(&job.plan), &self.secret)
                    }
                    Ok(_) => {}
                    Err(e) => {
                        err = Some(e);
                        return false;
                    }
                }
                changes.intent(job.inode.ino, &job.plan);
                chunk.push(job);
                if chunk.len() >= BATCH {
                    match flush(&mut chunk, &mut changes) {
                        Ok(true) => {}
                        Ok(false) => {
                            go_on = false;
                            return false;
                        }
                        Err(e) => {
                            err = Some(e);
                            return false;
                        }
                    }
                }
                true
            });
            if let Err(e) = res {
                err = Some(e.into());
            }
            err.is_none() && go_on
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        if go_on {
            flush(&mut chunk, &mut changes)?;
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // Writing

    /// One pass over the volume: non-directories, or directories (but the
    /// root).
    async fn pass(self: &Arc<Self>, dirs: bool) -> Result<(), SyncError> {
        let workers = self.opts.write_workers.max(1);
        let (tx, mut rx) = mpsc::channel::<Job>(workers * 2);
        let me = Arc::clone(self);
        let producer = tokio::task::spawn_blocking(move || me.walk(dirs, tx));
        let mut inflight = FuturesUnordered::new();
        let mut pending = Changes::default();
        let mut open = true;
        loop {
            let take = open && inflight.len() < workers && !self.too_many_errors();
            if !take && inflight.is_empty() {
                break;
            }
            tokio::select! {
                job = rx.recv(), if take => match job {
                    Some(job) => {
                        let me = Arc::clone(self);
                        inflight.push(tokio::spawn(async move {
                            let r = me.write(&job).await;
                            (job, r)
                        }));
                    }
                    None => open = false,
                },
                Some(done) = inflight.next(), if !inflight.is_empty() => {
                    let (job, res) = done
                        .map_err(|e| SyncError::Fatal(format!("a sync task failed: {e}")))?;
                    match res {
                        Ok(rec) => self.done(&job, rec, &mut pending),
                        Err(why) => self.fail(format!(
                            "inode {} ({}): {why}",
                            job.inode.ino,
                            String::from_utf8_lossy(&job.name)
                        )),
                    }
                    if pending.len() >= BATCH || inflight.is_empty() {
                        self.state().apply(std::mem::take(&mut pending))?;
                    }
                }
            }
        }
        self.state().apply(pending)?;
        // Stops the walk if it is still sending (max errors).
        drop(rx);
        producer
            .await
            .map_err(|e| SyncError::Fatal(format!("the volume walk failed: {e}")))??;
        Ok(())
    }

    /// Records a written inode: synced, intent dropped, what it superseded
    /// queued as garbage.
    fn done(&self, job: &Job, rec: SyncedInode, c: &mut Changes) {
        if let Some(prev) = &job.prev {
            c.supersede(prev, Some(&rec), &self.secret);
        }
        if job.plan != rec {
            c.supersede(&job.plan, Some(&rec), &self.secret);
        }
        c.synced(job.inode.ino, &rec);
        c.intent_done(job.inode.ino);
        self.written.fetch_add(1, Ordering::Relaxed);
        self.stats.written.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes one inode and its segments; returns what to record.
    async fn write(&self, job: &Job) -> ObjResult<SyncedInode> {
        let i = &job.inode;
        let version = job.plan.version;
        let derive = self.secret.for_version(version);
        if i.is_dir() {
            return self.write_dir(job, None).await;
        }
        let rec = record_of(i, job.back[0], version, 0);
        let ctime = build::databack_ctime(&rec).map_err(|e| e.to_string())?;
        // Check the times before reading anything.
        build::vattr(&rec, self.ids, 0, 1).map_err(|e| e.to_string())?;
        let (length, bmap, segments, body) = match i.ftype {
            Ftype::Reg => {
                let d = self.file_data(i, ctime, &derive).await?;
                self.stats.bytes.fetch_add(d.total, Ordering::Relaxed);
                (d.total, d.bmap, d.segments, InodeBody::Data(d.first))
            }
            Ftype::Lnk => {
                let (length, body) = build::symlink_body(i.target.clone())?;
                (length, build::inline_bmap(&i.fh), 0, body)
            }
            _ => (i.size, build::inline_bmap(&i.fh), 0, InodeBody::Special),
        };
        let inode = build::inode(
            &rec,
            self.ids,
            length,
            bmap,
            job.back.clone(),
            job.name.clone(),
            body,
        )
        .map_err(|e| e.to_string())?;
        let body = Object::Inode(inode)
            .encode_body(self.opts.compression)
            .map_err(|e| e.to_string())?;
        self.writer
            .put(&job.plan.inode_name(), body)
            .await
            .map_err(|e| e.to_string())?;
        Ok(SyncedInode {
            segments,
            ..job.plan.clone()
        })
    }

    /// A regular file's data from its data file, exactly `size` bytes.
    async fn file_data(&self, i: &Inode, ctime: u32, derive: &IdDeriver) -> ObjResult<FileData> {
        if i.size == 0 {
            return Ok(FileData {
                first: Vec::new(),
                total: 0,
                bmap: build::inline_bmap(&i.fh),
                segments: 0,
            });
        }
        let path = self.vol.data_path(i.ino);
        let data = self
            .writer
            .file_data(&i.fh, &path, i.size, ctime, derive)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if data.total != i.size {
            return Err(format!(
                "data file {} holds {} bytes, the inode says {}",
                path.display(),
                data.total,
                i.size
            ));
        }
        Ok(data)
    }

    /// The entries of directory `dir`: `.`, `..`, then the volume's entries
    /// in name order; and the number of subdirectories.
    fn dirents(&self, dir: &Inode, parent: ObjectId) -> Result<(Vec<Dirent>, u32), SyncError> {
        let mut out = vec![
            Dirent {
                name: b".".to_vec(),
                id: dir.fh,
            },
            Dirent {
                name: b"..".to_vec(),
                id: parent,
            },
        ];
        let mut subdirs = 0u32;
        let mut err = None;
        self.vol.for_each_dirent(dir.ino, None, |e| {
            match self.vol.get(e.ino) {
                Ok(Some(c)) => {
                    if e.ftype == Ftype::Dir {
                        subdirs += 1;
                    }
                    out.push(Dirent {
                        name: e.name,
                        id: c.fh,
                    });
                }
                Ok(None) => {
                    err = Some(SyncError::Fatal(format!(
                        "directory {} names missing inode {}",
                        dir.ino, e.ino
                    )))
                }
                Err(e) => err = Some(e.into()),
            }
            err.is_none()
        })?;
        match err {
            Some(e) => Err(e),
            None => Ok((out, subdirs)),
        }
    }

    /// A directory with its segments; the root (with `root_attrs`) under
    /// its `tmp` name until first published, else under its final name.
    async fn write_dir(
        &self,
        job: &Job,
        root_attrs: Option<Vec<(String, String)>>,
    ) -> ObjResult<SyncedInode> {
        let i = &job.inode;
        let version = job.plan.version;
        let parent = job.back[0];
        let (entries, subdirs) = self.dirents(i, parent).map_err(|e| e.to_string())?;
        let rec = record_of(i, parent, version, subdirs);
        let is_root = root_attrs.is_some();
        let blobs = build::directory(
            &i.fh,
            &rec,
            entries,
            job.name.clone(),
            root_attrs,
            self.ids,
            &self.secret.for_version(version),
            self.opts.compression,
            false,
        )
        .map_err(|e| e.to_string())?;
        let segments = blobs
            .before
            .iter()
            .filter(|b| b.name.btype() == Some(Btype::Segment))
            .count() as u64;
        let rec = SyncedInode {
            segments,
            ..job.plan.clone()
        };
        if rec != job.plan {
            // A directory with segments: name them before writing them.
            let mut c = Changes::default();
            c.intent(i.ino, &rec);
            self.state().apply(c).map_err(|e| e.to_string())?;
        }
        self.writer.put_all(blobs.before).await?;
        let put = |name: BlobName, body: Vec<u8>| async move {
            self.writer
                .put(&name, body)
                .await
                .map_err(|e| e.to_string())
        };
        if !is_root {
            put(blobs.inode.name, blobs.inode.body).await?;
        } else if !self.meta().published {
            // As a load publishes: the tmp root, then the final name.
            put(blobs.inode.name, blobs.inode.body.clone()).await?;
            put(rec.inode_name(), blobs.inode.body).await?;
        } else {
            put(rec.inode_name(), blobs.inode.body).await?;
        }
        Ok(rec)
    }

    /// Writes the root if it changed (or was never published), last.
    async fn root(&self) -> ObjResult<()> {
        let root = self
            .vol
            .get(ROOT_INO)
            .map_err(|e| e.to_string())?
            .ok_or("the volume has no root inode")?;
        let prev = self.state().synced(ROOT_INO).map_err(|e| e.to_string())?;
        self.stats.discovered.fetch_add(1, Ordering::Relaxed);
        let published = self.meta().published;
        if published && prev.as_ref().map(|p| p.change_seq) == Some(root.change_seq) {
            self.unchanged.fetch_add(1, Ordering::Relaxed);
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let plan = SyncedInode {
            id: ROOT,
            btype: Btype::Dir,
            owner: ROOT,
            version: prev.as_ref().map_or(FIRST_VERSION, |p| p.version + 1),
            segments: 0,
            change_seq: root.change_seq,
        };
        let state = self.state();
        let mut c = Changes::default();
        if let Some(old) = state.intent(ROOT_INO).map_err(|e| e.to_string())? {
            if old != plan {
                c.supersede(&old, Some(&plan), &self.secret);
            }
        }
        c.intent(ROOT_INO, &plan);
        state.apply(c).map_err(|e| e.to_string())?;
        let meta = self.meta();
        let job = Job {
            inode: root,
            name: self.root_name.clone(),
            back: vec![ROOT],
            plan,
            prev,
        };
        let rec = self
            .write_dir(
                &job,
                Some(build::root_attrs(meta.mass_uuid, meta.wipe_epoch)),
            )
            .await?;
        let mut c = Changes::default();
        self.done(&job, rec, &mut c);
        if !published {
            c.garbage(&BlobName::tmp_root());
            let mut m = self.meta.lock().unwrap_or_else(|p| p.into_inner());
            m.published = true;
            c.meta(&m).map_err(|e| e.to_string())?;
        }
        state.apply(c).map_err(|e| e.to_string())
    }

    // ------------------------------------------------------------------
    // Deleting

    /// Turns the volume's deleted inodes into garbage and consumes their
    /// records.
    fn forget_deleted(&self) -> Result<(), SyncError> {
        let state = self.state();
        let mut c = Changes::default();
        for (ino, _) in self.vol.deleted()? {
            if let Some(old) = state.synced(ino)? {
                c.supersede(&old, None, &self.secret);
                c.forget(ino);
                self.deleted_inodes.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(old) = state.intent(ino)? {
                c.supersede(&old, None, &self.secret);
                c.intent_done(ino);
            }
            c.clear_deleted(ino);
            if c.len() >= BATCH * 4 {
                state.apply(std::mem::take(&mut c))?;
            }
        }
        state.apply(c)?;
        Ok(())
    }

    /// Deletes the garbage, recording each deletion once acknowledged.
    async fn clean(&self) -> Result<(), SyncError> {
        let names = self.state().garbage(usize::MAX)?;
        let workers = self.opts.write_workers.max(1);
        let mut c = Changes::default();
        let mut stream = futures::stream::iter(names.into_iter().map(|n| async move {
            let ok = self.writer.delete_quietly(&n).await;
            (n, ok)
        }))
        .buffer_unordered(workers);
        let mut kept = 0u64;
        while let Some((name, ok)) = stream.next().await {
            if ok {
                self.deleted_blobs.fetch_add(1, Ordering::Relaxed);
                c.garbage_done(&name);
            } else {
                kept += 1;
            }
            if c.len() >= BATCH * 4 {
                self.state().apply(std::mem::take(&mut c))?;
            }
        }
        self.state().apply(c)?;
        if kept > 0 {
            tracing::warn!(
                "{kept} superseded blobs could not be deleted; the next sync tries again"
            );
        }
        Ok(())
    }
}

/// Opens the volume for a sync, turning "in use" into the refusal to sync
/// a mounted volume.
pub fn open_volume(dir: &Path) -> Result<Arc<Volume>, SyncError> {
    Ok(Arc::new(Volume::open(dir)?))
}
