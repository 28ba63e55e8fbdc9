# sluice's Grafana dashboards on an existing Grafana: an Athena data source for the lake of the
# AWS module, and the dashboards generated into dashboards/grafana by generate.py. Separate from
# modules/aws so that AWS-only deployments need no Grafana provider.
#
# The generated files name their data source through the import input ${DS_ATHENA} (and
# ${DS_ADX}, ${VAR_ADX_DATABASE}); Grafana's import form fills those in, here replace() does.

provider "grafana" {
  url  = var.grafana_url
  auth = var.grafana_auth
}

locals {
  dashboards_dir = "${path.module}/../../../dashboards/grafana"
}

resource "grafana_data_source" "athena" {
  type = "grafana-athena-datasource"
  name = "sluice-athena"

  json_data_encoded = jsonencode({
    authType       = var.aws_auth_type
    assumeRoleArn  = var.aws_assume_role_arn
    defaultRegion  = var.region
    catalog        = var.athena_catalog
    database       = var.athena_database
    workgroup      = var.athena_workgroup
    outputLocation = var.athena_output_location
  })
}

resource "grafana_folder" "sluice" {
  title = "sluice"
}

resource "grafana_dashboard" "athena" {
  folder      = grafana_folder.sluice.uid
  overwrite   = true
  config_json = replace(file("${local.dashboards_dir}/sluice-athena.json"), "$${DS_ATHENA}", grafana_data_source.athena.uid)
}

resource "grafana_dashboard" "adx" {
  count = var.install_adx_dashboard ? 1 : 0

  folder    = grafana_folder.sluice.uid
  overwrite = true
  config_json = replace(
    replace(file("${local.dashboards_dir}/sluice-adx.json"), "$${DS_ADX}", var.adx_data_source_uid),
    "$${VAR_ADX_DATABASE}", var.adx_database
  )

  lifecycle {
    precondition {
      condition     = var.adx_data_source_uid != ""
      error_message = "install_adx_dashboard needs adx_data_source_uid, the uid of an Azure Data Explorer data source."
    }
  }
}
