//! A directory used as a container: one regular file per blob, named by the
//! blob name.
//!
//! Puts are atomic: a new blob's body goes to an unnamed `O_TMPFILE` in the
//! container folder and is linked under its name when complete; an
//! overwrite (or a file system without `O_TMPFILE`) writes a temporary file
//! in the subdirectory [`TEMP_DIR`] of the container (same file system) and
//! renames it over the final name. A crash leaves either the old blob, the
//! new one, or an unlisted temporary file, never half a blob. With
//! [`LocalOptions::durable`] (the default) the file and the directory are
//! fsynced before a put returns.
//!
//! Blob names containing `/`, the names `.` and `..`, the temporary
//! directory's name, and names longer than the file system allows (255 bytes)
//! are refused with [`StoreError::InvalidName`]; CLFS names never hit these.
//! Listing reads the directory, skips everything that is not a regular file
//! (the temporary directory included) and sorts by name.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    check_prefix, BlobMeta, BlobName, BlobStore, ListPage, Op, StoreError, LIST_PAGE_SIZE,
};

/// Name of the subdirectory holding in-progress puts.
pub const TEMP_DIR: &str = ".clfs-fs-tmp";

/// Largest put done on the calling thread when puts are not fsynced.
const INLINE_PUT_MAX: usize = 64 * 1024;

/// Smallest blob whose writeback starts when it is put (not fsynced).
const WRITEBACK_MIN: usize = 1 << 20;

/// Longest file name most Linux file systems accept.
const MAX_FILE_NAME: usize = 255;

/// Options of the local backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalOptions {
    /// fsync each blob and the directory before a put returns.
    pub durable: bool,
    /// Names per listing page (1 to [`LIST_PAGE_SIZE`]).
    pub list_page_size: usize,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            durable: true,
            list_page_size: LIST_PAGE_SIZE,
        }
    }
}

/// A local-directory container.
#[derive(Debug, Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    options: LocalOptions,
    /// Sorted listings in progress, so that paging through a directory
    /// reads it once rather than once per page.
    listings: Mutex<Vec<Listing>>,
}

/// The sorted names of one listing in progress, and how far it got.
#[derive(Debug)]
struct Listing {
    prefix: String,
    names: Vec<String>,
    /// The index of the first name not yet handed out.
    next: usize,
}

/// At most this many listings are kept between pages; the oldest goes.
const MAX_LISTINGS: usize = 8;

