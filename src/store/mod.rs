//! Where blobs go: one narrow async [`BlobStore`] trait and its backends.
//!
//! A CLFS container is a flat set of blobs. Everything the rest of the crate
//! needs from a container is five primitives: put one blob (one Put Blob
//! request, at most ~8.4 MB), get one blob, ask whether one exists, delete one,
//! and list names by prefix in name order. Two backends implement them:
//!
//! - [`azure::AzureStore`]: Azure Blob Storage (and the Azurite emulator) over
//!   HTTPS with a SAS, an account key or a connection string;
//! - [`local::LocalStore`]: a directory holding one file per blob.
//!
//! Behaviour that is the same for every backend lives in wrappers around the
//! trait rather than inside the backends:
//!
//! - [`retry::Retrying`]: a per-request timeout, and retries of transient
//!   failures with exponential back-off and decorrelated jitter, honouring
//!   `Retry-After`;
//! - [`throttle::Limited`]: a bound on requests in flight;
//! - [`throttle::Throttled`]: the process-wide `--cap-mbps` token bucket.
//!
//! [`open`] parses a location (a path, a `file://` URL or an Azure container
//! URL, see [`url`]) and stacks the wrappers in the right order. This module
//! knows nothing about CLFS: blob names are plain strings to it.
//!
//! Secrets (SAS signatures, account keys) never appear in the `Debug` or
//! `Display` output of anything here, nor in errors or logs: see
//! [`url::Secret`] and [`url::SasToken`].

pub mod azure;
pub mod local;
pub mod retry;
pub mod throttle;
pub mod url;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

/// Largest blob body CLFS ever writes in one Put Blob (a full 8 MiB data
/// segment plus handles and envelope is 8,388,700 bytes); used to size
/// timeouts for reads whose size is not known in advance.
pub const MAX_OBJECT_SIZE: usize = 8_400_000;

/// Longest blob name Azure accepts, in characters (all ASCII here, so bytes).
pub const MAX_NAME_LEN: usize = 1024;

/// How many names one [`BlobStore::list_page`] call asks for at most (Azure's
/// own limit for List Blobs).
pub const LIST_PAGE_SIZE: usize = 5000;

/// A validated blob name: 1 to 1024 printable ASCII characters (space
/// included), no backslash (Azure turns `\` into `/`), no `.` or `..` path
/// segment, not ending with `.` or `/` (URLs and Azure would change them).
///
/// Backends may refuse names they cannot represent (the local backend refuses
/// `/` and a few reserved names); that is reported as
/// [`StoreError::InvalidName`] by the backend.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobName(String);

impl BlobName {
    /// Validates `name` and wraps it.
    pub fn new(name: impl Into<String>) -> Result<Self, StoreError> {
        let name = name.into();
        if let Some(reason) = name_problem(&name) {
            return Err(StoreError::InvalidName { name, reason });
        }
        Ok(BlobName(name))
    }

    /// Validates the name of a plain (non-CLFS) blob, as `export` writes
    /// and lists them: 1 to 1024 characters of any Unicode text but control
    /// characters, with the same backslash and URL-shape rules.
    pub fn new_plain(name: impl Into<String>) -> Result<Self, StoreError> {
        let name = name.into();
        let problem = if name.is_empty() {
            Some("a blob name cannot be empty")
        } else if name.chars().count() > MAX_NAME_LEN {
            Some("a blob name is at most 1024 characters")
        } else if name.chars().any(char::is_control) {
            Some("control characters are not allowed")
        } else if name.contains('\\') {
            Some("a backslash is not allowed (Azure turns it into '/')")
        } else {
            url_shape_problem(&name)
        };
        match problem {
            Some(reason) => Err(StoreError::InvalidName { name, reason }),
            None => Ok(BlobName(name)),
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the name and returns the inner string.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Why `name` is not a valid blob name, or `None` if it is.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("a blob name cannot be empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Some("a blob name is at most 1024 characters");
    }
    validate_text(name).or_else(|| url_shape_problem(name))
}

/// Checks the characters of a name or a prefix.
fn validate_text(text: &str) -> Option<&'static str> {
    if !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Some("only printable ASCII characters are allowed");
    }
    if text.contains('\\') {
        return Some("a backslash is not allowed (Azure turns it into '/')");
    }
    None
}

