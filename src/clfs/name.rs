//! Blob names: build and parse (spec §2.7).
//!
//! Version 1 (`%08X_%s.%011u.%08X.%04u`) is used for the bucket object only;
//! version 2 (`%016X_%s.%04u.%016X.%011u.%08X.%04u`) for everything else. A
//! provisional root is stored under `tmp` + its version-2 name.

use std::fmt;

use super::hash::{fnv1, hash64};
use super::id::{Ftype, ObjectId, ROOT};

/// Object type codes of version-2 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum Btype {
    /// Regular file inode.
    Reg = 1,
    /// Directory inode (and the root).
    Dir = 2,
    /// Block device inode.
    Blk = 3,
    /// Character device inode.
    Chr = 4,
    /// Symlink inode.
    Lnk = 5,
    /// Socket inode.
    Sock = 6,
    /// Fifo inode.
    Fifo = 7,
    /// Data or directory segment.
    Segment = 8,
    /// Indirect block.
    Indirect = 9,
    /// Defined by CLFS; never written by a loader.
    Tombstone = 10,
    /// Defined by CLFS; the bucket uses a version-1 name instead.
    Special = 11,
    /// Defined by CLFS; never written (hard links keep their own type).
    Hlink = 12,
}

impl From<Ftype> for Btype {
    /// The inode blob type of a file type.
    fn from(f: Ftype) -> Self {
        match f {
            Ftype::Dir => Btype::Dir,
            Ftype::Reg => Btype::Reg,
            Ftype::Lnk => Btype::Lnk,
            Ftype::Blk => Btype::Blk,
            Ftype::Chr => Btype::Chr,
            Ftype::Sock => Btype::Sock,
            Ftype::Fifo => Btype::Fifo,
        }
    }
}

impl Btype {
    /// From the numeric code.
    pub fn from_code(c: u16) -> Option<Self> {
        Some(match c {
            1 => Btype::Reg,
            2 => Btype::Dir,
            3 => Btype::Blk,
            4 => Btype::Chr,
            5 => Btype::Lnk,
            6 => Btype::Sock,
            7 => Btype::Fifo,
            8 => Btype::Segment,
            9 => Btype::Indirect,
            10 => Btype::Tombstone,
            11 => Btype::Special,
            12 => Btype::Hlink,
            _ => return None,
        })
    }

    /// The code.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// A lower-case word for reports (`reg`, `dir`, `segment`, …).
    pub fn word(self) -> &'static str {
        match self {
            Btype::Reg => "reg",
            Btype::Dir => "dir",
            Btype::Blk => "blk",
            Btype::Chr => "chr",
            Btype::Lnk => "lnk",
            Btype::Sock => "sock",
            Btype::Fifo => "fifo",
            Btype::Segment => "segment",
            Btype::Indirect => "indirect",
            Btype::Tombstone => "tombstone",
            Btype::Special => "special",
            Btype::Hlink => "hlink",
        }
    }

    /// True for the seven inode types.
    pub fn is_inode(self) -> bool {
        (1..=7).contains(&(self as u16))
    }
}

/// The version of every first write.
pub const FIRST_VERSION: u64 = 9;
/// The snapshot field of every name CLFSLoad writes.
pub const SNAPSHOT_NONE: u32 = 0xFFFF_FFFF;
/// Largest value an 11-digit version field can hold.
pub const MAX_VERSION: u64 = 99_999_999_999;
/// Prefix of the provisional root's name.
pub const TMP_PREFIX: &str = "tmp";

/// A parsed or to-be-built blob name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BlobName {
    /// Version-1 name (the bucket object).
    V1 {
        /// The object id.
        id: ObjectId,
        /// The version field.
        version: u64,
        /// The snapshot field.
        snapshot: u32,
    },
    /// Version-2 name.
    V2 {
        /// `tmp` prefix (only the provisional root has it).
        tmp: bool,
        /// The object id.
        id: ObjectId,
        /// The type field.
        btype: Btype,
        /// `hash64` of the owner id (the owner itself is not recoverable).
        owner_hash: u64,
        /// The version field.
        version: u64,
        /// The snapshot field.
        snapshot: u32,
    },
}

