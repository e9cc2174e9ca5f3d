//! The handle stream (spec §3.3) and every handle payload (§3.5).
//!
//! A handle is a 20-byte header (magic, blobCount, realCount, type,
//! reserved), `realCount` payload bytes and zero padding to a multiple of 8.

use super::bytes::{roundup8, ByteReader, ByteWriter};
use super::error::{DecodeError, DecodeResult, EncodeError};
use super::id::ObjectId;
use super::vattr::Vattr;

/// Magic of every handle header (`05 60 01 03`).
pub const HANDLE_MAGIC: u32 = 0x0301_6005;
/// Size of the handle header.
pub const HANDLE_HEADER_LEN: usize = 20;

/// Handle type codes (spec §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum HandleType {
    /// File data, symlink target.
    Data = 2,
    /// Directory entries.
    Dirents = 3,
    /// Attributes.
    Vattr = 4,
    /// Block map.
    Bmap = 5,
    /// Node registration (never written by loaders).
    NodeReg = 6,
    /// Indirect-block pointer array.
    Indir = 7,
    /// Never written by loaders.
    Cor = 8,
    /// Back-pointers of a non-directory.
    Back = 9,
    /// Owner pointer of a segment or indirect block.
    DataBack = 10,
    /// Never written by loaders.
    Smb = 11,
    /// String attributes.
    ExtAttrs = 12,
    /// Never written by loaders.
    Tombstone = 13,
    /// Never written by loaders.
    SpaceArray = 14,
    /// Deprecated.
    Version = 15,
    /// Inode name.
    Name = 16,
}

impl HandleType {
    /// From the numeric code.
    pub fn from_code(c: u32) -> Option<Self> {
        use HandleType::*;
        Some(match c {
            2 => Data,
            3 => Dirents,
            4 => Vattr,
            5 => Bmap,
            6 => NodeReg,
            7 => Indir,
            8 => Cor,
            9 => Back,
            10 => DataBack,
            11 => Smb,
            12 => ExtAttrs,
            13 => Tombstone,
            14 => SpaceArray,
            15 => Version,
            16 => Name,
            _ => return None,
        })
    }

    /// Upper-case name as in the spec (`VATTR`, `BMAP`, …).
    pub fn label(self) -> &'static str {
        use HandleType::*;
        match self {
            Data => "DATA",
            Dirents => "DIRENTS",
            Vattr => "VATTR",
            Bmap => "BMAP",
            NodeReg => "NODEREG",
            Indir => "INDIR",
            Cor => "COR",
            Back => "BACK",
            DataBack => "DATABACK",
            Smb => "SMB",
            ExtAttrs => "EXTATTRS",
            Tombstone => "TOMBSTONE",
            SpaceArray => "SPACEARRAY",
            Version => "VERSION",
            Name => "NAME",
        }
    }
}

/// Label of a raw type code (a number for unknown codes).
pub fn type_label(code: u32) -> String {
    HandleType::from_code(code)
        .map(|t| t.label().to_string())
        .unwrap_or_else(|| format!("type {code}"))
}

/// Block map (spec §3.5.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bmap {
    /// 16 384 always.
    pub first_segment_bytes: u32,
    /// 8 MiB for non-directories, 256 KiB for directories.
    pub other_segment_bytes: u32,
    /// Direct blocks: block 0 is the inode's own id, then segment UUIDs.
    pub direct: Vec<ObjectId>,
    /// Indirect tree roots (always 4 in what loaders write; 16 zero bytes
    /// when unused).
    pub indirect_roots: Vec<ObjectId>,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dirent {
    /// Raw name bytes.
    pub name: Vec<u8>,
    /// The child's handle.
    pub id: ObjectId,
}

impl Dirent {
    /// Bytes this entry takes in a DIRENTS payload: `6 + name + handle`.
    pub fn encoded_len(&self) -> usize {
        dirent_len(self.name.len(), self.id.len())
    }
}

