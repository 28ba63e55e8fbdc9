//! The Kinesis trigger's payload, read the way the hot path wants it: every string borrowed
//! from the payload's bytes, fields the handler never uses skipped without allocating, and every
//! record's base64 data decoded into one shared buffer. [`kinesis_event`] writes the same shape
//! from stream records, for the local pipeline, `sluice bench` and tests.
//!
//! Half of a 10,000-record invocation used to go into building `aws_lambda_events`' owned
//! `KinesisEvent` (eleven `String`s and a `Vec` per record) only to read four fields of it. Its
//! `approximateArrivalTimestamp` parser also misreads fractional seconds (`.5` became 5 ms);
//! here the timestamp is read as the float seconds Lambda sends.

use std::borrow::Cow;
use std::ops::Range;

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use serde::Deserialize;
use sluice_infra::sink::{LocalStreamLog, LogRecord};
use thiserror::Error;

use crate::{InRecord, kpl};
use sluice_core::shard::EnvelopeError;
pub use sluice_core::stream::Unframing;

/// Largest record a gzip-compressed one may expand to: a bigger one is quarantined, not read.
pub const MAX_DECOMPRESSED: usize = 16 * 1024 * 1024;

/// The records one envelope record holds once unwrapped as `how` says: gzip-decompressed
/// (into `data`) when it starts with gzip's magic bytes, then, with NDJSON, one per non-empty
/// line. Each comes back as (its bytes in `data`, its sub-sequence number, why it cannot be
/// read). A record of one line keeps `sub`; lines of a record of several are numbered, within
/// a KPL user record as `(user index << 32) | line`.
fn unframe(
    data: &mut Vec<u8>,
    range: Range<usize>,
    sub: Option<u64>,
    how: Unframing,
) -> Vec<(Range<usize>, Option<u64>, Option<String>)> {
    let mut range = range;
    if how.gzip && data[range.clone()].starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut out = Vec::new();
        let read = flate2::read::MultiGzDecoder::new(&data[range.clone()])
            .take(MAX_DECOMPRESSED as u64 + 1)
            .read_to_end(&mut out);
        let error = match read {
            Err(e) => Some(format!("gzip: {e}")),
            Ok(n) if n > MAX_DECOMPRESSED => Some(format!(
                "gzip: the record expands beyond {MAX_DECOMPRESSED} bytes"
            )),
            Ok(_) => None,
        };
        if error.is_some() {
            return vec![(range, sub, error)];
        }
        let start = data.len();
        data.extend_from_slice(&out);
        range = start..data.len();
    }
    if !how.ndjson {
        return vec![(range, sub, None)];
    }
    let mut lines = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let end = data[at..range.end]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(range.end, |i| at + i);
        let mut line = at..end;
        if data[line.clone()].last() == Some(&b'\r') {
            line.end -= 1;
        }
        if !data[line.clone()].iter().all(u8::is_ascii_whitespace) {
            lines.push(line);
        }
        at = end + 1;
    }
    if lines.len() <= 1 {
        return vec![(lines.pop().unwrap_or(range), sub, None)];
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| {
            let index = sub.map_or(i as u64, |k| (k << 32) | i as u64);
            (line, Some(index), None)
        })
        .collect()
}

/// The Kinesis event Lambda delivers for `records` read from the stream `stream_arn`, every
/// field as AWS fills it.
pub fn kinesis_event(stream_arn: &str, records: &[LogRecord]) -> KinesisEvent {
    let mut event = KinesisEvent::default();
    event.records = records
        .iter()
        .map(|r| {
            let shard = LocalStreamLog::shard_id(r.shard);
            let mut rec = KinesisEventRecord::default();
            rec.aws_region = stream_arn.split(':').nth(3).map(str::to_string);
            rec.event_id = Some(format!("{shard}:{}", r.sequence));
            rec.event_name = Some("aws:kinesis:record".into());
            rec.event_source = Some("aws:kinesis".into());
            rec.event_source_arn = Some(stream_arn.into());
            rec.event_version = Some("1.0".into());
            rec.kinesis.approximate_arrival_timestamp.0 =
                chrono::DateTime::from_timestamp_millis(r.arrival_ms).unwrap_or_default();
            rec.kinesis.data.0 = r.data.clone();
            rec.kinesis.partition_key = r.partition_key.clone();
            rec.kinesis.sequence_number = r.sequence.to_string();
            rec.kinesis.kinesis_schema_version = Some("1.0".into());
            rec
        })
        .collect();
    event
}

