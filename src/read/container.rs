//! A container opened for reading: finding objects by id (highest version
//! wins), fetching and decoding them.
//!
//! Two ways to find an object whose owner or version is unknown:
//! - with an [`Index`] (one listing of the whole container, 5 000 names
//!   per request on Azure): lookups cost nothing, and the index also tells
//!   which blobs were never reached (verify's unreachable check);
//! - without (each lookup lists the id's prefix, spec §2.7): right for
//!   reading a few paths of a big container (`ls`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::TryStreamExt;

use crate::clfs::envelope;
use crate::clfs::handle::{split_handles, HandleType};
use crate::clfs::hash::hash64;
use crate::clfs::id::{ObjectId, BUCKET, ROOT};
use crate::clfs::name::{current, BlobName as ClfsName, Btype, FIRST_VERSION, TMP_PREFIX};
use crate::clfs::object::{Inode, Object};
use crate::clfs::DecodeError;
use crate::store::{self, BlobStore, StoreError};

/// Why an object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The store failed (after its own retries).
    #[error("blob {blob}: {source}")]
    Store {
        /// The blob or prefix.
        blob: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The blob does not exist.
    #[error("blob {blob} does not exist")]
    Missing {
        /// The blob name that was expected.
        blob: String,
    },
    /// The blob does not decode; the error names the blob.
    #[error("{0}")]
    Decode(DecodeError),
    /// The blob decodes but is not what was expected.
    #[error("blob {blob}: {message}")]
    Invalid {
        /// The blob.
        blob: String,
        /// What is wrong.
        message: String,
    },
}

impl ReadError {
    /// The blob the error is about.
    pub fn blob(&self) -> Option<&str> {
        match self {
            ReadError::Store { blob, .. }
            | ReadError::Missing { blob }
            | ReadError::Invalid { blob, .. } => Some(blob),
            ReadError::Decode(e) => e.blob.as_deref(),
        }
    }

    /// The message without the blob name (for problems, which carry the
    /// blob separately).
    pub fn detail(&self) -> String {
        match self {
            ReadError::Store { source, .. } => source.to_string(),
            ReadError::Missing { .. } => "the blob does not exist".to_string(),
            ReadError::Decode(e) => format!("does not decode: at offset {}: {}", e.offset, e.kind),
            ReadError::Invalid { message, .. } => message.clone(),
        }
    }

    /// True for "does not exist".
    pub fn is_missing(&self) -> bool {
        matches!(self, ReadError::Missing { .. })
    }
}

/// Every blob name of a container, grouped by object id.
#[derive(Debug, Default)]
pub struct Index {
    ids: HashMap<ObjectId, Vec<ClfsName>>,
    foreign: Vec<(String, u64)>,
    total: u64,
    bytes: u64,
}

impl Index {
    /// Number of blobs listed.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Their total size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Names that are not CLFS object names (log files, strangers), with
    /// their sizes.
    pub fn foreign(&self) -> &[(String, u64)] {
        &self.foreign
    }

    /// Every id with the names of its blobs.
    pub fn ids(&self) -> impl Iterator<Item = (&ObjectId, &Vec<ClfsName>)> {
        self.ids.iter()
    }

    /// The names of one id.
    pub fn get(&self, id: &ObjectId) -> &[ClfsName] {
        self.ids.get(id).map_or(&[], Vec::as_slice)
    }
}

/// The blob chosen for an id, and every blob of that id.
#[derive(Debug, Clone)]
pub struct Located {
    /// The current blob: the highest version (a `tmp` root only when no
    /// final root exists).
    pub name: ClfsName,
    /// All blobs of the id.
    pub all: Vec<ClfsName>,
}

impl Located {
    /// Other blobs with the same version as the current one (two live
    /// copies of one object: which one is current is undefined).
    pub fn rivals(&self) -> Vec<&ClfsName> {
        self.all
            .iter()
            .filter(|n| {
                **n != self.name
                    && n.version() == self.name.version()
                    && n.is_tmp() == self.name.is_tmp()
            })
            .collect()
    }

    fn pick(all: Vec<ClfsName>) -> Option<Located> {
        let name = current(&all)?.clone();
        Some(Located { name, all })
    }
}

/// An inode object that was found and decoded.
#[derive(Debug, Clone)]
pub struct InodeNode {
    /// Its handle (BMAP block 0 should be the same).
    pub id: ObjectId,
    /// The blob it was read from.
    pub blob: ClfsName,
    /// The decoded inode.
    pub inode: Inode,
}

