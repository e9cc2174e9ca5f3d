//! The canonical `namespace` records of a decoded container (fixtures
//! README §4.1): the test oracle shared with the reference decoder.
//!
//! One record per path under which an inode is reachable; hard-linked
//! names get identical records. Built from the walk's events; the fields
//! that need the whole walk (`parents`, `hardlink_group`, `names`,
//! `entries`, `sha256`) are filled in at the end. Memory is O(paths).

use std::collections::HashMap;

use crate::clfs::id::ObjectId;
use crate::clfs::object::InodeBody;
use crate::clfs::vattr::ClfsTime;

use super::container::InodeNode;
use super::json::{code_points, Json};
use super::path::NsPath;
use super::walk::Event;

/// The canonical namespace: records sorted by path (code-point order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace {
    /// `(path, record)` pairs, sorted.
    pub records: Vec<(NsPath, Json)>,
}

impl Namespace {
    /// The record of `path`.
    pub fn get(&self, path: &[u8]) -> Option<&Json> {
        self.records
            .iter()
            .find(|(p, _)| p.as_bytes() == path)
            .map(|(_, r)| r)
    }

    /// The document in the fixture layout: `{"format":…,"namespace":{` then
    /// one `"path":{record}` per line, then `"problems":[…]}`.
    pub fn to_document(&self, problems: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"{\n\"format\":\"clfs-canonical-1\",\n\"namespace\":{\n");
        for (i, (p, r)) in self.records.iter().enumerate() {
            out.push(b' ');
            super::json::write_str(&mut out, p.as_bytes());
            out.push(b':');
            r.write(&mut out);
            if i + 1 < self.records.len() {
                out.push(b',');
            }
            out.push(b'\n');
        }
        out.extend_from_slice(b"},\n\"problems\":");
        Json::Arr(problems.iter().map(Json::str).collect()).write(&mut out);
        out.extend_from_slice(b"\n}\n");
        out
    }
}

enum Pending {
    Node {
        fields: Vec<(Vec<u8>, Json)>,
        id: ObjectId,
        is_dir: bool,
        back: Option<Vec<ObjectId>>,
    },
    Missing,
}

/// Collects records from walk events.
#[derive(Default)]
pub struct NamespaceBuilder {
    records: Vec<(NsPath, Pending)>,
    dir_paths: HashMap<ObjectId, NsPath>,
    names: HashMap<ObjectId, Vec<NsPath>>,
    entries: HashMap<ObjectId, u64>,
    content: HashMap<ObjectId, (String, u64)>,
}

fn time(t: ClfsTime) -> Json {
    Json::Arr(vec![
        Json::UInt(u64::from(t.sec)),
        Json::UInt(u64::from(t.nsec)),
    ])
}