/// [`kinesis_event`] as the bytes the runtime hands over.
pub fn kinesis_payload(stream_arn: &str, records: &[LogRecord]) -> Vec<u8> {
    // Cannot fail: no maps with non-string keys, no non-finite floats.
    serde_json::to_vec(&kinesis_event(stream_arn, records)).unwrap_or_default()
}

#[derive(Debug, Error)]
pub enum PayloadError {
    #[error("not a Kinesis event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not a Kinesis event: invalid UTF-8 at byte {at}")]
    Utf8 { at: usize },
    #[error("record {index} (sequence {sequence}): approximateArrivalTimestamp is not a number")]
    Arrival { index: usize, sequence: String },
    /// Valid JSON of another trigger (a Kafka event, a scheduled event, …): not retryable.
    #[error("not a Kinesis event (no Records): received {received}")]
    NotKinesis { received: String },
    #[error("a scheduled event whose time {time:?} is not an RFC 3339 time")]
    SweepTime { time: String },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Option<Vec<WireRecord<'a>>>,
    /// Set by other triggers (`aws:kafka`, `SelfManagedKafka`), to say what arrived instead.
    #[serde(rename = "eventSource", borrow, default)]
    event_source: Option<Cow<'a, str>>,
    #[serde(rename = "detail-type", borrow, default)]
    detail_type: Option<Cow<'a, str>>,
    /// A scheduled event's `source` (`aws.events`, `aws.scheduler`) and `time` (RFC 3339).
    #[serde(borrow, default)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
    /// What a Kinesis event source mapping sends its on-failure destination (SQS/SNS) about a
    /// batch it gave up on.
    #[serde(rename = "KinesisBatchInfo", borrow, default)]
    kinesis_batch_info: Option<BatchInfo<'a>>,
    /// Lambda's Kafka event: records by `"<topic>-<partition>"`
    /// (<https://docs.aws.amazon.com/lambda/latest/dg/with-msk.html>,
    /// <https://docs.aws.amazon.com/lambda/latest/dg/with-kafka.html>).
    #[serde(rename = "records", borrow, default)]
    kafka_records: Option<std::collections::BTreeMap<Cow<'a, str>, Vec<KafkaWire<'a>>>>,
    #[serde(rename = "eventSourceArn", borrow, default)]
    kafka_source_arn: Option<Cow<'a, str>>,
    #[serde(rename = "bootstrapServers", borrow, default)]
    bootstrap_servers: Option<Cow<'a, str>>,
}

/// One Kafka record as Lambda delivers it.
#[derive(Deserialize)]
struct KafkaWire<'a> {
    #[serde(borrow)]
    topic: Cow<'a, str>,
    partition: i64,
    offset: i64,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(rename = "timestampType", borrow, default)]
    timestamp_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    value: Option<Cow<'a, str>>,
    /// `[{"name": [byte, ...]}, ...]`, as Lambda sends Kafka headers.
    #[serde(default)]
    headers: Vec<std::collections::BTreeMap<String, Vec<u8>>>,
}

/// <https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html>
#[derive(Deserialize)]
struct BatchInfo<'a> {
    #[serde(rename = "shardId", borrow)]
    shard_id: Cow<'a, str>,
    #[serde(rename = "startSequenceNumber", borrow)]
    start_sequence_number: Cow<'a, str>,
    #[serde(rename = "endSequenceNumber", borrow)]
    end_sequence_number: Cow<'a, str>,
    #[serde(rename = "streamArn", borrow, default)]
    stream_arn: Option<Cow<'a, str>>,
}