/// Why a string is not a CLFS blob name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a CLFS blob name: {name:?}: {reason}")]
pub struct NameError {
    /// The string that failed to parse (truncated to 200 characters).
    pub name: String,
    /// What was wrong.
    pub reason: String,
}

impl BlobName {
    /// The version-1 name of a special object (the bucket).
    pub fn v1(id: ObjectId, version: u64) -> Self {
        BlobName::V1 {
            id,
            version,
            snapshot: SNAPSHOT_NONE,
        }
    }

    /// The final version-2 name of an object. For the root, owner and type
    /// are forced to the root and DIR, as the reference does.
    pub fn v2(id: ObjectId, btype: Btype, owner: &ObjectId, version: u64) -> Self {
        let (btype, owner) = if id == ROOT {
            (Btype::Dir, ROOT)
        } else {
            (btype, *owner)
        };
        BlobName::V2 {
            tmp: false,
            id,
            btype,
            owner_hash: hash64(owner.as_bytes()),
            version,
            snapshot: SNAPSHOT_NONE,
        }
    }

    /// The provisional name of the root: `tmp` + its version-9 name.
    pub fn tmp_root() -> Self {
        match Self::v2(ROOT, Btype::Dir, &ROOT, FIRST_VERSION) {
            BlobName::V2 {
                id,
                btype,
                owner_hash,
                version,
                snapshot,
                ..
            } => BlobName::V2 {
                tmp: true,
                id,
                btype,
                owner_hash,
                version,
                snapshot,
            },
            v1 => v1,
        }
    }

    /// The object id.
    pub fn id(&self) -> &ObjectId {
        match self {
            BlobName::V1 { id, .. } | BlobName::V2 { id, .. } => id,
        }
    }

    /// The version field.
    pub fn version(&self) -> u64 {
        match self {
            BlobName::V1 { version, .. } | BlobName::V2 { version, .. } => *version,
        }
    }

    /// The type field (`None` for version-1 names).
    pub fn btype(&self) -> Option<Btype> {
        match self {
            BlobName::V1 { .. } => None,
            BlobName::V2 { btype, .. } => Some(*btype),
        }
    }

    /// The owner hash (`None` for version-1 names).
    pub fn owner_hash(&self) -> Option<u64> {
        match self {
            BlobName::V1 { .. } => None,
            BlobName::V2 { owner_hash, .. } => Some(*owner_hash),
        }
    }

    /// True for the provisional (`tmp`) root name.
    pub fn is_tmp(&self) -> bool {
        matches!(self, BlobName::V2 { tmp: true, .. })
    }

    /// The prefix shared by every blob of `id` (any owner, any version),
    /// used to find an object whose owner or version is unknown.
    pub fn id_prefix_v2(id: &ObjectId) -> String {
        format!("{:016X}_{}.", hash64(id.as_bytes()), id.hex_upper())
    }

    /// The same for version-1 names.
    pub fn id_prefix_v1(id: &ObjectId) -> String {
        format!("{:08X}_{}.", fnv1(id.as_bytes()), id.hex_upper())
    }

