//! `sluice run`: the whole pipeline on one machine, through the same handlers the Lambdas run.
//!
//! One loop, like the cloud wiring it stands in for: a scheduled event drives `generate` into
//! the local stream; each shard's new records are delivered to `aggregate` as a `KinesisEvent`
//! (the checkpoint advances only on success, so failed batches are redelivered); every window
//! and anomaly object the lake receives is delivered to `alert` as an S3 event notification.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use sluice_core::rules::Source;
use sluice_core::time::parse_duration_ms;
use sluice_infra::metrics::{Metrics, MetricsSnapshot};
use sluice_infra::sink::LocalStreamLog;
use sluice_infra::store::{LocalDirStore, ObjectStore};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::local::{self, AlertArgs, WindowArgs};
use crate::payloads;

#[derive(Args)]
pub struct RunArgs {
    /// trades, telemetry, clickstream, a comma-separated list, or all.
    #[arg(long, default_value = "all")]
    pub scenario: String,
    /// Events per second of event time, per scenario (e.g. 200 or 200/s).
    #[arg(long, default_value = "200/s")]
    pub rate: String,
    /// Stop after this long (e.g. 30s, 5m); runs until Ctrl-C when omitted.
    #[arg(long)]
    pub duration: Option<String>,
    /// Lake directory (Parquet tables, state, the local stream and the alert outbox).
    #[arg(long, env = "SLUICE_LAKE", default_value = "lake")]
    pub lake: PathBuf,
    /// Event-time history generated at start, so detectors have a baseline and windows close.
    #[arg(long, default_value = "15m")]
    pub history: String,
    /// Event time before the synthetic streams' first incident (default: the generators', 10m).
    #[arg(long, value_name = "DURATION")]
    pub warmup: Option<String>,
    /// Mean gap between the synthetic streams' incidents (default: the generators', 2h).
    #[arg(long, value_name = "DURATION")]
    pub incident_gap: Option<String>,
    /// Shards of the local stream.
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    /// Seed of the synthetic streams.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// How often the generator is invoked.
    #[arg(long, default_value = "1s")]
    pub tick: String,
    /// Records per aggregate invocation (Lambda's batch size).
    #[arg(long, default_value_t = 5_000)]
    pub batch_size: usize,
    /// At the end, close every open window (end of stream) instead of keeping them for the next run.
    #[arg(long)]
    pub flush: bool,
    /// Print no progress line.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub streams: local::StreamsArg,
    #[command(flatten)]
    pub windows: WindowArgs,
    #[command(flatten)]
    pub alerts: AlertArgs,
}

/// How often `sluice run` sweeps (wall clock).
const SWEEP_EVERY: Duration = Duration::from_secs(5);

fn parse_rate(text: &str) -> anyhow::Result<f64> {
    let number = text.trim().trim_end_matches("/s");
    let rate: f64 = number
        .parse()
        .with_context(|| format!("--rate {text:?}: expected events per second, e.g. 200/s"))?;
    if !(rate > 0.0 && rate <= 1e7) {
        bail!("--rate {text:?}: must be between 0 and 10,000,000 per second");
    }
    Ok(rate)
}

/// The duration option `--name` in ms, the error naming it.
pub(crate) fn ms_arg(name: &str, text: &str) -> anyhow::Result<i64> {
    parse_duration_ms(text).with_context(|| format!("--{name} {text:?}"))
}

fn duration_arg(name: &str, text: &str) -> anyhow::Result<Duration> {
    Ok(Duration::from_millis(ms_arg(name, text)?.max(0) as u64))
}

/// Consumer positions in the local stream, persisted so a restart continues.
struct Checkpoints {
    path: PathBuf,
    positions: BTreeMap<usize, u64>,
}

impl Checkpoints {
    fn load(lake: &std::path::Path) -> anyhow::Result<Self> {
        let path = local::stream_dir(lake).join("checkpoints.json");
        let positions = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is corrupt", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Self { path, positions })
    }

    fn save(&self) -> anyhow::Result<()> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&self.positions)?)?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

struct Pipeline {
    log: Arc<LocalStreamLog>,
    checkpoints: Checkpoints,
    generate: sluice_generate::Deps,
    aggregate: sluice_aggregate::Deps,
    alert: sluice_alert::Deps,
    written: UnboundedReceiver<String>,
    batch_size: usize,
}

