//! `clfs-fs mount --container URL MOUNTPOINT`: a CLFS container mounted
//! read-only through FUSE (the code is in `read::mount`).

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::mount::MountArgs;
use crate::cli::LogLevel;
use crate::read::mount::ns::CacheOptions;
use crate::read::mount::{fuse_config, open_namespace, serve, MountOptions};
use crate::store::{self, StoreOptions};

/// Runs `mount --container`.
pub fn run(args: MountArgs, level: LogLevel) -> anyhow::Result<ExitCode> {
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
