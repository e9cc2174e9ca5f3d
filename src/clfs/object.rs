//! Object kinds and their handle sequences (spec §4).
//!
//! | object | handles, in order |
//! |---|---|
//! | bucket | EXTATTRS |
//! | directory inode | VATTR, BMAP, NAME, DIRENTS (+ EXTATTRS on the root) |
//! | regular file, symlink | VATTR, BMAP, BACK, NAME, DATA |
//! | device, fifo, socket | VATTR, BMAP, BACK, NAME |
//! | data segment | DATA, DATABACK |
//! | directory segment | DIRENTS, DATA (empty), DATABACK |
//! | indirect block | INDIR, DATABACK |

use super::bytes::ByteWriter;
use super::envelope::{self, Compression};
use super::error::{DecodeError, DecodeResult, EncodeError};
use super::handle::{
    data_handle_frame, data_span, decode_bmap, decode_data, decode_databack, decode_dirents,
    decode_extattrs, decode_ids, decode_name, decode_vattr, encode_data_into, split_handles,
    type_label, Bmap, DataBack, Dirent, Handle, HandleType, RawHandle,
};
use super::id::ObjectId;
use super::name::Btype;
use super::vattr::Vattr;

/// The bucket object: container-level attributes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bucket {
    /// EXTATTRS pairs in order.
    pub attrs: Vec<(String, String)>,
}

/// What follows VATTR, BMAP, (BACK,) NAME in an inode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InodeBody {
    /// Directories: the first directory-entry segment; the root also has
    /// EXTATTRS.
    Dir {
        /// Entries of segment 0, `.` and `..` first.
        dirents: Vec<Dirent>,
        /// The root's EXTATTRS (`None` for other directories).
        root_attrs: Option<Vec<(String, String)>>,
    },
    /// Regular files (first 16 KiB) and symlinks (the whole target).
    Data(Vec<u8>),
    /// Devices, fifos and sockets carry no data.
    Special,
}

/// An inode object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Inode {
    /// Attributes.
    pub vattr: Vattr,
    /// Block map.
    pub bmap: Bmap,
    /// Back-pointers (non-directories only).
    pub back: Option<Vec<ObjectId>>,
    /// NAME payload.
    pub name: Vec<u8>,
    /// Data or entries.
    pub body: InodeBody,
}

impl Inode {
    /// The inode's own id (BMAP direct block 0).
    pub fn own_id(&self) -> Option<&ObjectId> {
        self.bmap.direct.first()
    }

    /// The Btype from VATTR.
    pub fn btype(&self) -> Option<Btype> {
        Btype::from_code(u16::from(self.vattr.ftype)).filter(|b| b.is_inode())
    }

    /// The id the blob name's owner hash is computed from: `..` for
    /// directories, the first back-pointer otherwise.
    pub fn owner(&self) -> Option<&ObjectId> {
        match (&self.body, &self.back) {
            (InodeBody::Dir { dirents, .. }, _) => dirents.get(1).map(|d| &d.id),
            (_, Some(back)) => back.first(),
            _ => None,
        }
    }
}

/// A data segment: up to 8 MiB of a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DataSegment {
    /// The bytes.
    pub data: Vec<u8>,
    /// Owner, ctime and byte offset.
    pub databack: DataBack,
}

/// A directory segment: up to 256 KiB of directory entries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DirSegment {
    /// The entries.
    pub dirents: Vec<Dirent>,
    /// Owner, ctime and logical offset.
    pub databack: DataBack,
}

/// An indirect block: up to 4 096 pointers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Indirect {
    /// Child ids (segments at the leaf level, indirect blocks above).
    pub pointers: Vec<ObjectId>,
    /// Owner, ctime and `(tree << 16) + level`.
    pub databack: DataBack,
}

/// Any CLFS object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Object {
    /// The bucket object.
    Bucket(Bucket),
    /// An inode (the root included).
    Inode(Inode),
    /// A data segment.
    DataSegment(DataSegment),
    /// A directory segment.
    DirSegment(DirSegment),
    /// An indirect block.
    Indirect(Indirect),
}

/// Which kind of object a stream holds, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// Bucket.
    Bucket,
    /// Root directory inode.
    Root,
    /// Other directory inode.
    Dir,
    /// Regular file or symlink inode.
    FileOrSymlink,
    /// Device, fifo or socket inode.
    Special,
    /// Data segment.
    DataSegment,
    /// Directory segment.
    DirSegment,
    /// Indirect block.
    Indirect,
}

