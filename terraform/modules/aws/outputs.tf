output "lake_bucket" {
  description = "Name of the lake bucket (SLUICE_BUCKET)."
  value       = aws_s3_bucket.this.id
}

output "lake_bucket_arn" {
  description = "ARN of the lake bucket."
  value       = aws_s3_bucket.this.arn
}

output "access_log_bucket" {
  description = "Name of the bucket receiving the lake's S3 server access logs."
  value       = aws_s3_bucket.access_logs.id
}

output "kms_key_arn" {
  description = "ARN of the project's customer-managed KMS key."
  value       = aws_kms_key.this.arn
}

output "stream_name" {
  description = "Name of the Kinesis stream (SLUICE_STREAM_NAME)."
  value       = aws_kinesis_stream.this.name
}

output "stream_arn" {
  description = "ARN of the Kinesis stream."
  value       = aws_kinesis_stream.this.arn
}

output "function_names" {
  description = "Lambda function name per sluice function (generate, fetch, aggregate, alert)."
  value       = { for fn, f in aws_lambda_function.this : fn => f.function_name }
}

output "function_arns" {
  description = "Lambda function ARN per sluice function."
  value       = { for fn, f in aws_lambda_function.this : fn => f.arn }
}

output "role_arns" {
  description = "Execution role ARN per sluice function."
  value       = { for fn, r in aws_iam_role.this : fn => r.arn }
}

output "log_group_names" {
  description = "CloudWatch log group per sluice function."
  value       = { for fn, g in aws_cloudwatch_log_group.this : fn => g.name }
}

output "dlq_url" {
  description = "URL of the dead-letter queue (failed stream ranges and failed async invocations)."
  value       = aws_sqs_queue.this.url
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.this.arn
}

output "alert_topic_arn" {
  description = "ARN of the SNS alert topic (SLUICE_TOPIC_ARN); subscribe more endpoints to it."
  value       = aws_sns_topic.this.arn
}

output "fetch_secret_arn" {
  description = "ARN of the Secrets Manager secret holding the fetch API key; set its value with `aws secretsmanager put-secret-value`."
  value       = aws_secretsmanager_secret.this["fetch"].arn
}

output "eventhubs_secret_arn" {
  description = "ARN of the secret that must hold the Event Hubs send-only connection string (sink = eventhubs), or empty."
  value       = try(aws_secretsmanager_secret.this["eventhubs"].arn, "")
}

output "glue_database" {
  description = "Glue database holding the lake tables (one per entry of glue_tables.json)."
  value       = aws_glue_catalog_database.this.name
}

output "glue_tables" {
  description = "Names of the Glue tables."
  value       = sort(keys(aws_glue_catalog_table.this))
}

output "athena_workgroup" {
  description = "Athena workgroup to run the named queries in."
  value       = aws_athena_workgroup.this.name
}

output "athena_named_query_ids" {
  description = "Athena named query id per queries/*.sql file (name without .sql)."
  value       = { for f, q in aws_athena_named_query.this : q.name => q.id }
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "kafka_event_source_mappings" {
  description = "UUID of each optional Kafka event source mapping of aggregate, by \"msk/<topic>\" and \"kafka/<topic>\" (empty while msk_cluster_arn and kafka_bootstrap_servers are unset)."
  value = merge(
    { for t, m in aws_lambda_event_source_mapping.msk : "msk/${t}" => m.uuid },
    { for t, m in aws_lambda_event_source_mapping.kafka : "kafka/${t}" => m.uuid },
  )
}

output "eventhubs_kafka_secret_arn" {
  description = "ARN of the secret holding the Event Hubs SASL/PLAIN credentials of the self-managed Kafka mapping (created when eventhubs_kafka_connection_string is set), or empty."
  value       = try(aws_secretsmanager_secret.eventhubs_kafka[0].arn, "")
}
