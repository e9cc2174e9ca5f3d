//! Problems found while reading: errors and warnings, each naming the
//! check, the namespace path and the blob involved.

use std::fmt;
use std::sync::Mutex;

use super::json::Json;
use super::path::NsPath;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The container is wrong: `verify` fails.
    Error,
    /// Harmless or suspicious (unreachable blobs, leftovers).
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn word(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// Which rule a problem broke (spec §10; stable words for `--output-type json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// A blob could not be read from the store.
    Store,
    /// A blob does not decode (envelope, LZ4, handle stream, handle order).
    Decode,
    /// The bucket object is missing or wrong.
    Bucket,
    /// The root is missing, unfinished (`tmp` only) or wrong.
    Root,
    /// A directory entry points at a handle with no inode blob.
    MissingInode,
    /// A segment or indirect block the block map names is missing.
    MissingBlock,
    /// The blob name does not match the object (type, owner hash, version,
    /// snapshot field).
    Name,
    /// Several blobs of one id share the highest version.
    Version,
    /// The filehandle's fixed fields are wrong.
    Filehandle,
    /// VATTR fields (mode, type, size, fsid, containerid).
    Vattr,
    /// BMAP constants and shape.
    Bmap,
    /// Data segment sizes, DATABACK offsets/owners, segment counts.
    Segment,
    /// Indirect blocks.
    Indirect,
    /// Directory entries (`.`, `..`, names, segment sizes).
    Dirents,
    /// Link counts and back-pointers.
    Nlink,
    /// A blob not reachable from the root (a warning).
    Unreachable,
    /// An older version of a reachable object left behind (a warning).
    Superseded,
    /// A blob whose name is not a CLFS name (log files excepted; a warning).
    Foreign,
    /// Writing the local tree failed (export).
    Local,
    /// Something could not be exported as it is (export; a warning).
    Skipped,
}

impl Check {
    /// The stable word.
    pub fn word(self) -> &'static str {
        match self {
            Check::Store => "store",
            Check::Decode => "decode",
            Check::Bucket => "bucket",
            Check::Root => "root",
            Check::MissingInode => "missing-inode",
            Check::MissingBlock => "missing-block",
            Check::Name => "name",
            Check::Version => "version",
            Check::Filehandle => "filehandle",
            Check::Vattr => "vattr",
            Check::Bmap => "bmap",
            Check::Segment => "segment",
            Check::Indirect => "indirect",
            Check::Dirents => "dirents",
            Check::Nlink => "nlink",
            Check::Unreachable => "unreachable",
            Check::Superseded => "superseded",
            Check::Foreign => "foreign",
            Check::Local => "local",
            Check::Skipped => "skipped",
        }
    }
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// The rule.
    pub check: Check,
    /// Where in the namespace, when known.
    pub path: Option<NsPath>,
    /// The blob involved, when there is one.
    pub blob: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// The JSON form (`severity`, `check`, `path`, `blob`, `message`).
    pub fn to_json(&self) -> Json {
        let opt = |v: Option<Vec<u8>>| v.map_or(Json::Null, Json::Str);
        Json::Obj(vec![
            (b"severity".to_vec(), Json::str(self.severity.word())),
            (b"check".to_vec(), Json::str(self.check.word())),
            (
                b"path".to_vec(),
                opt(self.path.as_ref().map(|p| p.as_bytes().to_vec())),
            ),
            (
                b"blob".to_vec(),
                opt(self.blob.as_ref().map(|b| b.as_bytes().to_vec())),
            ),
            (b"message".to_vec(), Json::str(&self.message)),
        ])
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.severity.word(), self.check.word())?;
        if let Some(p) = &self.path {
            write!(f, " {p}")?;
        }
        if let Some(b) = &self.blob {
            write!(f, " (blob {b})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Default number of problems kept in memory (the counts stay exact).
pub const DEFAULT_PROBLEM_CAP: usize = 10_000;

/// A thread-safe collector of problems. Keeps at most a fixed number in
/// memory, so a badly broken container of a million objects cannot
/// exhaust memory; the counts stay exact.
#[derive(Debug)]
pub struct ProblemSink {
    inner: Mutex<SinkInner>,
    cap: usize,
}

#[derive(Debug, Default)]
struct SinkInner {
    problems: Vec<Problem>,
    errors: u64,
    warnings: u64,
    dropped: u64,
}

impl Default for ProblemSink {
    fn default() -> Self {
        Self::new(DEFAULT_PROBLEM_CAP)
    }
}

impl ProblemSink {
    /// A sink keeping at most `cap` problems.
    pub fn new(cap: usize) -> Self {
        ProblemSink {
            inner: Mutex::new(SinkInner::default()),
            cap,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SinkInner> {
        // A panic elsewhere while holding the lock leaves the data usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a problem.
    pub fn push(&self, p: Problem) {
        tracing::debug!("{p}");
        let mut g = self.lock();
        match p.severity {
            Severity::Error => g.errors += 1,
            Severity::Warning => g.warnings += 1,
        }
        if g.problems.len() < self.cap {
            g.problems.push(p);
        } else {
            g.dropped += 1;
        }
    }

    /// Records an error.
    pub fn error(
        &self,
        check: Check,
        path: Option<&NsPath>,
        blob: Option<&str>,
        message: impl Into<String>,
    ) {
        self.push(Problem {
            severity: Severity::Error,
            check,
            path: path.cloned(),
            blob: blob.map(str::to_string),
            message: message.into(),
        });
    }

    /// Records a warning.
    pub fn warn(
        &self,
        check: Check,
        path: Option<&NsPath>,
        blob: Option<&str>,
        message: impl Into<String>,
    ) {
        self.push(Problem {
            severity: Severity::Warning,
            check,
            path: path.cloned(),
            blob: blob.map(str::to_string),
            message: message.into(),
        });
    }

    /// Number of errors so far.
    pub fn errors(&self) -> u64 {
        self.lock().errors
    }

    /// Number of warnings so far.
    pub fn warnings(&self) -> u64 {
        self.lock().warnings
    }

    /// Problems not kept because the cap was reached.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// A copy of the kept problems, errors first, then by path and blob.
    pub fn snapshot(&self) -> Vec<Problem> {
        let mut v = self.lock().problems.clone();
        v.sort_by(|a, b| {
            (a.severity, &a.path, &a.blob, a.check, &a.message)
                .cmp(&(b.severity, &b.path, &b.blob, b.check, &b.message))
        });
        v
    }
}
