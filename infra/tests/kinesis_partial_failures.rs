//! KinesisSink against a local server speaking the Kinesis JSON protocol that fails chosen
//! PutRecords entries (moto cannot): only failed entries are re-sent, nothing is lost or
//! duplicated beyond those retries, and a record that never succeeds is reported as unsent.
#![cfg(feature = "aws")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use sluice_infra::sink::{EventSink, KinesisSink, OutRecord, RetryPolicy, SinkError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Data of every entry received, in order, across all calls.
type Received = Arc<Mutex<Vec<String>>>;

/// Serves PutRecords; `fail(data, times_seen_before)` decides whether an entry fails.
async fn serve(fail: fn(&str, usize) -> bool) -> (String, Received, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let calls = Arc::new(Mutex::new(0usize));
    let (rec, calls2) = (received.clone(), calls.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (rec, calls) = (rec.clone(), calls2.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // Read one request: headers, then Content-Length bytes of body.
                    let header_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 65536];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..header_end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < header_end + length {
                        let mut chunk = [0u8; 65536];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: serde_json::Value =
                        serde_json::from_slice(&buf[header_end..header_end + length]).unwrap();
                    buf.drain(..header_end + length);
                    *calls.lock().unwrap() += 1;
                    let mut results = Vec::new();
                    let mut failed = 0;
                    for entry in body["Records"].as_array().unwrap() {
                        let data = base64::engine::general_purpose::STANDARD
                            .decode(entry["Data"].as_str().unwrap())
                            .unwrap();
                        let data = String::from_utf8(data).unwrap();
                        let mut seen = rec.lock().unwrap();
                        let before = seen.iter().filter(|d| **d == data).count();
                        seen.push(data.clone());
                        if fail(&data, before) {
                            failed += 1;
                            results.push(serde_json::json!({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard"}));
                        } else {
                            results.push(serde_json::json!({"SequenceNumber": format!("{}", seen.len()), "ShardId": "shardId-000000000000"}));
                        }
                    }
                    let out = serde_json::json!({"FailedRecordCount": failed, "Records": results})
                        .to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: t\r\nContent-Length: {}\r\n\r\n{out}",
                        out.len()
                    );
                    if socket.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), received, calls)
}

fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    use aws_sdk_kinesis::config::{Credentials, Region, SharedCredentialsProvider};
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "test",
        )))
        .endpoint_url(endpoint)
        .build()
}

fn records(n: usize) -> Vec<OutRecord> {
    (0..n)
        .map(|i| OutRecord {
            partition_key: format!("k{}", i % 13),
            data: format!("r{i}").into_bytes(),
        })
        .collect()
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

#[tokio::test]
async fn only_failed_entries_are_resent_and_nothing_is_lost() {
    // Every 7th record fails the first time it is seen.
    let (endpoint, received, calls) =
        serve(|data, before| before == 0 && data[1..].parse::<usize>().unwrap() % 7 == 0).await;
    let sink = KinesisSink::new(&sdk_config(&endpoint), "s").with_retry_policy(fast());
    let report = sink.send(records(1200)).await.unwrap();
    let failed_once = (0..1200).filter(|i| i % 7 == 0).count();
    assert_eq!(report.retried, failed_once);
    let got = received.lock().unwrap().clone();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for d in &got {
        *counts.entry(d.as_str()).or_default() += 1;
    }
    assert_eq!(counts.len(), 1200, "every record arrived");
    for i in 0..1200 {
        let expected = if i % 7 == 0 { 2 } else { 1 };
        assert_eq!(counts[format!("r{i}").as_str()], expected, "record r{i}");
    }
    // 3 calls for 1200 records (500 + 500 + 200), plus one retry call per batch.
    assert_eq!(*calls.lock().unwrap(), 6);
    assert_eq!(report.calls, 6);
}

#[tokio::test]
async fn a_record_that_never_succeeds_is_reported_not_dropped() {
    let (endpoint, received, _) = serve(|data, _| data == "r5").await;
    let sink = KinesisSink::new(&sdk_config(&endpoint), "s").with_retry_policy(fast());
    match sink.send(records(10)).await {
        Err(SinkError::Unsent {
            unsent: 1,
            total: 10,
            reason,
        }) => assert!(reason.contains("ProvisionedThroughputExceeded"), "{reason}"),
        other => panic!("expected one unsent record, got {other:?}"),
    }
    let r5 = received
        .lock()
        .unwrap()
        .iter()
        .filter(|d| *d == "r5")
        .count();
    assert_eq!(r5, 5, "tried max_attempts times");
}

#[tokio::test]
async fn oversized_records_are_refused_before_sending() {
    let sink = KinesisSink::new(&sdk_config("http://127.0.0.1:9"), "s");
    let big = vec![OutRecord {
        partition_key: "k".into(),
        data: vec![b'x'; 1024 * 1024],
    }];
    assert!(matches!(
        sink.send(big).await,
        Err(SinkError::TooLarge { index: 0, .. })
    ));
}
