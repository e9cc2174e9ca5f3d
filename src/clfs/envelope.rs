//! The 4-byte envelope and the LZ4 frame (spec §3.1–3.2).
//!
//! Writing: linked 256 KiB blocks fed 256 KiB at a time, no checksums, no
//! content size; the object falls back to the raw stream when any block
//! would be stored uncompressed or the frame is longer than the stream.
//! Reading: the frame is walked block by block (so a stored block or a
//! frame option CLFS never uses is reported precisely), then decompressed
//! by liblz4 with an output cap.

use std::io::Write;

use lz4::{BlockMode, BlockSize, ContentChecksum};

use super::error::{DecodeError, DecodeResult, EncodeError};

/// Envelope length.
pub const ENVELOPE_LEN: usize = 4;
/// LZ4 frame magic (`04 22 4D 18`).
pub const LZ4_MAGIC: u32 = 0x184D_2204;
/// The only frame header CLFSLoad writes.
pub const LZ4_FRAME_HEADER: [u8; 7] = [0x04, 0x22, 0x4d, 0x18, 0x40, 0x50, 0x77];
/// Block size and feed size of the frames we write.
pub const LZ4_BLOCK: usize = 262_144;
/// Largest handle stream a reader accepts (a full 8 MiB data segment is
/// 8 388 696 bytes; directory segments are smaller).
pub const MAX_STREAM_LEN: usize = 64 << 20;

/// Compression field of the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// 0: the raw handle stream.
    None = 0,
    /// 1: one LZ4 frame.
    Lz4 = 1,
}

/// Builds a blob body: envelope and, with `Lz4`, a frame if it is allowed
/// and not longer than the stream; otherwise the raw stream.
pub fn seal(stream: &[u8], compression: Compression) -> Result<Vec<u8>, EncodeError> {
    seal_parts(&[stream], compression)
}

/// Like [`seal`], for a stream already placed after a 4-byte placeholder
/// in `body` (saves a copy when compression falls back to raw).
pub fn seal_in_place(mut body: Vec<u8>, compression: Compression) -> Result<Vec<u8>, EncodeError> {
    if body.len() < ENVELOPE_LEN {
        body.resize(ENVELOPE_LEN, 0);
    }
    if compression == Compression::Lz4 {
        let stream = &body[ENVELOPE_LEN..];
        if let Some(c) = try_lz4(&[stream], stream.len())? {
            return Ok(c);
        }
    }
    body[..ENVELOPE_LEN].copy_from_slice(&[0, 0, 0, 0]);
    Ok(body)
}

/// Like [`seal`], for a stream given as consecutive parts (a data
/// segment: handle header, the caller's data, trailer). The parts are fed
/// to liblz4 in the same 256 KiB pieces as the joined stream would be, so
/// the frame is the same; only pieces that straddle two parts are
/// assembled in a scratch buffer. The parts are joined only when the body
/// is the raw stream.
pub fn seal_parts(parts: &[&[u8]], compression: Compression) -> Result<Vec<u8>, EncodeError> {
    let len = parts.iter().map(|p| p.len()).sum::<usize>();
    if compression == Compression::Lz4 {
        if let Some(body) = try_lz4(parts, len)? {
            return Ok(body);
        }
    }
    let mut body = Vec::with_capacity(ENVELOPE_LEN + len);
    body.extend_from_slice(&[0, 0, 0, 0]);
    for p in parts {
        body.extend_from_slice(p);
    }
    Ok(body)
}

/// Calls `feed` with the concatenation of `parts` cut into pieces of
/// `piece` bytes (the last may be shorter), in order, until it returns
/// false. A piece inside one part is passed as a slice of it.
fn for_each_piece(parts: &[&[u8]], piece: usize, mut feed: impl FnMut(&[u8]) -> bool) {
    let mut scratch: Vec<u8> = Vec::new();
    for part in parts {
        let mut rest: &[u8] = part;
        if !scratch.is_empty() {
            let take = (piece - scratch.len()).min(rest.len());
            scratch.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if scratch.len() < piece {
                continue;
            }
            if !feed(&scratch) {
                return;
            }
            scratch.clear();
        }
        while rest.len() >= piece {
            if !feed(&rest[..piece]) {
                return;
            }
            rest = &rest[piece..];
        }
        if !rest.is_empty() {
            if scratch.capacity() == 0 {
                scratch.reserve_exact(piece);
            }
            scratch.extend_from_slice(rest);
        }
    }
    if !scratch.is_empty() {
        feed(&scratch);
    }
}

