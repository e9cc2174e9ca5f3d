//! Baselines for `scripts/bench-load`: the plain way to move the same files,
//! timed from outside (`/usr/bin/time`), so the load's figures have
//! something to be compared with.
//!
//! ```text
//! bench_upload copy   SRC DST [--concurrency N] [--sync]  # plain concurrent copy
//! bench_upload create URL                         # create an Azure container
//! bench_upload put    SRC URL [--concurrency N] [--flat-names]
//!                                                 # plain concurrent Put Blob
//! ```
//!
//! `copy` copies every regular file under SRC into DST (one flat folder,
//! names from the relative path), N files at once; with `--sync` it then
//! syncs DST's file system (`syncfs`), as a load into a local container
//! does before it publishes the root. `put` sends every
//! regular file under SRC as one Put Blob (named by its relative path)
//! through the Azure backend with the retry layer only (a request the
//! emulator drops is sent again, as the load does; no cost when none
//! fails), no rate or concurrency layers, N requests in flight; a file
//! larger than 8 MiB goes as 8 MiB blobs, the piece size the load uses, so
//! both send the same requests' worth of bytes. Concurrency defaults to
//! 32, the load's default.
//!
//! `--flat-names` puts each file under its relative path with every `/`
//! replaced by `_`. Azurite 3.35 spends about a fifth more CPU per Put Blob
//! on a name without a `/` (the same blobs took 28.6 s with an `x/` prefix
//! and 32.0-34.1 s without), and CLFS blob names have none (spec 2.7): this
//! is the plain upload of the same files under names of the shape a load
//! must use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use clfs_fs::store::azure::{AzureOptions, AzureStore};
use clfs_fs::store::retry::{RetryPolicy, Retrying};
use clfs_fs::store::url::Location;
use clfs_fs::store::{BlobName, BlobStore};
use futures::{StreamExt, TryStreamExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Size of one Put Blob for big files (the load's data segment size).
const PIECE: u64 = 8 << 20;

fn no_env(_: &str) -> Option<String> {
    None
}

/// Every regular file under `root` with its size, depth first.
fn files_under(root: &Path) -> std::io::Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push((e.path(), e.metadata()?.len()));
            }
        }
    }
    Ok(out)
}

fn relative_name(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn azure(url: &str, concurrency: usize) -> Result<AzureStore, BoxError> {
    let Location::Azure(target) = Location::parse(url, &no_env)? else {
        return Err(format!("{url} is not an Azure container URL").into());
    };
    Ok(AzureStore::new(
        target,
        &AzureOptions {
            concurrency,
            ..AzureOptions::default()
        },
    )?)
}

async fn copy(src: &Path, dst: &Path, concurrency: usize, sync: bool) -> Result<(), BoxError> {
    std::fs::create_dir_all(dst)?;
    let files = files_under(src)?;
    futures::stream::iter(files)
        .map(|(path, _)| {
            let target = dst.join(relative_name(src, &path).replace('/', "_"));
            async move {
                tokio::task::spawn_blocking(move || std::fs::copy(&path, &target))
                    .await
                    .map_err(BoxError::from)?
                    .map_err(BoxError::from)
            }
        })
        .buffer_unordered(concurrency)
        .try_for_each(|_| async { Ok(()) })
        .await?;
    if sync {
        let dir = std::fs::File::open(dst)?;
        // SAFETY: syncfs only reads the descriptor `dir` owns.
        if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    Ok(())
}

async fn put(src: &Path, url: &str, concurrency: usize, flat_names: bool) -> Result<(), BoxError> {
    let store = Arc::new(Retrying::new(
        azure(url, concurrency)?,
        RetryPolicy::default(),
    ));
    let mut pieces = Vec::new();
    for (path, len) in files_under(src)? {
        let mut name = relative_name(src, &path);
        if flat_names {
            name = name.replace('/', "_");
        }
        if len <= PIECE {
            pieces.push((path, name, 0, len));
        } else {
            for (i, off) in (0..len).step_by(PIECE as usize).enumerate() {
                pieces.push((
                    path.clone(),
                    format!("{name}.{i}"),
                    off,
                    PIECE.min(len - off),
                ));
            }
        }
    }
    futures::stream::iter(pieces)
        .map(|(path, name, off, len)| {
            let store = Arc::clone(&store);
            async move {
                let body = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                    use std::io::{Read, Seek, SeekFrom};
                    let mut f = std::fs::File::open(&path)?;
                    f.seek(SeekFrom::Start(off))?;
                    let mut buf = Vec::with_capacity(len as usize);
                    f.take(len).read_to_end(&mut buf)?;
                    Ok(buf)
                })
                .await??;
                store.put(&BlobName::new(name)?, Bytes::from(body)).await?;
                Ok::<(), BoxError>(())
            }
        })
        .buffer_unordered(concurrency)
        .try_for_each(|_| async { Ok(()) })
        .await
}

fn main() -> Result<(), BoxError> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut concurrency = 32;
    if let Some(i) = args.iter().position(|a| a == "--concurrency") {
        concurrency = args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or("--concurrency needs a number")?;
        args.drain(i..i + 2);
    }
    let mut flag = |f: &str| match args.iter().position(|a| a == f) {
        Some(i) => {
            args.remove(i);
            true
        }
        None => false,
    };
    let sync = flag("--sync");
    let flat_names = flag("--flat-names");
    let rt = tokio::runtime::Runtime::new()?;
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["copy", src, dst] => rt.block_on(copy(Path::new(src), Path::new(dst), concurrency, sync)),
        ["create", url] => rt.block_on(async {
            azure(url, 1)?.create_container().await?;
            Ok(())
        }),
        ["put", src, url] => rt.block_on(put(Path::new(src), url, concurrency, flat_names)),
        _ => Err("usage: bench_upload copy SRC DST [--sync] | create URL | \
             put SRC URL [--flat-names] (options: --concurrency N)"
            .into()),
    }
}
