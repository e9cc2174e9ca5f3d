//! The retry layer: a per-request timeout, and retries of transient failures
//! with exponential back-off and decorrelated jitter.
//!
//! Each try of an operation runs under a timeout of
//! [`RetryPolicy::request_timeout`] plus [`RetryPolicy::timeout_per_mib`] for
//! every MiB of the body (for `get`, of [`MAX_OBJECT_SIZE`]).
//! A try that fails with a transient error ([`StoreError::is_transient`]: 408,
//! 429, 500, 502, 503, 504, resets, truncated bodies, timeouts) is repeated
//! after a delay drawn with "decorrelated jitter"
//! (`delay = min(max_delay, uniform(base_delay, 3 * previous_delay))`), never
//! shorter than the server's `Retry-After` (capped at
//! [`RetryPolicy::max_retry_after`]). After [`RetryPolicy::max_tries`] tries
//! the error is [`StoreError::RetriesExhausted`], naming the operation, the
//! blob and the last failure. Errors that are not transient (403, 404, 409,
//! ...) are returned at once.
//!
//! All operations of [`BlobStore`] are idempotent, so retrying is always safe.

use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rand::{Rng, RngCore, SeedableRng};

use super::{BlobMeta, BlobName, BlobStore, ListPage, Op, StoreError, MAX_OBJECT_SIZE};

/// Timeouts and retry limits.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Tries per operation, the first one included (at least 1). Default 10.
    pub max_tries: u32,
    /// Smallest delay between tries. Default 100 ms.
    pub base_delay: Duration,
    /// Largest delay between tries (jitter never goes above it). Default
    /// 30 s.
    pub max_delay: Duration,
    /// Largest `Retry-After` honoured; longer requests are cut to this.
    /// Default 60 s.
    pub max_retry_after: Duration,
    /// Timeout of one try, before the allowance for the body size. Default
    /// 30 s.
    pub request_timeout: Duration,
    /// Extra timeout per MiB transferred (the slowest transfer rate tolerated
    /// per request is 1 MiB per this). Default 10 s (≈ 100 KiB/s).
    pub timeout_per_mib: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_tries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            timeout_per_mib: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The timeout of one try moving `bytes` bytes.
    pub fn timeout_for(&self, bytes: usize) -> Duration {
        let mib = bytes as f64 / (1024.0 * 1024.0);
        self.request_timeout + self.timeout_per_mib.mul_f64(mib)
    }

    /// The delay before the next try, given the previous delay (`None` before
    /// the first retry), the server's `Retry-After` and a uniform sample `u`
    /// in `[0, 1)`.
    pub fn next_delay(
        &self,
        previous: Option<Duration>,
        retry_after: Option<Duration>,
        u: f64,
    ) -> Duration {
        let base = self.base_delay;
        let upper = previous
            .map_or(base, |p| p.max(base) * 3)
            .min(self.max_delay.max(base));
        let jittered = base + (upper.saturating_sub(base)).mul_f64(u.clamp(0.0, 1.0));
        match retry_after {
            Some(ra) => jittered.max(ra.min(self.max_retry_after)),
            None => jittered,
        }
    }
}

/// A [`BlobStore`] wrapper adding per-request timeouts and retries.
pub struct Retrying<S> {
    inner: S,
    policy: RetryPolicy,
    rng: Mutex<Box<dyn RngCore + Send>>,
}

impl<S: fmt::Debug> fmt::Debug for Retrying<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retrying")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S: BlobStore> Retrying<S> {
    /// Wraps `inner`, with jitter from an OS-seeded generator.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        Self::with_rng(inner, policy, rand::rngs::StdRng::from_os_rng())
    }

    /// Wraps `inner`, with jitter from `rng` (tests pass a seeded one).
    pub fn with_rng(inner: S, policy: RetryPolicy, rng: impl RngCore + Send + 'static) -> Self {
        Retrying {
            inner,
            policy,
            rng: Mutex::new(Box::new(rng)),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn sample(&self) -> f64 {
        match self.rng.lock() {
            Ok(mut rng) => rng.random::<f64>(),
            Err(poisoned) => poisoned.into_inner().random::<f64>(),
        }
    }

    async fn run<T, F, Fut>(
        &self,
        op: Op,
        name: &str,
        bytes: usize,
        mut attempt: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let timeout = self.policy.timeout_for(bytes);
        let max_tries = self.policy.max_tries.max(1);
        let mut delay = None;
        let mut tries = 0;
        loop {
            tries += 1;
            let result = match tokio::time::timeout(timeout, attempt()).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Timeout {
                    op,
                    name: name.to_string(),
                    after: timeout,
                }),
            };
            let err = match result {
                Ok(v) => {
                    if tries > 1 {
                        tracing::debug!(%op, blob = name, tries, "succeeded after retrying");
                    }
                    return Ok(v);
                }
                Err(e) => e,
            };
            if !err.is_transient() {
                return Err(err);
            }
            if tries >= max_tries {
                tracing::warn!(%op, blob = name, tries, error = %err, "giving up after retries");
                return Err(StoreError::RetriesExhausted {
                    op,
                    name: name.to_string(),
                    tries,
                    last: Box::new(err),
                });
            }
            let next = self
                .policy
                .next_delay(delay, err.retry_after(), self.sample());
            tracing::debug!(
                %op,
                blob = name,
                try_number = tries,
                delay_ms = next.as_millis() as u64,
                error = %err,
                "transient failure, retrying"
            );
            tokio::time::sleep(next).await;
            delay = Some(next);
        }
    }
}

#[async_trait]
impl<S: BlobStore> BlobStore for Retrying<S> {
    async fn put(&self, name: &BlobName, data: Bytes) -> Result<(), StoreError> {
        self.run(Op::Put, name.as_str(), data.len(), || {
            self.inner.put(name, data.clone())
        })
        .await
    }