/// Encoded size of an entry with the given name and handle lengths.
pub fn dirent_len(name_len: usize, id_len: usize) -> usize {
    6 + name_len + id_len
}

/// DATABACK payload (spec §3.5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataBack {
    /// Whole seconds of the owner's ctime.
    pub ctime: u32,
    /// Segment byte offset, or `(tree << 16) + level` for indirect blocks.
    pub offset: u64,
    /// The owning inode.
    pub owner: ObjectId,
}

/// One decoded handle.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Handle {
    /// File data or symlink target.
    Data(Vec<u8>),
    /// Directory entries.
    Dirents(Vec<Dirent>),
    /// Attributes.
    Vattr(Vattr),
    /// Block map.
    Bmap(Bmap),
    /// Indirect-block pointers.
    Indir(Vec<ObjectId>),
    /// Back-pointers, one per link.
    Back(Vec<ObjectId>),
    /// Owner pointer of a segment or indirect block.
    DataBack(DataBack),
    /// Key/value attributes in order.
    ExtAttrs(Vec<(String, String)>),
    /// Inode name.
    Name(Vec<u8>),
    /// A handle type loaders never write, kept as raw payload.
    Unknown {
        /// The type code.
        code: u32,
        /// The payload bytes.
        payload: Vec<u8>,
    },
}

impl Handle {
    /// The type code.
    pub fn code(&self) -> u32 {
        match self {
            Handle::Data(_) => HandleType::Data as u32,
            Handle::Dirents(_) => HandleType::Dirents as u32,
            Handle::Vattr(_) => HandleType::Vattr as u32,
            Handle::Bmap(_) => HandleType::Bmap as u32,
            Handle::Indir(_) => HandleType::Indir as u32,
            Handle::Back(_) => HandleType::Back as u32,
            Handle::DataBack(_) => HandleType::DataBack as u32,
            Handle::ExtAttrs(_) => HandleType::ExtAttrs as u32,
            Handle::Name(_) => HandleType::Name as u32,
            Handle::Unknown { code, .. } => *code,
        }
    }

    /// Appends the whole handle (header, payload, padding) to `w`.
    pub fn encode(&self, w: &mut ByteWriter) -> Result<(), EncodeError> {
        let start = begin_handle(w, self.code());
        match self {
            Handle::Data(d) => w.lv32("DATA", d)?,
            Handle::Name(n) => w.lv32("NAME", n)?,
            Handle::Vattr(v) => v.encode(w),
            Handle::Bmap(b) => {
                w.u32(b.first_segment_bytes);
                w.u32(b.other_segment_bytes);
                w.u32(count32("BMAP direct blocks", b.direct.len())?);
                for id in &b.direct {
                    w.id16(id);
                }
                w.u32(count32("BMAP tree roots", b.indirect_roots.len())?);
                for id in &b.indirect_roots {
                    w.id16(id);
                }
            }
            Handle::Indir(ids) | Handle::Back(ids) => {
                w.u32(count32("pointer list", ids.len())?);
                for id in ids {
                    w.id16(id);
                }
            }
            Handle::DataBack(d) => {
                w.u32(d.ctime);
                w.u64(d.offset);
                w.id16(&d.owner);
            }
            Handle::Dirents(ents) => {
                for e in ents {
                    w.lv32("directory entry name", &e.name)?;
                    w.id16(&e.id);
                }
            }
            Handle::ExtAttrs(pairs) => {
                w.u32(count32("EXTATTRS pairs", pairs.len())?);
                for (k, v) in pairs {
                    w.lv32("EXTATTRS key", k.as_bytes())?;
                    w.lv32("EXTATTRS value", v.as_bytes())?;
                }
            }
            Handle::Unknown { payload, .. } => w.bytes(payload),
        }
        end_handle(w, start)
    }

