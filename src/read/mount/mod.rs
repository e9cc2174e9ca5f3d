//! `mount --container`: a container's namespace through FUSE, read-only
//! and lazy (spec-independent: everything is read with [`crate::read`]).
//!
//! - [`ns`]: inode numbers, bounded caches of inodes, listings and data
//!   segments, read-ahead;
//! - [`fuse`]: the fuser `Filesystem` answering kernel requests;
//! - [`lru`]: the bounded map behind the caches.

pub mod fuse;
pub mod lru;
pub mod ns;

use std::path::Path;
use std::sync::Arc;

use fuser::{Config, MountOption, SessionACL};

use crate::clfs::id::ROOT;
use crate::store::BlobStore;

use super::container::{Container, ReadError};
use ns::{CacheOptions, Namespace};

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Caches and read-ahead.
    pub cache: CacheOptions,
    /// Kernel request threads.
    pub threads: usize,
    /// `-o` options, already split at commas.
    pub options: Vec<String>,
    /// Mount an unfinished container (only the provisional `tmp` root).
    pub unfinished: bool,
}

/// Why the mount could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// Reading the container failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// No root.
    #[error("{0}: no root directory blob: not a CLFS container, or nothing was loaded")]
    NoRoot(String),
    /// Only the `tmp` root.
    #[error("{0}: unfinished container (only the provisional 'tmp' root exists); use --unfinished to mount it anyway")]
    Unfinished(String),
    /// A `-o` option that a read-only mount cannot honour.
    #[error("mount option '{0}': {1}")]
    Option(String, &'static str),
    /// FUSE failed (no /dev/fuse, no fusermount3, mount point problems).
    #[error("FUSE mount on {path}: {source}")]
    Fuse {
        /// The mount point.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The fuser configuration for `-o` options: always read-only, with the
/// kernel checking permissions against the stored modes and owners.
pub fn fuse_config(
    options: &[String],
    location: &str,
    threads: usize,
) -> Result<Config, MountError> {
    let mut mo = vec![
        MountOption::RO,
        MountOption::DefaultPermissions,
        MountOption::FSName(format!("clfs:{location}")),
        MountOption::Subtype("clfs".to_string()),
    ];
    let mut acl = SessionACL::Owner;
    for o in options.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
        let opt = match o {
            "ro" | "default_permissions" => continue,
            "allow_other" => {
                acl = SessionACL::All;
                continue;
            }
            "allow_root" => {
                acl = SessionACL::RootAndOwner;
                continue;
            }
            "rw" => {
                return Err(MountError::Option(
                    o.to_string(),
                    "the container mount is read-only",
                ))
            }
            "auto_unmount" => MountOption::AutoUnmount,
            "dev" => MountOption::Dev,
            "nodev" => MountOption::NoDev,
            "suid" => MountOption::Suid,
            "nosuid" => MountOption::NoSuid,
            "exec" => MountOption::Exec,
            "noexec" => MountOption::NoExec,
            "atime" => MountOption::Atime,
            "noatime" => MountOption::NoAtime,
            _ => {
                if let Some(v) = o.strip_prefix("fsname=") {
                    mo.retain(|m| !matches!(m, MountOption::FSName(_)));
                    MountOption::FSName(v.to_string())
                } else if let Some(v) = o.strip_prefix("subtype=") {
                    mo.retain(|m| !matches!(m, MountOption::Subtype(_)));
                    MountOption::Subtype(v.to_string())
                } else {
                    return Err(MountError::Option(o.to_string(), "unknown option"));
                }
            }
        };
        mo.push(opt);
    }
    let mut c = Config::default();
    c.mount_options = mo;
    c.acl = acl;
    c.n_threads = Some(threads.max(1));
    Ok(c)
}

/// Opens the container and returns its namespace (root read).
pub async fn open_namespace(
    store: Arc<dyn BlobStore>,
    opts: &MountOptions,
) -> Result<Arc<Namespace>, MountError> {
    let c = Arc::new(Container::new(store));
    let located = c
        .locate(&ROOT)
        .await?
        .ok_or_else(|| MountError::NoRoot(c.location()))?;
    if located.name.is_tmp() && !opts.unfinished {
        return Err(MountError::Unfinished(c.location()));
    }
    let root = c.fetch_inode(&ROOT, &located.name).await?;
    Ok(Namespace::new(c, root, opts.cache))
}

/// Mounts `ns` on `mountpoint` and serves requests until it is unmounted
/// (`fusermount3 -u`, or SIGINT/SIGTERM, which unmount). Blocks;
/// `mounted` runs once the mount exists.
pub fn serve(
    ns: Arc<Namespace>,
    mountpoint: &Path,
    config: &Config,
    rt: &tokio::runtime::Runtime,
    mounted: impl FnOnce(),
) -> Result<(), MountError> {
    let fuse_err = |source| MountError::Fuse {
        path: mountpoint.display().to_string(),
        source,
    };
    let fs = fuse::ReadOnlyFs::new(ns, rt.handle().clone());
    let mut session = fuser::Session::new(fs, mountpoint, config).map_err(fuse_err)?;
    let mut unmounter = session.unmount_callable();
    let shown = mountpoint.display().to_string();
    rt.spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("signal received: unmounting {shown}");
        if let Err(e) = unmounter.unmount() {
            tracing::warn!("unmounting {shown}: {e}");
        }
    });
    tracing::info!("mounted read-only on {}", mountpoint.display());
    mounted();
    session.run().map_err(fuse_err)?;
    tracing::info!("{} unmounted", mountpoint.display());
    Ok(())
}
