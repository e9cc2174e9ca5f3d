//! The staging mount's CPU wake-up latency request, read back from the
//! kernel: `/dev/cpu_dma_latency` reports the current limit. While files
//! are created densely through a default mount it is 0; once they stop
//! the daemon drops its request; with `-o no_low_latency` it never asks.
//! (Its own binary: another test's busy mount would hold the limit too.)

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::mount::Mounted;

const DEVICE: &str = "/dev/cpu_dma_latency";

/// The kernel's current CPU latency limit in µs.
fn limit() -> i32 {
    let mut f = std::fs::File::open(DEVICE).expect("the CPU latency QoS device opens (as root)");
    let mut b = [0u8; 4];
    f.read_exact(&mut b).expect("read the limit");
    i32::from_ne_bytes(b)
}

/// Polls until `f(limit())` holds or `secs` pass; returns whether it did.
fn limit_becomes(secs: u64, f: impl Fn(i32) -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f(limit()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// Creates small files in `dir` until `stop` is set.
fn create_files(dir: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        std::fs::create_dir_all(&dir).expect("mkdir in the mount");
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let mut f = std::fs::File::create(dir.join(format!("f{n:06}"))).expect("create");
            f.write_all(b"small file").expect("write");
            n += 1;
        }
        n
    })
}

fn mount(root: &Path, name: &str, options: &[&str]) -> Mounted {
    Mounted::new(&root.join(format!("{name}.vol")), &root.join(name), options)
}

#[test]
fn dense_requests_hold_zero_latency_only_while_they_last() {
    assert!(
        Path::new(DEVICE).exists(),
        "{DEVICE} is absent: this kernel has no CPU latency QoS"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    assert!(
        limit_becomes(10, |v| v != 0),
        "something else holds a 0 µs limit before the test"
    );

    // Default mount: the limit drops to 0 during the burst, and comes
    // back once it ends.
    let m = mount(tmp.path(), "default", &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let w = create_files(m.mountpoint.join("burst"), stop.clone());
    let held = limit_becomes(20, |v| v == 0);
    stop.store(true, Ordering::Relaxed);
    let made = w.join().expect("writer");
    assert!(
        held,
        "the limit never became 0 while {made} files were created"
    );
    assert!(
        limit_becomes(10, |v| v != 0),
        "the limit stayed 0 after the burst ended"
    );
    m.unmount();

    // no_low_latency: a burst of the same kind never asks.
    let m = mount(tmp.path(), "plain", &["no_low_latency"]);
    let stop = Arc::new(AtomicBool::new(false));
    let w = create_files(m.mountpoint.join("burst"), stop.clone());
    let end = Instant::now() + Duration::from_secs(1);
    let mut zero = false;
    while Instant::now() < end {
        zero |= limit() == 0;
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    let made = w.join().expect("writer");
    assert!(made > 0, "no file was created");
    assert!(!zero, "no_low_latency: the limit became 0");
    m.unmount();
}