    /// Decodes the payload of a handle split out of a stream.
    pub fn decode(raw: &RawHandle<'_>) -> DecodeResult<Handle> {
        Ok(match HandleType::from_code(raw.code) {
            Some(HandleType::Data) => Handle::Data(decode_data(raw)?),
            Some(HandleType::Name) => Handle::Name(decode_name(raw)?),
            Some(HandleType::Vattr) => Handle::Vattr(decode_vattr(raw)?),
            Some(HandleType::Bmap) => Handle::Bmap(decode_bmap(raw)?),
            Some(HandleType::Indir) => Handle::Indir(decode_ids(raw, "INDIR pointer")?),
            Some(HandleType::Back) => Handle::Back(decode_ids(raw, "BACK entry")?),
            Some(HandleType::DataBack) => Handle::DataBack(decode_databack(raw)?),
            Some(HandleType::Dirents) => Handle::Dirents(decode_dirents(raw)?),
            Some(HandleType::ExtAttrs) => Handle::ExtAttrs(decode_extattrs(raw)?),
            _ => Handle::Unknown {
                code: raw.code,
                payload: raw.payload.to_vec(),
            },
        })
    }
}

/// Runs `f` over the payload of `raw`, requiring it to consume all of it.
fn payload<T>(
    raw: &RawHandle<'_>,
    what: &'static str,
    f: impl FnOnce(&mut ByteReader<'_>) -> DecodeResult<T>,
) -> DecodeResult<T> {
    let mut r = ByteReader::new(raw.payload, raw.payload_offset());
    let v = f(&mut r)?;
    r.finish(what)?;
    Ok(v)
}

/// DATA payload.
pub fn decode_data(raw: &RawHandle<'_>) -> DecodeResult<Vec<u8>> {
    payload(raw, "DATA", |r| Ok(r.lv32("DATA")?.to_vec()))
}

/// Where the bytes of a DATA handle lie in its stream: the same checks as
/// [`decode_data`], for a caller that takes the bytes out of the stream's
/// buffer instead of copying them.
pub fn data_span(raw: &RawHandle<'_>) -> DecodeResult<std::ops::Range<usize>> {
    let len = payload(raw, "DATA", |r| Ok(r.lv32("DATA")?.len()))?;
    let start = raw.payload_offset() + 4;
    Ok(start..start + len)
}

/// NAME payload.
pub fn decode_name(raw: &RawHandle<'_>) -> DecodeResult<Vec<u8>> {
    payload(raw, "NAME", |r| Ok(r.lv32("NAME")?.to_vec()))
}

/// VATTR payload.
pub fn decode_vattr(raw: &RawHandle<'_>) -> DecodeResult<Vattr> {
    payload(raw, "VATTR", Vattr::decode)
}

/// BMAP payload.
pub fn decode_bmap(raw: &RawHandle<'_>) -> DecodeResult<Bmap> {
    payload(raw, "BMAP", |r| {
        let first_segment_bytes = r.u32("BMAP first segment bytes")?;
        let other_segment_bytes = r.u32("BMAP other segment bytes")?;
        let direct = id_list(r, "BMAP direct block")?;
        let indirect_roots = id_list(r, "BMAP tree root")?;
        Ok(Bmap {
            first_segment_bytes,
            other_segment_bytes,
            direct,
            indirect_roots,
        })
    })
}

/// INDIR or BACK payload: a counted list of ids.
pub fn decode_ids(raw: &RawHandle<'_>, what: &'static str) -> DecodeResult<Vec<ObjectId>> {
    payload(raw, what, |r| id_list(r, what))
}

/// DATABACK payload.
pub fn decode_databack(raw: &RawHandle<'_>) -> DecodeResult<DataBack> {
    payload(raw, "DATABACK", |r| {
        Ok(DataBack {
            ctime: r.u32("DATABACK ctime")?,
            offset: r.u64("DATABACK offset")?,
            owner: r.id16("DATABACK owner")?,
        })
    })
}

/// DIRENTS payload.
pub fn decode_dirents(raw: &RawHandle<'_>) -> DecodeResult<Vec<Dirent>> {
    payload(raw, "DIRENTS", |r| {
        let mut ents = Vec::new();
        while !r.is_empty() {
            let name = r.lv32("directory entry name")?.to_vec();
            let id = r.id16("directory entry handle")?;
            ents.push(Dirent { name, id });
        }
        Ok(ents)
    })
}

/// EXTATTRS payload.
pub fn decode_extattrs(raw: &RawHandle<'_>) -> DecodeResult<Vec<(String, String)>> {
    payload(raw, "EXTATTRS", |r| {
        let n = bounded_count(r, 8, "EXTATTRS pair count")?;
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            let k = utf8(r, "EXTATTRS key")?;
            let v = utf8(r, "EXTATTRS value")?;
            pairs.push((k, v));
        }
        Ok(pairs)
    })
}

