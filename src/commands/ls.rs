//! `clfs-fs ls`: list a directory of a container.

use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::cli::LogLevel;
use crate::read::ls::{Lister, LsOptions};
use crate::read::{Container, NsPath, ProblemSink};
use crate::store::{self, StoreOptions};

/// Arguments of `ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// The container: an Azure URL with a SAS (or AZURE_STORAGE_* variables),
    /// an emulator URL, or a local directory holding one file per blob.
    pub container: String,
    /// The path inside the container (default: the root).
    #[arg(default_value = "/")]
    pub path: OsString,
    /// Long format: mode, links, numeric owner and group, size (or device
    /// numbers), mtime (UTC), name, symlink target.
    #[arg(short = 'l')]
    pub long: bool,
    /// List subdirectories recursively.
    #[arg(short = 'R')]
    pub recursive: bool,
    /// Include `.` and `..`.
    #[arg(short = 'a')]
    pub all: bool,
    /// Do not sort: print entries in directory order as they are read.
    #[arg(short = 'U')]
    pub unsorted: bool,
    /// List a directory itself, not its contents.
    #[arg(short = 'd')]
    pub directory: bool,
    /// Show times with seconds and nanoseconds.
    #[arg(long)]
    pub full_time: bool,
    /// Read an unfinished container (only the provisional `tmp` root).
    #[arg(long)]
    pub unfinished: bool,
    /// List the whole container once first instead of one prefix listing
    /// per entry (the default for -R, and for -l on a local container).
    #[arg(long)]
    pub index: bool,
    /// Requests in flight to the container.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

/// Runs `ls`: exit 0, or 1 if something could not be read.
pub fn run(args: LsArgs, level: LogLevel) -> anyhow::Result<ExitCode> {
    crate::commands::logging::init(level, None)?;
    let path = NsPath::parse(args.path.as_bytes())?;
    let rt = super::runtime()?;
    rt.block_on(async move {
        let sopts = StoreOptions {
            concurrency: args.concurrency.max(1),
            ..StoreOptions::default()
        };
        let store = store::open(&args.container, &sopts).context("cannot open the container")?;
        // Each entry's inode is found by listing its id's prefix. That is
        // one request on Azure, but a scan of the whole directory for a
        // local container; and a recursive listing reads everything. In
        // both cases one listing of the whole container is cheaper.
        let env = |k: &str| std::env::var(k).ok();
        let local = matches!(
            store::url::Location::parse(&args.container, &env),
            Ok(store::url::Location::Local(_))
        );
        let c = Arc::new(if args.recursive || (local && args.long) || args.index {
            Container::indexed(store).await?
        } else {
            Container::new(store)
        });
        let sink = Arc::new(ProblemSink::default());
        let opts = LsOptions {
            long: args.long,
            recursive: args.recursive,
            all: args.all,
            unsorted: args.unsorted,
            full_time: args.full_time,
            directory: args.directory,
            parallel: args.concurrency.max(1),
            unfinished: args.unfinished,
        };
        let lister = Lister::open(c, sink.clone(), opts).await?;
        let stdout = std::io::stdout();
        let mut out = BufWriter::new(stdout.lock());
        lister.list(&path, &mut out).await?;
        out.flush()?;
        drop(out);
        for p in sink.snapshot() {
            eprintln!("clfs-fs: {p}");
        }
        Ok(ExitCode::from(if sink.errors() == 0 { 0 } else { 1 }))
    })
}