/// What invoked the aggregate function.
pub enum Trigger<'a> {
    /// Records of a Kinesis stream.
    Kinesis(KinesisBatch<'a>),
    /// Records of Kafka topic-partitions (Amazon MSK or self-managed Kafka); a failed
    /// partition fails the invocation (Lambda honours Kafka partial batch responses only with
    /// provisioned pollers), and the commit protocol makes the retry harmless.
    Kafka(KinesisBatch<'a>),
    /// A scheduled event (EventBridge or EventBridge Scheduler, `detail-type` "Scheduled
    /// Event"): a sweep whose "now" is the event's `time`, in ms since the epoch.
    Sweep { now_ms: i64 },
    /// The message the event source mapping sent its on-failure destination about a batch it
    /// gave up on (`KinesisBatchInfo`): replay that shard's range (see `sluice_aggregate::replay`).
    Replay {
        stream_arn: Option<String>,
        shard_id: String,
        first: String,
        last: String,
    },
}

impl<'a> Trigger<'a> {
    /// Reads a payload; anything but a Kinesis event or a scheduled event is
    /// [`PayloadError::NotKinesis`], naming what arrived.
    pub fn parse(payload: &'a [u8]) -> Result<Self, PayloadError> {
        Self::parse_at(payload, chrono::Utc::now().timestamp_millis())
    }

    /// [`Trigger::parse`] for a payload received at `received_ms` (ms since the epoch): the
    /// arrival time of Kafka records whose timestamp is the producer's (`CREATE_TIME`), which
    /// the watermark's bound on future events cannot trust.
    pub fn parse_at(payload: &'a [u8], received_ms: i64) -> Result<Self, PayloadError> {
        Self::parse_framed(payload, received_ms, Unframing::default())
    }

    /// [`Trigger::parse_at`] for records unwrapped as the stream definitions ask (see
    /// [`Unframing`]: gzip, NDJSON).
    pub fn parse_framed(
        payload: &'a [u8],
        received_ms: i64,
        how: Unframing,
    ) -> Result<Self, PayloadError> {
        // One UTF-8 check of the whole payload, then a parser that trusts it: cheaper than
        // serde_json validating every record's strings one by one.
        let text = std::str::from_utf8(payload).map_err(|e| PayloadError::Utf8 {
            at: e.valid_up_to(),
        })?;
        let envelope: Envelope<'a> = serde_json::from_str(text)?;
        if let Some(records) = envelope.records {
            return KinesisBatch::from_wire(records, how).map(Trigger::Kinesis);
        }
        if let Some(partitions) = envelope.kafka_records {
            let cluster = kafka_cluster(
                envelope.kafka_source_arn.as_deref(),
                envelope.bootstrap_servers.as_deref(),
            );
            return Ok(Trigger::Kafka(KinesisBatch::from_kafka(
                cluster,
                partitions,
                received_ms,
                how,
            )));
        }
        if let Some(info) = envelope.kinesis_batch_info {
            return Ok(Trigger::Replay {
                stream_arn: info.stream_arn.map(Cow::into_owned),
                shard_id: info.shard_id.into_owned(),
                first: info.start_sequence_number.into_owned(),
                last: info.end_sequence_number.into_owned(),
            });
        }
        let scheduled = envelope.detail_type.as_deref() == Some("Scheduled Event")
            && matches!(
                envelope.source.as_deref(),
                Some("aws.events" | "aws.scheduler")
            );
        if scheduled {
            let time = envelope.time.as_deref().unwrap_or_default();
            let now_ms = chrono::DateTime::parse_from_rfc3339(time)
                .map_err(|_| PayloadError::SweepTime {
                    time: time.to_string(),
                })?
                .timestamp_millis();
            return Ok(Trigger::Sweep { now_ms });
        }
        let received = match (&envelope.event_source, &envelope.detail_type) {
            (Some(source), _) => format!("an event with eventSource {source:?}"),
            (None, Some(detail)) => format!(
                "an event with detail-type {detail:?} and source {:?} (a sweep is a \"Scheduled Event\" from aws.events or aws.scheduler)",
                envelope.source.as_deref().unwrap_or_default()
            ),
            (None, None) => "a JSON object without Records".to_string(),
        };
        Err(PayloadError::NotKinesis { received })
    }
}

#[derive(Deserialize)]
struct WireRecord<'a> {
    #[serde(rename = "eventID", borrow, default)]
    event_id: Option<Cow<'a, str>>,
    #[serde(rename = "eventSourceARN", borrow, default)]
    event_source_arn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kinesis: WireKinesis<'a>,
}

