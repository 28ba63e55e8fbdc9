//! Azure Event Hubs sink (azure_messaging_eventhubs, AMQP).
//!
//! Each partition key maps to one of the hub's partitions by the same hash-range rule as Kinesis
//! shards ([`super::shard_for`]), so one key's events stay in order, and a send makes at most one
//! batch per partition instead of one per key (clickstream has thousands of keys). Batches are
//! filled until the hub's size limit (`try_add_event_data` says when) and then sent. A batch the
//! hub does not settle in time is built again and resent ([`EventHubsSink::with_send_timeout`]).

use std::collections::BTreeMap;

use async_trait::async_trait;
use std::time::Duration;

use azure_messaging_eventhubs::{EventDataBatch, EventDataBatchOptions, ProducerClient};

use super::{EventSink, OutRecord, SendReport, SinkError, shard_for};
use crate::secret::Secret;

/// Event Hubs' per-event limit on the Standard tier.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// How long a batch may wait to be settled before it is sent again.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(20);

/// Sends of one batch, the first included, before the sink gives up on it.
pub const SEND_ATTEMPTS: u32 = 3;

pub struct EventHubsSink {
    producer: ProducerClient,
    hub: String,
    partitions: Vec<String>,
    send_timeout: Duration,
}

impl EventHubsSink {
    /// Connects with a send-only connection string and reads the hub's partitions once.
    ///
    /// `endpoint` is where the AMQP socket goes when it is not the namespace named by the
    /// connection string: a proxy or private address as `amqps://host:port`, or a plain-TCP peer
    /// as `amqp://127.0.0.1:port` (the loopback hub of the tests). The connection string's
    /// namespace stays the AMQP host name and the audience of the SAS tokens.
    ///
    /// Errors: [`SinkError::Unsent`] naming the hub when the connection, the token exchange or
    /// the `$management` query of the hub's partitions fails, or the hub reports none.
    pub async fn open(
        connection_string: &Secret,
        hub: &str,
        endpoint: Option<&str>,
    ) -> Result<Self, SinkError> {
        let connect = |e: &dyn std::fmt::Display| SinkError::Unsent {
            unsent: 0,
            total: 0,
            reason: format!("connecting to event hub {hub}: {e}"),
        };
        let mut builder = ProducerClient::builder();
        if let Some(endpoint) = endpoint {
            builder = builder.with_custom_endpoint(endpoint.to_string());
        }
        let producer = builder
            .open_with_connection_string(connection_string.expose(), Some(hub))
            .await
            .map_err(|e| connect(&e))?;
        let properties = producer
            .get_eventhub_properties()
            .await
            .map_err(|e| connect(&e))?;
        if properties.partition_ids.is_empty() {
            return Err(connect(&"the hub reports no partitions"));
        }
        Ok(Self {
            producer,
            hub: hub.to_string(),
            partitions: properties.partition_ids,
            send_timeout: DEFAULT_SEND_TIMEOUT,
        })
    }

    /// How long one batch may wait for the hub to settle it before it is sent again (default
    /// [`DEFAULT_SEND_TIMEOUT`]).
    ///
    /// The client library does not fail a send whose connection drops before the hub settled
    /// it: the send waits for ever (found with the loopback hub). A batch unsettled after this
    /// long is built again and resent, at most [`SEND_ATTEMPTS`] times in all; a batch the hub
    /// did take before the drop arrives twice, which consumers absorb (event ids).
    pub fn with_send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Fills one batch for `partition` with as many of `pending` (in order) as fit.
    async fn fill(
        &self,
        partition: usize,
        records: &[OutRecord],
        pending: &[usize],
    ) -> Result<(EventDataBatch<'_>, usize), BatchError> {
        let options = EventDataBatchOptions {
            partition_id: Some(self.partitions[partition].clone()),
            ..Default::default()
        };
        let batch = self
            .producer
            .create_batch(Some(options))
            .await
            .map_err(|e| BatchError::Hub(e.to_string()))?;
        let mut taken = 0;
        for &i in pending {
            if !batch
                .try_add_event_data(records[i].data.clone(), None)
                .map_err(|e| BatchError::Hub(e.to_string()))?
            {
                break;
            }
            taken += 1;
        }
        if taken == 0 {
            return Err(BatchError::TooLarge(pending[0]));
        }
        Ok((batch, taken))
    }
}