impl LocalStore {
    /// Opens an existing directory as a container (durable puts).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Self::open_with(root, LocalOptions::default())
    }

    /// Opens an existing directory as a container. A missing directory is
    /// [`StoreError::ContainerNotFound`] (create it with
    /// [`LocalStore::create_container`]).
    pub fn open_with(root: impl Into<PathBuf>, options: LocalOptions) -> Result<Self, StoreError> {
        let root = root.into();
        match fs::metadata(&root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(StoreError::Config(format!(
                    "{} exists but is not a directory",
                    root.display()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::ContainerNotFound {
                    op: Op::List,
                    name: String::new(),
                    container: root.display().to_string(),
                    hint: " (create the directory first)".into(),
                })
            }
            Err(source) => {
                return Err(StoreError::Io {
                    op: Op::List,
                    name: String::new(),
                    path: root.display().to_string(),
                    source,
                })
            }
        }
        Ok(LocalStore {
            inner: Arc::new(Inner {
                root,
                options,
                listings: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Creates the directory (and its parents) if needed; returns whether it
    /// was created.
    pub fn create_container(root: impl AsRef<Path>) -> Result<bool, StoreError> {
        let root = root.as_ref();
        if root.is_dir() {
            return Ok(false);
        }
        fs::create_dir_all(root).map_err(|source| StoreError::Io {
            op: Op::CreateContainer,
            name: String::new(),
            path: root.display().to_string(),
            source,
        })?;
        Ok(true)
    }

    /// The container directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Removes leftovers of interrupted puts (the temporary directory's
    /// files). Safe only when no put is running.
    pub fn clean_temp(&self) -> Result<usize, StoreError> {
        let dir = self.inner.root.join(TEMP_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(source) => return Err(self.inner.io(Op::Delete, "", &dir, source)),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|e| self.inner.io(Op::Delete, "", &dir, e))?;
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| self.inner.io(Op::Delete, "", &path, e))?;
            removed += 1;
        }
        Ok(removed)
    }

    async fn blocking<T, F>(&self, op: Op, name: &str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Io {
                op,
                name: name.to_string(),
                path: self.inner.root.display().to_string(),
                source: io::Error::other(format!("file-system task failed: {e}")),
            })?
    }
}

impl Inner {
    fn io(&self, op: Op, name: &str, path: &Path, source: io::Error) -> StoreError {
        if source.kind() == io::ErrorKind::NotFound && !self.root.is_dir() {
            return StoreError::ContainerNotFound {
                op,
                name: name.to_string(),
                container: self.root.display().to_string(),
                hint: String::new(),
            };
        }
        StoreError::Io {
            op,
            name: name.to_string(),
            path: path.display().to_string(),
            source,
        }
    }

    /// The file of blob `name`, after checking the name is representable.
    fn path_of(&self, name: &BlobName) -> Result<PathBuf, StoreError> {
        let s = name.as_str();
        let reason = if s.contains('/') {
            Some("the local backend cannot store names containing '/'")
        } else if s == "." || s == ".." || s == TEMP_DIR {
            Some("this name is reserved in a local container")
        } else if s.len() > MAX_FILE_NAME {
            Some("the local backend stores names of at most 255 characters")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(StoreError::InvalidName {
                name: s.to_string(),
                reason,
            }),
            None => Ok(self.root.join(s)),
        }
    }

    fn put(&self, name: &BlobName, data: &[u8]) -> Result<(), StoreError> {
        let final_path = self.path_of(name)?;
        // A new blob: written into an unnamed file, then linked under its
        // name (one directory operation instead of create + rename).
        match self.put_new_unnamed(&final_path, data) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(self.io(Op::Put, name.as_str(), &final_path, e)),
        }
        let temp_dir = self.root.join(TEMP_DIR);
        let temp_path = temp_dir.join(format!("{:016x}", rand::random::<u64>()));
        let err = |path: &Path, e| self.io(Op::Put, name.as_str(), path, e);
        let mut file = match create_new(&temp_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.root.is_dir() => {
                match fs::create_dir(&temp_dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(err(&temp_dir, e)),
                }
                create_new(&temp_path).map_err(|e| err(&temp_path, e))?
            }
            Err(e) => return Err(err(&temp_path, e)),
        };
        let written = file
            .write_all(data)
            .and_then(|()| self.settle(&file, data.len()));
        drop(file);
        if let Err(e) = written {
            let _ = fs::remove_file(&temp_path);
            return Err(err(&temp_path, e));
        }
        if let Err(e) = fs::rename(&temp_path, &final_path) {
            let _ = fs::remove_file(&temp_path);
            return Err(err(&final_path, e));
        }
        if self.options.durable {
            fs::File::open(&self.root)
                .and_then(|d| d.sync_all())
                .map_err(|e| err(&self.root, e))?;
        }
        Ok(())
    }

    fn get(&self, name: &BlobName) -> Result<Bytes, StoreError> {
        let path = self.path_of(name)?;
        match fs::read(&path) {
            Ok(data) => Ok(Bytes::from(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.root.is_dir() => {
                Err(StoreError::NotFound {
                    op: Op::Get,
                    name: name.to_string(),
                })
            }
            Err(e) if is_directory_error(&e, &path) => Err(StoreError::NotFound {
                op: Op::Get,
                name: name.to_string(),
            }),
            Err(e) => Err(self.io(Op::Get, name.as_str(), &path, e)),
        }
    }

    fn head(&self, name: &BlobName) -> Result<Option<BlobMeta>, StoreError> {
        let path = self.path_of(name)?;
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(BlobMeta {
                name: name.clone(),
                size: m.len(),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.root.is_dir() => Ok(None),
            Err(e) => Err(self.io(Op::Head, name.as_str(), &path, e)),
        }
    }

    fn delete(&self, name: &BlobName) -> Result<(), StoreError> {
        let path = self.path_of(name)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.root.is_dir() => Ok(()),
            Err(e) => Err(self.io(Op::Delete, name.as_str(), &path, e)),
        }
    }

    /// One page of names from `prefix`, after `marker`. The first page reads
    /// and sorts the directory; the sorted names are kept, so the next page
    /// (asked for with the marker this one returned) continues from them.
    /// Blobs put after the first page may be missed, blobs deleted since are
    /// skipped: the same guarantees as an Azure listing.
    fn list_page(&self, prefix: &str, marker: Option<&str>) -> Result<ListPage, StoreError> {
        let page_size = self.options.list_page_size.clamp(1, LIST_PAGE_SIZE);
        let mut listing = match marker.and_then(|m| self.resume_listing(prefix, m)) {
            Some(listing) => listing,
            None => Listing {
                prefix: prefix.to_string(),
                names: self.sorted_names(prefix, marker)?,
                next: 0,
            },
        };
        let mut blobs = Vec::with_capacity(page_size.min(listing.names.len()));
        while blobs.len() < page_size && listing.next < listing.names.len() {
            let name = &listing.names[listing.next];
            listing.next += 1;
            let path = self.root.join(name);
            let size = match fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() => m.len(),
                Ok(_) => continue,
                // Deleted since the directory was read.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io(Op::List, prefix, &path, e)),
            };
            let Ok(blob) = BlobName::new(name.as_str()) else {
                continue;
            };
            blobs.push(BlobMeta { name: blob, size });
        }
        let next_marker = if listing.next < listing.names.len() {
            let marker = listing.names[listing.next - 1].clone();
            self.keep_listing(listing);
            Some(marker)
        } else {
            None
        };
        Ok(ListPage { blobs, next_marker })
    }

    /// The names in the directory that start with `prefix` and sort after
    /// `marker`, sorted. Names that are not valid blob names (not ASCII, ...)
    /// were not put here by this backend and are left out.
    fn sorted_names(&self, prefix: &str, marker: Option<&str>) -> Result<Vec<String>, StoreError> {
        let entries =
            fs::read_dir(&self.root).map_err(|e| self.io(Op::List, prefix, &self.root, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.io(Op::List, prefix, &self.root, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !name.starts_with(prefix) || marker.is_some_and(|m| name.as_str() <= m) {
                continue;
            }
            if BlobName::new(name.as_str()).is_err() {
                continue;
            }
            names.push(name);
        }
        names.sort_unstable();
        Ok(names)
    }

    /// Takes the kept listing of `prefix` whose last handed-out name is
    /// `marker`, if there is one.
    fn resume_listing(&self, prefix: &str, marker: &str) -> Option<Listing> {
        let mut listings = self.listings.lock().unwrap_or_else(|p| p.into_inner());
        let at = listings
            .iter()
            .position(|l| l.prefix == prefix && l.next > 0 && l.names[l.next - 1] == marker)?;
        Some(listings.remove(at))
    }

    fn keep_listing(&self, listing: Listing) {
        let mut listings = self.listings.lock().unwrap_or_else(|p| p.into_inner());
        if listings.len() >= MAX_LISTINGS {
            listings.remove(0);
        }
        listings.push(listing);
    }
}

impl Inner {
    /// Writes `data` to an `O_TMPFILE` in the container folder and links it
    /// as `final_path`, which must not exist yet. `Ok(false)` when this way
    /// is not available (the name exists: an overwrite; the file system has
    /// no `O_TMPFILE`; `/proc` is missing) and the caller must use a named
    /// temporary file. Atomic like the rename: the name appears only when
    /// the body is complete.
    fn put_new_unnamed(&self, final_path: &Path, data: &[u8]) -> io::Result<bool> {
        use std::os::unix::fs::OpenOptionsExt;
        let unsupported = |e: &io::Error| {
            matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL | libc::ENOENT)
            )
        };
        let mut file = match fs::OpenOptions::new()
            .write(true)
            .mode(0o644)
            .custom_flags(libc::O_TMPFILE)
            .open(&self.root)
        {
            Ok(f) => f,
            Err(e) if unsupported(&e) => return Ok(false),
            Err(e) => return Err(e),
        };
        file.write_all(data)?;
        self.settle(&file, data.len())?;
        let fd_path = std::ffi::CString::new(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&file)
        ))
        .map_err(io::Error::other)?;
        let target = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(
            final_path.as_os_str(),
        ))
        .map_err(io::Error::other)?;
        // SAFETY: two valid C strings; linkat only reads them.
        let r = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                fd_path.as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENOENT)) {
                return Ok(false);
            }
            return Err(e);
        }
        if self.options.durable {
            fs::File::open(&self.root).and_then(|d| d.sync_all())?;
        }
        Ok(true)
    }

    /// After a blob's bytes are written to `file`: fsyncs them when puts
    /// are durable, else starts the writeback of a large one.
    fn settle(&self, file: &fs::File, len: usize) -> io::Result<()> {
        if self.options.durable {
            file.sync_data()
        } else {
            start_writeback(file, len);
            Ok(())
        }
    }
}

