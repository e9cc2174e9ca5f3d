//! Object ids, filehandles and the well-known ids (spec §2.1–2.5).

use std::fmt;

use super::hash::fnv1;

/// An object id: 16 bytes (well-known ids, UUIDs, the root) or 24 bytes
/// (filehandles). Compared and hashed as raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    len: u8,
    bytes: [u8; 24],
}

impl ObjectId {
    /// A 16-byte id.
    pub const fn from_16(b: [u8; 16]) -> Self {
        let mut bytes = [0u8; 24];
        let mut i = 0;
        while i < 16 {
            bytes[i] = b[i];
            i += 1;
        }
        ObjectId { len: 16, bytes }
    }

    /// A 24-byte id (a filehandle).
    pub const fn from_24(bytes: [u8; 24]) -> Self {
        ObjectId { len: 24, bytes }
    }

    /// An id from 16 or 24 bytes; `None` for any other length.
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        match b.len() {
            16 | 24 => {
                let mut bytes = [0u8; 24];
                bytes[..b.len()].copy_from_slice(b);
                Some(ObjectId {
                    len: b.len() as u8,
                    bytes,
                })
            }
            _ => None,
        }
    }

    /// A well-known id: fifteen zero bytes and `code`.
    pub const fn well_known(code: u8) -> Self {
        let mut b = [0u8; 16];
        b[15] = code;
        Self::from_16(b)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// 16 or 24.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True for the all-zero ids (the NULL filehandle, an unused tree root).
    pub fn is_zero(&self) -> bool {
        self.as_bytes().iter().all(|&b| b == 0)
    }

    /// Upper-case hex, as in blob names.
    pub fn hex_upper(&self) -> String {
        hex::encode_upper(self.as_bytes())
    }

    /// Parses upper- or lower-case hex of 32 or 48 digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let b = hex::decode(s).ok()?;
        Self::from_slice(&b)
    }

    /// The id as a [`Filehandle`], if it is 24 bytes long.
    pub fn as_filehandle(&self) -> Option<Filehandle> {
        (self.len == 24).then_some(Filehandle(self.bytes))
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", hex::encode(self.as_bytes()))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.as_bytes()))
    }
}

/// INODE_INPROGRESS: owner of provisional inode names; never an object.
pub const INODE_INPROGRESS: ObjectId = ObjectId::well_known(0x62);
/// The bucket object.
pub const BUCKET: ObjectId = ObjectId::well_known(0x63);
/// The root directory; this 16-byte value is the root's filehandle.
pub const ROOT: ObjectId = ObjectId::well_known(0x64);
/// Reserved for the space tracker (never written by a loader).
pub const SPACETRACKER: ObjectId = ObjectId::well_known(0x65);
/// `..` of orphaned directories.
pub const ORPHANPARENT: ObjectId = ObjectId::well_known(0x66);
/// Reserved for the snapshot database (never written by a loader).
pub const SNAPSHOTDB: ObjectId = ObjectId::well_known(0x67);
/// The NULL filehandle: 24 zero bytes ("no parent").
pub const NULL_FILEHANDLE: ObjectId = ObjectId::from_24([0u8; 24]);
/// An unused indirect-tree root in BMAP: 16 zero bytes.
pub const ZERO_ROOT: ObjectId = ObjectId::from_16([0u8; 16]);

/// The source file type code carried in byte 6 of a filehandle (CLFSLoad's
/// "Ftype"). Not the same numbering as [`crate::clfs::name::Btype`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Ftype {
    /// Directory.
    Dir = 1,
    /// Regular file.
    Reg = 2,
    /// Symbolic link.
    Lnk = 3,
    /// Block device.
    Blk = 4,
    /// Character device.
    Chr = 5,
    /// Socket.
    Sock = 6,
    /// Fifo.
    Fifo = 7,
}

impl Ftype {
    /// From the code byte.
    pub fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => Ftype::Dir,
            2 => Ftype::Reg,
            3 => Ftype::Lnk,
            4 => Ftype::Blk,
            5 => Ftype::Chr,
            6 => Ftype::Sock,
            7 => Ftype::Fifo,
            _ => return None,
        })
    }
}

/// Low 5 bits of the container word: version 1, local.
pub const CONTAINER_WORD_FLAGS: u32 = 0x11;