/// A sink that gives up as soon as the frame cannot be kept: once it is
/// longer than the stream, or once a block was stored uncompressed (read
/// from the block size words as they arrive), so incompressible input is
/// abandoned after its first block instead of compressed in full.
struct CappedSink {
    buf: Vec<u8>,
    limit: usize,
    /// Offset in `buf` of the next block size word still to check.
    next_block: usize,
}

impl Write for CappedSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + b.len() > self.limit {
            return Err(std::io::Error::other("frame longer than the stream"));
        }
        self.buf.extend_from_slice(b);
        while self.next_block + 4 <= self.buf.len() {
            let w = &self.buf[self.next_block..self.next_block + 4];
            let word = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            if word == 0 {
                // the end mark: nothing more to check
                self.next_block = usize::MAX - 4;
                break;
            }
            if word & 0x8000_0000 != 0 {
                return Err(std::io::Error::other("a block was stored uncompressed"));
            }
            self.next_block += 4 + word as usize;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Smallest frame around non-empty input: header 7, one block of at least
/// 1 + 4 bytes, end mark 4. Shorter streams never compress.
const MIN_FRAME_LEN: usize = 16;

/// The body with a frame of the stream made of `parts` (`len` bytes in
/// all), or `None` when the raw stream must be kept.
fn try_lz4(parts: &[&[u8]], len: usize) -> Result<Option<Vec<u8>>, EncodeError> {
    if len < MIN_FRAME_LEN {
        return Ok(None);
    }
    let limit = ENVELOPE_LEN + len;
    let mut out = Vec::with_capacity(limit + 64);
    out.extend_from_slice(&[0, 0, 1, 0]);
    let sink = CappedSink {
        buf: out,
        limit,
        next_block: ENVELOPE_LEN + LZ4_FRAME_HEADER.len(),
    };
    let mut enc = lz4::EncoderBuilder::new()
        .block_size(BlockSize::Max256KB)
        .block_mode(BlockMode::Linked)
        .block_checksum(lz4::liblz4::BlockChecksum::NoBlockChecksum)
        .checksum(ContentChecksum::NoChecksum)
        .level(0)
        .auto_flush(false)
        .build(sink)
        .map_err(|e| EncodeError::Lz4(e.to_string()))?;
    let mut fed = true;
    for_each_piece(parts, LZ4_BLOCK, |piece| {
        fed = enc.write_all(piece).is_ok();
        fed
    });
    let (sink, res) = enc.finish();
    if !fed || res.is_err() {
        return Ok(None);
    }
    let body = sink.buf;
    match walk_frame(&body[ENVELOPE_LEN..]) {
        Ok(info) if info.stored_blocks == 0 => Ok(Some(body)),
        Ok(_) => Ok(None),
        Err(e) => Err(EncodeError::Lz4(format!(
            "liblz4 produced a frame we cannot walk: {e}"
        ))),
    }
}

/// What a walk over an LZ4 frame found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrameInfo {
    /// The FLG byte.
    pub flg: u8,
    /// The BD byte.
    pub bd: u8,
    /// Number of data blocks.
    pub blocks: usize,
    /// Blocks stored uncompressed (bit 31 of the size word).
    pub stored_blocks: usize,
    /// Offset (in the frame) of the first stored block's size word.
    pub first_stored_at: Option<usize>,
    /// Frame length including the end mark (and content checksum).
    pub len: usize,
}

impl FrameInfo {
    /// True when the frame has exactly the options CLFSLoad writes.
    pub fn is_clfs_frame(&self) -> bool {
        self.flg == 0x40 && self.bd == 0x50
    }
}