/// Starts writing a large blob's pages to the device without waiting
/// (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`) when puts are not
/// fsynced: the container's flush then finds them written, instead of the
/// whole load's data waiting for it at the end (a big-file load spent a
/// quarter of its time there). Only a hint: an error shows at the flush.
fn start_writeback(file: &fs::File, len: usize) {
    if len < WRITEBACK_MIN {
        return;
    }
    // SAFETY: sync_file_range on a descriptor `file` owns, whole file.
    unsafe {
        libc::sync_file_range(
            std::os::fd::AsRawFd::as_raw_fd(file),
            0,
            0,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

fn create_new(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

fn is_directory_error(e: &io::Error, path: &Path) -> bool {
    e.kind() == io::ErrorKind::IsADirectory || path.is_dir()
}

#[async_trait]
impl BlobStore for LocalStore {
    async fn put(&self, name: &BlobName, data: Bytes) -> Result<(), StoreError> {
        // A small put that is not fsynced here (the container is flushed
        // later) is a few page-cache operations: done on the caller's
        // thread, it saves the two thread hand-offs of a blocking task,
        // about a tenth of a small-file load's time.
        if !self.inner.options.durable && data.len() <= INLINE_PUT_MAX {
            return self.inner.put(name, &data);
        }
        let owned = name.clone();
        self.blocking(Op::Put, name.as_str(), move |inner| {
            inner.put(&owned, &data)
        })
        .await
    }

    async fn get(&self, name: &BlobName) -> Result<Bytes, StoreError> {
        let owned = name.clone();
        self.blocking(Op::Get, name.as_str(), move |inner| inner.get(&owned))
            .await
    }

    async fn head(&self, name: &BlobName) -> Result<Option<BlobMeta>, StoreError> {
        let owned = name.clone();
        self.blocking(Op::Head, name.as_str(), move |inner| inner.head(&owned))
            .await
    }

    async fn delete(&self, name: &BlobName) -> Result<(), StoreError> {
        let owned = name.clone();
        self.blocking(Op::Delete, name.as_str(), move |inner| inner.delete(&owned))
            .await
    }

    async fn list_page(&self, prefix: &str, marker: Option<&str>) -> Result<ListPage, StoreError> {
        check_prefix(prefix)?;
        let prefix_owned = prefix.to_string();
        let marker = marker.map(str::to_string);
        self.blocking(Op::List, prefix, move |inner| {
            inner.list_page(&prefix_owned, marker.as_deref())
        })
        .await
    }

    fn location(&self) -> String {
        self.inner.root.display().to_string()
    }

    fn needs_flush(&self) -> bool {
        !self.inner.options.durable
    }

    async fn flush(&self) -> Result<(), StoreError> {
        if self.inner.options.durable {
            return Ok(());
        }
        self.blocking(Op::Put, "", |inner| {
            let dir =
                fs::File::open(&inner.root).map_err(|e| inner.io(Op::Put, "", &inner.root, e))?;
            // One syncfs covers every blob written so far and the renames
            // that named them.
            // SAFETY: syncfs only reads the descriptor, which `dir` owns
            // for the duration of the call.
            if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) } != 0 {
                return Err(inner.io(Op::Put, "", &inner.root, io::Error::last_os_error()));
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> BlobName {
        BlobName::new(s).unwrap()
    }

    #[tokio::test]
    async fn temp_files_are_not_listed_and_names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        store
            .put(&name("a"), Bytes::from_static(b"x"))
            .await
            .unwrap();
        // A new blob goes through an unnamed file: no temporary folder.
        assert!(!dir.path().join(TEMP_DIR).exists());
        // An overwrite goes through a named temporary file.
        store
            .put(&name("a"), Bytes::from_static(b"y"))
            .await
            .unwrap();
        assert_eq!(
            store.get(&name("a")).await.unwrap(),
            Bytes::from_static(b"y")
        );
        // A leftover of a crashed put, and a foreign subdirectory.
        fs::write(dir.path().join(TEMP_DIR).join("0123"), b"half").unwrap();
        fs::create_dir(dir.path().join("adir")).unwrap();
        let page = store.list_page("", None).await.unwrap();
        let names: Vec<_> = page.blobs.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["a"]);
        assert_eq!(store.clean_temp().unwrap(), 1);

        for bad in ["a/b", TEMP_DIR] {
            let err = store.put(&name(bad), Bytes::new()).await.unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidName { .. }),
                "{bad}: {err}"
            );
        }
        assert!(store.get(&name("adir")).await.unwrap_err().is_not_found());
        assert_eq!(store.head(&name("adir")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn missing_directory_is_container_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = LocalStore::open(dir.path().join("nope")).unwrap_err();
        assert!(
            err.to_string().contains("container does not exist"),
            "{err}"
        );

        let root = dir.path().join("gone");
        assert!(LocalStore::create_container(&root).unwrap());
        let store = LocalStore::open(&root).unwrap();
        fs::remove_dir(&root).unwrap();
        let err = store.put(&name("x"), Bytes::new()).await.unwrap_err();
        assert!(matches!(err, StoreError::ContainerNotFound { .. }), "{err}");
        let err = store.get(&name("x")).await.unwrap_err();
        assert!(matches!(err, StoreError::ContainerNotFound { .. }), "{err}");
    }

    #[tokio::test]
    async fn unsynced_puts_of_every_size_read_back_after_the_flush() {
        // Small ones run on the caller's thread, large ones start their
        // writeback early; new names and overwrites, both ways.
        let dir = tempfile::tempdir().unwrap();
        let options = LocalOptions {
            durable: false,
            ..LocalOptions::default()
        };
        let store = LocalStore::open_with(dir.path(), options).unwrap();
        let sizes = [
            0,
            1,
            INLINE_PUT_MAX,
            INLINE_PUT_MAX + 1,
            WRITEBACK_MIN,
            3 << 20,
        ];
        for (i, len) in sizes.into_iter().enumerate() {
            let n = name(&format!("b{i}"));
            for fill in [1u8, 2] {
                let body: Vec<u8> = (0..len).map(|k| (k % 253) as u8 ^ fill).collect();
                store.put(&n, Bytes::from(body.clone())).await.unwrap();
                assert_eq!(store.get(&n).await.unwrap(), body, "{len} bytes");
            }
        }
        store.flush().await.unwrap();
        assert!(!dir.path().join(TEMP_DIR).read_dir().unwrap().any(|_| true));
    }

    #[tokio::test]
    async fn paging_continues_from_one_sorted_read() {
        let dir = tempfile::tempdir().unwrap();
        let options = LocalOptions {
            durable: false,
            list_page_size: 3,
        };
        let store = LocalStore::open_with(dir.path(), options).unwrap();
        for i in 0..10 {
            store
                .put(&name(&format!("p{i:02}")), Bytes::from(vec![0; i]))
                .await
                .unwrap();
        }
        store.put(&name("q"), Bytes::new()).await.unwrap();

        let first = store.list_page("p", None).await.unwrap();
        let got: Vec<_> = first.blobs.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(got, ["p00", "p01", "p02"]);
        assert_eq!(first.next_marker.as_deref(), Some("p02"));
        assert_eq!(store.inner.listings.lock().unwrap().len(), 1);

        // A blob deleted after the first page is skipped, not an error.
        store.delete(&name("p04")).await.unwrap();
        let second = store
            .list_page("p", first.next_marker.as_deref())
            .await
            .unwrap();
        let got: Vec<_> = second
            .blobs
            .iter()
            .map(|b| (b.name.as_str(), b.size))
            .collect();
        assert_eq!(got, [("p03", 3), ("p05", 5), ("p06", 6)]);

        // A marker no kept listing knows starts a fresh read after it.
        let fresh = store.list_page("p", Some("p07")).await.unwrap();
        let got: Vec<_> = fresh.blobs.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(got, ["p08", "p09"]);
        assert_eq!(fresh.next_marker, None);

        let third = store
            .list_page("p", second.next_marker.as_deref())
            .await
            .unwrap();
        let got: Vec<_> = third.blobs.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(got, ["p07", "p08", "p09"]);
        assert_eq!(third.next_marker, None);
        assert!(store.inner.listings.lock().unwrap().is_empty());
    }
}