impl Pipeline {
    /// Delivers every shard's unread records to aggregate, in batches. Returns records delivered.
    async fn pump_aggregate(&mut self) -> anyhow::Result<usize> {
        let mut delivered = 0;
        for shard in 0..self.log.shard_count() {
            loop {
                let after = self.checkpoints.positions.get(&shard).copied().unwrap_or(0);
                let records = self.log.read(shard, after, self.batch_size)?;
                let Some(last) = records.last().map(|r| r.sequence) else {
                    break;
                };
                let response =
                    sluice_aggregate::handle(&payloads::kinesis_payload(&records), &self.aggregate)
                        .await
                        .context("aggregate")?;
                if !response.batch_item_failures.is_empty() {
                    // Redelivered on the next pass, as Lambda would.
                    tracing::warn!(shard, "aggregate reported failures; will redeliver");
                    break;
                }
                delivered += records.len();
                self.checkpoints.positions.insert(shard, last);
                self.checkpoints.save()?;
            }
        }
        Ok(delivered)
    }

    /// Delivers the window/anomaly objects written since the last call to alert.
    async fn pump_alerts(&mut self) -> anyhow::Result<()> {
        let mut keys = Vec::new();
        while let Ok(key) = self.written.try_recv() {
            if Source::of_key(&key).is_some() {
                keys.push(key);
            }
        }
        for chunk in keys.chunks(100) {
            let response = sluice_alert::handle(payloads::s3_event(chunk), &self.alert)
                .await
                .context("alert")?;
            for e in &response.rule_errors {
                tracing::warn!("{e}");
            }
        }
        Ok(())
    }

    fn backlog(&self) -> u64 {
        (0..self.log.shard_count())
            .map(|s| {
                self.log.latest_sequence(s)
                    - self.checkpoints.positions.get(&s).copied().unwrap_or(0)
            })
            .sum()
    }
}