/// Names that URLs cannot carry unchanged: `.`/`..` path segments are
/// normalised away and Azure drops trailing dots and slashes.
fn url_shape_problem(name: &str) -> Option<&'static str> {
    if name.split('/').any(|seg| seg == "." || seg == "..") {
        return Some("'.' and '..' path segments are not allowed");
    }
    if name.ends_with('.') || name.ends_with('/') {
        return Some("a blob name cannot end with '.' or '/'");
    }
    None
}

/// Checks a list prefix: like a name, but it may be empty.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    let problem = if prefix.len() > MAX_NAME_LEN {
        Some("a prefix is at most 1024 characters")
    } else {
        validate_text(prefix)
    };
    match problem {
        Some(reason) => Err(StoreError::InvalidName {
            name: prefix.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

impl fmt::Display for BlobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for BlobName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BlobName {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, StoreError> {
        BlobName::new(s)
    }
}

impl TryFrom<&str> for BlobName {
    type Error = StoreError;
    fn try_from(s: &str) -> Result<Self, StoreError> {
        BlobName::new(s)
    }
}

impl std::str::FromStr for BlobName {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        BlobName::new(s)
    }
}

/// One listed blob: its name and size in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    /// The blob's name.
    pub name: BlobName,
    /// The blob's size in bytes.
    pub size: u64,
}

/// One page of a listing, in name order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    /// The blobs of this page, in ascending name order.
    pub blobs: Vec<BlobMeta>,
    /// Where the next page starts (an opaque continuation marker), or `None`
    /// if this was the last page.
    pub next_marker: Option<String>,
}

/// The operation a request belonged to, for errors and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Put Blob.
    Put,
    /// Get Blob.
    Get,
    /// Get Blob Properties.
    Head,
    /// Delete Blob.
    Delete,
    /// List Blobs.
    List,
    /// Create Container.
    CreateContainer,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Head => "head",
            Op::Delete => "delete",
            Op::List => "list",
            Op::CreateContainer => "create container",
        })
    }
}

/// What went wrong at the transport level (below HTTP status codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// The connection could not be established.
    Connect,
    /// The connection was reset or closed before a complete response.
    Reset,
    /// The response body ended early or could not be read.
    Body,
    /// Anything else while sending the request.
    Request,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Connect => "cannot connect",
            TransportKind::Reset => "connection reset or closed",
            TransportKind::Body => "response body incomplete",
            TransportKind::Request => "request failed",
        })
    }
}

