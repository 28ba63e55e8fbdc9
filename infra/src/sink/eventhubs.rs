//! Azure Event Hubs sink (azure_messaging_eventhubs, AMQP).
//!
//! Each partition key maps to one of the hub's partitions by the same hash-range rule as Kinesis
//! shards ([`super::shard_for`]), so one key's events stay in order, and a send makes at most one
//! batch per partition instead of one per key (clickstream has thousands of keys). Batches are
//! filled until the hub's size limit (`try_add_event_data` says when) and then sent.

use std::collections::BTreeMap;

use async_trait::async_trait;
use azure_messaging_eventhubs::{EventDataBatchOptions, ProducerClient};

use super::{EventSink, OutRecord, SendReport, SinkError, shard_for};
use crate::secret::Secret;

/// Event Hubs' per-event limit on the Standard tier.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

pub struct EventHubsSink {
    producer: ProducerClient,
    hub: String,
    partitions: Vec<String>,
}

impl EventHubsSink {
    /// Connects with a send-only connection string and reads the hub's partitions once.
    pub async fn open(connection_string: &Secret, hub: &str) -> Result<Self, SinkError> {
        let connect = |e: &dyn std::fmt::Display| SinkError::Unsent {
            unsent: 0,
            total: 0,
            reason: format!("connecting to event hub {hub}: {e}"),
        };
        let producer = ProducerClient::builder()
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
        })
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
        let fail = |sent: usize, e: &dyn std::fmt::Display| SinkError::Unsent {
            unsent: total - sent,
            total,
            reason: e.to_string(),
        };
        for (partition, indices) in assign_partitions(&records, self.partitions.len()) {
            let options = || {
                Some(EventDataBatchOptions {
                    partition_id: Some(self.partitions[partition].clone()),
                    ..Default::default()
                })
            };
            let mut batch = self
                .producer
                .create_batch(options())
                .await
                .map_err(|e| fail(sent, &e))?;
            let mut in_batch = 0;
            for &i in &indices {
                // Add to the open batch; when it is full, send it and start a new one.
                while !batch
                    .try_add_event_data(records[i].data.clone(), None)
                    .map_err(|e| fail(sent, &e))?
                {
                    if in_batch == 0 {
                        return Err(SinkError::TooLarge {
                            index: i,
                            size: records[i].data.len(),
                            limit: MAX_EVENT_BYTES,
                        });
                    }
                    self.producer
                        .send_batch(batch, None)
                        .await
                        .map_err(|e| fail(sent, &e))?;
                    report.calls += 1;
                    sent += in_batch;
                    in_batch = 0;
                    batch = self
                        .producer
                        .create_batch(options())
                        .await
                        .map_err(|e| fail(sent, &e))?;
                }
                in_batch += 1;
            }
            if in_batch > 0 {
                self.producer
                    .send_batch(batch, None)
                    .await
                    .map_err(|e| fail(sent, &e))?;
                report.calls += 1;
                sent += in_batch;
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