/// Walks an LZ4 frame: header, block size words, end mark. Checks the
/// structure and the header checksum, not the compressed data.
pub fn walk_frame(frame: &[u8]) -> DecodeResult<FrameInfo> {
    let mut r = super::bytes::ByteReader::new(frame, 0);
    let magic = r.u32("LZ4 frame magic")?;
    if magic != LZ4_MAGIC {
        return Err(DecodeError::invalid(
            0,
            "LZ4 frame magic",
            format!("{magic:#010x}, expected 0x184d2204"),
        ));
    }
    let flg = r.u8("LZ4 FLG byte")?;
    let bd = r.u8("LZ4 BD byte")?;
    if flg >> 6 != 1 {
        return Err(DecodeError::invalid(
            4,
            "LZ4 FLG byte",
            format!("version {} (expected 1)", flg >> 6),
        ));
    }
    if flg & 0x02 != 0 || bd & 0x8f != 0 {
        return Err(DecodeError::invalid(4, "LZ4 FLG/BD", "reserved bits set"));
    }
    let block_max = match (bd >> 4) & 7 {
        4..=7 => block_bytes(bd),
        c => {
            return Err(DecodeError::invalid(
                5,
                "LZ4 BD byte",
                format!("block size code {c}"),
            ))
        }
    };
    let block_checksum = flg & 0x10 != 0;
    let content_size = flg & 0x08 != 0;
    let content_checksum = flg & 0x04 != 0;
    let dict_id = flg & 0x01 != 0;
    if content_size {
        r.take(8, "LZ4 content size")?;
    }
    if dict_id {
        r.take(4, "LZ4 dictionary id")?;
    }
    let hc_at = r.offset();
    let hc = r.u8("LZ4 header checksum")?;
    let expect = ((xxhash32(&frame[4..hc_at], 0) >> 8) & 0xff) as u8;
    if hc != expect {
        return Err(DecodeError::invalid(
            hc_at,
            "LZ4 header checksum",
            format!("{hc:#04x}, expected {expect:#04x}"),
        ));
    }
    let mut info = FrameInfo {
        flg,
        bd,
        ..FrameInfo::default()
    };
    loop {
        let at = r.offset();
        let word = r.u32("LZ4 block size")?;
        if word == 0 {
            break;
        }
        let size = (word & 0x7fff_ffff) as usize;
        if size > block_max {
            return Err(DecodeError::invalid(
                at,
                "LZ4 block size",
                format!("{size} bytes, more than the frame's {block_max}-byte blocks"),
            ));
        }
        if word & 0x8000_0000 != 0 {
            info.stored_blocks += 1;
            info.first_stored_at.get_or_insert(at);
        }
        info.blocks += 1;
        r.take(size, "LZ4 block data")?;
        if block_checksum {
            r.take(4, "LZ4 block checksum")?;
        }
    }
    if content_checksum {
        r.take(4, "LZ4 content checksum")?;
    }
    info.len = r.offset();
    r.finish("LZ4 frame")?;
    Ok(info)
}

/// An opened blob body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The envelope's compression field.
    pub compression: Compression,
    /// The handle stream.
    pub stream: Vec<u8>,
    /// The frame's structure, when compressed.
    pub frame: Option<FrameInfo>,
}

/// How strict [`open`] is about frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramePolicy {
    /// Only what CLFS reads: FLG 0x40, BD 0x50, no stored blocks.
    Clfs,
    /// Any valid LZ4 frame (for containers written by other tools).
    Any,
}

/// Opens a blob body: checks the envelope, walks and decompresses the
/// frame. Offsets in errors are relative to the blob body.
pub fn open(body: &[u8], policy: FramePolicy) -> DecodeResult<Opened> {
    let mut r = super::bytes::ByteReader::new(body, 0);
    let enc = r.u16("envelope encryption type")?;
    if enc != 0 {
        return Err(DecodeError::invalid(
            0,
            "envelope encryption type",
            format!("{enc} (only 0, unencrypted, is supported)"),
        ));
    }
    let comp = r.u16("envelope compression type")?;
    let payload = &body[ENVELOPE_LEN..];
    match comp {
        0 => Ok(Opened {
            compression: Compression::None,
            stream: payload.to_vec(),
            frame: None,
        }),
        1 => {
            let info = walk_frame(payload).map_err(|e| e.shifted(ENVELOPE_LEN))?;
            if policy == FramePolicy::Clfs {
                if let Some(at) = info.first_stored_at {
                    return Err(DecodeError::invalid(
                        ENVELOPE_LEN + at,
                        "LZ4 block",
                        format!(
                            "{} of {} blocks stored uncompressed; CLFS cannot read stored blocks",
                            info.stored_blocks, info.blocks
                        ),
                    ));
                }
                if !info.is_clfs_frame() {
                    return Err(DecodeError::invalid(
                        ENVELOPE_LEN + 4,
                        "LZ4 frame options",
                        format!(
                            "FLG {:#04x} BD {:#04x}, expected 0x40 0x50 (linked 256 KiB blocks, no checksums, no size)",
                            info.flg, info.bd
                        ),
                    ));
                }
            }
            let stream = decompress(payload, &info).map_err(|e| e.shifted(ENVELOPE_LEN))?;
            Ok(Opened {
                compression: Compression::Lz4,
                stream,
                frame: Some(info),
            })
        }
        c => Err(DecodeError::invalid(
            2,
            "envelope compression type",
            format!("{c}, expected 0 (none) or 1 (LZ4)"),
        )),
    }
}

