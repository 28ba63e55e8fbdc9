//! The shard processor: one shard's batch of records, with the state its previous batch left,
//! becomes the objects to write and the state to commit. Pure and synchronous: no I/O, no
//! clock, so the Lambda handler, the local pipeline, the benchmarks and the tests all run it
//! unchanged, and the same prior state and records always give the same objects, bytes and
//! state (what makes a redelivered batch harmless).
//!
//! The handler around it (`sluice_aggregate::handle`) loads the state, calls [`process_shard`],
//! writes the objects and then commits the state with a conditional put.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::aggregate::{AggregateConfig, Aggregator, AggregatorState, Output};
use crate::event::{Event, Scenario, decode};
use crate::lake::{
    self, BatchId, LakeError, LateRow, Lineage, QuarantineRow, group_by_partition, object_key,
};
use crate::schema;
use crate::window::{Placement, ROLLUP_KEY, rollup_label};

/// Everything one shard carries between invocations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardState {
    /// Highest sequence number whose effects are committed.
    pub last_sequence: Option<String>,
    /// Fingerprint of the window/detector configuration the state was built with.
    pub config: String,
    pub aggregator: AggregatorState,
}

/// One record of a shard, as delivered.
#[derive(Debug, Clone, Copy)]
pub struct InRecord<'a> {
    pub sequence: &'a str,
    pub arrival_ms: i64,
    pub partition_key: &'a str,
    pub data: &'a [u8],
}

/// Counts of what one shard batch did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchStats {
    pub records: usize,
    pub duplicates: usize,
    pub events: usize,
    pub quarantined: usize,
    pub late: usize,
    pub windows: usize,
    pub anomalies: usize,
}

/// The outcome of [`process_shard`]: objects to write, then the state to commit.
pub struct Processed {
    pub objects: Vec<(String, Vec<u8>)>,
    pub state: ShardState,
    pub stats: BatchStats,
    /// What the caller should log: nothing here fails the batch.
    pub warnings: Vec<Warning>,
}

/// Something a batch did that an operator should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// The state was built with another window/detector configuration (fingerprints `old`,
    /// `new`): open windows and detector baselines restart empty.
    ConfigurationChanged { old: String, new: String },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::ConfigurationChanged { old, new } => write!(
                f,
                "window configuration changed ({old} -> {new}): open windows and detector baselines restart"
            ),
        }
    }
}

