//! Errors of the codec: what was expected, where, and (once known) in which blob.

use std::fmt;

/// Why a byte string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// The input ended before a field could be read.
    #[error("truncated: needed {needed} bytes for {what}, only {available} left")]
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    /// A field holds a value the format does not allow.
    #[error("bad {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
    /// Bytes were left over after a complete record.
    #[error("{count} trailing bytes after {what}")]
    Trailing { what: &'static str, count: usize },
}

/// A decoding failure at a byte offset of the input.
///
/// The offset is relative to the start of the buffer that was decoded (the
/// handle stream for handles and objects, the blob body for envelopes). The
/// codec does not know blob names; callers attach one with [`DecodeError::in_blob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What went wrong.
    pub kind: DecodeErrorKind,
    /// Blob name, when the caller knows it.
    pub blob: Option<String>,
}

impl DecodeError {
    /// A new error at `offset`.
    pub fn new(offset: usize, kind: DecodeErrorKind) -> Self {
        DecodeError {
            offset,
            kind,
            blob: None,
        }
    }

    /// A field with a value the format forbids.
    pub fn invalid(offset: usize, what: &'static str, detail: impl Into<String>) -> Self {
        Self::new(
            offset,
            DecodeErrorKind::Invalid {
                what,
                detail: detail.into(),
            },
        )
    }

    /// Moves the offset by `base` (used when a sub-buffer was decoded).
    pub fn shifted(mut self, base: usize) -> Self {
        self.offset = self.offset.saturating_add(base);
        self
    }

    /// Attaches the name of the blob the bytes came from.
    pub fn in_blob(mut self, blob: impl Into<String>) -> Self {
        self.blob = Some(blob.into());
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(blob) = &self.blob {
            write!(f, "blob {blob}: ")?;
        }
        write!(f, "at offset {}: {}", self.offset, self.kind)
    }
}

impl std::error::Error for DecodeError {}

/// Result alias for decoding.
pub type DecodeResult<T> = Result<T, DecodeError>;

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A length does not fit the field the format gives it.
    #[error("{what} is {len} bytes, more than the format's limit of {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    /// A timestamp outside what VATTR can hold (unsigned 32-bit seconds).
    #[error("time {sec}.{nsec:09} is outside the range CLFS can store (1970-01-01 to 2106-02-07)")]
    TimeOutOfRange { sec: i64, nsec: u32 },
    /// The LZ4 library failed.
    #[error("LZ4 compression failed: {0}")]
    Lz4(String),
}