    /// Parses a name; the id's hash must match the id.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let err = |reason: &str| NameError {
            name: s.chars().take(200).collect(),
            reason: reason.to_string(),
        };
        let (tmp, body) = match s.strip_prefix(TMP_PREFIX) {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (hash_part, rest) = body
            .split_once('_')
            .ok_or_else(|| err("no '_' after the hash"))?;
        let tokens: Vec<&str> = rest.split('.').collect();
        let id = |t: &str| -> Result<ObjectId, NameError> {
            if !is_upper_hex(t) || (t.len() != 32 && t.len() != 48) {
                return Err(err("id is not 32 or 48 upper-case hex digits"));
            }
            ObjectId::from_hex(t).ok_or_else(|| err("id is not hex"))
        };
        let dec = |t: &str, width: usize, what: &str| -> Result<u64, NameError> {
            if t.len() != width || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(&format!("{what} is not {width} decimal digits")));
            }
            t.parse::<u64>().map_err(|_| err(&format!("bad {what}")))
        };
        let hexn = |t: &str, width: usize, what: &str| -> Result<u64, NameError> {
            if t.len() != width || !is_upper_hex(t) {
                return Err(err(&format!("{what} is not {width} upper-case hex digits")));
            }
            u64::from_str_radix(t, 16).map_err(|_| err(&format!("bad {what}")))
        };
        match tokens.len() {
            4 => {
                if tmp {
                    return Err(err("'tmp' prefix on a version-1 name"));
                }
                let id = id(tokens[0])?;
                let h = hexn(hash_part, 8, "hash")?;
                if h != u64::from(fnv1(id.as_bytes())) {
                    return Err(err("hash does not match the id"));
                }
                let version = dec(tokens[1], 11, "version")?;
                let snapshot = hexn(tokens[2], 8, "snapshot")? as u32;
                if tokens[3] != "0001" {
                    return Err(err("name format field of a 4-token name is not 0001"));
                }
                Ok(BlobName::V1 {
                    id,
                    version,
                    snapshot,
                })
            }
            6 => {
                let id = id(tokens[0])?;
                let h = hexn(hash_part, 16, "hash")?;
                if h != hash64(id.as_bytes()) {
                    return Err(err("hash does not match the id"));
                }
                let code = dec(tokens[1], 4, "type")?;
                let btype = Btype::from_code(code as u16)
                    .ok_or_else(|| err(&format!("unknown type code {code}")))?;
                let owner_hash = hexn(tokens[2], 16, "owner hash")?;
                let version = dec(tokens[3], 11, "version")?;
                let snapshot = hexn(tokens[4], 8, "snapshot")? as u32;
                if tokens[5] != "0002" {
                    return Err(err("name format field of a 6-token name is not 0002"));
                }
                Ok(BlobName::V2 {
                    tmp,
                    id,
                    btype,
                    owner_hash,
                    version,
                    snapshot,
                })
            }
            _ => Err(err("expected 4 or 6 '.'-separated fields after the hash")),
        }
    }
}

fn is_upper_hex(t: &str) -> bool {
    t.bytes()
        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

impl fmt::Display for BlobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobName::V1 {
                id,
                version,
                snapshot,
            } => write!(
                f,
                "{:08X}_{}.{:011}.{:08X}.0001",
                fnv1(id.as_bytes()),
                id.hex_upper(),
                version,
                snapshot
            ),
            BlobName::V2 {
                tmp,
                id,
                btype,
                owner_hash,
                version,
                snapshot,
            } => write!(
                f,
                "{}{:016X}_{}.{:04}.{:016X}.{:011}.{:08X}.0002",
                if *tmp { TMP_PREFIX } else { "" },
                hash64(id.as_bytes()),
                id.hex_upper(),
                btype.code(),
                owner_hash,
                version,
                snapshot
            ),
        }
    }
}

