# One dead-letter queue for the project. It receives
# - from the aggregate event source mapping (on_failure destination): a JSON description of the
#   shard and sequence-number range that still failed after aggregate_maximum_retry_attempts
#   (the records themselves stay in the stream until retention ends: replay them from there);
# - from every function's async invocations (dead_letter_config): the scheduler tick or S3
#   notification event that failed after Lambda's async retries.
resource "aws_sqs_queue" "this" {
  name                              = "${var.name}-dlq"
  message_retention_seconds         = 1209600 # 14 days, the SQS maximum
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 3600
  tags                              = local.tags
}
