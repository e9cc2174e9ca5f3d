//! Low CPU wake-up latency while the mount is busy with small requests.
//!
//! Every FUSE request is a round trip: the caller sleeps, a daemon thread
//! wakes, replies, and wakes the caller. When the CPU a thread is woken on
//! sits in a halt state, the wake-up costs the halt's exit latency, and in
//! a virtual machine a vCPU that halted is resumed by the host: on the
//! 2-vCPU build VM that made a small-file creation (five requests) take
//! 150–184 µs through the mount against 62–74 µs with idle CPUs polling
//! instead of halting.
//!
//! So while requests arrive densely, the daemon holds a PM QoS request of
//! 0 µs on `/dev/cpu_dma_latency` (the kernel's CPU latency limit, what
//! tuned's latency profiles set): idle CPUs then poll instead of halting.
//! It is taken only after a window with at least [`MIN_REQUESTS`] requests
//! (1,000 a second: below that the wake-ups cost under 3 % of the time)
//! and dropped after the first window with fewer, so an idle mount, or one
//! that sees an occasional `stat`, leaves the system's idle settings as
//! they are. Opening the device needs root; without it the mount runs as
//! it would without this module.
//!
//! The request path costs one atomic increment and two loads
//! ([`CpuLatency::touch`]) while the request is held; a thread does the
//! rest.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// The kernel's CPU latency QoS device.
pub const DEVICE: &str = "/dev/cpu_dma_latency";
/// The window over which requests are counted.
pub const WINDOW: Duration = Duration::from_millis(10);
/// Requests in one window that take (or keep) the latency request.
pub const MIN_REQUESTS: u64 = 10;

#[derive(Debug, Default)]
struct Control {
    /// A request arrived while the latency request was not held.
    wanted: bool,
    stop: bool,
}

#[derive(Debug)]
struct Shared {
    device: PathBuf,
    window: Duration,
    requests: AtomicU64,
    held: AtomicBool,
    /// The device could not be opened: nothing more is tried.
    unavailable: AtomicBool,
    control: Mutex<Control>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits one window (or until stopped); returns the guard and
    /// whether it was stopped.
    fn wait_window<'a>(&'a self, g: MutexGuard<'a, Control>) -> (MutexGuard<'a, Control>, bool) {
        let (g, _) = self
            .wake
            .wait_timeout_while(g, self.window, |c| !c.stop)
            .unwrap_or_else(|p| p.into_inner());
        let stop = g.stop;
        (g, stop)
    }

    /// Whether at least [`MIN_REQUESTS`] arrived during one window
    /// (`None`: stopped).
    fn dense_window<'a>(
        &'a self,
        g: MutexGuard<'a, Control>,
    ) -> (MutexGuard<'a, Control>, Option<bool>) {
        let before = self.requests.load(Ordering::Relaxed);
        let (g, stop) = self.wait_window(g);
        if stop {
            return (g, None);
        }
        let n = self.requests.load(Ordering::Relaxed).wrapping_sub(before);
        (g, Some(n >= MIN_REQUESTS))
    }
}

