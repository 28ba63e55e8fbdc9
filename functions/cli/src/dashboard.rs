//! `sluice dashboard`: a local web page over the lake, live while `sluice run` writes into it.
//!
//! An axum server answers the page and one JSON endpoint per tile. Each request runs the tile's
//! query through the same DataFusion session `sluice query` builds, re-listing the lake each
//! time. Local objects are published by rename from `<lake>/.staging/`, so a query sees whole
//! Parquet files only. The charts are Apache ECharts, vendored under `dashboards/vendor/` with
//! its licence and served from the binary: no network at run time, no build step.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Args;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, Schema, TimeUnit};
use datafusion::prelude::SessionContext;
use serde::Serialize;
use serde_json::Value;
use sluice_core::stream::StreamSet;

use crate::local::StreamsArg;
use crate::tiles::{self, Dialect, Params, Tile};

const INDEX_HTML: &str = include_str!("../../../dashboards/web/index.html");
const APP_JS: &str = include_str!("../../../dashboards/web/app.js");
const ECHARTS_JS: &str = include_str!("../../../dashboards/vendor/echarts-5.6.0/echarts.min.js");

#[derive(Args)]
pub struct DashboardArgs {
    /// The lake directory written by `sluice run`.
    #[arg(long, env = "SLUICE_LAKE", default_value = "lake")]
    pub lake: PathBuf,
    /// Address or host name to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// A tile file replacing the shipped dashboards/tiles.toml.
    #[arg(long, value_name = "PATH")]
    pub tiles: Option<PathBuf>,
    /// Print the tiles (shipped and generated from the stream definitions) as JSON and exit.
    #[arg(long)]
    pub list_tiles: bool,
    /// With --list-tiles: expand the macros for this engine, over the last hour and all keys.
    #[arg(long, value_enum, requires = "list_tiles")]
    pub expand: Option<Dialect>,
    #[command(flatten)]
    pub streams: StreamsArg,
}

struct App {
    lake: PathBuf,
    streams: StreamSet,
    tiles: Vec<Tile>,
    /// The session the tiles query, rebuilt when older than [`SESSION_TTL`] so tables that
    /// had no files yet get registered; listing tables re-list their files on every scan.
    session: tokio::sync::Mutex<Option<(Instant, SessionContext)>>,
}

const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(10);

impl App {
    async fn session(&self) -> anyhow::Result<SessionContext> {
        let mut cached = self.session.lock().await;
        if let Some((built, ctx)) = cached.as_ref()
            && built.elapsed() < SESSION_TTL
        {
            return Ok(ctx.clone());
        }
        let ctx = crate::query::session(&self.lake, &self.streams).await?;
        *cached = Some((Instant::now(), ctx.clone()));
        Ok(ctx)
    }

    /// Runs one query: its result's columns (named even when there is no row) and rows.
    async fn run(&self, sql: &str) -> anyhow::Result<Vec<Column>> {
        let df = self
            .session()
            .await?
            .sql(sql)
            .await
            .context("planning the query")?;
        let schema = df.schema().as_arrow().clone();
        let batches = df.collect().await.context("running the query")?;
        columns(&schema, &batches)
    }
}

/// The tiles in force: the tile file's (shipped unless `--tiles`) for the loaded streams, then
/// one per metric.
pub fn load_tiles(path: Option<&PathBuf>, streams: &StreamSet) -> anyhow::Result<Vec<Tile>> {
    let shipped = match path {
        None => tiles::parse(tiles::SHIPPED_PATH, tiles::SHIPPED)?,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            tiles::parse(&path.display().to_string(), &text)?
        }
    };
    Ok(tiles::for_streams(shipped, streams))
}

