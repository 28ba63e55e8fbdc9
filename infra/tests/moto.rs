//! AWS backends against moto server started here on 127.0.0.1 (`SLUICE_MOTO_SERVER` = path of
//! `moto_server`; tests/run.sh sets it): the S3 store passes the same conformance suite as the
//! local directory store, and Secrets Manager reads are cached and never print the value.
//! Without moto the tests say loudly that they did not run.
#![cfg(feature = "aws")]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_infra::secret::{SecretError, SecretSource, SecretsManagerSource};
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

/// moto on a free port, or `None` (with a loud line) when `SLUICE_MOTO_SERVER` is unset.
/// The moto server these tests need. A missing server fails the test rather than passing it
/// unchecked: `bash tests/run.sh` installs moto and sets `SLUICE_MOTO_SERVER`.
fn moto() -> Option<(Moto, String)> {
    match std::env::var("SLUICE_MOTO_SERVER") {
        Ok(binary) => Some(start_moto(&binary)),
        Err(_) => panic!(
            "SLUICE_MOTO_SERVER is not set: these tests need moto_server (bash tests/run.sh installs it and sets the variable)"
        ),
    }
}

#[tokio::test]
async fn secrets_are_read_once_and_never_printed() {
    let Some((server, endpoint)) = moto() else {
        return;
    };
    let config = sdk_config(&endpoint);
    let admin = aws_sdk_secretsmanager::Client::new(&config);
    let arn = admin
        .create_secret()
        .name("sluice/fetch-key")
        .secret_string("s3cr3t-value")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let source = SecretsManagerSource::new(&config);
    let secret = source.get(&arn).await.unwrap();
    assert_eq!(secret.expose(), "s3cr3t-value");
    assert!(
        !format!("{secret:?}").contains("s3cr3t"),
        "Debug must not show the value"
    );
    // Rotated: `get` keeps serving the cached value, `refresh` reads the new one.
    admin
        .put_secret_value()
        .secret_id(&arn)
        .secret_string("r0tated-value")
        .send()
        .await
        .unwrap();
    assert_eq!(source.get(&arn).await.unwrap().expose(), "s3cr3t-value");
    assert_eq!(
        source.refresh(&arn).await.unwrap().expose(),
        "r0tated-value"
    );
    // Cached: still served with the service gone.
    drop(server);
    assert_eq!(source.get(&arn).await.unwrap().expose(), "r0tated-value");
    let Some((_moto2, endpoint2)) = moto() else {
        return;
    };
    let fresh = SecretsManagerSource::new(&sdk_config(&endpoint2));
    match fresh.get("sluice/missing").await {
        Err(e @ SecretError::NotFound { .. }) => assert!(e.to_string().contains("sluice/missing")),
        other => panic!("expected NotFound naming the secret, got {other:?}"),
    }
}

#[tokio::test]
async fn s3_store_conforms_on_moto() {
    let Some((_moto, endpoint)) = moto() else {
        return;
    };
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