/// `((containerid & 0x07FFFFFF) << 5) | 0x11`.
pub fn container_word(containerid: u32) -> u32 {
    ((containerid & 0x07FF_FFFF) << 5) | CONTAINER_WORD_FLAGS
}

/// A 24-byte filehandle (spec §2.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Filehandle(pub [u8; 24]);

impl Filehandle {
    /// Assembles the 24 bytes from their fields.
    pub fn from_parts(
        container_word: u32,
        dmid_src: u8,
        dmid_tgt: u8,
        ftype: Ftype,
        seq: u64,
        random: u64,
    ) -> Self {
        let mut b = [0u8; 24];
        b[0..4].copy_from_slice(&container_word.to_le_bytes());
        b[4] = dmid_src;
        b[5] = dmid_tgt;
        b[6] = ftype as u8;
        b[7] = 0;
        b[8..16].copy_from_slice(&seq.to_le_bytes());
        b[16..24].copy_from_slice(&random.to_le_bytes());
        Filehandle(b)
    }

    /// The container word (bytes 0–3).
    pub fn container_word(&self) -> u32 {
        u32::from_le_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }

    /// `dmid_src` (byte 4).
    pub fn dmid_src(&self) -> u8 {
        self.0[4]
    }

    /// `dmid_tgt` (byte 5).
    pub fn dmid_tgt(&self) -> u8 {
        self.0[5]
    }

    /// The Ftype byte (byte 6), raw.
    pub fn ftype_code(&self) -> u8 {
        self.0[6]
    }

    /// Reserved byte 7 (0 in valid handles).
    pub fn reserved(&self) -> u8 {
        self.0[7]
    }

    /// The sequence number (bytes 8–15).
    pub fn seq(&self) -> u64 {
        u64::from_le_bytes(self.0[8..16].try_into().unwrap_or([0; 8]))
    }

    /// The random part (bytes 16–23).
    pub fn random(&self) -> u64 {
        u64::from_le_bytes(self.0[16..24].try_into().unwrap_or([0; 8]))
    }

    /// As an [`ObjectId`].
    pub fn id(&self) -> ObjectId {
        ObjectId::from_24(self.0)
    }
}

impl fmt::Debug for Filehandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Filehandle({})", hex::encode(self.0))
    }
}

/// Byte 5 of an id: `dmid_src` of its children (0 for the 16-byte root).
pub fn dmid_of(parent: &ObjectId) -> u8 {
    parent.as_bytes()[5]
}

/// A source of random numbers, injectable so tests are deterministic.
pub trait RandomSource {
    /// A uniformly random `u64`.
    fn next_u64(&mut self) -> u64;
}

impl<R: rand::RngCore> RandomSource for R {
    fn next_u64(&mut self) -> u64 {
        rand::RngCore::next_u64(self)
    }
}

/// Number of directory managers in the dmid round robin.
pub const DIRMGR_COUNT: u8 = 48;

/// Makes filehandles for one load or sync: fixed container word, a dmid
/// round robin that restarts with each process, and caller-supplied
/// sequence numbers (the caller persists the high-water mark).
#[derive(Debug, Clone)]
pub struct FilehandleMaker {
    container_word: u32,
    dmid_counter: u8,
}

impl FilehandleMaker {
    /// A maker for the container whose id is `containerid`.
    pub fn new(containerid: u32) -> Self {
        FilehandleMaker {
            container_word: container_word(containerid),
            dmid_counter: 0,
        }
    }

    /// A new filehandle of type `ftype` for a child of `parent`, with
    /// sequence number `seq`. Directories take the next dmid; others inherit
    /// the parent's. The random part is redrawn until it is non-zero and the
    /// FNV-1 hash of the handle is non-zero.
    pub fn make(
        &mut self,
        parent: &ObjectId,
        ftype: Ftype,
        seq: u64,
        rng: &mut dyn RandomSource,
    ) -> Filehandle {
        let src = dmid_of(parent);
        let tgt = if ftype == Ftype::Dir {
            self.dmid_counter = (self.dmid_counter + 1) % DIRMGR_COUNT;
            self.dmid_counter
        } else {
            src
        };
        loop {
            let random = rng.next_u64();
            if random == 0 {
                continue;
            }
            let fh = Filehandle::from_parts(self.container_word, src, tgt, ftype, seq, random);
            if fnv1(&fh.0) != 0 {
                return fh;
            }
        }
    }
}