/// Record indices per partition (index into `partitions`), in send order.
pub fn assign_partitions(records: &[OutRecord], partitions: usize) -> BTreeMap<usize, Vec<usize>> {
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        groups
            .entry(shard_for(&r.partition_key, partitions))
            .or_default()
            .push(i);
    }
    groups
}

enum BatchError {
    Hub(String),
    TooLarge(usize),
}

#[async_trait]
impl EventSink for EventHubsSink {
    async fn send(&self, records: Vec<OutRecord>) -> Result<SendReport, SinkError> {
        let total = records.len();
        for (index, r) in records.iter().enumerate() {
            if r.data.len() > MAX_EVENT_BYTES {
                return Err(SinkError::TooLarge {
                    index,
                    size: r.data.len(),
                    limit: MAX_EVENT_BYTES,
                });
            }
        }
        let mut report = SendReport {
            records: total,
            bytes: records.iter().map(|r| r.data.len()).sum(),
            ..Default::default()
        };
        let mut sent = 0;
        let fail = |sent: usize, reason: String| SinkError::Unsent {
            unsent: total - sent,
            total,
            reason: format!("event hub {}: {reason}", self.hub),
        };
        for (partition, indices) in assign_partitions(&records, self.partitions.len()) {
            let mut pending = &indices[..];
            let mut attempt = 1;
            while !pending.is_empty() {
                let (batch, taken) = match self.fill(partition, &records, pending).await {
                    Ok(filled) => filled,
                    Err(BatchError::Hub(e)) => return Err(fail(sent, e)),
                    Err(BatchError::TooLarge(i)) => {
                        return Err(SinkError::TooLarge {
                            index: i,
                            size: records[i].data.len(),
                            limit: MAX_EVENT_BYTES,
                        });
                    }
                };
                report.calls += 1;
                match tokio::time::timeout(self.send_timeout, self.producer.send_batch(batch, None))
                    .await
                {
                    Ok(Ok(())) => {
                        sent += taken;
                        pending = &pending[taken..];
                        attempt = 1;
                    }
                    // The client has already retried what it knows to be transient.
                    Ok(Err(e)) => return Err(fail(sent, e.to_string())),
                    Err(_) if attempt < SEND_ATTEMPTS => {
                        tracing::warn!(
                            hub = %self.hub,
                            partition = %self.partitions[partition],
                            events = taken,
                            attempt,
                            "the hub did not settle a batch within {:?}; sending it again",
                            self.send_timeout
                        );
                        attempt += 1;
                        report.retried += taken;
                    }
                    Err(_) => {
                        return Err(fail(
                            sent,
                            format!(
                                "partition {}: no batch settled within {:?} in {SEND_ATTEMPTS} attempts",
                                self.partitions[partition], self.send_timeout
                            ),
                        ));
                    }
                }
            }
        }
        Ok(report)
    }

    fn describe(&self) -> String {
        format!("event hub {}", self.hub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_one_partition_in_order_and_few_batches() {
        let records: Vec<OutRecord> = (0..5000)
            .map(|i| OutRecord {
                partition_key: format!("user-{}", i % 2000),
                data: format!("{i}").into_bytes(),
            })
            .collect();
        let groups = assign_partitions(&records, 4);
        assert_eq!(groups.len(), 4, "2000 keys spread over every partition");
        assert_eq!(groups.values().map(Vec::len).sum::<usize>(), 5000);
        for indices in groups.values() {
            assert!(indices.windows(2).all(|w| w[0] < w[1]), "send order kept");
        }
        let partition_of = |key: &str| {
            groups
                .iter()
                .find(|(_, ix)| ix.iter().any(|&i| records[i].partition_key == key))
                .map(|(p, _)| *p)
        };
        for i in (0..5000).step_by(7) {
            assert_eq!(
                partition_of(&records[i].partition_key),
                Some(shard_for(&records[i].partition_key, 4))
            );
        }
    }
}
