//! Throttling layers: the `--cap-mbps` token bucket ([`Throttled`] over a
//! shared [`TokenBucket`]) and a bound on requests in flight ([`Limited`]).
//!
//! One [`TokenBucket`] is meant to exist per process: every store (and any
//! other transfer) shares the same `Arc`, so the cap holds for the process as
//! a whole, however many tasks and stores there are.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{BlobMeta, BlobName, BlobStore, ListPage, StoreError};

/// A token bucket metering bytes.
///
/// [`TokenBucket::acquire`] takes its tokens at once, even going into debt,
/// and then waits until the debt is paid back at the configured rate. Requests
/// are thus served in the order they asked, any size is allowed (a request
/// larger than the burst just waits longer), and over any long interval the
/// bytes let through are at most `rate × interval + burst`.
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

struct BucketState {
    tokens: f64,
    last: Instant,
}

impl fmt::Debug for TokenBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBucket")
            .field("bytes_per_sec", &self.rate)
            .field("burst", &self.burst)
            .finish()
    }
}

impl TokenBucket {
    /// A bucket letting through `bytes_per_sec` on average with bursts of up
    /// to `burst` bytes. It starts full.
    pub fn new(bytes_per_sec: f64, burst: f64) -> Self {
        let rate = if bytes_per_sec.is_finite() && bytes_per_sec > 0.0 {
            bytes_per_sec
        } else {
            f64::MAX
        };
        let burst = burst.max(1.0);
        TokenBucket {
            rate,
            burst,
            state: Mutex::new(BucketState {
                tokens: burst,
                last: Instant::now(),
            }),
        }
    }

    /// The bucket for `--cap-mbps`: megabits (10^6 bits) per second, with a
    /// burst of a quarter second's worth (at least 64 KiB).
    pub fn from_mbps(mbps: f64) -> Arc<Self> {
        let bytes_per_sec = mbps * 1_000_000.0 / 8.0;
        Arc::new(Self::new(
            bytes_per_sec,
            (bytes_per_sec / 4.0).max(65_536.0),
        ))
    }

    /// The configured rate in bytes per second.
    pub fn bytes_per_sec(&self) -> f64 {
        self.rate
    }

    /// Takes `bytes` tokens, waiting as long as needed.
    pub async fn acquire(&self, bytes: u64) {
        let wait = self.reserve(bytes);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes `bytes` tokens now and returns how long the caller must wait
    /// before using them.
    pub fn reserve(&self, bytes: u64) -> Duration {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(state.last).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.rate).min(self.burst);
        state.last = now;
        state.tokens -= bytes as f64;
        if state.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-state.tokens / self.rate)
        }
    }
}

/// A [`BlobStore`] wrapper charging every byte moved against a shared
/// [`TokenBucket`]: a put waits for its tokens before it starts, a get pays
/// for what it received before it returns. Listing, head and delete move
/// little data and are not charged.
#[derive(Debug)]
pub struct Throttled<S> {
    inner: S,
    bucket: Arc<TokenBucket>,
}

impl<S: BlobStore> Throttled<S> {
    /// Wraps `inner`, charging `bucket`.
    pub fn new(inner: S, bucket: Arc<TokenBucket>) -> Self {
        Throttled { inner, bucket }
    }
}

#[async_trait]
impl<S: BlobStore> BlobStore for Throttled<S> {
    async fn put(&self, name: &BlobName, data: Bytes) -> Result<(), StoreError> {
        self.bucket.acquire(data.len() as u64).await;
        self.inner.put(name, data).await
    }

    async fn get(&self, name: &BlobName) -> Result<Bytes, StoreError> {
        let data = self.inner.get(name).await?;
        self.bucket.acquire(data.len() as u64).await;
        Ok(data)
    }

    async fn head(&self, name: &BlobName) -> Result<Option<BlobMeta>, StoreError> {
        self.inner.head(name).await
    }

    async fn delete(&self, name: &BlobName) -> Result<(), StoreError> {
        self.inner.delete(name).await
    }