/// Every error of the store layer.
///
/// Messages say which operation on which blob failed and, where the user can
/// do something about it, what. They never contain secrets. Use
/// [`StoreError::is_transient`] to decide about retrying, never the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A blob name or prefix that the store cannot accept.
    #[error("invalid blob name {name:?}: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The blob does not exist (only from `get`; `head` returns `None` and
    /// `delete` succeeds instead).
    #[error("{op} of blob {name:?}: the blob does not exist")]
    NotFound {
        /// The operation.
        op: Op,
        /// The blob name.
        name: String,
    },
    /// The container (or, for the local backend, the directory) is missing.
    #[error("{subject}: container does not exist: {container}{hint}", subject = subject(*op, name))]
    ContainerNotFound {
        /// The operation.
        op: Op,
        /// The blob name or list prefix.
        name: String,
        /// The container, secrets removed.
        container: String,
        /// Extra advice (may be empty).
        hint: String,
    },
    /// The credentials were rejected or do not permit the operation (HTTP
    /// 401/403). Never retried.
    #[error("{subject} refused (HTTP {status}{code}): {hint}", code = code_suffix(code), subject = subject(*op, name))]
    PermissionDenied {
        /// The operation.
        op: Op,
        /// The blob name or list prefix.
        name: String,
        /// HTTP status (401 or 403).
        status: u16,
        /// Azure's error code, if any.
        code: Option<String>,
        /// What it means and what to do.
        hint: String,
    },
    /// HTTP 409: the request conflicts with the state of the resource.
    #[error("{subject}: conflict (HTTP 409{code})", code = code_suffix(code), subject = subject(*op, name))]
    Conflict {
        /// The operation.
        op: Op,
        /// The blob name or list prefix.
        name: String,
        /// Azure's error code, if any.
        code: Option<String>,
    },
    /// Any other HTTP error status. Transient for 408, 429, 500, 502, 503 and
    /// 504.
    #[error("{subject}: HTTP {status}{code}", code = code_suffix(code), subject = subject(*op, name))]
    Http {
        /// The operation.
        op: Op,
        /// The blob name or list prefix.
        name: String,
        /// The HTTP status code.
        status: u16,
        /// Azure's error code (`x-ms-error-code`), if any.
        code: Option<String>,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// A connection-level failure. Always transient.
    #[error("{subject}: {kind}: {message}", subject = subject(*op, name))]
    Transport {
        /// The operation.
        op: Op,
        /// The blob name or list prefix.
        name: String,
        /// What kind of failure.
        kind: TransportKind,
        /// Details, with no URL in them.
        message: String,
    },
    /// No complete response within the per-request timeout. Transient.
    #[error("{subject}: no response within {:.1} s", after.as_secs_f64(), subject = subject(*op, name))]
    Timeout {
        /// The operation.
        op: Op,
        /// The blob name or list prefix.
        name: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The server answered something this client cannot understand.
    #[error("{subject}: invalid response: {detail}", subject = subject(*op, name))]
    InvalidResponse {
        /// The operation.
        op: Op,
        /// The blob name or list prefix.
        name: String,
        /// What was wrong.
        detail: String,
    },
    /// A local file-system error (local backend).
    #[error("{subject}: {path}: {source}", subject = subject(*op, name))]
    Io {
        /// The operation.
        op: Op,
        /// The blob name or list prefix.
        name: String,
        /// The file or directory involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A transient failure persisted through every allowed try.
    #[error("{subject} failed after {tries} tries; last error: {last}", subject = subject(*op, name))]
    RetriesExhausted {
        /// The operation.
        op: Op,
        /// The blob name or list prefix.
        name: String,
        /// How many tries were made.
        tries: u32,
        /// The last failure.
        #[source]
        last: Box<StoreError>,
    },
    /// The container location or credentials could not be understood.
    #[error("invalid container location: {0}")]
    Config(String),
}

/// `put of "NAME"`, or `list of prefix "P"`.
fn subject(op: Op, name: &str) -> String {
    match op {
        Op::List => format!("list of prefix {name:?}"),
        Op::CreateContainer => "create container".to_string(),
        _ => format!("{op} of {name:?}"),
    }
}

fn code_suffix(code: &Option<String>) -> String {
    match code {
        Some(c) => format!(" {c}"),
        None => String::new(),
    }
}

/// HTTP statuses that are worth retrying.
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

impl StoreError {
    /// Whether retrying the same request may succeed: HTTP 408, 429, 500,
    /// 502, 503, 504, connection failures and timeouts.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Http { status, .. } => is_transient_status(*status),
            StoreError::Transport { .. } | StoreError::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Whether this is "the blob does not exist".
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    /// The delay the server asked for with `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            StoreError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The error behind retries, if this is [`StoreError::RetriesExhausted`],
    /// else `self`.
    pub fn root(&self) -> &StoreError {
        match self {
            StoreError::RetriesExhausted { last, .. } => last.root(),
            other => other,
        }
    }
}

/// A container of blobs. Object safe: use it as `&dyn BlobStore` or
/// `Arc<dyn BlobStore>`.
///
/// All operations are idempotent, so wrappers may retry any of them: `put`
/// blindly overwrites, `delete` of a missing blob succeeds.
#[async_trait]
pub trait BlobStore: fmt::Debug + Send + Sync {
    /// Writes `data` as blob `name` in one request (Azure: one Put Blob of a
    /// block blob, no metadata, no content type), replacing any previous blob
    /// of that name. When it returns `Ok` the blob is stored.
    async fn put(&self, name: &BlobName, data: Bytes) -> Result<(), StoreError>;

    /// Reads the whole blob. A missing blob is [`StoreError::NotFound`].
    async fn get(&self, name: &BlobName) -> Result<Bytes, StoreError>;

    /// The blob's size, or `None` if it does not exist.
    async fn head(&self, name: &BlobName) -> Result<Option<BlobMeta>, StoreError>;

    /// Deletes the blob. Succeeds if the blob did not exist.
    async fn delete(&self, name: &BlobName) -> Result<(), StoreError>;

    /// One page of the blobs whose names start with `prefix`, in name order,
    /// starting after the position `marker` (from the previous page's
    /// [`ListPage::next_marker`]; `None` for the first page).
    async fn list_page(&self, prefix: &str, marker: Option<&str>) -> Result<ListPage, StoreError>;

    /// Where the container is, for messages: never contains secrets.
    fn location(&self) -> String;

    /// Makes every put that has returned durable. Stores whose puts are
    /// durable when they return (Azure, a durable local directory) do
    /// nothing; a local directory opened without per-put fsync syncs its
    /// file system.
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether [`BlobStore::flush`] does anything: a caller that orders its
    /// own records after durable puts need not wait for it otherwise.
    fn needs_flush(&self) -> bool {
        false
    }

    /// Whether the blob exists.
    async fn exists(&self, name: &BlobName) -> Result<bool, StoreError> {
        Ok(self.head(name).await?.is_some())
    }

    /// Every blob whose name starts with `prefix`, in name order, fetched a
    /// page at a time as the stream is polled.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxStream<'a, Result<BlobMeta, StoreError>> {
        list_stream(self, prefix)
    }
}

/// Turns [`BlobStore::list_page`] into a stream of blobs (what the provided
/// [`BlobStore::list`] does; public for wrappers that override `list`).
pub fn list_stream<'a, S: BlobStore + ?Sized>(
    store: &'a S,
    prefix: &'a str,
) -> BoxStream<'a, Result<BlobMeta, StoreError>> {
    enum State {
        Start,
        Next(String),
        Done,
    }
    stream::try_unfold(State::Start, move |state| async move {
        let marker = match state {
            State::Done => return Ok(None),
            State::Start => None,
            State::Next(m) => Some(m),
        };
        let page = store.list_page(prefix, marker.as_deref()).await?;
        let next = match page.next_marker {
            Some(m) if Some(&m) != marker.as_ref() => State::Next(m),
            Some(_) => {
                return Err(StoreError::InvalidResponse {
                    op: Op::List,
                    name: prefix.to_string(),
                    detail: "the continuation marker did not advance".to_string(),
                })
            }
            None => State::Done,
        };
        Ok(Some((stream::iter(page.blobs.into_iter().map(Ok)), next)))
    })
    .try_flatten()
    .boxed()
}