impl Object {
    /// The handles of this object, in order.
    pub fn handles(&self) -> Vec<Handle> {
        match self {
            Object::Bucket(b) => vec![Handle::ExtAttrs(b.attrs.clone())],
            Object::Inode(i) => {
                let mut v = vec![Handle::Vattr(i.vattr.clone()), Handle::Bmap(i.bmap.clone())];
                if let Some(back) = &i.back {
                    v.push(Handle::Back(back.clone()));
                }
                v.push(Handle::Name(i.name.clone()));
                match &i.body {
                    InodeBody::Dir {
                        dirents,
                        root_attrs,
                    } => {
                        v.push(Handle::Dirents(dirents.clone()));
                        if let Some(a) = root_attrs {
                            v.push(Handle::ExtAttrs(a.clone()));
                        }
                    }
                    InodeBody::Data(d) => v.push(Handle::Data(d.clone())),
                    InodeBody::Special => {}
                }
                v
            }
            Object::DataSegment(s) => {
                vec![Handle::Data(s.data.clone()), Handle::DataBack(s.databack)]
            }
            Object::DirSegment(s) => vec![
                Handle::Dirents(s.dirents.clone()),
                Handle::Data(Vec::new()),
                Handle::DataBack(s.databack),
            ],
            Object::Indirect(i) => vec![
                Handle::Indir(i.pointers.clone()),
                Handle::DataBack(i.databack),
            ],
        }
    }

    /// Encodes the handle stream (no envelope).
    pub fn encode_stream(&self) -> Result<Vec<u8>, EncodeError> {
        let mut w = ByteWriter::new(Vec::new());
        self.encode_into(&mut w)?;
        Ok(w.buf)
    }

    /// Appends the handle stream to `w`, without copying large DATA.
    pub fn encode_into(&self, w: &mut ByteWriter) -> Result<(), EncodeError> {
        match self {
            // The two objects that carry bulk data avoid cloning it.
            Object::DataSegment(s) => encode_data_segment_into(w, &s.data, &s.databack),
            Object::Inode(i) if matches!(i.body, InodeBody::Data(_)) => {
                Handle::Vattr(i.vattr.clone()).encode(w)?;
                Handle::Bmap(i.bmap.clone()).encode(w)?;
                if let Some(back) = &i.back {
                    Handle::Back(back.clone()).encode(w)?;
                }
                Handle::Name(i.name.clone()).encode(w)?;
                if let InodeBody::Data(d) = &i.body {
                    encode_data_into(w, d)?;
                }
                Ok(())
            }
            _ => {
                for h in self.handles() {
                    h.encode(w)?;
                }
                Ok(())
            }
        }
    }

    /// Encodes a blob body: envelope, then the stream (LZ4-compressed when
    /// asked and allowed by the fall-back rule).
    pub fn encode_body(&self, compression: Compression) -> Result<Vec<u8>, EncodeError> {
        let mut w = ByteWriter::new(vec![0u8; envelope::ENVELOPE_LEN]);
        self.encode_into(&mut w)?;
        envelope::seal_in_place(w.buf, compression)
    }

    /// Decodes a handle stream into an object, checking that the handles
    /// are exactly the ones its kind has, in order.
    pub fn decode(stream: &[u8]) -> DecodeResult<Object> {
        let raws = split_handles(stream)?;
        Self::from_raw(&raws, stream.len())
    }

    /// Decodes a stream the caller gives up: a data segment's bytes are
    /// cut out of the stream's own buffer rather than copied (8 MiB per
    /// segment). The result equals [`Object::decode`]'s.
    pub fn decode_owned(stream: Vec<u8>) -> DecodeResult<Object> {
        let (span, databack) = {
            let raws = split_handles(&stream)?;
            match raws.as_slice() {
                [data, back]
                    if HandleType::from_code(data.code) == Some(HandleType::Data)
                        && HandleType::from_code(back.code) == Some(HandleType::DataBack) =>
                {
                    (data_span(data)?, decode_databack(back)?)
                }
                _ => return Self::from_raw(&raws, stream.len()),
            }
        };
        let mut data = stream;
        data.truncate(span.end);
        data.drain(..span.start);
        Ok(Object::DataSegment(DataSegment { data, databack }))
    }

