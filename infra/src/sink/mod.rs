//! Where producers (generate, fetch) put events.

#[cfg(feature = "eventhubs")]
mod eventhubs;
#[cfg(feature = "aws")]
mod kinesis;
mod local_log;
#[cfg(feature = "aws")]
mod select;

use async_trait::async_trait;
use thiserror::Error;

#[cfg(feature = "eventhubs")]
pub use eventhubs::{EventHubsSink, assign_partitions};
#[cfg(feature = "aws")]
pub use kinesis::{KinesisSink, RetryPolicy, plan_calls};
pub use local_log::{LocalStreamLog, LogRecord};
#[cfg(feature = "aws")]
pub use select::sink_from_env;

/// One record to send: the partition key picks the shard, so one key's events stay in order.
#[derive(Debug, Clone, PartialEq)]
pub struct OutRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// What a successful send did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendReport {
    pub records: usize,
    pub bytes: usize,
    /// Service calls made, retries included.
    pub calls: usize,
    /// Records that had to be sent again after a partial failure.
    pub retried: usize,
}

#[derive(Debug, Error)]
pub enum SinkError {
    /// Some records could not be delivered after every retry; the others were.
    #[error("{unsent} of {total} records were not sent: {reason}")]
    Unsent {
        unsent: usize,
        total: usize,
        reason: String,
    },
    #[error("record {index} is {size} bytes; the stream accepts at most {limit}")]
    TooLarge {
        index: usize,
        size: usize,
        limit: usize,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A partitioned stream that accepts batches of records.
///
/// Contract: `send` returns `Ok` only when every record was accepted. On `Err`, records may
/// have been partly delivered; the error says how many were not. Sending is at-least-once:
/// a retry after an error can duplicate records, which consumers absorb (sequence-number
/// checkpoints, event ids, deterministic lake keys).
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn send(&self, records: Vec<OutRecord>) -> Result<SendReport, SinkError>;
    /// What this sink writes to, for messages.
    fn describe(&self) -> String;
}

/// Kinesis' mapping from partition key to shard: the MD5 of the key as a 128-bit number,
/// placed in `shards` equal hash-key ranges.
pub fn shard_for(partition_key: &str, shards: usize) -> usize {
    use md5::{Digest, Md5};
    let digest = Md5::digest(partition_key.as_bytes());
    let hash = u128::from_be_bytes(digest.into());
    (((hash >> 64) * shards as u128) >> 64) as usize
}
