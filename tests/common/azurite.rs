//! Starts a real Azurite blob emulator for one test, on a free 127.0.0.1
//! port, in memory, and kills it when dropped.
//!
//! The executable is `$AZURITE_BIN` or, failing that, the `azurite-blob` that
//! `scripts/setup-azurite.sh` installs under `~/.cache/clfs-fs/azurite` (or
//! `$CLFS_FS_AZURITE_DIR`). When neither exists the test fails and says to run
//! the setup script: a missing emulator is never a silent skip.

#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The emulator's published account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// The emulator's published key (public).
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite; killed on drop.
pub struct Azurite {
    child: Child,
    port: u16,
    _workdir: tempfile::TempDir,
}

/// Where the azurite-blob executable is.
pub fn azurite_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("AZURITE_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "AZURITE_BIN={} does not exist: run scripts/setup-azurite.sh, or fix AZURITE_BIN",
            bin.display()
        );
        return bin;
    }
    let dir = std::env::var_os("CLFS_FS_AZURITE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".cache/clfs-fs/azurite")
        });
    let bin = dir.join("node_modules/.bin/azurite-blob");
    assert!(
        bin.is_file(),
        "Azurite is not installed ({} is missing and AZURITE_BIN is not set): \
         run scripts/setup-azurite.sh",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

impl Azurite {
    /// Starts Azurite and waits until it accepts connections.
    pub fn start() -> Azurite {
        let bin = azurite_bin();
        let mut last_log = String::new();
        // The port is free when chosen but could be taken before Azurite
        // binds it: try a few.
        for _ in 0..3 {
            let workdir = tempfile::tempdir().expect("temp dir");
            let port = free_port();
            let log_path = workdir.path().join("azurite.log");
            let log = std::fs::File::create(&log_path).expect("create azurite log");
            let err_log = log.try_clone().expect("clone log handle");
            let mut command = Command::new(&bin);
            // If this process dies without running destructors (killed by a
            // timeout, say), the kernel kills Azurite too. The signal follows
            // the spawning thread, which outlives the `Azurite` value: tests
            // start it on their own thread and drop it before returning.
            // SAFETY: prctl is async-signal-safe and touches no memory.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let mut child = command
                .arg("--blobHost")
                .arg("127.0.0.1")
                .arg("--blobPort")
                .arg(port.to_string())
                .arg("--inMemoryPersistence")
                .arg("--disableTelemetry")
                .arg("--skipApiVersionCheck")
                .arg("--silent")
                .current_dir(workdir.path())
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err_log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(30);
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut exited = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    exited = true;
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Azurite {
                        child,
                        port,
                        _workdir: workdir,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !exited {
                let _ = child.kill();
            }
            let _ = child.wait();
            last_log.clear();
            if let Ok(mut f) = std::fs::File::open(&log_path) {
                let _ = f.read_to_string(&mut last_log);
            }
        }
        panic!("Azurite did not start; its output:\n{last_log}");
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1/CONTAINER`.
    pub fn container_url(&self, container: &str) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}/{container}", self.port)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
