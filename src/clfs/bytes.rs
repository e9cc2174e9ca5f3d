//! Bounds-checked little-endian reading and writing of the format's fields.

use super::error::{DecodeError, DecodeErrorKind, DecodeResult, EncodeError};
use super::id::ObjectId;

/// A cursor over a byte slice that never reads past its end.
#[derive(Debug, Clone)]
pub struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Added to positions in errors (offset of `buf` in the outer buffer).
    base: usize,
}

impl<'a> ByteReader<'a> {
    /// A reader over `buf`, reporting offsets relative to `base`.
    pub fn new(buf: &'a [u8], base: usize) -> Self {
        ByteReader { buf, pos: 0, base }
    }

    /// Offset of the next byte, in outer-buffer terms.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when everything was read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> DecodeResult<&'a [u8]> {
        if n > self.remaining() {
            return Err(DecodeError::new(
                self.offset(),
                DecodeErrorKind::Truncated {
                    what,
                    needed: n,
                    available: self.remaining(),
                },
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> DecodeResult<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    /// A `u8`.
    pub fn u8(&mut self, what: &'static str) -> DecodeResult<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, what: &'static str) -> DecodeResult<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, what: &'static str) -> DecodeResult<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, what: &'static str) -> DecodeResult<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// `lv32`: a `u32` length, then that many bytes.
    pub fn lv32(&mut self, what: &'static str) -> DecodeResult<&'a [u8]> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }

    /// `lv16(id)`: a `u16` length (16 or 24), then the id.
    pub fn id16(&mut self, what: &'static str) -> DecodeResult<ObjectId> {
        let at = self.offset();
        let len = self.u16(what)? as usize;
        let bytes = self.take(len, what)?;
        ObjectId::from_slice(bytes).ok_or_else(|| {
            DecodeError::invalid(at, what, format!("id length {len}, expected 16 or 24"))
        })
    }

    /// Fails unless the whole input was consumed.
    pub fn finish(&self, what: &'static str) -> DecodeResult<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::new(
                self.offset(),
                DecodeErrorKind::Trailing {
                    what,
                    count: self.remaining(),
                },
            ))
        }
    }
}

/// Appends little-endian fields to a `Vec<u8>`.
#[derive(Debug, Default)]
pub struct ByteWriter {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl ByteWriter {
    /// A writer that appends to `buf`.
    pub fn new(buf: Vec<u8>) -> Self {
        ByteWriter { buf }
    }

    /// Appends a `u8`.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Appends a `u16`.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a `u32`.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a `u64`.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// Appends `lv32(v)`.
    pub fn lv32(&mut self, what: &'static str, v: &[u8]) -> Result<(), EncodeError> {
        let len = u32::try_from(v.len()).map_err(|_| EncodeError::TooLong {
            what,
            len: v.len(),
            max: u32::MAX as usize,
        })?;
        self.u32(len);
        self.bytes(v);
        Ok(())
    }

    /// Appends `lv16(id)`.
    pub fn id16(&mut self, id: &ObjectId) {
        self.u16(id.len() as u16);
        self.bytes(id.as_bytes());
    }
}

/// `(n + 7) & !7`.
pub fn roundup8(n: usize) -> usize {
    (n + 7) & !7
}