fn progress_line(m: &MetricsSnapshot, backlog: u64, elapsed: Duration) -> String {
    format!(
        "{:>5.1}s  events {}  windows {}  anomalies {}  alerts {}  quarantined {}  late {}  backlog {}",
        elapsed.as_secs_f64(),
        m.events_in,
        m.windows_out,
        m.anomalies_out,
        m.alerts_sent,
        m.quarantined,
        m.late,
        backlog
    )
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let streams = args.streams.load()?;
    let scenarios = local::generated_scenarios(&args.scenario, &streams)?;
    let rate = parse_rate(&args.rate)?;
    let duration = args
        .duration
        .as_deref()
        .map(|d| duration_arg("duration", d))
        .transpose()?;
    let tick = duration_arg("tick", &args.tick)?.max(Duration::from_millis(50));
    let history_ms = ms_arg("history", &args.history)?;
    let warmup_ms = args
        .warmup
        .as_deref()
        .map(|t| ms_arg("warmup", t))
        .transpose()?;
    let incident_gap_ms = (args.incident_gap.as_deref())
        .map(|t| ms_arg("incident-gap", t))
        .transpose()?;
    if args.shards == 0 || args.shards > 1024 {
        bail!("--shards must be between 1 and 1024");
    }
    std::fs::create_dir_all(&args.lake)
        .with_context(|| format!("creating {}", args.lake.display()))?;

    let metrics = Arc::new(Metrics::default());
    let (tx, written) = tokio::sync::mpsc::unbounded_channel();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalDirStore::new(&args.lake).with_notifications(tx));
    // One log serves as the producers' sink and the consumer's source.
    let log = Arc::new(local::open_stream(&args.lake, args.shards)?);
    let sink = log.clone();
    let mut pipeline = Pipeline {
        checkpoints: Checkpoints::load(&args.lake)?,
        generate: sluice_generate::Deps {
            sink,
            store: store.clone(),
            settings: sluice_generate::Settings {
                scenarios: scenarios.clone(),
                rate_per_s: rate,
                seed: args.seed,
                backfill_ms: history_ms,
                max_catch_up_ms: history_ms.max(10 * 60_000),
                warmup_ms,
                incident_gap_ms,
                ..Default::default()
            },
            metrics: metrics.clone(),
        },
        aggregate: local::aggregate_deps(
            store.clone(),
            args.windows.aggregate_settings(streams.clone())?,
            metrics.clone(),
        )
        .await?,
        alert: local::alert_deps(
            store.clone(),
            &args.alerts,
            &streams,
            &args.lake,
            metrics.clone(),
        )?,
        log,
        written,
        batch_size: args.batch_size.max(1),
    };

    let names: Vec<&str> = scenarios.iter().map(|s| s.as_str()).collect();
    let producing = if names.is_empty() {
        format!(
            "no loaded stream has a generator ({}): aggregating what is in {} (fed by `sluice invoke fetch`)",
            streams.names().join(", "),
            local::stream_dir(&args.lake).display()
        )
    } else {
        format!("{} at {rate}/s each", names.join(", "))
    };
    eprintln!(
        "sluice run: {producing}, lake {}, {} shard(s), alerts to {}{}",
        args.lake.display(),
        args.shards,
        pipeline.alert.notifier.describe(),
        duration
            .map(|d| format!(", for {}s", d.as_secs_f64()))
            .unwrap_or_else(|| ", until Ctrl-C".into()),
    );
    let started = Instant::now();
    let deadline = duration.map(|d| started + d);
    let interactive = std::io::stderr().is_terminal() && !args.quiet;
    let mut last_progress = Instant::now();
    let mut next_tick = Instant::now();
    let mut next_sweep = Instant::now() + SWEEP_EVERY;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if !scenarios.is_empty() && Instant::now() >= next_tick {
            let now_ms = chrono::Utc::now().timestamp_millis();
            sluice_generate::handle(payloads::scheduled_event(now_ms), &pipeline.generate)
                .await
                .context("generate")?;
            next_tick += tick;
        }
        pipeline.pump_aggregate().await?;
        if Instant::now() >= next_sweep {
            // As the scheduled sweep does in the cloud: shards quiet for the idle timeout have
            // their last windows closed.
            let now_ms = chrono::Utc::now().timestamp_millis();
            sluice_aggregate::sweep(&pipeline.aggregate, now_ms)
                .await
                .context("sweep")?;
            next_sweep = Instant::now() + SWEEP_EVERY;
        }
        pipeline.pump_alerts().await?;
        if !args.quiet && last_progress.elapsed() >= Duration::from_secs(1) {
            let line = progress_line(&metrics.snapshot(), pipeline.backlog(), started.elapsed());
            if interactive {
                eprint!("\r{line}\x1b[K");
            } else {
                eprintln!("{line}");
            }
            last_progress = Instant::now();
        }
        let wait = next_tick
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut ctrl_c => {
                eprintln!("\nstopping: draining the stream…");
                break;
            }
        }
    }
    // Drain what was generated, optionally close every window, deliver the last alerts.
    pipeline.pump_aggregate().await?;
    if args.flush {
        for shard in 0..pipeline.log.shard_count() {
            sluice_aggregate::flush(
                &pipeline.aggregate,
                Some(payloads::LOCAL_STREAM_ARN),
                &LocalStreamLog::shard_id(shard),
            )
            .await
            .context("flushing open windows")?;
        }
    }
    pipeline.pump_alerts().await?;
    if interactive {
        eprintln!();
    }
    // A build without the query engine points at the build that has it.
    let query = if cfg!(feature = "lake") {
        "sluice query"
    } else {
        "cargo run --release --features lake -- query"
    };
    let hint = match &args.streams.streams {
        _ if streams.get("trades").is_some() => {
            format!(
                "{query} --lake {} --example trades-ohlc-vwap",
                args.lake.display()
            )
        }
        Some(path) => format!(
            "{query} --lake {} --streams {} \"SELECT * FROM windows LIMIT 10\"",
            args.lake.display(),
            path.display()
        ),
        None => format!(
            "{query} --lake {} \"SELECT * FROM windows LIMIT 10\"",
            args.lake.display()
        ),
    };
    print_summary(&metrics.snapshot(), started.elapsed(), &args.lake, &hint);
    Ok(())
}

fn print_summary(m: &MetricsSnapshot, elapsed: Duration, lake: &std::path::Path, hint: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "\nsummary after {:.1}s\n  events generated   {}\n  events aggregated  {} ({:.0}/s)\n  windows written    {}\n  anomalies flagged  {} ({} planted)\n  alerts sent        {} ({} held back by cooldown/dedup)\n  quarantined        {}\n  late               {}\n  lake objects       {} ({:.1} MB)\n\nlake: {}\nalerts: {}\ntry:  {hint}",
        elapsed.as_secs_f64(),
        m.events_generated,
        m.events_in,
        m.events_in as f64 / elapsed.as_secs_f64().max(1e-9),
        m.windows_out,
        m.anomalies_out,
        m.anomalies_planted,
        m.alerts_sent,
        m.alerts_suppressed,
        m.quarantined,
        m.late,
        m.objects_written,
        m.bytes_written as f64 / 1e6,
        lake.display(),
        local::outbox_path(lake).display(),
    );
}
