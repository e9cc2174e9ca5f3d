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

/// Runs `work` to completion as a task on `rt`'s worker threads rather
/// than on the calling thread: a command that spawns a task per object
/// and waits for each would otherwise wake this thread once per object (a
/// context switch each, a measurable share of a small-file load).
pub fn run_on_workers<F>(rt: &tokio::runtime::Runtime, work: F) -> anyhow::Result<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(rt.spawn(work))
        .map_err(|e| anyhow::anyhow!("the command's main task failed: {e}"))
}
