//! `verify`: every check of spec §10 over a whole container.
//!
//! 1. One listing of the container builds the [`Index`](super::container::Index).
//! 2. The bucket object: one EXTATTRS handle, the three `…Version = 2`
//!    keys, a `bucketUUID`, `logfileNNN` naming existing blobs.
//! 3. The root: the highest version of the final name; a container with
//!    only the `tmp` root is reported as unfinished (and still walked).
//! 4. The walk ([`super::walk`]) checks every inode, directory segment and
//!    indirect block; the scan reads every data segment (unless
//!    `read_data` is off) and checks sizes, offsets and owners.
//! 5. Link counts against BACK and against the directory entries.
//! 6. Every blob not reached is a warning (unreachable, superseded
//!    version, leftover `tmp` root, foreign name).

use std::collections::HashSet;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use crate::clfs::id::{ObjectId, BUCKET, ROOT};
use crate::clfs::name::Btype;
use crate::clfs::object::{InodeBody, Object};
use crate::store::BlobStore;

use super::canonical::{is_dashed_uuid, Namespace, NamespaceBuilder};
use super::container::{Container, InodeNode, ReadError};
use super::data::{read_file, FileOptions, Piece};
use super::json::Json;
use super::path::NsPath;
use super::problem::{Check, Problem, ProblemSink};
use super::walk::{spawn_root_walk, Event, WalkStats};

/// How to verify.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Requests in flight (inode reads per directory; see [`WalkOptions`]).
    pub parallel: usize,
    /// Files read at once.
    pub files: usize,
    /// Read every data segment (false: check only that they exist).
    pub read_data: bool,
    /// Also build the canonical namespace (reads data to hash it).
    pub canonical: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            parallel: 32,
            files: 8,
            read_data: true,
            canonical: false,
        }
    }
}

/// Counts of a verify run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VerifyStats {
    /// Blobs listed.
    pub blobs: u64,
    /// Their bytes.
    pub blob_bytes: u64,
    /// What the walk saw.
    pub walk: WalkStats,
    /// Data segments checked.
    pub data_segments: u64,
    /// File bytes read (inline and segments).
    pub file_bytes: u64,
    /// Blobs not reachable from the root.
    pub unreachable: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// Where the container is (no secrets).
    pub location: String,
    /// True when the root exists under its final name.
    pub finished: bool,
    /// The root blob that was walked.
    pub root_blob: Option<String>,
    /// Counts.
    pub stats: VerifyStats,
    /// Number of errors.
    pub errors: u64,
    /// Number of warnings.
    pub warnings: u64,
    /// Problems not kept in `problems` (beyond the cap).
    pub dropped: u64,
    /// Errors first, then warnings.
    pub problems: Vec<Problem>,
    /// The canonical namespace, when asked for.
    pub namespace: Option<Namespace>,
}

impl VerifyReport {
    /// No errors (warnings allowed).
    pub fn ok(&self) -> bool {
        self.errors == 0
    }

    /// The JSON report.
    pub fn to_json(&self) -> Json {
        let s = &self.stats;
        let w = &s.walk;
        let u = Json::UInt;
        Json::Obj(vec![
            (b"container".to_vec(), Json::str(&self.location)),
            (b"ok".to_vec(), Json::Bool(self.ok())),
            (b"finished".to_vec(), Json::Bool(self.finished)),
            (
                b"root_blob".to_vec(),
                self.root_blob.as_ref().map_or(Json::Null, Json::str),
            ),
            (b"errors".to_vec(), u(self.errors)),
            (b"warnings".to_vec(), u(self.warnings)),
            (b"problems_not_listed".to_vec(), u(self.dropped)),
            (
                b"stats".to_vec(),
                Json::Obj(vec![
                    (b"blobs".to_vec(), u(s.blobs)),
                    (b"blob_bytes".to_vec(), u(s.blob_bytes)),
                    (b"directories".to_vec(), u(w.dirs)),
                    (b"files".to_vec(), u(w.files)),
                    (b"symlinks".to_vec(), u(w.symlinks)),
                    (b"specials".to_vec(), u(w.specials)),
                    (b"broken_entries".to_vec(), u(w.broken)),
                    (b"directory_segments".to_vec(), u(w.dir_segments)),
                    (b"data_segments".to_vec(), u(s.data_segments)),
                    (b"file_bytes".to_vec(), u(s.file_bytes)),
                    (b"unreachable_blobs".to_vec(), u(s.unreachable)),
                    (b"milliseconds".to_vec(), u((s.seconds * 1000.0) as u64)),
                ]),
            ),
            (
                b"problems".to_vec(),
                Json::Arr(self.problems.iter().map(Problem::to_json).collect()),
            ),
        ])
    }

