//! A small pool for the requests that can block for milliseconds (`fsync`,
//! `fsyncdir`), so that the thread reading `/dev/fuse` goes on serving the
//! others meanwhile. The staging mount reads requests with one thread when
//! the kernel moves file contents itself (passthrough): every request the
//! daemon then sees is metadata, answered in microseconds, and one thread
//! that stays warm answers them faster than several woken in turn.
//!
//! The queue is bounded: when it is full the job runs on the calling
//! thread, which holds the reader back (memory does not grow with load).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A job: does its work and sends its reply.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// The pool (or, when off, the calling thread).
#[derive(Default)]
pub struct Blocking {
    tx: Mutex<Option<SyncSender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Blocking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blocking")
            .field("threads", &self.lock_threads().len())
            .finish()
    }
}

impl Blocking {
    /// No pool: jobs run on the calling thread.
    pub fn off() -> Self {
        Self::default()
    }

    /// `threads` workers behind a queue of `queue` jobs.
    pub fn start(threads: usize, queue: usize) -> Self {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::new();
        for i in 0..threads {
            let rx = rx.clone();
            match std::thread::Builder::new()
                .name(format!("clfs-fs-blocking-{i}"))
                .spawn(move || work(&rx))
            {
                Ok(h) => handles.push(h),
                Err(e) => tracing::warn!("blocking-request thread {i}: {e}"),
            }
        }
        if handles.is_empty() {
            return Self::off();
        }
        Blocking {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(handles),
        }
    }

    fn lock_threads(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.threads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `job` on the pool, or here when there is none or its queue is
    /// full.
    pub fn run(&self, job: impl FnOnce() + Send + 'static) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(tx) = tx else {
            return job();
        };
        match tx.try_send(Box::new(job)) {
            Ok(()) => {}
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => job(),
        }
    }

    /// Lets queued jobs finish, then stops the workers; later jobs run on
    /// the calling thread.
    pub fn stop(&self) {
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        let handles = std::mem::take(&mut *self.lock_threads());
        for h in handles {
            let _ = h.join();
        }
    }
}

impl Drop for Blocking {
    fn drop(&mut self) {
        self.stop();
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc::channel;
    use std::time::Duration;

    fn name() -> Option<String> {
        std::thread::current().name().map(str::to_string)
    }

    #[test]
    fn off_runs_on_the_calling_thread() {
        let b = Blocking::off();
        let (tx, rx) = channel();
        b.run(move || tx.send(name()).expect("send"));
        assert_eq!(rx.recv().expect("ran"), name());
    }

    #[test]
    fn jobs_run_on_the_workers_and_stop_waits_for_them() {
        let b = Blocking::start(2, 16);
        let done = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = channel();
        for _ in 0..10 {
            let (done, tx) = (done.clone(), tx.clone());
            b.run(move || {
                std::thread::sleep(Duration::from_millis(5));
                done.fetch_add(1, Ordering::SeqCst);
                tx.send(name()).expect("send");
            });
        }
        b.stop();
        assert_eq!(
            done.load(Ordering::SeqCst),
            10,
            "stop let queued jobs finish"
        );
        drop(tx);
        let names: Vec<_> = rx.iter().collect();
        assert!(names.iter().all(|n| n
            .as_deref()
            .is_some_and(|n| n.starts_with("clfs-fs-blocking-"))));
        // After stop, jobs run here.
        let (tx, rx) = channel();
        b.run(move || tx.send(name()).expect("send"));
        assert_eq!(rx.recv().expect("ran"), name());
    }

    #[test]
    fn a_full_queue_runs_the_job_on_the_caller() {
        let b = Blocking::start(1, 1);
        // Occupy the worker, then fill the queue's one slot.
        let (hold_tx, hold_rx) = channel::<()>();
        let (started_tx, started_rx) = channel();
        b.run(move || {
            started_tx.send(()).expect("send");
            let _ = hold_rx.recv();
        });
        started_rx.recv().expect("worker started");
        b.run(|| {});
        let (tx, rx) = channel();
        b.run(move || tx.send(name()).expect("send"));
        assert_eq!(rx.recv().expect("ran"), name(), "ran on the caller");
        drop(hold_tx);
        b.stop();
    }
}
