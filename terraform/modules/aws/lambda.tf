################################################################################
# Environment: exactly the SLUICE_* variables each function reads
# (required_env / optional_env in functions/<fn>/src and infra/src).
# tests/terraform/test_contract.py compares these names with the Rust code.
################################################################################

locals {
  eventhubs_env = var.sink == "eventhubs" ? {
    SLUICE_EVENTHUBS_NAMESPACE  = var.eventhubs_namespace
    SLUICE_EVENTHUBS_NAME       = var.eventhubs_name
    SLUICE_EVENTHUBS_SECRET_ARN = try(aws_secretsmanager_secret.this["eventhubs"].arn, "")
  } : {}

  # Every function builds its streams from the definitions under this prefix (streams.tf). The
  # digest is not read: it changes the configuration when a definition changes, which replaces
  # warm instances that still hold the old definitions.
  streams_env = {
    SLUICE_STREAMS_PREFIX = local.streams_prefix
    SLUICE_STREAMS_DIGEST = local.streams_digest
  }

  lambda_env = {
    generate = merge({
      SLUICE_BUCKET      = aws_s3_bucket.this.id
      SLUICE_LOG         = var.log_level
      SLUICE_SINK        = var.sink
      SLUICE_STREAM_NAME = aws_kinesis_stream.this.name
      SLUICE_SCENARIOS   = join(",", var.generate_scenarios)
      SLUICE_RATE        = tostring(var.generate_rate)
      SLUICE_SEED        = tostring(var.generate_seed)
    }, local.streams_env, local.eventhubs_env)

    fetch = merge({
      SLUICE_BUCKET            = aws_s3_bucket.this.id
      SLUICE_LOG               = var.log_level
      SLUICE_SINK              = var.sink
      SLUICE_STREAM_NAME       = aws_kinesis_stream.this.name
      SLUICE_FETCH_URL         = var.fetch_url
      SLUICE_FETCH_SECRET_ARN  = aws_secretsmanager_secret.this["fetch"].arn
      SLUICE_FETCH_AUTH_HEADER = var.fetch_auth_header
      SLUICE_FETCH_MAPPING     = var.fetch_mapping
    }, local.streams_env, local.eventhubs_env)

    aggregate = merge({
      SLUICE_BUCKET       = aws_s3_bucket.this.id
      SLUICE_LOG          = var.log_level
      SLUICE_LATENESS     = var.aggregate_lateness
      SLUICE_WINDOWS      = var.aggregate_extra_windows
      SLUICE_IDLE_TIMEOUT = var.aggregate_idle_timeout
      SLUICE_SERIES_TTL   = var.aggregate_series_ttl
      # One accepted time range: the decoder quarantines events before the first projected day.
      SLUICE_ACCEPTED_FROM = var.projection_start_date
      # Kafka partial batch responses, read by Lambda only with provisioned pollers.
      SLUICE_KAFKA_PARTIAL_BATCH = var.kafka_provisioned_pollers > 0 ? "true" : "false"
    }, local.streams_env)

    alert = merge({
      SLUICE_BUCKET    = aws_s3_bucket.this.id
      SLUICE_LOG       = var.log_level
      SLUICE_TOPIC_ARN = aws_sns_topic.this.arn
      SLUICE_RULES_KEY = var.alert_rules_key
    }, local.streams_env)
  }
}

################################################################################
# Log groups (created here so that retention and encryption are ours, not Lambda's defaults)
################################################################################

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_days, default 30): these are operational logs of a streaming pipeline, not an audit trail; a year of them would cost more than the pipeline.
  for_each = local.functions

  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