/// Largest block size of a BD byte (already validated by the walk).
fn block_bytes(bd: u8) -> usize {
    match (bd >> 4) & 7 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        _ => 4 << 20,
    }
}

/// Decompresses a frame [`walk_frame`] accepted, block by block, straight
/// into one buffer (linked blocks refer back into the output already
/// written, which liblz4 finds in place). Checksums the frame carries are
/// verified; CLFS frames carry none.
fn decompress(frame: &[u8], info: &FrameInfo) -> DecodeResult<Vec<u8>> {
    let block_max = block_bytes(info.bd);
    let flg = info.flg;
    if flg & 0x01 != 0 {
        return Err(DecodeError::invalid(
            4,
            "LZ4 FLG byte",
            "frame needs an external dictionary",
        ));
    }
    // Every block decodes to at most `block_max` bytes, so this capacity is
    // never exceeded and the buffer never moves while blocks refer into it.
    let capacity = info.blocks.saturating_mul(block_max);
    if capacity > MAX_STREAM_LEN + block_max {
        return Err(DecodeError::invalid(
            0,
            "LZ4 frame",
            format!(
                "{} blocks of up to {block_max} bytes: more than {MAX_STREAM_LEN} bytes",
                info.blocks
            ),
        ));
    }
    let mut out: Vec<u8> = Vec::with_capacity(capacity);
    let mut stream = StreamDecode::new()?;
    // Header: magic, FLG, BD, optional content size, header checksum.
    let mut at = 7 + if flg & 0x08 != 0 { 8 } else { 0 };
    let block_checksum = flg & 0x10 != 0;
    loop {
        let word = u32::from_le_bytes(word_at(frame, at)?);
        let block_at = at;
        at += 4;
        if word == 0 {
            break;
        }
        let size = (word & 0x7fff_ffff) as usize;
        let data = frame
            .get(at..at + size)
            .ok_or_else(|| DecodeError::invalid(block_at, "LZ4 block", "truncated"))?;
        at += size;
        if block_checksum {
            let sum = u32::from_le_bytes(word_at(frame, at)?);
            if sum != xxhash32(data, 0) {
                return Err(DecodeError::invalid(at, "LZ4 block checksum", "mismatch"));
            }
            at += 4;
        }
        if out.len() + block_max > capacity {
            return Err(DecodeError::invalid(
                block_at,
                "LZ4 block",
                "more blocks than walked",
            ));
        }
        if word & 0x8000_0000 != 0 {
            out.extend_from_slice(data);
            stream.follow(&out)?;
        } else {
            stream.decode_into(data, &mut out, block_max, block_at)?;
        }
    }
    if flg & 0x04 != 0 {
        let sum = u32::from_le_bytes(word_at(frame, at)?);
        if sum != xxhash32(&out, 0) {
            return Err(DecodeError::invalid(at, "LZ4 content checksum", "mismatch"));
        }
    }
    if out.len() > MAX_STREAM_LEN {
        return Err(DecodeError::invalid(
            0,
            "LZ4 frame",
            format!("decompresses to more than {MAX_STREAM_LEN} bytes"),
        ));
    }
    Ok(out)
}

fn word_at(frame: &[u8], at: usize) -> DecodeResult<[u8; 4]> {
    frame
        .get(at..at + 4)
        .and_then(|w| w.try_into().ok())
        .ok_or_else(|| DecodeError::invalid(at, "LZ4 frame", "truncated"))
}

