//! Store benchmark against a real Azurite that this program starts itself
//! (see `scripts/bench-store`).
//!
//! Workloads: 5,000 puts of 16 KiB and 40 puts of 8 MiB, each at the same
//! concurrency, through
//!
//! - `clfs-fs`: the store as the tool uses it (`store::open`: Azure backend
//!   behind the retry and concurrency layers, called through
//!   `Arc<dyn BlobStore>`);
//! - `clfs-fs bare`: the Azure backend alone, no layers;
//! - `object_store`: the baseline, `object_store` 0.14's Azure client in a
//!   plain upload loop (the other candidate SDK).
//!
//! Every measurement starts a fresh Azurite (its cost per request grows with
//! the blobs it holds). With `--rounds N` every measurement is repeated N
//! times, the order rotating from round to round, and the best is kept. Prints objects/s and MB/s (10^6 bytes) and the ratio
//! `clfs-fs / object_store`.
//!
//! Options: `--concurrency N` (32), `--rounds N` (1), `--small N` (5000),
//! `--big N` (40).

#[path = "../tests/common/azurite.rs"]
mod azurite;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clfs_fs::store::azure::{AzureOptions, AzureStore};
use clfs_fs::store::url::Location;
use clfs_fs::store::{self, BlobName, BlobStore, StoreOptions};
use futures::{StreamExt, TryStreamExt};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStoreExt, PutPayload};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Impl {
    Ours,
    Bare,
    ObjectStore,
}

impl Impl {
    fn label(self) -> &'static str {
        match self {
            Impl::Ours => "clfs-fs",
            Impl::Bare => "clfs-fs bare",
            Impl::ObjectStore => "object_store",
        }
    }
}

struct Workload {
    label: &'static str,
    count: usize,
    size: usize,
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// Runs `count` puts of `size` bytes at `concurrency` with one
/// implementation into a fresh container; returns the elapsed time.
/// CPU time (user + system) this process has used so far; Azurite, a child
/// process, is not included.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// One measurement: wall time and client CPU time.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

async fn run(which: Impl, w: &Workload, concurrency: usize) -> Result<Sample, BoxError> {
    // A fresh emulator for every measurement: Azurite slows down as its
    // tables grow, so sharing one would favour whoever runs first.
    let az = azurite::Azurite::start();
    let container = "bench";
    let url = az.container_url(container);
    let Location::Azure(target) = Location::parse(&url, &no_env)? else {
        return Err("not an Azure URL".into());
    };
    let admin = AzureStore::new(target.clone(), &AzureOptions::default())?;
    admin.create_container().await?;
    // Distinct payloads (same buffer, different first bytes would copy).
    let payload = Bytes::from(vec![0x5au8; w.size]);
    let names: Vec<String> = (0..w.count).map(|i| format!("bench-{i:06}")).collect();

    let sample = match which {
        Impl::Ours | Impl::Bare => {
            let store: Arc<dyn BlobStore> = if which == Impl::Ours {
                let options = StoreOptions {
                    concurrency,
                    ..StoreOptions::default()
                };
                store::open_with_env(&url, &options, &no_env)?
            } else {
                Arc::new(AzureStore::new(
                    target,
                    &AzureOptions {
                        concurrency,
                        ..AzureOptions::default()
                    },
                )?)
            };
            let start = Instant::now();
            let cpu_start = cpu_time();
            futures::stream::iter(names.iter())
                .map(|n| {
                    let store = store.clone();
                    let payload = payload.clone();
                    async move { store.put(&BlobName::new(n.as_str())?, payload).await }
                })
                .buffer_unordered(concurrency)
                .try_collect::<()>()
                .await?;
            Sample {
                wall: start.elapsed(),
                cpu: cpu_time().saturating_sub(cpu_start),
            }
        }
        Impl::ObjectStore => {
            // Path-style endpoint of this Azurite (the emulator mode would
            // read the port from a process-wide variable).
            let client = MicrosoftAzureBuilder::new()
                .with_endpoint(format!(
                    "http://127.0.0.1:{}/{}",
                    az.port(),
                    azurite::ACCOUNT
                ))
                .with_account(azurite::ACCOUNT)
                .with_access_key(azurite::ACCOUNT_KEY)
                .with_container_name(container)
                .with_client_options(
                    ClientOptions::new()
                        .with_allow_http(true)
                        .with_pool_max_idle_per_host(concurrency),
                )
                .build()?;
            let client = Arc::new(client);
            let start = Instant::now();
            let cpu_start = cpu_time();
            futures::stream::iter(names.iter())
                .map(|n| {
                    let client = client.clone();
                    let payload = PutPayload::from_bytes(payload.clone());
                    async move {
                        client
                            .put(&ObjectPath::from(n.as_str()), payload)
                            .await
                            .map(drop)
                    }
                })
                .buffer_unordered(concurrency)
                .try_collect::<()>()
                .await?;
            Sample {
                wall: start.elapsed(),
                cpu: cpu_time().saturating_sub(cpu_start),
            }
        }
    };
    // Check the work was done.
    let listed = store::list_all(&admin, "bench-").await?;
    if listed.len() != w.count || listed.iter().any(|m| m.size != w.size as u64) {
        return Err(format!("{}: container holds {} blobs", which.label(), listed.len()).into());
    }
    Ok(sample)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let concurrency = arg("--concurrency", 32);
    let rounds = arg("--rounds", 1).max(1);
    let workloads = [
        Workload {
            label: "16 KiB puts",
            count: arg("--small", 5000),
            size: 16 * 1024,
        },
        Workload {
            label: "8 MiB puts",
            count: arg("--big", 40),
            size: 8 * 1024 * 1024,
        },
    ];
    println!(
        "Azurite 3.35 in memory, a fresh one per measurement; concurrency {concurrency}; \
         best of {rounds} round(s)"
    );
    let impls = [Impl::Ours, Impl::Bare, Impl::ObjectStore];
    for w in &workloads {
        let mut best: [Option<Sample>; 3] = [None; 3];
        for round in 0..rounds {
            // Rotate the order from round to round.
            for j in 0..impls.len() {
                let k = (j + round) % impls.len();
                let t = run(impls[k], w, concurrency).await?;
                best[k] = match best[k] {
                    Some(b) if b.wall <= t.wall => Some(b),
                    _ => Some(t),
                };
            }
        }
        println!("\n{} ({} × {} bytes):", w.label, w.count, w.size);
        println!(
            "  {:<14} {:>10} {:>9} {:>9} {:>16}",
            "", "objects/s", "MB/s", "seconds", "client CPU µs/obj"
        );
        let mut walls = [0.0f64; 3];
        for (k, which) in impls.iter().enumerate() {
            let Some(b) = best[k] else {
                continue;
            };
            let s = b.wall.as_secs_f64();
            walls[k] = s;
            let ops = w.count as f64 / s;
            let mbs = (w.count * w.size) as f64 / s / 1e6;
            let cpu = b.cpu.as_secs_f64() * 1e6 / w.count as f64;
            println!(
                "  {:<14} {ops:>10.1} {mbs:>9.1} {s:>9.2} {cpu:>16.0}",
                which.label()
            );
        }
        println!(
            "  ratio clfs-fs / object_store (baseline), throughput: {:.2}",
            walls[2] / walls[0]
        );
    }
    Ok(())
}
