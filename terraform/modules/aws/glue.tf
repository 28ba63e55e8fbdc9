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
