//! Lambda wiring: settings from the environment and the S3 client, built once per cold start.
//!
//! | variable | meaning |
//! |---|---|
//! | `SLUICE_BUCKET` | lake and state bucket (required) |
//! | `SLUICE_LATENESS` | allowed lateness, e.g. `5s` (default 5s) |
//! | `SLUICE_IDLE_TIMEOUT` | a sweep closes the windows of a shard whose last event arrived longer ago than this, e.g. `1m` (default 1m) |
//! | `SLUICE_ACCEPTED_FROM` | first accepted event date, `yyyy-mm-dd` (Terraform: `projection_start_date`); earlier events are quarantined as `out_of_range` (default 2000-01-01) |
//! | `SLUICE_KAFKA_PARTIAL_BATCH` | `true` when the Kafka event source mappings have provisioned pollers: a failed partition is reported as `{"partition","offset"}`, not as a failed invocation |
//! | `SLUICE_SERIES_TTL` | detector series of a key without a window for this long (event time) are evicted, e.g. `1d` (default 1d) |
//! | `SLUICE_WINDOWS` | extra window specs for every stream, comma-separated (e.g. `sliding:30s`) |
//! | `SLUICE_STREAMS_PREFIX` | key prefix of the stream definitions (`*.toml`) in the bucket; the built-in definitions when unset |
//! | `SLUICE_STREAMS_DIGEST` | digest of the uploaded definitions (not read: a change replaces warm instances) |

use std::sync::Arc;

use sluice_infra::config::{ConfigError, aws_config, optional_env, required_env};
use sluice_infra::source::KinesisRangeSource;
use sluice_infra::store::{ObjectStore, S3Store};
use sluice_infra::streams;

use sluice_core::stream::StreamSet;

use crate::{
    Deps, HandlerError, RangeReader, ReadRangeError, ReadRecord, Settings, SettingsError,
    ShardDirectory,
};

/// The DLQ replay's records, read again from Kinesis; and the sweep's view of a reshard.
struct KinesisReader(KinesisRangeSource);

fn stream_error(
    stream: &str,
    shard_id: &str,
    e: sluice_infra::source::ReadError,
) -> ReadRangeError {
    ReadRangeError {
        shard_id: format!("{stream}/{shard_id}"),
        first: String::new(),
        last: String::new(),
        message: e.message,
        retryable: e.retryable,
    }
}

#[async_trait::async_trait]
impl ShardDirectory for KinesisReader {
    async fn closed_shards(&self, stream: &str) -> Result<Vec<String>, ReadRangeError> {
        self.0
            .closed_shards(stream)
            .await
            .map_err(|e| stream_error(stream, "*", e))
    }

    async fn has_records_after(
        &self,
        stream: &str,
        shard_id: &str,
        sequence: &str,
    ) -> Result<bool, ReadRangeError> {
        self.0
            .has_records_after(stream, shard_id, sequence)
            .await
            .map_err(|e| stream_error(stream, shard_id, e))
    }
}

#[async_trait::async_trait]
impl RangeReader for KinesisReader {
    async fn read(
        &self,
        stream_arn: Option<&str>,
        shard_id: &str,
        first: &str,
        last: &str,
    ) -> Result<Vec<ReadRecord>, ReadRangeError> {
        let error = |message: String, retryable: bool| ReadRangeError {
            shard_id: shard_id.to_string(),
            first: first.to_string(),
            last: last.to_string(),
            message,
            retryable,
        };
        let arn =
            stream_arn.ok_or_else(|| error("the DLQ message names no streamArn".into(), false))?;
        let records = self
            .0
            .read(arn, shard_id, first, last)
            .await
            .map_err(|e| error(e.message, e.retryable))?;
        Ok(records
            .into_iter()
            .map(|r| ReadRecord {
                sequence: r.sequence,
                arrival_ms: r.arrival_ms,
                partition_key: r.partition_key,
                data: r.data,
            })
            .collect())
    }
}

/// Settings for the definitions in `streams`, windows and lateness from the environment.
pub fn settings_from_env(streams: StreamSet) -> Result<Settings, ConfigError> {
    let lateness = optional_env("SLUICE_LATENESS").unwrap_or_else(|| "5s".into());
    let windows = optional_env("SLUICE_WINDOWS").unwrap_or_default();
    let extra: Vec<&str> = windows.split(',').collect();
    let mut settings = Settings::with_windows(streams, &extra, &lateness).map_err(|reason| {
        let (name, value) = match reason {
            SettingsError::Lateness(_) => ("SLUICE_LATENESS", lateness.as_str()),
            _ => ("SLUICE_WINDOWS", windows.as_str()),
        };
        ConfigError::invalid(name, value, reason.to_string())
    })?;
    if let Some(idle) = optional_env("SLUICE_IDLE_TIMEOUT") {
        settings.idle_timeout_ms = sluice_core::time::parse_duration_ms(&idle)
            .map_err(|e| ConfigError::invalid("SLUICE_IDLE_TIMEOUT", &idle, e.to_string()))?;
    }
    if let Some(date) = optional_env("SLUICE_ACCEPTED_FROM") {
        let from = sluice_core::time::parse_timestamp_ms(
            &format!("{date}T00:00:00Z"),
            sluice_core::time::Offset::Required,
        )
        .map_err(|e| {
            ConfigError::invalid(
                "SLUICE_ACCEPTED_FROM",
                &date,
                format!("expected yyyy-mm-dd: {e}"),
            )
        })?;
        settings.aggregate = settings.aggregate.with_accepted_from(from);
    }
    settings.kafka_partial_batch =
        optional_env("SLUICE_KAFKA_PARTIAL_BATCH").as_deref() == Some("true");
    if let Some(ttl) = optional_env("SLUICE_SERIES_TTL") {
        settings.aggregate.series_ttl_ms = sluice_core::time::parse_duration_ms(&ttl)
            .map_err(|e| ConfigError::invalid("SLUICE_SERIES_TTL", &ttl, e.to_string()))?;
    }
    Ok(settings)
}

impl Deps {
    pub async fn from_env() -> Result<Deps, ConfigError> {
        let bucket = required_env("SLUICE_BUCKET")?;
        let config = aws_config();
        let store: Arc<dyn ObjectStore> = Arc::new(S3Store::new(&config, &bucket));
        let streams = streams::for_cold_start(store.as_ref(), &bucket).await?;
        let settings = settings_from_env(streams)?;
        crate::check_definitions(
            store.as_ref(),
            settings.aggregate.streams(),
            &settings.state_prefix,
        )
        .await
        .map_err(|e| {
            let prefix = optional_env("SLUICE_STREAMS_PREFIX").unwrap_or_default();
            ConfigError::invalid("SLUICE_STREAMS_PREFIX", &prefix, e)
        })?;
        let reader = Arc::new(KinesisReader(KinesisRangeSource::new(&config)));
        Ok(Deps::new(store, settings, Default::default())
            .with_range_reader(reader.clone())
            .with_shard_directory(reader))
    }
}

sluice_infra::lambda_diagnostic!(HandlerError);
