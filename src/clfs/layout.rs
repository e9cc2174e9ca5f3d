//! Data layout (spec §5.1, §5.3): inline first segment, 8 MiB data
//! segments, 16 360-byte inline and 256 KiB directory-entry segments,
//! 1 024 direct blocks and four indirect trees of 4 096-pointer blocks.

use super::handle::{Bmap, Dirent};
use super::id::ObjectId;
use super::id::ZERO_ROOT;

/// Bytes of file data (or directory entries) kept inside the inode.
pub const FIRST_SEGMENT_BYTES: u32 = 16_384;
/// Size of a data segment.
pub const DATA_SEGMENT_BYTES: u32 = 8_388_608;
/// Size of a directory-entry segment after the first.
pub const DIR_SEGMENT_BYTES: u32 = 262_144;
/// Largest DIRENTS payload in the inode at first write (16 384 − 24).
pub const DIR_INLINE_LIMIT: usize = 16_360;
/// Block indices 0 … 1023 are direct.
pub const DIRECT_BLOCKS: usize = 1_024;
/// Pointers per indirect block.
pub const INDIRECT_FANOUT: usize = 4_096;
/// Number of indirect trees.
pub const INDIRECT_TREES: usize = 4;

/// Largest file that needs no indirect block.
pub const MAX_DIRECT_FILE: u64 =
    FIRST_SEGMENT_BYTES as u64 + (DIRECT_BLOCKS as u64 - 1) * DATA_SEGMENT_BYTES as u64;

/// Number of data segments a file of `len` bytes has.
pub fn data_segment_count(len: u64) -> u64 {
    len.saturating_sub(u64::from(FIRST_SEGMENT_BYTES))
        .div_ceil(u64::from(DATA_SEGMENT_BYTES))
}

/// Byte offset of data segment `k` (k ≥ 1), the DATABACK offset.
pub fn data_segment_offset(k: u64) -> u64 {
    u64::from(FIRST_SEGMENT_BYTES) + (k - 1) * u64::from(DATA_SEGMENT_BYTES)
}

/// Length of data segment `k` of a file of `len` bytes.
pub fn data_segment_len(len: u64, k: u64) -> u64 {
    let start = data_segment_offset(k);
    len.saturating_sub(start).min(u64::from(DATA_SEGMENT_BYTES))
}

/// Logical DATABACK offset of directory segment `k` (k ≥ 1).
pub fn dir_segment_offset(k: u64) -> u64 {
    u64::from(FIRST_SEGMENT_BYTES) + (k - 1) * u64::from(DIR_SEGMENT_BYTES)
}

/// DATABACK offset of an indirect block: `(tree << 16) + level`, 32 bits.
pub fn indirect_offset(tree: usize, level: usize) -> u64 {
    (((tree as u64) << 16) + level as u64) & 0xffff_ffff
}

/// Which block an offset of a file falls in: 0 for the inode, k ≥ 1 for
/// data segment k.
pub fn block_of_offset(offset: u64) -> u64 {
    if offset < u64::from(FIRST_SEGMENT_BYTES) {
        0
    } else {
        1 + (offset - u64::from(FIRST_SEGMENT_BYTES)) / u64::from(DATA_SEGMENT_BYTES)
    }
}

/// A BMAP with the standard constants.
pub fn bmap(is_dir: bool, direct: Vec<ObjectId>, indirect_roots: [ObjectId; 4]) -> Bmap {
    Bmap {
        first_segment_bytes: FIRST_SEGMENT_BYTES,
        other_segment_bytes: if is_dir {
            DIR_SEGMENT_BYTES
        } else {
            DATA_SEGMENT_BYTES
        },
        direct,
        indirect_roots: indirect_roots.to_vec(),
    }
}

/// Packs directory entries into segments greedily (spec §5.1): segment 0
/// holds at most 16 360 bytes, later ones 262 144; an entry never spans
/// two segments.
#[derive(Debug)]
pub struct DirentPacker {
    current: Vec<Dirent>,
    pending: usize,
    limit: usize,
    segments_closed: u64,
    entries_file_size: u64,
}

impl Default for DirentPacker {
    fn default() -> Self {
        Self::new()
    }
}

impl DirentPacker {
    /// A packer whose first segment is the inline one.
    pub fn new() -> Self {
        Self::with_limits(DIR_INLINE_LIMIT)
    }

    /// A packer with a custom first-segment limit (reconcile rewrites
    /// allow 16 384).
    pub fn with_limits(first: usize) -> Self {
        DirentPacker {
            current: Vec::new(),
            pending: 0,
            limit: first,
            segments_closed: 0,
            entries_file_size: 0,
        }
    }

