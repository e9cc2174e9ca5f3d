//! Progress counters the engine updates and the CLI reports.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::state::Phase;

/// Live counters of a load or sync.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    phase: AtomicU8,
    /// Objects discovered (the root included).
    pub discovered: AtomicU64,
    /// Objects written (final or provisional).
    pub written: AtomicU64,
    /// Objects that failed.
    pub failed: AtomicU64,
    /// Objects found already done on resume.
    pub skipped: AtomicU64,
    /// Source bytes read and written.
    pub bytes: AtomicU64,
    /// Blobs put.
    pub blobs_put: AtomicU64,
    /// Body bytes put.
    pub body_bytes: AtomicU64,
    /// Directory entries skipped because they could not be read.
    pub entry_errors: AtomicU64,
    /// Errors counted in the current phase.
    pub phase_errors: AtomicU64,
    /// Problems (path: cause), for the summary and problems.txt.
    pub problems: Mutex<Vec<String>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            phase: AtomicU8::new(0),
            discovered: AtomicU64::new(0),
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            blobs_put: AtomicU64::new(0),
            body_bytes: AtomicU64::new(0),
            entry_errors: AtomicU64::new(0),
            phase_errors: AtomicU64::new(0),
            problems: Mutex::new(Vec::new()),
        }
    }
}

const PHASES: [Phase; 6] = [
    Phase::Init,
    Phase::Transfer,
    Phase::Reconcile,
    Phase::Cleanup,
    Phase::Finalize,
    Phase::Done,
];

impl Stats {
    /// Seconds since the start.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Sets the current phase.
    pub fn set_phase(&self, p: Phase) {
        let i = PHASES.iter().position(|x| *x == p).unwrap_or(0);
        self.phase.store(i as u8, Ordering::Relaxed);
        self.phase_errors.store(0, Ordering::Relaxed);
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        PHASES[(self.phase.load(Ordering::Relaxed) as usize).min(PHASES.len() - 1)]
    }

    /// Records a problem.
    pub fn problem(&self, text: String) {
        tracing::error!("{text}");
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(text);
    }

    /// A snapshot with azcopy's report fields.
    pub fn report(&self, final_report: bool) -> serde_json::Value {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let elapsed = self.elapsed();
        let total = g(&self.discovered);
        let done = g(&self.written) + g(&self.skipped);
        let failed = g(&self.failed);
        let pending = total.saturating_sub(done + failed);
        let bytes = g(&self.bytes);
        let mbps = if elapsed > 0.0 {
            bytes as f64 * 8.0 / 1e6 / elapsed
        } else {
            0.0
        };
        let pct = if total > 0 {
            100.0 * (done + failed) as f64 / total as f64
        } else {
            0.0
        };
        let rate = if elapsed > 0.0 {
            (done + failed) as f64 / elapsed
        } else {
            0.0
        };
        let eta = if rate > 0.0 && pending > 0 {
            pending as f64 / rate
        } else {
            0.0
        };
        let mut v = serde_json::json!({
            "bytes_completed": bytes,
            "elapsed": (elapsed * 1000.0).round() / 1000.0,
            "files_completed_failed": failed,
            "files_completed_success": g(&self.written),
            "files_pending": pending,
            "files_skipped": g(&self.skipped),
            "files_total": total,
            "pct_complete": (pct * 10.0).round() / 10.0,
            "phase": self.phase().label(),
            "throughput_Mbps": (mbps * 100.0).round() / 100.0,
            "time_eta": eta.round(),
        });
        if final_report {
            v["final"] = serde_json::Value::Bool(true);
            v["blobs_put"] = g(&self.blobs_put).into();
            v["blob_bytes_put"] = g(&self.body_bytes).into();
        }
        v
    }
}