/// Runs the command: lists the tiles, or checks them and serves the page until Ctrl-C.
///
/// Errors: a tile file or stream definition that does not load, a tile whose query does not
/// plan (named), a missing lake directory, or an address that cannot be bound.
pub async fn dashboard(args: DashboardArgs) -> anyhow::Result<()> {
    let streams = args.streams.load()?;
    let tiles = load_tiles(args.tiles.as_ref(), &streams)?;
    if args.list_tiles {
        let mut tiles = tiles;
        if let Some(dialect) = args.expand {
            let params = Params::last_hour(chrono::Utc::now().timestamp_millis());
            for tile in &mut tiles {
                tile.sql = tiles::expand(&tile.sql, &params, dialect)?;
                if let Some(markers) = &tile.markers_sql {
                    tile.markers_sql = Some(tiles::expand(markers, &params, dialect)?);
                }
            }
        }
        println!("{}", serde_json::to_string_pretty(&tiles)?);
        return Ok(());
    }
    anyhow::ensure!(
        args.lake.is_dir(),
        "no lake at {}: run `sluice run --lake {}` first, or point --lake at one",
        args.lake.display(),
        args.lake.display()
    );
    let app = Arc::new(App {
        lake: args.lake.clone(),
        streams,
        tiles,
        session: tokio::sync::Mutex::new(None),
    });
    app.check_tiles().await?;
    let router = Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/vendor/echarts.min.js", get(echarts_js))
        .route("/api/tiles", get(list))
        .route("/api/tiles/{id}", get(tile))
        .with_state(app);
    let address = format!("{}:{}", args.bind, args.port);
    let listener = tokio::net::TcpListener::bind((args.bind.as_str(), args.port))
        .await
        .with_context(|| format!("listening on {address}"))?;
    let bound = listener.local_addr()?;
    println!("dashboard: http://{bound}/  (lake {})", args.lake.display());
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving the dashboard")
}

async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX_HTML,
    )
}

async fn app_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
}

async fn echarts_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        ECHARTS_JS,
    )
}

async fn list(State(app): State<Arc<App>>) -> Json<Vec<Tile>> {
    Json(app.tiles.clone())
}

/// `?from=<ms>&to=<ms>&key=<text>`: the time range in epoch milliseconds (default: the last
/// hour up to now; clamped to 1970..2200, the times DataFusion holds as nanoseconds) and the key
/// filter (default: all keys). Errors name the parameter.
fn params(query: &HashMap<String, String>) -> Result<Params, String> {
    const LATEST_MS: i64 = 7_258_118_400_000;
    let number = |name: &str| -> Result<Option<i64>, String> {
        query
            .get(name)
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    format!("{name} must be epoch milliseconds (an integer), not {v:?}")
                })
            })
            .transpose()
    };
    let to = number("to")?
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis())
        .clamp(0, LATEST_MS);
    let from = number("from")?
        .unwrap_or(to - 3_600_000)
        .clamp(0, LATEST_MS);
    if from > to {
        return Err(format!("from ({from}) is after to ({to})"));
    }
    Ok(Params {
        from_ms: from,
        to_ms: to,
        key: query.get("key").cloned().unwrap_or_default(),
    })
}

/// One column of a result: `type` is `time` (epoch milliseconds), `number`, `string` or
/// `bool`; `values` are JSON values, `null` for SQL NULL.
#[derive(Serialize)]
struct Column {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    values: Vec<Value>,
}

