//! Mounting a staging volume: option parsing, the FUSE session (several
//! worker threads), signals that unmount cleanly, and daemonizing (fork
//! before any thread exists; the parent returns once the mount is ready).

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::{Config, MountOption, SessionACL};

use super::{FsOptions, StagingFs};
use crate::volume::{Volume, VolumeError};

/// Errors of mounting.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The volume could not be opened or created.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// An unknown or conflicting `-o` option.
    #[error("mount option {0:?} is not supported (known: ro, rw, allow_other, allow_root, passthrough, no_passthrough, writeback_cache, no_writeback_cache, low_latency, no_low_latency)")]
    Option(String),
    /// The mount point is not a directory.
    #[error("mount point {path}: {detail}")]
    Mountpoint {
        /// The mount point.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The FUSE session failed.
    #[error("FUSE mount at {path}: {source}")]
    Fuse {
        /// The mount point.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Forking or a pipe failed.
    #[error("cannot start the mount daemon: {0}")]
    Daemon(std::io::Error),
    /// The daemon reported a failure.
    #[error("{0}")]
    Child(String),
}

/// What to mount and how.
#[derive(Debug, Clone)]
pub struct MountRequest {
    /// The volume folder (created when absent or empty).
    pub volume: PathBuf,
    /// The mount point.
    pub mountpoint: PathBuf,
    /// Stay in the foreground instead of daemonizing.
    pub foreground: bool,
    /// `-o` options, already split at commas.
    pub options: Vec<String>,
    /// Called in the process that serves the mount, once the volume is
    /// open and before the session starts (logging set-up).
    pub on_serve: Option<fn(&Path)>,
}

/// Parsed options.
struct Parsed {
    fs: FsOptions,
    acl: SessionACL,
}

fn parse_options(opts: &[String]) -> Result<Parsed, MountError> {
    let mut p = Parsed {
        fs: FsOptions {
            read_only: false,
            writeback_cache: false,
            passthrough: true,
            low_latency: true,
        },
        acl: SessionACL::Owner,
    };
    for o in opts.iter().flat_map(|o| o.split(',')) {
        match o.trim() {
            "" | "rw" | "default_permissions" => {}
            "ro" => p.fs.read_only = true,
            "allow_other" => p.acl = SessionACL::All,
            "allow_root" => p.acl = SessionACL::RootAndOwner,
            "writeback_cache" => {
                p.fs.writeback_cache = true;
                p.fs.passthrough = false;
            }
            "no_writeback_cache" => p.fs.writeback_cache = false,
            "passthrough" => p.fs.passthrough = true,
            "low_latency" => p.fs.low_latency = true,
            "no_low_latency" => p.fs.low_latency = false,
            "no_passthrough" => p.fs.passthrough = false,
            other => return Err(MountError::Option(other.to_string())),
        }
    }
    Ok(p)
}

fn config(p: &Parsed) -> Config {
    let mut c = Config::default();
    c.mount_options = vec![
        MountOption::FSName("clfs-fs".into()),
        MountOption::Subtype("clfs-fs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
        if p.fs.read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
    ];
    if geteuid() == 0 {
        c.mount_options.push(MountOption::Dev);
        c.mount_options.push(MountOption::Suid);
    }
    c.acl = p.acl;
    c.n_threads = Some(reader_threads(&p.fs));
    c.clone_fd = true;
    c
}

/// Threads reading `/dev/fuse`. With passthrough (root, Linux 6.9+) the
/// daemon sees only metadata requests, each answered in microseconds, and
/// `fsync` goes to a pool: one reader that stays warm then answers faster
/// than several woken in turn (the kernel hands each request to the reader
/// idle the longest). Measured on the 2-vCPU build VM, 10,000 creations:
/// 60-67 µs a file with one reader, 70-77 with four. Without passthrough
/// reads and writes come through the daemon as well, and several readers
/// serve them in parallel.
fn reader_threads(fs: &FsOptions) -> usize {
    if fs.passthrough && !fs.writeback_cache && geteuid() == 0 && kernel_at_least(6, 9) {
        return 1;
    }
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    cpus.clamp(2, 8) * 2
}

/// Whether the running kernel's release is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    // SAFETY: uname fills the struct it is given.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return false;
    }
    // SAFETY: uname NUL-terminates release.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) };
    release_at_least(&release.to_string_lossy(), major, minor)
}

/// Whether a release string such as `6.18.44-fc` is at least `major.minor`.
fn release_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

fn geteuid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() }
}

fn check_mountpoint(p: &Path) -> Result<(), MountError> {
    match std::fs::metadata(p) {
        Ok(md) if md.is_dir() => Ok(()),
        Ok(_) => Err(MountError::Mountpoint {
            path: p.to_path_buf(),
            detail: "not a directory".into(),
        }),
        Err(e) => Err(MountError::Mountpoint {
            path: p.to_path_buf(),
            detail: e.to_string(),
        }),
    }
}

/// Opens the volume and mounts it; returns the session, ready to run.
fn start(req: &MountRequest, p: &Parsed) -> Result<fuser::Session<StagingFs>, MountError> {
    let vol = Arc::new(Volume::open_or_init(&req.volume)?);
    if let Some(f) = req.on_serve {
        f(&req.volume);
    }
    let fs = StagingFs::new(vol, p.fs);
    fuser::Session::new(fs, &req.mountpoint, &config(p)).map_err(|source| MountError::Fuse {
        path: req.mountpoint.clone(),
        source,
    })
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and so in
/// every thread started after) and returns the set.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local set; pthread_sigmask with a
    // valid set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Serves the session until it is unmounted; SIGINT/SIGTERM/SIGHUP
/// unmount it (so that the volume is closed cleanly).
fn serve(
    mut session: fuser::Session<StagingFs>,
    set: libc::sigset_t,
    mountpoint: PathBuf,
) -> Result<(), MountError> {
    let session_mountpoint = mountpoint.clone();
    let mut unmounter = session.unmount_callable();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut sig = 0;
            // SAFETY: set is a valid signal set blocked in this thread.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                tracing::info!("signal {sig}: unmounting {}", mountpoint.display());
                if let Err(e) = unmounter.unmount() {
                    tracing::error!("unmount {}: {e}", mountpoint.display());
                }
            }
        })
        .map_err(MountError::Daemon)?;
    let mp = session_mountpoint.clone();
    session
        .run()
        .map_err(|source| MountError::Fuse { path: mp, source })
}

