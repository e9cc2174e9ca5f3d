//! One module per command: clap arguments and the `run` that drives the
//! library (with `anyhow` context at this edge).

pub mod export;
pub mod export_blob;
#[cfg(feature = "state")]
pub mod load;
pub mod logging;
pub mod ls;
pub mod mount;
pub mod mount_container;
#[cfg(feature = "state")]
pub mod sync;
pub mod verify;

/// A multi-threaded tokio runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
