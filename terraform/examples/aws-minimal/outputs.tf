output "lake_bucket" {
  description = "Lake bucket name."
  value       = module.sluice.lake_bucket
}

output "stream_name" {
  description = "Kinesis stream name."
  value       = module.sluice.stream_name
}

output "function_names" {
  description = "Lambda function name per sluice function."
  value       = module.sluice.function_names
}

output "alert_topic_arn" {
  description = "SNS topic the alerts are published to."
  value       = module.sluice.alert_topic_arn
}

output "dlq_url" {
  description = "Dead-letter queue URL."
  value       = module.sluice.dlq_url
}

output "athena_workgroup" {
  description = "Athena workgroup for the named queries."
  value       = module.sluice.athena_workgroup
}

output "glue_database" {
  description = "Glue database with the lake tables."
  value       = module.sluice.glue_database
}

output "athena_named_query_ids" {
  description = "Named query id per query name."
  value       = module.sluice.athena_named_query_ids
}

output "fetch_secret_arn" {
  description = "Secret to put the fetch API key into (when fetch is used)."
  value       = module.sluice.fetch_secret_arn
}
