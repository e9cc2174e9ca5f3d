//! Command-line arguments and dispatch.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Load, stage, verify and read Avere CLFS containers.
///
/// CLFS is the on-cloud filesystem format of Avere vFXT and Azure HPC
/// Cache: every file, directory and 8 MiB piece of data is one blob whose
/// name is derived from hashed ids. clfs-fs writes that format byte for
/// byte as the reference loader (CLFSLoad) does, and reads it back.
///
/// A container is an Azure container URL
/// (https://ACCOUNT.blob.core.windows.net/CONTAINER?SAS), an emulator URL
/// (http://127.0.0.1:10000/devstoreaccount1/CONTAINER), or a local
/// directory (a path or file:// URL) holding one file per blob.
#[derive(Debug, Parser)]
#[command(
    name = "clfs-fs",
    version,
    about,
    long_about,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Log level on stderr (and in the state path's log).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "INFO",
        ignore_case = true
    )]
    pub log_level: LogLevel,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Log levels, named as azcopy names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum LogLevel {
    /// Everything, including each blob written.
    Debug,
    /// Phases and summaries.
    Info,
    /// Problems that did not stop the work.
    Warning,
    /// Failures only.
    Error,
}

impl LogLevel {
    /// The `tracing` filter directive.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// `text` or `json` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputType {
    /// For people: a progress bar on a terminal and a summary.
    Text,
    /// For machines: one JSON object per line on stdout.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load data into a CLFS container.
    #[cfg(feature = "state")]
    #[command(subcommand)]
    Load(crate::commands::load::LoadKind),
    /// Commit a staging volume to a CLFS container: everything the first
    /// time, then only what was created, changed, renamed or deleted
    /// since the last sync (new object versions; superseded ones removed
    /// after the root is updated). The volume must not be mounted.
    #[cfg(feature = "state")]
    Sync(crate::commands::sync::SyncArgs),
    /// Check a whole container against the CLFS format (bucket, root,
    /// every inode, segment and indirect block, link counts, leftovers);
    /// exit 0 only without errors.
    Verify(crate::commands::verify::VerifyArgs),
    /// List a directory of a container, like ls (-l, -R, -a, -U, -d).
    Ls(crate::commands::ls::LsArgs),
    /// Copy a container's tree into a local directory: contents, modes,
    /// times, symlinks, fifos, hard links; owners and devices as root.
    Export(crate::commands::export::ExportArgs),
    /// Mount a staging volume (a writable folder-backed filesystem whose
    /// namespace a sync turns into CLFS; created when its folder is absent
    /// or empty), or with --container a CLFS container read-only.
    Mount(crate::commands::mount::MountArgs),
    /// Unmount a clfs-fs mount (fusermount3 -u).
    #[cfg(feature = "state")]
    Umount(crate::commands::mount::UmountArgs),
    /// Create an empty staging volume in an absent or empty folder.
    #[cfg(feature = "state")]
    Init(crate::commands::mount::InitArgs),
}

/// Runs the parsed command.
pub fn run(args: Cli) -> anyhow::Result<ExitCode> {
    match args.command {
        #[cfg(feature = "state")]
        Command::Load(kind) => crate::commands::load::run(kind, args.log_level),
        #[cfg(feature = "state")]
        Command::Sync(a) => crate::commands::sync::run(a, args.log_level),
        Command::Verify(a) => crate::commands::verify::run(a, args.log_level),
        Command::Ls(a) => crate::commands::ls::run(a, args.log_level),
        Command::Export(a) => crate::commands::export::run(a, args.log_level),
        Command::Mount(a) => crate::commands::mount::run(a, args.log_level),
        #[cfg(feature = "state")]
        Command::Umount(a) => crate::commands::mount::run_umount(a),
        #[cfg(feature = "state")]
        Command::Init(a) => crate::commands::mount::run_init(a),
    }
}
