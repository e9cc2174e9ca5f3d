//! `clfs-fs verify`: check a whole container against the format (spec §10).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::cli::{LogLevel, OutputType};
use crate::read::verify::{verify, VerifyOptions};
use crate::store::{self, StoreOptions};

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The container: an Azure URL with a SAS (or AZURE_STORAGE_* variables),
    /// an emulator URL, or a local directory holding one file per blob.
    pub container: String,
    /// text (problems, then a summary) or json (one object on stdout).
    #[arg(long, value_enum, default_value = "text", ignore_case = true)]
    pub output_type: OutputType,
    /// Do not read data segments; only check that each exists under the
    /// right name (much faster; sizes and DATABACK of data segments are
    /// then not checked).
    #[arg(long)]
    pub metadata_only: bool,
    /// Also write the canonical namespace (the fixtures' reference.json
    /// schema, section 4.1) to this file; reads and hashes all data.
    #[arg(long, value_name = "FILE")]
    pub canonical: Option<PathBuf>,
    /// Requests in flight to the container.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

/// Runs `verify`: exit 0 with no errors (warnings allowed), 1 otherwise.
pub fn run(args: VerifyArgs, level: LogLevel) -> anyhow::Result<ExitCode> {
    crate::commands::logging::init(level, None)?;
    let rt = super::runtime()?;
    rt.block_on(async move {
        let opts = StoreOptions {
            concurrency: args.concurrency.max(1),
            ..StoreOptions::default()
        };
        let store = store::open(&args.container, &opts).context("cannot open the container")?;
        let vopts = VerifyOptions {
            parallel: args.concurrency.max(1),
            read_data: !args.metadata_only,
            canonical: args.canonical.is_some(),
            ..VerifyOptions::default()
        };
        let report = verify(store, &vopts)
            .await
            .with_context(|| format!("cannot verify {}", args.container))?;
        if let (Some(path), Some(ns)) = (&args.canonical, &report.namespace) {
            let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
            std::fs::write(path, ns.to_document(&problems))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        match args.output_type {
            OutputType::Json => {
                out.write_all(&report.to_json().to_bytes())?;
                out.write_all(b"\n")?;
            }
            OutputType::Text => report.write_text(&mut out)?,
        }
        out.flush()?;
        Ok(ExitCode::from(if report.ok() { 0 } else { 1 }))
    })
}