#[derive(Deserialize)]
struct WireKinesis<'a> {
    #[serde(rename = "partitionKey", borrow)]
    partition_key: Cow<'a, str>,
    #[serde(rename = "sequenceNumber", borrow)]
    sequence_number: Cow<'a, str>,
    #[serde(borrow)]
    data: Cow<'a, str>,
    /// Seconds since the epoch, with a fraction.
    #[serde(rename = "approximateArrivalTimestamp", default)]
    approximate_arrival_timestamp: Seconds,
}

/// Lambda sends a JSON number; `aws_lambda_events` (and so our local payloads and anyone
/// replaying its output) writes the same digits as a string. Both are accepted, by a visitor
/// rather than an untagged enum, which would build and discard an error for every string.
#[derive(Default)]
struct Seconds(Option<f64>);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Seconds;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("seconds since the epoch, as a number or a string")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Seconds, E> {
                Ok(Seconds(Some(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(Some(v as f64)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Seconds, E> {
                Ok(Seconds(Some(v as f64)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Seconds, E> {
                // Unparseable text is reported with the record's sequence number by the caller.
                Ok(Seconds(v.trim().parse().ok()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Seconds {
    fn millis(&self) -> Option<i64> {
        self.0
            .filter(|s| s.is_finite())
            .map(|s| (s * 1000.0).round() as i64)
    }
}
/// One record's place in a [`KinesisBatch`].
struct Record<'a> {
    /// Where its shard's state lives: the Kinesis stream's name, or the Kafka cluster.
    stream: Cow<'a, str>,
    /// The Kinesis shard id, or the Kafka `<topic>-<partition>`.
    shard: Cow<'a, str>,
    partition_key: Option<Cow<'a, str>>,
    sequence: Cow<'a, str>,
    arrival_ms: i64,
    data: Range<usize>,
    /// Index of a user record within a KPL-aggregated record (see [`crate::kpl`]).
    sub_sequence: Option<u64>,
    /// The Kafka topic.
    topic: Option<Cow<'a, str>>,
    /// The Kafka record's headers (name, value).
    headers: Vec<(String, Vec<u8>)>,
    /// Why the record's data could not be read from the envelope: the quarantine reason code
    /// and reason (what there was is kept as the data).
    envelope_error: Option<(&'static str, String)>,
}

/// The part `f` picks of a string read from the payload, still borrowing the payload when the
/// string did (it only did not when JSON escapes had to be resolved).
fn part_of<'a>(
    text: Option<Cow<'a, str>>,
    f: impl for<'s> Fn(Option<&'s str>) -> &'s str,
) -> Cow<'a, str> {
    match text {
        Some(Cow::Borrowed(t)) => Cow::Borrowed(f(Some(t))),
        Some(Cow::Owned(t)) => Cow::Owned(f(Some(&t)).to_string()),
        None => Cow::Borrowed(f(None)),
    }
}

/// The name a Kafka cluster's partitions keep their state under: the UUID at the end of an
/// MSK cluster ARN, or `kafka-` and a hash of the bootstrap servers (self-managed Kafka).
fn kafka_cluster(arn: Option<&str>, bootstrap: Option<&str>) -> String {
    if let Some(uuid) = arn
        .and_then(|a| a.rsplit('/').next())
        .filter(|u| !u.is_empty())
    {
        return format!("msk-{uuid}");
    }
    let mut servers: Vec<&str> = bootstrap
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .collect();
    servers.sort_unstable();
    format!(
        "kafka-{:016x}",
        sluice_core::window::sketch::stable_hash(servers.join(",").as_bytes())
    )
}

/// A parsed Kinesis trigger payload.
pub struct KinesisBatch<'a> {
    records: Vec<Record<'a>>,
    data: Vec<u8>,
}

impl<'a> KinesisBatch<'a> {
    /// Reads a Kinesis trigger payload; any other payload is an error (see [`Trigger::parse`]
    /// for one that may also be a sweep).
    pub fn parse(payload: &'a [u8]) -> Result<Self, PayloadError> {
        match Trigger::parse(payload)? {
            Trigger::Kinesis(batch) => Ok(batch),
            Trigger::Sweep { .. } => Err(PayloadError::NotKinesis {
                received: "a scheduled event".into(),
            }),
            Trigger::Replay { .. } => Err(PayloadError::NotKinesis {
                received: "a DLQ message (KinesisBatchInfo)".into(),
            }),
            Trigger::Kafka(_) => Err(PayloadError::NotKinesis {
                received: "a Kafka event".into(),
            }),
        }
    }

    /// The records of a Kafka event: shard id `<topic>-<partition>`, position the offset.
    fn from_kafka(
        cluster: String,
        partitions: std::collections::BTreeMap<Cow<'a, str>, Vec<KafkaWire<'a>>>,
        received_ms: i64,
        how: Unframing,
    ) -> Self {
        let mut data = Vec::new();
        let mut records = Vec::new();
        for (_, wires) in partitions {
            for w in wires {
                let start = data.len();
                let shard = format!("{}-{}", w.topic, w.partition);
                let headers: Vec<(String, Vec<u8>)> = w
                    .headers
                    .iter()
                    .flat_map(|h| h.iter().map(|(k, v)| (k.clone(), v.clone())))
                    .collect();
                let arrival_ms = match (w.timestamp_type.as_deref(), w.timestamp) {
                    (Some("LOG_APPEND_TIME"), Some(t)) => t,
                    _ => received_ms,
                };
                let partition_key = w.key.as_deref().map(|k| {
                    match base64_simd::STANDARD.decode_to_vec(k.as_bytes()) {
                        Ok(bytes) => match String::from_utf8(bytes) {
                            Ok(text) => text,
                            Err(e) => e.into_bytes().iter().map(|b| format!("{b:02x}")).collect(),
                        },
                        Err(_) => k.to_string(),
                    }
                });
                let envelope_error = match w.value.as_deref() {
                    None => Some((
                        "null_value",
                        "the Kafka record has no value (a tombstone)".to_string(),
                    )),
                    Some(v) => match base64_simd::STANDARD.decode_append(v.as_bytes(), &mut data) {
                        Ok(()) => None,
                        Err(e) => {
                            data.truncate(start);
                            data.extend_from_slice(v.as_bytes());
                            Some(("malformed_envelope", format!("value is not base64: {e}")))
                        }
                    },
                };
                let pieces = match envelope_error {
                    Some((code, e)) => vec![(start..data.len(), None, Some((code, e)))],
                    None => {
                        let whole = start..data.len();
                        unframe(&mut data, whole, None, how)
                    }
                    .into_iter()
                    .map(|(r, sub, e)| (r, sub, e.map(|e| ("malformed_envelope", e))))
                    .collect(),
                };
                for (range, sub, error) in pieces {
                    records.push(Record {
                        topic: Some(w.topic.clone()),
                        headers: headers.clone(),
                        stream: Cow::Owned(cluster.clone()),
                        shard: Cow::Owned(shard.clone()),
                        partition_key: partition_key.clone().map(Cow::Owned),
                        sequence: Cow::Owned(w.offset.to_string()),
                        arrival_ms,
                        data: range,
                        sub_sequence: sub,
                        envelope_error: error,
                    });
                }
            }
        }
        Self { records, data }
    }

    fn from_wire(wire_records: Vec<WireRecord<'a>>, how: Unframing) -> Result<Self, PayloadError> {
        // Decoded data is at most 3/4 of its base64 text.
        let capacity = wire_records
            .iter()
            .map(|r| r.kinesis.data.len() / 4 * 3 + 3)
            .sum();
        let mut data = Vec::with_capacity(capacity);
        let mut records = Vec::with_capacity(wire_records.len());
        for (index, r) in wire_records.into_iter().enumerate() {
            let start = data.len();
            // A record whose data is not base64 is one bad record, not a bad batch: its text
            // goes to the quarantine with the reason.
            let mut envelope_error =
                match base64_simd::STANDARD.decode_append(r.kinesis.data.as_bytes(), &mut data) {
                    Ok(()) => None,
                    Err(e) => {
                        data.truncate(start);
                        data.extend_from_slice(r.kinesis.data.as_bytes());
                        Some(format!("data is not base64: {e}"))
                    }
                };
            let arrival_ms = r
                .kinesis
                .approximate_arrival_timestamp
                .millis()
                .ok_or_else(|| PayloadError::Arrival {
                    index,
                    sequence: r.kinesis.sequence_number.to_string(),
                })?;
            // Lambda's `eventID` is `shardId-000000000000:4954...`.
            let shard = part_of(r.event_id, |id| {
                id.and_then(|id| id.split_once(':'))
                    .map_or("shard-unknown", |(s, _)| s)
            });
            let stream = part_of(r.event_source_arn, crate::state::stream_name);
            if envelope_error.is_none() && kpl::is_aggregated(&data[start..]) {
                // The user records replace the aggregate in the data buffer; an unreadable
                // aggregate stays whole, quarantined with the reason.
                match kpl::unpack(&data[start..]) {
                    Ok(users) => {
                        data.truncate(start);
                        for (i, user) in users.into_iter().enumerate() {
                            let from = data.len();
                            data.extend_from_slice(&user.data);
                            let range = from..data.len();
                            for (range, sub, error) in
                                unframe(&mut data, range, Some(i as u64), how)
                            {
                                records.push(Record {
                                    topic: None,
                                    headers: Vec::new(),
                                    stream: stream.clone(),
                                    shard: shard.clone(),
                                    partition_key: Some(Cow::Owned(user.partition_key.clone())),
                                    sequence: r.kinesis.sequence_number.clone(),
                                    arrival_ms,
                                    data: range,
                                    sub_sequence: sub,
                                    envelope_error: error.map(|e| ("malformed_envelope", e)),
                                });
                            }
                        }
                        continue;
                    }
                    Err(e) => envelope_error = Some(e.to_string()),
                }
            }
            let pieces = match envelope_error {
                Some(e) => vec![(start..data.len(), None, Some(e))],
                None => {
                    let whole = start..data.len();
                    unframe(&mut data, whole, None, how)
                }
            };
            for (range, sub, error) in pieces {
                records.push(Record {
                    topic: None,
                    headers: Vec::new(),
                    stream: stream.clone(),
                    shard: shard.clone(),
                    partition_key: Some(r.kinesis.partition_key.clone()),
                    sequence: r.kinesis.sequence_number.clone(),
                    arrival_ms,
                    data: range,
                    sub_sequence: sub,
                    envelope_error: error.map(|e| ("malformed_envelope", e)),
                });
            }
        }
        Ok(Self { records, data })
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every record, in delivery order, with the stream (Kinesis) or cluster (Kafka) its
    /// state lives under and its shard (or `<topic>-<partition>`).
    pub fn records(&self) -> impl Iterator<Item = (&str, &str, InRecord<'_>)> {
        self.records.iter().map(|r| {
            (
                r.stream.as_ref(),
                r.shard.as_ref(),
                InRecord {
                    sequence: &r.sequence,
                    arrival_ms: r.arrival_ms,
                    partition_key: r.partition_key.as_deref(),
                    data: &self.data[r.data.clone()],
                    sub_sequence: r.sub_sequence,
                    topic: r.topic.as_deref(),
                    headers: &r.headers,
                    envelope_error: r
                        .envelope_error
                        .as_ref()
                        .map(|(code, reason)| EnvelopeError {
                            code,
                            reason: reason.as_str(),
                        }),
                },
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};

    fn owned_event() -> KinesisEvent {
        let mut event = KinesisEvent::default();
        for (i, text) in [r#"{"a":1}"#, "ünïcode \"quoted\"", ""].iter().enumerate() {
            let mut r = KinesisEventRecord::default();
            r.event_id = Some(format!("shardId-00000000000{i}:4954{i}"));
            r.event_source_arn = Some("arn:aws:kinesis:eu-west-1:1:stream/s".into());
            r.kinesis.partition_key = format!("key-\u{e9}-{i}");
            r.kinesis.sequence_number = format!("4954{i}");
            r.kinesis.data.0 = text.as_bytes().to_vec();
            r.kinesis.approximate_arrival_timestamp.0 =
                chrono::DateTime::from_timestamp(1_700_000_000 + i as i64, 0).unwrap();
            event.records.push(r);
        }
        event
    }

    #[test]
    fn reads_what_aws_lambda_events_writes() {
        let event = owned_event();
        let bytes = serde_json::to_vec(&event).unwrap();
        let batch = KinesisBatch::parse(&bytes).unwrap();
        assert_eq!(batch.len(), 3);
        for ((stream, shard, rec), owned) in batch.records().zip(&event.records) {
            assert_eq!(
                stream,
                crate::state::stream_name(owned.event_source_arn.as_deref())
            );
            assert_eq!(
                Some(shard),
                owned
                    .event_id
                    .as_deref()
                    .map(|id| &id[..id.find(':').unwrap()])
            );
            assert_eq!(rec.sequence, owned.kinesis.sequence_number);
            assert_eq!(
                rec.partition_key,
                Some(owned.kinesis.partition_key.as_str())
            );
            assert_eq!(rec.data, &owned.kinesis.data.0[..]);
            assert_eq!(
                rec.arrival_ms,
                owned
                    .kinesis
                    .approximate_arrival_timestamp
                    .0
                    .timestamp_millis()
            );
        }
    }

    #[test]
    fn fractional_arrival_seconds_and_escaped_keys_are_read_exactly() {
        let payload = br#"{"Records":[{"eventID":"shardId-000000000001:9","kinesis":{"partitionKey":"a\"b","sequenceNumber":"9","data":"eyJ4IjoxfQ==","approximateArrivalTimestamp":1700000000.987}}]}"#;
        let batch = KinesisBatch::parse(payload).unwrap();
        let (_, shard, rec) = batch.records().next().unwrap();
        assert_eq!(shard, "shardId-000000000001");
        assert_eq!(rec.arrival_ms, 1_700_000_000_987);
        assert_eq!(rec.partition_key, Some("a\"b"));
        assert_eq!(rec.data, br#"{"x":1}"#);
    }

    #[test]
    fn bad_payloads_are_errors_that_say_what_is_wrong() {
        let err = KinesisBatch::parse(b"{\"Records\": 3}").err().unwrap();
        assert!(err.to_string().starts_with("not a Kinesis event"), "{err}");
        let err = KinesisBatch::parse(
            br#"{"Records":[{"kinesis":{"partitionKey":"k","sequenceNumber":"77","data":"@@@"}}]}"#,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("sequence 77"), "{err}");
    }

    #[test]
    fn another_trigger_is_named_and_a_bad_record_is_kept_for_the_quarantine() {
        let rabbit = br#"{"eventSource":"aws:rmq","rmqMessagesByQueue":{}}"#;
        let err = KinesisBatch::parse(rabbit).err().unwrap();
        assert_eq!(
            err.to_string(),
            "not a Kinesis event (no Records): received an event with eventSource \"aws:rmq\""
        );
        let kafka = br#"{"eventSource":"aws:kafka","records":{"t-0":[]}}"#;
        assert!(matches!(Trigger::parse(kafka), Ok(Trigger::Kafka(_))));
        let scheduled =
            br#"{"detail-type":"Scheduled Event","source":"aws.scheduler","time":"2026-11-24T05:01:20Z"}"#;
        assert!(matches!(
            Trigger::parse(scheduled),
            Ok(Trigger::Sweep {
                now_ms: 1_795_496_480_000
            })
        ));
        assert!(KinesisBatch::parse(scheduled).is_err());
        let untimed = br#"{"detail-type":"Scheduled Event","source":"aws.events","time":"soon"}"#;
        assert_eq!(
            Trigger::parse(untimed).err().unwrap().to_string(),
            "a scheduled event whose time \"soon\" is not an RFC 3339 time"
        );
        let foreign = br#"{"detail-type":"Scheduled Event","source":"my.app"}"#;
        assert!(
            Trigger::parse(foreign)
                .err()
                .unwrap()
                .to_string()
                .contains("detail-type \"Scheduled Event\" and source \"my.app\"")
        );
        let bad = br#"{"Records":[{"eventID":"s:1","kinesis":{"partitionKey":"k","sequenceNumber":"1","data":"@@@=","approximateArrivalTimestamp":1795496400.5}},{"eventID":"s:2","kinesis":{"partitionKey":"k","sequenceNumber":"2","data":"e30=","approximateArrivalTimestamp":1795496400.5}}]}"#;
        let batch = KinesisBatch::parse(bad).unwrap();
        let records: Vec<_> = batch.records().map(|(_, _, r)| r).collect();
        assert_eq!(records[0].data, b"@@@=", "the base64 text is kept");
        let error = records[0].envelope_error.unwrap();
        assert_eq!(error.code, "malformed_envelope");
        assert!(error.reason.starts_with("data is not base64"));
        assert_eq!(
            (records[1].data, records[1].envelope_error),
            (&b"{}"[..], None)
        );
    }
}
