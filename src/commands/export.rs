//! `clfs-fs export`: copy a container's tree into a local directory.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::cli::{LogLevel, OutputType};
use crate::read::export::{export, ExportOptions};
use crate::read::json::Json;
use crate::read::Problem;
use crate::store::{self, StoreOptions};

/// Arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The container: an Azure URL with a SAS (or AZURE_STORAGE_* variables),
    /// an emulator URL, or a local directory holding one file per blob.
    pub container: String,
    /// The local directory to create the tree in (created if missing; must
    /// be empty unless --force; the container's root becomes this
    /// directory), or a plain blob container URL (http:// or https://):
    /// one blob per entry named by its path, attributes in blob metadata
    /// (azcopy's and blobfuse2's keys; see the README).
    pub target: PathBuf,
    /// With a blob container target: a folder for the resume journal
    /// (finished paths); running again with the same folder skips them.
    #[arg(long, value_name = "DIR")]
    pub state_path: Option<PathBuf>,
    /// Write into a non-empty directory, replacing files in the way.
    #[arg(long)]
    pub force: bool,
    /// Do not set owners even when running as root.
    #[arg(long)]
    pub no_owners: bool,
    /// Read an unfinished container (only the provisional `tmp` root).
    #[arg(long)]
    pub unfinished: bool,
    /// text (problems, then a summary) or json (one object on stdout).
    #[arg(long, value_enum, default_value = "text", ignore_case = true)]
    pub output_type: OutputType,
    /// Requests in flight to the container.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

/// Runs `export`: exit 0 when everything was exported, 1 otherwise.
pub fn run(args: ExportArgs, level: LogLevel) -> anyhow::Result<ExitCode> {
    crate::commands::logging::init(level, None)?;
    let target_text = args.target.to_string_lossy();
    if target_text.starts_with("http://") || target_text.starts_with("https://") {
        return super::export_blob::run(args);
    }
    let rt = super::runtime()?;
    rt.block_on(async move {
        let sopts = StoreOptions {
            concurrency: args.concurrency.max(1),
            ..StoreOptions::default()
        };
        let store = store::open(&args.container, &sopts).context("cannot open the container")?;
        let mut opts = ExportOptions::for_current_user();
        opts.parallel = args.concurrency.max(1);
        opts.force = args.force;
        opts.unfinished = args.unfinished;
        if args.no_owners {
            opts.owners = false;
        }
        let report = export(store, &args.target, &opts)
            .await
            .with_context(|| format!("cannot export {} to {}", args.container, args.target.display()))?;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let s = &report.stats;
        match args.output_type {
            OutputType::Json => {
                let u = Json::UInt;
                let v = Json::Obj(vec![
                    (b"ok".to_vec(), Json::Bool(report.ok())),
                    (b"errors".to_vec(), u(report.errors)),
                    (b"warnings".to_vec(), u(report.warnings)),
                    (b"directories".to_vec(), u(s.dirs)),
                    (b"files".to_vec(), u(s.files)),
                    (b"symlinks".to_vec(), u(s.symlinks)),
                    (b"specials".to_vec(), u(s.specials)),
                    (b"hardlinks".to_vec(), u(s.hardlinks)),
                    (b"bytes".to_vec(), u(s.bytes)),
                    (b"skipped".to_vec(), u(s.skipped)),
                    (
                        b"problems".to_vec(),
                        Json::Arr(report.problems.iter().map(Problem::to_json).collect()),
                    ),
                ]);
                out.write_all(&v.to_bytes())?;
                out.write_all(b"\n")?;
            }
            OutputType::Text => {
                for p in &report.problems {
                    writeln!(out, "{p}")?;
                }
                writeln!(
                    out,
                    "exported to {}: {} directories, {} files ({} bytes), {} symlinks, {} other, {} extra hard links, {} skipped; {} errors, {} warnings",
                    args.target.display(),
                    s.dirs,
                    s.files,
                    s.bytes,
                    s.symlinks,
                    s.specials,
                    s.hardlinks,
                    s.skipped,
                    report.errors,
                    report.warnings
                )?;
            }
        }
        out.flush()?;
        Ok(ExitCode::from(if report.ok() { 0 } else { 1 }))
    })
}