/// Collects [`BlobStore::list`] into a vector.
pub async fn list_all(
    store: &(impl BlobStore + ?Sized),
    prefix: &str,
) -> Result<Vec<BlobMeta>, StoreError> {
    store.list(prefix).try_collect().await
}

macro_rules! forward_blob_store {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<T: BlobStore + ?Sized> BlobStore for $ty {
            async fn put(&self, name: &BlobName, data: Bytes) -> Result<(), StoreError> {
                (**self).put(name, data).await
            }
            async fn get(&self, name: &BlobName) -> Result<Bytes, StoreError> {
                (**self).get(name).await
            }
            async fn head(&self, name: &BlobName) -> Result<Option<BlobMeta>, StoreError> {
                (**self).head(name).await
            }
            async fn delete(&self, name: &BlobName) -> Result<(), StoreError> {
                (**self).delete(name).await
            }
            async fn list_page(
                &self,
                prefix: &str,
                marker: Option<&str>,
            ) -> Result<ListPage, StoreError> {
                (**self).list_page(prefix, marker).await
            }
            fn location(&self) -> String {
                (**self).location()
            }
            async fn flush(&self) -> Result<(), StoreError> {
                (**self).flush().await
            }
            fn needs_flush(&self) -> bool {
                (**self).needs_flush()
            }
            async fn exists(&self, name: &BlobName) -> Result<bool, StoreError> {
                (**self).exists(name).await
            }
            fn list<'a>(&'a self, prefix: &'a str) -> BoxStream<'a, Result<BlobMeta, StoreError>> {
                (**self).list(prefix)
            }
        }
    )*};
}

forward_blob_store!(Arc<T>, Box<T>);

/// How [`open`] builds a store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Requests in flight at most, across all tasks using the store (also the
    /// size of the Azure connection pool). Default 32.
    pub concurrency: usize,
    /// Timeouts and retries.
    pub retry: retry::RetryPolicy,
    /// The process-wide `--cap-mbps` bucket, if any. Create one with
    /// [`throttle::TokenBucket::from_mbps`] and hand the same `Arc` to every
    /// store of the process.
    pub rate_limit: Option<Arc<throttle::TokenBucket>>,
    /// Whether the local backend fsyncs each blob and its directory before a
    /// put returns (default true: an acknowledged put survives a crash).
    pub local_durable: bool,
    /// Names per listing page, 1 to [`LIST_PAGE_SIZE`] (default 5,000, the
    /// Azure maximum; tests use small pages to exercise paging).
    pub list_page_size: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            concurrency: 32,
            retry: retry::RetryPolicy::default(),
            rate_limit: None,
            local_durable: true,
            list_page_size: LIST_PAGE_SIZE,
        }
    }
}

