//! `sluice invoke`: one handler on one Lambda payload file, with the local adapters; prints the
//! handler's response as JSON (e.g. `batchItemFailures` for aggregate).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::de::DeserializeOwned;
use sluice_infra::metrics::Metrics;

use crate::local::{self, AlertArgs, WindowArgs};

#[derive(Clone, Copy, ValueEnum)]
pub enum Function {
    Generate,
    Fetch,
    Aggregate,
    Alert,
}

#[derive(Args)]
pub struct InvokeArgs {
    pub function: Function,
    /// The trigger payload: a KinesisEvent (aggregate), S3 event (alert) or scheduled event
    /// (generate, fetch; for aggregate a sweep, its `time` being "now"), exactly as Lambda
    /// delivers it.
    #[arg(long)]
    pub event: PathBuf,
    #[arg(long, env = "SLUICE_LAKE", default_value = "lake")]
    pub lake: PathBuf,
    /// Shards of the local stream (generate, fetch).
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    /// Scenarios for generate: all, or a comma-separated list.
    #[arg(long, default_value = "all")]
    pub scenario: String,
    /// Events per second for generate.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// fetch: the API response body to map (the HTTP client comes with the AWS deployment).
    #[arg(long)]
    pub response: Option<PathBuf>,
    /// fetch: the response-to-event mapping (TOML).
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    #[command(flatten)]
    pub streams: local::StreamsArg,
    #[command(flatten)]
    pub windows: WindowArgs,
    #[command(flatten)]
    pub alerts: AlertArgs,
}

fn payload<T: DeserializeOwned>(path: &PathBuf) -> anyhow::Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not the expected Lambda payload", path.display()))
}

/// Serves a file as the API response.
struct FileSource(PathBuf);

#[async_trait::async_trait]
impl sluice_fetch::ApiSource for FileSource {
    async fn fetch(&self) -> Result<Vec<u8>, sluice_fetch::FetchError> {
        std::fs::read(&self.0)
            .map_err(|e| sluice_fetch::FetchError::Transport(format!("{}: {e}", self.0.display())))
    }
    fn describe(&self) -> String {
        format!("file {}", self.0.display())
    }
}

pub async fn invoke(args: InvokeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.lake)
        .with_context(|| format!("creating {}", args.lake.display()))?;
    let metrics = Arc::new(Metrics::default());
    let store = local::store(&args.lake);
    let output = match args.function {
        Function::Aggregate => {
            let settings = args.windows.aggregate_settings(args.streams.load()?)?;
            let deps = local::aggregate_deps(store, settings, metrics).await?;
            let bytes = std::fs::read(&args.event)
                .with_context(|| format!("reading {}", args.event.display()))?;
            let response = sluice_aggregate::handle(&bytes, &deps)
                .await
                .with_context(|| format!("{}", args.event.display()))?;
            serde_json::to_value(response)?
        }
        Function::Alert => {
            let streams = args.streams.load()?;
            let deps = local::alert_deps(store, &args.alerts, &streams, &args.lake, metrics)?;
            serde_json::to_value(sluice_alert::handle(payload(&args.event)?, &deps).await?)?
        }
        Function::Generate => {
            let scenarios = local::generated_scenarios(&args.scenario, &args.streams.load()?)?;
            if scenarios.is_empty() {
                anyhow::bail!(
                    "no loaded stream has a synthetic generator (trades, telemetry, clickstream)"
                );
            }
            let deps = sluice_generate::Deps {
                sink: Arc::new(local::open_stream(&args.lake, args.shards)?),
                store,
                settings: sluice_generate::Settings {
                    scenarios,
                    rate_per_s: args.rate,
                    seed: args.seed,
                    ..Default::default()
                },
                metrics,
            };
            serde_json::to_value(sluice_generate::handle(payload(&args.event)?, &deps).await?)?
        }
        Function::Fetch => {
            let (Some(response), Some(mapping)) = (&args.response, &args.mapping) else {
                anyhow::bail!(
                    "fetch needs --response FILE (the API body) and --mapping FILE (TOML)"
                );
            };
            let text = std::fs::read_to_string(mapping)
                .with_context(|| format!("reading {}", mapping.display()))?;
            let parsed: sluice_fetch::Mapping =
                toml::from_str(&text).with_context(|| format!("mapping {}", mapping.display()))?;
            let mapper = sluice_fetch::Mapper::new(&parsed, args.streams.load()?)
                .with_context(|| format!("mapping {}", mapping.display()))?;
            let deps = sluice_fetch::Deps {
                source: Arc::new(FileSource(response.clone())),
                sink: Arc::new(local::open_stream(&args.lake, args.shards)?),
                store,
                mapper,
                metrics,
            };
            serde_json::to_value(sluice_fetch::handle(payload(&args.event)?, &deps).await?)?
        }
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}
