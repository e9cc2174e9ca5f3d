//! clfs-fs: put data into Azure Blob containers in the Avere CLFS format
//! (the on-cloud filesystem of Avere vFXT and Azure HPC Cache), and get it
//! out again.
//!
//! The layers, each depending only on those before it:
//! - [`clfs`]: the format, a pure codec (bytes in, bytes out).
pub mod clfs;