/// liblz4's streaming block decoder state, freed on drop.
struct StreamDecode(std::ptr::NonNull<lz4::liblz4::LZ4StreamDecode>);

impl StreamDecode {
    fn new() -> DecodeResult<Self> {
        // SAFETY: plain allocation by liblz4; null means out of memory.
        let state = unsafe { lz4::liblz4::LZ4_createStreamDecode() };
        std::ptr::NonNull::new(state)
            .map(StreamDecode)
            .ok_or_else(|| DecodeError::invalid(0, "LZ4 frame", "no memory for a decoder"))
    }

    /// Decodes one block to the end of `out`, which has room for
    /// `block_max` more bytes and has not moved since the previous block.
    fn decode_into(
        &mut self,
        block: &[u8],
        out: &mut Vec<u8>,
        block_max: usize,
        at: usize,
    ) -> DecodeResult<()> {
        let len = out.len();
        debug_assert!(out.capacity() - len >= block_max);
        let (Ok(src_len), Ok(dst_max)) = (i32::try_from(block.len()), i32::try_from(block_max))
        else {
            return Err(DecodeError::invalid(at, "LZ4 block", "too large"));
        };
        // SAFETY: `block` is readable for `src_len` bytes; the spare
        // capacity after `len` is writable for `dst_max` bytes (checked by
        // the caller); liblz4's safe decoder writes no more than `dst_max`
        // and reads no more than `src_len`, and reads back references only
        // within output it wrote itself, which stays in place because the
        // buffer never grows past its capacity.
        let n = unsafe {
            lz4::liblz4::LZ4_decompress_safe_continue(
                self.0.as_ptr(),
                block.as_ptr(),
                out.as_mut_ptr().add(len),
                src_len,
                dst_max,
            )
        };
        if n < 0 {
            return Err(DecodeError::invalid(at, "LZ4 block", "does not decompress"));
        }
        // SAFETY: liblz4 initialised exactly `n` (<= dst_max) bytes there.
        unsafe { out.set_len(len + n as usize) };
        Ok(())
    }

    /// After a stored block was copied to the end of `out`: later blocks
    /// may refer back into it, so the last 64 KiB of `out` become the
    /// decoder's history.
    fn follow(&mut self, out: &[u8]) -> DecodeResult<()> {
        let keep = out.len().min(64 << 10);
        let tail = &out[out.len() - keep..];
        // SAFETY: `tail` stays valid and in place while later blocks decode
        // (the buffer never reallocates); keep <= 64 KiB fits a c_int.
        let ok = unsafe {
            lz4::liblz4::LZ4_setStreamDecode(self.0.as_ptr(), tail.as_ptr(), keep as i32)
        };
        if ok == 1 {
            Ok(())
        } else {
            Err(DecodeError::invalid(
                0,
                "LZ4 frame",
                "decoder refused its history",
            ))
        }
    }
}

impl Drop for StreamDecode {
    fn drop(&mut self) {
        // SAFETY: created by LZ4_createStreamDecode, freed once.
        unsafe {
            lz4::liblz4::LZ4_freeStreamDecode(self.0.as_ptr());
        }
    }
}

