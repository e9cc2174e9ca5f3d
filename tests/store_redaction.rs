//! Secrets never reach logs, error messages or `Debug` output. A test
//! binary of its own: the log capture is the thread's default subscriber,
//! and tests running beside it on other threads would race the
//! per-callsite interest cache of `tracing` (the retry log line was then
//! sometimes never recorded).

mod common;

use std::time::Duration;

use bytes::Bytes;
use clfs_fs::store::retry::RetryPolicy;
use clfs_fs::store::url::{Location, ENV_SAS_TOKEN};
use clfs_fs::store::{self, list_all, StoreOptions};

use common::azurite::{Azurite, ACCOUNT, ACCOUNT_KEY};
use common::fault_proxy::{mixed_schedule, FaultProxy};
use common::stores::{body, name, no_env, open_azurite, test_options};

/// Runs traffic with a SAS in the URL (including retries, 403s, connection
/// errors and a bad URL) with every log line at TRACE level captured, and
/// requires that no form of the signature appears in the logs, in error
/// messages or in `Debug` output.
#[test]
fn sas_signature_never_appears_in_logs() {
    let capture = common::Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let good = common::account_sas(ACCOUNT, ACCOUNT_KEY, "racwdl", "2099-01-01T00:00:00Z");
    let read_only = common::account_sas(ACCOUNT, ACCOUNT_KEY, "rl", "2099-01-01T00:00:00Z");
    let mut outputs: Vec<String> = Vec::new();

    runtime.block_on(async {
        let az = Azurite::start();
        let container = "secrets";
        let _ = open_azurite(&az.container_url(container), &test_options()).await;
        let proxy =
            FaultProxy::start(az.port(), mixed_schedule(7, 40, Duration::from_secs(3))).await;
        let options = StoreOptions {
            retry: RetryPolicy {
                max_tries: 15,
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(200),
                request_timeout: Duration::from_secs(2),
                ..RetryPolicy::default()
            },
            ..StoreOptions::default()
        };
        let url = format!(
            "http://127.0.0.1:{}/{ACCOUNT}/{container}?{good}",
            proxy.port()
        );
        let store = store::open_with_env(&url, &options, &no_env).expect("open");
        outputs.push(format!("{store:?}"));
        outputs.push(store.location());
        tracing::debug!(?store, location = %store.location(), "store opened");
        for i in 0..60 {
            let n = name(&format!("s-{i}"));
            store
                .put(&n, body(i, 2000))
                .await
                .expect("put through faults");
            store.get(&n).await.expect("get through faults");
        }
        let listed = list_all(store.as_ref(), "s-").await.expect("list");
        assert_eq!(listed.len(), 60);
        for m in &listed {
            store.delete(&m.name).await.expect("delete");
        }
        assert!(proxy.disturbed() > 0);

        // A 403, with the SAS in the URL and from the environment.
        let url = format!("{}?{read_only}", az.container_url(container));
        let ro = store::open_with_env(&url, &options, &no_env).expect("open");
        let err = ro.put(&name("x"), Bytes::new()).await.expect_err("403");
        tracing::error!(error = %err, debug = ?err, "403 as logged by a caller");
        outputs.push(format!("{err} {err:?}"));
        let env = |k: &str| (k == ENV_SAS_TOKEN).then(|| read_only.clone());
        let ro = store::open_with_env(&az.container_url(container), &options, &env).expect("open");
        outputs.push(format!("{ro:?} {}", ro.location()));
        let err = ro.put(&name("x"), Bytes::new()).await.expect_err("403");
        outputs.push(format!("{err} {err:?}"));

        // Connection refused, retried, with the SAS in the URL.
        let dead_port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let url = format!("http://127.0.0.1:{dead_port}/{ACCOUNT}/{container}?{good}");
        let dead = store::open_with_env(
            &url,
            &StoreOptions {
                retry: RetryPolicy {
                    max_tries: 2,
                    ..options.retry.clone()
                },
                ..options.clone()
            },
            &no_env,
        )
        .expect("open");
        let err = dead.get(&name("x")).await.expect_err("refused");
        tracing::warn!("caller logs: {err}; {err:?}");
        outputs.push(format!("{err} {err:?}"));

        // Bad URLs that carry the SAS.
        for bad in [
            format!("http://127.0.0.1:1/{ACCOUNT}/{container}/blob?{good}"),
            format!("https://acct.blob.core.windows.net/Bad_Name?{good}"),
            format!("http://127.0.0.1:1/{ACCOUNT}/{container}?{good}#frag"),
        ] {
            let err = Location::parse(&bad, &no_env).expect_err("bad url");
            outputs.push(format!("{err} {err:?}"));
        }
        let loc = Location::parse(&format!("{}?{good}", az.container_url(container)), &no_env)
            .expect("parse");
        tracing::info!(%loc, ?loc, "parsed location");
        outputs.push(format!("{loc} {loc:?}"));
    });

    let logs = capture.text();
    assert!(
        logs.contains("transient failure, retrying"),
        "capture saw no retry logs:\n{logs}"
    );
    assert!(
        logs.contains("sig=<redacted>"),
        "the redacted form was not logged"
    );
    let all = format!("{logs}\n{}", outputs.join("\n"));
    for sas in [&good, &read_only] {
        for form in common::sig_forms(sas) {
            assert!(!all.contains(&form), "signature {form:?} leaked:\n{all}");
        }
    }
}
