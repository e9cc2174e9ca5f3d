//! `clfs-fs mount`, `clfs-fs umount` and `clfs-fs init`: mounting a
//! staging volume (writable) or, with `--container`, a CLFS container
//! (read-only, in `mount_container`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::cli::LogLevel;
#[cfg(feature = "state")]
use crate::fs::mount::{self, MountRequest};
#[cfg(feature = "state")]
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
are not supported (CLFS stores none): setting one fails with ENOTSUP.

With --container URL, PATHS is only the mount point and the container is mounted read-only: directories and inodes are read when first looked up, file data one 8 MiB segment at a time into a bounded cache with read-ahead; changes fail with EROFS and nothing is ever written to the container.")]
pub struct MountArgs {
    /// Mount this CLFS container read-only instead of a staging volume (an
    /// Azure URL with a SAS, an emulator URL, or a local directory); then
    /// PATHS is only the mount point.
    #[arg(long, value_name = "URL")]
    pub container: Option<String>,
    /// VOLUME MOUNTPOINT (a staging volume folder and where to mount it),
    /// or only MOUNTPOINT with --container.
    #[arg(value_name = "PATHS", num_args = 1..=2, required = true)]
    pub paths: Vec<PathBuf>,
    /// Serve in the foreground until unmounted (logs on stderr too).
    #[arg(long, short = 'f')]
    pub foreground: bool,
    /// Mount options, comma-separated, repeatable: ro, rw, allow_other,
    /// allow_root; no_passthrough (by default the kernel reads and writes
    /// file contents directly when it supports FUSE passthrough, Linux
    /// 6.9+); writeback_cache (instead of passthrough: the kernel caches
    /// writes and keeps regular files' ctime itself); no_low_latency (by
    /// default, as root, while requests arrive densely the daemon asks the
    /// kernel for 0 µs CPU wake-up latency, so idle CPUs poll instead of
    /// halting: small-file copies run about twice as fast, at the cost of
    /// busy idle CPUs during them). With --container:
    /// allow_other, allow_root, auto_unmount, ro, nodev, nosuid, noexec,
    /// noatime, fsname=..., subtype=....
    #[arg(
        short = 'o',
        long = "options",
        value_delimiter = ',',
        value_name = "OPT[,OPT...]"
    )]
    pub options: Vec<String>,
    /// With --container: memory for decoded data segments (8 MiB each), in MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub cache_mib: u64,
    /// With --container: data segments read ahead of a sequential reader.
    #[arg(long, default_value_t = 4, value_name = "SEGMENTS")]
    pub readahead: usize,
    /// With --container: mount an unfinished container (only the
    /// provisional `tmp` root).
    #[arg(long)]
    pub unfinished: bool,
    /// With --container: requests in flight to the container.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

#[cfg(feature = "state")]
/// Arguments of `umount`.
#[derive(Debug, Args)]
pub struct UmountArgs {
    /// The mount point.
    pub mountpoint: PathBuf,
    /// Detach now even if busy, clean up when no longer used (`-z`).
    #[arg(long, short = 'z')]
    pub lazy: bool,
}

#[cfg(feature = "state")]
/// Arguments of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The new volume's folder (absent or empty).
    pub volume: PathBuf,
}

#[cfg(feature = "state")]
fn serve_logging(volume: &Path) {
    let level = LOG_LEVEL.get().copied().unwrap_or(LogLevel::Info);
    let _ = crate::commands::logging::init(level, Some(&volume.join("mount.log")));
}

#[cfg(feature = "state")]
static LOG_LEVEL: std::sync::OnceLock<LogLevel> = std::sync::OnceLock::new();

/// Runs `mount`.
pub fn run(args: MountArgs, level: LogLevel) -> anyhow::Result<ExitCode> {
    if args.container.is_some() {
        return super::mount_container::run(args, level);
    }
    run_volume(args, level)
}

#[cfg(not(feature = "state"))]
fn run_volume(_args: MountArgs, _level: LogLevel) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "this build has no staging volumes (built without the `state` feature); \
         mount a container read-only with `clfs-fs mount --container URL MOUNTPOINT`"
    )
}

#[cfg(feature = "state")]
fn run_volume(args: MountArgs, level: LogLevel) -> anyhow::Result<ExitCode> {
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

#[cfg(feature = "state")]
/// Runs `umount`.
pub fn run_umount(args: UmountArgs) -> anyhow::Result<ExitCode> {
    mount::unmount(&args.mountpoint, args.lazy)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "state")]
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
