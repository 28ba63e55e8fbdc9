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

#[derive(Clone, Copy, ValueEnum)]
pub enum SchemaFormat {
    /// Markdown tables (the README's "Lake tables" section).
    Markdown,
    /// Glue/Athena columns per table, as JSON (Terraform's glue tables are generated from it).
    Glue,
    /// Kusto commands: the Event Hubs landing table with its JSON mapping, and one table per
    /// scenario with the event contract's columns.
    Kusto,
}

#[derive(Args)]
pub struct SchemaArgs {
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: SchemaFormat,
    #[command(flatten)]
    pub streams: StreamsArg,
}

pub fn schema(args: SchemaArgs) -> anyhow::Result<()> {
    let streams = args.streams.load()?;
    match args.format {
        SchemaFormat::Markdown => print!("{}", schema::markdown(&streams)),
        SchemaFormat::Glue => {
            let tables: serde_json::Map<String, serde_json::Value> = schema::all_tables(&streams)
                .iter()
                .map(|t| {
                    let columns: Vec<serde_json::Value> = t
                        .columns
                        .iter()
                        .map(|c| serde_json::json!({"name": c.name, "type": c.ty.glue(), "comment": c.doc}))
                        .collect();
                    (
                        t.name.to_string(),
                        serde_json::json!({"prefix": t.prefix, "partitions": t.partitions, "columns": columns}),
                    )
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&tables)?);
        }
        SchemaFormat::Kusto => print!("{}", kusto_commands(&streams)),
    }
    Ok(())
}

/// Landing table for Event Hubs ingestion (every field of every stream, by its JSON path), its
/// JSON mapping, and one typed table per stream (the raw table's columns without stream
/// lineage).
pub fn kusto_commands(streams: &StreamSet) -> String {
    use sluice_core::schema::ColumnType;
    let lineage = ["shard_id", "sequence_number", "arrival_time"];
    // (column, JSONPath, type), first come first kept.
    let mut landing: Vec<(String, String, ColumnType)> = Vec::new();
    let mut add = |column: &str, path: &[String], ty: ColumnType| {
        if !landing.iter().any(|(n, _, _)| n == column) {
            landing.push((column.to_string(), json_path(path), ty));
        }
    };
    for def in streams.streams() {
        if let Some(route) = &def.route {
            add(
                &route.field.to_lowercase(),
                std::slice::from_ref(&route.field),
                ColumnType::String,
            );
        }
    }
    let mut out = String::from(
        "// Generated by `sluice schema --format kusto` from the stream definitions. Do not edit.\n\n",
    );
    let mut per_stream = String::new();
    for def in streams.streams() {
        let table = schema::raw_table(def);
        let cols: Vec<_> = table
            .columns
            .iter()
            .filter(|c| !lineage.contains(&c.name.as_ref()))
            .collect();
        for (field, c) in def.fields.iter().zip(&cols) {
            add(&c.name, &field.path, c.ty);
            for alias in &field.aliases {
                add(&alias.to_lowercase(), std::slice::from_ref(alias), c.ty);
            }
        }
        let list: Vec<String> = cols
            .iter()
            .map(|c| format!("{}: {}", kusto_name(&c.name), c.ty.kusto()))
            .collect();
        per_stream.push_str(&format!(
            ".create-merge table {} ({})\n\n",
            table.name,
            list.join(", ")
        ));
    }
    let list: Vec<String> = landing
        .iter()
        .map(|(n, _, t)| format!("{}: {}", kusto_name(n), t.kusto()))
        .collect();
    out.push_str(&format!(
        ".create-merge table sluice_events ({})\n\n",
        list.join(", ")
    ));
    let mapping: Vec<String> = landing
        .iter()
        .map(|(n, path, t)| {
            format!(
                "{{\"column\":\"{n}\",\"path\":\"{path}\",\"datatype\":\"{}\"}}",
                t.kusto()
            )
        })
        .collect();
    out.push_str(&format!(
        ".create-or-alter table sluice_events ingestion json mapping \"sluice_events_json\" '[{}]'\n\n",
        mapping.join(",")
    ));
    out.push_str(&per_stream);
    out
}

/// A column name as Kusto commands take it: bracketed, so a name that is a Kusto keyword
/// (`date`, `type`, …; Microsoft's parser refuses them bare) still works.
fn kusto_name(name: &str) -> String {
    format!("['{name}']")
}

/// A Kusto JSONPath for a member path: `$.a.b`, `$.a[0]`, or `$[\'Odd Name\']` (quotes escaped
/// for the single-quoted literal the mapping sits in) where a segment is not an identifier.
fn json_path(path: &[String]) -> String {
    let mut out = String::from("$");
    for segment in path {
        if segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !segment.starts_with(|c: char| c.is_ascii_digit())
        {
            out.push('.');
            out.push_str(segment);
        } else if segment.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            // Escaped for the single-quoted KQL literal the mapping is written in.
            out.push_str(&format!("[\\'{segment}\\']"));
        }
    }
    out
}