impl InodeNode {
    /// The blob name as text.
    pub fn blob_text(&self) -> String {
        self.blob.to_string()
    }

    /// The Btype from VATTR (decoding guarantees an inode type).
    pub fn btype(&self) -> Btype {
        self.inode.btype().unwrap_or(Btype::Reg)
    }

    /// True for directories.
    pub fn is_dir(&self) -> bool {
        self.btype() == Btype::Dir
    }
}

/// A container opened for reading.
#[derive(Debug)]
pub struct Container {
    store: Arc<dyn BlobStore>,
    index: Option<Index>,
    reached: Mutex<HashSet<ObjectId>>,
}

impl Container {
    /// A container without an index: lookups list the id's prefix.
    pub fn new(store: Arc<dyn BlobStore>) -> Self {
        Container {
            store,
            index: None,
            reached: Mutex::new(HashSet::new()),
        }
    }

    /// A container with an index built from one listing of every blob.
    pub async fn indexed(store: Arc<dyn BlobStore>) -> Result<Self, ReadError> {
        let mut index = Index::default();
        let mut listing = store.list("");
        while let Some(meta) = listing
            .try_next()
            .await
            .map_err(|source| ReadError::Store {
                blob: format!("(listing of {})", store.location()),
                source,
            })?
        {
            index.total += 1;
            index.bytes += meta.size;
            match ClfsName::parse(meta.name.as_str()) {
                Ok(n) => index.ids.entry(*n.id()).or_default().push(n),
                Err(_) => index.foreign.push((meta.name.into_string(), meta.size)),
            }
        }
        drop(listing);
        tracing::info!(
            "listed {} blobs ({} bytes, {} ids) in {}",
            index.total,
            index.bytes,
            index.ids.len(),
            store.location()
        );
        Ok(Container {
            store,
            index: Some(index),
            reached: Mutex::new(HashSet::new()),
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    /// Where the container is (no secrets).
    pub fn location(&self) -> String {
        self.store.location()
    }

    /// The index, if the container was opened with one.
    pub fn index(&self) -> Option<&Index> {
        self.index.as_ref()
    }

    /// Notes that `id` was reached from the root.
    pub fn mark_reached(&self, id: &ObjectId) {
        if self.index.is_some() {
            self.reached
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(*id);
        }
    }

    /// Whether `id` was reached (always false without an index).
    pub fn was_reached(&self, id: &ObjectId) -> bool {
        self.reached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    /// Every blob name of `id` (any owner, any version; for the root the
    /// `tmp` name too).
    pub async fn versions(&self, id: &ObjectId) -> Result<Vec<ClfsName>, ReadError> {
        if let Some(index) = &self.index {
            return Ok(index.get(id).to_vec());
        }
        let mut prefixes = Vec::new();
        if *id == BUCKET {
            prefixes.push(ClfsName::id_prefix_v1(id));
        } else {
            prefixes.push(ClfsName::id_prefix_v2(id));
        }
        if *id == ROOT {
            prefixes.push(format!("{TMP_PREFIX}{}", ClfsName::id_prefix_v2(id)));
        }
        let mut names = Vec::new();
        for prefix in prefixes {
            let metas = store::list_all(self.store.as_ref(), &prefix)
                .await
                .map_err(|source| ReadError::Store {
                    blob: format!("(listing of prefix {prefix})"),
                    source,
                })?;
            for m in metas {
                match ClfsName::parse(m.name.as_str()) {
                    Ok(n) if n.id() == id => names.push(n),
                    _ => tracing::debug!("ignoring {} under prefix {prefix}", m.name),
                }
            }
        }
        Ok(names)
    }

    /// The current blob of `id`, or `None` if it has none.
    pub async fn locate(&self, id: &ObjectId) -> Result<Option<Located>, ReadError> {
        Ok(Located::pick(self.versions(id).await?))
    }

    /// Reads a blob's bytes.
    pub async fn get(&self, name: &ClfsName) -> Result<Bytes, ReadError> {
        let text = name.to_string();
        let blob = store::BlobName::new(text.clone()).map_err(|e| ReadError::Invalid {
            blob: text.clone(),
            message: e.to_string(),
        })?;
        match self.store.get(&blob).await {
            Ok(b) => Ok(b),
            Err(e) if e.root().is_not_found() => Err(ReadError::Missing { blob: text }),
            Err(source) => Err(ReadError::Store { blob: text, source }),
        }
    }

    /// Reads and decodes a blob.
    pub async fn fetch_object(&self, name: &ClfsName) -> Result<Object, ReadError> {
        let body = self.get(name).await?;
        decode(name, &body)
    }

    /// Reads and decodes the inode in blob `name` (which belongs to `id`).
    pub async fn fetch_inode(
        &self,
        id: &ObjectId,
        name: &ClfsName,
    ) -> Result<InodeNode, ReadError> {
        match self.fetch_object(name).await? {
            Object::Inode(inode) => {
                self.mark_reached(id);
                Ok(InodeNode {
                    id: *id,
                    blob: name.clone(),
                    inode,
                })
            }
            other => Err(ReadError::Invalid {
                blob: name.to_string(),
                message: format!("expected an inode object, found a {:?}", other.kind()),
            }),
        }
    }

    /// Finds and reads a segment or indirect block `id` owned by `owner`.
    ///
    /// With an index the current blob of the id is read, whatever its
    /// name says. Without, the expected name (`btype`, `owner`, version 9)
    /// is read directly, falling back to a prefix listing when it is
    /// missing. The caller checks the returned name.
    pub async fn fetch_block(
        &self,
        id: &ObjectId,
        btype: Btype,
        owner: &ObjectId,
    ) -> Result<(ClfsName, Object), ReadError> {
        let expected = ClfsName::v2(*id, btype, owner, FIRST_VERSION);
        let name = if self.index.is_some() {
            match self.locate(id).await? {
                Some(l) => l.name,
                None => {
                    return Err(ReadError::Missing {
                        blob: expected.to_string(),
                    })
                }
            }
        } else {
            match self.get(&expected).await {
                Ok(body) => {
                    self.mark_reached(id);
                    return Ok((expected.clone(), decode(&expected, &body)?));
                }
                Err(e) if e.is_missing() => match self.locate(id).await? {
                    Some(l) => l.name,
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            }
        };
        let obj = self.fetch_object(&name).await?;
        self.mark_reached(id);
        Ok((name, obj))
    }

    /// Like [`Container::fetch_block`] without reading the blob: its name
    /// if it exists (index lookup, or a HEAD request without an index).
    pub async fn find_block(
        &self,
        id: &ObjectId,
        btype: Btype,
        owner: &ObjectId,
    ) -> Result<Option<ClfsName>, ReadError> {
        let expected = ClfsName::v2(*id, btype, owner, FIRST_VERSION);
        if self.index.is_some() {
            let found = self.locate(id).await?.map(|l| l.name);
            if found.is_some() {
                self.mark_reached(id);
            }
            return Ok(found);
        }
        let text = expected.to_string();
        let blob = store::BlobName::new(text.clone()).map_err(|e| ReadError::Invalid {
            blob: text.clone(),
            message: e.to_string(),
        })?;
        match self.store.head(&blob).await {
            Ok(Some(_)) => Ok(Some(expected)),
            Ok(None) => Ok(self.locate(id).await?.map(|l| l.name)),
            Err(source) => Err(ReadError::Store { blob: text, source }),
        }
    }
}

/// Decodes a blob body, attaching the blob name to errors.
///
/// Handles of a type this reader does not know (a cache may write types a
/// loader never emits) are skipped with a warning; the rest must form an
/// object as usual.
pub fn decode(name: &ClfsName, body: &[u8]) -> Result<Object, ReadError> {
    let in_blob = |e: DecodeError| ReadError::Decode(e.in_blob(name.to_string()));
    let opened = envelope::open(body, envelope::FramePolicy::Clfs).map_err(in_blob)?;
    let raws = split_handles(&opened.stream).map_err(in_blob)?;
    if raws.iter().all(|r| HandleType::from_code(r.code).is_some()) {
        drop(raws);
        // The common case: the stream is taken, not copied (8 MiB a segment).
        return Object::decode_owned(opened.stream).map_err(in_blob);
    }
    let known: Vec<_> = raws
        .iter()
        .filter(|r| HandleType::from_code(r.code).is_some())
        .copied()
        .collect();
    {
        let codes: Vec<String> = raws
            .iter()
            .filter(|r| HandleType::from_code(r.code).is_none())
            .map(|r| format!("{} at offset {}", r.code, r.offset))
            .collect();
        tracing::warn!(
            "{name}: skipped handles of unknown type: {}",
            codes.join(", ")
        );
    }
    Object::from_raw(&known, opened.stream.len()).map_err(in_blob)
}

/// `hash64` of an id, as printed in names.
pub fn owner_hash(id: &ObjectId) -> u64 {
    hash64(id.as_bytes())
}
