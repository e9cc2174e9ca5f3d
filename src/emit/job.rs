//! Starting a load: the checks of a new load and of a resume, and the
//! creation of its state.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use rand::RngCore;

use crate::clfs::envelope::Compression;
use crate::clfs::id::{new_uuid_string, Ftype, NULL_FILEHANDLE, ROOT};
use crate::clfs::name::BlobName;
use crate::clfs::object::Object;
use crate::source::scan;
use crate::state::{Meta, Namespace, ObjRecord, ObjState, Phase, Queue, STATE_FORMAT};
use crate::store::{self, BlobStore};

use super::LoadError;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    /// Source root as typed.
    pub source: PathBuf,
    /// Folder of the local state.
    pub state_path: PathBuf,
    /// `--compression-type` (`None`: LZ4 for a new load, the stored value
    /// on resume).
    pub compression: Option<Compression>,
    /// `--preserve-hardlinks` (`None`: off for a new load, stored on resume).
    pub preserve_hardlinks: Option<bool>,
    /// `--new-session`.
    pub new_session: bool,
    /// `--retry-errors` (resume only).
    pub retry_errors: bool,
}

/// The name of the database folder inside the state path.
pub const DB_DIR: &str = "db";
/// Where a new database is built before it is renamed to [`DB_DIR`].
pub const DB_INIT_DIR: &str = "db.new";

/// Compression as stored in the state.
pub fn compression_label(c: Compression) -> &'static str {
    match c {
        Compression::Lz4 => "LZ4",
        Compression::None => "DISABLED",
    }
}

/// Parses a stored compression label.
pub fn parse_compression(s: &str) -> Option<Compression> {
    match s.to_ascii_uppercase().as_str() {
        "LZ4" => Some(Compression::Lz4),
        "DISABLED" | "NONE" => Some(Compression::None),
        _ => None,
    }
}

fn io_err(path: &Path, source: std::io::Error) -> LoadError {
    LoadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks the source root: it must exist and be a directory by `lstat`.
pub fn check_source(source: &Path) -> Result<PathBuf, LoadError> {
    let md = std::fs::symlink_metadata(source).map_err(|e| io_err(source, e))?;
    if md.file_type().is_symlink() {
        return Err(LoadError::Usage(format!(
            "source {} is a symbolic link; give the directory it points to",
            source.display()
        )));
    }
    if !md.is_dir() {
        return Err(LoadError::Usage(format!(
            "source {} is not a directory",
            source.display()
        )));
    }
    std::fs::canonicalize(source).map_err(|e| io_err(source, e))
}

fn absolute(p: &Path) -> Result<PathBuf, LoadError> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir().map_err(|e| io_err(p, e))?.join(p))
    }
}

/// Refuses a state path inside the source or the other way round.
pub fn check_overlap(source_abs: &Path, state: &Path) -> Result<(), LoadError> {
    let mut s = source_abs.as_os_str().as_bytes().to_vec();
    let st_abs = match std::fs::canonicalize(state) {
        Ok(p) => p,
        Err(_) => absolute(state)?,
    };
    let mut t = st_abs.as_os_str().as_bytes().to_vec();
    s.push(b'/');
    t.push(b'/');
    if s.starts_with(&t) || t.starts_with(&s) {
        return Err(LoadError::Usage(format!(
            "state path {} and source {} overlap; put the state outside the tree being loaded",
            state.display(),
            source_abs.display()
        )));
    }
    Ok(())
}

fn describe_dir(p: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let more = names.len().saturating_sub(5);
    names.truncate(5);
    let mut s = names.join(", ");
    if more > 0 {
        s.push_str(&format!(" and {more} more"));
    }
    s
}