    /// Adds an entry; returns the segment it closed, if any (segment 0
    /// first, then 1, 2, …).
    pub fn push(&mut self, d: Dirent) -> Option<Vec<Dirent>> {
        let e = d.encoded_len();
        let closed = if self.pending > 0 && self.pending + e > self.limit {
            Some(self.close())
        } else {
            None
        };
        self.pending += e;
        self.current.push(d);
        closed
    }

    fn close(&mut self) -> Vec<Dirent> {
        self.entries_file_size += 4 + self.pending as u64;
        self.segments_closed += 1;
        self.pending = 0;
        self.limit = DIR_SEGMENT_BYTES as usize;
        std::mem::take(&mut self.current)
    }

    /// Number of segments closed so far.
    pub fn segments_closed(&self) -> u64 {
        self.segments_closed
    }

    /// Closes the last segment; returns it and the entries-file size
    /// (Σ (4 + payload) over all segments: the directory's VATTR length at
    /// first write).
    pub fn finish(mut self) -> (Vec<Dirent>, u64) {
        let last = self.close();
        (last, self.entries_file_size)
    }
}

/// Splits a whole entry list (`.` and `..` first) into segments and
/// returns them with the entries-file size.
pub fn pack_dirents(entries: Vec<Dirent>) -> (Vec<Vec<Dirent>>, u64) {
    let mut p = DirentPacker::new();
    let mut segs = Vec::new();
    for d in entries {
        if let Some(s) = p.push(d) {
            segs.push(s);
        }
    }
    let (last, size) = p.finish();
    segs.push(last);
    (segs, size)
}

/// An indirect block the block-map builder completed, to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndirectBlock {
    /// Its new UUID.
    pub id: ObjectId,
    /// Tree number (0 … 3).
    pub tree: usize,
    /// Level in the tree (0 = root).
    pub level: usize,
    /// Children.
    pub pointers: Vec<ObjectId>,
}

impl IndirectBlock {
    /// The DATABACK offset of this block.
    pub fn databack_offset(&self) -> u64 {
        indirect_offset(self.tree, self.level)
    }
}

/// The file is larger than four indirect trees can address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("file or directory too large: more blocks than four indirect trees can address")]
pub struct TooManyBlocks;

/// Builds a block map as segments are produced, emitting indirect blocks
/// in the order the reference writes them (spec §5.3.3), including the
/// empty-node quirk at end of file.
#[derive(Debug)]
pub struct BlockMapBuilder {
    direct_limit: usize,
    fanout: usize,
    direct: Vec<ObjectId>,
    tree: usize,
    open: Vec<Vec<ObjectId>>,
    in_tree: u64,
    roots: [ObjectId; 4],
}

impl BlockMapBuilder {
    /// A builder for an inode whose own id is `own` (block 0).
    pub fn new(own: ObjectId) -> Self {
        Self::with_limits(own, DIRECT_BLOCKS, INDIRECT_FANOUT)
    }

    /// A builder with scaled-down limits (for tests of the algorithm).
    pub fn with_limits(own: ObjectId, direct_limit: usize, fanout: usize) -> Self {
        BlockMapBuilder {
            direct_limit: direct_limit.max(1),
            fanout: fanout.max(1),
            direct: vec![own],
            tree: 0,
            open: vec![Vec::new()],
            in_tree: 0,
            roots: [ZERO_ROOT; 4],
        }
    }

    /// Adds the next segment; returns indirect blocks completed by it, in
    /// write order (leaf first, then upward).
    pub fn push(
        &mut self,
        segment: ObjectId,
        new_id: &mut dyn FnMut() -> ObjectId,
    ) -> Result<Vec<IndirectBlock>, TooManyBlocks> {
        if self.direct.len() < self.direct_limit {
            self.direct.push(segment);
            return Ok(Vec::new());
        }
        if self.tree >= INDIRECT_TREES {
            return Err(TooManyBlocks);
        }
        let mut out = Vec::new();
        let t = self.tree;
        self.open[t].push(segment);
        self.in_tree += 1;
        let mut level = t;
        while self.open[level].len() >= self.fanout {
            let block = IndirectBlock {
                id: new_id(),
                tree: t,
                level,
                pointers: std::mem::take(&mut self.open[level]),
            };
            let id = block.id;
            out.push(block);
            if level == 0 {
                self.roots[t] = id;
                self.tree += 1;
                self.open = vec![Vec::new(); self.tree + 1];
                self.in_tree = 0;
                break;
            }
            self.open[level - 1].push(id);
            level -= 1;
        }
        Ok(out)
    }

