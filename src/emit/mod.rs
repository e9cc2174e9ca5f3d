//! The emitter: the namespace database turned into CLFS objects in a
//! container, through the load phases of spec §7 (init, transfer,
//! reconcile, cleanup, finalize), resumable from any crash.

pub mod build;
pub mod engine;
pub mod job;
pub mod progress;
pub mod writer;

use std::path::PathBuf;

use crate::clfs::error::EncodeError;
use crate::state::StateError;
use crate::store::StoreError;

/// Errors that stop a load (per-object failures are recorded instead).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Bad arguments or a state/container that does not fit the request.
    #[error("{0}")]
    Usage(String),
    /// A local file-system operation failed (the cause follows in the
    /// error chain).
    #[error("{path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The container failed in a way that stops the load.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Encoding failed where no object can be blamed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Something that must not happen (a corrupt container or state).
    #[error("{0}")]
    Fatal(String),
}