/// Prepares the state of a new load: checks that the state path is new or
/// empty and the container empty, creates the database and the root
/// record. Writes nothing to the container.
pub async fn create(
    req: &LoadRequest,
    store: &Arc<dyn BlobStore>,
) -> Result<(Arc<Namespace>, Meta), LoadError> {
    let source_abs = check_source(&req.source)?;
    check_overlap(&source_abs, &req.state_path)?;
    match std::fs::symlink_metadata(&req.state_path) {
        Ok(md) if md.file_type().is_symlink() => {
            return Err(LoadError::Usage(format!(
                "state path {} is a symbolic link",
                req.state_path.display()
            )))
        }
        Ok(md) if !md.is_dir() => {
            return Err(LoadError::Usage(format!(
                "state path {} exists and is not a directory",
                req.state_path.display()
            )))
        }
        Ok(_) => {
            // A database a killed start-up left half-made is ours to drop.
            let half = req.state_path.join(DB_INIT_DIR);
            if half.is_dir() {
                std::fs::remove_dir_all(&half).map_err(|e| io_err(&half, e))?;
            }
            let what = describe_dir(&req.state_path);
            if !what.is_empty() {
                return Err(LoadError::Usage(format!(
                    "state path {} is not empty (it holds {what}); use a new folder, or --new-session=false to resume the load it belongs to",
                    req.state_path.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&req.state_path, e)),
    }
    // The container must hold no blob at all.
    let mut listing = store::list_stream(store.as_ref(), "");
    if let Some(first) = listing.next().await {
        let first = first?;
        return Err(LoadError::Usage(format!(
            "container {} is not empty (it holds {} and maybe more); a new load needs an empty container",
            store.location(),
            first.name
        )));
    }
    drop(listing);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&req.state_path)
        .map_err(|e| io_err(&req.state_path, e))?;
    // Built under another name and renamed once complete, so that a crash
    // during start-up never leaves a database a resume would trust.
    let init_dir = req.state_path.join(DB_INIT_DIR);
    let ns = Namespace::open(&init_dir)?;
    let mut rng = rand::rng();
    let nonzero = |rng: &mut rand::rngs::ThreadRng| loop {
        let v = rng.next_u32();
        if v != 0 {
            break v;
        }
    };
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let meta = Meta {
        format: STATE_FORMAT,
        created_by: format!("clfs-fs {}", env!("CARGO_PKG_VERSION")),
        containerid: nonzero(&mut rng),
        fsid: nonzero(&mut rng),
        compression: compression_label(req.compression.unwrap_or(Compression::Lz4)).into(),
        preserve_hardlinks: req.preserve_hardlinks.unwrap_or(false),
        source_root_hex: hex::encode(req.source.as_os_str().as_bytes()),
        source_abs_hex: hex::encode(source_abs.as_os_str().as_bytes()),
        target: store.location(),
        phase: Phase::Init,
        bucket_uuid: new_uuid_string(&mut rng),
        id_secret_hex: hex::encode(secret),
    };
    let md = std::fs::symlink_metadata(&source_abs).map_err(|e| io_err(&source_abs, e))?;
    let mut root = ObjRecord::new(
        Ftype::Dir,
        source_abs.as_os_str().as_bytes().to_vec(),
        NULL_FILEHANDLE,
    );
    scan::fill_record(&mut root, &md);
    let mut b = ns.batch();
    ns.put_obj(&mut b, &ROOT, &root)?;
    ns.push(&mut b, Queue::Scan, &ROOT)?;
    ns.commit(b)?;
    ns.put_meta(&meta)?;
    drop(ns);
    let db_dir = req.state_path.join(DB_DIR);
    std::fs::rename(&init_dir, &db_dir).map_err(|e| io_err(&db_dir, e))?;
    let ns = Arc::new(Namespace::open(&db_dir)?);
    Ok((ns, meta))
}

/// Opens the state of an interrupted load and checks that it matches what
/// the user asked for.
pub async fn resume(
    req: &LoadRequest,
    store: &Arc<dyn BlobStore>,
) -> Result<(Arc<Namespace>, Meta), LoadError> {
    let db = req.state_path.join(DB_DIR);
    if !db.is_dir() {
        return Err(LoadError::Usage(format!(
            "state path {} holds no load to resume (no {DB_DIR}/ folder); start one with --new-session=true",
            req.state_path.display()
        )));
    }
    let source_abs = check_source(&req.source)?;
    let ns = Arc::new(Namespace::open(&db)?);
    let meta = ns.meta()?.ok_or_else(|| {
        LoadError::Usage(format!(
            "state path {} was never initialised; start a new load in a new folder",
            req.state_path.display()
        ))
    })?;
    if meta.format != STATE_FORMAT {
        return Err(LoadError::Usage(format!(
            "state path {} has format {}, this clfs-fs reads format {STATE_FORMAT}",
            req.state_path.display(),
            meta.format
        )));
    }
    let stored_src = hex::decode(&meta.source_abs_hex).unwrap_or_default();
    if stored_src != source_abs.as_os_str().as_bytes() {
        return Err(LoadError::Usage(format!(
            "the load in {} is of source {}, not {}",
            req.state_path.display(),
            String::from_utf8_lossy(&stored_src),
            source_abs.display()
        )));
    }
    if meta.target != store.location() {
        return Err(LoadError::Usage(format!(
            "the load in {} writes to {}, not {}",
            req.state_path.display(),
            meta.target,
            store.location()
        )));
    }
    if let Some(c) = req.compression {
        if compression_label(c) != meta.compression {
            return Err(LoadError::Usage(format!(
                "the load in {} uses --compression-type {}; it cannot change on resume",
                req.state_path.display(),
                meta.compression
            )));
        }
    }
    if let Some(h) = req.preserve_hardlinks {
        if h != meta.preserve_hardlinks {
            return Err(LoadError::Usage(format!(
                "the load in {} was started with --preserve-hardlinks={}; it cannot change on resume",
                req.state_path.display(),
                meta.preserve_hardlinks
            )));
        }
    }
    if meta.phase != Phase::Init && meta.phase != Phase::Done {
        check_bucket(store).await?;
    }
    Ok((ns, meta))
}

/// The bucket object must exist and hold exactly one EXTATTRS handle.
pub async fn check_bucket(store: &Arc<dyn BlobStore>) -> Result<Vec<(String, String)>, LoadError> {
    let name = BlobName::v1(crate::clfs::id::BUCKET, crate::clfs::name::FIRST_VERSION).to_string();
    let key = store::BlobName::new(name.clone())?;
    let body = store.get(&key).await.map_err(|e| {
        if e.is_not_found() {
            LoadError::Usage(format!(
                "container {} has no bucket object {name}: it is not the container of this load",
                store.location()
            ))
        } else {
            LoadError::Store(e)
        }
    })?;
    match Object::decode_body(&body) {
        Ok(Object::Bucket(b)) => Ok(b.attrs),
        Ok(_) => Err(LoadError::Fatal(format!(
            "bucket object {name} holds something else than EXTATTRS"
        ))),
        Err(e) => Err(LoadError::Fatal(e.in_blob(name).to_string())),
    }
}

/// Re-arms objects in error (`--retry-errors`): back into the queue of the
/// work they failed in. A load that had got past the transfer (or had
/// finished, with errors) goes back to the transfer phase, recorded in
/// `meta`, so that the retried objects are written, the later phases run
/// again for them and the root is published again.
pub fn rearm_errors(ns: &Namespace, meta: &mut Meta) -> Result<u64, LoadError> {
    let mut failed = Vec::new();
    ns.for_each_obj(|id, rec| {
        if rec.state == ObjState::Error {
            failed.push((*id, rec.clone()));
        }
    })?;
    let n = failed.len() as u64;
    for (id, mut rec) in failed {
        let mut b = ns.batch();
        let q = match rec.pre_error_state {
            ObjState::Pending if rec.is_dir() => Queue::Scan,
            ObjState::Pending | ObjState::Scanned => Queue::Write,
            ObjState::InodePending => Queue::Reconcile,
            ObjState::CleanupPending => Queue::Cleanup,
            ObjState::Done | ObjState::Error => continue,
        };
        // Attributes as they are now: a file that changed size (or had a
        // time CLFS cannot hold) since the scan can succeed on retry. An
        // entry that vanished or changed type keeps its record and fails
        // again with the cause.
        if let Ok(md) = std::fs::symlink_metadata(crate::source::scan::as_path(&rec.path)) {
            if crate::source::scan::ftype_of(&md) == Some(rec.ftype) {
                crate::source::scan::fill_record(&mut rec, &md);
            }
        }
        rec.state = rec.pre_error_state;
        rec.error.clear();
        ns.put_obj(&mut b, &id, &rec)?;
        ns.push(&mut b, q, &id)?;
        ns.commit(b)?;
    }
    if n > 0 && !matches!(meta.phase, Phase::Init | Phase::Transfer) {
        meta.phase = Phase::Transfer;
        ns.put_meta(meta)?;
    }
    Ok(n)
}
