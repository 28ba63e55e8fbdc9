//! Parquet files in memory: zstd, explicit writer settings, footer written.

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::LakeError;

/// Columns holding less than this many bytes in memory are written uncompressed: zstd would save
/// at most a few hundred bytes on them, and parquet-rs creates a compressor and a decompressor
/// for every compressed column chunk (about 4 % of a batch's time, most of it on the handful of
/// rows a windows, anomalies or pipeline object often holds).
const COMPRESS_FROM_BYTES: usize = 2048;

fn writer_properties(batch: &RecordBatch, unique_columns: &[&str]) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        // Level 1: most of zstd's ratio on this data at a fraction of the CPU of the default.
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_created_by(format!("sluice {}", env!("CARGO_PKG_VERSION")));
    // Unique per row: a dictionary would hold every value once and save nothing, after hashing
    // each of them.
    for column in unique_columns {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*column), false);
    }
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        if array.get_buffer_memory_size() < COMPRESS_FROM_BYTES {
            builder = builder.set_column_compression(
                ColumnPath::from(field.name().as_str()),
                Compression::UNCOMPRESSED,
            );
        }
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
        Some(writer_properties(batch, unique_columns)),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, Int64Array};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    #[test]
    fn small_columns_are_stored_uncompressed_and_large_ones_with_zstd() {
        let rows = 4096;
        let big: ArrayRef = Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|i| (i % 7) as f64),
        ));
        let small: ArrayRef = Arc::new(Int64Array::from(vec![Some(1); 8]));
        let batch = RecordBatch::try_from_iter([
            ("big", big),
            (
                "ints",
                Arc::new(Int64Array::from(vec![1; rows])) as ArrayRef,
            ),
        ])
        .unwrap();
        let tiny = RecordBatch::try_from_iter([("small", small)]).unwrap();
        for (batch, expected) in [
            (&batch, vec![Compression::ZSTD(ZstdLevel::default()); 2]),
            (&tiny, vec![Compression::UNCOMPRESSED]),
        ] {
            let bytes = encode_parquet(batch).unwrap();
            let reader = SerializedFileReader::new(bytes::Bytes::from(bytes.clone())).unwrap();
            let group = reader.metadata().row_group(0);
            let codecs: Vec<Compression> = group
                .columns()
                .iter()
                .map(|c| match c.compression() {
                    // The level is not stored in the file.
                    Compression::ZSTD(_) => Compression::ZSTD(ZstdLevel::default()),
                    other => other,
                })
                .collect();
            assert_eq!(codecs, expected);
            // And the rows read back whole.
            let back = decode_parquet(bytes).unwrap();
            assert_eq!(
                back.iter().map(RecordBatch::num_rows).sum::<usize>(),
                batch.num_rows()
            );
        }
    }
}
