//! Helpers for tests of the blob stores: names, deterministic bodies,
//! short-budget options, and an Azurite container opened through the
//! standard layers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clfs_fs::store::azure::{AzureOptions, AzureStore};
use clfs_fs::store::retry::RetryPolicy;
use clfs_fs::store::url::Location;
use clfs_fs::store::{self, BlobName, BlobStore, StoreOptions};

/// No credentials from the real environment leak into the tests.
pub fn no_env(_: &str) -> Option<String> {
    None
}

pub fn name(s: &str) -> BlobName {
    BlobName::new(s).unwrap_or_else(|e| panic!("{e}"))
}

/// Deterministic content of a given length.
pub fn body(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Options for tests: the defaults, with a shorter timeout and retry budget
/// so that a broken test fails quickly.
pub fn test_options() -> StoreOptions {
    StoreOptions {
        retry: RetryPolicy {
            max_tries: 6,
            request_timeout: Duration::from_secs(20),
            ..RetryPolicy::default()
        },
        ..StoreOptions::default()
    }
}

/// Creates the container through a bare client, then opens it through
/// `store::open_with_env` with the standard layers.
pub async fn open_azurite(url: &str, options: &StoreOptions) -> Arc<dyn BlobStore> {
    let Location::Azure(target) = Location::parse(url, &no_env).expect("parse url") else {
        panic!("not an Azure URL: {url}");
    };
    let bare = AzureStore::new(target, &AzureOptions::default()).expect("client");
    bare.create_container().await.expect("create container");
    store::open_with_env(url, options, &no_env).expect("open store")
}
