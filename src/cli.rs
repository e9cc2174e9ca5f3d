//! Command-line arguments and dispatch.

use std::process::ExitCode;

use clap::Parser;

/// Load, stage, verify and read Avere CLFS containers.
///
/// CLFS is the on-cloud filesystem format of Avere vFXT and Azure HPC
/// Cache: every file, directory and 8 MiB piece of data is one blob whose
/// name is derived from hashed ids. clfs-fs writes that format byte for
/// byte as the reference loader (CLFSLoad) does, and reads it back.
#[derive(Debug, Parser)]
#[command(name = "clfs-fs", version, about, long_about, arg_required_else_help = true)]
pub struct Cli {}

/// Runs the parsed command.
pub fn run(_args: Cli) -> anyhow::Result<ExitCode> {
    // With `arg_required_else_help`, clap prints the help and exits before
    // this point when no command is given; commands are dispatched here as
    // they are built.
    Ok(ExitCode::SUCCESS)
}
