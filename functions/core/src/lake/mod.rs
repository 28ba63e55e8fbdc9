//! Lake layout and Parquet encoding.
//!
//! # Layout
//! - this module: object keys and partitions.
//! - `encode`: Parquet writer settings, encode and decode.
//! - `batches`: Arrow record batches of each table, built column by column by name.
//!
//! `{table prefix}/[scenario=S/]dt=YYYY-MM-DD/hour=HH/part-{shard}-{first_seq}-{last_seq}.parquet`
//!
//! Keys are a pure function of the input batch (shard and sequence range) and the partition
//! time, and the bytes are a pure function of the rows, so a redelivered batch rewrites the same
//! objects with the same bytes: duplicate delivery never duplicates rows.

mod batches;
mod encode;

use std::collections::BTreeMap;

use arrow_schema::ArrowError;
use parquet::errors::ParquetError;
use thiserror::Error;

use crate::schema::Table;
use crate::time::{MS_PER_HOUR, format_date};

pub use batches::{
    LateRow, Lineage, QuarantineRow, anomalies_batch, encode_raw, late_batch, quarantine_batch,
    raw_batch, windows_batch,
};
pub use encode::{decode_parquet, encode_parquet, encode_parquet_with};

#[derive(Debug, Error)]
pub enum LakeError {
    #[error("building Arrow batch for {table}: {source}")]
    Arrow {
        table: String,
        #[source]
        source: ArrowError,
    },
    #[error("Parquet: {0}")]
    Parquet(#[from] ParquetError),
    #[error("reading Parquet rows: {0}")]
    Read(#[source] ArrowError),
}

/// An object written where readers cannot see it yet: an S3 multipart upload whose single part
/// is uploaded but not completed, or a staging file locally. A shard's committed state lists the
/// objects of its last batch this way; they are published (the upload completed, the file
/// renamed) only after that state is committed, so no reader ever sees an uncommitted attempt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StagedObject {
    /// The key the object is published under.
    pub key: String,
    /// The multipart upload id (S3) or staging file name (locally).
    pub upload_id: String,
    /// ETag of the uploaded part (S3's `CompleteMultipartUpload` needs it) or of the bytes.
    pub part_etag: String,
}

/// Identifies the input batch an output file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchId {
    pub shard_id: String,
    pub first_sequence: String,
    pub last_sequence: String,
}

impl BatchId {
    pub fn file_name(&self) -> String {
        format!(
            "part-{}-{}-{}.parquet",
            sanitize(&self.shard_id),
            sanitize(&self.first_sequence),
            sanitize(&self.last_sequence)
        )
    }
}

/// Keeps object keys to characters every store and shell accepts.
pub(crate) fn sanitize(part: &str) -> String {
    part.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `dt=YYYY-MM-DD/hour=HH` for an instant.
pub fn partition_path(ms: i64) -> String {
    let hour = ms.rem_euclid(24 * MS_PER_HOUR) / MS_PER_HOUR;
    format!("dt={}/hour={hour:02}", format_date(ms))
}

/// The directory under the lake root that holds one scenario's files of `table`
/// (`raw/scenario=trades`), or all of them for tables not partitioned by scenario.
pub fn table_dir(table: &Table, scenario: &str) -> String {
    if table.partitions.first() == Some(&"scenario") {
        format!("{}/scenario={scenario}", table.prefix)
    } else {
        table.prefix.to_string()
    }
}

/// The object key of one output file. `scenario` is the partition value for tables partitioned
/// by scenario (`unknown` for quarantined records whose scenario could not be read).
pub fn object_key(table: &Table, scenario: &str, partition_ms: i64, batch: &BatchId) -> String {
    format!(
        "{}/{}/{}",
        table_dir(table, scenario),
        partition_path(partition_ms),
        batch.file_name()
    )
}

/// Groups row indices by (scenario partition, start of the UTC hour in ms), in key order, for
/// one file each.
pub fn group_by_partition<T>(
    rows: &[T],
    key: impl Fn(&T) -> (String, i64),
) -> BTreeMap<(String, i64), Vec<usize>> {
    let mut groups: BTreeMap<(String, i64), Vec<usize>> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let (scenario, ms) = key(row);
        groups
            .entry((scenario, ms.div_euclid(MS_PER_HOUR) * MS_PER_HOUR))
            .or_default()
            .push(i);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;
    use crate::stream::StreamSet;

    #[test]
    fn keys_follow_the_layout() {
        let batch = BatchId {
            shard_id: "shardId-000000000001".into(),
            first_sequence: "4959".into(),
            last_sequence: "4960".into(),
        };
        let t = 1_795_000_000_000; // 2026-11-18T11:06:40Z
        assert_eq!(
            object_key(
                &schema::raw_table(StreamSet::builtin().get("trades").unwrap()),
                "trades",
                t,
                &batch
            ),
            "raw/scenario=trades/dt=2026-11-18/hour=11/part-shardId-000000000001-4959-4960.parquet"
        );
        assert_eq!(
            object_key(&schema::WINDOWS, "telemetry", t, &batch),
            "windows/scenario=telemetry/dt=2026-11-18/hour=11/part-shardId-000000000001-4959-4960.parquet"
        );
    }

    #[test]
    fn rows_are_grouped_by_the_hour_they_fall_in() {
        let t = 1_795_000_000_000; // 2026-11-18T11:06:40Z
        let rows = [
            ("trades", t),
            ("trades", t + MS_PER_HOUR),
            ("telemetry", t),
            ("trades", t + 1),
        ];
        let groups = group_by_partition(&rows, |(s, ms)| (s.to_string(), *ms));
        let batch = BatchId {
            shard_id: "s".into(),
            first_sequence: "1".into(),
            last_sequence: "2".into(),
        };
        let keys: Vec<(String, Vec<usize>)> = groups
            .into_iter()
            .map(|((scenario, hour_start), idx)| {
                (
                    object_key(&schema::WINDOWS, &scenario, hour_start, &batch),
                    idx,
                )
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                (
                    "windows/scenario=telemetry/dt=2026-11-18/hour=11/part-s-1-2.parquet".into(),
                    vec![2]
                ),
                (
                    "windows/scenario=trades/dt=2026-11-18/hour=11/part-s-1-2.parquet".into(),
                    vec![0, 3]
                ),
                (
                    "windows/scenario=trades/dt=2026-11-18/hour=12/part-s-1-2.parquet".into(),
                    vec![1]
                ),
            ]
        );
    }
}