fn k(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// True for a canonical dashed UUID (8-4-4-4-12 hex digits).
pub fn is_dashed_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

impl NamespaceBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one walk event.
    pub fn event(&mut self, e: &Event) {
        match e {
            Event::Node { path, node, .. } => self.node(path, node),
            Event::Broken { path, .. } => self.records.push((path.clone(), Pending::Missing)),
            Event::DirDone { id, entries, .. } => {
                self.entries.insert(*id, *entries);
            }
        }
    }

    /// The content hash of the regular file `id` (once per inode).
    pub fn content(&mut self, id: ObjectId, sha256_hex: String, len: u64) {
        self.content.insert(id, (sha256_hex, len));
    }

    fn node(&mut self, path: &NsPath, node: &InodeNode) {
        let v = &node.inode.vattr;
        let mut f: Vec<(Vec<u8>, Json)> = vec![
            (k("type"), Json::str(node.btype().word())),
            (k("mode"), Json::str(format!("{:o}", v.mode))),
            (k("uid"), Json::UInt(u64::from(v.uid))),
            (k("gid"), Json::UInt(u64::from(v.gid))),
            (k("size"), Json::UInt(v.length)),
            (k("used"), Json::UInt(v.used)),
            (k("nlink"), Json::UInt(u64::from(v.nlink))),
            (k("fileid"), Json::UInt(v.fileid)),
            (k("mtime"), time(v.mtime)),
            (k("ctime"), time(v.ctime)),
            (k("atime"), time(v.atime)),
            (k("dtime"), time(v.dtime)),
            (
                k("rdev"),
                Json::Arr(vec![
                    Json::UInt(u64::from(v.rdev_major)),
                    Json::UInt(u64::from(v.rdev_minor)),
                ]),
            ),
            (k("flags"), Json::UInt(u64::from(v.flags))),
            (k("spare"), Json::UInt(u64::from(v.spare))),
            (k("haVersion"), Json::UInt(u64::from(v.ha_version))),
            (k("inode_name"), Json::Str(node.inode.name.clone())),
        ];
        match &node.inode.body {
            InodeBody::Dir {
                root_attrs: Some(attrs),
                ..
            } => {
                let x = attrs
                    .iter()
                    .map(|(key, val)| {
                        let val = if is_dashed_uuid(val) {
                            "<uuid>"
                        } else {
                            val.as_str()
                        };
                        (key.as_bytes().to_vec(), Json::str(val))
                    })
                    .collect();
                f.push((k("xattrs"), Json::Obj(x)));
            }
            InodeBody::Data(d) if node.btype() == crate::clfs::name::Btype::Lnk => {
                f.push((k("symlink"), Json::Str(d.clone())));
            }
            _ => {}
        }
        let is_dir = node.is_dir();
        if is_dir {
            self.dir_paths.insert(node.id, path.clone());
        } else {
            self.names.entry(node.id).or_default().push(path.clone());
        }
        self.records.push((
            path.clone(),
            Pending::Node {
                fields: f,
                id: node.id,
                is_dir,
                back: node.inode.back.clone(),
            },
        ));
    }

    /// The finished namespace.
    pub fn finish(self) -> Namespace {
        let sort_paths = |v: &mut Vec<Vec<u8>>| v.sort_by_cached_key(|p| code_points(p));
        let mut records: Vec<(NsPath, Json)> = Vec::with_capacity(self.records.len());
        for (path, p) in self.records {
            let rec = match p {
                Pending::Missing => Json::Obj(vec![(k("type"), Json::str("<missing>"))]),
                Pending::Node {
                    mut fields,
                    id,
                    is_dir,
                    back,
                } => {
                    if is_dir {
                        if let Some(n) = self.entries.get(&id) {
                            fields.push((k("entries"), Json::UInt(*n)));
                        }
                    }
                    if let Some((sha, len)) = self.content.get(&id) {
                        fields.push((k("sha256"), Json::str(sha)));
                        fields.push((k("content_len"), Json::UInt(*len)));
                    }
                    if let Some(back) = back {
                        let mut parents: Vec<Vec<u8>> = back
                            .iter()
                            .map(|b| {
                                self.dir_paths.get(b).map_or_else(
                                    || b"<unknown-parent>".to_vec(),
                                    |p| p.as_bytes().to_vec(),
                                )
                            })
                            .collect();
                        sort_paths(&mut parents);
                        fields.push((
                            k("parents"),
                            Json::Arr(parents.into_iter().map(Json::Str).collect()),
                        ));
                    }
                    if let Some(names) = self.names.get(&id).filter(|n| n.len() >= 2) {
                        let mut names: Vec<Vec<u8>> =
                            names.iter().map(|p| p.as_bytes().to_vec()).collect();
                        sort_paths(&mut names);
                        fields.push((k("hardlink_group"), Json::Str(names[0].clone())));
                        fields.push((
                            k("names"),
                            Json::Arr(names.into_iter().map(Json::Str).collect()),
                        ));
                    }
                    Json::Obj(fields)
                }
            };
            records.push((path, rec));
        }
        records.sort_by_cached_key(|(p, _)| code_points(p.as_bytes()));
        Namespace { records }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        assert!(is_dashed_uuid("b83b557f-c010-4209-9134-cba0539382c5"));
        assert!(!is_dashed_uuid("b83b557fc0104209-9134-cba0539382c5x"));
        assert!(!is_dashed_uuid("2"));
    }
}
