//! The CLFS format: a pure codec (bytes in, bytes out; no I/O, no async).
//!
//! The contract is `clfs-format.md` (sections 2–6, 10, 13): ids and
//! filehandles ([`id`]), the hashes in names ([`hash`]), blob names
//! ([`name`]), the envelope and LZ4 frame ([`envelope`]), handles
//! ([`handle`], [`vattr`]), object kinds ([`object`]) and the data layout
//! ([`layout`]).

pub mod bytes;
pub mod envelope;
pub mod error;
pub mod handle;
pub mod hash;
pub mod id;
pub mod layout;
pub mod name;
pub mod object;
pub mod vattr;

pub use error::{DecodeError, DecodeErrorKind, DecodeResult, EncodeError};