/// Opens the container at `location` (a directory path, a `file://` URL, or
/// an Azure container URL; see [`url::Location::parse`] for the forms and the
/// credential precedence), reading credentials from the process environment,
/// and wraps it in the retry, concurrency and rate-cap layers.
pub fn open(location: &str, options: &StoreOptions) -> Result<Arc<dyn BlobStore>, StoreError> {
    let env = |k: &str| std::env::var(k).ok();
    open_with_env(location, options, &env)
}

/// [`open`] with an explicit environment lookup (for tests).
pub fn open_with_env(
    location: &str,
    options: &StoreOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn BlobStore>, StoreError> {
    let parsed = url::Location::parse(location, env)?;
    let backend: Arc<dyn BlobStore> = match parsed {
        url::Location::Local(path) => Arc::new(local::LocalStore::open_with(
            path,
            local::LocalOptions {
                durable: options.local_durable,
                list_page_size: options.list_page_size,
            },
        )?),
        url::Location::Azure(target) => Arc::new(azure::AzureStore::new(
            target,
            &azure::AzureOptions {
                concurrency: options.concurrency,
                list_page_size: options.list_page_size,
                ..azure::AzureOptions::default()
            },
        )?),
    };
    Ok(wrap(backend, options))
}

/// Stacks the standard layers on a backend: rate cap (outermost, charged once
/// per logical transfer), then the concurrency limit, then retries with the
/// per-request timeout (innermost, so a request waiting for tokens or for a
/// slot never times out).
pub fn wrap(backend: Arc<dyn BlobStore>, options: &StoreOptions) -> Arc<dyn BlobStore> {
    let retried = retry::Retrying::new(backend, options.retry.clone());
    let limited = throttle::Limited::new(retried, options.concurrency.max(1));
    match &options.rate_limit {
        Some(bucket) => Arc::new(throttle::Throttled::new(limited, bucket.clone())),
        None => Arc::new(limited),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_names_are_validated() {
        assert!(BlobName::new("a").is_ok());
        assert!(BlobName::new("tmp0000006457871C6B_0000.0002").is_ok());
        assert!(BlobName::new("with space and /slash").is_ok());
        assert!(BlobName::new("caf\u{e9}").is_err());
        assert!(BlobName::new_plain("caf\u{e9}/\u{76ee}").is_ok());
        assert!(BlobName::new_plain("a\nb").is_err());
        assert!(BlobName::new_plain("a\\b").is_err());
        assert!(BlobName::new_plain("dir/").is_err());
        assert!(BlobName::new_plain("\u{e9}".repeat(1024)).is_ok());
        assert!(BlobName::new_plain("\u{e9}".repeat(1025)).is_err());
        assert!(BlobName::new("x".repeat(1024)).is_ok());
        for bad in [
            "",
            "back\\slash",
            "tab\there",
            "caf\u{e9}",
            "nl\n",
            "a/../b",
            "..",
            "a.",
            "a/",
        ] {
            let err = BlobName::new(bad).unwrap_err();
            assert!(matches!(err, StoreError::InvalidName { .. }), "{bad:?}");
        }
        assert!(BlobName::new("x".repeat(1025)).is_err());
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("a\\").is_err());
    }

    #[test]
    fn transient_classification() {
        let http = |status| StoreError::Http {
            op: Op::Put,
            name: "n".into(),
            status,
            code: None,
            retry_after: None,
        };
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(http(s).is_transient(), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 412, 501] {
            assert!(!http(s).is_transient(), "{s}");
        }
        let denied = StoreError::PermissionDenied {
            op: Op::Put,
            name: "n".into(),
            status: 403,
            code: Some("AuthorizationPermissionMismatch".into()),
            hint: "the SAS does not allow write".into(),
        };
        assert!(!denied.is_transient());
        assert_eq!(
            denied.to_string(),
            "put of \"n\" refused (HTTP 403 AuthorizationPermissionMismatch): \
             the SAS does not allow write"
        );
    }
}