    /// Opens a blob body (envelope, LZ4) and decodes it.
    pub fn decode_body(body: &[u8]) -> DecodeResult<Object> {
        let opened = envelope::open(body, envelope::FramePolicy::Clfs)?;
        Self::decode_owned(opened.stream)
    }

    /// Decodes from handles already split out of a stream of `len` bytes.
    pub fn from_raw(raws: &[RawHandle<'_>], len: usize) -> DecodeResult<Object> {
        let mut seq = Sequence { raws, pos: 0, len };
        let first = raws
            .first()
            .ok_or_else(|| DecodeError::invalid(0, "handle stream", "empty: no handles"))?;
        let obj = match HandleType::from_code(first.code) {
            Some(HandleType::ExtAttrs) => Object::Bucket(Bucket {
                attrs: seq.extattrs("bucket object")?,
            }),
            Some(HandleType::Vattr) => Object::Inode(decode_inode(&mut seq)?),
            Some(HandleType::Data) => {
                let data = seq.data("data segment")?;
                let databack = seq.databack("data segment")?;
                Object::DataSegment(DataSegment { data, databack })
            }
            Some(HandleType::Dirents) => {
                let dirents = seq.dirents("directory segment")?;
                let at = seq.next_offset();
                let data = seq.data("directory segment")?;
                if !data.is_empty() {
                    return Err(DecodeError::invalid(
                        at,
                        "directory segment DATA",
                        format!("{} bytes, expected an empty DATA handle", data.len()),
                    ));
                }
                let databack = seq.databack("directory segment")?;
                Object::DirSegment(DirSegment { dirents, databack })
            }
            Some(HandleType::Indir) => {
                let pointers = decode_ids(seq.expect(HandleType::Indir, "indirect block")?, "INDIR pointer")?;
                let databack = seq.databack("indirect block")?;
                Object::Indirect(Indirect { pointers, databack })
            }
            _ => {
                return Err(DecodeError::invalid(
                    first.offset,
                    "first handle",
                    format!(
                        "{} does not start any object kind (expected VATTR, EXTATTRS, DATA, DIRENTS or INDIR)",
                        type_label(first.code)
                    ),
                ))
            }
        };
        seq.end(obj.kind_label())?;
        Ok(obj)
    }

    /// What kind of object this is.
    pub fn kind(&self) -> ObjectKind {
        match self {
            Object::Bucket(_) => ObjectKind::Bucket,
            Object::Inode(i) => match (&i.body, i.back.is_some()) {
                (
                    InodeBody::Dir {
                        root_attrs: Some(_),
                        ..
                    },
                    _,
                ) => ObjectKind::Root,
                (InodeBody::Dir { .. }, _) => ObjectKind::Dir,
                (InodeBody::Data(_), _) => ObjectKind::FileOrSymlink,
                (InodeBody::Special, _) => ObjectKind::Special,
            },
            Object::DataSegment(_) => ObjectKind::DataSegment,
            Object::DirSegment(_) => ObjectKind::DirSegment,
            Object::Indirect(_) => ObjectKind::Indirect,
        }
    }

    fn kind_label(&self) -> &'static str {
        match self.kind() {
            ObjectKind::Bucket => "bucket object",
            ObjectKind::Root => "root directory inode",
            ObjectKind::Dir => "directory inode",
            ObjectKind::FileOrSymlink => "file or symlink inode",
            ObjectKind::Special => "device, fifo or socket inode",
            ObjectKind::DataSegment => "data segment",
            ObjectKind::DirSegment => "directory segment",
            ObjectKind::Indirect => "indirect block",
        }
    }
}

/// Appends a data segment's stream (DATA, DATABACK) from borrowed bytes.
pub fn encode_data_segment_into(
    w: &mut ByteWriter,
    data: &[u8],
    databack: &DataBack,
) -> Result<(), EncodeError> {
    encode_data_into(w, data)?;
    Handle::DataBack(*databack).encode(w)
}

