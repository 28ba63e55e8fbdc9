//! Kinesis Data Streams sink (PutRecords).
//!
//! Batches to the service limits (500 records and 5 MiB per call, 1 MiB per record counting the
//! partition key). A partially failed call is normal under throttling: only the entries that
//! failed are sent again, with capped exponential backoff and full jitter
//! (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html). After
//! `max_attempts` the send fails with the number of records that were not delivered.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use super::{EventSink, OutRecord, SendReport, SinkError};

pub const MAX_RECORDS_PER_CALL: usize = 500;
pub const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;
pub const MAX_BYTES_PER_RECORD: usize = 1024 * 1024;
const MAX_PARTITION_KEY_CHARS: usize = 256;

/// How hard to try before giving up.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: uniform in [0, min(max, base · 2^attempt)].
    pub fn delay(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        cap.mul_f64(fastrand::f64())
    }
}

pub struct KinesisSink {
    client: Client,
    stream_name: String,
    policy: RetryPolicy,
}

impl KinesisSink {
    pub fn new(config: &aws_config::SdkConfig, stream_name: impl Into<String>) -> Self {
        Self {
            client: Client::new(config),
            stream_name: stream_name.into(),
            policy: RetryPolicy::default(),
        }
    }

    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }
}

fn record_size(r: &OutRecord) -> usize {
    r.data.len() + r.partition_key.len()
}

/// Splits records into calls that respect the count and byte limits, keeping order.
pub fn plan_calls(records: &[OutRecord]) -> Vec<std::ops::Range<usize>> {
    let mut calls = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in records.iter().enumerate() {
        let size = record_size(r);
        if i > start && (i - start == MAX_RECORDS_PER_CALL || bytes + size > MAX_BYTES_PER_CALL) {
            calls.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < records.len() {
        calls.push(start..records.len());
    }
    calls
}

#[async_trait]
impl EventSink for KinesisSink {
    async fn send(&self, records: Vec<OutRecord>) -> Result<SendReport, SinkError> {
        for (index, r) in records.iter().enumerate() {
            if record_size(r) > MAX_BYTES_PER_RECORD {
                return Err(SinkError::TooLarge {
                    index,
                    size: record_size(r),
                    limit: MAX_BYTES_PER_RECORD,
                });
            }
            if r.partition_key.is_empty()
                || r.partition_key.chars().count() > MAX_PARTITION_KEY_CHARS
            {
                return Err(SinkError::Unsent {
                    unsent: records.len(),
                    total: records.len(),
                    reason: format!("record {index}: partition key must be 1 to 256 characters"),
                });
            }
        }
        let total = records.len();
        let mut report = SendReport {
            records: total,
            bytes: records.iter().map(|r| r.data.len()).sum(),
            ..Default::default()
        };
        let mut sent = 0;
        for range in plan_calls(&records) {
            let mut pending: Vec<&OutRecord> = records[range].iter().collect();
            let mut attempt = 0;
            loop {
                let entries: Vec<PutRecordsRequestEntry> = pending
                    .iter()
                    .map(|r| {
                        PutRecordsRequestEntry::builder()
                            .data(Blob::new(r.data.clone()))
                            .partition_key(&r.partition_key)
                            .build()
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|e| SinkError::Unsent {
                        unsent: total - sent,
                        total,
                        reason: e.to_string(),
                    })?;
                report.calls += 1;
                let outcome = self
                    .client
                    .put_records()
                    .stream_name(&self.stream_name)
                    .set_records(Some(entries))
                    .send()
                    .await;
                let reason = match outcome {
                    Ok(out) => {
                        let failed: Vec<&OutRecord> = out
                            .records()
                            .iter()
                            .zip(&pending)
                            .filter(|(result, _)| result.error_code().is_some())
                            .map(|(_, r)| *r)
                            .collect();
                        let first_error = out
                            .records()
                            .iter()
                            .find_map(|r| r.error_code().map(str::to_string));
                        sent += pending.len() - failed.len();
                        if failed.is_empty() {
                            break;
                        }
                        report.retried += failed.len();
                        pending = failed;
                        first_error.unwrap_or_else(|| "partial failure".into())
                    }
                    Err(err) => {
                        let retryable = err.as_service_error().is_none_or(|e| {
                            e.is_provisioned_throughput_exceeded_exception()
                                || e.is_kms_throttling_exception()
                        });
                        let reason =
                            format!("{}", aws_sdk_kinesis::error::DisplayErrorContext(&err));
                        if !retryable {
                            return Err(SinkError::Unsent {
                                unsent: total - sent,
                                total,
                                reason,
                            });
                        }
                        reason
                    }
                };
                attempt += 1;
                if attempt >= self.policy.max_attempts {
                    return Err(SinkError::Unsent {
                        unsent: total - sent,
                        total,
                        reason: format!("gave up after {attempt} attempts: {reason}"),
                    });
                }
                tracing::debug!(attempt, pending = pending.len(), %reason, "retrying failed PutRecords entries");
                tokio::time::sleep(self.policy.delay(attempt)).await;
            }
        }
        Ok(report)
    }

    fn describe(&self) -> String {
        format!("kinesis stream {}", self.stream_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_respect_count_and_byte_limits() {
        let small: Vec<OutRecord> = (0..1200)
            .map(|i| OutRecord {
                partition_key: format!("k{i}"),
                data: vec![0; 100],
            })
            .collect();
        let plan = plan_calls(&small);
        assert_eq!(
            plan.iter().map(|r| r.len()).collect::<Vec<_>>(),
            vec![500, 500, 200]
        );
        let big: Vec<OutRecord> = (0..12)
            .map(|_| OutRecord {
                partition_key: "k".into(),
                data: vec![0; 1_000_000],
            })
            .collect();
        let plan = plan_calls(&big);
        assert!(plan.iter().all(|r| r.len() <= 5), "{plan:?}");
        assert_eq!(plan.iter().map(|r| r.len()).sum::<usize>(), 12);
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        for attempt in 0..20 {
            assert!(p.delay(attempt) <= p.max_delay);
        }
    }
}