fn count32(what: &'static str, n: usize) -> Result<u32, EncodeError> {
    u32::try_from(n).map_err(|_| EncodeError::TooLong {
        what,
        len: n,
        max: u32::MAX as usize,
    })
}

/// Reads a `u32` count and checks that `count * min_item` bytes remain, so
/// a corrupt count cannot make the decoder allocate.
fn bounded_count(
    r: &mut ByteReader<'_>,
    min_item: usize,
    what: &'static str,
) -> DecodeResult<usize> {
    let at = r.offset();
    let n = r.u32(what)? as usize;
    if n.saturating_mul(min_item) > r.remaining() {
        return Err(DecodeError::invalid(
            at,
            what,
            format!("{n} items cannot fit in the {} bytes left", r.remaining()),
        ));
    }
    Ok(n)
}

fn id_list(r: &mut ByteReader<'_>, what: &'static str) -> DecodeResult<Vec<ObjectId>> {
    let n = bounded_count(r, 18, what)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(r.id16(what)?);
    }
    Ok(v)
}

fn utf8(r: &mut ByteReader<'_>, what: &'static str) -> DecodeResult<String> {
    let at = r.offset();
    let b = r.lv32(what)?;
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError::invalid(at, what, "not UTF-8"))
}

/// Writes a header with placeholder counts; returns where it starts.
fn begin_handle(w: &mut ByteWriter, code: u32) -> usize {
    let start = w.buf.len();
    w.u32(HANDLE_MAGIC);
    w.u32(0);
    w.u32(0);
    w.u32(code);
    w.u32(0);
    start
}

/// Patches blobCount/realCount of the handle at `start` and pads it.
fn end_handle(w: &mut ByteWriter, start: usize) -> Result<(), EncodeError> {
    let real = w.buf.len() - start - HANDLE_HEADER_LEN;
    let total = roundup8(HANDLE_HEADER_LEN + real);
    let (Ok(real32), Ok(total32)) = (u32::try_from(real), u32::try_from(total)) else {
        return Err(EncodeError::TooLong {
            what: "handle",
            len: real,
            max: u32::MAX as usize - 32,
        });
    };
    w.buf[start + 4..start + 8].copy_from_slice(&total32.to_le_bytes());
    w.buf[start + 8..start + 12].copy_from_slice(&real32.to_le_bytes());
    w.buf.resize(start + total, 0);
    Ok(())
}

/// A handle located in a stream, payload not yet decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHandle<'a> {
    /// Offset of the header in the stream.
    pub offset: usize,
    /// The type code.
    pub code: u32,
    /// The `realCount` payload bytes.
    pub payload: &'a [u8],
}

impl RawHandle<'_> {
    /// Offset of the payload in the stream.
    pub fn payload_offset(&self) -> usize {
        self.offset + HANDLE_HEADER_LEN
    }
}

