//! `clfs-fs load clfs`: a local directory into a CLFS container.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{ArgAction, Args, Subcommand, ValueEnum};

use crate::clfs::envelope::Compression;
use crate::cli::{LogLevel, OutputType};
use crate::emit::engine::{Engine, EngineOptions, Outcome};
use crate::emit::job::{self, LoadRequest};
use crate::emit::progress::Stats;
use crate::store::{self, StoreOptions};

/// What to load.
#[derive(Debug, Subcommand)]
pub enum LoadKind {
    /// Load a local directory into a CLFS container (what `azcopy load
    /// clfs` did), resumable from --state-path after any crash.
    ///
    /// A new load needs an empty container and a new (or empty) state
    /// folder. If it is interrupted, run the same command with
    /// --new-session=false to finish it: objects already written are not
    /// sent again. The container becomes usable by the cache only at the
    /// end, when the root directory is published under its final name.
    Clfs(LoadArgs),
}

/// `--compression-type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum CompressionType {
    /// Compress each object with LZ4 when that makes it smaller.
    Lz4,
    /// Store objects uncompressed.
    Disabled,
}

impl From<CompressionType> for Compression {
    fn from(c: CompressionType) -> Self {
        match c {
            CompressionType::Lz4 => Compression::Lz4,
            CompressionType::Disabled => Compression::None,
        }
    }
}

/// Arguments of `load clfs`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The local directory to load (a directory, not a symlink to one).
    pub source: PathBuf,
    /// The container: an Azure URL with a SAS (or AZURE_STORAGE_SAS_TOKEN,
    /// AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_CONNECTION_STRING), an
    /// emulator URL, or a local directory.
    pub container: String,
    /// Folder for the load's state (database and logs); must be new or
    /// empty for a new load, and is what a resume continues from.
    #[arg(long)]
    pub state_path: PathBuf,
    /// LZ4 or DISABLED [default: LZ4 for a new load, the load's own on resume].
    #[arg(long, value_enum, ignore_case = true)]
    pub compression_type: Option<CompressionType>,
    /// Keep hard links as one inode with several names [default: false;
    /// on resume, the load's own].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub preserve_hardlinks: Option<bool>,
    /// Stop a phase after this many errors (0: never stop).
    #[arg(long, default_value_t = 50)]
    pub max_errors: u64,
    /// Start a new load (true) or resume the one in --state-path (false).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value_t = true, action = ArgAction::Set)]
    pub new_session: bool,
    /// On resume, try objects that failed before again.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value_t = true, action = ArgAction::Set)]
    pub retry_errors: bool,
    /// Cap the upload rate, in megabits per second, across all transfers.
    #[arg(long)]
    pub cap_mbps: Option<f64>,
    /// text (progress bar on a terminal, summary) or json (one report per
    /// line on stdout).
    #[arg(long, value_enum, default_value = "text", ignore_case = true)]
    pub output_type: OutputType,
    /// Scan the source and count what would be loaded; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Requests in flight to the container.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

/// Runs `load`.
pub fn run(kind: LoadKind, level: LogLevel) -> anyhow::Result<ExitCode> {
    let LoadKind::Clfs(args) = kind;
    if args.dry_run {
        crate::commands::logging::init(level, None)?;
        return dry_run(&args);
    }
    let rt = crate::commands::runtime()?;
    crate::commands::run_on_workers(&rt, load(args, level))?
}

async fn load(args: LoadArgs, level: LogLevel) -> anyhow::Result<ExitCode> {
    let mut opts = store_options(args.concurrency, args.cap_mbps)?;
    // A local container is not fsynced blob by blob: the engine flushes it
    // before each group of state commits and each phase.
    opts.local_durable = false;
    // Check the source before anything is created.
    job::check_source(&args.source)?;
    // A local container is a directory: a new load may create it.
    if args.new_session && !args.dry_run {
        create_local_container(&args.container)?;
    }
    let store = store::open(&args.container, &opts).context("cannot open the container")?;
    let req = LoadRequest {
        source: args.source.clone(),
        state_path: args.state_path.clone(),
        compression: args.compression_type.map(Compression::from),
        preserve_hardlinks: args.preserve_hardlinks,
        new_session: args.new_session,
        retry_errors: args.retry_errors,
    };
    let (ns, meta) = if req.new_session {
        job::create(&req, &store).await?
    } else {
        job::resume(&req, &store).await?
    };
    crate::commands::logging::init(level, Some(&args.state_path.join("output.txt")))?;
    tracing::info!(
        "load of {} into {} (compression {}, hard links {}, {})",
        args.source.display(),
        store.location(),
        meta.compression,
        meta.preserve_hardlinks,
        if req.new_session { "new" } else { "resumed" }
    );
    let mut meta = meta;
    if !req.new_session && req.retry_errors {
        let n = job::rearm_errors(&ns, &mut meta)?;
        if n > 0 {
            tracing::info!("retrying {n} objects that failed before");
        }
    }
    let stats = Arc::new(Stats::default());
    let engine = Engine::new(
        ns,
        store,
        meta,
        EngineOptions {
            max_errors: args.max_errors,
            write_workers: args.concurrency.max(1) * 2,
            ..EngineOptions::default()
        },
        Arc::clone(&stats),
        args.state_path.clone(),
    )?;
    let reporter = tokio::spawn(report(Arc::clone(&stats), args.output_type));
    let outcome = engine.run().await;
    reporter.abort();
    let outcome = outcome?;
    finish(&stats, args.output_type, &outcome)
}

