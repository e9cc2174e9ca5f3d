//! `clfs-fs mount`: FUSE mounts. `--container URL MOUNTPOINT` mounts a
//! CLFS container read-only; a volume mount (`VOLUME_DIR MOUNTPOINT`) is
//! dispatched elsewhere.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

use crate::cli::LogLevel;
use crate::read::mount::ns::CacheOptions;
use crate::read::mount::{fuse_config, open_namespace, serve, MountOptions};
use crate::store::{self, StoreOptions};

/// Arguments of `mount`.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// Mount this CLFS container read-only (an Azure URL with a SAS, an
    /// emulator URL, or a local directory); then PATHS is just the mount
    /// point. Directories and inodes are read when first looked up, file
    /// data a segment at a time; nothing is ever written to the container.
    #[arg(long, value_name = "URL")]
    pub container: Option<String>,
    /// `MOUNTPOINT` with --container.
    #[arg(num_args = 1..=2, required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Stay in the foreground (logs on stderr) instead of returning once
    /// the mount is ready. Either way, unmount with `fusermount3 -u
    /// MOUNTPOINT` (or SIGINT/SIGTERM to the mount process).
    #[arg(long)]
    pub foreground: bool,
    /// Mount options, comma-separated or repeated: allow_other, allow_root,
    /// auto_unmount, ro, nodev, nosuid, noexec, noatime, fsname=…, subtype=….
    #[arg(
        short = 'o',
        long = "options",
        value_delimiter = ',',
        value_name = "OPT"
    )]
    pub options: Vec<String>,
    /// Memory for decoded data segments (8 MiB each), in MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub cache_mib: u64,
    /// Data segments read ahead of a sequential reader.
    #[arg(long, default_value_t = 4, value_name = "SEGMENTS")]
    pub readahead: usize,
    /// Mount an unfinished container (only the provisional `tmp` root).
    #[arg(long)]
    pub unfinished: bool,
    /// Requests in flight to the container.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

/// Runs `mount`.
pub fn run(args: MountArgs, level: LogLevel) -> anyhow::Result<ExitCode> {
    match &args.container {
        Some(_) => run_container(args, level),
        None => bail!(
            "a volume mount needs `clfs-fs mount <volume dir> <mountpoint>`, which this build \
             does not include; to mount a CLFS container read-only use \
             `clfs-fs mount --container <URL> <mountpoint>`"
        ),
    }
}

fn run_container(args: MountArgs, level: LogLevel) -> anyhow::Result<ExitCode> {
    let [mountpoint] = args.paths.as_slice() else {
        bail!(
            "with --container, give only the mount point (got {} paths)",
            args.paths.len()
        );
    };
    let container = args.container.clone().unwrap_or_default();
    if !args.foreground {
        return background(mountpoint);
    }
    crate::commands::logging::init(level, None)?;
    let rt = super::runtime()?;
    let sopts = StoreOptions {
        concurrency: args.concurrency.max(1),
        ..StoreOptions::default()
    };
    let store = store::open(&container, &sopts).context("cannot open the container")?;
    let location = store.location();
    let opts = MountOptions {
        cache: CacheOptions {
            segment_bytes: args.cache_mib.max(16) << 20,
            readahead: args.readahead,
            ..CacheOptions::default()
        },
        threads: 4,
        options: args.options.clone(),
        unfinished: args.unfinished,
    };
    let config = fuse_config(&opts.options, &location, opts.threads)?;
    let ns = rt
        .block_on(open_namespace(store, &opts))
        .with_context(|| format!("cannot mount {location}"))?;
    let detached = std::env::var_os(DETACHED).is_some();
    serve(ns, mountpoint, &config, &rt, || {
        if detached {
            quiet_stderr();
        }
    })
    .with_context(|| format!("cannot mount {location} on {}", mountpoint.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// Set in the environment of the background mount process.
const DETACHED: &str = "CLFS_FS_MOUNT_DETACHED";

/// The background process's stderr is a pipe to the command that started
/// it, which exits once the mount is ready: from then on, stderr goes to
/// /dev/null (use --foreground to keep the logs).
fn quiet_stderr() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: both descriptors are open; dup2 replaces fd 2 atomically.
        unsafe {
            libc::dup2(null.as_raw_fd(), 2);
        }
    }
}

/// Starts this command again with `--foreground` in a new session and
/// returns once the mount appears (or the child fails, with its message).
fn background(mountpoint: &Path) -> anyhow::Result<ExitCode> {
    let target = std::fs::canonicalize(mountpoint)
        .with_context(|| format!("mount point {}", mountpoint.display()))?;
    let exe = std::env::current_exe().context("cannot find the clfs-fs executable")?;
    let mut argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    argv.push("--foreground".into());
    let mut cmd = Command::new(exe);
    cmd.args(argv)
        .env(DETACHED, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the mount process")?;
    let mut stderr = child.stderr.take();
    let collector = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_string(&mut text);
        }
        text
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if is_mounted(&target) {
            eprintln!(
                "mounted on {} (process {}); unmount with: fusermount3 -u {}",
                target.display(),
                child.id(),
                target.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(status) = child.try_wait().context("waiting for the mount process")? {
            let text = collector.join().unwrap_or_default();
            eprint!("{text}");
            bail!("the mount process exited ({status}) before the mount was ready");
        }
        if Instant::now() > deadline {
            bail!(
                "the mount on {} was not ready after 120 s (process {} still runs)",
                target.display(),
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True when `target` is a mount point in /proc/self/mountinfo.
pub fn is_mounted(target: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = target.as_os_str().as_encoded_bytes();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|p| unescape_mountinfo(p) == want)
}

/// Undoes the octal escapes (`\040` for a space) of mountinfo paths.
fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::unescape_mountinfo;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo("/a\\040b"), b"/a b");
        assert_eq!(unescape_mountinfo("/plain"), b"/plain");
        assert_eq!(unescape_mountinfo("/end\\"), b"/end\\");
    }
}
