//! Parquet files in memory: zstd, explicit writer settings, footer written.

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::LakeError;

fn writer_properties(unique_columns: &[&str]) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        // Level 1: most of zstd's ratio on this data at a fraction of the CPU of the default.
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_created_by(format!("sluice {}", env!("CARGO_PKG_VERSION")));
    // Unique per row: a dictionary would hold every value once and save nothing, after hashing
    // each of them.
    for column in unique_columns {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*column), false);
    }
    builder.build()
}

/// Columns whose values do not repeat within a file of the shared tables.
const UNIQUE_COLUMNS: &[&str] = &["event_id", "sequence_number"];

/// One batch as a complete Parquet file in memory (footer written).
pub fn encode_parquet(batch: &RecordBatch) -> Result<Vec<u8>, LakeError> {
    encode_parquet_with(batch, UNIQUE_COLUMNS)
}

/// [`encode_parquet`] with the columns whose values are unique per row named (no dictionary:
/// it would hold every value once and save nothing, after hashing each of them).
pub fn encode_parquet_with(
    batch: &RecordBatch,
    unique_columns: &[&str],
) -> Result<Vec<u8>, LakeError> {
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() / 4 + 1024);
    let mut writer = ArrowWriter::try_new(
        &mut buf,
        batch.schema(),
        Some(writer_properties(unique_columns)),
    )?;
    writer.write(batch)?;
    writer.close()?;
    Ok(buf)
}

pub fn decode_parquet(bytes: Vec<u8>) -> Result<Vec<RecordBatch>, LakeError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?.build()?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(LakeError::Read)
}
