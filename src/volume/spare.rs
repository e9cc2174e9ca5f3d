//! Data files made ahead of time: while a volume is mounted, a background
//! thread keeps empty data files ready for the next inode numbers, so that
//! creating a regular file (the most frequent operation of a copy) only
//! opens one instead of allocating a file system inode on the request's
//! path.
//!
//! Inode numbers are handed out in order and never reused, so the file
//! ready for number `n` is used by whatever inode gets `n`. When that is
//! not a regular file, the spare file is removed (at once, or by the
//! thread if it is still making that batch). A crash leaves at most one
//! batch of empty files for numbers not yet handed out (the next mount
//! uses them) and, in a window of one operation, an empty file beside a
//! non-regular inode, which nothing reads.

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use super::Volume;

/// How many inode numbers ahead files are kept.
const AHEAD: u64 = 256;

#[derive(Debug, Default)]
struct State {
    /// Files exist for the numbers below this one (from where the thread
    /// started).
    ready_to: u64,
    /// The batch being made: `ready_to..making_to`.
    making_to: u64,
    /// Numbers in the batch being made that went to non-regular inodes:
    /// the thread removes their files when the batch is done.
    unwanted: HashSet<u64>,
    /// The thread runs.
    active: bool,
    stop: bool,
}

/// The spare-file maker of one volume (inactive until started).
#[derive(Debug, Default)]
pub(super) struct Spares {
    state: Mutex<State>,
    wake: Condvar,
    running: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Spares {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inode number `ino` was handed out; `regular`: to a regular file.
    pub(super) fn taken(&self, vol: &Volume, ino: u64, regular: bool) {
        let mut g = self.lock();
        if !g.active {
            return;
        }
        if !regular {
            if ino < g.ready_to {
                drop(g);
                remove(vol, ino);
                return;
            }
            if ino < g.making_to {
                g.unwanted.insert(ino);
            }
        }
        if g.ready_to.saturating_sub(ino) < AHEAD / 2 {
            self.wake.notify_one();
        }
    }
}

fn remove(vol: &Volume, ino: u64) {
    let p = vol.data_path(ino);
    match std::fs::remove_file(&p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove spare data file {}: {e}", p.display()),
    }
}

fn make(vol: &Volume, ino: u64) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(vol.data_path(ino))
        .map(drop)
}

impl Volume {
    /// Starts keeping data files ready for the next inode numbers (see the
    /// module documentation); [`Volume::stop_spares`] stops and removes the
    /// unused ones.
    pub fn start_spares(self: &Arc<Self>) {
        let mut running = self
            .spares
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if running.is_some() {
            return;
        }
        {
            let mut g = self.spares.lock();
            let next = self.lock_state().next_ino;
            *g = State {
                ready_to: next,
                making_to: next,
                active: true,
                ..State::default()
            };
        }
        let weak = Arc::downgrade(self);
        *running = std::thread::Builder::new()
            .name("clfs-fs-spares".into())
            .spawn(move || run(weak))
            .map_err(|e| tracing::warn!("no spare data files: {e}"))
            .ok();
    }

    /// Stops the spare-file thread and removes the files made for numbers
    /// not handed out.
    pub fn stop_spares(&self) {
        let handle = self
            .spares
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(handle) = handle else {
            return;
        };
        self.spares.lock().stop = true;
        self.spares.wake.notify_all();
        let _ = handle.join();
        let next = self.lock_state().next_ino;
        let ready_to = {
            let mut g = self.spares.lock();
            g.active = false;
            g.ready_to
        };
        for ino in next..ready_to {
            remove(self, ino);
        }
    }
}

fn run(weak: Weak<Volume>) {
    loop {
        let Some(vol) = weak.upgrade() else {
            return;
        };
        let (from, to) = {
            let mut g = vol.spares.lock();
            if g.stop {
                return;
            }
            // Read under the spares lock: a number handed out after this
            // is reported to `taken` only once the batch below is set, so
            // it is either past the batch or recorded as unwanted.
            let next = vol.lock_state().next_ino;
            g.ready_to = g.ready_to.max(next);
            if g.ready_to >= next + AHEAD / 2 {
                // Enough ready: wait for creations (or a periodic look).
                let (g2, _) = vol
                    .spares
                    .wake
                    .wait_timeout(g, Duration::from_millis(200))
                    .unwrap_or_else(|p| p.into_inner());
                drop(g2);
                continue;
            }
            g.making_to = next + AHEAD;
            (g.ready_to, g.making_to)
        };
        for ino in from..to {
            if let Err(e) = make(&vol, ino) {
                // Creation falls back to making the file itself.
                tracing::warn!(
                    "cannot make spare data file {}: {e}",
                    vol.data_path(ino).display()
                );
                break;
            }
        }
        let unwanted = {
            let mut g = vol.spares.lock();
            g.ready_to = to;
            std::mem::take(&mut g.unwanted)
        };
        for ino in unwanted {
            remove(&vol, ino);
        }
    }
}
