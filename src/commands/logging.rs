//! Logging set-up shared by the commands: stderr, and optionally a log file
//! (the load's `output.txt`). Secrets never reach here: stores print only
//! redacted locations.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::cli::LogLevel;

/// Writes each log line to stderr and, when set, to a file.
#[derive(Clone)]
struct Tee {
    file: Option<Arc<Mutex<File>>>,
}

struct TeeWriter {
    file: Option<Arc<Mutex<File>>>,
}

impl Write for TeeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(f) = &self.file {
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            f.write_all(buf)?;
        }
        // A closed stderr (a daemon's terminal gone) must not fail the
        // write: the subscriber would report that on stderr and panic.
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for Tee {
    type Writer = TeeWriter;
    fn make_writer(&'a self) -> TeeWriter {
        TeeWriter {
            file: self.file.clone(),
        }
    }
}

/// Installs the global subscriber at `level`, appending to `file` too.
pub fn init(level: LogLevel, file: Option<&Path>) -> anyhow::Result<()> {
    let file = match file {
        Some(p) => Some(Arc::new(Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| anyhow::anyhow!("cannot open log file {}: {e}", p.display()))?,
        ))),
        None => None,
    };
    let filter = EnvFilter::new(format!("warn,clfs_fs={}", level.directive()));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Tee { file })
        .with_ansi(false)
        .with_target(false)
        .try_init();
    Ok(())
}
