//! Per-object checks of spec §10 that need only the object itself, its
//! blob name and what the caller knows about its place (parent, path).
//! Checks that need several objects (segments, directory entries, link
//! counts) live with the code that walks them.

use crate::clfs::hash::fnv1;
use crate::clfs::id::{container_word, Ftype, ObjectId, CONTAINER_WORD_FLAGS, ROOT};
use crate::clfs::layout::{
    DATA_SEGMENT_BYTES, DIRECT_BLOCKS, DIR_SEGMENT_BYTES, FIRST_SEGMENT_BYTES,
};
use crate::clfs::name::{BlobName as ClfsName, Btype, FIRST_VERSION, SNAPSHOT_NONE};
use crate::clfs::object::InodeBody;

use super::container::{owner_hash, InodeNode};
use super::json::code_point_len;
use super::path::NsPath;
use super::problem::{Check, ProblemSink};

/// The filehandle Ftype code of an inode Btype.
pub fn ftype_of(btype: Btype) -> Option<Ftype> {
    Some(match btype {
        Btype::Dir => Ftype::Dir,
        Btype::Reg => Ftype::Reg,
        Btype::Lnk => Ftype::Lnk,
        Btype::Blk => Ftype::Blk,
        Btype::Chr => Ftype::Chr,
        Btype::Sock => Ftype::Sock,
        Btype::Fifo => Ftype::Fifo,
        _ => return None,
    })
}

/// The `S_IFMT` bits of an inode Btype.
pub fn mode_type_bits(btype: Btype) -> u16 {
    match btype {
        Btype::Dir => 0o040000,
        Btype::Reg => 0o100000,
        Btype::Lnk => 0o120000,
        Btype::Blk => 0o060000,
        Btype::Chr => 0o020000,
        Btype::Sock => 0o140000,
        Btype::Fifo => 0o010000,
        _ => 0,
    }
}

/// The type, version and snapshot fields of any version-2 name, and its
/// owner hash against `owner`.
pub fn check_name(
    sink: &ProblemSink,
    path: &NsPath,
    name: &ClfsName,
    expected: Btype,
    owner: &ObjectId,
    owner_what: &str,
) {
    let blob = name.to_string();
    let blob = Some(blob.as_str());
    match name.btype() {
        Some(b) if b == expected => {}
        Some(b) => sink.error(
            Check::Name,
            Some(path),
            blob,
            format!(
                "name type field is {} ({}), the object is a {}",
                b.code(),
                b.word(),
                expected.word()
            ),
        ),
        None => sink.error(
            Check::Name,
            Some(path),
            blob,
            "a version-1 name for an object that needs a version-2 name",
        ),
    }
    if let Some(h) = name.owner_hash() {
        let want = owner_hash(owner);
        if h != want {
            sink.error(
                Check::Name,
                Some(path),
                blob,
                format!(
                    "owner hash in the name is {h:016X}, expected {want:016X} = hash64 of {owner_what} {owner}"
                ),
            );
        }
    }
    if name.version() < FIRST_VERSION {
        sink.error(
            Check::Name,
            Some(path),
            blob,
            format!("version {} is below {FIRST_VERSION}", name.version()),
        );
    }
    let (ClfsName::V2 { snapshot, .. } | ClfsName::V1 { snapshot, .. }) = name;
    if *snapshot != SNAPSHOT_NONE {
        sink.error(
            Check::Name,
            Some(path),
            blob,
            format!("snapshot field is {snapshot:08X}, expected FFFFFFFF"),
        );
    }
}

