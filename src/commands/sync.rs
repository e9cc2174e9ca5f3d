//! `clfs-fs sync`: a staging volume into a CLFS container.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::cli::{LogLevel, OutputType};
use crate::commands::load::{create_local_container, store_options, CompressionType};
use crate::emit::progress::Stats;
use crate::store;
use crate::sync::engine::{open_volume, Outcome, Summary, Sync, SyncOptions};

/// Arguments of `sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The staging volume folder (it must not be mounted).
    pub volume: PathBuf,
    /// The container: an Azure URL with a SAS (or AZURE_STORAGE_SAS_TOKEN,
    /// AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_CONNECTION_STRING), an
    /// emulator URL, or a local directory. The first sync needs an empty
    /// one; later syncs must name the same container.
    pub container: String,
    /// Compression of the objects this sync writes: LZ4 or DISABLED.
    #[arg(long, value_enum, ignore_case = true, default_value = "LZ4")]
    pub compression_type: CompressionType,
    /// Stop after this many inodes failed (0: never stop); the root is
    /// then not updated.
    #[arg(long, default_value_t = 50)]
    pub max_errors: u64,
    /// Cap the upload rate, in megabits per second.
    #[arg(long)]
    pub cap_mbps: Option<f64>,
    /// text (summary) or json (one report per line on stdout).
    #[arg(long, value_enum, default_value = "text", ignore_case = true)]
    pub output_type: OutputType,
    /// Requests in flight to the container.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Forget the container this volume was synced to before, and write
    /// the whole namespace into CONTAINER (which must be empty).
    #[arg(long)]
    pub new_container: bool,
}

/// Runs `sync`.
pub fn run(args: SyncArgs, level: LogLevel) -> anyhow::Result<ExitCode> {
    crate::commands::logging::init(level, None)?;
    let rt = crate::commands::runtime()?;
    crate::commands::run_on_workers(&rt, sync(args))?
}

async fn sync(args: SyncArgs) -> anyhow::Result<ExitCode> {
    let opts = store_options(args.concurrency, args.cap_mbps)?;
    // Refuse a mounted volume before touching the container.
    let vol = open_volume(&args.volume)?;
    create_local_container(&args.container)?;
    let store = store::open(&args.container, &opts).context("cannot open the container")?;
    let stats = Arc::new(Stats::default());
    let sync = Sync::prepare(
        vol,
        Arc::clone(&store),
        SyncOptions {
            compression: args.compression_type.into(),
            max_errors: args.max_errors,
            write_workers: args.concurrency.max(1) * 2,
            new_container: args.new_container,
            ..SyncOptions::default()
        },
        Arc::clone(&stats),
    )
    .await?;
    tracing::info!(
        "sync of {} into {}",
        args.volume.display(),
        store.location()
    );
    let reporter = tokio::spawn(crate::commands::load::report(
        Arc::clone(&stats),
        args.output_type,
    ));
    let outcome = sync.run().await;
    reporter.abort();
    finish(&stats, args.output_type, &outcome?)
}

fn finish(stats: &Stats, output: OutputType, outcome: &Outcome) -> anyhow::Result<ExitCode> {
    let (status, code, s, why): (&str, u8, &Summary, Option<&String>) = match outcome {
        Outcome::Complete(s) => ("Completed", 0, s, None),
        Outcome::CompleteWithErrors(s) => ("CompletedWithErrors", 1, s, None),
        Outcome::Aborted(s, why) => ("Aborted", 1, s, Some(why)),
    };
    match output {
        OutputType::Json => {
            let mut v = stats.report(true);
            v["job_status"] = status.into();
            v["first_sync"] = s.first.into();
            v["inodes_written"] = s.inodes_written.into();
            v["inodes_unchanged"] = s.inodes_unchanged.into();
            v["inodes_deleted"] = s.inodes_deleted.into();
            v["objects_written"] = s.blobs_written.into();
            v["objects_deleted"] = s.blobs_deleted.into();
            if let Some(why) = why {
                v["reason"] = why.clone().into();
            }
            println!("{v}");
        }
        OutputType::Text => {
            if let Some(why) = why {
                println!("Sync aborted: {why}");
            }
            println!(
                "{status} ({} sync): {} inodes written, {} unchanged, {} deleted, {} failed; \
                 {} objects written, {} objects deleted; {} bytes of file data in {:.1} s",
                if s.first { "first" } else { "incremental" },
                s.inodes_written,
                s.inodes_unchanged,
                s.inodes_deleted,
                s.failed,
                s.blobs_written,
                s.blobs_deleted,
                s.bytes,
                stats.elapsed()
            );
            if s.failed > 0 {
                println!("the failed inodes are listed above; run the sync again to retry them");
            }
        }
    }
    Ok(ExitCode::from(code))
}