/// The latency holder of one mount (see the module documentation).
#[derive(Debug, Default)]
pub struct CpuLatency {
    shared: Option<Arc<Shared>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl CpuLatency {
    /// One that does nothing (`-o no_low_latency`, or not started yet).
    pub fn off() -> Self {
        Self::default()
    }

    /// Starts the thread that holds a 0 µs request on [`DEVICE`] while
    /// requests are dense.
    pub fn start() -> Self {
        Self::start_with(Path::new(DEVICE), WINDOW)
    }

    /// As [`CpuLatency::start`], with another device (tests) and window.
    pub fn start_with(device: &Path, window: Duration) -> Self {
        let shared = Arc::new(Shared {
            device: device.to_path_buf(),
            window,
            requests: AtomicU64::new(0),
            held: AtomicBool::new(false),
            unavailable: AtomicBool::new(false),
            control: Mutex::new(Control::default()),
            wake: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("clfs-fs-latency".into())
            .spawn(move || run(&s))
            .map_err(|e| tracing::warn!("no wake-up latency thread: {e}"))
            .ok();
        if thread.is_none() {
            return Self::off();
        }
        CpuLatency {
            shared: Some(shared),
            thread: Mutex::new(thread),
        }
    }

    /// Counts one request (call at the start of each).
    #[inline]
    pub fn touch(&self) {
        let Some(s) = &self.shared else {
            return;
        };
        s.requests.fetch_add(1, Ordering::Relaxed);
        if s.held.load(Ordering::Relaxed) || s.unavailable.load(Ordering::Relaxed) {
            return;
        }
        let mut g = s.lock();
        if !g.wanted {
            g.wanted = true;
            s.wake.notify_all();
        }
    }

    /// Whether the latency request is held now.
    pub fn is_held(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.held.load(Ordering::Relaxed))
    }

    /// Whether the device could not be opened.
    pub fn is_unavailable(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.unavailable.load(Ordering::Relaxed))
    }

    /// Stops the thread and drops the latency request.
    pub fn stop(&self) {
        let Some(s) = &self.shared else {
            return;
        };
        s.lock().stop = true;
        s.wake.notify_all();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for CpuLatency {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Opens the device and asks for 0 µs; the request lasts while the file
/// stays open.
fn request_zero(device: &Path) -> std::io::Result<File> {
    let mut f = std::fs::OpenOptions::new().write(true).open(device)?;
    f.write_all(&0i32.to_ne_bytes())?;
    Ok(f)
}

fn run(s: &Shared) {
    let mut g = s.lock();
    loop {
        while !g.wanted && !g.stop {
            g = s.wake.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        if g.stop {
            return;
        }
        // A request arrived: hold only if they keep coming densely.
        let dense;
        (g, dense) = s.dense_window(g);
        match dense {
            None => return,
            Some(false) => {
                g.wanted = false;
                continue;
            }
            Some(true) => {}
        }
        let file = match request_zero(&s.device) {
            Ok(f) => f,
            Err(e) => {
                s.unavailable.store(true, Ordering::Relaxed);
                tracing::info!(
                    "low wake-up latency unavailable ({}: {e}); the mount keeps the system's CPU idle settings",
                    s.device.display()
                );
                return;
            }
        };
        s.held.store(true, Ordering::Relaxed);
        tracing::debug!("requests are dense: holding 0 µs CPU wake-up latency");
        let stopped = loop {
            let dense;
            (g, dense) = s.dense_window(g);
            match dense {
                None => break true,
                Some(true) => continue,
                Some(false) => break false,
            }
        };
        drop(file);
        s.held.store(false, Ordering::Relaxed);
        g.wanted = false;
        tracing::debug!("requests are sparse: CPU wake-up latency released");
        if stopped {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Polls `f` until it is true or `secs` pass.
    fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        f()
    }

    /// Touches `l` every `gap` until `stop` is set.
    fn toucher(l: Arc<CpuLatency>, gap: Duration, stop: Arc<AtomicBool>) -> JoinHandle<()> {
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                l.touch();
                std::thread::sleep(gap);
            }
        })
    }

    #[test]
    fn dense_requests_hold_zero_and_sparse_ones_release_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dev = dir.path().join("latency");
        std::fs::write(&dev, b"").expect("write");
        let l = Arc::new(CpuLatency::start_with(&dev, Duration::from_millis(20)));
        assert!(!l.is_held());
        let stop = Arc::new(AtomicBool::new(false));
        let t = toucher(l.clone(), Duration::from_micros(20), stop.clone());
        assert!(eventually(10, || l.is_held()), "dense requests take it");
        assert_eq!(
            std::fs::read(&dev).expect("read"),
            0i32.to_ne_bytes(),
            "0 µs was written to the device"
        );
        stop.store(true, Ordering::Relaxed);
        t.join().expect("toucher");
        assert!(eventually(10, || !l.is_held()), "idle releases it");
        l.stop();
    }

    #[test]
    fn sparse_requests_never_take_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dev = dir.path().join("latency");
        std::fs::write(&dev, b"").expect("write");
        let l = Arc::new(CpuLatency::start_with(&dev, Duration::from_millis(20)));
        // One request every 25 ms: at most one per window.
        for _ in 0..20 {
            l.touch();
            assert!(!l.is_held());
            std::thread::sleep(Duration::from_millis(25));
        }
        assert!(!l.is_held());
        assert!(
            std::fs::read(&dev).expect("read").is_empty(),
            "nothing written"
        );
        l.stop();
    }

    #[test]
    fn a_device_that_cannot_be_opened_turns_it_off_quietly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = Arc::new(CpuLatency::start_with(
            &dir.path().join("absent/latency"),
            Duration::from_millis(10),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let t = toucher(l.clone(), Duration::from_micros(20), stop.clone());
        assert!(eventually(10, || l.is_unavailable()));
        assert!(!l.is_held());
        stop.store(true, Ordering::Relaxed);
        t.join().expect("toucher");
        l.stop();
    }

    #[test]
    fn off_does_nothing_and_stop_is_idempotent() {
        let l = CpuLatency::off();
        for _ in 0..1000 {
            l.touch();
        }
        assert!(!l.is_held() && !l.is_unavailable());
        l.stop();
        let dir = tempfile::tempdir().expect("tempdir");
        let l = CpuLatency::start_with(&dir.path().join("x"), Duration::from_millis(10));
        l.stop();
        l.stop();
    }
}