/// Store options from `--concurrency` and `--cap-mbps`.
pub(crate) fn store_options(
    concurrency: usize,
    cap_mbps: Option<f64>,
) -> anyhow::Result<StoreOptions> {
    let mut opts = StoreOptions {
        concurrency: concurrency.max(1),
        ..StoreOptions::default()
    };
    if let Some(mbps) = cap_mbps {
        anyhow::ensure!(mbps > 0.0, "--cap-mbps must be positive, not {mbps}");
        opts.rate_limit = Some(store::throttle::TokenBucket::from_mbps(mbps));
    }
    Ok(opts)
}

/// A local container is a directory: creates it if it is missing.
pub(crate) fn create_local_container(container: &str) -> anyhow::Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    if let Ok(store::url::Location::Local(dir)) = store::url::Location::parse(container, &env) {
        if !dir.exists() {
            store::local::LocalStore::create_container(&dir)
                .with_context(|| format!("cannot create the container folder {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Reports progress every second or two until aborted: a bar on a
/// terminal, or JSON lines.
pub(crate) async fn report(stats: Arc<Stats>, output: OutputType) {
    let tty = std::io::stderr().is_terminal();
    let bar = (output == OutputType::Text && tty).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg:10} [{bar:30}] {pos}/{len} objects {elapsed_precise} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut tick = tokio::time::interval(Duration::from_secs(if bar.is_some() { 1 } else { 2 }));
    loop {
        tick.tick().await;
        match (&bar, output) {
            (Some(b), _) => {
                b.set_length(stats.discovered.load(Ordering::Relaxed));
                b.set_position(
                    stats.written.load(Ordering::Relaxed)
                        + stats.skipped.load(Ordering::Relaxed)
                        + stats.failed.load(Ordering::Relaxed),
                );
                b.set_message(stats.phase().label());
            }
            (None, OutputType::Json) => println!("{}", stats.report(false)),
            (None, OutputType::Text) => {}
        }
    }
}

fn finish(stats: &Stats, output: OutputType, outcome: &Outcome) -> anyhow::Result<ExitCode> {
    let (status, code) = match outcome {
        Outcome::Complete => ("Completed", 0),
        Outcome::AlreadyDone => ("Completed", 0),
        Outcome::CompleteWithErrors(_) => ("CompletedWithErrors", 1),
        Outcome::Aborted(_) => ("Aborted", 1),
    };
    match output {
        OutputType::Json => {
            let mut v = stats.report(true);
            v["job_status"] = status.into();
            if let Outcome::Aborted(why) = outcome {
                v["reason"] = why.clone().into();
            }
            println!("{v}");
        }
        OutputType::Text => {
            let r = stats.report(true);
            match outcome {
                Outcome::AlreadyDone => println!("The load had already completed."),
                Outcome::Aborted(why) => println!("Load aborted: {why}"),
                _ => {}
            }
            println!(
                "{status}: {} objects written, {} failed, {} already done; {} bytes of file data, {} blobs in {:.1} s",
                r["files_completed_success"], r["files_completed_failed"], r["files_skipped"],
                r["bytes_completed"], r["blobs_put"], r["elapsed"]
            );
            if let Outcome::CompleteWithErrors(n) = outcome {
                println!("{n} errors; see problems.txt in the state path, then rerun with --new-session=false to retry them");
            }
        }
    }
    Ok(ExitCode::from(code))
}

/// `--dry-run`: walks the source, counts entries and bytes, reports what
/// could not be read. Writes nothing anywhere.
fn dry_run(args: &LoadArgs) -> anyhow::Result<ExitCode> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let root = job::check_source(&args.source)?;
    let (mut entries, mut bytes, mut errors) = (1u64, 0u64, 0u64);
    let mut stack = vec![root.as_os_str().as_bytes().to_vec()];
    while let Some(dir) = stack.pop() {
        let list = match crate::source::scan::scan_dir(crate::source::scan::as_path(&dir)) {
            Ok(l) => l,
            Err(e) => {
                errors += 1;
                eprintln!(
                    "{}: cannot read directory: {e}",
                    String::from_utf8_lossy(&dir)
                );
                continue;
            }
        };
        for e in list {
            let path = crate::source::scan::child_path(&dir, &e.name);
            match e.meta {
                Ok(md) if crate::source::scan::ftype_of(&md).is_some() => {
                    entries += 1;
                    if md.is_dir() {
                        stack.push(path);
                    } else if md.is_file() {
                        bytes += md.size();
                    }
                }
                Ok(_) => {
                    errors += 1;
                    eprintln!(
                        "{}: file type CLFS cannot hold",
                        String::from_utf8_lossy(&path)
                    );
                }
                Err(err) => {
                    errors += 1;
                    eprintln!("{}: cannot stat: {err}", String::from_utf8_lossy(&path));
                }
            }
        }
    }
    match args.output_type {
        OutputType::Json => println!(
            "{}",
            serde_json::json!({"dry_run": true, "files_total": entries, "bytes_total": bytes, "errors": errors})
        ),
        OutputType::Text => {
            println!("dry run: {entries} entries, {bytes} bytes of file data, {errors} errors")
        }
    }
    Ok(ExitCode::from(if errors == 0 { 0 } else { 1 }))
}
