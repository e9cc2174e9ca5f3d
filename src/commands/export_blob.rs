//! `clfs-fs export CONTAINER BLOB_CONTAINER_URL`: the blob-container form
//! of `export` (dispatched from [`super::export`]).

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::cli::OutputType;
use crate::commands::export::ExportArgs;
use crate::read::export_blob::{export_to_blobs, BlobExportOptions, BlobExportStats};
use crate::read::json::Json;
use crate::read::Problem;
use crate::store::azure::{AzureOptions, AzureStore};
use crate::store::url::Location;
use crate::store::{self, StoreError, StoreOptions};

fn counts(s: &BlobExportStats) -> Vec<(Vec<u8>, Json)> {
    let [dirs, files, symlinks, specials, bytes, resumed, skipped] = s.snapshot();
    let u = Json::UInt;
    vec![
        (b"directories".to_vec(), u(dirs)),
        (b"files".to_vec(), u(files)),
        (b"symlinks".to_vec(), u(symlinks)),
        (b"specials".to_vec(), u(specials)),
        (b"bytes".to_vec(), u(bytes)),
        (b"resumed".to_vec(), u(resumed)),
        (b"skipped".to_vec(), u(skipped)),
    ]
}

/// Runs the export into a blob container.
pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let target = args.target.to_string_lossy().into_owned();
    let rt = super::runtime()?;
    rt.block_on(async move {
        let sopts = StoreOptions {
            concurrency: args.concurrency.max(1),
            ..StoreOptions::default()
        };
        let src = store::open(&args.container, &sopts).context("cannot open the container")?;
        let env = |k: &str| std::env::var(k).ok();
        let Location::Azure(t) = Location::parse(&target, &env).context("cannot parse the target URL")? else {
            bail!("the target is not a blob container URL");
        };
        let dst = AzureStore::new(
            t,
            &AzureOptions {
                concurrency: args.concurrency.max(1),
                ..AzureOptions::default()
            },
        )
        .context("cannot open the target container")?;
        match dst.create_container().await {
            Ok(_) => {}
            // Without the right to create it, the container may exist already;
            // the first upload says so if it does not.
            Err(e @ (StoreError::PermissionDenied { .. } | StoreError::Http { .. })) => {
                tracing::debug!("create container: {e}")
            }
            Err(e) => return Err(e).context("cannot create the target container"),
        }
        let opts = BlobExportOptions {
            parallel: args.concurrency.max(1),
            files: 8,
            state_path: args.state_path.clone(),
            unfinished: args.unfinished,
        };
        let json = args.output_type == OutputType::Json;
        let report = export_to_blobs(src, Arc::new(dst), &opts, |s| {
            if json {
                let mut fields = vec![(b"type".to_vec(), Json::Str(b"progress".to_vec()))];
                fields.extend(counts(s));
                let mut line = Json::Obj(fields).to_bytes();
                line.push(b'\n');
                let _ = std::io::stdout().lock().write_all(&line);
            }
        })
        .await
        .with_context(|| format!("cannot export {}", args.container))?;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let ok = report.errors == 0;
        if json {
            let mut fields = vec![
                (b"type".to_vec(), Json::Str(b"summary".to_vec())),
                (b"ok".to_vec(), Json::Bool(ok)),
                (b"errors".to_vec(), Json::UInt(report.errors)),
                (b"warnings".to_vec(), Json::UInt(report.warnings)),
            ];
            fields.extend(counts(&report.stats));
            fields.push((
                b"problems".to_vec(),
                Json::Arr(report.problems.iter().map(Problem::to_json).collect()),
            ));
            out.write_all(&Json::Obj(fields).to_bytes())?;
            out.write_all(b"\n")?;
        } else {
            for p in &report.problems {
                writeln!(out, "{p}")?;
            }
            let [dirs, files, symlinks, specials, bytes, resumed, skipped] = report.stats.snapshot();
            writeln!(
                out,
                "exported to blobs: {dirs} directories, {files} files ({bytes} bytes), {symlinks} symlinks, {specials} other, {resumed} already done, {skipped} skipped; {} errors, {} warnings",
                report.errors, report.warnings
            )?;
        }
        out.flush()?;
        Ok(ExitCode::from(if ok { 0 } else { 1 }))
    })
}
