//! The S3 store passes the same conformance suite as the local directory store, against moto
//! server started here on 127.0.0.1 (`SLUICE_MOTO_SERVER` = path of `moto_server`; tests/run.sh
//! sets it). Without it the test says loudly that it did not run.
#![cfg(feature = "aws")]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_infra::store::{ObjectStore, Precondition, S3Store, StoreError, conformance};

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto(binary: &str) -> (Moto, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "moto did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (Moto(child), format!("http://127.0.0.1:{port}"))
}

fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    use aws_sdk_s3::config::{Credentials, Region, SharedCredentialsProvider};
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "test",
        )))
        .endpoint_url(endpoint)
        .build()
}

#[tokio::test]
async fn s3_store_conforms_on_moto() {
    let Ok(binary) = std::env::var("SLUICE_MOTO_SERVER") else {
        eprintln!(
            "SKIPPED: set SLUICE_MOTO_SERVER to moto_server's path to run the S3 conformance suite"
        );
        return;
    };
    let (_moto, endpoint) = start_moto(&binary);
    let config = sdk_config(&endpoint);
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    client
        .create_bucket()
        .bucket("sluice-conformance")
        .send()
        .await
        .unwrap();
    let store = S3Store::new(&config, "sluice-conformance");
    conformance(&store).await;

    // Missing bucket: a clear, non-retryable error naming the key, not a panic or a None.
    let missing = S3Store::new(&config, "no-such-bucket");
    match missing.put("k", b"x".to_vec()).await {
        Err(
            e @ StoreError::Backend {
                retryable: false, ..
            },
        ) => assert!(e.to_string().contains('k')),
        other => panic!("expected a non-retryable backend error, got {other:?}"),
    }
    assert!(matches!(
        store
            .put_if("conformance/a.bin", vec![], Precondition::DoesNotExist)
            .await,
        Err(StoreError::PreconditionFailed { .. })
    ));
}