################################################################################
# Functions
################################################################################

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:No VPC: the functions only call AWS public endpoints (Kinesis, S3, SNS, Secrets Manager) and, for fetch, a public HTTP API; a VPC would add NAT/endpoint cost and nothing to protect.
  #checkov:skip=CKV_AWS_272:Code signing is out of scope: the zips are built locally by cargo lambda and uploaded by the same principal that applies this module.
  for_each = local.functions

  function_name = "${var.name}-${each.key}"
  description   = each.value.description
  role          = aws_iam_role.this[each.key].arn

  # Rust binaries from `bash terraform/build-lambdas.sh` (cargo lambda, the dist profile).
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  filename         = "${var.source_dir}/target/lambda/${each.key}/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.source_dir}/target/lambda/${each.key}/bootstrap.zip")

  memory_size                    = var.lambda_memory_mb[each.key]
  timeout                        = var.lambda_timeout_s[each.key]
  reserved_concurrent_executions = var.lambda_reserved_concurrency[each.key]

  kms_key_arn = aws_kms_key.this.arn
  environment {
    variables = local.lambda_env[each.key]
  }

  tracing_config {
    mode = var.tracing_mode
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.this[each.key].name
  }

  # Async invocations (scheduler ticks, S3 notifications) that still fail after Lambda's
  # retries land here. aggregate is invoked synchronously by its event source mapping, whose
  # on_failure destination is the same queue; this setting only covers manual async invokes.
  dead_letter_config {
    target_arn = aws_sqs_queue.this.arn
  }

  tags = local.tags

  lifecycle {
    # With no definition under SLUICE_STREAMS_PREFIX every cold start would fail.
    precondition {
      condition     = length(local.stream_files) > 0
      error_message = "streams_dir (${local.streams_dir}) holds no *.toml stream definition."
    }
  }

  # The definitions must be in the bucket before a cold start lists them.
  depends_on = [
    aws_iam_role_policy.this,
    aws_cloudwatch_log_group.this,
    aws_s3_object.streams,
  ]
}

################################################################################
# aggregate: Kinesis event source mapping
################################################################################

resource "aws_lambda_event_source_mapping" "this" {
  function_name     = aws_lambda_function.this["aggregate"].arn
  event_source_arn  = aws_kinesis_stream.this.arn
  starting_position = "TRIM_HORIZON"

  batch_size                         = var.aggregate_batch_size
  maximum_batching_window_in_seconds = var.aggregate_batching_window_s
  parallelization_factor             = var.aggregate_parallelization_factor

  # The handler answers {"batchItemFailures":[...]} and Lambda restarts from the lowest failed
  # sequence number (https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html#services-kinesis-batchfailurereporting).
  function_response_types        = ["ReportBatchItemFailures"]
  bisect_batch_on_function_error = true
  maximum_retry_attempts         = var.aggregate_maximum_retry_attempts
  maximum_record_age_in_seconds  = var.aggregate_maximum_record_age_s

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.this.arn
    }
  }

  depends_on = [aws_iam_role_policy.this]
}

################################################################################
# generate and fetch ticks, and the aggregate sweep: EventBridge Scheduler
################################################################################

locals {
  schedules = {
    generate = {
      expression = var.generate_schedule
      enabled    = var.generate_enabled
    }
    fetch = {
      expression = var.fetch_schedule
      enabled    = var.fetch_url != ""
    }
    # The sweep: closes the windows of shards quiet for aggregate_idle_timeout (market close,
    # a parent shard after a reshard). Its commits are conditional, like a batch's.
    aggregate = {
      expression = var.aggregate_sweep_schedule
      enabled    = true
    }
  }
}

resource "aws_scheduler_schedule" "this" {
  for_each = local.schedules

  name                = "${var.name}-${each.key}"
  description         = "Invokes ${var.name}-${each.key} on ${each.value.expression}"
  schedule_expression = each.value.expression
  state               = each.value.enabled ? "ENABLED" : "DISABLED"
  kms_key_arn         = aws_kms_key.this.arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.this[each.key].arn
    role_arn = aws_iam_role.scheduler.arn

    # The handlers take an EventBridge "Scheduled Event" (aws_lambda_events CloudWatchEvent) and
    # use its `time` as "now". Scheduler sends only this input, so build that shape here; the
    # <aws.scheduler.*> placeholders are filled in per invocation.
    input = jsonencode({
      version       = "0"
      id            = "<aws.scheduler.execution-id>"
      "detail-type" = "Scheduled Event"
      source        = "aws.scheduler"
      account       = local.account_id
      time          = "<aws.scheduler.scheduled-time>"
      region        = local.region
      resources     = ["<aws.scheduler.schedule-arn>"]
      detail        = {}
    })

    # A missed tick is not retried: the next tick continues from the saved state anyway.
    retry_policy {
      maximum_retry_attempts       = 0
      maximum_event_age_in_seconds = 60
    }

    dead_letter_config {
      arn = aws_sqs_queue.this.arn
    }
  }
}

################################################################################
# alert: invoked by S3 notifications (see s3.tf)
################################################################################

resource "aws_lambda_permission" "s3_invokes_alert" {
  statement_id   = "AllowLakeBucketNotifications"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.this["alert"].function_name
  principal      = "s3.amazonaws.com"
  source_arn     = aws_s3_bucket.this.arn
  source_account = local.account_id
}