    /// The report for people: each problem on a line, then a summary.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for p in &self.problems {
            writeln!(out, "{p}")?;
        }
        if self.dropped > 0 {
            writeln!(out, "… and {} more problems not listed", self.dropped)?;
        }
        let s = &self.stats;
        let w = &s.walk;
        writeln!(
            out,
            "{}: {} directories, {} files, {} symlinks, {} other; {} data segments, {} bytes of file data; {} blobs listed, {} unreachable; {:.1} s",
            self.location, w.dirs, w.files, w.symlinks, w.specials, s.data_segments, s.file_bytes, s.blobs, s.unreachable, s.seconds
        )?;
        let verdict = if self.ok() { "OK" } else { "FAILED" };
        let unfinished = if self.finished {
            ""
        } else {
            " (unfinished: only the tmp root exists)"
        };
        writeln!(
            out,
            "verify {verdict}: {} errors, {} warnings{unfinished}",
            self.errors, self.warnings
        )
    }
}

/// Verifies the container in `store`. Returns `Err` only when the
/// container cannot be listed at all; everything else is a problem in
/// the report.
pub async fn verify(
    store: Arc<dyn BlobStore>,
    opts: &VerifyOptions,
) -> Result<VerifyReport, ReadError> {
    let start = Instant::now();
    let c = Arc::new(Container::indexed(store).await?);
    let sink = Arc::new(ProblemSink::default());
    let mut stats = VerifyStats::default();
    if let Some(ix) = c.index() {
        stats.blobs = ix.total();
        stats.blob_bytes = ix.bytes();
    }
    let log_blobs = check_bucket(&c, &sink).await;

    let (root, finished) = find_root(&c, &sink).await;
    let mut namespace = None;
    let root_blob = root.as_ref().map(|r| r.blob_text());
    if let Some(root) = root {
        check_root(&sink, &root);
        let out = scan(c.clone(), sink.clone(), root, opts).await;
        stats.walk = out.walk;
        stats.data_segments = out.data_segments;
        stats.file_bytes = out.file_bytes;
        namespace = out.namespace;
    }
    stats.unreachable = check_unreachable(&c, &sink, &log_blobs);
    stats.seconds = start.elapsed().as_secs_f64();
    Ok(VerifyReport {
        location: c.location(),
        finished,
        root_blob,
        stats,
        errors: sink.errors(),
        warnings: sink.warnings(),
        dropped: sink.dropped(),
        problems: sink.snapshot(),
        namespace,
    })
}

/// Spec §10.1. Returns the log blob names it lists.
async fn check_bucket(c: &Container, sink: &ProblemSink) -> HashSet<String> {
    let mut logs = HashSet::new();
    let located = match c.locate(&BUCKET).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            sink.error(
                Check::Bucket,
                None,
                Some(&crate::clfs::name::BlobName::v1(BUCKET, 9).to_string()),
                "the bucket object does not exist",
            );
            return logs;
        }
        Err(e) => {
            sink.error(Check::Store, None, e.blob(), e.detail());
            return logs;
        }
    };
    c.mark_reached(&BUCKET);
    let blob = located.name.to_string();
    if located.name.btype().is_some() {
        sink.error(
            Check::Name,
            None,
            Some(&blob),
            "the bucket object needs a version-1 name",
        );
    }
    for r in located.rivals() {
        sink.error(
            Check::Version,
            None,
            Some(&r.to_string()),
            format!("has the same version as {blob}"),
        );
    }
    let attrs = match c.fetch_object(&located.name).await {
        Ok(Object::Bucket(b)) => b.attrs,
        Ok(other) => {
            sink.error(
                Check::Bucket,
                None,
                Some(&blob),
                format!(
                    "expected a bucket object (one EXTATTRS handle), found a {:?} object",
                    other.kind()
                ),
            );
            return logs;
        }
        Err(e) => {
            sink.error(Check::Decode, None, e.blob(), e.detail());
            return logs;
        }
    };
    let get = |k: &str| {
        attrs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    for key in [
        "bucketCurrentNameVersion",
        "bucketNameVersion",
        "bucketObjVersion",
    ] {
        match get(key) {
            Some("2") => {}
            Some(v) => sink.error(
                Check::Bucket,
                None,
                Some(&blob),
                format!("{key} is {v:?}, expected \"2\""),
            ),
            None => sink.error(
                Check::Bucket,
                None,
                Some(&blob),
                format!("{key} is missing"),
            ),
        }
    }
    match get("bucketUUID") {
        Some(u) if is_dashed_uuid(u) => {}
        Some(u) => sink.error(
            Check::Bucket,
            None,
            Some(&blob),
            format!("bucketUUID {u:?} is not a UUID"),
        ),
        None => sink.error(Check::Bucket, None, Some(&blob), "bucketUUID is missing"),
    }
    let mut seen = HashSet::new();
    for (key, val) in &attrs {
        if !seen.insert(key.as_str()) {
            sink.error(
                Check::Bucket,
                None,
                Some(&blob),
                format!("key {key} appears twice"),
            );
        }
        let known = matches!(
            key.as_str(),
            "bucketCurrentNameVersion" | "bucketNameVersion" | "bucketObjVersion" | "bucketUUID"
        );
        let logfile = key
            .strip_prefix("logfile")
            .is_some_and(|n| n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()));
        if logfile {
            logs.insert(val.clone());
            let exists = c
                .index()
                .is_some_and(|ix| ix.foreign().iter().any(|(n, _)| n == val));
            if !exists {
                sink.warn(
                    Check::Bucket,
                    None,
                    Some(&blob),
                    format!("{key} names blob {val:?}, which does not exist"),
                );
            }
        } else if !known {
            sink.warn(
                Check::Bucket,
                None,
                Some(&blob),
                format!("unexpected key {key}"),
            );
        }
    }
    logs
}