    async fn list_page(&self, prefix: &str, marker: Option<&str>) -> Result<ListPage, StoreError> {
        self.inner.list_page(prefix, marker).await
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush().await
    }

    fn needs_flush(&self) -> bool {
        self.inner.needs_flush()
    }
}

/// A [`BlobStore`] wrapper allowing at most `n` operations in flight.
#[derive(Debug)]
pub struct Limited<S> {
    inner: S,
    permits: Semaphore,
    max: usize,
}

impl<S: BlobStore> Limited<S> {
    /// Wraps `inner`, allowing `max_in_flight` (at least 1) operations at
    /// once.
    pub fn new(inner: S, max_in_flight: usize) -> Self {
        let max = max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        Limited {
            inner,
            permits: Semaphore::new(max),
            max,
        }
    }

    /// The bound.
    pub fn max_in_flight(&self) -> usize {
        self.max
    }

    async fn permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // The semaphore is never closed, so this only fails if that changes;
        // then run unbounded rather than fail.
        self.permits.acquire().await.ok()
    }
}

#[async_trait]
impl<S: BlobStore> BlobStore for Limited<S> {
    async fn put(&self, name: &BlobName, data: Bytes) -> Result<(), StoreError> {
        let _permit = self.permit().await;
        self.inner.put(name, data).await
    }

    async fn get(&self, name: &BlobName) -> Result<Bytes, StoreError> {
        let _permit = self.permit().await;
        self.inner.get(name).await
    }

    async fn head(&self, name: &BlobName) -> Result<Option<BlobMeta>, StoreError> {
        let _permit = self.permit().await;
        self.inner.head(name).await
    }

    async fn delete(&self, name: &BlobName) -> Result<(), StoreError> {
        let _permit = self.permit().await;
        self.inner.delete(name).await
    }

    async fn list_page(&self, prefix: &str, marker: Option<&str>) -> Result<ListPage, StoreError> {
        let _permit = self.permit().await;
        self.inner.list_page(prefix, marker).await
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush().await
    }

    fn needs_flush(&self) -> bool {
        self.inner.needs_flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::local::{LocalOptions, LocalStore};

    #[tokio::test(start_paused = true)]
    async fn bucket_holds_the_rate_across_tasks() {
        // 1 MB/s, 100 KB burst; 8 tasks each take 10 × 50 KB = 4 MB in all.
        let bucket = Arc::new(TokenBucket::new(1_000_000.0, 100_000.0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let b = bucket.clone();
                tokio::spawn(async move {
                    for _ in 0..10 {
                        b.acquire(50_000).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        // (4 MB - 100 KB burst) / 1 MB/s = 3.9 s.
        assert!((3.85..=3.95).contains(&secs), "{secs}");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_larger_than_the_burst_wait() {
        let bucket = TokenBucket::new(1_000.0, 100.0);
        assert_eq!(bucket.reserve(100), Duration::ZERO);
        assert_eq!(bucket.reserve(2_000), Duration::from_secs(2));
        tokio::time::advance(Duration::from_secs(1)).await;
        // Still 1,000 bytes in debt.
        assert_eq!(bucket.reserve(0), Duration::from_secs(1));
    }

    #[test]
    fn mbps_are_megabits() {
        let b = TokenBucket::from_mbps(80.0);
        assert_eq!(b.bytes_per_sec(), 10_000_000.0);
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_store_charges_puts_and_gets() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalStore::open_with(
            dir.path(),
            LocalOptions {
                durable: false,
                ..LocalOptions::default()
            },
        )
        .unwrap();
        let bucket = Arc::new(TokenBucket::new(10_000.0, 1.0));
        let store = Throttled::new(local, bucket.clone());
        let name = BlobName::new("b").unwrap();
        let start = Instant::now();
        store
            .put(&name, Bytes::from(vec![0u8; 20_000]))
            .await
            .unwrap();
        store.get(&name).await.unwrap();
        // 40,000 bytes charged at 10,000 B/s.
        let secs = start.elapsed().as_secs_f64();
        assert!((3.9..4.1).contains(&secs), "{secs}");
    }
}
