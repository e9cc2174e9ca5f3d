//! Helpers of the reader tests: local containers made from the fixtures,
//! the reference namespace, blob surgery.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use clfs_fs::read::ls::{Lister, LsOptions};
use clfs_fs::read::{Container, InodeNode, NsPath, ProblemSink};
use clfs_fs::store::{self, BlobMeta, BlobName, BlobStore, ListPage, Op, StoreError, StoreOptions};

/// A multi-threaded runtime for a test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Opens a local directory as a container.
pub fn open_local(dir: &Path) -> Arc<dyn BlobStore> {
    let opts = StoreOptions {
        local_durable: false,
        ..StoreOptions::default()
    };
    store::open(dir.to_str().expect("UTF-8 temp path"), &opts).expect("open local container")
}

/// The reference namespace of a fixture container.
pub struct Reference {
    /// JSON text of the key (`"/a/b"`) → JSON text of the record, exactly
    /// as in `reference.json`.
    pub lines: BTreeMap<String, String>,
    /// Path bytes → parsed record.
    pub records: Vec<(Vec<u8>, serde_json::Value)>,
}

/// Reads the `namespace` block of `reference.json` (one record per line).
pub fn load_reference(container: &Path) -> Reference {
    let text = std::fs::read_to_string(container.join("reference.json")).expect("reference.json");
    let mut lines = BTreeMap::new();
    let mut records = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line == "\"namespace\":{" {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if line.starts_with('}') {
            break;
        }
        let line = line.trim_start().trim_end_matches(',');
        let split = line.find("\":{").expect("record line") + 1;
        let (key, rec) = (&line[..split], &line[split + 1..]);
        lines.insert(key.to_string(), rec.to_string());
        // serde_json refuses lone surrogates; keep them as literal text.
        let key_v: String = serde_json::from_str(&key.replace("\\udc", "\\\\udc")).expect("key");
        let rec_v: serde_json::Value =
            serde_json::from_str(&rec.replace("\\udc", "\\\\udc")).expect("record");
        records.push((unescape(&key_v), rec_v));
    }
    assert!(!lines.is_empty(), "no namespace in {}", container.display());
    Reference { lines, records }
}

/// Bytes of a reference string in which non-UTF-8 bytes were kept as the
/// literal text `\udcXX`.
pub fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"\\udc") && i + 6 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 4..i + 6], 16) {
                out.push(v);
                i += 6;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Copies every blob of `src` into `dst` (created).
pub fn copy_blobs(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("create container dir");
    for e in std::fs::read_dir(src).expect("read fixture blobs") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), dst.join(e.file_name())).expect("copy blob");
    }
}

/// Fills `dst` with hard links to the blobs of `template` (same file
/// system): a cheap private copy, as long as blobs are replaced with
/// [`replace_blob`] and never written in place.
pub fn link_blobs(template: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("create container dir");
    for e in std::fs::read_dir(template).expect("read template") {
        let e = e.expect("entry");
        std::fs::hard_link(e.path(), dst.join(e.file_name())).expect("link blob");
    }
}

/// Replaces blob `name` in `dir` by `body` (unlinking first).
pub fn replace_blob(dir: &Path, name: &str, body: &[u8]) {
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    std::fs::write(&p, body).expect("write blob");
}

/// Finds the inode at `path` of the container in `store`.
pub async fn inode_at(store: Arc<dyn BlobStore>, path: &str) -> Arc<InodeNode> {
    let c = Arc::new(Container::new(store));
    let lister = Lister::open(c, Arc::new(ProblemSink::default()), LsOptions::default())
        .await
        .expect("open root");
    let p = NsPath::parse(path.as_bytes()).expect("path");
    lister.resolve(&p).await.expect("resolve").0
}

/// A container in memory: a shared, read-only set of blobs (loaded once)
/// seen through a set of changes. Blobs put, replaced or deleted here hide
/// those of the base. Lets a test corrupt a fixture without copying it,
/// and read it without touching the disk.
#[derive(Debug)]
pub struct Overlay {
    base: Arc<BTreeMap<String, Bytes>>,
    changes: Mutex<BTreeMap<String, Option<Bytes>>>,
}

impl Overlay {
    /// Loads every blob of the directory `dir`.
    pub fn load(dir: &Path) -> BTreeMap<String, Bytes> {
        std::fs::read_dir(dir)
            .expect("read blobs")
            .map(|e| {
                let e = e.expect("entry");
                let name = e.file_name().into_string().expect("ASCII blob name");
                (
                    name,
                    Bytes::from(std::fs::read(e.path()).expect("read blob")),
                )
            })
            .collect()
    }

    /// An overlay over `base` with no changes.
    pub fn new(base: Arc<BTreeMap<String, Bytes>>) -> Self {
        Overlay {
            base,
            changes: Mutex::new(BTreeMap::new()),
        }
    }

    fn lookup(&self, name: &str) -> Option<Bytes> {
        match self.changes.lock().expect("overlay lock").get(name) {
            Some(c) => c.clone(),
            None => self.base.get(name).cloned(),
        }
    }

    /// Sets blob `name` to `body`.
    pub fn set(&self, name: &str, body: Vec<u8>) {
        self.changes
            .lock()
            .expect("overlay lock")
            .insert(name.to_string(), Some(Bytes::from(body)));
    }

    /// Deletes blob `name`.
    pub fn remove(&self, name: &str) {
        self.changes
            .lock()
            .expect("overlay lock")
            .insert(name.to_string(), None);
    }
}

#[async_trait]
impl BlobStore for Overlay {
    async fn put(&self, name: &BlobName, data: Bytes) -> Result<(), StoreError> {
        self.set(name.as_str(), data.to_vec());
        Ok(())
    }

    async fn get(&self, name: &BlobName) -> Result<Bytes, StoreError> {
        self.lookup(name.as_str())
            .ok_or_else(|| StoreError::NotFound {
                op: Op::Get,
                name: name.to_string(),
            })
    }

    async fn head(&self, name: &BlobName) -> Result<Option<BlobMeta>, StoreError> {
        Ok(self.lookup(name.as_str()).map(|b| BlobMeta {
            name: name.clone(),
            size: b.len() as u64,
        }))
    }

    async fn delete(&self, name: &BlobName) -> Result<(), StoreError> {
        self.remove(name.as_str());
        Ok(())
    }

    /// Everything in one page.
    async fn list_page(&self, prefix: &str, marker: Option<&str>) -> Result<ListPage, StoreError> {
        let mut all: BTreeMap<String, u64> = self
            .base
            .range(prefix.to_string()..)
            .take_while(|(n, _)| n.starts_with(prefix))
            .map(|(n, b)| (n.clone(), b.len() as u64))
            .collect();
        for (name, change) in self.changes.lock().expect("overlay lock").iter() {
            if !name.starts_with(prefix) {
                continue;
            }
            match change {
                Some(b) => all.insert(name.clone(), b.len() as u64),
                None => all.remove(name),
            };
        }
        let blobs = all
            .into_iter()
            .filter(|(n, _)| marker.is_none_or(|m| n.as_str() > m))
            .map(|(n, size)| BlobMeta {
                name: BlobName::new(n).expect("valid name"),
                size,
            })
            .collect();
        Ok(ListPage {
            blobs,
            next_marker: None,
        })
    }

    fn location(&self) -> String {
        "(in-memory overlay)".to_string()
    }
}