#[derive(Serialize)]
struct TileData {
    id: String,
    columns: Vec<Column>,
    #[serde(skip_serializing_if = "Option::is_none")]
    markers: Option<Vec<Column>>,
    /// The SQL that ran, macros expanded.
    sql: String,
    elapsed_ms: u64,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn tile(
    State(app): State<Arc<App>>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(tile) = app.tiles.iter().find(|t| t.id == id) else {
        return error(StatusCode::NOT_FOUND, format!("no tile {id}"));
    };
    let params = match params(&query) {
        Ok(params) => params,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let started = Instant::now();
    let run = async {
        let sql = tiles::expand(&tile.sql, &params, Dialect::DataFusion)?;
        let columns = app.run(&sql).await?;
        let markers = match &tile.markers_sql {
            None => None,
            Some(markers) => {
                let markers = tiles::expand(markers, &params, Dialect::DataFusion)?;
                Some(app.run(&markers).await?)
            }
        };
        anyhow::Ok((sql, columns, markers))
    };
    match run.await {
        Ok((sql, columns, markers)) => Json(TileData {
            id,
            columns,
            markers,
            sql,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
        .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("tile {id}: {e:#}"),
        ),
    }
}

impl App {
    /// Plans every tile's queries once at start, so a tile naming a wrong table or column is an
    /// error naming the tile before the page shows it.
    async fn check_tiles(&self) -> anyhow::Result<()> {
        let params = Params::last_hour(chrono::Utc::now().timestamp_millis());
        let ctx = self.session().await?;
        for tile in &self.tiles {
            for sql in std::iter::once(&tile.sql).chain(tile.markers_sql.as_ref()) {
                let sql = tiles::expand(sql, &params, Dialect::DataFusion)
                    .with_context(|| format!("tile {}", tile.id))?;
                ctx.state()
                    .create_logical_plan(&sql)
                    .await
                    .with_context(|| format!("tile {}: its query does not plan", tile.id))?;
            }
        }
        Ok(())
    }
}

/// The batches as named JSON columns (see [`Column`]).
fn columns(schema: &Schema, batches: &[RecordBatch]) -> anyhow::Result<Vec<Column>> {
    let mut out = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let mut column = Column {
            name: field.name().clone(),
            kind: kind_of(field.data_type()),
            values: Vec::new(),
        };
        for batch in batches {
            let values =
                json_values(batch.column(i)).with_context(|| format!("column {}", field.name()))?;
            column.values.extend(values);
        }
        out.push(column);
    }
    Ok(out)
}

/// The JSON `type` of a column of this Arrow type: how [`json_values`] writes its values.
fn kind_of(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => "time",
        DataType::Boolean => "bool",
        t if t.is_integer() || t.is_floating() || matches!(t, DataType::Decimal128(_, _)) => {
            "number"
        }
        _ => "string",
    }
}

/// One array's values as JSON, in the form [`kind_of`] names: times as epoch milliseconds,
/// numbers (non-finite floats as null), booleans, strings; binary columns as null.
fn json_values(array: &ArrayRef) -> anyhow::Result<Vec<Value>> {
    let values: Vec<Value> = match (kind_of(array.data_type()), array.data_type()) {
        ("time", _) => int64_values(&cast(
            array,
            &DataType::Timestamp(TimeUnit::Millisecond, None),
        )?)?,
        ("bool", _) => {
            let b = array.as_boolean();
            (0..b.len()).map(|i| Value::from(b.value(i))).collect()
        }
        ("number", t) if t.is_integer() => int64_values(array)?,
        ("number", _) => {
            let f = cast(array, &DataType::Float64)?;
            f.as_primitive::<Float64Type>()
                .values()
                .iter()
                .map(|v| serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number))
                .collect()
        }
        (_, DataType::Binary | DataType::LargeBinary | DataType::BinaryView) => {
            vec![Value::Null; array.len()]
        }
        _ => {
            let s = cast(array, &DataType::Utf8)?;
            let s = s.as_string::<i32>();
            (0..s.len()).map(|i| Value::from(s.value(i))).collect()
        }
    };
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(i, v)| if array.is_null(i) { Value::Null } else { v })
        .collect())
}

/// An integer or timestamp column as JSON integers (timestamps as their epoch value); nulls are
/// left to the caller.
fn int64_values(array: &ArrayRef) -> anyhow::Result<Vec<Value>> {
    let n = cast(array, &DataType::Int64)?;
    Ok(n.as_primitive::<Int64Type>()
        .values()
        .iter()
        .map(|v| Value::from(*v))
        .collect())
}