/// Spec §10.2: the root's blob (final name, else `tmp`) and whether the
/// container is finished.
async fn find_root(c: &Container, sink: &ProblemSink) -> (Option<Arc<InodeNode>>, bool) {
    let root_path = NsPath::root();
    let final_name = crate::clfs::name::BlobName::v2(ROOT, Btype::Dir, &ROOT, 9);
    let located = match c.locate(&ROOT).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            sink.error(
                Check::Root,
                Some(&root_path),
                Some(&final_name.to_string()),
                "no root blob (neither final nor tmp): this is not a CLFS container, or nothing was loaded",
            );
            return (None, false);
        }
        Err(e) => {
            sink.error(Check::Store, Some(&root_path), e.blob(), e.detail());
            return (None, false);
        }
    };
    let finished = !located.name.is_tmp();
    let blob = located.name.to_string();
    if !finished {
        sink.error(
            Check::Root,
            Some(&root_path),
            Some(&blob),
            "unfinished container: only the provisional 'tmp' root exists (the load never published the root); the cache cannot use it",
        );
    } else {
        for n in located.all.iter().filter(|n| n.is_tmp()) {
            sink.warn(
                Check::Root,
                Some(&root_path),
                Some(&n.to_string()),
                "a provisional 'tmp' root is left beside the final root",
            );
        }
    }
    for r in located.rivals() {
        sink.error(
            Check::Version,
            Some(&root_path),
            Some(&r.to_string()),
            format!("has the same version as {blob}"),
        );
    }
    match c.fetch_inode(&ROOT, &located.name).await {
        Ok(n) if n.is_dir() => (Some(Arc::new(n)), finished),
        Ok(n) => {
            sink.error(
                Check::Root,
                Some(&root_path),
                Some(&blob),
                format!("the root inode is a {}, not a directory", n.btype().word()),
            );
            (None, finished)
        }
        Err(e) => {
            super::blocks::report(sink, &root_path, Check::Root, "reading the root", &e);
            (None, finished)
        }
    }
}

