//! `sluice query`: SQL over the lake with DataFusion. Every table of `sluice_core::schema` is
//! registered under its name with its Hive partition columns, so `WHERE dt = '…'` prunes
//! directories before any file is opened.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;
use sluice_core::schema::{self, Table};
use sluice_core::stream::StreamSet;

use crate::local::StreamsArg;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Args)]
pub struct QueryArgs {
    /// SQL to run (omit with --example or --file).
    pub sql: Option<String>,
    /// The lake directory written by `sluice run`.
    #[arg(long, env = "SLUICE_LAKE", default_value = "lake")]
    pub lake: PathBuf,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Run a shipped example query by name (see --list-examples).
    #[arg(long, conflicts_with_all = ["sql", "file"])]
    pub example: Option<String>,
    /// Read the SQL from a file.
    #[arg(long, conflicts_with = "sql")]
    pub file: Option<PathBuf>,
    /// List the shipped example queries.
    #[arg(long)]
    pub list_examples: bool,
    #[command(flatten)]
    pub streams: StreamsArg,
}

/// Example queries shipped with sluice: the trading dashboard's tiles and more. The same text
/// runs in Athena (Trino) and here.
pub const EXAMPLES: &[(&str, &str, &str)] = &[
    (
        "trades-count-by-type",
        "Transaction count by trade type and side",
        include_str!("../queries/trades-count-by-type.sql"),
    ),
    (
        "trades-avg-price-per-minute",
        "Average price per symbol per minute",
        include_str!("../queries/trades-avg-price-per-minute.sql"),
    ),
    (
        "trades-cumulative-quantity",
        "Cumulative quantity traded per symbol over time",
        include_str!("../queries/trades-cumulative-quantity.sql"),
    ),
    (
        "trades-quantity-by-symbol",
        "Total quantity traded per symbol",
        include_str!("../queries/trades-quantity-by-symbol.sql"),
    ),
    (
        "trades-volume-share",
        "Each symbol's share of traded volume",
        include_str!("../queries/trades-volume-share.sql"),
    ),
    (
        "trades-moving-average-volatility",
        "5-minute moving average and volatility of the 1-minute close, per symbol",
        include_str!("../queries/trades-moving-average-volatility.sql"),
    ),
    (
        "trades-ohlc-vwap",
        "1-minute OHLC candles and VWAP per symbol",
        include_str!("../queries/trades-ohlc-vwap.sql"),
    ),
    (
        "telemetry-host-health",
        "Per-host CPU, errors and latency per minute",
        include_str!("../queries/telemetry-host-health.sql"),
    ),
    (
        "clickstream-funnel",
        "View → click → cart → purchase funnel",
        include_str!("../queries/clickstream-funnel.sql"),
    ),
    (
        "anomalies-recent",
        "Most recent anomaly flags with their baselines",
        include_str!("../queries/anomalies-recent.sql"),
    ),
    (
        "quarantine-reasons",
        "Why records were quarantined",
        include_str!("../queries/quarantine-reasons.sql"),
    ),
];

/// The `windows_merged` view's query: the same text Athena's view runs
/// (`terraform/modules/aws/views/windows_merged.sql` is a copy).
pub const WINDOWS_MERGED: &str = include_str!("../views/windows_merged.sql");

/// The view's text for DataFusion: Athena's, where percentiles and distinct counts of rows
/// merged from several shards come from their merged sketches instead of NULL.
fn merged_view() -> anyhow::Result<String> {
    let mut sql = WINDOWS_MERGED.to_string();
    for (column, function, sketch) in crate::sketch_udaf::MERGED {
        let athena = format!("CASE WHEN COUNT(*) = 1 THEN MAX({column}) END AS {column}");
        anyhow::ensure!(
            sql.contains(&athena),
            "views/windows_merged.sql no longer says `{athena}`"
        );
        sql = sql.replace(
            &athena,
            &format!(
                "CASE WHEN COUNT(*) = 1 THEN MAX({column}) ELSE {function}({sketch}) END AS {column}"
            ),
        );
    }
    Ok(sql)
}