/// Picks the current name among names of one id: the highest version wins
/// (a `tmp` root name only when no final name exists).
pub fn current<'a, I: IntoIterator<Item = &'a BlobName>>(names: I) -> Option<&'a BlobName> {
    names.into_iter().max_by_key(|n| (!n.is_tmp(), n.version()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clfs::id::{BUCKET, INODE_INPROGRESS};

    fn fh(h: &str) -> ObjectId {
        ObjectId::from_hex(h).unwrap()
    }

    const D: &str = "11cf8a4600010100e903000000000000f6b165224a58b791";

    #[test]
    fn spec_2_7_examples() {
        let cases: Vec<(BlobName, &str)> = vec![
            (
                BlobName::v1(BUCKET, 9),
                "00000063_00000000000000000000000000000063.00000000009.FFFFFFFF.0001",
            ),
            (
                BlobName::v2(ROOT, Btype::Dir, &ROOT, 9),
                "0000006457871C6B_00000000000000000000000000000064.0002.0000006457871C6B.00000000009.FFFFFFFF.0002",
            ),
            (
                BlobName::tmp_root(),
                "tmp0000006457871C6B_00000000000000000000000000000064.0002.0000006457871C6B.00000000009.FFFFFFFF.0002",
            ),
            (
                BlobName::v2(ROOT, Btype::Reg, &INODE_INPROGRESS, 11),
                "0000006457871C6B_00000000000000000000000000000064.0002.0000006457871C6B.00000000011.FFFFFFFF.0002",
            ),
            (
                BlobName::v2(fh(D), Btype::Dir, &ROOT, 9),
                "51EAD3C2EB7A1130_11CF8A4600010100E903000000000000F6B165224A58B791.0002.0000006457871C6B.00000000009.FFFFFFFF.0002",
            ),
            (
                BlobName::v2(fh(D), Btype::Dir, &INODE_INPROGRESS, 9),
                "51EAD3C2EB7A1130_11CF8A4600010100E903000000000000F6B165224A58B791.0002.00000062BAE79F98.00000000009.FFFFFFFF.0002",
            ),
            (
                BlobName::v2(fh("11cf8a4601010700eb03000000000000fe3feb3c9250b797"), Btype::Fifo, &fh(D), 9),
                "4833D4F11CCB225A_11CF8A4601010700EB03000000000000FE3FEB3C9250B797.0007.51EAD3C2EB7A1130.00000000009.FFFFFFFF.0002",
            ),
            (
                BlobName::v2(fh("0f1e2d3c4b5a49688776a5b4c3d2e1f0"), Btype::Segment, &fh(D), 9),
                "A9F1E7D00B790BA0_0F1E2D3C4B5A49688776A5B4C3D2E1F0.0008.51EAD3C2EB7A1130.00000000009.FFFFFFFF.0002",
            ),
            (
                BlobName::v2(fh("11cf8a4601010200ea0300000000000074a9bef499bbf4dc"), Btype::Reg, &fh(D), 9),
                "2D8CC3EAF9774511_11CF8A4601010200EA0300000000000074A9BEF499BBF4DC.0001.51EAD3C2EB7A1130.00000000009.FFFFFFFF.0002",
            ),
        ];
        for (name, text) in cases {
            assert_eq!(name.to_string(), text);
            assert_eq!(BlobName::parse(text).unwrap(), name);
        }
        assert_eq!(BlobName::v1(BUCKET, 9).to_string().len(), 67);
        assert_eq!(
            BlobName::v2(fh(D), Btype::Dir, &ROOT, 9).to_string().len(),
            113
        );
    }

    #[test]
    fn prefixes_find_every_version() {
        let n = BlobName::v2(fh(D), Btype::Dir, &ROOT, 11).to_string();
        assert!(n.starts_with(&BlobName::id_prefix_v2(&fh(D))));
        let b = BlobName::v1(BUCKET, 9).to_string();
        assert!(b.starts_with(&BlobName::id_prefix_v1(&BUCKET)));
    }

    #[test]
    fn highest_version_is_current_and_tmp_loses() {
        let names = [
            BlobName::tmp_root(),
            BlobName::v2(ROOT, Btype::Dir, &ROOT, 9),
            BlobName::v2(ROOT, Btype::Dir, &ROOT, 11),
        ];
        assert_eq!(current(&names).unwrap().version(), 11);
        assert!(current(&names[..1]).unwrap().is_tmp());
        assert!(current(&[]).is_none());
    }

    #[test]
    fn bad_names_are_rejected_with_a_reason() {
        for bad in [
            "",
            "output.txt",
            "problems.txt",
            "00000063_00000000000000000000000000000063.00000000009.FFFFFFFF.0002",
            "00000064_00000000000000000000000000000063.00000000009.FFFFFFFF.0001",
            "0000006457871C6B_00000000000000000000000000000064.0002.0000006457871C6B.00000000009.FFFFFFFF",
            "0000006457871C6B_00000000000000000000000000000064.0013.0000006457871C6B.00000000009.FFFFFFFF.0002",
            "0000006457871c6b_00000000000000000000000000000064.0002.0000006457871C6B.00000000009.FFFFFFFF.0002",
            "0000006457871C6B_00000000000000000000000000000064.0002.0000006457871C6B.0000000009.FFFFFFFF.0002",
            "tmp00000063_00000000000000000000000000000063.00000000009.FFFFFFFF.0001",
            "0000006457871C6B_000000000000000000000000000064.0002.0000006457871C6B.00000000009.FFFFFFFF.0002",
        ] {
            let e = BlobName::parse(bad).unwrap_err();
            assert!(!e.reason.is_empty(), "{bad}");
        }
    }
}