    async fn get(&self, name: &BlobName) -> Result<Bytes, StoreError> {
        self.run(Op::Get, name.as_str(), MAX_OBJECT_SIZE, || {
            self.inner.get(name)
        })
        .await
    }

    async fn head(&self, name: &BlobName) -> Result<Option<BlobMeta>, StoreError> {
        self.run(Op::Head, name.as_str(), 0, || self.inner.head(name))
            .await
    }

    async fn delete(&self, name: &BlobName) -> Result<(), StoreError> {
        self.run(Op::Delete, name.as_str(), 0, || self.inner.delete(name))
            .await
    }

    async fn list_page(&self, prefix: &str, marker: Option<&str>) -> Result<ListPage, StoreError> {
        // A page of 5,000 names is about 1 MiB of XML.
        self.run(Op::List, prefix, 1 << 20, || {
            self.inner.list_page(prefix, marker)
        })
        .await
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
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A store whose `put` answers from a script of results, then succeeds.
    #[derive(Debug, Default)]
    struct Scripted {
        script: Mutex<VecDeque<Scripted1>>,
        calls: AtomicU32,
    }

    #[derive(Debug)]
    enum Scripted1 {
        Status(u16, Option<Duration>),
        Hang,
    }

    #[async_trait]
    impl BlobStore for Scripted {
        async fn put(&self, name: &BlobName, _: Bytes) -> Result<(), StoreError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let next = self.script.lock().unwrap().pop_front();
            match next {
                None => Ok(()),
                Some(Scripted1::Hang) => {
                    std::future::pending::<()>().await;
                    Ok(())
                }
                Some(Scripted1::Status(status, retry_after)) => Err(StoreError::Http {
                    op: Op::Put,
                    name: name.to_string(),
                    status,
                    code: None,
                    retry_after,
                }),
            }
        }
        async fn get(&self, _: &BlobName) -> Result<Bytes, StoreError> {
            Ok(Bytes::new())
        }
        async fn head(&self, _: &BlobName) -> Result<Option<BlobMeta>, StoreError> {
            Ok(None)
        }
        async fn delete(&self, _: &BlobName) -> Result<(), StoreError> {
            Ok(())
        }
        async fn list_page(&self, _: &str, _: Option<&str>) -> Result<ListPage, StoreError> {
            Ok(ListPage::default())
        }
        fn location(&self) -> String {
            "scripted".into()
        }
    }

    fn store(script: Vec<Scripted1>, policy: RetryPolicy) -> Retrying<Scripted> {
        let inner = Scripted {
            script: Mutex::new(script.into()),
            calls: AtomicU32::new(0),
        };
        Retrying::with_rng(inner, policy, rand::rngs::StdRng::seed_from_u64(7))
    }

    fn name() -> BlobName {
        BlobName::new("blob-1").unwrap()
    }

    #[test]
    fn decorrelated_jitter_bounds() {
        let p = RetryPolicy::default();
        assert_eq!(p.next_delay(None, None, 0.0), p.base_delay);
        assert_eq!(p.next_delay(None, None, 0.99), p.base_delay);
        let d = p.next_delay(Some(Duration::from_secs(1)), None, 0.5);
        assert!(
            d > Duration::from_secs(1) && d < Duration::from_secs(3),
            "{d:?}"
        );
        let d = p.next_delay(Some(Duration::from_secs(100)), None, 0.999);
        assert!(d <= p.max_delay, "{d:?}");
        let d = p.next_delay(None, Some(Duration::from_secs(5)), 0.0);
        assert_eq!(d, Duration::from_secs(5));
        let d = p.next_delay(None, Some(Duration::from_secs(3600)), 0.0);
        assert_eq!(d, p.max_retry_after);
        assert_eq!(p.timeout_for(8 << 20), Duration::from_secs(110));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_then_succeeds_honouring_retry_after() {
        use Scripted1::*;
        let s = store(
            vec![
                Status(500, None),
                Status(503, Some(Duration::from_secs(7))),
                Status(429, None),
            ],
            RetryPolicy::default(),
        );
        let start = tokio::time::Instant::now();
        s.put(&name(), Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(s.inner().calls.load(Ordering::SeqCst), 4);
        assert!(
            start.elapsed() >= Duration::from_secs(7),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn hung_request_times_out_and_is_retried() {
        let policy = RetryPolicy {
            request_timeout: Duration::from_secs(2),
            ..RetryPolicy::default()
        };
        let s = store(vec![Scripted1::Hang], policy);
        s.put(&name(), Bytes::new()).await.unwrap();
        assert_eq!(s.inner().calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_with_a_message_that_says_what_failed() {
        let policy = RetryPolicy {
            max_tries: 3,
            ..RetryPolicy::default()
        };
        let s = store(
            (0..5).map(|_| Scripted1::Status(503, None)).collect(),
            policy,
        );
        let err = s.put(&name(), Bytes::new()).await.unwrap_err();
        assert_eq!(s.inner().calls.load(Ordering::SeqCst), 3);
        assert_eq!(
            err.to_string(),
            "put of \"blob-1\" failed after 3 tries; last error: put of \"blob-1\": HTTP 503"
        );
        assert!(matches!(err.root(), StoreError::Http { status: 503, .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        for status in [400, 403, 404, 409] {
            let s = store(
                vec![Scripted1::Status(status, None)],
                RetryPolicy::default(),
            );
            let err = s.put(&name(), Bytes::new()).await.unwrap_err();
            assert!(matches!(err, StoreError::Http { .. }), "{err}");
            assert_eq!(s.inner().calls.load(Ordering::SeqCst), 1, "{status}");
        }
    }
}
