//! Real FUSE mounts of staging volumes for the tests: `clfs-fs mount
//! --foreground` as a child process, and a guard that always unmounts
//! (lazily, with timeouts) so that a hung mount never hangs the suite.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `clfs-fs` binary: `$CLFS_FS_BIN` when set (a copy that no other
/// build in a shared target folder can replace mid-run), else cargo's.
pub fn bin() -> std::ffi::OsString {
    std::env::var_os("CLFS_FS_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_clfs-fs").into())
}

/// True when `path` is a mount point (in /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(canon) = path
        .canonicalize()
        .or_else(|_| Ok::<_, ()>(path.to_path_buf()))
    else {
        return false;
    };
    let want = canon.to_string_lossy().replace(' ', "\\040");
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|s| {
            s.lines()
                .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
        })
        .unwrap_or(false)
}

/// Runs `cmd` with a deadline; kills it when the deadline passes.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Option<std::process::ExitStatus> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let start = Instant::now();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Lazily unmounts `mp` (never blocks on a dead daemon).
pub fn force_unmount(mp: &Path) {
    if is_mounted(mp) {
        let _ = run_with_timeout(
            Command::new("fusermount3").arg("-u").arg("-z").arg(mp),
            Duration::from_secs(10),
        );
    }
}

/// A mounted volume served by a child `clfs-fs mount --foreground`.
pub struct Mounted {
    /// The volume folder.
    pub volume: PathBuf,
    /// The mount point.
    pub mountpoint: PathBuf,
    child: Option<Child>,
}

impl Mounted {
    /// Mounts `volume` at `mountpoint` with extra `-o` options; panics if
    /// the mount is not up within 30 s.
    pub fn new(volume: &Path, mountpoint: &Path, options: &[&str]) -> Self {
        std::fs::create_dir_all(mountpoint).expect("mount point");
        let mut cmd = Command::new(bin());
        cmd.arg("mount").arg("--foreground");
        for o in options {
            cmd.arg("-o").arg(o);
        }
        // Stderr to a file beside the mount point (a closed pipe would
        // make the daemon's log writes fail).
        let log = mountpoint.with_extension("stderr");
        let err = std::fs::File::create(&log).expect("stderr file");
        cmd.arg(volume)
            .arg(mountpoint)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err));
        let mut child = cmd.spawn().expect("clfs-fs mount starts");
        let start = Instant::now();
        while !is_mounted(mountpoint) {
            if let Ok(Some(st)) = child.try_wait() {
                let err = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("clfs-fs mount exited ({st}) before mounting: {err}");
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("{} not mounted after 30 s", mountpoint.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Mounted {
            volume: volume.to_path_buf(),
            mountpoint: mountpoint.to_path_buf(),
            child: Some(child),
        }
    }

    /// Process id of the serving daemon.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Kills the daemon with SIGKILL (a crash) and detaches the dead mount.
    pub fn kill(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        force_unmount(&self.mountpoint);
    }

    /// Unmounts cleanly and waits for the daemon to exit (its exit status
    /// must be success).
    pub fn unmount(mut self) {
        let st = run_with_timeout(
            Command::new(bin()).arg("umount").arg(&self.mountpoint),
            Duration::from_secs(30),
        );
        assert!(
            st.is_some_and(|s| s.success()),
            "clfs-fs umount failed: {st:?}"
        );
        let mut c = self.child.take().expect("daemon");
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                let log = std::fs::read_to_string(self.mountpoint.with_extension("stderr"))
                    .unwrap_or_default();
                assert!(st.success(), "the mount daemon exited with {st}: {log}");
                break;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = c.kill();
                panic!("the mount daemon did not exit after unmount");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        force_unmount(&self.mountpoint);
        if let Some(mut c) = self.child.take() {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