/// A session with every lake table registered, and the `windows_merged` view. Tables with no data yet are empty, not errors.
pub async fn session(lake: &Path, streams: &StreamSet) -> anyhow::Result<SessionContext> {
    let ctx = SessionContext::new();
    let root = lake.canonicalize().with_context(|| {
        format!(
            "lake directory {} does not exist (run `sluice run --lake {}` first)",
            lake.display(),
            lake.display()
        )
    })?;
    for table in schema::all_tables(streams) {
        register(&ctx, &root, &table).await?;
    }
    crate::sketch_udaf::register(&ctx);
    ctx.sql(&format!("CREATE VIEW windows_merged AS {}", merged_view()?))
        .await
        .context("creating the windows_merged view")?;
    Ok(ctx)
}

async fn register(ctx: &SessionContext, root: &Path, table: &Table) -> anyhow::Result<()> {
    let dir = root.join(table.prefix.as_ref());
    let partitions: Vec<(String, DataType)> = table
        .partitions
        .iter()
        .map(|p| (p.to_string(), DataType::Utf8))
        .collect();
    let has_files = dir.is_dir()
        && walk_has_parquet(&dir).with_context(|| format!("reading {}", dir.display()))?;
    if !has_files {
        let mut fields: Vec<Field> = table
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(
            partitions
                .iter()
                .map(|(n, t)| Field::new(n, t.clone(), false)),
        );
        let schema = Arc::new(Schema::new(fields));
        let empty = MemTable::try_new(schema.clone(), vec![vec![RecordBatch::new_empty(schema)]])?;
        ctx.register_table(table.name.as_ref(), Arc::new(empty))?;
        return Ok(());
    }
    let url = ListingTableUrl::parse(format!("{}/", dir.display()))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(partitions);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(table.schema());
    ctx.register_table(
        table.name.as_ref(),
        Arc::new(ListingTable::try_new(config)?),
    )?;
    Ok(())
}

fn walk_has_parquet(dir: &Path) -> std::io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if walk_has_parquet(&path)? {
                return Ok(true);
            }
        } else if path.extension().is_some_and(|e| e == "parquet") {
            return Ok(true);
        }
    }
    Ok(false)
}

pub async fn run_sql(
    lake: &Path,
    streams: &StreamSet,
    sql: &str,
) -> anyhow::Result<Vec<RecordBatch>> {
    let ctx = session(lake, streams).await?;
    let df = ctx.sql(sql).await.context("planning the query")?;
    df.collect().await.context("running the query")
}

pub async fn query(args: QueryArgs) -> anyhow::Result<()> {
    if args.list_examples {
        for (name, about, _) in EXAMPLES {
            println!("{name:36} {about}");
        }
        return Ok(());
    }
    let streams = args.streams.load()?;
    let sql = match (&args.sql, &args.example, &args.file) {
        (Some(sql), _, _) => sql.clone(),
        (_, Some(name), _) => EXAMPLES
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, sql)| sql.to_string())
            .with_context(|| {
                format!("no example named {name:?}; see `sluice query --list-examples`")
            })?,
        (_, _, Some(path)) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        _ => bail!(
            "give SQL, --example NAME or --file PATH (tables: {})",
            table_names(&streams)
        ),
    };
    let batches = run_sql(&args.lake, &streams, &sql).await?;
    print(&batches, args.format)
}

fn table_names(streams: &StreamSet) -> String {
    schema::all_tables(streams)
        .iter()
        .map(|t| t.name.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn print(batches: &[RecordBatch], format: Format) -> anyhow::Result<()> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Table => {
            writeln!(
                out,
                "{}",
                datafusion::arrow::util::pretty::pretty_format_batches(batches)?
            )?;
        }
        Format::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for b in batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
    }
    Ok(())
}