/// Splits a handle stream into handles, checking magic, counts, the
/// reserved word, zero padding and that the stream ends exactly after the
/// last handle.
pub fn split_handles(stream: &[u8]) -> DecodeResult<Vec<RawHandle<'_>>> {
    let mut out = Vec::new();
    let mut r = ByteReader::new(stream, 0);
    while !r.is_empty() {
        let at = r.offset();
        let magic = r.u32("handle magic")?;
        if magic != HANDLE_MAGIC {
            return Err(DecodeError::invalid(
                at,
                "handle magic",
                format!("{magic:#010x}, expected 0x03016005"),
            ));
        }
        let blob_count = r.u32("handle blobCount")? as usize;
        let real_count = r.u32("handle realCount")? as usize;
        let code = r.u32("handle type")?;
        let reserved = r.u32("handle reserved word")?;
        if reserved != 0 {
            return Err(DecodeError::invalid(
                at + 16,
                "handle reserved word",
                format!("{reserved:#x}, expected 0"),
            ));
        }
        let expect = roundup8(HANDLE_HEADER_LEN.saturating_add(real_count));
        if blob_count != expect {
            return Err(DecodeError::invalid(
                at + 4,
                "handle blobCount",
                format!("{blob_count} with realCount {real_count}, expected {expect}"),
            ));
        }
        let payload = r.take(real_count, "handle payload")?;
        let pad_at = r.offset();
        let pad = r.take(expect - HANDLE_HEADER_LEN - real_count, "handle padding")?;
        if let Some(i) = pad.iter().position(|&b| b != 0) {
            return Err(DecodeError::invalid(
                pad_at + i,
                "handle padding",
                format!("byte {:#04x}, expected 0", pad[i]),
            ));
        }
        out.push(RawHandle {
            offset: at,
            code,
            payload,
        });
    }
    Ok(out)
}

/// Splits and decodes a whole stream.
pub fn decode_stream(stream: &[u8]) -> DecodeResult<Vec<Handle>> {
    split_handles(stream)?.iter().map(Handle::decode).collect()
}

/// Encodes handles into a stream.
pub fn encode_stream(handles: &[Handle]) -> Result<Vec<u8>, EncodeError> {
    let mut w = ByteWriter::new(Vec::new());
    encode_into(&mut w, handles)?;
    Ok(w.buf)
}

/// Appends encoded handles to `w`.
pub fn encode_into(w: &mut ByteWriter, handles: &[Handle]) -> Result<(), EncodeError> {
    for h in handles {
        h.encode(w)?;
    }
    Ok(())
}

/// The bytes of a DATA handle of `len` payload bytes that come before the
/// payload (header and length word), and the number of padding bytes
/// after it: the handle is `head ‖ payload ‖ zeros(pad)`.
pub fn data_handle_frame(len: usize) -> Result<([u8; DATA_HEAD_LEN], usize), EncodeError> {
    let real = 4 + len;
    let total = roundup8(HANDLE_HEADER_LEN + real);
    let (Ok(len32), Ok(real32), Ok(total32)) = (
        u32::try_from(len),
        u32::try_from(real),
        u32::try_from(total),
    ) else {
        return Err(EncodeError::TooLong {
            what: "DATA",
            len,
            max: u32::MAX as usize - 32,
        });
    };
    let mut w = ByteWriter::new(Vec::with_capacity(DATA_HEAD_LEN));
    w.u32(HANDLE_MAGIC);
    w.u32(total32);
    w.u32(real32);
    w.u32(HandleType::Data as u32);
    w.u32(0);
    w.u32(len32);
    let mut head = [0u8; DATA_HEAD_LEN];
    head.copy_from_slice(&w.buf);
    Ok((head, total - HANDLE_HEADER_LEN - real))
}

/// Length of the part of a DATA handle before its payload.
pub const DATA_HEAD_LEN: usize = HANDLE_HEADER_LEN + 4;

/// Encodes a DATA handle from a borrowed slice (no intermediate copy).
pub fn encode_data_into(w: &mut ByteWriter, data: &[u8]) -> Result<(), EncodeError> {
    let start = begin_handle(w, HandleType::Data as u32);
    w.lv32("DATA", data)?;
    end_handle(w, start)
}