/// Static checks of an inode (everything that needs only the inode, its
/// name and, for non-root inodes, the directory it was found in).
pub fn check_inode(sink: &ProblemSink, path: &NsPath, node: &InodeNode, parent: Option<&ObjectId>) {
    let blob_text = node.blob_text();
    let blob = Some(blob_text.as_str());
    let inode = &node.inode;
    let v = &inode.vattr;
    let btype = node.btype();
    let is_root = node.id == ROOT;

    // Object kind: only the root carries EXTATTRS.
    if let InodeBody::Dir { root_attrs, .. } = &inode.body {
        match (is_root, root_attrs.is_some()) {
            (true, false) => sink.error(
                Check::Root,
                Some(path),
                blob,
                "the root inode has no EXTATTRS handle",
            ),
            (false, true) => sink.error(
                Check::Decode,
                Some(path),
                blob,
                "a non-root directory inode carries an EXTATTRS handle (only the root has one)",
            ),
            _ => {}
        }
    }

    // Name: type, owner, version, snapshot.
    let (owner, owner_what) = if is_root {
        (Some(ROOT), "the root id")
    } else if btype == Btype::Dir {
        (inode.owner().copied(), "its '..' entry")
    } else {
        (inode.owner().copied(), "its first back-pointer")
    };
    if let Some(owner) = owner {
        check_name(sink, path, &node.blob, btype, &owner, owner_what);
    }
    if node.blob.is_tmp() && !is_root {
        sink.error(
            Check::Name,
            Some(path),
            blob,
            "only the root may have a 'tmp' name",
        );
    }

    // VATTR.
    let tbits = mode_type_bits(btype);
    if v.mode & 0o170000 != tbits {
        sink.error(
            Check::Vattr,
            Some(path),
            blob,
            format!(
                "mode {:o} has file-type bits {:o}, VATTR type {} needs {:o}",
                v.mode,
                v.mode & 0o170000,
                btype.word(),
                tbits
            ),
        );
    }
    if v.used != v.length {
        sink.warn(
            Check::Vattr,
            Some(path),
            blob,
            format!("used {} differs from length {}", v.used, v.length),
        );
    }

    // Filehandle.
    if !is_root {
        check_filehandle(sink, path, blob, &node.id, btype, v.containerid);
    }

    // BMAP.
    let b = &inode.bmap;
    let other = if btype == Btype::Dir {
        DIR_SEGMENT_BYTES
    } else {
        DATA_SEGMENT_BYTES
    };
    if b.first_segment_bytes != FIRST_SEGMENT_BYTES || b.other_segment_bytes != other {
        sink.error(
            Check::Bmap,
            Some(path),
            blob,
            format!(
                "segment sizes {} / {}, expected {FIRST_SEGMENT_BYTES} / {other}",
                b.first_segment_bytes, b.other_segment_bytes
            ),
        );
    }
    if b.direct.is_empty() || b.direct.len() > DIRECT_BLOCKS {
        sink.error(
            Check::Bmap,
            Some(path),
            blob,
            format!(
                "{} direct blocks, expected 1 to {DIRECT_BLOCKS}",
                b.direct.len()
            ),
        );
    }
    if b.direct.first() != Some(&node.id) {
        sink.error(
            Check::Bmap,
            Some(path),
            blob,
            format!(
                "direct block 0 is {}, expected the inode's own handle {}",
                b.direct
                    .first()
                    .map_or_else(|| "absent".to_string(), ToString::to_string),
                node.id
            ),
        );
    }
    for (i, d) in b.direct.iter().enumerate().skip(1) {
        if d.len() != 16 {
            sink.error(
                Check::Bmap,
                Some(path),
                blob,
                format!("direct block {i} id is {} bytes, expected 16", d.len()),
            );
        }
    }
    if b.indirect_roots.len() != 4 {
        sink.error(
            Check::Bmap,
            Some(path),
            blob,
            format!("{} indirect tree roots, expected 4", b.indirect_roots.len()),
        );
    }
    let mut seen_zero = false;
    for (t, r) in b.indirect_roots.iter().enumerate() {
        if r.len() != 16 {
            sink.error(
                Check::Bmap,
                Some(path),
                blob,
                format!("tree root {t} is {} bytes, expected 16", r.len()),
            );
        }
        let zero = r.is_zero();
        if !zero && seen_zero {
            sink.error(
                Check::Bmap,
                Some(path),
                blob,
                format!("tree root {t} is set after an unused tree"),
            );
        }
        if !zero && b.direct.len() < DIRECT_BLOCKS {
            sink.error(
                Check::Bmap,
                Some(path),
                blob,
                format!(
                    "tree root {t} is set but only {} of {DIRECT_BLOCKS} direct blocks are used",
                    b.direct.len()
                ),
            );
        }
        seen_zero |= zero;
    }
    let has_blocks = b.direct.len() > 1 || b.indirect_roots.iter().any(|r| !r.is_zero());

    match (&inode.body, btype) {
        (InodeBody::Data(d), Btype::Reg) => {
            let want = v.length.min(u64::from(FIRST_SEGMENT_BYTES));
            if d.len() as u64 != want {
                sink.error(
                    Check::Segment,
                    Some(path),
                    blob,
                    format!(
                        "inline DATA is {} bytes; a file of {} bytes needs {want}",
                        d.len(),
                        v.length
                    ),
                );
            }
        }
        (InodeBody::Data(d), Btype::Lnk) => {
            if has_blocks {
                sink.error(Check::Bmap, Some(path), blob, "a symlink has data segments");
            }
            let cps = code_point_len(d) as u64;
            if v.length != cps && v.length != d.len() as u64 {
                sink.error(
                    Check::Vattr,
                    Some(path),
                    blob,
                    format!(
                        "symlink size {} matches neither the target's {} code points nor its {} bytes",
                        v.length,
                        cps,
                        d.len()
                    ),
                );
            }
        }
        (InodeBody::Special, _) if has_blocks => {
            sink.error(
                Check::Bmap,
                Some(path),
                blob,
                format!("a {} has data segments", btype.word()),
            );
        }
        _ => {}
    }

    // Back-pointers of non-directories.
    if let Some(back) = &inode.back {
        if back.len() as u64 != u64::from(v.nlink) {
            sink.error(
                Check::Nlink,
                Some(path),
                blob,
                format!(
                    "VATTR nlink is {} but BACK has {} entries",
                    v.nlink,
                    back.len()
                ),
            );
        }
        if let Some(p) = parent {
            if !back.contains(p) {
                sink.error(
                    Check::Nlink,
                    Some(path),
                    blob,
                    format!("found in directory {p}, which is not in its BACK list"),
                );
            }
        }
    }
}

