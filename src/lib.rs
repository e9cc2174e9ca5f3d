//! clfs-fs: put data into Azure Blob containers in the Avere CLFS format
//! (the on-cloud filesystem of Avere vFXT and Azure HPC Cache), and get it
//! out again.
//!
//! The layers, each depending only on those before it:
//! - [`clfs`]: the format, a pure codec (bytes in, bytes out);
//! - [`store`]: where blobs go (Azure, Azurite, a local directory), with
//!   retries and a rate cap as layers;
//! - [`read`]: reading a container back (verify, ls, export), sharing
//!   only the codec and the stores with the writer;
//! - `state`: the namespace database (RocksDB);
//! - `source`: the local tree scanner;
//! - `emit`: the load engine, namespace → objects → store;
//! - `volume`: the staging volume (namespace in RocksDB, data files);
//! - `fs`: the FUSE filesystem over a volume;
//! - `sync`: a staging volume into a container, then only its changes;
//! - [`cli`] and [`commands`]: the command line.
//!
//! Without the default features the crate is the codec alone (feature
//! `store` adds the stores, the reader and the command line; `state` adds
//! RocksDB and the load).
pub mod clfs;
#[cfg(feature = "store")]
pub mod read;
pub mod records;
#[cfg(feature = "store")]
pub mod store;

#[cfg(feature = "state")]
pub mod emit;
#[cfg(feature = "state")]
pub mod fs;
#[cfg(feature = "state")]
pub mod source;
#[cfg(feature = "state")]
pub mod state;
#[cfg(feature = "state")]
pub mod sync;
#[cfg(feature = "state")]
pub mod volume;

#[cfg(feature = "store")]
pub mod cli;
#[cfg(feature = "store")]
pub mod commands;
