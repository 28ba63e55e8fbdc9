//! `sluice bench`: whole-handler measurements that any other tool can be timed against on the
//! same input file.
//!
//! - `make-event` writes a Kinesis batch exactly as Lambda delivers it (base64 JSON records).
//! - `aggregate` runs the aggregate function's work on it in-process — decode, validate,
//!   windows, detectors, Parquet bytes ready to upload; no I/O — and prints one JSON line.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use sluice_aggregate::{InRecord, KinesisBatch, Settings, process_shard};
use sluice_core::detect::Calibrated;
use sluice_core::event::Scenario;
use sluice_core::generate::{Generator, GeneratorConfig};
use sluice_infra::sink::LogRecord;

use crate::payloads;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Write a Kinesis batch of generated events as Lambda delivers it.
    MakeEvent {
        #[arg(long, default_value = "trades")]
        scenario: String,
        #[arg(long, default_value_t = 10_000)]
        records: usize,
        /// Events per second of event time (how many windows the batch spans).
        #[arg(long, default_value_t = 1_000.0)]
        rate: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Spread the events over this many keys (e.g. 500 symbols instead of the scenario's
        /// own few), to measure how per-key state scales.
        #[arg(long)]
        keys: Option<usize>,
        /// Pack this many events into each Kinesis record, as the KPL aggregates them.
        #[arg(long)]
        kpl: Option<usize>,
        /// Event time before the first planted incident (default: the generators', 10m).
        #[arg(long, value_name = "DURATION")]
        warmup: Option<String>,
        /// Mean gap between planted incidents (default: the generators', 2h).
        #[arg(long, value_name = "DURATION")]
        incident_gap: Option<String>,
        #[arg(long)]
        output: PathBuf,
    },
    /// Time the default detector on a `timestamp,value` CSV: points/s on one core and the
    /// bytes of state it keeps for the series.
    Detect {
        #[arg(long)]
        input: PathBuf,
        /// Passes over the series (each from a fresh detector); the best is reported.
        #[arg(long, default_value_t = 20)]
        repeat: usize,
    },
    /// Time a shipped example query over a lake of generated trades (written first if the lake
    /// holds fewer rows than asked for). Needs the query engine (feature `lake`).
    #[cfg(feature = "lake")]
    Query {
        #[arg(long, default_value = "bench-lake")]
        lake: PathBuf,
        #[arg(long, default_value_t = 10_000_000)]
        rows: usize,
        #[arg(long, default_value = "trades-quantity-by-symbol")]
        example: String,
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
    /// Time the aggregate handler's work on a Kinesis batch: decode to Parquet bytes.
    Aggregate {
        #[arg(long)]
        event: PathBuf,
        /// Runs to time (each from the same starting state); the best is reported.
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// Steady state, as a long-running shard sees it: the first half of the batch builds the
        /// shard's state (untimed); the second half is timed from that state's JSON, and the
        /// new state's JSON is written, as the Lambda does around every batch.
        #[arg(long)]
        warm: bool,
    },
}

/// Peak resident set size of this process, from /proc (Linux), in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Writes `rows` generated trades as raw Parquet files of a million rows each, unless `lake`
/// already has them (a marker file records how many).
#[cfg(feature = "lake")]
fn ensure_trades_lake(lake: &std::path::Path, rows: usize) -> anyhow::Result<()> {
    use sluice_core::lake::{BatchId, Lineage, encode_raw, object_key, raw_batch, table_dir};
    use sluice_core::stream::{Decoder, StreamSet};
    let streams = StreamSet::builtin();
    let decoder = Decoder::new(streams.clone());
    let stream = streams
        .streams()
        .iter()
        .position(|s| s.name == "trades")
        .context("the built-in trades definition")?;
    let def = &streams.streams()[stream];
    let marker = lake.join(".bench-trades-rows");
    let have: usize = std::fs::read_to_string(&marker)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    if have >= rows {
        return Ok(());
    }
    let table = sluice_core::schema::raw_table(def);
    let dir = lake.join(table_dir(&table, "trades"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let start = 1_795_496_400_000;
    // 2,000 trades/s of event time: 10M rows span about 83 minutes, two hourly partitions.
    let mut generator = Generator::new(GeneratorConfig::new(Scenario::Trades, 7, 2_000.0, start));
    let (mut events, mut truth) = (Vec::new(), Vec::new());
    let (mut written, mut part) = (0, 0);
    let chunk = 1_000_000;
    let started = Instant::now();
    while written < rows {
        events.clear();
        let until = generator.generate_count(chunk.min(rows - written), &mut events, &mut truth);
        let sequence = format!("{part:06}");
        let lineage = Lineage {
            shard_id: "shardId-bench",
            sequence_number: &sequence,
            arrival_ms: until,
            sub_sequence_number: None,
        };
        let records = events
            .iter()
            .map(|e| decoder.decode(&e.to_json(), None).map_err(|r| r.error))
            .collect::<Result<Vec<_>, _>>()?;
        let rowset: Vec<_> = records.iter().map(|r| (r, lineage)).collect();
        let bytes = encode_raw(def, &raw_batch(def, stream, &rowset)?)?;
        let batch = BatchId {
            shard_id: "bench".into(),
            first_sequence: sequence.clone(),
            last_sequence: sequence.clone(),
        };
        let key = object_key(&table, "trades", events[0].event_time_ms, &batch);
        let path = lake.join(&key);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        written += events.len();
        part += 1;
        eprintln!(
            "  {written} / {rows} trade rows written ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
    std::fs::write(&marker, rows.to_string())?;
    Ok(())
}

pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        #[cfg(feature = "lake")]
        BenchCommand::Query {
            lake,
            rows,
            example,
            repeat,
        } => {
            let sql = crate::query::EXAMPLES
                .iter()
                .find(|(name, _, _)| *name == example)
                .map(|(_, _, sql)| *sql)
                .with_context(|| format!("no example query named {example:?}"))?;
            ensure_trades_lake(&lake, rows)?;
            // `sluice` runs on tokio's multi-threaded runtime; this subcommand is synchronous.
            let runtime = tokio::runtime::Handle::current();
            let mut best = f64::INFINITY;
            let mut result_rows = 0;
            for _ in 0..repeat.max(1) {
                let started = Instant::now();
                let batches = tokio::task::block_in_place(|| {
                    runtime.block_on(crate::query::run_sql(
                        &lake,
                        &sluice_core::stream::StreamSet::builtin(),
                        sql,
                    ))
                })?;
                best = best.min(started.elapsed().as_secs_f64());
                result_rows = batches.iter().map(|b| b.num_rows()).sum::<usize>();
            }
            println!(
                "{}",
                serde_json::json!({
                    "query": example,
                    "lake_rows": rows,
                    "result_rows": result_rows,
                    "seconds": best,
                    "rows_per_s": rows as f64 / best,
                    "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                })
            );
            Ok(())
        }
        BenchCommand::MakeEvent {
            scenario,
            records,
            rate,
            seed,
            keys,
            kpl,
            warmup,
            incident_gap,
            output,
        } => {
            let scenario = Scenario::parse(&scenario)
                .with_context(|| format!("unknown scenario {scenario:?}"))?;
            let start = 1_795_496_400_000;
            let warmup_ms = (warmup.as_deref())
                .map(|t| crate::run::ms_arg("warmup", t))
                .transpose()?;
            let gap_ms = (incident_gap.as_deref())
                .map(|t| crate::run::ms_arg("incident-gap", t))
                .transpose()?;
            let config =
                GeneratorConfig::new(scenario, seed, rate, start).with_planting(warmup_ms, gap_ms);
            let mut generator = Generator::new(config);
            let (mut events, mut truth) = (Vec::new(), Vec::new());
            let until = generator.generate_count(records, &mut events, &mut truth);
            if let Some(keys) = keys {
                // Round-robin: every key gets the same share, and the values stay realistic.
                for (i, e) in events.iter_mut().enumerate() {
                    e.key = format!("key-{:04}", i % keys.max(1));
                }
            }
            let per_record = kpl.unwrap_or(1).max(1);
            let log: Vec<LogRecord> = events
                .chunks(per_record)
                .enumerate()
                .map(|(i, chunk)| {
                    let data = if kpl.is_some() {
                        let jsons: Vec<(String, Vec<u8>)> =
                            chunk.iter().map(|e| (e.key.clone(), e.to_json())).collect();
                        let users: Vec<(&str, &[u8])> = jsons
                            .iter()
                            .map(|(k, d)| (k.as_str(), d.as_slice()))
                            .collect();
                        sluice_aggregate::kpl::pack(&users)
                    } else {
                        chunk[0].to_json()
                    };
                    LogRecord {
                        shard: 0,
                        sequence: 1_000_000 + i as u64,
                        arrival_ms: until,
                        partition_key: chunk[0].key.clone(),
                        data,
                    }
                })
                .collect();
            let json = payloads::kinesis_payload(&log);
            std::fs::write(&output, &json)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!(
                "{} events in {} records, {:.1} MB as Lambda delivers them → {}",
                records,
                log.len(),
                json.len() as f64 / 1e6,
                output.display()
            );
            Ok(())
        }
        BenchCommand::Detect { input, repeat } => {
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("reading {}", input.display()))?;
            let (timestamps, values) = sluice_core::nab::parse_series_csv(&text)
                .with_context(|| format!("{}", input.display()))?;
            let mut best = f64::INFINITY;
            let (mut flagged, mut state_bytes) = (0, 0);
            for _ in 0..repeat.max(1) {
                let mut detector = Calibrated::default();
                let started = Instant::now();
                flagged = timestamps
                    .iter()
                    .zip(&values)
                    .filter(|&(&t, &x)| detector.update(t, x).flagged())
                    .count();
                best = best.min(started.elapsed().as_secs_f64());
                state_bytes = detector.state_bytes();
            }
            println!(
                "{}",
                serde_json::json!({
                    "detector": "calibrated",
                    "points": values.len(),
                    "flagged": flagged,
                    "seconds": best,
                    "points_per_s": values.len() as f64 / best,
                    "state_bytes": state_bytes,
                })
            );
            Ok(())
        }
        BenchCommand::Aggregate {
            event,
            repeat,
            warm,
        } => {
            let mut bytes =
                std::fs::read(&event).with_context(|| format!("reading {}", event.display()))?;
            let settings = Settings::default();
            let shard = "shardId-000000000000";
            // With --warm: the first half's payload builds the state, kept as the JSON the store
            // would hold; the second half becomes the payload that is timed.
            let prior_json = if warm {
                let mut payload: serde_json::Value =
                    serde_json::from_slice(&bytes).context("not a Kinesis event")?;
                let records = payload
                    .get_mut("Records")
                    .and_then(|r| r.as_array_mut())
                    .context("no Records in the event")?;
                let second = records.split_off(records.len() / 2);
                let first = serde_json::to_vec(&payload)?;
                payload["Records"] = serde_json::Value::Array(second);
                bytes = serde_json::to_vec(&payload)?;
                let batch = KinesisBatch::parse(&first)?;
                let records: Vec<InRecord<'_>> = batch.records().map(|(_, _, r)| r).collect();
                let warmed = process_shard(&settings.aggregate, None, shard, &records)?;
                Some(serde_json::to_vec(&warmed.state)?)
            } else {
                None
            };
            let mut best = f64::INFINITY;
            let mut last = None;
            let mut records_len = 0;
            let mut state_bytes = 0;
            for _ in 0..repeat.max(1) {
                // Timed from the payload's bytes, as the runtime hands them over: parsing the
                // Kinesis envelope and base64 is part of the handler's cost.
                let started = Instant::now();
                let batch = KinesisBatch::parse(&bytes)?;
                let records: Vec<InRecord<'_>> = batch.records().map(|(_, _, r)| r).collect();
                let prior = prior_json
                    .as_deref()
                    .map(serde_json::from_slice)
                    .transpose()
                    .context("reading the warmed state")?;
                let processed = process_shard(&settings.aggregate, prior, shard, &records)?;
                if warm {
                    state_bytes = serde_json::to_vec(&processed.state)?.len();
                }
                best = best.min(started.elapsed().as_secs_f64());
                records_len = records.len();
                last = Some(processed);
            }
            let processed = last.context("no run")?;
            let out_bytes: usize = processed.objects.iter().map(|(_, b)| b.len()).sum();
            println!(
                "{}",
                serde_json::json!({
                    "function": "aggregate",
                    "records": records_len,
                    "events": processed.stats.events,
                    "quarantined": processed.stats.quarantined,
                    "windows": processed.stats.windows,
                    "anomalies": processed.stats.anomalies,
                    "objects": processed.objects.len(),
                    "parquet_bytes": out_bytes,
                    "seconds": best,
                    "events_per_s": records_len as f64 / best,
                    "peak_rss_mb": peak_rss_bytes().map(|b| b as f64 / 1048576.0),
                    "warm": warm,
                    "prior_state_bytes": prior_json.as_ref().map(Vec::len),
                    "state_bytes": warm.then_some(state_bytes),
                })
            );
            Ok(())
        }
    }
}