/// The blob body of a data segment, from borrowed bytes: what a loader
/// calls for each 8 MiB piece it reads, without building an [`Object`].
pub fn encode_data_segment(
    data: &[u8],
    databack: &DataBack,
    compression: Compression,
) -> Result<Vec<u8>, EncodeError> {
    let (head, pad) = data_handle_frame(data.len())?;
    let mut tail = ByteWriter::new(Vec::with_capacity(pad + 64));
    tail.bytes(&[0u8; 8][..pad]);
    Handle::DataBack(*databack).encode(&mut tail)?;
    envelope::seal_parts(&[&head, data, &tail.buf], compression)
}

fn decode_inode(seq: &mut Sequence<'_, '_>) -> DecodeResult<Inode> {
    let vattr_at = seq.next_offset();
    let vattr = decode_vattr(seq.expect(HandleType::Vattr, "inode")?)?;
    let bmap = decode_bmap(seq.expect(HandleType::Bmap, "inode")?)?;
    let btype = Btype::from_code(u16::from(vattr.ftype))
        .filter(|b| b.is_inode())
        .ok_or_else(|| {
            DecodeError::invalid(
                vattr_at + 26,
                "VATTR ftype",
                format!("{} is not an inode type (1-7)", vattr.ftype),
            )
        })?;
    if btype == Btype::Dir {
        let name = seq.name("directory inode")?;
        let dirents = seq.dirents("directory inode")?;
        let root_attrs = if seq.at_end() {
            None
        } else {
            Some(seq.extattrs("root directory inode")?)
        };
        return Ok(Inode {
            vattr,
            bmap,
            back: None,
            name,
            body: InodeBody::Dir {
                dirents,
                root_attrs,
            },
        });
    }
    let what = match btype {
        Btype::Reg => "regular file inode",
        Btype::Lnk => "symlink inode",
        _ => "device, fifo or socket inode",
    };
    let back = decode_ids(seq.expect(HandleType::Back, what)?, "BACK entry")?;
    let name = seq.name(what)?;
    let body = if matches!(btype, Btype::Reg | Btype::Lnk) {
        InodeBody::Data(seq.data(what)?)
    } else {
        InodeBody::Special
    };
    Ok(Inode {
        vattr,
        bmap,
        back: Some(back),
        name,
        body,
    })
}

/// Walks the handles of one object in their required order.
struct Sequence<'r, 'a> {
    raws: &'r [RawHandle<'a>],
    pos: usize,
    len: usize,
}

impl Sequence<'_, '_> {
    fn next_offset(&self) -> usize {
        self.raws.get(self.pos).map_or(self.len, |r| r.offset)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.raws.len()
    }

    fn expect(&mut self, t: HandleType, what: &str) -> DecodeResult<&RawHandle<'_>> {
        let Some(raw) = self.raws.get(self.pos) else {
            return Err(DecodeError::invalid(
                self.len,
                "handle sequence",
                format!("{what} ends here; expected a {} handle", t.label()),
            ));
        };
        if raw.code != t as u32 {
            return Err(DecodeError::invalid(
                raw.offset,
                "handle sequence",
                format!(
                    "{what}: found {} where a {} handle belongs",
                    type_label(raw.code),
                    t.label()
                ),
            ));
        }
        self.pos += 1;
        Ok(raw)
    }

    fn data(&mut self, what: &str) -> DecodeResult<Vec<u8>> {
        decode_data(self.expect(HandleType::Data, what)?)
    }

    fn name(&mut self, what: &str) -> DecodeResult<Vec<u8>> {
        decode_name(self.expect(HandleType::Name, what)?)
    }

    fn dirents(&mut self, what: &str) -> DecodeResult<Vec<Dirent>> {
        decode_dirents(self.expect(HandleType::Dirents, what)?)
    }

    fn databack(&mut self, what: &str) -> DecodeResult<DataBack> {
        decode_databack(self.expect(HandleType::DataBack, what)?)
    }

    fn extattrs(&mut self, what: &str) -> DecodeResult<Vec<(String, String)>> {
        decode_extattrs(self.expect(HandleType::ExtAttrs, what)?)
    }

    fn end(&self, what: &str) -> DecodeResult<()> {
        match self.raws.get(self.pos) {
            None => Ok(()),
            Some(raw) => Err(DecodeError::invalid(
                raw.offset,
                "handle sequence",
                format!(
                    "extra {} handle after the end of a {what}",
                    type_label(raw.code)
                ),
            )),
        }
    }
}
