//! Local adapters wired into each handler's dependencies: the lake directory stands in for S3,
//! `{lake}/_stream` for Kinesis, the console and `{lake}/_alerts/alerts.jsonl` (and SMTP when
//! configured) for SNS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use sluice_core::event::Scenario;
use sluice_core::rules::RuleSet;
use sluice_core::stream::StreamSet;
use sluice_infra::metrics::Metrics;
use sluice_infra::notify::{
    ConsoleNotifier, Fanout, Notifier, OutboxNotifier, SmtpConfig, SmtpNotifier,
};
use sluice_infra::sink::LocalStreamLog;
use sluice_infra::store::{LocalDirStore, ObjectStore};

pub fn stream_dir(lake: &Path) -> PathBuf {
    lake.join("_stream")
}

pub fn outbox_path(lake: &Path) -> PathBuf {
    lake.join("_alerts").join("alerts.jsonl")
}

/// Where stream definitions come from (`run`, `invoke`, `query`, `schema`, `detect-eval`).
#[derive(Args, Clone, Default)]
pub struct StreamsArg {
    /// Stream definitions: a TOML file, or a directory meaning its *.toml files. Replaces the
    /// built-in trades, telemetry and clickstream definitions.
    #[arg(long, env = "SLUICE_STREAMS", value_name = "PATH")]
    pub streams: Option<PathBuf>,
}

impl StreamsArg {
    /// The definitions in force, every problem named by file and line.
    pub fn load(&self) -> anyhow::Result<StreamSet> {
        match &self.streams {
            None => Ok(StreamSet::builtin()),
            Some(path) => load_streams(path),
        }
    }
}

/// Reads a definition file, or every `*.toml` of a directory (in name order).
pub fn load_streams(path: &Path) -> anyhow::Result<StreamSet> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading stream definitions in {}", path.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading stream definitions in {}", path.display()))?;
        files.retain(|f| f.extension().is_some_and(|e| e == "toml"));
        files.sort();
        if files.is_empty() {
            anyhow::bail!("{} holds no *.toml stream definitions", path.display());
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .map(|t| (f.display().to_string(), t))
                .with_context(|| format!("reading stream definition {}", f.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(StreamSet::from_sources(
        texts.iter().map(|(f, t)| (f.as_str(), t.as_str())),
    )?)
}

/// The scenarios to generate: `all` (every loaded stream that has a synthetic generator, which
/// may be none) or a comma-separated list, each of which must be a loaded stream with a
/// generator.
pub fn generated_scenarios(text: &str, streams: &StreamSet) -> anyhow::Result<Vec<Scenario>> {
    if text.trim() == "all" {
        return Ok(Scenario::ALL
            .into_iter()
            .filter(|s| streams.get(s.as_str()).is_some())
            .collect());
    }
    let scenarios = Scenario::parse_list(text).map_err(anyhow::Error::msg)?;
    for s in &scenarios {
        if streams.get(s.as_str()).is_none() {
            anyhow::bail!(
                "--scenario {s}: no stream definition named {s} is loaded (loaded: {})",
                streams.names().join(", ")
            );
        }
    }
    Ok(scenarios)
}

/// Window and lateness options shared by `run` and `invoke`.
#[derive(Args, Clone)]
pub struct WindowArgs {
    /// Extra window for every stream, e.g. sliding:30s, hopping:10m/1m, session:2m (repeatable).
    #[arg(long = "window", value_name = "SPEC")]
    pub windows: Vec<String>,
    /// How far behind the newest event an event may arrive and still count (for streams whose
    /// definition sets no allowed_lateness).
    #[arg(long, default_value = "5s")]
    pub lateness: String,
}

impl WindowArgs {
    pub fn aggregate_settings(
        &self,
        streams: StreamSet,
    ) -> anyhow::Result<sluice_aggregate::Settings> {
        let extra: Vec<&str> = self.windows.iter().map(String::as_str).collect();
        sluice_aggregate::Settings::with_windows(streams, &extra, &self.lateness)
            .map_err(|e| anyhow::anyhow!("--window/--lateness: {e}"))
    }
}

/// Where alerts go and which rules fire them.
#[derive(Args, Clone)]
pub struct AlertArgs {
    /// Rules file (TOML); the built-in default rules when omitted.
    #[arg(long, env = "SLUICE_RULES")]
    pub rules: Option<PathBuf>,
    /// Also email alerts: smtp://host:port (plain), smtp://host:port?tls=required, smtps://host:port.
    #[arg(long, env = "SLUICE_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// Sender address for alert email.
    #[arg(long, env = "SLUICE_SMTP_FROM", default_value = "sluice@localhost")]
    pub smtp_from: String,
    /// Recipient of alert email (repeatable).
    #[arg(long = "smtp-to", env = "SLUICE_SMTP_TO", value_delimiter = ',')]
    pub smtp_to: Vec<String>,
    /// Do not print alerts on the console (they still go to the outbox and SMTP).
    #[arg(long)]
    pub quiet_alerts: bool,
}

impl AlertArgs {
    /// The rules, checked against the loaded stream definitions.
    pub fn rules(&self, streams: &StreamSet) -> anyhow::Result<RuleSet> {
        match &self.rules {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading rules file {}", path.display()))?;
                Ok(sluice_alert::load_rules(
                    Some((&text, &path.display().to_string())),
                    streams,
                )?)
            }
            None => Ok(sluice_alert::load_rules(None, streams)?),
        }
    }

    pub fn notifier(&self, lake: &Path) -> anyhow::Result<Arc<dyn Notifier>> {
        let mut channels: Vec<Arc<dyn Notifier>> =
            vec![Arc::new(OutboxNotifier::new(outbox_path(lake)))];
        if !self.quiet_alerts {
            channels.push(Arc::new(ConsoleNotifier));
        }
        if let Some(url) = &self.smtp_url {
            let config = SmtpConfig {
                url: url.clone(),
                from: self.smtp_from.clone(),
                to: self.smtp_to.clone(),
            };
            channels.push(Arc::new(SmtpNotifier::new(&config).context("--smtp-url")?));
        }
        Ok(Arc::new(Fanout(channels)))
    }
}

pub fn store(lake: &Path) -> Arc<dyn ObjectStore> {
    Arc::new(LocalDirStore::new(lake))
}

pub fn open_stream(lake: &Path, shards: usize) -> anyhow::Result<LocalStreamLog> {
    let dir = stream_dir(lake);
    LocalStreamLog::open(&dir, shards)
        .with_context(|| format!("opening the local stream at {}", dir.display()))
}

/// The aggregate handler's dependencies, after checking the definitions against the columns
/// the lake already holds (as the Lambda does at cold start).
pub async fn aggregate_deps(
    store: Arc<dyn ObjectStore>,
    settings: sluice_aggregate::Settings,
    metrics: Arc<Metrics>,
) -> anyhow::Result<sluice_aggregate::Deps> {
    sluice_aggregate::check_definitions(
        store.as_ref(),
        settings.aggregate.streams(),
        &settings.state_prefix,
    )
    .await?;
    Ok(sluice_aggregate::Deps::new(store, settings, metrics))
}

pub fn alert_deps(
    store: Arc<dyn ObjectStore>,
    args: &AlertArgs,
    streams: &StreamSet,
    lake: &Path,
    metrics: Arc<Metrics>,
) -> anyhow::Result<sluice_alert::Deps> {
    Ok(sluice_alert::Deps {
        store,
        notifier: args.notifier(lake)?,
        rules: args.rules(streams)?,
        state_key: sluice_alert::STATE_KEY.into(),
        metrics,
    })
}
