//! The generate function: on each scheduled tick, continue every configured scenario's
//! synthetic stream up to the tick's time and send the events to the stream.
//!
//! # Layout
//! - [`handle`]: the Lambda handler (scheduled EventBridge event → events on the sink).
//! - [`Settings`]: scenarios, rate, seed, backfill.
//!
//! Each scenario's generator state lives in the object store, so consecutive invocations
//! continue one seamless, reproducible stream. Planted anomalies (ground truth) are written
//! beside the stream under `truth/`, never into the events. Events are sent before the state is
//! committed: a failed invocation is regenerated identically on retry (same event ids), so
//! consumers can deduplicate.

use std::sync::Arc;

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use serde::Serialize;
use sluice_core::event::Scenario;
use sluice_core::generate::{Generator, GeneratorConfig, PlantedAnomaly};
use sluice_core::time::format_rfc3339_ms;
use sluice_infra::metrics::Metrics;
use sluice_infra::sink::{EventSink, OutRecord, SinkError};
use sluice_infra::store::{ObjectStore, Precondition, StoreError};
use thiserror::Error;

#[cfg(feature = "lambda")]
pub mod lambda;

#[derive(Debug, Clone)]
pub struct Settings {
    pub scenarios: Vec<Scenario>,
    /// Events per second of event time, per scenario.
    pub rate_per_s: f64,
    pub seed: u64,
    /// How much history the first invocation generates (a new stream starts this far back).
    pub backfill_ms: i64,
    /// At most this much event time is generated per invocation, so a stream that fell far
    /// behind catches up over several ticks instead of timing out.
    pub max_catch_up_ms: i64,
    pub state_prefix: String,
    /// Events per call to the sink.
    pub send_chunk: usize,
    /// A new stream's warm-up before its first incident and mean gap between incidents, in ms,
    /// where they differ from the generators' (10 minutes, 2 hours).
    pub warmup_ms: Option<i64>,
    pub incident_gap_ms: Option<i64>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            scenarios: Scenario::ALL.to_vec(),
            rate_per_s: 100.0,
            seed: 42,
            backfill_ms: 60_000,
            max_catch_up_ms: 10 * 60_000,
            state_prefix: "state/generate".into(),
            send_chunk: 5_000,
            warmup_ms: None,
            incident_gap_ms: None,
        }
    }
}

pub struct Deps {
    pub sink: Arc<dyn EventSink>,
    pub store: Arc<dyn ObjectStore>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
}

#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("sending events to {target}: {source}")]
    Sink {
        target: String,
        #[source]
        source: SinkError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("generator state {key} is unreadable: {message}")]
    CorruptState { key: String, message: String },
}

impl HandlerError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, HandlerError::CorruptState { .. })
    }
}

/// What one invocation produced, per scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GenerateResponse {
    pub scenarios: Vec<ScenarioReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioReport {
    pub scenario: Scenario,
    pub events: usize,
    pub anomalies_planted: usize,
    /// Event time the stream now reaches.
    pub until: String,
}

/// Event time generated per scenario before moving to the next, so a backfill interleaves
/// the scenarios the way concurrent producers would (well within any allowed lateness).
const SLICE_MS: i64 = 1_000;

struct Stream {
    scenario: Scenario,
    key: String,
    generator: Generator,
    condition: Precondition,
    from_ms: i64,
    until_ms: i64,
    events: usize,
    truth: Vec<PlantedAnomaly>,
}

pub async fn handle(event: CloudWatchEvent, deps: &Deps) -> Result<GenerateResponse, HandlerError> {
    let now_ms = event.time.timestamp_millis();
    let s = &deps.settings;
    let mut streams = Vec::with_capacity(s.scenarios.len());
    for &scenario in &s.scenarios {
        let key = format!(
            "{}/{}.json",
            s.state_prefix.trim_end_matches('/'),
            scenario.as_str()
        );
        let (generator, condition) = match deps.store.get(&key).await? {
            Some(obj) => {
                let g: Generator =
                    serde_json::from_slice(&obj.body).map_err(|e| HandlerError::CorruptState {
                        key: key.clone(),
                        message: e.to_string(),
                    })?;
                (g, Precondition::Matches(obj.etag))
            }
            None => {
                let config =
                    GeneratorConfig::new(scenario, s.seed, s.rate_per_s, now_ms - s.backfill_ms)
                        .with_planting(s.warmup_ms, s.incident_gap_ms);
                (Generator::new(config), Precondition::DoesNotExist)
            }
        };
        let from_ms = generator.clock_ms();
        streams.push(Stream {
            scenario,
            key,
            until_ms: now_ms.min(from_ms + s.max_catch_up_ms),
            generator,
            condition,
            from_ms,
            events: 0,
            truth: Vec::new(),
        });
    }

    // Generate slice by slice across scenarios, sending as chunks fill.
    let mut records: Vec<OutRecord> = Vec::with_capacity(s.send_chunk);
    let mut events = Vec::new();
    let mut slice_end = streams.iter().map(|st| st.from_ms).min().unwrap_or(now_ms);
    let last = streams.iter().map(|st| st.until_ms).max().unwrap_or(now_ms);
    while slice_end < last {
        slice_end = (slice_end + SLICE_MS).min(last);
        for st in &mut streams {
            events.clear();
            st.generator
                .generate_until(slice_end.min(st.until_ms), &mut events, &mut st.truth);
            st.events += events.len();
            records.extend(events.iter().map(|e| OutRecord {
                partition_key: e.key.clone(),
                data: e.to_json(),
            }));
        }
        if records.len() >= s.send_chunk.max(1) || slice_end >= last {
            send(deps, std::mem::take(&mut records)).await?;
        }
    }
    send(deps, records).await?;

    let mut response = GenerateResponse::default();
    for st in streams {
        if !st.truth.is_empty() {
            let mut lines = Vec::new();
            for t in &st.truth {
                lines.extend(serde_json::to_vec(t).unwrap_or_default());
                lines.push(b'\n');
            }
            let truth_key = format!(
                "truth/scenario={}/{}-{}.jsonl",
                st.scenario.as_str(),
                st.from_ms,
                st.until_ms
            );
            deps.store.put(&truth_key, lines).await?;
        }
        let state = serde_json::to_vec(&st.generator).map_err(|e| HandlerError::CorruptState {
            key: st.key.clone(),
            message: e.to_string(),
        })?;
        deps.store.put_if(&st.key, state, st.condition).await?;
        Metrics::add(&deps.metrics.events_generated, st.events);
        Metrics::add(&deps.metrics.anomalies_planted, st.truth.len());
        response.scenarios.push(ScenarioReport {
            scenario: st.scenario,
            events: st.events,
            anomalies_planted: st.truth.len(),
            until: format_rfc3339_ms(st.until_ms),
        });
    }
    Ok(response)
}

async fn send(deps: &Deps, records: Vec<OutRecord>) -> Result<(), HandlerError> {
    if records.is_empty() {
        return Ok(());
    }
    deps.sink
        .send(records)
        .await
        .map_err(|source| HandlerError::Sink {
            target: deps.sink.describe(),
            source,
        })?;
    Ok(())
}