/// Root EXTATTRS (spec §4.2).
fn check_root(sink: &ProblemSink, root: &InodeNode) {
    let path = NsPath::root();
    let blob = root.blob_text();
    let InodeBody::Dir {
        root_attrs: Some(attrs),
        ..
    } = &root.inode.body
    else {
        return; // reported by check_inode
    };
    let get = |k: &str| {
        attrs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    match get("containeridEpoch") {
        Some("2") => {}
        other => sink.error(
            Check::Root,
            Some(&path),
            Some(&blob),
            format!("containeridEpoch is {other:?}, expected \"2\""),
        ),
    }
    for key in ["massUUID", "wipeEpoch"] {
        match get(key) {
            Some(u) if is_dashed_uuid(u) => {}
            other => sink.error(
                Check::Root,
                Some(&path),
                Some(&blob),
                format!("{key} is {other:?}, expected a UUID"),
            ),
        }
    }
}

/// Spec §10.5: blobs not reached are warnings. Returns their number.
fn check_unreachable(c: &Container, sink: &ProblemSink, logs: &HashSet<String>) -> u64 {
    let Some(ix) = c.index() else { return 0 };
    let mut n = 0;
    let mut ids: Vec<(&ObjectId, &Vec<crate::clfs::name::BlobName>)> = ix.ids().collect();
    ids.sort_by_key(|(id, _)| **id);
    for (id, names) in ids {
        if c.was_reached(id) {
            let Some(cur) = crate::clfs::name::current(names.iter()) else {
                continue;
            };
            for name in names.iter().filter(|nm| *nm != cur) {
                if name.version() == cur.version() && name.is_tmp() == cur.is_tmp() {
                    continue; // reported as a version clash
                }
                if name.is_tmp() {
                    continue; // reported with the root
                }
                n += 1;
                sink.warn(
                    Check::Superseded,
                    None,
                    Some(&name.to_string()),
                    format!(
                        "older version {} of {id}; version {} is current",
                        name.version(),
                        cur.version()
                    ),
                );
            }
        } else {
            for name in names {
                n += 1;
                let what = name.btype().map_or("bucket-style", |b| b.word());
                sink.warn(
                    Check::Unreachable,
                    None,
                    Some(&name.to_string()),
                    format!("{what} object not reachable from the root"),
                );
            }
        }
    }
    for (name, _) in ix.foreign() {
        if logs.contains(name) {
            continue;
        }
        let log_like = name.ends_with(".txt") && !name.contains('/');
        if !log_like {
            n += 1;
        }
        sink.warn(
            Check::Foreign,
            None,
            Some(name),
            if log_like {
                "a log-like blob the bucket object does not list"
            } else {
                "not a CLFS object name"
            },
        );
    }
    n
}

/// What [`scan`] found.
pub(crate) struct ScanOutput {
    pub walk: WalkStats,
    pub data_segments: u64,
    pub file_bytes: u64,
    pub namespace: Option<Namespace>,
}

/// The walk plus reading every regular file (once per inode).
pub(crate) async fn scan(
    c: Arc<Container>,
    sink: Arc<ProblemSink>,
    root: Arc<InodeNode>,
    opts: &VerifyOptions,
) -> ScanOutput {
    let (mut rx, walker) = spawn_root_walk(c.clone(), sink.clone(), root, opts.parallel);
    let mut builder = opts.canonical.then(NamespaceBuilder::new);
    let mut files: JoinSet<(ObjectId, Option<String>, u64, u64)> = JoinSet::new();
    let mut read = HashSet::new();
    let mut out = ScanOutput {
        walk: WalkStats::default(),
        data_segments: 0,
        file_bytes: 0,
        namespace: None,
    };
    let fetch = opts.read_data || opts.canonical;
    let hash = opts.canonical;
    let done = |r: Result<(ObjectId, Option<String>, u64, u64), tokio::task::JoinError>,
                builder: &mut Option<NamespaceBuilder>,
                out: &mut ScanOutput| match r {
        Ok((id, sha, len, segs)) => {
            out.file_bytes += len;
            out.data_segments += segs;
            if let (Some(b), Some(sha)) = (builder.as_mut(), sha) {
                b.content(id, sha, len);
            }
        }
        Err(e) => sink.error(
            Check::Store,
            None,
            None,
            format!("a file reader failed: {e}"),
        ),
    };
    while let Some(ev) = rx.recv().await {
        if let Some(b) = builder.as_mut() {
            b.event(&ev);
        }
        let Event::Node { path, node, .. } = ev else {
            continue;
        };
        if node.btype() != Btype::Reg || !read.insert(node.id) {
            continue;
        }
        while files.len() >= opts.files.max(1) {
            if let Some(r) = files.join_next().await {
                done(r, &mut builder, &mut out);
            }
        }
        let (c, sink) = (c.clone(), sink.clone());
        files.spawn(async move {
            let mut hasher = hash.then(Sha256::new);
            let fopts = FileOptions {
                fetch,
                readahead: 2,
            };
            let r = read_file(&c, &sink, &path, &node, fopts, |p| {
                if let (Piece::Data { bytes, .. }, Some(h)) = (p, hasher.as_mut()) {
                    h.update(bytes);
                }
                Ok(())
            })
            .await;
            match r {
                Ok(s) => (
                    node.id,
                    hasher.map(|h| hex::encode(h.finalize())),
                    s.bytes,
                    s.segments,
                ),
                Err(_) => (node.id, None, 0, 0),
            }
        });
    }
    while let Some(r) = files.join_next().await {
        done(r, &mut builder, &mut out);
    }
    match walker.await {
        Ok(w) => out.walk = w,
        Err(e) => sink.error(
            Check::Store,
            None,
            None,
            format!("the namespace walk failed: {e}"),
        ),
    }
    out.namespace = builder.map(NamespaceBuilder::finish);
    out
}

/// The canonical namespace of the container in `store` and the problems
/// found on the way (verify with `canonical` on).
pub async fn canonical_namespace(
    store: Arc<dyn BlobStore>,
    parallel: usize,
) -> Result<(Namespace, VerifyReport), ReadError> {
    let opts = VerifyOptions {
        parallel,
        canonical: true,
        ..VerifyOptions::default()
    };
    let mut report = verify(store, &opts).await?;
    let ns = report.namespace.take().unwrap_or_default();
    Ok((ns, report))
}
