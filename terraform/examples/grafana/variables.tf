variable "grafana_url" {
  description = "Base URL of the Grafana instance, e.g. https://example.grafana.net/."
  type        = string
}

variable "grafana_auth" {
  description = "Grafana service account token (or user:password) with rights to create data sources, folders and dashboards."
  type        = string
  sensitive   = true
}

variable "region" {
  description = "AWS region of the sluice deployment (the Athena data source's default region)."
  type        = string
}

variable "athena_workgroup" {
  description = "Athena workgroup (the AWS module's output athena_workgroup)."
  type        = string
  default     = "sluice"
}

variable "athena_catalog" {
  description = "Athena data catalog holding the Glue database."
  type        = string
  default     = "AwsDataCatalog"
}

variable "athena_database" {
  description = "Glue database with the lake tables (the AWS module's output glue_database)."
  type        = string
  default     = "sluice"
}

variable "athena_output_location" {
  description = "S3 location for query results, e.g. s3://<lake bucket>/athena-results/. Leave null to use the workgroup's (the sluice workgroup enforces its own)."
  type        = string
  default     = null
}

variable "aws_auth_type" {
  description = "How the Athena plugin gets AWS credentials: default (the Grafana host's SDK chain or role), keys, credentials or grafana_assume_role (Grafana Cloud)."
  type        = string
  default     = "default"
}

variable "aws_assume_role_arn" {
  description = "Role for the plugin to assume, with Athena, Glue and lake read access (null: use the credentials as they are)."
  type        = string
  default     = null
}

variable "install_adx_dashboard" {
  description = "Also import the Azure Data Explorer dashboard; it uses an existing ADX data source (adx_data_source_uid)."
  type        = bool
  default     = false
}

variable "adx_data_source_uid" {
  description = "uid of an existing grafana-azure-data-explorer-datasource data source (only with install_adx_dashboard)."
  type        = string
  default     = ""
}

variable "adx_database" {
  description = "ADX database with sluice's event tables (the Azure module's name)."
  type        = string
  default     = "sluice"
}