/// Compares Kinesis sequence numbers: decimal strings of up to 128 bits, compared as numbers
/// (moto uses small integers, AWS 56 digits).
pub fn compare_sequence(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// A stable fingerprint of the configuration, so state built with other windows is not
/// misread.
pub fn config_fingerprint(config: &AggregateConfig) -> String {
    use md5::{Digest, Md5};
    let json = serde_json::to_vec(config).unwrap_or_default();
    Md5::digest(json)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Scenario partition of a record that could not be decoded: read it if the JSON allows.
fn quarantine_scenario(data: &[u8]) -> &'static str {
    #[derive(Deserialize)]
    struct Probe<'a> {
        // Cow: a JSON escape in the value ("tr\u0061des") cannot be borrowed.
        #[serde(borrow)]
        scenario: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Probe>(data)
        .ok()
        .and_then(|p| p.scenario.as_deref().and_then(Scenario::parse))
        .map_or("unknown", Scenario::as_str)
}

/// Decodes, windows and detects one shard's records, and encodes every output object.
/// Pure: the same prior state and records always give the same objects, bytes and state.
pub fn process_shard(
    config: &AggregateConfig,
    prior: Option<ShardState>,
    shard_id: &str,
    records: &[InRecord<'_>],
) -> Result<Processed, LakeError> {
    let fingerprint = config_fingerprint(config);
    let mut warnings = Vec::new();
    let prior = match prior {
        Some(s) if s.config == fingerprint => s,
        Some(s) => {
            warnings.push(Warning::ConfigurationChanged {
                old: s.config.clone(),
                new: fingerprint.clone(),
            });
            ShardState {
                last_sequence: s.last_sequence,
                ..ShardState::default()
            }
        }
        None => ShardState::default(),
    };
    let mut stats = BatchStats {
        records: records.len(),
        ..BatchStats::default()
    };
    let fresh: Vec<&InRecord<'_>> = records
        .iter()
        .filter(|r| {
            prior
                .last_sequence
                .as_deref()
                .is_none_or(|last| compare_sequence(r.sequence, last) == Ordering::Greater)
        })
        .collect();
    stats.duplicates = records.len() - fresh.len();
    let (Some(first), Some(last)) = (fresh.first(), fresh.last()) else {
        return Ok(Processed {
            objects: Vec::new(),
            state: prior,
            stats,
            warnings,
        });
    };
    let batch = BatchId {
        shard_id: shard_id.to_string(),
        first_sequence: first.sequence.to_string(),
        last_sequence: last.sequence.to_string(),
    };

    let mut aggregator = Aggregator::restore(config.clone(), prior.aggregator);
    let mut events: Vec<(Event, Lineage<'_>)> = Vec::with_capacity(fresh.len());
    let mut late: Vec<(usize, i64)> = Vec::new();
    let mut quarantine: Vec<QuarantineRow<'_>> = Vec::new();
    for r in &fresh {
        let lineage = Lineage {
            shard_id,
            sequence_number: r.sequence,
            arrival_ms: r.arrival_ms,
        };
        match decode(r.data, Some(r.arrival_ms)) {
            Ok(event) => {
                if let Placement::Late { watermark_ms } = aggregator.push(&event) {
                    late.push((events.len(), watermark_ms));
                }
                events.push((event, lineage));
            }
            Err(e) => quarantine.push(QuarantineRow {
                lineage,
                partition_key: r.partition_key,
                reason_code: e.code(),
                reason: e.to_string(),
                raw: r.data,
            }),
        }
    }
    let mut out = Output::default();
    aggregator.advance(&mut out);
    label_rollups(&mut out, shard_id);
    stats.events = events.len();
    stats.quarantined = quarantine.len();
    stats.late = late.len();
    stats.windows = out.windows.len();
    stats.anomalies = out.anomalies.len();

    let objects = encode_objects(&batch, &events, &late, &quarantine, &out, &aggregator)?;
    Ok(Processed {
        objects,
        state: ShardState {
            last_sequence: Some(last.sequence.to_string()),
            config: fingerprint,
            aggregator: aggregator.snapshot(),
        },
        stats,
        warnings,
    })
}

/// End of stream: closes every open window of a shard's state (as if the watermark jumped past
/// all event times) and encodes what closed. Used when a local run stops with `--flush`, and
/// before retiring a stream. Later events for those windows will be late.
pub fn flush_shard(
    config: &AggregateConfig,
    prior: ShardState,
    shard_id: &str,
) -> Result<Processed, LakeError> {
    let mut aggregator = Aggregator::restore(config.clone(), prior.aggregator);
    let mut out = Output::default();
    aggregator.flush(&mut out);
    label_rollups(&mut out, shard_id);
    let last = prior.last_sequence.clone().unwrap_or_else(|| "0".into());
    let batch = BatchId {
        shard_id: shard_id.to_string(),
        first_sequence: last.clone(),
        last_sequence: "flush".into(),
    };
    let stats = BatchStats {
        windows: out.windows.len(),
        anomalies: out.anomalies.len(),
        ..BatchStats::default()
    };
    let objects = encode_objects(&batch, &[], &[], &[], &out, &aggregator)?;
    Ok(Processed {
        objects,
        state: ShardState {
            last_sequence: prior.last_sequence,
            config: prior.config,
            aggregator: aggregator.snapshot(),
        },
        stats,
        warnings: Vec::new(),
    })
}

/// Encodes every output of one batch as (key, Parquet bytes), one object per table and
/// partition.
pub fn encode_objects(
    batch: &BatchId,
    events: &[(Event, Lineage<'_>)],
    late: &[(usize, i64)],
    quarantine: &[QuarantineRow<'_>],
    out: &Output,
    aggregator: &Aggregator,
) -> Result<Vec<(String, Vec<u8>)>, LakeError> {
    let mut objects = Vec::new();
    // Raw events, per scenario and event hour.
    for ((scenario, hour_start), idx) in group_by_partition(events, |(e, _)| {
        (e.scenario().as_str().to_string(), e.event_time_ms)
    }) {
        let Some(scenario) = Scenario::parse(&scenario) else {
            continue;
        };
        let rows: Vec<(&Event, Lineage<'_>)> =
            idx.iter().map(|&i| (&events[i].0, events[i].1)).collect();
        let bytes = lake::encode_parquet(&lake::raw_batch(scenario, &rows)?)?;
        let table = schema::raw_table(scenario);
        objects.push((
            object_key(table, scenario.as_str(), hour_start, batch),
            bytes,
        ));
    }
    // Windows and anomalies, per scenario and window-end hour.
    for ((scenario, hour_start), idx) in group_by_partition(&out.windows, |w| {
        (w.scenario.as_str().to_string(), w.end_ms)
    }) {
        let rows: Vec<_> = idx.iter().map(|&i| &out.windows[i]).collect();
        let batch_rows =
            lake::windows_batch(&rows, aggregator.window_names(), aggregator.window_kinds())?;
        objects.push((
            object_key(&schema::WINDOWS, &scenario, hour_start, batch),
            lake::encode_parquet(&batch_rows)?,
        ));
    }
    let detection_window = aggregator.detection_window_name();
    for ((scenario, hour_start), idx) in group_by_partition(&out.anomalies, |a| {
        (a.scenario.as_str().to_string(), a.window_end_ms)
    }) {
        let rows: Vec<_> = idx.iter().map(|&i| &out.anomalies[i]).collect();
        objects.push((
            object_key(&schema::ANOMALIES, &scenario, hour_start, batch),
            lake::encode_parquet(&lake::anomalies_batch(&rows, &detection_window)?)?,
        ));
    }
    let late_rows: Vec<LateRow<'_>> = late
        .iter()
        .map(|&(i, watermark_ms)| LateRow {
            event: &events[i].0,
            watermark_ms,
            lineage: events[i].1,
        })
        .collect();
    for ((scenario, hour_start), idx) in group_by_partition(&late_rows, |r| {
        (
            r.event.scenario().as_str().to_string(),
            r.event.event_time_ms,
        )
    }) {
        let rows: Vec<_> = idx.iter().map(|&i| &late_rows[i]).collect();
        objects.push((
            object_key(&schema::LATE, &scenario, hour_start, batch),
            lake::encode_parquet(&lake::late_batch(&rows)?)?,
        ));
    }
    for ((scenario, hour_start), idx) in group_by_partition(quarantine, |q| {
        (quarantine_scenario(q.raw).to_string(), q.lineage.arrival_ms)
    }) {
        let rows: Vec<_> = idx.iter().map(|&i| &quarantine[i]).collect();
        objects.push((
            object_key(&schema::QUARANTINE, &scenario, hour_start, batch),
            lake::encode_parquet(&lake::quarantine_batch(&rows)?)?,
        ));
    }

    Ok(objects)
}

/// Rollup rows are this shard's part of a scenario total: say so in their key.
fn label_rollups(out: &mut Output, shard_id: &str) {
    let label = rollup_label(shard_id);
    for w in out.windows.iter_mut().filter(|w| w.key == ROLLUP_KEY) {
        w.key.clone_from(&label);
    }
    for a in out.anomalies.iter_mut().filter(|a| a.key == ROLLUP_KEY) {
        a.key.clone_from(&label);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert_eq!(compare_sequence("9", "10"), Ordering::Less);
        assert_eq!(
            compare_sequence(
                "49545115243490985018280067714973144582180062593244200961",
                "49545115243490985018280067714973144582180062593244200960"
            ),
            Ordering::Greater
        );
        assert_eq!(compare_sequence("007", "7"), Ordering::Equal);
    }
}
