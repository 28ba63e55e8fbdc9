//! Lambda payloads exactly as AWS delivers them, built from local stream records and store keys.

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use chrono::{DateTime, TimeZone, Utc};
use sluice_infra::sink::LogRecord;

/// The ARN the local stream pretends to have (state keys use its name).
pub const LOCAL_STREAM_ARN: &str = "arn:aws:kinesis:local:000000000000:stream/sluice-local";
pub const LOCAL_BUCKET: &str = "sluice-local-lake";

fn utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The bytes Lambda delivers to the aggregate function for `records` of the local stream.
pub fn kinesis_payload(records: &[LogRecord]) -> Vec<u8> {
    sluice_aggregate::payload::kinesis_payload(LOCAL_STREAM_ARN, records)
}

/// S3 `ObjectCreated:Put` notifications for `keys` (keys URL-encoded, as S3 sends them).
pub fn s3_event(keys: &[String]) -> S3Event {
    let mut event = S3Event::default();
    event.records = keys
        .iter()
        .map(|key| {
            let mut rec = S3EventRecord::default();
            rec.event_source = Some("aws:s3".into());
            rec.event_name = Some("ObjectCreated:Put".into());
            rec.aws_region = Some("local".into());
            rec.s3.bucket.name = Some(LOCAL_BUCKET.into());
            rec.s3.object.key = Some(key.replace('=', "%3D"));
            rec
        })
        .collect();
    event
}

/// An EventBridge scheduled event for `ms`.
pub fn scheduled_event(ms: i64) -> CloudWatchEvent {
    let mut event = CloudWatchEvent::default();
    event.detail_type = Some("Scheduled Event".into());
    event.source = Some("aws.events".into());
    event.time = utc(ms);
    event
}