/// Mounts the volume: in the foreground, serving until unmounted, or as
/// a daemon, returning once the mount is ready.
pub fn mount(req: MountRequest) -> Result<(), MountError> {
    let parsed = parse_options(&req.options)?;
    check_mountpoint(&req.mountpoint)?;
    if req.foreground {
        let set = block_signals();
        let session = start(&req, &parsed)?;
        tracing::info!(
            "mounted {} at {}",
            req.volume.display(),
            req.mountpoint.display()
        );
        return serve(session, set, req.mountpoint.clone());
    }
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(MountError::Daemon(std::io::Error::last_os_error()));
    }
    // SAFETY: pipe2 returned two fresh descriptors that nothing else owns.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the process has a single thread here (the CLI starts none
    // before mounting), so the child may continue normally.
    match unsafe { libc::fork() } {
        -1 => Err(MountError::Daemon(std::io::Error::last_os_error())),
        0 => {
            drop(rd);
            let mut wr = std::fs::File::from(wr);
            // SAFETY: no preconditions.
            unsafe { libc::setsid() };
            let set = block_signals();
            let code = match start(&req, &parsed) {
                Ok(session) => {
                    let _ = wr.write_all(b"\0");
                    drop(wr);
                    detach_stdio();
                    match serve(session, set, req.mountpoint.clone()) {
                        Ok(()) => 0,
                        Err(e) => {
                            tracing::error!("{e}");
                            1
                        }
                    }
                }
                Err(e) => {
                    let _ = write!(wr, "\x01{e}");
                    1
                }
            };
            std::process::exit(code)
        }
        _child => {
            drop(wr);
            let mut msg = Vec::new();
            std::fs::File::from(rd)
                .read_to_end(&mut msg)
                .map_err(MountError::Daemon)?;
            match msg.first() {
                Some(0) => Ok(()),
                Some(_) => Err(MountError::Child(
                    String::from_utf8_lossy(&msg[1..]).into_owned(),
                )),
                None => Err(MountError::Child(
                    "the mount daemon exited before the mount was ready".into(),
                )),
            }
        }
    }
}

/// Points stdin, stdout and stderr at /dev/null (the daemon logs to the
/// volume's `mount.log`).
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// Unmounts `mountpoint` with `fusermount3 -u` (`-z`: lazily), falling
/// back to umount(2) as root.
pub fn unmount(mountpoint: &Path, lazy: bool) -> Result<(), MountError> {
    let mut cmd = std::process::Command::new("fusermount3");
    cmd.arg(if lazy { "-uz" } else { "-u" }).arg(mountpoint);
    let out = cmd.output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                Err(e) => format!("fusermount3: {e}"),
            };
            if geteuid() == 0 {
                let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(
                    mountpoint.as_os_str(),
                ))
                .map_err(|_| MountError::Mountpoint {
                    path: mountpoint.to_path_buf(),
                    detail: "contains a NUL byte".into(),
                })?;
                let flags = if lazy { libc::MNT_DETACH } else { 0 };
                // SAFETY: c is a valid C string.
                if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
                    return Ok(());
                }
            }
            Err(MountError::Mountpoint {
                path: mountpoint.to_path_buf(),
                detail: format!("cannot unmount: {why}"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_parsed_and_unknown_ones_refused() {
        let p = parse_options(&["ro,allow_other".into(), "writeback_cache".into()]).unwrap();
        assert!(p.fs.read_only);
        assert!(p.fs.writeback_cache && !p.fs.passthrough);
        assert_eq!(p.acl, SessionACL::All);
        let p = parse_options(&["no_passthrough".into()]).unwrap();
        assert!(!p.fs.passthrough);
        let p = parse_options(&[]).unwrap();
        assert!(!p.fs.read_only && !p.fs.writeback_cache && p.fs.passthrough);
        assert!(
            matches!(parse_options(&["noexec".into()]), Err(MountError::Option(o)) if o == "noexec")
        );
        assert!(p.fs.low_latency);
        let p = parse_options(&["no_low_latency".into()]).unwrap();
        assert!(!p.fs.low_latency);
    }

    #[test]
    fn kernel_releases_compare_by_major_and_minor() {
        assert!(release_at_least("6.18.44-fc-v857", 6, 9));
        assert!(release_at_least("6.9.0", 6, 9));
        assert!(release_at_least("7.0-rc1", 6, 9));
        assert!(!release_at_least("6.8.12-amd64", 6, 9));
        assert!(!release_at_least("5.15.0", 6, 9));
        assert!(!release_at_least("garbage", 6, 9));
        assert!(!release_at_least("6", 6, 9));
    }

    #[test]
    fn several_readers_serve_a_mount_whose_data_goes_through_the_daemon() {
        let p = parse_options(&["no_passthrough".into()]).unwrap();
        assert!(reader_threads(&p.fs) >= 4);
        let p = parse_options(&["writeback_cache".into()]).unwrap();
        assert!(reader_threads(&p.fs) >= 4);
    }
}
