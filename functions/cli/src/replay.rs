//! `sluice replay`: a range the Kinesis event source mapping gave up on (its DLQ message),
//! processed again, once.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use sluice_aggregate::{KinesisBatch, RangeReader, ReadRangeError, ReadRecord};
use sluice_infra::metrics::Metrics;

use crate::local::{self, WindowArgs};

#[derive(Args)]
pub struct ReplayArgs {
    /// The message the event source mapping sent its on-failure destination (SQS/SNS): its
    /// `KinesisBatchInfo` names the shard and the first and last sequence numbers.
    #[arg(long)]
    pub dlq_message: PathBuf,
    /// The shard's records, as a Kinesis event JSON (what Lambda delivered, or a saved read of
    /// the stream). In AWS the function reads them from Kinesis itself: send it the message
    /// (`aws lambda invoke --function-name NAME-aggregate --payload fileb://message.json out`).
    #[arg(long)]
    pub records: Option<PathBuf>,
    #[arg(long, env = "SLUICE_LAKE", default_value = "lake")]
    pub lake: PathBuf,
    #[command(flatten)]
    pub streams: local::StreamsArg,
    #[command(flatten)]
    pub windows: WindowArgs,
}

/// Serves a range from a saved Kinesis event.
struct FileReader {
    path: PathBuf,
    payload: Vec<u8>,
}

#[async_trait::async_trait]
impl RangeReader for FileReader {
    async fn read(
        &self,
        _stream_arn: Option<&str>,
        shard_id: &str,
        first: &str,
        last: &str,
    ) -> Result<Vec<ReadRecord>, ReadRangeError> {
        let error = |message: String| ReadRangeError {
            shard_id: shard_id.to_string(),
            first: first.to_string(),
            last: last.to_string(),
            message,
            retryable: false,
        };
        let batch = KinesisBatch::parse(&self.payload)
            .map_err(|e| error(format!("{}: {e}", self.path.display())))?;
        let inside = |seq: &str| {
            sluice_aggregate::compare_sequence(seq, first).is_ge()
                && sluice_aggregate::compare_sequence(seq, last).is_le()
        };
        Ok(batch
            .records()
            .filter(|(_, shard, r)| *shard == shard_id && inside(r.sequence))
            .map(|(_, _, r)| ReadRecord {
                sequence: r.sequence.to_string(),
                arrival_ms: r.arrival_ms,
                partition_key: r.partition_key.unwrap_or_default().to_string(),
                data: r.data.to_vec(),
            })
            .collect())
    }
}

pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let message = std::fs::read(&args.dlq_message)
        .with_context(|| format!("reading {}", args.dlq_message.display()))?;
    let Some(path) = args.records else {
        anyhow::bail!(
            "give --records FILE (the shard's records as a Kinesis event): locally there is no stream to read them from; in AWS send {} to the aggregate function instead",
            args.dlq_message.display()
        );
    };
    let payload = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    std::fs::create_dir_all(&args.lake)
        .with_context(|| format!("creating {}", args.lake.display()))?;
    let metrics = Arc::new(Metrics::default());
    let settings = args.windows.aggregate_settings(args.streams.load()?)?;
    let deps = local::aggregate_deps(local::store(&args.lake), settings, metrics.clone())
        .await?
        .with_range_reader(Arc::new(FileReader { path, payload }));
    match sluice_aggregate::Trigger::parse(&message)
        .with_context(|| format!("{}", args.dlq_message.display()))?
    {
        sluice_aggregate::Trigger::Replay {
            stream_arn,
            shard_id,
            first,
            last,
        } => {
            let stats =
                sluice_aggregate::replay(&deps, stream_arn.as_deref(), &shard_id, &first, &last)
                    .await?;
            let out = serde_json::json!({
                "shard_id": shard_id,
                "first_sequence": first,
                "last_sequence": last,
                "records": stats.records,
                "already_in_the_lake": stats.duplicates,
                "events": stats.events,
                "late": stats.late,
                "quarantined": stats.quarantined,
            });
            println!("{out}");
            Ok(())
        }
        _ => anyhow::bail!(
            "{} is not a DLQ message of a Kinesis event source mapping (no KinesisBatchInfo)",
            args.dlq_message.display()
        ),
    }
}