/// xxHash32 (used only for the 1-byte frame header checksum).
fn xxhash32(data: &[u8], seed: u32) -> u32 {
    const P1: u32 = 0x9E37_79B1;
    const P2: u32 = 0x85EB_CA77;
    const P3: u32 = 0xC2B2_AE3D;
    const P4: u32 = 0x27D4_EB2F;
    const P5: u32 = 0x1656_67B1;
    let round = |acc: u32, lane: u32| {
        acc.wrapping_add(lane.wrapping_mul(P2))
            .rotate_left(13)
            .wrapping_mul(P1)
    };
    let le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let mut rest = data;
    let mut h = if data.len() >= 16 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while rest.len() >= 16 {
            for (i, lane) in v.iter_mut().enumerate() {
                *lane = round(*lane, le(&rest[i * 4..]));
            }
            rest = &rest[16..];
        }
        v[0].rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18))
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(data.len() as u32);
    while rest.len() >= 4 {
        h = h
            .wrapping_add(le(rest).wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
        rest = &rest[4..];
    }
    for &b in rest {
        h = h
            .wrapping_add(u32::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^= h >> 16;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_of_parts_are_the_pieces_of_the_joined_stream() {
        let joined: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for cuts in [
            vec![],
            vec![0],
            vec![1, 2, 3],
            vec![24, 990],
            vec![64, 128, 192],
            vec![5, 600, 601, 999],
            vec![1000],
        ] {
            let mut parts = Vec::new();
            let mut at = 0;
            for &c in &cuts {
                parts.push(&joined[at..c]);
                at = c;
            }
            parts.push(&joined[at..]);
            for piece in [1, 7, 64, 333, 1000, 4096] {
                let mut got = Vec::new();
                for_each_piece(&parts, piece, |p| {
                    got.push(p.to_vec());
                    true
                });
                let want: Vec<Vec<u8>> = joined.chunks(piece).map(<[u8]>::to_vec).collect();
                assert_eq!(got, want, "cuts {cuts:?}, piece {piece}");
            }
        }
        // Stops when told to.
        let mut n = 0;
        for_each_piece(&[&joined], 100, |_| {
            n += 1;
            n < 3
        });
        assert_eq!(n, 3);
    }

    #[test]
    fn header_checksum_of_the_clfs_frame() {
        assert_eq!(xxhash32(&[0x40, 0x50], 0), 0x1933_77E3);
        assert_eq!(xxhash32(b"", 0), 0x02CC_5D05);
    }

    #[test]
    fn spec_3_2_zeros_example() {
        let body = seal(&vec![0u8; 300_000], Compression::Lz4).unwrap();
        let want = [
            0x00, 0x00, 0x01, 0x00, 0x04, 0x22, 0x4d, 0x18, 0x40, 0x50, 0x77, 0x0e, 0x04, 0x00,
            0x00, 0x1f, 0x00, 0x01, 0x00, 0xff, 0xff,
        ];
        assert_eq!(&body[..want.len()], &want);
        assert_eq!(body.len() - ENVELOPE_LEN, 1215);
        let info = walk_frame(&body[4..]).unwrap();
        assert_eq!(info.blocks, 2);
        assert_eq!(
            open(&body, FramePolicy::Clfs).unwrap().stream,
            vec![0u8; 300_000]
        );
    }

    #[test]
    fn incompressible_streams_fall_back_to_raw() {
        let mut x = 0x1234_5678_u64;
        let data: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let body = seal(&data, Compression::Lz4).unwrap();
        assert_eq!(&body[..4], &[0, 0, 0, 0]);
        assert_eq!(&body[4..], &data[..]);
    }

    #[test]
    fn a_frame_of_exactly_n_bytes_is_kept_and_longer_is_not() {
        // Tiny inputs produce frames longer than themselves.
        let body = seal(b"abc", Compression::Lz4).unwrap();
        assert_eq!(body, b"\0\0\0\0abc");
        let empty = seal(b"", Compression::Lz4).unwrap();
        assert_eq!(empty, b"\0\0\0\0");
    }

    #[test]
    fn reader_rejects_bad_envelopes_and_stored_blocks() {
        assert!(open(&[1, 0, 0, 0], FramePolicy::Clfs).is_err());
        assert!(open(&[0, 0, 2, 0], FramePolicy::Clfs).is_err());
        assert!(open(&[0, 0], FramePolicy::Clfs).is_err());
        // A hand-made frame with one stored block of 3 bytes.
        let mut body = vec![0, 0, 1, 0];
        body.extend_from_slice(&LZ4_FRAME_HEADER);
        body.extend_from_slice(&(0x8000_0003u32).to_le_bytes());
        body.extend_from_slice(b"abc");
        body.extend_from_slice(&[0, 0, 0, 0]);
        let e = open(&body, FramePolicy::Clfs).unwrap_err();
        assert_eq!(e.offset, 11);
        assert!(e.to_string().contains("stored uncompressed"), "{e}");
        let lenient = open(&body, FramePolicy::Any).unwrap();
        assert_eq!(lenient.stream, b"abc");
    }

    /// Text that compresses, with long back references across 256 KiB
    /// block boundaries.
    fn text(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| b"the quick brown fox jumps over the lazy dog "[(i * 7 / 5) % 44])
            .collect()
    }

    fn frame_with(data: &[u8], mode: BlockMode, block_sum: bool, content_sum: bool) -> Vec<u8> {
        let mut enc = lz4::EncoderBuilder::new()
            .block_size(BlockSize::Max256KB)
            .block_mode(mode)
            .block_checksum(if block_sum {
                lz4::liblz4::BlockChecksum::BlockChecksumEnabled
            } else {
                lz4::liblz4::BlockChecksum::NoBlockChecksum
            })
            .checksum(if content_sum {
                ContentChecksum::ChecksumEnabled
            } else {
                ContentChecksum::NoChecksum
            })
            .build(vec![0, 0, 1, 0])
            .unwrap();
        for piece in data.chunks(100_000) {
            enc.write_all(piece).unwrap();
        }
        let (body, res) = enc.finish();
        res.unwrap();
        body
    }

    #[test]
    fn other_tools_frames_open_leniently_with_their_checksums_checked() {
        let data = text(700_000);
        for linked in [true, false] {
            let mode = || {
                if linked {
                    BlockMode::Linked
                } else {
                    BlockMode::Independent
                }
            };
            for (block_sum, content_sum) in
                [(false, false), (true, false), (false, true), (true, true)]
            {
                let body = frame_with(&data, mode(), block_sum, content_sum);
                let got = open(&body, FramePolicy::Any).unwrap();
                assert_eq!(
                    got.stream, data,
                    "linked {linked} {block_sum} {content_sum}"
                );
                if block_sum || content_sum {
                    assert!(open(&body, FramePolicy::Clfs).is_err());
                    // The checksum that ends the frame (or the last block's).
                    let mut bad = body.clone();
                    let at = bad.len() - if content_sum { 1 } else { 5 };
                    bad[at] ^= 1;
                    let e = open(&bad, FramePolicy::Any).unwrap_err();
                    assert!(e.to_string().contains("checksum"), "{e}");
                }
            }
        }
    }

    #[test]
    fn compressed_blocks_may_refer_back_into_a_stored_block() {
        // Block 1 is stored, block 2 is compressed and copies from block 1:
        // a frame only a lenient reader accepts, built by hand.
        let first = text(1000);
        let mut second = Vec::new();
        // One sequence: no literals, match of 1000 bytes at offset 1000.
        // token 0x0F: 0 literals, match length 15 + extra (4 implied).
        second.push(0x0F);
        second.extend_from_slice(&1000u16.to_le_bytes());
        let mut extra = 1000 - 4 - 15;
        while extra >= 255 {
            second.push(255);
            extra -= 255;
        }
        second.push(extra as u8);
        // The last sequence: 5 literals (the format ends on literals).
        second.push(0x50);
        second.extend_from_slice(b"tail!");
        let mut body = vec![0, 0, 1, 0];
        body.extend_from_slice(&LZ4_FRAME_HEADER);
        body.extend_from_slice(&(0x8000_0000u32 | first.len() as u32).to_le_bytes());
        body.extend_from_slice(&first);
        body.extend_from_slice(&(second.len() as u32).to_le_bytes());
        body.extend_from_slice(&second);
        body.extend_from_slice(&[0, 0, 0, 0]);
        let got = open(&body, FramePolicy::Any).unwrap().stream;
        let mut want = first.clone();
        want.extend_from_slice(&first);
        want.extend_from_slice(b"tail!");
        assert_eq!(got, want);
    }

    #[test]
    fn a_block_that_does_not_decompress_is_an_error_at_its_offset() {
        // A first block whose match refers 1000 bytes before the start.
        let block = [0x0F, 0xE8, 0x03, 0x00, 0x50, b't', b'a', b'i', b'l', b'!'];
        let mut body = vec![0, 0, 1, 0];
        body.extend_from_slice(&LZ4_FRAME_HEADER);
        body.extend_from_slice(&(block.len() as u32).to_le_bytes());
        body.extend_from_slice(&block);
        body.extend_from_slice(&[0, 0, 0, 0]);
        match open(&body, FramePolicy::Clfs) {
            Ok(opened) => panic!("decoded {} bytes from a bad block", opened.stream.len()),
            Err(e) => {
                assert_eq!(e.offset, ENVELOPE_LEN + LZ4_FRAME_HEADER.len(), "{e}");
                assert!(e.to_string().contains("does not decompress"), "{e}");
            }
        }
    }
}