    /// Number of blocks so far (direct ones included).
    pub fn direct(&self) -> &[ObjectId] {
        &self.direct
    }

    /// Flushes the open nodes of the current tree (leaf to root) and
    /// returns them with the direct list and the four roots.
    pub fn finish(
        mut self,
        new_id: &mut dyn FnMut() -> ObjectId,
    ) -> (Vec<IndirectBlock>, Vec<ObjectId>, [ObjectId; 4]) {
        let mut out = Vec::new();
        if self.in_tree > 0 && self.tree < INDIRECT_TREES {
            let t = self.tree;
            for level in (0..=t).rev() {
                let block = IndirectBlock {
                    id: new_id(),
                    tree: t,
                    level,
                    pointers: std::mem::take(&mut self.open[level]),
                };
                let id = block.id;
                out.push(block);
                if level > 0 {
                    self.open[level - 1].push(id);
                } else {
                    self.roots[t] = id;
                }
            }
        }
        (out, self.direct, self.roots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(n: u8) -> ObjectId {
        ObjectId::from_16([n; 16])
    }

    /// Runs the builder over `n` segments with ids S1…Sn (byte 1…n) and
    /// indirect ids counting down from 255.
    fn build(n: u8) -> (Vec<IndirectBlock>, Vec<ObjectId>, [ObjectId; 4]) {
        let own = ObjectId::from_24([0xaa; 24]);
        let mut b = BlockMapBuilder::with_limits(own, 2, 3);
        let mut next = 255u8;
        let mut new_id = move || {
            next -= 1;
            sid(next + 1)
        };
        let mut written = Vec::new();
        for s in 1..=n {
            written.extend(b.push(sid(s), &mut new_id).unwrap());
        }
        let (tail, direct, roots) = b.finish(&mut new_id);
        written.extend(tail);
        (written, direct, roots)
    }

    fn ptrs(b: &IndirectBlock) -> Vec<u8> {
        b.pointers.iter().map(|p| p.as_bytes()[0]).collect()
    }

    #[test]
    fn spec_5_3_4_blocks_0_to_4() {
        let (w, direct, roots) = build(4);
        assert_eq!(direct.len(), 2);
        assert_eq!(w.len(), 1);
        assert_eq!(ptrs(&w[0]), vec![2, 3, 4]);
        assert_eq!((w[0].tree, w[0].level), (0, 0));
        assert_eq!(roots[0], w[0].id);
        assert!(roots[1..].iter().all(|r| *r == ZERO_ROOT));
    }

    #[test]
    fn spec_5_3_4_blocks_0_to_5() {
        let (w, _, roots) = build(5);
        assert_eq!(w.len(), 3);
        assert_eq!(ptrs(&w[1]), vec![5]);
        assert_eq!((w[1].tree, w[1].level), (1, 1));
        assert_eq!(w[2].pointers, vec![w[1].id]);
        assert_eq!(roots[1], w[2].id);
    }

    #[test]
    fn spec_5_3_4_blocks_0_to_7_has_the_empty_leaf() {
        let (w, _, roots) = build(7);
        // I, A (after S7), then at EOF the empty leaf E and the root B=[A,E].
        assert_eq!(w.len(), 4);
        assert_eq!(ptrs(&w[1]), vec![5, 6, 7]);
        assert!(w[2].pointers.is_empty());
        assert_eq!(w[2].level, 1);
        assert_eq!(w[3].pointers, vec![w[1].id, w[2].id]);
        assert_eq!(roots[1], w[3].id);
    }

    #[test]
    fn spec_5_3_4_blocks_0_to_14() {
        let (w, _, roots) = build(14);
        let t1: Vec<&IndirectBlock> = w.iter().filter(|b| b.tree == 1).collect();
        assert_eq!(t1.len(), 4);
        assert_eq!(ptrs(t1[0]), vec![5, 6, 7]);
        assert_eq!(ptrs(t1[1]), vec![8, 9, 10]);
        assert_eq!(ptrs(t1[2]), vec![11, 12, 13]);
        // the third leaf and the root are written together, leaf first
        assert_eq!(t1[3].level, 0);
        assert_eq!(t1[3].pointers, vec![t1[0].id, t1[1].id, t1[2].id]);
        assert_eq!(roots[1], t1[3].id);
        let t2: Vec<&IndirectBlock> = w.iter().filter(|b| b.tree == 2).collect();
        assert_eq!(t2.len(), 3);
        assert_eq!(ptrs(t2[0]), vec![14]);
        assert_eq!((t2[0].level, t2[1].level, t2[2].level), (2, 1, 0));
        assert_eq!(t2[1].pointers, vec![t2[0].id]);
        assert_eq!(t2[2].pointers, vec![t2[1].id]);
        assert_eq!(roots[2], t2[2].id);
        assert_eq!(roots[3], ZERO_ROOT);
    }

    #[test]
    fn tree_0_filled_exactly_leaves_later_roots_zero() {
        let (w, _, roots) = build(4);
        assert_eq!(w.len(), 1);
        assert_eq!(roots[1], ZERO_ROOT);
    }

    #[test]
    fn four_full_trees_are_the_limit() {
        let own = ObjectId::from_24([1; 24]);
        let mut b = BlockMapBuilder::with_limits(own, 1, 2);
        let mut new_id = || sid(0);
        // trees hold 2 + 4 + 8 + 16 = 30 segments
        for _ in 0..30 {
            b.push(sid(1), &mut new_id).unwrap();
        }
        assert_eq!(b.push(sid(1), &mut new_id), Err(TooManyBlocks));
    }

    #[test]
    fn real_quirk_case_tree_1_with_one_full_leaf() {
        // 1024 + 4096 + 4096 blocks: tree 1 root = [leaf1, emptyLeaf].
        let own = ObjectId::from_24([1; 24]);
        let mut b = BlockMapBuilder::new(own);
        let mut n = 0u64;
        let mut new_id = || {
            n += 1;
            let mut x = [0u8; 16];
            x[..8].copy_from_slice(&n.to_le_bytes());
            ObjectId::from_16(x)
        };
        let mut w = Vec::new();
        for _ in 1..(1024 + 4096 + 4096) {
            w.extend(b.push(sid(9), &mut new_id).unwrap());
        }
        let (tail, direct, roots) = b.finish(&mut new_id);
        assert_eq!(direct.len(), 1024);
        assert_eq!(w.len(), 2); // tree 0 root, tree 1 first leaf
        assert_eq!(tail.len(), 2);
        assert!(tail[0].pointers.is_empty());
        assert_eq!(tail[1].pointers, vec![w[1].id, tail[0].id]);
        assert_eq!(roots[1], tail[1].id);
    }

    #[test]
    fn file_segment_arithmetic() {
        assert_eq!(data_segment_count(0), 0);
        assert_eq!(data_segment_count(16_384), 0);
        assert_eq!(data_segment_count(16_385), 1);
        let nine = 9 * 1024 * 1024 + 5;
        assert_eq!(data_segment_count(nine), 2);
        assert_eq!(data_segment_len(nine, 1), 8_388_608);
        assert_eq!(data_segment_len(nine, 2), 1_032_197);
        assert_eq!(data_segment_offset(2), 16_384 + 8_388_608);
        assert_eq!(MAX_DIRECT_FILE, 8_581_562_368);
        assert_eq!(block_of_offset(16_383), 0);
        assert_eq!(block_of_offset(16_384), 1);
        assert_eq!(dir_segment_offset(2), 16_384 + 262_144);
        assert_eq!(indirect_offset(1, 1), 0x0001_0001);
    }

    #[test]
    fn dirent_packing_follows_the_greedy_rule() {
        let mk = |n: usize| Dirent {
            name: vec![b'x'; n],
            id: ObjectId::from_24([2; 24]),
        };
        // entries of 6 + 200 + 24 = 230 bytes: 71 fit in 16 360 (16 330).
        let (segs, size) = pack_dirents((0..200).map(|_| mk(200)).collect());
        assert_eq!(segs[0].len(), 71);
        assert_eq!(segs[1].len(), 129);
        assert_eq!(size, (4 + 71 * 230) + (4 + 129 * 230));
        // spec 5.1 example: 86 bytes of entries → entries file 90.
        let (segs, size) = pack_dirents(vec![mk(1), mk(2), mk(1)]);
        assert_eq!(segs.len(), 1);
        assert_eq!(size, 4 + 31 + 32 + 31);
        // A 20 000-byte entry closes the inline segment; a later small one
        // still fits beside it in the 256 KiB segment.
        let (segs, _) = pack_dirents(vec![mk(1), mk(20_000), mk(1)]);
        assert_eq!(segs.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 2]);
        // An entry larger than the limit goes alone into a fresh segment.
        let (segs, _) = pack_dirents(vec![mk(1), mk(300_000), mk(1)]);
        assert_eq!(segs.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1, 1]);
    }
}
