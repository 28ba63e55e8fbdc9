//! Reading a Kinesis shard's records again, between two sequence numbers: what the aggregate
//! function's DLQ replay needs (`GetShardIterator AT_SEQUENCE_NUMBER`, then `GetRecords`
//! until past the last one; <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetShardIterator.html>).

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{DisplayErrorContext, SdkError};
use aws_sdk_kinesis::types::ShardIteratorType;
use thiserror::Error;

use sluice_core::shard::compare_sequence;

/// One record read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    pub sequence: String,
    /// `ApproximateArrivalTimestamp`, ms since the epoch.
    pub arrival_ms: i64,
    pub partition_key: String,
    pub data: Vec<u8>,
}

#[derive(Debug, Error)]
#[error("{message}")]
pub struct ReadError {
    pub message: String,
    /// False when the records are gone (past the stream's retention) or the request is wrong.
    pub retryable: bool,
}

fn read_error<E: std::error::Error + 'static, R>(err: SdkError<E, R>) -> ReadError
where
    R: std::fmt::Debug,
{
    let retryable = matches!(
        err,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) || format!("{err:?}").contains("ProvisionedThroughputExceeded");
    ReadError {
        message: DisplayErrorContext(&err).to_string(),
        retryable,
    }
}

/// Reads a shard again from a stream (by ARN).
pub struct KinesisRangeSource {
    client: Client,
}

impl KinesisRangeSource {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: Client::new(config),
        }
    }

    /// The shards of the stream named `stream` that are closed (a reshard split or merged them:
    /// their `SequenceNumberRange` has an `EndingSequenceNumber`).
    pub async fn closed_shards(&self, stream: &str) -> Result<Vec<String>, ReadError> {
        let mut closed = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let request = match &token {
                Some(t) => self.client.list_shards().next_token(t),
                None => self.client.list_shards().stream_name(stream),
            };
            let page = request.send().await.map_err(read_error)?;
            for shard in page.shards() {
                let ended = shard
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_some();
                if ended {
                    closed.push(shard.shard_id().to_string());
                }
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(closed);
            }
        }
    }

    /// Whether the shard holds a record after `sequence` (reads at most a few pages: a closed
    /// shard read to its end returns no records, then no next iterator).
    pub async fn has_records_after(
        &self,
        stream: &str,
        shard_id: &str,
        sequence: &str,
    ) -> Result<bool, ReadError> {
        let iterator = self
            .client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard_id)
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(sequence)
            .send()
            .await
            .map_err(read_error)?;
        let mut next = iterator.shard_iterator().map(str::to_string);
        for _ in 0..5 {
            let Some(it) = next.take() else {
                return Ok(false);
            };
            let page = self
                .client
                .get_records()
                .shard_iterator(it)
                .limit(1)
                .send()
                .await
                .map_err(read_error)?;
            if !page.records().is_empty() {
                return Ok(true);
            }
            next = page.next_shard_iterator().map(str::to_string);
        }
        Ok(false)
    }

    /// Every record of `shard_id` from `first` to `last` (sequence numbers, inclusive), in
    /// order. Records past the stream's retention are gone: an error that says so, not
    /// retryable.
    pub async fn read(
        &self,
        stream_arn: &str,
        shard_id: &str,
        first: &str,
        last: &str,
    ) -> Result<Vec<StreamRecord>, ReadError> {
        let iterator = self
            .client
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard_id)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(first)
            .send()
            .await
            .map_err(read_error)?;
        let mut next = iterator.shard_iterator().map(str::to_string);
        let mut out = Vec::new();
        while let Some(it) = next.take() {
            let page = self
                .client
                .get_records()
                .stream_arn(stream_arn)
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .map_err(read_error)?;
            let mut past = false;
            for r in page.records() {
                if compare_sequence(r.sequence_number(), last) == std::cmp::Ordering::Greater {
                    past = true;
                    break;
                }
                out.push(StreamRecord {
                    sequence: r.sequence_number().to_string(),
                    arrival_ms: r
                        .approximate_arrival_timestamp()
                        .and_then(|t| t.to_millis().ok())
                        .unwrap_or_default(),
                    partition_key: r.partition_key().to_string(),
                    data: r.data().as_ref().to_vec(),
                });
            }
            let reached = out
                .last()
                .is_some_and(|r| compare_sequence(&r.sequence, last) != std::cmp::Ordering::Less);
            // An empty page at the tip of an open shard ends the read too.
            if past || reached || page.records().is_empty() {
                break;
            }
            next = page.next_shard_iterator().map(str::to_string);
        }
        Ok(out)
    }
}
