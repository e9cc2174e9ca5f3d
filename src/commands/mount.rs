//! `clfs-fs mount`, `clfs-fs umount` and `clfs-fs init`: the staging
//! filesystem's command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::cli::LogLevel;
use crate::fs::mount::{self, MountRequest};
use crate::volume::Volume;

/// Arguments of `mount`.
#[derive(Debug, Args)]
#[command(after_help = "\
A staging volume is a folder holding the namespace (RocksDB, in db/), one \
data file per regular file (data/) and a VOLUME marker. `mount` creates the \
volume when its folder is absent or empty (`clfs-fs init` does the same \
without mounting). While mounted, the volume is locked: a second mount or a \
sync of it is refused with \"volume ... is in use\".

Without --foreground the command returns once the mount is ready and a \
daemon serves it, logging to VOLUME/mount.log. Unmount with `clfs-fs umount \
MOUNTPOINT` or `fusermount3 -u MOUNTPOINT`; SIGTERM or SIGINT to the serving \
process unmounts too. Everything an operation changed survives a killed \
daemon; what fsync acknowledged survives a power cut. Extended attributes \
are not supported (CLFS stores none): setting one fails with ENOTSUP.")]
pub struct MountArgs {
    /// Mount a CLFS container read-only instead of a staging volume
    /// (then PATHS is only the mount point). Hidden until the read-only
    /// mount is merged in: today it only says so.
    #[arg(long, value_name = "URL", hide = true)]
    pub container: Option<String>,
    /// VOLUME MOUNTPOINT: the staging volume folder and where to mount it.
    #[arg(value_name = "PATHS", num_args = 1..=2, required = true)]
    pub paths: Vec<PathBuf>,
    /// Serve in the foreground until unmounted (logs on stderr too).
    #[arg(long, short = 'f')]
    pub foreground: bool,
    /// Mount options, comma-separated, repeatable: ro, rw, allow_other,
    /// allow_root; no_passthrough (by default the kernel reads and writes
    /// file contents directly when it supports FUSE passthrough, Linux
    /// 6.9+); writeback_cache (instead of passthrough: the kernel caches
    /// writes and keeps regular files' ctime itself).
    #[arg(short = 'o', long = "options", value_name = "OPT[,OPT...]")]
    pub options: Vec<String>,
}

/// Arguments of `umount`.
#[derive(Debug, Args)]
pub struct UmountArgs {
    /// The mount point.
    pub mountpoint: PathBuf,
    /// Detach now even if busy, clean up when no longer used (`-z`).
    #[arg(long, short = 'z')]
    pub lazy: bool,
}

/// Arguments of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The new volume's folder (absent or empty).
    pub volume: PathBuf,
}

fn serve_logging(volume: &Path) {
    let level = LOG_LEVEL.get().copied().unwrap_or(LogLevel::Info);
    let _ = crate::commands::logging::init(level, Some(&volume.join("mount.log")));
}

static LOG_LEVEL: std::sync::OnceLock<LogLevel> = std::sync::OnceLock::new();

/// Runs `mount`.
pub fn run(args: MountArgs, level: LogLevel) -> anyhow::Result<ExitCode> {
    if let Some(url) = &args.container {
        anyhow::bail!(
            "mounting a container ({url}) read-only is not available in this build; \
             mount a staging volume with `clfs-fs mount VOLUME MOUNTPOINT`"
        );
    }
    let [volume, mountpoint] = <[PathBuf; 2]>::try_from(args.paths)
        .map_err(|_| anyhow::anyhow!("mount needs a VOLUME folder and a MOUNTPOINT"))?;
    let _ = LOG_LEVEL.set(level);
    mount::mount(MountRequest {
        volume: volume.clone(),
        mountpoint: mountpoint.clone(),
        foreground: args.foreground,
        options: args.options,
        on_serve: Some(serve_logging),
    })
    .with_context(|| {
        format!(
            "cannot mount {} at {}",
            volume.display(),
            mountpoint.display()
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `umount`.
pub fn run_umount(args: UmountArgs) -> anyhow::Result<ExitCode> {
    mount::unmount(&args.mountpoint, args.lazy)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `init`.
pub fn run_init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let m = Volume::init(&args.volume)
        .with_context(|| format!("cannot create a volume in {}", args.volume.display()))?;
    println!(
        "created staging volume {} (containerid {:#x})",
        args.volume.display(),
        m.containerid
    );
    Ok(ExitCode::SUCCESS)
}
