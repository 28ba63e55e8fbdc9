//! sluice-core: the pure domain of sluice. No I/O, no clock, no async runtime, no cloud SDK:
//! everything here is a function of its inputs, so the Lambda handlers, the local pipeline,
//! the benchmarks and the tests all run exactly the same logic.
//!
//! # Layout
//! - [`stream`]: stream definitions (one TOML file per event type) and their validation.
//! - [`event`]: the event contract and its validating decoder.
//! - [`generate`]: seeded scenario generators with planted, labelled anomalies.
//! - [`window`]: event-time windows, watermark, late events, snapshots.
//! - [`detect`]: per-series streaming anomaly detectors.
//! - [`aggregate`]: windows + detectors as one restorable unit (the aggregate function's core).
//! - [`dedup`]: producer duplicates by a stream's dedup field, within a horizon.
//! - [`rules`]: alert rules, cooldown and dedup.
//! - [`schema`]: the lake's tables, defined once.
//! - [`lake`]: object keys and Parquet encoding.
//! - [`shard`]: the shard processor: one batch + prior state → objects and the state to commit.
//! - [`nab`]: the Numenta Anomaly Benchmark's scoring rules.
//! - [`evaluate`]: precision/recall of detectors against planted anomalies.
//! - [`time`], [`rng`]: UTC milliseconds and RFC 3339; the seeded generator.

pub mod aggregate;
pub mod dedup;
pub mod detect;
pub mod evaluate;
pub mod event;
pub mod generate;
pub mod lake;
pub mod nab;
pub mod rng;
pub mod rules;
pub mod schema;
pub mod series;
pub mod shard;
pub mod stream;
pub mod time;
pub mod window;