/// A fresh random UUID4 as 16 raw bytes (segment and indirect-block ids).
pub fn new_uuid_id(rng: &mut dyn RandomSource) -> ObjectId {
    let hi = rng.next_u64().to_be_bytes();
    let lo = rng.next_u64().to_be_bytes();
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi);
    b[8..].copy_from_slice(&lo);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    ObjectId::from_16(b)
}

/// A fresh random UUID4 in canonical lower-case dashed form.
pub fn new_uuid_string(rng: &mut dyn RandomSource) -> String {
    let id = new_uuid_id(rng);
    let mut b = [0u8; 16];
    b.copy_from_slice(id.as_bytes());
    uuid::Uuid::from_bytes(b).hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays fixed values, then counts up.
    struct Scripted(Vec<u64>);
    impl RandomSource for Scripted {
        fn next_u64(&mut self) -> u64 {
            if self.0.is_empty() {
                7
            } else {
                self.0.remove(0)
            }
        }
    }

    #[test]
    fn spec_2_3_example_filehandle() {
        let mut m = FilehandleMaker::new(0x1234_5678);
        let random = u64::from_le_bytes([0xf6, 0xb1, 0x65, 0x22, 0x4a, 0x58, 0xb7, 0x91]);
        let fh = m.make(&ROOT, Ftype::Dir, 1001, &mut Scripted(vec![random]));
        assert_eq!(
            hex::encode(fh.0),
            "11cf8a4600010100e903000000000000f6b165224a58b791"
        );
        assert_eq!(fh.container_word(), 0x468A_CF11);
    }

    #[test]
    fn spec_6_handles_follow_the_dmid_rules() {
        let mut m = FilehandleMaker::new(0x1234_5678);
        let d = m.make(
            &ROOT,
            Ftype::Dir,
            1001,
            &mut Scripted(vec![u64::from_le_bytes(
                hex::decode("f6b165224a58b791").unwrap().try_into().unwrap(),
            )]),
        );
        let hello = m.make(
            &d.id(),
            Ftype::Reg,
            1002,
            &mut Scripted(vec![u64::from_le_bytes(
                hex::decode("74a9bef499bbf4dc").unwrap().try_into().unwrap(),
            )]),
        );
        let p = m.make(
            &d.id(),
            Ftype::Fifo,
            1003,
            &mut Scripted(vec![u64::from_le_bytes(
                hex::decode("fe3feb3c9250b797").unwrap().try_into().unwrap(),
            )]),
        );
        assert_eq!(
            hex::encode(hello.0),
            "11cf8a4601010200ea0300000000000074a9bef499bbf4dc"
        );
        assert_eq!(
            hex::encode(p.0),
            "11cf8a4601010700eb03000000000000fe3feb3c9250b797"
        );
    }

    #[test]
    fn dmid_round_robin_wraps_after_47() {
        let mut m = FilehandleMaker::new(1);
        let mut rng = Scripted(vec![]);
        let dmids: Vec<u8> = (0..50)
            .map(|i| m.make(&ROOT, Ftype::Dir, 1001 + i, &mut rng).dmid_tgt())
            .collect();
        assert_eq!(&dmids[..3], &[1, 2, 3]);
        assert_eq!(dmids[46], 47);
        assert_eq!(dmids[47], 0);
        assert_eq!(dmids[48], 1);
    }

    #[test]
    fn zero_random_and_zero_fnv_are_redrawn() {
        // A random part that makes FNV-1 of this handle zero (found by a
        // search over the last 8 bytes; FNV-1 zero means CLFS rejects it).
        let bad = 0x9a00_0000_00dc_2cb1_u64;
        let fh_bad = Filehandle::from_parts(container_word(5), 0, 0, Ftype::Reg, 1001, bad);
        assert_eq!(fnv1(&fh_bad.0), 0);
        let mut m = FilehandleMaker::new(5);
        let fh = m.make(&ROOT, Ftype::Reg, 1001, &mut Scripted(vec![0, bad, 99]));
        assert_eq!(fh.random(), 99);
        assert_eq!(fh.seq(), 1001);
    }

    #[test]
    fn uuid_ids_are_version_4() {
        let mut rng = Scripted(vec![u64::MAX, u64::MAX]);
        let id = new_uuid_id(&mut rng);
        assert_eq!(id.as_bytes()[6] >> 4, 4);
        assert_eq!(id.as_bytes()[8] >> 6, 2);
    }
}