/// Filehandle sanity (spec §10): 24 bytes, version/local bits, Ftype byte,
/// reserved byte, non-zero FNV-1, container word against VATTR.
pub fn check_filehandle(
    sink: &ProblemSink,
    path: &NsPath,
    blob: Option<&str>,
    id: &ObjectId,
    btype: Btype,
    containerid: u64,
) {
    let Some(fh) = id.as_filehandle() else {
        sink.error(
            Check::Filehandle,
            Some(path),
            blob,
            format!("handle {id} is {} bytes, expected 24", id.len()),
        );
        return;
    };
    let word = fh.container_word();
    if word & 0x1f != CONTAINER_WORD_FLAGS {
        sink.error(
            Check::Filehandle,
            Some(path),
            blob,
            format!(
                "handle {id}: container word {word:#010x} has low bits {:#04x}, expected 0x11",
                word & 0x1f
            ),
        );
    }
    if let Some(ft) = ftype_of(btype) {
        if fh.ftype_code() != ft as u8 {
            sink.error(
                Check::Filehandle,
                Some(path),
                blob,
                format!(
                    "handle {id}: type byte {} does not match VATTR type {} (Ftype {})",
                    fh.ftype_code(),
                    btype.word(),
                    ft as u8
                ),
            );
        }
    }
    if fh.reserved() != 0 {
        sink.error(
            Check::Filehandle,
            Some(path),
            blob,
            format!("handle {id}: reserved byte 7 is {}", fh.reserved()),
        );
    }
    if fnv1(&fh.0) == 0 {
        sink.error(
            Check::Filehandle,
            Some(path),
            blob,
            format!("handle {id}: FNV-1 hash is 0"),
        );
    }
    let want = container_word((containerid & 0xffff_ffff) as u32);
    if word != want {
        sink.error(
            Check::Filehandle,
            Some(path),
            blob,
            format!(
                "handle {id}: container word {word:#010x} does not match VATTR containerid {containerid:#x} (expected {want:#010x})"
            ),
        );
    }
}
