# Glue tables are generated from the Rust schema (sluice_core::schema) into glue_tables.json by
# `sluice schema --format glue`; that file is the single source of truth for table names,
# prefixes, partition columns and columns. Never retype columns here:
# tests/terraform/test_contract.py fails if this file stops reading it or if it drifts from
# the binary's output. With your own stream definitions (streams_dir), generate the file with
# `sluice schema --format glue --streams DIR` and pass its path as glue_tables_json.
#
# Tables use partition projection, so no crawler and no MSCK REPAIR: Athena computes the
# partitions from the parameters below. Parquet timestamps are timestamp(ms, UTC).

locals {
  glue_tables = jsondecode(file(coalesce(var.glue_tables_json, "${path.module}/glue_tables.json")))

  # One raw table per stream, named after it, under raw/scenario=<stream>: the streams are the
  # values of the scenario partition of the shared tables, plus "unknown" (quarantined records
  # whose stream could not be read; a reserved stream name).
  raw_streams = [for name, table in local.glue_tables : name if startswith(table.prefix, "raw/scenario=")]

  # Order only: the shipped streams keep their earlier position, so the shipped glue_tables.json
  # gives the same projection.scenario.values as before (no in-place table update on apply);
  # other streams follow in name order. Membership comes from raw_streams alone.
  shipped_stream_order = ["trades", "telemetry", "clickstream"]
  scenario_values = concat(
    [for s in local.shipped_stream_order : s if contains(local.raw_streams, s)],
    [for s in local.raw_streams : s if !contains(local.shipped_stream_order, s)],
    ["unknown"],
  )

  # Every lake prefix is scenario=S/dt=YYYY-MM-DD/hour=HH/ (the raw tables already carry their
  # scenario in their prefix).
  projection_common = {
    "projection.enabled"          = "true"
    "projection.dt.type"          = "date"
    "projection.dt.format"        = "yyyy-MM-dd"
    "projection.dt.range"         = "${var.projection_start_date},NOW"
    "projection.dt.interval"      = "1"
    "projection.dt.interval.unit" = "DAYS"
    "projection.hour.type"        = "integer"
    "projection.hour.range"       = "0,23"
    "projection.hour.digits"      = "2"
  }

  projection_scenario = {
    "projection.scenario.type"   = "enum"
    "projection.scenario.values" = join(",", local.scenario_values)
  }
}

resource "aws_glue_catalog_database" "this" {
  name        = local.glue_name
  description = "${var.name} lake: raw events per scenario, windows, anomalies, late events and quarantine"
}

resource "aws_glue_catalog_table" "this" {
  for_each = local.glue_tables

  name          = each.key
  database_name = aws_glue_catalog_database.this.name
  table_type    = "EXTERNAL_TABLE"
  description   = "s3://${aws_s3_bucket.this.id}/${each.value.prefix}/ (generated from glue_tables.json)"

  parameters = merge(
    {
      "EXTERNAL"            = "TRUE"
      "classification"      = "parquet"
      "parquet.compression" = "ZSTD"
      "storage.location.template" = join("", [
        "s3://${aws_s3_bucket.this.id}/${each.value.prefix}/",
        contains(each.value.partitions, "scenario") ? "scenario=$${scenario}/" : "",
        "dt=$${dt}/hour=$${hour}/",
      ])
    },
    local.projection_common,
    contains(each.value.partitions, "scenario") ? local.projection_scenario : {},
  )

  dynamic "partition_keys" {
    for_each = each.value.partitions
    content {
      name = partition_keys.value
      type = "string"
    }
  }

  storage_descriptor {
    location      = "s3://${aws_s3_bucket.this.id}/${each.value.prefix}/"
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      name                  = "parquet"
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
      parameters = {
        "serialization.format" = "1"
      }
    }

    dynamic "columns" {
      for_each = each.value.columns
      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}

################################################################################
# windows_merged: the view that merges a key's window rows written by several shards
################################################################################

locals {
  # views/windows_merged.sql is a byte-identical copy of functions/cli/views/windows_merged.sql,
  # the view `sluice query` creates; tests/terraform/test_contract.py checks the copy, and these
  # columns against the view's schema in the binary (DESCRIBE windows_merged).
  windows_merged_sql = join("\n", [
    for line in split("\n", file("${path.module}/views/windows_merged.sql")) : line
    if !startswith(trimspace(line), "--")
  ])
  windows_merged_columns = [
    { name = "key", type = "string" },
    { name = "window_name", type = "string" },
    { name = "window_kind", type = "string" },
    { name = "window_start", type = "timestamp" },
    { name = "window_end", type = "timestamp" },
    { name = "metric", type = "string" },
    { name = "count", type = "bigint" },
    { name = "sum", type = "double" },
    { name = "min", type = "double" },
    { name = "max", type = "double" },
    { name = "avg", type = "double" },
    { name = "stddev", type = "double" },
    { name = "first", type = "double" },
    { name = "last", type = "double" },
    { name = "weighted_avg", type = "double" },
    { name = "scope", type = "string" },
    { name = "partials", type = "bigint" },
    { name = "partial", type = "boolean" },
    { name = "p50", type = "double" },
    { name = "p90", type = "double" },
    { name = "p95", type = "double" },
    { name = "p99", type = "double" },
    { name = "distinct_count", type = "bigint" },
    { name = "scenario", type = "string" },
    { name = "dt", type = "string" },
    { name = "hour", type = "string" },
  ]
  # The Trino view definition Athena stores, base64-encoded JSON.
  windows_merged_view = base64encode(jsonencode({
    originalSql  = local.windows_merged_sql
    catalog      = "awsdatacatalog"
    schema       = aws_glue_catalog_database.this.name
    columns      = [for c in local.windows_merged_columns : { name = c.name, type = local.trino_types[c.type] }]
    owner        = "sluice"
    runAsInvoker = false
    properties   = {}
  }))
  # Hive type in the Glue columns -> the Trino type Athena records in a view definition.
  trino_types = {
    string    = "varchar"
    bigint    = "bigint"
    double    = "double"
    boolean   = "boolean"
    timestamp = "timestamp(3)"
  }
}

# An Athena view is a Glue table of type VIRTUAL_VIEW whose original text is the Trino view
# definition, base64-encoded JSON between "/* Presto View: " and " */"
# (https://docs.aws.amazon.com/athena/latest/ug/views.html). Defined here rather than by a
# CREATE VIEW someone must remember to run, so the shipped queries work after apply.
resource "aws_glue_catalog_table" "windows_merged" {
  name          = "windows_merged"
  database_name = aws_glue_catalog_database.this.name
  table_type    = "VIRTUAL_VIEW"
  description   = "windows with one row per window of a key however many shards wrote it (partials = how many)"

  view_original_text = "/* Presto View: ${local.windows_merged_view} */"
  view_expanded_text = "/* Presto View */"

  parameters = {
    presto_view = "true"
    comment     = "Presto View"
  }

  storage_descriptor {
    dynamic "columns" {
      for_each = local.windows_merged_columns
      content {
        name = columns.value.name
        type = columns.value.type
      }
    }
  }

  depends_on = [aws_glue_catalog_table.this]
}
