//! Reading a CLFS container back: `verify`, `ls`, `export`, and the
//! canonical namespace used as the test oracle.
//!
//! Independent of the writer: it shares only the codec ([`crate::clfs`])
//! and the stores ([`crate::store`]).
//!
//! - [`container`]: finding objects by id (highest version wins),
//!   fetching and decoding them, with or without an index of all names;
//! - [`blocks`], [`data`], [`dir`]: a file's or directory's blocks in
//!   order, read a segment at a time with bounded read-ahead;
//! - [`walk`]: the parallel namespace walk, sending events;
//! - [`check`]: the per-object checks of spec §10;
//! - [`verify`], [`canonical`], [`ls`], [`export`]: the consumers.

pub mod blocks;
pub mod canonical;
pub mod check;
pub mod container;
pub mod data;
pub mod dir;
pub mod export;
pub mod export_blob;
pub mod json;
pub mod ls;
pub mod mount;
pub mod path;
pub mod problem;
pub mod verify;
pub mod walk;

pub use container::{Container, InodeNode, ReadError};
pub use path::NsPath;
pub use problem::{Check, Problem, ProblemSink, Severity};
