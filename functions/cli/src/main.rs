//! `sluice`: the whole pipeline on one machine, SQL over the lake, and one handler at a time.
//!
//! # Layout
//! - `run`: generate → local stream → aggregate → lake → alert, continuously.
//! - `query`: DataFusion SQL over the lake, tables registered by name (feature `lake`).
//! - `dashboard`: the live local dashboard over the lake (feature `lake`).
//! - `schema`: the lake's tables as Markdown, Glue columns or Kusto commands.
//! - `invoke`: one handler on one real Lambda payload file.
//! - `detect`: the detectors on any series, and NAB scoring.
//! - `eval`: detector precision/recall against planted anomalies (`detect-eval`).
//! - `local`: wiring of local adapters into each handler's dependencies.
//! - `bench`: whole-handler timings on payload files.
//! - `payloads`: building the Lambda payloads the handlers take.

mod bench;
#[cfg(feature = "lake")]
mod dashboard;
mod detect;
mod eval;
mod invoke;
mod local;
mod payloads;
mod plot;
#[cfg(feature = "lake")]
mod query;
mod replay;
mod run;
mod schema;
#[cfg(feature = "lake")]
mod sketch_udaf;
#[cfg(feature = "lake")]
mod tiles;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Real-time streaming analytics: generate, window, detect, alert, query."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (e.g. info, sluice_aggregate=debug).
    #[arg(long, global = true, env = "SLUICE_LOG", default_value = "warn")]
    log: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline locally: generate → stream → aggregate → lake → alert.
    Run(run::RunArgs),
    /// Run SQL over the lake (tables: trades, telemetry, clickstream, windows, windows_merged, anomalies, late, quarantine, pipeline, alerts).
    #[cfg(feature = "lake")]
    Query(query::QueryArgs),
    /// Run SQL over the lake (needs the query engine: build with `--features lake`).
    #[cfg(not(feature = "lake"))]
    Query(WithoutLake),
    /// A live local dashboard over the lake (the tiles of dashboards/tiles.toml and one per metric).
    #[cfg(feature = "lake")]
    Dashboard(dashboard::DashboardArgs),
    /// A live local dashboard over the lake (needs the query engine: build with `--features lake`).
    #[cfg(not(feature = "lake"))]
    Dashboard(WithoutLake),
    /// Run one handler on one Lambda payload (KinesisEvent, S3 event or scheduled event JSON).
    Invoke(invoke::InvokeArgs),
    /// Process again, once, a stream range Lambda gave up on (its DLQ message).
    Replay(replay::ReplayArgs),
    /// Score a `timestamp,value` series with the detectors, one point at a time.
    Detect(detect::DetectArgs),
    /// Precision, recall and F1 of the detectors against the anomalies the generators plant;
    /// with --nab DIR also NAB scores on a labelled corpus.
    DetectEval(eval::EvalArgs),
    /// Whole-handler benchmarks on a payload file (events/s, peak RSS), one JSON line each.
    Bench(bench::BenchArgs),
    /// Print the lake's table definitions (the one source of truth for schemas).
    Schema(schema::SchemaArgs),
}

/// The arguments of a command this build does not have, taken as they come so the error names
/// the missing feature rather than an argument.
#[cfg(not(feature = "lake"))]
#[derive(clap::Args)]
struct WithoutLake {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _args: Vec<String>,
}

/// The error for `query` and `dashboard` in a build without the query engine.
#[cfg(not(feature = "lake"))]
fn without_lake(command: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "`sluice {command}` needs the query engine, which this build leaves out so the pipeline \
         builds fast. Build it in once (DataFusion: about 15 more minutes on 2 cores the first \
         time) and run `cargo run --release --features lake -- {command} ...`, or install it with \
         `cargo install --path functions/cli --features lake`"
    )
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            #[cfg(feature = "lake")]
            Command::Query(args) => query::query(args).await,
            #[cfg(feature = "lake")]
            Command::Dashboard(args) => dashboard::dashboard(args).await,
            #[cfg(not(feature = "lake"))]
            Command::Query(_) => Err(without_lake("query")),
            #[cfg(not(feature = "lake"))]
            Command::Dashboard(_) => Err(without_lake("dashboard")),
            Command::Invoke(args) => invoke::invoke(args).await,
            Command::Replay(args) => replay::replay(args).await,
            Command::Detect(args) => detect::detect(args),
            Command::DetectEval(args) => eval::detect_eval(args),
            Command::Schema(args) => schema::schema(args),
            Command::Bench(args) => bench::bench(args),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
